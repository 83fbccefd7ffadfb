"""Audit records and their hash chain (sans-IO).

INTERFACE.md: ``hash`` = SHA-256 (hex) of the record without its ``hash`` key, serialised as
``json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` in UTF-8;
``prev_hash`` is the previous record's ``hash``, 64 zeros for the first.

Anyone can check a log without this package::

    import hashlib, json
    prev, seq = "0" * 64, 0
    for line in open("audit.jsonl", encoding="utf-8"):
        rec = json.loads(line); h = rec.pop("hash"); seq += 1
        body = json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert rec["seq"] == seq and rec["prev_hash"] == prev
        assert hashlib.sha256(body.encode("utf-8")).hexdigest() == h
        prev = h
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS_HASH = "0" * 64
#: allow / deny / erase: decisions about a URL; send: the write-ahead record of a request about
#: to leave; result: what became of a sent request that no allow/deny record concludes.
DECISIONS = ("allow", "deny", "erase", "send", "result")
SIGNALS = (
    "robots",
    "tdmrep",
    "noai",
    "ai-txt",
    "content-usage",
    "content-signal",
    "rsl",
    "registry",
    "payment-required",
    "network",
)


def canonical_json(obj: Mapping[str, Any]) -> str:
    """The one serialisation used for hashing (and for writing, so a line is its own proof)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 of the record without its ``hash`` key."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def seal(body: Mapping[str, Any], *, seq: int, prev_hash: str) -> dict[str, Any]:
    """Return ``body`` completed with ``seq``, ``prev_hash`` and ``hash``.

    Raises ValueError for a record the interface does not allow (programmer error).
    """
    decision = body.get("decision")
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {DECISIONS}, not {decision!r}")
    reasons = body.get("reasons")
    if not isinstance(reasons, list):
        raise TypeError("reasons must be a list")
    if decision in ("deny", "erase") and not reasons:
        raise ValueError(f"a {decision} record needs at least one reason")
    for reason in reasons:
        if reason.get("signal") not in SIGNALS:
            raise ValueError(f"unknown signal {reason.get('signal')!r}")
    rec = dict(body)
    rec["seq"] = seq
    rec["prev_hash"] = prev_hash
    rec.pop("hash", None)
    rec["hash"] = record_hash(rec)
    return rec


@dataclass(frozen=True, slots=True)
class ChainState:
    """Where a chain stands: the last record's ``seq`` and ``hash`` (0 and zeros when empty)."""

    seq: int = 0
    hash: str = GENESIS_HASH


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    records: int          # records checked and found good
    state: ChainState     # state after the last good record
    bad_line: int | None  # 1-based line number of the first bad record
    bad_seq: int | None   # its seq, when it could be read
    message: str
    #: well-formed records after the committed head (the head's writer never committed them)
    uncommitted: int = 0

    def describe(self, path: str = "audit log") -> str:
        if self.ok:
            tail = (f" ({self.uncommitted} after the committed head, not committed)"
                    if self.uncommitted else "")
            return f"{path}: OK, {self.records} records{tail}, last hash {self.state.hash}"
        if self.bad_line is None:
            return f"{path}: NOT VERIFIED: {self.message}"
        where = f"line {self.bad_line}" + (f" (seq {self.bad_seq})" if self.bad_seq else "")
        return f"{path}: BROKEN at {where}: {self.message}"


def verify_lines(
    lines: Iterable[bytes | str],
    *,
    start: ChainState = ChainState(),
    head: ChainState | None = None,
) -> VerifyResult:
    """Check a log's lines: parse, hash, chain link and seq continuity, in order.

    ``head``, when known (the writer's sidecar ``.head`` file), is the last record the writer
    committed: a log that stops short of it has lost records at its end.
    """
    state = start
    n = 0
    lineno = 0
    for lineno, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError:
            return _bad(n, state, lineno, None, "record is not valid UTF-8")
        if not text.endswith("\n"):
            return _bad(n, state, lineno, None, "record is truncated (no end of line)")
        try:
            rec = json.loads(text)
        except ValueError as exc:
            return _bad(n, state, lineno, None, f"not a JSON record ({exc.msg})")
        if not isinstance(rec, dict):
            return _bad(n, state, lineno, None, "not a JSON object")
        seq = rec.get("seq") if isinstance(rec.get("seq"), int) else None
        if seq != state.seq + 1:
            msg = f"seq {rec.get('seq')!r} where {state.seq + 1} was expected"
            return _bad(n, state, lineno, seq, msg + " (record dropped, inserted or reordered)")
        if rec.get("prev_hash") != state.hash:
            return _bad(n, state, lineno, seq, "prev_hash does not match the previous record")
        if rec.get("hash") != record_hash(rec):
            return _bad(n, state, lineno, seq, "hash does not match the record (edited)")
        if rec.get("decision") not in DECISIONS:
            return _bad(n, state, lineno, seq, f"unknown decision {rec.get('decision')!r}")
        state = ChainState(seq, rec["hash"])
        n += 1
        if head is not None and seq == head.seq and head.hash != state.hash:
            return _bad(n - 1, state, lineno, seq, "record differs from the committed head")
    if head is not None and head.seq > state.seq:
        return _bad(
            n, state, lineno + 1, state.seq + 1,
            f"log ends at seq {state.seq} but the writer committed up to seq {head.seq} "
            "(records removed from the end)",
        )
    extra = state.seq - head.seq if head is not None and state.seq > head.seq else 0
    return VerifyResult(True, n, state, None, None, "ok", uncommitted=extra)


def _bad(n: int, state: ChainState, line: int, seq: int | None, msg: str) -> VerifyResult:
    return VerifyResult(False, n, state, line, seq, msg)
