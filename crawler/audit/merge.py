"""One time-ordered report from the audit logs of a cluster's workers.

Each worker writes its own hash-chained log (``audit-<worker>.jsonl``); the chains stay
separate, because a chain is only as good as its single writer. :func:`merge_logs` verifies
every log first and refuses to merge if any chain is broken, then writes a **report, not a new
chain**: a JSON header object on the first line (``"chain": false``, the sources and their
last ``seq``/``hash``), then every record of every log sorted by ``time`` (ties: worker, then
``seq``), each with ``"worker"`` set to its log's file stem and its own ``seq``,
``prev_hash`` and ``hash`` untouched. The ``hash`` of a record covers the record *without*
the added ``worker`` key, so each worker's records, taken from the report in order and with
``worker`` removed, still verify as that worker's chain (:func:`verify_report` does exactly
that). To prove what a worker did, verify its own log; the report is for reading.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crawler.audit.log import verify_file
from crawler.audit.record import ChainState, VerifyResult, canonical_json, verify_lines

REPORT_KIND = "polite-crawl merged audit report"
HEADER_NOTE = (
    "A report, not a hash chain: records from several workers' logs, ordered by time. Each "
    "record keeps its worker's seq, prev_hash and hash; the hash covers the record without "
    "the 'worker' key. Verify the worker logs themselves to prove them.")


class MergeError(Exception):
    """A log that cannot be merged (missing, broken chain, duplicate worker name)."""


@dataclass(frozen=True)
class MergeResult:
    out: Path
    records: int
    #: worker (file stem) -> records taken from its log
    workers: dict[str, int] = field(default_factory=dict)
    #: worker -> the last seq/hash of its verified chain
    heads: dict[str, ChainState] = field(default_factory=dict)

    def describe(self) -> str:
        parts = ", ".join(f"{w}: {n}" for w, n in self.workers.items())
        return (f"{self.out}: {self.records} records from {len(self.workers)} logs ({parts}); "
                "a time-ordered report, not a chain")


def merge_logs(paths: Iterable[str | os.PathLike[str]],
               out: str | os.PathLike[str]) -> MergeResult:
    """Verify each worker's audit log, then write their records as one time-ordered JSONL
    report to ``out`` (see the module docstring). Raises :class:`MergeError` if a log is
    missing or its chain is broken (nothing is written then)."""
    logs = [Path(p) for p in paths]
    target = Path(out)
    if not logs:
        raise MergeError("no audit logs to merge")
    stems: dict[str, Path] = {}
    for log in logs:
        if log.stem in stems:
            raise MergeError(f"{log} and {stems[log.stem]} have the same name {log.stem!r}: "
                             "each worker's log needs its own (audit-<worker>.jsonl)")
        stems[log.stem] = log
        if target.resolve() == log.resolve():
            raise MergeError(f"{target}: the report would overwrite one of its logs")
    heads: dict[str, ChainState] = {}
    for log in logs:
        try:
            result = verify_file(log)
        except FileNotFoundError:
            raise MergeError(f"{log}: no such file") from None
        if not result.ok:
            raise MergeError(f"refusing to merge: {result.describe(str(log))}")
        heads[log.stem] = result.state

    rows: list[tuple[str, str, int, dict[str, Any]]] = []
    counts: dict[str, int] = {}
    for log in logs:
        worker = log.stem
        n = 0
        with open(log, encoding="utf-8") as fh:
            for line in fh:
                rec = json.loads(line)
                rows.append((str(rec.get("time", "")), worker, int(rec["seq"]), rec))
                n += 1
        counts[worker] = n
    rows.sort(key=lambda r: (r[0], r[1], r[2]))

    header = {
        "report": REPORT_KIND,
        "chain": False,
        "note": HEADER_NOTE,
        "records": len(rows),
        "sources": [{"worker": log.stem, "path": str(log), "records": counts[log.stem],
                     "last_seq": heads[log.stem].seq, "last_hash": heads[log.stem].hash}
                    for log in logs],
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(header, ensure_ascii=False, sort_keys=True) + "\n")
        for _time, worker, _seq, rec in rows:
            fh.write(canonical_json({**rec, "worker": worker}) + "\n")
    tmp.replace(target)
    return MergeResult(target, len(rows), counts, heads)


def is_report(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` starts with a merged report's header (False for an audit log)."""
    with open(path, "rb") as fh:
        first = fh.readline(64 * 1024)
    try:
        header = json.loads(first)
    except ValueError:
        return False
    return isinstance(header, dict) and header.get("report") == REPORT_KIND


def read_report(path: str | os.PathLike[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The header and the records of a merged report."""
    with open(path, encoding="utf-8") as fh:
        first = fh.readline()
        try:
            header = json.loads(first)
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("report") != REPORT_KIND:
            raise MergeError(f"{path}: not a merged audit report (no header line)")
        return header, [json.loads(line) for line in fh]


def verify_report(path: str | os.PathLike[str]) -> dict[str, VerifyResult]:
    """Each worker's chain, re-checked from the report alone: its records in report order,
    without the ``worker`` key, must verify from seq 1 and end at the head the header names."""
    header, records = read_report(path)
    per_worker: dict[str, list[str]] = {s["worker"]: [] for s in header.get("sources", [])}
    for rec in records:
        worker = rec.pop("worker", None)
        per_worker.setdefault(str(worker), []).append(canonical_json(rec) + "\n")
    heads = {s["worker"]: ChainState(s["last_seq"], s["last_hash"])
             for s in header.get("sources", [])}
    return {w: verify_lines(lines, head=heads.get(w)) for w, lines in per_worker.items()}
