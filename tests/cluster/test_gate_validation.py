"""The origin gate fails closed on anything invalid read from Redis, and never spins.

Garbage written into an origin's hash (by hand, a bug, another version) is never a grant nor a
skipped delay: the script answers "wait" with the reason, the worker sleeps at least
MIN_GATE_INTERVAL between calls and logs the problem once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

import pytest

from crawler.cluster.connection import redis_client
from crawler.cluster.gate import MAX_GATE_WAIT, GateTimeout, OriginGate
from crawler.cluster.keys import JobKeys
from crawler.cluster.worker import Presence

from .conftest import seeded

ORIGIN = "http://127.0.0.1:8711"
DELAY = 0.5


def gate_for(url: str, worker: str, *, poll: float = 0.05) -> OriginGate:
    client = redis_client(url)
    keys = JobKeys("t")
    epoch = seeded(client)
    assert Presence(client, keys, worker, ttl=30, epoch=epoch).claim()
    return OriginGate(client, keys, worker, poll=poll, epoch=epoch)


def corrupt(gate: OriginGate, *, set_: dict[str, str] | None = None,
            delete: tuple[str, ...] = ()) -> None:
    key = gate.keys.origin(ORIGIN)
    if set_:
        gate.client.hset(key, mapping=set_)
    if delete:
        gate.client.hdel(key, *delete)


# (what is corrupted, is the lease still held when it is, fields set, fields deleted)
CASES = {
    "lease_until=garbage": (True, {"lease_until": "garbage"}, ()),
    "lease_until=inf": (True, {"lease_until": "inf"}, ()),
    "lease_until missing": (True, {}, ("lease_until",)),
    "worker missing": (True, {}, ("worker",)),
    "ref=nan": (False, {"ref": "nan"}, ()),
    "ref=-inf": (False, {"ref": "-inf"}, ()),
    "ref=garbage": (False, {"ref": "12abc"}, ()),
    "ref_delay negative": (False, {"ref_delay": "-5000"}, ()),
    "ref_delay=nan": (False, {"ref_delay": "nan"}, ()),
    "ref_delay missing": (False, {}, ("ref_delay",)),
    "defer_until=1e300": (False, {"defer_until": "1e300"}, ()),
    "defer_until=-1e300": (False, {"defer_until": "-1e300"}, ()),
    "held=garbage": (False, {"held": "garbage"}, ()),
    "held negative": (False, {"held": "-1"}, ()),
    "next_at missing": (False, {"next": "c:1"}, ()),
    "next_at=nan": (False, {"next": "c:1", "next_at": "nan"}, ()),
    "next missing": (False, {"next_at": "0"}, ()),
}


def corrupted(redis_url: str, case: str) -> tuple[OriginGate, OriginGate]:
    """a is granted (delay 0.5 s); then the hash is corrupted, with a's lease held or
    released (then only the delay stands between b and the origin)."""
    held, set_, delete = CASES[case]
    a = gate_for(redis_url, "a")
    b = gate_for(redis_url, "b")
    assert a.try_acquire(ORIGIN, "a:1", delay=DELAY, lease=30).granted
    if not held:
        assert a.release(ORIGIN, "a:1")
    corrupt(a, set_=set_, delete=delete)
    return a, b


@pytest.mark.parametrize("case", list(CASES))
def test_a_corrupt_field_is_never_a_grant(redis_url, case):
    """No second grant while a lease is held (b asks with no delay: only the lease stands in
    its way), none before the delay, and none after it either: the state cannot be trusted,
    so the origin waits (fail closed), for a finite, positive, bounded time."""
    held = CASES[case][0]
    delay = 0 if held else DELAY
    _, b = corrupted(redis_url, case)
    g = b.try_acquire(ORIGIN, "b:1", delay=delay, lease=30)
    assert not g.granted
    assert math.isfinite(g.wait) and 0 < g.wait <= MAX_GATE_WAIT
    time.sleep(DELAY + 0.1)  # the delay would have passed by now
    assert not b.try_acquire(ORIGIN, "b:1", delay=delay, lease=30).granted
    problem = getattr(g, "problem", None)
    assert problem and "invalid" in problem


@pytest.mark.parametrize("case", ["lease_until=garbage", "ref=nan", "defer_until=1e300",
                                  "ref_delay negative", "lease_until missing"])
def test_a_waiting_worker_does_not_spin_and_logs_once(redis_url, case, caplog):
    _, b = corrupted(redis_url, case)
    caplog.set_level(logging.WARNING, logger="crawler.cluster.gate")
    before = b.client.calls
    started = time.monotonic()
    with pytest.raises(GateTimeout):
        asyncio.run(b.acquire(ORIGIN, "b:1", delay=DELAY, lease=30, timeout=2.5,
                              sleep=asyncio.sleep))
    elapsed = time.monotonic() - started
    calls = b.client.calls - before
    assert calls >= 1
    assert calls / max(elapsed, 0.5) < 50
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "fail closed" in warnings[0] and b.keys.origin(ORIGIN) in warnings[0]
    assert case.split(" ")[0].split("=")[0] in warnings[0]


def test_the_minimum_interval_holds_even_with_a_tiny_poll(redis_url):
    """A held valid lease and a 1 ms poll: still at most 1 / MIN_GATE_INTERVAL calls/s."""
    a = gate_for(redis_url, "a")
    b = gate_for(redis_url, "b", poll=0.001)
    assert a.try_acquire(ORIGIN, "a:1", delay=0, lease=30).granted
    before = b.client.calls
    started = time.monotonic()
    with pytest.raises(GateTimeout):
        asyncio.run(b.acquire(ORIGIN, "b:1", delay=0, lease=30, timeout=1.0,
                              sleep=asyncio.sleep))
    assert (b.client.calls - before) / (time.monotonic() - started) < 50


@pytest.mark.parametrize("answer", [[0, -5], [0, b"nan"], [0, b"inf"], [2, 5], [b"x", 5],
                                    [0, 10 ** 15], "garbage", None, [1],
                                    [1, 5, -3, b"ahead"], [1, 5, 10 ** 7, b"ahead"],
                                    [1, 5, b"nan", b"ahead"], [1, 5, 5, b"later"]])
def test_every_answer_of_the_script_is_validated_in_python(redis_url, answer):
    b = gate_for(redis_url, "b")
    b._acquire = lambda **kw: answer  # a broken script / proxy / client
    g = b.try_acquire(ORIGIN, "b:1", delay=0, lease=30)
    assert not g.granted and g.problem
    assert math.isfinite(g.wait) and 0 < g.wait <= MAX_GATE_WAIT


def test_recovery_the_invalid_hash_expires_or_is_deleted(redis_url, caplog):
    """A hand-made invalid hash without a TTL gets one (as a grant would set), so it heals by
    itself; deleting the key named in the warning resets the origin at once."""
    b = gate_for(redis_url, "b")
    key = b.keys.origin(ORIGIN)
    b.client.hset(key, mapping={"ref": "nan", "ref_delay": "0"})
    assert b.client.pttl(key) == -1
    caplog.set_level(logging.WARNING, logger="crawler.cluster.gate")
    assert not b.try_acquire(ORIGIN, "b:1", delay=DELAY, lease=30).granted
    assert 0 < b.client.pttl(key) <= 30_000 + 60_000
    b.client.delete(key)
    assert b.try_acquire(ORIGIN, "b:1", delay=DELAY, lease=30).granted
    assert any("valid again" in r.getMessage() for r in caplog.records)


def test_release_and_defer_survive_a_corrupt_hash(redis_url):
    a = gate_for(redis_url, "a")
    b = gate_for(redis_url, "b")
    assert a.try_acquire(ORIGIN, "a:1", delay=DELAY, lease=30).granted
    corrupt(a, set_={"ref_delay": "nan", "defer_until": "garbage"})
    assert a.release(ORIGIN, "a:1")          # no Redis error on the bad ref_delay
    a.defer(ORIGIN, 0.2)                     # an invalid defer_until is replaced
    assert float(a.state(ORIGIN)["defer_until"]) > 0
    assert not b.try_acquire(ORIGIN, "b:1", delay=DELAY, lease=30).granted  # ref_delay bad
