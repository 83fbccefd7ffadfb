"""The shared request queue: scrapy-redis's scheduler and duplicate filter, per job.

:class:`ClusterScheduler` is ``scrapy_redis.scheduler.Scheduler`` with
``scrapy_redis.dupefilter.RFPDupeFilter``, keys ``polite:<job>:requests`` and
``polite:<job>:dupefilter``. It subclasses rather than uses scrapy-redis 0.9.1 as is, because:

1. **Scrapy 2.19 compatibility.** scrapy-redis passes ``spider=`` to ``stats.inc_value()`` on
   every enqueue and dequeue; Scrapy deprecated that argument, so each call warns
   (``ScrapyDeprecationWarning``, an error under ``filterwarnings = error``). The two methods
   are re-implemented without it.
2. **Requests in flight survive a killed worker.** scrapy-redis's ``PriorityQueue.pop`` removes
   a request from Redis before it is downloaded: a worker killed with requests in its downloader
   loses them for good. :class:`~crawler.cluster.queue.InflightPriorityQueue` moves the popped
   request into the worker's in-flight hash (``polite:<job>:inflight:<worker>``) in the same
   script call; the worker acknowledges it once Scrapy is done with it (its callback's requests
   are queued), and a dead worker's unacknowledged requests go back to the queue (worker.py).
   Delivery is at least once: a request whose worker died after fetching it but before the
   acknowledgement is fetched again (and decided again: nothing bypasses the reservation checks
   or the shared politeness).
3. **Origins interleaved.** Within a priority, every origin's n-th request is queued before
   any origin's (n+1)-th (:class:`~crawler.cluster.queue.InflightPriorityQueue`), so a
   worker's downloader is not filled with requests that all wait for one origin's turn at the
   shared gate (on a web of 80 origins this took one worker from about 45 to about 170
   pages/s).
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
7. **One round trip per page.** While an engine runs the worker, the links a page yields and the
   lease its response ended are batched (:class:`Outbox`) and go out with the worker's next
   script call — the grant of its next request, or its next pop — in one step script
   (:data:`~crawler.cluster.scripts.STEP_SCRIPT`, which runs the gate's own grant and release
   functions and every epoch check), or after :data:`FLUSH_DELAY` at the latest; that call also
   pops up to :data:`PREFETCH` requests ahead for the engine (in the in-flight hash like any
   popped request, acknowledged only once the engine has had them). A request is acknowledged
   only after the links of its page are in Redis or in the spool. Components driven by hand (no
   engine) send each call at once, as before.
"""

from __future__ import annotations

import base64
import logging
import time
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError
from scrapy.utils.misc import load_object
from scrapy_redis.dupefilter import RFPDupeFilter
from scrapy_redis.scheduler import Scheduler

from crawler.cluster.keys import META_EPOCH, META_INFLIGHT
from crawler.cluster.queue import InflightPriorityQueue, Link, Spool
from crawler.cluster.state import StateError, check, problem_of
from crawler.cluster.worker import ClusterWorker
from crawler.crawl.scrapy_internals import engine_inprogress

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

#: Request meta the scheduler adds and a re-queued request must not carry.
_OWN_META = (META_INFLIGHT, META_EPOCH)


class Outbox:
    """What a worker batches for its next round trip (the step script): links found on the
    pages it handled, and origin leases it is done with. Flushed by the next pop, by a timer
    (:data:`FLUSH_DELAY` after the first entry), before every heartbeat (a request is never
    acknowledged before its links are in Redis or in the spool) and when the worker stops."""

    def __init__(self) -> None:
        self.links: list[Link] = []
        self.releases: list[tuple[str, str]] = []   # (origin, token)

    def __bool__(self) -> bool:
        return bool(self.links or self.releases)

    def take(self) -> tuple[list[Link], list[tuple[str, str]]]:
        links, releases = self.links, self.releases
        self.links, self.releases = [], []
        return links, releases


#: Seconds a batched link or release waits for the worker's next round trip at most (a
#: release moves the origin's reference time: the next request there waits longer, never
#: less; a busy worker pops sooner than this).
FLUSH_DELAY = 0.01
#: The same for an outbox that holds links only (no release: nobody waits for it; the
#: worker's next grant or pop usually takes them first, which saves a round trip).
LINKS_FLUSH_DELAY = 0.05
#: Requests a worker keeps popped ahead of its engine (popped with a grant's or a pop's round
#: trip, handed out by the next ``next_request`` calls): in the in-flight hash like any popped
#: request, never acknowledged before the engine has had them. 4 rather than 2: the grant
#: steps (one or more a page) keep the stock up, so the engine seldom needs a pop of its own
#: (bench/cluster_bench.py, 3 workers: pop-only round trips 0.14 -> 0.05 a page).
PREFETCH = 4
#: After a pop found the shared queue empty, the next pop waits this many seconds (unless
#: this worker queued links meanwhile, or a heartbeat saw work): an idle engine asks its
#: scheduler on every event, and each ask would be a round trip.
EMPTY_BACKOFF = 0.1


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
        #: links and releases batched for the next round trip (only while an engine runs
        #: the worker: see ClusterWorker.batching; otherwise each call goes out at once)
        self.outbox = Outbox()
        #: time.monotonic() by which the outbox is to be flushed (a timer is set), or None
        self._flush_due: float | None = None
        #: requests popped with a grant's round trip, not yet handed to the engine (in the
        #: in-flight hash: a killed worker's go back to the queue; never acknowledged before
        #: the engine has had them)
        self._prefetched: list[Request] = []
        #: time.monotonic() before which a pop is not worth a round trip (see EMPTY_BACKOFF)
        self._empty_until = 0.0
        self._look_pending = False

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
        if self.worker.batching:
            from crawler.crawl.meta import origin_of

            # pushed (through the duplicate filter) with this worker's next round trip; a
            # link seen before is logged and dropped then (request_dropped, as Scrapy does)
            self.outbox.links.append(Link(request, self.queue.encode(request),
                                          int(request.priority), origin_of(request), fp))
            self.schedule_flush()
            return True
        return self._enqueue_now(request, fp)

    def _enqueue_now(self, request: Request, fp: str | None) -> bool:
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
        from crawler.crawl.meta import origin_of

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
        from crawler.crawl.decisions import META_SEND

        inprogress = engine_inprogress(self.worker.crawler)
        return [r for r in self._popped.values()
                if (inprogress is None or r in inprogress) and META_SEND not in r.meta
                ] + self._prefetched

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
        self._prefetched.clear()
        return requeued, left

    def spool_unsent(self) -> int:
        """The worker gives up: keep its unsent popped requests in the spool (their entries in
        Redis are gone or untrusted); how many."""
        n = 0
        links, self.outbox.links = self.outbox.links, []
        for link in links:   # links batched but never pushed
            if self._spool(link.request, link.fp, "the worker stops"):
                n += 1
        for request in self._unsent():
            clean = request.replace()
            for key in _OWN_META:
                clean.meta.pop(key, None)
            fp = None if clean.dont_filter else self.df.request_fingerprint(clean)
            if self._spool(clean, fp, "the worker stops"):
                n += 1
        self._popped.clear()
        self._prefetched.clear()
        return n

    # -- the batched round trip ----------------------------------------------------------
    def schedule_flush(self) -> None:
        """Flush the outbox within FLUSH_DELAY (LINKS_FLUSH_DELAY while it holds links only)
        unless a grant or a pop takes it first."""
        delay = FLUSH_DELAY if self.outbox.releases else LINKS_FLUSH_DELAY
        due = time.monotonic() + delay
        if self._flush_due is not None and self._flush_due <= due:
            return
        self._flush_due = due
        from scrapy.utils.asyncio import call_later

        def flush() -> None:
            # a timer superseded by a sooner one finds its due time gone or later
            if self._flush_due is None or time.monotonic() + 0.0005 < self._flush_due:
                return
            self._flush_due = None
            self.flush()

        call_later(delay, flush)

    def flush(self) -> None:
        """Send what the outbox holds now (no pop). Never raises: what Redis cannot take is
        handled as when sent alone (releases retried later, links spooled)."""
        if self.outbox:
            try:
                self._round_trip(pop=0)
            except RedisError:
                pass   # handled in _step: releases retried later, links spooled

    def _step(self, *, pop: int) -> Request | None:
        """The outbox and up to ``pop`` pops in one round trip; the first request popped (the
        others are kept for the next calls), or None. Raises StateError when the pop was
        refused (the outbox is handled either way)."""
        popped, _ = self._round_trip(pop=pop)
        check(popped)
        self._prefetched.extend(popped)
        if popped:
            self._wake_soon()
        return self._prefetched.pop(0) if self._prefetched else None

    def _wake_soon(self) -> None:
        from crawler.cluster.worker import _wake

        _wake(self.worker.crawler)

    def grant_step(self, keys: list[str], args: list[Any]) -> Any:
        """For the politeness gate (when batching): its grant (ACQUIRE_SCRIPT's ``keys`` and
        ``args``) with the outbox and, when this worker has no popped request waiting for the
        engine, one pop (kept for the engine's next ``next_request``), in one round trip.
        Returns the grant's answer; raises RedisError (the outbox handled as when sent
        alone)."""
        pop = 0
        if self.worker.stalled is None and not self.worker.closing:
            pop = max(0, PREFETCH - len(self._prefetched))
        popped, granted = self._round_trip(pop=pop, grant=(keys, args))
        if problem_of(popped) is None and popped:
            self._prefetched.extend(popped)
            self._wake_soon()
        return granted

    def _round_trip(self, *, pop: int,
                    grant: tuple[list[str], list[Any]] | None = None) -> tuple[Any, Any]:
        links, releases = self.outbox.take()
        self._flush_due = None   # nothing left to flush: a pending timer finds nothing due
        politeness = self.worker.politeness
        try:
            released, pushed, popped, granted = self.queue.step(
                links, releases, pop=pop, origin_prefix=self.worker.keys.origin(""),
                from_now=politeness is None or politeness.gate.spacing == "response",
                dupefilter_key=self.df.key, grant=grant)
        except RedisError as exc:
            if politeness is not None:
                for origin, token in releases:
                    politeness.release_failed(origin, token, exc)
            for link in links:
                self._spool(link.request, link.fp, f"Redis unavailable: {exc}")
            raise
        if politeness is not None and releases:
            politeness.released(releases)
        if self.stats:
            what = ("popped" if popped and problem_of(popped) is None
                    else "empty") if pop else "flush"
            self.stats.inc_value(f"polite/cluster/step/{'grant+' if grant else ''}{what}")
        self._pushed(links, pushed)
        return popped, granted

    def _pushed(self, links: list[Link], pushed: Any) -> None:
        if not links:
            return
        if problem_of(pushed) is not None:
            # the job's state refused them: one by one, as enqueue_request does without
            # batching (a changed epoch is adopted, a lost state spools them)
            for link in links:
                if not self._enqueue_now(link.request, link.fp):
                    self._dropped(link.request)
            return
        flags = pushed.decode() if isinstance(pushed, bytes) else str(pushed)
        if "1" in flags:
            self.queue_has_work()
        for link, flag in zip(links, flags, strict=True):
            if flag == "1":
                if self.stats:
                    self.stats.inc_value("scheduler/enqueued/redis")
            else:
                self.df.log(link.request, self.spider)
                self._dropped(link.request)

    def _dropped(self, request: Request) -> None:
        """A batched link the cluster had seen: what Scrapy's engine does when a scheduler
        refuses a request (the signal), since enqueue_request said True before knowing."""
        from scrapy import signals

        crawler = self.worker.crawler
        if crawler.signals is not None:
            crawler.signals.send_catch_log(signals.request_dropped, request=request,
                                           spider=self.spider)

    def next_request(self) -> Request | None:
        if self.worker.stalled is not None or self.worker.closing:
            self.flush()
            return None
        if self.worker.batching:
            return self._next_batched()
        popped, request = self._pop(lambda: self.queue.pop(0))
        return request if popped else None

    def _pop(self, pop: Any) -> tuple[bool, Request | None]:
        """``pop()`` (a request or None), asked again once after a job-state problem the
        worker has just seen to; ``(False, None)`` when Redis could not answer (logged once
        per outage) or the job's state is not to be trusted. A popped request is registered
        as dequeued."""
        try:
            try:
                request = pop()
            except StateError as exc:
                if not self.worker.state_seen(exc.problem):
                    return False, None
                request = pop()
        except StateError:
            return False, None
        except RedisError as exc:
            if not self._redis_down:
                logger.error("cannot read the request queue from Redis (%s); retrying", exc)
            self._redis_down = True
            return False, None
        self._redis_down = False
        if request is not None:
            self._dequeued(request)
        return True, request

    def _dequeued(self, request: Request) -> None:
        self._popped[request.meta[META_INFLIGHT]] = request
        if self.stats:
            self.stats.inc_value("scheduler/dequeued/redis")

    def _next_batched(self) -> Request | None:
        """next_request: a request popped with a grant's round trip, or one popped now with
        the outbox in the same round trip."""
        if self._prefetched:
            request = self._prefetched.pop(0)
            self._dequeued(request)
            return request
        wait = self._empty_until - time.monotonic()
        if wait > 0 and not self.outbox.links:
            self._look_again(wait)
            return None
        popped, request = self._pop(lambda: self._step(pop=PREFETCH + 1))
        if not popped:
            return None
        if request is None:
            self._empty_until = time.monotonic() + EMPTY_BACKOFF
        return request

    def queue_has_work(self) -> None:
        """Someone (a heartbeat, this worker's own links) saw requests in the shared queue:
        the next pop goes out at once."""
        self._empty_until = 0.0

    def _look_again(self, delay: float) -> None:
        if self._look_pending:
            return
        self._look_pending = True
        from scrapy.utils.asyncio import call_later

        def look() -> None:
            self._look_pending = False
            self._wake_soon()

        call_later(delay + 0.001, look)

    def has_pending_requests(self) -> bool:
        if self.outbox.links or self._prefetched:
            return True
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
