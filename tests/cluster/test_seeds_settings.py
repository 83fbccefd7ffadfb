"""Seeding helpers and the settings a worker runs with."""

from __future__ import annotations

import json

import pytest
import scrapy
from scrapy.settings import Settings
from scrapy.utils.test import get_crawler

from crawler.cluster import apply_cluster_settings, cluster_enabled, cluster_settings
from crawler.cluster.keys import JobKeys
from crawler.cluster.seeds import (
    META_SEED,
    job_status,
    pop_seed_requests,
    push_seeds,
    request_from_data,
    reset_job,
)
from crawler.cluster.worker import ClusterWorker

from .conftest import seeded


class Spider(scrapy.Spider):
    name = "corpus"

    def parse(self, response):
        yield from ()


def test_push_seeds_in_scrapy_redis_format_without_duplicates(rclient):
    n = push_seeds(rclient, "job1", ["http://a/", "http://b/", "http://a/"])
    assert n == 2
    raw = rclient.lrange("polite:job1:start_urls", 0, -1)
    assert [json.loads(x) for x in raw] == [{"url": "http://a/"}, {"url": "http://b/"}]


def test_workers_pop_disjoint_batches(redis_url, rclient):
    push_seeds(rclient, "t", [f"http://127.0.0.1:1/{i}" for i in range(5)])
    seeded(rclient)
    crawlers = []
    for name in ("a", "b"):
        c = get_crawler(Spider, {"POLITE_CLUSTER_REDIS_URL": redis_url,
                                 "POLITE_CLUSTER_JOB": "t", "POLITE_CLUSTER_WORKER": name,
                                 "POLITE_CLUSTER_SEED_BATCH": 3})
        c.spider = Spider.from_crawler(c)
        crawlers.append(c)
    got = [pop_seed_requests(ClusterWorker.of(c), c.spider) for c in crawlers]
    assert [len(g) for g in got] == [3, 2]
    urls = [r.url for g in got for r in g]
    assert sorted(urls) == sorted(set(urls))
    r = got[0][0]
    assert r.callback == crawlers[0].spider.parse and r.meta[META_SEED]
    assert not r.dont_filter  # a seed goes through the shared duplicate filter
    assert pop_seed_requests(ClusterWorker.of(crawlers[0]), crawlers[0].spider) == []


@pytest.mark.parametrize("data, url", [
    (b'{"url": "http://x/a"}', "http://x/a"),
    (b"http://x/b", "http://x/b"),
    (b'{"url": "ftp://x/"}', None),
    (b"{broken", None),
    (b'{"meta": {}}', None),
])
def test_start_url_entries(data, url):
    r = request_from_data(data, Spider())
    assert (r.url if r else None) == url


def test_reset_job_deletes_only_that_job_and_not_while_workers_live(rclient):
    push_seeds(rclient, "one", ["http://a/"])
    push_seeds(rclient, "two", ["http://b/"])
    rclient.sadd(JobKeys("one").dupefilter, "fp")
    assert job_status(rclient, "one")["start_urls"] == 1
    rclient.set(JobKeys("one").alive("w1"), 1)
    with pytest.raises(RuntimeError, match="live workers"):
        reset_job(rclient, "one")
    rclient.delete(JobKeys("one").alive("w1"))
    assert reset_job(rclient, "one") == 2
    assert rclient.llen(JobKeys("two").start_urls) == 1


def test_cluster_settings_name_everything_a_worker_needs():
    s = cluster_settings("redis://127.0.0.1:6379/2", "news", "w2", download_delay=2.5)
    assert s["SCHEDULER"] == "crawler.cluster.scheduler.ClusterScheduler"
    assert s["DUPEFILTER_CLASS"] == "scrapy_redis.dupefilter.RFPDupeFilter"
    assert s["SCHEDULER_PERSIST"] is True
    assert s["REDIS_URL"] == s["POLITE_CLUSTER_REDIS_URL"] == "redis://127.0.0.1:6379/2"
    assert s["SCHEDULER_QUEUE_KEY"] == "polite:news:requests"
    assert s["SCHEDULER_DUPEFILTER_KEY"] == "polite:news:dupefilter"
    assert s["REDIS_START_URLS_KEY"] == "polite:news:start_urls"
    assert s["DOWNLOADER_MIDDLEWARES"] == {
        "crawler.cluster.politeness.ClusterPolitenessMiddleware": 950}
    # built before the runtime (0): the worker name is claimed before the audit log opens
    assert s["EXTENSIONS"] == {"crawler.cluster.worker.ClusterWorker": -10}
    assert (s["POLITE_CLUSTER_DELAY"], s["DOWNLOAD_DELAY"]) == (2.5, 0.0)
    assert s["POLITE_AUDIT_FILE"] == "audit-w2.jsonl"
    assert s["POLITE_CORPUS_FILE"] == "corpus-w2.jsonl"
    assert s["AUTOTHROTTLE_ENABLED"] is False


def test_apply_cluster_settings_merges_components_and_moves_the_delay():
    settings = Settings({"DOWNLOAD_DELAY": 3.0,
                         "DOWNLOADER_MIDDLEWARES": {"my.Middleware": 500}})
    assert not cluster_enabled(settings)
    apply_cluster_settings(settings, "redis://127.0.0.1:6379/0", "news", "w1")
    assert cluster_enabled(settings)
    mws = settings.getdict("DOWNLOADER_MIDDLEWARES")
    assert mws["my.Middleware"] == 500
    assert mws["crawler.cluster.politeness.ClusterPolitenessMiddleware"] == 950
    assert settings.getfloat("POLITE_CLUSTER_DELAY") == 3.0
    assert settings.getfloat("DOWNLOAD_DELAY") == 0.0


@pytest.mark.parametrize("url, job, worker, match", [
    ("http://127.0.0.1:6379", "j", "w", "redis://"),
    ("redis://127.0.0.1:6379", "a job", "w", "job"),
    ("redis://127.0.0.1:6379", "j", "w:1", "worker"),
    ("redis://127.0.0.1:6379", "j%s", "w", "job"),
])
def test_bad_names_are_refused(url, job, worker, match):
    with pytest.raises(ValueError, match=match):
        cluster_settings(url, job, worker)
