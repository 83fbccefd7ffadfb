"""Redis fails under a running cluster: three worker processes, a redis-server of the test's
own, a local web that times every request (faults.py). Judged from the web's own log —
duplicate page fetches, overlapping requests to one origin, the gap between one request's
answer and the next request to its origin, pages never collected — and from ``polite-crawl
audit verify`` of every worker's log.

Each fault is injected while s0's slow page (5 s) is on the wire:

* Redis restarted empty (``SHUTDOWN NOSAVE``, started again on the same port): the workers
  stop at once (one line each), ``seed`` refuses to treat the job as new, ``seed --restore``
  rebuilds the state from the workers' logs and corpora, the workers adopt it (the slow
  page's lease re-registered: nothing else goes to s0 until it is answered) and finish: no
  page fetched twice, none lost.
* Redis frozen (SIGSTOP) for longer than the worker TTL: nobody is declared dead, nothing is
  re-queued, nothing fetched twice; the crawl finishes by itself.
* Redis with AOF killed (SIGKILL) with requests in flight, down 2 s, restarted: links found
  meanwhile are spooled (not dropped), the restarted server is not trusted (its run_id
  changed), the operator restores, no origin stays blocked for the lease (35 s here).
* No restore comes: every worker gives up after POLITE_CLUSTER_RESTORE_WAIT, sends nothing
  after the fault, exits non-zero in one line and keeps what it held in its spool; a plain
  ``seed`` refuses to take the empty Redis for a new job; a restore and a second round of
  workers then finish the job without fetching anything twice.
"""

from __future__ import annotations

import re
import time

import pytest

from ..integration.conftest import run_cli
from . import faults as F
from .test_cluster_crawl import _wired

pytestmark = pytest.mark.skipif(not _wired(), reason="needs polite-crawl seed / run --worker")

STALL = re.compile(r"ERROR: job 'faults': .* sends nothing until an operator")
ADOPTED = re.compile(r"new epoch \S+ adopted by worker")


def restart_empty(ctx: F.Ctx) -> None:
    ctx.redis.shutdown_nosave()
    ctx.redis.start()


def assert_exact(o: F.Outcome) -> None:
    """Never two requests at once to one origin, never a gap under the delay, no page fetched
    twice, none lost, every log verifies."""
    assert o.overlaps == 0, o.figures()
    assert o.min_gap >= F.DELAY - F.TOLERANCE, o.figures()
    assert o.duplicates == 0, o.duplicate_urls
    assert not o.lost, o.lost
    assert all(o.verified.values()), o.notes


def test_redis_restarted_empty_stops_everyone_until_the_state_is_restored(tmp_path, redis_server):
    def recover(ctx: F.Ctx) -> None:
        time.sleep(0.3)
        done = F.restore(ctx)
        assert done.returncode == 0, done.stderr

    o = F.scenario(tmp_path, restart_empty, recover=recover)
    restored = o.ctx.seen["restore"].stdout
    assert re.search(r"restored from the logs of [1-3] workers?", restored), restored
    assert o.exits == {"w1": 0, "w2": 0, "w3": 0}, {n: o.tail(n) for n in o.logs}
    assert_exact(o)
    for name, log in o.logs.items():
        assert len(STALL.findall(log)) == 1, (name, log[-3000:])   # said once, in one line
        assert ADOPTED.search(log), (name, log[-3000:])
        assert "Traceback" not in log
    # the slow page's lease was re-registered: s0 got nothing else while it was on the wire
    # (the restore's hold ends before it is answered)
    assert o.overlaps == 0


def test_redis_frozen_longer_than_the_worker_ttl_kills_nobody(tmp_path, redis_server):
    def freeze(ctx: F.Ctx) -> None:
        ctx.redis.freeze()
        time.sleep(4)            # POLITE_CLUSTER_WORKER_TTL is 3 s
        ctx.redis.thaw()

    o = F.scenario(tmp_path, freeze)
    assert o.exits == {"w1": 0, "w2": 0, "w3": 0}, {n: o.tail(n) for n in o.logs}
    assert_exact(o)
    for name, log in o.logs.items():
        assert "of a dead worker put back" not in log, (name, log[-3000:])
        assert not STALL.search(log)   # a freeze loses nothing: no restore needed


def test_aof_redis_killed_with_requests_in_flight(tmp_path, redis_server):
    def crash(ctx: F.Ctx) -> None:
        ctx.redis.kill()
        time.sleep(2.0)           # the slow page is answered while Redis is down
        ctx.redis.start()         # from its append-only file: another run_id

    def recover(ctx: F.Ctx) -> None:
        time.sleep(0.5)
        assert F.restore(ctx).returncode == 0, ctx.seen["restore"].stderr

    o = F.scenario(tmp_path, crash, aof=True, recover=recover,
                   trigger=F.when_slow_on_the_wire(3.5))
    assert o.exits == {"w1": 0, "w2": 0, "w3": 0}, {n: o.tail(n) for n in o.logs}
    assert_exact(o)
    # no origin blocked for the lease of a request whose release failed (DOWNLOAD_TIMEOUT 30
    # + margin 5 = 35 s before): the outage (2 s) + the restore + its hold (2 s)
    assert o.max_stall < 15, o.figures()
    logs = "\n".join(o.logs.values())
    assert "request dropped" not in logs
    assert "restarted or failed over" in logs


def test_without_a_restore_workers_give_up_keep_what_they_hold_and_a_later_restore_finishes(
        tmp_path, redis_server):
    def later(ctx: F.Ctx) -> None:
        F.wait_for(ctx.procs, 60)
        ctx.seen["exits"] = {n: p.returncode for n, p in ctx.procs.items()}
        ctx.seen["logs"] = {n: ctx.logs[n].read_text(errors="replace") for n in ctx.procs}
        ctx.seen["sent_after"] = F.arrivals_between(ctx.web, ctx.fault_at + 0.05, time.time())
        ctx.seen["spools"] = {n: F.read_jsonl(ctx.out / f"spool-{n}.jsonl") for n in ctx.procs}
        # a plain seed does not take the empty Redis for a new job
        ctx.seen["plain"] = run_cli("seed", str(ctx.cfg))
        assert F.restore(ctx).returncode == 0, ctx.seen["restore"].stderr
        # a second round: each worker pushes its spool first, the cluster finishes the job
        ctx.logs = {n: ctx.tmp / f"{n}-2.log" for n in ctx.procs}
        ctx.procs = {n: F.start_worker(ctx.cfg, n, ctx.logs[n]) for n in ctx.procs}

    o = F.scenario(tmp_path, restart_empty, recover=later, names=("w1", "w2"),
                   settings={"POLITE_CLUSTER_RESTORE_WAIT": 2}, slow=False,
                   trigger=F.when_collected(4))
    first = o.ctx.seen
    plain = first["plain"]
    assert plain.returncode == 2 and "--restore" in plain.stderr, plain.stderr
    assert len(plain.stderr.strip().splitlines()) == 1 and "Traceback" not in plain.stderr
    for name, log in first["logs"].items():
        assert first["exits"][name] == 1, (name, log[-3000:])
        assert len(STALL.findall(log)) == 1, (name, log[-3000:])
        stopped = [ln for ln in log.splitlines() if "stopped with work left" in ln]
        assert len(stopped) == 1 and "POLITE_CLUSTER_RESTORE_WAIT" in stopped[0], log[-3000:]
        assert "Traceback" not in log
    # nothing reached the web after the fault but what was already on the wire
    assert first["sent_after"] == [], first["sent_after"]
    assert sum(len(v) for v in first["spools"].values()) > 0   # links kept, not dropped
    assert o.exits == {"w1": 0, "w2": 0}, {n: o.tail(n) for n in o.logs}
    assert_exact(o)
    for name in ("w1", "w2"):
        assert not (o.ctx.out / f"spool-{name}.jsonl").exists()   # pushed, then removed
