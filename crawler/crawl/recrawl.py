"""The downloader middleware of resumed and repeated runs (:mod:`crawler.crawl.resume` says
what each is): a resumed run replays the pages it had and skips what it refused; a re-crawl
asks conditionally and replays a ``304 Not Modified`` from the corpus."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import HtmlResponse, Request, Response

from crawler.crawl import defaults
from crawler.crawl.resume import CorpusIndex, refused_urls, run_finished
from crawler.crawl.runtime import get_runtime

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

#: request.meta key of a response replayed from the corpus (not fetched)
META_REPLAYED = "polite_replayed"


class RecrawlMiddleware:
    """Downloader middleware (order 50: its process_request runs before the reservation
    middleware's, its process_response after it)."""

    def __init__(self, crawler: Crawler, previous_run: dict[str, Any], output_dir: Path) -> None:
        """``previous_run``: the ``run.json`` the job's previous run left (read before this
        run overwrote it); ``output_dir``: the job's, with its corpus and audit log."""
        prev = previous_run
        self.crawler = crawler
        self.mode = "recrawl" if run_finished(prev) else "resume"
        self.corpus = CorpusIndex(output_dir / "corpus.jsonl")
        self.refused = refused_urls(output_dir / "audit.jsonl") if self.mode == "resume" \
            else set()
        logger.info("polite-crawler: %s of job %r: %d documents in the corpus%s", self.mode,
                    prev.get("job"), len(self.corpus),
                    f", {len(self.refused)} URLs refused before" if self.refused else "")
        crawler.stats.set_value("polite/run/mode", self.mode)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RecrawlMiddleware:
        rt = get_runtime(crawler)
        if (rt.previous_run is None or not crawler.settings.getbool("POLITE_RESUME", defaults.POLITE_RESUME)
                or crawler.settings.get("POLITE_CLUSTER_REDIS_URL")):
            raise NotConfigured  # (a cluster keeps its queue and seen set in Redis)
        return cls(crawler, rt.previous_run, rt.output_dir)

    def process_request(self, request: Request, spider: Any = None) -> Response | None:
        if request.meta.get("polite_preflight") or request.method != "GET":
            return None
        url = request.url
        if self.mode == "resume":
            if url in self.refused:
                self.crawler.stats.inc_value("polite/resume/skipped_refused")
                raise IgnoreRequest("refused in the interrupted run (its record stands)")
            doc = self.corpus.get(url)
            if doc is not None:
                self.crawler.stats.inc_value("polite/resume/replayed")
                return self._replay(request, doc, 200)
            return None
        doc = self.corpus.get(url)
        if doc is not None:
            # a server without validators answers 200: the spider then compares hashes
            request.meta["polite_previous_sha256"] = doc.get("sha256")
            if doc.get("etag"):
                request.headers.setdefault(b"If-None-Match", doc["etag"])
            if doc.get("last_modified"):
                request.headers.setdefault(b"If-Modified-Since", doc["last_modified"])
        return None

    def process_response(self, request: Request, response: Response,
                         spider: Any = None) -> Response:
        if response.status != 304 or request.meta.get("polite_preflight"):
            return response
        doc = self.corpus.get(request.url)
        if doc is None:
            return response
        self.crawler.stats.inc_value("polite/recrawl/not_modified")
        return self._replay(request, doc, 200)

    @staticmethod
    def _replay(request: Request, doc: dict[str, Any], status: int) -> Response:
        request.meta[META_REPLAYED] = True
        body = (doc.get("html") or doc.get("text") or "").encode("utf-8")
        ctype = doc.get("content_type") or "text/html"
        return HtmlResponse(request.url, status=status, body=body, request=request,
                            headers={"Content-Type": f"{ctype}; charset=utf-8"},
                            flags=["replayed"])
