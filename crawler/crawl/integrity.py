"""Decode every response body strictly before Scrapy's lenient decompression, and note cut or
undecodable bodies (fail closed): :class:`ContentIntegrityMiddleware` (order 595)."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from scrapy.http import Request, Response, TextResponse
from scrapy.responsetypes import responsetypes

from crawler.crawl import defaults
from crawler.crawl.meta import (
    content_length_of,
    is_preflight,
)
from crawler.crawl.sitecache import META_BODY, META_RAW, PREFLIGHT_META
from crawler.optout.content import decode_content

if TYPE_CHECKING:
    from scrapy.crawler import Crawler


logger = logging.getLogger(__name__)


class ContentIntegrityMiddleware:
    """Decode every response body strictly, before Scrapy's lenient ``HttpCompressionMiddleware``.

    Sits at 595, between ``HttpCompressionMiddleware`` (590) and ``RedirectMiddleware`` (600),
    so it sees each final response first with its body as received. It undoes the
    ``Content-Encoding`` itself (:func:`crawler.optout.content.decode_content`) and drops the
    header, so Scrapy's middleware has nothing left to guess at, and it records in
    ``request.meta["polite_body"]`` whether the body is complete (not cut by a size cap or a
    stopped download) and whether it could be decoded at all. The reservation middleware and the
    per-origin file cache read that record: a body that could not be read completely is never
    taken for one that states no reservation.

    The response as received (headers with their ``Content-Encoding``, the still-encoded body)
    is kept in ``request.meta["polite_raw"]`` for per-origin files (their evidence sidecar) and,
    when the WARC is written (``POLITE_WARC``), for every page: the WARC records what the server
    sent. References only (no copy); with the WARC off a page costs one dict lookup.
    """

    def __init__(self, crawler: Crawler, *, page_max: int, keep_raw: bool = False) -> None:
        """``page_max``: a page's decoded size at most (``DOWNLOAD_MAXSIZE``); ``keep_raw``:
        keep every page as received (the WARC is written, ``POLITE_WARC``)."""
        self.crawler = crawler
        self.page_max = page_max
        self.keep_raw = keep_raw

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ContentIntegrityMiddleware:
        return cls(crawler, page_max=crawler.settings.getint("DOWNLOAD_MAXSIZE"),
                   keep_raw=crawler.settings.getbool("POLITE_WARC", defaults.POLITE_WARC))

    def process_response(self, request: Request, response: Response,
                         spider: Any = None) -> Response:
        if request.method == "HEAD":
            return response
        raw = response.body
        flags = response.flags or []
        received_all = "dataloss" not in flags and (
            "download_stopped" not in flags or content_length_of(response) == len(raw))
        codings = response.headers.getlist(b"Content-Encoding")
        raw_record = None
        if self.keep_raw or PREFLIGHT_META in request.meta:
            raw_record = request.meta[META_RAW] = {"headers": response.headers, "body": raw,
                                                   "complete": received_all, "decoded": False}
        if received_all and not codings:
            request.meta[META_BODY] = {"complete": True, "error": None, "problems": []}
            return response
        cap = request.meta.get("polite_maxsize") or request.meta.get(
            "download_maxsize", self.page_max)
        got = decode_content(raw, codings, received_all=received_all, max_size=cap)
        if got.over_limit and not is_preflight(request):
            # a page (not a per-origin file, read in part by design) that decodes to more than
            # DOWNLOAD_MAXSIZE: Scrapy would drop it; we refuse it with a record instead
            got = replace(got, error=f"decoded body over the {cap}-byte limit "
                          "(DOWNLOAD_MAXSIZE)")
        request.meta[META_BODY] = {"complete": got.complete, "error": got.error,
                                   "problems": list(got.problems)}
        stats = self.crawler.stats
        if got.error is not None:
            stats.inc_value("polite/body/undecodable")
            logger.warning("%s: %s", response.url, got.error)
            # refused downstream, nothing of it used; the header goes so that no lenient
            # decoder after us turns it into "as much as possible" (or an exception)
            headers = response.headers.copy()
            del headers[b"Content-Encoding"]
            return response.replace(headers=headers, flags=[*flags, "polite-undecodable"])
        if not got.complete:
            stats.inc_value("polite/body/incomplete")
        if not codings:
            return response
        headers = response.headers.copy()
        del headers[b"Content-Encoding"]
        if raw_record is not None:
            raw_record["decoded"] = True
        respcls = responsetypes.from_args(headers=headers, url=response.url, body=got.body)
        kwargs: dict[str, Any] = {"body": got.body, "headers": headers}
        if issubclass(respcls, TextResponse):
            kwargs["encoding"] = None  # re-detect from the decoded body, as Scrapy does
        return response.replace(cls=respcls, **kwargs)
