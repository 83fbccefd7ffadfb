"""Sans-IO parsers and evaluators, one module per reservation protocol.

Nothing in this package imports Scrapy or Twisted, reads a clock or opens a file or socket:
bytes, header values and URLs go in, frozen results come out.
"""
