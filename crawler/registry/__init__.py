"""Opt-out registries (no Scrapy, no Twisted): the list grammar (entries), the in-memory index,
the SQLite store, the Spawning wire format, the crawl's client logic, a loopback registry
server."""
