"""The origin gate's Lua script against a real Redis: atomic grants, waits, lease expiry."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from crawler.cluster.connection import redis_client
from crawler.cluster.gate import OriginGate
from crawler.cluster.keys import JobKeys
from crawler.cluster.worker import Presence
from crawler.optout.robots import parse_robots

from .conftest import seeded

ORIGIN = "http://127.0.0.1:8711"


def gate_for(url: str, worker: str, *, poll: float = 0.05) -> tuple[OriginGate, Presence]:
    client = redis_client(url)
    keys = JobKeys("t")
    epoch = seeded(client)
    presence = Presence(client, keys, worker, ttl=30, epoch=epoch)
    assert presence.claim()
    return OriginGate(client, keys, worker, poll=poll, epoch=epoch), presence


def test_first_request_is_granted_and_the_next_waits_for_the_delay(redis_url):
    a, _ = gate_for(redis_url, "a")
    b, _ = gate_for(redis_url, "b")
    assert a.try_acquire(ORIGIN, "a:1", delay=0.5, lease=10).granted
    a.release(ORIGIN, "a:1")
    g = b.try_acquire(ORIGIN, "b:1", delay=0.5, lease=10)
    assert not g.granted
    assert 0.35 < g.wait <= 0.5
    time.sleep(g.wait + 0.01)
    assert b.try_acquire(ORIGIN, "b:1", delay=0.5, lease=10).granted


def test_a_held_lease_blocks_other_workers_even_after_the_delay(redis_url):
    a, _ = gate_for(redis_url, "a", poll=0.05)
    b, _ = gate_for(redis_url, "b", poll=0.05)
    assert a.try_acquire(ORIGIN, "a:1", delay=0, lease=10).granted
    g = b.try_acquire(ORIGIN, "b:1", delay=0, lease=10)
    assert not g.granted and 0 < g.wait <= 0.05  # asks again after the poll interval
    assert not b.release(ORIGIN, "b:1")           # not its lease: nothing released
    assert not b.try_acquire(ORIGIN, "b:1", delay=0, lease=10).granted
    assert a.release(ORIGIN, "a:1")
    assert b.try_acquire(ORIGIN, "b:1", delay=0, lease=10).granted


def test_an_unreleased_lease_expires(redis_url):
    a, _ = gate_for(redis_url, "a")
    b, _ = gate_for(redis_url, "b")
    assert a.try_acquire(ORIGIN, "a:1", delay=0, lease=0.3).granted
    assert not b.try_acquire(ORIGIN, "b:1", delay=0, lease=10).granted
    time.sleep(0.35)
    assert b.try_acquire(ORIGIN, "b:1", delay=0, lease=10).granted


def test_a_dead_holder_holds_nothing(redis_url):
    a, presence_a = gate_for(redis_url, "a")
    b, _ = gate_for(redis_url, "b")
    assert a.try_acquire(ORIGIN, "a:1", delay=0, lease=600).granted
    assert not b.try_acquire(ORIGIN, "b:1", delay=0, lease=10).granted
    presence_a.client.delete(presence_a.keys.alive("a"))  # a's heartbeat expired (killed)
    assert b.try_acquire(ORIGIN, "b:1", delay=0, lease=10).granted


def test_the_delay_still_holds_after_a_dead_holder(redis_url):
    a, presence_a = gate_for(redis_url, "a")
    b, _ = gate_for(redis_url, "b")
    assert a.try_acquire(ORIGIN, "a:1", delay=0.4, lease=600).granted
    presence_a.client.delete(presence_a.keys.alive("a"))
    g = b.try_acquire(ORIGIN, "b:1", delay=0.4, lease=10)
    assert not g.granted and g.wait > 0.3


def test_retry_after_defers_the_origin_for_everyone(redis_url):
    a, _ = gate_for(redis_url, "a")
    b, _ = gate_for(redis_url, "b")
    a.defer(ORIGIN, 0.4)
    g = b.try_acquire(ORIGIN, "b:1", delay=0, lease=10)
    assert not g.granted and 0.3 < g.wait <= 0.4
    a.defer(ORIGIN, 0.1)  # a shorter deferral never shortens a longer one
    assert b.try_acquire(ORIGIN, "b:1", delay=0, lease=10).wait > 0.25


def test_origins_are_independent(redis_url):
    a, _ = gate_for(redis_url, "a")
    assert a.try_acquire(ORIGIN, "a:1", delay=5, lease=10).granted
    assert a.try_acquire("http://127.0.0.1:8712", "a:2", delay=5, lease=10).granted


def test_every_try_is_one_round_trip(redis_url):
    a, _ = gate_for(redis_url, "a")
    before = a.client.calls
    a.try_acquire(ORIGIN, "a:1", delay=0, lease=10)
    a.release(ORIGIN, "a:1")
    assert a.client.calls - before == 2


@pytest.mark.parametrize("workers", [4, 8])
def test_concurrent_workers_never_overlap_nor_go_faster_than_the_delay(redis_url, workers):
    """Threads, each its own client and worker, hammer one origin; the script is the only
    synchronisation: at most one lease at a time, grants at least `delay` apart."""
    delay, hold, run_for = 0.05, 0.01, 1.5
    holders = 0
    max_holders = 0
    grants: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def run(name: str) -> None:
        nonlocal holders, max_holders
        try:
            gate, _ = gate_for(redis_url, name, poll=0.005)
            n = 0
            end = time.monotonic() + run_for
            while time.monotonic() < end:
                n += 1
                token = f"{name}:{n}"
                g = gate.try_acquire(ORIGIN, token, delay=delay, lease=5)
                if not g.granted:
                    time.sleep(min(g.wait, 0.02))
                    continue
                granted_at = int(gate.state(ORIGIN)["granted_at"])
                with lock:
                    holders += 1
                    max_holders = max(max_holders, holders)
                    grants.append(granted_at)
                time.sleep(hold)
                with lock:
                    holders -= 1
                assert gate.release(ORIGIN, token)
            gate.client.close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f"w{i}",)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert max_holders == 1
    grants.sort()
    gaps = [b - a for a, b in itertools.pairwise(grants)]
    assert len(grants) >= 10
    assert min(gaps) >= delay * 1000  # server clock, milliseconds


def test_robots_delay_reads_crawl_delay_and_request_rate():
    robots = parse_robots(b"User-agent: *\nCrawl-delay: 2\nRequest-rate: 1/5\n")
    # the gate reads the same interval as the single-process middleware: RobotsFile's
    assert robots.visit_interval("PoliteDemoBot") == 5.0
    assert parse_robots(b"User-agent: *\nDisallow:\n").visit_interval("PoliteDemoBot") is None


def test_a_larger_delay_learnt_later_spaces_the_next_request(redis_url):
    """robots.txt goes out with the base delay; the request after it, knowing the file's
    Crawl-delay, waits for that delay since the robots.txt grant."""
    a, _ = gate_for(redis_url, "a")
    assert a.try_acquire(ORIGIN, "a:1", delay=0.1, lease=10).granted   # robots.txt
    a.release(ORIGIN, "a:1")
    time.sleep(0.15)                                                    # base delay passed
    g = a.try_acquire(ORIGIN, "a:2", delay=0.5, lease=10)               # Crawl-delay: 0.5
    assert not g.granted and 0.25 < g.wait <= 0.35


@pytest.mark.parametrize("spacing, low, high", [("response", 0.45, 0.5), ("grant", 0.2, 0.3)])
def test_where_the_delay_counts_from(redis_url, spacing, low, high):
    """response: the next request waits the delay after the previous one's answer (the
    server never sees a shorter gap); grant: after its grant (send to send)."""
    a, _ = gate_for(redis_url, "a")
    a.spacing = spacing
    b, _ = gate_for(redis_url, "b")
    assert a.try_acquire(ORIGIN, "a:1", delay=0.5, lease=10).granted
    time.sleep(0.25)                     # the download takes 0.25 s
    a.release(ORIGIN, "a:1")
    g = b.try_acquire(ORIGIN, "b:1", delay=0.5, lease=10)
    assert not g.granted and low < g.wait <= high


def test_an_unknown_spacing_is_refused(redis_url):
    from crawler.cluster.connection import redis_client as client_for

    with pytest.raises(ValueError, match="POLITE_CLUSTER_SPACING"):
        OriginGate(client_for(redis_url), JobKeys("t"), "a", spacing="sometimes", epoch="x")


def test_the_turn_after_the_delay_is_the_first_waiters(redis_url):
    """A worker told to wait only for the delay has the origin's next turn: another asking
    once the delay has run is told to come after that turn (its lease and the delay), not
    granted in its place; so the first is granted when it comes back (no retry wasted)."""
    a, _ = gate_for(redis_url, "a")
    b, _ = gate_for(redis_url, "b")
    c, _ = gate_for(redis_url, "c")
    assert a.try_acquire(ORIGIN, "a:1", delay=0.3, lease=10).granted
    assert a.release(ORIGIN, "a:1")
    g = b.try_acquire(ORIGIN, "b:1", delay=0.3, lease=10)
    assert not g.granted and 0.2 < g.wait <= 0.3
    time.sleep(g.wait + 0.01)
    other = c.try_acquire(ORIGIN, "c:1", delay=0.3, lease=10)
    assert not other.granted and other.wait >= 0.25         # b's turn, then the delay
    assert b.try_acquire(ORIGIN, "b:1", delay=0.3, lease=10).granted
    assert "next" not in b.state(ORIGIN)                    # the turn is used up


def test_a_turn_not_taken_lapses(redis_url):
    """The first waiter's turn lasts a poll interval past its time: a worker that does not
    come back (killed, its request cancelled) holds the origin no longer than that."""
    a, _ = gate_for(redis_url, "a", poll=0.05)
    b, _ = gate_for(redis_url, "b", poll=0.05)
    c, _ = gate_for(redis_url, "c", poll=0.05)
    assert a.try_acquire(ORIGIN, "a:1", delay=0.2, lease=10).granted
    assert a.release(ORIGIN, "a:1")
    g = b.try_acquire(ORIGIN, "b:1", delay=0.2, lease=10)
    assert not g.granted
    time.sleep(g.wait + 0.08)                               # b never comes back
    assert c.try_acquire(ORIGIN, "c:1", delay=0.2, lease=10).granted


def test_a_waiter_is_told_how_long_the_last_lease_was_held(redis_url):
    """While another worker holds the lease, the wait answered counts on it holding the lease
    as long as the origin's last lease was held (then the delay), so the waiter does not come
    back before the holder can have released it."""
    a, _ = gate_for(redis_url, "a")
    b, _ = gate_for(redis_url, "b")
    assert a.try_acquire(ORIGIN, "a:1", delay=0.1, lease=10).granted
    time.sleep(0.3)                                         # a slow download: 0.3 s
    assert a.release(ORIGIN, "a:1")
    assert 290 <= int(a.state(ORIGIN)["held"]) < 400
    time.sleep(0.12)
    assert a.try_acquire(ORIGIN, "a:2", delay=0.1, lease=10).granted
    g = b.try_acquire(ORIGIN, "b:1", delay=0.1, lease=10)  # just after a's grant
    assert not g.granted and 0.35 < g.wait <= 0.45          # 0.3 s held, then the delay


def test_a_grant_is_made_ahead_when_only_the_delays_end_is_in_the_way(redis_url):
    """With ``ahead`` (the middleware's gate), a worker asking in the delay's last moments is
    granted at once for a send at the delay's end: the lease is its from now (no other worker
    is granted meanwhile) and the spacing counts from that send; a longer wait is a wait."""
    import asyncio

    a, _ = gate_for(redis_url, "a")
    b, _ = gate_for(redis_url, "b")
    c, _ = gate_for(redis_url, "c")
    b.ahead = c.ahead = 0.25
    assert a.try_acquire(ORIGIN, "a:1", delay=0.4, lease=10).granted
    assert a.release(ORIGIN, "a:1")
    early = b.try_acquire(ORIGIN, "b:1", delay=0.4, lease=10)
    assert not early.granted and early.wait > 0.25               # more than ahead: a wait
    time.sleep(early.wait - 0.2)
    g = b.try_acquire(ORIGIN, "b:1", delay=0.4, lease=10)          # asked again
    assert g.granted and 0.1 < g.wait <= 0.25                      # granted, send in g.wait
    state = b.state(ORIGIN)
    assert state["token"] == "b:1" and "next" not in state
    assert int(state["ref"]) == int(state["granted_at"]) and int(state["lease_until"]) > \
        int(state["ref"]) + 9000                                   # the lease runs from the send
    other = c.try_acquire(ORIGIN, "c:1", delay=0.4, lease=10)
    assert not other.granted and other.wait > g.wait + 0.3         # held: after b's send
    # acquire sleeps the wait out before it returns, in one round trip
    assert b.release(ORIGIN, "b:1")
    time.sleep(0.3)
    before = b.client.calls
    started = time.monotonic()
    got = asyncio.run(b.acquire(ORIGIN, "b:3", delay=0.4, lease=10, timeout=5,
                                sleep=asyncio.sleep))
    assert got.token == "b:3" and b.client.calls - before == 1
    assert time.monotonic() - started >= 0.09                     # the 0.1 s left of the delay


def test_a_gate_without_ahead_never_grants_ahead(redis_url):
    a, _ = gate_for(redis_url, "a")
    b, _ = gate_for(redis_url, "b")
    assert a.try_acquire(ORIGIN, "a:1", delay=0.2, lease=10).granted
    assert a.release(ORIGIN, "a:1")
    time.sleep(0.15)
    g = b.try_acquire(ORIGIN, "b:1", delay=0.2, lease=10)
    assert not g.granted and 0 < g.wait <= 0.05


def test_a_grant_ahead_is_given_back_when_not_sent(redis_url):
    """Woken too late (frozen: the request may have been re-queued meanwhile), the worker gives
    the lease back and asks again with a new token; a check that fails after the sleep (the
    worker stops, the epoch changed) gives it back too."""
    import asyncio

    from crawler.cluster.gate import AHEAD_LATE

    a, _ = gate_for(redis_url, "a")
    b, _ = gate_for(redis_url, "b")
    b.ahead = 1.0
    slept: list[float] = []

    async def oversleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(seconds + (AHEAD_LATE + 0.1 if len(slept) == 1 else 0))

    assert a.try_acquire(ORIGIN, "a:1", delay=0.2, lease=10).granted
    assert a.release(ORIGIN, "a:1")
    got = asyncio.run(b.acquire(ORIGIN, "b:1", delay=0.2, lease=10, timeout=5,
                                sleep=oversleep))
    assert got.token == "b:1~1"                     # the first grant was given back
    assert b.state(ORIGIN)["token"] == "b:1~1"
    assert b.release(ORIGIN, "b:1~1")

    def stop() -> None:
        if slept:
            raise RuntimeError("the worker stops")

    slept.clear()
    with pytest.raises(RuntimeError):
        asyncio.run(b.acquire(ORIGIN, "b:2", delay=0.2, lease=10, timeout=5,
                              sleep=oversleep, check=stop))
    assert "token" not in b.state(ORIGIN)           # given back, nothing held
