"""Pay per crawl on resume: the spent totals and per-origin state rebuilt from audit records.

:func:`replay` reads a job's ``pay-decision`` / ``pay-charge`` records (written by
:class:`crawler.policy.payment.PayPerCrawl`) into a :class:`History`: what each origin spent,
which origins charged, which are paid or crawled no more. An authorisation with no charge record
counts as spent in full (fail closed). :func:`cross_log_charges` links the logs of a cluster's
workers (a charge recorded in another log than its authorisation).

This module imports neither Scrapy, Twisted nor Redis, opens nothing and reads no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .prices import CurrencyMismatch, Money, parse_price


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
