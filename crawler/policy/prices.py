"""Money for pay per crawl: the strict price grammar and exact amounts (sans-IO).

:func:`parse_price` reads one ``crawler-price`` / ``crawler-charged`` value strictly
(:data:`PRICE_RULES`, printed in the README) into :class:`Money`: a currency and a ``Decimal``
amount of at most :data:`MAX_DECIMALS` places, never a float; the ledgers count it in
micro-units (:data:`MICROS` per unit). Money in two currencies never combines
(:class:`CurrencyMismatch`). Used by the decision (:mod:`crawler.policy.payment`), the budgets
(:mod:`crawler.policy.ledger`) and replay (:mod:`crawler.policy.payment_replay`).

This module imports neither Scrapy, Twisted nor Redis, opens nothing and reads no clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

#: The most decimal places a price may have (Cloudflare's examples use 2; 6 = micro-units,
#: the unit the ledgers count in, so every accepted price is an exact whole number of them).
MAX_DECIMALS = 6
#: The most digits before the decimal point: 10**9 - 1 units is 10**15 micro-units, exact in a
#: Lua (double) number and far beyond any page price.
MAX_INTEGER_DIGITS = 9
#: The longest header value read at all (3 + 1 + 9 + 1 + 6 = 20 characters of a valid price).
MAX_PRICE_LENGTH = 32
MICROS = 10 ** MAX_DECIMALS

_PRICE_RE = re.compile(
    r"([A-Z]{3}) (0|[1-9][0-9]{0,%d})(?:\.([0-9]{1,%d}))?" % (MAX_INTEGER_DIGITS - 1,
                                                           MAX_DECIMALS), re.ASCII)

#: The price grammar, printed in the README: anything else is refused (:class:`PriceError`).
PRICE_RULES: tuple[str, ...] = (
    "exactly `CUR AMOUNT`: a 3-letter upper-case ISO 4217 code, one space, a decimal amount",
    "surrounding spaces/tabs (HTTP optional whitespace) are ignored; any other whitespace is not",
    f"amount: digits, optional `.` and 1-{MAX_DECIMALS} decimals; no sign, exponent, leading "
    "zeros, thousands separators, NaN or Infinity",
    f"at most {MAX_INTEGER_DIGITS} integer digits and {MAX_PRICE_LENGTH} characters in all",
    "one value: a repeated header or a comma-separated list is refused",
)


class PriceError(ValueError):
    """A price that is not exactly ``CUR <decimal>`` (the peer sent something wrong)."""

    def __init__(self, value: object, reason: str) -> None:
        super().__init__(f"invalid price {str(value)[:MAX_PRICE_LENGTH + 8]!r}: {reason}")
        self.value = value
        self.reason = reason


class CurrencyMismatch(ValueError):
    """Money in two currencies met (no conversion: the caller refuses)."""


@dataclass(frozen=True, slots=True, order=False)
class Money:
    """An amount in one currency: ``Decimal``, never float, at most :data:`MAX_DECIMALS` places."""

    currency: str
    amount: Decimal

    def __post_init__(self) -> None:
        if not (isinstance(self.currency, str) and re.fullmatch(r"[A-Z]{3}", self.currency,
                                                                re.ASCII)):
            raise ValueError(f"currency must be 3 upper-case letters, not {self.currency!r}")
        if not isinstance(self.amount, Decimal):  # a float here is a programmer error
            raise TypeError(f"amount must be a Decimal, not {type(self.amount).__name__}")
        if not self.amount.is_finite() or self.amount < 0:
            raise ValueError(f"amount must be finite and not negative, not {self.amount}")
        if self.amount != self.amount.quantize(Decimal(1).scaleb(-MAX_DECIMALS)) or \
                self.amount >= Decimal(10) ** MAX_INTEGER_DIGITS:
            raise ValueError(f"amount {self.amount} has more than {MAX_DECIMALS} decimals "
                             f"or {MAX_INTEGER_DIGITS} integer digits")

    @classmethod
    def of(cls, text: str) -> Money:
        """``Money.of("USD 0.01")``: :func:`parse_price`, for literals in code and tests."""
        return parse_price(text)

    @classmethod
    def from_micros(cls, currency: str, micros: int) -> Money:
        """``micros`` millionths of the unit, shown with at least two decimals."""
        amount = Decimal(int(micros)).scaleb(-MAX_DECIMALS).normalize()
        if amount.as_tuple().exponent > -2:  # type: ignore[operator]
            amount = amount.quantize(Decimal("0.01"))
        return cls(currency, amount)

    @property
    def micros(self) -> int:
        """The amount in millionths of the unit (what the ledgers store)."""
        return int(self.amount.scaleb(MAX_DECIMALS))

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency} and {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.currency, self.amount + other.amount)

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __ge__(self, other: Money) -> bool:
        self._same(other)
        return self.amount >= other.amount

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount > other.amount

    def __str__(self) -> str:
        """The canonical header form, ``USD 0.01`` (the amount's digits as parsed)."""
        return f"{self.currency} {format(self.amount, 'f')}"


def parse_price(value: str | bytes) -> Money:
    """One ``crawler-price`` / ``crawler-charged`` value, strictly (:data:`PRICE_RULES`).

    Raises :class:`PriceError` with the reason; never returns anything approximate.
    """
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            raise PriceError(value, "not ASCII") from None
    if not isinstance(value, str):
        raise PriceError(value, f"not a string ({type(value).__name__})")
    if len(value) > MAX_PRICE_LENGTH:
        raise PriceError(value, f"longer than {MAX_PRICE_LENGTH} characters")
    text = value.strip(" \t")  # RFC 9110 5.5: OWS around a field value is not part of it
    if not text:
        raise PriceError(value, "empty")
    if "," in text:
        raise PriceError(value, "a list of values (one price only)")
    m = _PRICE_RE.fullmatch(text)
    if m is None:
        raise PriceError(value, _why_not(text))
    digits = m.group(2) + ("." + m.group(3) if m.group(3) is not None else "")
    try:
        amount = Decimal(digits)
    except InvalidOperation:  # pragma: no cover - the expression admits only decimals
        raise PriceError(value, "not a decimal number") from None
    return Money(m.group(1), amount)


def _why_not(text: str) -> str:
    """A precise reason for a value the grammar refused (the evidence in the audit record)."""
    if any(not (" " <= ch <= "~") for ch in text):
        return "control or non-ASCII character"
    parts = text.split(" ")
    if len(parts) != 2 or not all(parts):
        return "not exactly `CUR AMOUNT` separated by one space"
    cur, amount = parts
    if not re.fullmatch(r"[A-Z]{3}", cur, re.ASCII):
        return f"currency {cur[:8]!r} is not 3 upper-case letters"
    if amount.startswith(("-", "+")):
        return "signed amount"
    if re.search(r"[eE]", amount) or amount.lower() in ("nan", "inf", "infinity"):
        return "exponent, NaN or Infinity"
    if re.search(r"[^0-9.]", amount, re.ASCII):
        return "amount has characters other than digits and one '.' (thousands separators?)"
    if amount.count(".") > 1 or amount.startswith(".") or amount.endswith("."):
        return "malformed decimal point"
    whole, _, frac = amount.partition(".")
    if len(frac) > MAX_DECIMALS:
        return f"more than {MAX_DECIMALS} decimal places"
    if len(whole) > 1 and whole.startswith("0"):
        return "leading zero"
    if len(whole) > MAX_INTEGER_DIGITS:
        return f"more than {MAX_INTEGER_DIGITS} integer digits"
    return "not a price"  # pragma: no cover - every refusal above has its own reason
