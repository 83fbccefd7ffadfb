"""The crawl refusals report, from audit logs: URLs by final decision, refusals by signal and
by origin, decision records, and pay-per-crawl spend -- one function per table.  The counting
rules are in :mod:`crawler.publish.tallies`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from crawler.publish.charts import bar_chart, spend_chart
from crawler.publish.figures import Table, fraction, is_day, n_range, top_ranked
from crawler.publish.inputs import Input
from crawler.publish.tallies import URL_OUTCOMES, AuditTally, PaymentTally

__all__ = ["TOP_ORIGINS", "audit_figures", "audit_report", "payment_tables"]

#: Origins listed in the refusals-by-origin table.
TOP_ORIGINS = 20


def audit_report(inputs: Sequence[Input], out_dir: Path) -> tuple[list[Table], dict]:
    """The tables of an audit report on ``inputs`` (charts written into ``out_dir``) and the
    figures report.json carries."""
    tally = AuditTally()
    payments = PaymentTally()
    every = 0
    for item in inputs:
        for record in item.records:
            every += 1
            tally.add(record)
            payments.add(record, log=str(item.path))
    figures = audit_figures(tally, every)
    tables = [_url_outcomes_table(figures, out_dir),
              _signals_table(figures, tally, out_dir),
              _origins_table(figures, out_dir),
              _records_table(figures, tally)]
    if payments:  # a log without pay-per-crawl records: the report as before
        figures["payments"] = payments.to_json()
        tables += payment_tables(figures["payments"], out_dir)
    return tables, figures


def audit_figures(tally: AuditTally, every: int) -> dict[str, Any]:
    """Every figure of the report but the payments, from a tally of ``every`` records."""
    outcomes = tally.outcomes()
    decided = tally.decided()
    refused = outcomes["refused"]
    n_records = sum(tally.records.values())
    deny_records = tally.records["deny"]
    signal_urls = tally.signal_urls()
    signals = sorted(set(signal_urls) | set(tally.refusal_records),
                     key=lambda s: (-signal_urls[s], -tally.refusal_records[s], s))
    origins = tally.by_origin()
    ranked = sorted(((o, c) for o, c in origins.items() if c["refused"]),
                    key=lambda oc: (-oc[1]["refused"], oc[0]))
    shown, tied = top_ranked(ranked, lambda oc: oc[1]["refused"], TOP_ORIGINS)
    return {
        "urls": {
            "decided": decided,
            **{name: fraction(outcomes[name], decided) for name in URL_OUTCOMES[:3]},
            "postponed": outcomes["postponed"],
        },
        "records": {
            "decisions": n_records,
            "by_decision": {k: fraction(v, n_records) for k, v in sorted(tally.records.items())},
            "provisional_refusals": tally.provisional,
            "preflight": dict(sorted(tally.preflight.items())),
            "write_ahead_and_other": every - n_records - sum(tally.preflight.values()),
        },
        "refusals_by_signal": {
            s: {"urls": fraction(signal_urls[s], refused),
                "records": fraction(tally.refusal_records[s], deny_records)} for s in signals},
        "refusals_by_origin": [
            {"origin": origin, "refused": fraction(c["refused"],
                                                   c["allowed"] + c["refused"] + c["erased"]),
             "share_of_refusals": fraction(c["refused"], refused)} for origin, c in shown],
        "origins_left_out_tied_at_cut": tied,
    }


def _url_outcomes_table(figures: Mapping[str, Any], out_dir: Path) -> Table:
    urls = figures["urls"]
    decided = urls["decided"]
    url_rows = [(name, urls[name]["text"]) for name in URL_OUTCOMES[:3]]
    chart = bar_chart(out_dir, "audit_outcomes.png",
                      f"URLs by final decision (n = {decided} URLs decided)",
                      [name for name, _ in url_rows],
                      [("URLs", [urls[name] for name, _ in url_rows])],
                      "% of URLs decided")
    return Table(
        "url_outcomes", "URLs by final decision", ("final decision", "URLs"),
        (*url_rows, ("postponed (not decided)", str(urls["postponed"]))),
        note=f"Unit: distinct URLs. Denominator: the {decided} URLs with a final decision.",
        chart=chart, measures=("share", "url_decided", "url_allowed", "url_refused",
                               "url_erased", "url_postponed"))


def _signals_table(figures: Mapping[str, Any], tally: AuditTally, out_dir: Path) -> Table:
    by_signal = figures["refusals_by_signal"]
    signals = list(by_signal)
    refused = figures["urls"]["refused"]["count"]
    deny_records = tally.records["deny"]
    chart = None
    if signals:
        chart = bar_chart(out_dir, "audit_signals.png",
                          f"Refused URLs by signal (n = {refused} refused URLs)", signals,
                          [("refused URLs", [by_signal[s]["urls"] for s in signals])],
                          "% of refused URLs")
    return Table(
        "refusals_by_signal", "Refusals by signal",
        ("signal", "refused URLs citing it", "refusal records citing it"),
        tuple((s, by_signal[s]["urls"]["text"], by_signal[s]["records"]["text"])
              for s in signals),
        note=(f"Units: distinct URLs (of the {refused} refused URLs, by their final refusal) "
              f"and, separately, records (of the {deny_records} deny records, provisional "
              "ones included). A refusal citing several signals counts under each."),
        chart=chart, measures=("signal_urls", "signal_records"))


def _origins_table(figures: Mapping[str, Any], out_dir: Path) -> Table:
    rows = figures["refusals_by_origin"]
    tied = figures["origins_left_out_tied_at_cut"]
    chart = None
    if rows:
        chart = bar_chart(out_dir, "audit_origins.png",
                          f"Refused share of each origin's decided URLs (top {len(rows)} "
                          f"origins; n = {n_range(o['refused']['of'] for o in rows)} "
                          "decided URLs per origin)",
                          [o["origin"] for o in rows],
                          [("refused", [o["refused"] for o in rows])],
                          "% of the origin's decided URLs")
    return Table(
        "refusals_by_origin", f"Refusals by origin (top {len(rows)} by refused URLs)",
        ("origin", "refused of its decided URLs", "share of all refused URLs"),
        tuple((o["origin"], o["refused"]["text"], o["share_of_refusals"]["text"])
              for o in rows),
        note="Unit: distinct URLs." + (f" {tied} more origins tied at the cut are not listed."
                                       if tied else ""),
        chart=chart, measures=("origin_refused", "origin_share"))


def _records_table(figures: Mapping[str, Any], tally: AuditTally) -> Table:
    records = figures["records"]
    return Table(
        "records", "Decision records (a separate unit: records, not URLs)",
        ("record", "records"),
        (*((k, f["text"]) for k, f in records["by_decision"].items()),
         ("of which provisional refusals", str(tally.provisional)),
         *((f"preflight {k} (per-origin files, not counted above)", str(v))
           for k, v in records["preflight"].items())),
        note=f"Unit: audit records. Denominator: the {records['decisions']} decision records "
             "about documents. One URL may have several records (retried, provisionally "
             "refused, decided again in a later run).", measures=("records",))


def payment_tables(pay: Mapping[str, Any], out_dir: Path) -> list[Table]:
    """Spend over time (per day and currency, with totals), and the charge records whose
    amount could not be read."""
    days = pay["by_day"]
    chart = (spend_chart(out_dir, "audit_spend.png", days)
             if any(is_day(d["day"]) for d in days) else None)
    rows = [(d["day"], d["currency"], d["text"], str(d["pages"])) for d in days]
    rows += [("all days", t["currency"], t["text"], str(t["pages"])) for t in pay["totals"]]
    bad = pay["unreadable_charges"]
    held = pay["authorised_without_charge_record"]
    note = ("Pay per crawl. Units: money, in each currency apart (exact decimal sums; "
            "currencies are never added together or converted), and pages charged (charge "
            "records with an amount). Day: the UTC date of the charge record. "
            f"{pay['quotes']['refusals']} price quote(s) refused; "
            f"{len(pay['stopped'])} stop(s) (origin or job) recorded.")
    if bad:
        note += f" {len(bad)} charge record(s) with an unreadable amount are not summed (below)."
    if held:
        note += (" Payments authorised with no charge record (the request may have been "
                 "charged; the budget counts them as spent): " + ", ".join(
                     f"{h['text']} ({h['authorisations']}) at {h['domain']}" for h in held)
                 + ".")
    tables = [Table("spend_over_time", "Spend over time (pay per crawl)",
                    ("day (UTC)", "currency", "charged", "pages charged"), tuple(rows),
                    note=note, chart=chart, measures=("pay_charged", "pay_pages"))]
    if bad:
        tables.append(Table(
            "unreadable_charges", "Charge records with an unreadable amount (not summed)",
            ("log", "seq", "time", "origin", "amount as recorded", "why it cannot be read"),
            tuple((Path(b["log"]).name, str(b["seq"]), b["time"], b["origin"], b["value"],
                   b["why"]) for b in bad),
            note="Unit: audit records. Each is left out of every total above.",
            measures=("pay_unreadable",)))
    return tables
