"""A Scrapy extension the benchmarks give both crawlers alike: CPU time and memory in the stats.

``bench/cpu_seconds`` is the CPU time (user + system) of the crawler process from
``engine_started`` to ``spider_closed``, so process start-up (imports, config) is left out, as
Scrapy's own ``elapsed_time_seconds`` leaves it out. CPU time is much less sensitive than wall
time to other processes on a shared machine, so the benchmarks print both.

``bench/maxrss_kib`` is the process's peak resident set size; with ``BENCH_RSS_EVERY`` (a
number of responses) ``bench/rss`` lists ``[responses, RSS MiB]`` samples along the crawl.
"""

from __future__ import annotations

import resource
import time

from scrapy import signals


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize() / 2**20


class CpuStats:
    def __init__(self, crawler) -> None:
        self.stats = crawler.stats
        self._cpu0 = None
        self.every = crawler.settings.getint("BENCH_RSS_EVERY", 0)
        self.responses = 0
        self.samples: list[list[float]] = []
        crawler.signals.connect(self._started, signal=signals.engine_started)
        crawler.signals.connect(self._closed, signal=signals.spider_closed)
        if self.every:
            crawler.signals.connect(self._response, signal=signals.response_received)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def _started(self) -> None:
        self._cpu0 = time.process_time()

    def _response(self, *args, **kwargs) -> None:
        self.responses += 1
        if self.responses % self.every == 0:
            self.samples.append([self.responses, round(rss_mib(), 1)])

    def _closed(self, spider, reason) -> None:
        if self._cpu0 is not None:
            self.stats.set_value("bench/cpu_seconds", round(time.process_time() - self._cpu0, 4))
        self.stats.set_value("bench/maxrss_kib",
                             resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        if self.samples:
            self.stats.set_value("bench/rss", self.samples)
