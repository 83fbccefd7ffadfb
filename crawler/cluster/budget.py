"""The pay-per-crawl budgets of a cluster job, shared by its workers in Redis.

:class:`RedisLedger` is a :class:`crawler.policy.ledger.Ledger`: every worker reserves, commits and
releases against the same totals, so the job's ``budget`` and each origin's
``per_origin_budget`` hold across the cluster. Amounts are integer micro-units
(``crawler.policy.prices.MICROS`` per unit; ``HINCRBY``, never floats).

Keys (under the job's prefix, ``crawler.cluster.keys.JobKeys``):

* ``polite:<job>:pay:spent`` — hash ``origin -> micro-units charged``; field ``*`` the total;
* ``polite:<job>:pay:held`` — hash ``origin -> micro-units reserved``; field ``*`` the total;
* ``polite:<job>:pay:config`` — hash ``currency``, ``budget``, ``per_origin`` as the first
  worker reserved them: a worker with other budgets is refused every reservation (fail closed:
  the budgets are one job setting).

One script call (:data:`RESERVE_SCRIPT`) checks the job's epoch (``state.py``: nothing is
reserved while the job's state is lost, restarted, invalid, changed or in its hold), then both
budgets, and holds the amount; Redis runs scripts one at a time, so two workers racing for the
last cent cannot both get it. Commit and release always apply (a charge happened; holds never
go below zero). A worker killed while holding money leaves its hold in place: the job spends
less, never more (``seed --reset`` clears it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from crawler.cluster.keys import JobKeys
from crawler.cluster.state import NOW, NUM, STATE, problem_of
from crawler.policy.ledger import Hold, PaymentPolicy, Totals, refusal
from crawler.policy.prices import CurrencyMismatch, Money

#: the field of the job's totals in the spent / held hashes (no origin is ``*``)
TOTAL = "*"


def spent_key(keys: JobKeys) -> str:
    return f"{keys.prefix}:pay:spent"


def held_key(keys: JobKeys) -> str:
    return f"{keys.prefix}:pay:held"


def config_key(keys: JobKeys) -> str:
    return f"{keys.prefix}:pay:config"


# KEYS: spent, held, config, epoch. ARGV: origin, amount, budget, per-origin budget, currency,
# epoch id ('' = any). Returns {1} (held), {0, reason, spent, held, origin spent, origin held},
# or {'!', code, detail} (the job's state is not trusted: nothing held).
RESERVE_SCRIPT = NOW + NUM + STATE + """
local code, detail = job_state(KEYS[4], ARGV[6])
if code then return {'!', code, detail} end
local amount, budget, per = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local c = redis.call('HMGET', KEYS[3], 'currency', 'budget', 'per_origin')
if not c[1] then
  redis.call('HSET', KEYS[3], 'currency', ARGV[5], 'budget', ARGV[3], 'per_origin', ARGV[4])
elseif c[1] ~= ARGV[5] or c[2] ~= ARGV[3] or c[3] ~= ARGV[4] then
  return {0, 'config', c[1] or '', c[2] or '', c[3] or ''}
end
local function get(key, f)
  local v = redis.call('HGET', key, f)
  if not v then return 0 end
  local x = num(v)
  if x == nil or x < 0 or x ~= math.floor(x) then return nil end
  return x
end
local s, h = get(KEYS[1], '*'), get(KEYS[2], '*')
local ospent, oh = get(KEYS[1], ARGV[1]), get(KEYS[2], ARGV[1])
if s == nil or h == nil or ospent == nil or oh == nil then return {0, 'garbled', '', '', ''} end
if s + h + amount > budget then
  return {0, 'budget', string.format('%d', s), string.format('%d', h),
          string.format('%d', ospent), string.format('%d', oh)}
end
if ospent + oh + amount > per then
  return {0, 'origin', string.format('%d', s), string.format('%d', h),
          string.format('%d', ospent), string.format('%d', oh)}
end
redis.call('HINCRBY', KEYS[2], '*', amount)
redis.call('HINCRBY', KEYS[2], ARGV[1], amount)
return {1}
"""

# KEYS: spent, held. ARGV: origin, reserved, charged (0 = nothing). Releases the hold (never
# below zero) and debits the charge, in one call.
COMMIT_SCRIPT = """
local function unhold(f, n)
  local left = (tonumber(redis.call('HGET', KEYS[2], f) or '0') or 0) - n
  if left > 0 then redis.call('HSET', KEYS[2], f, left) else redis.call('HDEL', KEYS[2], f) end
end
local r, ch = tonumber(ARGV[2]), tonumber(ARGV[3])
unhold('*', r)
unhold(ARGV[1], r)
if ch > 0 then
  redis.call('HINCRBY', KEYS[1], '*', ch)
  redis.call('HINCRBY', KEYS[1], ARGV[1], ch)
end
return 1
"""


def _int(v: Any) -> int:
    if isinstance(v, bytes):
        v = v.decode("ascii", "replace")
    return int(v) if v not in (None, "") else 0


def _text(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


class RedisLedger:
    """A :class:`crawler.policy.ledger.Ledger` in Redis, shared by every worker of ``keys.job``.

    ``epoch``: the job epoch the worker works under (a string or a callable returning it;
    ``''`` accepts any epoch but still refuses a lost or restarted state).
    """

    def __init__(self, client: Any, keys: JobKeys, policy: PaymentPolicy, *,
                 epoch: str | Callable[[], str] = "") -> None:
        self.client = client
        self.keys = keys
        self.policy = policy
        self.epoch: Callable[[], str] = epoch if callable(epoch) else (lambda: epoch)
        self._reserve = client.register_script(RESERVE_SCRIPT)
        self._commit = client.register_script(COMMIT_SCRIPT)

    def reserve(self, origin: str, amount: Money) -> Hold:
        if amount.currency != self.policy.currency:
            return Hold(False, f"price currency {amount.currency} is not the budget's "
                        f"({self.policy.currency})")
        k = self.keys
        answer = self._reserve(
            keys=[spent_key(k), held_key(k), config_key(k), k.epoch],
            args=[origin, amount.micros, self.policy.budget.micros,
                  self.policy.per_origin_budget.micros, self.policy.currency, self.epoch()])
        problem = problem_of(answer)
        if problem is not None:
            return Hold(False, f"shared budget unavailable: {problem.describe(k.job)}")
        if not isinstance(answer, (list, tuple)) or not answer:
            return Hold(False, f"shared budget answered {answer!r:.60}")
        if _int(answer[0]) == 1:
            return Hold(True)
        why = _text(answer[1]) if len(answer) > 1 else "?"
        if why == "config":
            return Hold(False, "another worker of the job runs with other budgets ("
                        + " ".join(_text(x) for x in answer[2:5]) + " micro-units)")
        if why == "garbled":
            return Hold(False, f"the shared budget in Redis is garbled ({spent_key(k)}, "
                        f"{held_key(k)})")
        t = Totals(*(_int(x) for x in answer[2:6]))
        return Hold(False, refusal(self.policy, amount, t) or f"refused ({why})")

    def commit(self, origin: str, reserved: Money, charged: Money | None) -> None:
        if charged is not None and charged.currency != self.policy.currency:
            raise CurrencyMismatch(f"charge in {charged.currency}, budget in "
                                   f"{self.policy.currency}")
        self._commit(keys=[spent_key(self.keys), held_key(self.keys)],
                     args=[origin, reserved.micros, 0 if charged is None else charged.micros])

    def release(self, origin: str, reserved: Money) -> None:
        self.commit(origin, reserved, None)

    def totals(self, origin: str) -> Totals:
        pipe = self.client.pipeline(transaction=True)
        pipe.hmget(spent_key(self.keys), [TOTAL, origin])
        pipe.hmget(held_key(self.keys), [TOTAL, origin])
        (s, os_), (h, oh) = pipe.execute()
        return Totals(_int(s), _int(h), _int(os_), _int(oh))

    def load(self, spent_by_origin: Mapping[str, int]) -> None:
        """Add spent micro-units per origin (``seed --restore`` from the workers' logs,
        through :func:`crawler.policy.payment_replay.replay`)."""
        pipe = self.client.pipeline(transaction=True)
        for origin, micros in spent_by_origin.items():
            if int(micros) > 0:
                pipe.hincrby(spent_key(self.keys), origin, int(micros))
                pipe.hincrby(spent_key(self.keys), TOTAL, int(micros))
        pipe.execute()
