"""Cluster mode: several worker processes crawl one job through Redis and stay polite as one.

On top of scrapy-redis (shared request queue and duplicate filter), one module per Scrapy
extension point it adds or replaces, all settings in :mod:`crawler.cluster.defaults`:

* :mod:`~crawler.cluster.scheduler` — ``SCHEDULER``: scrapy-redis's scheduler and duplicate
  filter, per job, with requests in flight kept until finished (a killed worker's go back),
  and a local spool for what Redis cannot take (the queue and the spool:
  :mod:`~crawler.cluster.queue`);
* :mod:`~crawler.cluster.politeness` — ``DOWNLOADER_MIDDLEWARES``: per-origin delay and
  concurrency 1 for the whole cluster, one atomic Lua script per grant (the gate's client:
  :mod:`~crawler.cluster.gate`);
* :mod:`~crawler.cluster.scripts` — the Lua scripts of the gate and the queue;
* :mod:`~crawler.cluster.store` — the runtime's ``SiteCache``: per-origin files and registry
  answers fetched once per cluster per expiry, shared as raw bytes with their hashes (the
  authenticated entries in Redis: :mod:`~crawler.cluster.sitestore`);
* :mod:`~crawler.cluster.worker` — ``EXTENSIONS``: presence, heartbeat, idle and close;
* :mod:`~crawler.cluster.state` — the job's epoch (is its state in Redis to be trusted?) and
  liveness from evidence (a worker is dead only if Redis answered others meanwhile);
* :mod:`~crawler.cluster.seeds` — start URLs (``polite-crawl seed``);
* :mod:`~crawler.cluster.restore` — ``polite-crawl seed --restore``: the job's Redis state
  rebuilt from the workers' audit logs, corpora and spools after Redis lost it;
* :mod:`crawler.audit.merge` (in the audit layer: it needs no Redis) — one time-ordered
  report from the workers' audit logs;
* :mod:`~crawler.cluster.settings` — every setting a worker needs.

Keys live under ``polite:<job>:`` (:mod:`~crawler.cluster.keys`).

Importing this package imports neither redis nor scrapy-redis (the [cluster] extra): the
modules that need them (connection, scheduler, queue, politeness, gate, store, sitestore,
worker) are imported only in cluster mode, so that ``audit verify`` and ``audit merge`` work
without the extra; the names below are loaded on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["apply_cluster_settings", "cluster_enabled", "cluster_settings", "require_cluster"]


def require_cluster(what: str = "cluster mode") -> None:
    """Cluster mode needs the [cluster] extra (redis, scrapy-redis): raise
    :class:`~crawler.extras.MissingExtra` (one line) when it is not installed, before anything
    is opened, rather than a ModuleNotFoundError from deep inside a crawl."""
    from crawler.extras import require

    require("redis", "cluster", what)
    require("scrapy_redis", "cluster", what)


def __getattr__(name: str) -> Any:
    if name in ("apply_cluster_settings", "cluster_enabled", "cluster_settings"):
        require_cluster()
        from crawler.cluster import settings

        return getattr(settings, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
