"""What a report is made of: shares with their 95 % Wilson interval, ranked lists cut without
splitting a tie, and :class:`Table`, printed identically in Markdown, HTML and report.json.

Pure functions over counts; no file is read or written here (:mod:`crawler.publish.report`
writes the files).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date as _date
from typing import Any

__all__ = [
    "Z95",
    "ReportError",
    "Table",
    "fraction",
    "fraction_text",
    "intervals_overlap",
    "is_day",
    "n_range",
    "plural",
    "top_ranked",
    "wilson_interval",
]

#: z for a two-sided 95 % interval.
Z95 = 1.959963984540054


class ReportError(ValueError):
    """The inputs cannot make a report (unreadable, empty, surveys mixed with audit logs, or a
    time series of undated waves)."""


def wilson_interval(count: int, of: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of ``count/of`` as proportions (None for ``of`` 0)."""
    if of <= 0:
        return None
    p = count / of
    denom = 1 + z * z / of
    centre = (p + z * z / (2 * of)) / denom
    half = z * math.sqrt(p * (1 - p) / of + z * z / (4 * of * of)) / denom
    lo = 0.0 if count == 0 else max(0.0, centre - half)
    hi = 1.0 if count == of else min(1.0, centre + half)
    return lo, hi


def fraction(count: int, of: int) -> dict[str, Any]:
    """A share as report.json carries it (``ci95``: the 95 % Wilson interval in percent)."""
    percent = round(100.0 * count / of, 1) if of else None
    ci = wilson_interval(count, of)
    return {"count": count, "of": of, "percent": percent,
            "ci95": [round(100 * ci[0], 1), round(100 * ci[1], 1)] if ci else None,
            "text": fraction_text(count, of)}


def fraction_text(count: int, of: int) -> str:
    """``47/95 (49.5 % [39.6–59.3])``; ``0/0 (—)`` for an empty denominator."""
    ci = wilson_interval(count, of)
    if ci is None:
        return f"{count}/{of} (—)"
    return (f"{count}/{of} ({100.0 * count / of:.1f} % "
            f"[{100 * ci[0]:.1f}–{100 * ci[1]:.1f}])")


def intervals_overlap(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool | None:
    """Whether the 95 % intervals of two figures overlap (None when either is empty)."""
    x, y = wilson_interval(a["count"], a["of"]), wilson_interval(b["count"], b["of"])
    if x is None or y is None:
        return None
    return x[0] <= y[1] and y[0] <= x[1]


def top_ranked(items: Sequence[Any], key: Any, n: int) -> tuple[list[Any], int]:
    """The first ``n`` of ``items`` (already ranked), without cutting a group of equal
    ``key``: a tied group that crosses the cut is left out whole.  Returns (shown, left out
    at the cut)."""
    if len(items) <= n:
        return list(items), 0
    boundary = key(items[n])
    if n == 0 or key(items[n - 1]) != boundary:
        return list(items[:n]), 0
    cut = n
    while cut > 0 and key(items[cut - 1]) == boundary:
        cut -= 1
    tied = sum(1 for item in items[cut:] if key(item) == boundary)
    return list(items[:cut]), tied


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def is_day(text: Any) -> bool:
    try:
        _date.fromisoformat(str(text))
    except ValueError:
        return False
    return len(str(text)) == 10


def n_range(values: Iterable[int]) -> str:
    values = list(values)
    lo, hi = min(values, default=0), max(values, default=0)
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


@dataclass(frozen=True, slots=True)
class Table:
    """One table, printed identically in Markdown, HTML and report.json.  ``measures``: the
    keys (of :data:`crawler.publish.measures.MEASURES`, or of extra measures given to
    :func:`crawler.publish.report.build_report`) of what its cells count, listed in the
    glossary."""

    key: str
    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""
    chart: str | None = None  # PNG file name shown under the table
    measures: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "headers": list(self.headers),
                "rows": [list(row) for row in self.rows], "note": self.note,
                "chart": self.chart}
