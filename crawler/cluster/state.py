"""Whether a job's state in Redis can be trusted: its epoch, the server's run, and liveness.

**The epoch.** ``polite-crawl seed`` writes a sentinel, ``polite:<job>:epoch`` (a hash: ``id``
a random token, ``run_id`` the Redis server's ``run_id`` from ``INFO server`` when it was
written, ``how`` seed / reset / restore, ``hold_until`` a Redis time in ms before which
nothing is granted). Every script a worker runs to change the job's state (origin grant, queue
pop and push, heartbeat) checks it first, in the same call (:data:`STATE`):

* ``lost``: no epoch (Redis restarted empty, was flushed, or the keys were deleted);
* ``restarted``: the epoch is there but the server's ``run_id`` is not the one it was
  written under (Redis restarted from a snapshot or an AOF that may miss its last writes, or a
  replica took over): what it holds may be older than what the workers did;
* ``invalid``: the epoch hash is garbled;
* ``changed``: an operator wrote a new epoch (``seed --restore`` or ``--reset``): the worker
  adopts it (re-registers what it holds) before it goes on;
* ``hold``: the new epoch is still in its hold (every live worker re-registers its leases
  within it; nothing is granted before it ends).

``lost``, ``restarted`` and ``invalid`` stop every worker at once (nothing granted, popped or
pushed; links are spooled locally) until an operator rebuilds the state from the workers'
logs (``polite-crawl seed CONFIG --restore``) or starts over (``--reset``). A worker never
treats an empty Redis as a fresh job by itself.

**Liveness.** A worker's presence key (``alive:<worker>``, PX TTL) names it; whether it is
*dead* is decided from evidence it could have refreshed: ``polite:<job>:beats`` holds each
worker's last heartbeat as Redis ``TIME`` (ms) with its TTL (``"<ms>:<ttl ms>"``),
``polite:<job>:clock`` when Redis last served
a heartbeat (``last``) and since when it has served them without a gap longer than a
heartbeat interval (``since``). A worker is dead only when it has missed its beats for a whole
TTL *while Redis was answering the others*: ``now - max(beat, since) > ttl``. A Redis frozen
or unreachable for longer than the TTL therefore kills nobody (every presence key may have
expired; the beats have not moved, ``since`` restarts when Redis answers again).
"""

from __future__ import annotations

import secrets
import time
from typing import Any, NamedTuple

from crawler.cluster.connection import named_script
from crawler.cluster.keys import JobKeys

#: Redis TIME in ms, as ``now``.
NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

#: ``num(v)``: a finite number or nil.
NUM = """
local function num(v)
  local x = tonumber(v)
  if x == nil or x ~= x or x == math.huge or x == -math.huge then return nil end
  return x
end
"""

#: ``job_state(epoch_key, want)``: nil when the job's state is trusted and ``want`` is its
#: epoch (``''``: any epoch); else a code (lost / restarted / invalid / changed / hold) and a
#: detail (the current epoch id, or the ms left in the hold). Needs NOW and NUM.
STATE = """
local function job_state(epoch_key, want)
  local e = redis.call('HMGET', epoch_key, 'id', 'run_id', 'hold_until')
  if not e[1] then return 'lost', '' end
  if e[1] == '' or not e[2] then return 'invalid', 'id' end
  local rid = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
  if e[2] ~= rid then return 'restarted', e[1] end
  if want ~= '' and e[1] ~= want then return 'changed', e[1] end
  if e[3] then
    local hold = num(e[3])
    if hold == nil or hold - now > 86400000 then return 'invalid', 'hold_until' end
    if hold > now then return 'hold', tostring(hold - now) end
  end
  return nil, nil
end
"""

#: ``served_since(clock_key, gap)``, ``beat_of(beats_key, w)`` (a worker's last beat and its
#: TTL, ms) and ``is_alive(w, beats_key, clock_key, alive_prefix, gap)`` (see the module
#: docstring; each worker is judged by its own TTL, recorded with its beat). A worker without a
#: valid beat on record (never beaten yet, garbled) is alive while its presence key is. Needs
#: NOW and NUM.
LIVENESS = """
local function served_since(clock_key, gap)
  local c = redis.call('HMGET', clock_key, 'last', 'since')
  local last, since = num(c[1]), num(c[2])
  if last == nil or since == nil or now - last > gap or since > now then return now end
  return since
end
local function beat_of(beats_key, w)
  local v = redis.call('HGET', beats_key, w)
  if not v then return nil, nil end
  local b, t = string.match(v, '^(%d+):(%d+)$')
  b, t = num(b), num(t)
  if b == nil or t == nil or t > 86400000 or b > now + t then return nil, nil end
  return b, t
end
local function is_alive(w, beats_key, clock_key, alive_prefix, gap)
  local b, t = beat_of(beats_key, w)
  if b == nil then return redis.call('EXISTS', alive_prefix .. w) == 1 end
  return now - math.max(b, served_since(clock_key, gap)) <= t
end
"""

#: Codes that stop a worker until an operator acts (seed --restore / --reset).
STALLED = ("lost", "restarted", "invalid")
#: The marker a script returns first when the job's state is not as the caller expects.
MARK = "!"


class StateProblem(NamedTuple):
    code: str      # lost / restarted / invalid / changed / hold / fenced
    detail: str    # the current epoch id (changed, restarted), ms left (hold), a field

    @property
    def stalled(self) -> bool:
        return self.code in STALLED

    def describe(self, job: str) -> str:
        if self.code == "lost":
            return (f"job {job!r}: its state is gone from Redis (no epoch: Redis restarted "
                    "empty, or its keys were flushed or deleted)")
        if self.code == "restarted":
            return (f"job {job!r}: Redis restarted or failed over since the job's state was "
                    "written (its run_id changed): it may have lost its last writes")
        if self.code == "invalid":
            return f"job {job!r}: the job's epoch in Redis is invalid ({self.detail})"
        if self.code == "hold":
            return f"job {job!r}: restored state in its hold ({self.detail} ms left)"
        return f"job {job!r}: {self.code} ({self.detail})"


class StateError(Exception):
    """A script found the job's state not as the caller expects (see :class:`StateProblem`)."""

    def __init__(self, problem: StateProblem) -> None:
        super().__init__(f"{problem.code} ({problem.detail})")
        self.problem = problem


def check(answer: Any) -> Any:
    """``answer`` itself, or :class:`StateError` when it is a state problem."""
    problem = problem_of(answer)
    if problem is not None:
        raise StateError(problem)
    return answer


def problem_of(answer: Any) -> StateProblem | None:
    """The :class:`StateProblem` a script answered (``{'!', code, detail}``), or None."""
    if isinstance(answer, (list, tuple)) and len(answer) == 3 and _text(answer[0]) == MARK:
        return StateProblem(_text(answer[1]), _text(answer[2]))
    return None


def _text(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return "" if v is None else str(v)


def run_id(client: Any) -> str:
    """The server's ``run_id`` (changes at every restart, and with the server on failover)."""
    info = client.info("server")
    return str(info.get("run_id", ""))


class Epoch(NamedTuple):
    id: str
    run_id: str
    how: str
    hold_until: float | None   # Redis ms


def read_epoch(client: Any, job: str) -> Epoch | None:
    raw = client.hgetall(JobKeys(job).epoch)
    if not raw:
        return None
    f = {_text(k): _text(v) for k, v in raw.items()}
    try:
        hold = float(f["hold_until"]) if f.get("hold_until") else None
    except ValueError:
        hold = float("inf")
    return Epoch(f.get("id", ""), f.get("run_id", ""), f.get("how", ""), hold)


# KEYS: epoch. ARGV: how, id, hold ms, "1" to replace an existing epoch. Returns the run_id
# written, or false when an epoch exists and ARGV[4] is not "1".
_WRITE = NOW + """
if ARGV[4] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then return false end
local rid = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
redis.call('DEL', KEYS[1])
local fields = {'id', ARGV[2], 'run_id', rid, 'how', ARGV[1], 'created', now}
if tonumber(ARGV[3]) > 0 then
  table.insert(fields, 'hold_until')
  table.insert(fields, now + tonumber(ARGV[3]))
end
redis.call('HSET', KEYS[1], unpack(fields))
return rid
"""


def new_epoch_id() -> str:
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{secrets.token_hex(6)}"


def write_epoch(client: Any, job: str, how: str, *, hold: float = 0.0,
                replace: bool = True) -> str | None:
    """Write a new epoch for ``job`` (under the server's current run_id); its id, or None
    when one exists and ``replace`` is False."""
    ident = new_epoch_id()
    script = named_script(client, _WRITE, "epoch")
    done = script(keys=[JobKeys(job).epoch],
                  args=[how, ident, max(0, int(hold * 1000)), "1" if replace else "0"])
    return ident if done else None


_JOB_STATE = NOW + NUM + STATE + """
local code, detail = job_state(KEYS[1], ARGV[1])
if code then return {'!', code, detail} end
return 0
"""


def job_problem(client: Any, job: str, want: str | None = None) -> StateProblem | None:
    """What :data:`STATE` says of ``job`` now (``want``: the epoch the caller holds; None:
    whichever is there, so ``changed`` is never answered)."""
    script = named_script(client, _JOB_STATE, "job_state")
    return problem_of(script(keys=[JobKeys(job).epoch], args=[want or ""]))
