"""Signed audit checkpoints: the log's head, anchored outside the operator's control.

Every ``every`` records, and at the end of every run, the writer appends a checkpoint to
``<log stem>.checkpoints.jsonl`` (``audit.jsonl`` -> ``audit.checkpoints.jsonl``)::

    {"type": "audit-checkpoint", "version": 1, "job": ..., "log": "audit.jsonl",
     "seq": N, "hash": "<hash of record N>", "time": ..., "policy_sha256": ...,
     "reason": "interval" | "run-end", "keyid": "<JWK thumbprint>", "alg": "ed25519",
     "sig": "<base64url Ed25519 signature>"}

``sig`` signs ``DOMAIN_CHECKPOINT + canonical_json(checkpoint without sig)`` with the crawler's
identity key (:mod:`crawler.identity.keys`); without a key the checkpoint is written unsigned (it
still anchors the log once published, but proves nothing about who wrote it). Because record N's
hash covers every record before it (the hash chain), a checkpoint commits to the whole log up
to N: a log that does not have that exact record at seq N was rewritten.

With ``audit: {tsa_url: URL}`` each checkpoint is also sent to an RFC 3161 Time-Stamp
Authority; the request and the token are appended as their own line::

    {"type": "audit-timestamp", "version": 1, "job": ..., "log": ..., "seq": N,
     "checkpoint_sha256": "<sha256 of the signed checkpoint line>", "tsa_url": ...,
     "tsq": "<base64 DER request>", "tsr": "<base64 DER reply>", "gen_time": ...}

The message stamped is the signed checkpoint's canonical JSON (the line without its newline),
so ``openssl ts -verify -data`` over those bytes checks the token independently.

Checkpoints are published (``polite-crawl about`` puts them in the crawler information page's
Atom feed); ``audit verify LOG --checkpoints FILE --keys JWKS`` checks a copy kept by a third
party against the log: signature, and that the log extends every checkpoint.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crawler.audit.log import iter_records, utc_now
from crawler.audit.record import canonical_json
from crawler.audit.tsa import TimestampError, check_response, request_timestamp, verify_token
from crawler.identity.keys import (
    DOMAIN_CHECKPOINT,
    Identity,
    b64url,
    b64url_decode,
    verify_signature,
)

logger = logging.getLogger(__name__)

CHECKPOINT_TYPE = "audit-checkpoint"
TIMESTAMP_TYPE = "audit-timestamp"
VERSION = 1
#: checkpoint every this many records by default (and at the end of every run)
DEFAULT_EVERY = 1000


def checkpoints_path(log_path: str | os.PathLike[str]) -> Path:
    """``audit.jsonl`` -> ``audit.checkpoints.jsonl`` (beside the log)."""
    p = Path(log_path)
    stem = p.name[: -len(".jsonl")] if p.name.endswith(".jsonl") else p.name
    return p.with_name(f"{stem}.checkpoints.jsonl")


def signed_message(checkpoint: Mapping[str, Any]) -> bytes:
    """The bytes an Ed25519 checkpoint signature covers."""
    body = {k: v for k, v in checkpoint.items() if k != "sig"}
    return DOMAIN_CHECKPOINT + canonical_json(body).encode("utf-8")


def timestamp_message(checkpoint: Mapping[str, Any]) -> bytes:
    """The bytes a Time-Stamp Authority stamps: the signed checkpoint's line."""
    return canonical_json(checkpoint).encode("utf-8")


def make_checkpoint(*, job: str, log: str, seq: int, hash: str, time: str,
                    policy_sha256: str | None, reason: str,
                    identity: Identity | None = None) -> dict[str, Any]:
    cp: dict[str, Any] = {"type": CHECKPOINT_TYPE, "version": VERSION, "job": job, "log": log,
                          "seq": seq, "hash": hash, "time": time,
                          "policy_sha256": policy_sha256, "reason": reason}
    if identity is not None:
        cp["keyid"] = identity.keyid
        cp["alg"] = "ed25519"
        cp["sig"] = b64url(identity.sign(signed_message(cp)))
    return cp


class CheckpointWriter:
    """Appends checkpoints (and their timestamps) for one audit log.

    The audit writer calls :meth:`committed` after each record and :meth:`close` at its own
    close. Signing is done at once (tens of microseconds); a timestamp request runs in one
    background thread so that a slow TSA never holds the crawl, and :meth:`close` waits for the
    ones still under way (at most ``tsa_timeout`` each). A checkpoint that cannot be written is
    logged (error) and counted; it never stops the crawl: the log itself is intact, only its
    outside anchor is missing, and ``audit verify --checkpoints`` says so.
    """

    def __init__(self, log_path: str | os.PathLike[str], *, job: str,
                 identity: Identity | None = None, every: int = DEFAULT_EVERY,
                 tsa_url: str | None = None, tsa_timeout: float = 10.0,
                 fsync: bool = False, clock: Callable[[], str] | None = None) -> None:
        self.log_name = Path(log_path).name
        self.path = checkpoints_path(log_path)
        self.job = job
        self.identity = identity
        self.every = max(0, int(every))
        self.tsa_url = tsa_url or None
        self.tsa_timeout = tsa_timeout
        self.fsync = fsync
        self._clock = clock or utc_now
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future[None]] = []
        self.written = 0
        self.failures = 0
        self.timestamps = 0
        self.timestamp_failures = 0
        self.last_seq = self._last_checkpointed()
        self._policy: str | None = None
        self._end_torn_line()

    def _end_torn_line(self) -> None:
        """A line torn by a killed write is ended, so that the next checkpoint is a line of its
        own (the torn bytes stay, read as one bad line)."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                torn = fh.read(1) != b"\n"
        except OSError:  # no file yet (or empty)
            return
        if torn:
            self._append_bytes(b"\n", None)

    def _last_checkpointed(self) -> int:
        last = 0
        for cp in _read_jsonl(self.path, errors=[]):
            if cp.get("type") == CHECKPOINT_TYPE and cp.get("log") == self.log_name:
                seq = cp.get("seq")
                if isinstance(seq, int) and seq > last:
                    last = seq
        return last

    # -- the writer's hooks -------------------------------------------------------------
    def committed(self, record: Mapping[str, Any]) -> None:
        self._policy = record.get("policy_sha256") or self._policy
        seq = int(record["seq"])
        if self.every and seq % self.every == 0 and seq > self.last_seq:
            self.checkpoint(seq, str(record["hash"]), reason="interval")

    def close(self, seq: int, hash: str) -> None:
        """The run-end checkpoint (when anything was written since the last one), then wait
        for the timestamps under way."""
        try:
            if seq > self.last_seq:
                self.checkpoint(seq, hash, reason="run-end")
        finally:
            self._drain()

    # -- checkpoints --------------------------------------------------------------------
    def checkpoint(self, seq: int, hash: str, *, reason: str) -> dict[str, Any] | None:
        cp = make_checkpoint(job=self.job, log=self.log_name, seq=seq, hash=hash,
                             time=self._clock(), policy_sha256=self._policy, reason=reason,
                             identity=self.identity)
        if not self._append(cp):
            return None
        self.last_seq = seq
        self.written += 1
        if self.tsa_url:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="polite-tsa")
            self._pending.append(self._pool.submit(self._timestamp, cp))
        return cp

    def _timestamp(self, cp: Mapping[str, Any]) -> None:
        message = timestamp_message(cp)
        try:
            tsq, tsr, info = request_timestamp(str(self.tsa_url), message,
                                               timeout=self.tsa_timeout)
        except TimestampError as exc:
            self.timestamp_failures += 1
            logger.error("audit checkpoint seq %s of %s: no trusted timestamp from %s (%s); "
                         "the checkpoint stands unstamped", cp["seq"], self.log_name,
                         self.tsa_url, exc)
            return
        line = {"type": TIMESTAMP_TYPE, "version": VERSION, "job": cp["job"],
                "log": cp["log"], "seq": cp["seq"],
                "checkpoint_sha256": hashlib.sha256(message).hexdigest(),
                "tsa_url": self.tsa_url, "gen_time": _gen_time(info),
                "tsq": base64.b64encode(tsq).decode("ascii"),
                "tsr": base64.b64encode(tsr).decode("ascii")}
        if self._append(line):
            self.timestamps += 1

    def _drain(self) -> None:
        pending, self._pending = self._pending, []
        for fut in pending:
            try:
                fut.result(timeout=self.tsa_timeout + 5)
            except Exception as exc:  # noqa: BLE001 - a timestamp never fails the run
                self.timestamp_failures += 1
                logger.error("audit checkpoint timestamp: %s", exc or type(exc).__name__)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _append(self, obj: Mapping[str, Any]) -> bool:
        return self._append_bytes((canonical_json(obj) + "\n").encode("utf-8"), obj.get("seq"))

    def _append_bytes(self, data: bytes, seq: Any) -> bool:
        with self._lock:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                    if self.fsync:
                        os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                self.failures += 1
                logger.error("cannot write the audit checkpoint file %s (%s): the log is "
                             "intact but not anchored at seq %s", self.path,
                             exc.strerror or exc, seq)
                return False
        return True


def _gen_time(info: Any) -> str | None:
    iso = getattr(info, "gen_time_iso", None)
    if isinstance(iso, str):
        return iso
    value = getattr(info, "gen_time", None)
    return value if isinstance(value, str) or value is None else str(value)


# -- reading and checking --------------------------------------------------------------------

def _read_jsonl(path: Path, *, errors: list[str]) -> list[dict[str, Any]]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        errors.append(f"{path}: {exc.strerror or exc}")
        return []
    out = []
    lines = data.split(b"\n")
    for i, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except ValueError:
            where = "last line (torn by a killed write?)" if i == len(lines) else f"line {i}"
            errors.append(f"{path.name}: {where} is not JSON; ignored")
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def read_checkpoints(path: str | os.PathLike[str], *, errors: list[str] | None = None
                     ) -> list[dict[str, Any]]:
    """Checkpoint and timestamp lines from a checkpoints file or from a published Atom feed
    (``changes.atom`` of ``polite-crawl about``: one entry per line, its content the JSON)."""
    errors = [] if errors is None else errors
    p = Path(path)
    head = b""
    try:
        with open(p, "rb") as fh:
            head = fh.read(512).lstrip()
    except OSError as exc:
        raise FileNotFoundError(f"{p}: {exc.strerror or exc}") from None
    if head.startswith(b"<"):
        return _from_feed(p, errors)
    return [o for o in _read_jsonl(p, errors=errors)
            if o.get("type") in (CHECKPOINT_TYPE, TIMESTAMP_TYPE)]


def _from_feed(path: Path, errors: list[str]) -> list[dict[str, Any]]:
    import xml.etree.ElementTree as ET

    ns = "{http://www.w3.org/2005/Atom}"
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        errors.append(f"{path}: not a readable Atom feed ({exc})")
        return []
    out = []
    for entry in root.iter(f"{ns}entry"):
        text = entry.findtext(f"{ns}content") or ""
        try:
            obj = json.loads(text)
        except ValueError:
            continue  # a page-change entry
        if isinstance(obj, dict) and obj.get("type") in (CHECKPOINT_TYPE, TIMESTAMP_TYPE):
            out.append(obj)
    return out


@dataclass
class CheckpointReport:
    ok: bool = True
    checked: int = 0
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def bad(self, text: str) -> None:
        self.ok = False
        self.problems.append(text)


def verify_checkpoints(
    log_path: str | os.PathLike[str],
    checkpoints: Iterable[Mapping[str, Any]],
    *,
    keys: Mapping[str, Any] | None = None,
    tsa_ca: bytes | None = None,
    require_signed: bool = False,
) -> CheckpointReport:
    """Check published checkpoints against a log (whose own chain the caller has verified).

    For every checkpoint of this log (same ``log`` file name): its signature verifies with the
    key named by ``keyid`` in ``keys`` (thumbprint -> public key, from a JWK Set), and the log
    holds a record at its ``seq`` with exactly its ``hash``. Timestamp lines: the token answers
    exactly that checkpoint; with ``tsa_ca`` (PEM of the TSA's root) it is verified
    cryptographically too.
    """
    name = Path(log_path).name
    report = CheckpointReport()
    cps = [dict(c) for c in checkpoints if c.get("log") == name]
    stamps = [c for c in cps if c.get("type") == TIMESTAMP_TYPE]
    cps = [c for c in cps if c.get("type") == CHECKPOINT_TYPE]
    if not cps:
        report.bad(f"no checkpoint of {name} in the checkpoints given")
        return report
    wanted = {c["seq"] for c in cps if isinstance(c.get("seq"), int)}
    hashes, last = _hashes_at(log_path, wanted)
    by_sha: dict[str, dict[str, Any]] = {}
    for cp in sorted(cps, key=lambda c: c.get("seq") if isinstance(c.get("seq"), int) else -1):
        seq = cp.get("seq")
        label = f"checkpoint seq {seq} ({cp.get('reason', '?')}, {cp.get('time', '?')})"
        report.checked += 1
        by_sha[hashlib.sha256(timestamp_message(cp)).hexdigest()] = cp
        if not isinstance(seq, int) or not isinstance(cp.get("hash"), str):
            report.bad(f"{label}: malformed checkpoint")
            continue
        sig = cp.get("sig")
        signed_by = None
        if sig is None:
            if require_signed:
                report.bad(f"{label}: unsigned")
                continue
        elif keys is None:
            report.bad(f"{label}: signed by {cp.get('keyid')}, but no key directory was given "
                       "(--keys)")
            continue
        else:
            key = keys.get(cp.get("keyid"))
            try:
                raw_sig = b64url_decode(sig)
            except ValueError:
                raw_sig = b""
            if key is None:
                report.bad(f"{label}: signed by {cp.get('keyid')}, a key not in the key "
                           "directory given")
                continue
            if cp.get("alg") != "ed25519" or not verify_signature(key, raw_sig,
                                                                  signed_message(cp)):
                report.bad(f"{label}: signature does not verify (forged or altered checkpoint)")
                continue
            signed_by = cp.get("keyid")
        if seq > last:
            report.bad(f"{label}: the log ends at seq {last}, before this checkpoint "
                       "(records removed from the end)")
            continue
        if hashes.get(seq) != cp["hash"]:
            report.bad(f"{label}: the log's record {seq} is not the one checkpointed "
                       "(the log was rewritten up to or after it)")
            continue
        how = f"signed by {signed_by}" if signed_by else "UNSIGNED (proves only what its copy's "\
              "publication proves)"
        report.lines.append(f"{label}: the log extends it; {how}")
    for st in stamps:
        label = f"timestamp of checkpoint seq {st.get('seq')}"
        cp = by_sha.get(str(st.get("checkpoint_sha256")))
        if cp is None:
            report.bad(f"{label}: stamps no checkpoint given")
            continue
        try:
            tsq = base64.b64decode(str(st.get("tsq")), validate=True)
            tsr = base64.b64decode(str(st.get("tsr")), validate=True)
            message = timestamp_message(cp)
            info = (verify_token(tsr, message, ca_pem=tsa_ca) if tsa_ca
                    else check_response(tsr, message, tsq))
            if tsa_ca:
                check_response(tsr, message, tsq)
        except (ValueError, TimestampError) as exc:
            report.bad(f"{label}: {exc}")
            continue
        how = "token verified against the TSA root given" if tsa_ca else \
            "token matches (signature not checked: give --tsa-ca)"
        report.lines.append(f"{label}: {st.get('tsa_url')} at {_gen_time(info)}; {how}")
    return report


def _hashes_at(log_path: str | os.PathLike[str], wanted: set[int]) -> tuple[dict[int, str], int]:
    """The hash of each wanted seq in the log, and its last seq (streams the file)."""
    out: dict[int, str] = {}
    last = 0
    for rec in iter_records(log_path):
        seq = rec.get("seq")
        if not isinstance(seq, int):
            break
        last = seq
        if seq in wanted:
            out[seq] = str(rec.get("hash"))
    return out, last
