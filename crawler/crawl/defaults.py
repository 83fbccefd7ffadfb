"""Every ``POLITE_*`` setting's default, made from the one settings table
(:mod:`crawler.config.table`: name, type, range, default, one-line doc, YAML key), and the
Scrapy settings a polite crawl starts from.

``crawler.crawl.defaults.POLITE_X`` is the table's default of ``POLITE_X`` (the crawl group;
the cluster group's are in :mod:`crawler.cluster.defaults`). A Scrapy project that enables
:class:`crawler.addon.Addon` may override any of them in its own settings (the add-on sets the
unset ones at ``default`` priority); ``polite-crawl run`` derives them from the YAML config
(:mod:`crawler.config.job`). To add a setting, add a row to the table.
"""

from __future__ import annotations

from typing import Any

from crawler.config import table

globals().update(table.defaults("crawl"))

#: A job config's ``collect:`` when absent, and the Scrapy settings a polite crawl starts from
#: (both kept in the table's module, which the pure job config reads too).
COLLECT_DEFAULT = table.COLLECT_DEFAULT
SCRAPY_DEFAULTS = table.SCRAPY_DEFAULTS


def __getattr__(name: str) -> Any:  # a name the table does not have: a clear AttributeError
    raise AttributeError(f"{name}: not a polite-crawler setting (see crawler/config/table.py)")
