"""Pay per crawl (Cloudflare's HTTP 402 protocol): prices, budgets and the decision (sans-IO).

protocols.md §8.5: an unpaid request to a charged page gets ``402`` with ``crawler-price: USD
0.01``; a crawler pays by asking again with ``crawler-exact-price`` (equal to the quoted price)
or ``crawler-max-price`` (any price at or under it), never both; success is ``200`` with
``crawler-charged``; failures carry ``crawler-error`` (:data:`CRAWLER_ERRORS`).

This module imports neither Scrapy, Twisted nor Redis, opens nothing and reads no clock. The
Scrapy glue feeds it statuses and headers and acts on what it answers:

* :func:`parse_price` — the strict price grammar (:data:`PRICE_RULES`);
* :class:`PaymentPolicy` — ``payment: {max_price, budget, per_origin_budget}`` from the config;
* :class:`Ledger` — the budgets: :meth:`~Ledger.reserve` holds money atomically against both
  budgets until :meth:`~Ledger.commit` (debit what was charged) or :meth:`~Ledger.release`;
  :class:`LocalLedger` is the in-process one, ``crawler.cluster.budget.RedisLedger`` the shared
  one;
* :class:`PayPerCrawl` — the per-job session: :meth:`~PayPerCrawl.up_front` (the
  ``crawler-max-price`` header for origins that charged before) and :meth:`~PayPerCrawl.decide`
  (one response in, one of :class:`Pass`, :class:`Collect`, :class:`PayAndRetry`,
  :class:`Refuse`, :class:`StopOrigin`, :class:`RetryLater` out, with the audit records to
  write first);
* :func:`replay` — the spent totals and per-origin state rebuilt from audit records (resume).

Paying never overrides a reservation: the glue asks :meth:`PayPerCrawl.decide` only about a
response the other signals (robots.txt, TDMRep, noai, registries, ...) allow.

Audit records (``decision: "result"``, no reasons; see :func:`quote_record` and friends), each
with a ``payment`` object holding the raw ``crawler-*`` headers:

=============== ===========================================================================
``result``      ``payment`` fields
=============== ===========================================================================
``pay-quote``   ``origin``, ``status``, ``headers`` (raw crawler-* response headers),
                ``price`` (canonical ``"USD 0.01"`` or null), ``problems``
``pay-decision````origin``, ``action`` (pay / refuse / retry / stop-origin / stop-paying
                (this origin) / stop-paying-job), ``currency``,
                ``reason``; for ``pay``: ``header`` ([name, value] sent), ``reserved``
                (the money held) — a write-ahead authorisation: its own ``seq`` is the
                attempt's ``ref``
``pay-charge``  ``origin``, ``ref`` (seq of the ``pay-decision`` that authorised it),
                ``status``, ``headers`` (raw), ``reserved``, ``charged`` (debited; null =
                nothing charged, the hold released), ``problems``
=============== ===========================================================================

:func:`replay` counts every ``pay-charge``'s ``charged``, and every ``pay`` authorisation
with no ``pay-charge`` naming it as spent in full (the request may have been charged before a
crash: fail closed).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any, Protocol

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


class PaymentConfigError(ValueError):
    """The ``payment`` config is invalid (the caller did something wrong); ``key`` names it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"payment.{key}: {message}")
        self.key = key


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


# -- crawler-error: the table --------------------------------------------------------------

class ErrorAction(str, Enum):
    """What a ``crawler-error`` makes the crawler do."""

    #: this URL is refused; nothing is retried
    REFUSE_URL = "refuse-url"
    #: the site blocks us: no more requests to the origin (zone) this job
    STOP_ORIGIN = "stop-origin"
    #: Cloudflare failed: the same request again after an exponential back-off, bounded
    RETRY = "retry-with-backoff"
    #: our side is misconfigured (signature, price header, payment set-up): the URL is
    #: refused and this job pays no more (every later 402 is a plain refusal). On an unpaid
    #: request (nothing of ours was tried) only the URL is refused.
    CONFIG_ERROR = "refuse-payment-config-error"


@dataclass(frozen=True, slots=True)
class CrawlerErrorRow:
    name: str
    status: int
    meaning: str
    action: ErrorAction


#: Cloudflare's error codes (protocols.md §8.5; ``error-codes.mdx``). Printed in the README.
CRAWLER_ERRORS: Mapping[str, CrawlerErrorRow] = {r.name: r for r in (
    CrawlerErrorRow("CrawlerForbidden", 403, "the site blocks this crawler; payment cannot help",
                    ErrorAction.STOP_ORIGIN),
    CrawlerErrorRow("StrongAuthRequired", 400, "payment needs Web Bot Auth signature headers",
                    ErrorAction.CONFIG_ERROR),
    CrawlerErrorRow("InvalidSignature", 400, "the Web Bot Auth signature is missing or invalid",
                    ErrorAction.CONFIG_ERROR),
    CrawlerErrorRow("InvalidCrawlerPriceValue", 400, "our price header is malformed",
                    ErrorAction.CONFIG_ERROR),
    CrawlerErrorRow("ConflictingPriceHeaders", 400, "both price headers were sent",
                    ErrorAction.CONFIG_ERROR),
    CrawlerErrorRow("MissingCrawlerPrice", 402, "a paid request without a price header",
                    ErrorAction.CONFIG_ERROR),
    CrawlerErrorRow("PaymentFailed", 403, "payment processing is not set up or failed",
                    ErrorAction.CONFIG_ERROR),
    CrawlerErrorRow("InvalidCrawlerExactPrice", 402, "the exact price is not the price (it "
                    "changed since the quote)", ErrorAction.REFUSE_URL),
    CrawlerErrorRow("InvalidCrawlerMaxPrice", 402, "the price is over our maximum",
                    ErrorAction.REFUSE_URL),
    CrawlerErrorRow("InvalidContentPrice", 502, "the site's own price is invalid (its "
                    "configuration)", ErrorAction.REFUSE_URL),
    CrawlerErrorRow("InternalError", 500, "Cloudflare failed", ErrorAction.RETRY),
)}


def error_action(name: str, status: int) -> tuple[ErrorAction, str]:
    """The action for a ``crawler-error`` value and the response status, with the reason.

    Unknown names refuse the URL (fail closed). A known name with another status than the
    table's keeps its action, except that a retry becomes a refusal (only a real 500
    InternalError is retried).
    """
    row = CRAWLER_ERRORS.get(name)
    if row is None:
        return ErrorAction.REFUSE_URL, f"unknown crawler-error {name[:40]!r} (refused)"
    reason = f"crawler-error {row.name} ({row.meaning})"
    if status != row.status:
        reason += f" with status {status}, not {row.status}"
        if row.action is ErrorAction.RETRY:
            return ErrorAction.REFUSE_URL, reason
    return row.action, reason


# -- policy --------------------------------------------------------------------------------

PAYMENT_KEYS = ("max_price", "budget", "per_origin_budget")


@dataclass(frozen=True, slots=True)
class PaymentPolicy:
    """The ``payment`` config: what one page may cost, and what the job and an origin may spend.

    Absent config = no :class:`PaymentPolicy`: every 402 is a refusal, as before.
    """

    max_price: Money
    budget: Money
    per_origin_budget: Money
    #: InternalError (500) retries of one request, and the back-off: base * 2**n, capped
    max_retries: int = 3
    backoff_base: float = 1.0
    backoff_cap: float = 60.0

    def __post_init__(self) -> None:
        cur = self.budget.currency
        for key in PAYMENT_KEYS:
            if getattr(self, key).currency != cur:
                raise PaymentConfigError(key, f"currency {getattr(self, key).currency} is not "
                                         f"the budget's ({cur})")

    @property
    def currency(self) -> str:
        return self.budget.currency

    @classmethod
    def from_config(cls, value: Any) -> PaymentPolicy | None:
        """``payment:`` from the YAML config (None/absent = payments off).

        ``max_price`` and ``budget`` are required; ``per_origin_budget`` defaults to the
        budget. Raises :class:`PaymentConfigError` naming the key at fault.
        """
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise PaymentConfigError("", "must be a mapping of max_price, budget, "
                                     "per_origin_budget")
        for key in value:
            if key not in PAYMENT_KEYS:
                raise PaymentConfigError(str(key), f"unknown key (known: {', '.join(PAYMENT_KEYS)})")
        parsed: dict[str, Money] = {}
        for key in PAYMENT_KEYS:
            raw = value.get(key)
            if raw is None:
                if key == "per_origin_budget" and "budget" in parsed:
                    parsed[key] = parsed["budget"]
                    continue
                raise PaymentConfigError(key, 'required, e.g. "USD 0.01"')
            if not isinstance(raw, str):  # 0.01 in YAML is a float: money is never a float
                raise PaymentConfigError(key, f'must be a quoted string such as "USD 0.01", '
                                         f"not {type(raw).__name__}")
            try:
                parsed[key] = parse_price(raw)
            except PriceError as exc:
                raise PaymentConfigError(key, exc.reason) from None
        return cls(**parsed)

    def backoff(self, retries: int) -> float:
        """Seconds to wait before retry number ``retries + 1``."""
        return min(self.backoff_cap, self.backoff_base * 2 ** max(0, retries))


# -- ledgers -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Hold:
    """The answer of :meth:`Ledger.reserve`: true when the money is held."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


@dataclass(frozen=True, slots=True)
class Totals:
    """Micro-units spent (charged) and held (reserved, not yet committed)."""

    spent: int = 0
    held: int = 0
    origin_spent: int = 0
    origin_held: int = 0


class Ledger(Protocol):
    """Budgets: ``reserve`` checks both (job and origin) and holds the amount atomically; the
    hold lasts until ``commit`` (debit what was charged, which may differ) or ``release``."""

    def reserve(self, origin: str, amount: Money) -> Hold: ...

    def commit(self, origin: str, reserved: Money, charged: Money | None) -> None: ...

    def release(self, origin: str, reserved: Money) -> None: ...

    def totals(self, origin: str) -> Totals: ...


def refusal(policy: PaymentPolicy, amount: Money, t: Totals) -> str:
    """Why ``amount`` cannot be held given totals ``t`` ('' = it can). Shared by the ledgers
    (the Redis script applies the same two comparisons)."""
    if amount.currency != policy.currency:
        return f"price currency {amount.currency} is not the budget's ({policy.currency})"
    m = amount.micros
    if t.spent + t.held + m > policy.budget.micros:
        return (f"over the job budget ({policy.budget}: "
                f"{Money.from_micros(policy.currency, t.spent)} spent, "
                f"{Money.from_micros(policy.currency, t.held)} held)")
    if t.origin_spent + t.origin_held + m > policy.per_origin_budget.micros:
        return (f"over the per-origin budget ({policy.per_origin_budget}: "
                f"{Money.from_micros(policy.currency, t.origin_spent)} spent, "
                f"{Money.from_micros(policy.currency, t.origin_held)} held)")
    return ""


class LocalLedger:
    """The in-process ledger (one crawl process). Thread-safe; ``load`` restores what
    :func:`replay` rebuilt from the audit log, so budgets survive a resume."""

    def __init__(self, policy: PaymentPolicy) -> None:
        self.policy = policy
        self._lock = threading.Lock()
        self._spent: dict[str, int] = {}
        self._held: dict[str, int] = {}

    def load(self, spent_by_origin: Mapping[str, int]) -> None:
        """Add spent micro-units per origin (from :func:`replay`)."""
        with self._lock:
            for origin, micros in spent_by_origin.items():
                self._spent[origin] = self._spent.get(origin, 0) + int(micros)

    def totals(self, origin: str) -> Totals:
        with self._lock:
            return self._totals(origin)

    def _totals(self, origin: str) -> Totals:
        return Totals(sum(self._spent.values()), sum(self._held.values()),
                      self._spent.get(origin, 0), self._held.get(origin, 0))

    def reserve(self, origin: str, amount: Money) -> Hold:
        with self._lock:
            why = refusal(self.policy, amount, self._totals(origin))
            if why:
                return Hold(False, why)
            self._held[origin] = self._held.get(origin, 0) + amount.micros
            return Hold(True)

    def commit(self, origin: str, reserved: Money, charged: Money | None) -> None:
        """Release ``reserved`` and debit ``charged`` (in the budget's currency; a charge in
        another one is debited as the reserved amount by :class:`PayPerCrawl`)."""
        if charged is not None and charged.currency != self.policy.currency:
            raise CurrencyMismatch(f"charge in {charged.currency}, budget in "
                                   f"{self.policy.currency}")
        with self._lock:
            self._unhold(origin, reserved)
            if charged is not None:
                self._spent[origin] = self._spent.get(origin, 0) + charged.micros

    def release(self, origin: str, reserved: Money) -> None:
        with self._lock:
            self._unhold(origin, reserved)

    def _unhold(self, origin: str, reserved: Money) -> None:
        left = self._held.get(origin, 0) - reserved.micros
        if left > 0:
            self._held[origin] = left
        else:
            self._held.pop(origin, None)


class FailClosedLedger:
    """A :class:`Ledger` whose failures never mean money: fail closed.

    Wraps another ledger (the Redis one: a server that is down or answers garbage). A
    ``reserve`` that raises holds nothing and refuses (the URL is refused, not paid). A
    ``commit`` or ``release`` that raises leaves the budget unknown: this ledger then refuses
    every later reservation (``broken`` says why) — the job pays no more. ``totals`` that
    cannot be read raise (callers use them for display only).
    """

    def __init__(self, inner: Ledger) -> None:
        self.inner = inner
        #: why this ledger refuses everything ('' = it works)
        self.broken = ""

    def reserve(self, origin: str, amount: Money) -> Hold:
        if self.broken:
            return Hold(False, f"payment state unknown ({self.broken}): not paying")
        try:
            return self.inner.reserve(origin, amount)
        except Exception as exc:  # noqa: BLE001 - any failure: nothing held, refused
            return Hold(False, f"payment state unreadable ({_error_text(exc)}): not paying")

    def commit(self, origin: str, reserved: Money, charged: Money | None) -> None:
        try:
            self.inner.commit(origin, reserved, charged)
        except CurrencyMismatch:
            raise
        except Exception as exc:  # noqa: BLE001
            self.broken = f"a charge could not be recorded: {_error_text(exc)}"

    def release(self, origin: str, reserved: Money) -> None:
        try:
            self.inner.release(origin, reserved)
        except Exception as exc:  # noqa: BLE001
            self.broken = f"a hold could not be released: {_error_text(exc)}"

    def totals(self, origin: str) -> Totals:
        return self.inner.totals(origin)

    def load(self, spent_by_origin: Mapping[str, int]) -> None:
        load = getattr(self.inner, "load", None)
        if load is not None:
            load(spent_by_origin)


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


# -- what the session answers --------------------------------------------------------------

PRICE_HEADERS = ("crawler-exact-price", "crawler-max-price")


@dataclass(frozen=True, slots=True)
class PaidAttempt:
    """A request that carries a price header, with the money held for it.

    ``ref`` is the ``seq`` of the ``pay-decision`` audit record that authorised it (set by the
    glue with :meth:`with_ref` once that record is written; :meth:`PayPerCrawl.decide`
    refuses an attempt without it), ``ref_log`` the name of the audit log that record is in:
    in a cluster the paid request goes through the shared queue and another worker may send
    it, so its charge is then recorded in another log than its authorisation. The glue keeps
    it in ``request.meta``.
    """

    origin: str
    header: str            # crawler-exact-price or crawler-max-price
    price: Money           # the value sent in it
    reserved: Money        # the money held (== price)
    retries: int = 0       # InternalError retries so far
    ref: int | None = None
    ref_log: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        """The one price header to set on the request (never both)."""
        return {self.header: str(self.price)}

    def with_ref(self, seq: int, log: str | None = None) -> PaidAttempt:
        return replace(self, ref=int(seq), ref_log=log)

    def to_meta(self) -> dict[str, Any]:
        """A JSON-safe form for ``request.meta`` (survives a disk / Redis queue)."""
        return {"origin": self.origin, "header": self.header, "price": str(self.price),
                "reserved": str(self.reserved), "retries": self.retries, "ref": self.ref,
                "ref_log": self.ref_log}

    @classmethod
    def from_meta(cls, d: Mapping[str, Any]) -> PaidAttempt:
        if d.get("header") not in PRICE_HEADERS:
            raise ValueError(f"not a paid attempt: {d!r:.80}")
        return cls(str(d["origin"]), str(d["header"]), parse_price(str(d["price"])),
                   parse_price(str(d["reserved"])), int(d.get("retries", 0)),
                   None if d.get("ref") is None else int(d["ref"]),
                   None if d.get("ref_log") is None else str(d["ref_log"]))


@dataclass(frozen=True, slots=True, kw_only=True)
class _Answer:
    #: audit payloads to write, in order, before acting: ``(result, payment)`` pairs for
    #: ``DecisionFunnel.result(url, result, request_seq=..., extra={"payment": payment})``
    records: tuple[tuple[str, dict[str, Any]], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Pass(_Answer):
    """Not a payment matter: the usual rules decide the response (as without payments)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Collect(_Answer):
    """A paid (or charged) 200: the usual rules still decide it, without the 402 rule.
    ``charged`` is what was debited (None: nothing)."""

    charged: Money | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PayAndRetry(_Answer):
    """Ask again once, as a new request with ``attempt.headers`` (money is held for it)."""

    attempt: PaidAttempt


@dataclass(frozen=True, slots=True, kw_only=True)
class Refuse(_Answer):
    """Do not collect this URL (deny, signal ``payment-required``); never retried."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StopOrigin(_Answer):
    """The site blocks us (CrawlerForbidden): refuse this URL and every later one of the
    origin for the rest of the job."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryLater(_Answer):
    """InternalError: send the same request again after ``delay`` seconds; ``attempt`` (None
    for an unpaid request) replaces the one in ``request.meta`` (its hold is kept)."""

    delay: float
    retries: int
    attempt: PaidAttempt | None = None


Answer = Pass | Collect | PayAndRetry | Refuse | StopOrigin | RetryLater


def pay_headers(headers: Mapping[str, Any]) -> dict[str, list[str]]:
    """The raw ``crawler-*`` headers of a response (names lower-case, values as received)."""
    out: dict[str, list[str]] = {}
    for name, values in headers.items():
        key = (name.decode("latin-1") if isinstance(name, bytes) else str(name)).lower()
        if not key.startswith("crawler-"):
            continue
        if isinstance(values, (str, bytes)):
            values = [values]
        out[key] = [v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in values]
    return out


def _one(raw: Mapping[str, list[str]], name: str) -> tuple[str | None, str | None]:
    """The single value of header ``name`` (value, None), or (None, problem)."""
    values = raw.get(name)
    if not values:
        return None, None
    if len(values) != 1:
        return None, f"{name}: {len(values)} values (one expected)"
    return values[0], None


@dataclass
class _OriginState:
    charged: bool = False        # a charge was seen: offer crawler-max-price up front
    no_pay: str = ""             # why this origin is paid no more ('' = it may be)
    stopped: str = ""            # why this origin is not crawled any more (CrawlerForbidden)


@dataclass(frozen=True, slots=True)
class History:
    """What :func:`replay` rebuilt from an audit log."""

    spent: Mapping[str, int] = field(default_factory=dict)      # origin -> micro-units
    currency: str | None = None
    charged: frozenset[str] = frozenset()    # origins that charged
    no_pay: Mapping[str, str] = field(default_factory=dict)     # origin -> why not paid
    stopped: Mapping[str, str] = field(default_factory=dict)    # origin -> why stopped
    disabled: str = ""                       # why the job pays no more ('' = it may)
    open_holds: int = 0                      # authorisations with no charge record


class PayPerCrawl:
    """One job's payment session over a :class:`Ledger` (sans-IO; state in memory, rebuilt by
    :meth:`restore` from :func:`replay` on resume)."""

    def __init__(self, policy: PaymentPolicy, ledger: Ledger) -> None:
        self.policy = policy
        self.ledger = ledger
        self._origins: dict[str, _OriginState] = {}
        #: why the job pays no more (a config error on our side); '' = it pays
        self.disabled = ""

    def restore(self, history: History) -> None:
        """Per-origin state from :func:`replay` (load the ledger separately)."""
        if history.currency is not None and history.currency != self.policy.currency:
            self.disabled = (f"the audit log's charges are in {history.currency}, the budget "
                             f"in {self.policy.currency}")
        for origin in history.charged:
            self._state(origin).charged = True
        for origin, why in history.no_pay.items():
            self._state(origin).no_pay = why
        for origin, why in history.stopped.items():
            self._state(origin).stopped = why
        self.disabled = self.disabled or history.disabled

    def check_shared(self, history: History, shared_spent: int) -> str:
        """A shared ledger (Redis) that shows less spent than this worker's own audit log
        records has lost the job's payment state (e.g. Redis restored without it): this job
        pays nothing more (fail closed). Returns why ('' = consistent). ``shared_spent``: the
        ledger's job total in micro-units."""
        own = sum(history.spent.values())
        if shared_spent < own:
            cur = history.currency or self.policy.currency
            self.disabled = (f"the shared budget shows {Money.from_micros(cur, shared_spent)} "
                             f"spent, less than this worker's audit log records "
                             f"({Money.from_micros(cur, own)}): the payment state was lost; "
                             "nothing is paid")
            return self.disabled
        return ""

    def _state(self, origin: str) -> _OriginState:
        return self._origins.setdefault(origin, _OriginState())

    def stopped(self, origin: str) -> str:
        """Why ``origin`` is not to be crawled any more ('' = it may be): check before sending."""
        st = self._origins.get(origin)
        return st.stopped if st else ""

    def paying(self, origin: str) -> str:
        """'' when this job may pay ``origin``; else why not."""
        if self.disabled:
            return self.disabled
        st = self._origins.get(origin)
        if st and st.stopped:
            return st.stopped
        if st and st.no_pay:
            return st.no_pay
        return ""

    def up_front(self, origin: str) -> tuple[PaidAttempt | None, tuple[tuple[str, dict], ...]]:
        """For an origin that charged before: hold ``max_price`` and return the attempt whose
        ``crawler-max-price`` header goes on the request (the brief's ``headers_for``), with the
        ``pay-decision`` record to write first. (None, ()) when the origin never charged, may not
        be paid, or the budgets cannot hold ``max_price`` (then the request goes unpaid and a 402
        is decided as usual)."""
        st = self._origins.get(origin)
        if st is None or not st.charged or self.paying(origin):
            return None, ()
        price = self.policy.max_price
        if not self.ledger.reserve(origin, price):
            return None, ()
        attempt = PaidAttempt(origin, "crawler-max-price", price, price)
        return attempt, (("pay-decision", self._decision(origin, "pay", "origin charged "
                                                          "before: max price up front", attempt)),)

    # -- the decision ------------------------------------------------------------------
    def decide(self, origin: str, status: int, headers: Mapping[str, Any],
               attempt: PaidAttempt | None = None, *, retries: int = 0) -> Answer:
        """One response (of a request to ``origin``, carrying ``attempt`` or unpaid) in; what to
        do out. Ledger holds are taken, committed or released here; the answer's ``records``
        must be written before acting on it. ``retries``: the InternalError retries an unpaid
        request has had (a paid one counts them in ``attempt.retries``); the glue carries the
        :class:`RetryLater` answer's ``retries`` over to the retry."""
        if attempt is not None and attempt.ref is None:
            raise ValueError("PaidAttempt without ref: write its pay-decision record and "
                             "set attempt.with_ref(record seq) before sending it")
        raw = pay_headers(headers)
        if attempt is not None:
            return self._after_paying(origin, status, raw, attempt)
        return self._unpaid(origin, status, raw, retries)

    def not_paid(self, origin: str, status: int, headers: Mapping[str, Any],
                 reason: str) -> Refuse:
        """A response another signal reserves (robots.txt, TDMRep, noai, ...): nothing is held
        or paid, whatever it quotes; the quote and the refusal are recorded (reason: which
        reservation). Paying never overrides a reservation. For an unpaid request only (the
        answer to a paid one goes through :meth:`decide`, which accounts for its money)."""
        raw = pay_headers(headers)
        price: Money | None = None
        problems: list[str] = []
        value, problem = _one(raw, "crawler-price")
        if problem:
            problems.append(problem)
        if value is not None:
            try:
                price = parse_price(value)
            except PriceError as exc:
                problems.append(exc.reason)
        return self._refuse(origin, f"reserved ({reason}): paying never overrides a "
                            "reservation", ("pay-quote", self._quote(origin, status, raw, price,
                                                                     problems)))

    def _unpaid(self, origin: str, status: int, raw: dict[str, list[str]],
                retries: int = 0) -> Answer:
        if "crawler-charged" in raw:  # billed without our consent (or a lying server)
            return self._charge(origin, status, raw, None)
        if "crawler-error" in raw:
            return self._error(origin, status, raw, None, retries)
        if status != 402:
            if "crawler-price" in raw:  # a price on a non-402: not an offer we can take
                return Refuse(reason=f"crawler-price on a {status} response", records=(
                    ("pay-quote", self._quote(origin, status, raw, None, ["price on a "
                                                                           "non-402"])),))
            return Pass()
        value, problem = _one(raw, "crawler-price")
        price: Money | None = None
        problems = [problem] if problem else []
        if value is not None:
            try:
                price = parse_price(value)
            except PriceError as exc:
                problems.append(exc.reason)
        quote = ("pay-quote", self._quote(origin, status, raw, price, problems))
        if price is None:
            why = "402 without a valid crawler-price" + (f" ({problems[0]})" if problems else "")
            return self._refuse(origin, why, quote)
        why = self.paying(origin)
        if why:
            return self._refuse(origin, f"not paying: {why}", quote)
        if price.currency != self.policy.currency:
            return self._refuse(origin, f"price currency {price.currency} is not the budget's "
                                f"({self.policy.currency})", quote)
        if price > self.policy.max_price:
            return self._refuse(origin, f"price {price} over max_price {self.policy.max_price}",
                                quote)
        hold = self.ledger.reserve(origin, price)
        if not hold:
            return self._refuse(origin, hold.reason, quote)
        attempt = PaidAttempt(origin, "crawler-exact-price", price, price)
        return PayAndRetry(attempt=attempt, records=(quote, ("pay-decision", self._decision(
            origin, "pay", f"price {price} within max_price and budgets", attempt))))

    def _after_paying(self, origin: str, status: int, raw: dict[str, list[str]],
                      attempt: PaidAttempt) -> Answer:
        if "crawler-charged" in raw:
            return self._charge(origin, status, raw, attempt)
        if "crawler-error" in raw:
            return self._error(origin, status, raw, attempt)
        if status == 402:  # no loop: one paid try per quote
            self.ledger.release(origin, attempt.reserved)
            return self._refuse(origin, f"402 again after paying ({attempt.header}: "
                                f"{attempt.price})", self._charge_record(
                                    origin, status, raw, attempt, None, ["402 after paying"]))
        # a 200 that charged nothing (or any other status): nothing to debit
        self.ledger.release(origin, attempt.reserved)
        rec = self._charge_record(origin, status, raw, attempt, None, [])
        if status == 200:
            return Collect(charged=None, records=(rec,))
        return Pass(records=(rec,))

    def _charge(self, origin: str, status: int, raw: dict[str, list[str]],
                attempt: PaidAttempt | None) -> Answer:
        value, problem = _one(raw, "crawler-charged")
        problems = [problem] if problem else []
        charged: Money | None = None
        if value is not None:
            try:
                charged = parse_price(value)
            except PriceError as exc:
                problems.append(exc.reason)
        authorised = attempt.price if attempt is not None else None
        if charged is not None and charged.currency != self.policy.currency:
            problems.append(f"charged in {charged.currency}, budget in {self.policy.currency}")
            charged = None
        if charged is None:
            # unreadable charge: assume the most we authorised was taken (fail closed)
            debit = authorised
            problems.append("charge unreadable: debited the amount authorised"
                            if debit is not None else "charge unreadable, nothing authorised")
        else:
            debit = charged
        stop_paying = ""
        if authorised is None:
            stop_paying = "charged without a price header being sent"
        elif charged is None:
            stop_paying = "unreadable crawler-charged"
        elif charged > authorised:
            stop_paying = f"charged {charged}, more than the {attempt.header} {authorised}"
        if status != 200:
            stop_paying = stop_paying or f"crawler-charged on a {status} response"
            problems.append(f"crawler-charged on a {status} response")
        if attempt is not None:
            self.ledger.commit(origin, attempt.reserved, debit)
        elif debit is not None:  # billed without consent: debited all the same (money gone)
            self.ledger.commit(origin, Money(self.policy.currency, Decimal(0)), debit)
        st = self._state(origin)
        st.charged = True
        records = [self._charge_record(origin, status, raw, attempt, debit, problems)]
        if stop_paying:
            st.no_pay = stop_paying
            records.append(("pay-decision", self._decision(origin, "stop-paying", stop_paying)))
        if status != 200:
            return Refuse(reason=f"crawler-charged on a {status} response", records=tuple(records))
        return Collect(charged=debit, records=tuple(records))

    def _error(self, origin: str, status: int, raw: dict[str, list[str]],
               attempt: PaidAttempt | None, unpaid_retries: int = 0) -> Answer:
        value, problem = _one(raw, "crawler-error")
        if value is None:
            action, reason = ErrorAction.REFUSE_URL, f"{problem} (refused)"
        else:
            action, reason = error_action(value.strip(), status)
        if action is ErrorAction.CONFIG_ERROR and attempt is None:
            # we did not try to pay: our payment set-up is not at fault (e.g. a site that
            # wants a signature before it answers at all)
            action = ErrorAction.REFUSE_URL
        charge: list[tuple[str, dict]] = []
        if attempt is not None and action is not ErrorAction.RETRY:
            self.ledger.release(origin, attempt.reserved)
            charge.append(self._charge_record(origin, status, raw, attempt, None, [reason]))
        elif attempt is None:
            charge.append(("pay-quote", self._quote(origin, status, raw, None, [reason])))
        if action is ErrorAction.RETRY:
            retries = (attempt.retries if attempt is not None else max(0, unpaid_retries))
            if retries >= self.policy.max_retries:
                if attempt is not None:
                    self.ledger.release(origin, attempt.reserved)
                    charge.append(self._charge_record(origin, status, raw, attempt, None,
                                                      [reason, "retries exhausted"]))
                return self._refuse(origin, f"{reason}: {retries} retries exhausted", *charge)
            delay = self.policy.backoff(retries)
            nxt = replace(attempt, retries=retries + 1) if attempt is not None else None
            return RetryLater(delay=delay, retries=retries + 1, attempt=nxt, records=(
                *charge, ("pay-decision", self._decision(
                    origin, "retry", f"{reason}: retry {retries + 1} in {delay:g}s"))))
        if action is ErrorAction.STOP_ORIGIN:
            self._state(origin).stopped = reason
            return StopOrigin(reason=reason, records=(*charge, ("pay-decision", self._decision(
                origin, "stop-origin", reason))))
        if action is ErrorAction.CONFIG_ERROR:
            self.disabled = reason
            return Refuse(reason=reason, records=(*charge, ("pay-decision", self._decision(
                origin, "stop-paying-job", reason))))
        return self._refuse(origin, reason, *charge)

    def cancel(self, attempt: PaidAttempt, reason: str) -> tuple[tuple[str, dict], ...]:
        """A paid attempt that never left (refused before it was sent): its hold is released
        and the ``pay-charge`` record (``charged: null``) closes its authorisation, so
        :func:`replay` does not count it as spent. Never for a request that may have reached
        the server (a download error): that hold stays (fail closed)."""
        self.ledger.release(attempt.origin, attempt.reserved)
        return (self._charge_record(attempt.origin, None, {}, attempt, None,
                                    [f"not sent: {reason}"]),)

    # -- records -----------------------------------------------------------------------
    def _refuse(self, origin: str, reason: str, *records: tuple[str, dict]) -> Refuse:
        return Refuse(reason=reason, records=(*records, ("pay-decision", self._decision(
            origin, "refuse", reason))))

    def _quote(self, origin: str, status: int, raw: dict[str, list[str]], price: Money | None,
               problems: Sequence[str]) -> dict[str, Any]:
        return {"kind": "quote", "origin": origin, "status": status, "headers": raw,
                "price": None if price is None else str(price), "problems": list(problems)}

    def _decision(self, origin: str, action: str, reason: str,
                  attempt: PaidAttempt | None = None) -> dict[str, Any]:
        rec: dict[str, Any] = {"kind": "decision", "origin": origin, "action": action,
                               "reason": reason, "currency": self.policy.currency}
        if attempt is not None:
            rec["header"] = [attempt.header, str(attempt.price)]
            rec["reserved"] = str(attempt.reserved)
        return rec

    def _charge_record(self, origin: str, status: int | None, raw: dict[str, list[str]],
                       attempt: PaidAttempt | None, debit: Money | None,
                       problems: Sequence[str]) -> tuple[str, dict[str, Any]]:
        return ("pay-charge", {
            "kind": "charge", "origin": origin, "status": status, "headers": raw,
            "ref": None if attempt is None else attempt.ref,
            "ref_log": None if attempt is None else attempt.ref_log,
            "sent": None if attempt is None else [attempt.header, str(attempt.price)],
            "reserved": None if attempt is None else str(attempt.reserved),
            "charged": None if debit is None else str(debit), "problems": list(problems)})


# -- resume --------------------------------------------------------------------------------

def cross_log_charges(logs: Mapping[str, Iterable[Mapping[str, Any]]]) -> dict[str, set[int]]:
    """``log name -> seqs of its authorisations`` charged in other logs: every ``pay-charge``
    whose ``ref_log`` names another log of ``logs`` (the ``closed`` of :func:`replay`)."""
    out: dict[str, set[int]] = {name: set() for name in logs}
    for name, records in logs.items():
        for rec in records:
            pay = rec.get("payment")
            if rec.get("result") != "pay-charge" or not isinstance(pay, Mapping):
                continue
            ref, ref_log = pay.get("ref"), pay.get("ref_log")
            if isinstance(ref, int) and ref_log in out and ref_log != name:
                out[ref_log].add(ref)
    return out


def replay(records: Iterable[Mapping[str, Any]], *, log: str | None = None,
           closed: Iterable[int] = ()) -> History:
    """Rebuild spent totals and per-origin state from a job's audit records, in order.

    Every ``pay-charge`` debits its ``charged``; every ``pay`` authorisation (``pay-decision``
    with ``action: pay``) that no ``pay-charge`` names by ``ref`` is counted as spent in full
    (its request may have been charged before the crawl died: fail closed). Money that cannot
    be read is an error (:class:`PriceError`): a log that lies about money is not guessed at.

    ``log``: the name of the log the records are from; a charge whose ``ref_log`` names
    another log (a cluster worker sent a request another one authorised) debits its amount
    here but closes nothing here. ``closed``: seqs of this log's authorisations whose charge
    records are in other logs (:func:`cross_log_charges`); without them, such an
    authorisation counts as spent in full (more than was spent: never less).
    """
    closed = set(closed)
    spent: dict[str, int] = {}
    open_: dict[int, tuple[str, int]] = {}
    charged: set[str] = set()
    no_pay: dict[str, str] = {}
    stopped: dict[str, str] = {}
    disabled = ""
    currency: str | None = None

    def add(origin: str, money: Money) -> None:
        nonlocal currency
        if currency is None:
            currency = money.currency
        elif money.currency != currency:
            raise CurrencyMismatch(f"audit log has charges in {currency} and {money.currency}")
        spent[origin] = spent.get(origin, 0) + money.micros

    for rec in records:
        kind = rec.get("result")
        pay = rec.get("payment")
        if kind not in ("pay-decision", "pay-charge") or not isinstance(pay, Mapping):
            continue
        origin = str(pay.get("origin"))
        if kind == "pay-decision":
            action = pay.get("action")
            if action == "pay":
                reserved = parse_price(str(pay.get("reserved")))
                open_[int(rec["seq"])] = (origin, reserved.micros)
                if currency is None:
                    currency = reserved.currency
            elif action == "stop-paying":
                no_pay[origin] = str(pay.get("reason"))
            elif action == "stop-origin":
                stopped[origin] = str(pay.get("reason"))
            elif action == "stop-paying-job":
                disabled = str(pay.get("reason"))
        else:
            ref = pay.get("ref")
            ref_log = pay.get("ref_log")
            if ref is not None and (ref_log is None or log is None or ref_log == log):
                open_.pop(int(ref), None)
            if pay.get("charged") is not None:
                add(origin, parse_price(str(pay["charged"])))
                charged.add(origin)
    for seq in closed:
        open_.pop(seq, None)
    for origin, micros in open_.values():
        spent[origin] = spent.get(origin, 0) + micros
    return History(spent=spent, currency=currency, charged=frozenset(charged), no_pay=no_pay,
                   stopped=stopped, disabled=disabled, open_holds=len(open_))
