"""The crawled-data part of the EU AI Act public summary of training content (Art. 53(1)(d)).

The Commission's template (24 July 2025) asks, for data crawled by the provider or on its
behalf: the crawler name(s) and identifiers, the purpose, the crawler's behaviour (robots.txt
and other opt-outs respected), the period of collection, the types of content, and the most
relevant domain names: **the top 10 % of all domains by size of content scraped** (SMEs: the
top 5 % or 1,000 domains, whichever is lower). :func:`build_transparency` computes these from
one or more output directories and writes ``transparency.md``, ``transparency.html`` (the same
text as a self-contained page: inline styles, no script, nothing fetched) and
``transparency.json`` with the same figures.

Sources, each streamed line by line (a corpus may be large):

* ``corpus.jsonl``: documents collected (as the corpus stands now, after any purge), their
  ``bytes``, ``content_type`` and URL (hence registrable domain);
* ``audit.jsonl``: decisions (allow / deny / erase) and the signals that refused; collection
  period = first and last record ``time``; the hash chain is verified first;
* ``run.json`` (written by ``polite-crawl run``), else a job config saved in the directory
  (``*.yaml``): crawler identity, purpose, signals honoured. Optional.
* the signing identity (:func:`read_identity`): the key thumbprint (RFC 7638, the Web Bot Auth
  ``keyid``) and the signature agent URL, from ``run.json`` (``keyid``, ``signature_agent``)
  when it has them, else the ``keyid`` of the signed checkpoints beside each audit log
  (``audit.checkpoints.jsonl``), else the job's config (``identity.key_file``: the thumbprint
  of that key as it is now; ``identity.signature_agent``), each labelled with its source.

Payments (pay per crawl; :class:`crawler.publish.tallies.PaymentTally`, shared with ``polite-crawl
report``): per registrable domain and currency, the amounts charged and the pages charged
(exact decimals, never added across currencies), the price quotes refused and why, the origins
stopped, and charge records whose amount cannot be read (listed, never summed). Shown only when
the audit logs hold pay-per-crawl records.

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
import logging
import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

from crawler import __version__
from crawler.publish.about_content import PURPOSE_TEXT, contact_url, protocols, registry_label
from crawler.audit.log import verify_file
from crawler.config.job import product_token
from crawler.policy.reservation import FAILURE_POLICY, SWITCHABLE_SIGNALS
from crawler.publish.domains import registrable_domain
from crawler.publish.tallies import AuditTally, PaymentTally

logger = logging.getLogger(__name__)

TOP_SHARE = Fraction(1, 10)
SME_SHARE = Fraction(1, 20)
SME_MAX_DOMAINS = 1000
RUN_INFO = "run.json"
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


# -- reading an output directory -----------------------------------------------------------

def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                logger.warning("%s line %d: not JSON, skipped", path, lineno)
                continue
            if isinstance(obj, dict):
                yield obj


def read_run_info(output_dir: str | Path) -> tuple[dict[str, Any], str | None]:
    """What is known of the run that wrote ``output_dir``, and where it came from.

    ``run.json`` first (the fields ``polite-crawl run`` writes: job, user_agent, token,
    purpose, signals, honor_agents, registries, started_at, finished_at, policy_sha256,
    version), else a job config saved beside the output (``*.yaml``), else nothing.
    """
    out = Path(output_dir)
    path = out / RUN_INFO
    if not path.is_file():  # a cluster job: one run-<worker>.json per worker
        path = next(iter(sorted(out.glob("run-*.json"))), path)
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                return data, path.name
        except (OSError, ValueError):
            logger.warning("%s cannot be read; looking for a job config instead", path)
    for cfg in sorted(out.glob("*.yaml")):
        try:
            data = yaml.safe_load(cfg.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if not isinstance(data, dict) or not isinstance(data.get("user_agent"), str):
            continue
        info: dict[str, Any] = {k: data[k] for k in ("job", "user_agent", "purpose",
                                                     "honor_agents") if k in data}
        sig = data.get("signals")
        if isinstance(sig, dict):
            info["signals"] = [s for s in SWITCHABLE_SIGNALS if sig.get(s, True) is not False]
        elif sig is None:
            info["signals"] = list(SWITCHABLE_SIGNALS)
        if isinstance(data.get("registries"), list):
            info["registries"] = [r for r in data["registries"] if isinstance(r, dict)]
        return info, cfg.name
    return {}, None


def read_identity(output_dir: str | Path, info: Mapping[str, Any], info_source: str | None,
                  audits: Sequence[Path] = ()) -> dict[str, Any]:
    """The signing identity a run used: ``{"keyids": [...], "keyid_source", "signature_agent",
    "signature_agent_source", "problems": [...]}``.

    The key thumbprint from ``run.json`` (``keyid``), else the ``keyid`` of the signed
    checkpoints beside the audit logs (the key that signed them, as the checkpoints name it:
    ``audit verify --checkpoints`` checks the signatures), else the thumbprint of the job
    config's ``identity.key_file`` as it is now (only the public thumbprint is kept). The
    signature agent from ``run.json`` (``signature_agent``), else the config's
    ``identity.signature_agent``. The config: the one ``run.json`` names (``config``), or the
    ``*.yaml`` the run info was read from.
    """
    from crawler.audit.checkpoint import CHECKPOINT_TYPE, checkpoints_path, read_checkpoints

    out = Path(output_dir)
    ident: dict[str, Any] = {"keyids": [], "keyid_source": None, "signature_agent": None,
                             "signature_agent_source": None, "problems": []}
    keyid = info.get("keyid")
    if isinstance(keyid, str) and keyid:
        ident["keyids"], ident["keyid_source"] = [keyid], info_source or RUN_INFO
    agent = info.get("signature_agent")
    if isinstance(agent, str) and agent:
        ident["signature_agent"] = agent
        ident["signature_agent_source"] = info_source or RUN_INFO
    if not ident["keyids"]:
        seen: dict[str, None] = {}
        for audit in audits:
            path = checkpoints_path(audit)
            if not path.is_file():
                continue
            errors: list[str] = []
            try:
                lines = read_checkpoints(path, errors=errors)
            except (OSError, ValueError) as exc:
                ident["problems"].append(f"{path.name}: {exc}")
                continue
            ident["problems"] += errors
            for cp in lines:
                if cp.get("type") == CHECKPOINT_TYPE and cp.get("sig") and isinstance(
                        cp.get("keyid"), str):
                    seen.setdefault(cp["keyid"], None)
        if seen:
            ident["keyids"] = list(seen)
            ident["keyid_source"] = "signed audit checkpoints (as they name their key)"
    if ident["keyids"] and ident["signature_agent"]:
        return ident
    config = _config_path(out, info, info_source)
    if config is None:
        return ident
    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        ident["problems"].append(f"{config.name}: cannot be read ({exc.__class__.__name__})")
        return ident
    section = data.get("identity") if isinstance(data, dict) else None
    if not isinstance(section, dict):
        return ident
    where = f"job config {config.name}"
    agent = section.get("signature_agent")
    if not ident["signature_agent"] and isinstance(agent, str) and agent:
        ident["signature_agent"] = agent
        ident["signature_agent_source"] = f"{where} (identity.signature_agent)"
    key_file = section.get("key_file")
    if not ident["keyids"] and isinstance(key_file, str) and key_file:
        from crawler.identity.keys import IdentityError, load_key

        key_path = Path(key_file).expanduser()
        if not key_path.is_absolute():
            key_path = config.parent / key_path  # as crawler.config.job resolves it
        try:
            ident["keyids"] = [load_key(key_path).keyid]  # the thumbprint only is kept
            ident["keyid_source"] = f"{where} (identity.key_file, the key as it is now)"
        except IdentityError as exc:
            ident["problems"].append(f"identity.key_file: {exc}")
    return ident


def _config_path(out: Path, info: Mapping[str, Any], info_source: str | None) -> Path | None:
    if info_source and info_source.endswith((".yaml", ".yml")):
        return out / info_source
    named = info.get("config")
    if isinstance(named, str) and named:
        path = Path(named).expanduser()
        for candidate in ((path,) if path.is_absolute() else (path, out / path)):
            if candidate.is_file():
                return candidate
    return None


@dataclass
class RunFigures:
    """Figures of one output directory."""

    output_dir: str
    info: dict[str, Any]
    info_source: str | None
    audit_ok: bool | None = None
    audit_message: str = ""
    records: int = 0
    first_time: str | None = None
    last_time: str | None = None
    jobs: set[str] = field(default_factory=set)
    policies: set[str] = field(default_factory=set)
    tally: AuditTally = field(default_factory=AuditTally)
    documents: int = 0
    bytes: int = 0
    content_types: Counter[str] = field(default_factory=Counter)
    domains: dict[str, list[int]] = field(default_factory=dict)   # domain -> [bytes, docs]
    payments: PaymentTally = field(default_factory=PaymentTally)
    identity: dict[str, Any] = field(default_factory=dict)


def read_output_dir(output_dir: str | Path) -> RunFigures:
    out = Path(output_dir)
    info, source = read_run_info(out)
    run = RunFigures(str(output_dir), info, source)
    audits, corpora = output_files(out)
    if audits:
        results = [verify_file(a) for a in audits]
        run.audit_ok = all(r.ok for r in results)
        run.audit_message = "; ".join(r.describe(str(a)) for a, r in zip(audits, results))
        for audit in audits:
            for rec in _jsonl(audit):
                _count_record(run, rec)
                run.payments.add(rec, log=str(audit))
    else:
        run.audit_message = f"{out / 'audit.jsonl'}: not found"
    run.identity = read_identity(out, info, source, audits)
    for corpus in corpora:
        for doc in _jsonl(corpus):
            _count_document(run, doc)
    return run


def output_files(out: Path) -> tuple[list[Path], list[Path]]:
    """The audit logs and corpora of an output directory: ``audit.jsonl``/``corpus.jsonl``,
    or a cluster job's ``audit-<worker>.jsonl``/``corpus-<worker>.jsonl`` (merged reports,
    which are not chains, are left out)."""
    from crawler.cluster.audit import is_report

    if (out / "audit.jsonl").is_file():
        audits = [out / "audit.jsonl"]
    else:
        audits = [p for p in sorted(out.glob("audit-*.jsonl")) if not is_report(p)]
    corpora = ([out / "corpus.jsonl"] if (out / "corpus.jsonl").is_file()
               else sorted(out.glob("corpus-*.jsonl")))
    return audits, corpora


def _count_record(run: RunFigures, rec: Mapping[str, Any]) -> None:
    run.records += 1
    t = rec.get("time")
    if isinstance(t, str):
        if run.first_time is None or t < run.first_time:
            run.first_time = t
        if run.last_time is None or t > run.last_time:
            run.last_time = t
    if isinstance(rec.get("job"), str):
        run.jobs.add(rec["job"])
    if isinstance(rec.get("policy_sha256"), str):
        run.policies.add(rec["policy_sha256"])
    run.tally.add(rec)  # write-ahead send/result records are left out there


def _count_document(run: RunFigures, doc: Mapping[str, Any]) -> None:
    if doc.get("audit_seq") in (None, "") or not isinstance(doc.get("url"), str):
        return
    size = doc.get("bytes")
    if not isinstance(size, int):
        body = doc.get("html") or doc.get("text") or ""
        size = len(body.encode("utf-8")) if isinstance(body, str) else 0
    run.documents += 1
    run.bytes += size
    run.content_types[str(doc.get("content_type") or "unknown")] += 1
    entry = run.domains.setdefault(registrable_domain(doc["url"]), [0, 0])
    entry[0] += size
    entry[1] += 1


# -- the summary ---------------------------------------------------------------------------

def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "n/a"


def _pct(part: int, whole: int) -> str:
    return f"{part:,} of {whole:,} ({100 * part / whole:.1f} %)" if whole else f"{part:,} of 0"


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


# -- Markdown ------------------------------------------------------------------------------

def render_markdown(s: Mapping[str, Any]) -> str:
    d, r, c, dom = s["urls"], s["records"], s["content"], s["domains"]
    lines = [f"# {s['title']}", "", f"Basis: {s['basis']}.", ""]
    if s.get("generated_at"):
        lines += [f"Generated {s['generated_at']} by {s['generator']}.", ""]

    lines += ["## 1. Crawler", ""]
    for cr in s["crawlers"]:
        if cr.get("user_agent") is None:
            lines.append(f"- Crawler identity not recorded ({cr.get('note')}).")
            lines += _identity_lines(cr)
            continue
        lines += [f"- Name / product token: `{cr['product_token']}`",
                  f"- User-Agent: `{cr['user_agent']}`",
                  f"- Contact: {cr['contact'] or 'not given'}",
                  f"- Purpose: `{cr['purpose']}` ({PURPOSE_TEXT.get(cr['purpose'], '')})"]
        if cr["honor_agents"]:
            lines.append("- Also obeys robots.txt groups for: "
                         + ", ".join(f"`{a}`" for a in cr["honor_agents"]))
        lines += _identity_lines(cr)
        lines.append(f"- Runs: {cr['runs']} of {len(s['runs'])}")
    period = s["collection_period"]
    lines += ["", "## 2. Period of data collection", "",
              (f"From {period['first'] or 'unknown'} to {period['last'] or 'unknown'} (first and "
              "last decision in the audit logs, UTC)."), ""]

    lines += ["## 3. Measures to respect reservations of rights", "",
              ("Reservations are checked before each request, at the response headers and in "
              "the document, and the most restrictive statement wins; every decision is "
              "written to a hash-chained audit log with the evidence files. No paywall, login "
              "or other technical protection is circumvented."), "",
              "| protocol | honoured (runs) | where it is read | statements that refuse |",
              "|---|---|---|---|"]
    for p in s["protocols"]:
        binds = "; ".join(f"{purpose}: " + (", ".join(f"`{t}`" for t in terms) or "none")
                          for purpose, terms in p["binds"].items())
        honoured = f"{p['honoured_in_runs']} of {p['of_runs_recorded']}"
        if p["signal"] == "registry" and p.get("registries"):
            honoured += " (" + ", ".join(p["registries"]) + ")"
        lines.append(f"| {p['name']} | {honoured} | {_md(p['where'])} | {binds} |")
    lines += ["", "When a reservation cannot be determined (fail closed):", "",
              "| file / value | outcome | decision | basis |", "|---|---|---|---|"]
    lines += [f"| {' | '.join(_md(x) for x in row)} |" for row in s["failure_policy"]]

    preflight = ", ".join(f"{k} {v:,}" for k, v in r["preflight"].items()) or "none"
    lines += ["", "## 4. Documents collected and refused", "",
              ("Unit: distinct URLs, each counted once by the final decision about it (a URL "
               "refused while a per-origin file was unreachable and decided again later "
               "counts once); records are counted separately below."), "",
              (f"- URLs decided (allowed, refused or erased): {d['decided']:,}"),
              f"- Allowed: {_pct(d['allowed'], d['decided'])} URLs",
              f"- Refused: {_pct(d['refused'], d['decided'])} URLs",
              (f"- Erased after collection (opt-out seen later): "
               f"{_pct(d['erased_later'], d['decided'])} URLs"),
              (f"- Documents in the corpus now: {c['documents']:,} (allowed responses that "
               "were stored; erased documents removed)"),
              (f"- Postponed, not decided (refused only provisionally): "
               f"{d['postponed_not_decided']:,} URLs"),
              (f"- Audit records (a separate unit): {r['allow'] + r['deny'] + r['erase']:,} "
               f"decision records (allow {r['allow']:,}, deny {r['deny']:,}, erase "
               f"{r['erase']:,}), of which {r['provisional_refusals']:,} provisional refusals; "
               f"preflight records about per-origin files: {preflight}"), ""]
    if s["refused_by_signal"]:
        lines += ["| signal | refused URLs citing it | share of refused URLs | refusal records "
                  "citing it |", "|---|---|---|---|"]
        for x in s["refused_by_signal"]:
            lines.append(f"| {x['signal']} | {x['urls']:,} of {x['of_refused_urls']:,} | "
                         f"{_share(x['urls'], x['of_refused_urls'])} | {x['records']:,} of "
                         f"{x['of_refusal_records']:,} |")
        lines += ["", ("A refused URL counts under each signal of its final refusal; refusal "
                       "records include provisional ones."), ""]

    lines += ["## 5. Content collected", "",
              f"{c['documents']:,} documents, {c['bytes']:,} bytes.", ""]
    if c["types"]:
        lines += ["| content type | documents | share |", "|---|---|---|"]
        lines += [f"| {t['content_type']} | {t['documents']:,} of {t['of_documents']:,} | "
                  f"{_share(t['documents'], t['of_documents'])} |" for t in c["types"]]
        lines.append("")

    lines += ["## 6. Most relevant domain names", "",
              (f"Rule: {dom['rule']}. {dom['listed']:,} of {dom['total_domains']:,} "
              f"registrable domains listed, holding {_pct(dom['listed_bytes'], c['bytes'])} "
              "of the bytes collected."), ""]
    if dom["top"]:
        lines += ["| rank | domain | bytes | share of bytes | documents |", "|---|---|---|---|---|"]
        lines += [f"| {t['rank']} | {t['domain']} | {t['bytes']:,} of {c['bytes']:,} | "
                  f"{_share(t['bytes'], c['bytes'])} | {t['documents']:,} |"
                  for t in dom["top"]]
        lines.append("")

    if s.get("payments"):
        lines += _payment_lines(s["payments"])

    lines += ["## Runs", "", "| output | job | period | documents | bytes | audit log |",
              "|---|---|---|---|---|---|"]
    for r in s["runs"]:
        audit = ("verified" if r["audit_log"]["verified"] else
                 "NOT verified" if r["audit_log"]["verified"] is False else "missing")
        lines.append(f"| {r['output_dir']} | {r['job']} | {r['first_record'] or '?'} to "
                     f"{r['last_record'] or '?'} | {r['documents']:,} | {r['bytes']:,} | "
                     f"{audit} ({r['audit_log']['records']:,} records) |")
    return "\n".join(lines) + "\n"


def _identity_lines(cr: Mapping[str, Any]) -> list[str]:
    """The signing key(s) and signature agent(s), when known (nothing when not)."""
    lines = []
    for k in cr.get("keyids") or ():
        lines.append(f"- Signing key (Web Bot Auth `keyid`, RFC 7638 JWK SHA-256 thumbprint): "
                     f"`{_code(k['keyid'])}` (from {_md(k['source'])})")
    for a in cr.get("signature_agents") or ():
        lines.append(f"- Signature agent (where the key directory is published): "
                     f"{_md(a['url'])} (from {_md(a['source'])})")
    return lines


def _payment_lines(pay: Mapping[str, Any]) -> list[str]:
    """Section 7: what was paid, to whom, and what was refused (pay per crawl)."""
    q = pay["quotes"]
    lines = ["## 7. Payments for access (pay per crawl)", "",
             ("Pages behind HTTP 402 (Cloudflare's pay per crawl) were paid for only within the "
              "job's maximum price per page and budgets, and only when no other reservation "
              "refused them. Amounts are those debited, added up exactly as decimals; amounts "
              "in different currencies are never added together or converted. Unit: money and "
              "pages charged (charge records with an amount)."), ""]
    lines += ["| currency | charged | pages charged | registrable domains paid |",
              "|---|---|---|---|"]
    lines += [f"| {t['currency']} | {t['text']} | {t['pages']:,} | {t['domains']:,} |"
              for t in pay["totals"]]
    if not pay["totals"]:
        lines.append("| — | nothing charged | 0 | 0 |")
    lines.append("")
    if pay["by_domain"]:
        lines += ["| registrable domain | currency | charged | pages charged |",
                  "|---|---|---|---|"]
        lines += [f"| {_md(d['domain'])} | {d['currency']} | {d['text']} | {d['pages']:,} |"
                  for d in pay["by_domain"]]
        assumed = sum(d["debited_as_authorised"] for d in pay["by_domain"])
        lines.append("")
        if assumed:
            lines += [(f"{assumed:,} charge(s) whose amount the site sent unreadably (or in "
                       "another currency) are counted at the amount authorised, as the budget "
                       "debited them."), ""]
    held = pay["authorised_without_charge_record"]
    if held:
        lines += [("Payments authorised with no charge record (the request may have been "
                   "charged; the budget counts them as spent, and they are not in the totals "
                   "above): " + "; ".join(f"{_md(h['domain'])} {h['text']} "
                                           f"({h['authorisations']:,})" for h in held) + "."),
                  ""]
    lines += [(f"Price quotes: {q['records']:,} quote records, {q['urls_with_a_price']:,} URLs "
               f"quoted with a valid price; {q['refusals']:,} refused ({q['refused_urls']:,} "
               "URLs), by reason:"), ""]
    if q["refused_by_reason"]:
        lines += ["| why refused | refusals (records) | URLs |", "|---|---|---|"]
        lines += [f"| {_md(r['reason'])} | {r['records']:,} | {r['urls']:,} |"
                  for r in q["refused_by_reason"]]
        lines.append("")
    if pay["stopped"]:
        lines += ["Stopped for the rest of the job:", "",
                  "| origin | what stopped | why | when |", "|---|---|---|---|"]
        lines += [f"| {_md(x['origin'])} | {_md(x['meaning'])} | {_md(x['reason'])} | "
                  f"{_md(x['time'])} |" for x in pay["stopped"]]
        lines.append("")
    bad = pay["unreadable_charges"]
    if bad:
        lines += [(f"{len(bad):,} charge record(s) with an unreadable amount, not summed in any "
                   "total:"), "",
                  "| log | seq | origin | amount as recorded | why it cannot be read |",
                  "|---|---|---|---|---|"]
        lines += [f"| {_md(b['log'])} | {b['seq']} | {_md(b['origin'])} | "
                  f"`{_code(b['value'])}` | {_md(b['why'])} |" for b in bad]
        lines.append("")
    return lines


def _code(text: Any) -> str:
    """Text for inside `code` spans: no backtick, no pipe, no line break."""
    return (str(text).replace("`", "'").replace("|", "/").replace("\n", " ")
            .replace("<", "&lt;"))


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("<", "&lt;")


# -- HTML ----------------------------------------------------------------------------------

_CSS = ("body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;"
        "color:#222;background:#fff;line-height:1.45}table{border-collapse:collapse;"
        "margin:.5em 0 1em}th,td{border:1px solid #ccc;padding:.25em .6em;font-size:.9em;"
        "text-align:left;vertical-align:top}th{background:#f3f3f3}"
        "td{font-variant-numeric:tabular-nums}code{background:#f4f4f4;padding:0 .2em}")


def _inline(text: str) -> str:
    """Markdown inline text (as render_markdown writes it) to HTML: `code`, escapes."""
    import html
    import re

    text = text.replace("\\|", "|").replace("&lt;", "<")
    parts = re.split(r"(`[^`]*`)", text)
    return "".join(f"<code>{html.escape(p[1:-1])}</code>" if p.startswith("`") and len(p) > 1
                   else html.escape(p) for p in parts)


def markdown_page(markdown: str, title: str) -> str:
    """The Markdown that :func:`render_markdown` writes, as one self-contained HTML page
    (headings, paragraphs, lists and tables; inline styles; no script, nothing fetched)."""
    import html
    import re

    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"]
    block: list[str] = []
    kind = ""

    def flush() -> None:
        nonlocal block, kind
        if kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in block) + "</ul>")
        elif kind == "table":
            rows = [[c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
                    for line in block if not re.fullmatch(r"\|(-+\|)+", line.strip())]
            head, body = rows[0], rows[1:]
            out.append("<table><thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head)
                       + "</tr></thead><tbody>" + "".join(
                           "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>"
                           for row in body) + "</tbody></table>")
        elif kind == "p":
            out.append(f"<p>{_inline(' '.join(block))}</p>")
        block, kind = [], ""

    for line in markdown.splitlines():
        heading = re.match(r"(#{1,6}) (.*)", line)
        if heading:
            flush()
            level = len(heading.group(1))
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
            continue
        if not line.strip():
            flush()
            continue
        now = "ul" if line.startswith("- ") else "table" if line.startswith("|") else "p"
        if now != kind:
            flush()
            kind = now
        block.append(line[2:] if now == "ul" else line)
    flush()
    out.append("</body></html>")
    return "\n".join(out) + "\n"
