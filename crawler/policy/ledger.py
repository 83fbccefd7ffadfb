"""Pay per crawl budgets: the ``payment`` config and the ledgers that hold money (sans-IO).

:class:`PaymentPolicy` is ``payment: {max_price, budget, per_origin_budget}`` from the config.
A :class:`Ledger` keeps the budgets: :meth:`~Ledger.reserve` holds money atomically against both
(job and origin) until :meth:`~Ledger.commit` (debit what was charged) or
:meth:`~Ledger.release`; :class:`LocalLedger` is the in-process one,
``crawler.cluster.budget.RedisLedger`` the shared one, and :class:`FailClosedLedger` wraps
either so that a failure never means money. The decision that uses them is
:mod:`crawler.policy.payment`.

This module imports neither Scrapy, Twisted nor Redis, opens nothing and reads no clock.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .prices import CurrencyMismatch, Money, PriceError, parse_price


class PaymentConfigError(ValueError):
    """The ``payment`` config is invalid (the caller did something wrong); ``key`` names it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"payment.{key}: {message}")
        self.key = key


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
