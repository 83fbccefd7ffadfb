"""Training-ready text: the main content of an HTML page, boilerplate removed (trafilatura).

The corpus spider calls :func:`main_text` for every HTML page when ``text: main`` (the
default); ``text: visible`` keeps every visible text node of ``<body>`` instead.

trafilatura is used as a pure function of the page already downloaded and parsed: it is
given the page's lxml tree (parsel's, which trafilatura copies before it prunes anything, so
the tree the spider follows links from is untouched) and never a URL to fetch. Its options
are pinned here, not taken from its defaults, so that an upgrade within 2.x does not silently
change the corpus:

* ``favor_precision``: less text rather than boilerplate (as FineWeb and datatrove use it);
* no comments (reader comments are not the page's content, and often personal data), no
  images, links or formatting markup; tables are kept (their cells are content);
* no metadata and so no date extraction (htmldate is slow and not needed: the corpus has its
  own provenance), no language filter, no deduplication (trafilatura's is a process-wide cache:
  the text of a page would depend on what was crawled before it; deduplicate downstream);
* its size thresholds set explicitly (:data:`TRAFILATURA_CONFIG`).

Bounded: trafilatura's cost grows with the number of elements (~70 µs per element measured
here, about a millisecond for a typical page) and much faster with their depth, so a page with
more than ``max_elements`` elements is not given to it (``too-many-elements``), nor one nested
deeper than :data:`MAX_DEPTH` (``too-deep``). Any exception from it is caught (``error``). In
these cases, and when it finds no main content (``no-main-content``), the caller falls back to
the visible text and marks the document ``text_mode: visible-fallback``: a page is never
dropped and never crashes the crawl because of its text.

Sans-IO: no Scrapy, no network, no clock; trafilatura is imported on first use (~0.2 s).
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from lxml import etree
from lxml.html import HtmlElement

from crawler.config import table

__all__ = ["DEFAULT_MAX_ELEMENTS", "TEXT_MODES", "MainText", "main_text"]

#: ``text:`` config values / ``POLITE_TEXT``: ``main`` (trafilatura) or ``visible`` (every
#: visible text node of ``<body>``, as before)
TEXT_MODES = table.TEXT_MODES
#: the ``text_mode`` a corpus line gets when main-content extraction gave nothing usable
FALLBACK_MODE = "visible-fallback"
#: pages with more elements than this are not given to trafilatura (see the module doc)
DEFAULT_MAX_ELEMENTS = table.default("POLITE_TEXT_MAX_ELEMENTS")
#: nor pages with elements nested deeper than this: trafilatura's time grows much faster than
#: the elements with the depth (measured: 0.07 s at depth 500, 5 s at 2,048, the most lxml
#: parses); a real page is rarely deeper than 100
MAX_DEPTH = 512
_COUNT = etree.XPath("count(//*)")
_TOO_DEEP = etree.XPath("boolean(/" + "/*" * (MAX_DEPTH + 1) + ")")

#: trafilatura's settings.cfg keys that shape extraction, pinned to its 2.x defaults (the
#: download keys are irrelevant: nothing is fetched)
TRAFILATURA_CONFIG = {
    "MIN_EXTRACTED_SIZE": "250",    # below this, its fallback extractors are tried too
    "MIN_OUTPUT_SIZE": "1",
    "MIN_OUTPUT_COMM_SIZE": "1",
    "MAX_TREE_SIZE": "",            # no cap on the output tree: we bound the input instead
    "MIN_DUPLCHECK_SIZE": "100",
    "MAX_REPETITIONS": "2",
    "EXTRACTION_TIMEOUT": "0",      # its CLI's signal-based timeout: never used here
    "EXTENSIVE_DATE_SEARCH": "off",
    "EXTERNAL_URLS": "off",
}

#: the keyword arguments of every ``trafilatura.extract`` call (see the module doc)
EXTRACT_OPTIONS: dict[str, Any] = {
    "output_format": "txt",
    "fast": False,
    "favor_precision": True,
    "favor_recall": False,
    "include_comments": False,
    "include_tables": True,
    "include_images": False,
    "include_links": False,
    "include_formatting": False,
    "deduplicate": False,
    "with_metadata": False,
    "only_with_metadata": False,
    "target_language": None,
}


@dataclass(frozen=True)
class MainText:
    """The main content of a page (``text``), or None with the reason (``problem``:
    ``no-main-content``, ``too-many-elements``, ``error: <exception type>``)."""

    text: str | None
    problem: str | None = None


_state: dict[str, Any] = {}
_quiet = threading.local()


def _trafilatura() -> tuple[Any, Any]:
    """(trafilatura.extract, our pinned configparser), imported and built once."""
    if "extract" not in _state:
        import trafilatura
        from trafilatura.settings import use_config

        config = use_config()  # a fresh copy of its defaults, then ours over it
        for key, value in TRAFILATURA_CONFIG.items():
            config.set("DEFAULT", key, value)
        _silence_while_extracting()
        _state.update(extract=trafilatura.extract, config=config,
                      options=_extractor(config))
    return _state["extract"], _state["config"]


def _extractor(config: Any) -> Any:
    """The ``trafilatura.settings.Extractor`` that ``extract(**EXTRACT_OPTIONS)`` would build
    on every call (reading its config each time: a fifth of the cost on a typical page), built
    once; each call gets a shallow copy carrying its URL (trafilatura copies it the same way
    before it changes a field)."""
    from trafilatura.settings import Extractor

    o = EXTRACT_OPTIONS
    return Extractor(config=config, output_format=o["output_format"], fast=o["fast"],
                     precision=o["favor_precision"], recall=o["favor_recall"],
                     comments=o["include_comments"], formatting=o["include_formatting"],
                     links=o["include_links"], images=o["include_images"],
                     tables=o["include_tables"], dedup=o["deduplicate"],
                     lang=o["target_language"], with_metadata=o["with_metadata"],
                     only_with_metadata=o["only_with_metadata"])


def _options(url: str | None) -> Any:
    options = copy.copy(_state["options"])
    options.url = url
    options.source = url and url.encode("utf-8", "replace").decode("utf-8")
    return options


class _WhileExtracting(logging.Filter):
    """Drops trafilatura's own log lines during our calls (it warns "discarding data" for
    every page without main content; we log and count the fallback ourselves). Its lines
    from other callers in the process are left alone, but for those logged in another thread
    while one of our calls runs (see :func:`_quietly`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_quiet, "on", False)


def _silence_while_extracting() -> None:
    quiet = _WhileExtracting()
    names = [n for n in list(logging.root.manager.loggerDict)
             if n.split(".")[0] in ("trafilatura", "justext", "htmldate", "courlan")]
    loggers = [logging.getLogger(name) for name in names]
    for lg in loggers:
        lg.addFilter(quiet)
    _state["loggers"] = loggers


@contextmanager
def _quietly() -> Iterator[None]:
    """trafilatura's (and its helpers') log lines are dropped while one of our calls runs:
    its loggers are disabled for the call, so that no record is even made (it logs a few
    debug lines a page, each built and then filtered out by the handler: ~1 % of a crawl's
    time), and the filter drops any record of a logger made after ours were listed."""
    _quiet.on = True
    loggers = [lg for lg in _state.get("loggers", ()) if not lg.disabled]
    for lg in loggers:
        lg.disabled = True
    try:
        yield
    finally:
        _quiet.on = False
        for lg in loggers:
            lg.disabled = False


def too_large(root: Any, html: str, max_elements: int) -> str | None:
    """``too-many-elements`` when ``root`` has more than ``max_elements`` elements (0: no
    limit), ``too-deep`` when one is nested deeper than :data:`MAX_DEPTH`, else None. Each
    check costs well under a millisecond on a typical page (an XPath run in C; the elements
    are counted only when ``html`` has more ``<`` than allowed: every element opens with
    one)."""
    tags = html.count("<")
    if max_elements and tags > max_elements and _COUNT(root) > max_elements:
        return "too-many-elements"
    if tags > MAX_DEPTH and _TOO_DEEP(root):
        return "too-deep"
    return None


def main_text(root: Any, html: str, *, url: str | None = None,
              max_elements: int = DEFAULT_MAX_ELEMENTS) -> MainText:
    """The main content of the page ``html`` whose parsed tree is ``root`` (parsel's
    ``response.selector.root``; an ``lxml.html.HtmlElement`` is used as it is, another tree
    is parsed again from ``html``). Never raises for the page's sake."""
    try:
        problem = too_large(root, html, max_elements)
        if problem:
            return MainText(None, problem)
        extract, config = _trafilatura()
        source = root if isinstance(root, HtmlElement) else html
        with _quietly():
            text = extract(source, options=_options(url))
    except Exception as exc:  # noqa: BLE001 - a page's text never stops the crawl
        return MainText(None, f"error: {type(exc).__name__}")
    if not text or not text.strip():
        return MainText(None, "no-main-content")
    return MainText(text)
