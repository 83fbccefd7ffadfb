"""Sitemaps: the walk over an origin's sitemaps, its limits and config, and ``<lastmod>``.

Sans-IO, as :mod:`crawler.optout`: no Scrapy, no Twisted, no clock, nothing opened.
:class:`SitemapWalk` is the per-origin state machine the glue drives: which sitemap to fetch
next (a :class:`~crawler.corpus.sitemap_reader.SitemapSource`), what a fetched body adds (read
by :func:`crawler.corpus.sitemap_reader.parse_sitemap`, which holds the formats, the per-file
limits and the location rule), within a nesting depth (:data:`MAX_DEPTH` levels below the
sitemap first named) and a total budget per origin (:class:`SitemapLimits`: files, URLs and
uncompressed bytes). :func:`sitemap_config` and :func:`sitemap_limits` validate the
``sitemaps:`` config and the ``POLITE_SITEMAPS`` setting; :func:`lastmod_not_after` tells
whether a ``<lastmod>`` is certainly not after a corpus time (a page not to fetch again).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urljoin

from crawler.corpus.sitemap_reader import (
    MAX_BYTES,
    MAX_URLS,
    SitemapFile,
    SitemapSource,
    parse_sitemap,
    split_location,
)

__all__ = [
    "MAX_DEPTH", "SitemapLimits", "SitemapWalk", "lastmod_not_after", "sitemap_config",
    "sitemap_limits",
]

#: index levels followed below the sitemap first named (robots.txt or config)
MAX_DEPTH = 3


# --- the walk over an origin's sitemaps ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class SitemapLimits:
    """Bounds of one origin's sitemap walk (defaults: see the README, "Sitemaps")."""

    max_depth: int = MAX_DEPTH           # index levels below the sitemaps first named
    max_files: int = 100                 # sitemap files fetched per origin
    max_urls: int = 250_000              # page URLs kept per origin
    max_bytes: int = 256 * 1024 * 1024   # uncompressed bytes read per origin
    max_file_urls: int = MAX_URLS
    max_file_bytes: int = MAX_BYTES


class SitemapWalk:
    """One origin's sitemaps: which to fetch next, and what each fetched body adds.

    The glue calls :meth:`add_from_robots` (or :meth:`add`), then repeatedly :meth:`next` for
    a :class:`SitemapSource` to fetch and :meth:`feed` with its body (or :meth:`failed`); the
    :class:`SitemapFile` ``feed`` returns holds the page URLs to schedule.  Child sitemaps of an
    index are queued here, within the depth and the origin's budget, each URL once.
    """

    def __init__(self, origin: str, limits: SitemapLimits = SitemapLimits()) -> None:
        self.origin = origin
        self.limits = limits
        self.queue: list[SitemapSource] = []
        self.seen: set[str] = set()
        self.files = 0
        self.urls = 0
        self.bytes = 0
        self.problems: list[str] = []

    def add(self, url: str, vouched_by: Iterable[str] = ()) -> None:
        """A sitemap named by the config (no robots.txt vouches for it unless told)."""
        if split_location(url) is None:
            self.problems.append(f"sitemap {url[:120]!r}: not an absolute http(s) URL; ignored")
            return
        self._queue(SitemapSource(url, 0, tuple(vouched_by)))

    def add_from_robots(self, robots_url: str, sitemaps: Iterable[str]) -> None:
        """The ``Sitemap:`` lines of the robots.txt at ``robots_url``
        (:attr:`crawler.optout.robots.RobotsFile.sitemaps`): each may list any URL of the
        robots.txt's origin (cross submission).  A relative one is resolved against
        ``robots_url`` (problem noted: sitemaps.org asks for a full URL)."""
        split = split_location(robots_url)
        if split is None:
            self.problems.append(f"robots.txt URL {robots_url!r} is not http(s); its sitemaps "
                                 "ignored")
            return
        for url in sitemaps:
            if "\ufffd" in url:  # the robots.txt parser's stand-in for bytes not UTF-8
                self.problems.append(f"robots.txt sitemap {url[:120]!r}: not valid UTF-8; "
                                     "ignored")
                continue
            resolved = urljoin(robots_url, url.strip())  # as Scrapy: HTTP:// -> http://
            if split_location(resolved) is None:
                self.problems.append(f"robots.txt sitemap {url[:120]!r}: not an http(s) URL; "
                                     "ignored")
                continue
            if split_location(url.strip()) is None:
                self.problems.append(f"robots.txt sitemap {url[:120]!r} is relative; read as "
                                     f"{resolved!r}")
            self._queue(SitemapSource(resolved, 0, (split[0],)))

    def _queue(self, source: SitemapSource) -> bool:
        if source.url in self.seen:
            return False
        self.seen.add(source.url)
        self.queue.append(source)
        return True

    def next(self) -> SitemapSource | None:
        """The next sitemap to fetch (breadth first), or None: done or the file budget spent."""
        if not self.queue:
            return None
        if self.files >= self.limits.max_files:
            self.problems.append(f"the budget of {self.limits.max_files} sitemap files per "
                                 f"origin is spent: {len(self.queue)} not fetched")
            self.queue.clear()
            return None
        if self.urls >= self.limits.max_urls or self.bytes >= self.limits.max_bytes:
            self.problems.append(f"the origin's sitemap budget is spent: {len(self.queue)} "
                                 "sitemaps not fetched")
            self.queue.clear()
            return None
        self.files += 1
        return self.queue.pop(0)

    def feed(self, source: SitemapSource, body: bytes, *, received_all: bool = True
             ) -> SitemapFile:
        """Read the fetched body of ``source``; queue an index's children."""
        limits = self.limits
        f = parse_sitemap(body, source, received_all=received_all,
                          max_urls=limits.max_file_urls,
                          max_bytes=max(0, min(limits.max_file_bytes,
                                               limits.max_bytes - self.bytes)),
                          budget_urls=max(0, limits.max_urls - self.urls))
        self.bytes += f.size
        self.urls += len(f.urls)
        if f.sitemaps:
            depth = source.depth + 1
            if depth > limits.max_depth:
                f = _with_problem(f, f"index nested {depth} deep lists {len(f.sitemaps):,} "
                                     f"sitemaps: not followed (nesting limit {limits.max_depth})")
            else:
                for entry in f.sitemaps:
                    self._queue(SitemapSource(entry.loc, depth, source.vouched_by))
        return f

    def failed(self, source: SitemapSource, reason: str) -> None:
        """The fetch of ``source`` failed or was refused (a reservation, a 404 ...)."""
        self.problems.append(f"sitemap {source.url}: {reason}")

    @property
    def done(self) -> bool:
        return not self.queue


def _with_problem(f: SitemapFile, problem: str) -> SitemapFile:
    return SitemapFile(f.url, f.kind, f.urls, f.sitemaps, f.problems + (problem,), False,
                       f.dropped, f.size, f.gzipped)


# --- config ----------------------------------------------------------------------------------

_CONFIG_KEYS = {"follow": bool, "max_depth": int, "max_files_per_origin": int,
                "max_urls_per_origin": int, "max_bytes_per_origin": int}


def sitemap_config(value: object, key: str = "sitemaps") -> SitemapLimits | None:
    """``sitemaps: {follow: true, max_depth: 3, max_files_per_origin: 100,
    max_urls_per_origin: 250000, max_bytes_per_origin: 268435456}`` (or ``sitemaps: true``,
    the defaults) validated; None when absent, false, or ``follow`` is false.  Raises
    ValueError naming the key (``sitemaps.max_depth: ...``)."""
    if value is None or value is False:
        return None
    if value is True:
        return SitemapLimits()
    if not isinstance(value, dict):
        raise ValueError(f"{key}: expected true/false or a mapping such as {{follow: true, "
                         "max_depth: 3}")
    for name in value:
        if name not in _CONFIG_KEYS:
            raise ValueError(f"{key}.{name}: unknown key (known: {', '.join(_CONFIG_KEYS)})")
    follow = value.get("follow", True)
    if not isinstance(follow, bool):
        raise ValueError(f"{key}.follow: expected true/false")
    numbers = {"max_depth": (MAX_DEPTH, 0, 10),
               "max_files_per_origin": (100, 1, 100_000),
               "max_urls_per_origin": (250_000, 1, 100_000_000),
               "max_bytes_per_origin": (256 * 1024 * 1024, 1, 1 << 40)}
    got = {}
    for name, (default, lo, hi) in numbers.items():
        n = value.get(name, default)
        if isinstance(n, bool) or not isinstance(n, int) or not lo <= n <= hi:
            raise ValueError(f"{key}.{name}: a whole number from {lo:,} to {hi:,}")
        got[name] = n
    if not follow:
        return None
    return SitemapLimits(max_depth=got["max_depth"], max_files=got["max_files_per_origin"],
                         max_urls=got["max_urls_per_origin"],
                         max_bytes=got["max_bytes_per_origin"])


def sitemap_limits(value: object, key: str = "POLITE_SITEMAPS") -> SitemapLimits | None:
    """The ``POLITE_SITEMAPS`` setting (what ``sitemaps:`` becomes, or what a Scrapy project
    sets) validated: None/false = off; true or ``{}`` = the defaults; a mapping of
    :class:`SitemapLimits` fields (``max_depth``, ``max_files``, ``max_urls``, ``max_bytes``,
    ``max_file_urls``, ``max_file_bytes``) or of the config's names (``max_files_per_origin``
    ...). ValueError names the key at fault."""
    if value is None or value is False or value is True:
        return sitemap_config(value, key)
    if isinstance(value, str):  # ``-s POLITE_SITEMAPS=true`` (Scrapy's getbool words)
        word = value.strip().lower()
        if word.startswith("{"):  # a JSON mapping, as Scrapy's getdict reads one
            import json

            try:
                return sitemap_limits(json.loads(value), key)
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
        if word in ("true", "1", "yes", "on"):
            return SitemapLimits()
        if word in ("false", "0", "no", "off", "none", ""):
            return None
        raise ValueError(f"{key}: expected true/false or a mapping, got {value!r}")
    if not isinstance(value, dict):
        raise ValueError(f"{key}: expected true/false or a mapping, got {type(value).__name__}")
    fields = {"max_depth": (0, 10), "max_files": (1, 100_000), "max_urls": (1, 100_000_000),
              "max_bytes": (1, 1 << 40), "max_file_urls": (1, MAX_URLS),
              "max_file_bytes": (1, MAX_BYTES)}
    if set(value) - set(fields):
        return sitemap_config(value, key)  # the config's names (or an unknown key named)
    got = {}
    for name, n in value.items():
        lo, hi = fields[name]
        if isinstance(n, bool) or not isinstance(n, int) or not lo <= n <= hi:
            raise ValueError(f"{key}.{name}: a whole number from {lo:,} to {hi:,}")
        got[name] = n
    return SitemapLimits(**got)


_LASTMOD = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
                      r"(Z|[+-]\d{2}:\d{2}))?)?)?")


def _lastmod_end(value: str) -> tuple[int, ...] | None:
    """The latest UTC instant a W3C Datetime can mean, as a comparable tuple (a date stands
    for its whole day, a month for the month ...), or None when it is not one."""
    import calendar
    from datetime import datetime, timedelta, timezone

    m = _LASTMOD.fullmatch(value.strip())
    if m is None:
        return None
    year, month, day, hh, mm, ss, frac, tz = m.groups()
    try:
        if hh is None:
            y, mo = int(year), int(month or 12)
            d = int(day) if day else calendar.monthrange(y, mo)[1]
            end = datetime(y, mo, d, tzinfo=timezone.utc) + timedelta(days=1)
        else:
            offset = timedelta(0)
            if tz != "Z":
                sign = 1 if tz[0] == "+" else -1
                offset = sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
            end = datetime(int(year), int(month), int(day), int(hh), int(mm), int(ss or 0),
                           int((frac or "0")[:6].ljust(6, "0")),
                           tzinfo=timezone.utc) - offset
            if ss is None:
                end += timedelta(minutes=1)
            elif frac is None:
                end += timedelta(seconds=1)
    except (ValueError, OverflowError):
        return None
    return end.utctimetuple()[:6] + (end.microsecond,)


def lastmod_not_after(lastmod: str | None, fetched_at: str | None) -> bool:
    """Is a sitemap ``<lastmod>`` certainly not after ``fetched_at`` (our corpus time,
    ``YYYY-MM-DDTHH:MM:SS.ffffffZ``)? A value that is missing or unreadable, or coarse enough
    to reach past ``fetched_at`` (``2024-05-01`` means up to the end of that day), is not:
    in doubt, the page is fetched again."""
    if not lastmod or not fetched_at:
        return False
    end, fetched = _lastmod_end(lastmod), _lastmod_end(fetched_at)
    if end is None or fetched is None or "T" not in fetched_at:
        return False
    # fetched_at's own end adds its precision (1 us); compare with the instant itself
    return end <= fetched
