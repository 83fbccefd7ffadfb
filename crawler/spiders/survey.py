"""The survey spider behind ``polite-crawl survey ORIGINS --out FILE``: measure, never collect.

For each origin, through the same polite stack as a crawl (our User-Agent, per-origin slots and
delays, robots.txt obeyed for the homepage fetch, the network guard): robots.txt,
``/.well-known/tdmrep.json``, ``/ai.txt``, the RSL licences they or the homepage name, and the
homepage's headers and ``<head>``. One JSON line per origin (:func:`crawler.survey.analysis.analyse_origin`)
is appended and flushed as soon as the origin is done, so a re-run skips what is there
(``retry_failed``: except the origins whose last record failed,
:func:`crawler.survey.analysis.record_failed`; ``force``: nothing is skipped; a report keeps each
origin's last record).  Every record carries
the wave's date (``wave``, decided by ``polite-crawl survey``).  The survey's own audit log (its
homepage fetches) goes to ``<out>.audit/``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import scrapy
from scrapy.http import Response

from crawler.config.job import DEFAULT_CONFIG, JobConfig, load_config
from crawler.crawl.addon import Addon
from crawler.crawl.meta import origin_of
from crawler.crawl.runtime import get_runtime
from crawler.optout import rsl
from crawler.optout.htmlmeta import parse_html_head
from crawler.survey.agents import load_agents
from crawler.survey.analysis import HomepageFetch, analyse_origin, record_failed


def read_origins(path: Path) -> list[str]:
    """Origins or domains, one a line, ``#`` comments; a domain becomes ``https://DOMAIN``."""
    out: list[str] = []
    seen: set[str] = set()
    for raw in path.read_text(encoding="utf-8-sig").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        url = line if "://" in line else f"https://{line}"
        origin = origin_of(scrapy.Request(url))
        if origin not in seen:
            seen.add(origin)
            out.append(origin)
    return out


def surveyed_origins(out: Path, *, retry_failed: bool = False) -> set[str]:
    """The origins ``out`` has a record of (``retry_failed``: whose last record did not
    fail)."""
    failed: dict[str, bool] = {}
    if out.exists():
        for line in out.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
                failed[record["origin"]] = record_failed(record)
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # a line cut by a killed run: that origin is surveyed again
    return {origin for origin, bad in failed.items() if not (retry_failed and bad)}


class SurveySpider(scrapy.Spider):
    name = "survey"
    job: JobConfig

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, config: str | None = None,
                     origins: str = "", out: str = "", wave: dict[str, Any] | None = None,
                     retry_failed: bool = False, force: bool = False,
                     **kwargs: Any) -> SurveySpider:
        job = load_config(config or DEFAULT_CONFIG)
        out_path = Path(out).resolve()
        settings = job.scrapy_settings()
        settings.update({
            "POLITE_SIGNALS": ["robots"],          # robots.txt decides the homepage fetch
            "POLITE_OUTPUT_DIR": str(out_path) + ".audit",
            "POLITE_CORPUS_ENABLED": False,
            "POLITE_UNDECIDED_RETRIES": 0,
            "POLITE_REGISTRIES": [],
            "POLITE_SCOPE": {},                   # the survey asks for each origin's home page
            "POLITE_SITEMAPS": None,
            "CLOSESPIDER_ITEMCOUNT": 0,
            "DEPTH_LIMIT": 0,
        })
        crawler.settings.setdict(settings, priority="spider")
        crawler.settings["ADDONS"][Addon] = 100
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.job = job
        spider.out_path = out_path
        spider.origins = read_origins(Path(origins))
        spider.agents = load_agents()
        spider.wave = wave
        spider.retry_failed = retry_failed
        spider.force = force
        return spider

    async def start(self) -> AsyncIterator[Any]:
        done = (set() if self.force
                else surveyed_origins(self.out_path, retry_failed=self.retry_failed))
        self.todo = [o for o in self.origins if o not in done]
        self.finished = 0
        self.started = time.monotonic()
        self._fh = self._open_out()
        if done:
            self.logger.info("survey: %d origins already in %s, %d to go", len(done),
                             self.out_path, len(self.todo))
        for origin in self.todo:
            yield scrapy.Request(origin + "/", callback=self.homepage, errback=self.no_homepage,
                                 dont_filter=True,
                                 meta={"survey_origin": origin, "handle_httpstatus_all": True,
                                       "dont_redirect": False})

    def _open_out(self) -> Any:
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        return open(self.out_path, "a", encoding="utf-8")

    async def homepage(self, response: Response) -> AsyncIterator[Any]:
        headers = {k.decode("latin-1").lower(): [v.decode("latin-1") for v in vs]
                   for k, vs in response.headers.items()}
        home = HomepageFetch(status=response.status, headers=headers, body=response.body)
        await self._finish(response.meta["survey_origin"], home, headers, response.body)
        return
        yield  # an async generator: nothing is collected

    async def no_homepage(self, failure: Any) -> AsyncIterator[Any]:
        request = failure.request
        await self._finish(request.meta["survey_origin"], None, {}, b"",
                           why=f"{type(failure.value).__name__}: {failure.value}")
        return
        yield

    async def _finish(self, origin: str, home: HomepageFetch | None,
                      headers: dict[str, list[str]], body: bytes, why: str | None = None) -> None:
        cache = get_runtime(self.crawler).sitecache
        robots = await cache.get(origin, "robots.txt")
        tdm = await cache.get(origin, "tdmrep.json")
        ai_txt = await cache.get(origin, "ai.txt")
        names: list[str] = []
        if robots.parsed is not None:
            names += [u for u, _ in rsl.license_urls_from_robots(robots.parsed, robots.url)]
        names += list(rsl.license_urls_from_link_header(headers.get("link", []), origin + "/"))
        if body and home is not None:
            for link in parse_html_head(body).links_with_rel("license"):
                names += rsl.license_urls_from_link_header(
                    f'<{link.href}>; rel="license"; type="{link.type or ""}"', origin + "/")
        licences = {u: await cache.get_url("rsl", u) for u in dict.fromkeys(names)}
        when = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        record = analyse_origin(origin, surveyed_at=when, robots=robots, tdmrep=tdm,
                                ai_txt=ai_txt, licences=licences, homepage=home,
                                agents=self.agents, wave=self.wave)
        if why is not None:
            record["homepage_error"] = why
        self._fh.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        self._fh.flush()
        self.finished += 1
        self.crawler.stats.inc_value("polite/survey/origins")
        self._progress()

    def _progress(self) -> None:
        total = len(self.todo)
        rate = self.finished / max(time.monotonic() - self.started, 1e-6)
        eta = (total - self.finished) / rate if rate else 0
        line = f"survey: {self.finished}/{total} origins, {rate:.1f}/s, ETA {eta:.0f} s"
        if sys.stderr.isatty():
            end = "\n" if self.finished == total else ""
            print(f"\r{line}   ", end=end, file=sys.stderr, flush=True)
        elif self.finished == total or self.finished % 100 == 0:
            self.logger.info(line)

    def closed(self, reason: str) -> None:
        fh = getattr(self, "_fh", None)
        if fh is not None:
            fh.close()
