"""Reading a crawl's output directories for the transparency summary: the run info
(``run.json``, else a job config saved beside the output), the signing identity, the audit
logs (verified, then counted with :class:`crawler.publish.tallies.AuditTally` and
``PaymentTally``) and the corpora (documents, bytes, content types, registrable domains), each
streamed line by line (a corpus may be large).  :mod:`crawler.publish.transparency` summarises
the :class:`RunFigures` read here.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from crawler.audit.checkpoint import CHECKPOINT_TYPE, checkpoints_path, read_checkpoints
from crawler.audit.log import verify_file
from crawler.audit.merge import is_report
from crawler.identity.keys import IdentityError, load_key
from crawler.policy.reservation import SWITCHABLE_SIGNALS
from crawler.publish.domains import registrable_domain
from crawler.publish.tallies import AuditTally, PaymentTally

__all__ = ["RUN_INFO", "RunFigures", "output_files", "read_identity", "read_output_dir",
           "read_run_info"]

logger = logging.getLogger(__name__)

RUN_INFO = "run.json"


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
