"""Sitemaps (sitemaps.org protocol 0.9): the URLs a sitemap lists, read within hard limits.

Sans-IO, as :mod:`crawler.optout`: bytes in, frozen dataclasses out; no Scrapy, no Twisted, no
clock, nothing opened.  :func:`parse_sitemap` reads one fetched body -- an XML ``<urlset>``, a
``<sitemapindex>``, a plain-text sitemap (one URL a line), an RSS 2.0 or Atom 0.3/1.0 feed (the
formats sitemaps.org accepts), any of them gzip-compressed (``.xml.gz``) -- into a
:class:`SitemapFile`: the page URLs (``urls``) or, for an index, the child sitemaps
(``sitemaps``), each a :class:`SitemapEntry` with its ``lastmod``.  The walk over an origin's
sitemaps (which to fetch next, within a nesting depth and a total budget per origin) is
:class:`crawler.corpus.sitemaps.SitemapWalk`.

Remote bytes never make this module raise.  Every limit reached, URL dropped or decoding fault
is a line in ``problems`` (``"line 12: malformed XML (mismatched tag); the 3 URLs before it
kept"``), ready for the audit record.

Partial reads are used, unlike reservation files
-----------------------------------------------
A robots.txt, tdmrep.json or RSL licence read in part is *undetermined* and refuses the origin
(README, "Limits, decoders and escapes"), because a rule we did not read could reserve what we
are about to fetch.  A sitemap reserves nothing: it is discovery, a list of URLs that might be
fetched, and every one of them still goes through every reservation check before a request is
sent.  A cut, corrupt or over-limit sitemap therefore yields the entries read completely before
the fault (only whole ``<url>`` elements, only whole lines of a text file: a URL cut in the
middle is never used) plus a problem, and ``complete`` is False.  The worst a partial sitemap
can do is make us discover fewer URLs.

Limits (each reached limit is a problem, never an exception)
-----------------------------------------------------------
* sitemaps.org: "no more than 50,000 URLs and ... no larger than 50MB (52,428,800 bytes)"
  uncompressed, for sitemaps and indexes alike: :data:`MAX_URLS`, :data:`MAX_BYTES`.  The
  50,001st ``<url>`` (or line, or feed item) stops the reading; the first 50,000 are kept.
* Decompression is streamed in 64 KiB steps and stops at the size limit (of the file, or what
  is left of the origin's budget), so a gzip bomb costs at most that many bytes of output and
  never that much memory at once; a gzip inside the gzip is not undone.
* ``<loc>`` "must be less than 2,048 characters": longer ones are dropped (:data:`MAX_LOC_CHARS`);
  of a longer text node only a prefix is kept in memory.  XML elements nested more than
  :data:`MAX_XML_DEPTH` deep stop the reading (a sitemap needs 3).
* XML: :mod:`xml.parsers.expat` (stdlib) with parameter entities off and handlers that abort on
  any DOCTYPE, ENTITY or NOTATION declaration and any external entity: nothing is expanded or
  fetched (billion laughs, XXE).  A sitemap needs no DTD; a file with one is refused whole.
* :class:`crawler.corpus.sitemaps.SitemapWalk`: index nesting (``MAX_DEPTH`` levels below the
  sitemap first named), files, URLs and uncompressed bytes per origin (``SitemapLimits``).

Which URLs a sitemap may list (sitemaps.org, "Sitemap file location")
---------------------------------------------------------------------
"The location of a Sitemap file determines the set of URLs that can be included in that
Sitemap. A Sitemap file located at http://example.com/catalog/sitemap.xml can include any URLs
starting with http://example.com/catalog/" -- same scheme, host and port ("all URLs listed in
the Sitemap must use the same protocol ... and reside on the same host as the Sitemap"; "If you
submit a Sitemap using a path with a port number, you must include that port number").  Cross
submission: "you can do this by modifying the robots.txt file on www.host1.com to point to the
Sitemap on www.sitemaphost.com": a sitemap listed in the robots.txt of origin O may list any URL
of O (robots.txt sits at O's root).  The same rule applies to the children an index lists
("A Sitemap index file can only specify Sitemaps that are found on the same site"), and a child
inherits the origins that vouched for its index.  Locations must be absolute http(s) URLs
("must begin with the protocol").  Everything else is dropped and counted per reason.  Paths
are compared after removing dot segments (``%2e`` read as ``.``), hosts in the one normal form
of :func:`crawler.policy.network.normalize_host`.

Where this differs from Scrapy's ``scrapy.utils.sitemap.Sitemap`` / ``SitemapSpider``
------------------------------------------------------------------------------------
(checked against its own test vectors in ``tests/test_sitemaps.py``)

* Entities and DTDs: Scrapy parses with lxml ``recover=True, resolve_entities=False`` and reads
  ``<loc>http://127.0.0.1:8000/&xxe;</loc>`` as ``http://127.0.0.1:8000/``; we refuse a file
  with a DOCTYPE (no entries) -- a URL silently changed by a dropped entity is not what the
  site listed.
* Malformed XML: lxml's recovery guesses past errors; we stop at the first one and keep what was
  read before it (recovery could invent a wider URL, e.g. from a cut ``<loc>``).
* Scope: Scrapy yields every ``<loc>`` (other hosts, relative URLs, ``javascript:``); we keep
  sitemaps.org's location rule and absolute http(s) URLs only.
* Limits: Scrapy bounds only the decompressed size (``DOWNLOAD_MAXSIZE``; over it the whole
  sitemap is ignored) and follows indexes to any depth; we apply the protocol's 50,000 URLs /
  50 MB per file, keep what came before a limit, and bound depth and per-origin totals.
* Formats: Scrapy reads XML urlset/sitemapindex only (a text sitemap, RSS or Atom is "invalid");
  we read all the formats sitemaps.org lists.  Scrapy decides "gzip" by magic number and "XML"
  by response class or ``.xml`` URL; we sniff the bytes (gzip magic, then ``<`` or not).
* Entries: Scrapy keeps every child element's text in a dict; we keep ``loc``, ``lastmod``
  (W3C Datetime checked; an invalid one is dropped with a problem), ``changefreq``,
  ``priority`` and the ``xhtml:link`` alternates (Scrapy: ``alternate``), which pass the same
  location rule.  An element with an empty ``<loc>`` is dropped by both (here with a problem).
* Namespaces: like Scrapy, elements are matched by local name whatever their namespace (real
  sitemaps use Google's old 0.84 namespace, none, or ``xmlns=""`` on ``<url>``); a root outside
  the sitemaps.org/Google namespaces is noted as a problem.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit
from xml.parsers import expat

from crawler.optout.content import utf8_from_bom
from crawler.policy.network import format_origin

__all__ = [
    "MAX_BYTES", "MAX_LOC_CHARS", "MAX_URLS", "SitemapEntry", "SitemapFile", "SitemapSource",
    "location_problem", "parse_sitemap", "split_location",
]

#: sitemaps.org: "no more than 50,000 URLs" per sitemap or index file
MAX_URLS = 50_000
#: sitemaps.org: "no larger than 50MB (52,428,800 bytes)" uncompressed
MAX_BYTES = 52_428_800
#: sitemaps.org, ``<loc>``: "This value must be less than 2,048 characters."
MAX_LOC_CHARS = 2048
#: elements nested deeper than this stop the reading (a sitemap needs 3)
MAX_XML_DEPTH = 32
#: problems listed one by one per file; the rest are counted in one last line
MAX_LISTED_PROBLEMS = 50

_CHUNK = 1 << 16
_GZIP_MAGIC = b"\x1f\x8b"
#: namespaces a sitemap root is expected in (sitemaps.org 0.9, Google's 0.84 and 0.9)
_SITEMAP_NS = frozenset({
    "http://www.sitemaps.org/schemas/sitemap/0.9",
    "http://www.google.com/schemas/sitemap/0.84",
    "http://www.google.com/schemas/sitemap/0.9",
})
_ROOTS = {"urlset": "urlset", "sitemapindex": "sitemapindex", "rss": "rss", "feed": "atom"}
#: W3C Datetime (sitemaps.org ``<lastmod>``): YYYY, YYYY-MM, YYYY-MM-DD, or with a time and a
#: zone designator
_W3C_DATETIME = re.compile(
    r"\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?)?)?")
_WS = " \t\r\n"


@dataclass(frozen=True, slots=True)
class SitemapEntry:
    """One URL a sitemap lists: a page (urlset, text, feed) or a child sitemap (index)."""

    loc: str
    lastmod: str | None = None     # W3C Datetime as written (feeds: pubDate/updated as written)
    changefreq: str | None = None
    priority: str | None = None
    alternates: tuple[str, ...] = ()   # xhtml:link rel="alternate" hrefs that passed the rules


@dataclass(frozen=True, slots=True)
class SitemapSource:
    """A sitemap to read: its URL, its index depth, and the origins that vouch for it (whose
    robots.txt listed it, or listed the index it was reached through): it may list any URL of
    those origins besides those under its own directory."""

    url: str
    depth: int = 0
    vouched_by: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SitemapFile:
    """What one sitemap body gave."""

    url: str
    kind: str                       # urlset, sitemapindex, text, rss, atom; "" = not a sitemap
    urls: tuple[SitemapEntry, ...]  # page URLs (urlset, text, rss, atom)
    sitemaps: tuple[SitemapEntry, ...]  # child sitemaps (sitemapindex)
    problems: tuple[str, ...]
    complete: bool                  # read to its end, no fault, no limit reached
    dropped: int = 0                # entries dropped (location rule, not http(s), too long ...)
    size: int = 0                   # uncompressed bytes read
    gzipped: bool = False


# --- the location rule -------------------------------------------------------------------


def split_location(url: str) -> tuple[str, str] | None:
    """``(origin, path)`` of an absolute http(s) URL, the path with dot segments removed (and
    ``%2e`` read as ``.``), or None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    path = parts.path or "/"
    if "%2e" in path.lower():
        path = re.sub("%2[eE]", ".", path)
    if "." in path:
        path = urlsplit(urljoin("http://h/", path if path.startswith("/") else "/" + path)).path
    return format_origin(scheme, parts.hostname, port), path


def _directory(url: str) -> str | None:
    split = split_location(url)
    if split is None:
        return None
    origin, path = split
    return origin + path[: path.rfind("/") + 1]


def location_problem(url: str, source: SitemapSource | str) -> str | None:
    """Why sitemaps.org does not let the sitemap ``source`` list ``url``, or None when it may.

    The reasons are the keys the problems are counted under.
    """
    if isinstance(source, str):
        source = SitemapSource(source)
    return _location_problem(url, source.vouched_by, _directory(source.url))


def _location_problem(url: str, vouched_by: tuple[str, ...], here: str | None) -> str | None:
    if len(url) >= MAX_LOC_CHARS:
        return f"URL of {MAX_LOC_CHARS} characters or more"
    split = split_location(url)
    if split is None:
        return "not an absolute http(s) URL"
    origin, path = split
    if origin in vouched_by:
        return None
    if here is not None and (origin + path).startswith(here):
        return None
    return "outside the sitemap's directory and origin (not cross-submitted via robots.txt)"


# --- input: gzip and the size limit --------------------------------------------------------


class _Input:
    """The body as a stream of uncompressed chunks, gunzipped when it starts with the gzip magic
    number, stopped at ``limit`` bytes; what went wrong is in ``fault`` / ``over``."""

    def __init__(self, body: bytes, limit: int) -> None:
        self.body = body
        self.limit = limit
        self.gzipped = body[:2] == _GZIP_MAGIC
        self.size = 0
        self.fault: str | None = None  # the stream could not be read to its end
        self.over = False              # the limit cut it
        self.note: str | None = None   # read to its end, but something to say

    def chunks(self) -> Iterator[bytes]:
        source = self._gunzip() if self.gzipped else self._plain()
        for chunk in source:
            if self.size + len(chunk) > self.limit:
                chunk = chunk[: self.limit - self.size]
                self.over = True
            self.size += len(chunk)
            if chunk:
                yield chunk
            if self.over:
                return

    def _plain(self) -> Iterator[bytes]:
        for start in range(0, len(self.body), _CHUNK):
            yield self.body[start:start + _CHUNK]

    def _gunzip(self) -> Iterator[bytes]:
        rest = self.body
        while True:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            buf = rest
            try:
                while True:
                    chunk = d.decompress(buf, _CHUNK)
                    yield chunk
                    if self.over:
                        return
                    buf = d.unconsumed_tail
                    if d.eof or (not buf and not chunk):
                        break
            except zlib.error as exc:
                self.fault = f"corrupt gzip stream ({exc})"
                return
            if not d.eof:
                self.fault = "gzip stream ends before its end (cut or corrupt)"
                return
            rest = d.unused_data
            if not rest.strip(b"\x00"):
                return
            if rest[:2] != _GZIP_MAGIC:
                self.note = f"{len(rest)} bytes of garbage after the gzip stream ignored"
                return


# --- parsing -------------------------------------------------------------------------------


class _Stop(Exception):
    """Raised inside expat handlers to stop reading (limit reached, not a sitemap)."""


class _Refused(Exception):
    """Raised inside expat handlers on DTD markup."""


def _refuse(what: str):  # noqa: ANN202 - an expat handler factory
    def handler(*_args: object) -> None:
        raise _Refused(what)
    return handler


class _Collector:
    """Entries, dropped counts and problems of one file (shared by the XML and text readers)."""

    def __init__(self, source: SitemapSource, max_urls: int, budget: int | None) -> None:
        self.source = source
        self.here = _directory(source.url)
        self.max_urls = max_urls
        self.budget = budget
        self.seen = 0
        self.entries: list[SitemapEntry] = []
        self.problems: list[str] = []
        self.drops: dict[str, list] = {}   # reason -> [count, first example]
        self.limit: str | None = None

    def drop(self, reason: str, example: str) -> None:
        slot = self.drops.get(reason)
        if slot is None:
            self.drops[reason] = [1, example]
        else:
            slot[0] += 1

    def check(self, url: str) -> bool:
        problem = _location_problem(url, self.source.vouched_by, self.here)
        if problem is not None:
            self.drop(problem, url)
            return False
        return True

    def add(self, loc: str | None, what: str, **fields: object) -> None:
        """One listed URL: counted against the file's limit, then kept if it passes."""
        self.seen += 1
        if self.seen > self.max_urls:
            self.limit = (f"more than {self.max_urls:,} {what}s (sitemaps.org limit): the "
                          f"first {self.max_urls:,} read, the rest not")
            raise _Stop
        loc = (loc or "").strip(_WS)
        if not loc:
            self.drop("empty location", f"{what} #{self.seen}")
            return
        if not self.check(loc):
            return
        if self.budget is not None and what != "sitemap" and len(self.entries) >= self.budget:
            self.limit = (f"the origin's budget of sitemap URLs is used up: {self.seen - 1:,} "
                          "read from this file, the rest not")
            raise _Stop
        self.entries.append(SitemapEntry(loc, **fields))  # type: ignore[arg-type]

    def dropped(self) -> int:
        return sum(count for count, _ in self.drops.values())

    def drop_problems(self) -> list[str]:
        return [f"{count:,} dropped: {reason} (e.g. {example[:120]!r})"
                for reason, (count, example) in self.drops.items()]


class _XmlReader:
    """Expat handlers for urlset, sitemapindex, RSS 2.0 and Atom; entries go to a collector."""

    def __init__(self, parser: expat.XMLParserType, out: _Collector) -> None:
        self.parser = parser
        self.out = out
        self.kind: str | None = None
        self.stack: list[str] = []        # local names of the open elements
        self.fields: dict[str, str] | None = None   # the open entry's collected children
        self.alternates: list[str] = []
        self.text: list[str] | None = None  # text of the field being collected
        self.field_name = ""
        self.bad_lastmod = 0

    # entry element, its parent's local name, and the fields collected, per kind
    _ENTRY = {"urlset": ("url", "urlset"), "sitemapindex": ("sitemap", "sitemapindex"),
              "rss": ("item", "channel"), "atom": ("entry", "feed")}
    _FIELDS = {"urlset": ("loc", "lastmod", "changefreq", "priority"),
               "sitemapindex": ("loc", "lastmod"), "rss": ("link", "pubDate"),
               "atom": ("updated", "modified")}

    def start(self, name: str, attrs: dict[str, str]) -> None:
        namespace, _, local = name.rpartition(" ")
        if self.kind is None:
            kind = _ROOTS.get(local)
            if kind is None:
                self.out.problems.append(
                    f"root element <{local}> is not a sitemap (urlset, sitemapindex, rss or "
                    "feed): not read")
                raise _Stop
            self.kind = kind
            if kind in ("urlset", "sitemapindex") and namespace not in _SITEMAP_NS:
                self.out.problems.append(
                    f"<{local}> in namespace {namespace or '(none)'!r}, not sitemaps.org's: "
                    "read by element names")
            self.stack.append(local)
            return
        if len(self.stack) >= MAX_XML_DEPTH:
            self.out.limit = (f"line {self.parser.CurrentLineNumber}: elements nested more "
                              f"than {MAX_XML_DEPTH} deep: the rest not read")
            raise _Stop
        entry, parent = self._ENTRY[self.kind]
        if local == entry and self.stack[-1] == parent and self.fields is None:
            self.fields = {}
            self.alternates = []
        elif self.fields is not None and self.stack[-1] == entry:
            if local in self._FIELDS[self.kind] and not (self.kind == "rss" and namespace):
                # RSS 2.0 elements have no namespace (an atom:link in an item is not its link)
                self.text, self.field_name = [], local
            elif local == "link" and self.kind == "atom":
                rel = attrs.get("rel", "alternate")
                href = attrs.get("href")
                if rel == "alternate" and href and "link" not in self.fields:
                    self.fields["link"] = urljoin(self.out.source.url, href.strip(_WS))
            elif local == "link" and self.kind == "urlset":
                href = (attrs.get("href") or "").strip(_WS)
                if href and self.out.check(href):
                    self.alternates.append(href)
        self.stack.append(local)

    def end(self, _name: str) -> None:
        local = self.stack.pop()
        if self.text is not None and local == self.field_name and self.fields is not None:
            self.fields[local] = "".join(self.text).strip(_WS)
            self.text = None
            return
        if self.fields is None or self.kind is None:
            return
        entry, _ = self._ENTRY[self.kind]
        if local != entry or (self.stack and self.stack[-1] != self._ENTRY[self.kind][1]):
            return
        fields, self.fields = self.fields, None
        if self.kind in ("urlset", "sitemapindex"):
            lastmod = fields.get("lastmod") or None
            if lastmod is not None and _W3C_DATETIME.fullmatch(lastmod) is None:
                self.bad_lastmod += 1
                lastmod = None
            extra: dict[str, object] = {"lastmod": lastmod}
            if self.kind == "urlset":
                extra.update(changefreq=fields.get("changefreq") or None,
                             priority=fields.get("priority") or None,
                             alternates=tuple(self.alternates))
            self.out.add(fields.get("loc"), "URL" if self.kind == "urlset" else "sitemap",
                         **extra)
        elif self.kind == "rss":
            self.out.add(fields.get("link"), "item", lastmod=fields.get("pubDate") or None)
        else:
            self.out.add(fields.get("link"), "entry",
                         lastmod=fields.get("updated") or fields.get("modified") or None)

    def data(self, text: str) -> None:
        # a field longer than any URL may be is dropped anyway (MAX_LOC_CHARS): keep a prefix
        # that is still too long, not megabytes of it
        if self.text is not None and len(self.text) < 64:
            self.text.append(text[: 2 * MAX_LOC_CHARS])


def _read_xml(chunks: Iterable[bytes], out: _Collector, *, utf8: bool) -> tuple[str, str | None]:
    """Feed ``chunks`` to expat; ``(kind, fault)``: the fault is why reading stopped early
    (None when the document ended cleanly or a limit stopped it: the collector says which)."""
    parser = expat.ParserCreate("UTF-8" if utf8 else None, namespace_separator=" ")
    reader = _XmlReader(parser, out)
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse("DOCTYPE declaration")
    parser.EntityDeclHandler = _refuse("ENTITY declaration")
    parser.UnparsedEntityDeclHandler = _refuse("ENTITY declaration")
    parser.NotationDeclHandler = _refuse("NOTATION declaration")
    parser.ExternalEntityRefHandler = _refuse("external entity reference")
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.data
    fault = None
    try:
        for chunk in chunks:
            parser.Parse(chunk, False)
        parser.Parse(b"", True)
    except _Stop:
        pass
    except _Refused as exc:
        fault = f"{exc} refused (DTDs and entities are never processed): not read"
        out.entries.clear()
    except expat.ExpatError as exc:
        fault = (f"malformed XML at line {exc.lineno}, column {exc.offset} "
                 f"({expat.ErrorString(exc.code)})")
    except (ValueError, UnicodeError, LookupError) as exc:
        fault = f"unreadable XML ({exc})"
    if reader.bad_lastmod:
        out.problems.append(f"{reader.bad_lastmod:,} lastmod values not in W3C Datetime "
                            "format ignored")
    return reader.kind or "", fault


def _read_text(chunks: Iterable[bytes], out: _Collector, cut: list[bool]) -> str | None:
    """A text sitemap: one URL a line (sitemaps.org: "The text file must have one URL per
    line ... must use UTF-8 encoding").  Split on white space (a URL has none), in C: 50 MB of
    blank lines cost no Python loop.  A last URL without white space after it is used only when
    the file was read to its end (``cut[0]`` False after the chunks are consumed)."""
    rest = b""
    bad_utf8 = 0
    skipping = False  # inside a "URL" too long to be one: dropped up to the next white space
    too_long = f"URL of {MAX_LOC_CHARS} characters or more"
    try:
        for chunk in chunks:
            data = rest + chunk
            tokens = data.split()
            rest = tokens.pop() if tokens and not data[-1:].isspace() else b""
            if skipping and tokens and not data[:1].isspace():
                tokens.pop(0)  # the end of the overlong one
            if tokens or data[-1:].isspace():
                skipping = False
            for token in tokens:
                bad_utf8 += _text_line(token, out)
            if len(rest) > 4 * MAX_LOC_CHARS:
                if not skipping:
                    out.drop(too_long, rest[:120].decode("utf-8", "replace"))
                skipping, rest = True, b""
        if skipping:
            pass
        elif rest and not cut[0]:
            bad_utf8 += _text_line(rest, out)
        elif rest:
            out.problems.append("the last line is cut before its end; not used")
    except _Stop:
        pass
    if bad_utf8:
        out.problems.append(f"{bad_utf8:,} lines not valid UTF-8 dropped")
    return None


def _text_line(raw: bytes, out: _Collector) -> int:
    try:
        line = raw.decode("utf-8").strip(_WS + "\ufeff")
    except UnicodeDecodeError:
        return 1
    if line:
        out.add(line, "URL")
    return 0


def parse_sitemap(body: bytes, source: SitemapSource | str, *, received_all: bool = True,
                  max_urls: int = MAX_URLS, max_bytes: int = MAX_BYTES,
                  budget_urls: int | None = None) -> SitemapFile:
    """Read one sitemap body (after HTTP content-codings are undone; a gzip *file* is undone
    here).  Never raises for bytes input.

    ``source``: the sitemap's URL, or a :class:`SitemapSource` when robots.txt vouched for it.
    ``received_all``: False when the transfer stopped early (e.g. at a download cap): entries
    before the cut are kept, the file is not complete.  ``max_urls``/``max_bytes``: per-file
    limits (the protocol's by default); ``budget_urls``: how many more URLs the origin's budget
    takes (None: no budget).
    """
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError(f"body must be bytes, not {type(body).__name__}")
    if isinstance(source, str):
        source = SitemapSource(source)
    body = bytes(body)
    out = _Collector(source, max_urls, budget_urls)
    stream = _Input(body, max_bytes)
    problems: list[str] = []
    if not received_all:
        problems.append(f"transfer stopped after {len(body):,} bytes: only the entries read "
                        "before the cut are used")
    chunks = stream.chunks()
    head = b""
    for chunk in chunks:  # enough of the start to tell the format
        head += chunk
        if head.lstrip(b" \t\r\n\xef\xbb\xbf") or len(head) > _CHUNK:
            break
    if stream.gzipped and head[:2] == _GZIP_MAGIC:
        problems.append("gzip inside gzip: not undone")
        return _result(source, "", out, problems, stream, complete=False)
    if not head.strip(b" \t\r\n"):
        why = stream.fault or ("empty body" if not head else
                               f"nothing but white space in the first {len(head):,} bytes")
        problems.append(f"{why}: no entries")
        return _result(source, "", out, problems, stream, complete=False)

    def rest() -> Iterator[bytes]:
        yield head
        yield from chunks

    cut = [False]
    utf8 = False
    feed: Iterable[bytes] = rest()
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or head[:4] == b"\x00\x00\xfe\xff":
        converted, note = utf8_from_bom(b"".join(rest()))
        problems.append(f"{note} (sitemaps.org: sitemaps are UTF-8)")
        feed, utf8 = [converted], True
        head = converted.lstrip(b" \t\r\n\xef\xbb\xbf")[:1]
    if head.lstrip(b" \t\r\n\xef\xbb\xbf")[:1] == b"<":
        stripped = head.lstrip(b" \t\r\n")
        if not utf8 and stripped != head:
            # an XML declaration must come first; real sitemaps start with blank lines
            # (Scrapy's test_sitemap_blanklines)
            problems.append(f"{len(head) - len(stripped)} bytes of white space before the XML "
                            "skipped")
            head = stripped

            def rest_stripped() -> Iterator[bytes]:
                yield head
                yield from chunks

            feed = rest_stripped()
        kind, fault = _read_xml(feed, out, utf8=utf8)
    else:
        kind = "text"

        def marked(chunks_: Iterable[bytes]) -> Iterator[bytes]:
            yield from chunks_
            cut[0] = bool(stream.fault or stream.over or not received_all)

        fault = _read_text(marked(feed), out, cut)
    if stream.fault:  # the input fault explains any XML error it caused
        fault = stream.fault
    if fault:
        problems.append(f"{fault}; the {len(out.entries):,} entries read before it kept"
                        if out.entries else fault)
    if stream.over:
        problems.append(f"over the {max_bytes:,}-byte limit uncompressed"
                        f"{' (sitemaps.org)' if max_bytes == MAX_BYTES else ''}: read to there")
    if stream.note:
        problems.append(stream.note)
    complete = (received_all and not fault and not stream.over and out.limit is None
                and stream.note is None
                and kind != "")
    return _result(source, kind, out, problems, stream, complete)


def _result(source: SitemapSource, kind: str, out: _Collector, problems: list[str],
            stream: _Input, complete: bool) -> SitemapFile:
    if out.limit:
        problems.append(out.limit)
    problems.extend(out.problems)
    problems.extend(out.drop_problems())
    if len(problems) > MAX_LISTED_PROBLEMS:
        extra = len(problems) - MAX_LISTED_PROBLEMS
        problems = problems[:MAX_LISTED_PROBLEMS] + [f"... and {extra} more problems"]
    entries = tuple(out.entries)
    index = kind == "sitemapindex"
    return SitemapFile(url=source.url, kind=kind, urls=() if index else entries,
                       sitemaps=entries if index else (), problems=tuple(problems),
                       complete=complete, dropped=out.dropped(), size=stream.size,
                       gzipped=stream.gzipped)
