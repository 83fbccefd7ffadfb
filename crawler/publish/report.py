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
95 % Wilson score interval (:mod:`crawler.publish.figures`): ``47/95 (49.5 % [39.6–59.3])``;
``0/0 (—)`` when nothing could be counted.  Each report ends with a glossary generated from
:data:`MEASURES` (:mod:`crawler.publish.measures`; and from the survey's own definitions,
:data:`crawler.survey.analysis.BLOCK_LEVEL_DEFINITIONS` and ``OUTCOME_DEFINITIONS``): every
measure its tables use, its unit, definition and denominator.  Measures that look alike
are named apart (a mechanism's "present" always includes its "reserves AI training").

The report reads no clock and names inputs by file name only, so the same inputs give the same
files.

Where the rest lives
--------------------
* :mod:`crawler.publish.inputs`: reading the inputs and recognising their kind;
* :mod:`crawler.publish.uptake` (tables) and :mod:`crawler.publish.waves` (figures): the survey
  report, and its counting rules;
* :mod:`crawler.publish.refusals` (tables) and :mod:`crawler.publish.tallies` (the counts,
  shared with the transparency summary): the audit report, and its counting rules;
* :mod:`crawler.publish.charts`: the PNG charts; :mod:`crawler.publish.figures`: shares,
  intervals and :class:`Table`; :mod:`crawler.publish.measures`: the glossary.

This module writes the files (Markdown, HTML, JSON) and keeps the public names of the report
(``__all__``) importable from here.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from crawler.publish.charts import PALETTE, bar_chart, spend_chart, trend_chart
from crawler.publish.figures import (
    ReportError,
    Table,
    fraction,
    fraction_text,
    intervals_overlap,
    wilson_interval,
)
from crawler.publish.inputs import read_input
from crawler.publish.measures import MEASURES, Measure, glossary
from crawler.publish.refusals import audit_report
from crawler.publish.tallies import AuditTally, PaymentTally
from crawler.publish.uptake import TOP_AGENTS, survey_report
from crawler.survey.agents import load_agent_list

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
    read = [read_input(Path(path)) for path in inputs]
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
        tables, figures = survey_report(used, out_dir, top, track, use_file_times)
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
        tables, figures = audit_report(used, out_dir)
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
    tables.append(glossary(tables, measures))
    charts = [table.chart for table in tables if table.chart]
    report = {"kind": kind, "inputs": sources, "figures": figures,
              "tables": {table.key: table.to_json() for table in tables}, "charts": charts}
    (out_dir / "report.md").write_text(_markdown(title, intro, tables), encoding="utf-8")
    (out_dir / "report.html").write_text(_html(title, intro, tables), encoding="utf-8")
    (out_dir / "report.json").write_text(
        json.dumps(report, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    return report
