"""Spiders of the polite-crawler Scrapy project."""
