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
import re
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
    "iptc",
    "c2pa",
    "scope",
)


try:  # a faster serialiser, used only where its output is the same bytes (see below)
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is a dependency; json alone is correct too
    _orjson = None  # type: ignore[assignment]
else:
    _ORJSON_OPTIONS = (_orjson.OPT_SORT_KEYS | _orjson.OPT_PASSTHROUGH_SUBCLASS
                       | _orjson.OPT_PASSTHROUGH_DATACLASS | _orjson.OPT_PASSTHROUGH_DATETIME)
#: orjson writes 1e-7 where json writes 1e-07
_SHORT_EXPONENT = re.compile(rb"[0-9]e-[0-9](?![0-9])")


def _refuse(obj: Any) -> Any:
    raise TypeError(f"{type(obj).__name__} is left to json")


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def canonical_bytes(obj: Any) -> bytes:
    """``canonical_json(obj)`` in UTF-8: exactly the bytes of the documented form
    ``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``.

    orjson writes them (about 8x faster) when its output is that form: keys sorted by code
    point, strings escaped alike (every code point of the BMP and beyond is tested), integers
    alike. Where the two differ, json's output is used: integers beyond 64 bits, dictionary
    keys that are not strings and subclasses of built-in types (orjson refuses them), and
    floats: orjson writes NaN and infinities as ``null``, ``1e-7`` for ``1e-07`` and
    ``0.00001`` for ``1e-05``, so any ``null``, ``0.0000`` or single-digit negative exponent in
    its output (in a string too: then json's output is merely not needed) sends the object to
    json. ``tests/audit/test_canonical.py`` checks byte equality on 10,000 random records.
    (One difference is left: an ``enum.Enum`` or ``uuid.UUID`` value, which json refuses with a
    TypeError, orjson writes by value; no record holds one, and such a line still verifies.)
    """
    if _orjson is not None:
        try:
            out = _orjson.dumps(obj, default=_refuse, option=_ORJSON_OPTIONS)
        except TypeError:  # (orjson.JSONEncodeError is a TypeError)
            return _json_bytes(obj)
        if b"null" in out or b"0.0000" in out or (
                b"e-" in out and _SHORT_EXPONENT.search(out) is not None):
            return _json_bytes(obj)
        return out
    return _json_bytes(obj)


def canonical_json(obj: Mapping[str, Any]) -> str:
    """The one serialisation used for hashing (and for writing, so a line is its own proof):
    ``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``."""
    if _orjson is not None:
        try:
            return canonical_bytes(obj).decode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: json writes it, UTF-8 cannot hold it
            pass
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 of the record without its ``hash`` key."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical_bytes(body)).hexdigest()


def seal(body: Mapping[str, Any], *, seq: int, prev_hash: str) -> dict[str, Any]:
    """Return ``body`` completed with ``seq``, ``prev_hash`` and ``hash``.

    Raises ValueError for a record the interface does not allow (programmer error).
    """
    rec = _unsealed(body, seq=seq, prev_hash=prev_hash)
    rec["hash"] = hashlib.sha256(canonical_bytes(rec)).hexdigest()  # record_hash(rec)
    return rec


def _unsealed(body: Mapping[str, Any], *, seq: int, prev_hash: str) -> dict[str, Any]:
    """``body`` checked and completed with ``seq`` and ``prev_hash`` (no ``hash`` yet)."""
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
    return rec


def seal_line(body: Mapping[str, Any], *, seq: int,
              prev_hash: str) -> tuple[dict[str, Any], bytes]:
    """:func:`seal` and the record's line as written: ``canonical_bytes(record) + b"\\n"``.

    The record without ``hash`` is serialised once, hashed, and ``"hash":"<hex>"`` put in at
    its place among the sorted top-level keys: before the first key that sorts after
    ``hash`` (found as ``,"key":``, which must occur once, so that it cannot be a nested
    object's), or last. Where that place cannot be found so, the record is serialised again.
    """
    rec = _unsealed(body, seq=seq, prev_hash=prev_hash)
    blob = canonical_bytes(rec)
    digest = hashlib.sha256(blob).hexdigest()
    rec["hash"] = digest
    line = _with_hash(rec, blob, digest)
    return rec, (line if line is not None else canonical_bytes(rec)) + b"\n"


_KEY_JSON: dict[str, bytes] = {}


def _with_hash(rec: Mapping[str, Any], blob: bytes, digest: str) -> bytes | None:
    """``blob`` (``rec`` without ``hash``, canonical) with the hash item in its place."""
    after = None  # the first key after "hash"
    before = False  # a key before "hash"
    for key in rec:
        if type(key) is not str:
            return None
        if key > "hash":
            if after is None or key < after:
                after = key
        elif key < "hash":
            before = True
    item = b'"hash":"' + digest.encode("ascii") + b'"'
    if after is None:  # the last key
        return blob[:-1] + b"," + item + b"}" if before else b"{" + item + b"}"
    name = _KEY_JSON.get(after)
    if name is None:
        name = canonical_bytes(after)
        if len(_KEY_JSON) < 1000:
            _KEY_JSON[after] = name
    if not before:  # the first key: right after the opening brace
        if not blob.startswith(b"{" + name + b":"):
            return None
        return b"{" + item + b"," + blob[1:]
    # in a JSON text a quote inside a string is escaped, so ,"key": is structure: the
    # top-level key or a nested object's; when it occurs once, it is the top-level one
    mark = b"," + name + b":"
    at = blob.find(mark)
    if at < 0 or blob.find(mark, at + 1) >= 0:
        return None
    return blob[:at] + b"," + item + blob[at:]


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
