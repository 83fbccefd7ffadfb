"""Opt-out uptake survey: what one origin says, to whom, by which mechanism (sans-IO core).

:func:`analyse_origin` turns the per-origin fetches of a survey (robots.txt, tdmrep.json,
ai.txt, RSL licences, the homepage) into one JSON-able record, using the same parsers the crawler
obeys.  It reads no clock (``surveyed_at`` is the caller's) and opens nothing; remote bytes never
make it raise.  :func:`analyse_robots_only` does the same for an archived robots.txt alone;
:func:`crawler.survey.archives.survey_from_dir` and ``survey_from_warc`` are the thin
file-reading loops over archives.  :func:`naive_adjacent_block` is the line-counting rule of
published studies, kept for comparison.

The record
----------
One JSON object per origin (keys in this order)::

    origin          "https://www.example.com"
    surveyed_at     caller's timestamp (ISO 8601), WARC-Date for WARC input
    wave            {"date": "YYYY-MM-DD" or null, "source": ...}: the date of the survey wave
                    the record belongs to and where it comes from (see "Wave dates" below),
                    or null when the caller gave none
    checked         what was looked at: some of "robots.txt", "tdmrep.json", "ai.txt",
                    "homepage" (offline input: ["robots.txt"]); a mechanism that was not
                    checked is null, like one that was checked and is absent -- a report's
                    denominators count only the origins where it was checked
    robots          {status, outcome, sha256, bytes, html, error, problems} or null
    agents          {token: {"block": "full"|"partial"|"none", "explicit": bool, "root": bool}}
                    for "*" and every token of the agent list (``"token_valid": false`` added
                    for tokens that are not RFC 9309 product tokens), or null when robots.txt
                    could not be read (see below)
    content_usage   robots.txt Content-Usage rules {rules, terms, problems} or null
    content_signal  robots.txt Content-Signal lines {rules, terms, problems} or null
    rsl             {licences: [...], problems} for licences named by robots.txt ``License:``,
                    the homepage's ``Link`` header or ``<link rel="license">``, or null
    tdmrep          /.well-known/tdmrep.json {status, outcome, sha256, bytes, valid, rules,
                    root, reserved, problems}, or null when absent (4xx, not checked)
    ai_txt          /ai.txt {status, outcome, sha256, bytes, spawning_format, agents,
                    problems}, or null when absent
    homepage        {status, tdm-reservation, x-robots-tag, content-usage, content-signal,
                    meta-robots, rsl-links, problems} (each null when absent), or null
    agent_list      the date of the bundled agent list
    failures        only when the analysis of a section failed (a bug, never the site's bytes'
                    fault): that section is null and the error is listed here

Online surveys add ``homepage_error`` when the homepage got no response.  A record *failed*
(:func:`record_failed`; ``survey --retry-failed`` surveys its origin again) when robots.txt could
not be read (outcome ``unreachable`` or ``unknown``, or not checked), tdmrep.json or ai.txt was
unreachable, the homepage got no response, or an analysis failed.

Wave dates
----------
A survey file is one *wave*; a time series orders waves by date, so every record says which date
its wave has (``wave.date``) and where that date comes from (``wave.source``, one of
:data:`WAVE_DATE_SOURCES`): ``given`` (``survey --date``, or ``surveyed_at`` passed to
:func:`crawler.survey.archives.survey_from_dir`), ``directory name`` (a directory named
``2026-06-15...``), ``survey clock`` (an online survey: the day its first record was written),
``capture time`` (``WARC-Date`` of the capture; the wave's date is the earliest), ``file times``
(archived files without a date: ``surveyed_at`` is the newest file's modification time, which
says when the files were copied, not when they were fetched; ``wave.date`` is null and
``polite-crawl report`` refuses such waves in a time series unless told ``--use-file-times``).

robots.txt outcome
------------------
``outcome`` is RFC 9309's reading of the fetch (:func:`crawler.policy.reservation.site_file`):
``parsed`` (2xx: the body is parsed, whatever it looks like -- an HTML page served as robots.txt
is parsed as RFC 9309 §2.3.1.1 says, finds no group, and is flagged ``"html": true``),
``unavailable`` (4xx: no restrictions, every agent ``none``), ``unreachable`` (5xx, 429, network
error).  Offline inputs add ``unknown``: an empty or missing archived file, whose fetch result
is not known (archives such as the news data set store every non-2xx response as empty).

For ``unreachable`` and ``unknown``, ``agents`` is null.  An RFC 9309 crawler must then assume
complete disallow, but that is the crawler's failure policy, not the site's stance; reporting
``full`` would count server errors as opt-outs.  Reports leave these origins out of the agent
denominators and count them in the robots.txt outcome table.

Block levels (RFC 9309 group semantics)
---------------------------------------
For a token, the *applying groups* are those naming it (user-agent matching is
case-insensitive; several groups naming it are combined), else the ``*`` groups, else none
(RFC 9309 §2.2.1).  ``explicit`` is True when a group names the token (for ``*``: when a ``*``
group exists).  A path is disallowed when the most specific matching rule of the applying groups
is a ``Disallow`` (most octets wins, ``Allow`` wins a tie; §2.2.2); ``/robots.txt`` is always
allowed and does not count.

* ``full``: no path may be fetched -- a ``Disallow`` of the applying groups matches every path
  (``/``, ``*``, ``/*``, ``/*$``...), and no ``Allow`` rule opens any path (an ``Allow`` that
  every more specific ``Disallow`` overrides, such as ``Allow: /a`` under ``Disallow: /a*``, opens
  none).
* ``partial``: not full, and at least one path is disallowed.
* ``none``: no path is disallowed (no applying group, no rules, only empty ``Disallow:``, or
  every ``Disallow`` overridden by an ``Allow``).

``root`` says whether the site root ``/`` itself is disallowed -- what studies that evaluate one
URL with a parser (e.g. Protego's ``can_fetch("/")``) count as blocking.  ``Disallow: /`` with
``Allow: /shopping/`` is ``partial`` with ``root`` true.

This is decided by evaluating, with the crawler's own matcher, probe paths built from each rule
(each ``*`` filled with nothing or with a character that occurs in no rule, a character appended
unless the rule ends with ``$``).  For rules without ``*`` the answer is exact; for rules with
``*`` a path that only an unusual combination of wildcards would open could be missed.

Tokens that are not RFC 9309 product tokens (``AI2Bot``, ``ChatGPT Agent``, ``iaskspider/2.0``)
cannot be matched by a parser that follows RFC 9309 (``User-agent: AI2Bot`` reads as product token
``AI``).  For them the applying groups are those with a ``User-agent`` line written exactly as
the token (case-insensitive), else ``*`` -- what the site evidently meant -- and the entry carries
``"token_valid": false``.

Other mechanisms
----------------
* ``content_usage``/``content_signal``: every such line of the robots.txt (in groups or outside
  any group), parsed by :mod:`crawler.optout.aipref` / :mod:`crawler.optout.contentsignal`;
  ``terms`` combines all of them, most restrictive first (a term is ``false`` if any line says
  no).  The homepage's response headers are under ``homepage``.
* ``tdmrep``: ``root`` is the rule that applies to ``/`` (first match), ``reserved`` whether any
  rule says ``tdm-reservation: 1``; a 2xx body that is not a TDMRep array is kept with
  ``"valid": false`` and the reason in ``problems``.
* ``ai_txt``: Spawning's format only (other files named ai.txt get ``"spawning_format":
  false``); ``agents`` gives the block level, as for robots.txt, for ``*`` and for each listed
  token that the file names.
* ``rsl``: each licence with its fetch outcome (null when it was not fetched) and the ``terms``
  its ``<content>`` covering ``/`` states (commercial user type, country unknown).
* ``homepage``: ``x-robots-tag`` and ``meta-robots`` list the AI directives addressed to every
  crawler (``noai``, ``noimageai``, ``noml``, ``noarchive``), ``tdm-reservation`` combines the
  header and the meta tag in TDMRep's processing order.

Lists of problems are cut after 20 entries (the last says how many more there were).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from crawler.optout import aipref, contentsignal, noai, rsl
from crawler.optout import tdmrep as tdm
from crawler.optout.htmlmeta import HtmlHead, parse_html_head
from crawler.optout.model import SiteFile
from crawler.optout.pathpattern import PathPattern, match_forms
from crawler.optout.robots import RobotsFile, RobotsGroup, _evaluate, is_valid_product_token
from crawler.policy.reservation import site_file
from crawler.survey.agents import Agent, load_agent_list

__all__ = [
    "BLOCK_LEVELS",
    "BLOCK_LEVEL_DEFINITIONS",
    "OUTCOMES",
    "OUTCOME_DEFINITIONS",
    "WAVE_DATE_SOURCES",
    "HomepageFetch",
    "analyse_origin",
    "analyse_robots_only",
    "block_level",
    "naive_adjacent_block",
    "parse_wave_date",
    "record_failed",
    "robots_agents",
]

FULL, PARTIAL, NONE = "full", "partial", "none"
BLOCK_LEVELS = (FULL, PARTIAL, NONE)
#: robots.txt outcomes a record can carry (``unknown``: offline input without a fetch result).
OUTCOMES = ("parsed", "unavailable", "unreachable", "unknown")
#: One line per outcome, as reports print it in their glossary.
OUTCOME_DEFINITIONS = {
    "parsed": "robots.txt answered 2xx; its body is parsed (an HTML page served as robots.txt "
              "too: it has no group and blocks nothing)",
    "unavailable": "robots.txt answered 4xx: no restrictions (RFC 9309 §2.3.1.3), every agent "
                   "none",
    "unreachable": "5xx, 429 or no response (network error, refused by the network guard): "
                   "the rules are unknown; a crawler must then assume a full block, a survey "
                   "does not count it as the site's stance",
    "unknown": "offline input with an empty or missing archived file: the fetch result is "
               "not known",
}
#: One line per block level (of one agent at one origin).
BLOCK_LEVEL_DEFINITIONS = {
    "full": "no path may be fetched: a Disallow of the groups that apply to the agent (its "
            "own groups, else `*`) matches every path and no Allow opens any",
    "partial": "not full, and at least one path is disallowed",
    "none": "no path is disallowed",
    "root": "the site root / is disallowed (what a one-URL check such as Protego's "
            "can_fetch('/') counts; full implies it, partial may have it)",
    "explicit": "a robots.txt group names the agent (user-agent matching is case-insensitive)",
}
#: Where a wave's date comes from (record key ``wave.source``); see "Wave dates".
WAVE_DATE_SOURCES = ("given", "directory name", "survey clock", "capture time", "file times")
MAX_PROBLEMS = 20
#: At most this many tdmrep.json rules are copied into a record.
MAX_TDM_RULES = 20
_ROBOTS_PATH = "/robots.txt"
# Characters tried, in order, as the "any other character" of probe paths.
_FILLERS = "zqxjkvwyfgbhmpudcltrsoniea0123456789~_.-"
_STAR_COMBINATIONS = 4  # up to 2**4 fillings per rule; more stars: all-empty and all-filled
_HTML_PROBLEM = "body looks like HTML"


@dataclass(frozen=True, slots=True)
class HomepageFetch:
    """The response for an origin's homepage (``status`` None: no response)."""

    status: int | None
    headers: Mapping[str, Sequence[str]]
    body: bytes = b""


# --------------------------------------------------------------------------- block levels


def _filler(groups: Sequence[RobotsGroup]) -> str:
    used = set()
    for group in groups:
        for rule in group.rules:
            used.update(rule.pattern.encoded)
    for char in _FILLERS:
        if char not in used:
            return char
    return "\uffff"


def _probes(pattern: PathPattern, filler: str) -> Iterator[str]:
    """Paths that ``pattern`` matches: its literal parts with each ``*`` filled by nothing or by
    ``filler``, and ``filler`` appended unless the pattern is anchored with ``$``."""
    encoded = pattern.encoded
    if not encoded:
        return
    anchored = encoded.endswith("$")
    parts = (encoded[:-1] if anchored else encoded).split("*")
    if parts[0] and not parts[0].startswith("/"):
        return  # every path starts with '/': this pattern matches nothing
    stars = len(parts) - 1
    if stars <= _STAR_COMBINATIONS:
        fills: Iterable[tuple[str, ...]] = itertools.product(("", filler), repeat=stars)
    else:
        fills = (("",) * stars, (filler,) * stars)
    tails = ("",) if anchored else ("", filler)
    for fill in fills:
        path = parts[0] + "".join(f + p for f, p in zip(fill, parts[1:]))
        for tail in tails:
            probe = path + tail
            if not probe.startswith("/"):
                probe = "/" + probe  # a pattern starting with '*' lets that '*' take the '/'
            if probe != _ROBOTS_PATH and pattern.matches(probe):
                yield probe


def _allowed(groups: Sequence[RobotsGroup], path: str) -> bool:
    """RFC 9309 §2.2.2 over the combined rules of ``groups``, as RobotsFile.verdict does it (the
    crawler's own matcher, in both readings of percent-encoding; a deny in either wins)."""
    combined = tuple(groups)
    if not combined:
        return True
    raw, rfc = match_forms(path)
    for form, reading in ((raw, False), (rfc, True)):
        best, _ = _evaluate(combined, form, rfc=reading)
        if best is not None and best.kind != "allow":
            return False
    return True


def _universal(pattern: PathPattern, filler: str) -> bool:
    # A pattern that matches "/" and "/" + a character occurring in no rule matches every path:
    # its literal parts can only sit on that leading "/".
    return pattern.matches("/") and pattern.matches("/" + filler)


def block_level(groups: Sequence[RobotsGroup]) -> str:
    """``full``, ``partial`` or ``none`` for a token whose applying groups are ``groups``."""
    disallows = [r for g in groups for r in g.rules if r.kind == "disallow" and r.pattern.encoded]
    if not disallows:
        return NONE
    filler = _filler(groups)
    if any(_universal(rule.pattern, filler) for rule in disallows):
        allows = [r for g in groups for r in g.rules if r.kind == "allow" and r.pattern.encoded]
        if not any(_allowed(groups, probe) for rule in allows
                   for probe in _probes(rule.pattern, filler)):
            return FULL
    for rule in disallows:
        if any(not _allowed(groups, probe) for probe in _probes(rule.pattern, filler)):
            return PARTIAL
    return NONE


def _star_groups(robots: RobotsFile) -> tuple[RobotsGroup, ...]:
    return tuple(group for group in robots.groups if "*" in group.agents)


def _applying_groups(robots: RobotsFile, token: str) -> tuple[tuple[RobotsGroup, ...], bool]:
    """The groups that apply to ``token`` and whether one names it (see module docstring)."""
    if token == "*":
        star = _star_groups(robots)
        return star, bool(star)
    if is_valid_product_token(token):
        own = robots.matching_groups(token, fallback_to_star=False)
    else:
        lowered = token.lower()
        own = tuple(group for group in robots.groups
                    if any(line.value.strip().lower() == lowered for line in group.agent_lines))
    if own:
        return own, True
    return _star_groups(robots), False


def robots_agents(robots: RobotsFile, tokens: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``{token: {"block", "explicit", "root"[, "token_valid": False]}}`` for ``*`` and
    ``tokens`` (``root``: the site root ``/`` is disallowed)."""
    cache: dict[tuple[int, ...], tuple[str, bool]] = {}
    out: dict[str, dict[str, Any]] = {}
    for token in ("*", *tokens):
        if token in out:
            continue
        groups, explicit = _applying_groups(robots, token)
        key = tuple(id(group) for group in groups)
        if key not in cache:
            cache[key] = (block_level(groups), not _allowed(groups, "/"))
        entry: dict[str, Any] = {"block": cache[key][0], "explicit": explicit,
                                 "root": cache[key][1]}
        if token != "*" and not is_valid_product_token(token):
            entry["token_valid"] = False
        out[token] = entry
    return out


def _no_rules_agents(tokens: Iterable[str]) -> dict[str, dict[str, Any]]:
    return robots_agents(RobotsFile(groups=(), global_lines=(), sitemaps=(), problems=(),
                                    size=0, truncated=False), tokens)


# --------------------------------------------------------------------------- helpers


def _cap(problems: Iterable[str], limit: int = MAX_PROBLEMS) -> list[str]:
    items = list(dict.fromkeys(problems))
    if len(items) > limit:
        extra = len(items) - limit + 1
        items = items[: limit - 1] + [f"... and {extra} more"]
    return items


def _terms(terms: Iterable[tuple[str, bool]]) -> dict[str, bool]:
    """Most restrictive per term: False if any says False."""
    out: dict[str, bool] = {}
    for term, allowed in terms:
        out[term] = out.get(term, True) and allowed
    return out


def _file_common(f: SiteFile) -> dict[str, Any]:
    return {"status": f.status, "outcome": f.outcome, "sha256": f.sha256, "bytes": f.size}


def _header_values(headers: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, values in headers.items():
        key = name.decode("latin-1") if isinstance(name, bytes) else str(name)
        if isinstance(values, (str, bytes)):
            values = [values]
        for value in values:
            text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
            out.setdefault(key.strip().lower(), []).append(text)
    return out


# --------------------------------------------------------------------------- sections


def _robots_section(f: SiteFile) -> dict[str, Any]:
    parsed = f.parsed if isinstance(f.parsed, RobotsFile) else None
    problems = list(parsed.problems) if parsed is not None else []
    return {
        **_file_common(f),
        "html": any(p.startswith(_HTML_PROBLEM) for p in problems),
        "error": f.error,
        "problems": _cap(problems),
    }


def _robots_lines(robots: RobotsFile, key: str) -> list[tuple[Any, list[str] | None]]:
    found = [(line, list(group.agents)) for group in robots.groups
             for line in group.extensions if line.key == key]
    found += [(line, None) for line in robots.global_lines if line.key == key]
    return sorted(found, key=lambda item: item[0].line)


def _content_usage(robots: RobotsFile) -> dict[str, Any] | None:
    lines = _robots_lines(robots, "content-usage")
    if not lines:
        return None
    rules = []
    all_terms: list[tuple[str, bool]] = []
    problems: list[str] = []
    for line, agents in lines:
        path, value = aipref.split_rule(line.value)
        terms, notes = aipref.parse_preferences(value)
        if agents is None:
            notes = ("outside any user-agent group", *notes)
        all_terms.extend(terms)
        problems.extend(f"line {line.line}: {note}" for note in notes)
        rules.append({"line": line.line, "agents": agents, "path": path, "value": value,
                      "terms": dict(terms), "problems": _cap(notes)})
    return {"rules": rules, "terms": _terms(all_terms), "problems": _cap(problems)}


def _content_signal(robots: RobotsFile) -> dict[str, Any] | None:
    lines = _robots_lines(robots, "content-signal")
    if not lines:
        return None
    rules = []
    all_terms: list[tuple[str, bool]] = []
    problems: list[str] = []
    for line, agents in lines:
        terms, notes = contentsignal.parse_value(line.value)
        if agents is None:
            notes = ("outside any user-agent group", *notes)
        all_terms.extend(terms)
        problems.extend(f"line {line.line}: {note}" for note in notes)
        rules.append({"line": line.line, "agents": agents, "value": line.value,
                      "terms": _terms(terms), "problems": _cap(notes)})
    return {"rules": rules, "terms": _terms(all_terms), "problems": _cap(problems)}


def _tdmrep_section(origin: str, f: SiteFile) -> dict[str, Any] | None:
    if f.outcome == "unavailable" and f.parsed is None:
        return None  # 4xx: the site does not implement TDMRep through the well-known file
    out: dict[str, Any] = {**_file_common(f), "valid": None, "rules": None, "root": None,
                           "reserved": None, "error": f.error, "problems": []}
    parsed = f.parsed
    if not isinstance(parsed, tdm.TdmRepFile):
        return out
    out["valid"] = parsed.valid
    out["problems"] = _cap(parsed.problems)
    if not parsed.valid:
        return out
    out["rules"] = [{"location": rule.location.raw, "tdm-reservation": rule.reservation.value,
                     "tdm-policy": rule.policy} for rule in parsed.rules[:MAX_TDM_RULES]]
    if len(parsed.rules) > MAX_TDM_RULES:
        out["rules_total"] = len(parsed.rules)
    root = parsed.match(origin + "/")
    if root is not None:
        out["root"] = {"tdm-reservation": root.reservation.value, "tdm-policy": root.policy,
                       "rule": root.index}
    out["reserved"] = any(rule.reservation is tdm.TdmValue.RESERVED for rule in parsed.rules)
    return out


def _ai_txt_section(f: SiteFile, tokens: Sequence[str]) -> dict[str, Any] | None:
    if f.outcome == "unavailable" and f.parsed is None:
        return None
    out: dict[str, Any] = {**_file_common(f), "spawning_format": None, "agents": None,
                           "error": f.error, "problems": []}
    parsed = f.parsed
    if parsed is None:
        return out
    out["spawning_format"] = parsed.is_spawning_format
    out["problems"] = _cap(parsed.problems)
    if parsed.is_spawning_format and parsed.robots is not None:
        agents = robots_agents(parsed.robots, tokens)
        out["agents"] = {token: entry for token, entry in agents.items()
                         if token == "*" or entry["explicit"]}
    return out


def _tdm_from_homepage(headers: dict[str, list[str]], head: HtmlHead | None) -> dict | None:
    reservation = headers.get("tdm-reservation")
    policy = headers.get("tdm-policy")
    header_stmt = tdm.statement_from_headers(", ".join(reservation) if reservation else None,
                                             ", ".join(policy) if policy else None)
    meta_stmt = tdm.statement_from_html(head) if head is not None else None
    if header_stmt is None and meta_stmt is None:
        return None
    decision = tdm.combine(header_stmt, meta_stmt)
    problems = [*(header_stmt.problems if header_stmt else ()),
                *(meta_stmt.problems if meta_stmt else ()), *decision.problems]
    return {
        "header": header_stmt.raw if header_stmt else None,
        "meta": meta_stmt.raw if meta_stmt else None,
        "reservation": decision.reservation.value,
        "policy": decision.policy,
        "problems": _cap(problems),
    }


def _is_html(headers: dict[str, list[str]], body: bytes) -> tuple[bool, str | None]:
    ctype = (headers.get("content-type") or [""])[0].lower()
    charset = None
    match = re.search(r"charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", ctype)
    if match is not None:
        charset = match.group(1)
    if not body:
        return False, charset
    return (not ctype or "html" in ctype), charset


def _homepage_section(origin: str, home: HomepageFetch) -> tuple[dict, list[tuple[str, str]]]:
    headers = _header_values(home.headers)
    body = bytes(home.body or b"")
    html, charset = _is_html(headers, body)
    head = parse_html_head(body, encoding=charset) if html else None
    url = origin + "/"
    out: dict[str, Any] = {"status": home.status}
    out["tdm-reservation"] = _tdm_from_homepage(headers, head)

    xrt = headers.get("x-robots-tag")
    if xrt:
        d = noai.directives_from_x_robots_tag(xrt, "")
        out["x-robots-tag"] = {"values": xrt[:10], "ai": list(d.ai), "problems": _cap(d.problems)}
    else:
        out["x-robots-tag"] = None

    usage = headers.get("content-usage")
    stmt = aipref.statement_from_header(", ".join(usage)) if usage else None
    out["content-usage"] = None if stmt is None else {
        "value": ", ".join(usage or ()), "terms": _terms(stmt.terms),
        "problems": _cap(stmt.problems)}

    signal = headers.get("content-signal")
    header_stmt = contentsignal.statement_from_header(", ".join(signal)) if signal else None
    meta_stmt = contentsignal.statement_from_meta(head) if head is not None else None
    if header_stmt is None and meta_stmt is None:
        out["content-signal"] = None
    else:
        stmts = [s for s in (header_stmt, meta_stmt) if s is not None]
        out["content-signal"] = {
            "header": ", ".join(signal) if signal else None,
            "meta": [m.content for m in head.meta_values("content-signal")] if head else None,
            "terms": _terms(t for s in stmts for t in s.terms),
            "problems": _cap(p for s in stmts for p in s.problems)}

    robots_metas = head.meta_values("robots") if head is not None else ()
    if robots_metas:
        d = noai.directives_from_meta(head, "")  # type: ignore[arg-type]
        out["meta-robots"] = {"values": [m.content for m in robots_metas[:10]],
                              "ai": list(d.ai), "problems": _cap(d.problems)}
    else:
        out["meta-robots"] = None

    links: list[tuple[str, str]] = []
    for link_url in rsl.license_urls_from_link_header(headers.get("link", []), url):
        links.append((link_url, "link-header"))
    if head is not None:
        for link in head.links_with_rel("license"):
            if (link.type or "").split(";")[0].strip().lower() == rsl.RSL_MEDIA_TYPE:
                value = f'<{link.href}>; rel="license"; type="{rsl.RSL_MEDIA_TYPE}"'
                for link_url in rsl.license_urls_from_link_header(value, url):
                    links.append((link_url, "meta"))
    out["rsl-links"] = list(dict.fromkeys(u for u, _ in links)) or None
    out["problems"] = _cap(head.problems) if head is not None else []
    return out, links


def _rsl_section(origin: str, robots: RobotsFile | None, licences: Mapping[str, SiteFile],
                 links: Sequence[tuple[str, str]]) -> dict[str, Any] | None:
    named: dict[str, list[str]] = {}
    problems: list[str] = []
    if robots is not None:
        for url, notes in rsl.license_urls_from_robots(robots, origin + _ROBOTS_PATH):
            named.setdefault(url, []).append("robots.txt")
            problems.extend(notes)
    for url, where in links:
        named.setdefault(url, []).append(where)
    for url in licences:
        named.setdefault(url, [])
    if not named:
        return None
    entries = []
    for url, where in named.items():
        f = licences.get(url)
        entry: dict[str, Any] = {"url": url, "named_in": list(dict.fromkeys(where)),
                                 "status": None, "outcome": None, "sha256": None, "bytes": None,
                                 "valid": None, "terms": None, "rule": None, "problems": []}
        if f is not None:
            entry.update(_file_common(f))
            doc = f.parsed
            if isinstance(doc, rsl.RslDocument):
                entry["valid"] = doc.valid
                entry["problems"] = _cap(doc.problems)
                stmt = rsl.statement_for(doc, origin + "/", source=url)
                if stmt is not None:
                    entry["terms"] = dict(stmt.terms)
                    entry["rule"] = stmt.rule
        entries.append(entry)
    return {"licences": entries, "problems": _cap(problems)}


def _safely(section: str, problems: list[str], fn: Callable[..., Any], *args: Any) -> Any:
    """Run one section; a bug there costs that section, never the record or the run."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 -- remote bytes must never stop a survey
        problems.append(f"{section}: analysis failed ({type(exc).__name__}: {exc})")
        return None


# --------------------------------------------------------------------------- records


def analyse_origin(
    origin: str,
    *,
    surveyed_at: str,
    robots: SiteFile | None,
    tdmrep: SiteFile | None,
    ai_txt: SiteFile | None,
    licences: Mapping[str, SiteFile],
    homepage: HomepageFetch | None,
    agents: Sequence[Agent],
    wave: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The survey record of one origin (see the module docstring).  ``None`` for a file means
    it was not checked; ``licences`` maps each fetched RSL licence URL to its fetch; ``wave``:
    ``{"date", "source"}`` of the wave (see "Wave dates")."""
    origin = origin.rstrip("/")
    tokens = [agent.token for agent in agents]
    failures: list[str] = []
    checked = [name for name, value in (("robots.txt", robots), ("tdmrep.json", tdmrep),
                                        ("ai.txt", ai_txt), ("homepage", homepage))
               if value is not None]
    robots_file = (robots.parsed if robots is not None and robots.outcome == "parsed"
                   and isinstance(robots.parsed, RobotsFile) else None)

    record: dict[str, Any] = {"origin": origin, "surveyed_at": surveyed_at,
                              "wave": dict(wave) if wave is not None else None,
                              "checked": checked}
    record["robots"] = _safely("robots", failures, _robots_section, robots) if robots else None
    if robots_file is not None:
        record["agents"] = _safely("agents", failures, robots_agents, robots_file, tokens)
    elif robots is not None and robots.outcome == "unavailable":
        record["agents"] = _no_rules_agents(tokens)
    else:
        record["agents"] = None
    empty = RobotsFile(groups=(), global_lines=(), sitemaps=(), problems=(), size=0,
                       truncated=False)
    source = robots_file if robots_file is not None else empty
    record["content_usage"] = _safely("content_usage", failures, _content_usage, source)
    record["content_signal"] = _safely("content_signal", failures, _content_signal, source)
    links: list[tuple[str, str]] = []
    home_section = None
    if homepage is not None:
        result = _safely("homepage", failures, _homepage_section, origin, homepage)
        if result is not None:
            home_section, links = result
    record["rsl"] = _safely("rsl", failures, _rsl_section, origin, robots_file, licences, links)
    record["tdmrep"] = (_safely("tdmrep", failures, _tdmrep_section, origin, tdmrep)
                        if tdmrep is not None else None)
    record["ai_txt"] = (_safely("ai_txt", failures, _ai_txt_section, ai_txt, tokens)
                        if ai_txt is not None else None)
    record["homepage"] = home_section
    record["agent_list"] = load_agent_list().date
    if failures:
        record["failures"] = failures
    return record


def _origin_of(host: str) -> str:
    host = host.strip().rstrip("/")
    if "://" in host:
        return host
    return "https://" + host.lower()


def analyse_robots_only(
    host: str,
    body: bytes | None,
    *,
    surveyed_at: str,
    agents: Sequence[Agent] | None = None,
    status: int | None = None,
    error: str | None = None,
    wave: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The record for an archived robots.txt alone (``host`` or an origin URL).

    ``status`` None means the archive kept no status: a non-empty body is read as a 2xx
    response (status recorded as null), an empty or missing one (``body`` None) gives outcome
    ``unknown``.  With a status, RFC 9309's reading of it applies as online.
    """
    origin = _origin_of(host)
    url = origin + _ROBOTS_PATH
    data = bytes(body) if body is not None else None
    if status is None:
        if not data:
            why = error or ("no archived file" if data is None else
                            "empty archived file: fetch result unknown")
            robots = SiteFile("robots.txt", url, "unknown", error=why)
        else:
            robots = replace(site_file("robots.txt", url, status=200, body=data), status=None,
                             error=error)
    else:
        robots = replace(site_file("robots.txt", url, status=status, body=data or b""),
                         error=error)
    return analyse_origin(origin, surveyed_at=surveyed_at, robots=robots, tdmrep=None,
                          ai_txt=None, licences={}, homepage=None,
                          agents=load_agent_list().agents if agents is None else agents,
                          wave=wave)


def record_failed(record: Mapping[str, Any]) -> bool:
    """Whether a survey record failed (see the module docstring): its origin is worth
    surveying again once the cause (network, config) is fixed."""
    if record.get("failures") or record.get("homepage_error"):
        return True
    robots = record.get("robots")
    if not isinstance(robots, Mapping) or robots.get("outcome") in ("unreachable", "unknown"):
        return True
    for key in ("tdmrep", "ai_txt"):
        section = record.get(key)
        if isinstance(section, Mapping) and section.get("outcome") == "unreachable":
            return True
    return False


_WAVE_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_wave_date(text: str) -> str:
    """``YYYY-MM-DD`` checked to be a calendar date; ValueError (one line) otherwise."""
    from datetime import date

    text = str(text).strip()
    try:
        if not _WAVE_DATE.fullmatch(text):
            raise ValueError
        date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date of the form YYYY-MM-DD") from None
    return text


def naive_adjacent_block(body: bytes | str, token: str) -> bool:
    """The rule of the news data set's own analyser (winterForestStump/news_robots_files_analyzer,
    ``code/robots_analyzer.py``), for comparison: True when a line that starts with
    ``User-agent:`` (exactly so spelled) names ``token`` exactly (case-sensitive) and the next
    line, stripped, is exactly ``Disallow: /``.

    It misses stacked ``User-agent`` lines, other spellings (``User-Agent:``), comments, ``*``
    groups and every rule after the first line of a group.
    """
    text = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else body
    lines = text.split("\n")
    for index, line in enumerate(lines):
        line = line.strip()
        if not line.startswith("User-agent:"):
            continue
        if line.split("User-agent:")[1].strip() != token:
            continue
        if index + 1 < len(lines) and lines[index + 1].strip() == "Disallow: /":
            return True
    return False
