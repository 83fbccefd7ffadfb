"""Item pipelines: the corpus writer."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - a dependency; json alone gives the same lines
    _orjson = None  # type: ignore[assignment]
from scrapy import signals
from scrapy.exceptions import DropItem

from crawler.runtime import get_runtime, polite_setting

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
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.path = Path(get_runtime(crawler).output_dir) / str(
            polite_setting(crawler, "POLITE_CORPUS_FILE"))
        self._fd: int | None = None
        self._size = 0
        self._failed = False
        crawler.signals.connect(self.close, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CorpusWriterPipeline:
        return cls(crawler)

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
        get_runtime(self.crawler).output_failed(
            f"cannot write the corpus {self.path}: {exc.strerror or exc}")

    def close(self, spider: Any = None, reason: str = "") -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
