"""The opt-out uptake survey (no Scrapy, no Twisted): what each origin says, to whom, and the
list of AI agents."""
