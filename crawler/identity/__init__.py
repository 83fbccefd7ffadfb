"""The crawler's identity (no Scrapy, no Twisted): its signing key and Web Bot Auth
signatures."""
