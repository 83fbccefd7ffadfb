"""Reports on opt-out uptake (survey files) or on a crawl's refusals (audit logs).

:func:`build_report` reads JSON-lines inputs, recognises each one by its records (audit records
have ``seq``, ``hash`` and ``decision``; survey records ``origin`` and ``surveyed_at``) and writes
into ``out_dir``:

* ``report.md`` and ``report.html`` (self-contained: styles inline, no script, charts referenced
  by relative file name), with the same tables;
* ``report.json``: every figure of the tables, as ``{"count", "of", "percent", "ci95", "text"}``,
  and the tables themselves as the strings printed, so a study can cite and recompute them;
* PNG charts, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Units, denominators, intervals
------------------------------
Every figure says what it counts -- **origins** (scheme, host and port) in a survey, distinct
**URLs** or audit **records** in an audit report -- and is printed with its denominator and a
95 % Wilson score interval: ``47/95 (49.5 % [39.6–59.3])``; ``0/0 (—)`` when nothing could be
counted.  Each report ends with a glossary generated from :data:`MEASURES` (and from the survey's
own definitions, :data:`crawler.survey.analysis.BLOCK_LEVEL_DEFINITIONS` and ``OUTCOME_DEFINITIONS``):
every measure its tables use, its unit, definition and denominator.  Measures that look alike
are named apart (a mechanism's "present" always includes its "reserves AI training").

The report reads no clock and names inputs by file name only, so the same inputs give the same
files.

Surveys
-------
One input file is one survey (a *wave*); several make a time series, ordered by the wave's
date: the ``wave.date`` its records carry (``survey --date``, a dated directory name, the
survey's clock, the WARC capture date; the earliest when they differ).  A time series of waves
without a date (archived files dated only by their modification times, or files written before
waves were dated) is refused -- file times say when files were copied, and a "June" copied after
"July" inverts the trend -- unless ``use_file_times`` is set: such waves are then ordered by
their records' earliest ``surveyed_at`` and labelled "(file times)".  A wave is labelled by its
date, plus the file name when two share it.  Within a wave an origin listed twice counts once
(its last record: ``survey --retry-failed``/``--force`` append).  The tables describe the latest
wave; the trend tables and charts cover all of them.

* Agents: share of origins whose robots.txt blocks each agent ``full``/``partial`` (as defined
  in :mod:`crawler.survey.analysis`), of the origins whose robots.txt could be evaluated (outcome
  ``parsed`` or ``unavailable``; ``unreachable``/``unknown`` are left out and shown in the
  outcome table).  Tokens differing only in case are counted once.  The agents blocked at any
  origin are ranked by full blocks, then full-or-partial; agents blocked nowhere are not listed,
  and a group of agents tied at the cut is left out whole (the note says how many), never cut
  alphabetically.
* Companies (the agent list's operators): an origin counts for "≥1 agent full" when it fully
  blocks at least one of the company's listed tokens, for "all agents full" when it fully blocks
  every one of them.
* Mechanisms (:data:`_MECHANISMS`): an origin *uses* a mechanism when it is present and
  *reserves AI training* through it when it says no to training; the definitions are in the
  glossary.  robots.txt has three rows: groups naming an AI agent, the ``*`` group, and own or
  ``*`` group (for the listed AI agents).
  The denominator is the origins where the mechanism's carrier was checked and could be read
  (robots.txt parsed or 4xx; tdmrep.json / ai.txt not unreachable; a homepage response), from
  each record's ``checked``.
* Trends: the full-block share of the tracked agents and each mechanism's presence per wave,
  and the change between consecutive waves (and first to latest) in percentage points, flagged
  "intervals overlap" when the two waves' 95 % intervals overlap (the change may be noise) or
  "intervals apart".
* Changed stance: for each pair of consecutive waves, the origins evaluated in both whose block
  level changed for ``*`` or a listed agent: "stricter" (none -> partial/full, partial -> full)
  and "looser" (the reverse).

Audit logs
----------
:class:`AuditTally` (also used by :mod:`crawler.publish.transparency`, so both agree): decisions about
documents (``allow``/``deny``/``erase``; write-ahead ``send``/``result`` records and ``preflight``
records about per-origin files are left out) are counted as **distinct URLs by the final
decision** about each URL -- a URL refused three times while its robots.txt was unreachable and
then refused for good counts once -- and, separately and labelled so, as **records**.  The
final decision is the latest (by record time, then log order) that is not provisional
(``undecided`` with ``final`` false); a URL with only provisional refusals is "postponed".
Refusals by signal: a refused URL counts once for each distinct signal of its final refusal, so
the rows may add up to more than the refused URLs; ``report.json`` gives per signal ``urls`` and
``records`` (refusal records citing it, provisional ones included).  By origin: the top 20
origins by refused URLs.

Pay per crawl (:class:`PaymentTally`, also used by :mod:`crawler.publish.transparency`): the
``pay-quote`` / ``pay-decision`` / ``pay-charge`` records of :mod:`crawler.policy.payment`
(``decision: "result"``, the payload under ``payment``).  Spend over time: per UTC day of the
charge record and per currency, the amounts charged (``charged``: what the budget was debited),
added up exactly as decimals, never as floats and never across currencies, and the pages
charged (charge records with an amount); a charge record whose amount is not a price in
:data:`crawler.policy.payment.PRICE_RULES` is listed apart and summed nowhere.  A log without such
records gives the report it gave before.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date as _date
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from crawler.survey.agents import load_agent_list
from crawler.policy.payment import PriceError, parse_price
from crawler.survey.analysis import BLOCK_LEVEL_DEFINITIONS, OUTCOME_DEFINITIONS

__all__ = [
    "MEASURES",
    "PALETTE",
    "AuditTally",
    "Measure",
    "PaymentTally",
    "ReportError",
    "Table",
    "bar_chart",
    "build_report",
    "fraction",
    "fraction_text",
    "intervals_overlap",
    "spend_chart",
    "trend_chart",
    "wilson_interval",
]

TOP_AGENTS = 20
TOP_COMPANIES = 15
TOP_ORIGINS = 20
TRACKED_AGENTS = 8
#: Changed-stance rows list at most this many tokens per cell in the Markdown/HTML tables.
TOKENS_SHOWN = 6
#: z for a two-sided 95 % interval.
Z95 = 1.959963984540054
#: Okabe & Ito's colour-blind-safe palette (blue, orange, bluish green, reddish purple, sky
#: blue, vermillion, yellow, black).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
           "#000000")
_LINESTYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_STRICTNESS = {"none": 0, "partial": 1, "full": 2}
_OUTCOMES = ("parsed", "unavailable", "unreachable", "unknown")
#: URL outcomes of an audit report, in table order.
URL_OUTCOMES = ("allowed", "refused", "erased", "postponed")


class ReportError(ValueError):
    """The inputs cannot make a report (unreadable, empty, surveys mixed with audit logs, or a
    time series of undated waves)."""


# --------------------------------------------------------------------------- figures


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


# --------------------------------------------------------------------------- definitions


@dataclass(frozen=True, slots=True)
class Measure:
    """One measure of a report: printed once, in the glossary."""

    key: str
    name: str
    unit: str
    definition: str
    denominator: str


_EVALUATED = "origins whose robots.txt could be evaluated (outcome parsed or unavailable)"
_CHECKED = ("origins where a carrier of the mechanism was checked and could be read "
            "(robots.txt parsed or 4xx; tdmrep.json / ai.txt not unreachable; a homepage "
            "response)")


def _m(key: str, name: str, unit: str, definition: str, denominator: str) -> Measure:
    return Measure(key, name, unit, definition, denominator)


#: (key, name, carriers checked, what "present" means, what "reserves AI training" means).
#: "reserves" always implies "present".
_MECHANISMS: tuple[tuple[str, str, tuple[str, ...], str, str], ...] = (
    ("robots_named", "robots.txt: groups naming an AI agent", ("robots.txt",),
     "a robots.txt group naming a listed AI agent disallows at least one path",
     "a listed AI agent is blocked fully by a group naming it"),
    ("robots_star", "robots.txt: the * group", ("robots.txt",),
     "the `*` group (every crawler without a group of its own) disallows at least one path",
     "the `*` group blocks fully"),
    ("robots", "robots.txt: own or * group (AI agents)", ("robots.txt",),
     "at least one listed AI agent is blocked fully or partially, by its own groups or by `*`",
     "at least one listed AI agent is blocked fully, by its own groups or by `*`"),
    ("tdmrep", "TDMRep", ("tdmrep.json", "homepage"),
     "a valid /.well-known/tdmrep.json, or a tdm-reservation header or meta tag",
     "tdm-reservation: 1 in the file or the homepage"),
    ("ai_txt", "ai.txt (Spawning)", ("ai.txt",),
     "an /ai.txt in Spawning's format",
     "the ai.txt disallows something to `*` or a listed agent"),
    ("content_usage", "Content-Usage (AIPREF)", ("robots.txt", "homepage"),
     "a Content-Usage rule in robots.txt or a Content-Usage response header",
     "train-ai=n"),
    ("content_signal", "Content-Signal", ("robots.txt", "homepage"),
     "a Content-Signal line in robots.txt, or the header or meta tag",
     "ai-train=no"),
    ("rsl", "RSL licence", ("robots.txt", "homepage"),
     "an RSL licence named by robots.txt License:, a Link header or <link rel=license>",
     "a fetched licence that does not grant ai-train"),
    ("noai", "noai / noimageai (header or meta)", ("homepage",),
     "noai or noimageai in the homepage's X-Robots-Tag or robots meta tag",
     "the same (the directive says no to AI use)"),
)


def _measures() -> dict[str, Measure]:
    o, u, r = "origins", "URLs (distinct)", "audit records"
    out = [
        _m("share", "a/b (p % [lo–hi])", "—",
           "a of b counted, p = 100 a/b, and its 95 % Wilson score interval: the range of "
           "shares compatible with the count at the 95 % level if the units were a random "
           "sample (for a census -- every origin of a list, every URL of a crawl -- it "
           "reads as the share's stability, not as sampling error)", "given by b"),
        _m("evaluated", "evaluated origins", o,
           "origins whose robots.txt was read: outcome parsed or unavailable (4xx); "
           "unreachable and unknown ones are left out of every agent share, since their "
           "rules are not known", "—"),
        _m("agent_full", "full", o, BLOCK_LEVEL_DEFINITIONS["full"], _EVALUATED),
        _m("agent_partial", "partial", o, BLOCK_LEVEL_DEFINITIONS["partial"], _EVALUATED),
        _m("agent_blocked", "full or partial", o,
           "full plus partial: at least one path is disallowed to the agent", _EVALUATED),
        _m("agent_root", "/ disallowed", o, BLOCK_LEVEL_DEFINITIONS["root"], _EVALUATED),
        _m("agent_explicit", "named by a group", o, BLOCK_LEVEL_DEFINITIONS["explicit"]
           + "; for `*`: a `*` group exists", _EVALUATED),
        _m("company_any_full", "≥1 agent full", o,
           "at least one of the operator's listed tokens is blocked fully", _EVALUATED),
        _m("company_all_full", "all agents full", o,
           "every one of the operator's listed tokens is blocked fully", _EVALUATED),
        _m("company_any_blocked", "≥1 agent full or partial", o,
           "at least one of the operator's listed tokens is blocked fully or partially",
           _EVALUATED),
    ]
    for key, name, _, present, reserves in _MECHANISMS:
        out.append(_m(f"{key}_present", f"{name}: present", o, present, _CHECKED))
        out.append(_m(f"{key}_reserves", f"{name}: reserves AI training", o,
                      reserves + " (implies present)", _CHECKED))
    for name, text in OUTCOME_DEFINITIONS.items():
        out.append(_m(f"outcome_{name}", f"robots.txt {name}", o, text, "all origins surveyed"))
    out += [
        _m("outcome_html", "HTML served as robots.txt", o,
           "a 2xx robots.txt whose body looks like an HTML page (parsed: no group)",
           "all origins surveyed"),
        _m("change", "change (points)", "percentage points",
           "later share minus earlier share; 'intervals overlap' when the two 95 % intervals "
           "overlap (the change may be chance), 'intervals apart' otherwise -- a conservative "
           "reading: apart means a difference, overlap does not prove there is none", "—"),
        _m("stance", "stricter / looser", o,
           "an origin evaluated in both waves whose block level for `*` or a listed agent "
           "rose (none→partial/full, partial→full) or fell", "—"),
        _m("url_allowed", "allowed", u,
           "URLs whose final decision is allow (collected, unless its response was not kept)",
           "URLs decided"),
        _m("url_refused", "refused", u, "URLs whose final decision is deny", "URLs decided"),
        _m("url_erased", "erased", u,
           "URLs whose final decision is erase: collected, then removed by revalidation",
           "URLs decided"),
        _m("url_postponed", "postponed", u,
           "URLs refused only provisionally (a per-origin file could not be fetched; the "
           "crawler would decide again later): not decided, outside the denominator",
           "URLs with a record"),
        _m("url_decided", "URLs decided", u,
           "distinct URLs with a final decision (allowed + refused + erased); the final "
           "decision is the latest that is not provisional", "—"),
        _m("signal_urls", "refused URLs citing the signal", u,
           "refused URLs whose final refusal cites the signal (a URL citing two signals "
           "counts under each)", "refused URLs"),
        _m("signal_records", "refusal records citing the signal", r,
           "deny records citing the signal, provisional ones included (one URL refused three "
           "times counts three times)", "deny records"),
        _m("records", "decision records", r,
           "allow / deny / erase records about documents (write-ahead send/result records and "
           "preflight records about robots.txt and other per-origin files are not counted)",
           "decision records"),
        _m("origin_refused", "refused of its decided URLs", u,
           "the origin's refused URLs", "the origin's decided URLs"),
        _m("origin_share", "share of refused URLs", u, "the origin's refused URLs",
           "all refused URLs"),
        _m("pay_charged", "charged", "money, per currency",
           "the amounts of the pay-charge records (what the budget was debited: the "
           "crawler-charged value, or the amount authorised when the site's value could not be "
           "read), added up exactly as decimals; amounts in different currencies are never "
           "added together or converted", "—"),
        _m("pay_pages", "pages charged", "pay-charge records",
           "pay-charge records with an amount: each one paid request", "—"),
        _m("pay_unreadable", "unreadable charge records", r,
           "pay-charge records whose amount is not a price in the strict grammar (a log "
           "written by another tool, or altered): listed, never added to a total", "—"),
    ]
    return {m.key: m for m in out}


#: Every measure a report can print, by key (the glossary lists those a report uses).
MEASURES: dict[str, Measure] = _measures()


@dataclass(frozen=True, slots=True)
class Table:
    """One table, printed identically in Markdown, HTML and report.json.  ``measures``: the
    keys (of :data:`MEASURES`, or of extra measures given to :func:`build_report`) of what its
    cells count, listed in the glossary."""

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


@dataclass(frozen=True, slots=True)
class _Input:
    path: Path
    kind: str  # 'survey' | 'audit' | 'empty'
    records: tuple[dict[str, Any], ...]
    skipped: int


def _kind(record: Mapping[str, Any]) -> str | None:
    if {"seq", "hash", "decision"} <= record.keys():
        return "audit"
    if {"origin", "surveyed_at"} <= record.keys():
        return "survey"
    return None


def _read_input(path: Path) -> _Input:
    records: list[dict[str, Any]] = []
    kinds: Counter[str] = Counter()
    skipped = 0
    try:
        with open(path, "rb") as fh:
            for raw in fh:
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw)
                except ValueError:
                    skipped += 1
                    continue
                kind = _kind(record) if isinstance(record, dict) else None
                if kind is None:
                    skipped += 1
                    continue
                kinds[kind] += 1
                records.append(record)
    except OSError as exc:
        raise ReportError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if len(kinds) > 1:
        raise ReportError(f"{path}: holds both survey and audit records; give them separately")
    kind = next(iter(kinds)) if kinds else "empty"
    return _Input(path=path, kind=kind, records=tuple(records), skipped=skipped)


def _agents_of(record: Mapping[str, Any]) -> dict[str, Any] | None:
    agents = record.get("agents")
    return agents if isinstance(agents, dict) else None


def _block(entry: Any) -> str:
    if isinstance(entry, dict) and entry.get("block") in _STRICTNESS:
        return entry["block"]
    return "none"


def _readable(record: Mapping[str, Any], carriers: Sequence[str]) -> bool:
    """Whether one of ``carriers`` was checked and its content is known (robots.txt parsed or
    4xx; tdmrep.json / ai.txt not unreachable; a homepage response)."""
    checked = record.get("checked")
    if not isinstance(checked, list):
        # records without 'checked': whatever is not null was looked at
        checked = [name for name, key in (("robots.txt", "robots"), ("tdmrep.json", "tdmrep"),
                                          ("ai.txt", "ai_txt"), ("homepage", "homepage"))
                   if record.get(key) is not None]
    for carrier in carriers:
        if carrier not in checked:
            continue
        if carrier == "robots.txt":
            if _dict(record.get("robots")).get("outcome") in ("parsed", "unavailable"):
                return True
        elif carrier == "homepage":
            if _dict(record.get("homepage")).get("status") is not None:
                return True
        else:
            section = record.get("tdmrep" if carrier == "tdmrep.json" else "ai_txt")
            if _dict(section).get("outcome") != "unreachable":
                return True
    return False


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _mechanism(record: Mapping[str, Any], key: str, tokens: Sequence[str]) -> tuple[bool, bool]:
    """(present, reserves AI training) for one mechanism of one record; reserves implies
    present."""
    present, reserves = _mechanism_raw(record, key, tokens)
    return present, present and reserves


def _mechanism_raw(record: Mapping[str, Any], key: str,
                   tokens: Sequence[str]) -> tuple[bool, bool]:
    home = _dict(record.get("homepage"))
    if key in ("robots_named", "robots_star", "robots"):
        agents = _agents_of(record) or {}
        if key == "robots_named":
            named = [_block(agents[t]) for t in tokens if isinstance(agents.get(t), dict)
                     and agents[t].get("explicit")]
            return any(b != "none" for b in named), "full" in named
        if key == "robots_star":
            star = _block(agents.get("*"))
            return star != "none", star == "full"
        levels = [_block(agents.get(t)) for t in tokens]
        return any(b != "none" for b in levels), "full" in levels
    if key == "tdmrep":
        file = _dict(record.get("tdmrep"))
        meta = _dict(home.get("tdm-reservation"))
        present = file.get("valid") is True or bool(meta)
        reserves = ((file.get("valid") is True and file.get("reserved") is True)
                    or meta.get("reservation") == 1)
        return present, reserves
    if key == "ai_txt":
        ai = _dict(record.get("ai_txt"))
        present = ai.get("spawning_format") is True
        reserves = any(_block(e) != "none" for e in _dict(ai.get("agents")).values())
        return present, reserves
    if key == "content_usage":
        found = [s for s in (record.get("content_usage"), home.get("content-usage")) if s]
        reserves = any(_dict(_dict(s).get("terms")).get("train-ai") is False for s in found)
        return bool(found), reserves
    if key == "content_signal":
        found = [s for s in (record.get("content_signal"), home.get("content-signal")) if s]
        reserves = any(_dict(_dict(s).get("terms")).get("ai-train") is False for s in found)
        return bool(found), reserves
    if key == "rsl":
        licences = _dict(record.get("rsl")).get("licences") or []
        reserves = any(_dict(_dict(lic).get("terms")).get("ai-train") is False
                       for lic in licences)
        return bool(licences), reserves
    if key == "noai":
        words = set()
        for name in ("x-robots-tag", "meta-robots"):
            words.update(_dict(home.get(name)).get("ai") or ())
        present = bool(words & {"noai", "noimageai"})
        return present, present
    raise ValueError(f"unknown mechanism {key!r}")


def _tokens(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """Agent tokens in first-seen order, one per case-insensitive spelling, without '*'."""
    seen: dict[str, str] = {}
    for record in records:
        for token in _agents_of(record) or {}:
            if token != "*":
                seen.setdefault(token.lower(), token)
    return list(seen.values())


def _company_map() -> dict[str, str]:
    return {agent.token.lower(): agent.company for agent in load_agent_list().agents
            if agent.company}


def _top(items: Sequence[Any], key: Any, n: int) -> tuple[list[Any], int]:
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


def _wave_figures(label: str, records: Sequence[Mapping[str, Any]],
                  date: dict[str, Any]) -> dict[str, Any]:
    from crawler.publish.transparency import registrable_domain

    n = len(records)
    evaluated = [r for r in records if _agents_of(r) is not None]
    e = len(evaluated)
    tokens = _tokens(evaluated)
    companies = _company_map()

    def agent_row(token: str) -> dict[str, Any]:
        blocks = Counter(_block(_agents_of(r).get(token)) for r in evaluated)  # type: ignore
        explicit = sum(1 for r in evaluated
                       if _dict(_agents_of(r).get(token)).get("explicit"))  # type: ignore
        root = sum(1 for r in evaluated
                   if _dict(_agents_of(r).get(token)).get("root"))  # type: ignore
        return {"token": token, "company": companies.get(token.lower()),
                "full": fraction(blocks["full"], e), "partial": fraction(blocks["partial"], e),
                "blocked": fraction(blocks["full"] + blocks["partial"], e),
                "root": fraction(root, e), "explicit": fraction(explicit, e)}

    agents = [agent_row(token) for token in tokens]
    agents.sort(key=lambda a: (-a["full"]["count"], -a["blocked"]["count"], a["token"].lower()))

    by_company: dict[str, list[str]] = {}
    for token in tokens:
        company = companies.get(token.lower())
        if company:
            by_company.setdefault(company, []).append(token)
    company_rows = []
    for company, members in by_company.items():
        any_full = all_full = any_blocked = 0
        for record in evaluated:
            levels = [_block(_agents_of(record).get(t)) for t in members]  # type: ignore
            any_full += "full" in levels
            all_full += all(level == "full" for level in levels)
            any_blocked += any(level != "none" for level in levels)
        company_rows.append({"company": company, "tokens": members,
                             "any_full": fraction(any_full, e),
                             "all_full": fraction(all_full, e),
                             "any_blocked": fraction(any_blocked, e)})
    company_rows.sort(key=lambda c: (-c["any_full"]["count"], -c["any_blocked"]["count"],
                                     c["company"].lower()))

    mechanisms = []
    for key, name, carriers, _, _ in _MECHANISMS:
        if key.startswith("robots"):
            pool = evaluated
        else:
            pool = [r for r in records if _readable(r, carriers)]
        results = [_mechanism(r, key, tokens) for r in pool]
        mechanisms.append({"key": key, "name": name, "checked_via": list(carriers),
                           "present": fraction(sum(p for p, _ in results), len(pool)),
                           "reserves": fraction(sum(r for _, r in results), len(pool))})

    outcomes: Counter[str] = Counter()
    html_count = 0
    for record in records:
        robots = record.get("robots")
        if not isinstance(robots, dict):
            outcomes["not checked"] += 1
            continue
        outcomes[robots.get("outcome") or "unknown"] += 1
        html_count += bool(robots.get("html"))
    outcome_rows = {name: fraction(outcomes[name], n)
                    for name in (*_OUTCOMES, "not checked") if outcomes[name] or name in _OUTCOMES}
    for name, count in outcomes.items():
        if name not in outcome_rows:
            outcome_rows[name] = fraction(count, n)
    stamps = sorted(str(r.get("surveyed_at") or "") for r in records)
    star = agent_row("*") if evaluated else None
    domains = {registrable_domain(str(r.get("origin") or "")) for r in records}
    return {"label": label, "date": date["date"], "date_source": date["source"],
            "surveyed_at": {"first": stamps[0] if stamps else None,
                            "last": stamps[-1] if stamps else None},
            "origins": n, "registrable_domains": len(domains - {""}), "evaluated": e,
            "robots_outcomes": outcome_rows,
            "html_as_robots": fraction(html_count, n), "star": star, "agents": agents,
            "companies": company_rows, "mechanisms": mechanisms}


def _changes(prev: Sequence[Mapping[str, Any]], cur: Sequence[Mapping[str, Any]],
             tokens: Sequence[str]) -> list[dict[str, Any]]:
    before = {r["origin"]: _agents_of(r) for r in prev if _agents_of(r) is not None}
    out = []
    for record in cur:
        now = _agents_of(record)
        old = before.get(record["origin"])
        if now is None or old is None:
            continue
        stricter, looser = [], []
        for token in ("*", *tokens):
            a, b = _block(old.get(token)), _block(now.get(token))
            if a != b:
                change = f"{token} {a}→{b}"
                (stricter if _STRICTNESS[b] > _STRICTNESS[a] else looser).append(change)
        if stricter or looser:
            out.append({"origin": record["origin"], "stricter": stricter, "looser": looser})
    return out


def _short(items: Sequence[str]) -> str:
    if not items:
        return "—"
    shown = ", ".join(items[:TOKENS_SHOWN])
    return shown + (f", +{len(items) - TOKENS_SHOWN} more" if len(items) > TOKENS_SHOWN else "")


# --------------------------------------------------------------------------- charts


def _figure(width: float, height: float):
    from crawler.extras import require

    require("matplotlib", "report", "report charts")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, out_dir: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out_dir / name, format="png", metadata={"Software": None})
    return name


def _pct(f: Mapping[str, Any]) -> float:
    return float(f["percent"] or 0.0)


def _ci(f: Mapping[str, Any]) -> tuple[float, float]:
    ci = wilson_interval(f["count"], f["of"])
    return (100 * ci[0], 100 * ci[1]) if ci else (0.0, 0.0)


def _percent_axis(limit: float) -> tuple[float, list[float]]:
    """An axis end a little beyond ``limit`` (room for value labels) and ticks up to 100."""
    top = min(100.0, max(limit, 1.0))
    step = next(s for s in (1, 2, 5, 10, 20, 25) if top / s <= 6)
    ticks = [i * step for i in range(int(top // step) + 2) if i * step <= 100]
    return max(limit * 1.22 + 1.0, ticks[-1]), ticks


def bar_chart(out_dir: Path, name: str, title: str, labels: Sequence[str],
              series: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], xlabel: str, *,
              sort: bool = True) -> str:
    """Horizontal bars of shares (figures as :func:`fraction` returns them), one group per
    label, with 95 % error bars and value labels; sorted by the first series, largest on top.
    The axis is scaled to the data; colours from :data:`PALETTE`."""
    order = list(range(len(labels)))
    if sort:
        order.sort(key=lambda i: -_pct(series[0][1][i]))
    k = len(series)
    band = 0.8 / k
    fig = _figure(9, max(2.4, (0.3 + 0.22 * (k - 1)) * len(labels) + 1.4))
    ax = fig.subplots()
    tops = [len(order) - 1 - pos for pos in range(len(order))]
    highest = 0.0
    for j, (legend, values) in enumerate(series):
        ys = [top + (k - 1) / 2 * band - j * band for top in tops]
        xs = [_pct(values[i]) for i in order]
        cis = [_ci(values[i]) for i in order]
        err = [[x - lo for x, (lo, _) in zip(xs, cis)], [hi - x for x, (_, hi) in zip(xs, cis)]]
        ax.barh(ys, xs, height=band * 0.9, color=PALETTE[j % len(PALETTE)], label=legend,
                xerr=err, error_kw={"ecolor": "#333333", "elinewidth": 0.8, "capsize": 2})
        for y, x, (_, hi), i in zip(ys, xs, cis, order):
            text = f"{x:.1f} %" if values[i]["of"] else "not checked (n = 0)"
            ax.text(hi + 0.6, y, text, va="center", fontsize=7, color="#222222")
        highest = max([highest, *(hi for _, hi in cis)])
    end, ticks = _percent_axis(highest)
    ax.set_xlim(0, end)
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.set_yticks(tops)
    ax.set_yticklabels([labels[i] for i in order], fontsize=8)
    ax.set_xlabel(xlabel + " (bars: 95 % interval)", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.25)
    ax.set_axisbelow(True)
    if k > 1:
        ax.legend(fontsize=8, loc="lower right")
    return _save(fig, out_dir, name)


def trend_chart(out_dir: Path, name: str, title: str, labels: Sequence[str],
                lines: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], ylabel: str, *,
                dates: Sequence[str | None] | None = None) -> str:
    """One line per series over the waves, with 95 % error bars (dodged a little so they do
    not hide each other) and the latest values labelled.  With ``dates`` (``YYYY-MM-DD`` of
    every wave) the x axis is time, to scale (a gap of five months looks like one); else the
    waves are evenly spaced, labelled by ``labels``.  A wave where a series could not be
    counted (denominator 0) is a gap; a series counted in no wave is left out."""
    from datetime import date

    fig = _figure(10, 5)
    ax = fig.subplots()
    timed = bool(dates) and all(dates)
    if timed:
        days = [date.fromisoformat(str(d)).toordinal() for d in dates]  # type: ignore[union-attr]
        xs = [float(d - days[0]) for d in days]
    else:
        xs = [float(i) for i in range(len(labels))]
    span = max(xs[-1] - xs[0], 1.0) if xs else 1.0
    highest = 0.0
    lines = [(legend, values) for legend, values in lines if any(v["of"] for v in values)]
    k = len(lines)
    ends: list[tuple[float, float, str, str]] = []  # (y, x, text, colour) of the last points
    for j, (legend, values) in enumerate(lines):
        dodge = (j - (k - 1) / 2) * span * min(0.004, 0.03 / max(k, 1))
        ys = [_pct(v) if v["of"] else math.nan for v in values]
        cis = [_ci(v) if v["of"] else (math.nan, math.nan) for v in values]
        err = [[y - lo for y, (lo, _) in zip(ys, cis)], [hi - y for y, (_, hi) in zip(ys, cis)]]
        colour = PALETTE[j % len(PALETTE)]
        ax.errorbar([x + dodge for x in xs], ys, yerr=err, label=legend, color=colour,
                    linestyle=_LINESTYLES[j // 4 % 4], marker=_MARKERS[j % len(_MARKERS)],
                    markersize=3.5, linewidth=1.3, elinewidth=0.7, capsize=2, alpha=0.95)
        if values and values[-1]["of"]:
            ends.append((ys[-1], xs[-1] + dodge, f"{ys[-1]:.1f} %", colour))
        highest = max([highest, *(hi for _, hi in cis if not math.isnan(hi))])
    end, ticks = _percent_axis(highest)
    top = min(end, 105)
    ax.set_ylim(0, top)
    # the latest values, right of the lines, moved apart so that none hides another
    gap, placed = top * 0.035, []
    for y, x, text, colour in sorted(ends):
        at = max(y, placed[-1] + gap) if placed else y
        placed.append(at)
        ax.annotate(text, (x, y), xytext=(x + span * 0.025, at), textcoords="data",
                    va="center", fontsize=7, color=colour,
                    arrowprops={"arrowstyle": "-", "color": colour, "lw": 0.5})
    ax.set_yticks(ticks)
    if timed:
        first = date.fromordinal(days[0])
        last = date.fromordinal(days[-1])
        months = [date(y, m, 1) for y in range(first.year, last.year + 1) for m in range(1, 13)
                  if first <= date(y, m, 1) <= last or (y, m) == (first.year, first.month)]
        step = max(1, math.ceil(len(months) / 12))
        shown = months[::step]
        ax.set_xticks([float(m.toordinal() - days[0]) for m in shown])
        ax.set_xticklabels([m.strftime("%Y-%m") for m in shown], rotation=40, ha="right",
                           fontsize=7)
        ax.set_xlabel("wave date (to scale; points: waves)", fontsize=8)
    else:
        ax.set_xticks(xs)
        ax.set_xticklabels(labels, rotation=40, ha="right", fontsize=7)
    ax.set_xlim(xs[0] - span * 0.03 if xs else -0.5, (xs[-1] if xs else 0) + span * 0.1)
    ax.set_ylabel(ylabel + " (bars: 95 % interval)", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.25)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, out_dir, name)


def spend_chart(out_dir: Path, name: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """Money charged per day (rows as :meth:`PaymentTally.to_json` gives ``by_day``): one panel
    per currency (amounts in different currencies are never drawn on one axis), bars on a time
    axis to scale, each labelled with its exact amount and pages, the n in every title; colours
    from :data:`PALETTE`.  Bar heights are floats only as pixel positions: every number
    printed is the exact decimal."""
    currencies = sorted({r["currency"] for r in rows})
    days = sorted({r["day"] for r in rows if _is_day(r["day"])})
    first = _date.fromisoformat(days[0]).toordinal() if days else 0
    span = (_date.fromisoformat(days[-1]).toordinal() - first) if days else 0
    fig = _figure(9, 2.6 * len(currencies) + 0.6)
    axes = fig.subplots(len(currencies), 1, squeeze=False)[:, 0]
    for j, (ax, currency) in enumerate(zip(axes, currencies)):
        mine = [r for r in rows if r["currency"] == currency and _is_day(r["day"])]
        xs = [float(_date.fromisoformat(r["day"]).toordinal() - first) for r in mine]
        amounts = [Decimal(r["charged"]) for r in mine]
        heights = [float(a) for a in amounts]
        ax.bar(xs, heights, width=0.8, color=PALETTE[j % len(PALETTE)])
        top = max(heights, default=0.0) or 1.0
        for x, h, r in zip(xs, heights, mine):
            ax.text(x, h + top * 0.03, f"{r['text']}\n{r['pages']} p.", ha="center",
                    va="bottom", fontsize=7, color="#222222")
        ax.set_ylim(0, top * 1.35)
        ax.set_xlim(-1.0, span + 1.0)
        step = max(1, math.ceil((span + 1) / 12))
        ticks = list(range(0, span + 1, step))
        ax.set_xticks([float(t) for t in ticks])
        few = len(ticks) <= 6
        ax.set_xticklabels([_date.fromordinal(first + t).isoformat() for t in ticks],
                           rotation=0 if few else 40, ha="center" if few else "right",
                           fontsize=7)
        ax.set_ylabel(f"{currency} charged", fontsize=8)
        pages = sum(r["pages"] for r in mine)
        ax.set_title(f"Charged per day (UTC), {currency} (n = {_plural(pages, 'page')} "
                     f"charged over {_plural(len(mine), 'day')})", fontsize=10)
        ax.grid(axis="y", alpha=0.25)
        ax.set_axisbelow(True)
    axes[-1].set_xlabel("day of the charge record (to scale)", fontsize=8)
    return _save(fig, out_dir, name)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _is_day(text: Any) -> bool:
    try:
        _date.fromisoformat(str(text))
    except ValueError:
        return False
    return len(str(text)) == 10


def _n_range(values: Iterable[int]) -> str:
    values = list(values)
    lo, hi = min(values, default=0), max(values, default=0)
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


# --------------------------------------------------------------------------- survey report


def _survey_tables(waves: Sequence[dict[str, Any]], records: Sequence[Sequence[dict]],
                   out_dir: Path, top: int, track: Sequence[str] | None
                   ) -> tuple[list[Table], dict[str, Any]]:
    last = waves[-1]
    e = last["evaluated"]
    tables: list[Table] = []
    extra: dict[str, Any] = {}
    label = last["label"]

    ranked = [a for a in last["agents"] if a["blocked"]["count"]]
    agents, tied = _top(ranked, lambda a: (a["full"]["count"], a["blocked"]["count"]), top)
    extra["agents_listed"] = {"shown": len(agents), "blocked_anywhere": len(ranked),
                              "left_out_tied_at_cut": tied,
                              "blocked_nowhere": len(last["agents"]) - len(ranked)}
    chart = None
    if agents:
        chart = bar_chart(
            out_dir, "agents.png",
            f"Origins blocking each AI agent ({label}, n = {e} evaluated origins)",
            [a["token"] for a in agents],
            [("full", [a["full"] for a in agents]), ("/ disallowed", [a["root"] for a in agents])],
            "% of evaluated origins")
    rows = []
    if last["star"] is not None:
        s = last["star"]
        rows.append(("—", "`*` (any crawler)", "—", s["full"]["text"], s["partial"]["text"],
                     s["blocked"]["text"], s["root"]["text"], s["explicit"]["text"]))
    for rank, a in enumerate(agents, 1):
        rows.append((str(rank), a["token"], a["company"] or "—", a["full"]["text"],
                     a["partial"]["text"], a["blocked"]["text"], a["root"]["text"],
                     a["explicit"]["text"]))
    left_out = []
    if tied:
        left_out.append(f"{tied} more agents tied at the cut are not listed")
    if extra["agents_listed"]["blocked_nowhere"]:
        left_out.append(f"{extra['agents_listed']['blocked_nowhere']} listed agents blocked "
                        "at no origin are not listed")
    tables.append(Table(
        "agents", f"AI agents blocked by robots.txt: top {len(agents)} of {len(ranked)} "
                  f"({label})",
        ("#", "agent", "operator", "full", "partial", "full or partial", "/ disallowed",
         "named by a group"), tuple(rows),
        note=(f"Unit: origins. Denominator: the {e} origins whose robots.txt could be evaluated. "
              "Ranked by full, then full or partial"
              + ("; " + "; ".join(left_out) if left_out else "") + "."),
        chart=chart, measures=("share", "evaluated", "agent_full", "agent_partial",
                               "agent_blocked", "agent_root", "agent_explicit")))

    ranked_c = [c for c in last["companies"] if c["any_blocked"]["count"]]
    companies, tied_c = _top(ranked_c, lambda c: (c["any_full"]["count"],
                                                  c["any_blocked"]["count"]), TOP_COMPANIES)
    chart = None
    if companies:
        chart = bar_chart(
            out_dir, "companies.png",
            f"Origins fully blocking ≥1 agent of an operator ({label}, n = {e})",
            [c["company"] for c in companies],
            [("≥1 agent full", [c["any_full"] for c in companies])], "% of evaluated origins")
    tables.append(Table(
        "companies", f"By operator: top {len(companies)} of {len(ranked_c)} ({label})",
        ("operator", "listed agents", "≥1 agent full", "all agents full",
         "≥1 agent full or partial"),
        tuple((c["company"], str(len(c["tokens"])), c["any_full"]["text"],
               c["all_full"]["text"], c["any_blocked"]["text"]) for c in companies),
        note=(f"Unit: origins. Denominator: the {e} evaluated origins. Operators as the agent "
              "list names them" + (f"; {tied_c} more tied at the cut are not listed"
                                   if tied_c else "") + "."),
        chart=chart, measures=("company_any_full", "company_all_full", "company_any_blocked")))

    mechs = last["mechanisms"]
    chart = bar_chart(
        out_dir, "mechanisms.png",
        f"Opt-out mechanisms ({label}; n per row: origins where checked, up to "
        f"{max(m['present']['of'] for m in mechs)})",
        [m["name"] for m in mechs],
        [("present", [m["present"] for m in mechs]),
         ("reserves AI training", [m["reserves"] for m in mechs])],
        "% of origins where checked")
    tables.append(Table(
        "mechanisms", f"Mechanism adoption ({label})",
        ("mechanism", "checked via", "present", "reserves AI training"),
        tuple((m["name"], " / ".join(m["checked_via"]), m["present"]["text"],
               m["reserves"]["text"]) for m in mechs),
        note="Unit: origins. Denominator per row: the origins where a carrier of the mechanism "
             "was checked and could be read. Reserves AI training is a subset of present; "
             "each row is defined in the glossary.", chart=chart,
        measures=tuple(f"{m['key']}_{what}" for m in mechs for what in ("present",
                                                                         "reserves"))))

    outcomes = last["robots_outcomes"]
    chart = bar_chart(out_dir, "robots_outcomes.png",
                      f"robots.txt outcomes ({label}, n = {last['origins']} origins)",
                      list(outcomes), [("origins", list(outcomes.values()))], "% of origins")
    rows = [(name, f["text"]) for name, f in outcomes.items()]
    rows.append(("of which HTML served as robots.txt", last["html_as_robots"]["text"]))
    tables.append(Table("robots_outcomes", f"robots.txt outcomes ({label})",
                        ("outcome", "origins"), tuple(rows),
                        note=f"Unit: origins. Denominator: all {last['origins']} origins of "
                             "the wave.", chart=chart,
                        measures=(*(f"outcome_{o}" for o in _OUTCOMES), "outcome_html")))

    if len(waves) > 1:
        tables += _trend_tables(waves, records, out_dir, track, extra)
    return tables, extra


def _trend_tables(waves: Sequence[dict[str, Any]], records: Sequence[Sequence[dict]],
                  out_dir: Path, track: Sequence[str] | None,
                  extra: dict[str, Any]) -> list[Table]:
    tables = []
    last = waves[-1]
    labels = [w["label"] for w in waves]
    if track:
        tracked = list(track)
    else:
        ranked = [a for a in last["agents"] if a["full"]["count"]]
        tracked = [a["token"] for a in _top(ranked, lambda a: a["full"]["count"],
                                            TRACKED_AGENTS)[0]]
    lookup = [{a["token"].lower(): a for a in w["agents"]} for w in waves]

    def agent_fig(i: int, token: str) -> dict[str, Any]:
        found = lookup[i].get(token.lower())
        return found["full"] if found else fraction(0, waves[i]["evaluated"])

    n_text = _n_range(w["evaluated"] for w in waves)
    chart = None
    if tracked:
        chart = trend_chart(out_dir, "trend_agents.png",
                            f"Origins fully blocking each agent (n = {n_text} evaluated "
                            "origins per wave)", labels,
                            [(t, [agent_fig(i, t) for i in range(len(waves))]) for t in tracked],
                            "% of evaluated origins", dates=[w["date"] for w in waves])
    tables.append(Table(
        "trend_agents", "Trend: full blocks per agent",
        ("wave", "evaluated", *tracked),
        tuple((w["label"], str(w["evaluated"]), *(agent_fig(i, t)["text"] for t in tracked))
              for i, w in enumerate(waves)),
        note="Unit: origins. Each wave's denominator: its origins with an evaluated robots.txt.",
        chart=chart, measures=("agent_full",)))

    changes = []
    pairs = [(i - 1, i) for i in range(1, len(waves))] + [(0, len(waves) - 1)]
    for a, b in pairs:
        for token in tracked:
            before, after = agent_fig(a, token), agent_fig(b, token)
            changes.append(_change(waves[a]["label"], waves[b]["label"], token, "full",
                                   before, after))
    extra["trend_changes"] = changes
    by_pair: dict[tuple[str, str], dict[str, str]] = {}
    for c in changes:
        by_pair.setdefault((c["from"], c["to"]), {})[c["series"]] = c["text"]
    rows = []
    for (a_label, b_label), cells in by_pair.items():
        first_to_last = (a_label, b_label) == (labels[0], labels[-1]) and len(waves) > 2
        rows.append(((f"first → latest: {a_label} → {b_label}" if first_to_last
                      else f"{a_label} → {b_label}"), *(cells[t] for t in tracked)))
    tables.append(Table(
        "trend_changes", "Trend: change in full blocks between waves",
        ("waves", *tracked), tuple(rows),
        note="Percentage points, later minus earlier; 'intervals apart' when the two waves' "
             "95 % intervals do not overlap, 'intervals overlap' when they do (the change may "
             "be chance).", measures=("change",)))

    names = [m["name"] for m in last["mechanisms"]]
    checked = [m["present"]["of"] for w in waves for m in w["mechanisms"] if m["present"]["of"]]
    chart = trend_chart(out_dir, "trend_mechanisms.png",
                        f"Mechanisms present (n per wave: origins where checked, "
                        f"{_n_range(checked)}; mechanisms never checked left out)",
                        labels, [(name, [w["mechanisms"][j]["present"] for w in waves])
                                 for j, name in enumerate(names)], "% of origins where checked",
                        dates=[w["date"] for w in waves])
    tables.append(Table(
        "trend_mechanisms", "Trend: mechanisms present", ("wave", *names),
        tuple((w["label"], *(m["present"]["text"] for m in w["mechanisms"])) for w in waves),
        note="Unit: origins. Denominator per cell: the wave's origins where the mechanism was "
             "checked.", chart=chart,
        measures=tuple(f"{m['key']}_present" for m in last["mechanisms"])))

    all_tokens = _tokens(r for wave in records for r in wave)
    stance = []
    for i in range(1, len(waves)):
        for change in _changes(records[i - 1], records[i], all_tokens):
            stance.append({"from": waves[i - 1]["label"], "to": waves[i]["label"], **change})
    extra["changes"] = stance
    extra["tracked"] = tracked
    tables.append(Table(
        "changes", f"Origins that changed stance ({len(stance)} changes)",
        ("from", "to", "origin", "stricter", "looser"),
        tuple((c["from"], c["to"], c["origin"], _short(c["stricter"]),
               _short(c["looser"])) for c in stance),
        note="Unit: origins evaluated in both of two consecutive waves; block level per agent "
             "(report.json lists every token).", measures=("stance",)))
    return tables


def _change(a_label: str, b_label: str, series: str, measure: str,
            before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """One change between two waves, as report.json carries it."""
    overlap = intervals_overlap(before, after)
    points = (round(100 * (after["count"] / after["of"] - before["count"] / before["of"]), 1)
              if before["of"] and after["of"] else None)
    if points is None:
        text = "—"
    else:
        text = (f"{points:+.1f} pts ("
                + ("intervals overlap" if overlap else "intervals apart") + ")")
    return {"from": a_label, "to": b_label, "series": series, "measure": measure,
            "before": dict(before), "after": dict(after), "points": points,
            "intervals_overlap": overlap, "text": text}


def _wave_date(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``{"date", "source", "undated_records"}`` of one wave (see the module docstring)."""
    dates, sources, undated = [], Counter(), 0
    for record in records:
        wave = record.get("wave")
        if isinstance(wave, dict) and isinstance(wave.get("date"), str) and wave["date"]:
            dates.append(wave["date"][:10])
            sources[str(wave.get("source") or "given")] += 1
        else:
            undated += 1
            sources[str(wave.get("source")) if isinstance(wave, dict) and wave.get("source")
                    else "not recorded"] += 1
    if not dates:
        return {"date": None, "source": ", ".join(sorted(sources)), "undated_records": undated}
    dated = Counter(s for s in sources if s not in ("file times", "not recorded"))
    return {"date": min(dates), "source": ", ".join(sorted(dated)) or "given",
            "undated_records": undated}


def _survey_report(inputs: Sequence[_Input], out_dir: Path, top: int,
                   track: Sequence[str] | None, use_file_times: bool
                   ) -> tuple[list[Table], dict[str, Any]]:
    waves_in = []
    for item in inputs:
        latest: dict[str, dict[str, Any]] = {}
        for record in item.records:
            latest[str(record["origin"])] = record
        records = list(latest.values())
        first = min((str(r.get("surveyed_at") or "") for r in records), default="")
        waves_in.append((_wave_date(records), first, item, records))
    undated = [item.path.name for date, _, item, _ in waves_in if date["date"] is None]
    if undated and len(waves_in) > 1 and not use_file_times:
        raise ReportError(
            f"no wave date in {', '.join(undated)}: a time series needs dated waves (survey "
            "--date YYYY-MM-DD), or --use-file-times to order them by their surveyed_at")
    for date, first, _, _ in waves_in:
        if date["date"] is None:
            date["sort"], date["suffix"] = first[:10], " (file times)"
        else:
            date["sort"], date["suffix"] = date["date"], ""
    waves_in.sort(key=lambda w: (w[0]["sort"], w[1], w[2].path.name))
    dates = Counter(date["sort"] + date["suffix"] for date, _, _, _ in waves_in)
    waves, wave_records = [], []
    for date, _, item, records in waves_in:
        day = date["sort"]
        label = (day + date["suffix"]) if day else item.path.stem
        if day and dates[day + date["suffix"]] > 1:
            stem = item.path.stem
            if stem.startswith(day):
                stem = stem[len(day):].lstrip("_- ") or stem
            label = f"{label} ({stem})"
        figures = _wave_figures(label, records, date)
        figures["file"] = item.path.name
        figures["undated_records"] = date["undated_records"]
        waves.append(figures)
        wave_records.append(records)
    tables, extra = _survey_tables(waves, wave_records, out_dir, top, track)
    return tables, {"waves": waves, **extra}


# --------------------------------------------------------------------------- audit report


def _origin(url: Any) -> str:
    try:
        parts = urlsplit(str(url))
        return f"{parts.scheme}://{parts.netloc}".lower() if parts.netloc else "(no origin)"
    except ValueError:
        return "(unparsable URL)"


def _signals(record: Mapping[str, Any]) -> tuple[str, ...]:
    reasons = record.get("reasons") if isinstance(record.get("reasons"), list) else []
    found = {str(_dict(reason).get("signal")) for reason in reasons if _dict(reason)}
    return tuple(sorted(found)) or ("(none)",)


@dataclass
class AuditTally:
    """An audit log's decisions counted two ways: distinct URLs by the final decision about
    each (see the module docstring), and records.  Feed it records in log order
    (:meth:`add`); several logs may be fed one after the other (record times order them)."""

    urls: dict[str, tuple[str, str, tuple[str, ...]]] = field(default_factory=dict)
    records: Counter[str] = field(default_factory=Counter)
    provisional: int = 0
    preflight: Counter[str] = field(default_factory=Counter)
    refusal_records: Counter[str] = field(default_factory=Counter)
    erase_records: Counter[str] = field(default_factory=Counter)

    def add(self, record: Mapping[str, Any]) -> None:
        decision = record.get("decision")
        if decision not in ("allow", "deny", "erase"):
            return  # write-ahead send/result records: requests, not decisions
        if record.get("preflight"):
            self.preflight[str(decision)] += 1
            return
        if record.get("sitemap"):  # a sitemap fetch: discovery, not a document
            self.preflight[f"sitemap {decision}"] += 1
            return
        self.records[str(decision)] += 1
        signals = _signals(record) if decision != "allow" else ()
        if decision == "deny":
            self.refusal_records.update(signals)
        elif decision == "erase":
            self.erase_records.update(signals)
        undecided = record.get("undecided")
        if decision == "deny" and isinstance(undecided, Mapping) and not undecided.get("final"):
            self.provisional += 1
            outcome = "postponed"
        else:
            outcome = {"allow": "allowed", "deny": "refused", "erase": "erased"}[decision]
        self._offer(str(record.get("url") or ""), str(record.get("time") or ""), outcome,
                    signals)

    def _offer(self, url: str, time: str, outcome: str, signals: tuple[str, ...]) -> None:
        """Keep the final decision: a later one (by time; by order when a time is missing)
        replaces an earlier one; a provisional refusal never replaces a decision."""
        held = self.urls.get(url)
        if outcome == "postponed":
            if held is None or (held[1] == "postponed" and (not time or time >= held[0])):
                self.urls[url] = (time, outcome, signals)
            return
        if (held is None or held[1] == "postponed" or not time or not held[0]
                or time >= held[0]):
            self.urls[url] = (time, outcome, signals)

    def merge(self, other: AuditTally) -> None:
        """Add another log's tally (e.g. another output directory's)."""
        for url, (time, outcome, signals) in other.urls.items():
            self._offer(url, time, outcome, signals)
        self.records.update(other.records)
        self.provisional += other.provisional
        self.preflight.update(other.preflight)
        self.refusal_records.update(other.refusal_records)
        self.erase_records.update(other.erase_records)

    def outcomes(self) -> dict[str, int]:
        """URLs per final outcome (:data:`URL_OUTCOMES`)."""
        counts = Counter(outcome for _, outcome, _ in self.urls.values())
        return {name: counts[name] for name in URL_OUTCOMES}

    def decided(self) -> int:
        counts = self.outcomes()
        return counts["allowed"] + counts["refused"] + counts["erased"]

    def signal_urls(self, outcome: str = "refused") -> Counter[str]:
        """URLs whose final decision is ``outcome``, per signal it cites."""
        out: Counter[str] = Counter()
        for _, final, signals in self.urls.values():
            if final == outcome:
                out.update(signals)
        return out

    def by_origin(self) -> dict[str, Counter[str]]:
        out: dict[str, Counter[str]] = {}
        for url, (_, outcome, _) in self.urls.items():
            out.setdefault(_origin(url), Counter())[outcome] += 1
        return out


#: The audit record kinds of pay per crawl (:mod:`crawler.policy.payment`): ``decision: "result"``
#: records whose ``result`` is one of these and whose ``payment`` holds the payload.
PAY_RESULTS = ("pay-quote", "pay-decision", "pay-charge")
#: pay-decision actions that stop something for the rest of the job, and what they stop.
PAY_STOPS = {"stop-origin": "origin not crawled any more (the site blocks us)",
             "stop-paying": "origin paid no more",
             "stop-paying-job": "job pays no more"}
_PRICE_TEXT = re.compile(r"\b[A-Z]{3} [0-9][0-9.]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f`]")
_PARENS = re.compile(r"\s*\([^()]*\)")


def clean_text(value: Any, limit: int = 120) -> str:
    """Text from a log, safe in a table cell: no control characters or backticks, cut at
    ``limit`` characters (a site's values reach the log as received)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=True,
                                                           default=str)
    text = _CONTROL.sub("?", text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def money_text(currency: str, amount: Decimal) -> str:
    """``USD 0.03``: the exact decimal, with at least two places."""
    if amount.as_tuple().exponent > -2:  # type: ignore[operator]
        amount = amount.quantize(Decimal("0.01"))
    return f"{currency} {format(amount, 'f')}"


def refusal_kind(reason: Any) -> str:
    """A pay-decision's reason without its particulars, to count alike refusals together:
    the details in parentheses dropped, prices shown as ``[price]``."""
    text, before = clean_text(reason, 200), None
    while text != before:  # innermost parentheses first: "a (b (c))" -> "a (b)" -> "a"
        before, text = text, _PARENS.sub("", text)
    return clean_text(_PRICE_TEXT.sub("[price]", text).strip() or "(no reason)")


@dataclass
class PaymentTally:
    """Pay-per-crawl money in audit logs: what was charged per registrable domain and per day,
    in each currency apart (exact :class:`~decimal.Decimal` sums, never floats, never added
    across currencies), the price quotes refused and why, the origins stopped, and the charge
    records whose amount cannot be read (listed, never summed).  Feed it records in log order
    with the log's name (:meth:`add`): a ``pay-charge`` names its authorisation by ``seq``,
    which is unique within one log only."""

    #: (registrable domain, currency) -> [charged, pages, charges debited as authorised]
    by_domain: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    #: (day, currency) -> [charged, pages]
    by_day: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    records: Counter[str] = field(default_factory=Counter)
    quoted_urls: set[str] = field(default_factory=set)
    #: refusal kind -> [records, URLs]
    refusals: dict[str, list[Any]] = field(default_factory=dict)
    #: (origin, action) -> the first such stop
    stops: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    unreadable: list[dict[str, Any]] = field(default_factory=list)
    #: (log, seq of a ``pay`` pay-decision) -> (domain, currency, amount) until its charge
    open_holds: dict[tuple[str, int], tuple[str, str, Decimal]] = field(default_factory=dict)
    #: (log file name, seq) of authorisations a charge record names: in a cluster the charge
    #: may be in another worker's log than its authorisation (``ref_log``)
    closed_refs: set[tuple[str, int]] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.records)

    def add(self, record: Mapping[str, Any], log: str = "") -> None:
        kind = record.get("result")
        if record.get("decision") != "result" or kind not in PAY_RESULTS:
            return
        self.records[kind] += 1
        pay = _dict(record.get("payment"))
        url = str(record.get("url") or "")
        origin = clean_text(pay.get("origin") if isinstance(pay.get("origin"), str)
                            else _origin(url))
        domain = _domain(origin)
        if kind == "pay-quote":
            if pay.get("price") is not None:
                self.quoted_urls.add(url)
        elif kind == "pay-decision":
            self._decision(record, pay, url, origin, domain, log)
        else:
            self._charge(record, pay, url, origin, domain, log)

    def _decision(self, record: Mapping[str, Any], pay: Mapping[str, Any], url: str,
                  origin: str, domain: str, log: str) -> None:
        action = pay.get("action")
        if action == "refuse":
            entry = self.refusals.setdefault(refusal_kind(pay.get("reason")), [0, set()])
            entry[0] += 1
            entry[1].add(url)
        elif action in PAY_STOPS:
            self.stops.setdefault((origin, str(action)), {
                "origin": origin, "domain": domain, "action": action,
                "meaning": PAY_STOPS[str(action)], "reason": clean_text(pay.get("reason")),
                "time": clean_text(record.get("time") or "", 40)})
        elif action == "pay" and isinstance(record.get("seq"), int):
            try:
                held = parse_price(pay.get("reserved"))  # type: ignore[arg-type]
            except PriceError:
                return  # an unreadable hold: its charge record, if any, says what happened
            key = (Path(log).name, record["seq"])
            if key not in self.closed_refs:
                self.open_holds[key] = (domain, held.currency, held.amount)

    def _charge(self, record: Mapping[str, Any], pay: Mapping[str, Any], url: str,
                origin: str, domain: str, log: str) -> None:
        ref = pay.get("ref")
        if isinstance(ref, int):
            ref_log = pay.get("ref_log")
            key = (ref_log if isinstance(ref_log, str) else Path(log).name, ref)
            self.closed_refs.add(key)
            self.open_holds.pop(key, None)
        value = pay.get("charged")
        if value is None:
            return  # nothing charged (the hold was released)
        try:
            money = parse_price(value)
        except PriceError as exc:
            self.unreadable.append({
                "log": Path(log).name, "seq": record.get("seq"),
                "time": clean_text(record.get("time") or "", 40),
                "url": clean_text(url, 200), "origin": origin, "domain": domain,
                "value": clean_text(value, 40), "why": exc.reason})
            return
        day = str(record.get("time") or "")[:10]
        day = day if _is_day(day) else "(no date)"
        header = _dict(pay.get("headers")).get("crawler-charged")
        as_sent = (isinstance(header, list) and len(header) == 1
                   and isinstance(header[0], str) and header[0].strip(" \t") == value)
        entry = self.by_domain.setdefault((domain, money.currency), [Decimal(0), 0, 0])
        entry[0] += money.amount
        entry[1] += 1
        entry[2] += not as_sent
        per_day = self.by_day.setdefault((day, money.currency), [Decimal(0), 0])
        per_day[0] += money.amount
        per_day[1] += 1

    def merge(self, other: PaymentTally) -> None:
        """Add another tally (another output directory's)."""
        for key, (amount, pages, assumed) in other.by_domain.items():
            entry = self.by_domain.setdefault(key, [Decimal(0), 0, 0])
            entry[0] += amount
            entry[1] += pages
            entry[2] += assumed
        for key, (amount, pages) in other.by_day.items():
            per_day = self.by_day.setdefault(key, [Decimal(0), 0])
            per_day[0] += amount
            per_day[1] += pages
        self.records.update(other.records)
        self.quoted_urls |= other.quoted_urls
        for kind, (n, urls) in other.refusals.items():
            entry = self.refusals.setdefault(kind, [0, set()])
            entry[0] += n
            entry[1] |= urls
        for key, stop in other.stops.items():
            mine = self.stops.get(key)
            if mine is None or stop["time"] < mine["time"]:
                self.stops[key] = stop
        self.unreadable += other.unreadable
        self.closed_refs |= other.closed_refs
        self.open_holds.update(other.open_holds)
        for key in self.closed_refs & self.open_holds.keys():
            del self.open_holds[key]

    def to_json(self) -> dict[str, Any]:
        """Every figure, amounts as exact decimal strings (``"charged": "0.03"``, ``"text":
        "USD 0.03"``), never as floats."""
        totals: dict[str, list[Any]] = {}
        for (domain, currency), (amount, pages, _) in self.by_domain.items():
            entry = totals.setdefault(currency, [Decimal(0), 0, set()])
            entry[0] += amount
            entry[1] += pages
            entry[2].add(domain)
        held: dict[tuple[str, str], list[Any]] = {}
        for domain, currency, amount in self.open_holds.values():
            entry = held.setdefault((domain, currency), [Decimal(0), 0])
            entry[0] += amount
            entry[1] += 1
        return {
            "unit": "money per currency (exact decimals; currencies never added together) and "
                    "pages charged (pay-charge records with an amount)",
            "records": {k: self.records[k] for k in PAY_RESULTS},
            "totals": [{"currency": c, "charged": _amount(a), "text": money_text(c, a),
                        "pages": n, "domains": len(d)}
                       for c, (a, n, d) in sorted(totals.items())],
            "by_domain": [{"domain": d, "currency": c, "charged": _amount(a),
                           "text": money_text(c, a), "pages": n,
                           "debited_as_authorised": k}
                          for (d, c), (a, n, k) in sorted(self.by_domain.items(),
                                                          key=lambda kv: (kv[0][1], -kv[1][0],
                                                                          kv[0][0]))],
            "by_day": [{"day": day, "currency": c, "charged": _amount(a),
                        "text": money_text(c, a), "pages": n}
                       for (day, c), (a, n) in sorted(self.by_day.items())],
            "quotes": {"records": self.records["pay-quote"],
                       "urls_with_a_price": len(self.quoted_urls),
                       "refusals": sum(n for n, _ in self.refusals.values()),
                       "refused_urls": len(set().union(*(u for _, u in
                                                          self.refusals.values()))),
                       "refused_by_reason": [
                           {"reason": kind, "records": n, "urls": len(urls)}
                           for kind, (n, urls) in sorted(self.refusals.items(),
                                                         key=lambda kv: (-kv[1][0], kv[0]))]},
            "stopped": sorted(self.stops.values(), key=lambda s: (s["time"], s["origin"],
                                                                  s["action"])),
            "unreadable_charges": list(self.unreadable),
            "authorised_without_charge_record": [
                {"domain": d, "currency": c, "amount": _amount(a), "text": money_text(c, a),
                 "authorisations": n} for (d, c), (a, n) in sorted(held.items())],
        }


def _amount(amount: Decimal) -> str:
    return money_text("XXX", amount)[4:]


def _domain(origin: str) -> str:
    from crawler.publish.transparency import registrable_domain

    return registrable_domain(origin) or origin



def _audit_report(inputs: Sequence[_Input], out_dir: Path) -> tuple[list[Table], dict]:
    tally = AuditTally()
    payments = PaymentTally()
    every = 0
    for item in inputs:
        for record in item.records:
            every += 1
            tally.add(record)
            payments.add(record, log=str(item.path))
    outcomes = tally.outcomes()
    decided = tally.decided()
    refused = outcomes["refused"]
    n_records = sum(tally.records.values())
    deny_records = tally.records["deny"]
    signal_urls = tally.signal_urls()
    signals = sorted(set(signal_urls) | set(tally.refusal_records),
                     key=lambda s: (-signal_urls[s], -tally.refusal_records[s], s))
    origins = tally.by_origin()
    ranked = sorted(((o, c) for o, c in origins.items() if c["refused"]),
                    key=lambda oc: (-oc[1]["refused"], oc[0]))
    shown, tied = _top(ranked, lambda oc: oc[1]["refused"], TOP_ORIGINS)
    figures = {
        "urls": {
            "decided": decided,
            **{name: fraction(outcomes[name], decided) for name in URL_OUTCOMES[:3]},
            "postponed": outcomes["postponed"],
        },
        "records": {
            "decisions": n_records,
            "by_decision": {k: fraction(v, n_records) for k, v in sorted(tally.records.items())},
            "provisional_refusals": tally.provisional,
            "preflight": dict(sorted(tally.preflight.items())),
            "write_ahead_and_other": every - n_records - sum(tally.preflight.values()),
        },
        "refusals_by_signal": {
            s: {"urls": fraction(signal_urls[s], refused),
                "records": fraction(tally.refusal_records[s], deny_records)} for s in signals},
        "refusals_by_origin": [
            {"origin": origin, "refused": fraction(c["refused"],
                                                   c["allowed"] + c["refused"] + c["erased"]),
             "share_of_refusals": fraction(c["refused"], refused)} for origin, c in shown],
        "origins_left_out_tied_at_cut": tied,
    }
    url_rows = [(name, figures["urls"][name]["text"]) for name in URL_OUTCOMES[:3]]
    chart = bar_chart(out_dir, "audit_outcomes.png",
                      f"URLs by final decision (n = {decided} URLs decided)",
                      [name for name, _ in url_rows],
                      [("URLs", [figures["urls"][name] for name, _ in url_rows])],
                      "% of URLs decided")
    tables = [Table(
        "url_outcomes", "URLs by final decision", ("final decision", "URLs"),
        (*url_rows, ("postponed (not decided)", str(outcomes["postponed"]))),
        note=f"Unit: distinct URLs. Denominator: the {decided} URLs with a final decision.",
        chart=chart, measures=("share", "url_decided", "url_allowed", "url_refused",
                               "url_erased", "url_postponed"))]
    chart = None
    if signals:
        chart = bar_chart(out_dir, "audit_signals.png",
                          f"Refused URLs by signal (n = {refused} refused URLs)", signals,
                          [("refused URLs", [figures["refusals_by_signal"][s]["urls"]
                                             for s in signals])], "% of refused URLs")
    tables.append(Table(
        "refusals_by_signal", "Refusals by signal",
        ("signal", "refused URLs citing it", "refusal records citing it"),
        tuple((s, figures["refusals_by_signal"][s]["urls"]["text"],
               figures["refusals_by_signal"][s]["records"]["text"]) for s in signals),
        note=(f"Units: distinct URLs (of the {refused} refused URLs, by their final refusal) "
              f"and, separately, records (of the {deny_records} deny records, provisional "
              "ones included). A refusal citing several signals counts under each."),
        chart=chart, measures=("signal_urls", "signal_records")))
    rows = figures["refusals_by_origin"]
    chart = None
    if rows:
        chart = bar_chart(out_dir, "audit_origins.png",
                          f"Refused share of each origin's decided URLs (top {len(rows)} "
                          f"origins; n = {_n_range(o['refused']['of'] for o in rows)} "
                          "decided URLs per origin)",
                          [o["origin"] for o in rows],
                          [("refused", [o["refused"] for o in rows])],
                          "% of the origin's decided URLs")
    tables.append(Table(
        "refusals_by_origin", f"Refusals by origin (top {len(rows)} by refused URLs)",
        ("origin", "refused of its decided URLs", "share of all refused URLs"),
        tuple((o["origin"], o["refused"]["text"], o["share_of_refusals"]["text"])
              for o in rows),
        note="Unit: distinct URLs." + (f" {tied} more origins tied at the cut are not listed."
                                       if tied else ""),
        chart=chart, measures=("origin_refused", "origin_share")))
    tables.append(Table(
        "records", "Decision records (a separate unit: records, not URLs)",
        ("record", "records"),
        (*((k, f["text"]) for k, f in figures["records"]["by_decision"].items()),
         ("of which provisional refusals", str(tally.provisional)),
         *((f"preflight {k} (per-origin files, not counted above)", str(v))
           for k, v in figures["records"]["preflight"].items())),
        note=f"Unit: audit records. Denominator: the {n_records} decision records about "
             "documents. One URL may have several records (retried, provisionally refused, "
             "decided again in a later run).", measures=("records",)))
    if payments:  # a log without pay-per-crawl records: the report as before
        figures["payments"] = payments.to_json()
        tables += _payment_tables(figures["payments"], out_dir)
    return tables, figures


def _payment_tables(pay: Mapping[str, Any], out_dir: Path) -> list[Table]:
    """Spend over time (per day and currency, with totals), and the charge records whose
    amount could not be read."""
    days = pay["by_day"]
    chart = (spend_chart(out_dir, "audit_spend.png", days)
             if any(_is_day(d["day"]) for d in days) else None)
    rows = [(d["day"], d["currency"], d["text"], str(d["pages"])) for d in days]
    rows += [("all days", t["currency"], t["text"], str(t["pages"])) for t in pay["totals"]]
    bad = pay["unreadable_charges"]
    held = pay["authorised_without_charge_record"]
    note = ("Pay per crawl. Units: money, in each currency apart (exact decimal sums; "
            "currencies are never added together or converted), and pages charged (charge "
            "records with an amount). Day: the UTC date of the charge record. "
            f"{pay['quotes']['refusals']} price quote(s) refused; "
            f"{len(pay['stopped'])} stop(s) (origin or job) recorded.")
    if bad:
        note += f" {len(bad)} charge record(s) with an unreadable amount are not summed (below)."
    if held:
        note += (" Payments authorised with no charge record (the request may have been "
                 "charged; the budget counts them as spent): " + ", ".join(
                     f"{h['text']} ({h['authorisations']}) at {h['domain']}" for h in held)
                 + ".")
    tables = [Table("spend_over_time", "Spend over time (pay per crawl)",
                    ("day (UTC)", "currency", "charged", "pages charged"), tuple(rows),
                    note=note, chart=chart, measures=("pay_charged", "pay_pages"))]
    if bad:
        tables.append(Table(
            "unreadable_charges", "Charge records with an unreadable amount (not summed)",
            ("log", "seq", "time", "origin", "amount as recorded", "why it cannot be read"),
            tuple((Path(b["log"]).name, str(b["seq"]), b["time"], b["origin"], b["value"],
                   b["why"]) for b in bad),
            note="Unit: audit records. Each is left out of every total above.",
            measures=("pay_unreadable",)))
    return tables


# --------------------------------------------------------------------------- output


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(title: str, intro: Sequence[str], tables: Sequence[Table]) -> str:
    out = [f"# {title}", ""]
    out += [*intro, ""]
    for table in tables:
        out += [f"## {table.title}", ""]
        if table.note:
            out += [table.note, ""]
        out.append("| " + " | ".join(_md_cell(h) for h in table.headers) + " |")
        out.append("|" + "---|" * len(table.headers))
        for row in table.rows:
            out.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
        if not table.rows:
            out.append("| " + " | ".join("—" for _ in table.headers) + " |")
        out.append("")
        if table.chart:
            out += [f"![{table.title}]({table.chart})", ""]
    return "\n".join(out)


_CSS = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
        "color:#222;background:#fff}table{border-collapse:collapse;margin:.5em 0 1em}"
        "th,td{border:1px solid #ccc;padding:.25em .6em;font-size:.9em;text-align:left;"
        "vertical-align:top}th{background:#f3f3f3}td{font-variant-numeric:tabular-nums}"
        "p.note{color:#555;font-size:.9em}img{max-width:100%;height:auto}"
        "nav ul{columns:2;font-size:.9em}")


def _html(title: str, intro: Sequence[str], tables: Sequence[Table]) -> str:
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{e(title)}</title><style>{_CSS}</style></head><body>", f"<h1>{e(title)}</h1>"]
    out += [f"<p>{e(line)}</p>" for line in intro if line]
    out.append("<nav><ul>" + "".join(f'<li><a href="#{e(t.key)}">{e(t.title)}</a></li>'
                                     for t in tables) + "</ul></nav>")
    for table in tables:
        out.append(f'<h2 id="{e(table.key)}">{e(table.title)}</h2>')
        if table.note:
            out.append(f'<p class="note">{e(table.note)}</p>')
        out.append("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in table.headers)
                   + "</tr></thead><tbody>")
        for row in table.rows:
            out.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>")
        out.append("</tbody></table>")
        if table.chart:
            out.append(f'<p><img src="{e(table.chart)}" alt="{e(table.title)}"></p>')
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _glossary(tables: Sequence[Table], measures: Mapping[str, Measure]) -> Table:
    used: dict[str, Measure] = {"share": measures["share"]}
    for table in tables:
        for key in table.measures:
            used.setdefault(key, measures[key])
    return Table("glossary", "Glossary: what each figure counts",
                 ("measure", "unit", "definition", "denominator"),
                 tuple((m.name, m.unit, m.definition, m.denominator) for m in used.values()),
                 note="Generated from the code that computes the figures "
                      "(crawler.publish.report.MEASURES, crawler.survey.analysis definitions).")


def build_report(
    inputs: Sequence[Path],
    out_dir: Path,
    *,
    top: int = TOP_AGENTS,
    track: Sequence[str] | None = None,
    use_file_times: bool = False,
    extra: Callable[[Mapping[str, Any], Path], tuple[Sequence[Table], Mapping[str, Any]]]
    | None = None,
    extra_measures: Sequence[Measure] = (),
) -> dict[str, Any]:
    """Write report.md, report.html, report.json and the charts into ``out_dir``; return what
    report.json holds.  ``top``: agents in the agent table and chart; ``track``: agents whose
    full-block share the trend tables follow (default: the top 8 of the latest wave);
    ``use_file_times``: order undated waves by their records' ``surveyed_at`` instead of
    refusing.  ``extra`` lets a study add its own sections: called with the report's figures
    and ``out_dir`` once the report's own tables are made, it returns tables (their charts
    written into ``out_dir``) and figures (``figures.extra`` in report.json); ``extra_measures``
    define what those tables count, for the glossary.

    Raises :class:`ReportError` when there is nothing to report, the inputs mix kinds, or
    several waves include an undated one (without ``use_file_times``).
    """
    if not inputs:
        raise ReportError("no input given")
    read = [_read_input(Path(path)) for path in inputs]
    kinds = {item.kind for item in read} - {"empty"}
    if not kinds:
        raise ReportError("no survey or audit record in the input(s)")
    if len(kinds) > 1:
        raise ReportError("inputs mix survey files and audit logs; report on them separately")
    kind = kinds.pop()
    used = [item for item in read if item.kind == kind]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = [{"file": item.path.name, "kind": item.kind, "records": len(item.records),
                "skipped_lines": item.skipped} for item in read]
    if kind == "survey":
        tables, figures = _survey_report(used, out_dir, top, track, use_file_times)
        waves = figures["waves"]
        title = "Opt-out uptake report"
        intro = [f"{len(waves)} survey wave(s), in date order: "
                 + "; ".join(f"{w['label']}: {w['origins']} origins "
                             f"({w['registrable_domains']} registrable domains), "
                             f"{w['evaluated']} with robots.txt evaluated" for w in waves) + ".",
                 "Wave dates from: " + "; ".join(
                     f"{w['label']}: {w['date_source']}" for w in waves) + ".",
                 f"Agent list: ai.robots.txt snapshot {load_agent_list().date}. Shares: "
                 "count/denominator (percent [95 % Wilson interval]); units and definitions "
                 "in the glossary at the end."]
        undated = [w["label"] for w in waves if w["date"] is None]
        if undated:
            intro.append("Undated wave(s), placed by their records' surveyed_at (file times, "
                         "not fetch dates): " + ", ".join(undated) + ".")
    else:
        tables, figures = _audit_report(used, out_dir)
        title = "Crawl refusals report"
        urls = figures["urls"]
        intro = [f"{urls['decided']} distinct URLs decided ({urls['refused']['text']} "
                 f"refused), from {figures['records']['decisions']} decision records in "
                 + ", ".join(item.path.name for item in used) + ".",
                 "Unit of every table but the last: distinct URLs, by the final decision about "
                 "each; the last counts records. Shares: count/denominator (percent [95 % "
                 "Wilson interval]); definitions in the glossary at the end."]
        if "payments" in figures:
            intro[1] = intro[1].replace("every table but the last", "the first three tables")
            intro[1] = intro[1].replace("the last counts records", "the fourth counts "
                                        "records; the pay-per-crawl tables after it count money "
                                        "and pages")
    skipped = sum(item.skipped for item in read)
    if skipped:
        intro.append(f"{skipped} unreadable or unrecognised line(s) skipped.")
    if extra is not None:
        more, more_figures = extra(figures, out_dir)
        tables = [*tables, *more]
        figures = {**figures, "extra": dict(more_figures)}
    # the long list of origins that changed stance last, before the glossary
    tables = [t for t in tables if t.key != "changes"] + [t for t in tables if t.key == "changes"]
    measures = {**MEASURES, **{m.key: m for m in extra_measures}}
    tables.append(_glossary(tables, measures))
    charts = [table.chart for table in tables if table.chart]
    report = {"kind": kind, "inputs": sources, "figures": figures,
              "tables": {table.key: table.to_json() for table in tables}, "charts": charts}
    (out_dir / "report.md").write_text(_markdown(title, intro, tables), encoding="utf-8")
    (out_dir / "report.html").write_text(_html(title, intro, tables), encoding="utf-8")
    (out_dir / "report.json").write_text(
        json.dumps(report, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    return report
