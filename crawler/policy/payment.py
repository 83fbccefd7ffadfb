"""Pay per crawl (Cloudflare's HTTP 402 protocol): the decision (sans-IO).

protocols.md §8.5: an unpaid request to a charged page gets ``402`` with ``crawler-price: USD
0.01``; a crawler pays by asking again with ``crawler-exact-price`` (equal to the quoted price)
or ``crawler-max-price`` (any price at or under it), never both; success is ``200`` with
``crawler-charged``; failures carry ``crawler-error`` (:data:`CRAWLER_ERRORS`).

This module imports neither Scrapy, Twisted nor Redis, opens nothing and reads no clock. The
Scrapy glue feeds it statuses and headers and acts on what it answers:

* :mod:`crawler.policy.prices` — the strict price grammar (``parse_price``, ``PRICE_RULES``)
  and ``Money``;
* :mod:`crawler.policy.ledger` — ``PaymentPolicy`` (``payment: {max_price, budget,
  per_origin_budget}`` from the config) and the budgets: a ``Ledger`` holds money atomically
  against both budgets until it is committed (debit what was charged) or released;
  ``LocalLedger`` is the in-process one, ``crawler.cluster.budget.RedisLedger`` the shared one;
* :class:`PayPerCrawl` (here) — the per-job session: :meth:`~PayPerCrawl.up_front` (the
  ``crawler-max-price`` header for origins that charged before) and :meth:`~PayPerCrawl.decide`
  (one response in, one of :class:`Pass`, :class:`Collect`, :class:`PayAndRetry`,
  :class:`Refuse`, :class:`StopOrigin`, :class:`RetryLater` out, with the audit records to
  write first), after the ``crawler-error`` table (:func:`error_action`);
* :mod:`crawler.policy.payment_replay` — ``replay``: the spent totals and per-origin state
  rebuilt from audit records (resume).

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

``replay`` counts every ``pay-charge``'s ``charged``, and every ``pay`` authorisation
with no ``pay-charge`` naming it as spent in full (the request may have been charged before a
crash: fail closed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import Enum
from typing import Any

from .ledger import Ledger, PaymentPolicy
from .payment_replay import History
from .prices import Money, PriceError, parse_price

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
