"""Every ``POLITE_CLUSTER_*`` setting's default, made from the one settings table
(:mod:`crawler.config.table`, the rows of group "cluster").

Cluster mode is on when ``POLITE_CLUSTER_REDIS_URL`` is set (``cluster: {redis_url: ...}`` in a
job config). :func:`crawler.cluster.settings.cluster_settings` derives the rest of the Scrapy
settings a worker needs, including scrapy-redis's own names (``SCHEDULER_PERSIST`` ...), from
these. ``crawler.cluster.defaults.POLITE_CLUSTER_X`` is the table's default.
"""

from __future__ import annotations

from typing import Any

from crawler.config import table

globals().update(table.defaults("cluster"))


def __getattr__(name: str) -> Any:  # a name the table does not have: a clear AttributeError
    raise AttributeError(f"{name}: not a polite-crawler setting (see crawler/config/table.py)")
