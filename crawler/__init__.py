"""polite-crawler: collect web content only where rights holders have not reserved it."""

__version__ = "0.1.0"
