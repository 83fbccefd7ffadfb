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
6. **Only under the job's epoch.** Every pop and push checks the job's epoch in the same
   script (state.py): when the job's state is lost or untrusted nothing is popped, and a
   request that cannot be queued (that, or Redis unreachable) is **spooled**, never dropped:
   one JSON line in ``spool-<worker>.jsonl`` beside the worker's audit log, pushed (through
   the duplicate filter) once Redis takes it again. A popped request carries the epoch it was
   popped under (``polite_cluster_epoch``): after a restore the worker's requests from before
   are never sent (the politeness gate fences them); those it had not sent yet go back to the
   shared queue unless the restored state knows their URL already (:meth:`ClusterScheduler.adopt`).
"""

from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError
from scrapy.utils.misc import load_object
from scrapy_redis.dupefilter import RFPDupeFilter
from scrapy_redis.queue import PriorityQueue
from scrapy_redis.scheduler import Scheduler

from crawler.cluster.state import NOW, NUM, STATE, StateError, check
from crawler.cluster.worker import ClusterWorker, _inprogress

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

#: Request meta: the id of the popped request in its worker's in-flight hash.
META_INFLIGHT = "polite_cluster_inflight"
#: Request meta: the job epoch the request was popped under (state.py).
META_EPOCH = "polite_cluster_epoch"
#: Request meta the scheduler adds and a re-queued request must not carry.
_OWN_META = (META_INFLIGHT, META_EPOCH)

# KEYS: queue (sorted set), in-flight hash, id counter, epoch. ARGV: epoch id.
# Returns {id, encoded request}, nil, or {'!', code, detail} (nothing popped: the job's state
# is not trusted, or a restored epoch is in its hold).
_POP = NOW + NUM + STATE + """
local code, detail = job_state(KEYS[4], ARGV[1])
if code then return {'!', code, detail} end
local r = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #r == 0 then return false end
redis.call('ZREM', KEYS[1], r[1])
local id = tostring(redis.call('INCR', KEYS[3]))
redis.call('HSET', KEYS[2], id, r[2] .. ':' .. r[1])
return {id, r[1]}
"""


# KEYS: queue, per-origin counters, epoch. ARGV: priority, origin, encoded request, epoch id.
# A push is taken during a restored epoch's hold (only grants and pops wait for it).
_PUSH = NOW + NUM + STATE + """
local code, detail = job_state(KEYS[3], ARGV[4])
if code and code ~= 'hold' then return {'!', code, detail} end
local n = redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('ZADD', KEYS[1], -tonumber(ARGV[1]) * 1e9 + (n % 1e9), ARGV[3])
return n
"""


# KEYS: queue, per-origin counters, duplicate filter set, epoch. ARGV: priority, origin,
# encoded request, fingerprint, epoch id. Returns 1 when queued, 0 when the fingerprint was
# seen already.
_PUSH_UNSEEN = NOW + NUM + STATE + """
local code, detail = job_state(KEYS[4], ARGV[5])
if code and code ~= 'hold' then return {'!', code, detail} end
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
                 inflight_key: str, seq_key: str, origin_seq_key: str, epoch_key: str,
                 epoch: Any) -> None:
        super().__init__(server, spider, key, serializer)
        self.inflight_key = inflight_key
        self.seq_key = seq_key
        self.origin_seq_key = origin_seq_key
        self.epoch_key = epoch_key
        #: a callable: the epoch the worker works under now
        self.epoch = epoch
        self._pop = server.register_script(_POP)
        self._push = server.register_script(_PUSH)
        self._push_unseen = server.register_script(_PUSH_UNSEEN)

    def encode(self, request: Request) -> bytes:
        return self._encode_request(request)

    def push(self, request: Request) -> None:
        from crawler.middlewares import origin_of

        self.push_raw(self._encode_request(request), int(request.priority), origin_of(request))

    def push_raw(self, data: bytes, priority: int, origin: str) -> None:
        check(self._push(keys=[self.key, self.origin_seq_key, self.epoch_key],
                         args=[priority, origin, data, self.epoch()]))

    def push_unseen(self, request: Request, dupefilter_key: str, fingerprint: str) -> bool:
        """Mark ``fingerprint`` seen and queue ``request`` in one script call (False: seen
        before). Two calls would leave a window in which a killed worker has marked a URL seen
        without queueing it: no worker would ever fetch it."""
        from crawler.middlewares import origin_of

        return self.push_unseen_raw(self._encode_request(request), int(request.priority),
                                    origin_of(request), dupefilter_key, fingerprint)

    def push_unseen_raw(self, data: bytes, priority: int, origin: str, dupefilter_key: str,
                        fingerprint: str) -> bool:
        return bool(check(self._push_unseen(
            keys=[self.key, self.origin_seq_key, dupefilter_key, self.epoch_key],
            args=[priority, origin, data, fingerprint, self.epoch()])))

    def pop(self, timeout: int = 0) -> Request | None:
        epoch = self.epoch()
        res = check(self._pop(keys=[self.key, self.inflight_key, self.seq_key, self.epoch_key],
                              args=[epoch]))
        if not res:
            return None
        ident, data = res
        request = self._decode_request(data)
        request.meta[META_INFLIGHT] = ident.decode() if isinstance(ident, bytes) else ident
        request.meta[META_EPOCH] = epoch
        return request


class Spool:
    """Requests Redis could not take, one JSON line each (``url``, ``priority``, ``origin``,
    ``fp``: the duplicate-filter fingerprint, or null for a request that bypasses it;
    ``data``: the encoded request, base64), appended and flushed one by one. The file exists
    only while something is spooled."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        try:
            with open(path, "rb") as fh:
                self.count = sum(1 for line in fh if line.endswith(b"\n"))
        except OSError:
            pass

    def add(self, entry: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.count += 1

    def entries(self) -> list[dict[str, Any]]:
        out = []
        try:
            with open(self.path, "rb") as fh:
                for line in fh:
                    try:
                        entry = json.loads(line)
                    except ValueError:  # a line torn by a kill: never completed, never used
                        continue
                    if isinstance(entry, dict) and isinstance(entry.get("data"), str):
                        out.append(entry)
        except OSError:
            pass
        return out

    def replace(self, entries: list[dict[str, Any]]) -> None:
        """Keep only ``entries`` (the file goes when none is left)."""
        if not entries:
            self.path.unlink(missing_ok=True)
            self.count = 0
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            for e in entries:
                fh.write(json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)
        self.count = len(entries)


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
        self.spool = Spool(worker.spool_path)

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
            origin_seq_key=k.origin_seq, epoch_key=k.epoch, epoch=lambda: self.worker.epoch)
        self.worker.scheduler = self
        queued = len(self.queue)
        if queued:
            logger.info("job %r: %d requests already queued by the cluster", k.job, queued)
        if self.spool.count:
            logger.warning("worker %r: %d requests spooled by an earlier run in %s are pushed "
                           "once Redis takes them", self.worker.name, self.spool.count,
                           self.spool.path)

    def enqueue_request(self, request: Request) -> bool:
        for key in _OWN_META:  # a redirect or retry of a popped request
            request.meta.pop(key, None)
        fp = None if request.dont_filter else self.df.request_fingerprint(request)
        if self.worker.stalled is not None:
            return self._spool(request, fp, self.worker.stalled.describe(self.worker.keys.job))
        try:
            try:
                queued = self._push(request, fp)
            except StateError as exc:
                if not self.worker.state_seen(exc.problem):
                    raise
                queued = self._push(request, fp)  # once more, under the adopted epoch
        except StateError as exc:
            return self._spool(request, fp, exc.problem.describe(self.worker.keys.job))
        except RedisError as exc:
            return self._spool(request, fp, f"Redis unavailable: {exc}")
        if not queued:
            self.df.log(request, self.spider)
            return False
        if self.stats:
            self.stats.inc_value("scheduler/enqueued/redis")
        return True

    def _push(self, request: Request, fp: str | None) -> bool:
        if fp is None:
            self.queue.push(request)
            return True
        return self.queue.push_unseen(request, self.df.key, fp)

    # -- the spool: what Redis could not take ------------------------------------------------
    def _spool(self, request: Request, fp: str | None, why: str) -> bool:
        from crawler.middlewares import origin_of

        first = self.spool.count == 0
        try:
            self.spool.add({"url": request.url, "priority": int(request.priority),
                            "origin": origin_of(request), "fp": fp,
                            "data": base64.b64encode(self.queue.encode(request)).decode()})
        except OSError as exc:
            logger.error("cannot queue %s (%s) nor spool it in %s (%s): request dropped",
                         request.url, why, self.spool.path, exc.strerror or exc)
            if self.stats:
                self.stats.inc_value("polite/cluster/enqueue_failed")
            return False
        if first:
            logger.warning("cannot queue requests in Redis (%s): kept in %s and pushed once "
                           "Redis takes them", why, self.spool.path)
        if self.stats:
            self.stats.inc_value("polite/cluster/spooled")
        return True

    @property
    def spooled(self) -> int:
        return self.spool.count

    def drain_spool(self) -> int:
        """Push what was spooled (through the duplicate filter); how many were queued. Stops
        at the first failure (the rest stays spooled); raises RedisError / StateError."""
        if not self.spool.count or self.worker.stalled is not None:
            return 0
        entries = self.spool.entries()
        queued = done = 0
        try:
            for entry in entries:
                data = base64.b64decode(entry["data"])
                prio, origin = int(entry.get("priority") or 0), str(entry.get("origin") or "")
                if entry.get("fp"):
                    queued += self.queue.push_unseen_raw(data, prio, origin, self.df.key,
                                                         str(entry["fp"]))
                else:
                    self.queue.push_raw(data, prio, origin)
                    queued += 1
                done += 1
        finally:
            if done:
                self.spool.replace(entries[done:])
                logger.warning("worker %r: %d spooled requests pushed to Redis (%d new to the "
                               "cluster)%s", self.worker.name, done, queued,
                               f", {len(entries) - done} left" if done < len(entries) else "")
        return queued

    def _unsent(self) -> list[Request]:
        """Popped requests still in progress that were not sent (no ``send`` record yet)."""
        from crawler.decisions import META_SEND

        inprogress = _inprogress(self.worker.crawler)
        return [r for r in self._popped.values()
                if (inprogress is None or r in inprogress) and META_SEND not in r.meta]

    def adopt(self) -> tuple[int, int]:
        """The worker adopts a new epoch: its requests popped before are never sent (the gate
        fences them); those not sent yet go back to the queue unless the restored state knows
        their URL already (then a restored queue entry or a send record has it). Returns
        (re-queued, left to the restored state)."""
        requeued = left = 0
        for request in self._unsent():
            clean = request.replace()
            for key in _OWN_META:
                clean.meta.pop(key, None)
            if self._push(clean, None if clean.dont_filter
                          else self.df.request_fingerprint(clean)):
                requeued += 1
            else:
                left += 1
        self._popped.clear()
        return requeued, left

    def spool_unsent(self) -> int:
        """The worker gives up: keep its unsent popped requests in the spool (their entries in
        Redis are gone or untrusted); how many."""
        n = 0
        for request in self._unsent():
            clean = request.replace()
            for key in _OWN_META:
                clean.meta.pop(key, None)
            fp = None if clean.dont_filter else self.df.request_fingerprint(clean)
            if self._spool(clean, fp, "the worker stops"):
                n += 1
        self._popped.clear()
        return n

    def next_request(self) -> Request | None:
        if self.worker.stalled is not None or self.worker.closing:
            return None
        try:
            try:
                request = self.queue.pop(0)
            except StateError as exc:
                if not self.worker.state_seen(exc.problem):
                    return None
                request = self.queue.pop(0)
        except StateError:
            return None
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
