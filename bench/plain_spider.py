"""The baseline: a plain Scrapy spider (ROBOTSTXT_OBEY=True) that follows every link.

``-a seed=URL`` (one start URL) or ``-a seeds_file=PATH`` (one start URL a line: the broad
crawl benchmark's 100,000 origins).
"""

import scrapy


class PlainSpider(scrapy.Spider):
    name = "plain"

    def __init__(self, seed: str = "", seeds_file: str = "", **kwargs):
        super().__init__(**kwargs)
        self.start_urls = [seed] if seed else []
        if seeds_file:
            with open(seeds_file, encoding="utf-8") as fh:
                self.start_urls = [line.strip() for line in fh if line.strip()]

    def parse(self, response):
        yield {"url": response.url, "len": len(response.body)}
        yield from response.follow_all(css="a::attr(href)", callback=self.parse)
