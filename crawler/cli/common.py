"""What the command modules share: the one-line usage error, the in-process crawl that
``run``, ``check``, ``demo``, ``survey`` and ``revalidate`` start, and the checks made before
it starts."""

from __future__ import annotations

import inspect
import logging
import sys
from pathlib import Path
from typing import Any

from crawler.audit.log import AuditLogError
from crawler.audit.runlock import RunLockError
from crawler.config.job import JobConfig
from crawler.extras import MissingExtra
from crawler.identity.keys import IdentityError, load_key


class UsageError(Exception):
    pass


#: ``check`` decides, it never collects, and ``revalidate`` re-checks what was collected: neither
#: ever pays (a 402 stays a refusal, as with no ``payment:`` in the config)
NEVER_PAY = {"POLITE_PAYMENT_MAX_PRICE": None, "POLITE_PAYMENT_BUDGET": None,
             "POLITE_PAYMENT_PER_ORIGIN_BUDGET": None}


def run_crawl(job: JobConfig, config_path: Path, *, spider: str = "corpus",
              extra_settings: dict[str, Any] | None = None, on_record: Any = None,
              **spider_kwargs: Any) -> dict[str, Any]:
    """Run one crawl in this process (the Twisted reactor runs once per process).

    Returns the crawl's stats; ``stats["polite-crawl/signal"]`` is the number of the first
    SIGINT/SIGTERM received (Scrapy's handling stands: the first one shuts the crawl down
    gracefully, a second one stops it at once). A run that cannot start because of its
    environment (another run holds the output_dir, an audit log that cannot be continued, a
    directory that cannot be written) raises :class:`UsageError` with one line.
    """
    # lazy: Scrapy and Twisted (and our spiders, which import them) take ~0.5 s to load and
    # only the commands that crawl need them
    from scrapy.crawler import CrawlerProcess
    from scrapy.settings import Settings

    from crawler.spiders.check import CheckSpider
    from crawler.spiders.corpus import CorpusSpider
    from crawler.spiders.revalidate import RevalidateSpider
    from crawler.spiders.survey import SurveySpider

    received: list[int] = []

    class Process(CrawlerProcess):
        # observe Scrapy's shutdown handlers (installed once the reactor runs)
        def _signal_shutdown(self, signum: int, frame: Any) -> None:
            received.append(signum)
            super()._signal_shutdown(signum, frame)

        def _signal_kill(self, signum: int, frame: Any) -> None:
            received.append(signum)
            super()._signal_kill(signum, frame)

    settings = Settings()
    settings.setmodule("crawler.settings", priority="project")
    if extra_settings:
        settings.setdict(extra_settings, priority="cmdline")
    process = Process(settings)
    cls = {"check": CheckSpider, "survey": SurveySpider,
           "revalidate": RevalidateSpider}.get(spider, CorpusSpider)
    crawler = process.create_crawler(cls)
    if on_record is not None:
        # every committed record, in order, as the decision_recorded signal gives it (a direct
        # listener of the funnel: pydispatch's dispatch cost ~7 us a record); an on_record
        # with two parameters is given the record's line as written too
        wants_line = len(inspect.signature(on_record).parameters) >= 2
        crawler.polite_record_listeners = [
            on_record if wants_line else (lambda record, line: on_record(record))]
    refused: list[BaseException] = []

    def environment_problem(failure: Any) -> Any:
        # raised while the crawler builds its extensions (PoliteRuntime): one line, exit 2
        if failure.check(RunLockError, AuditLogError, OSError, MissingExtra):
            refused.append(failure.value)
            return None
        return failure

    from scrapy import signals

    root_level = logging.getLogger().level
    crawler.signals.connect(skip_records_no_handler_takes, signal=signals.engine_started)
    process.crawl(crawler, config=str(config_path), **spider_kwargs).addErrback(
        environment_problem)
    try:
        process.start()
    finally:
        if logging.getLogger().level != root_level:  # (raised by us: as it was for the caller)
            logging.getLogger().setLevel(root_level)
    if refused:
        exc = refused[0]
        if isinstance(exc, OSError) and not isinstance(exc, RunLockError):
            where = f"{exc.filename}: " if exc.filename else ""
            raise UsageError(f"cannot start the crawl: {where}{exc.strerror or exc}")
        raise UsageError(str(exc))
    stats = dict(crawler.stats.get_stats()) if crawler.stats else {}
    if received:
        stats["polite-crawl/signal"] = received[0]
    elif not stats.get("finish_reason"):
        print("polite-crawl: the crawl did not run to its end (see the log above)",
              file=sys.stderr)
    return stats




def skip_records_no_handler_takes() -> None:
    """The root logger's level raised to the lowest level of the handlers in the process
    (Scrapy's root handler at ``LOG_LEVEL``, and any other), so that a line no handler would
    write is not built at all: Scrapy sets the root logger to NOTSET and filters in its
    handler, so each page's DEBUG lines ("Crawled", "Scraped from") are built, formatted
    nowhere and dropped. Nothing that a handler would write is lost; a level set on a logger
    of its own is kept. Our commands only (their process is ours): the add-on in another
    project leaves its logging alone."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    for lg in list(logging.root.manager.loggerDict.values()):
        if isinstance(lg, logging.Logger):
            handlers += lg.handlers
    # (a library's NullHandler, the logging HOWTO's advice, writes nothing)
    levels = [h.level for h in handlers if not isinstance(h, logging.NullHandler)]
    if levels and root.level < min(levels):
        root.setLevel(min(levels))


def check_identity(job: JobConfig) -> None:
    """Before Scrapy starts: the configured signing key can be used (one line otherwise)."""
    if job.identity_key_file is None:
        return
    try:
        load_key(job.identity_key_file)
    except IdentityError as exc:
        raise UsageError(f"identity.key_file: {exc}") from None
