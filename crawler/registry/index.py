"""Opt-out registries: the in-memory index of a list's entries (:class:`RegistryIndex`).

Built once from :class:`~crawler.registry.entries.RegistryEntry` values (or a text list, read
by :meth:`RegistryIndex.from_file`), read-only afterwards.  A lookup returns the most specific
entry covering a URL, as :mod:`crawler.registry.entries` defines it.  :func:`common_prefix_length`
serves the SQLite store's prefix search too.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterable, Sequence
from typing import Any

from crawler.registry.entries import (
    KINDS,
    Problems,
    RegistryEntry,
    file_lines,
    iter_entries,
    split_url,
)

__all__ = ["RegistryIndex"]

_MISSING: Any = object()


def _split_prefix(value: str) -> tuple[str, str]:
    """``https://h:1/p?q`` -> (``https://h:1``, ``/p?q``)."""
    cut = value.index("/", value.index("://") + 3)
    return value[:cut], value[cut:]


def common_prefix_length(a: str, b: str) -> int:
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
        s = s[:common_prefix_length(candidate, s)]
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
        problems = Problems()
        with open(path, "rb") as f:
            index = cls(iter_entries(file_lines(f), problems))
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
            origin, host, is_ip, pq = split_url(url)
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
