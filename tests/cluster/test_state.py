"""The job's epoch, liveness from evidence, fencing, leases that recover, the spool and the
restore, against a real Redis (and a relay in front of it that can be cut, for "Redis
unreachable").

* Every script a worker runs checks the epoch: a lost, restarted or garbled state grants,
  pops, pushes and beats nothing (and writes nothing into an empty Redis); a new epoch is
  "changed" until adopted; a restored one holds every grant and pop for its hold.
* A worker is dead only after missing its beats for a TTL *while Redis answered the others*:
  a Redis that served nobody for longer than the TTL kills nobody.
* A request whose in-flight entry was re-queued (its worker looked dead) is fenced at the
  gate; a restored epoch's re-registered lease blocks the origin as the original did.
* A lease whose release failed is released when Redis answers again; a link Redis could not
  take is spooled, then pushed through the duplicate filter.
* ``seed --restore`` rebuilds from the output_dir: sent URLs never queued again, the stored
  pages' links and what Redis still held queued, undecided URLs first.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import scrapy
from scrapy.utils.test import get_crawler

from crawler.cluster.connection import redis_client
from crawler.cluster.gate import OriginGate
from crawler.cluster.keys import JobKeys
from crawler.cluster.politeness import ClusterPolitenessMiddleware
from crawler.cluster.scheduler import META_EPOCH, META_INFLIGHT, ClusterScheduler
from crawler.cluster.settings import cluster_settings
from crawler.cluster.state import StateError, job_problem, read_epoch, write_epoch
from crawler.cluster.worker import ClusterWorker, JobStateRefused, Presence

from ..integration.conftest import run_cli, write_config
from .conftest import as_if_dead, seeded
from .faults import RedisLink

ORIGIN = "http://127.0.0.1:8711"


class Spider(scrapy.Spider):
    name = "corpus"

    def parse(self, response):
        yield from ()


def crawler_for(url: str, name: str, tmp_path: Path, **extra):
    settings = cluster_settings(url, "t", name)
    for key in ("DOWNLOADER_MIDDLEWARES", "EXTENSIONS"):
        settings.pop(key)
    crawler = get_crawler(Spider, {**settings, "POLITE_OUTPUT_DIR": str(tmp_path), **extra})
    crawler.spider = Spider.from_crawler(crawler)
    return crawler


def gate(client, worker: str, epoch: str, **kw) -> OriginGate:
    return OriginGate(client, JobKeys("t"), worker, epoch=epoch, poll=0.05, **kw)


# -- the epoch ------------------------------------------------------------------------------
def test_a_worker_does_not_start_on_a_job_without_state(redis_url, tmp_path):
    with pytest.raises(JobStateRefused, match="no state in Redis") as info:
        ClusterWorker.of(crawler_for(redis_url, "a", tmp_path))
    assert "\n" not in str(info.value) and "seed" in str(info.value)
    client = redis_client(redis_url)
    assert client.keys("*") == []          # nothing written into the empty Redis
    client.close()


def test_every_script_refuses_a_lost_restarted_or_garbled_state(redis_url, rclient):
    epoch = seeded(rclient)
    keys = JobKeys("t")
    presence = Presence(rclient, keys, "a", ttl=30, epoch=epoch)
    assert presence.claim()
    g = gate(rclient, "a", epoch)
    assert g.try_acquire(ORIGIN, "a:1", delay=0, lease=10).granted
    assert g.release(ORIGIN, "a:1")
    for code, damage in [("restarted", {"run_id": "0" * 40}), ("invalid", {"id": ""}),
                         ("invalid", {"hold_until": "soon"})]:
        saved = rclient.hgetall(keys.epoch)
        rclient.hset(keys.epoch, mapping=damage)
        grant = g.try_acquire(ORIGIN, "a:2", delay=0, lease=10)
        assert not grant.granted and grant.state.code == code, (damage, grant)
        with pytest.raises(StateError, match=code):
            presence.beat()
        rclient.delete(keys.epoch)
        rclient.hset(keys.epoch, mapping=saved)
    rclient.flushdb()                      # Redis restarted empty
    grant = g.try_acquire(ORIGIN, "a:2", delay=0, lease=10)
    assert not grant.granted and grant.state.code == "lost" and grant.state.stalled
    with pytest.raises(StateError, match="lost"):
        presence.beat(["1", "2"])
    assert rclient.keys("*") == []         # a lost state is never refreshed from a worker


def test_a_new_epoch_is_changed_until_adopted_and_holds_grants(redis_url, rclient):
    old = seeded(rclient)
    g = gate(rclient, "a", old)
    new = write_epoch(rclient, "t", "restore", hold=0.4)
    grant = g.try_acquire(ORIGIN, "a:1", delay=0, lease=10)
    assert grant.state.code == "changed" and grant.state.detail == new
    g2 = gate(rclient, "a", new)
    grant = g2.try_acquire(ORIGIN, "a:1", delay=0, lease=10)
    assert grant.state.code == "hold" and 0.1 < grant.wait <= 0.4
    assert job_problem(rclient, "t").code == "hold"
    time.sleep(grant.wait + 0.02)
    assert g2.try_acquire(ORIGIN, "a:1", delay=0, lease=10).granted


def test_pops_and_pushes_follow_the_epoch(redis_url, rclient, tmp_path):
    seeded(rclient)
    crawler = crawler_for(redis_url, "a", tmp_path)
    sched = ClusterScheduler.from_crawler(crawler)
    sched.open(crawler.spider)
    worker = ClusterWorker.of(crawler)
    assert sched.enqueue_request(scrapy.Request(ORIGIN + "/1", callback=crawler.spider.parse))
    popped = sched.next_request()
    assert popped.meta[META_EPOCH] == worker.epoch and popped.meta[META_INFLIGHT]
    assert sched.enqueue_request(scrapy.Request(ORIGIN + "/2", callback=crawler.spider.parse))
    rclient.hset(JobKeys("t").epoch, "hold_until", int(time.time() * 1000) + 60_000)
    assert sched.next_request() is None             # nothing popped during a hold
    assert sched.enqueue_request(scrapy.Request(ORIGIN + "/3", callback=crawler.spider.parse))
    assert len(sched) == 2                            # pushes are taken during a hold
    rclient.delete(JobKeys("t").epoch)               # the state is lost
    assert sched.next_request() is None and worker.stalled.code == "lost"
    assert sched.enqueue_request(scrapy.Request(ORIGIN + "/4", callback=crawler.spider.parse))
    assert sched.spooled == 1 and len(sched) == 2     # kept locally, not pushed nor dropped
    line = json.loads(worker.spool_path.read_text())
    assert line["url"] == ORIGIN + "/4" and line["fp"] and line["data"]
    worker.redis.close()


# -- liveness -------------------------------------------------------------------------------
def test_a_worker_is_dead_only_after_missing_beats_while_redis_answered_others(rclient):
    epoch = seeded(rclient)
    keys = JobKeys("t")
    a = Presence(rclient, keys, "a", ttl=0.6, gap=0.2, epoch=epoch)
    b = Presence(rclient, keys, "b", ttl=0.6, gap=0.2, epoch=epoch)
    assert a.claim() and b.claim()
    a.beat()
    b.beat()
    rclient.hset(keys.inflight("a"), "7", b"0:payload")
    g = gate(rclient, "a", epoch, gap=0.2)
    assert g.try_acquire(ORIGIN, "a:1", delay=0, lease=60).granted
    time.sleep(1.0)     # nobody beats for longer than the TTL: Redis "unreachable" (frozen)
    assert not rclient.exists(keys.alive("a"))                 # a's presence key is gone
    status = b.beat()   # the first beat after the outage: Redis is answering again
    assert status.recovered == 0 and status.in_flight == 1     # a is not declared dead
    assert not gate(rclient, "b", epoch, gap=0.2).try_acquire(
        ORIGIN, "b:1", delay=0, lease=60).granted              # a's lease still holds
    t0 = time.monotonic()                                       # a misses its beats for a
    recovered: list[tuple[float, int]] = []                     # TTL while b's are served
    while time.monotonic() - t0 < 0.9:
        recovered.append((time.monotonic() - t0, b.beat().recovered))
        time.sleep(0.08)
    assert all(n == 0 for t, n in recovered if t < 0.5), recovered
    assert sum(n for _t, n in recovered) == 1, recovered       # then a is dead, once
    assert gate(rclient, "b", epoch, gap=0.2).try_acquire(
        ORIGIN, "b:1", delay=0, lease=60).granted              # and its lease void


def test_a_request_requeued_from_a_dead_worker_is_fenced_at_its_gate(redis_url, rclient,
                                                                     tmp_path):
    seeded(rclient)
    crawler = crawler_for(redis_url, "a", tmp_path)
    sched = ClusterScheduler.from_crawler(crawler)
    sched.open(crawler.spider)
    worker = ClusterWorker.of(crawler)
    worker.presence.beat()
    sched.enqueue_request(scrapy.Request(ORIGIN + "/1", callback=crawler.spider.parse))
    request = sched.next_request()
    g = gate(rclient, "a", worker.epoch)
    grant = g.try_acquire(ORIGIN, "a:1", delay=0, lease=10, inflight=request.meta[META_INFLIGHT])
    assert grant.granted
    g.release(ORIGIN, "a:1")
    as_if_dead(rclient, "t", "a")                  # a looked dead: b re-queues its request
    b = Presence(rclient, JobKeys("t"), "b", ttl=30, epoch=worker.epoch)
    assert b.claim() and b.beat().recovered == 1
    grant = g.try_acquire(ORIGIN, "a:2", delay=0, lease=10, inflight=request.meta[META_INFLIGHT])
    assert not grant.granted and grant.state.code == "fenced"
    worker.redis.close()


# -- leases that recover ----------------------------------------------------------------------
def test_a_release_that_failed_is_done_when_redis_answers_again(redis_server, tmp_path):
    from crawler.cluster.politeness import META_LEASE

    link = RedisLink(redis_server.port)
    direct = redis_client(redis_server.url)
    try:
        direct.flushall()
        seeded(direct)
        crawler = crawler_for(link.url, "a", tmp_path, POLITE_CLUSTER_DELAY=0.0)
        mw = ClusterPolitenessMiddleware.from_crawler(crawler)
        request = scrapy.Request(ORIGIN + "/1")
        got = mw.gate.try_acquire(ORIGIN, "a:1", delay=0, lease=600)
        assert got.granted
        request.meta[META_LEASE] = (ORIGIN, "a:1")
        link.cut()                                     # Redis unreachable at release time
        mw._release(request)
        assert direct.hget(JobKeys("t").origin(ORIGIN), "token") == b"a:1"   # still held
        link.mend()
        assert mw.retry_releases() == 1                # done as soon as Redis answers
        assert direct.hget(JobKeys("t").origin(ORIGIN), "token") is None
        assert mw.retry_releases() == 0
        mw.worker.redis.close()
    finally:
        link.close()
        direct.flushall()
        direct.close()


def test_links_redis_cannot_take_are_spooled_then_pushed(redis_server, tmp_path):
    link = RedisLink(redis_server.port)
    direct = redis_client(redis_server.url)
    try:
        direct.flushall()
        seeded(direct)
        crawler = crawler_for(link.url, "a", tmp_path)
        sched = ClusterScheduler.from_crawler(crawler)
        sched.open(crawler.spider)
        parse = crawler.spider.parse
        assert sched.enqueue_request(scrapy.Request(ORIGIN + "/seen", callback=parse))
        link.cut()
        for path in ("/new", "/seen", "/new"):
            assert sched.enqueue_request(scrapy.Request(ORIGIN + path, callback=parse))
        assert sched.spooled == 3 and (tmp_path / "spool-a.jsonl").exists()
        link.mend()
        assert sched.drain_spool() == 1            # through the duplicate filter: /new once
        assert sched.spooled == 0 and not (tmp_path / "spool-a.jsonl").exists()
        assert direct.zcard(JobKeys("t").requests) == 2
        sched.worker.redis.close()
    finally:
        link.close()
        direct.flushall()
        direct.close()


def test_a_restored_epoch_re_registers_the_leases_of_requests_on_the_wire(rclient):
    epoch = seeded(rclient)
    a = gate(rclient, "a", epoch)
    assert a.try_acquire(ORIGIN, "a:1", delay=0.2, lease=60).granted
    rclient.flushdb()                              # Redis restarted empty: the lease is gone
    new = write_epoch(rclient, "t", "restore", hold=0.2)
    a = gate(rclient, "a", new)
    assert a.reregister([(ORIGIN, "a:1", 30.0, 0.2)], [("http://127.0.0.1:8712", 0.5)]) == 1
    Presence(rclient, JobKeys("t"), "a", ttl=30, epoch=new).claim()
    b = gate(rclient, "b", new)
    time.sleep(0.25)                               # the hold is over
    assert not b.try_acquire(ORIGIN, "b:1", delay=0.2, lease=60).granted     # a holds it
    g = b.try_acquire("http://127.0.0.1:8712", "b:2", delay=0.2, lease=60)   # answered just
    assert not g.granted and 0.1 < g.wait <= 0.5                            # now: a delay
    assert a.release(ORIGIN, "a:1")


# -- seed and restore ---------------------------------------------------------------------------
def _write(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def test_restore_rebuilds_from_the_logs_and_what_redis_still_holds(redis_url, rclient,
                                                                   tmp_path):
    from crawler.cluster.restore import fingerprint, restore_job
    from crawler.config.job import load_config

    site = "http://127.0.0.1:8799"
    cfg = write_config(tmp_path / "job.yaml", job="t", seeds=[site + "/"], follow="same-host",
                       cluster={"redis_url": redis_url})
    out = tmp_path / "out"
    out.mkdir()
    _write(out / "audit-w1.jsonl", [
        {"seq": 1, "decision": "send", "url": site + "/robots.txt", "preflight": "robots.txt"},
        {"seq": 2, "decision": "send", "url": site + "/", "method": "GET"},
        {"seq": 3, "decision": "allow", "url": site + "/"},
        {"seq": 4, "decision": "deny", "url": site + "/private/x"},
        {"seq": 5, "decision": "deny", "url": site + "/later", "undecided": {"final": True}},
        {"seq": 6, "decision": "send", "url": site + "/a"}])
    _write(out / "audit-w1.checkpoints.jsonl", [{"seq": 6, "hash": "x"}])
    _write(out / "audit-merged.jsonl", [{"report": "polite-crawl merged audit report"},
                                        {"seq": 9, "decision": "send", "url": site + "/b"}])
    links = "".join(f'<a href="/{p}">{p}</a>' for p in ("a", "b", "c", "private/x"))
    _write(out / "corpus-w1.jsonl", [{"url": site + "/", "html": f"<html><body>{links}"
                                      "<a href='http://elsewhere.example/'>x</a></body></html>"}])
    epoch = seeded(rclient)
    # what Redis still holds (an AOF restart): /d queued, /a queued although it was sent
    crawler = crawler_for(redis_url, "w2", tmp_path / "w2")
    sched = ClusterScheduler.from_crawler(crawler)
    sched.open(crawler.spider)
    for path in ("/d", "/a"):
        sched.queue.push(scrapy.Request(site + path, callback=crawler.spider.parse))
    sched.worker.redis.close()
    rclient.hset(JobKeys("t").epoch, "run_id", "0" * 40)       # Redis restarted
    report = restore_job(rclient, load_config(cfg), hold=1.0)

    assert report.workers == ["w1"] and report.documents == 1
    keys = JobKeys("t")
    seen = {x.decode() for x in rclient.smembers(keys.dupefilter)}
    for path in ("/", "/a", "/private/x"):                      # sent or refused: never again
        assert fingerprint(site + path) in seen
    from scrapy_redis import picklecompat
    queued = [picklecompat.loads(raw) for raw in rclient.zrange(keys.requests, 0, -1)]
    urls = [q["url"] for q in queued]
    assert urls[0] == site + "/later"                           # undecided first
    assert sorted(urls) == sorted(site + p for p in ("/later", "/b", "/c", "/d"))
    assert report.from_redis == 1 and report.undecided == 1 and report.from_pages == 2
    new = read_epoch(rclient, "t")
    assert new.id != epoch and new.how == "restore" and new.hold_until
    assert job_problem(rclient, "t").code == "hold"


def test_seed_refuses_to_start_over_on_an_empty_redis_that_lost_the_job(redis_url, tmp_path):
    cfg = write_config(tmp_path / "job.yaml", job="t", seeds=["http://127.0.0.1:8799/"],
                       cluster={"redis_url": redis_url})
    out = tmp_path / "out"
    out.mkdir()
    _write(out / "audit-w1.jsonl", [{"seq": 1, "decision": "send",
                                     "url": "http://127.0.0.1:8799/"}])
    refused = run_cli("seed", str(cfg))
    assert refused.returncode == 2 and "--restore" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    both = run_cli("seed", str(cfg), "--reset", "--restore")
    assert both.returncode == 2 and "not allowed with" in both.stderr
    started = run_cli("run", str(cfg), "--worker", "w2")
    assert started.returncode == 2 and "no state in Redis" in started.stderr, started.stderr
    assert len(started.stderr.strip().splitlines()) == 1 and "Traceback" not in started.stderr
    assert not (out / "audit-w2.jsonl").exists()
