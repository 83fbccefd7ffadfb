"""The check spider behind ``polite-crawl check``: decide, never collect.

Each URL goes through the same reservation stages as a crawl; nothing is stored (the corpus
pipeline is off and the audit log goes to a temporary directory). With ``no_fetch`` only the
site-level signals are consulted and the URL itself is never requested.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import scrapy
from scrapy.http import Response

from crawler.middlewares import META_NO_FETCH
from crawler.spiders.corpus import CorpusSpider


class CheckSpider(CorpusSpider):
    name = "check"

    def __init__(self, *args: Any, urls: str = "[]", no_fetch: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.urls = json.loads(urls) if isinstance(urls, str) else list(urls)
        self.no_fetch = bool(no_fetch)

    async def start(self) -> AsyncIterator[Any]:
        for url in self.urls:
            yield scrapy.Request(url, callback=self.parse, dont_filter=True,
                                 meta={META_NO_FETCH: self.no_fetch})

    def start_requests(self):
        for url in self.urls:
            yield scrapy.Request(url, callback=self.parse, dont_filter=True,
                                 meta={META_NO_FETCH: self.no_fetch})

    def parse(self, response: Response):
        return []
