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
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import HtmlResponse, Request, Response

from crawler.crawl import defaults

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

META_REPLAYED = "polite_replayed"


def previous_run(output_dir: Path, name: str = "run.json") -> dict[str, Any] | None:
    try:
        info = json.loads((output_dir / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def run_finished(info: dict[str, Any]) -> bool:
    """Did the run that wrote ``info`` (``run.json``) finish (frontier exhausted or max_pages
    reached)? A stopped one (SIGTERM/SIGINT: reason ``shutdown``) did not, even in a
    ``run.json`` from an older version that wrote ``finished_at`` for it."""
    from crawler.crawl.runtime import COMPLETED_REASONS

    if not info.get("finished_at"):
        return False
    reason = info.get("finish_reason")
    return reason is None or reason in COMPLETED_REASONS


def sent_pages_per_origin(audit: Path, since: str | None = None) -> dict[str, int]:
    """Page requests sent per origin (``send`` records of pages: not per-origin files, not
    sitemaps, not a redirect hop or retry of a page already counted), from ``since`` (an audit
    ``time``) on: where a resumed run's ``max_pages_per_origin`` starts."""
    from crawler.audit.log import iter_records
    from crawler.policy.network import origin_key

    counts: dict[str, int] = {}
    if not audit.exists():
        return counts
    try:
        for rec in iter_records(audit):
            if (rec.get("decision") != "send" or rec.get("preflight") or rec.get("sitemap")
                    or rec.get("follows") is not None
                    or (since is not None and str(rec.get("time", "")) < since)):
                continue
            try:
                origin = origin_key(str(rec.get("url", "")))
            except ValueError:
                continue
            counts[origin] = counts.get(origin, 0) + 1
    except OSError as exc:
        logger.warning("cannot read %s for the page counts (%s): the cap starts at 0", audit,
                       exc)
    return counts


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


def _decisions(audit: Path) -> Iterator[dict[str, Any]]:
    """The decision records of a log (``allow``/``deny``/``erase``; per-origin file and
    sitemap fetches, other kinds of record, lines that cannot be read and a line torn by a kill left out)."""
    if not audit.exists():
        return
    with open(audit, "rb") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:  # a torn last line (or a torn UTF-8 sequence in it)
                continue
            if (isinstance(rec, dict) and rec.get("decision") in ("allow", "deny", "erase")
                    and isinstance(rec.get("url"), str) and not rec.get("preflight")
                    and not rec.get("sitemap")):  # a sitemap is not a page: its walk asks again
                yield rec


def refused_urls(audit: Path) -> set[str]:
    """URLs whose last decision in a log was a refusal for good (not one only because a
    reservation could not be determined: see :func:`undecided_urls`)."""
    out: set[str] = set()
    for rec in _decisions(audit):
        if rec["decision"] == "deny" and not rec.get("undecided"):
            out.add(rec["url"])
        elif rec["decision"] in ("allow", "deny"):
            out.discard(rec["url"])
    return out


def undecided_urls(audit: Path) -> list[str]:
    """URLs whose last decision in a log was a refusal because a reservation could not be
    determined (an ``undecided`` record: final, e.g. ``deferred_to_next_run``, or still waiting
    for its retry when the run was stopped), in the order they were first refused. The job's
    next run (resumed or repeated) schedules them first."""
    out: dict[str, None] = {}
    for rec in _decisions(audit):
        if rec["decision"] == "deny" and rec.get("undecided"):
            out.setdefault(rec["url"], None)
        elif rec["decision"] in ("allow", "deny"):
            out.pop(rec["url"], None)
    return list(out)


class RecrawlMiddleware:
    """Downloader middleware (order 50: its process_request runs before the reservation
    middleware's, its process_response after it)."""

    def __init__(self, crawler: Crawler) -> None:
        from crawler.crawl.runtime import get_runtime

        rt = get_runtime(crawler)
        prev = rt.previous_run
        if (prev is None
                or not crawler.settings.getbool("POLITE_RESUME", defaults.POLITE_RESUME)
                or crawler.settings.get("POLITE_CLUSTER_REDIS_URL")):
            raise NotConfigured  # (a cluster keeps its queue and seen set in Redis)
        self.crawler = crawler
        self.mode = "recrawl" if run_finished(prev) else "resume"
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
