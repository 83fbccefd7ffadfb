"""Item pipelines: the corpus writer."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter
from scrapy import signals
from scrapy.exceptions import DropItem

from crawler.runtime import get_runtime, polite_setting

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

REQUIRED = ("url", "fetched_at", "status", "content_type", "sha256", "audit_seq")


class CorpusWriterPipeline:
    """Appends one JSON line per document to ``<output_dir>/corpus.jsonl``, flushed per item.

    An item without the provenance of an allow decision (``audit_seq``) is dropped: nothing
    reaches the corpus that the audit log does not account for.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.path = Path(get_runtime(crawler).output_dir) / str(
            polite_setting(crawler, "POLITE_CORPUS_FILE"))
        self._fh: Any = None
        crawler.signals.connect(self.close, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CorpusWriterPipeline:
        return cls(crawler)

    def process_item(self, item: Any, spider: Any = None) -> Any:
        data = {k: v for k, v in ItemAdapter(item).asdict().items() if not k.startswith("_")}
        missing = [k for k in REQUIRED if data.get(k) in (None, "")]
        if missing:
            self.crawler.stats.inc_value("polite/corpus/dropped_no_provenance")
            raise DropItem(f"item for {data.get('url')} lacks {', '.join(missing)}")
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self._fh.write(json.dumps(data, ensure_ascii=False, sort_keys=True) + "\n")
        self._fh.flush()
        self.crawler.stats.inc_value("polite/corpus/documents")
        return item

    def close(self, spider: Any = None, reason: str = "") -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
