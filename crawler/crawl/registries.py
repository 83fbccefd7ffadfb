"""Opt-out registries consulted before any request: the Scrapy side of :mod:`crawler.registry`.

* :class:`~crawler.registry.client.LocalRegistry` wraps a text list or an SQLite database
  (loaded once; lookups are synchronous and fast).
* :class:`HttpRegistry` asks a remote API (Spawning's format) in batches: URLs are queued as
  the spider yields requests (:class:`RegistryPrefetchMiddleware`) and when the downloader
  needs a verdict; a batch is sent when it is full, when ``max_wait`` has passed, or when every
  download slot is waiting on it. Requests go through the Scrapy engine (throttled, counted,
  Retry-After honoured), are retried with backoff on 429/5xx/network errors, and answers are
  cached. A registry that cannot answer leaves the URL **undecided**: it is not fetched, the
  audit record says why, and it is decided again later (fail closed). What is asked, how an
  answer is read and how long it is kept is :mod:`crawler.registry.client`; this module
  schedules and sends.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from scrapy import Request
from scrapy.exceptions import NotConfigured
from scrapy.http.request import NO_CALLBACK
from scrapy.utils.defer import deferred_from_coro, maybe_deferred_to_future
from scrapy.utils.misc import build_from_crawler, load_object
from twisted.internet.defer import Deferred

from crawler.config.job import check_registries
from crawler.crawl import defaults
from crawler.crawl.runtime import get_runtime
from crawler.crawl.sitecache import PREFLIGHT_META
from crawler.optout.model import Evidence
from crawler.policy.network import origin_key
from crawler.policy.reservation import Policy
from crawler.registry.client import CachedAnswer as _Cached
from crawler.registry.client import (
    LocalRegistry,
    answer_evidence,
    cached_answer,
    read_answer,
    request_headers,
    retry_delay,
    worth_retrying,
)
from crawler.registry.spawning import spawning_request_body

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

REGISTRY_PRIORITY = 900


class HttpRegistry:
    """A remote registry API asked in batches through the engine."""

    def __init__(self, spec: dict[str, Any], policy: Policy, crawler: Crawler, *,
                 ttl: float, backoff: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = spec["name"]
        self.url = spec["url"]
        self.policy = policy
        self.crawler = crawler
        self.batch_size = int(spec["batch_size"])
        self.max_wait = float(spec["max_wait"])
        self.timeout = float(spec["timeout"])
        self.retries = int(spec["retries"])
        env = spec.get("api_key_env")
        self._api_key = os.environ.get(env) if env else None
        self.ttl, self.backoff = ttl, backoff
        self._clock = clock
        self._cache: dict[str, _Cached] = {}
        self._queue: list[str] = []
        self._entries: dict[str, str] = {}  # url -> matching entry, when the API names it
        self._waiters: dict[str, list[Deferred[_Cached]]] = {}
        self._timer: Any = None
        self.blocked = 0            # downloader lookups waiting right now
        self.stall_threshold = max(1, crawler.settings.getint("CONCURRENT_REQUESTS", 16))
        self._slot = origin_key(self.url)

    @classmethod
    def from_crawler(cls, crawler: Crawler, spec: dict[str, Any], policy: Policy,
                     **kwargs: Any) -> HttpRegistry:
        return cls(spec, policy, crawler, **kwargs)

    # -- the two ways in ---------------------------------------------------------------
    def prefetch(self, url: str) -> None:
        """Queue ``url`` for the next batch (non-blocking)."""
        if url not in self._waiters and self._fresh(url) is None:
            self._enqueue(url)

    async def check(self, url: str) -> Evidence:
        hit = self._fresh(url)
        if hit is None:
            if url not in self._waiters:  # neither queued nor in flight
                self._enqueue(url)
            d: Deferred[_Cached] = Deferred()
            self._waiters[url].append(d)
            self.blocked += 1
            if self.blocked >= self.stall_threshold and self._queue:
                self._flush()  # every download slot is waiting on us: do not wait for more
            try:
                hit = await maybe_deferred_to_future(d)
            finally:
                self.blocked -= 1
        return self._evidence(hit)

    async def ready(self, urls: list[str]) -> None:
        """Wait until every one of ``urls`` has an answer (or a failure) in the cache."""
        waits = []
        for url in urls:
            if self._fresh(url) is None:
                if url not in self._waiters:
                    self._enqueue(url)
                d: Deferred[_Cached] = Deferred()
                self._waiters[url].append(d)
                waits.append(d)
        for d in waits:
            await maybe_deferred_to_future(d)

    def retry_in(self, url: str) -> float:
        c = self._cache.get(url)
        return 0.0 if c is None else c.retry_in(self._clock())

    # -- batching ------------------------------------------------------------------------
    def _fresh(self, url: str) -> _Cached | None:
        c = self._cache.get(url)
        return c if c is not None and c.fresh(self._clock()) else None

    def _enqueue(self, url: str) -> None:
        """``url`` is pending from here until its batch is answered (``_waiters`` holds it)."""
        self._queue.append(url)
        self._waiters[url] = []
        if len(self._queue) >= self.batch_size:
            self._flush()
        elif self._timer is None:
            from scrapy.utils.asyncio import call_later

            self._timer = call_later(self.max_wait, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._queue:
            self._flush()

    def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:self.batch_size], self._queue[self.batch_size:]
            deferred_from_coro(self._ask(batch))
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def _ask(self, batch: list[str]) -> None:
        answers, why = await self._post_with_retries(batch)
        now = self._clock()
        for url in batch:
            opted = answers.get(url)
            entry = self._entries.pop(url, None) if opted else None
            c = cached_answer(opted, why, entry, now, ttl=self.ttl, backoff=self.backoff)
            self._cache[url] = c
            for d in self._waiters.pop(url, []):
                d.callback(c)

    async def _post_with_retries(self, batch: list[str]) -> tuple[dict[str, bool | None], str]:
        stats = self.crawler.stats
        why = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await _sleep(retry_delay(attempt, self.backoff))
            stats.inc_value(f"polite/registry/{self.name}/requests")
            stats.inc_value(f"polite/registry/{self.name}/urls", len(batch))
            try:
                response = await self.crawler.engine.download_async(self._request(batch))
            except Exception as exc:  # noqa: BLE001 - any failure: retry, then undecided
                why = f"registry {self.name} unreachable ({type(exc).__name__}: {exc})"
                continue
            if response.status == 200:
                answers, entries, problems = read_answer(response.body, batch)
                self._entries.update(entries)
                if problems:
                    why = f"registry {self.name}: {problems[0]}"
                    logger.warning("registry %s: %s", self.name, "; ".join(problems[:3]))
                if any(v is not None for v in answers.values()):
                    return answers, why
                continue
            why = f"registry {self.name} answered HTTP {response.status}"
            if not worth_retrying(response.status):
                break  # 4xx: asking again will not help
        stats.inc_value(f"polite/registry/{self.name}/failed_batches")
        logger.warning("%s; %d URLs left undecided for now", why, len(batch))
        return {}, why

    def _request(self, batch: list[str]) -> Request:
        return Request(
            self.url, method="POST", body=spawning_request_body(batch),
            headers=request_headers(self._api_key),
            callback=NO_CALLBACK, dont_filter=True, priority=REGISTRY_PRIORITY,
            meta={PREFLIGHT_META: "registry", "polite_trusted": True, "dont_retry": True,
                  "download_timeout": self.timeout, "download_slot": self._slot,
                  "dont_obey_robotstxt": True, "dont_redirect": True},
        )

    def _evidence(self, c: _Cached) -> Evidence:
        return answer_evidence(self.policy, c, self.url)


async def _sleep(seconds: float) -> None:
    from scrapy.utils.asyncio import call_later

    d: Deferred[None] = Deferred()
    call_later(seconds, d.callback, None)
    await maybe_deferred_to_future(d)


class Registries:
    """Every configured registry, asked in order; built once per crawl by the runtime.

    ``http_cls``: the class of the HTTP registry clients, built with
    :func:`~scrapy.utils.misc.build_from_crawler` (``POLITE_HTTP_REGISTRY_CLASS`` when built
    by :meth:`from_crawler`; a cluster's shares the answers between the job's workers)."""

    def __init__(self, specs: list[dict[str, Any]], policy: Policy, crawler: Crawler, *,
                 ttl: float, backoff: float, http_cls: type[HttpRegistry] | None = None) -> None:
        http_cls = http_cls or HttpRegistry
        self.local = [LocalRegistry(s, policy) for s in specs if s["type"] in ("file", "sqlite")]
        self.http = [build_from_crawler(http_cls, crawler, s, policy, ttl=ttl, backoff=backoff)
                     for s in specs if s["type"] == "http"]

    @classmethod
    def from_crawler(cls, crawler: Crawler, policy: Policy, *, ttl: float,
                     backoff: float) -> Registries:
        """The registries of ``POLITE_REGISTRIES``, HTTP ones of ``POLITE_HTTP_REGISTRY_CLASS``."""
        s = crawler.settings
        # as a config's registries: become (a name, the http defaults, absolute paths): an
        # entry a Scrapy project wrote is complete, as one from a job config is
        specs = list(check_registries(s.getlist("POLITE_REGISTRIES",
                                                defaults.POLITE_REGISTRIES)))
        return cls(specs, policy, crawler,
                   ttl=ttl, backoff=backoff,
                   http_cls=load_object(s.get("POLITE_HTTP_REGISTRY_CLASS")
                                        or defaults.POLITE_HTTP_REGISTRY_CLASS))

    def __bool__(self) -> bool:
        return bool(self.local or self.http)

    def prefetch(self, url: str) -> None:
        for r in self.http:
            r.prefetch(url)

    async def ready(self, urls: list[str]) -> None:
        for r in self.http:
            await r.ready(urls)

    async def check(self, url: str) -> list[Evidence]:
        out = [r.check(url) for r in self.local]
        for r in self.http:
            out.append(await r.check(url))
        return out

    def retry_in(self, url: str) -> float:
        return max([r.retry_in(url) for r in self.http] + [0.0])

    def close(self) -> None:
        for r in self.local:
            r.close()


class RegistryPrefetchMiddleware:
    """Spider middleware: a callback's new requests reach the scheduler only once the HTTP
    registries have answered for them (in batches with other callbacks' requests), so the
    downloader finds verdicts in hand instead of waiting on the registry. Items pass at once.
    """

    def __init__(self, registries: Registries) -> None:
        self.registries = registries

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RegistryPrefetchMiddleware:
        registries = get_runtime(crawler).registries
        if not registries.http:
            # nothing to prefetch (the registries are fixed for the crawl): out of the spider
            # output's way, where every item and request would pass through it for nothing
            raise NotConfigured
        return cls(registries)

    async def process_spider_output(self, response: Any, result: Any,
                                    spider: Any = None) -> Any:
        if not self.registries.http:
            async for obj in result:
                yield obj
            return
        held: list[Request] = []
        async for obj in result:
            if isinstance(obj, Request):
                self.registries.prefetch(obj.url)
                held.append(obj)
            else:
                yield obj
        if held:
            await self.registries.ready([r.url for r in held])
        for request in held:
            yield request
