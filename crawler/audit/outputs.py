"""``polite-crawl audit verify OUTPUT_DIR``: the audit logs and everything that cites them.

A run's output directory holds one or more audit logs (``audit.jsonl``, or ``audit-NAME.jsonl``
per cluster worker), their corpora (``corpus.jsonl`` / ``corpus-NAME.jsonl``), optional WARCs
(``corpus.warc.gz`` / ``corpus-NAME.warc.gz``) and ``evidence/``, the per-origin files the
records cite, each named by its SHA-256. Beyond each log's own chain this checks that:

* every corpus line names an ``allow`` record of its log (``audit_seq`` and ``audit_hash``
  match, same URL): no document is kept without the decision it was allowed on;
* every WARC metadata record that links a document to the audit log does the same;
* every SHA-256 a record cites (``source_sha256``: robots.txt, tdmrep.json, ai.txt, licences,
  whatever their status) is archived in ``evidence/`` and, when there is a WARC, in the WARC;
* every file in ``evidence/`` hashes to its name.

Reads each file once, streaming; memory grows with the number of allow records (seq, hash and
URL of each) and distinct cited files, not with the documents.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crawler.audit.log import iter_records

_SHA = re.compile(r"^[0-9a-f]{64}$")
#: problems listed per check before "... and N more"
MAX_LISTED = 5


@dataclass
class Check:
    label: str
    ok: bool = True
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    more: int = 0

    def bad(self, text: str) -> None:
        self.ok = False
        if len(self.problems) < MAX_LISTED:
            self.problems.append(text)
        else:
            self.more += 1

    def describe(self) -> list[str]:
        if self.ok:
            return [f"{self.label}: OK" + (f" ({'; '.join(self.notes)})" if self.notes else "")]
        lines = [f"{self.label}: BROKEN: {p}" for p in self.problems]
        if self.more:
            lines.append(f"{self.label}: ... and {self.more} more")
        return lines


def find_logs(out: Path) -> list[Path]:
    """The audit logs of an output directory (each has its ``.head``, or is named audit*)."""
    logs = []
    for p in sorted(out.glob("*.jsonl")):
        if p.name.endswith((".checkpoints.jsonl", ".repairs.jsonl")):
            continue
        if p.name.startswith("audit") or Path(f"{p}.head").exists():
            logs.append(p)
    return logs


def companions(log: Path) -> tuple[Path, Path]:
    """(corpus, WARC) written beside ``log`` by the same run."""
    m = re.match(r"^audit(-.+)?\.jsonl$", log.name)
    suffix = (m.group(1) or "") if m else ""
    return log.with_name(f"corpus{suffix}.jsonl"), log.with_name(f"corpus{suffix}.warc.gz")


def cited_sha256s(obj: Any, out: set[str]) -> None:
    """Every ``source_sha256`` in a record, at any depth (reasons, checks, results)."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key == "source_sha256" and isinstance(value, str):
                out.add(value)
            elif isinstance(value, (dict, list)):
                cited_sha256s(value, out)
    elif isinstance(obj, list):
        for value in obj:
            cited_sha256s(value, out)


def verify_output_dir(out: Path) -> list[Check]:
    """Cross-check an output directory (the logs' own chains are checked by the caller)."""
    checks: list[Check] = []
    evidence = out / "evidence"
    archived = _check_evidence_dir(evidence, checks)
    for log in find_logs(out):
        allows: dict[int, tuple[str, str]] = {}
        cited: set[str] = set()
        erasure: set[str] = set()  # cited only by erase records: the WARC dropped their docs
        for rec in iter_records(log):
            if rec.get("decision") == "allow" and isinstance(rec.get("seq"), int):
                allows[rec["seq"]] = (str(rec.get("hash")), str(rec.get("url")))
            cited_sha256s(rec, erasure if rec.get("decision") == "erase" else cited)
        erasure -= cited
        corpus, warc = companions(log)
        if corpus.exists():
            checks.append(_check_corpus(corpus, allows, log.name))
        in_warc: set[str] | None = None
        if warc.exists():
            check, in_warc = _check_warc(warc, allows, log.name, archived)
            checks.append(check)
        c = Check(f"{log.name}: cited evidence")
        missing = sorted(s for s in cited | erasure if s not in archived)
        for sha in missing:
            c.bad(f"{sha} is cited but not in evidence/")
        if in_warc is not None:
            for sha in sorted(s for s in cited if s not in in_warc):
                c.bad(f"{sha} is cited but not archived in {warc.name}")
        if c.ok:
            c.notes.append(f"{len(cited | erasure)} distinct files cited, all in evidence/"
                           + (f" and {warc.name}" if in_warc is not None else "")
                           + (f" ({len(erasure)} cited by erasures only: evidence/ alone)"
                              if erasure and in_warc is not None else ""))
        checks.append(c)
    return checks


def _check_evidence_dir(evidence: Path, checks: list[Check]) -> set[str]:
    c = Check("evidence/")
    archived: set[str] = set()
    if not evidence.is_dir():
        c.notes.append("no evidence directory")
        checks.append(c)
        return archived
    for p in sorted(evidence.iterdir()):
        if not p.is_file():
            continue
        if not _SHA.match(p.name):
            if p.name.endswith(".tmp"):
                c.notes.append(f"left-over temporary file {p.name}")
            continue
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() != p.name:
            c.bad(f"{p.name}: its content hashes to {h.hexdigest()} (altered)")
            continue
        archived.add(p.name)
    if c.ok:
        c.notes.insert(0, f"{len(archived)} files, each hashes to its name")
    checks.append(c)
    return archived


def _check_corpus(corpus: Path, allows: dict[int, tuple[str, str]], log: str) -> Check:
    c = Check(f"{corpus.name} against {log}")
    n = 0
    with open(corpus, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.endswith(b"\n"):
                c.notes.append(f"line {lineno} is torn (a killed write; not a document)")
                break
            try:
                doc = json.loads(raw)
            except ValueError:
                c.bad(f"line {lineno}: not JSON")
                continue
            n += 1
            problem = _provenance_problem(doc.get("audit_seq"), doc.get("audit_hash"),
                                          doc.get("url"), allows, log)
            if problem:
                c.bad(f"line {lineno} ({doc.get('url')}): {problem}")
    if c.ok:
        c.notes.insert(0, f"{n} documents, each on an allow record")
    return c


def _provenance_problem(seq: Any, hash: Any, url: Any, allows: dict[int, tuple[str, str]],
                        log: str) -> str | None:
    if not isinstance(seq, int):
        return "no audit_seq"
    found = allows.get(seq)
    if found is None:
        return f"audit_seq {seq} is not an allow record of {log}"
    if found[0] != hash:
        return f"audit_hash differs from record {seq} of {log}"
    if url is not None and found[1] != url:
        return f"record {seq} allowed {found[1]}, not this URL"
    return None


def _check_warc(warc: Path, allows: dict[int, tuple[str, str]], log: str,
                archived: set[str]) -> tuple[Check, set[str]]:
    from crawler.corpus.warc_reader import iter_warc_documents, sha256_hex_from_digest

    c = Check(f"{warc.name} against {log}")
    payloads: set[str] = set()
    linked = 0
    try:
        for entry in iter_warc_documents(warc):
            if entry.record_type in ("response", "resource", "revisit"):
                if isinstance(entry.payload, str):
                    payloads.add(entry.payload)
                hexd = sha256_hex_from_digest(entry.warc_headers.get("WARC-Payload-Digest"))
                if hexd:
                    payloads.add(hexd)
            if entry.record_type != "metadata" or not isinstance(entry.payload, dict):
                continue
            if entry.payload.get("role") == "document":
                linked += 1
                problem = _provenance_problem(entry.payload.get("audit_seq"),
                                              entry.payload.get("audit_hash"),
                                              entry.url or None, allows, log)
                if problem:
                    c.bad(f"metadata for {entry.url}: {problem}")
            for ref in entry.payload.get("evidence") or []:
                sha = ref.get("source_sha256") if isinstance(ref, dict) else None
                if isinstance(sha, str) and sha not in archived:
                    c.bad(f"metadata for {entry.url} cites {sha}, not in evidence/")
    except Exception as exc:  # noqa: BLE001 - a WARC we cannot read is a finding, not a crash
        c.bad(f"cannot read it to the end ({type(exc).__name__}: {exc})")
    if c.ok:
        c.notes.insert(0, f"{linked} documents linked to allow records")
    return c, payloads
