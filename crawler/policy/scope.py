"""The crawl's scope: ``include`` / ``exclude`` URL patterns and a per-origin page cap (pure).

``scope: {include: [...], exclude: [...], max_pages_per_origin: N}`` in a job config is
validated by :func:`scope_config` (a ValueError naming the key: ``scope.include[2]: ...``) into
a frozen :class:`ScopeConfig`; :class:`Scope` answers :meth:`Scope.decide` ``(ok, reason)`` for
a URL and counts the pages sent per origin (:meth:`Scope.count`).  No Scrapy, no I/O, no clock.

Pattern syntax: Python regular expressions, as Scrapy's ``LinkExtractor(allow=..., deny=...)``
-------------------------------------------------------------------------------------------
A URL is in scope when ``include`` is empty or one of its patterns is *found* in the URL
(``re.search``, like LinkExtractor's ``allow``), and no ``exclude`` pattern is (``deny``: deny
wins).  Regular expressions because the people who write these configs are Scrapy users whose
spiders already say ``allow=r"/news/\\d+"``; robots-style ``*``/``$`` patterns would be a second
dialect to learn and cannot say "digits only".

The price of regexes is backtracking: Python's ``re`` has no timeout, and the URLs matched come
from remote pages.  Measured on this machine against one 2,048-character URL built to hurt:
``\\d+\\d+$`` 16 s, ``a.*b.*c.*d`` 29 s, ``[a-z]+\\d*[a-z]+$`` 12 s, ``(a+)+$`` (exponential)
forever.  So a pattern is refused at config time (:func:`compile_pattern`) unless it stays
within rules that bound its work:

* at most :data:`MAX_PATTERN_CHARS` characters, :data:`MAX_PATTERNS` patterns per list;
* no repeat inside a repeat (``(a+)+``, ``(\\w*/)*``): nested quantifiers are the classic
  exponential case;
* no alternation inside a repeat (``(a|aa)+``): overlapping alternatives are exponential too;
* at most one *long* repeat (``*``, ``+``, ``{m,}``, or ``{m,n}`` with n > 16): two that can
  consume the same characters are polynomial of degree 3 with ``search`` (the 16 s above).
  A leading ``.*`` or ``^.*`` and a trailing ``.*`` are dropped first (``search`` already
  floats: ``.*foo.*bar`` means ``foo.*bar``);
* the alternatives of the rest (``|`` branches, ``?``, short ranges such as ``{1,4}``)
  multiply to at most :data:`MAX_CHOICES`;
* no backreferences or conditional groups (``(\\w+)\\1``);
* and a URL longer than :data:`MAX_URL_CHARS` is out of scope before any pattern is tried.

Within these rules a search is at most about ``MAX_CHOICES * n**2`` steps for a URL of ``n``
characters; the tests run the accepted patterns on adversarial URLs with a time budget.
Patterns that need more (two long repeats) can usually be written with a bounded range
(``/[a-z]{1,16}/\\d+\\.html``) or split into an include and an exclude.

The cap: ``max_pages_per_origin`` (0 = none) counts the page requests :meth:`Scope.count` was
told were sent to an origin (scheme, host, port: :func:`crawler.policy.network.origin_key`); once it
is reached, every further URL of that origin is refused with the reason
``"origin https://a.example reached max_pages_per_origin (500)"``.  Per-origin files and
sitemaps are not pages and are not counted.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from crawler.policy.network import origin_key

if sys.version_info >= (3, 11):
    from re import _constants as _sre  # type: ignore[attr-defined]
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
else:  # pragma: no cover - Python 3.10
    import sre_constants as _sre
    import sre_parse as _sre_parse

__all__ = ["MAX_CHOICES", "MAX_PATTERNS", "MAX_PATTERN_CHARS", "MAX_URL_CHARS", "Scope",
           "ScopeConfig", "compile_pattern", "scope_config"]

MAX_PATTERN_CHARS = 512
MAX_PATTERNS = 100
#: URLs longer than this are out of scope (sitemaps.org's ``<loc>`` limit; browsers' practical
#: limit): it bounds the work of every pattern
MAX_URL_CHARS = 2048
#: the product of the alternatives a pattern may try at one place (branches, ``?``, short ranges)
MAX_CHOICES = 16
#: a repeat whose maximum is above this is "long"
SHORT_REPEAT = 16

_REPEATS = {_sre.MAX_REPEAT, _sre.MIN_REPEAT}
if hasattr(_sre, "POSSESSIVE_REPEAT"):
    _REPEATS.add(_sre.POSSESSIVE_REPEAT)
_REFUSED_OPS = {_sre.GROUPREF: "backreferences", _sre.GROUPREF_EXISTS: "conditional groups"}
if hasattr(_sre, "GROUPREF_IGNORE"):
    _REFUSED_OPS[_sre.GROUPREF_IGNORE] = "backreferences"


class _Unsafe(Exception):
    pass


def _walk(parsed: Any, inside_repeat: bool, stats: dict[str, int]) -> None:
    """Check one parsed (sub)pattern against the rules; ``stats``: long repeats, choices."""
    for op, av in parsed:
        if op in _REFUSED_OPS:
            raise _Unsafe(f"{_REFUSED_OPS[op]} are not allowed (they can take exponential time)")
        if op in _REPEATS:
            lo, hi, sub = av
            variable = hi != lo
            if variable and inside_repeat:
                raise _Unsafe("a repeat inside a repeat (nested quantifiers such as (a+)+, "
                              "(ab?)*) can take exponential time")
            if hi <= 1:  # ?, {0,1}, {1}
                if variable:
                    stats["choices"] *= 2
                _walk(sub, inside_repeat, stats)
                continue
            if variable:
                if hi == _sre.MAXREPEAT or hi > SHORT_REPEAT:
                    stats["long"] += 1
                else:
                    stats["choices"] *= hi - lo + 1
            _walk(sub, True, stats)
        elif op is _sre.BRANCH:
            if inside_repeat:
                raise _Unsafe("an alternation inside a repeat (such as (a|aa)+) can take "
                              "exponential time")
            stats["choices"] *= len(av[1])
            for sub in av[1]:
                _walk(sub, inside_repeat, stats)
        elif op is _sre.SUBPATTERN:
            _walk(av[-1], inside_repeat, stats)
        elif op in (_sre.ASSERT, _sre.ASSERT_NOT):
            _walk(av[1], inside_repeat, stats)
        elif getattr(_sre, "ATOMIC_GROUP", None) is not None and op is _sre.ATOMIC_GROUP:
            _walk(av, inside_repeat, stats)


_LEADING_ANY = re.compile(r"^\^?\.\*(?![*+?{])")
_TRAILING_ANY = re.compile(r"(\\*)\.\*$")


def _simplify(pattern: str) -> str:
    """Drop a leading ``.*``/``^.*`` and a trailing ``.*`` (not ``\\.*``): with ``re.search``
    they change nothing but the time taken."""
    simpler = _LEADING_ANY.sub("", pattern, count=1)
    trailing = _TRAILING_ANY.search(simpler)
    if trailing and len(trailing.group(1)) % 2 == 0:
        simpler = simpler[:-2]
    return simpler


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The compiled pattern, or ValueError saying which rule it breaks (see the module doc)."""
    if not isinstance(pattern, str):
        raise ValueError(f"expected a string, got {type(pattern).__name__}")
    if not pattern:
        raise ValueError("an empty pattern matches every URL; leave the list empty instead")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(f"{len(pattern)} characters; at most {MAX_PATTERN_CHARS}")
    simpler = _simplify(pattern)
    try:
        compiled = re.compile(simpler)
        parsed = _sre_parse.parse(simpler)
    except re.error as exc:
        raise ValueError(f"not a regular expression ({exc})") from None
    stats = {"long": 0, "choices": 1}
    try:
        _walk(parsed, False, stats)
    except _Unsafe as exc:
        raise ValueError(f"{pattern!r}: {exc}") from None
    if stats["long"] > 1:
        raise ValueError(f"{pattern!r}: {stats['long']} unbounded repeats (*, +, {{m,}}); at "
                         "most one (two can take polynomial time: bound one, e.g. "
                         f"{{1,{SHORT_REPEAT}}})")
    if stats["choices"] > MAX_CHOICES:
        raise ValueError(f"{pattern!r}: {stats['choices']} alternative ways to match; at most "
                         f"{MAX_CHOICES}")
    return compiled


@dataclass(frozen=True)
class ScopeConfig:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_pages_per_origin: int = 0
    #: the compiled patterns, in the order given (not compared: the strings are)
    _include: tuple[re.Pattern[str], ...] = field(default=(), repr=False, compare=False)
    _exclude: tuple[re.Pattern[str], ...] = field(default=(), repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """The config as given (for the policy hash and run.json)."""
        return {"include": list(self.include), "exclude": list(self.exclude),
                "max_pages_per_origin": self.max_pages_per_origin}


_SCOPE_KEYS = ("include", "exclude", "max_pages_per_origin")


def scope_config(value: Any, key: str = "scope") -> ScopeConfig:
    """``scope:`` validated; ValueError names the key at fault (``scope.include[2]: ...``).
    None or an empty mapping: everything in scope, no cap."""
    if value is None:
        return ScopeConfig()
    if not isinstance(value, Mapping):
        raise ValueError(f"{key}: expected a mapping such as {{include: ['/news/'], "
                         "max_pages_per_origin: 1000}")
    for name in value:
        if name not in _SCOPE_KEYS:
            raise ValueError(f"{key}.{name}: unknown key (known: {', '.join(_SCOPE_KEYS)})")
    lists: dict[str, tuple[tuple[str, ...], tuple[re.Pattern[str], ...]]] = {}
    for name in ("include", "exclude"):
        items = value.get(name, [])
        if isinstance(items, str):
            items = [items]
        if not isinstance(items, (list, tuple)):
            raise ValueError(f"{key}.{name}: expected a list of regular expressions")
        if len(items) > MAX_PATTERNS:
            raise ValueError(f"{key}.{name}: {len(items)} patterns; at most {MAX_PATTERNS}")
        compiled = []
        for i, item in enumerate(items):
            try:
                compiled.append(compile_pattern(item))
            except ValueError as exc:
                raise ValueError(f"{key}.{name}[{i}]: {exc}") from None
        lists[name] = (tuple(items), tuple(compiled))
    cap = value.get("max_pages_per_origin", 0)
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 0:
        raise ValueError(f"{key}.max_pages_per_origin: a whole number of pages, 0 (no cap) or "
                         "more")
    return ScopeConfig(include=lists["include"][0], exclude=lists["exclude"][0],
                       max_pages_per_origin=cap, _include=lists["include"][1],
                       _exclude=lists["exclude"][1])


class Scope:
    """Decides whether a URL is in the crawl's scope; counts pages per origin for the cap.

    :meth:`decide` reads only; :meth:`count` records a page request sent.  ``counts`` may be
    given (a resumed run: pages already fetched per origin, e.g. from the corpus)."""

    def __init__(self, config: ScopeConfig | None = None,
                 counts: Mapping[str, int] | None = None) -> None:
        self.config = config or ScopeConfig()
        self.counts: dict[str, int] = dict(counts or {})

    def decide(self, url: str) -> tuple[bool, str]:
        """``(True, "in scope ...")`` or ``(False, reason)``; the reason names the pattern or
        the cap that decided."""
        cfg = self.config
        if len(url) > MAX_URL_CHARS:
            return False, f"URL of {len(url):,} characters; scope patterns read at most " \
                          f"{MAX_URL_CHARS:,}"
        for i, compiled in enumerate(cfg._exclude):
            if compiled.search(url):
                return False, f"excluded by scope.exclude[{i}] {cfg.exclude[i]!r}"
        matched = None
        if cfg._include:
            for i, compiled in enumerate(cfg._include):
                if compiled.search(url):
                    matched = i
                    break
            else:
                return False, "matches no scope.include pattern"
        cap = cfg.max_pages_per_origin
        if cap:
            origin = origin_key(url)
            if self.counts.get(origin, 0) >= cap:
                return False, f"origin {origin} reached max_pages_per_origin ({cap:,})"
        if matched is not None:
            return True, f"in scope: scope.include[{matched}] {cfg.include[matched]!r}"
        return True, "in scope"

    def count(self, url: str) -> int:
        """Record one page request sent to ``url``'s origin; the origin's count after it."""
        origin = origin_key(url)
        n = self.counts.get(origin, 0) + 1
        self.counts[origin] = n
        return n

    def release(self, url: str) -> None:
        """Undo one :meth:`count` (a page request counted when it was decided, then refused
        or deferred before it was sent)."""
        origin = origin_key(url)
        n = self.counts.get(origin, 0) - 1
        if n > 0:
            self.counts[origin] = n
        else:
            self.counts.pop(origin, None)

    def filter(self, urls: Iterable[str]) -> list[tuple[str, bool, str]]:
        """:meth:`decide` for many URLs (no counting)."""
        return [(u, *self.decide(u)) for u in urls]
