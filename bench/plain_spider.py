"""The baseline: a plain Scrapy spider (ROBOTSTXT_OBEY=True) that follows every link."""

import scrapy


class PlainSpider(scrapy.Spider):
    name = "plain"

    def __init__(self, seed: str = "", **kwargs):
        super().__init__(**kwargs)
        self.start_urls = [seed]

    def parse(self, response):
        yield {"url": response.url, "len": len(response.body)}
        yield from response.follow_all(css="a::attr(href)", callback=self.parse)
