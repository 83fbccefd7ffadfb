"""The per-origin politeness gate's client: the gate's scripts for one job, one Redis client and
one worker name.

:class:`OriginGate` asks :data:`crawler.cluster.scripts.ACQUIRE_SCRIPT` for an origin's lease
until it is granted (:meth:`OriginGate.acquire`), validating every answer (fail closed: an
invalid hash or answer is "wait", logged once per origin), and releases, defers and
re-registers leases with the other gate scripts. It knows nothing of Scrapy: the downloader
middleware that asks it before every send is
:class:`crawler.cluster.politeness.ClusterPolitenessMiddleware` (the gate's design is in
that module's docstring).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from redis.exceptions import RedisError

from crawler.cluster import defaults
from crawler.cluster.connection import named_script
from crawler.cluster.keys import JobKeys
from crawler.cluster.scripts import ACQUIRE_SCRIPT, DEFER_SCRIPT, RELEASE_SCRIPT, REREGISTER_SCRIPT
from crawler.cluster.state import StateProblem, problem_of
from crawler.cluster.state import check as checked

if TYPE_CHECKING:
    from crawler.cluster.connection import CountingRedis

logger = logging.getLogger(__name__)

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

#: A grant may be made this long ahead of its send (nothing but the origin's delay in the way,
#: ending within this): the caller sleeps it out instead of asking again (the middleware's
#: gate; OriginGate.ahead, 0 by default: never). Short next to any worker TTL: a request is
#: fenced at its grant, and a worker that overslept by AHEAD_LATE asks again before sending.
AHEAD_MAX = 1.0
#: Woken this much later than planned (frozen, starved): the grant is asked again, not trusted.
AHEAD_LATE = 0.5


class Grant(NamedTuple):
    granted: bool
    wait: float   # seconds to wait before asking again; granted: before sending (0: at once)
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
        #: seconds a grant may be made ahead of its send (see AHEAD_MAX; 0: never)
        self.ahead = 0.0
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
                "1" if self.spacing == "response" else "0",
                max(0, int(min(self.ahead, AHEAD_MAX) * 1000))]
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
        if isinstance(answer, (list, tuple)) and len(answer) == 4 and _number(answer[0]) == 1 \
                and answer[3] in (b"ahead", "ahead"):
            # granted for a send this long from now (at the end of the origin's delay)
            ahead = _number(answer[2])
            if ahead is not None and 0 <= ahead <= AHEAD_MAX * 1000 + 1:
                return Grant(True, ahead / 1000)
            return Grant(False, INVALID_WAIT, f"the gate answered an invalid grant ahead "
                                              f"({answer[2]!r:.30})")
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
            if grant.granted and grant.wait > 0:
                if not await self._sleep_out(origin, token, grant.wait, sleep, check):
                    # overslept (frozen?): the lease was given back; ask again, a new token
                    n += 1
                    token = f"{base}~{n}"
                    continue
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

    async def _sleep_out(self, origin: str, token: str, wait: float,
                         sleep: Callable[[float], Awaitable[Any]],
                         check: Callable[[], None] | None) -> bool:
        """A grant made ``wait`` seconds ahead of its send: sleep until then (never less:
        the delay runs out in Redis time no later than ``wait`` after the answer left). True:
        send now; False: woken more than AHEAD_LATE late (a worker frozen that long may have
        looked dead and its request been re-queued): the lease is given back, to be asked
        again. If the sleep or ``check()`` raises, the lease is given back too and the
        exception goes on. A lease that cannot be given back goes to :attr:`orphans`."""
        until = time.monotonic() + wait
        try:
            await sleep(wait + 0.001)
            while (left := until - time.monotonic()) > 0:
                await sleep(left + 0.001)
            if check is not None:
                check()
            if time.monotonic() - until <= AHEAD_LATE:
                return True
        except BaseException:
            self._give_back(origin, token)
            raise
        self._give_back(origin, token)
        return False

    def _give_back(self, origin: str, token: str) -> None:
        try:
            self.release(origin, token)
        except RedisError:
            self.orphans[token] = origin

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
