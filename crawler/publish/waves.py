"""The figures of survey waves (one survey file is one wave), computed from their records; the
survey report (:mod:`crawler.publish.uptake`) turns them into tables and charts, and its module
docstring gives the counting rules.

:func:`read_waves` keeps each origin's last record in a wave, dates the waves and orders them;
:func:`wave_figures` counts one wave: agents blocked, operators, mechanisms, robots.txt
outcomes; :func:`stance_changes` lists the origins whose block level changed between two waves.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from crawler.publish.domains import registrable_domain
from crawler.publish.figures import ReportError, fraction
from crawler.publish.inputs import Input
from crawler.publish.measures import MECHANISMS
from crawler.survey.agents import load_agent_list

__all__ = ["OUTCOMES", "agent_tokens", "read_waves", "stance_changes", "wave_date", "wave_figures"]

_STRICTNESS = {"none": 0, "partial": 1, "full": 2}
#: robots.txt outcomes, in table order.
OUTCOMES = ("parsed", "unavailable", "unreachable", "unknown")


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


def agent_tokens(records: Iterable[Mapping[str, Any]]) -> list[str]:
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


def wave_figures(label: str, records: Sequence[Mapping[str, Any]],
                  date: dict[str, Any]) -> dict[str, Any]:
    n = len(records)
    evaluated = [r for r in records if _agents_of(r) is not None]
    e = len(evaluated)
    tokens = agent_tokens(evaluated)
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
    for key, name, carriers, _, _ in MECHANISMS:
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
                    for name in (*OUTCOMES, "not checked") if outcomes[name] or name in OUTCOMES}
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


def stance_changes(prev: Sequence[Mapping[str, Any]], cur: Sequence[Mapping[str, Any]],
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


def wave_date(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``{"date", "source", "undated_records"}`` of one wave (see :mod:`crawler.publish.uptake`)."""
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


def read_waves(inputs: Sequence[Input], use_file_times: bool
               ) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
    """The waves of ``inputs`` in date order: each wave's figures (:func:`wave_figures`, with
    its label, file and undated records) and its records (the last one per origin).  Raises
    :class:`ReportError` for a time series with an undated wave, unless ``use_file_times``."""
    waves_in = []
    for item in inputs:
        latest: dict[str, dict[str, Any]] = {}
        for record in item.records:
            latest[str(record["origin"])] = record
        records = list(latest.values())
        first = min((str(r.get("surveyed_at") or "") for r in records), default="")
        waves_in.append((wave_date(records), first, item, records))
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
        figures = wave_figures(label, records, date)
        figures["file"] = item.path.name
        figures["undated_records"] = date["undated_records"]
        waves.append(figures)
        wave_records.append(records)
    return waves, wave_records
