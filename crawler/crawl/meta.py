"""What a request or response says about itself, for every hook and spider: its origin, its
allow record, whether it is one of our own per-origin fetches, the plain form of its URL; and
the request.meta keys our spiders set as inputs (everything the middlewares carry between their
hooks is a :class:`crawler.crawl.state.RequestState`)."""

from __future__ import annotations

import re
from typing import Any

from scrapy.http import Request, Response
from scrapy.http.request import NO_CALLBACK
from scrapy.utils.httpobj import urlparse_cached

from crawler.crawl.sitecache import PREFLIGHT_META
from crawler.policy.network import format_origin

#: inputs our spiders set on a request (request.meta keys of their own; everything the
#: middleware carries between its hooks is a crawler.crawl.state.RequestState)
META_NO_FETCH = "polite_no_fetch"
#: decide a response of any kind as if it were collected (``polite-crawl check``: it decides,
#: it never collects, so a PDF is judged whatever ``collect:`` says)
META_ANY_KIND = "polite_any_kind"
#: a sitemap fetch of the corpus spider (its value: the
#: crawler.corpus.sitemap_reader.SitemapSource): a request to its origin like any page, decided
#: against every reservation and audited, but not a page (no scope, not counted, never paid,
#: never an item)
META_SITEMAP = "polite_sitemap"
#: the allow record (``{"seq", "hash", "url"}``) of the request, for its spider callback
#: (``response.meta["polite_audit"]``, :func:`audit_of`) and the item's provenance
META_AUDIT = "polite_audit"


def is_preflight(request: Request) -> bool:
    """One of our own per-origin/registry fetches (never a page for a spider callback: a
    request that merely carries the meta key is judged like any other)."""
    return bool(request.meta.get(PREFLIGHT_META)) and request.callback is NO_CALLBACK


def origin_of(request: Request) -> str:
    """``scheme://host[:port]`` with the default port left out (RFC 9309's authority); the
    host as :func:`crawler.policy.network.normalize_host` gives it (``http://EXAMPLE.com./`` and
    ``http://example.com/`` share one key, ``[::ffff:a.b.c.d]`` keys as ``a.b.c.d``)."""
    u = urlparse_cached(request)
    return format_origin(u.scheme, u.hostname, u.port)


#: ``scheme://host[:port]`` and a path (and query) in the form ``Request`` gives them already:
#: lower-case host name or IPv4 address, nothing ``safe_url_string`` would escape or a URL
#: parser would rewrite (no ``%``, no dot segments, no empty query or fragment)
_PLAIN_URL = re.compile(
    r"(https?://[a-z0-9.\-]+(?::[0-9]{1,5})?)"
    r"(/[A-Za-z0-9\-._~/!$&()*+,;=:@]*(?:\?[A-Za-z0-9\-._~/!$&()*+,;=:@?]+)?)")
_PLAIN_PREFIXES: dict[str, tuple[str, str] | None] = {}


def audit_of(response: Response) -> dict[str, Any] | None:
    """The allow record (``{"seq", "hash", "url"}``) of the request this response answers, or
    None: none was written for it (a redirect not followed, a start item), or the meta was
    copied from another request whose decision it is not."""
    request = getattr(response, "request", None)
    audit = request.meta.get(META_AUDIT) if request is not None else None
    if not audit or audit.get("url") != request.url:
        return None
    return audit


def plain_url(url: str) -> tuple[str, str] | None:
    """``(origin, host)`` of ``url`` when ``Request(url).url == url`` is sure without making
    the request (the URL matches ``_PLAIN_URL``, its path has no ``/./``, ``/../`` or ``//``,
    and its ``scheme://host:port`` comes out of ``safe_url_string`` unchanged); else None.
    ``origin`` is :func:`origin_of` of the request."""
    m = _PLAIN_URL.fullmatch(url)
    if m is None:
        return None
    rest = m.group(2)
    if "/." in rest or "//" in rest:
        return None
    prefix = m.group(1)
    try:
        return _PLAIN_PREFIXES[prefix]
    except KeyError:
        pass
    probe = prefix + "/a"
    got: tuple[str, str] | None = None
    try:
        request = Request(probe)
        if request.url == probe:
            host = urlparse_cached(request).hostname or ""
            got = (origin_of(request), host)
    except ValueError:
        got = None
    if len(_PLAIN_PREFIXES) > 100_000:
        _PLAIN_PREFIXES.clear()
    _PLAIN_PREFIXES[prefix] = got
    return got


def charset_of(response: Response) -> str | None:
    """The response's declared or sniffed encoding (a text response's), else None."""
    return getattr(response, "encoding", None)


def location_of(response: Response) -> str:
    """The ``Location`` header as text, cut at 2,000 characters (for the record)."""
    return (response.headers.get(b"Location") or b"").decode("latin-1")[:2000]


def content_length_of(response: Response) -> int | None:
    """The ``Content-Length`` header as a number, None when absent or not a number."""
    value = response.headers.get(b"Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def error_text(exc: BaseException) -> str:
    """One line naming a download's failure, for its ``result`` record."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__
