"""``polite-crawl export OUTPUT_DIR --format parquet|jsonl.gz --out PATH``: the corpus as a
training data set, each document with the proof it was collected on.

One row per corpus line, columns :data:`COLUMNS`: the document (``url``, ``sha256`` of the
body, ``fetched_at``, ``content_type``, ``text``, ``title``, ``text_mode``, ``file``: where a
PDF's or image's bytes are kept, relative to the output directory) and its
provenance (``audit_log``, ``audit_seq``, ``audit_hash``: the allow record; ``policy_sha256``:
the policy that record was decided under, from the record itself; ``purpose``: the use that
policy served).

Nothing leaves without its proof. Each audit log is verified first (hash chain, committed
head; a log that does not verify stops the export: :class:`ProofError`). A corpus line is
exported only when

* its ``audit_seq`` is an ``allow`` record of its log, committed (at or before the log's
  head), with the same ``hash`` and ``url``;
* no ``erase`` record names it, and no pending purge (``revalidate --purge`` interrupted)
  is about to erase it;
* the latest finished revalidation (``revalidate/<stamp>/report.jsonl``) did not find it
  reserved since (it is kept in the corpus until ``--purge``, but not exported);
* the purpose of its policy is known: ``evidence/<policy_sha256>``, the policy document each
  run keeps there, hashing to its name, else a ``run*.json`` of that policy.

Every other line is skipped and counted by reason (:class:`Summary`). Streamed: the corpus is
read line by line and written in batches (Parquet: one row group per batch); what is held in
memory is one batch and, per audit log, the allow records' seq, hash, URL and policy (as
``audit verify`` holds). The output is written to a temporary file beside ``--out`` and
renamed into place: a reader sees the old file or the whole new one.

No Scrapy; pyarrow (the ``parquet`` extra) only for Parquet.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from crawler.audit.log import iter_records, read_head, verify_file
from crawler.corpus.revalidate import Part, parts

__all__ = ["COLUMNS", "FORMATS", "ExportError", "ProofError", "Summary", "export",
           "export_rows"]

FORMATS = ("parquet", "jsonl.gz")
#: the exported columns, in order (``audit_seq`` is an integer, the others strings; ``text``,
#: ``title``, ``text_mode`` and ``file`` may be null)
COLUMNS = ("url", "sha256", "fetched_at", "content_type", "text", "title", "text_mode", "file",
           "audit_log", "audit_seq", "audit_hash", "policy_sha256", "purpose")
#: rows per batch (a Parquet row group), and the text bytes after which a batch ends sooner
BATCH_ROWS = 10_000
BATCH_BYTES = 64 * 1024 * 1024

#: skip reasons, as the summary names them
NO_ALLOW = "no allow record"
HASH_DIFFERS = "audit_hash differs from the allow record"
URL_DIFFERS = "the allow record is for another URL"
UNCOMMITTED = "allow record not committed (after the log's head)"
ERASED = "erased"
RESERVED = "found reserved by the latest revalidation"
NO_PURPOSE = "purpose of its policy unknown"
UNREADABLE = "unreadable corpus line"


class ExportError(Exception):
    """The export cannot be made (bad directory, format or destination); one line."""


class ProofError(ExportError):
    """An audit log does not verify: no document of it has proof; nothing is written."""


@dataclass
class Summary:
    exported: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def describe(self) -> str:
        if not self.skipped:
            return "none skipped"
        total = sum(self.skipped.values())
        why = ", ".join(f"{n} {reason}" for reason, n in self.skipped.most_common())
        return f"{total} skipped: {why}"


@dataclass(frozen=True)
class _Proofs:
    """What one audit log proves: its committed allow records (seq -> hash, url, policy) and
    the documents erased or about to be (seq)."""

    allows: dict[int, tuple[str, str, str]]
    committed: int
    uncommitted: frozenset[int]
    erased: frozenset[int]


def format_of(path: Path, given: str | None) -> str:
    """``given``, else the format ``path``'s name ends with."""
    if given is not None:
        if given not in FORMATS:
            raise ExportError(f"--format: {given!r} is not one of {', '.join(FORMATS)}")
        return given
    for fmt in FORMATS:
        if path.name.endswith("." + fmt):
            return fmt
    raise ExportError(f"--format: give one of {', '.join(FORMATS)} (or name --out *.parquet "
                      "or *.jsonl.gz)")


def _proofs(part: Part) -> _Proofs:
    result = verify_file(part.audit, allow_uncommitted=True)
    if not result.ok:
        raise ProofError(f"{part.audit.name} does not verify, nothing exported: "
                         f"{result.describe(part.audit.name)}")
    head = read_head(part.audit)
    committed = head.seq if head is not None else result.state.seq
    allows: dict[int, tuple[str, str, str]] = {}
    late: set[int] = set()
    erased: set[int] = set()
    policies: dict[str, str] = {}
    for rec in iter_records(part.audit):
        seq = rec.get("seq")
        if not isinstance(seq, int):
            continue
        if rec.get("decision") == "allow":
            if seq > committed:
                late.add(seq)
                continue
            policy = str(rec.get("policy_sha256"))
            allows[seq] = (str(rec.get("hash")), str(rec.get("url")),
                           policies.setdefault(policy, policy))
        elif rec.get("decision") == "erase":
            # every erase record counts, committed or not: more is withheld, never less
            erases = rec.get("erases")
            if isinstance(erases, dict) and isinstance(erases.get("audit_seq"), int):
                erased.add(erases["audit_seq"])
    erased |= _pending_purge(part)
    return _Proofs(allows, committed, frozenset(late), frozenset(erased))


def _pending_purge(part: Part) -> set[int]:
    """The documents an interrupted ``revalidate --purge`` is erasing (its journal)."""
    try:
        pending = json.loads(part.journal.read_text(encoding="utf-8"))
        return {d["audit_seq"] for e in pending["entries"] for d in e["documents"]}
    except FileNotFoundError:
        return set()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        # unreadable: which documents it erases is unknown; refuse rather than guess
        raise ExportError(f"{part.journal}: cannot be read ({exc}); complete the purge with "
                          "`polite-crawl revalidate --purge` first") from None


def _reserved(out: Path) -> set[tuple[str, int, str]]:
    """(url, audit_seq, sha256) of the documents the latest finished revalidation found
    reserved (``revalidate/<stamp>/report.jsonl``; ``current`` is one still running)."""
    reports = sorted(p for p in (out / "revalidate").glob("*/report.jsonl")
                     if p.parent.name != "current")
    if not reports:
        return set()
    found = set()
    with open(reports[-1], encoding="utf-8") as fh:
        for line in fh:
            try:
                entry = json.loads(line)
                if entry.get("status") != "reserved":
                    continue
                for doc in entry["documents"]:
                    found.add((entry["url"], doc["audit_seq"], doc["sha256"]))
            except (ValueError, KeyError, TypeError, AttributeError):
                raise ExportError(f"{reports[-1]}: a line cannot be read; which documents "
                                  "were found reserved is unknown") from None
    return found


def purposes(out: Path, wanted: Iterable[str]) -> dict[str, str]:
    """policy_sha256 -> purpose, for the policies ``wanted``: from ``evidence/<sha256>`` (the
    policy document, checked against its hash), else from ``run.json`` / ``run-*.json``
    (what the run that wrote it says of its own policy)."""
    found: dict[str, str] = {}
    for sha in wanted:
        try:
            blob = (out / "evidence" / sha).read_bytes()
        except (OSError, ValueError):
            continue
        if hashlib.sha256(blob).hexdigest() != sha:
            continue
        try:
            doc = json.loads(blob)
        except ValueError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("purpose"), str):
            found[sha] = doc["purpose"]
    for info in [out / "run.json", *sorted(out.glob("run-*.json"))]:
        try:
            data = json.loads(info.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if (isinstance(data, dict) and isinstance(data.get("policy_sha256"), str)
                and isinstance(data.get("purpose"), str)):
            found.setdefault(data["policy_sha256"], data["purpose"])
    return found


def export_rows(out: Path, summary: Summary) -> Iterator[dict[str, Any]]:
    """The rows to export from the output directory ``out``, in corpus order; lines without
    proof are counted in ``summary.skipped``. Every log is verified before the first row."""
    found = parts(out)
    if not found:
        raise ExportError(f"{out}: no corpus.jsonl (not an output directory?)")
    for part in found:
        if not part.audit.is_file():
            raise ExportError(f"{out}: no {part.audit.name} beside {part.corpus.name}")
    proofs = [_proofs(part) for part in found]
    reserved = _reserved(out)
    policy_purpose = purposes(out, {p[2] for pr in proofs for p in pr.allows.values()})
    for part, proof in zip(found, proofs):
        for doc in _corpus_lines(part.corpus, summary):
            why = _withheld(doc, proof, reserved)
            if why is None:
                hash_, url, policy = proof.allows[doc["audit_seq"]]
                purpose = policy_purpose.get(policy)
                if purpose is None:
                    why = NO_PURPOSE
            if why is not None:
                summary.skipped[why] += 1
                continue
            summary.exported += 1
            yield {"url": doc["url"], "sha256": _str(doc.get("sha256")),
                   "fetched_at": _str(doc.get("fetched_at")),
                   "content_type": _str(doc.get("content_type")),
                   "text": _str(doc.get("text")), "title": _str(doc.get("title")),
                   "text_mode": _str(doc.get("text_mode")), "file": _str(doc.get("file")),
                   "audit_log": part.audit.name,
                   "audit_seq": doc["audit_seq"], "audit_hash": hash_,
                   "policy_sha256": policy, "purpose": purpose}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _corpus_lines(corpus: Path, summary: Summary) -> Iterator[dict[str, Any]]:
    with open(corpus, "rb") as fh:
        for raw in fh:
            if not raw.strip():
                continue
            try:
                if not raw.endswith(b"\n"):  # torn: a write cut short, not a document
                    raise ValueError
                doc = json.loads(raw)
                if not isinstance(doc, dict):
                    raise ValueError
            except ValueError:
                summary.skipped[UNREADABLE] += 1
                continue
            yield doc


def _withheld(doc: dict[str, Any], proof: _Proofs,
              reserved: set[tuple[str, int, str]]) -> str | None:
    """Why ``doc`` may not be exported, or None when it has its proof."""
    seq = doc.get("audit_seq")
    if not isinstance(seq, int) or isinstance(seq, bool):
        return NO_ALLOW
    allow = proof.allows.get(seq)
    if allow is None:
        return UNCOMMITTED if seq in proof.uncommitted else NO_ALLOW
    if doc.get("audit_hash") != allow[0]:
        return HASH_DIFFERS
    if doc.get("url") != allow[1]:
        return URL_DIFFERS
    if seq in proof.erased:
        return ERASED
    if (doc["url"], seq, doc.get("sha256")) in reserved:
        return RESERVED
    return None


def export(out: Path, dest: Path, fmt: str | None = None) -> Summary:
    """Write the export of ``out`` to ``dest`` atomically; the summary of what went out."""
    fmt = format_of(dest, fmt)
    if fmt == "parquet":  # a missing extra is said before anything is read
        from crawler.extras import require

        require("pyarrow.parquet", "parquet", "polite-crawl export --format parquet")
    if not out.is_dir():
        raise ExportError(f"{out}: not a directory")
    if dest.is_dir():
        raise ExportError(f"--out {dest}: is a directory")
    summary = Summary()
    rows = export_rows(out, summary)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            if fmt == "parquet":
                write_parquet(rows, fh)
            else:
                write_jsonl_gz(rows, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except OSError as exc:
        raise ExportError(f"--out {dest}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return summary


def batches(rows: Iterable[dict[str, Any]], max_rows: int | None = None,
            max_bytes: int | None = None) -> Iterator[list[dict[str, Any]]]:
    """``rows`` in lists of ``max_rows`` (:data:`BATCH_ROWS`), cut sooner after
    ``max_bytes`` (:data:`BATCH_BYTES`) characters of text."""
    max_rows, max_bytes = max_rows or BATCH_ROWS, max_bytes or BATCH_BYTES
    batch: list[dict[str, Any]] = []
    size = 0
    for row in rows:
        batch.append(row)
        size += len(row["text"] or "")
        if len(batch) >= max_rows or size >= max_bytes:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def write_jsonl_gz(rows: Iterable[dict[str, Any]], fh: BinaryIO) -> None:
    """One JSON object a line, keys in :data:`COLUMNS` order, gzip (no name, time 0)."""
    with gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0) as gz:
        for batch in batches(rows):
            gz.write("".join(json.dumps(row, ensure_ascii=False) + "\n"
                             for row in batch).encode("utf-8"))


def parquet_schema() -> Any:
    import pyarrow as pa

    return pa.schema([(name, pa.int64() if name == "audit_seq" else pa.string())
                      for name in COLUMNS])


def write_parquet(rows: Iterable[dict[str, Any]], fh: BinaryIO) -> None:
    """Parquet (zstd), one row group per batch."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema()
    with pq.ParquetWriter(fh, schema, compression="zstd") as writer:
        for batch in batches(rows):
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
