"""What each figure of a report counts: :data:`MEASURES` (key -> unit, definition,
denominator), the opt-out mechanisms a survey report counts (:data:`MECHANISMS`), and the
glossary table generated from them.  A report's glossary lists every measure its tables use;
the survey's own definitions come from :mod:`crawler.survey.analysis`
(``BLOCK_LEVEL_DEFINITIONS``, ``OUTCOME_DEFINITIONS``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from crawler.publish.figures import Table
from crawler.survey.analysis import BLOCK_LEVEL_DEFINITIONS, OUTCOME_DEFINITIONS

__all__ = ["MEASURES", "MECHANISMS", "Measure", "glossary"]


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
MECHANISMS: tuple[tuple[str, str, tuple[str, ...], str, str], ...] = (
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
    for key, name, _, present, reserves in MECHANISMS:
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


def glossary(tables: Sequence[Table], measures: Mapping[str, Measure]) -> Table:
    used: dict[str, Measure] = {"share": measures["share"]}
    for table in tables:
        for key in table.measures:
            used.setdefault(key, measures[key])
    return Table("glossary", "Glossary: what each figure counts",
                 ("measure", "unit", "definition", "denominator"),
                 tuple((m.name, m.unit, m.definition, m.denominator) for m in used.values()),
                 note="Generated from the code that computes the figures "
                      "(crawler.publish.report.MEASURES, crawler.survey.analysis definitions).")
