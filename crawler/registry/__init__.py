"""Opt-out registries (no Scrapy, no Twisted): list grammar and index, the Spawning wire
format, a loopback registry server."""
