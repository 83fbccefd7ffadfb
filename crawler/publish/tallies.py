"""An audit log's decisions and pay-per-crawl money, counted: :class:`AuditTally` and
:class:`PaymentTally`, shared by the refusals report (:mod:`crawler.publish.refusals`) and the
transparency summary (:mod:`crawler.publish.transparency`), so both count alike.

Audit logs
----------
:class:`AuditTally`: decisions about documents (``allow``/``deny``/``erase``; write-ahead
``send``/``result`` records and ``preflight`` records about per-origin files are left out) are
counted as **distinct URLs by the final decision** about each URL -- a URL refused three times
while its robots.txt was unreachable and then refused for good counts once -- and, separately
and labelled so, as **records**. The final decision is the latest (by record time, then log
order) that is not provisional (``undecided`` with ``final`` false); a URL with only provisional
refusals is "postponed". Refusals by signal: a refused URL counts once for each distinct signal
of its final refusal, so the rows may add up to more than the refused URLs; ``report.json``
gives per signal ``urls`` and ``records`` (refusal records citing it, provisional ones
included). By origin: the top 20 origins by refused URLs.

Pay per crawl (:class:`PaymentTally`): the ``pay-quote`` / ``pay-decision`` / ``pay-charge``
records of :mod:`crawler.policy.payment` (``decision: "result"``, the payload under
``payment``). Spend over time: per UTC day of the charge record and per currency, the amounts
charged (``charged``: what the budget was debited), added up exactly as decimals, never as
floats and never across currencies, and the pages charged (charge records with an amount); a
charge record whose amount is not a price in :data:`crawler.policy.prices.PRICE_RULES` is
listed apart and summed nowhere. A log without such records gives the report it gave before.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from crawler.policy.prices import PriceError, parse_price
from crawler.publish.domains import registrable_domain
from crawler.publish.figures import is_day

__all__ = [
    "PAY_RESULTS",
    "PAY_STOPS",
    "URL_OUTCOMES",
    "AuditTally",
    "PaymentTally",
    "clean_text",
    "money_text",
    "refusal_kind",
]

#: URL outcomes of an audit report, in table order.
URL_OUTCOMES = ("allowed", "refused", "erased", "postponed")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def origin_of(url: Any) -> str:
    try:
        parts = urlsplit(str(url))
        return f"{parts.scheme}://{parts.netloc}".lower() if parts.netloc else "(no origin)"
    except ValueError:
        return "(unparsable URL)"


def _signals(record: Mapping[str, Any]) -> tuple[str, ...]:
    reasons = record.get("reasons") if isinstance(record.get("reasons"), list) else []
    found = {str(_dict(reason).get("signal")) for reason in reasons if _dict(reason)}
    return tuple(sorted(found)) or ("(none)",)


@dataclass
class AuditTally:
    """An audit log's decisions counted two ways: distinct URLs by the final decision about
    each (see the module docstring), and records.  Feed it records in log order
    (:meth:`add`); several logs may be fed one after the other (record times order them)."""

    urls: dict[str, tuple[str, str, tuple[str, ...]]] = field(default_factory=dict)
    records: Counter[str] = field(default_factory=Counter)
    provisional: int = 0
    preflight: Counter[str] = field(default_factory=Counter)
    refusal_records: Counter[str] = field(default_factory=Counter)
    erase_records: Counter[str] = field(default_factory=Counter)

    def add(self, record: Mapping[str, Any]) -> None:
        decision = record.get("decision")
        if decision not in ("allow", "deny", "erase"):
            return  # write-ahead send/result records: requests, not decisions
        if record.get("preflight"):
            self.preflight[str(decision)] += 1
            return
        if record.get("sitemap"):  # a sitemap fetch: discovery, not a document
            self.preflight[f"sitemap {decision}"] += 1
            return
        self.records[str(decision)] += 1
        signals = _signals(record) if decision != "allow" else ()
        if decision == "deny":
            self.refusal_records.update(signals)
        elif decision == "erase":
            self.erase_records.update(signals)
        undecided = record.get("undecided")
        if decision == "deny" and isinstance(undecided, Mapping) and not undecided.get("final"):
            self.provisional += 1
            outcome = "postponed"
        else:
            outcome = {"allow": "allowed", "deny": "refused", "erase": "erased"}[decision]
        self._offer(str(record.get("url") or ""), str(record.get("time") or ""), outcome,
                    signals)

    def _offer(self, url: str, time: str, outcome: str, signals: tuple[str, ...]) -> None:
        """Keep the final decision: a later one (by time; by order when a time is missing)
        replaces an earlier one; a provisional refusal never replaces a decision."""
        held = self.urls.get(url)
        if outcome == "postponed":
            if held is None or (held[1] == "postponed" and (not time or time >= held[0])):
                self.urls[url] = (time, outcome, signals)
            return
        if (held is None or held[1] == "postponed" or not time or not held[0]
                or time >= held[0]):
            self.urls[url] = (time, outcome, signals)

    def merge(self, other: AuditTally) -> None:
        """Add another log's tally (e.g. another output directory's)."""
        for url, (time, outcome, signals) in other.urls.items():
            self._offer(url, time, outcome, signals)
        self.records.update(other.records)
        self.provisional += other.provisional
        self.preflight.update(other.preflight)
        self.refusal_records.update(other.refusal_records)
        self.erase_records.update(other.erase_records)

    def outcomes(self) -> dict[str, int]:
        """URLs per final outcome (:data:`URL_OUTCOMES`)."""
        counts = Counter(outcome for _, outcome, _ in self.urls.values())
        return {name: counts[name] for name in URL_OUTCOMES}

    def decided(self) -> int:
        counts = self.outcomes()
        return counts["allowed"] + counts["refused"] + counts["erased"]

    def signal_urls(self, outcome: str = "refused") -> Counter[str]:
        """URLs whose final decision is ``outcome``, per signal it cites."""
        out: Counter[str] = Counter()
        for _, final, signals in self.urls.values():
            if final == outcome:
                out.update(signals)
        return out

    def by_origin(self) -> dict[str, Counter[str]]:
        out: dict[str, Counter[str]] = {}
        for url, (_, outcome, _) in self.urls.items():
            out.setdefault(origin_of(url), Counter())[outcome] += 1
        return out


#: The audit record kinds of pay per crawl (:mod:`crawler.policy.payment`): ``decision: "result"``
#: records whose ``result`` is one of these and whose ``payment`` holds the payload.
PAY_RESULTS = ("pay-quote", "pay-decision", "pay-charge")
#: pay-decision actions that stop something for the rest of the job, and what they stop.
PAY_STOPS = {"stop-origin": "origin not crawled any more (the site blocks us)",
             "stop-paying": "origin paid no more",
             "stop-paying-job": "job pays no more"}
_PRICE_TEXT = re.compile(r"\b[A-Z]{3} [0-9][0-9.]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f`]")
_PARENS = re.compile(r"\s*\([^()]*\)")


def clean_text(value: Any, limit: int = 120) -> str:
    """Text from a log, safe in a table cell: no control characters or backticks, cut at
    ``limit`` characters (a site's values reach the log as received)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=True,
                                                           default=str)
    text = _CONTROL.sub("?", text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def money_text(currency: str, amount: Decimal) -> str:
    """``USD 0.03``: the exact decimal, with at least two places."""
    if amount.as_tuple().exponent > -2:  # type: ignore[operator]
        amount = amount.quantize(Decimal("0.01"))
    return f"{currency} {format(amount, 'f')}"


def refusal_kind(reason: Any) -> str:
    """A pay-decision's reason without its particulars, to count alike refusals together:
    the details in parentheses dropped, prices shown as ``[price]``."""
    text, before = clean_text(reason, 200), None
    while text != before:  # innermost parentheses first: "a (b (c))" -> "a (b)" -> "a"
        before, text = text, _PARENS.sub("", text)
    return clean_text(_PRICE_TEXT.sub("[price]", text).strip() or "(no reason)")


@dataclass
class PaymentTally:
    """Pay-per-crawl money in audit logs: what was charged per registrable domain and per day,
    in each currency apart (exact :class:`~decimal.Decimal` sums, never floats, never added
    across currencies), the price quotes refused and why, the origins stopped, and the charge
    records whose amount cannot be read (listed, never summed).  Feed it records in log order
    with the log's name (:meth:`add`): a ``pay-charge`` names its authorisation by ``seq``,
    which is unique within one log only."""

    #: (registrable domain, currency) -> [charged, pages, charges debited as authorised]
    by_domain: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    #: (day, currency) -> [charged, pages]
    by_day: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    records: Counter[str] = field(default_factory=Counter)
    quoted_urls: set[str] = field(default_factory=set)
    #: refusal kind -> [records, URLs]
    refusals: dict[str, list[Any]] = field(default_factory=dict)
    #: (origin, action) -> the first such stop
    stops: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    unreadable: list[dict[str, Any]] = field(default_factory=list)
    #: (log, seq of a ``pay`` pay-decision) -> (domain, currency, amount) until its charge
    open_holds: dict[tuple[str, int], tuple[str, str, Decimal]] = field(default_factory=dict)
    #: (log file name, seq) of authorisations a charge record names: in a cluster the charge
    #: may be in another worker's log than its authorisation (``ref_log``)
    closed_refs: set[tuple[str, int]] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.records)

    def add(self, record: Mapping[str, Any], log: str = "") -> None:
        kind = record.get("result")
        if record.get("decision") != "result" or kind not in PAY_RESULTS:
            return
        self.records[kind] += 1
        pay = _dict(record.get("payment"))
        url = str(record.get("url") or "")
        origin = clean_text(pay.get("origin") if isinstance(pay.get("origin"), str)
                            else origin_of(url))
        domain = _domain(origin)
        if kind == "pay-quote":
            if pay.get("price") is not None:
                self.quoted_urls.add(url)
        elif kind == "pay-decision":
            self._decision(record, pay, url, origin, domain, log)
        else:
            self._charge(record, pay, url, origin, domain, log)

    def _decision(self, record: Mapping[str, Any], pay: Mapping[str, Any], url: str,
                  origin: str, domain: str, log: str) -> None:
        action = pay.get("action")
        if action == "refuse":
            entry = self.refusals.setdefault(refusal_kind(pay.get("reason")), [0, set()])
            entry[0] += 1
            entry[1].add(url)
        elif action in PAY_STOPS:
            self.stops.setdefault((origin, str(action)), {
                "origin": origin, "domain": domain, "action": action,
                "meaning": PAY_STOPS[str(action)], "reason": clean_text(pay.get("reason")),
                "time": clean_text(record.get("time") or "", 40)})
        elif action == "pay" and isinstance(record.get("seq"), int):
            try:
                held = parse_price(pay.get("reserved"))  # type: ignore[arg-type]
            except PriceError:
                return  # an unreadable hold: its charge record, if any, says what happened
            key = (Path(log).name, record["seq"])
            if key not in self.closed_refs:
                self.open_holds[key] = (domain, held.currency, held.amount)

    def _charge(self, record: Mapping[str, Any], pay: Mapping[str, Any], url: str,
                origin: str, domain: str, log: str) -> None:
        ref = pay.get("ref")
        if isinstance(ref, int):
            ref_log = pay.get("ref_log")
            key = (ref_log if isinstance(ref_log, str) else Path(log).name, ref)
            self.closed_refs.add(key)
            self.open_holds.pop(key, None)
        value = pay.get("charged")
        if value is None:
            return  # nothing charged (the hold was released)
        try:
            money = parse_price(value)
        except PriceError as exc:
            self.unreadable.append({
                "log": Path(log).name, "seq": record.get("seq"),
                "time": clean_text(record.get("time") or "", 40),
                "url": clean_text(url, 200), "origin": origin, "domain": domain,
                "value": clean_text(value, 40), "why": exc.reason})
            return
        day = str(record.get("time") or "")[:10]
        day = day if is_day(day) else "(no date)"
        header = _dict(pay.get("headers")).get("crawler-charged")
        as_sent = (isinstance(header, list) and len(header) == 1
                   and isinstance(header[0], str) and header[0].strip(" \t") == value)
        entry = self.by_domain.setdefault((domain, money.currency), [Decimal(0), 0, 0])
        entry[0] += money.amount
        entry[1] += 1
        entry[2] += not as_sent
        per_day = self.by_day.setdefault((day, money.currency), [Decimal(0), 0])
        per_day[0] += money.amount
        per_day[1] += 1

    def merge(self, other: PaymentTally) -> None:
        """Add another tally (another output directory's)."""
        for key, (amount, pages, assumed) in other.by_domain.items():
            entry = self.by_domain.setdefault(key, [Decimal(0), 0, 0])
            entry[0] += amount
            entry[1] += pages
            entry[2] += assumed
        for key, (amount, pages) in other.by_day.items():
            per_day = self.by_day.setdefault(key, [Decimal(0), 0])
            per_day[0] += amount
            per_day[1] += pages
        self.records.update(other.records)
        self.quoted_urls |= other.quoted_urls
        for kind, (n, urls) in other.refusals.items():
            entry = self.refusals.setdefault(kind, [0, set()])
            entry[0] += n
            entry[1] |= urls
        for key, stop in other.stops.items():
            mine = self.stops.get(key)
            if mine is None or stop["time"] < mine["time"]:
                self.stops[key] = stop
        self.unreadable += other.unreadable
        self.closed_refs |= other.closed_refs
        self.open_holds.update(other.open_holds)
        for key in self.closed_refs & self.open_holds.keys():
            del self.open_holds[key]

    def to_json(self) -> dict[str, Any]:
        """Every figure, amounts as exact decimal strings (``"charged": "0.03"``, ``"text":
        "USD 0.03"``), never as floats."""
        totals: dict[str, list[Any]] = {}
        for (domain, currency), (amount, pages, _) in self.by_domain.items():
            entry = totals.setdefault(currency, [Decimal(0), 0, set()])
            entry[0] += amount
            entry[1] += pages
            entry[2].add(domain)
        held: dict[tuple[str, str], list[Any]] = {}
        for domain, currency, amount in self.open_holds.values():
            entry = held.setdefault((domain, currency), [Decimal(0), 0])
            entry[0] += amount
            entry[1] += 1
        return {
            "unit": "money per currency (exact decimals; currencies never added together) and "
                    "pages charged (pay-charge records with an amount)",
            "records": {k: self.records[k] for k in PAY_RESULTS},
            "totals": [{"currency": c, "charged": _amount(a), "text": money_text(c, a),
                        "pages": n, "domains": len(d)}
                       for c, (a, n, d) in sorted(totals.items())],
            "by_domain": [{"domain": d, "currency": c, "charged": _amount(a),
                           "text": money_text(c, a), "pages": n,
                           "debited_as_authorised": k}
                          for (d, c), (a, n, k) in sorted(self.by_domain.items(),
                                                          key=lambda kv: (kv[0][1], -kv[1][0],
                                                                          kv[0][0]))],
            "by_day": [{"day": day, "currency": c, "charged": _amount(a),
                        "text": money_text(c, a), "pages": n}
                       for (day, c), (a, n) in sorted(self.by_day.items())],
            "quotes": {"records": self.records["pay-quote"],
                       "urls_with_a_price": len(self.quoted_urls),
                       "refusals": sum(n for n, _ in self.refusals.values()),
                       "refused_urls": len(set().union(*(u for _, u in
                                                          self.refusals.values()))),
                       "refused_by_reason": [
                           {"reason": kind, "records": n, "urls": len(urls)}
                           for kind, (n, urls) in sorted(self.refusals.items(),
                                                         key=lambda kv: (-kv[1][0], kv[0]))]},
            "stopped": sorted(self.stops.values(), key=lambda s: (s["time"], s["origin"],
                                                                  s["action"])),
            "unreadable_charges": list(self.unreadable),
            "authorised_without_charge_record": [
                {"domain": d, "currency": c, "amount": _amount(a), "text": money_text(c, a),
                 "authorisations": n} for (d, c), (a, n) in sorted(held.items())],
        }


def _amount(amount: Decimal) -> str:
    return money_text("XXX", amount)[4:]


def _domain(origin: str) -> str:
    return registrable_domain(origin) or origin
