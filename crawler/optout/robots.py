"""RFC 9309 robots.txt: fetch outcome, parser, and an evaluator that says which rule decided.

Sans-IO: :func:`parse_robots` takes the bytes of a response body and returns a frozen
:class:`RobotsFile`; :meth:`RobotsFile.verdict` evaluates one URL for one product token and
returns a :class:`RobotsVerdict` naming the group (agent, line) and the rule (text, line) that
decided.  :func:`robots_outcome` maps the fetch result (HTTP status, or ``None`` for a network
failure) to what RFC 9309 §2.3.1 makes of it.  Parse once per site, evaluate many URLs: patterns
are compiled and rules pre-sorted by precedence at parse time.

Remote bytes never make the parser raise.  Whatever it had to skip, repair or guess is listed in
:attr:`RobotsFile.problems` (``"line 7: unknown directive 'foo'"``), so the evidence can go into an
audit record.

Besides RFC 9309 the parser reads ``Crawl-delay`` and ``Request-rate`` (legacy extensions, per
group) and keeps every other ``key: value`` line: inside a group in
:attr:`RobotsGroup.extensions` (``Content-Usage``, ``Content-Signal``, unknown keys), outside
any group in :attr:`RobotsFile.global_lines`.  ``Sitemap``, ``License`` (RSL) and ``Host`` are
site-wide by definition and always go to ``global_lines`` wherever they appear.

Where RFC 9309 leaves room, Google's reference parser (google/robotstxt) is followed: typos such
as ``disalow``/``useragent`` are accepted, a missing colon is accepted when key and value are
the only two words on the line, a user-agent value is cut at the first character outside
``A-Za-z_-`` (``Googlebot/2.1`` -> ``Googlebot``), lines are cut after 16,663 bytes, and a
leading (even partial) UTF-8 byte order mark is skipped.

Deviations
----------
From Google's reference parser:

* ``Allow: /x/index.html`` does **not** also allow ``/x/`` (Google's "index.html is a directory"
  quirk; it only ever widens access).
* Only the first :data:`ROBOTS_PARSE_LIMIT` bytes are parsed (RFC 9309 §2.5 allows a limit of at
  least 500 KiB; Google has none).  When the body is cut, the partial last line is dropped too:
  a half-read ``Allow: /a/b`` would otherwise become the much wider ``Allow: /a``.
* Directive names are matched exactly against a table of spellings (including Google's typos),
  not by prefix: ``Disallowed:`` is not ``Disallow:``.  A missing colon is accepted only for
  known directive names.
* ASCII characters that can never appear literally in a URI (controls, space, ``"<>\\^`{|}``)
  are percent-encoded in both patterns and URLs before matching (see :mod:`.pathpattern`), so
  ``Disallow: /a%3cd.html`` covers ``/a<d.html`` (protocols.md §1.7 vector 7).
* In a file that is not valid UTF-8, invalid bytes of a pattern are matched as the raw byte
  (``%E9``), as Google does, but shown as U+FFFD in ``raw``/``text`` fields.
* Several ``Crawl-delay`` (``Request-rate``) lines in the groups that apply: the largest delay
  wins.

From RFC 9309 (the first two as Google's reference parser does):

* Percent-encoding is read two ways (see :mod:`.pathpattern`): Google's (nothing decoded) and
  §2.2.2's (escapes of unreserved characters decoded, non-ASCII encoded).  Each reading is
  evaluated on its own and the URL is denied if either denies, so ``Allow: /foo/bar/%62%61%7A``
  does not open ``/foo/bar/baz`` (Google's ID_Encoding) while ``Disallow: /%7Ejoe/`` binds
  ``/~joe/`` (§2.2.2).  :attr:`RobotsVerdict.rule` is the rule of the reading that decided.
* Trailing control characters of a ``Disallow`` value are cut (and reported): read as ``%00``
  they would make the rule bind nothing; those of an ``Allow`` are kept (cutting would widen it).
* The AIPREF attachment draft makes ``Content-Usage`` a rule; here, as for every other non
  allow/disallow line, it does not end a run of ``User-agent`` lines, so
  ``User-agent: a / Content-Usage: ... / User-agent: b / Disallow: /`` is one group for a and b
  (Google reads it so; it can only make a group's rules apply to more agents).
* An HTTP 429 for robots.txt is "unreachable" (complete disallow), not "unavailable" (allow all),
  as Google is reported to treat it; allow-all would reward rate limiting with more crawling.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import Enum

from crawler.optout.pathpattern import (
    PathPattern,
    escape_pattern,
    match_forms,
    path_query,
)

__all__ = [
    "ALLOW_ALL",
    "MAX_LINE_BYTES",
    "ROBOTS_PARSE_LIMIT",
    "RequestRate",
    "RobotsFile",
    "RobotsGroup",
    "RobotsLine",
    "RobotsOutcome",
    "RobotsRule",
    "RobotsVerdict",
    "is_valid_product_token",
    "parse_robots",
    "robots_outcome",
]

#: RFC 9309 §2.5: "The parsing limit MUST be at least 500 kibibytes [KiB]."
ROBOTS_PARSE_LIMIT = 512_000
#: Google's parser keeps at most ``2083 * 8 - 1`` bytes of a line and drops the rest.
MAX_LINE_BYTES = 2083 * 8 - 1
#: At most this many line-level problems are listed; the rest are counted.
MAX_LINE_PROBLEMS = 100

_UTF8_BOM = b"\xef\xbb\xbf"
# Whitespace around keys and values (lines never contain CR or LF).
_WS = " \t\v\f"
# ASCII control characters (C0 and DEL): never part of a real path.
_CONTROLS = "".join(map(chr, range(0x20))) + "\x7f"
# A line needs a UTF-8 check for length only if it could exceed MAX_LINE_BYTES.
_LONG_LINE_CHARS = MAX_LINE_BYTES // 4

_PRODUCT_TOKEN = re.compile(r"[A-Za-z_-]+")
_UNKNOWN_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_TWO_WORDS = re.compile(r"([^ \t]+)[ \t]+([^ \t]+)")
_FIRST_WORD = re.compile(r"[^ \t]+")
_CRAWL_DELAY = re.compile(r"\d+(?:\.\d*)?|\.\d+", re.ASCII)
_REQUEST_RATE = re.compile(
    r"(\d+)[ \t]*/[ \t]*(\d+(?:\.\d*)?|\.\d+)[ \t]*([smhd]?)"
    r"(?:[ \t]+\d{3,4}[ \t]*-?[ \t]*\d{3,4})?",
    re.ASCII | re.IGNORECASE,
)
_RATE_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

_USER_AGENT = "user-agent"
_ALLOW = "allow"
_DISALLOW = "disallow"
_SITEMAP = "sitemap"
_CRAWL_DELAY_KEY = "crawl-delay"
_REQUEST_RATE_KEY = "request-rate"

# Spelling (lower case, inner whitespace collapsed) -> canonical directive name.
_SPELLINGS: dict[str, str] = {
    "user-agent": _USER_AGENT,
    "allow": _ALLOW,
    "disallow": _DISALLOW,
    "sitemap": _SITEMAP,
    "crawl-delay": _CRAWL_DELAY_KEY,
    "request-rate": _REQUEST_RATE_KEY,
    "visit-time": "visit-time",
    "content-usage": "content-usage",
    "content-signal": "content-signal",
    "license": "license",
    "host": "host",
    "clean-param": "clean-param",
    "noindex": "noindex",
    "nofollow": "nofollow",
    "noarchive": "noarchive",
}
# Misspellings accepted (Google's kAllowFrequentTypos list, and Protego's extras); each is noted.
_TYPOS: dict[str, str] = {
    "useragent": _USER_AGENT,
    "user agent": _USER_AGENT,
    "dissallow": _DISALLOW,
    "dissalow": _DISALLOW,
    "disalow": _DISALLOW,
    "diasllow": _DISALLOW,
    "disallaw": _DISALLOW,
    "site-map": _SITEMAP,
    "sitemaps": _SITEMAP,
    "crawl delay": _CRAWL_DELAY_KEY,
    "crawldelay": _CRAWL_DELAY_KEY,
    "request rate": _REQUEST_RATE_KEY,
    "visit time": "visit-time",
}
_KNOWN = {**_SPELLINGS, **_TYPOS}
# Site-wide records: kept in RobotsFile.global_lines wherever they appear.
_GLOBAL_KEYS = frozenset({_SITEMAP, "license", "host"})


@dataclass(frozen=True, slots=True)
class RobotsLine:
    """A ``key: value`` line kept as written (comment stripped, value trimmed)."""

    key: str  # lower-cased directive name (typos mapped to the canonical name)
    value: str
    line: int  # 1-based


@dataclass(frozen=True, slots=True)
class RobotsRule:
    """An ``allow`` or ``disallow`` rule of a group."""

    kind: str  # 'allow' | 'disallow'
    pattern: PathPattern
    line: int  # 1-based line number in the file
    text: str  # normalised to 'Allow: /x' / 'Disallow: /x'


@dataclass(frozen=True, slots=True)
class RequestRate:
    """``Request-rate: <requests>/<seconds>`` (legacy extension, not part of RFC 9309)."""

    requests: int
    seconds: float

    @property
    def delay(self) -> float:
        """Seconds to wait between two requests."""
        return self.seconds / self.requests


@dataclass(frozen=True, slots=True)
class RobotsGroup:
    """One group: consecutive user-agent lines and the lines that follow up to the next group.

    ``agents`` holds the product tokens (``'*'`` for the star group), each cut at the first
    character outside ``A-Za-z_-``; ``agent_lines`` keeps the user-agent lines as written (so a
    survey can still see ``AI2Bot``, whose product token reads as ``AI``).
    """

    agents: tuple[str, ...]
    line: int  # line of the group's first user-agent line
    rules: tuple[RobotsRule, ...]
    crawl_delay: float | None
    request_rate: RequestRate | None
    extensions: tuple[RobotsLine, ...]
    agent_lines: tuple[RobotsLine, ...] = ()
    # Evaluation tables, built once per reading of the patterns (raw, RFC 9309; see
    # crawler.optout.pathpattern): plain-prefix rules by prefix (best rule per prefix), the
    # distinct prefix lengths, and the other rules ('*' inside, '$' anchor) in precedence order.
    # ``_rfc_tables`` is None when no pattern reads differently under RFC 9309 (the usual case).
    _tables: _Tables = field(init=False, repr=False, compare=False)
    _rfc_tables: _Tables | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tables = _build_tables(self.rules, rfc=False)
        differs = any(rule.pattern.rfc is not rule.pattern for rule in self.rules)
        object.__setattr__(self, "_tables", tables)
        rfc_tables = _build_tables(self.rules, rfc=True) if differs else None
        object.__setattr__(self, "_rfc_tables", rfc_tables)

    def _first_entry(self, path: str, rfc: bool = False) -> _Entry | None:
        """The (precedence, rule, pattern as read) of highest precedence matching ``path`` (in
        the reading ``rfc`` selects, as :func:`.pathpattern.match_forms` gives it), or None."""
        tables = self._tables if not rfc or self._rfc_tables is None else self._rfc_tables
        by_prefix, prefix_lengths, others = tables
        best: _Entry | None = None
        if by_prefix:
            size = len(path)
            for length in prefix_lengths:
                if length > size:
                    break
                entry = by_prefix.get(path[:length])
                if entry is not None and (best is None or entry[0] < best[0]):
                    best = entry
        for entry in others:
            if best is not None and entry[0] >= best[0]:
                break
            if entry[2]._match(path):
                best = entry
                break
        return best



_Entry = tuple[tuple[int, bool, int], RobotsRule, PathPattern]
_Tables = tuple[dict[str, _Entry], tuple[int, ...], tuple[_Entry, ...]]


def _build_tables(rules: tuple[RobotsRule, ...], *, rfc: bool) -> _Tables:
    by_prefix: dict[str, _Entry] = {}
    others: list[_Entry] = []
    for rule in rules:
        pattern = rule.pattern.rfc if rfc else rule.pattern
        if not pattern.encoded:
            continue  # an empty pattern matches nothing
        # RFC 9309 §2.2.2: "The most specific match found MUST be used. The most specific match
        # is the match that has the most octets." ... "If an "allow" rule and a "disallow" rule
        # are equivalent, then the "allow" rule SHOULD be used."  Equal rules: the first in the
        # file.  Octets are counted in the reading being evaluated.
        entry = ((-pattern.specificity, rule.kind != _ALLOW, rule.line), rule, pattern)
        prefix = pattern.prefix
        if prefix is None:
            others.append(entry)
        elif prefix not in by_prefix or entry[0] < by_prefix[prefix][0]:
            by_prefix[prefix] = entry
    others.sort(key=lambda item: item[0])
    return by_prefix, tuple(sorted({len(p) for p in by_prefix})), tuple(others)


@dataclass(frozen=True, slots=True)
class RobotsVerdict:
    """The answer for one URL and one product token, with the group and rule that decided."""

    allowed: bool
    agent: str | None  # the user-agent value that selected the group ('*' or the token as written)
    explicit: bool  # True when a group names the token itself (not via '*')
    rule: RobotsRule | None  # the winning rule; None when no rule matched (allowed by default)
    group_line: int | None  # line of the group's first user-agent line


_NO_GROUP = RobotsVerdict(allowed=True, agent=None, explicit=False, rule=None, group_line=None)


def is_valid_product_token(token: str) -> bool:
    """RFC 9309 §2.2.1: "The product token MUST contain only uppercase and lowercase letters
    ("a-z" and "A-Z"), underscores ("_"), and hyphens ("-")."
    """
    if not isinstance(token, str):
        raise TypeError(f"token must be str, not {type(token).__name__}")
    return _PRODUCT_TOKEN.fullmatch(token) is not None


@dataclass(frozen=True, slots=True)
class RobotsFile:
    """A parsed robots.txt."""

    groups: tuple[RobotsGroup, ...]
    global_lines: tuple[RobotsLine, ...]
    sitemaps: tuple[str, ...]
    problems: tuple[str, ...]
    size: int  # bytes received
    truncated: bool  # more than the parse limit was received
    _by_agent: dict[str, tuple[RobotsGroup, ...]] = field(init=False, repr=False, compare=False)
    _star: tuple[RobotsGroup, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_agent: dict[str, list[RobotsGroup]] = {}
        star: list[RobotsGroup] = []
        for group in self.groups:
            for agent in dict.fromkeys(agent.lower() for agent in group.agents):
                if agent == "*":
                    star.append(group)
                else:
                    by_agent.setdefault(agent, []).append(group)
        frozen = {agent: tuple(groups) for agent, groups in by_agent.items()}
        object.__setattr__(self, "_by_agent", frozen)
        object.__setattr__(self, "_star", tuple(star))

    def _select(self, token: str, fallback_to_star: bool) -> tuple[tuple[RobotsGroup, ...], bool]:
        if not isinstance(token, str):
            raise TypeError(f"token must be str, not {type(token).__name__}")
        # RFC 9309 §2.2.1: "Crawlers MUST use case-insensitive matching to find the group that
        # matches the product token" ... "If there is more than one group matching the
        # user-agent, the matching groups' rules MUST be combined into one group".  A string that
        # is not a valid product token (e.g. 'Foo Bar') names no group.
        if _PRODUCT_TOKEN.fullmatch(token) is not None:
            found = self._by_agent.get(token.lower())
            if found:
                return found, True
        # "If no matching group exists, crawlers MUST obey the group with a user-agent line with
        # the "*" value, if present."
        return (self._star if fallback_to_star else ()), False

    def matching_groups(
        self, token: str, *, fallback_to_star: bool = True
    ) -> tuple[RobotsGroup, ...]:
        """The groups that bind ``token``: those naming it, else (if allowed) the ``*`` groups."""
        return self._select(token, fallback_to_star)[0]

    def verdict(self, url: str, token: str, *, fallback_to_star: bool = True) -> RobotsVerdict:
        """May ``token`` fetch ``url``?  Says which group and which rule decided."""
        groups, explicit = self._select(token, fallback_to_star)
        if not groups:
            # "If no group matches the product token and there is no group with a user-agent
            # line with the "*" value, or no groups are present at all, no rules apply."
            return _NO_GROUP
        path = path_query(url)
        return self._verdict(groups, explicit, token, path, match_forms(path))

    def verdict_for_path(self, path: str, forms: tuple[str, str], token: str, *,
                         fallback_to_star: bool = True) -> RobotsVerdict:
        """:meth:`verdict` for a URL already reduced to ``path`` (:func:`.path_query`) and
        ``forms`` (:func:`.match_forms` of it), so that a caller deciding one URL for several
        tokens (or several signals) computes them once."""
        groups, explicit = self._select(token, fallback_to_star)
        if not groups:
            return _NO_GROUP
        return self._verdict(groups, explicit, token, path, forms)

    def _verdict(self, groups: tuple[RobotsGroup, ...], explicit: bool, token: str, path: str,
                 forms: tuple[str, str]) -> RobotsVerdict:
        best, best_group = decide_groups(groups, path, forms)
        return verdict_from(best, best_group, explicit, token)

    def crawl_delay(self, token: str) -> float | None:
        """``Crawl-delay`` of the groups that bind ``token`` (the largest if several)."""
        delays = [g.crawl_delay for g in self.matching_groups(token) if g.crawl_delay is not None]
        return max(delays) if delays else None

    def request_rate(self, token: str) -> RequestRate | None:
        """``Request-rate`` of the groups that bind ``token`` (the slowest if several)."""
        rates = [g.request_rate for g in self.matching_groups(token) if g.request_rate is not None]
        return max(rates, key=lambda rate: rate.delay) if rates else None

    def visit_interval(self, token: str) -> float | None:
        """Seconds between two requests the site asks of ``token``: the larger of its
        ``Crawl-delay`` and its ``Request-rate`` interval (None when it asks for neither)."""
        rate = self.request_rate(token)
        delays = [d for d in (self.crawl_delay(token), rate.delay if rate else None)
                  if d is not None]
        return max(delays, default=None)


def verdict_from(best: RobotsRule | None, best_group: RobotsGroup, explicit: bool,
                 token: str) -> RobotsVerdict:
    """The verdict for ``token`` once :func:`decide_groups` has found the rule (``explicit``:
    the groups name the token itself, not via ``*``)."""
    if explicit:
        lowered = token.lower()
        agent = next(a for a in best_group.agents if a.lower() == lowered)
    else:
        agent = "*"
    # "If no match is found amongst the rules in a group for a matching user-agent or there
    # are no rules in the group, the URI is allowed."
    return RobotsVerdict(
        allowed=best is None or best.kind == _ALLOW,
        agent=agent,
        explicit=explicit,
        rule=best,
        group_line=best_group.line,
    )


def decide_groups(
    groups: tuple[RobotsGroup, ...], path: str, forms: tuple[str, str]
) -> tuple[RobotsRule | None, RobotsGroup]:
    """The rule that decides ``path`` over the combined (non-empty) ``groups``, and its group:
    ``(None, groups[0])`` when no rule matches.  ``forms`` is :func:`.match_forms` of ``path``."""
    best: RobotsRule | None = None
    best_group = groups[0]
    if path != "/robots.txt":  # "The /robots.txt URI is implicitly allowed."
        # Two readings of percent-encoding (see crawler.optout.pathpattern): Google's raw one
        # and RFC 9309 §2.2.2's.  Each is evaluated on its own ("longest match wins, allow
        # wins ties"); where they disagree the more restrictive answer is taken.
        raw_path, rfc_path = forms
        best, best_group = _evaluate(groups, raw_path, rfc=False)
        if best is None or best.kind == _ALLOW:
            if rfc_path is not raw_path or any(g._rfc_tables is not None for g in groups):
                rfc_best, rfc_group = _evaluate(groups, rfc_path, rfc=True)
                if rfc_best is not None and rfc_best.kind != _ALLOW:
                    best, best_group = rfc_best, rfc_group
    return best, best_group


def _evaluate(
    groups: tuple[RobotsGroup, ...], path: str, *, rfc: bool
) -> tuple[RobotsRule | None, RobotsGroup]:
    """The winning rule over the combined ``groups`` in one reading, and its group."""
    best: RobotsRule | None = None
    best_group = groups[0]
    best_key = (-1, False)
    for group in groups:
        entry = group._first_entry(path, rfc)
        if entry is not None:
            rule = entry[1]
            key = (entry[2].specificity, rule.kind == _ALLOW)
            if key > best_key:
                best, best_key, best_group = rule, key, group
    return best, best_group


#: An empty file: what RFC 9309 §2.3.1.3 makes of an "unavailable" (4xx) robots.txt.
ALLOW_ALL = RobotsFile(
    groups=(), global_lines=(), sitemaps=(), problems=(), size=0, truncated=False
)


class RobotsOutcome(str, Enum):
    """What a robots.txt fetch result means (RFC 9309 §2.3.1)."""

    PARSED = "parsed"  # 2xx: parse the body and obey it
    UNAVAILABLE = "unavailable"  # 4xx: "the crawler MAY access any resources on the server"
    UNREACHABLE = "unreachable"  # 5xx, network error: "MUST assume complete disallow"


def robots_outcome(status: int | None) -> RobotsOutcome:
    """Map the final HTTP status of the robots.txt fetch (``None``: network error, timeout) to
    its RFC 9309 §2.3.1 meaning.

    Redirects are the caller's to follow (§2.3.1.2: "crawlers SHOULD follow at least five
    consecutive redirects"), so a 3xx reaching here means too many of them; like 1xx and any
    other unexpected status it is treated as unreachable.  429 is unreachable too (Google treats
    it as a server error; allow-all would reward rate-limiting with more crawling).
    """
    if status is None:
        return RobotsOutcome.UNREACHABLE
    if isinstance(status, bool) or not isinstance(status, int):
        raise TypeError(f"status must be int or None, not {type(status).__name__}")
    if 200 <= status <= 299:
        return RobotsOutcome.PARSED
    if status == 429:
        return RobotsOutcome.UNREACHABLE
    if 400 <= status <= 499:
        return RobotsOutcome.UNAVAILABLE
    return RobotsOutcome.UNREACHABLE


class _GroupBuilder:
    __slots__ = ("agent_lines", "agents", "delays", "extensions", "line", "rates", "rules")

    def __init__(self, line: int) -> None:
        self.line = line
        self.agents: list[str] = []
        self.agent_lines: list[RobotsLine] = []
        self.rules: list[RobotsRule] = []
        self.delays: list[float] = []
        self.rates: list[RequestRate] = []
        self.extensions: list[RobotsLine] = []

    def build(self) -> RobotsGroup:
        return RobotsGroup(
            agents=tuple(dict.fromkeys(self.agents)),
            line=self.line,
            rules=tuple(self.rules),
            crawl_delay=max(self.delays) if self.delays else None,
            request_rate=max(self.rates, key=lambda rate: rate.delay) if self.rates else None,
            extensions=tuple(self.extensions),
            agent_lines=tuple(self.agent_lines),
        )


def _split_directive(line: str) -> tuple[str, str, str] | None:
    """Split a trimmed, comment-free line into (spelling, key as written, value), or None.

    RFC 9309 §2.2: ``rule = *WS ("allow" / "disallow") *WS ":" *WS (path-pattern /
    empty-pattern) EOL``.  Like Google, accept whitespace instead of the colon when the line has
    exactly two words ("user-agent FooBot"), but only for directive names we know.
    """
    colon = line.find(":")
    if colon >= 0:
        written = line[:colon].rstrip(_WS)
        spelling = " ".join(written.lower().split())
        if spelling in _KNOWN or _UNKNOWN_KEY.fullmatch(written):
            return spelling, written, line[colon + 1 :].lstrip(_WS)
        # "Sitemap https://x/s.xml", "Disallow /a:b": the colon belongs to the value.
        first = _FIRST_WORD.match(line)
        if first is not None and first.group(0).lower() in _KNOWN:
            return first.group(0).lower(), first.group(0), line[first.end() :].lstrip(_WS)
        return None
    two = _TWO_WORDS.fullmatch(line)
    if two is not None and two.group(1).lower() in _KNOWN:
        return two.group(1).lower(), two.group(1), two.group(2)
    return None


def _product_token(value: str) -> str | None:
    """The product token a user-agent value names: ``*``, or the value up to the first character
    outside ``A-Za-z_-`` (Google's ``ExtractUserAgent``); None when that leaves nothing.
    """
    # Google: "a '*' followed by space and more characters in a user-agent record is still
    # regarded a global rule."
    if value[:1] == "*" and (len(value) == 1 or value[1] in _WS):
        return "*"
    match = _PRODUCT_TOKEN.match(value)
    return match.group(0) if match is not None else None


def _parse_crawl_delay(value: str) -> float | None:
    if _CRAWL_DELAY.fullmatch(value) is None:
        return None
    delay = float(value)
    return delay if math.isfinite(delay) else None


def _parse_request_rate(value: str) -> RequestRate | None:
    """``n/t[s|m|h|d]`` with an optional (ignored) ``HHMM-HHMM`` window: ``100/15m`` is 100
    requests per 900 s; a bare number of seconds (``1/60``) is accepted too.
    """
    match = _REQUEST_RATE.fullmatch(value)
    if match is None:
        return None
    requests = int(match.group(1))
    seconds = float(match.group(2)) * _RATE_UNITS[match.group(3).lower()]
    if requests <= 0 or not (0 < seconds < math.inf):
        return None
    return RequestRate(requests=requests, seconds=seconds)


def _replace_invalid(text: str) -> str:
    """Show bytes kept by ``errors="surrogateescape"`` as U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def parse_robots(body: bytes, *, limit: int = ROBOTS_PARSE_LIMIT) -> RobotsFile:
    """Parse a robots.txt body.  Never raises for ``bytes`` input; see ``problems``.

    RFC 9309 §2.3.1.5: "Crawlers MUST try to parse each line of the robots.txt file. Crawlers MUST
    use the parseable rules."
    """
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError(f"body must be bytes, not {type(body).__name__}")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"limit must be a non-negative int, not {limit!r}")
    data = bytes(body)
    size = len(data)
    file_problems: list[str] = []
    line_problems: list[str] = []

    # RFC 9309 §2.5: "Crawlers SHOULD impose a parsing limit to protect their systems".
    truncated = size > limit
    if truncated:
        data = data[:limit]
        last_break = max(data.rfind(b"\n"), data.rfind(b"\r"))
        data = data[: last_break + 1]
        file_problems.append(
            f"file truncated at {limit} bytes (of {size}); the rest and the partial last line"
            " ignored"
        )
    # Google: "UTF-8 byte order marks should never appear in a robots.txt file, but they do
    # nevertheless. Skipping possible BOM-prefix in the first bytes of the input."
    bom = 0
    while bom < 3 and bom < len(data) and data[bom] == _UTF8_BOM[bom]:
        bom += 1
    if bom:
        data = data[bom:]
        if bom < 3:
            file_problems.append(f"partial UTF-8 byte order mark ({bom} bytes) skipped")
    # RFC 9309 §2.3: the file must be UTF-8 encoded; decode leniently and say so.
    try:
        text = data.decode("utf-8")
        invalid = False
    except UnicodeDecodeError:
        text = data.decode("utf-8", "surrogateescape")
        invalid = True
        file_problems.append("not valid UTF-8; decoded with replacement")
    if text.lstrip(" \t\r\n")[:1] == "<":
        file_problems.append("body looks like HTML or XML, not like a robots.txt file")

    groups: list[_GroupBuilder] = []
    current: _GroupBuilder | None = None
    has_rules = False
    global_lines: list[RobotsLine] = []
    sitemaps: list[str] = []

    # RFC 9309 §2.2: "EOL = %x0D / %x0A / %x0D.0A".
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for number, line in enumerate(lines, 1):
        dirty = invalid
        if len(line) > _LONG_LINE_CHARS:
            encoded = line.encode("utf-8", "surrogateescape")
            if len(encoded) > MAX_LINE_BYTES:
                line = encoded[:MAX_LINE_BYTES].decode("utf-8", "surrogateescape")
                dirty = True
                line_problems.append(
                    f"line {number}: longer than {MAX_LINE_BYTES} bytes ({len(encoded)}); cut"
                )
        # RFC 9309 §2.2.3: "#" designates a line comment.
        comment = line.find("#")
        if comment >= 0:
            line = line[:comment]
        line = line.strip(_WS)
        if not line:
            continue
        parts = _split_directive(line)
        if parts is None:
            shown = _replace_invalid(line) if dirty else line
            line_problems.append(f"line {number}: not a 'key: value' line: {shown[:80]!r}")
            continue
        spelling, written, value = parts
        if dirty:
            written = _replace_invalid(written)
        shown_value = _replace_invalid(value) if dirty else value
        key = _KNOWN.get(spelling)
        if key is None:
            key = spelling
            line_problems.append(f"line {number}: unknown directive {written!r}")
        elif spelling in _TYPOS:
            line_problems.append(f"line {number}: {written!r} read as {key!r}")

        if key == _USER_AGENT:
            # RFC 9309 §2.1: a group is one or more user-agent lines followed by rules, and ends
            # at a user-agent line (that follows a rule) or at the end of the file.
            if current is None or has_rules:
                current = _GroupBuilder(number)
                groups.append(current)
                has_rules = False
            current.agent_lines.append(RobotsLine(key, shown_value, number))
            token = _product_token(value)
            if token is None:
                line_problems.append(
                    f"line {number}: user-agent {shown_value!r} names no valid product token"
                )
            else:
                if token != value:
                    line_problems.append(
                        f"line {number}: user-agent {shown_value!r} read as {token!r}"
                    )
                current.agents.append(token)
        elif key == _ALLOW or key == _DISALLOW:
            if current is None:
                # A rule before any user-agent line belongs to no group: ignore it.
                line_problems.append(f"line {number}: rule before any user-agent line ignored")
                continue
            stripped = value.rstrip(_CONTROLS)
            if stripped != value:
                # "Disallow: /family/photos\x00\x00\x00": control characters are never part of
                # a real path, and read as %00 the rule would bind nothing.  A Disallow keeps its
                # intended prefix (fail closed); an Allow is left as written, since cutting it
                # would only widen what it allows.
                cut = "removed" if key == _DISALLOW else "kept (the rule matches almost nothing)"
                line_problems.append(
                    f"line {number}: trailing control characters in pattern {shown_value!r} {cut}"
                )
                if key == _DISALLOW:
                    value = stripped
                    shown_value = _replace_invalid(value) if dirty else value
            pattern = PathPattern(raw=shown_value, encoded=escape_pattern(value))
            if value and value[0] not in "/*":
                line_problems.append(
                    f"line {number}: pattern {shown_value!r} does not start with '/' or '*';"
                    " it matches no path"
                )
            label = "Allow" if key == _ALLOW else "Disallow"
            rule_text = f"{label}: {shown_value}" if shown_value else f"{label}:"
            current.rules.append(RobotsRule(kind=key, pattern=pattern, line=number, text=rule_text))
            has_rules = True
        elif key in _GLOBAL_KEYS:
            if key == _SITEMAP:
                if shown_value:
                    sitemaps.append(shown_value)
                else:
                    line_problems.append(f"line {number}: empty sitemap ignored")
                    continue
            global_lines.append(RobotsLine(key, shown_value, number))
        elif current is None:
            global_lines.append(RobotsLine(key, shown_value, number))
            if key in (_CRAWL_DELAY_KEY, _REQUEST_RATE_KEY):
                line_problems.append(f"line {number}: {key} before any user-agent line ignored")
        elif key == _CRAWL_DELAY_KEY:
            delay = _parse_crawl_delay(value)
            if delay is None:
                line_problems.append(f"line {number}: malformed crawl-delay {shown_value!r}")
            else:
                current.delays.append(delay)
        elif key == _REQUEST_RATE_KEY:
            rate = _parse_request_rate(value)
            if rate is None:
                line_problems.append(f"line {number}: malformed request-rate {shown_value!r}")
            else:
                current.rates.append(rate)
        else:
            current.extensions.append(RobotsLine(key, shown_value, number))

    if len(line_problems) > MAX_LINE_PROBLEMS:
        extra = len(line_problems) - MAX_LINE_PROBLEMS
        line_problems = line_problems[:MAX_LINE_PROBLEMS]
        line_problems.append(f"... and {extra} more line problems not listed")
    return RobotsFile(
        groups=tuple(builder.build() for builder in groups),
        global_lines=tuple(global_lines),
        sitemaps=tuple(sitemaps),
        problems=tuple(file_problems + line_problems),
        size=size,
        truncated=truncated,
    )
