"""The opt-out uptake report, from survey files: agents blocked, operators, mechanisms,
robots.txt outcomes, and over several waves the trends and the origins that changed stance --
one function per table.  The waves' figures are computed by :mod:`crawler.publish.waves`.

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
* Mechanisms (:data:`crawler.publish.measures.MECHANISMS`): an origin *uses* a mechanism
  when it is present and *reserves AI training* through it when it says no to training; the
  definitions are in the glossary.  robots.txt has three rows: groups naming an AI agent, the
  ``*`` group, and own or ``*`` group (for the listed AI agents).
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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from crawler.publish.charts import bar_chart, trend_chart
from crawler.publish.figures import Table, fraction, intervals_overlap, n_range, top_ranked
from crawler.publish.inputs import Input
from crawler.publish.waves import OUTCOMES, agent_tokens, read_waves, stance_changes

__all__ = ["TOP_AGENTS", "survey_report"]

TOP_AGENTS = 20
TOP_COMPANIES = 15
TRACKED_AGENTS = 8
#: Changed-stance rows list at most this many tokens per cell in the Markdown/HTML tables.
TOKENS_SHOWN = 6


def survey_report(inputs: Sequence[Input], out_dir: Path, top: int,
                  track: Sequence[str] | None, use_file_times: bool
                  ) -> tuple[list[Table], dict[str, Any]]:
    """The tables of a survey report on ``inputs`` (charts written into ``out_dir``) and the
    figures report.json carries: ``top`` agents listed, ``track``: agents the trends follow."""
    waves, wave_records = read_waves(inputs, use_file_times)
    tables, extra = _survey_tables(waves, wave_records, out_dir, top, track)
    return tables, {"waves": waves, **extra}


def _survey_tables(waves: Sequence[dict[str, Any]], records: Sequence[Sequence[dict]],
                   out_dir: Path, top: int, track: Sequence[str] | None
                   ) -> tuple[list[Table], dict[str, Any]]:
    """The latest wave's tables, then (several waves) the trend tables."""
    last = waves[-1]
    extra: dict[str, Any] = {}
    agents, extra["agents_listed"] = _agents_table(last, out_dir, top)
    tables = [agents, _companies_table(last, out_dir), _mechanisms_table(last, out_dir),
              _robots_outcomes_table(last, out_dir)]
    if len(waves) > 1:
        tables += _trend_tables(waves, records, out_dir, track, extra)
    return tables, extra


def _agents_table(last: Mapping[str, Any], out_dir: Path, n: int
                  ) -> tuple[Table, dict[str, int]]:
    """The agents blocked in the latest wave (the top ``n``, a tie at the cut left out whole),
    and how many were listed, left out, blocked nowhere."""
    e = last["evaluated"]
    label = last["label"]
    ranked = [a for a in last["agents"] if a["blocked"]["count"]]
    agents, tied = top_ranked(ranked, lambda a: (a["full"]["count"], a["blocked"]["count"]), n)
    listed = {"shown": len(agents), "blocked_anywhere": len(ranked),
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
    if listed["blocked_nowhere"]:
        left_out.append(f"{listed['blocked_nowhere']} listed agents blocked "
                        "at no origin are not listed")
    table = Table(
        "agents", f"AI agents blocked by robots.txt: top {len(agents)} of {len(ranked)} "
                  f"({label})",
        ("#", "agent", "operator", "full", "partial", "full or partial", "/ disallowed",
         "named by a group"), tuple(rows),
        note=(f"Unit: origins. Denominator: the {e} origins whose robots.txt could be evaluated. "
              "Ranked by full, then full or partial"
              + ("; " + "; ".join(left_out) if left_out else "") + "."),
        chart=chart, measures=("share", "evaluated", "agent_full", "agent_partial",
                               "agent_blocked", "agent_root", "agent_explicit"))
    return table, listed


def _companies_table(last: Mapping[str, Any], out_dir: Path) -> Table:
    e = last["evaluated"]
    label = last["label"]
    ranked_c = [c for c in last["companies"] if c["any_blocked"]["count"]]
    companies, tied_c = top_ranked(ranked_c, lambda c: (c["any_full"]["count"],
                                                 c["any_blocked"]["count"]), TOP_COMPANIES)
    chart = None
    if companies:
        chart = bar_chart(
            out_dir, "companies.png",
            f"Origins fully blocking ≥1 agent of an operator ({label}, n = {e})",
            [c["company"] for c in companies],
            [("≥1 agent full", [c["any_full"] for c in companies])], "% of evaluated origins")
    return Table(
        "companies", f"By operator: top {len(companies)} of {len(ranked_c)} ({label})",
        ("operator", "listed agents", "≥1 agent full", "all agents full",
         "≥1 agent full or partial"),
        tuple((c["company"], str(len(c["tokens"])), c["any_full"]["text"],
               c["all_full"]["text"], c["any_blocked"]["text"]) for c in companies),
        note=(f"Unit: origins. Denominator: the {e} evaluated origins. Operators as the agent "
              "list names them" + (f"; {tied_c} more tied at the cut are not listed"
                                   if tied_c else "") + "."),
        chart=chart, measures=("company_any_full", "company_all_full", "company_any_blocked"))


def _mechanisms_table(last: Mapping[str, Any], out_dir: Path) -> Table:
    label = last["label"]
    mechs = last["mechanisms"]
    chart = bar_chart(
        out_dir, "mechanisms.png",
        f"Opt-out mechanisms ({label}; n per row: origins where checked, up to "
        f"{max(m['present']['of'] for m in mechs)})",
        [m["name"] for m in mechs],
        [("present", [m["present"] for m in mechs]),
         ("reserves AI training", [m["reserves"] for m in mechs])],
        "% of origins where checked")
    return Table(
        "mechanisms", f"Mechanism adoption ({label})",
        ("mechanism", "checked via", "present", "reserves AI training"),
        tuple((m["name"], " / ".join(m["checked_via"]), m["present"]["text"],
               m["reserves"]["text"]) for m in mechs),
        note="Unit: origins. Denominator per row: the origins where a carrier of the mechanism "
             "was checked and could be read. Reserves AI training is a subset of present; "
             "each row is defined in the glossary.", chart=chart,
        measures=tuple(f"{m['key']}_{what}" for m in mechs for what in ("present",
                                                                         "reserves")))


def _robots_outcomes_table(last: Mapping[str, Any], out_dir: Path) -> Table:
    label = last["label"]
    outcomes = last["robots_outcomes"]
    chart = bar_chart(out_dir, "robots_outcomes.png",
                      f"robots.txt outcomes ({label}, n = {last['origins']} origins)",
                      list(outcomes), [("origins", list(outcomes.values()))], "% of origins")
    rows = [(name, f["text"]) for name, f in outcomes.items()]
    rows.append(("of which HTML served as robots.txt", last["html_as_robots"]["text"]))
    return Table("robots_outcomes", f"robots.txt outcomes ({label})",
                 ("outcome", "origins"), tuple(rows),
                 note=f"Unit: origins. Denominator: all {last['origins']} origins of "
                      "the wave.", chart=chart,
                 measures=(*(f"outcome_{o}" for o in OUTCOMES), "outcome_html"))


# --------------------------------------------------------------------------- trends


FullBlocks = Callable[[int, str], dict[str, Any]]


def _trend_tables(waves: Sequence[dict[str, Any]], records: Sequence[Sequence[dict]],
                  out_dir: Path, track: Sequence[str] | None,
                  extra: dict[str, Any]) -> list[Table]:
    """The trend tables over several waves; their figures go into ``extra``."""
    last = waves[-1]
    if track:
        tracked = list(track)
    else:
        ranked = [a for a in last["agents"] if a["full"]["count"]]
        tracked = [a["token"] for a in top_ranked(ranked, lambda a: a["full"]["count"],
                                           TRACKED_AGENTS)[0]]
    full = _full_blocks(waves)
    tables = [_trend_agents_table(waves, tracked, full, out_dir)]
    extra["trend_changes"] = _trend_changes(waves, tracked, full)
    tables.append(_trend_changes_table(waves, tracked, extra["trend_changes"]))
    tables.append(_trend_mechanisms_table(waves, out_dir))
    stance = []
    all_tokens = agent_tokens(r for wave in records for r in wave)
    for i in range(1, len(waves)):
        for change in stance_changes(records[i - 1], records[i], all_tokens):
            stance.append({"from": waves[i - 1]["label"], "to": waves[i]["label"], **change})
    extra["changes"] = stance
    extra["tracked"] = tracked
    tables.append(_stance_table(stance))
    return tables


def _full_blocks(waves: Sequence[dict[str, Any]]) -> FullBlocks:
    """``full(i, token)``: wave ``i``'s full-block figure for ``token`` (0 of the wave's
    evaluated origins when the wave does not list the token)."""
    lookup = [{a["token"].lower(): a for a in w["agents"]} for w in waves]

    def full(i: int, token: str) -> dict[str, Any]:
        found = lookup[i].get(token.lower())
        return found["full"] if found else fraction(0, waves[i]["evaluated"])

    return full


def _trend_agents_table(waves: Sequence[dict[str, Any]], tracked: Sequence[str],
                        full: FullBlocks, out_dir: Path) -> Table:
    labels = [w["label"] for w in waves]
    n_text = n_range(w["evaluated"] for w in waves)
    chart = None
    if tracked:
        chart = trend_chart(out_dir, "trend_agents.png",
                            f"Origins fully blocking each agent (n = {n_text} evaluated "
                            "origins per wave)", labels,
                            [(t, [full(i, t) for i in range(len(waves))]) for t in tracked],
                            "% of evaluated origins", dates=[w["date"] for w in waves])
    return Table(
        "trend_agents", "Trend: full blocks per agent",
        ("wave", "evaluated", *tracked),
        tuple((w["label"], str(w["evaluated"]), *(full(i, t)["text"] for t in tracked))
              for i, w in enumerate(waves)),
        note="Unit: origins. Each wave's denominator: its origins with an evaluated robots.txt.",
        chart=chart, measures=("agent_full",))


def _trend_changes(waves: Sequence[dict[str, Any]], tracked: Sequence[str],
                   full: FullBlocks) -> list[dict[str, Any]]:
    """The change of each tracked agent's full blocks between consecutive waves, and first to
    latest."""
    changes = []
    pairs = [(i - 1, i) for i in range(1, len(waves))] + [(0, len(waves) - 1)]
    for a, b in pairs:
        for token in tracked:
            before, after = full(a, token), full(b, token)
            changes.append(_change(waves[a]["label"], waves[b]["label"], token, "full",
                                   before, after))
    return changes


def _trend_changes_table(waves: Sequence[dict[str, Any]], tracked: Sequence[str],
                         changes: Sequence[Mapping[str, Any]]) -> Table:
    labels = [w["label"] for w in waves]
    by_pair: dict[tuple[str, str], dict[str, str]] = {}
    for c in changes:
        by_pair.setdefault((c["from"], c["to"]), {})[c["series"]] = c["text"]
    rows = []
    for (a_label, b_label), cells in by_pair.items():
        first_to_last = (a_label, b_label) == (labels[0], labels[-1]) and len(waves) > 2
        rows.append(((f"first → latest: {a_label} → {b_label}" if first_to_last
                      else f"{a_label} → {b_label}"), *(cells[t] for t in tracked)))
    return Table(
        "trend_changes", "Trend: change in full blocks between waves",
        ("waves", *tracked), tuple(rows),
        note="Percentage points, later minus earlier; 'intervals apart' when the two waves' "
             "95 % intervals do not overlap, 'intervals overlap' when they do (the change may "
             "be chance).", measures=("change",))


def _trend_mechanisms_table(waves: Sequence[dict[str, Any]], out_dir: Path) -> Table:
    last = waves[-1]
    labels = [w["label"] for w in waves]
    names = [m["name"] for m in last["mechanisms"]]
    checked = [m["present"]["of"] for w in waves for m in w["mechanisms"] if m["present"]["of"]]
    chart = trend_chart(out_dir, "trend_mechanisms.png",
                        f"Mechanisms present (n per wave: origins where checked, "
                        f"{n_range(checked)}; mechanisms never checked left out)",
                        labels, [(name, [w["mechanisms"][j]["present"] for w in waves])
                                 for j, name in enumerate(names)], "% of origins where checked",
                        dates=[w["date"] for w in waves])
    return Table(
        "trend_mechanisms", "Trend: mechanisms present", ("wave", *names),
        tuple((w["label"], *(m["present"]["text"] for m in w["mechanisms"])) for w in waves),
        note="Unit: origins. Denominator per cell: the wave's origins where the mechanism was "
             "checked.", chart=chart,
        measures=tuple(f"{m['key']}_present" for m in last["mechanisms"]))


def _stance_table(stance: Sequence[Mapping[str, Any]]) -> Table:
    return Table(
        "changes", f"Origins that changed stance ({len(stance)} changes)",
        ("from", "to", "origin", "stricter", "looser"),
        tuple((c["from"], c["to"], c["origin"], _short(c["stricter"]),
               _short(c["looser"])) for c in stance),
        note="Unit: origins evaluated in both of two consecutive waves; block level per agent "
             "(report.json lists every token).", measures=("stance",))


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


def _short(items: Sequence[str]) -> str:
    if not items:
        return "—"
    shown = ", ".join(items[:TOKENS_SHOWN])
    return shown + (f", +{len(items) - TOKENS_SHOWN} more" if len(items) > TOKENS_SHOWN else "")
