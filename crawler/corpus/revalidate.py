"""``polite-crawl revalidate OUTPUT_DIR [--purge]``: find, and erase, documents whose rights
holders have reserved them since they were collected.

1. The corpus's URLs are decided again by a crawl of :class:`~crawler.spiders.revalidate.
   RevalidateSpider` (same stages, same politeness; site-level files fetched once per origin).
   Its decisions are chained in ``OUTPUT_DIR/revalidate/current/audit.jsonl``; a killed
   revalidation resumes there, asking only about URLs it has no decision for.
2. The report (``revalidate/<stamp>/report.jsonl`` and stdout) lists the documents now
   reserved, with the signals that reserve them; URLs whose reservation could not be
   determined are listed apart and kept.
3. With ``--purge``: the documents now reserved are removed from ``corpus.jsonl`` (and
   ``corpus.warc.gz``) by writing new files, fsync, rename — a crash leaves the old or the new
   corpus, never a mix — and an ``erase`` record per document is appended to the job's audit
   log, chained like every other record. A pending-purge journal makes the purge idempotent
   and completes an interrupted one: running it twice erases nothing the second time. The
   bytes of an erased PDF or image (``files/sha256/``) are deleted after the corpus rewrite,
   unless a document still in a corpus of the directory has the same bytes.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from crawler.audit.log import AuditWriter, verify_file


class RevalidateError(Exception):
    """The output directory cannot be revalidated (the message says why)."""


@dataclass
class Outcome:
    reserved: list[dict[str, Any]] = field(default_factory=list)   # {url, docs, reasons}
    undetermined: list[dict[str, Any]] = field(default_factory=list)
    kept: int = 0
    erased: int = 0
    report_dir: Path | None = None


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


@dataclass(frozen=True)
class Part:
    """A corpus and the audit log that accounts for it: ``corpus.jsonl`` + ``audit.jsonl``, or
    one cluster worker's ``corpus-<w>.jsonl`` + ``audit-<w>.jsonl`` (+ its WARC)."""

    corpus: Path
    audit: Path
    warc: Path

    @property
    def journal(self) -> Path:
        stem = self.corpus.name.removesuffix(".jsonl")
        name = "purge.pending.json" if stem == "corpus" else f"{stem}.purge.pending.json"
        return self.corpus.with_name(name)


def parts(out: Path) -> list[Part]:
    if (out / "corpus.jsonl").is_file():
        return [Part(out / "corpus.jsonl", out / "audit.jsonl", out / "corpus.warc.gz")]
    found = []
    for corpus in sorted(out.glob("corpus-*.jsonl")):
        worker = corpus.name.removeprefix("corpus-").removesuffix(".jsonl")
        found.append(Part(corpus, out / f"audit-{worker}.jsonl",
                          out / f"corpus-{worker}.warc.gz"))
    return found


def check_output_dir(out: Path) -> list[Part]:
    found = parts(out)
    if not found:
        raise RevalidateError(f"{out}: no corpus.jsonl (not an output directory?)")
    for part in found:
        if not part.audit.is_file():
            raise RevalidateError(f"{out}: no {part.audit.name} beside {part.corpus.name}")
        result = verify_file(part.audit)
        if not result.ok:
            raise RevalidateError(f"{out}: {part.audit.name} does not verify: "
                                  f"{result.describe()}")
    return found


def pending_urls(found: list[Part], work: Path) -> list[str]:
    """Corpus URLs (once each) that the current revalidation has not decided yet."""
    decided = {rec["url"] for rec in iter_jsonl(work / "audit.jsonl") if _final(rec)}
    urls = dict.fromkeys(doc["url"] for part in found for doc in iter_jsonl(part.corpus))
    return _round_robin([u for u in urls if u not in decided])


def _round_robin(urls: list[str]) -> list[str]:
    """Interleave origins, so the downloader has work for many per-origin slots at once
    (a corpus is written origin by origin; asked in that order, origins would take turns)."""
    from itertools import zip_longest
    from urllib.parse import urlsplit

    groups: dict[str, list[str]] = {}
    for u in urls:
        p = urlsplit(u)
        groups.setdefault(f"{p.scheme}://{p.netloc}", []).append(u)
    return [u for row in zip_longest(*groups.values()) for u in row if u is not None]


def _final(rec: dict[str, Any]) -> bool:
    und = rec.get("undecided")
    return not und or bool(und.get("final")) or rec["decision"] == "allow"


def decisions(work: Path) -> dict[str, dict[str, Any]]:
    """The last final decision per URL in the revalidation log."""
    last: dict[str, dict[str, Any]] = {}
    for rec in iter_jsonl(work / "audit.jsonl"):
        if rec.get("decision") not in ("allow", "deny"):
            continue  # write-ahead send/result records decide nothing
        if _final(rec) and not rec.get("preflight"):
            last[rec["url"]] = rec
    return last


def assess(part: Part, work: Path) -> Outcome:
    decided = decisions(work)
    outcome = Outcome()
    by_url: dict[str, list[dict[str, Any]]] = {}
    for doc in iter_jsonl(part.corpus):
        by_url.setdefault(doc["url"], []).append(doc)
    for url, docs in by_url.items():
        rec = decided.get(url)
        if rec is None or rec["decision"] == "allow":
            outcome.kept += len(docs)
            continue
        entry = {"url": url, "documents": [{"audit_seq": d["audit_seq"], "sha256": d["sha256"]}
                                           for d in docs],
                 "reasons": rec["reasons"], "revalidation": {"seq": rec["seq"],
                                                             "hash": rec["hash"]}}
        if rec.get("undecided"):
            outcome.undetermined.append(entry)
            outcome.kept += len(docs)
        else:
            outcome.reserved.append(entry)
    return outcome


def purge(part: Part, outcome: Outcome, *, job: str, policy_sha256: str,
          fsync: bool = True, checkpoints: Any = None) -> int:
    """Remove the reserved documents; append one ``erase`` record each. Idempotent.

    ``checkpoints``: a function giving the :class:`crawler.audit.checkpoint.CheckpointWriter`
    of a log (the job's signing key): the erase records end with a checkpoint as a run does."""
    journal = part.journal
    if not journal.exists():
        if not outcome.reserved:
            return 0
        _atomic_write(journal, json.dumps({"policy_sha256": policy_sha256,
                                           "entries": outcome.reserved}).encode(), fsync)
    pending = json.loads(journal.read_text(encoding="utf-8"))
    entries, policy_sha256 = pending["entries"], pending["policy_sha256"]
    gone = {d["audit_seq"] for e in entries for d in e["documents"]}
    urls = {e["url"] for e in entries}
    _rewrite_corpus(part.corpus, gone, fsync)
    if part.warc.exists():
        _rewrite_warc(part.warc, urls, fsync)
    _remove_blobs(part, {d["sha256"] for e in entries for d in e["documents"]})
    already = {rec.get("erases", {}).get("audit_seq")
               for rec in iter_jsonl(part.audit) if rec["decision"] == "erase"}
    writer = AuditWriter(part.audit, job=job, fsync=fsync,
                         checkpoints=checkpoints(part.audit) if checkpoints else None)
    erased = 0
    try:
        for e in entries:
            for d in e["documents"]:
                if d["audit_seq"] in already:
                    continue
                writer.write(url=e["url"], decision="erase", reasons=e["reasons"],
                             policy_sha256=policy_sha256,
                             extra={"erases": d, "revalidation": e["revalidation"],
                                    "stage": "revalidate"})
                erased += 1
                _crash_point("after-first-erase")
    finally:
        writer.close()
    journal.unlink()
    return erased


def _remove_blobs(part: Part, shas: set[str]) -> None:
    """The stored bytes (``files/sha256/``, collected PDFs and images) of the erased documents,
    unless a document still in a corpus of the directory has the same bytes."""
    from crawler.corpus.documents import BlobStore

    store = BlobStore(part.corpus.parent)
    shas = {s for s in shas if isinstance(s, str) and store.path_of(s).exists()}
    if not shas:
        return
    out = part.corpus.parent
    for corpus in (out / "corpus.jsonl", *sorted(out.glob("corpus-*.jsonl"))):
        for doc in iter_jsonl(corpus):
            shas.discard(doc.get("sha256"))
    for sha in shas:
        try:
            store.path_of(sha).unlink()
        except FileNotFoundError:
            pass


def _rewrite_corpus(path: Path, gone: set[int], fsync: bool) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(path, encoding="utf-8") as src, open(tmp, "w", encoding="utf-8") as dst:
        for line in src:
            if line.strip() and json.loads(line).get("audit_seq") not in gone:
                dst.write(line)
        dst.flush()
        if fsync:
            os.fsync(dst.fileno())
    _crash_point("before-corpus-rename")
    os.replace(tmp, path)
    _fsync_dir(path.parent, fsync)


#: Fault injection for the crash tests, None otherwise: called with the name of every crash
#: point passed (tests/crash_cli.py sets one that kills the process at a named point, as a
#: power cut or ``kill -9`` would). Nothing in the product sets it.
_crash_hook: Callable[[str], None] | None = None


def _crash_point(name: str) -> None:
    """A named moment a crash test may stop the process at (through :data:`_crash_hook`)."""
    if _crash_hook is not None:
        _crash_hook(name)


def _rewrite_warc(path: Path, urls: set[str], fsync: bool) -> None:
    """Write ``path`` again without the records of the documents at ``urls``.

    Every record kept is copied byte for byte (its gzip member as written: payloads as
    received, digests, ids and dates untouched); a document's request, response and metadata
    records go, and any other record about one of those URLs, except evidence (a per-origin
    file the audit records cite, recorded with a ``"role": "evidence"`` note: a document URL
    may also be, say, a robots.txt another decision relied on).
    """
    from warcio.archiveiterator import ArchiveIterator

    evidence: set[str] = set()   # ids of evidence records (and their notes) about these URLs
    about: list[tuple[int, int, str]] = []   # (offset, length, id) of records about the URLs
    with open(path, "rb") as src:
        it = ArchiveIterator(src)
        for record in it:
            if (record.rec_type == "warcinfo"
                    or record.rec_headers.get_header("WARC-Target-URI") not in urls):
                continue
            rid = record.rec_headers.get_header("WARC-Record-ID") or ""
            if record.rec_type == "metadata":
                try:
                    note = json.loads(record.content_stream().read())
                except ValueError:
                    note = None
                if isinstance(note, dict) and note.get("role") == "evidence":
                    evidence.update((rid, record.rec_headers.get_header("WARC-Concurrent-To")))
            it.read_to_end(record)
            about.append((it.get_record_offset(), it.get_record_length(), rid))
    drop = sorted((o, n) for o, n, rid in about if rid not in evidence)
    tmp = path.with_name(path.name + ".tmp")
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        pos = 0
        for offset, length in [*drop, (os.fstat(src.fileno()).st_size, 0)]:
            _copy_range(src, dst, pos, offset - pos)
            pos = offset + length
        dst.flush()
        if fsync:
            os.fsync(dst.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent, fsync)


def _copy_range(src: Any, dst: Any, start: int, length: int) -> None:
    src.seek(start)
    while length > 0:
        block = src.read(min(length, 1 << 20))
        if not block:
            break
        dst.write(block)
        length -= len(block)


def _atomic_write(path: Path, data: bytes, fsync: bool) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        if fsync:
            os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent, fsync)


def _fsync_dir(path: Path, fsync: bool) -> None:
    if fsync and hasattr(os, "O_DIRECTORY"):
        fd = os.open(path, os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def merge_outcomes(outcomes: list[Outcome]) -> Outcome:
    total = Outcome()
    for o in outcomes:
        total.reserved += o.reserved
        total.undetermined += o.undetermined
        total.kept += o.kept
        total.erased += o.erased
    return total


def write_report(work: Path, outcome: Outcome) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    done = work.parent / stamp
    with open(work / "report.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"status": "reserved", **e}, sort_keys=True) + "\n" for e in outcome.reserved)
        fh.writelines(json.dumps({"status": "undetermined", **e}, sort_keys=True) + "\n" for e in outcome.undetermined)
    shutil.move(str(work), str(done))
    return done
