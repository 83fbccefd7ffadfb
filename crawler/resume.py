"""Resumed and repeated runs of one job (same ``output_dir``).

* **Resume** — the previous run did not finish (``run.json`` has no ``finished_at``: killed,
  crashed, stopped): pages it collected are not fetched again. Their stored HTML is replayed
  to the spider for link extraction only (no new item, no new record), so the crawl rebuilds
  its frontier from what it had and carries on; URLs it already refused stay refused (their
  records stand). The audit chain simply continues. This needs no JOBDIR and survives
  ``kill -9``: corpus lines and audit records are flushed one by one.
* **Re-crawl** — the previous run finished (e.g. last week's scheduled run): every URL is
  decided again (robots.txt and the other per-origin files are fetched afresh), and pages
  already in the corpus are asked for conditionally (``If-None-Match`` / ``If-Modified-Since``
  from the stored ``etag`` / ``last_modified``). A ``304 Not Modified`` is recorded (allow,
  status 304) and the stored HTML is replayed for its links; only what changed is collected.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import HtmlResponse, Request, Response

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

META_REPLAYED = "polite_replayed"


def previous_run(output_dir: Path, name: str = "run.json") -> dict[str, Any] | None:
    try:
        return json.loads((output_dir / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class CorpusIndex:
    """URL -> offset of its latest line in ``corpus.jsonl`` (the documents stay on disk)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offsets: dict[str, int] = {}
        if path.exists():
            with open(path, "rb") as fh:
                offset = 0
                for line in fh:
                    if line.endswith(b"\n"):
                        try:
                            self.offsets[json.loads(line)["url"]] = offset
                        except (ValueError, KeyError):
                            pass
                    offset += len(line)

    def __contains__(self, url: str) -> bool:
        return url in self.offsets

    def __len__(self) -> int:
        return len(self.offsets)

    def get(self, url: str) -> dict[str, Any] | None:
        offset = self.offsets.get(url)
        if offset is None:
            return None
        with open(self.path, "rb") as fh:
            fh.seek(offset)
            return json.loads(fh.readline())


def refused_urls(audit: Path) -> set[str]:
    """URLs whose last decision in a log was a final refusal."""
    out: set[str] = set()
    if not audit.exists():
        return out
    with open(audit, encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            und = rec.get("undecided")
            if rec["decision"] == "deny" and not rec.get("preflight") and (
                    not und or und.get("final")):
                out.add(rec["url"])
            elif rec["decision"] == "allow":
                out.discard(rec["url"])
    return out


class RecrawlMiddleware:
    """Downloader middleware (order 50: its process_request runs before the reservation
    middleware's, its process_response after it)."""

    def __init__(self, crawler: Crawler) -> None:
        from crawler.runtime import get_runtime

        rt = get_runtime(crawler)
        prev = rt.previous_run
        if (prev is None or not crawler.settings.getbool("POLITE_RESUME", True)
                or crawler.settings.get("POLITE_CLUSTER_REDIS_URL")):
            raise NotConfigured  # (a cluster keeps its queue and seen set in Redis)
        self.crawler = crawler
        self.mode = "recrawl" if prev.get("finished_at") else "resume"
        self.corpus = CorpusIndex(rt.output_dir / "corpus.jsonl")
        self.refused = refused_urls(rt.output_dir / "audit.jsonl") if self.mode == "resume" \
            else set()
        logger.info("polite-crawler: %s of job %r: %d documents in the corpus%s", self.mode,
                    prev.get("job"), len(self.corpus),
                    f", {len(self.refused)} URLs refused before" if self.refused else "")
        crawler.stats.set_value("polite/run/mode", self.mode)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RecrawlMiddleware:
        return cls(crawler)

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
