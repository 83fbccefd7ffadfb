"""Scrapy signals sent by polite-crawler."""

#: Sent after every decision is committed to the audit log, with ``record`` (the audit
#: record as written) and ``request``.
decision_recorded = object()
