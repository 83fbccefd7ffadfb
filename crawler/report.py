"""Reports on opt-out uptake (survey files) or on a crawl's refusals (audit logs).

:func:`build_report` reads JSON-lines inputs, recognises each one by its records (audit records
have ``seq``, ``hash`` and ``decision``; survey records ``origin`` and ``surveyed_at``) and writes
into ``out_dir``:

* ``report.md`` and ``report.html`` (self-contained: styles inline, charts referenced by
  relative file name), with the same tables;
* ``report.json``: every figure of the tables, as ``{"count", "of", "percent", "text"}``, and
  the tables themselves as the strings printed, so a study can cite and recompute them;
* PNG charts, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Every share is printed with its denominator: ``47/95 (49.5 %)``; ``0/0 (—)`` when nothing could
be counted.  The report reads no clock and names inputs by file name only, so the same inputs
give the same files.

Surveys
-------
One input file is one survey (a *wave*); several make a time series, ordered by their earliest
``surveyed_at`` (a wave is labelled by that date, plus the file name when two share it).  Within
a wave an origin listed twice counts once (its last record).  The tables describe the latest
wave; the trend tables and charts cover all of them.

* Agents: share of origins whose robots.txt blocks each agent ``full``/``partial`` (as defined
  in :mod:`crawler.survey`), of the origins whose robots.txt could be evaluated (outcome
  ``parsed`` or ``unavailable``; ``unreachable``/``unknown`` are left out and shown in the
  outcome table).  Tokens differing only in case are counted once.  The top agents are ranked
  by full blocks, then full-or-partial, then name.
* Companies (the agent list's operators): an origin counts for "≥1 agent full" when it fully
  blocks at least one of the company's listed tokens, for "all agents full" when it fully blocks
  every one of them.
* Mechanisms: an origin *uses* a mechanism when it is present (a robots.txt group naming a
  listed AI agent that disallows something; a valid tdmrep.json or a ``tdm-reservation``
  header/meta; a Spawning-format ai.txt; a ``Content-Usage`` rule or header; a
  ``Content-Signal`` line, header or meta; an RSL licence named; ``noai``/``noimageai`` in
  ``X-Robots-Tag`` or robots meta) and *reserves AI training* through it when it says no to
  training (an AI agent or ``*`` blocked fully; ``tdm-reservation`` 1; an ai.txt disallow;
  ``train-ai=n``; ``ai-train=no``; an RSL licence not granting ``ai-train``; ``noai`` or
  ``noimageai``).  The denominator is the origins where the mechanism's carrier was checked
  and could be read (robots.txt parsed or 4xx; tdmrep.json / ai.txt not unreachable; a homepage
  response), from each record's ``checked``.
* Changed stance: for each pair of consecutive waves, the origins evaluated in both whose block
  level changed for ``*`` or a listed agent: "stricter" (none -> partial/full, partial -> full)
  and "looser" (the reverse).

Audit logs
----------
Decisions by kind, refusals (``deny`` records) by signal -- a record counts once for each
distinct signal among its reasons, so the rows may add up to more than the refusals -- and by
origin (scheme, host and port of the URL; the top 20 origins by refusals).
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from crawler.agents import load_agent_list

__all__ = ["ReportError", "build_report", "fraction", "fraction_text"]

TOP_AGENTS = 20
TOP_COMPANIES = 15
TOP_ORIGINS = 20
TRACKED_AGENTS = 8
#: Changed-stance rows list at most this many tokens per cell in the Markdown/HTML tables.
TOKENS_SHOWN = 6
_STRICTNESS = {"none": 0, "partial": 1, "full": 2}
_MECHANISMS = (
    ("robots", "robots.txt AI rules", ("robots.txt",)),
    ("tdmrep", "TDMRep", ("tdmrep.json", "homepage")),
    ("ai_txt", "ai.txt (Spawning)", ("ai.txt",)),
    ("content_usage", "Content-Usage (AIPREF)", ("robots.txt", "homepage")),
    ("content_signal", "Content-Signal", ("robots.txt", "homepage")),
    ("rsl", "RSL licence", ("robots.txt", "homepage")),
    ("noai", "noai / noimageai (header or meta)", ("homepage",)),
)
_OUTCOMES = ("parsed", "unavailable", "unreachable", "unknown")


class ReportError(ValueError):
    """The inputs cannot make a report (unreadable, empty, or surveys mixed with audit logs)."""


# --------------------------------------------------------------------------- figures


def fraction(count: int, of: int) -> dict[str, Any]:
    """A share as report.json carries it."""
    percent = round(100.0 * count / of, 1) if of else None
    return {"count": count, "of": of, "percent": percent, "text": fraction_text(count, of)}


def fraction_text(count: int, of: int) -> str:
    """``47/95 (49.5 %)``; ``0/0 (—)`` for an empty denominator."""
    if not of:
        return f"{count}/{of} (—)"
    return f"{count}/{of} ({100.0 * count / of:.1f} %)"


@dataclass(frozen=True, slots=True)
class Table:
    """One table, printed identically in Markdown, HTML and report.json."""

    key: str
    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""
    chart: str | None = None  # PNG file name shown under the table

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
    """(present, reserves AI training) for one mechanism of one record."""
    home = _dict(record.get("homepage"))
    if key == "robots":
        agents = _agents_of(record) or {}
        named = [agents[t] for t in tokens if isinstance(agents.get(t), dict)
                 and agents[t].get("explicit") and _block(agents[t]) != "none"]
        reserves = any(_block(agents.get(t)) == "full" for t in ("*", *tokens))
        return bool(named), reserves
    if key == "tdmrep":
        file = _dict(record.get("tdmrep"))
        meta = _dict(home.get("tdm-reservation"))
        present = file.get("valid") is True or bool(meta)
        reserves = file.get("reserved") is True or meta.get("reservation") == 1
        return present, reserves
    if key == "ai_txt":
        ai = _dict(record.get("ai_txt"))
        present = ai.get("spawning_format") is True
        reserves = any(_block(e) != "none" for e in _dict(ai.get("agents")).values())
        return present, present and reserves
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


def _wave_figures(label: str, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
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
    for key, name, carriers in _MECHANISMS:
        pool = [r for r in records if _readable(r, carriers)]
        if key == "robots":
            pool = evaluated
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
    return {"label": label, "surveyed_at": {"first": stamps[0] if stamps else None,
                                            "last": stamps[-1] if stamps else None},
            "origins": n, "evaluated": e, "robots_outcomes": outcome_rows,
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


def _stacked_barh(out_dir: Path, name: str, title: str, labels: Sequence[str],
                  series: Sequence[tuple[str, Sequence[float]]], xlabel: str) -> str:
    fig = _figure(9 if len(series) > 1 else 8, max(2.5, 0.32 * len(labels) + 1.2))
    ax = fig.subplots()
    positions = list(range(len(labels)))[::-1]
    left = [0.0] * len(labels)
    for legend, values in series:
        ax.barh(positions, values, left=left, label=legend)
        left = [a + b for a, b in zip(left, values)]
    ax.set_yticks(positions)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlim(0, 100)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    if len(series) > 1:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, out_dir, name)


def _trend_chart(out_dir: Path, name: str, title: str, labels: Sequence[str],
                 lines: Sequence[tuple[str, Sequence[float]]]) -> str:
    fig = _figure(9, 4.5)
    ax = fig.subplots()
    xs = list(range(len(labels)))
    for legend, values in lines:
        ax.plot(xs, values, marker="o", markersize=3, label=legend)
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylim(0, 100)
    ax.set_ylabel("% of origins")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    ax.grid(alpha=0.3)
    return _save(fig, out_dir, name)


# --------------------------------------------------------------------------- survey report


def _survey_tables(waves: Sequence[dict[str, Any]], records: Sequence[Sequence[dict]],
                   out_dir: Path, top: int, track: Sequence[str] | None
                   ) -> tuple[list[Table], dict[str, Any]]:
    last = waves[-1]
    e = last["evaluated"]
    tables: list[Table] = []
    extra: dict[str, Any] = {}
    label = last["label"]

    agents = last["agents"][:top]
    chart = None
    if agents:
        chart = _stacked_barh(
            out_dir, "agents.png", f"Origins blocking each AI agent ({label}, n={e})",
            [a["token"] for a in agents],
            [("full", [_pct(a["full"]) for a in agents]),
             ("partial", [_pct(a["partial"]) for a in agents])], "% of origins")
    rows = []
    if last["star"] is not None:
        s = last["star"]
        rows.append(("—", "`*` (any crawler)", "—", s["full"]["text"], s["partial"]["text"],
                     s["blocked"]["text"], s["root"]["text"], s["explicit"]["text"]))
    for rank, a in enumerate(agents, 1):
        rows.append((str(rank), a["token"], a["company"] or "—", a["full"]["text"],
                     a["partial"]["text"], a["blocked"]["text"], a["root"]["text"],
                     a["explicit"]["text"]))
    tables.append(Table(
        "agents", f"Top {len(agents)} AI agents blocked by robots.txt ({label})",
        ("#", "agent", "operator", "full", "partial", "full or partial", "/ disallowed",
         "named by a group"), tuple(rows),
        note=(f"Of the {e} origins whose robots.txt could be evaluated (outcome parsed or "
              "unavailable). full: no path may be fetched; partial: some paths disallowed; "
              "/ disallowed: the site root is disallowed (what one-URL checks count)."),
        chart=chart))

    companies = last["companies"][:TOP_COMPANIES]
    chart = None
    if companies:
        chart = _stacked_barh(
            out_dir, "companies.png", f"Origins blocking an operator's agents ({label})",
            [c["company"] for c in companies],
            [("≥1 agent full", [_pct(c["any_full"]) for c in companies]),
             ("partial only", [max(0.0, _pct(c["any_blocked"]) - _pct(c["any_full"]))
                               for c in companies])], "% of origins")
    tables.append(Table(
        "companies", f"By operator ({label})",
        ("operator", "listed agents", "≥1 agent full", "all agents full",
         "≥1 agent full or partial"),
        tuple((c["company"], str(len(c["tokens"])), c["any_full"]["text"],
               c["all_full"]["text"], c["any_blocked"]["text"]) for c in companies),
        note=f"Operators as the agent list names them; of the {e} evaluated origins.",
        chart=chart))

    mechs = last["mechanisms"]
    chart = _stacked_barh(
        out_dir, "mechanisms.png", f"Opt-out mechanisms in use ({label})",
        [m["name"] for m in mechs],
        [("reserves AI training", [_pct(m["reserves"]) for m in mechs]),
         ("present, no reservation", [max(0.0, _pct(m["present"]) - _pct(m["reserves"]))
                                      for m in mechs])], "% of origins where checked")
    tables.append(Table(
        "mechanisms", f"Mechanism adoption ({label})",
        ("mechanism", "checked via", "present", "reserves AI training"),
        tuple((m["name"], " / ".join(m["checked_via"]), m["present"]["text"],
               m["reserves"]["text"]) for m in mechs),
        note="Denominator: origins where a carrier of the mechanism was checked and could be "
             "read (robots.txt parsed or 4xx; tdmrep.json/ai.txt not unreachable; a homepage "
             "response).", chart=chart))

    outcomes = last["robots_outcomes"]
    fig = _figure(6, 3)
    ax = fig.subplots()
    ax.bar(list(outcomes), [_pct(f) for f in outcomes.values()])
    ax.set_ylim(0, 100)
    ax.set_ylabel("% of origins")
    ax.set_title(f"robots.txt outcomes ({label}, n={last['origins']})", fontsize=10)
    chart = _save(fig, out_dir, "robots_outcomes.png")
    rows = [(name, f["text"]) for name, f in outcomes.items()]
    rows.append(("of which HTML served as robots.txt", last["html_as_robots"]["text"]))
    tables.append(Table("robots_outcomes", f"robots.txt outcomes ({label})",
                        ("outcome", "origins"), tuple(rows),
                        note="parsed: 2xx; unavailable: 4xx (no restrictions); unreachable: "
                             "5xx/429/network error; unknown: empty or missing archived file.",
                        chart=chart))

    if len(waves) > 1:
        labels = [w["label"] for w in waves]
        if track:
            tracked = [t for t in track]
        else:
            tracked = [a["token"] for a in last["agents"][:TRACKED_AGENTS]]
        lookup = [{a["token"].lower(): a for a in w["agents"]} for w in waves]

        def agent_fig(i: int, token: str, what: str) -> dict[str, Any]:
            found = lookup[i].get(token.lower())
            return found[what] if found else fraction(0, waves[i]["evaluated"])

        chart = _trend_chart(out_dir, "trend_agents.png", "Origins fully blocking each agent",
                             labels, [(t, [_pct(agent_fig(i, t, "full"))
                                           for i in range(len(waves))]) for t in tracked])
        tables.append(Table(
            "trend_agents", "Trend: full blocks per agent",
            ("wave", "evaluated", *tracked),
            tuple((w["label"], str(w["evaluated"]),
                   *(agent_fig(i, t, "full")["text"] for t in tracked))
                  for i, w in enumerate(waves)),
            note="Each wave's denominator: its origins with an evaluated robots.txt.",
            chart=chart))
        names = [m["name"] for m in last["mechanisms"]]
        chart = _trend_chart(out_dir, "trend_mechanisms.png", "Mechanisms present", labels,
                             [(name, [_pct(w["mechanisms"][j]["present"]) for w in waves])
                              for j, name in enumerate(names)])
        tables.append(Table(
            "trend_mechanisms", "Trend: mechanisms present", ("wave", *names),
            tuple((w["label"], *(m["present"]["text"] for m in w["mechanisms"]))
                  for w in waves), chart=chart))
        all_tokens = _tokens(r for wave in records for r in wave)
        changes = []
        for i in range(1, len(waves)):
            for change in _changes(records[i - 1], records[i], all_tokens):
                changes.append({"from": waves[i - 1]["label"], "to": waves[i]["label"],
                                **change})
        extra["changes"] = changes
        extra["tracked"] = tracked
        tables.append(Table(
            "changes", f"Origins that changed stance ({len(changes)} changes)",
            ("from", "to", "origin", "stricter", "looser"),
            tuple((c["from"], c["to"], c["origin"], _short(c["stricter"]),
                   _short(c["looser"])) for c in changes),
            note="Consecutive waves, origins evaluated in both; block level per agent "
                 "(report.json lists every token)."))
    return tables, extra


def _survey_report(inputs: Sequence[_Input], out_dir: Path, top: int,
                   track: Sequence[str] | None) -> tuple[list[Table], dict[str, Any]]:
    waves_in = []
    for item in inputs:
        latest: dict[str, dict[str, Any]] = {}
        for record in item.records:
            latest[str(record["origin"])] = record
        records = list(latest.values())
        first = min((str(r.get("surveyed_at") or "") for r in records), default="")
        waves_in.append((first, item, records))
    waves_in.sort(key=lambda w: w[0])
    dates = Counter(first[:10] for first, _, _ in waves_in)
    waves, wave_records = [], []
    for first, item, records in waves_in:
        label = first[:10] or item.path.stem
        if dates[first[:10]] > 1:
            stem = item.path.stem
            if first[:10] and stem.startswith(first[:10]):
                stem = stem[len(first[:10]):].lstrip("_- ") or stem
            label = f"{label} ({stem})"
        waves.append(_wave_figures(label, records))
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


def _audit_report(inputs: Sequence[_Input], out_dir: Path) -> tuple[list[Table], dict]:
    every = [r for item in inputs for r in item.records]
    # decisions about URLs; the write-ahead records (send, result) say when requests left
    records = [r for r in every if r.get("decision") in ("allow", "deny", "erase")]
    n = len(records)
    decisions = Counter(str(r.get("decision")) for r in records)
    denies = [r for r in records if r.get("decision") == "deny"]
    d = len(denies)
    by_signal: Counter[str] = Counter()
    for record in denies:
        reasons = record.get("reasons") if isinstance(record.get("reasons"), list) else []
        signals = {str(_dict(reason).get("signal")) for reason in reasons} or {"(none)"}
        by_signal.update(signals)
    per_origin: Counter[str] = Counter(_origin(r.get("url")) for r in records)
    refused_origin: Counter[str] = Counter(_origin(r.get("url")) for r in denies)
    figures = {
        "records": n,
        "write_ahead_records": len(every) - n,
        "decisions": {k: fraction(v, n) for k, v in sorted(decisions.items())},
        "refusals_by_signal": {k: fraction(v, d) for k, v in by_signal.most_common()},
        "refusals_by_origin": [
            {"origin": origin, "refused": fraction(count, per_origin[origin]),
             "share_of_refusals": fraction(count, d)}
            for origin, count in sorted(refused_origin.items(),
                                        key=lambda kv: (-kv[1], kv[0]))[:TOP_ORIGINS]],
    }
    tables = [Table("decisions", "Decisions", ("decision", "records"),
                    tuple((k, f["text"]) for k, f in figures["decisions"].items()))]
    signals = figures["refusals_by_signal"]
    chart = None
    if signals:
        chart = _stacked_barh(out_dir, "audit_signals.png", f"Refusals by signal (n={d})",
                              list(signals), [("refusals", [_pct(f) for f in signals.values()])],
                              "% of refused URLs")
    tables.append(Table("refusals_by_signal", "Refusals by signal", ("signal", "refusals"),
                        tuple((k, f["text"]) for k, f in signals.items()),
                        note="A refusal counts once for each distinct signal among its "
                             "reasons; denominator: all refusals.", chart=chart))
    origins = figures["refusals_by_origin"]
    chart = None
    if origins:
        chart = _stacked_barh(out_dir, "audit_origins.png", "Refusals by origin",
                              [o["origin"] for o in origins],
                              [("refused", [_pct(o["refused"]) for o in origins])],
                              "% of the origin's decisions")
    tables.append(Table("refusals_by_origin", f"Refusals by origin (top {TOP_ORIGINS})",
                        ("origin", "refused of its decisions", "share of all refusals"),
                        tuple((o["origin"], o["refused"]["text"],
                               o["share_of_refusals"]["text"]) for o in origins),
                        chart=chart))
    return tables, figures


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
        "color:#222}table{border-collapse:collapse;margin:.5em 0 1em}th,td{border:1px solid "
        "#ccc;padding:.25em .6em;font-size:.9em;text-align:left}th{background:#f3f3f3}"
        "td{font-variant-numeric:tabular-nums}p.note{color:#555;font-size:.9em}"
        "img{max-width:100%}")


def _html(title: str, intro: Sequence[str], tables: Sequence[Table]) -> str:
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{e(title)}</title><style>{_CSS}</style></head><body>", f"<h1>{e(title)}</h1>"]
    out += [f"<p>{e(line)}</p>" for line in intro if line]
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


def build_report(
    inputs: Sequence[Path],
    out_dir: Path,
    *,
    top: int = TOP_AGENTS,
    track: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Write report.md, report.html, report.json and the charts into ``out_dir``; return what
    report.json holds.  ``top``: agents in the agent table and chart; ``track``: agents whose
    full-block share the trend table follows (default: the top 8 of the latest wave).

    Raises :class:`ReportError` when there is nothing to report or the inputs mix kinds.
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
        tables, figures = _survey_report(used, out_dir, top, track)
        waves = figures["waves"]
        title = "Opt-out uptake report"
        intro = [f"{len(waves)} survey wave(s): "
                 + ", ".join(f"{w['label']} ({w['origins']} origins)" for w in waves) + ".",
                 f"Agent list: ai.robots.txt snapshot {load_agent_list().date}."]
    else:
        tables, figures = _audit_report(used, out_dir)
        title = "Crawl refusals report"
        intro = [f"{figures['records']} audit records from "
                 + ", ".join(item.path.name for item in used) + "."]
    skipped = sum(item.skipped for item in read)
    if skipped:
        intro.append(f"{skipped} unreadable or unrecognised line(s) skipped.")
    charts = [table.chart for table in tables if table.chart]
    report = {"kind": kind, "inputs": sources, "figures": figures,
              "tables": {table.key: table.to_json() for table in tables}, "charts": charts}
    (out_dir / "report.md").write_text(_markdown(title, intro, tables), encoding="utf-8")
    (out_dir / "report.html").write_text(_html(title, intro, tables), encoding="utf-8")
    (out_dir / "report.json").write_text(
        json.dumps(report, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    return report
