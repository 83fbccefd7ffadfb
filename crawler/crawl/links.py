"""The links a page's spider follows: what ``LinkExtractor().extract_links(response)`` gives,
as URLs, faster.

Scrapy's :class:`~scrapy.linkextractors.LinkExtractor` (default arguments: ``<a>`` and
``<area>`` ``href``, unique, not canonicalised, ``IGNORED_EXTENSIONS`` denied) builds a
:class:`~scrapy.link.Link` per element, with its text and ``nofollow``, resolves each ``href``
with two ``urljoin`` calls and ``safe_url_string``, and parses each result again to check its
extension. The corpus spider only needs the URLs. :func:`link_urls` returns the same URLs in
the same order:

* the same elements, in document order (``<a>``/``<area>``, also in the XHTML namespace), the
  same base URL (``get_base_url``, ``<base href>`` included);
* an ``href`` that is a plain absolute path (``/a/b-c_d.html``: letters, digits, ``-._~/``
  only, no ``//``, no segment starting with ``.``) on a base whose scheme and host are already
  in the form ``safe_url_string`` writes resolves to that scheme, host and path, which is what
  the two ``urljoin`` calls and ``safe_url_string`` give for it;
* every other ``href`` (relative, with a query, a fragment, escapes, non-ASCII, ``javascript:``,
  ``mailto:``, ...) goes through the very steps ``LinkExtractor`` takes, in its order;
* then the same filters (schemes http, https, file, ftp; the denied extensions, as
  ``url_has_any_extension`` compares them) and duplicates dropped by URL, first one kept.

``tests/test_links.py`` compares the two on generated pages with every kind of link and on
the real HTML pages of ``tests/data`` (and the demo sites).

``collect`` (the job's ``collect:``) widens that for documents: with ``pdf`` the ``.pdf``
extension is not denied, with ``image`` the image extensions (:data:`IMAGE_EXTENSIONS`) are
not denied and the ``src`` and ``srcset`` candidates of ``<img>`` (and ``<source>`` in
``<picture>``) are links too, after the ``<a>``/``<area>`` ones. The default (``html``,
``text``) is exactly ``LinkExtractor()``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urljoin, urlparse, urlsplit

from scrapy.linkextractors import IGNORED_EXTENSIONS
from scrapy.utils.response import get_base_url
from w3lib.html import strip_html5_whitespace
from w3lib.url import safe_url_string

__all__ = ["link_urls"]

_XHTML = "{http://www.w3.org/1999/xhtml}"
_TAGS = ("a", "area", _XHTML + "a", _XHTML + "area")
_VALID_SCHEMES = frozenset({"http", "https", "file", "ftp"})
#: LinkExtractor's ``deny_extensions`` default, as it compares them (lower-cased path ends
#: with ``"." + extension``)
_DENIED = tuple("." + e for e in IGNORED_EXTENSIONS)
#: extensions no longer denied when the job collects these kinds
PDF_EXTENSIONS = ("pdf",)
IMAGE_EXTENSIONS = ("bmp", "gif", "jpg", "jpeg", "png", "tif", "tiff", "webp")
_DENIED_FOR: dict[frozenset[str], tuple[str, ...]] = {}
_IMG_TAGS = ("img", _XHTML + "img", "source", _XHTML + "source")
#: an href resolved without urljoin/safe_url_string when the base's prefix allows it
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9_~\-][A-Za-z0-9_~.\-/]*|/")
#: scheme://host[:port] prefixes known to come out of safe_url_string unchanged
_PREFIXES: dict[str, bool] = {}


def _plain_prefix(base_url: str) -> str | None:
    """``scheme://netloc`` of ``base_url`` when an absolute path joined to it comes out of
    urljoin and safe_url_string as prefix + path (http(s), no userinfo, a netloc that
    safe_url_string leaves as it is); else None."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        return None
    prefix = f"{parts.scheme}://{parts.netloc}"
    ok = _PREFIXES.get(prefix)
    if ok is None:
        probe = prefix + "/a"
        try:
            ok = safe_url_string(probe) == probe and urljoin(base_url, "/a") == probe
        except ValueError:
            ok = False
        if len(_PREFIXES) > 10_000:
            _PREFIXES.clear()
        _PREFIXES[prefix] = ok
    return prefix if ok else None


def _denied(collect: frozenset[str]) -> tuple[str, ...]:
    got = _DENIED_FOR.get(collect)
    if got is None:
        allowed = set()
        if "pdf" in collect:
            allowed.update(PDF_EXTENSIONS)
        if "image" in collect:
            allowed.update(IMAGE_EXTENSIONS)
        got = _DENIED_FOR[collect] = tuple("." + e for e in IGNORED_EXTENSIONS
                                           if e not in allowed)
    return got


def _srcset_urls(value: str) -> list[str]:
    """The URLs of an HTML ``srcset`` (comma-separated "URL [descriptor]" candidates)."""
    out = []
    for candidate in value.split(","):
        parts = candidate.strip().split()
        if parts:
            out.append(parts[0])
    return out


def link_urls(response: Any, collect: Any = ("html", "text")) -> list[str]:
    """The URLs of ``LinkExtractor().extract_links(response)``, in its order (widened for
    ``collect``: see the module docstring)."""
    kinds = frozenset(collect)
    denied = _DENIED if not kinds & {"pdf", "image"} else _denied(kinds)
    out = _anchor_urls(response, denied)
    if "image" in kinds:
        out += _image_urls(response, denied, set(out))
    return out


def _image_urls(response: Any, denied: tuple[str, ...], seen: set[str]) -> list[str]:
    """``<img src>``, ``<img srcset>`` and ``<source srcset>`` URLs, resolved as
    LinkExtractor resolves an href, with the same filters."""
    base_url = get_base_url(response)
    out: list[str] = []
    for el in response.selector.root.iter(*_IMG_TAGS):
        values = []
        src = el.get("src")
        if src is not None:
            values.append(src)
        srcset = el.get("srcset")
        if srcset:
            values += _srcset_urls(srcset)
        for value in values:
            value = strip_html5_whitespace(value)
            if not value or value.startswith("data:"):
                continue
            try:
                url = urljoin(response.url, safe_url_string(urljoin(base_url, value),
                                                            encoding=response.encoding))
            except ValueError:
                continue
            if url.split("://", 1)[0] not in _VALID_SCHEMES:
                continue
            if url in seen or urlparse(url).path.lower().endswith(denied):
                continue
            seen.add(url)
            out.append(url)
    return out


def _anchor_urls(response: Any, denied: tuple[str, ...]) -> list[str]:
    base_url = get_base_url(response)
    response_url = response.url
    encoding = response.encoding
    prefix = _plain_prefix(base_url)
    out: list[str] = []
    seen: set[str] = set()
    for el in response.selector.root.iter(*_TAGS):
        value = el.get("href")
        if value is None:
            continue
        value = strip_html5_whitespace(value)
        if prefix is not None and _PLAIN_PATH.fullmatch(value) and "//" not in value \
                and "/." not in value:
            url = prefix + value
            path = value
        else:
            # LxmlParserLinkExtractor._extract_links, step by step
            try:
                url = urljoin(base_url, value)
            except ValueError:
                continue  # a bogus link
            try:
                url = safe_url_string(url, encoding=encoding)
            except ValueError:
                continue
            url = urljoin(response_url, url)
            # LxmlLinkExtractor._link_allowed
            if url.split("://", 1)[0] not in _VALID_SCHEMES:
                continue
            path = urlparse(url).path
        if url in seen or path.lower().endswith(denied):
            continue
        seen.add(url)
        out.append(url)
    return out
