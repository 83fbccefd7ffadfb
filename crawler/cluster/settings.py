"""The Scrapy settings of one cluster worker.

:func:`cluster_settings` returns all of them as a plain dict; :func:`apply_cluster_settings`
layers them onto a crawler's ``Settings`` (merging the component dicts instead of replacing
them, and moving the job's ``DOWNLOAD_DELAY`` into ``POLITE_CLUSTER_DELAY``).
"""

from __future__ import annotations

from typing import Any

from crawler.cluster import defaults
from crawler.cluster.connection import check_redis_url
from crawler.cluster.keys import JobKeys, check_name

SCHEDULER = "crawler.cluster.scheduler.ClusterScheduler"
DUPEFILTER = "scrapy_redis.dupefilter.RFPDupeFilter"
POLITENESS = "crawler.cluster.politeness.ClusterPolitenessMiddleware"
WORKER = "crawler.cluster.worker.ClusterWorker"
#: The runtime's parts that have a cluster variant (crawler.crawl.runtime loads each from its
#: POLITE_*_CLASS setting): the per-origin file cache, the HTTP registry clients and the
#: pay-per-crawl ledger, all shared by the job's workers through Redis.
SITECACHE = "crawler.cluster.store.SharedSiteCache"
HTTP_REGISTRY = "crawler.cluster.store.SharedHttpRegistry"
PAYMENT_LEDGER = "crawler.cluster.store.SharedLedger"
#: After every other downloader middleware on the way out (HttpCacheMiddleware is 900),
#: before them on the way back: the lease is held for the network transfer only.
POLITENESS_ORDER = 950
#: Built before the runtime extension (order 0): the worker name is claimed in Redis before
#: the worker's audit log is opened, so a duplicate name never touches the live worker's log
#: (every component gets the worker through ClusterWorker.of, whatever the order).
WORKER_ORDER = -10

#: Settings that are component dicts (merged, not replaced, by apply_cluster_settings).
_COMPONENT_DICTS = ("DOWNLOADER_MIDDLEWARES", "EXTENSIONS")


def cluster_enabled(settings: Any) -> bool:
    """Cluster mode is on when ``POLITE_CLUSTER_REDIS_URL`` is set."""
    return bool(settings.get("POLITE_CLUSTER_REDIS_URL"))


def output_names(worker: str) -> dict[str, str]:
    """Per-worker output file names (inside the job's output directory)."""
    check_name(worker, "worker")
    return {
        "POLITE_AUDIT_FILE": f"audit-{worker}.jsonl",
        "POLITE_CORPUS_FILE": f"corpus-{worker}.jsonl",
        "POLITE_PROVENANCE_FILE": f"provenance-{worker}.jsonl",
        "POLITE_WARC_FILE": f"corpus-{worker}.warc.gz",
        "POLITE_RUN_FILE": f"run-{worker}.json",
        # links and requests kept while Redis cannot take them (pushed when it can)
        "POLITE_CLUSTER_SPOOL_FILE": f"spool-{worker}.jsonl",
    }


def cluster_settings(redis_url: str, job: str, worker: str, *,
                     download_delay: float = defaults.POLITE_CLUSTER_DELAY) -> dict[str, Any]:
    """Every Scrapy setting one worker of ``job`` needs.

    ``download_delay`` is the job's per-origin delay (its ``DOWNLOAD_DELAY``): cluster mode
    enforces it across all workers (``POLITE_CLUSTER_DELAY``) and sets Scrapy's local
    ``DOWNLOAD_DELAY`` to 0, since a local delay on top could only shift a granted send.
    """
    check_redis_url(redis_url)
    keys = JobKeys(job)
    check_name(worker, "worker")
    return {
        # ours
        "POLITE_CLUSTER_REDIS_URL": redis_url,
        "POLITE_CLUSTER_JOB": job,
        "POLITE_CLUSTER_WORKER": worker,
        "POLITE_CLUSTER_DELAY": float(download_delay),
        **output_names(worker),
        # the runtime's shared parts (crawler/cluster/store.py)
        "POLITE_SITECACHE_CLASS": SITECACHE,
        "POLITE_HTTP_REGISTRY_CLASS": HTTP_REGISTRY,
        "POLITE_PAYMENT_LEDGER_CLASS": PAYMENT_LEDGER,
        "DOWNLOADER_MIDDLEWARES": {POLITENESS: POLITENESS_ORDER},
        "EXTENSIONS": {WORKER: WORKER_ORDER},
        # scrapy-redis's scheduler and duplicate filter (ClusterScheduler passes the keys
        # and the client itself; the scrapy-redis names are set too, for its other helpers
        # and for anyone reading the settings)
        "SCHEDULER": SCHEDULER,
        "DUPEFILTER_CLASS": DUPEFILTER,
        "SCHEDULER_PERSIST": True,
        "SCHEDULER_FLUSH_ON_START": False,
        "SCHEDULER_QUEUE_KEY": keys.requests,
        "SCHEDULER_DUPEFILTER_KEY": keys.dupefilter,
        "REDIS_START_URLS_KEY": keys.start_urls,
        "REDIS_URL": redis_url,
        # Scrapy: the shared gate is the only per-origin delay
        "DOWNLOAD_DELAY": 0.0,
        "DOWNLOAD_DELAY_JITTER": 0.0,
        "AUTOTHROTTLE_ENABLED": False,
    }


def apply_cluster_settings(settings: Any, redis_url: str, job: str, worker: str, *,
                           priority: str = "spider") -> None:
    """Layer :func:`cluster_settings` onto ``settings`` (a Scrapy ``BaseSettings``): the
    job's current ``DOWNLOAD_DELAY`` becomes the cluster delay, component dicts are merged."""
    delay = settings.getfloat("DOWNLOAD_DELAY", defaults.POLITE_CLUSTER_DELAY)
    values = cluster_settings(redis_url, job, worker, download_delay=delay)
    for name in _COMPONENT_DICTS:
        for component, order in values.pop(name).items():
            settings[name][component] = order
    settings.setdict(values, priority=priority)
