"""What the crawler publishes from its outputs: reports, the transparency summary, the about
page (no Scrapy, no Twisted)."""
