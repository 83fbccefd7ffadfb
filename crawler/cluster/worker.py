"""One cluster worker: its Redis client, its presence, its heartbeat, and when it may stop.

:class:`ClusterWorker` is a Scrapy extension (``EXTENSIONS``), one per crawler, that the other
cluster components reach with :meth:`ClusterWorker.of`. It

* refuses to start when the job has no trusted state in Redis (no epoch: never seeded, or
  Redis lost it; another server run: see state.py): one line, exit 2;
* claims the worker's name (``polite:<job>:alive:<worker>``, ``SET NX`` with a TTL; refused
  too while the name's last heartbeat is live): a second process started with the same name
  while the first is alive refuses to start (the CLI checks the name with
  :func:`check_name_free` before anything is opened, so the refused process leaves the live
  worker's audit log alone; one line, exit 2);
* beats every ``POLITE_CLUSTER_HEARTBEAT`` seconds, with one script call that checks the job's
  epoch, records the beat (Redis ``TIME``), acknowledges the requests this worker has
  finished (scheduler.py), puts the requests a dead worker had in flight back in the shared
  queue (dead: no beat for a TTL *while Redis was answering*, state.py), and reports how much
  work the cluster has left;
* after a beat that Redis answered: releases the origin leases whose release failed while
  Redis was unreachable, and pushes the links spooled meanwhile (``spool-<worker>.jsonl``);
* when the job's state is lost or untrusted (:meth:`state_seen`): sends nothing, says so in
  one line, and waits up to ``POLITE_CLUSTER_RESTORE_WAIT`` for an operator's ``seed
  --restore`` (or ``--reset``); it then adopts the new epoch (re-registers the leases of its
  requests on the wire, re-queues the requests it had not sent yet unless the restored state
  has them) and goes on; after the wait it spools what it holds and stops, exit non-zero;
* wakes its own engine when the shared queue has work (Scrapy's engine only looks at its
  scheduler on its own events or every 5 seconds);
* on ``spider_idle``, pops start URLs (seeds.py) and keeps the spider open while the cluster
  has work anywhere: a worker closes only when the queue and the start URLs are empty, no
  live worker has a request in flight and its own spool is empty, for
  ``POLITE_CLUSTER_IDLE_CLOSE`` seconds. A worker that stops with work left (its spool not
  pushed, the job's state lost) exits non-zero with one line naming what is left.
"""

from __future__ import annotations

import logging
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from redis.exceptions import RedisError
from scrapy import signals
from scrapy.exceptions import DontCloseSpider, NotConfigured

from crawler.audit.runlock import RunLockError
from crawler.cluster import defaults
from crawler.cluster.connection import CountingRedis, named_script, redis_client
from crawler.cluster.keys import JobKeys, check_name
from crawler.cluster.seeds import pop_seed_requests
from crawler.cluster.settings import cluster_enabled
from crawler.cluster.state import (
    LIVENESS,
    NOW,
    NUM,
    STATE,
    StateError,
    StateProblem,
    check,
    job_problem,
    read_epoch,
)
from crawler.config import table
from crawler.crawl.scrapy_internals import engine_inprogress, engine_of, wake_engine

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

REDIS_CALLS_STAT = "polite/cluster/redis_calls"
#: Of those, the background ones (heartbeats, idle polling, start URLs, sign-on and -off).
REDIS_BACKGROUND_STAT = "polite/cluster/redis_calls_background"


def cluster_setting(settings: Any, name: str) -> Any:
    """A ``POLITE_CLUSTER_*`` setting, falling back to :mod:`crawler.cluster.defaults`."""
    value = settings.get(name)
    return getattr(defaults, name) if value is None else value


class ClusterStatus(NamedTuple):
    queued: int       # requests in the shared queue
    start_urls: int   # seeds not yet popped
    in_flight: int    # requests other live workers have popped and not finished
    recovered: int    # requests of dead workers put back in the queue by this beat
    hold: int = 0     # ms left in a restored epoch's hold (nothing is granted before)

    @property
    def has_work(self) -> bool:
        return bool(self.queued or self.start_urls or self.in_flight)


# KEYS: epoch, own alive key, workers set, own in-flight hash, request queue, start URLs,
#       beats, clock
# ARGV: epoch id, ttl ms, own name, alive prefix, in-flight prefix, requeue own ("1"/"0"),
#       gap ms, ids to ack...
# Returns {queued, start URLs, busy, recovered, hold ms} or {'!', code, detail} (state.py):
# then nothing is written (a lost or untrusted state is not refreshed, a changed epoch is
# adopted by the worker first).
_BEAT = NOW + NUM + STATE + LIVENESS + """
local code, detail = job_state(KEYS[1], ARGV[1])
if code and code ~= 'hold' then return {'!', code, detail} end
local ttl = tonumber(ARGV[2])
local gap = tonumber(ARGV[7])
redis.call('HSET', KEYS[8], 'last', now, 'since', served_since(KEYS[8], gap))
redis.call('SET', KEYS[2], '1', 'PX', ttl)
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('HSET', KEYS[7], ARGV[3], now .. ':' .. ttl)
for i = 8, #ARGV, 200 do
  redis.call('HDEL', KEYS[4], unpack(ARGV, i, math.min(i + 199, #ARGV)))
end
local recovered = 0
local function requeue(h)
  local all = redis.call('HGETALL', h)
  for i = 2, #all, 2 do
    local v = all[i]
    local sep = string.find(v, ':', 1, true)
    local score = sep and num(string.sub(v, 1, sep - 1))
    if score then
      redis.call('ZADD', KEYS[5], score, string.sub(v, sep + 1))
      recovered = recovered + 1
    end
  end
  redis.call('DEL', h)
end
if ARGV[6] == '1' then requeue(KEYS[4]) end
local busy = 0
for _, w in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  if w ~= ARGV[3] then
    if not is_alive(w, KEYS[7], KEYS[8], ARGV[4], gap) then
      requeue(ARGV[5] .. w)
      redis.call('SREM', KEYS[3], w)
      redis.call('HDEL', KEYS[7], w)
    else
      busy = busy + redis.call('HLEN', ARGV[5] .. w)
    end
  end
end
local hold = 0
if code == 'hold' then hold = tonumber(detail) end
return {redis.call('ZCARD', KEYS[5]), redis.call('LLEN', KEYS[6]), busy, recovered, hold}
"""

# KEYS: alive key, beats, clock. ARGV: name, ttl ms, gap ms, alive prefix, "1" to claim.
# Returns -2 when the name is free (claimed, with "1"), else the ms its holder still has.
_NAME = NOW + NUM + LIVENESS + """
local pttl = redis.call('PTTL', KEYS[1])
if pttl ~= -2 then return math.max(pttl, 0) end
local gap = tonumber(ARGV[3])
if is_alive(ARGV[1], KEYS[2], KEYS[3], ARGV[4], gap) then
  local b, t = beat_of(KEYS[2], ARGV[1])
  return math.max(t - (now - math.max(b, served_since(KEYS[3], gap))), 0)
end
if ARGV[5] == '1' then redis.call('SET', KEYS[1], '1', 'PX', tonumber(ARGV[2])) end
return -2
"""


class WorkerNameTaken(RunLockError, ValueError):
    """A live worker of the job already holds this name; ``str()`` is one line."""


def name_taken_message(worker: str, job: str, ttl_s: float | None) -> str:
    wait = f"wait up to {ttl_s:.0f} s" if ttl_s is not None else "wait for its heartbeat to expire"
    return (f"cluster mode: worker {worker!r} of job {job!r} is alive (already running: its "
            f"heartbeat in Redis is live); pick another --worker name, or {wait} if it was "
            "killed")


def check_name_free(redis_url: str, job: str, worker: str, *,
                    gap: float = defaults.POLITE_CLUSTER_HEARTBEAT) -> None:
    """Before anything is opened (audit log, output files): refuse a worker name a live
    process of the job holds (its presence key exists, or its last heartbeat is live: on any
    machine), and a job without trusted state in Redis (never seeded, or lost: state.py).
    Raises :class:`WorkerNameTaken`, :class:`JobStateRefused`, or ValueError when Redis
    cannot be reached; each one line.

    Only a check: the name is claimed when the worker starts (:meth:`Presence.claim`, atomic),
    which still refuses a twin started in the instant between the two."""
    keys = JobKeys(job)
    check_name(worker, "worker")
    client = redis_client(redis_url)
    try:
        script = named_script(client, _NAME, "name")
        left = int(script(keys=[keys.alive(worker), keys.beats, keys.clock],
                          args=[worker, 0, int(gap * 1000), keys.alive_prefix, "0"]))
        problem = job_problem(client, job) if left == -2 else None
    except RedisError as exc:
        raise ValueError(f"cluster mode: cannot reach Redis at {_redacted(redis_url)} "
                         f"({exc})") from None
    finally:
        client.close()
    if left != -2:
        raise WorkerNameTaken(name_taken_message(worker, job, left / 1000))
    if problem is not None and problem.code != "hold":
        raise JobStateRefused(state_refusal(problem, job))


class JobStateRefused(RunLockError, ValueError):
    """The job has no trusted state in Redis: a worker does not start; ``str()`` is one line."""


def state_refusal(problem: StateProblem, job: str) -> str:
    if problem.code == "lost":
        return (f"cluster mode: job {job!r} has no state in Redis (no epoch): push its seeds "
                "first ('polite-crawl seed CONFIG'), or, if Redis lost a running job, rebuild "
                "it from the workers' logs ('polite-crawl seed CONFIG --restore')")
    return (f"cluster mode: {problem.describe(job)}; rebuild it from the workers' logs "
            "('polite-crawl seed CONFIG --restore') or start over ('--reset'), then start "
            "the workers")


class Presence:
    """A worker's membership of a job, without Scrapy (the tests drive it directly).

    ``epoch`` is the job epoch the worker works under (state.py): a beat under another one
    raises :class:`~crawler.cluster.state.StateError` and changes nothing."""

    def __init__(self, client: CountingRedis, keys: JobKeys, worker: str, *, epoch: str,
                 ttl: float = defaults.POLITE_CLUSTER_WORKER_TTL,
                 gap: float = defaults.POLITE_CLUSTER_HEARTBEAT) -> None:
        self.client = client
        self.keys = keys
        self.worker = check_name(worker, "worker")
        self.epoch = epoch
        self.ttl_ms = max(1, int(ttl * 1000))
        self.gap_ms = max(1, int(gap * 1000))
        self._beat = named_script(client, _BEAT, "beat")
        self._name = named_script(client, _NAME, "name")

    def claim(self) -> bool:
        """Take the worker's name; False when a live process already holds it (its presence
        key, or a heartbeat that is still live)."""
        k = self.keys
        left = int(self._name(keys=[k.alive(self.worker), k.beats, k.clock],
                              args=[self.worker, self.ttl_ms, self.gap_ms, k.alive_prefix,
                                    "1"]))
        if left != -2:
            return False
        self.client.sadd(self.keys.workers, self.worker)
        return True

    def beat(self, acked: list[str] | tuple[str, ...] = (), *,
             requeue_own: bool = False) -> ClusterStatus:
        k = self.keys
        res = check(self._beat(
            keys=[k.epoch, k.alive(self.worker), k.workers, k.inflight(self.worker),
                  k.requests, k.start_urls, k.beats, k.clock],
            args=[self.epoch, self.ttl_ms, self.worker, k.alive_prefix, k.inflight_prefix,
                  "1" if requeue_own else "0", self.gap_ms, *acked],
        ))
        return ClusterStatus(*(int(x) for x in res))

    def leave(self) -> None:
        """A clean stop: the name is free at once."""
        with self.client.pipeline() as pipe:
            pipe.delete(self.keys.alive(self.worker))
            pipe.srem(self.keys.workers, self.worker)
            pipe.hdel(self.keys.beats, self.worker)
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
        job = (cluster_setting(s, "POLITE_CLUSTER_JOB") or s.get("POLITE_JOB")
               or table.default("POLITE_JOB"))
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
        self.restore_wait = float(cluster_setting(s, "POLITE_CLUSTER_RESTORE_WAIT"))
        spool_name = s.get("POLITE_CLUSTER_SPOOL_FILE") or f"spool-{self.name}.jsonl"
        out = s.get("POLITE_OUTPUT_DIR") or table.default("POLITE_OUTPUT_DIR")
        self.spool_path = Path(str(out)) / str(spool_name)
        self.scheduler: Any = None    # the ClusterScheduler attaches itself when it opens
        self.politeness: Any = None   # the ClusterPolitenessMiddleware attaches itself
        #: the job epoch this worker works under (state.py)
        self.epoch = ""
        #: the state problem that stopped this worker (lost / restarted / invalid), if any
        self.stalled: StateProblem | None = None
        self._stalled_since = 0.0
        #: why this worker stops with work left (exit non-zero), if it does
        self.incomplete: str | None = None
        #: the worker gave up (waited too long for a restore): nothing more is sent
        self.closing = False
        self._loop: Any = None
        self._idle_since: float | None = None
        self._recheck_pending = False
        self._started = False
        #: an engine runs this worker: links and lease releases are batched into the next
        #: round trip (scheduler.py's outbox); components driven by hand (tests) send each
        #: call at once
        self.batching = False
        try:
            # before the name is claimed: a job without trusted state starts no worker
            problem = job_problem(self.redis, self.keys.job)
            if problem is not None and problem.code != "hold":
                self.redis.close()
                raise JobStateRefused(state_refusal(problem, self.keys.job))
            epoch = read_epoch(self.redis, self.keys.job)
            self.epoch = epoch.id if epoch else ""
            self.presence = Presence(self.redis, self.keys, self.name, epoch=self.epoch,
                                     ttl=self.ttl, gap=self.interval)
            claimed = self.presence.claim()
        except RedisError as exc:
            raise ValueError(f"cluster mode: cannot reach Redis at {_redacted(str(url))} "
                             f"({exc})") from None
        if not claimed:  # a RunLockError too: run_crawl reports it in one line, exit 2
            self.redis.close()
            raise WorkerNameTaken(name_taken_message(self.name, self.keys.job, self.ttl))
        crawler.signals.connect(self._opened, signal=signals.spider_opened)
        crawler.signals.connect(self._idle, signal=signals.spider_idle)
        crawler.signals.connect(self._closed, signal=signals.spider_closed)
        logger.info("cluster worker %r of job %r on %s (epoch %s)", self.name, self.keys.job,
                    _redacted(str(url)), self.epoch)

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

    # -- the job's state -----------------------------------------------------------------
    def state_seen(self, problem: StateProblem) -> bool:
        """A script answered ``problem`` (state.py). ``changed``: adopt the new epoch (True
        once adopted: the caller may go on); ``lost`` / ``restarted`` / ``invalid``: stop
        sending (said once, in one line) and wait for an operator's restore. False: the
        caller must not go on now."""
        if problem.code == "changed":
            return self.adopt(problem.detail)
        if not problem.stalled:
            return False
        if self.stalled is None:
            self.stalled = problem
            self._stalled_since = time.monotonic()
            self.crawler.stats.inc_value(f"polite/cluster/state/{problem.code}")
            logger.error("%s: worker %r sends nothing until an operator rebuilds the job's "
                         "state ('polite-crawl seed CONFIG --restore') or starts over "
                         "('--reset'); waiting up to %.0f s", problem.describe(self.keys.job),
                         self.name, self.restore_wait)
        return False

    def adopt(self, new_epoch: str) -> bool:
        """An operator wrote a new epoch (``seed --restore`` / ``--reset``): re-register what
        this worker holds under it (the leases of its requests on the wire, the spacing of
        origins it answered just now; its requests not yet sent go back to the shared queue
        unless the restored state has their URL) and go on. False when the new epoch cannot
        be adopted now (Redis error, or it is already gone): asked again at the next beat."""
        if new_epoch == self.epoch:
            return True
        old = self.epoch
        try:
            problem = job_problem(self.redis, self.keys.job, want=new_epoch)
            if problem is not None and problem.code != "hold":
                if problem.code != "changed":
                    self.state_seen(problem)
                return False
            self.epoch = self.presence.epoch = new_epoch
            leases = self.politeness.adopt() if self.politeness is not None else 0
            requeued, left = (self.scheduler.adopt() if self.scheduler is not None
                              else (0, 0))
        except (RedisError, StateError) as exc:
            self.epoch = self.presence.epoch = old
            logger.warning("worker %r: cannot adopt the job's new epoch yet (%s); retrying",
                           self.name, exc)
            return False
        try:
            hold = float(problem.detail) / 1000 if problem is not None else 0.0
        except ValueError:
            hold = 0.0
        self.crawler.stats.inc_value("polite/cluster/state/adopted")
        logger.warning("job %r: new epoch %s adopted by worker %r (the operator restored or "
                       "reset the job): %d leases of requests on the wire re-registered, %d "
                       "unsent requests re-queued, %d left to the restored queue; sending "
                       "resumes after the hold (%.1f s)", self.keys.job, new_epoch, self.name,
                       leases, requeued, left, hold)
        self.stalled = None
        return True

    def _waited_too_long(self) -> None:
        if (self.stalled is None or self.closing
                or time.monotonic() - self._stalled_since <= self.restore_wait):
            return
        self.closing = True
        spooled = self.scheduler.spool_unsent() if self.scheduler is not None else 0
        self.incomplete = (f"{self.stalled.describe(self.keys.job)}, and no restore came "
                           f"within POLITE_CLUSTER_RESTORE_WAIT ({self.restore_wait:.0f} s)")
        self.crawler.stats.set_value("polite/cluster/gave_up", self.stalled.code)
        if spooled:
            self.crawler.stats.inc_value("polite/cluster/spooled_unsent", spooled)
        engine = self.crawler.engine
        if engine is None:
            return
        from scrapy.utils.defer import deferred_from_coro

        deferred_from_coro(engine.close_spider_async(reason="cluster_state_lost"))

    # -- heartbeat -----------------------------------------------------------------------
    def _opened(self, spider: Any = None) -> None:
        from scrapy.utils.asyncio import create_looping_call

        # connected now, after every extension's own (CoreStats' finish_reason included)
        self.crawler.signals.connect(self._closed_last, signal=signals.spider_closed)
        # requests this name had in flight in an earlier life go back to the queue
        try:
            status = self.presence.beat(requeue_own=True)
        except StateError as exc:
            self.state_seen(exc.problem)
        except RedisError as exc:
            logger.warning("worker %r: first heartbeat failed (%s); retrying", self.name, exc)
        else:
            if status.recovered:
                logger.warning("worker %r: %d requests left in flight by an earlier run of "
                               "this worker put back in the queue", self.name,
                               status.recovered)
            self._recover()
        self._started = True
        self.batching = True
        self._loop = create_looping_call(self.beat)
        self._loop.start(self.interval, now=False)

    def beat(self, *, all_done: bool = False) -> ClusterStatus | None:
        """Check the job's state, refresh presence, acknowledge finished requests, recover
        dead workers' requests; once Redis answers: finish failed releases, push the spool.
        None when Redis did not answer or the job's state is not trusted."""
        acked: list[str] = []
        if self.scheduler is not None:
            # links batched so far go first: a request is acknowledged only once the links
            # found on its page are in Redis (or in the spool)
            self.scheduler.flush()
            if all_done:
                acked = self.scheduler.finished_ids(None)
            else:
                inprogress = engine_inprogress(self.crawler)
                if inprogress is not None:
                    acked = self.scheduler.finished_ids(inprogress)
        try:
            status = self.presence.beat(acked)
        except StateError as exc:
            if exc.problem.code == "changed" and self.adopt(exc.problem.detail):
                return self.beat(all_done=all_done)
            self.state_seen(exc.problem)
            self._waited_too_long()
            return None
        except RedisError as exc:
            logger.warning("worker %r: heartbeat failed (%s); retrying", self.name, exc)
            return None
        if self.stalled is not None:  # (an operator put the same epoch back)
            logger.warning("job %r: its state in Redis is trusted again; worker %r resumes",
                           self.keys.job, self.name)
            self.stalled = None
        if self.scheduler is not None:
            self.scheduler.forget(acked)
        stats = self.crawler.stats
        if status.recovered:
            stats.inc_value("polite/cluster/recovered", status.recovered)
            logger.warning("worker %r: %d requests of a dead worker put back in the queue",
                           self.name, status.recovered)
        self._recover()
        if status.queued:
            if self.scheduler is not None:
                self.scheduler.queue_has_work()
            _wake(self.crawler)
        return status

    def _recover(self) -> None:
        """Redis answered: release what could not be released, push what was spooled."""
        try:
            if self.politeness is not None:
                self.politeness.retry_releases()
            if self.scheduler is not None and self.scheduler.drain_spool():
                _wake(self.crawler)
        except (RedisError, StateError) as exc:
            logger.warning("worker %r: Redis is back but not yet usable (%s); retrying",
                           self.name, exc)

    def spooled(self) -> int:
        return self.scheduler.spooled if self.scheduler is not None else 0

    # -- when to stop --------------------------------------------------------------------
    def _idle(self, spider: Any = None) -> None:
        if self.closing:
            return
        if self.stalled is not None:  # nothing to do but wait for the operator
            self._waited_too_long()
            if not self.closing:
                raise DontCloseSpider
            return
        try:
            seeds = pop_seed_requests(self, spider)
        except RedisError as exc:
            logger.warning("worker %r: cannot read start URLs (%s)", self.name, exc)
            raise DontCloseSpider from None
        engine = self.crawler.engine
        for request in seeds:
            engine.crawl(request)  # type: ignore[union-attr]
        status = self.beat(all_done=True)  # idle: everything this worker popped is finished
        if (seeds or status is None or status.has_work or status.hold
                or self.spooled()):
            self._idle_since = None
            if not seeds:
                self._look_again(self.interval)
            raise DontCloseSpider
        now = time.monotonic()
        if self._idle_since is None:
            self._idle_since = now
        if now - self._idle_since < self.idle_close:
            self._look_again(self._idle_since + self.idle_close - now + 0.01)
            raise DontCloseSpider
        logger.info("worker %r: the cluster has no work left; closing", self.name)

    def _look_again(self, delay: float) -> None:
        """An idle engine asks its scheduler (and fires spider_idle) only every 5 s by itself:
        look again in ``delay`` seconds (the cluster may have work, or the idle time be up)."""
        from scrapy.utils.asyncio import call_later

        if self._recheck_pending:
            return
        self._recheck_pending = True

        def look() -> None:
            self._recheck_pending = False
            if not self.closing:
                _wake(self.crawler)

        call_later(max(0.05, delay), look)

    def _closed(self, spider: Any = None, reason: str = "") -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        try:
            if self.scheduler is not None:
                self.scheduler.flush()
            if self._started and self.stalled is None:
                # the engine has drained: everything popped is finished; anything still
                # listed goes back to the queue for the other workers
                acked = self.scheduler.finished_ids(None) if self.scheduler else []
                self.presence.beat(acked, requeue_own=reason != "finished")
                if self.scheduler is not None:
                    self.scheduler.forget(acked)
                    self.scheduler.drain_spool()
            self.presence.leave()
        except StateError as exc:
            self.state_seen(exc.problem)
        except RedisError as exc:
            logger.warning("worker %r: could not sign off (%s); the name frees itself in "
                           "%.0f s", self.name, exc, self.ttl)
        finally:
            self._count_calls()
            self.redis.close()
        left = self.spooled()
        if self.stalled is not None and self.incomplete is None:
            self.incomplete = self.stalled.describe(self.keys.job)
        if left and self.incomplete is None:
            self.incomplete = "Redis could not take every link this worker found"
        if self.incomplete is not None and left:
            self.incomplete += (f"; {left} links and requests are kept in {self.spool_path} "
                                "(this worker pushes them first when it runs again)")

    def _count_calls(self) -> None:
        """Round trips by kind (``polite/cluster/redis_calls/<kind>``) and the background
        ones, for the benchmark; the total is counted as it goes."""
        stats = self.crawler.stats
        for kind, n in sorted(self.redis.kinds.items()):
            stats.set_value(f"{REDIS_CALLS_STAT}/{kind}", n)
        stats.set_value(REDIS_BACKGROUND_STAT, self.redis.background_calls())

    def _closed_last(self, spider: Any = None, reason: str = "") -> None:
        """After every other spider_closed handler: a worker that stops with work left does
        not finish as if the job were done (run_crawl: exit non-zero)."""
        if self.incomplete is None:
            return
        logger.error("cluster worker %r of job %r stopped with work left: %s; run "
                     "'polite-crawl seed CONFIG --restore' if Redis lost the job, then the "
                     "workers again", self.name, self.keys.job, self.incomplete)
        self.crawler.stats.set_value("polite/cluster/incomplete", self.incomplete)
        self.crawler.stats.set_value("finish_reason", None)


def cluster_start_requests(crawler: Crawler, spider: Any) -> list[Any]:
    """For the corpus spider's ``start()`` in cluster mode: the first batch of seeds this
    worker pops (the rest are popped when workers are idle). The config's ``seeds`` are not
    used by workers: ``polite-crawl seed`` pushes them once for the whole cluster."""
    return pop_seed_requests(ClusterWorker.of(crawler), spider)


def _wake(crawler: Crawler) -> None:
    """Ask the engine to look at its scheduler now (it does so every 5 s by itself)."""
    wake_engine(engine_of(crawler))


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
    from scrapy.utils.defer import maybe_deferred_to_future
    from twisted.internet.defer import Deferred

    d: Deferred[None] = Deferred()
    call_later(seconds, d.callback, None)
    await maybe_deferred_to_future(d)
