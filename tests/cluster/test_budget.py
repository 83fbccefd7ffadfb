"""The shared pay-per-crawl budget in Redis: atomic holds, no overspending across workers."""

from __future__ import annotations

import multiprocessing
import threading
from decimal import Decimal

import pytest

from crawler.cluster.budget import RedisLedger, held_key, spent_key
from crawler.cluster.connection import redis_client
from crawler.cluster.keys import JobKeys
from crawler.cluster.state import write_epoch
from crawler.policy.ledger import LocalLedger, PaymentPolicy, Totals
from crawler.policy.payment import PayPerCrawl
from crawler.policy.payment_replay import replay
from crawler.policy.prices import Money
from tests.cluster.conftest import seeded

O = "https://a.example:443"
O2 = "https://b.example:443"


def usd(text: str) -> Money:
    return Money("USD", Decimal(text))


def pol(budget="USD 0.05", per_origin="USD 0.03", max_price="USD 0.01") -> PaymentPolicy:
    p = PaymentPolicy.from_config({"max_price": max_price, "budget": budget,
                                   "per_origin_budget": per_origin})
    assert p is not None
    return p


def ledger(client, policy=None, job="t", epoch="") -> RedisLedger:
    return RedisLedger(client, JobKeys(job), policy or pol(), epoch=epoch)


def test_reserve_commit_release_against_both_budgets(rclient):
    seeded(rclient)
    led = ledger(rclient)
    assert led.reserve(O, usd("0.02"))
    assert led.reserve(O, usd("0.01"))
    no = led.reserve(O, usd("0.000001"))
    assert not no and "per-origin" in no.reason
    assert led.reserve(O2, usd("0.02"))
    no = led.reserve(O2, usd("0.01"))
    assert not no and "job budget" in no.reason
    led.commit(O, usd("0.02"), usd("0.015"))
    assert led.totals(O) == Totals(15_000, 30_000, 15_000, 10_000)
    led.release(O2, usd("0.02"))
    assert led.totals(O2) == Totals(15_000, 10_000, 0, 0)
    # amounts are integers in Redis, never floats
    assert rclient.hget(spent_key(JobKeys("t")), O) == b"15000"
    assert rclient.hget(held_key(JobKeys("t")), "*") == b"10000"
    # a release never takes a hold below zero
    led.release(O2, usd("1"))
    led.release(O, usd("1"))
    assert led.totals(O) == Totals(15_000, 0, 15_000, 0)


def test_overcharge_is_debited_beyond_the_budget_and_blocks_more(rclient):
    seeded(rclient)
    led = ledger(rclient)
    assert led.reserve(O, usd("0.01"))
    led.commit(O, usd("0.01"), usd("0.10"))
    assert led.totals(O).spent == 100_000
    assert not led.reserve(O2, usd("0.000001"))


def test_no_epoch_no_reservation(rclient):
    led = ledger(rclient)   # the job was never seeded (or Redis lost its state)
    no = led.reserve(O, usd("0.01"))
    assert not no and "gone from Redis" in no.reason
    assert led.totals(O) == Totals()


def test_a_changed_epoch_refuses(rclient):
    first = seeded(rclient)
    led = ledger(rclient, epoch=first)
    assert led.reserve(O, usd("0.01"))
    write_epoch(rclient, "t", "restore")
    no = led.reserve(O, usd("0.01"))
    assert not no and "changed" in no.reason


def test_workers_with_other_budgets_are_refused(rclient):
    seeded(rclient)
    assert ledger(rclient).reserve(O, usd("0.01"))
    other = ledger(rclient, pol(budget="USD 100"))
    no = other.reserve(O, usd("0.01"))
    assert not no and "other budgets" in no.reason


def test_garbled_totals_refuse(rclient):
    seeded(rclient)
    rclient.hset(spent_key(JobKeys("t")), "*", "lots")
    no = ledger(rclient).reserve(O, usd("0.01"))
    assert not no and "garbled" in no.reason


def test_jobs_do_not_share_budgets(rclient):
    seeded(rclient, "t")
    seeded(rclient, "u")
    a, b = ledger(rclient, job="t"), ledger(rclient, job="u")
    for _ in range(3):
        assert a.reserve(O, usd("0.01"))
    assert not a.reserve(O, usd("0.01"))
    assert b.reserve(O, usd("0.01"))


def test_two_threads_race_for_the_last_cent(redis_url):
    """Two workers (own connections), one cent left: exactly one wins, every time."""
    c0 = redis_client(redis_url)
    seeded(c0)
    try:
        for round_ in range(50):
            c0.delete(spent_key(JobKeys("t")), held_key(JobKeys("t")))
            c0.hset(spent_key(JobKeys("t")), mapping={"*": 40_000, O: 0})
            clients = [redis_client(redis_url) for _ in range(2)]
            barrier = threading.Barrier(2)
            wins: list[bool] = []

            def worker(client):
                led = ledger(client)
                barrier.wait()
                wins.append(bool(led.reserve(f"https://w{id(client)}.example:443",
                                             usd("0.01"))))

            threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for c in clients:
                c.close()
            assert sorted(wins) == [False, True], f"round {round_}: {wins}"
            assert ledger(c0).totals(O) == Totals(40_000, 10_000, 0, 0)
    finally:
        c0.close()


def _process_worker(url: str, n: int, start, out) -> None:
    client = redis_client(url)
    led = RedisLedger(client, JobKeys("t"), pol(budget="USD 0.50", per_origin="USD 0.50"))
    start.wait()
    won = 0
    for _ in range(n):
        if led.reserve(O, usd("0.01")):
            led.commit(O, usd("0.01"), usd("0.01"))
            won += 1
    out.put(won)
    client.close()


def test_processes_racing_never_overspend(redis_url, rclient):
    seeded(rclient)
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_process_worker, args=(redis_url, 40, start, out))
             for _ in range(4)]
    for p in procs:
        p.start()
    start.set()
    won = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert sum(won) == 50                      # 160 tries, 50 cents
    assert ledger(rclient, pol(budget="USD 0.50", per_origin="USD 0.50")).totals(O) == \
        Totals(500_000, 0, 500_000, 0)


def test_session_over_redis_and_restore_from_logs(rclient):
    """PayPerCrawl over the shared ledger; ``load`` adds what replay rebuilt (seed --restore)."""
    seeded(rclient)
    p = pol(budget="USD 0.02", per_origin="USD 0.02")
    w1, w2 = PayPerCrawl(p, ledger(rclient, p)), PayPerCrawl(p, ledger(rclient, p))
    a = w1.decide(O, 402, {"crawler-price": ["USD 0.01"]})
    b = w2.decide(O2, 402, {"crawler-price": ["USD 0.01"]})
    c = w2.decide(O2, 402, {"crawler-price": ["USD 0.01"]})
    assert type(a).__name__ == type(b).__name__ == "PayAndRetry"
    assert type(c).__name__ == "Refuse" and "job budget" in c.reason
    records = [{"seq": 1, "result": "pay-decision",
                "payment": {"origin": O, "action": "pay", "reserved": "USD 0.01"}},
               {"seq": 2, "result": "pay-charge",
                "payment": {"origin": O, "ref": 1, "charged": "USD 0.01"}}]
    rclient.flushall()
    seeded(rclient)
    led = ledger(rclient, p)
    led.load(replay(records).spent)
    assert led.totals(O) == Totals(10_000, 0, 10_000, 0)
    local = LocalLedger(p)
    local.load(replay(records).spent)
    assert local.totals(O) == led.totals(O)


@pytest.mark.parametrize("amount", ["USD 0.000001", "USD 0.009999"])
def test_micro_units_are_exact(rclient, amount):
    seeded(rclient)
    led = ledger(rclient, pol(budget="USD 0.01", per_origin="USD 0.01"))
    assert led.reserve(O, Money.of(amount))
    rest = 10_000 - Money.of(amount).micros
    assert led.reserve(O, Money.from_micros("USD", rest))
    assert not led.reserve(O, Money.from_micros("USD", 1))
