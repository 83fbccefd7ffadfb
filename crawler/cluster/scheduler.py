"""The shared request queue: scrapy-redis's scheduler and duplicate filter, per job.

:class:`ClusterScheduler` is ``scrapy_redis.scheduler.Scheduler`` with
``scrapy_redis.dupefilter.RFPDupeFilter``, keys ``polite:<job>:requests`` and
``polite:<job>:dupefilter``. It subclasses rather than uses scrapy-redis 0.9.1 as is, because:

1. **Scrapy 2.19 compatibility.** scrapy-redis passes ``spider=`` to ``stats.inc_value()`` on
   every enqueue and dequeue; Scrapy deprecated that argument, so each call warns
   (``ScrapyDeprecationWarning``, an error under ``filterwarnings = error``). The two methods
   are re-implemented without it.
2. **Requests in flight survive a killed worker.** scrapy-redis's ``PriorityQueue.pop``
   removes a request from Redis before it is downloaded: a worker killed with requests in
   its downloader loses them for good. :class:`InflightPriorityQueue` moves the popped
   request into the worker's in-flight hash (``polite:<job>:inflight:<worker>``) in the same
   script call; the worker acknowledges it once Scrapy is done with it (its callback's
   requests are queued), and a dead worker's unacknowledged requests go back to the queue
   (worker.py). Delivery is at least once: a request whose worker died after fetching it
   but before the acknowledgement is fetched again (and decided again: nothing bypasses the
   reservation checks or the shared politeness).
3. **Origins interleaved.** Within a priority, every origin's n-th request is queued before
   any origin's (n+1)-th (:class:`InflightPriorityQueue`), so a worker's downloader is not
   filled with requests that all wait for one origin's turn at the shared gate (on a web of
   80 origins this took one worker from about 45 to about 170 pages/s).
4. **One client, one job, no templates.** scrapy-redis builds its own client from
   ``REDIS_URL`` and formats keys with ``%(spider)s`` (twice); here the worker's counting
   client and the job's fixed keys are passed in, and the queue is never flushed when one
   worker stops (``SCHEDULER_PERSIST`` is forced on: the queue belongs to the cluster).
5. **Seen and queued at once.** The duplicate filter's ``SADD`` and the queue push are one
   script call, so a worker killed between the two cannot leave a URL marked seen but never
   queued (lost for every worker).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError
from scrapy.utils.misc import load_object
from scrapy_redis.dupefilter import RFPDupeFilter
from scrapy_redis.queue import PriorityQueue
from scrapy_redis.scheduler import Scheduler

from crawler.cluster.worker import ClusterWorker

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

#: Request meta: the id of the popped request in its worker's in-flight hash.
META_INFLIGHT = "polite_cluster_inflight"

# KEYS: queue (sorted set), in-flight hash, id counter. Returns {id, encoded request} or nil.
_POP = """
local r = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #r == 0 then return false end
redis.call('ZREM', KEYS[1], r[1])
local id = tostring(redis.call('INCR', KEYS[3]))
redis.call('HSET', KEYS[2], id, r[2] .. ':' .. r[1])
return {id, r[1]}
"""


# KEYS: queue, per-origin counters. ARGV: priority, origin, encoded request.
_PUSH = """
local n = redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('ZADD', KEYS[1], -tonumber(ARGV[1]) * 1e9 + (n % 1e9), ARGV[3])
return n
"""


# KEYS: queue, per-origin counters, duplicate filter set. ARGV: priority, origin, encoded
# request, fingerprint. Returns 1 when queued, 0 when the fingerprint was seen already.
_PUSH_UNSEEN = """
if redis.call('SADD', KEYS[3], ARGV[4]) == 0 then return 0 end
local n = redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('ZADD', KEYS[1], -tonumber(ARGV[1]) * 1e9 + (n % 1e9), ARGV[3])
return 1
"""


class InflightPriorityQueue(PriorityQueue):
    """scrapy-redis's priority queue whose ``pop`` keeps the request in the in-flight hash,
    and whose ``push`` interleaves origins.

    scrapy-redis scores a request ``-priority``; requests of equal priority then come out in
    the byte order of their pickles, which tends to bunch one origin's requests together: a
    worker's downloader fills up with requests that all wait for the same origin's turn
    while other origins idle. Here the score is ``-priority * 1e9 + n``, ``n`` counting the
    origin's requests so far: within a priority, every origin's n-th request comes before
    any origin's (n+1)-th (round robin), as Scrapy's own downloader-aware queue intends.
    """

    def __init__(self, server: Any, spider: Any, key: str, serializer: Any = None, *,
                 inflight_key: str, seq_key: str, origin_seq_key: str) -> None:
        super().__init__(server, spider, key, serializer)
        self.inflight_key = inflight_key
        self.seq_key = seq_key
        self.origin_seq_key = origin_seq_key
        self._pop = server.register_script(_POP)
        self._push = server.register_script(_PUSH)
        self._push_unseen = server.register_script(_PUSH_UNSEEN)

    def push(self, request: Request) -> None:
        from crawler.middlewares import origin_of

        self._push(keys=[self.key, self.origin_seq_key],
                   args=[int(request.priority), origin_of(request),
                         self._encode_request(request)])

    def push_unseen(self, request: Request, dupefilter_key: str, fingerprint: str) -> bool:
        """Mark ``fingerprint`` seen and queue ``request`` in one script call (False: seen
        before). Two calls would leave a window in which a killed worker has marked a URL seen
        without queueing it: no worker would ever fetch it."""
        from crawler.middlewares import origin_of

        return bool(self._push_unseen(
            keys=[self.key, self.origin_seq_key, dupefilter_key],
            args=[int(request.priority), origin_of(request), self._encode_request(request),
                  fingerprint]))

    def pop(self, timeout: int = 0) -> Request | None:
        res = self._pop(keys=[self.key, self.inflight_key, self.seq_key])
        if not res:
            return None
        ident, data = res
        request = self._decode_request(data)
        request.meta[META_INFLIGHT] = ident.decode() if isinstance(ident, bytes) else ident
        return request


class ClusterScheduler(Scheduler):
    """scrapy-redis's scheduler for one cluster job (see the module docstring)."""

    def __init__(self, server: Any, *, worker: ClusterWorker, dupefilter: RFPDupeFilter,
                 stats: Any = None) -> None:
        super().__init__(server, persist=True, flush_on_start=False,
                         queue_key=worker.keys.requests, dupefilter=dupefilter,
                         dupefilter_key=worker.keys.dupefilter, idle_before_close=0)
        self.worker = worker
        self.stats = stats
        self._popped: dict[str, Request] = {}
        self._redis_down = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ClusterScheduler:
        worker = ClusterWorker.of(crawler)
        df_path = crawler.settings.get("DUPEFILTER_CLASS")
        df_cls = load_object(df_path) if df_path else RFPDupeFilter
        if not (isinstance(df_cls, type) and issubclass(df_cls, RFPDupeFilter)):
            raise TypeError(
                f"cluster mode needs a shared duplicate filter: DUPEFILTER_CLASS is {df_path!r},"
                " not scrapy_redis.dupefilter.RFPDupeFilter (or a subclass)")
        df = df_cls(worker.redis, key=worker.keys.dupefilter,
                    debug=crawler.settings.getbool("DUPEFILTER_DEBUG"))
        return cls(worker.redis, worker=worker, dupefilter=df, stats=crawler.stats)

    def open(self, spider: Any) -> None:
        self.spider = spider
        k = self.worker.keys
        self.queue = InflightPriorityQueue(
            self.server, spider, k.requests, self.serializer,
            inflight_key=k.inflight(self.worker.name), seq_key=k.inflight_seq,
            origin_seq_key=k.origin_seq)
        self.worker.scheduler = self
        queued = len(self.queue)
        if queued:
            logger.info("job %r: %d requests already queued by the cluster", k.job, queued)

    def enqueue_request(self, request: Request) -> bool:
        request.meta.pop(META_INFLIGHT, None)  # a redirect or retry of a popped request
        try:
            if request.dont_filter:
                self.queue.push(request)
            elif not self.queue.push_unseen(request, self.df.key,
                                            self.df.request_fingerprint(request)):
                self.df.log(request, self.spider)
                return False
        except RedisError as exc:
            logger.error("cannot queue %s in Redis (%s): request dropped", request.url, exc)
            if self.stats:
                self.stats.inc_value("polite/cluster/enqueue_failed")
            return False
        if self.stats:
            self.stats.inc_value("scheduler/enqueued/redis")
        return True

    def next_request(self) -> Request | None:
        try:
            request = self.queue.pop(0)
        except RedisError as exc:
            if not self._redis_down:
                logger.error("cannot read the request queue from Redis (%s); retrying", exc)
            self._redis_down = True
            return None
        self._redis_down = False
        if request is not None:
            self._popped[request.meta[META_INFLIGHT]] = request
            if self.stats:
                self.stats.inc_value("scheduler/dequeued/redis")
        return request

    def has_pending_requests(self) -> bool:
        try:
            return len(self) > 0
        except RedisError:
            return False

    # -- acknowledgement (driven by the worker's heartbeat) -------------------------------
    def finished_ids(self, inprogress: set[Any] | None) -> list[str]:
        """Ids of popped requests Scrapy no longer has in progress (all of them: None)."""
        if inprogress is None:
            return list(self._popped)
        return [i for i, r in self._popped.items() if r not in inprogress]

    def forget(self, ids: list[str]) -> None:
        for i in ids:
            self._popped.pop(i, None)

    @property
    def in_flight(self) -> int:
        return len(self._popped)
