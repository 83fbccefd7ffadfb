"""Item pipelines: the corpus writer."""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - a dependency; json alone gives the same lines
    _orjson = None  # type: ignore[assignment]
from scrapy import signals
from scrapy.exceptions import DropItem
from scrapy.utils.defer import maybe_deferred_to_future

from crawler.corpus.documents import pdf_text
from crawler.crawl import defaults
from crawler.crawl.runtime import get_runtime, polite_setting

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

REQUIRED = ("url", "fetched_at", "status", "content_type", "sha256", "audit_seq")


#: exact types whose JSON orjson writes as json does (a subclass, a float: json writes them)
_SCALARS = frozenset({str, int, bool, type(None)})
_KEYS: dict[str, bytes] = {}


def _plain_fields(item: Any) -> dict[str, Any] | None:
    """``ItemAdapter(item).asdict()`` without the ``_`` fields, for a plain dict item whose
    fields are all strings, integers, booleans or None (what asdict returns unchanged);
    None for any other item."""
    if type(item) is not dict:
        return None
    data = {}
    for key, value in item.items():
        if type(key) is not str:
            return None
        if key.startswith("_"):
            continue
        if type(value) not in _SCALARS:
            return None
        data[key] = value
    return data


def json_line(data: dict[str, Any]) -> bytes:
    """``json.dumps(data, ensure_ascii=False, sort_keys=True) + "\\n"`` in UTF-8, the same
    bytes: for a flat dict of strings, integers, booleans and None each value is written by
    orjson (which escapes strings and writes those values as json does) and joined with json's
    default separators; anything else is left to json."""
    if _orjson is not None and type(data) is dict:
        parts = []
        try:
            for key in sorted(data):
                value = data[key]
                if type(key) is not str or type(value) not in _SCALARS:
                    parts = None
                    break
                prefix = _KEYS.get(key)
                if prefix is None:
                    prefix = _KEYS[key] = _orjson.dumps(key) + b": "
                    if len(_KEYS) > 1000:
                        _KEYS.clear()
                parts.append(prefix + _orjson.dumps(value))
        except TypeError:  # an integer beyond 64 bits, a lone surrogate: json's turn
            parts = None
        if parts is not None:
            return b"{" + b", ".join(parts) + b"}\n"
    return (json.dumps(data, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")


class CorpusWriterPipeline:
    """Appends one JSON line per document to ``<output_dir>/corpus.jsonl``, flushed per item.

    An item without the provenance of an allow decision (``audit_seq``) is dropped: nothing
    reaches the corpus that the audit log does not account for.

    ``path``: the corpus file; ``on_failure(message)``: the corpus cannot be written (the
    runtime's ``output_failed``: the crawl stops); ``crawler``: its stats and signals.
    """

    def __init__(self, crawler: Crawler, path: Path,
                 on_failure: Callable[[str], None]) -> None:
        self.crawler = crawler
        self.path = Path(path)
        self._on_failure = on_failure
        self._fd: int | None = None
        self._size = 0
        self._failed = False
        crawler.signals.connect(self.close, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CorpusWriterPipeline:
        rt = get_runtime(crawler)
        return cls(crawler, Path(rt.output_dir) / str(polite_setting(crawler,
                                                                     "POLITE_CORPUS_FILE")),
                   rt.output_failed)

    def process_item(self, item: Any, spider: Any = None) -> Any:
        data = _plain_fields(item)
        if data is None:
            data = {k: v for k, v in ItemAdapter(item).asdict().items() if not k.startswith("_")}
        missing = [k for k in REQUIRED if data.get(k) in (None, "")]
        if missing:
            self.crawler.stats.inc_value("polite/corpus/dropped_no_provenance")
            raise DropItem(f"item for {data.get('url')} lacks {', '.join(missing)}")
        if self._failed:
            raise DropItem(f"item for {data.get('url')} not kept: the corpus cannot be written")
        line = json_line(data)
        start = None
        try:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                self._size = os.fstat(self._fd).st_size
            start = self._size
            view = memoryview(line)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
                self._size += n
        except OSError as exc:
            if start is not None:
                self._size = start  # cut back to here: no partial line
            self._write_failed(exc, cut=start is not None)
            raise DropItem(f"item for {data.get('url')} not kept: {exc.strerror or exc}") from None
        self.crawler.stats.inc_value("polite/corpus/documents")
        return item

    def _write_failed(self, exc: OSError, *, cut: bool) -> None:
        """Disk full or I/O error: cut the corpus back to its last whole line (a resumed run
        reads it) and stop the crawl, as for the audit log."""
        self._failed = True
        if cut and self._fd is not None:
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                pass
        self._on_failure(
            f"cannot write the corpus {self.path}: {exc.strerror or exc}")

    def close(self, spider: Any = None, reason: str = "") -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class PdfTextPipeline:
    """Extracts the text of a collected PDF (the corpus spider hands its bytes over as the
    private field ``_pdf``) on a thread of its own, so a slow or hostile PDF never stalls the
    reactor (pypdf is pure Python: bounded by pages and characters in
    :func:`crawler.corpus.documents.pdf_text`, and here by time, ``POLITE_PDF_TEXT_TIMEOUT``).

    A PDF whose text is not out in time keeps its bytes (stored by hash) with ``text`` empty and
    a note; the thread still working on it is left to finish (a daemon thread: it never holds
    the process at exit) and the next PDFs wait behind it (one thread: text extraction holds
    the GIL anyway). Runs before the WARC writer and the corpus writer."""

    def __init__(self, crawler: Crawler, timeout: float) -> None:
        from twisted.internet import reactor

        self.crawler = crawler
        self.timeout = timeout
        self._reactor = reactor
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        crawler.signals.connect(self.close, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> PdfTextPipeline:
        timeout = crawler.settings.getfloat("POLITE_PDF_TEXT_TIMEOUT",
                                            defaults.POLITE_PDF_TEXT_TIMEOUT)
        if not (math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"POLITE_PDF_TEXT_TIMEOUT: {timeout!r} is not a positive number "
                             "of seconds")
        return cls(crawler, timeout)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            d, body = job
            try:
                result = pdf_text(body)
            except BaseException as exc:  # noqa: BLE001 - pdf_text never raises; belt and braces
                result = ("", f"text not extracted ({type(exc).__name__})")
            self._reactor.callFromThread(lambda d=d, r=result: d.called or d.callback(r))

    async def process_item(self, item: Any, spider: Any = None) -> Any:
        if type(item) is not dict or "_pdf" not in item:
            return item
        from twisted.internet.defer import Deferred
        from twisted.internet.defer import TimeoutError as DeferTimeout

        body = item.pop("_pdf")
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="polite-pdf-text",
                                            daemon=True)
            self._thread.start()
        d: Deferred = Deferred()
        d.addTimeout(self.timeout, self._reactor)
        self._jobs.put((d, body))
        try:
            text, note = await maybe_deferred_to_future(d)
        except DeferTimeout:
            self.crawler.stats.inc_value("polite/pdf_text/timeout")
            logger.warning("PDF text of %s not extracted in %g s: kept without text",
                           item.get("url"), self.timeout)
            text, note = "", f"text not extracted: over {self.timeout:g} s"
        item["text"] = text
        if note:
            item["note"] = note
        return item

    def close(self, spider: Any = None, reason: str = "") -> None:
        if self._thread is not None:
            self._jobs.put(None)  # not joined: a thread still in a hostile PDF is a daemon
            self._thread = None
