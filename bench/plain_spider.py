"""The baseline: a plain Scrapy spider (ROBOTSTXT_OBEY=True) that follows every link.

``-a seed=URL`` (one start URL) or ``-a seeds_file=PATH`` (one start URL a line: the broad
crawl benchmark's 100,000 origins).

``-a mode=text`` (the default) is the baseline issue 14 names: it yields ``{url, text}`` (the
page's visible text: every text node of ``<body>`` outside ``<script>`` and ``<style>``) and
follows every link ``LinkExtractor()`` finds. ``-a mode=len`` is the lighter baseline used
before: ``{url, len}`` and every ``<a href>`` (no text work, no link extractor).
"""

import scrapy
from scrapy.linkextractors import LinkExtractor

TEXT = "//body//text()[not(ancestor::script or ancestor::style)]"


class PlainSpider(scrapy.Spider):
    name = "plain"

    def __init__(self, seed: str = "", seeds_file: str = "", mode: str = "text", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("text", "len"):
            raise ValueError(f"mode: {mode!r} is not text or len")
        self.mode = mode
        self.links = LinkExtractor()
        self.start_urls = [seed] if seed else []
        if seeds_file:
            with open(seeds_file, encoding="utf-8") as fh:
                self.start_urls = [line.strip() for line in fh if line.strip()]

    def parse(self, response):
        if self.mode == "len":
            yield {"url": response.url, "len": len(response.body)}
            yield from response.follow_all(css="a::attr(href)", callback=self.parse)
            return
        words = (t.strip() for t in response.xpath(TEXT).getall())
        yield {"url": response.url, "text": " ".join(w for w in words if w)}
        for link in self.links.extract_links(response):
            yield response.follow(link, callback=self.parse)
