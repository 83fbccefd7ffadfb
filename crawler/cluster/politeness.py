"""Per-origin politeness for the whole cluster: one Lua script decides every send.

Each origin has one Redis hash (``polite:<job>:origin:<origin>``): the current lease (token,
worker, expiry) and what ``next_allowed`` is computed from.
:data:`~crawler.cluster.scripts.ACQUIRE_SCRIPT` grants a send only if

* no *live* worker holds the origin's lease (concurrency 1 across the cluster; a lease
  expires after the request's download timeout plus a margin, and is void at once when its
  holder's presence key has expired: a killed worker blocks nobody), and
* the server's clock (Redis ``TIME``: one clock for all workers) has reached
  ``next_allowed`` (the previous request's reference time plus the delay, or a Retry-After),

and then records the lease and the new reference (``next_allowed = now + delay``) in the
same atomic call. Otherwise it answers how long to wait — except when nothing but the delay's
last second is in the way: then the lease is granted at once for a send at the delay's end,
and :meth:`OriginGate.acquire <crawler.cluster.gate.OriginGate.acquire>` sleeps it out (no
second round trip; the turn after a delay is booked by the first told to wait for it, and a
wait behind another worker's lease counts on the origin's last lease time). A request whose
delay is larger than the one the previous grant recorded waits for its own: a Crawl-delay
learnt from the robots.txt just fetched already spaces the next request.

``POLITE_CLUSTER_SPACING`` says where the delay counts from. ``response`` (the default):
releasing the lease moves the reference to the release, so the next request leaves at least
``delay`` after the previous one was *answered* — a guarantee the server can check in its own
log, since an answer always follows the request's arrival. ``grant``: from the previous grant
only (Scrapy's DOWNLOAD_DELAY meaning, send to send): faster by one download time per
request, but the server may see a gap shorter than the delay by however much longer the
previous request took from its grant to the server (a new connection, a busy worker).

The delay is the larger of ``POLITE_CLUSTER_DELAY`` (the job's ``DOWNLOAD_DELAY``) and the
robots.txt ``Crawl-delay`` / ``Request-rate`` for our token (capped by
``POLITE_MAX_CRAWL_DELAY``), read from the robots.txt the worker holds — so per-origin files
fetched after robots.txt are spaced by it too.

:class:`ClusterPolitenessMiddleware` asks just before the downloader (order 950: its
``process_request`` runs after every other middleware's, its ``process_response`` and
``process_exception`` before theirs, so the lease is released before a redirect or a retry
is made). Per-origin files (``polite_preflight``) and registry calls pass through it like
any request. Within one worker, requests for one origin queue locally and only the first
asks Redis (with spacing ``response``, the next one asks once the lease is released and the
delay has run from there); the grant travels in the worker's step script with the release of
the previous lease, the links found and the next pops (scheduler.py), so a page costs about one
round trip. A 429/503 with
``Retry-After`` defers the origin for the whole cluster.

Scrapy's own per-slot delay is set to 0 in cluster mode (settings.py): a local delay on top of
the shared one could only move a granted send later, closer to the next worker's grant.

**When Redis fails** (state.py). The same script call checks the job's epoch first: when the
job's state is lost or untrusted (Redis restarted empty, restarted from a snapshot or an
AOF, failed over) nothing is granted, to any worker, until an operator restores it; a
restored epoch grants nothing during its hold, while every live worker re-registers the leases
of its requests on the wire (:meth:`ClusterPolitenessMiddleware.adopt`) and marks the origins
it was answered by just now (the next request there waits a full delay from the restore).
It also **fences** requests: a request popped from the shared queue is granted only while
its entry is still in this worker's in-flight hash (a worker that looked dead has had its
requests re-queued: it must not send them too) and only under the epoch it was popped in.
A lease whose release fails (Redis unreachable) is kept in a local list and released as soon
as Redis answers again; so is the token of a grant whose answer was lost in transit (each
new try uses a new token, so a late release can never free a lease in use).

The gate's Lua scripts are in :mod:`crawler.cluster.scripts`, their client
(:class:`~crawler.cluster.gate.OriginGate`: one job, one Redis client, one worker name) in
:mod:`crawler.cluster.gate`; this module is the Scrapy side.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from redis.exceptions import RedisError
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.defer import Deferred

from crawler.cluster import defaults
from crawler.cluster.gate import AHEAD_MAX, GateTimeout, Grant, OriginGate
from crawler.cluster.keys import META_EPOCH, META_INFLIGHT
from crawler.cluster.settings import cluster_enabled
from crawler.cluster.state import StateProblem
from crawler.cluster.worker import ClusterWorker, cluster_setting, sleep
from crawler.crawl import defaults as crawler_defaults
from crawler.crawl.meta import origin_of
from crawler.crawl.retry_after import parse_retry_after
from crawler.crawl.runtime import get_runtime
from crawler.policy.pacing import clamp_crawl_delay

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Request, Response

logger = logging.getLogger(__name__)

META_LEASE = "polite_cluster_lease"


class _Held(NamedTuple):
    origin: str
    granted: float   # time.monotonic() of the grant
    lease: float     # seconds
    delay: float     # seconds


class ClusterPolitenessMiddleware:
    """Downloader middleware: no request leaves before the cluster grants its origin.

    Takes the crawler (its stats), the worker, the worker's :class:`OriginGate`, and from
    the runtime (:func:`crawler.crawl.runtime.get_runtime`) the per-origin file cache and the
    product token whose robots.txt interval spaces an origin (None without the runtime:
    ``base_delay`` only); :meth:`from_crawler` wires them from the crawler and its settings.
    """

    def __init__(self, crawler: Crawler, worker: ClusterWorker, gate: OriginGate, *,
                 sitecache: Any = None, token: str | None = None,
                 base_delay: float = defaults.POLITE_CLUSTER_DELAY,
                 max_delay: float = crawler_defaults.POLITE_MAX_CRAWL_DELAY,
                 download_timeout: float = 180.0,
                 margin: float = defaults.POLITE_CLUSTER_LEASE_MARGIN,
                 gate_timeout: float = defaults.POLITE_CLUSTER_GATE_TIMEOUT,
                 retry_after_max: float = crawler_defaults.POLITE_RETRY_AFTER_MAX) -> None:
        self.crawler = crawler
        self.worker = worker
        self.gate = gate
        #: the runtime's per-origin file cache and product token (None: no runtime)
        self.sitecache = sitecache
        self.token = token
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.download_timeout = download_timeout
        self.margin = margin
        self.gate_timeout = gate_timeout
        self.retry_after_max = retry_after_max
        self._turns: dict[str, deque[Deferred[None]]] = {}
        self._seq = itertools.count(1)
        self._delays: dict[str, float] = {}
        #: token -> the lease of a request on the wire (what this worker holds)
        self._held: dict[str, _Held] = {}
        #: token -> origin of leases whose release failed (released when Redis answers)
        self._pending: dict[str, str] = {}
        #: origin -> (time.monotonic() of its last answer, its delay)
        self._answered: dict[str, tuple[float, float]] = {}
        #: origin -> time.monotonic() until which a Retry-After this worker got defers it
        self._deferred: dict[str, float] = {}
        #: token -> the delay of a lease being released (its origin's next turn waits it)
        self._delay_of: dict[str, float] = {}
        #: origin -> the token of this worker's request that holds its local turn until its
        #: release and delay (see _keeps_turn)
        self._turn_holder: dict[str, str] = {}
        self.gate.via = self._grant_via
        # a grant whose only obstacle is the delay's last moments is made at once, for a send
        # at the delay's end (slept out here: no second round trip; see OriginGate.ahead)
        self.gate.ahead = AHEAD_MAX
        self._fenced_said = False
        worker.politeness = self

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ClusterPolitenessMiddleware:
        s = crawler.settings
        if not cluster_enabled(s):
            raise NotConfigured
        worker = ClusterWorker.of(crawler)
        gate = OriginGate(worker.redis, worker.keys, worker.name,
                          epoch=lambda: worker.epoch,
                          poll=float(cluster_setting(s, "POLITE_CLUSTER_LEASE_POLL")),
                          spacing=str(cluster_setting(s, "POLITE_CLUSTER_SPACING")),
                          gap=worker.interval)
        rt = get_runtime(crawler, required=False)
        return cls(
            crawler, worker, gate,
            sitecache=rt.sitecache if rt is not None else None,
            token=rt.policy.token if rt is not None else None,
            base_delay=float(cluster_setting(s, "POLITE_CLUSTER_DELAY")),
            max_delay=float(s.get("POLITE_MAX_CRAWL_DELAY")
                            or crawler_defaults.POLITE_MAX_CRAWL_DELAY),
            download_timeout=s.getfloat("DOWNLOAD_TIMEOUT", 180.0),
            margin=float(cluster_setting(s, "POLITE_CLUSTER_LEASE_MARGIN")),
            gate_timeout=float(cluster_setting(s, "POLITE_CLUSTER_GATE_TIMEOUT")),
            retry_after_max=float(s.get("POLITE_RETRY_AFTER_MAX")
                                  or crawler_defaults.POLITE_RETRY_AFTER_MAX))

    # -- the delay ---------------------------------------------------------------------
    def delay_for(self, origin: str) -> float:
        """``POLITE_CLUSTER_DELAY``, or the origin's robots.txt interval when larger."""
        delay = self.base_delay
        if self.sitecache is None:
            return delay
        robots = self.sitecache.cached(origin, "robots.txt")
        if robots is not None and robots.parsed is not None:
            wanted = clamp_crawl_delay(robots.parsed.visit_interval(self.token), delay,
                                       self.max_delay)
            if wanted is not None:
                delay = wanted
                if self._delays.get(origin) != delay:
                    self._delays[origin] = delay
                    self.crawler.stats.set_value(f"polite/crawl_delay/{origin}", delay)
                    logger.info("%s asks for %.1f s between requests: applied across the "
                                "cluster", origin, delay)
        return delay

    # -- before the download -------------------------------------------------------------
    async def process_request(self, request: Request, spider: Any = None) -> None:
        origin = origin_of(request)
        delay = self.delay_for(origin)
        lease = float(request.meta.get("download_timeout") or self.download_timeout) + self.margin
        token = f"{self.worker.name}:{next(self._seq)}"
        inflight = request.meta.get(META_INFLIGHT)

        def check() -> None:
            if self.worker.closing:
                raise IgnoreRequest("the worker stops (the job's state was not restored in "
                                    "time): not sent, kept in its spool")
            if inflight is not None and request.meta.get(META_EPOCH) != self.worker.epoch:
                self._fenced(request, "it was popped before the job's state was restored")

        check()
        await self._local_turn(origin)
        granted = False
        try:
            token = await self._acquire(request, origin, token, delay, lease, inflight, check)
            granted = True
        finally:
            if not (granted and self._keeps_turn()):
                self._next_turn(origin)
        request.meta[META_LEASE] = (origin, token)
        self._held[token] = _Held(origin, time.monotonic(), lease, delay)
        if self._keeps_turn():
            from scrapy.utils.asyncio import call_later

            self._turn_holder[origin] = token
            call_later(lease, self._pass_turn, origin, token)   # never held past the lease

    def _pass_turn(self, origin: str, token: str) -> None:
        """The next request of this worker for ``origin`` may ask now (once per token)."""
        if self._turn_holder.get(origin) == token:
            del self._turn_holder[origin]
            self._next_turn(origin)

    def _grant_via(self, keys: list[str], args: list[Any]) -> Any:
        """A grant with the worker's batched round trip (links, releases, its next pop) when an
        engine runs it; else the gate's own script."""
        scheduler = self.worker.scheduler
        if self.worker.batching and scheduler is not None:
            return scheduler.grant_step(keys, args)
        return self.gate._acquire(keys=keys, args=args)

    def _keeps_turn(self) -> bool:
        """Whether a granted request keeps its origin's local turn until its lease is
        released and the delay has run from there (spacing ``response``, with an engine): no
        other request of this worker can be granted the origin before then, so asking Redis
        sooner would only cost round trips. (Redis decides every grant either way.)"""
        return self.gate.spacing == "response" and self.worker.batching

    def _fenced(self, request: Request, why: str) -> None:
        self.crawler.stats.inc_value("polite/cluster/fenced")
        if not self._fenced_said:
            self._fenced_said = True
            logger.warning("worker %r: %s is not sent here: %s; the cluster's queue has it "
                           "(further such requests are dropped silently; "
                           "polite/cluster/fenced counts them)", self.worker.name,
                           request.url, why)
        raise IgnoreRequest(f"fenced: {why}")

    def _on_state(self, request: Request, problem: StateProblem) -> bool:
        if problem.code == "fenced":
            self._fenced(request, "it was re-queued for the other workers while this worker "
                                  "looked dead")
        return self.worker.state_seen(problem)

    async def _acquire(self, request: Request, origin: str, token: str, delay: float,
                       lease: float, inflight: str | None, check: Callable[[], None]) -> str:
        stats = self.crawler.stats

        def on_try(grant: Grant) -> None:
            stats.inc_value("polite/cluster/gate/tries")
            if grant.problem:
                stats.inc_value("polite/cluster/gate/invalid")

        try:
            got = await self.gate.acquire(origin, token, delay=delay, lease=lease,
                                          timeout=self.gate_timeout, sleep=sleep,
                                          on_try=on_try, inflight=inflight, check=check,
                                          on_state=lambda p: self._on_state(request, p))
        except GateTimeout as exc:
            stats.inc_value("polite/cluster/gate/timeout")
            logger.error("cluster politeness: %s not granted within %.0f s: not sent",
                         request.url, self.gate_timeout)
            raise IgnoreRequest(str(exc)) from None
        stats.inc_value("polite/cluster/gate/granted")
        if got.waited > 0.005:
            stats.inc_value("polite/cluster/gate/waited")
            stats.inc_value("polite/cluster/gate/wait_seconds", round(got.waited, 3))
        return got.token

    async def _local_turn(self, origin: str) -> None:
        """One request per origin at a time asks Redis from this worker; the others queue."""
        queue = self._turns.get(origin)
        if queue is None:
            self._turns[origin] = deque()
            return
        d: Deferred[None] = Deferred()
        queue.append(d)
        await maybe_deferred_to_future(d)

    def _next_turn(self, origin: str) -> None:
        queue = self._turns.get(origin)
        while queue:
            d = queue.popleft()
            if not d.called:  # a waiter whose request was cancelled is skipped
                d.callback(None)
                return
        self._turns.pop(origin, None)

    # -- after the download ---------------------------------------------------------------
    def process_response(self, request: Request, response: Response,
                         spider: Any = None) -> Response:
        origin = self._release(request)
        if origin is not None and response.status in (429, 503):
            wait = parse_retry_after(response.headers.get(b"Retry-After"))
            if wait is not None and 0 < wait <= self.retry_after_max:
                self._deferred[origin] = max(self._deferred.get(origin, 0.0),
                                             time.monotonic() + wait)
                try:
                    self.gate.defer(origin, wait)
                    self.crawler.stats.inc_value("polite/cluster/retry_after")
                except RedisError as exc:
                    logger.warning("cluster politeness: cannot defer %s (%s)", origin, exc)
        return response

    def process_exception(self, request: Request, exception: BaseException,
                          spider: Any = None) -> None:
        self._release(request)

    def _release(self, request: Request) -> str | None:
        held = request.meta.pop(META_LEASE, None)
        if held is None:
            return None
        origin, token = held
        lease = self._held.pop(token, None)
        delay = lease.delay if lease else self.base_delay
        self._answered[origin] = (time.monotonic(), delay)
        self._delay_of[token] = delay
        scheduler = self.worker.scheduler
        if self.worker.batching and scheduler is not None:
            # with the worker's next round trip (its next pop, or FLUSH_DELAY from now): the
            # spacing then counts from that moment, a little later than the answer
            scheduler.outbox.releases.append((origin, token))
            scheduler.schedule_flush()
            return origin
        try:
            self.gate.release(origin, token)
        except RedisError as exc:
            self.release_failed(origin, token, exc)
        else:
            self.released([(origin, token)])
        return origin

    def release_failed(self, origin: str, token: str, exc: Exception) -> None:
        """A release Redis did not take: kept, and released as soon as Redis answers again
        (worker heartbeat), so that an origin is not blocked for the whole lease by a holder
        that is done with it."""
        self._pending[token] = origin
        self._delay_of.pop(token, None)
        self.crawler.stats.inc_value("polite/cluster/release_pending")
        logger.warning("cluster politeness: cannot release %s now (%s); released when "
                       "Redis answers again", origin, exc)
        self._pass_turn(origin, token)   # the next request asks Redis, which says how long

    def released(self, releases: list[tuple[str, str]]) -> None:
        """Redis took these releases now: an origin's next request from this worker asks
        once its delay has run from here."""
        from scrapy.utils.asyncio import call_later

        for origin, token in releases:
            delay = self._delay_of.pop(token, self.base_delay)
            if self._turn_holder.get(origin) == token:
                call_later(delay, self._pass_turn, origin, token)

    # -- when Redis answers again, and after a restore --------------------------------------
    def retry_releases(self) -> int:
        """Release the leases whose release failed, and grants whose answer was lost; how
        many were released. Raises RedisError (the rest stays listed)."""
        done = 0
        for pending in (self._pending, self.gate.orphans):
            for token, origin in list(pending.items()):
                if self.gate.release(origin, token):
                    done += 1
                del pending[token]
        if done:
            self.crawler.stats.inc_value("polite/cluster/released_late", done)
            logger.warning("cluster politeness: %d leases released now that Redis answers",
                           done)
        return done

    def adopt(self) -> int:
        """Under the restored epoch: re-register the leases of this worker's requests on the
        wire, restart the spacing of the origins it was answered by within their delay, and
        the Retry-After deferrals it got that still run. The grants that failed to release or
        were lost do not exist in a restored state."""
        now = time.monotonic()
        leases = [(h.origin, token, h.lease - (now - h.granted), h.delay)
                  for token, h in self._held.items() if h.lease > now - h.granted]
        recent = []
        for origin, (at, delay) in list(self._answered.items()):
            if now - at <= delay + 0.5:
                recent.append((origin, delay))
            else:
                del self._answered[origin]
        n = self.gate.reregister(leases, recent)
        for origin, until in list(self._deferred.items()):  # Retry-After still running
            if until > now:
                self.gate.defer(origin, until - now)
            else:
                del self._deferred[origin]
        self._pending.clear()
        self.gate.orphans.clear()
        return n
