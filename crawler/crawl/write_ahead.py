"""The write-ahead record of every request that leaves (order 990):
:class:`WriteAheadMiddleware`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scrapy.exceptions import IgnoreRequest
from scrapy.http import Request

from crawler.crawl.decisions import META_FOLLOWS, META_SEND, AuditUnavailable
from crawler.crawl.meta import (
    META_SITEMAP,
    error_text,
    is_preflight,
)
from crawler.crawl.runtime import get_runtime
from crawler.crawl.sitecache import PREFLIGHT_META
from crawler.crawl.state import state_of, update

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from crawler.crawl.decisions import DecisionFunnel


class WriteAheadMiddleware:
    """Commit the decision to send every request before it leaves (order 990: after every
    other downloader middleware's ``process_request``, the cluster gate's grant included).

    The ``send`` record names the previous hop it follows (a redirect or retry) and carries the
    evidence the request was allowed on; the request's outcome later names it (``request_seq``).
    A download that fails gets a ``result`` record. A request whose record cannot be written is
    not sent (``AuditUnavailable``). Requests to the operator's own registry API are not crawl
    targets and get no record.
    """

    def __init__(self, funnel: DecisionFunnel) -> None:
        self.funnel = funnel

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> WriteAheadMiddleware:
        return cls(get_runtime(crawler).funnel)

    def process_request(self, request: Request, spider: Any = None) -> None:
        if request.meta.get("polite_trusted") and is_preflight(request):
            return
        meta = request.meta
        extra: dict[str, Any] = {}
        if is_preflight(request):
            extra["preflight"] = meta[PREFLIGHT_META]
        elif meta.get(META_SITEMAP):
            extra["sitemap"] = True
        follows = meta.pop(META_FOLLOWS, None)
        if follows is not None:
            extra["follows"] = follows
            previous = state_of(request).send_url
            if previous is not None and previous != request.url:
                extra["via"] = "redirect"
                extra["redirected_from"] = previous
                reasons = meta.get("redirect_reasons") or []
                if reasons:
                    extra["redirect_status"] = reasons[-1]
            else:
                extra["via"] = "retry"
        if meta.get("retry_times"):
            extra["attempt"] = meta["retry_times"] + 1
        checks = state_of(request).checks
        rec = self.funnel.send(request, checks=() if checks is None else checks, extra=extra)
        meta[META_SEND] = rec["seq"]
        update(request, send_url=request.url)

    def process_exception(self, request: Request, exception: BaseException,
                          spider: Any = None) -> None:
        sent = request.meta.get(META_SEND)
        if sent is None or state_of(request).denied or isinstance(exception, IgnoreRequest):
            return  # never sent, or already concluded by its refusal record
        try:
            self.funnel.result(request.url, "failed", request_seq=sent,
                               extra={"error": error_text(exception)})
        except AuditUnavailable:
            pass  # the crawl is stopping; the send record stands (outcome unknown)


