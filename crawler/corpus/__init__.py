"""What a crawl keeps, and the tools over it: document kinds, main text, sitemaps, WARC
records, export and revalidation (no Scrapy, no Twisted)."""
