"""Per-origin politeness for the whole cluster: one Lua script decides every send.

Each origin has one Redis hash (``polite:<job>:origin:<origin>``): the current lease (token,
worker, expiry) and what ``next_allowed`` is computed from. :data:`ACQUIRE_SCRIPT` grants a
send only if

* no *live* worker holds the origin's lease (concurrency 1 across the cluster; a lease
  expires after the request's download timeout plus a margin, and is void at once when its
  holder's presence key has expired: a killed worker blocks nobody), and
* the server's clock (Redis ``TIME``: one clock for all workers) has reached
  ``next_allowed`` (the previous request's reference time plus the delay, or a Retry-After),

and then records the lease and the new reference (``next_allowed = now + delay``) in the
same atomic call. Otherwise it answers how long to wait. A request whose delay is larger than the one the
previous grant recorded waits for its own: a Crawl-delay learnt from the robots.txt just
fetched already spaces the next request.

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
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from redis.exceptions import RedisError
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.defer import Deferred

from crawler.cluster import defaults
from crawler.cluster.connection import named_script
from crawler.cluster.keys import META_EPOCH, META_INFLIGHT, JobKeys
from crawler.cluster.settings import cluster_enabled
from crawler.cluster.state import LIVENESS, STATE, StateProblem, problem_of
from crawler.cluster.state import check as checked
from crawler.cluster.worker import ClusterWorker, cluster_setting, sleep
from crawler.crawl import defaults as crawler_defaults
from crawler.crawl.meta import origin_of
from crawler.crawl.retry_after import parse_retry_after
from crawler.crawl.runtime import get_runtime
from crawler.policy.pacing import clamp_crawl_delay

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Request, Response

    from crawler.cluster.connection import CountingRedis

logger = logging.getLogger(__name__)

META_LEASE = "polite_cluster_lease"

# The origin hash: token / worker / lease_until (the lease), ref (when spacing counts from:
# the last grant, or its response once released), ref_delay (the delay that grant recorded),
# defer_until (Retry-After), granted_at (for the record).
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# Every field read from the hash is validated before it is used (fail closed): a number,
# finite, within a sane range (times within +-10 years of Redis TIME, delays 0..1 day), and
# present when its companion is (token / worker / lease_until together; ref with ref_delay).
# An invalid hash is never a grant nor a skipped delay: the script answers "wait" with the
# reason, and gives the hash a TTL if it has none (as if a request had just been granted), so
# it heals by expiring; it is not otherwise modified (an existing TTL is never shortened).
_CHECKS = """
local TEN_YEARS = 315576000000
local DAY = 86400000
local function num(v)
  local x = tonumber(v)
  if x == nil or x ~= x or x == math.huge or x == -math.huge then return nil end
  return x
end
local function bad(field, v)
  local shown = tostring(v)
  if v == false or v == nil then shown = '(missing)' end
  if #shown > 40 then shown = string.sub(shown, 1, 40) .. '...' end
  return field .. '=' .. shown
end
local function time_field(field, v)
  local x = num(v)
  if x == nil or math.abs(x - now) > TEN_YEARS then return nil, bad(field, v) end
  return x
end
local function delay_field(field, v)
  local x = num(v)
  if x == nil or x < 0 or x > DAY then return nil, bad(field, v) end
  return x
end
"""

# KEYS: origin hash, job epoch, beats, clock, this worker's in-flight hash.
# ARGV: token, worker, delay ms, lease ms, poll ms, alive-key prefix, epoch id, heartbeat gap
#       ms, in-flight id of the request ('' = not from the shared queue), "1" when the delay
#       counts from the response (then a lease another worker holds means at least a full
#       delay from now: the holder releases it no earlier than now, and the delay runs from
#       its release; the wait answered adds as long as the holder has had it so far, an
#       estimate of its download's remaining time, so that the next ask finds it released
#       and its delay run rather than costing one more round trip).
# Returns {1, now_ms} (granted), {0, wait_ms} or {0, wait_ms, reason} (the hash is invalid), or
# {'!', code, detail}: the job's state is not trusted (state.py), or 'fenced': the request's
# in-flight entry is gone (re-queued while this worker looked dead: not to be sent here).
#: ``acquire_origin(K, A)``: the grant, with ACQUIRE_SCRIPT's KEYS as ``K`` and ARGV as
#: ``A`` (also run by the scheduler's step script when a worker batches its round trips).
#: Needs _NOW, _CHECKS, STATE and LIVENESS.
ACQUIRE_FN = """
local function acquire_origin(K, A)
  local code, detail = job_state(K[2], A[7])
  if code then return {'!', code, detail} end
  if A[9] ~= '' and redis.call('HEXISTS', K[5], A[9]) == 0 then
    return {'!', 'fenced', A[9]}
  end
  local f = redis.call('HMGET', K[1], 'token', 'worker', 'lease_until', 'ref', 'ref_delay',
                       'defer_until')
  local delay = tonumber(A[3])
  local lease = tonumber(A[4])
  local poll = tonumber(A[5])
  local function invalid(reason)
    -- a hash without a TTL (not written by these scripts) gets the one a grant would set (or
    -- a valid deferral's, if longer); a TTL it has is never shortened
    if redis.call('PTTL', K[1]) == -1 then
      local ttl = math.max(lease, delay)
      local defer_until = time_field('defer_until', f[6])
      if defer_until ~= nil then ttl = math.max(ttl, defer_until - now) end
      redis.call('PEXPIRE', K[1], math.floor(ttl) + 60000)
    end
    return {0, math.max(poll, 1000), reason}
  end
  -- the lease: token, worker and lease_until together, or none of them
  local lease_until = 0
  if f[1] or f[2] or f[3] then
    if not f[1] or f[1] == '' then return invalid(bad('token', f[1])) end
    if not f[2] or f[2] == '' then return invalid(bad('worker', f[2])) end
    local x, why = time_field('lease_until', f[3])
    if x == nil then return invalid(why) end
    lease_until = x
  end
  local allowed = 0
  local ref_at = now
  if f[4] or f[5] then
    local ref, why = time_field('ref', f[4])
    if ref == nil then return invalid(why) end
    ref_at = ref
    local ref_delay, why2 = delay_field('ref_delay', f[5])
    if ref_delay == nil then return invalid(why2) end
    -- the previous request's delay, or this one's if larger (a Crawl-delay just learnt)
    allowed = ref + math.max(ref_delay, delay)
  end
  if f[6] then
    local defer_until, why = time_field('defer_until', f[6])
    if defer_until == nil then return invalid(why) end
    allowed = math.max(allowed, defer_until)
  end
  local held = false
  if f[1] and f[1] ~= A[1] and lease_until > now then
    -- a lease is void once its holder is dead: no beat for its TTL while Redis answered others
    held = is_alive(f[2], K[3], K[4], A[6], tonumber(A[8]))
  end
  if held or now < allowed then
    local wait = allowed - now
    if held then
      wait = math.max(wait, math.min(poll, lease_until - now))
      if A[10] == '1' then
        -- the holder's request has been on the wire for now - ref (its grant): expect it to
        -- need as long again, then the delay from its answer
        local ref_delay = delay_field('ref_delay', f[5]) or 0
        local busy = math.max(0, now - ref_at)
        wait = math.max(wait, math.min(math.max(ref_delay, delay) + busy, lease_until - now))
      end
    end
    return {0, math.max(wait, 1)}
  end
  redis.call('HSET', K[1], 'token', A[1], 'worker', A[2], 'lease_until', now + lease,
             'ref', now, 'ref_delay', delay, 'granted_at', now)
  redis.call('PEXPIRE', K[1], math.max(lease, delay) + 60000)
  return {1, now}
end
"""
ACQUIRE_SCRIPT = _NOW + _CHECKS + STATE + LIVENESS + ACQUIRE_FN + """
return acquire_origin(KEYS, ARGV)
"""

# KEYS[1] origin hash. ARGV: token, "1" to count the spacing from now (the response).
# Returns 1 when the lease was this token's. An invalid ref_delay leaves the TTL alone (the
# acquire script fails closed on it).
#: ``release(key, token, from_now)``: the function RELEASE_SCRIPT runs, also run by the
#: scheduler's step script for the releases a worker batches (scheduler.py). Needs _CHECKS.
RELEASE_FN = """
local function release(key, token, from_now)
  if redis.call('HGET', key, 'token') ~= token then
    return 0
  end
  redis.call('HDEL', key, 'token', 'worker', 'lease_until')
  if from_now == '1' then
    redis.call('HSET', key, 'ref', now)
    local d = delay_field('ref_delay', redis.call('HGET', key, 'ref_delay'))
    if d ~= nil then
      redis.call('PEXPIRE', key, d + 60000)
    end
  end
  return 1
end
"""
RELEASE_SCRIPT = _NOW + _CHECKS + RELEASE_FN + """
return release(KEYS[1], ARGV[1], ARGV[2])
"""

# KEYS[1] origin hash. ARGV: wait ms. Nothing is granted before now + wait. An invalid
# defer_until is replaced (a valid deferral is a constraint; the invalid one meant nothing).
DEFER_SCRIPT = _NOW + _CHECKS + """
local until_ms = now + tonumber(ARGV[1])
local cur = time_field('defer_until', redis.call('HGET', KEYS[1], 'defer_until'))
if cur == nil or until_ms > cur then
  redis.call('HSET', KEYS[1], 'defer_until', until_ms)
  if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) + 60000 then
    redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) + 60000)
  end
end
return until_ms
"""

# KEYS: job epoch. ARGV: epoch id, worker, origin-key prefix, number of leases, then per lease
# origin / token / lease ms left / delay ms, then per origin answered just now origin / delay
# ms. A worker adopting a restored epoch re-registers the leases of its requests on the wire
# (unless a later lease of another token is there) and restarts the spacing of the origins it
# was just answered by: their next request waits a full delay from now. Returns the number of
# leases registered.
REREGISTER_SCRIPT = _NOW + _CHECKS + STATE + """
local code, detail = job_state(KEYS[1], ARGV[1])
if code and code ~= 'hold' then return {'!', code, detail} end
local function keep_ttl(key, ms)
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
end
local i = 5
local done = 0
for _ = 1, tonumber(ARGV[4]) do
  local key = ARGV[3] .. ARGV[i]
  local token, lease, delay = ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local cur = redis.call('HMGET', key, 'token', 'lease_until', 'ref_delay')
  local cur_until = time_field('lease_until', cur[2])
  if not (cur[1] and cur[1] ~= token and cur_until ~= nil and cur_until > now + lease) then
    local rd = math.max(delay_field('ref_delay', cur[3]) or 0, delay)
    redis.call('HSET', key, 'token', token, 'worker', ARGV[2], 'lease_until', now + lease,
               'ref', now, 'ref_delay', rd, 'granted_at', now)
    keep_ttl(key, math.max(lease, rd) + 60000)
    done = done + 1
  end
  i = i + 4
end
while i < #ARGV do
  local key, delay = ARGV[3] .. ARGV[i], tonumber(ARGV[i + 1])
  local cur = redis.call('HMGET', key, 'ref', 'ref_delay')
  local ref = time_field('ref', cur[1])
  if ref == nil or ref < now then
    local rd = math.max(delay_field('ref_delay', cur[2]) or 0, delay)
    redis.call('HSET', key, 'ref', now, 'ref_delay', rd)
    keep_ttl(key, rd + 60000)
  end
  i = i + 2
end
return done
"""

#: Spacing modes (``POLITE_CLUSTER_SPACING``).
SPACING_MODES = ("response", "grant")


#: A worker waiting on the gate asks Redis at most this often (whatever the gate answers).
MIN_GATE_INTERVAL = 0.05
#: No wait longer than this is believed (a delay is at most a day; longer is re-asked).
MAX_GATE_WAIT = 86400.0
#: Invalid state: ask again after this long (the hash heals by expiring, not in ms).
INVALID_WAIT = 1.0


#: The job's state is not trusted (lost, restarted, invalid): ask again after this long.
STATE_WAIT = 1.0


class Grant(NamedTuple):
    granted: bool
    wait: float   # seconds to wait before asking again (0 when granted)
    problem: str | None = None   # why the gate state is invalid (fail closed), if it is
    state: StateProblem | None = None   # the job's state is not as this worker expects


class Acquired(NamedTuple):
    waited: float   # seconds from the first ask to the grant
    token: str      # the token the lease was granted to


class GateTimeout(Exception):
    """The origin was not granted within the timeout."""


def _number(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


class OriginGate:
    """The scripts for one job, bound to one client and one worker name.

    ``epoch``: the job epoch the worker works under (a string, or a callable returning the
    current one); ``gap``: the worker's heartbeat interval (state.py's liveness)."""

    def __init__(self, client: CountingRedis, keys: JobKeys, worker: str, *,
                 epoch: str | Callable[[], str], poll: float = 0.1, spacing: str = "response",
                 max_wait: float = MAX_GATE_WAIT,
                 gap: float = defaults.POLITE_CLUSTER_HEARTBEAT) -> None:
        if spacing not in SPACING_MODES:
            raise ValueError(f"POLITE_CLUSTER_SPACING: {spacing!r} is not one of "
                             f"{', '.join(SPACING_MODES)}")
        self.spacing = spacing
        self.client = client
        self.keys = keys
        self.worker = worker
        self.epoch: Callable[[], str] = epoch if callable(epoch) else (lambda: epoch)
        self.poll_ms = max(1, int(poll * 1000))
        self.gap_ms = max(1, int(gap * 1000))
        self.max_wait = max_wait
        self._acquire = named_script(client, ACQUIRE_SCRIPT, "acquire")
        self._release = named_script(client, RELEASE_SCRIPT, "release")
        self._defer = named_script(client, DEFER_SCRIPT, "defer")
        self._reregister = named_script(client, REREGISTER_SCRIPT, "reregister")
        self._problems: dict[str, str] = {}   # origin -> the problem last logged
        #: token -> origin of grant calls whose answer was lost (Redis error): maybe granted,
        #: released once Redis answers again
        self.orphans: dict[str, str] = {}
        #: ``via(keys, args)``: sends the grant instead of ACQUIRE_SCRIPT (the same checks,
        #: with other work in the same round trip: the scheduler's grant_step), or None
        self.via: Callable[[list[str], list[Any]], Any] | None = None

    def try_acquire(self, origin: str, token: str, *, delay: float, lease: float,
                    inflight: str | None = None) -> Grant:
        """One attempt: the lease on ``origin`` for ``token``, or how long to wait.

        Both the script and this method validate (fail closed): an invalid hash, or an
        answer that is not a finite wait within ``[0, max_wait]``, is "not granted; wait",
        logged once per origin and problem (WARNING) with the key to delete to reset it. A
        job state that is not trusted, or a fenced request (``inflight``: its id in this
        worker's in-flight hash), is "not granted" with :attr:`Grant.state` set."""
        if not (math.isfinite(delay) and math.isfinite(lease)):
            raise ValueError(f"origin gate: delay {delay!r} and lease {lease!r} must be finite")
        delay_ms = min(86_400_000, max(0, int(delay * 1000)))
        lease_ms = min(86_400_000, max(1, int(lease * 1000)))
        k = self.keys
        keys = [k.origin(origin), k.epoch, k.beats, k.clock, k.inflight(self.worker)]
        args = [token, self.worker, delay_ms, lease_ms, self.poll_ms, k.alive_prefix,
                self.epoch(), self.gap_ms, inflight or "",
                "1" if self.spacing == "response" else "0"]
        if self.via is not None:
            answer = self.via(keys, args)
        else:
            answer = self._acquire(keys=keys, args=args)
        state = problem_of(answer)
        if state is not None:
            wait = STATE_WAIT
            if state.code == "hold":
                wait = min(max(_number(state.detail) or 1000.0, 1.0) / 1000, self.max_wait)
            return Grant(False, wait, None, state)
        grant = self._checked(answer)
        self._note(origin, grant.problem)
        return grant

    def _checked(self, answer: Any) -> Grant:
        if not isinstance(answer, (list, tuple)) or len(answer) not in (2, 3):
            return Grant(False, INVALID_WAIT, f"the gate answered {answer!r:.60}")
        ok, value = _number(answer[0]), _number(answer[1])
        if len(answer) == 3:
            why = answer[2]
            why = why.decode("utf-8", "replace") if isinstance(why, bytes) else str(why)
            return Grant(False, INVALID_WAIT, f"gate state in Redis is invalid ({why})")
        if ok == 1 and value is not None:
            return Grant(True, 0.0)
        if ok != 0 or value is None or value < 0:
            return Grant(False, INVALID_WAIT, f"the gate answered an invalid wait "
                                              f"({answer[0]!r:.20}, {answer[1]!r:.30})")
        wait = value / 1000
        if wait > self.max_wait:
            return Grant(False, self.max_wait, f"the gate asks to wait {wait:.0f} s, more "
                                               f"than the maximum {self.max_wait:.0f} s")
        return Grant(False, wait)

    def _note(self, origin: str, problem: str | None) -> None:
        """Log a problem once per origin (and again only when it changes), and its end."""
        if problem is None:
            if self._problems.pop(origin, None) is not None:
                logger.warning("origin %s: gate state in Redis is valid again; resuming",
                               origin)
            return
        if self._problems.get(origin) != problem:
            self._problems[origin] = problem
            logger.warning("origin %s: %s; waiting (fail closed): it expires by itself, or "
                           "delete key %s (or 'polite-crawl seed --reset') to reset it",
                           origin, problem, self.keys.origin(origin))

    async def acquire(self, origin: str, token: str, *, delay: float, lease: float,
                      timeout: float, sleep: Callable[[float], Awaitable[Any]],
                      on_try: Callable[[Grant], None] | None = None,
                      inflight: str | None = None,
                      check: Callable[[], None] | None = None,
                      on_state: Callable[[StateProblem], bool] | None = None) -> Acquired:
        """Ask until granted; returns the seconds waited and the token granted, raises
        :class:`GateTimeout`.

        Between two calls it sleeps the gate's wait, never less than MIN_GATE_INTERVAL; a
        Redis error is not a grant either (fail closed, backing off up to 5 s; the token of a
        call whose answer was lost goes to :attr:`orphans` and the next try uses a new one).
        ``check()`` runs before each try (it may raise to give up); ``on_state(problem)``
        when the job's state is not as expected (True: ask again at once). While the job's
        state is lost or untrusted the timeout does not run: the worker decides how long it
        waits for a restore."""
        started = time.monotonic()
        errors = 0
        base, n = token, 0
        while True:
            if check is not None:
                check()
            try:
                grant = self.try_acquire(origin, token, delay=delay, lease=lease,
                                         inflight=inflight)
                errors = 0
            except RedisError as exc:  # fail closed: nothing is sent without a grant
                errors += 1
                self.orphans[token] = origin
                n += 1
                token = f"{base}~{n}"
                grant = Grant(False, min(5.0, 0.2 * 2 ** errors))
                if errors == 1:
                    logger.warning("cluster politeness: Redis unavailable (%s); %s waits",
                                   exc, origin)
            if on_try is not None:
                on_try(grant)
            if grant.granted:
                return Acquired(time.monotonic() - started, token)
            if grant.state is not None:
                if on_state is not None and on_state(grant.state):
                    continue
                if grant.state.stalled:
                    started = time.monotonic()
            wait = min(max(grant.wait, MIN_GATE_INTERVAL), self.max_wait)
            if time.monotonic() - started + wait > timeout:
                raise GateTimeout(f"{origin} not granted within {timeout:.0f} s")
            await sleep(wait + 0.001)

    def release(self, origin: str, token: str) -> bool:
        from_now = "1" if self.spacing == "response" else "0"
        return bool(int(self._release(keys=[self.keys.origin(origin)], args=[token, from_now])))

    def reregister(self, leases: list[tuple[str, str, float, float]],
                   recent: list[tuple[str, float]]) -> int:
        """Under a restored epoch: the leases (origin, token, seconds left, delay) of this
        worker's requests on the wire, and the origins (origin, delay) it was answered by
        just now (see REREGISTER_SCRIPT). Raises StateError when the epoch is not valid."""
        args: list[Any] = [self.epoch(), self.worker, self.keys.origin(""), len(leases)]
        for origin, token, left, delay in leases:
            args += [origin, token, max(1, int(left * 1000)), max(0, int(delay * 1000))]
        for origin, delay in recent:
            args += [origin, max(0, int(delay * 1000))]
        return int(checked(self._reregister(keys=[self.keys.epoch], args=args)))

    def defer(self, origin: str, seconds: float) -> None:
        """Nothing is sent to ``origin`` by any worker for ``seconds`` from now."""
        if not math.isfinite(seconds):
            raise ValueError(f"origin gate: a deferral of {seconds!r} s")
        ms = min(int(self.max_wait * 1000), max(0, int(seconds * 1000)))
        self._defer(keys=[self.keys.origin(origin)], args=[ms])

    def state(self, origin: str) -> dict[str, str]:
        raw = self.client.hgetall(self.keys.origin(origin))
        return {k.decode(): v.decode() for k, v in raw.items()}


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
