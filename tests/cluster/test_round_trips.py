"""Redis round trips per page: what a worker batches into one call, and the budget a crawl
keeps (at most 3 round trips per page, everything a worker does counted: pops, grants,
releases, links, the shared reservation cache, heartbeats and idle polling)."""

from __future__ import annotations

import itertools
import re
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest
import scrapy
from scrapy import signals
from scrapy.utils.test import get_crawler

from crawler.cluster.keys import JobKeys
from crawler.cluster.politeness import META_LEASE, ClusterPolitenessMiddleware
from crawler.cluster.scheduler import META_INFLIGHT, ClusterScheduler
from crawler.cluster.settings import cluster_settings
from crawler.cluster.worker import ClusterWorker
from crawler.demo.web import LocalWeb, Page, Site

from .conftest import seeded_url
from .test_cluster_crawl import _wired, start_worker, wait_all

ORIGIN = "http://127.0.0.1:8711"
#: The budget (issue 14): every round trip of every worker, divided by the pages collected.
MAX_ROUND_TRIPS_PER_PAGE = 3.0
#: The per-origin delay of the measured crawls (bench/cluster_bench.py's).
DELAY = 0.1


class Spider(scrapy.Spider):
    name = "corpus"

    def parse(self, response):
        yield from ()


def batching_worker(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A worker driven by hand as its engine would drive it (batching on; the flush timer
    is not needed here: each test says when the round trip happens)."""
    seeded_url(redis_url)
    settings = cluster_settings(redis_url, "t", "a")
    for key in ("DOWNLOADER_MIDDLEWARES", "EXTENSIONS"):
        settings.pop(key)
    crawler = get_crawler(Spider, {**settings, "POLITE_OUTPUT_DIR": str(tmp_path),
                                   "POLITE_CLUSTER_DELAY": 0.0})
    crawler.spider = Spider.from_crawler(crawler)
    sched = ClusterScheduler.from_crawler(crawler)
    sched.open(crawler.spider)
    monkeypatch.setattr(sched, "schedule_flush", lambda: None)
    mw = ClusterPolitenessMiddleware.from_crawler(crawler)
    worker = ClusterWorker.of(crawler)
    worker.batching = True
    return crawler, sched, mw, worker


def req(spider, path: str, **kw) -> scrapy.Request:
    return scrapy.Request(ORIGIN + path, callback=spider.parse, **kw)


def test_links_a_release_and_pops_share_one_round_trip(redis_url, rclient, tmp_path,
                                                       monkeypatch):
    crawler, sched, mw, worker = batching_worker(redis_url, tmp_path, monkeypatch)
    keys = JobKeys("t")
    dropped: list[str] = []
    crawler.signals.connect(lambda request, spider: dropped.append(request.url),
                            signal=signals.request_dropped, weak=False)
    assert mw.gate.try_acquire(ORIGIN, "a:1", delay=0, lease=60).granted
    answered = req(crawler.spider, "/answered")
    answered.meta[META_LEASE] = (ORIGIN, "a:1")
    before = worker.redis.calls
    mw._release(answered)                               # the response came: batched
    for path in ("/1", "/2", "/1"):                     # links found on the page
        assert sched.enqueue_request(req(crawler.spider, path))
    assert worker.redis.calls == before                 # nothing sent yet
    assert sched.has_pending_requests()                 # and the engine knows there is work
    first = sched.next_request()
    assert worker.redis.calls == before + 1             # one round trip for all of it
    assert rclient.hget(keys.origin(ORIGIN), "token") is None     # released
    assert first is not None and first.url == ORIGIN + "/1"
    assert dropped == [ORIGIN + "/1"]                   # the duplicate, as Scrapy drops it
    assert crawler.stats.get_value("scheduler/enqueued/redis") == 2
    second = sched.next_request()                       # popped ahead in the same call
    assert second.url == ORIGIN + "/2" and worker.redis.calls == before + 1
    assert rclient.hlen(keys.inflight("a")) == 2
    assert sched.next_request() is None
    worker.redis.close()


def test_a_grant_carries_the_outbox_and_the_next_pop(redis_url, tmp_path, monkeypatch):
    crawler, sched, mw, worker = batching_worker(redis_url, tmp_path, monkeypatch)
    assert sched.enqueue_request(req(crawler.spider, "/1"))
    request = sched.next_request()
    assert sched.enqueue_request(req(crawler.spider, "/2"))   # found meanwhile: batched
    before = worker.redis.calls
    grant = mw.gate.try_acquire(ORIGIN, "a:1", delay=0, lease=60,
                                inflight=request.meta[META_INFLIGHT])
    assert grant.granted and worker.redis.calls == before + 1
    assert sched.next_request().url == ORIGIN + "/2"          # popped with the grant
    assert worker.redis.calls == before + 1
    worker.redis.close()


def test_a_request_is_acknowledged_only_after_its_links_are_in_redis(redis_url, rclient,
                                                                     tmp_path, monkeypatch):
    crawler, sched, mw, worker = batching_worker(redis_url, tmp_path, monkeypatch)
    assert sched.enqueue_request(req(crawler.spider, "/1"))
    page = sched.next_request()
    assert sched.enqueue_request(req(crawler.spider, "/link"))   # batched
    worker.beat(all_done=True)        # the page is done: acknowledged, links pushed first
    keys = JobKeys("t")
    assert rclient.hlen(keys.inflight("a")) == 0
    queued = [sched.queue._decode_request(d).url
              for d in rclient.zrange(keys.requests, 0, -1)]
    assert queued == [ORIGIN + "/link"] and page.url == ORIGIN + "/1"
    worker.redis.close()


def test_popped_ahead_requests_are_never_acknowledged_before_the_engine_has_them(
        redis_url, rclient, tmp_path, monkeypatch):
    crawler, sched, mw, worker = batching_worker(redis_url, tmp_path, monkeypatch)
    for path in ("/1", "/2", "/3"):
        assert sched.enqueue_request(req(crawler.spider, path))
    sched.next_request()                                       # one handed out, two ahead
    worker.beat(all_done=True)
    keys = JobKeys("t")
    assert rclient.hlen(keys.inflight("a")) == 2          # the two kept for the engine
    assert sched.has_pending_requests()
    worker.redis.close()


# -- the budget, measured on a crawl ----------------------------------------------------------
def many_origins(origins: int, pages: int) -> LocalWeb:
    sites = []
    for n in range(origins):
        links = " ".join(f'<a href="/p/{i}.html">{i}</a>' for i in range(pages))
        content = {"/robots.txt": Page("User-agent: *\nDisallow: /nowhere/\n",
                                       content_type="text/plain"),
                   "/": Page(f"<html><head><title>o{n}</title></head><body>{links}</body>"
                             "</html>")}
        for i in range(pages):
            content[f"/p/{i}.html"] = Page(
                f"<html><head><title>o{n} {i}</title></head><body>"
                f'<a href="/p/{(i + 1) % pages}.html">next</a> <a href="/">home</a>'
                "</body></html>")
        sites.append(Site(f"o{n}", f"{pages} pages", content))
    return LocalWeb(sites).start()


def _stat(log: str, name: str) -> int:
    m = re.search(rf"'{re.escape(name)}': (\d+)", log)
    return int(m.group(1)) if m else 0


def _crawl(tmp_path: Path, redis_server, names: list[str], db: str, job: str):
    """bench/cluster_bench.py's "many origins" crawl by ``names`` workers: (pages, round
    trips, round trips by kind per worker, gaps between two requests to one origin)."""
    from crawler.cluster.connection import redis_client

    from ..integration.conftest import run_cli, write_config

    redis_url = redis_server.url[:-1] + db      # a database of its own
    client = redis_client(redis_url)
    client.flushdb()
    client.close()
    # bench/cluster_bench.py's "many origins" web: more origins than a worker's downloader
    # slots, as in a real crawl (where origins outnumber workers by far more)
    web = many_origins(origins=40, pages=12)
    try:
        cfg = write_config(
            tmp_path / "job.yaml", job=job, seeds=[web.origin(n) + "/" for n in web.sites],
            follow="same-host", cluster={"redis_url": redis_url},
            settings={"DOWNLOAD_DELAY": DELAY, "POLITE_CLUSTER_WORKER_TTL": 3,
                      "POLITE_CLUSTER_HEARTBEAT": 0.5, "POLITE_CLUSTER_IDLE_CLOSE": 1.0,
                      "CONCURRENT_REQUESTS": 16})
        seeded = run_cli("seed", str(cfg))
        assert seeded.returncode == 0, seeded.stderr
        logs = {n: tmp_path / f"{n}.log" for n in names}
        procs: dict[str, subprocess.Popen[bytes]] = {n: start_worker(cfg, n, logs[n])
                                                     for n in names}
        wait_all(procs, logs)
    finally:
        web.stop()
    assert all(p.returncode == 0 for p in procs.values())
    texts = {n: logs[n].read_text() for n in names}
    pages = sum(_stat(t, "polite/corpus/documents") for t in texts.values())
    calls = sum(_stat(t, "polite/cluster/redis_calls") for t in texts.values())
    kinds = {n: dict(re.findall(r"'polite/cluster/redis_calls/([^']+)': (\d+)", t))
             for n, t in texts.items()}
    by_site: dict[str, list[float]] = defaultdict(list)
    for r in web.requests:
        by_site[r.site].append(r.time)
    gaps = [b - a for ts in by_site.values() for a, b in itertools.pairwise(sorted(ts))]
    return pages, calls, kinds, gaps


@pytest.mark.skipif(not _wired(), reason="needs polite-crawl seed / run --worker")
def test_a_crawl_keeps_to_three_round_trips_per_page(tmp_path, redis_server):
    # one worker: its count has a margin (2.0-2.2 measured) that the load of a shared CI
    # machine does not eat
    pages, calls, kinds, gaps = _crawl(tmp_path, redis_server, ["w1"], "2", "rtt")
    delay = DELAY
    assert pages == 40 * 13                                     # every page, once
    assert calls / pages <= MAX_ROUND_TRIPS_PER_PAGE, (calls, pages, kinds)
    # and still polite: never two requests to an origin closer than the delay
    assert min(gaps) >= delay - 0.002


@pytest.mark.skipif(not _wired(), reason="needs polite-crawl seed / run --worker")
def test_three_workers_keep_to_three_round_trips_per_page(tmp_path, redis_server):
    """Three workers contend for the 40 origins (48 download slots): their gate tries are
    answered so that a try seldom comes back for nothing (a turn booked for the first told to
    wait, a grant made ahead for a send at the delay's end, the last lease's time as the
    holder's estimate): 2.7 round trips a page measured (3.3-3.4 before), gaps still never
    under the delay across the workers."""
    pages, calls, kinds, gaps = _crawl(tmp_path, redis_server, ["w1", "w2", "w3"], "3",
                                       "rtt3")
    assert pages == 40 * 13                                     # every page, once
    assert calls / pages <= MAX_ROUND_TRIPS_PER_PAGE, (calls, pages, kinds)
    assert min(gaps) >= DELAY - 0.002


def test_links_alone_wait_longer_for_a_round_trip_than_a_release(redis_url, tmp_path,
                                                                 monkeypatch):
    """A link waits up to LINKS_FLUSH_DELAY for the worker's next grant or pop to carry it
    (nobody waits for it); a release, which another worker may wait for, FLUSH_DELAY."""
    import scrapy.utils.asyncio

    from crawler.cluster import scheduler as scheduler_module

    crawler, sched, mw, worker = batching_worker(redis_url, tmp_path, monkeypatch)
    monkeypatch.undo()                                  # the real schedule_flush
    timers: list[tuple[float, object]] = []
    monkeypatch.setattr(scrapy.utils.asyncio, "call_later",
                        lambda delay, fn, *a: timers.append((delay, fn)))
    assert sched.enqueue_request(req(crawler.spider, "/1"))
    assert sched.enqueue_request(req(crawler.spider, "/2"))
    assert [d for d, _ in timers] == [scheduler_module.LINKS_FLUSH_DELAY]   # one timer
    assert mw.gate.try_acquire(ORIGIN, "a:1", delay=0, lease=60).granted   # carries them
    answered = req(crawler.spider, "/answered")
    answered.meta[META_LEASE] = (ORIGIN, "a:1")
    mw._release(answered)
    assert [d for d, _ in timers][1:] == [scheduler_module.FLUSH_DELAY]
    before = worker.redis.calls
    timers[0][1]()                      # the links' timer: what it was for has gone out
    assert worker.redis.calls == before
    worker.redis.close()
