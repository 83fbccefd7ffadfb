"""The revalidation spider: ask again, for every collected document, whether it may be kept.

Each URL goes through the same reservation stages as a crawl (site-level files fetched afresh,
registries asked again, headers and meta checked) with the same politeness; nothing is stored
and no link is followed. Decisions go to the revalidation's own audit log.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import scrapy
from scrapy.http import Response

from crawler.spiders.corpus import CorpusSpider


class RevalidateSpider(CorpusSpider):
    name = "revalidate"
    crawls = False

    def __init__(self, *args: Any, urls_file: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.urls_file = urls_file

    def _urls(self) -> Iterator[str]:
        with open(self.urls_file, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)

    async def start(self) -> AsyncIterator[Any]:
        for url in self._urls():
            yield scrapy.Request(url, callback=self.parse, dont_filter=True,
                                 meta={"handle_httpstatus_all": True})

    def parse(self, response: Response) -> list[Any]:
        return []
