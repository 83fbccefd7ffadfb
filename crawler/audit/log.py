"""The one audit writer: appends sealed records to ``audit.jsonl``, one line each.

A record is written with a single ``write`` and flushed before the caller acts on the
decision, so a killed crawl loses no record it acted on (``fsync=True`` also survives power
loss). Beside the log, ``<log>.head`` holds the last committed ``seq`` and ``hash``; ``audit
verify`` uses it to notice records cut from the end of the log.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from crawler.audit.record import ChainState, canonical_bytes, seal, seal_line, verify_lines

logger = logging.getLogger(__name__)
#: the head file is one fixed-size block rewritten in place (large enough for seq, hash and the
#: repair note of ``polite-crawl audit repair``)
_HEAD_SIZE = 256
#: head keys kept across writes: what ``audit repair`` did to this log (crawler.audit.repair)
_HEAD_NOTES = ("repairs", "repairs_sha256")


_SECOND: list[Any] = [None, ""]  # the last whole second seen, and its text


def utc_now() -> str:
    """``datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")``: the same clock
    (CLOCK_REALTIME, microseconds rounded down as ``datetime.now`` does), the date and time of
    each second formatted once."""
    ns = time.time_ns()
    secs, rest = divmod(ns, 1_000_000_000)
    last = _SECOND
    if secs != last[0]:
        text = datetime.fromtimestamp(secs, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
        last[0], last[1] = secs, text
    return f"{last[1]}{rest // 1000:06d}Z"


def head_path(log_path: str | os.PathLike[str]) -> Path:
    return Path(f"{os.fspath(log_path)}.head")


def read_head(log_path: str | os.PathLike[str]) -> ChainState | None:
    """The committed head of a log, or None when there is no (readable) head file."""
    data = read_head_file(log_path)
    try:
        return ChainState(int(data["seq"]), str(data["hash"])) if data else None
    except (ValueError, KeyError, TypeError):
        return None


def read_head_file(log_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The head file's JSON object (``seq``, ``hash`` and any repair note), or None."""
    try:
        data = json.loads(head_path(log_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_head_file(log_path: str | os.PathLike[str], data: Mapping[str, Any]) -> None:
    """Rewrite a head file in place (used by ``audit repair``; the writer keeps its own fd)."""
    blob = json.dumps(dict(data), sort_keys=True).encode()
    if len(blob) > _HEAD_SIZE:
        raise ValueError("head record too large")
    fd = os.open(head_path(log_path), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, blob.ljust(_HEAD_SIZE), 0)
        os.fsync(fd)
    finally:
        os.close(fd)


class AuditLogError(Exception):
    """The existing log cannot be continued (its chain is broken)."""


class AuditWriteError(OSError):
    """A record could not be committed (disk full, I/O error, permission): nothing may be acted
    on from now on. The log was cut back to its last whole record, so it still verifies and a
    later run continues it."""


class AuditWriter:
    """Append-only, hash-chained JSONL writer.

    Opening an existing log continues its chain (a resumed job); a log whose chain does not
    verify is refused rather than extended. A final line cut short by a killed process (never
    acted on: the writer flushes whole lines only) is dropped with a warning.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        job: str,
        fsync: bool = False,
        clock: Callable[[], str] = utc_now,
        checkpoints: Any = None,
    ) -> None:
        self.path = Path(path)
        #: a :class:`crawler.audit.checkpoint.CheckpointWriter`, told of every committed record
        self.checkpoints = checkpoints
        self.job = job
        self.fsync = fsync
        self._clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.state = self._recover()
        head = read_head_file(self.path) or {}
        self._head_notes = {k: head[k] for k in _HEAD_NOTES if k in head}
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = os.fstat(self._fd).st_size
        self._head_fd = os.open(head_path(self.path), os.O_RDWR | os.O_CREAT, 0o644)
        #: the first write failure; once set, every later write fails at once
        self.failed: AuditWriteError | None = None
        #: serialised record templates of write_many (see _Template), by the caller's token:
        #: (the token's owner, kept so that an id in the token stays its own; the template)
        self._templates: dict[Any, tuple[Any, _Template | None]] = {}
        #: the line (bytes, with its end of line) of the last record written, and those of the
        #: last :meth:`write_many`
        self.last_line = b""
        self.last_lines: list[bytes] = []
        self._closed = False
        self._write_head()

    def _recover(self) -> ChainState:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return ChainState()
        data = self.path.read_bytes()
        if not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            logger.warning(
                "audit log %s ends with a partial record (%d bytes) from an interrupted run; "
                "dropping it", self.path, len(data) - cut,
            )
            with open(self.path, "r+b") as fh:
                fh.truncate(cut)
            data = data[:cut]
        result = verify_lines(data.splitlines(keepends=True), head=read_head(self.path))
        if not result.ok:
            raise AuditLogError(
                f"cannot continue {self.path}: {result.describe(str(self.path))}"
            )
        return result.state

    def write(
        self,
        *,
        url: str,
        decision: str,
        reasons: list[Mapping[str, Any]],
        policy_sha256: str,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "time": self._clock(),
            "job": self.job,
            "url": url,
            "decision": decision,
            "reasons": [dict(r) for r in reasons],
            "policy_sha256": policy_sha256,
        }
        if extra:
            for key, value in extra.items():
                if key not in body:
                    body[key] = value
        if self.failed is not None:
            raise self.failed
        rec, line = seal_line(body, seq=self.state.seq + 1, prev_hash=self.state.hash)
        self.last_line = line
        before, state = self._size, self.state
        try:
            self._append(line)
            self.state = ChainState(rec["seq"], rec["hash"])
            self._write_head()
        except OSError as exc:
            self._fail(exc, before, state)
        if self.checkpoints is not None:
            self.checkpoints.committed(rec)
        return rec

    def write_many(self, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """:meth:`write` for several records at once (same records, same chain), committed with
        one ``write`` of their lines and one move of the head: for callers that act on none of
        them before this returns (``polite-crawl check --no-fetch``, which sends nothing). If
        the write fails, none is committed: the log is cut back to where it was.

        Each body is what :meth:`write` takes (``url``, ``decision``, ``reasons``,
        ``policy_sha256``, ``extra``); its reasons are taken as they are (no copy: they are
        the caller's own). A body may name a ``template``: a token the caller gives only to
        bodies equal in everything but ``url`` (same decision, reasons, policy, extra), and its
        ``template_owner`` (an object the token names by id), whose records are then
        serialised from one template (:class:`_Template`): the same bytes."""
        if self.failed is not None:
            raise self.failed
        before, state = self._size, self.state
        seq, prev = state.seq, state.hash
        recs: list[dict[str, Any]] = []
        lines: list[bytes] = []
        clock, job = self._clock, self.job
        templates = self._templates
        for b in bodies:
            token = b.get("template")
            if token is not None:
                owner = b.get("template_owner")
                got = templates.get(token)
                if got is None or got[0] is not owner:
                    if len(templates) > 4096:
                        templates.clear()
                    got = templates[token] = (owner, _Template.of(b, job))
                tpl = got[1]
                got = tpl.seal(b, clock(), seq + 1, prev) if tpl is not None else None
                if got is not None:
                    seq += 1
                    rec, line = got
                    prev = rec["hash"]
                    recs.append(rec)
                    lines.append(line)
                    continue
            body: dict[str, Any] = {
                "time": clock(),
                "job": job,
                "url": b["url"],
                "decision": b["decision"],
                "reasons": b["reasons"],
                "policy_sha256": b["policy_sha256"],
            }
            extra = b.get("extra")
            if extra:
                for key, value in extra.items():
                    if key not in body:
                        body[key] = value
            seq += 1
            rec, line = seal_line(body, seq=seq, prev_hash=prev)
            prev = rec["hash"]
            recs.append(rec)
            lines.append(line)
        self.last_lines = lines
        if not recs:
            return recs
        try:
            self._append(b"".join(lines))
            self.state = ChainState(seq, prev)
            self._write_head()
        except OSError as exc:
            self._fail(exc, before, state)
        if self.checkpoints is not None:
            for rec in recs:
                self.checkpoints.committed(rec)
        return recs

    def _append(self, line: bytes) -> None:
        view = memoryview(line)
        while view:
            n = os.write(self._fd, view)
            if n <= 0:  # pragma: no cover - a regular file never returns 0 for a non-empty write
                raise OSError(errno.EIO, "short write")
            view = view[n:]
            self._size += n
        if self.fsync:
            os.fsync(self._fd)

    def _fail(self, exc: OSError, size: int, state: ChainState) -> None:
        """Cut the log back to its last whole record (a torn line would block the next run) and
        refuse every later write: nothing may be acted on without its record."""
        try:
            os.ftruncate(self._fd, size)
            self._size = size
            self.state = state
            self._write_head()
            cut = "the log was cut back to its last whole record"
        except OSError as again:
            cut = f"and cutting the log back failed too ({again.strerror or again})"
        err = AuditWriteError(exc.errno, f"cannot write the audit log {self.path}: "
                              f"{exc.strerror or exc}; {cut}")
        self.failed = err
        logger.error("%s", err.strerror)
        raise err from exc

    def _write_head(self) -> None:
        # one fixed-size pwrite in place: cheap enough for every record; a torn head (power
        # loss mid-write) reads as "no head", never as a wrong one
        state = self.state
        if self._head_notes or not (state.hash.isascii() and state.hash.isalnum()):
            data = json.dumps({"seq": state.seq, "hash": state.hash, **self._head_notes},
                              sort_keys=True).encode()
        else:  # what json.dumps({"seq": ..., "hash": ...}, sort_keys=True) writes
            data = b'{"hash": "%s", "seq": %d}' % (state.hash.encode("ascii"), state.seq)
        if os.pwrite(self._head_fd, data.ljust(_HEAD_SIZE), 0) != _HEAD_SIZE:
            raise OSError(errno.EIO, "short write of the head file")
        if self.fsync:
            os.fsync(self._head_fd)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self.checkpoints is not None:  # the run-end checkpoint: the last committed record
                try:
                    self.checkpoints.close(self.state.seq, self.state.hash)
                except Exception:  # noqa: BLE001 - never lose the log's own close over it
                    logger.exception("audit log %s: the run-end checkpoint failed", self.path)
            if self.fsync and self.failed is None:
                try:
                    os.fsync(self._fd)
                except OSError as exc:
                    logger.error("audit log %s: fsync at close failed (%s)", self.path, exc)
            os.close(self._fd)
            os.close(self._head_fd)


class _Template:
    """The canonical bytes of the records of one shape, cut where they differ.

    Records that share everything but ``time``, ``url``, ``seq``, ``prev_hash`` and ``hash``
    (``check --no-fetch``: one verdict, many URLs) are serialised once with a placeholder for
    each of those; a record's bytes are then the pieces joined with the canonical form of its
    own values. JSON is compositional (a dict's text is its keys' and values' texts in key
    order), so that is ``canonical_bytes(record)`` exactly: the key order does not depend on
    the values, and each value is written as :func:`canonical_bytes` writes it (a ``str`` by
    orjson, which escapes as json does; an ``int`` as ``int.__repr__``). Anything else (a
    non-``str`` time or URL, a placeholder found more than once) is left to :func:`seal_line`.
    """

    __slots__ = ("fixed", "body_parts", "line_parts", "body_format", "line_format", "_proto")
    _MARK = "@@polite-template-{}-7f3a9c@@"
    _NAMES = ("time", "url", "seq", "prev_hash", "hash")

    def __init__(self, fixed: dict[str, Any], body_parts: list[Any],
                 line_parts: list[Any]) -> None:
        self.fixed = fixed
        self.body_parts = body_parts
        self.line_parts = line_parts
        # the pieces as one ``bytes %`` format each (the line's with its end of line), its
        # placeholders in the order the canonical form puts the top-level keys (sorted: hash,
        # prev_hash, seq, time, url), or None
        self.body_format = self._format(body_parts, ("prev_hash", "seq", "time", "url"))
        self.line_format = self._format(line_parts, ("hash", "prev_hash", "seq", "time", "url"),
                                        end=b"\n")
        #: (reasons, extra, record) of the last record sealed here from new reasons and extra
        #: objects: the next body with the same two objects gets a copy of that record
        #: (the same keys, in the same order) with its own time, URL, seq, prev_hash and hash
        self._proto: tuple[Any, Any, dict[str, Any]] | None = None

    @staticmethod
    def _format(parts: list[Any], order: tuple[str, ...], end: bytes = b"") -> bytes | None:
        names = [p for p in parts if type(p) is not bytes]
        if tuple(names) != order:
            return None
        return b"".join(p.replace(b"%", b"%%") if type(p) is bytes else b"%b"
                        for p in parts) + end

    @classmethod
    def of(cls, b: Mapping[str, Any], job: str) -> _Template | None:
        marks = {name: cls._MARK.format(name) for name in cls._NAMES}
        body: dict[str, Any] = {"time": marks["time"], "job": job, "url": marks["url"],
                                "decision": b["decision"], "reasons": b["reasons"],
                                "policy_sha256": b["policy_sha256"]}
        for key, value in (b.get("extra") or {}).items():
            if key not in body:
                body[key] = value
        try:
            rec = seal(body, seq=0, prev_hash=marks["prev_hash"])  # (checks it, as write does)
            del rec["hash"]
            rec["seq"] = marks["seq"]
            fixed = {k: v for k, v in rec.items() if k not in marks}
            body_blob = canonical_bytes(rec)
            rec["hash"] = marks["hash"]
            line_blob = canonical_bytes(rec)
        except (TypeError, ValueError):
            return None
        body_parts = cls._cut(body_blob, marks, ("time", "url", "seq", "prev_hash"))
        line_parts = cls._cut(line_blob, marks, cls._NAMES)
        if body_parts is None or line_parts is None:
            return None
        tpl = cls(fixed, body_parts, line_parts)
        if tpl.body_format is None or tpl.line_format is None:  # (not in key order)
            return None
        return tpl

    @staticmethod
    def _cut(blob: bytes, marks: dict[str, str], names: tuple[str, ...]) -> list[Any] | None:
        """``blob`` as [piece, name, piece, name, ..., piece], each placeholder once."""
        found = []
        for name in names:
            token = b'"' + marks[name].encode() + b'"'
            at = blob.find(token)
            if at < 0 or blob.find(token, at + 1) >= 0 or blob.count(marks[name].encode()) != 1:
                return None
            found.append((at, len(token), name))
        found.sort()
        parts: list[Any] = []
        pos = 0
        for at, size, name in found:
            parts.append(blob[pos:at])
            parts.append(name)
            pos = at + size
        parts.append(blob[pos:])
        return parts

    def seal(self, b: Mapping[str, Any], time_text: Any, seq: int,
             prev: str) -> tuple[dict[str, Any], bytes] | None:
        url = b["url"]
        if type(time_text) is not str or type(url) is not str or type(seq) is not int \
                or _orjson_dumps is None:
            return None
        try:
            t, u, p = _orjson_dumps(time_text), _orjson_dumps(url), _orjson_dumps(prev)
        except TypeError:  # a lone surrogate: seal_line's turn (and its error)
            return None
        s = int.__repr__(seq).encode()
        # (both formats are there: of() gives no template without them)
        digest = hashlib.sha256(self.body_format % (p, s, t, u)).hexdigest()  # type: ignore[operator]
        line = self.line_format % (  # type: ignore[operator]
            b'"' + digest.encode("ascii") + b'"', p, s, t, u)
        # the record as write() and seal() make it, of the caller's own values
        reasons, extra = b["reasons"], b.get("extra")
        proto = self._proto
        if proto is not None and proto[0] is reasons and proto[1] is extra:
            rec = proto[2].copy()  # (every key below is in it already: the order stays)
            rec["time"] = time_text
            rec["url"] = url
            rec["seq"] = seq
            rec["prev_hash"] = prev
            rec["hash"] = digest
            return rec, line
        rec = {"time": time_text, "job": self.fixed["job"], "url": url,
               "decision": b["decision"], "reasons": reasons,
               "policy_sha256": b["policy_sha256"]}
        for key, value in (extra or {}).items():
            if key not in rec:
                rec[key] = value
        rec["seq"] = seq
        rec["prev_hash"] = prev
        rec.pop("hash", None)
        rec["hash"] = digest
        self._proto = (reasons, extra, rec.copy())  # (a copy: the caller may change rec)
        return rec, line


try:
    from orjson import dumps as _orjson_dumps
except ImportError:  # pragma: no cover
    _orjson_dumps = None  # type: ignore[assignment]


def iter_records(path: str | os.PathLike[str]):  # -> Iterator[dict[str, Any]]
    """The records of a log file in order, streamed; stops at the first line that is not a
    JSON object (verify the chain first when that matters)."""
    with open(path, "rb") as fh:
        for raw in fh:
            try:
                rec = json.loads(raw)
            except ValueError:
                return
            if not isinstance(rec, dict):
                return
            yield rec


def verify_file(path: str | os.PathLike[str], *, allow_uncommitted: bool = False,
                require_head: bool = True):  # -> VerifyResult
    """Verify a log file on disk against its head file (strict by default).

    Records after the committed head were never committed by the writer (a forger appends
    there; a writer killed between a record and its head leaves at most one): they fail the
    check unless ``allow_uncommitted``. A missing or unreadable head fails it unless
    ``require_head`` is False (logs of old versions, merged reports).
    """
    head = read_head(path)
    with open(path, "rb") as fh:
        result = verify_lines(fh, head=head)
    if head is None and require_head and result.ok:
        exists = head_path(path).exists()
        return replace(result, ok=False, bad_line=None, message=(
            f"the head file {head_path(path).name} is "
            + ("unreadable" if exists else "missing")
            + ": records cut from the end could not be noticed (--no-head to check the "
              "chain alone)"))
    if result.ok and result.uncommitted and not allow_uncommitted:
        n = result.uncommitted
        return replace(result, ok=False, bad_line=result.records - n + 1,
                       bad_seq=result.state.seq - n + 1, message=(
            f"{n} record{'s' if n != 1 else ''} after the committed head (seq {head.seq}): "
            "not committed by the writer (appended afterwards, or one left by a run killed "
            "mid-write: continue the job, or --allow-uncommitted-tail)"))
    return result
