"""A Scrapy component that needs the [documents] extra (tests/integration/test_lean.py): what
a crawl component that imports an extra where it is built looks like to the CLI."""

from crawler.extras import require


class NeedsDocuments:
    @classmethod
    def from_crawler(cls, crawler):
        require("pypdf", "documents", "collect: [pdf]")
        return cls()
