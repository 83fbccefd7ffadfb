"""The crawled-data part of the EU AI Act public summary of training content (Art. 53(1)(d)).

The Commission's template (24 July 2025) asks, for data crawled by the provider or on its
behalf: the crawler name(s) and identifiers, the purpose, the crawler's behaviour (robots.txt
and other opt-outs respected), the period of collection, the types of content, and the most
relevant domain names: **the top 10 % of all domains by size of content scraped** (SMEs: the
top 5 % or 1,000 domains, whichever is lower). :func:`build_transparency` computes these from
one or more output directories and writes ``transparency.md``, ``transparency.html`` (the same
text as a self-contained page: inline styles, no script, nothing fetched) and
``transparency.json`` with the same figures.

Sources, each streamed line by line (a corpus may be large; read by
:mod:`crawler.publish.outputs`, the text written by :mod:`crawler.publish.transparency_page`):

* ``corpus.jsonl``: documents collected (as the corpus stands now, after any purge), their
  ``bytes``, ``content_type`` and URL (hence registrable domain);
* ``audit.jsonl``: decisions (allow / deny / erase) and the signals that refused; collection
  period = first and last record ``time``; the hash chain is verified first;
* ``run.json`` (written by ``polite-crawl run``), else a job config saved in the directory
  (``*.yaml``): crawler identity, purpose, signals honoured. Optional.
* the signing identity (:func:`crawler.publish.outputs.read_identity`): the key thumbprint (RFC
  7638, the Web Bot Auth ``keyid``) and the signature agent URL, from ``run.json`` (``keyid``,
  ``signature_agent``) when it has them, else the ``keyid`` of the signed checkpoints beside
  each audit log (``audit.checkpoints.jsonl``), else the job's config (``identity.key_file``:
  the thumbprint of that key as it is now; ``identity.signature_agent``), each labelled with
  its source.

Payments (pay per crawl; :class:`crawler.publish.tallies.PaymentTally`, shared with
``polite-crawl report``): per registrable domain and currency, the amounts charged and the pages
charged (exact decimals, never added across currencies), the price quotes refused and why, the
origins stopped, and charge records whose amount cannot be read (listed, never summed). Shown
only when the audit logs hold pay-per-crawl records.

Counting rules (:class:`crawler.publish.tallies.AuditTally`, shared with ``polite-crawl report``
on an audit log, so both give the same figures for the same run): decisions are counted as
**distinct URLs by the final decision** about each URL (the latest that is not provisional),
and, separately and labelled so, as **records**. A refusal that only postpones a URL
(``undecided`` with ``final`` false: a per-origin file could not be fetched and the URL is
decided again later) decides nothing: a URL with only such refusals is "postponed"; records
about per-origin file fetches themselves (``preflight``) are counted apart from documents. A
refused URL counts once under each signal of its final refusal, so the per-signal counts may add
up to more than the refused URLs.

Registrable domains come from the Public Suffix List bundled with the ``publicsuffixlist``
package (offline; ICANN and private sections, as browsers use it): ``www.example.co.uk`` and
``news.example.co.uk`` are both ``example.co.uk``. An IP address, ``localhost`` and a host
that is itself a public suffix count as their own domain. The top list has ``ceil(share x
domains)`` entries, at least one; ties in bytes are broken by domain name.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

from crawler import __version__
from crawler.config.job import product_token
from crawler.policy.reservation import FAILURE_POLICY, SWITCHABLE_SIGNALS
from crawler.publish.about_content import PURPOSE_TEXT, contact_url, protocols, registry_label
from crawler.publish.outputs import RunFigures, read_output_dir
from crawler.publish.tallies import AuditTally, PaymentTally
from crawler.publish.transparency_page import markdown_page, render_markdown

TOP_SHARE = Fraction(1, 10)
SME_SHARE = Fraction(1, 20)
SME_MAX_DOMAINS = 1000
MD_NAME, JSON_NAME, HTML_NAME = "transparency.md", "transparency.json", "transparency.html"


def top_domain_count(domains: int, *, top_share: float | Fraction = TOP_SHARE,
                     sme: bool = False) -> int:
    """How many domains the summary lists: ``ceil(top_share x domains)`` (SMEs: the lower of
    ``ceil(5 % x domains)`` and 1,000), and at least one when any was collected."""
    if domains <= 0:
        return 0
    share = SME_SHARE if sme else Fraction(str(top_share))
    k = math.ceil(share * domains)
    if sme:
        k = min(k, SME_MAX_DOMAINS)
    return max(1, k)


# -- the summary ---------------------------------------------------------------------------

def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def build_transparency(
    output_dirs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    top_share: float = 0.10,
    sme: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Compute the summary over ``output_dirs``, write transparency.md/.html/.json into
    ``out_dir`` and return the JSON document."""
    runs = [read_output_dir(d) for d in output_dirs]
    summary = summarise(runs, top_share=top_share, sme=sme)
    if now is not None:
        summary["generated_at"] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / JSON_NAME).write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n",
                                 encoding="utf-8")
    markdown = render_markdown(summary)
    (out / MD_NAME).write_text(markdown, encoding="utf-8")
    (out / HTML_NAME).write_text(markdown_page(markdown, summary["title"]), encoding="utf-8")
    return summary


def summarise(runs: Sequence[RunFigures], *, top_share: float = 0.10,
              sme: bool = False) -> dict[str, Any]:
    tally = AuditTally()
    payments = PaymentTally()
    types: Counter[str] = Counter()
    domains: dict[str, list[int]] = {}
    documents = total_bytes = 0
    for run in runs:
        tally.merge(run.tally)
        payments.merge(run.payments)
        types.update(run.content_types)
        documents += run.documents
        total_bytes += run.bytes
        for dom, (b, n) in run.domains.items():
            entry = domains.setdefault(dom, [0, 0])
            entry[0] += b
            entry[1] += n

    crawlers = _crawlers(runs)
    purposes = sorted({c["purpose"] for c in crawlers if c.get("purpose")})
    firsts = [r.first_time for r in runs if r.first_time]
    lasts = [r.last_time for r in runs if r.last_time]
    urls = tally.outcomes()
    decided = tally.decided()
    refused_urls, erased_urls = tally.signal_urls("refused"), tally.signal_urls("erased")

    ranked = sorted(domains.items(), key=lambda kv: (-kv[1][0], kv[0]))
    k = top_domain_count(len(ranked), top_share=top_share, sme=sme)
    top = [{"rank": i, "domain": dom, "bytes": b, "documents": n,
            "share_of_bytes": _ratio(b, total_bytes)}
           for i, (dom, (b, n)) in enumerate(ranked[:k], start=1)]
    top_bytes = sum(t["bytes"] for t in top)
    if sme:
        rule = (f"SME rule: top 5 % of domains by bytes (rounded up) or {SME_MAX_DOMAINS:,}, "
                "whichever is lower; at least one")
    else:
        rule = (f"top {float(Fraction(str(top_share))) * 100:g} % of domains by bytes "
                "collected (rounded up; at least one)")

    summary = {
        "title": "Public summary of training content: data crawled from online sources",
        "basis": "EU AI Act Art. 53(1)(d); Commission template of 24 July 2025, section 2 "
                 "(data crawled and scraped from online sources)",
        "generator": f"polite-crawler {__version__}",
        "output_dirs": [r.output_dir for r in runs],
        "crawlers": crawlers,
        "purposes": [{"name": p, "description": PURPOSE_TEXT.get(p, p)} for p in purposes],
        "collection_period": {"first": min(firsts) if firsts else None,
                              "last": max(lasts) if lasts else None},
        "protocols": _protocols(runs),
        "failure_policy": [list(row) for row in FAILURE_POLICY],
        "urls": {
            "unit": "distinct URLs, by the final decision about each",
            "decided": decided,
            "allowed": urls["allowed"],
            "refused": urls["refused"],
            "refused_share": _ratio(urls["refused"], decided),
            "erased_later": urls["erased"],
            "postponed_not_decided": urls["postponed"],
        },
        "records": {
            "unit": "audit decision records (a URL may have several)",
            "allow": tally.records["allow"],
            "deny": tally.records["deny"],
            "erase": tally.records["erase"],
            "provisional_refusals": tally.provisional,
            "preflight": dict(sorted(tally.preflight.items())),
        },
        "refused_by_signal": [
            {"signal": s, "urls": n, "of_refused_urls": urls["refused"],
             "share": _ratio(n, urls["refused"]), "records": tally.refusal_records[s],
             "of_refusal_records": tally.records["deny"]}
            for s, n in sorted(refused_urls.items(), key=lambda kv: (-kv[1], kv[0]))],
        "erased_by_signal": [{"signal": s, "urls": n, "of_erased_urls": urls["erased"],
                              "records": tally.erase_records[s]}
                             for s, n in sorted(erased_urls.items(),
                                                key=lambda kv: (-kv[1], kv[0]))],
        "content": {
            "bytes": total_bytes,
            "documents": documents,
            "types": [{"content_type": t, "documents": n, "of_documents": documents,
                       "share": _ratio(n, documents)}
                      for t, n in sorted(types.items(), key=lambda kv: (-kv[1], kv[0]))],
        },
        "domains": {
            "rule": rule,
            "total_domains": len(ranked),
            "listed": len(top),
            "listed_bytes": top_bytes,
            "listed_share_of_bytes": _ratio(top_bytes, total_bytes),
            "top": top,
        },
        "runs": [_run_json(r) for r in runs],
    }
    if payments:  # runs without pay-per-crawl records: no payments section at all
        summary["payments"] = payments.to_json()
    return summary


def _crawlers(runs: Sequence[RunFigures]) -> list[dict[str, Any]]:
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        ua = run.info.get("user_agent")
        if not isinstance(ua, str) or not ua:
            continue
        token = run.info.get("token") or product_token(ua)
        purpose = run.info.get("purpose") or "train-ai"
        entry = seen.setdefault((ua, purpose), {
            "name": token, "product_token": token, "user_agent": ua,
            "contact": contact_url(ua), "purpose": purpose,
            "honor_agents": list(run.info.get("honor_agents") or []),
            "keyids": [], "signature_agents": [], "runs": 0})
        entry["runs"] += 1
        _add_identity(entry, run.identity)
    out = list(seen.values())
    if not out:
        entry = {"name": None, "product_token": None, "user_agent": None, "contact": None,
                 "purpose": None, "honor_agents": [], "keyids": [], "signature_agents": [],
                 "runs": len(runs),
                 "note": "no run.json or job config in the output directories"}
        for run in runs:
            _add_identity(entry, run.identity)
        out.append(entry)
    return out


def _add_identity(entry: dict[str, Any], ident: Mapping[str, Any]) -> None:
    """The keys and signature agents of one more run, each once, with its source."""
    for keyid in ident.get("keyids") or ():
        if keyid not in [k["keyid"] for k in entry["keyids"]]:
            entry["keyids"].append({"keyid": keyid, "source": ident.get("keyid_source")})
    url = ident.get("signature_agent")
    if url and url not in [a["url"] for a in entry["signature_agents"]]:
        entry["signature_agents"].append({"url": url,
                                          "source": ident.get("signature_agent_source")})


def _run_signals(run: RunFigures) -> list[str] | None:
    sig = run.info.get("signals")
    if isinstance(sig, list):
        return [s for s in SWITCHABLE_SIGNALS if s in sig]
    return None


def _protocols(runs: Sequence[RunFigures]) -> list[dict[str, Any]]:
    """Each protocol: in how many runs it was honoured (of those that recorded it), where it
    is read and the statements that bind each purpose crawled for."""
    known = [(r, _run_signals(r)) for r in runs]
    recorded = [(r, s) for r, s in known if s is not None]
    purposes = sorted({str(r.info.get("purpose") or "train-ai") for r in runs}) or ["train-ai"]
    rows: dict[str, dict[str, Any]] = {}
    for purpose in purposes:
        for p in protocols(purpose, SWITCHABLE_SIGNALS):
            row = rows.setdefault(p["signal"], {
                "signal": p["signal"], "name": p["name"], "where": p["where"],
                "binds": {}, "failure_policy": p["failure_policy"]})
            row["binds"][purpose] = p["binds"]
    out = []
    for signal, row in rows.items():
        if signal == "network":
            honoured = len(runs)
            of = len(runs)
        elif signal == "registry":
            regs = [r for r in runs if r.info.get("registries")]
            honoured, of = len(regs), len([r for r in runs if r.info_source])
            row["registries"] = sorted({f"{lab['type']} {lab['name']}" for r in regs
                                        for lab in map(registry_label,
                                                       r.info.get("registries") or [])})
        else:
            honoured = sum(1 for _, s in recorded if signal in s)
            of = len(recorded)
        row["honoured_in_runs"] = honoured
        row["of_runs_recorded"] = of
        out.append(row)
    return out


def _run_json(run: RunFigures) -> dict[str, Any]:
    info = run.info
    return {
        "output_dir": run.output_dir,
        "info_source": run.info_source,
        "job": info.get("job") or (min(run.jobs) if len(run.jobs) == 1 else
                                   sorted(run.jobs)),
        "user_agent": info.get("user_agent"),
        "purpose": info.get("purpose"),
        "signals": _run_signals(run),
        "started_at": info.get("started_at"),
        "finished_at": info.get("finished_at"),
        "first_record": run.first_time,
        "last_record": run.last_time,
        "policy_sha256": sorted(run.policies),
        "identity": run.identity,
        "audit_log": {"verified": run.audit_ok, "message": run.audit_message,
                      "records": run.records},
        "documents": run.documents,
        "bytes": run.bytes,
        "urls": run.tally.outcomes(),
    }


