"""Honour ``Retry-After`` on 429/503 (order 560, before Scrapy's ``RetryMiddleware``):
:class:`RetryAfterMiddleware`, and the header's parser."""

from __future__ import annotations

import logging
import time
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from scrapy.http import Request, Response

from crawler.crawl import defaults
from crawler.crawl.scrapy_internals import (
    hold_slot,
    slot_of,
)
from crawler.crawl.state import state_of

if TYPE_CHECKING:
    from scrapy.crawler import Crawler


logger = logging.getLogger(__name__)


class RetryAfterMiddleware:
    """Honour ``Retry-After`` on 429/503: the origin's slot waits before anything else is sent.

    Runs before Scrapy's ``RetryMiddleware`` sees the response (higher order number). A value
    over ``POLITE_RETRY_AFTER_MAX`` is not waited for: the request is dropped instead.
    """

    def __init__(self, crawler: Crawler, *,
                 max_wait: float = defaults.POLITE_RETRY_AFTER_MAX,
                 paying: bool = False) -> None:
        """``max_wait``: ``POLITE_RETRY_AFTER_MAX``; ``paying``: pay per crawl is on (the
        crawler-error table decides retries then); ``crawler``: its stats and downloader."""
        self.crawler = crawler
        self.max_wait = max_wait
        self.paying = paying

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RetryAfterMiddleware:
        s = crawler.settings
        return cls(crawler,
                   max_wait=s.getfloat("POLITE_RETRY_AFTER_MAX", defaults.POLITE_RETRY_AFTER_MAX),
                   paying=bool(s.get("POLITE_PAYMENT_MAX_PRICE")
                               or s.get("POLITE_PAYMENT_BUDGET")))

    def process_response(self, request: Request, response: Response,
                         spider: Any = None) -> Response:
        if self.paying and (b"crawler-error" in response.headers
                            or state_of(request).payment_reserved_at_headers):
            # pay per crawl: the crawler-error table decides (InternalError is retried with
            # its own back-off, and the payment held for it), not Scrapy's RetryMiddleware
            request.meta["dont_retry"] = True
        if response.status not in (429, 503):
            return response
        wait = parse_retry_after(response.headers.get(b"Retry-After"))
        if wait is None:
            return response
        stats = self.crawler.stats
        if wait > self.max_wait:
            stats.inc_value("polite/retry_after/too_long")
            logger.warning("%s asks to retry after %.0f s (> %.0f s): not retried",
                           request.url, wait, self.max_wait)
            request.meta["dont_retry"] = True
            return response
        slot = slot_of(self.crawler, request)
        if slot is not None:
            # nothing leaves this origin's slot before `wait` has passed
            hold_slot(slot, wait)
            stats.inc_value("polite/retry_after/honoured")
            logger.info("%s: HTTP %d with Retry-After %.0f s; the origin waits",
                        request.url, response.status, wait)
        return response


def parse_retry_after(value: bytes | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or HTTP-date)."""
    if not value:
        return None
    text = value.decode("latin-1").strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when - (time.time() if now is None else now))
