"""The corpus spider: crawl from a job config's seeds, keep what no reservation forbids.

``scrapy crawl corpus -a config=configs/demo.yaml`` and ``polite-crawl run configs/demo.yaml``
run the same crawl: the spider loads the config and applies its settings in
``from_crawler`` (before Scrapy freezes them).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import scrapy
from lxml import etree
from parsel.csstranslator import GenericTranslator, HTMLTranslator
from scrapy.http import Response, TextResponse

from crawler.addon import Addon
from crawler.config import JobConfig, load_config
from crawler.links import link_urls
from crawler.documents import BlobStore, document_kind, pdf_text, sniff_image
from crawler.middlewares import META_AUDIT, META_COLLECT, META_KIND, origin_of
from crawler.sitecache import META_RAW

_TEXT_TYPES = ("text/html", "application/xhtml+xml", "text/plain")
#: ``response.css("title::text")`` and the visible-text XPath, compiled once and run on the
#: response's parsed document (the same lxml evaluation parsel runs, without a Selector for
#: every text node)
_TITLE = {kind: etree.XPath(translator.css_to_xpath("title::text"), smart_strings=False)
          for kind, translator in (("html", HTMLTranslator()), ("xml", GenericTranslator()))}
_VISIBLE_TEXT = etree.XPath(
    "//body//text()[not(ancestor::script) and not(ancestor::style)"
    " and not(ancestor::noscript)]", smart_strings=False)
#: Priority of the URLs a previous run left undecided (seeds and links have 0; per-origin
#: files are fetched outside the scheduler).
UNDECIDED_PRIORITY = 100


class CorpusSpider(scrapy.Spider):
    name = "corpus"
    job: JobConfig

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, config: str | None = None,
                     worker: str | None = None, **kwargs: Any) -> CorpusSpider:
        if not config:
            raise ValueError("the corpus spider needs a job config: -a config=PATH.yaml")
        job = load_config(config)
        crawler.settings.setdict(job.scrapy_settings(), priority="spider")
        # its output is the corpus: the corpus pipeline on, and the add-on's item provenance
        # off (these items carry audit_seq and audit_hash), unless the config's settings or
        # the command line say otherwise
        for name, value in (("POLITE_CORPUS_ENABLED", True), ("POLITE_ITEM_PROVENANCE", False)):
            if name not in job.settings:
                crawler.settings.set(name, value, priority="spider")
        if worker:
            if not job.cluster_redis_url:
                raise ValueError("a worker name needs a cluster job: cluster: {redis_url: ...}")
            from crawler.cluster import apply_cluster_settings

            apply_cluster_settings(crawler.settings, job.cluster_redis_url, job.job, worker)
        crawler.settings.set("POLITE_CONFIG_PATH", str(job.path) if job.path else None,
                             priority="spider")
        addons = crawler.settings.getdict("ADDONS")
        if not any(_is_our_addon(k) for k in addons):
            crawler.settings["ADDONS"][Addon] = 100
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.job = job
        return spider

    async def start(self) -> AsyncIterator[Any]:
        if self.settings.get("POLITE_CLUSTER_REDIS_URL"):
            from crawler.cluster.seeds import cluster_start_requests

            for request in cluster_start_requests(self.crawler, self):
                yield request
            return
        for request in self._undecided_first():
            yield request
        for url in self.job.seeds:
            yield scrapy.Request(url, callback=self.parse)

    def start_requests(self) -> Iterator[Any]:  # Scrapy < 2.13
        yield from self._undecided_first()
        for url in self.job.seeds:
            yield scrapy.Request(url, callback=self.parse)

    def _undecided_first(self) -> Iterator[scrapy.Request]:
        """URLs the job's previous runs left undecided (a reservation could not be determined,
        e.g. robots.txt answered 503 until the run stopped waiting): decided first, before the
        seeds, in a resumed as in a repeated run (not with ``POLITE_RESUME: false``)."""
        if not self.settings.getbool("POLITE_RESUME", True):
            return
        from crawler.resume import undecided_urls
        from crawler.runtime import get_runtime, polite_setting

        audit = get_runtime(self.crawler).output_dir / str(
            polite_setting(self.crawler, "POLITE_AUDIT_FILE"))
        urls = undecided_urls(audit)
        if urls:
            self.logger.info("%d URLs left undecided by the previous run are decided first",
                             len(urls))
            self.crawler.stats.set_value("polite/undecided/from_previous_run", len(urls))
        for url in urls:
            yield scrapy.Request(url, callback=self.parse, priority=UNDECIDED_PRIORITY)

    def parse(self, response: Response) -> Iterator[Any]:
        audit = response.meta.get(META_AUDIT)
        ctype = response.headers.get(b"Content-Type", b"").decode("latin-1")
        mime = ctype.split(";")[0].strip().lower()
        body_sha = hashlib.sha256(response.body).hexdigest()
        unchanged = response.meta.get("polite_previous_sha256") == body_sha
        if unchanged:
            self.crawler.stats.inc_value("polite/recrawl/unchanged_body")
        kind = response.meta.get(META_KIND)
        if kind is None:  # without our middleware's document stage: told here
            kind = document_kind(response.body, mime, is_html=mime in _TEXT_TYPES[:2])
        collected = response.meta.get(META_COLLECT, kind in self.job.collect)
        if (audit and response.status == 200 and not response.meta.get("polite_replayed")
                and not unchanged and collected and kind in ("html", "text", "pdf", "image")):
            item: dict[str, Any] = {
                "url": response.url,
                "fetched_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "status": response.status,
                "content_type": mime or "application/octet-stream",
                "sha256": body_sha,
                "bytes": len(response.body),
                "audit_seq": audit["seq"],
                "audit_hash": audit["hash"],
                "job": self.job.job,
            }
            for key, header in (("etag", b"ETag"), ("last_modified", b"Last-Modified")):
                value = response.headers.get(header)
                if value:
                    item[key] = value.decode("latin-1")
            if self.job.warc:
                # the response as received (ContentIntegrityMiddleware kept it): the raw,
                # still-encoded body and its headers; the corpus keeps the decoded text
                raw = response.meta.get(META_RAW)
                if raw is not None and not raw["decoded"] and raw["body"] is not response.body:
                    raw = None  # replaced after the middleware: not known to be as received
                item["_warc"] = {
                    "request_headers": response.request.headers,
                    "response_headers": raw["headers"] if raw else response.headers,
                    "body": raw["body"] if raw else response.body,
                    "as_received": raw is not None,
                    "complete": raw["complete"] if raw else True,
                    "content_sha256": body_sha,
                    "protocol": getattr(response, "protocol", None),
                    "ip_address": str(response.ip_address or "") or None}
            if kind in ("pdf", "image"):
                self._document(response, kind, item)
            elif isinstance(response, TextResponse) and mime in _TEXT_TYPES:
                if mime == "text/plain":
                    item["text"] = response.text
                else:
                    item["html"] = response.text
                    item["title"] = _title(response)
                    item["text"] = _visible_text(response)
            yield item
        if isinstance(response, TextResponse) and mime in _TEXT_TYPES[:2]:
            yield from self._follow(response)

    def _document(self, response: Response, kind: str, item: dict[str, Any]) -> None:
        """A PDF or an image: its bytes stored by content hash under the output directory
        (``file``), a PDF's text extracted (bounded), an image's sniffed type and size."""
        store = getattr(self, "_blobs", None)
        if store is None:
            from crawler.runtime import get_runtime

            store = self._blobs = BlobStore(get_runtime(self.crawler).output_dir)
        item["kind"] = kind
        item["file"] = store.put(response.body, item["sha256"])
        if kind == "pdf":
            text, note = pdf_text(response.body)
            item["text"] = text
            if note:
                item["note"] = note
            self.crawler.stats.inc_value("polite/collected/pdf")
        else:
            info = sniff_image(response.body)
            if info is not None:
                item["image_type"] = info.mime
                if info.width is not None:
                    item["width"], item["height"] = info.width, info.height
            else:
                item["image_type"] = item["content_type"]
                item["note"] = "image type not recognised from its bytes: as labelled"
            self.crawler.stats.inc_value("polite/collected/image")

    def _follow(self, response: TextResponse) -> Iterator[scrapy.Request]:
        mode = self.job.follow
        if mode == "none":
            return
        here = origin_of(response.request) if response.request else None
        host = urlsplit(response.url).hostname
        for url in link_urls(response, self.job.collect):  # LinkExtractor's URLs (+ img)
            target = scrapy.Request(url, callback=self.parse)
            if mode == "same-origin" and origin_of(target) != here:
                continue
            if mode == "same-host" and urlsplit(url).hostname != host:
                continue
            yield target


def _title(response: TextResponse) -> str:
    """``(response.css("title::text").get() or "").strip()``"""
    selector = response.selector
    found = _TITLE["xml" if selector.type == "xml" else "html"](selector.root)
    return (str(found[0]) if found else "").strip()


def _visible_text(response: TextResponse) -> str:
    parts = _VISIBLE_TEXT(response.selector.root)
    return " ".join(" ".join(p.split()) for p in parts if p.strip())


def _is_our_addon(key: Any) -> bool:
    return key is Addon or key == "crawler.addon.Addon"
