"""Scrapy project settings (``scrapy.cfg`` points here).

The corpus spider loads its job config (``-a config=...``) and layers it on top of these.
"""

from crawler.crawl.defaults import SCRAPY_DEFAULTS

BOT_NAME = "polite-crawler"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"
ADDONS = {"crawler.addon.Addon": 100}

globals().update(SCRAPY_DEFAULTS)
