"""The opt-out uptake survey (no Scrapy, no Twisted): what each origin says, to whom
(analysis), read from archived robots.txt files (archives), and the list of AI agents
(agents)."""
