"""Opt-out registries: the list grammar -- entries naming domains, origins and URL prefixes whose
owners refuse AI training, and the text lists that hold them.

Pure: bytes or strings in, values out (:func:`parse_entry`, :func:`parse_list`,
:func:`canonical_url`).  The lookups over parsed entries are :class:`~crawler.registry.index.
RegistryIndex` (in memory) and :class:`~crawler.registry.sqlite.SqliteRegistry` (an SQLite file
built by :func:`~crawler.registry.sqlite.import_list`); :mod:`crawler.registry.spawning` is the
codec of Spawning's "Do Not Train" API.  :func:`split_url`, :func:`iter_entries`,
:func:`file_lines` and :class:`Problems` are the pieces those modules share.

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

import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import quote, urlsplit

from crawler.policy.network import normalize_host

__all__ = [
    "MAX_ENTRY_LENGTH",
    "MAX_LIST_PROBLEMS",
    "RegistryEntry",
    "RegistryList",
    "canonical_url",
    "parse_entry",
    "parse_list",
]

#: Longest entry accepted, in characters (after the comment is removed).
MAX_ENTRY_LENGTH = 2048
#: At most this many problems are listed for one list; the rest are counted in a last line.
MAX_LIST_PROBLEMS = 1000

KINDS = ("domain", "origin", "prefix")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_UTF8_BOM = b"\xef\xbb\xbf"

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


def _normalize_host(host: str) -> tuple[str, bool]:
    """(normalised host, is an IP address); raises ValueError naming what is wrong.

    The normal form is :func:`crawler.policy.network.normalize_host`'s (the one the network
    guard and the origin keys use), with an IPv6 address put back in brackets; this adds the
    checks.
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


def split_url(url: str) -> tuple[str, str, bool, str]:
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
    origin, _host, _is_ip, pq = split_url(url)
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
            origin, _host, _is_ip, pq = split_url(t)
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


class Problems:
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


def iter_entries(lines: Iterable[bytes], problems: Problems) -> Iterator[RegistryEntry]:
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


def file_lines(f: BinaryIO) -> Iterator[bytes]:
    """Lines of a binary file split like ``bytes.splitlines`` (LF, CRLF, CR), streamed."""
    for chunk in f:
        if b"\r" in chunk:
            yield from chunk.splitlines()
        else:
            yield chunk[:-1] if chunk.endswith(b"\n") else chunk


def parse_list(data: bytes) -> RegistryList:
    """Parse a text list.  Never raises for ``bytes`` input: bad lines become ``problems``."""
    problems = Problems()
    entries = tuple(iter_entries(bytes(data).splitlines(), problems))
    return RegistryList(entries, problems.result())
