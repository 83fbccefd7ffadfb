"""The check spider behind ``polite-crawl check``: decide, never collect.

Each URL goes through the same reservation stages as a crawl; nothing is stored (the corpus
pipeline is off and the audit log goes to a temporary directory). With ``no_fetch`` only the
site-level signals are consulted and the URL itself is never requested.

A URL list (``from_file``, one URL a line) may hold millions of URLs over few origins: with
``no_fetch``, the first URL of each origin goes through the engine (its per-origin files are
fetched, the network guard and the registries asked), and the origin's other URLs wait for it;
from then on, a URL whose origin's files are cached is decided in place
(:meth:`ReservationMiddleware.decide_from_cache`: the same stages, the same record) and its
records are committed in batches (nothing is sent, so nothing acts on a record before its
batch is written). Any URL that cannot be decided so (a file to fetch again, an undetermined
verdict, a name to resolve) goes through the engine as before.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import scrapy
from scrapy.http import Response
from scrapy.utils.defer import maybe_deferred_to_future

from crawler.crawl import defaults
from crawler.crawl.meta import META_ANY_KIND, META_NO_FETCH, plain_url
from crawler.crawl.reservation import ReservationMiddleware
from crawler.spiders.corpus import CorpusSpider

#: decisions committed together (one write of the audit log)
BATCH = 2000
#: seconds the URLs of an origin wait for its first URL's decision before going on their own
WAIT = 300.0
#: URLs read ahead (waiting on their origin's first URL) before the reading pauses for them
HOLD = 10_000
_META_GROUP = "polite_check_origin"


class CheckSpider(CorpusSpider):
    name = "check"
    crawls = False

    def __init__(self, *args: Any, urls: str = "[]", no_fetch: bool = False,
                 from_file: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.urls = json.loads(urls) if isinstance(urls, str) else list(urls)
        self.no_fetch = bool(no_fetch)
        self.from_file = from_file
        self._done: list[str] = []
        self._wake: Any = None

    async def start(self) -> AsyncIterator[Any]:
        if self.from_file is None:
            for url in self.urls:
                yield self._request(url)
            return
        async for request in self._from_file():
            yield request

    def parse(self, response: Response):
        return []

    def _request(self, url: str, group: str | None = None) -> scrapy.Request:
        meta: dict[str, Any] = {META_NO_FETCH: self.no_fetch, META_ANY_KIND: True}
        if group is None:
            return scrapy.Request(url, callback=self.parse, dont_filter=True, meta=meta)
        meta[_META_GROUP] = group
        return scrapy.Request(url, callback=self._first_done, errback=self._first_done,
                              dont_filter=True, meta=meta)

    # -- a URL list -------------------------------------------------------------------------
    def _lines(self) -> Iterator[str]:
        assert self.from_file is not None
        with open(self.from_file, encoding="utf-8") as fh:
            for line in fh:
                url = line.strip()
                if url and not url.startswith("#"):
                    yield url

    def _middleware(self) -> ReservationMiddleware | None:
        """The crawl's reservation middleware (Scrapy's public lookup, 2.12+), None before the
        engine exists or without it."""
        try:
            return self.crawler.get_downloader_middleware(ReservationMiddleware)
        except RuntimeError:  # the engine is not created yet
            return None

    def _first_done(self, result: Any) -> list[Any]:
        """The first URL of an origin is decided (allowed or refused): its files are cached."""
        request = getattr(result, "request", None)
        if request is None:  # a Failure: IgnoreRequest (check --no-fetch always ends so)
            request = getattr(getattr(result, "value", None), "request", None)
        group = request.meta.get(_META_GROUP) if request is not None else None
        self._done.append(group)
        wake, self._wake = self._wake, None
        if wake is not None:
            wake.callback(None)
        return []

    async def _wait(self, seconds: float) -> None:
        """Until a first URL is decided, or ``seconds`` pass."""
        from scrapy.utils.asyncio import call_later
        from twisted.internet.defer import Deferred

        wake: Deferred[None] = Deferred()
        self._wake = wake

        def timeout() -> None:
            if self._wake is wake:
                self._wake = None
                wake.callback(None)

        timer = call_later(seconds, timeout)
        try:
            await maybe_deferred_to_future(wake)
        finally:
            timer.cancel()  # (nothing when it has fired)

    async def _from_file(self) -> AsyncIterator[scrapy.Request]:
        # POLITE_CHECK_IN_PLACE False: every URL through the engine (what the in-place
        # decisions are compared with, in the tests and the benchmark)
        in_place = self.no_fetch and self.crawler.settings.getbool(
            "POLITE_CHECK_IN_PLACE", defaults.POLITE_CHECK_IN_PLACE)
        mw = self._middleware() if in_place else None
        stats = self.crawler.stats
        if mw is None:
            for url in self._lines():
                yield self._request(url)
            return
        waiting: dict[str, list[str]] = {}  # origin -> its URLs waiting on its first one
        settled: set[str] = set()  # origins whose first URL is decided
        batch: list[Any] = []
        cached = 0
        spent = 0.0
        queued = object()

        def flush() -> None:
            nonlocal batch
            if batch:
                # (a batch makes no reference cycles: no collection while it is written)
                collecting = gc.isenabled()
                gc.disable()
                try:
                    mw.funnel.record_many(batch)
                finally:
                    if collecting:
                        gc.enable()
                batch = []
                mw.forget_origin_files()  # (each batch marks the files it used as used)

        def place(url: str) -> Any:
            """Decide ``url`` in place (None), queue it behind its origin's first URL
            (``queued``), or the request that takes it through the engine."""
            nonlocal cached
            plain = plain_url(url)
            if plain is None:
                return self._request(url)
            origin = plain[0]
            waits = waiting.get(origin)
            if waits is not None:  # its origin's first URL is being decided
                waits.append(url)
                return queued
            got = mw.decide_from_cache(url, plain)
            if got is not None:
                batch.append(got)
                cached += 1
                if len(batch) >= BATCH:
                    flush()
                return None
            if origin in settled:
                return self._request(url)
            waiting[origin] = []
            return self._request(url, group=origin)

        def settle() -> list[scrapy.Request]:
            out = []
            while self._done:
                origin = self._done.pop()
                settled.add(origin)
                for url in waiting.pop(origin, ()):
                    got = place(url)
                    if isinstance(got, scrapy.Request):
                        out.append(got)
            flush()
            return out

        def release() -> list[scrapy.Request]:
            """No first URL decided for WAIT seconds (none should take that long without a
            fetch): the waiting URLs go through the engine one by one, as without a list."""
            out = [self._request(url) for urls in waiting.values() for url in urls]
            settled.update(waiting)
            waiting.clear()
            return out

        held = 0  # URLs queued behind origins being decided
        t0 = time.perf_counter()
        for url in self._lines():
            got = place(url)
            if got is queued:
                held += 1
                if held < HOLD:
                    continue
                # many URLs wait on origins being decided: those decisions come first (the
                # list is read as it is decided, never held whole in memory)
                spent += time.perf_counter() - t0
                flush()
                if not self._done:
                    await self._wait(WAIT)
                for request in settle() if self._done else release():
                    yield request
                held = sum(len(urls) for urls in waiting.values())
                t0 = time.perf_counter()
                continue
            if got is None and not self._done:
                continue
            spent += time.perf_counter() - t0
            flush()
            if got is not None:
                yield got
            for request in settle():
                yield request
            t0 = time.perf_counter()
        spent += time.perf_counter() - t0
        flush()
        while waiting:
            if not self._done:
                await self._wait(WAIT)
            if not self._done:
                for request in release():
                    yield request
                break
            t0 = time.perf_counter()
            requests = settle()
            spent += time.perf_counter() - t0
            for request in requests:
                yield request
        stats.set_value("polite/check/decided_from_cache", cached)
        stats.set_value("polite/check/from_cache_seconds", round(spent, 4))
