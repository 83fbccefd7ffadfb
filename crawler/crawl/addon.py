"""A Scrapy add-on that installs polite-crawler into any Scrapy project.

In the project's ``settings.py``::

    ADDONS = {"crawler.addon.Addon": 100}
    POLITE_USER_AGENT = "MyBot/1.0 (+https://example.org/bot)"
    POLITE_OUTPUT_DIR = "polite/%(name)s"

It disables Scrapy's own ``RobotsTxtMiddleware`` (one robots path: ours) and enables the
runtime extension, the reservation and Retry-After middlewares and the item provenance
spider middleware (:mod:`crawler.crawl.provenance`); the corpus writer only with
``POLITE_CORPUS_ENABLED = True`` (the corpus spider sets it). The README's "Use it from
another Scrapy project" has the lines a project needs (tests/integration/test_addon_project.py
runs them).

Every ``POLITE_*`` setting the project leaves unset gets its default from the one settings
table (:mod:`crawler.config.table`), at ``default`` priority; every value is checked against
the table when the crawl starts (:func:`crawler.config.job.check_settings`, from
:func:`crawler.crawl.runtime.policy_from_settings`): a bad one stops the crawl with one line
naming the setting and its job config key.
"""

from __future__ import annotations

from typing import Any

from crawler.config import table

RUNTIME = "crawler.crawl.runtime.PoliteRuntime"
RESERVATIONS = "crawler.crawl.reservation.ReservationMiddleware"
RETRY_AFTER = "crawler.crawl.retry_after.RetryAfterMiddleware"
INTEGRITY = "crawler.crawl.integrity.ContentIntegrityMiddleware"
WRITE_AHEAD = "crawler.crawl.write_ahead.WriteAheadMiddleware"
CORPUS = "crawler.crawl.pipelines.CorpusWriterPipeline"
PDF_TEXT = "crawler.crawl.pipelines.PdfTextPipeline"
PREFETCH = "crawler.crawl.registries.RegistryPrefetchMiddleware"
WARC = "crawler.crawl.warc.WarcWriterPipeline"
RECRAWL = "crawler.crawl.recrawl.RecrawlMiddleware"
SIGN = "crawler.crawl.signing.SignRequestsMiddleware"
SCRAPY_ROBOTS = "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware"
PROVENANCE = "crawler.crawl.provenance.ItemProvenanceMiddleware"


class Addon:
    def update_settings(self, settings: Any) -> None:
        settings.set("ROBOTSTXT_OBEY", False, "addon")
        settings["DOWNLOADER_MIDDLEWARES"][SCRAPY_ROBOTS] = None
        # 100: where Scrapy's robots middleware sits, before every other downloader
        # middleware's process_request and after all of them on the way back.
        settings["DOWNLOADER_MIDDLEWARES"][RESERVATIONS] = 100
        # 50: a resumed run replays what it had before anything is asked; a re-crawl turns a
        # 304 (recorded by the reservation middleware) into the stored page for its links
        settings["DOWNLOADER_MIDDLEWARES"][RECRAWL] = 50
        # 560: sees 429/503 before RetryMiddleware (550) schedules the retry.
        settings["DOWNLOADER_MIDDLEWARES"][RETRY_AFTER] = 560
        # 595: between HttpCompressionMiddleware (590) and RedirectMiddleware (600): decodes
        # final responses strictly and notes cut or undecodable bodies (fail closed)
        settings["DOWNLOADER_MIDDLEWARES"][INTEGRITY] = 595
        # 990: after every other process_request (the cluster gate's grant at 950 included):
        # the write-ahead record of each request that leaves
        settings["DOWNLOADER_MIDDLEWARES"][WRITE_AHEAD] = 990
        # 980: just before the write-ahead record (990): signs the request as it leaves (Web
        # Bot Auth; off unless POLITE_IDENTITY_KEY_FILE and POLITE_IDENTITY_SIGNATURE_AGENT are
        # set); retries and redirect hops pass again and are signed afresh
        settings["DOWNLOADER_MIDDLEWARES"][SIGN] = 980
        settings["EXTENSIONS"][RUNTIME] = 0
        settings["SPIDER_MIDDLEWARES"][PREFETCH] = 900
        # 990: next to the spider, so the items its callbacks yield carry the provenance of
        # their response's allow decision before any other spider middleware sees them
        settings["SPIDER_MIDDLEWARES"][PROVENANCE] = 990
        # the corpus pipeline runs only when asked: the corpus spider (polite-crawl run) asks;
        # a project's own items go to its own pipelines and feeds, never dropped by us
        if settings.getbool("POLITE_CORPUS_ENABLED", table.default("POLITE_CORPUS_ENABLED")):
            settings["ITEM_PIPELINES"][CORPUS] = 800
            # 600: a collected PDF's text, off the reactor thread, before the WARC and corpus
            settings["ITEM_PIPELINES"][PDF_TEXT] = 600
        if settings.getbool("POLITE_WARC", table.default("POLITE_WARC")):
            settings["ITEM_PIPELINES"][WARC] = 700  # before the corpus writer
        ua = settings.get("POLITE_USER_AGENT")
        if ua:
            settings.set("USER_AGENT", ua, settings.getpriority("POLITE_USER_AGENT"))
        for name, value in table.defaults("crawl").items():
            if settings.get(name) is None:
                settings.set(name, value, "default")
