"""``polite-crawl``: the command line."""
