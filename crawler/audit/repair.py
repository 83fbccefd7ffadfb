"""``polite-crawl audit repair AUDIT.jsonl``: cut a torn last line, never rewrite history.

A run killed mid-write (or a disk that filled up) can leave the log's last line torn: no end of
line, not JSON, or a line that does not verify as the record after the one before it. Only
that one line may be cut, and only when everything before it verifies (against the ``.head``
file too: a line the writer committed is never cut). Anything else, e.g. an edited record in
the middle, is left exactly as it is: the log is broken and the tool says where.

Each cut is recorded in the sidecar ``<log>.repairs.jsonl`` (one JSON line per repair: time,
offset, bytes and SHA-256 of what was cut, the seq and hash the log now ends with), and the
log's head file notes it: ``repairs`` (how many) and ``repairs_sha256`` (of the sidecar), kept
by the writer across later records, checked by ``audit verify``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from crawler.audit.log import read_head, read_head_file, utc_now, write_head_file
from crawler.audit.record import VerifyResult, verify_lines


def repairs_path(log_path: str | os.PathLike[str]) -> Path:
    return Path(f"{os.fspath(log_path)}.repairs.jsonl")


def note_in_head(path: Path) -> None:
    """Record in the head file how many repairs the sidecar lists and its SHA-256."""
    blob = repairs_path(path).read_bytes()
    head = read_head_file(path) or {}
    head["repairs"] = blob.count(b"\n")
    head["repairs_sha256"] = hashlib.sha256(blob).hexdigest()
    if "seq" not in head:  # no head yet: the log's own end
        state = verify_lines(path.read_bytes().splitlines(keepends=True)).state
        head.update(seq=state.seq, hash=state.hash)
    write_head_file(path, head)


def repairs_problem(path: str | os.PathLike[str]) -> str | None:
    """Why the repair note in the head file and the sidecar disagree, or None (also None when
    the log was never repaired)."""
    head = read_head_file(path) or {}
    side = repairs_path(path)
    if "repairs" not in head:
        return f"{side.name} exists but the head file notes no repair" if side.exists() else None
    try:
        blob = side.read_bytes()
    except OSError:
        return f"the head file notes {head['repairs']} repair(s) but {side.name} is missing"
    if hashlib.sha256(blob).hexdigest() != head.get("repairs_sha256"):
        return f"{side.name} does not match the repair note in the head file (altered)"
    return None


@dataclass(frozen=True)
class TornTail:
    offset: int   # where the torn last line starts (the log is cut to this length)
    data: bytes   # the torn line
    why: str      # what is wrong with it


@dataclass(frozen=True)
class Diagnosis:
    """What :func:`diagnose` found: ``ok`` (nothing to do), a ``tail`` that may be cut, or
    neither (broken beyond a torn tail: ``result`` names the first bad record)."""

    result: VerifyResult
    tail: TornTail | None

    @property
    def ok(self) -> bool:
        return self.result.ok

    @property
    def repairable(self) -> bool:
        return not self.result.ok and self.tail is not None


def diagnose(path: str | os.PathLike[str]) -> Diagnosis:
    """Read-only: does the log verify, and if not, is its only fault a torn last line?"""
    data = Path(path).read_bytes()
    head = read_head(path)
    lines = data.splitlines(keepends=True)
    result = verify_lines(lines, head=head)
    if result.ok or not lines:
        return Diagnosis(result, None)
    # the first bad record must be the last line, and everything before it must verify
    if result.bad_line != len(lines):
        return Diagnosis(result, None)
    offset = len(data) - len(lines[-1])
    before = verify_lines(lines[:-1], head=head)
    if not before.ok:
        return Diagnosis(result, None)
    return Diagnosis(result, TornTail(offset, lines[-1], result.message))


@dataclass(frozen=True)
class RepairOutcome:
    status: str            # "ok" (nothing to do), "repaired", "broken"
    message: str           # one line for the user
    result: VerifyResult   # verification after the repair (or of the untouched log)
    entry: dict | None = None


def repair(path: str | os.PathLike[str], *, clock=utc_now) -> RepairOutcome:
    path = Path(path)
    found = diagnose(path)
    if found.ok:
        return RepairOutcome("ok", f"{found.result.describe(str(path))}; nothing to repair",
                             found.result)
    if found.tail is None:
        return RepairOutcome(
            "broken",
            f"{found.result.describe(str(path))}; this is not a torn last line: audit repair "
            "only cuts a torn last line and will not rewrite verified history (the log is "
            "unchanged; keep it as evidence and start a new output_dir for the job)",
            found.result)
    tail = found.tail
    with open(path, "r+b") as fh:
        fh.truncate(tail.offset)
        fh.flush()
        os.fsync(fh.fileno())
    after = verify_lines(path.read_bytes().splitlines(keepends=True), head=read_head(path))
    entry = {
        "time": clock(),
        "log": path.name,
        "cut_offset": tail.offset,
        "cut_bytes": len(tail.data),
        "sha256_of_cut": hashlib.sha256(tail.data).hexdigest(),
        "why": tail.why,
        "now_ends_at_seq": after.state.seq,
        "now_ends_with_hash": after.state.hash,
    }
    with open(repairs_path(path), "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    note_in_head(path)
    if not after.ok:  # pragma: no cover - diagnose() verified the same bytes
        return RepairOutcome("broken", after.describe(str(path)), after, entry)
    return RepairOutcome(
        "repaired",
        f"{path}: cut a torn last line ({len(tail.data)} bytes at offset {tail.offset}: "
        f"{tail.why}); recorded in {repairs_path(path).name}; {after.describe(str(path))}",
        after, entry)
