"""One cluster worker: its Redis client, its presence, its heartbeat, and when it may stop.

:class:`ClusterWorker` is a Scrapy extension (``EXTENSIONS``), one per crawler, that the other
cluster components reach with :meth:`ClusterWorker.of`. It

* claims the worker's name (``polite:<job>:alive:<worker>``, ``SET NX`` with a TTL): a second
  process started with the same name while the first is alive refuses to start (the CLI
  checks the name with :func:`check_name_free` before anything is opened, so the refused
  process leaves the live worker's audit log alone; one line, exit 2);
* beats every ``POLITE_CLUSTER_HEARTBEAT`` seconds, with one script call that refreshes the
  presence key, acknowledges the requests this worker has finished (scheduler.py), puts the
  requests a dead worker had in flight back in the shared queue, and reports how much work
  the cluster has left;
* wakes its own engine when the shared queue has work (Scrapy's engine only looks at its
  scheduler on its own events or every 5 seconds);
* on ``spider_idle``, pops start URLs (seeds.py) and keeps the spider open while the cluster
  has work anywhere: a worker closes only when the queue and the start URLs are empty and no
  live worker has a request in flight, for ``POLITE_CLUSTER_IDLE_CLOSE`` seconds.

A worker whose presence key expired (killed, frozen for longer than the TTL) is dead: its
origin leases and fetch locks are void (politeness.py, store.py) and its in-flight requests
are re-queued by the next worker that beats.
"""

from __future__ import annotations

import logging
import time
import weakref
from typing import TYPE_CHECKING, Any, NamedTuple

from redis.exceptions import RedisError
from scrapy import signals
from scrapy.exceptions import DontCloseSpider, NotConfigured

from crawler.cluster import defaults
from crawler.cluster.connection import CountingRedis, redis_client
from crawler.cluster.keys import JobKeys, check_name
from crawler.cluster.settings import cluster_enabled
from crawler.runlock import RunLockError

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

REDIS_CALLS_STAT = "polite/cluster/redis_calls"


def cluster_setting(settings: Any, name: str) -> Any:
    """A ``POLITE_CLUSTER_*`` setting, falling back to :mod:`crawler.cluster.defaults`."""
    value = settings.get(name)
    return getattr(defaults, name) if value is None else value


class ClusterStatus(NamedTuple):
    queued: int       # requests in the shared queue
    start_urls: int   # seeds not yet popped
    in_flight: int    # requests other live workers have popped and not finished
    recovered: int    # requests of dead workers put back in the queue by this beat

    @property
    def has_work(self) -> bool:
        return bool(self.queued or self.start_urls or self.in_flight)


# KEYS: own alive key, workers set, own in-flight hash, request queue, start URLs
# ARGV: ttl ms, own name, alive prefix, in-flight prefix, requeue own ("1"/"0"), ids to ack...
_BEAT = """
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
for i = 6, #ARGV, 200 do
  redis.call('HDEL', KEYS[3], unpack(ARGV, i, math.min(i + 199, #ARGV)))
end
local recovered = 0
local function requeue(h)
  local all = redis.call('HGETALL', h)
  for i = 2, #all, 2 do
    local v = all[i]
    local sep = string.find(v, ':', 1, true)
    redis.call('ZADD', KEYS[4], tonumber(string.sub(v, 1, sep - 1)), string.sub(v, sep + 1))
    recovered = recovered + 1
  end
  redis.call('DEL', h)
end
if ARGV[5] == '1' then requeue(KEYS[3]) end
local busy = 0
for _, w in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if w ~= ARGV[2] then
    if redis.call('EXISTS', ARGV[3] .. w) == 0 then
      requeue(ARGV[4] .. w)
      redis.call('SREM', KEYS[2], w)
    else
      busy = busy + redis.call('HLEN', ARGV[4] .. w)
    end
  end
end
return {redis.call('ZCARD', KEYS[4]), redis.call('LLEN', KEYS[5]), busy, recovered}
"""


class WorkerNameTaken(RunLockError, ValueError):
    """A live worker of the job already holds this name; ``str()`` is one line."""


def name_taken_message(worker: str, job: str, ttl_s: float | None) -> str:
    wait = f"wait up to {ttl_s:.0f} s" if ttl_s is not None else "wait for its heartbeat to expire"
    return (f"cluster mode: worker {worker!r} of job {job!r} is alive (already running: its "
            f"heartbeat in Redis is live); pick another --worker name, or {wait} if it was "
            "killed")


def check_name_free(redis_url: str, job: str, worker: str) -> None:
    """Before anything is opened (audit log, output files): refuse a worker name a live
    process of the job holds (its presence key exists, on any machine). Raises
    :class:`WorkerNameTaken`, or ValueError when Redis cannot be reached; both one line.

    Only a check: the name is claimed when the worker starts (:meth:`Presence.claim`, atomic),
    which still refuses a twin started in the instant between the two."""
    keys = JobKeys(job)
    check_name(worker, "worker")
    client = redis_client(redis_url)
    try:
        ttl_ms = client.pttl(keys.alive(worker))
    except RedisError as exc:
        raise ValueError(f"cluster mode: cannot reach Redis at {_redacted(redis_url)} "
                         f"({exc})") from None
    finally:
        client.close()
    if ttl_ms is not None and int(ttl_ms) != -2:  # -2: no such key; -1: no expiry
        raise WorkerNameTaken(name_taken_message(
            worker, job, int(ttl_ms) / 1000 if int(ttl_ms) >= 0 else None))


class Presence:
    """A worker's membership of a job, without Scrapy (the tests drive it directly)."""

    def __init__(self, client: CountingRedis, keys: JobKeys, worker: str, *,
                 ttl: float = defaults.POLITE_CLUSTER_WORKER_TTL) -> None:
        self.client = client
        self.keys = keys
        self.worker = check_name(worker, "worker")
        self.ttl_ms = max(1, int(ttl * 1000))
        self._beat = client.register_script(_BEAT)

    def claim(self) -> bool:
        """Take the worker's name; False when a live process already holds it."""
        if not self.client.set(self.keys.alive(self.worker), b"1", nx=True, px=self.ttl_ms):
            return False
        self.client.sadd(self.keys.workers, self.worker)
        return True

    def beat(self, acked: list[str] | tuple[str, ...] = (), *,
             requeue_own: bool = False) -> ClusterStatus:
        k = self.keys
        res = self._beat(
            keys=[k.alive(self.worker), k.workers, k.inflight(self.worker), k.requests,
                  k.start_urls],
            args=[self.ttl_ms, self.worker, k.alive_prefix, k.inflight_prefix,
                  "1" if requeue_own else "0", *acked],
        )
        return ClusterStatus(*(int(x) for x in res))

    def leave(self) -> None:
        """A clean stop: the name is free at once."""
        with self.client.pipeline() as pipe:
            pipe.delete(self.keys.alive(self.worker))
            pipe.srem(self.keys.workers, self.worker)
            pipe.execute()


_WORKERS: weakref.WeakKeyDictionary[Any, ClusterWorker] = weakref.WeakKeyDictionary()


class ClusterWorker:
    """The worker side of cluster mode (see the module docstring)."""

    def __init__(self, crawler: Crawler) -> None:
        s = crawler.settings
        if not cluster_enabled(s):
            raise NotConfigured("cluster mode is off (POLITE_CLUSTER_REDIS_URL is not set)")
        url = s.get("POLITE_CLUSTER_REDIS_URL")
        self.crawler = crawler
        self.name = check_name(str(cluster_setting(s, "POLITE_CLUSTER_WORKER")), "worker")
        job = cluster_setting(s, "POLITE_CLUSTER_JOB") or s.get("POLITE_JOB") or "default"
        self.keys = JobKeys(str(job))
        stats = crawler.stats
        self.redis = redis_client(str(url), on_call=lambda: stats.inc_value(REDIS_CALLS_STAT))
        self.ttl = float(cluster_setting(s, "POLITE_CLUSTER_WORKER_TTL"))
        self.interval = float(cluster_setting(s, "POLITE_CLUSTER_HEARTBEAT"))
        if self.interval * 3 > self.ttl:
            raise ValueError("POLITE_CLUSTER_HEARTBEAT must be at most a third of "
                             "POLITE_CLUSTER_WORKER_TTL (a live worker must never look dead)")
        self.idle_close = float(cluster_setting(s, "POLITE_CLUSTER_IDLE_CLOSE"))
        self.seed_batch = int(cluster_setting(s, "POLITE_CLUSTER_SEED_BATCH"))
        self.presence = Presence(self.redis, self.keys, self.name, ttl=self.ttl)
        self.scheduler: Any = None  # the ClusterScheduler attaches itself when it opens
        self._loop: Any = None
        self._idle_since: float | None = None
        self._started = False
        try:
            claimed = self.presence.claim()
        except RedisError as exc:
            raise ValueError(f"cluster mode: cannot reach Redis at {url} ({exc})") from None
        if not claimed:  # a RunLockError too: run_crawl reports it in one line, exit 2
            self.redis.close()
            raise WorkerNameTaken(name_taken_message(self.name, self.keys.job, self.ttl))
        crawler.signals.connect(self._opened, signal=signals.spider_opened)
        crawler.signals.connect(self._idle, signal=signals.spider_idle)
        crawler.signals.connect(self._closed, signal=signals.spider_closed)
        logger.info("cluster worker %r of job %r on %s", self.name, self.keys.job,
                    _redacted(str(url)))

    @classmethod
    def of(cls, crawler: Crawler) -> ClusterWorker:
        """The crawler's worker (built once; every cluster component shares it)."""
        worker = _WORKERS.get(crawler)
        if worker is None:
            worker = _WORKERS[crawler] = cls(crawler)
        return worker

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ClusterWorker:
        return cls.of(crawler)

    # -- heartbeat -----------------------------------------------------------------------
    def _opened(self, spider: Any = None) -> None:
        from scrapy.utils.asyncio import create_looping_call

        # requests this name had in flight in an earlier life go back to the queue
        status = self.presence.beat(requeue_own=True)
        if status.recovered:
            logger.warning("worker %r: %d requests left in flight by an earlier run of this "
                           "worker put back in the queue", self.name, status.recovered)
        self._started = True
        self._loop = create_looping_call(self.beat)
        self._loop.start(self.interval, now=False)

    def beat(self, *, all_done: bool = False) -> ClusterStatus | None:
        """Refresh presence, acknowledge finished requests, recover dead workers' requests."""
        acked: list[str] = []
        if self.scheduler is not None:
            if all_done:
                acked = self.scheduler.finished_ids(None)
            else:
                inprogress = _inprogress(self.crawler)
                if inprogress is not None:
                    acked = self.scheduler.finished_ids(inprogress)
        try:
            status = self.presence.beat(acked)
        except RedisError as exc:
            logger.warning("worker %r: heartbeat failed (%s); retrying", self.name, exc)
            return None
        if self.scheduler is not None:
            self.scheduler.forget(acked)
        stats = self.crawler.stats
        if status.recovered:
            stats.inc_value("polite/cluster/recovered", status.recovered)
            logger.warning("worker %r: %d requests of a dead worker put back in the queue",
                           self.name, status.recovered)
        if status.queued:
            _wake(self.crawler)
        return status

    # -- when to stop --------------------------------------------------------------------
    def _idle(self, spider: Any = None) -> None:
        from crawler.cluster.seeds import pop_seed_requests

        try:
            seeds = pop_seed_requests(self, spider)
        except RedisError as exc:
            logger.warning("worker %r: cannot read start URLs (%s)", self.name, exc)
            raise DontCloseSpider from None
        engine = self.crawler.engine
        for request in seeds:
            engine.crawl(request)  # type: ignore[union-attr]
        status = self.beat(all_done=True)  # idle: everything this worker popped is finished
        if seeds or status is None or status.has_work:
            self._idle_since = None
            raise DontCloseSpider
        now = time.monotonic()
        if self._idle_since is None:
            self._idle_since = now
        if now - self._idle_since < self.idle_close:
            raise DontCloseSpider
        logger.info("worker %r: the cluster has no work left; closing", self.name)

    def _closed(self, spider: Any = None, reason: str = "") -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        try:
            if self._started:
                # the engine has drained: everything popped is finished; anything still
                # listed goes back to the queue for the other workers
                acked = self.scheduler.finished_ids(None) if self.scheduler else []
                self.presence.beat(acked, requeue_own=reason != "finished")
                if self.scheduler is not None:
                    self.scheduler.forget(acked)
            self.presence.leave()
        except RedisError as exc:
            logger.warning("worker %r: could not sign off (%s); the name frees itself in "
                           "%.0f s", self.name, exc, self.ttl)
        finally:
            self.redis.close()


def _inprogress(crawler: Crawler) -> set[Any] | None:
    """The engine's requests in progress (from the scheduler until their callback's output
    is scheduled), or None when this Scrapy does not expose them: then nothing is
    acknowledged until the worker is idle (safe, only less precise)."""
    slot = getattr(crawler.engine, "_slot", None)
    inprogress = getattr(slot, "inprogress", None)
    return inprogress if isinstance(inprogress, set) else None


def _wake(crawler: Crawler) -> None:
    """Ask the engine to look at its scheduler now (it does so every 5 s by itself)."""
    slot = getattr(crawler.engine, "_slot", None)
    nextcall = getattr(slot, "nextcall", None)
    if nextcall is not None:
        nextcall.schedule()


def _redacted(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


async def sleep(seconds: float) -> None:
    """Wait without blocking the reactor (asyncio or Twisted, whichever runs)."""
    from scrapy.utils.asyncio import call_later
    from twisted.internet.defer import Deferred

    try:  # Scrapy >= 2.13
        from scrapy.utils.defer import maybe_deferred_to_future
    except ImportError:  # pragma: no cover
        from scrapy.utils.defer import deferred_to_future as maybe_deferred_to_future

    d: Deferred[None] = Deferred()
    call_later(seconds, d.callback, None)
    await maybe_deferred_to_future(d)
