"""Opt-out registries: lists of domains, origins and URL prefixes whose owners refuse AI training.

Three parts, I/O only at the edges:

* the entry syntax and matching (:func:`parse_entry`, :func:`parse_list`, :func:`canonical_url`)
  and the in-memory :class:`RegistryIndex` -- pure: bytes or strings in, values out;
* :class:`SqliteRegistry`, the same lookups over an SQLite file built by :func:`import_list`
  (for lists too big to load per crawl), and :func:`open_registry`, which picks one by content;
* a sans-IO codec for Spawning's "Do Not Train" API (:data:`SPAWNING_PATH`,
  :func:`spawning_request_body`, :func:`parse_spawning_response`), which the HTTP client and
  :mod:`crawler.registry.server` share.

Entry syntax (one entry per line of a UTF-8 text list)
------------------------------------------------------
* ``example.com`` -- a **domain**: that host and every host below it (``a.b.example.com``), but
  not ``badexample.com`` nor ``example.com.evil.org``.  Any scheme and port.  A leading ``*.``
  or ``.`` means the same and is reported as a problem; a name without a dot is refused
  (``foo``) except ``localhost``; an IP address (``192.0.2.1``, ``[2001:db8::1]``) covers
  exactly that host.
* ``https://example.com``, ``http://example.com:8080`` -- an **origin** (scheme, host, port; no
  path, or only ``/``): exactly that origin.  ``http`` and ``https`` are different origins.
* ``https://example.com/path/`` -- a **URL prefix** (a path beyond ``/``, or a query): every URL
  of that origin whose path (and query) starts with it, as a string: ``https://example.com/img``
  covers ``/img/a.png`` and ``/imgs/``.  Paths are case-sensitive.

Both entries and looked-up URLs are normalised the same way: scheme and host lower-cased,
internationalised host names converted to punycode (IDNA 2003, the stdlib ``idna`` codec), one
trailing dot removed from the host, an IPv6 address compressed and an IPv4-mapped one
(``[::ffff:192.0.2.1]``) read as the IPv4 address -- the host as
:func:`crawler.policy.network.normalize_host` gives it, as for the network guard and the per-origin
keys --, the default port dropped, user info dropped, an empty path
read as ``/``, percent-escapes upper-cased (``%2f`` -> ``%2F``, nothing decoded), characters
that are not allowed in a URL (non-ASCII, spaces, ``"<>\\^`{|}``) percent-encoded as UTF-8, and
the fragment dropped.

A lookup returns the most specific entry that covers the URL: the longest matching prefix,
else the origin, else the longest matching domain.  A URL that is not ``http``/``https`` or that
cannot be parsed matches nothing.

Lists: ``#`` starts a comment at the start of a line or after whitespace (``https://a.com/#x``
keeps its ``#``: a fragment, dropped); blank lines are skipped; a UTF-8 byte-order mark is
allowed.  A line that cannot be read becomes a problem (``"line 7: ..."``) and is skipped:
:func:`parse_list` never raises.  At most :data:`MAX_LIST_PROBLEMS` problems are listed.  When a
value appears twice, the first line is kept.
"""

from __future__ import annotations

import bisect
import contextlib
import ipaddress
import json
import os
import re
import sqlite3
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, urlsplit

from crawler.policy.network import normalize_host

__all__ = [
    "MAX_ENTRY_LENGTH",
    "MAX_LIST_PROBLEMS",
    "SPAWNING_PATH",
    "RegistryEntry",
    "RegistryFormatError",
    "RegistryIndex",
    "RegistryList",
    "SqliteRegistry",
    "canonical_url",
    "import_list",
    "open_registry",
    "parse_entry",
    "parse_list",
    "parse_spawning_request",
    "parse_spawning_response",
    "spawning_request_body",
]

#: Longest entry accepted, in characters (after the comment is removed).
MAX_ENTRY_LENGTH = 2048
#: At most this many problems are listed for one list; the rest are counted in a last line.
MAX_LIST_PROBLEMS = 1000

KINDS = ("domain", "origin", "prefix")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_UTF8_BOM = b"\xef\xbb\xbf"
_SQLITE_MAGIC = b"SQLite format 3\x00"

_URL_START_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_ASCII_HOST_RE = re.compile(r"[a-z0-9_\-]+(?:\.[a-z0-9_\-]+)*")
_PCT_RE = re.compile(r"%[0-9a-fA-F]{2}")
#: Characters that stay as they are in a normalised path/query (RFC 3986 unreserved, reserved
#: and "%"); anything else is percent-encoded.
_URL_SAFE = "-._~!$&'()*+,;=:@/?%[]"
_NEEDS_QUOTING_RE = re.compile(r"[^A-Za-z0-9\-._~!$&'()*+,;=:@/?%\[\]]")
_COMMENT_RE = re.compile(r"\s#")
_SPACE_RE = re.compile(r"\s")
#: An http(s) URL with a plain host (no user info, IPv6, empty port, tab or line break): the
#: groups are what ``urlsplit`` would give (scheme, host, port, path, query).
_PLAIN_URL_RE = re.compile(
    r"(https?)://([A-Za-z0-9_.\-]+)(?::([0-9]+))?([/][^?#\t\r\n]*)?(?:\?([^#\t\r\n]*))?"
    r"(?:#[^\t\r\n]*)?\Z")


# --- entries ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """One registry entry.

    ``kind`` is ``domain``, ``origin`` or ``prefix``; ``value`` is the normalised form that is
    matched (``example.com``, ``https://example.com:8443``, ``https://example.com/a/``); ``raw``
    is the entry as written; ``line`` the 1-based line of the list it came from (None when it
    came from elsewhere).
    """

    kind: str
    value: str
    raw: str
    line: int | None = None

    def describe(self) -> str:
        """``"domain example.com (line 3)"`` -- for logs and audit records."""
        where = f" (line {self.line})" if self.line is not None else ""
        return f"{self.kind} {self.value}{where}"


@dataclass(frozen=True, slots=True)
class RegistryList:
    """A parsed text list: the entries in list order and what had to be skipped or noted."""

    entries: tuple[RegistryEntry, ...]
    problems: tuple[str, ...]


class RegistryFormatError(ValueError):
    """A file given as a registry database is not one (or not a version this code reads)."""


def _normalize_host(host: str) -> tuple[str, bool]:
    """(normalised host, is an IP address); raises ValueError naming what is wrong.

    The normal form is :func:`crawler.policy.network.normalize_host`'s (the one the network guard and
    the origin keys use), with an IPv6 address put back in brackets; this adds the checks.
    """
    if not host:
        raise ValueError("empty host")
    if host[0] == "[":
        if host[-1] != "]":
            raise ValueError(f"host {host!r}: unclosed '['")
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"host {host!r} is not an IPv6 address") from None
        h = normalize_host(host)
        return (f"[{h}]" if ":" in h else h), True  # IPv4-mapped: the IPv4 address
    if ":" in host:
        raise ValueError(f"host {host!r} has characters not allowed in a host name")
    h = normalize_host(host)
    if not h.isascii():
        raise ValueError(f"host {host!r} is not a valid internationalised name (IDNA)")
    if not _ASCII_HOST_RE.fullmatch(h):
        if not h or ".." in h or h[0] == "." or h[-1] == ".":
            raise ValueError(f"host {host!r} has an empty label")
        raise ValueError(f"host {host!r} has characters not allowed in a host name")
    if len(h) > 63 and (len(h) > 253 or any(len(label) > 63 for label in h.split("."))):
        raise ValueError(f"host {host!r} is too long (253 characters, 63 per label)")
    last = h[h.rfind(".") + 1:]
    if last.isdigit():
        try:
            return str(ipaddress.IPv4Address(h)), True
        except ValueError:
            raise ValueError(f"host {host!r} is neither a name nor an IPv4 address") from None
    return h, False


def _normalize_path(pq: str) -> str:
    if _NEEDS_QUOTING_RE.search(pq):
        pq = quote(pq, safe=_URL_SAFE)
    if "%" in pq:
        pq = _PCT_RE.sub(lambda m: m.group(0).upper(), pq)
    return pq


def _split_url(url: str) -> tuple[str, str, bool, str]:
    """(origin, host, host is an IP, path+query), normalised; raises ValueError."""
    m = _PLAIN_URL_RE.match(url)
    if m is not None:  # the common shape, split as urlsplit would, without its overhead
        scheme, host, port_text, path, query = m.groups()
        default_port = _DEFAULT_PORTS[scheme]
    else:
        parts = urlsplit(url)
        scheme, path, query = parts.scheme, parts.path, parts.query
        default_port = _DEFAULT_PORTS.get(scheme, 0)
        if not default_port:
            raise ValueError(f"{url!r}: only http and https URLs can be registry entries "
                             f"or looked up" if scheme else f"{url!r} has no scheme")
        hostport = parts.netloc.rpartition("@")[2]
        if hostport[:1] == "[":
            end = hostport.find("]") + 1
            host, port_text = hostport[:end], hostport[end:]
            if port_text and port_text[0] != ":":
                raise ValueError(f"{url!r}: junk after the IPv6 address")
            port_text = port_text[1:]
        else:
            host, _, port_text = hostport.partition(":")
        if not host:
            raise ValueError(f"{url!r} has an empty host")
    host, is_ip = _normalize_host(host)
    port = None
    if port_text:
        if not (port_text.isascii() and port_text.isdigit()):
            raise ValueError(f"{url!r}: port {port_text!r} is not a number")
        port = int(port_text)
        if not 0 < port < 65536:
            raise ValueError(f"{url!r}: port {port} is out of range")
        if port == default_port:
            port = None
    origin = f"{scheme}://{host}" if port is None else f"{scheme}://{host}:{port}"
    pq = path or "/"
    if query:
        pq = f"{pq}?{query}"
    return origin, host, is_ip, _normalize_path(pq)


def canonical_url(url: str) -> str:
    """The normalised form of an ``http``/``https`` URL, as matched against entries.

    Raises ValueError (with the reason) when the URL cannot be looked up.  Like the lookups,
    it takes the URL as given: surrounding whitespace is not removed.
    """
    origin, _host, _is_ip, pq = _split_url(url)
    return origin + pq


def _parse_entry(text: str, line: int | None) -> tuple[RegistryEntry, str | None]:
    """(entry, note about the way it was written or None); raises ValueError."""
    t = text.strip()
    if not t:
        raise ValueError("empty entry")
    if len(t) > MAX_ENTRY_LENGTH:
        raise ValueError(f"entry is longer than {MAX_ENTRY_LENGTH} characters")
    shown = t if len(t) <= 80 else t[:77] + "..."
    if _SPACE_RE.search(t):
        raise ValueError(f"{shown!r} contains whitespace (one entry per line)")
    if _URL_START_RE.match(t):
        try:
            origin, _host, _is_ip, pq = _split_url(t)
        except ValueError as exc:
            raise ValueError(str(exc).replace(repr(t), repr(shown))) from None
        if pq == "/":
            return RegistryEntry("origin", origin, t, line), None
        return RegistryEntry("prefix", origin + pq, t, line), None
    if ("/" in t or ":" in t) and not (t[0] == "[" and t[-1] == "]"):
        head = t.split(":", 1)[0].lower()
        if head in _DEFAULT_PORTS:
            raise ValueError(f"{shown!r}: write {head}://host/...")
        if "/" not in t and "." not in head and head not in ("localhost", ""):
            raise ValueError(f"{shown!r}: unsupported scheme {head!r} (only http and https)")
        raise ValueError(f"{shown!r}: a path or port needs a scheme, e.g. 'https://{t}'; "
                         f"a domain entry is a bare host name")
    note = None
    if t.startswith(("*.", ".")):
        host_text = t[2:] if t[0] == "*" else t[1:]
        note = (f"{t!r}: the leading {t[:len(t) - len(host_text)]!r} is not needed "
                f"(a domain covers its subdomains); read as {host_text!r}")
    else:
        host_text = t
    try:
        host, is_ip = _normalize_host(host_text)
    except ValueError as exc:
        raise ValueError(f"{shown!r}: {exc}") from None
    if not is_ip and "." not in host and host != "localhost":
        raise ValueError(f"{shown!r} is not a domain name (no dot); a whole top-level "
                         f"domain cannot be an entry")
    return RegistryEntry("domain", host, t, line), note


def parse_entry(text: str, line: int | None = None) -> RegistryEntry:
    """Parse one entry (no comment); raises ValueError saying what is wrong with it."""
    return _parse_entry(text, line)[0]


class _Problems:
    """Collects problems up to :data:`MAX_LIST_PROBLEMS`, then only counts them."""

    def __init__(self) -> None:
        self.listed: list[str] = []
        self.extra = 0

    def add(self, text: str) -> None:
        if len(self.listed) < MAX_LIST_PROBLEMS:
            self.listed.append(text)
        else:
            self.extra += 1

    def result(self) -> tuple[str, ...]:
        if self.extra:
            return (*self.listed, f"... and {self.extra} more problems not listed")
        return tuple(self.listed)


def _iter_entries(lines: Iterable[bytes], problems: _Problems) -> Iterator[RegistryEntry]:
    """Entries of a list given as byte lines (without line ends); problems go to ``problems``."""
    for number, data in enumerate(lines, 1):
        if number == 1 and data.startswith(_UTF8_BOM):
            data = data[3:]
        try:
            text = data.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            problems.add(f"line {number}: not UTF-8 ({exc.reason} at byte {exc.start})")
            continue
        if not text or text[0] == "#":
            continue
        if "#" in text:
            m = _COMMENT_RE.search(text)
            if m:
                text = text[:m.start()].rstrip()
        try:
            entry, note = _parse_entry(text, number)
        except ValueError as exc:
            problems.add(f"line {number}: {exc}")
            continue
        if note:
            problems.add(f"line {number}: {note}")
        yield entry


def _file_lines(f: BinaryIO) -> Iterator[bytes]:
    """Lines of a binary file split like ``bytes.splitlines`` (LF, CRLF, CR), streamed."""
    for chunk in f:
        if b"\r" in chunk:
            yield from chunk.splitlines()
        else:
            yield chunk[:-1] if chunk.endswith(b"\n") else chunk


def parse_list(data: bytes) -> RegistryList:
    """Parse a text list.  Never raises for ``bytes`` input: bad lines become ``problems``."""
    problems = _Problems()
    entries = tuple(_iter_entries(bytes(data).splitlines(), problems))
    return RegistryList(entries, problems.result())


# --- in-memory index -------------------------------------------------------------------------


_MISSING: Any = object()


def _split_prefix(value: str) -> tuple[str, str]:
    """``https://h:1/p?q`` -> (``https://h:1``, ``/p?q``)."""
    cut = value.index("/", value.index("://") + 3)
    return value[:cut], value[cut:]


def _common_prefix_length(a: str, b: str) -> int:
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:  # largest k with a[:k] == b[:k]; each probe is one C-level comparison
        mid = (lo + hi + 1) // 2
        if a.startswith(b[:mid]):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _longest_prefix(paths: Sequence[str], s: str) -> int:
    """Index of the longest string of sorted ``paths`` that ``s`` starts with, or -1.

    The largest candidate <= ``s`` is either a prefix of ``s`` or differs from it at position
    k; every prefix of ``s`` longer than k would sort between the two, so the answer is a prefix
    of ``s[:k]`` and the search repeats on that shorter string.
    """
    hi = len(paths)
    while True:
        i = bisect.bisect_right(paths, s, 0, hi) - 1
        if i < 0:
            return -1
        candidate = paths[i]
        if s.startswith(candidate):
            return i
        s = s[:_common_prefix_length(candidate, s)]
        hi = i


class RegistryIndex:
    """An in-memory registry: built once from entries, read-only afterwards (thread-safe reads).

    Domains are found by walking the host's label suffixes (``a.b.c`` -> ``b.c`` -> ``c``) in a
    hash table, origins in another; URL prefixes are kept sorted per origin and searched with
    bisection.  ``problems`` holds the list's problems when built by :meth:`from_file`.
    """

    def __init__(self, entries: Iterable[RegistryEntry]) -> None:
        self._domains: dict[str, int | None] = {}
        self._origins: dict[str, int | None] = {}
        self._raw: dict[tuple[str, str], str] = {}
        prefixes: dict[str, dict[str, int | None]] = {}
        count = 0
        for entry in entries:
            kind, value = entry.kind, entry.value
            if kind == "domain":
                table = self._domains
            elif kind == "origin":
                table = self._origins
            elif kind == "prefix":
                origin, pq = _split_prefix(value)
                table = prefixes.setdefault(origin, {})
                if pq in table:
                    continue
                table[pq] = entry.line
                count += 1
                if entry.raw != value:
                    self._raw[kind, value] = entry.raw
                continue
            else:
                raise ValueError(f"unknown entry kind {kind!r} (expected one of {KINDS})")
            if value in table:
                continue
            table[value] = entry.line
            count += 1
            if entry.raw != value:
                self._raw[kind, value] = entry.raw
        self._prefixes: dict[str, tuple[list[str], list[int | None]]] = {}
        for origin, table in prefixes.items():
            paths = sorted(table)
            self._prefixes[origin] = (paths, [table[p] for p in paths])
        self._count = count
        self.problems: tuple[str, ...] = ()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> tuple[RegistryIndex, tuple[str, ...]]:
        """Load a text list (streamed line by line); returns (index, problems)."""
        problems = _Problems()
        with open(path, "rb") as f:
            index = cls(_iter_entries(_file_lines(f), problems))
        index.problems = problems.result()
        return index, index.problems

    def _entry(self, kind: str, value: str, line: int | None) -> RegistryEntry:
        return RegistryEntry(kind, value, self._raw.get((kind, value), value), line)

    def _match(self, origin: str, host: str, is_ip: bool, pq: str) -> RegistryEntry | None:
        group = self._prefixes.get(origin)
        if group is not None:
            i = _longest_prefix(group[0], pq)
            if i >= 0:
                return self._entry("prefix", origin + group[0][i], group[1][i])
        line = self._origins.get(origin, _MISSING)
        if line is not _MISSING:
            return self._entry("origin", origin, line)
        domains = self._domains
        if is_ip:
            line = domains.get(host, _MISSING)
            return None if line is _MISSING else self._entry("domain", host, line)
        h = host
        while True:
            line = domains.get(h, _MISSING)
            if line is not _MISSING:
                return self._entry("domain", h, line)
            dot = h.find(".")
            if dot < 0:
                return None
            h = h[dot + 1:]

    def lookup(self, url: str) -> RegistryEntry | None:
        """The most specific entry covering ``url``, or None (also for a URL that is invalid)."""
        try:
            origin, host, is_ip, pq = _split_url(url)
        except ValueError:
            return None
        return self._match(origin, host, is_ip, pq)

    def lookup_many(self, urls: Iterable[str]) -> dict[str, RegistryEntry | None]:
        """:meth:`lookup` for each URL."""
        return {url: self.lookup(url) for url in urls}

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return f"<RegistryIndex {self._count} entries>"


# --- SQLite backend --------------------------------------------------------------------------


_DB_FORMAT = "polite-crawler-registry"
_DB_VERSION = "1"
#: ``PRAGMA application_id`` of registry databases ("PCRg").
_DB_APPLICATION_ID = 0x50435267
_KIND_CODES = {"domain": 1, "origin": 2, "prefix": 3}
_CODE_KINDS = {code: kind for kind, code in _KIND_CODES.items()}
#: URLs per query of :meth:`SqliteRegistry.lookup_many` (each adds one compound SELECT term,
#: and SQLite allows 500 terms and 32766 parameters since 3.32).
_SQL_BATCH = 100

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE entries (
    kind INTEGER NOT NULL,   -- 1 domain, 2 origin, 3 prefix
    value TEXT NOT NULL,     -- normalised; ASCII, so BINARY order is Python's str order
    raw TEXT,                -- as written, NULL when equal to value
    line INTEGER             -- 1-based line in the list
);
CREATE TABLE problems (message TEXT NOT NULL);
"""


def _is_sqlite_file(path: str | os.PathLike[str]) -> bool:
    with open(path, "rb") as f:
        return f.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC


class SqliteRegistry:
    """The :class:`RegistryIndex` lookups over a database built by :func:`import_list`.

    The file is opened read-only (``mode=ro``); one connection, guarded by a lock, so an
    instance can be shared by the threads of a server.  Raises :class:`RegistryFormatError`
    when the file is not a registry database.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not _is_sqlite_file(self.path):
            raise RegistryFormatError(
                f"{self.path}: not an SQLite registry database (build one from a text list "
                f"with `polite-crawl registry import LIST DB`)")
        uri = self.path.resolve().as_uri() + "?mode=ro"
        self._lock = threading.Lock()
        self._con = sqlite3.connect(uri, uri=True, check_same_thread=False,
                                    cached_statements=256)
        try:
            self._con.execute("PRAGMA mmap_size = 268435456")  # reads without a syscall each
            app_id = self._con.execute("PRAGMA application_id").fetchone()[0]
            meta = {}
            if app_id == _DB_APPLICATION_ID:
                meta = dict(self._con.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("format") != _DB_FORMAT:
                raise RegistryFormatError(f"{self.path}: an SQLite file, but not a registry "
                                          f"database built by `polite-crawl registry import`")
            if meta.get("version") != _DB_VERSION:
                raise RegistryFormatError(f"{self.path}: registry database version "
                                          f"{meta.get('version')!r}; this code reads version "
                                          f"{_DB_VERSION} (re-import the list)")
            self._count = int(meta["entries"])
            self._has_prefixes = int(meta.get("prefixes", "1")) > 0
        except sqlite3.DatabaseError as exc:
            self._con.close()
            raise RegistryFormatError(f"{self.path}: not a readable registry database "
                                      f"({exc})") from None
        except BaseException:
            self._con.close()
            raise
        self.meta: dict[str, str] = meta

    @property
    def problems(self) -> tuple[str, ...]:
        """The problems found in the list when the database was built."""
        with self._lock:
            rows = self._con.execute("SELECT message FROM problems ORDER BY rowid").fetchall()
        return tuple(r[0] for r in rows)

    @staticmethod
    def _row_entry(row: tuple[int, str, str | None, int | None]) -> RegistryEntry:
        kind, value, raw, line = row
        return RegistryEntry(_CODE_KINDS[kind], value, value if raw is None else raw, line)

    def _prefix(self, low: str, s: str) -> RegistryEntry | None:
        """Longest prefix entry that ``s`` starts with, among those >= ``low`` (the origin and
        "/"): one query per step of :func:`_longest_prefix`."""
        while len(s) >= len(low):
            row = self._con.execute(
                "SELECT kind, value, raw, line FROM entries WHERE kind = 3 AND value <= ? "
                "AND value >= ? ORDER BY value DESC LIMIT 1", (s, low)).fetchone()
            if row is None:
                return None
            if s.startswith(row[1]):
                return self._row_entry(row)
            s = s[:_common_prefix_length(row[1], s)]
        return None

    def _lookup_batch(self, batch: Sequence[tuple[str, str, bool, str]],
                      ) -> list[RegistryEntry | None]:
        """Answers for split URLs, in one compound query (plus rare extra prefix steps).

        Per URL, the greatest prefix entry <= the URL within its origin; then every origin and
        domain candidate of the batch by exact (kind, value).
        """
        selects: list[str] = []
        params: list[str] = []
        wanted_domains: dict[str, None] = {}
        wanted_origins: dict[str, None] = {}
        candidates = []
        for i, (origin, host, is_ip, pq) in enumerate(batch):
            if self._has_prefixes:
                selects.append(f"SELECT {i}, * FROM (SELECT kind, value, raw, line FROM entries "
                               f"WHERE kind = 3 AND value <= ? AND value >= ? "
                               f"ORDER BY value DESC LIMIT 1)")
                params += (origin + pq, origin + "/")
            wanted_origins[origin] = None
            domains = [host]
            if not is_ip:
                h = host
                while (dot := h.find(".")) >= 0:
                    h = h[dot + 1:]
                    domains.append(h)
            wanted_domains.update(dict.fromkeys(domains))
            candidates.append(domains)
        for kind, values in ((2, wanted_origins), (1, wanted_domains)):
            marks = ",".join("?" * len(values))
            selects.append(f"SELECT -1, kind, value, raw, line FROM entries "
                           f"WHERE kind = {kind} AND value IN ({marks})")
            params += values
        prefix_rows: dict[int, tuple[Any, ...]] = {}
        found: dict[tuple[int, str], tuple[Any, ...]] = {}
        for row in self._con.execute(" UNION ALL ".join(selects), params):
            if row[0] >= 0:
                prefix_rows[row[0]] = row[1:]
            else:
                found[row[1], row[2]] = row[1:]
        out: list[RegistryEntry | None] = []
        for i, (origin, _host, _is_ip, pq) in enumerate(batch):
            entry = None
            row = prefix_rows.get(i)
            if row is not None:
                s = origin + pq
                if s.startswith(row[1]):
                    entry = self._row_entry(row)
                else:
                    entry = self._prefix(origin + "/", s[:_common_prefix_length(row[1], s)])
            if entry is None:
                exact = found.get((2, origin))
                if exact is None:
                    for domain in candidates[i]:  # longest first
                        exact = found.get((1, domain))
                        if exact is not None:
                            break
                if exact is not None:
                    entry = self._row_entry(exact)
            out.append(entry)
        return out

    def lookup(self, url: str) -> RegistryEntry | None:
        """The most specific entry covering ``url``, or None (also for a URL that is invalid)."""
        try:
            split = _split_url(url)
        except ValueError:
            return None
        with self._lock:
            return self._lookup_batch([split])[0]

    def lookup_many(self, urls: Iterable[str]) -> dict[str, RegistryEntry | None]:
        """:meth:`lookup` for each URL, asked :data:`_SQL_BATCH` URLs per query."""
        out: dict[str, RegistryEntry | None] = {}
        todo: list[tuple[str, tuple[str, str, bool, str]]] = []
        for url in urls:
            if url in out:
                continue
            out[url] = None
            try:
                todo.append((url, _split_url(url)))
            except ValueError:
                pass
        for i in range(0, len(todo), _SQL_BATCH):
            chunk = todo[i:i + _SQL_BATCH]
            with self._lock:
                answers = self._lookup_batch([split for _url, split in chunk])
            for (url, _split), entry in zip(chunk, answers, strict=True):
                out[url] = entry
        return out

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def __enter__(self) -> SqliteRegistry:  # noqa: PYI034 - py3.10 has no typing.Self
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<SqliteRegistry {self.path} {self._count} entries>"


def import_list(list_path: str | os.PathLike[str],
                db_path: str | os.PathLike[str]) -> tuple[int, tuple[str, ...]]:
    """Build (or atomically replace) a registry database from a text list.

    The database is written to a temporary file beside ``db_path`` and moved over it with
    ``os.replace`` only when complete, so readers see the old or the new database, never a
    half-built one.  Returns (entries in the database, problems of the list).
    """
    db_path = Path(db_path)
    problems = _Problems()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{db_path.name}.", suffix=".tmp",
                                    dir=db_path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        con = sqlite3.connect(tmp, isolation_level=None)
        try:
            con.executescript(
                f"PRAGMA application_id = {_DB_APPLICATION_ID};"
                "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
                "PRAGMA cache_size = -131072; PRAGMA temp_store = MEMORY;" + _SCHEMA)
            con.execute("BEGIN")
            with open(list_path, "rb") as f:
                con.executemany(
                    "INSERT INTO entries (kind, value, raw, line) VALUES (?, ?, ?, ?)",
                    ((_KIND_CODES[e.kind], e.value, None if e.raw == e.value else e.raw, e.line)
                     for e in _iter_entries(_file_lines(f), problems)))
            # Not a UNIQUE index: with journal_mode=OFF a failed CREATE cannot be rolled back.
            con.execute("CREATE INDEX entries_kind_value ON entries (kind, value)")
            if con.execute("SELECT 1 FROM entries GROUP BY kind, value HAVING COUNT(*) > 1 "
                           "LIMIT 1").fetchone():  # the same value twice: keep the first line
                con.execute("DELETE FROM entries WHERE rowid NOT IN "
                            "(SELECT MIN(rowid) FROM entries GROUP BY kind, value)")
            count = con.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
            n_prefixes = con.execute("SELECT COUNT(*) FROM entries WHERE kind = 3").fetchone()[0]
            result = problems.result()
            con.executemany("INSERT INTO problems (message) VALUES (?)", ((p,) for p in result))
            con.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [
                ("format", _DB_FORMAT), ("version", _DB_VERSION), ("entries", str(count)),
                ("prefixes", str(n_prefixes)), ("source", os.fspath(list_path))])
            con.execute("COMMIT")
        finally:
            con.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a registry is not a secret
        os.replace(tmp, db_path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return count, result


def open_registry(path: str | os.PathLike[str]) -> RegistryIndex | SqliteRegistry:
    """Open a registry by content: an SQLite database, else a text list (see ``.problems``)."""
    if _is_sqlite_file(path):
        return SqliteRegistry(path)
    return RegistryIndex.from_file(path)[0]


# --- Spawning "Do Not Train" API codec (sans-IO) ---------------------------------------------
#
# protocols.md §8.1, from the reference client datadiligence.rules.SpawningAPI: "POST
# .../api/v2/query/urls/", "body: the URLs, newline-separated, UTF-8"; "Response (200):
# {"urls": [{"url": "...", "optOut": true|false, "optIn": true|false}, ...]}"; "The client
# treats a URL as allowed iff optOut is false (so optOut: true, optIn: true -> excluded)".
# Ordering of the answers is not documented, so answers are matched by their "url" field.

SPAWNING_PATH = "/api/v2/query/urls"


def spawning_request_body(urls: Sequence[str]) -> bytes:
    """The request body for ``urls``: newline-separated UTF-8.

    Raises ValueError for an empty URL or one containing a line break (it would be read as
    several URLs, or none).
    """
    for url in urls:
        if not url or "\n" in url or "\r" in url:
            raise ValueError(f"cannot send {url!r} to a registry: empty or has a line break")
    return "\n".join(urls).encode("utf-8")


def parse_spawning_request(body: bytes) -> tuple[str, ...]:
    """The URLs of a request body (server side): one per line, blank lines skipped.

    Raises ValueError (a ``UnicodeDecodeError``) when the body is not UTF-8.
    """
    text = bytes(body).decode("utf-8")
    text = text.removeprefix("\ufeff")
    return tuple(s for line in text.split("\n") if (s := line.strip()))


def parse_spawning_response(body: bytes, urls: Sequence[str], *, status: int = 200,
                            ) -> tuple[dict[str, bool | None], tuple[str, ...]]:
    """Read an answer of the Spawning API about ``urls``.  Never raises.

    Returns (url -> True when opted out, False when not, None when the answer says nothing
    usable about it, problems).  ``optOut: true`` wins over ``optIn: true``.  Answers are
    matched to the asked URLs by their ``url`` field (exactly, else by :func:`canonical_url`);
    only when an answer has no ``url`` field and there are as many answers as URLs is it
    matched by position (noted).  A non-2xx ``status``, a body that is not JSON or not of the
    documented shape, and URLs the answer leaves out give None: the caller treats None as
    undecided and must not fetch (protocols.md §8.1 [REC], §8.6 vector 4).
    """
    result: dict[str, bool | None] = dict.fromkeys(urls)
    problems: list[str] = []
    if not 200 <= status < 300:
        return result, (f"HTTP {status}: no answer for {len(result)} URLs",)
    try:
        data = json.loads(bytes(body))
    except (ValueError, RecursionError, TypeError) as exc:
        problem = f"the answer is not JSON ({type(exc).__name__}); no answer for {len(result)} URLs"
        return result, (problem,)
    items = data.get("urls") if isinstance(data, dict) else None
    if not isinstance(items, list):
        what = "an object without a 'urls' list" if isinstance(data, dict) else \
            f"a JSON {type(data).__name__}"
        problem = f"the answer is {what}, not {{\"urls\": [...]}}; no answer for {len(result)} URLs"
        return result, (problem,)
    canonical: dict[str, str] | None = None
    positional = len(items) == len(urls)
    answered: dict[str, bool] = {}
    by_position = 0
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(f"answer #{position + 1} is not an object")
            continue
        opt_out = item.get("optOut")
        url = item.get("url")
        if url is None:
            if not positional:
                problems.append(f"answer #{position + 1} has no 'url' and the answer count "
                                f"({len(items)}) differs from the URL count ({len(urls)})")
                continue
            url = urls[position]
            by_position += 1
        elif not isinstance(url, str):
            problems.append(f"answer #{position + 1}: 'url' is not a string")
            continue
        elif url not in result:
            if canonical is None:
                canonical = {}
                for asked in urls:
                    with contextlib.suppress(ValueError):
                        canonical.setdefault(canonical_url(asked), asked)
            try:
                asked_url = canonical.get(canonical_url(url))
            except ValueError:
                asked_url = None
            if asked_url is None:
                problems.append(f"answer #{position + 1} is about {url[:200]!r}, "
                                f"which was not asked")
                continue
            url = asked_url
        if not isinstance(opt_out, bool):
            problems.append(f"answer #{position + 1} ({url[:200]}): 'optOut' is "
                            f"{opt_out!r}, not true/false")
            continue
        previous = answered.get(url)
        if previous is not None and previous != opt_out:
            problems.append(f"contradictory answers about {url[:200]}: read as opted out")
        answered[url] = opt_out or bool(previous)
    if by_position:
        problems.append(f"{by_position} answers had no 'url' field: matched by position")
    result.update(answered)
    missing = sum(1 for v in result.values() if v is None)
    if missing:
        problems.append(f"no usable answer for {missing} of {len(result)} URLs")
    return result, tuple(problems)
