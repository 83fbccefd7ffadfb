"""Configuration (no Scrapy, no Twisted): the YAML job config and the settings it becomes."""
