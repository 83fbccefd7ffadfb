"""The corpus spider: crawl from a job config's seeds, keep what no reservation forbids.

``scrapy crawl corpus -a config=configs/demo.yaml`` and ``polite-crawl run configs/demo.yaml``
run the same crawl: the spider loads the config and applies its settings in
``from_crawler`` (before Scrapy freezes them).
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import scrapy
from lxml import etree
from parsel.csstranslator import GenericTranslator, HTMLTranslator
from scrapy.http import Response, TextResponse

from crawler.config.job import JobConfig, load_config
from crawler.corpus.documents import BlobStore, document_kind, sniff_image
from crawler.corpus.sitemap_reader import MAX_BYTES, SitemapSource
from crawler.corpus.sitemaps import SitemapWalk, lastmod_not_after, sitemap_limits
from crawler.crawl import defaults
from crawler.crawl.addon import Addon
from crawler.crawl.links import link_urls
from crawler.crawl.meta import META_SITEMAP, audit_of, origin_of
from crawler.crawl.resume import CorpusIndex, run_finished, undecided_urls
from crawler.crawl.runtime import get_runtime, polite_setting
from crawler.crawl.sitecache import META_BODY, META_RAW
from crawler.crawl.state import state_of
from crawler.policy.network import origin_key

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
    #: the job's ``scope:`` and ``sitemaps:`` apply to this crawl; the spiders built on this
    #: one that do not crawl (check, revalidate) decide their URLs without them
    crawls = True

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
        if not cls.crawls:  # scope narrows a crawl; checking a URL is not crawling it
            crawler.settings.setdict({"POLITE_SCOPE": {}, "POLITE_SITEMAPS": None},
                                     priority="spider")
        from crawler.corpus.maintext import TEXT_MODES

        if crawler.settings.get("POLITE_TEXT", defaults.POLITE_TEXT) not in TEXT_MODES:
            raise ValueError(f"POLITE_TEXT: {crawler.settings.get('POLITE_TEXT')!r} is not one "
                             f"of {', '.join(TEXT_MODES)}")
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
            from crawler.cluster.worker import cluster_start_requests  # needs the extra

            for request in cluster_start_requests(self.crawler, self):
                yield request
            return
        for request in self._undecided_first():
            yield request
        self._warn_seeds_out_of_scope()
        for url in self.job.seeds:
            yield scrapy.Request(url, callback=self.parse)
        async for request in self._sitemaps_start():
            yield request

    def _undecided_first(self) -> Iterator[scrapy.Request]:
        """URLs the job's previous runs left undecided (a reservation could not be determined,
        e.g. robots.txt answered 503 until the run stopped waiting): decided first, before the
        seeds, in a resumed as in a repeated run (not with ``POLITE_RESUME: false``)."""
        if not self.settings.getbool("POLITE_RESUME", defaults.POLITE_RESUME):
            return
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
        audit = audit_of(response)
        ctype = response.headers.get(b"Content-Type", b"").decode("latin-1")
        mime = ctype.split(";")[0].strip().lower()
        body_sha = hashlib.sha256(response.body).hexdigest()
        unchanged = response.meta.get("polite_previous_sha256") == body_sha
        if unchanged:
            self.crawler.stats.inc_value("polite/recrawl/unchanged_body")
        st = state_of(response)
        kind = st.kind
        if kind is None:  # without our middleware's document stage: told here
            kind = document_kind(response.body, mime, is_html=mime in _TEXT_TYPES[:2])
        collected = st.collect if st.collect is not None else kind in self.job.collect
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
                    item["text"], item["text_mode"] = _page_text(self, response)
            yield item
        if isinstance(response, TextResponse) and mime in _TEXT_TYPES[:2]:
            yield from self._follow(response)

    def _document(self, response: Response, kind: str, item: dict[str, Any]) -> None:
        """A PDF or an image: its bytes stored by content hash under the output directory
        (``file``), a PDF's text extracted (bounded), an image's sniffed type and size."""
        store = getattr(self, "_blobs", None)
        if store is None:
            store = self._blobs = BlobStore(get_runtime(self.crawler).output_dir)
        item["kind"] = kind
        item["file"] = store.put(response.body, item["sha256"])
        if kind == "pdf":
            # its text is extracted by PdfTextPipeline, on a thread of its own (bounded in
            # time; pypdf never runs in the reactor thread)
            item["_pdf"] = response.body
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

    @functools.cached_property
    def follow_mode(self) -> str:
        """POLITE_FOLLOW (``-s`` wins over the config's ``follow:``), read once: the settings
        are frozen once the crawl runs. A spider built without a crawler (``seed --restore``
        reads links) has no settings: the config's."""
        settings = getattr(self, "settings", None)
        return str((settings.get("POLITE_FOLLOW") if settings is not None else None)
                   or self.job.follow)

    def _follow(self, response: TextResponse) -> Iterator[scrapy.Request]:
        mode = self.follow_mode
        if mode == "none":
            return
        here = origin_of(response.request) if response.request else None
        host = urlsplit(response.url).hostname
        scope = self._scope()
        for url in link_urls(response, self.job.collect):  # LinkExtractor's URLs (+ img)
            target = scrapy.Request(url, callback=self.parse)
            if mode == "same-origin" and origin_of(target) != here:
                continue
            if mode == "same-host" and urlsplit(url).hostname != host:
                continue
            if scope is not None and not scope.decide(target.url)[0]:
                # outside scope.include/exclude (or its origin's page cap reached): never
                # requested, counted, no record per link (as links outside ``follow``)
                self.crawler.stats.inc_value("polite/scope/out")
                continue
            yield target

    # -- scope ----------------------------------------------------------------------------
    def _scope(self) -> Any:
        """The run's :class:`crawler.policy.scope.Scope` (the runtime's, shared with the reservation
        middleware, which enforces the page cap just before each request is sent)."""
        scope = getattr(self, "_scope_obj", None)
        if scope is None:
            scope = self._scope_obj = get_runtime(self.crawler).scope
        return scope

    def _warn_seeds_out_of_scope(self) -> None:
        scope = self._scope()
        out = [(u, why) for u, ok, why in scope.filter(self.job.seeds) if not ok]
        if out:  # still yielded: the reservation middleware refuses them with a record
            self.logger.warning("%d seed%s outside the job's scope, refused (signal scope): "
                                "%s (%s)", len(out), "" if len(out) == 1 else "s", out[0][0],
                                out[0][1])

    # -- sitemaps -------------------------------------------------------------------------
    async def _sitemaps_start(self) -> AsyncIterator[scrapy.Request]:
        """``sitemaps:`` on: for each seed origin, the sitemaps its robots.txt names (the
        file the reservation checks read: fetched once, cached), or ``/sitemap.xml`` when it
        names none. Each is a request to its origin like any page (decided against every
        reservation, audited), handled by :meth:`parse_sitemap`."""
        try:
            limits = sitemap_limits(self.settings.get("POLITE_SITEMAPS"))
        except ValueError as exc:
            self.logger.error("sitemaps off: %s", exc)
            return
        if limits is None:
            return
        rt = get_runtime(self.crawler)
        self._walks: dict[str, Any] = {}
        self._proposed: dict[str, int] = {}  # page URLs taken from sitemaps, per origin
        from scrapy import signals

        self.crawler.signals.connect(self._sitemaps_closed, signal=signals.spider_closed)
        stats = self.crawler.stats
        for origin in dict.fromkeys(origin_key(u) for u in self.job.seeds):
            walk = self._walks[origin] = SitemapWalk(origin, limits)
            robots = await rt.sitecache.get(origin, "robots.txt")
            named = (robots.parsed.sitemaps if robots.outcome == "parsed"
                     and robots.parsed is not None else ())
            if named:
                walk.add_from_robots(origin + "/robots.txt", named)
            elif robots.outcome == "unreachable":
                # the origin is refused anyway (fail closed): nothing to discover there now
                walk.problems.append(f"robots.txt of {origin} unreachable: no sitemaps read")
            else:  # robots.txt names none (or there is none): the conventional location
                walk.add(origin + "/sitemap.xml")
                stats.inc_value("polite/sitemap/default_location")
            for src in iter(walk.next, None):
                yield self._sitemap_request(src, origin)

    def _sitemap_request(self, src: Any, origin: str) -> scrapy.Request:
        return scrapy.Request(
            src.url, callback=self.parse_sitemap, errback=self._sitemap_failed,
            meta={META_SITEMAP: {"url": src.url, "depth": src.depth,
                                 "vouched_by": list(src.vouched_by), "origin": origin},
                  # cut at the protocol's 50 MB (the entries before the cut are used) rather
                  # than failed whole at DOWNLOAD_MAXSIZE
                  "polite_maxsize": MAX_BYTES, "download_maxsize": 0, "depth_reset": True})

    @staticmethod
    def _source(meta: dict[str, Any]) -> Any:
        m = meta[META_SITEMAP]
        return SitemapSource(m["url"], m["depth"], tuple(m["vouched_by"])), m["origin"]

    def parse_sitemap(self, response: Response) -> Iterator[scrapy.Request]:
        """A fetched sitemap, allowed by every reservation check: its page URLs (within
        ``follow`` and ``scope``; a re-crawl skips those whose ``lastmod`` is not after the
        stored copy) and the child sitemaps of an index. Never an item: a sitemap is not
        corpus."""
        src, origin = self._source(response.meta)
        walk = self._walks[origin]
        body_state = response.meta.get(META_BODY) or {}
        if not 200 <= response.status < 300:
            walk.failed(src, f"HTTP {response.status}")
            return
        f = walk.feed(src, response.body, received_all=bool(body_state.get("complete", True)))
        stats = self.crawler.stats
        stats.inc_value("polite/sitemap/files")
        stats.inc_value("polite/sitemap/urls", len(f.urls))
        if f.dropped:
            stats.inc_value("polite/sitemap/dropped", f.dropped)
        if not f.complete:
            stats.inc_value("polite/sitemap/incomplete")
        self.logger.info("sitemap %s (%s%s): %d URLs, %d sitemaps%s", f.url, f.kind or "?",
                         ", gzip" if f.gzipped else "", len(f.urls), len(f.sitemaps),
                         f"; {'; '.join(f.problems[:3])}" if f.problems else "")
        # -s wins; a spider built without a crawler (seed --restore reads links) has no settings
        settings = getattr(self, "settings", None)
        mode = str((settings.get("POLITE_FOLLOW") if settings is not None else None)
                   or self.job.follow)
        scope = self._scope()
        for entry in f.urls:
            # a listed page is a seed: depth 0 (Scrapy >= 2.18 ``depth_reset``), so that
            # max_depth counts links from it, not the index levels above it
            target = scrapy.Request(entry.loc, callback=self.parse, meta={"depth_reset": True})
            # the listed pages are seeds of the seed origin: follow: none still takes them;
            # same-host widens to the seed's host (a cross-submitted sitemap's own pages on
            # another origin are not taken)
            if (urlsplit(entry.loc).hostname != urlsplit(origin).hostname
                    if mode == "same-host" else origin_of(target) != origin):
                stats.inc_value("polite/sitemap/outside_follow")
                continue
            if not scope.decide(target.url)[0]:
                stats.inc_value("polite/scope/out")
                continue
            if self._unchanged_since_stored(target.url, entry, src):
                continue
            cap = scope.config.max_pages_per_origin
            if cap:
                # a sitemap proposes at most the cap's worth of pages per origin: a 50,000-URL
                # sitemap under a 500-page cap would otherwise queue 49,500 URLs, each to be
                # refused with a record
                key = origin_of(target)
                proposed = self._proposed.get(key, 0)
                if proposed >= cap:
                    stats.inc_value("polite/sitemap/over_cap")
                    continue
                self._proposed[key] = proposed + 1
            yield target
        for nxt in iter(walk.next, None):
            yield self._sitemap_request(nxt, origin)

    def _sitemaps_closed(self, spider: Any = None, reason: str = "") -> None:
        """Each origin's walk in one log line: files read, URLs, what went wrong."""
        for origin, walk in getattr(self, "_walks", {}).items():
            self.crawler.stats.inc_value("polite/sitemap/problems", len(walk.problems))
            self.logger.info("sitemaps of %s: %d files, %d URLs%s", origin, walk.files,
                             walk.urls, "; " + "; ".join(walk.problems[:5]) if walk.problems
                             else "")

    def _sitemap_failed(self, failure: Any) -> None:
        """A sitemap not read: refused by a reservation (its record says which), a 4xx/5xx,
        a network error. Discovery only: noted, not retried in this run."""
        request = getattr(failure, "request", None)
        if request is None or META_SITEMAP not in request.meta:
            return
        src, origin = self._source(request.meta)
        reason = str(failure.value) or type(failure.value).__name__
        self._walks[origin].failed(src, reason[:200])
        self.crawler.stats.inc_value("polite/sitemap/failed")
        self.logger.info("sitemap %s not read: %s", src.url, reason[:200])

    def _unchanged_since_stored(self, url: str, entry: Any, src: Any) -> bool:
        """Re-crawl and ``<lastmod>``: a page the corpus already holds whose sitemap
        ``lastmod`` is not after the stored copy's ``fetched_at`` is not requested from the
        sitemap (a result record ``sitemap-unchanged`` says so; a link may still reach it).
        Any doubt (no lastmod, a date that reaches past the fetch, a resumed run) fetches it:
        then the conditional GET of the re-crawl applies."""
        if not entry.lastmod:
            return False
        index = getattr(self, "_stored", False)
        if index is False:
            index = self._stored = self._corpus_for_recrawl()
        if index is None:
            return False
        doc = index.get(url)
        if doc is None or not lastmod_not_after(entry.lastmod, doc.get("fetched_at")):
            return False
        get_runtime(self.crawler).funnel.result(
            url, "sitemap-unchanged", request_seq=None,
            extra={"listed_in": src.url, "lastmod": entry.lastmod,
                   "stored_fetched_at": doc.get("fetched_at"),
                   "stored_audit_seq": doc.get("audit_seq")})
        return True

    def _corpus_for_recrawl(self) -> Any:
        """The stored corpus in a re-crawl (the job's previous run finished), else None."""
        rt = get_runtime(self.crawler)
        if (rt.previous_run is None or not run_finished(rt.previous_run)
                or not self.settings.getbool("POLITE_RESUME", defaults.POLITE_RESUME)):
            return None
        return CorpusIndex(rt.output_dir / str(polite_setting(self.crawler,
                                                              "POLITE_CORPUS_FILE")))


def _title(response: TextResponse) -> str:
    """``(response.css("title::text").get() or "").strip()``"""
    selector = response.selector
    found = _TITLE["xml" if selector.type == "xml" else "html"](selector.root)
    return (str(found[0]) if found else "").strip()


def _visible_text(response: TextResponse) -> str:
    parts = _VISIBLE_TEXT(response.selector.root)
    return " ".join(" ".join(p.split()) for p in parts if p.strip())


def _page_text(spider: CorpusSpider, response: TextResponse) -> tuple[str, str]:
    """(text, text_mode) of an HTML page: its main content (``POLITE_TEXT: main``, see
    crawler/corpus/maintext.py), else, or when none is found, its visible text."""
    if polite_setting(spider.crawler, "POLITE_TEXT") == "visible":
        return _visible_text(response), "visible"
    from crawler.corpus.maintext import FALLBACK_MODE, main_text

    found = main_text(response.selector.root, response.text, url=response.url, max_elements=int(
        polite_setting(spider.crawler, "POLITE_TEXT_MAX_ELEMENTS")))
    stats = spider.crawler.stats
    if found.text is not None:
        stats.inc_value("polite/text/main")
        return found.text, "main"
    stats.inc_value(f"polite/text/{FALLBACK_MODE}/{found.problem.split(':')[0]}")
    spider.logger.log(logging.DEBUG if found.problem == "no-main-content" else logging.WARNING,
                      "%s: no main text (%s); the visible text is kept", response.url,
                      found.problem)
    return _visible_text(response), FALLBACK_MODE


def _is_our_addon(key: Any) -> bool:
    return key is Addon or key in ("crawler.addon.Addon", "crawler.crawl.addon.Addon")
