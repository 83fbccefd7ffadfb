"""The shared reservation cache's Scrapy side: per-origin files and registry answers, once per
cluster.

:class:`SharedSiteCache` is :class:`crawler.crawl.sitecache.SiteCache` with the fetch going through
the job's :class:`~crawler.cluster.sitestore.RedisSiteStore` (raw bytes with their hashes,
authenticated): a worker that finds the file there uses it; otherwise it takes the file's fetch
lock and fetches it through the engine as usual, then stores it; a worker that does not get
the lock polls the store for up to ``POLITE_CLUSTER_FETCH_WAIT`` seconds, then fetches the file
itself. Every worker re-parses the raw bytes itself with
:func:`crawler.policy.reservation.site_file`, so a worker never trusts a parsed object from
another process, and its own audit records carry the same hashes. Never fail open: if neither
happens (the fetch fails, Redis is gone and the fetch fails), the file counts as unreachable,
as in a single process.

:class:`SharedHttpRegistry` does the same for the answers of an HTTP registry API (without a
lock: each URL is asked by the worker that needs it first; answers are shared).

:class:`SharedLedger` is the job's pay-per-crawl budget in Redis (crawler/cluster/budget.py) on
the worker's client. The three are a worker's ``POLITE_SITECACHE_CLASS``,
``POLITE_HTTP_REGISTRY_CLASS`` and ``POLITE_PAYMENT_LEDGER_CLASS`` (crawler/cluster/settings.py).

Shared entries are authenticated (sitestore.py): an HMAC keyed by the cluster secret from the
environment variable ``POLITE_CLUSTER_SECRET`` (its name: setting
``POLITE_CLUSTER_SECRET_ENV``; the secret itself is never in a setting nor a log). An entry
that fails it is refused: the worker fetches the file (asks the registry) itself. Without a
secret nothing is shared: each worker fetches its own files and asks registries itself.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from crawler.cluster import defaults
from crawler.cluster.budget import RedisLedger
from crawler.cluster.sitestore import RedisSiteStore, StoredFile
from crawler.cluster.worker import ClusterWorker, cluster_setting, sleep
from crawler.crawl.registries import HttpRegistry, _Cached
from crawler.crawl.sitecache import FILE_PATHS, SiteCache
from crawler.optout.model import SiteFile
from crawler.policy.ledger import PaymentPolicy
from crawler.policy.reservation import site_file

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

#: The environment variable holding the cluster secret (setting ``POLITE_CLUSTER_SECRET_ENV``
#: names another one). Every worker of a job needs the same value.
SECRET_ENV = "POLITE_CLUSTER_SECRET"


def secret_env_name(settings: Any) -> str:
    return str(settings.get("POLITE_CLUSTER_SECRET_ENV") or SECRET_ENV)


def cluster_secret(settings: Any, environ: Mapping[str, str] | None = None) -> bytes | None:
    """The cluster secret from the environment (None when unset or empty)."""
    value = (os.environ if environ is None else environ).get(secret_env_name(settings), "")
    return value.encode("utf-8") if value else None


def _warn_no_secret(settings: Any) -> None:
    global _NO_SECRET_WARNED
    if not _NO_SECRET_WARNED:
        _NO_SECRET_WARNED = True
        logger.warning("cluster: %s is not set: reservations (robots.txt, tdmrep.json, ai.txt, "
                       "licences, registry answers) are not shared through Redis; each worker "
                       "fetches and asks them itself. To share them, set %s to the same secret "
                       "value in the environment of every worker of the job",
                       secret_env_name(settings), secret_env_name(settings))


_NO_SECRET_WARNED = False


class SharedSiteCache(SiteCache):
    """:class:`~crawler.crawl.sitecache.SiteCache` whose fetches go through :class:`RedisSiteStore`.

    A cluster worker's ``POLITE_SITECACHE_CLASS``. Takes ``SiteCache``'s arguments and the
    worker's :class:`~crawler.cluster.worker.ClusterWorker` (its Redis client, job keys, name
    and heartbeat), the cluster ``secret`` (None: nothing shared) and the fetch lock's
    timings; :meth:`from_crawler` finds them in the crawler's worker and settings.
    """

    def __init__(self, crawler: Crawler, *, worker: ClusterWorker, secret: bytes | None,
                 fetch_wait: float = defaults.POLITE_CLUSTER_FETCH_WAIT,
                 fetch_poll: float = defaults.POLITE_CLUSTER_FETCH_POLL,
                 lock_ttl: float = defaults.POLITE_CLUSTER_FETCH_LOCK_TTL,
                 **kwargs: Any) -> None:
        super().__init__(crawler, **kwargs)
        self.store: RedisSiteStore | None = None
        if secret is None:
            _warn_no_secret(crawler.settings)
        else:
            self.store = RedisSiteStore(worker.redis, worker.keys, worker.name, ttl=self.ttl,
                                        backoff=self.backoff, secret=secret,
                                        stats=crawler.stats, gap=worker.interval)
        self.fetch_wait = float(fetch_wait)
        self.fetch_poll = float(fetch_poll)
        self.lock_ttl = float(lock_ttl)
        self._bodies: dict[tuple[str, str], bytes] = {}
        self._shared_expiry: dict[tuple[str, str], float] = {}
        #: fetch locks released with the put (the fetch's finally need not release them)
        self._unlocked: dict[tuple[str, str], bool] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler, **kwargs: Any) -> SharedSiteCache:
        s = crawler.settings
        return cls(crawler, worker=ClusterWorker.of(crawler), secret=cluster_secret(s),
                   fetch_wait=float(cluster_setting(s, "POLITE_CLUSTER_FETCH_WAIT")),
                   fetch_poll=float(cluster_setting(s, "POLITE_CLUSTER_FETCH_POLL")),
                   lock_ttl=float(cluster_setting(s, "POLITE_CLUSTER_FETCH_LOCK_TTL")),
                   **{**cls.options(s), **kwargs})

    async def _fetch(self, kind: str, url: str) -> SiteFile:
        if self.store is None:  # no cluster secret: nothing shared (fail closed)
            return await self._fetch_here(kind, url, share=False)
        try:
            return await self._fetch_shared(kind, url)
        except RedisError as exc:
            self.crawler.stats.inc_value("polite/cluster/site/redis_error")
            logger.warning("shared reservation cache unavailable (%s): %s fetched by this "
                           "worker alone", exc, url)
            return await self._fetch_here(kind, url, share=False)

    async def _fetch_shared(self, kind: str, url: str) -> SiteFile:
        assert self.store is not None
        stats = self.crawler.stats
        early = self.store.take_ahead(kind, url)
        if early is not None:  # read with a sibling file of its origin, a moment ago
            stats.inc_value("polite/cluster/site/shared")
            stats.inc_value("polite/cluster/site/read_ahead")
            return self._from_store(kind, url, early)
        deadline = time.monotonic() + self.fetch_wait
        waited = False
        ahead = self._siblings(kind, url)
        while True:
            # the stored file, or else the fetch lock, in one call (atomically: a file stored
            # just before the lock was free is found, not fetched again); the origin's other
            # files read ahead in the same call
            hit, locked = self.store.get_or_lock(kind, url, self.lock_ttl, ahead)
            ahead = ()
            if hit is not None:
                if locked:  # stored just before we took the lock
                    try:
                        self.store.release(kind, url)
                    except RedisError:  # the lock expires by itself
                        pass
                    stats.inc_value("polite/cluster/site/shared")
                    return self._from_store(kind, url, hit)
                stats.inc_value("polite/cluster/site/waited" if waited else
                                "polite/cluster/site/shared")
                return self._from_store(kind, url, hit)
            if locked:
                try:
                    # stored and unlocked in one call
                    return await self._fetch_here(kind, url, share=True, unlock=True)
                finally:
                    if not self._unlocked.pop((kind, url), False):
                        try:
                            self.store.release(kind, url)
                        except RedisError:  # the lock expires by itself
                            pass
            if time.monotonic() >= deadline:
                stats.inc_value("polite/cluster/site/wait_timeout")
                logger.warning("%s: another worker has been fetching it for %.0f s; fetching "
                               "it here too", url, self.fetch_wait)
                return await self._fetch_here(kind, url, share=True)
            waited = True
            await sleep(self.fetch_poll)

    def _siblings(self, kind: str, url: str) -> list[tuple[str, str]]:
        """The other per-origin files of ``url``'s origin when ``url`` is one (robots.txt,
        tdmrep.json, ai.txt), not cached here and not being fetched: read ahead with it."""
        path = FILE_PATHS.get(kind)
        if path is None or not url.endswith(path):
            return []
        origin = url[:-len(path)]
        out = []
        for other, other_path in FILE_PATHS.items():
            key = (other, origin + other_path)
            if (other != kind and key not in self._pending
                    and self.cached_url(*key) is None):
                out.append(key)
        return out

    async def _fetch_here(self, kind: str, url: str, *, share: bool,
                          unlock: bool = False) -> SiteFile:
        f = await super()._fetch(kind, url)
        body = self._bodies.pop((kind, url), b"")
        self.crawler.stats.inc_value("polite/cluster/site/fetched")
        if share and self.store is not None:
            try:
                self._shared_expiry[(kind, url)] = self.store.put(
                    kind, url, status=f.status, body=body, error=f.error,
                    final_url=f.final_url, outcome=f.outcome, complete=f.complete,
                    unlock=unlock)
                if unlock:
                    self._unlocked[(kind, url)] = True
            except RedisError as exc:
                logger.warning("could not share %s with the cluster (%s)", url, exc)
        return f

    def _from_store(self, kind: str, url: str, hit: StoredFile) -> SiteFile:
        f = site_file(kind, url, status=hit.status, body=hit.body, error=hit.error,
                      final_url=hit.final_url, complete=hit.complete)
        SiteCache._archive(self, f, hit.body)  # this worker's evidence directory too
        self._shared_expiry[(kind, url)] = hit.expires_in
        return f

    def _archive(self, f: SiteFile, body: bytes) -> None:
        # SiteCache._fetch hands every response body it parsed to _archive: keep it for the
        # store (the fetch coroutine picks it up right after _fetch returns)
        self._bodies[(f.kind, f.url)] = body
        super()._archive(f, body)

    def _store(self, key: tuple[str, str], f: SiteFile) -> None:
        super()._store(key, f)
        remaining = self._shared_expiry.pop(key, None)
        if remaining is not None and key in self._entries:
            # expire with the cluster's entry, not a full TTL after this worker read it
            self._entries[key].expires = self._clock() + remaining


class SharedHttpRegistry(HttpRegistry):
    """:class:`~crawler.crawl.registries.HttpRegistry` whose answers are shared by the job's
    workers: a URL already answered (or found unanswerable, for the backoff) is not asked
    again by another worker. A cluster worker's ``POLITE_HTTP_REGISTRY_CLASS``: takes
    ``HttpRegistry``'s arguments, the worker's :class:`~crawler.cluster.worker.ClusterWorker`
    and the cluster ``secret`` (None: nothing shared); :meth:`from_crawler` finds them."""

    def __init__(self, spec: dict[str, Any], policy: Any, crawler: Crawler, *, ttl: float,
                 backoff: float, worker: ClusterWorker, secret: bytes | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(spec, policy, crawler, ttl=ttl, backoff=backoff, clock=clock)
        self.store: RedisSiteStore | None = None
        if secret is None:
            _warn_no_secret(crawler.settings)
        else:
            # the store's clock is wall time (fetch times are compared across machines)
            self.store = RedisSiteStore(worker.redis, worker.keys, worker.name, ttl=ttl,
                                        backoff=backoff, secret=secret, stats=crawler.stats)

    @classmethod
    def from_crawler(cls, crawler: Crawler, spec: dict[str, Any], policy: Any,
                     **kwargs: Any) -> SharedHttpRegistry:
        return cls(spec, policy, crawler, worker=ClusterWorker.of(crawler),
                   secret=cluster_secret(crawler.settings), **kwargs)

    async def _ask(self, batch: list[str]) -> None:
        if self.store is None:  # no cluster secret: this worker asks the registry itself
            await super()._ask(batch)
            return
        stats = self.crawler.stats
        try:
            known = self.store.get_registry_many(self.name, batch)
        except RedisError as exc:
            logger.warning("shared registry answers unavailable (%s)", exc)
            known = {}
        now = self._clock()
        for url, hit in known.items():
            c = _Cached(hit.opted_out, hit.detail, now + hit.expires_in)
            self._cache[url] = c
            for d in self._waiters.pop(url, []):
                d.callback(c)
        if known:
            stats.inc_value(f"polite/cluster/registry/{self.name}/shared", len(known))
        rest = [u for u in batch if u not in known]
        if not rest:
            return
        await super()._ask(rest)
        answers = {u: (self._cache[u].opted_out, self._cache[u].detail)
                   for u in rest if u in self._cache}
        try:
            self.store.put_registry_many(self.name, answers)
        except RedisError as exc:
            logger.warning("could not share registry answers (%s)", exc)


class SharedLedger(RedisLedger):
    """The job's pay-per-crawl ledger in Redis (:class:`~crawler.cluster.budget.RedisLedger`)
    on the worker's Redis client, under the worker's current epoch: a cluster worker's
    ``POLITE_PAYMENT_LEDGER_CLASS``."""

    @classmethod
    def from_crawler(cls, crawler: Crawler, policy: PaymentPolicy) -> SharedLedger:
        worker = ClusterWorker.of(crawler)
        return cls(worker.redis, worker.keys, policy, epoch=lambda: worker.epoch)
