"""The shared queue: scrapy-redis's scheduler and duplicate filter on Scrapy 2.19, requests in
flight kept until acknowledged, a dead worker's requests recovered."""

from __future__ import annotations

import warnings

import pytest
import scrapy
from scrapy.utils.test import get_crawler

from crawler.cluster.connection import redis_client
from crawler.cluster.keys import JobKeys
from crawler.cluster.scheduler import META_INFLIGHT, ClusterScheduler
from crawler.cluster.settings import cluster_settings
from crawler.cluster.worker import ClusterWorker, Presence

from .conftest import as_if_dead, seeded, seeded_url


class Spider(scrapy.Spider):
    name = "corpus"

    def parse(self, response):
        yield from ()


def worker_crawler(redis_url: str, name: str, **extra):
    seeded_url(redis_url)  # the job's epoch, as `polite-crawl seed` writes it
    settings = cluster_settings(redis_url, "t", name)
    for key in ("DOWNLOADER_MIDDLEWARES", "EXTENSIONS"):  # no engine here: built by hand
        settings.pop(key)
    crawler = get_crawler(Spider, {**settings, **extra})
    crawler.spider = Spider.from_crawler(crawler)
    return crawler


def open_scheduler(crawler) -> ClusterScheduler:
    sched = ClusterScheduler.from_crawler(crawler)
    sched.open(crawler.spider)
    return sched


def req(spider, path: str, **kw) -> scrapy.Request:
    return scrapy.Request(f"http://127.0.0.1:8711{path}", callback=spider.parse, **kw)


def test_two_workers_share_one_queue_and_one_duplicate_filter(redis_url):
    ca, cb = worker_crawler(redis_url, "a"), worker_crawler(redis_url, "b")
    a, b = open_scheduler(ca), open_scheduler(cb)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scrapy-redis as is warns on every call (spider=)
        assert a.enqueue_request(req(ca.spider, "/1"))
        assert a.enqueue_request(req(ca.spider, "/2"))
        assert not b.enqueue_request(req(cb.spider, "/1"))  # seen by the cluster
        assert b.enqueue_request(req(cb.spider, "/1", dont_filter=True))
        assert a.has_pending_requests() and len(b) == 3
        got = [a.next_request(), b.next_request(), a.next_request(), b.next_request()]
    assert got[3] is None
    assert sorted(r.url[-2:] for r in got[:3]) == ["/1", "/1", "/2"]
    assert got[0].callback == ca.spider.parse  # decoded for this worker's spider
    assert ca.stats.get_value("scheduler/enqueued/redis") == 2
    assert ca.stats.get_value("scheduler/dequeued/redis") == 2
    assert cb.stats.get_value("scheduler/dequeued/redis") == 1
    assert ca.stats.get_value("polite/cluster/redis_calls") > 0


def test_popped_requests_stay_in_flight_until_acknowledged(redis_url):
    ca = worker_crawler(redis_url, "a")
    a = open_scheduler(ca)
    worker = ClusterWorker.of(ca)
    for i in range(3):
        a.enqueue_request(req(ca.spider, f"/{i}"))
    r1, r2 = a.next_request(), a.next_request()
    keys = JobKeys("t")
    assert r1.meta[META_INFLIGHT] != r2.meta[META_INFLIGHT]
    assert worker.redis.hlen(keys.inflight("a")) == 2
    done = a.finished_ids({r2})  # the engine still has r2 in progress
    assert done == [r1.meta[META_INFLIGHT]]
    worker.presence.beat(done)
    a.forget(done)
    assert worker.redis.hlen(keys.inflight("a")) == 1
    assert a.in_flight == 1
    # a redirect or retry of a popped request is queued without its old id
    again = r2.replace(url=r2.url + "?next")
    assert a.enqueue_request(again)
    assert META_INFLIGHT not in again.meta


def test_a_dead_workers_requests_go_back_to_the_queue(redis_url):
    ca, cb = worker_crawler(redis_url, "a"), worker_crawler(redis_url, "b")
    a, b = open_scheduler(ca), open_scheduler(cb)
    for i in range(4):
        a.enqueue_request(req(ca.spider, f"/{i}", priority=i))
    wa, wb = ClusterWorker.of(ca), ClusterWorker.of(cb)
    wa.presence.beat()
    popped = [a.next_request() for _ in range(3)]
    assert [r.priority for r in popped] == [3, 2, 1]
    status = wb.presence.beat()
    assert (status.queued, status.in_flight, status.recovered) == (1, 3, 0)
    assert status.has_work
    as_if_dead(wa.redis, "t", "a")  # a was killed: no beat for its TTL, Redis answering
    status = wb.presence.beat()
    assert (status.queued, status.in_flight, status.recovered) == (4, 0, 3)
    # with their priorities: the highest comes back first
    assert [b.next_request().priority for _ in range(4)] == [3, 2, 1, 0]
    assert b.next_request() is None
    assert wb.redis.sismember(JobKeys("t").workers, "a") == 0


def test_a_restarted_worker_requeues_what_its_earlier_life_had_in_flight(redis_url):
    client = redis_client(redis_url)
    keys = JobKeys("t")
    client.zadd(keys.requests, {b"x": 0})
    client.hset(keys.inflight("a"), "7", b"-5:payload")
    presence = Presence(client, keys, "a", ttl=5, epoch=seeded(client))
    assert presence.claim()
    status = presence.beat(requeue_own=True)
    assert status.recovered == 1 and status.queued == 2
    assert client.zscore(keys.requests, b"payload") == -5


def test_the_cluster_has_work_while_any_live_worker_has_a_request_in_flight(redis_url):
    client = redis_client(redis_url)
    keys = JobKeys("t")
    epoch = seeded(client)
    a = Presence(client, keys, "a", ttl=5, epoch=epoch)
    b = Presence(client, keys, "b", ttl=5, epoch=epoch)
    a.claim()
    b.claim()
    assert not a.beat().has_work
    client.hset(keys.inflight("b"), "1", b"0:x")
    assert a.beat().in_flight == 1
    b.beat(["1"])
    assert not a.beat().has_work
    client.rpush(keys.start_urls, b'{"url": "http://x/"}')
    assert a.beat().start_urls == 1


def test_a_local_duplicate_filter_is_refused(redis_url):
    crawler = worker_crawler(redis_url, "a",
                             DUPEFILTER_CLASS="scrapy.dupefilters.RFPDupeFilter")
    with pytest.raises(TypeError, match="shared duplicate filter"):
        ClusterScheduler.from_crawler(crawler)


def test_persist_is_forced_so_one_worker_stopping_keeps_the_queue(redis_url):
    crawler = worker_crawler(redis_url, "a", SCHEDULER_PERSIST=False)
    sched = open_scheduler(crawler)
    sched.enqueue_request(req(crawler.spider, "/1"))
    sched.close("finished")
    assert len(sched) == 1


@pytest.mark.skipif(__import__("scrapy_redis").__version__ != "0.9.1",
                    reason="witness of scrapy-redis 0.9.1's behaviour only")
def test_why_the_scheduler_is_subclassed_scrapy_redis_as_is_warns_on_scrapy_2_19(redis_url):
    from scrapy.exceptions import ScrapyDeprecationWarning
    from scrapy_redis.scheduler import Scheduler

    crawler = worker_crawler(redis_url, "a", REDIS_URL=redis_url)
    plain = Scheduler.from_crawler(crawler)
    plain.open(crawler.spider)
    with pytest.warns(ScrapyDeprecationWarning, match="'spider' argument"):
        plain.enqueue_request(req(crawler.spider, "/x"))
    with pytest.warns(ScrapyDeprecationWarning, match="'spider' argument"):
        plain.next_request()
    plain.server.close()


def test_origins_are_interleaved_within_a_priority(redis_url):
    crawler = worker_crawler(redis_url, "a")
    sched = open_scheduler(crawler)
    for port in (8711, 8712, 8713):
        for i in range(3):
            sched.enqueue_request(scrapy.Request(f"http://127.0.0.1:{port}/{i}",
                                                 callback=crawler.spider.parse))
    sched.enqueue_request(scrapy.Request("http://127.0.0.1:8714/urgent", priority=5,
                                         callback=crawler.spider.parse))
    order = [sched.next_request().url for _ in range(10)]
    assert order[0].endswith("/urgent")      # priority first
    ports = [u.split(":")[2][:4] for u in order[1:]]
    # one request of each origin before any origin's second, and so on
    assert all(len(set(ports[i:i + 3])) == 3 for i in (0, 3, 6))


def test_seen_and_queued_in_one_round_trip(redis_url, monkeypatch):
    """A worker killed between marking a URL seen and queueing it would lose the URL for the
    whole cluster: both happen in one script call."""
    crawler = worker_crawler(redis_url, "a")
    sched = open_scheduler(crawler)
    server = sched.server
    sent: list[tuple] = []
    real = server.execute_command

    def spy(*args, **kw):
        sent.append(args)
        return real(*args, **kw)

    monkeypatch.setattr(server, "execute_command", spy)
    assert sched.enqueue_request(req(crawler.spider, "/new"))
    names = [str(a[0]).upper() for a in sent]
    assert "SADD" not in names and len(sent) == 1, names
    sent.clear()
    assert not sched.enqueue_request(req(crawler.spider, "/new"))  # seen: not queued twice
    assert len(sent) == 1 and len(sched) == 1
