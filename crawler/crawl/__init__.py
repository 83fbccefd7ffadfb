"""Scrapy glue: the add-on, the runtime, middlewares, pipelines, the per-origin file cache.

Thin by design: every decision is made by the pure layers (:mod:`crawler.policy`,
:mod:`crawler.optout`, :mod:`crawler.audit`); this package turns Scrapy's hooks into their
inputs and their answers into Scrapy actions.
"""
