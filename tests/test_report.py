"""Reports (crawler.report) from small fixed survey files and audit logs: tables, denominators,
charts, and report.json figures equal to the printed ones."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from crawler.agents import load_agents
from crawler.audit.log import AuditWriter
from crawler.policy import site_file
from crawler.report import ReportError, build_report, fraction, fraction_text
from crawler.survey import HomepageFetch, analyse_origin, analyse_robots_only

AGENTS = tuple(a for a in load_agents() if a.token in ("GPTBot", "CCBot", "ClaudeBot"))
PNG = b"\x89PNG\r\n\x1a\n"


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def wave(when: str, files: dict[str, tuple[int | None, bytes]]) -> list[dict]:
    return [analyse_robots_only(host, body, surveyed_at=when, agents=AGENTS, status=status)
            for host, (status, body) in files.items()]


WAVE1 = {"a.example": (200, b"User-agent: GPTBot\nDisallow: /\n"),
         "b.example": (200, b"User-agent: *\nDisallow: /private\n"),
         "c.example": (503, b"")}
WAVE2 = {"a.example": (200, b"User-agent: GPTBot\nUser-agent: CCBot\nDisallow: /\n"),
         "b.example": (200, b"User-agent: *\nDisallow:\n"),
         "c.example": (200, b"User-agent: *\nDisallow: /\n")}


def md_tables(text: str) -> dict[str, list[list[str]]]:
    """Markdown tables by their '## ' heading: rows of cells (header row first)."""
    tables: dict[str, list[list[str]]] = {}
    title = None
    for line in text.splitlines():
        if line.startswith("## "):
            title = line[3:]
            tables[title] = []
        elif line.startswith("|") and title is not None and not line.startswith("|---"):
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            tables[title].append(cells)
    return tables


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    root = tmp_path_factory.mktemp("series")
    # given out of order: the report orders waves by surveyed_at
    second = write_jsonl(root / "feb.jsonl", wave("2026-02-01T00:00:00Z", WAVE2))
    first = write_jsonl(root / "jan.jsonl", wave("2026-01-01T00:00:00Z", WAVE1))
    out = root / "report"
    report = build_report([second, first], out)
    return out, report


def test_agent_table_with_denominators(series):
    out, _ = series
    tables = md_tables((out / "report.md").read_text(encoding="utf-8"))
    agents = tables["Top 3 AI agents blocked by robots.txt (2026-02-01)"]
    assert agents[0] == ["#", "agent", "operator", "full", "partial", "full or partial",
                         "/ disallowed", "named by a group"]
    rows = {row[1]: row for row in agents[1:]}
    assert rows["GPTBot"] == ["2", "GPTBot", "OpenAI", "2/3 (66.7 %)", "0/3 (0.0 %)",
                              "2/3 (66.7 %)", "2/3 (66.7 %)", "1/3 (33.3 %)"]
    assert rows["CCBot"][3:] == ["2/3 (66.7 %)", "0/3 (0.0 %)", "2/3 (66.7 %)",
                                 "2/3 (66.7 %)", "1/3 (33.3 %)"]
    assert rows["ClaudeBot"][3] == "1/3 (33.3 %)"
    assert rows["`*` (any crawler)"][3:6] == ["1/3 (33.3 %)", "0/3 (0.0 %)", "1/3 (33.3 %)"]
    # ranking: full blocks first, then name
    assert [row[1] for row in agents[2:]] == ["CCBot", "GPTBot", "ClaudeBot"]


def test_outcomes_and_first_wave_denominators(series):
    out, report = series
    waves = report["figures"]["waves"]
    assert [w["label"] for w in waves] == ["2026-01-01", "2026-02-01"]
    jan = waves[0]
    assert (jan["origins"], jan["evaluated"]) == (3, 2)  # the unreachable one is left out
    assert jan["robots_outcomes"]["unreachable"]["text"] == "1/3 (33.3 %)"
    tables = md_tables((out / "report.md").read_text(encoding="utf-8"))
    outcomes = dict(tables["robots.txt outcomes (2026-02-01)"][1:])
    assert outcomes["parsed"] == "3/3 (100.0 %)"
    assert outcomes["unreachable"] == "0/3 (0.0 %)"
    trend = tables["Trend: full blocks per agent"]
    assert trend[0][:2] == ["wave", "evaluated"]
    col = trend[0].index("CCBot")
    assert [row[col] for row in trend[1:]] == ["0/2 (0.0 %)", "2/3 (66.7 %)"]


def test_changed_stance(series):
    out, report = series
    changes = report["figures"]["changes"]
    by_origin = {c["origin"]: c for c in changes}
    assert set(by_origin) == {"https://a.example", "https://b.example"}  # c was unknown before
    assert by_origin["https://a.example"]["stricter"] == ["CCBot none→full"]
    assert by_origin["https://a.example"]["looser"] == []
    assert by_origin["https://b.example"]["looser"] == [
        "* partial→none", "CCBot partial→none", "ClaudeBot partial→none", "GPTBot partial→none"]
    tables = md_tables((out / "report.md").read_text(encoding="utf-8"))
    rows = tables["Origins that changed stance (2 changes)"][1:]
    assert ["2026-01-01", "2026-02-01", "https://a.example", "CCBot none→full", "—"] in rows


def test_report_json_figures_equal_the_printed_ones(series):
    out, report = series
    on_disk = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert on_disk == report
    tables = md_tables((out / "report.md").read_text(encoding="utf-8"))
    for table in report["tables"].values():
        printed = tables[table["title"]]
        assert printed[0] == table["headers"]
        assert printed[1:] == table["rows"]
    # and the structured figures are the ones printed
    last = report["figures"]["waves"][-1]
    agent_rows = {row[1]: row for row in report["tables"]["agents"]["rows"]}
    for agent in last["agents"]:
        row = agent_rows[agent["token"]]
        assert row[3:] == [agent[k]["text"] for k in ("full", "partial", "blocked", "root",
                                                       "explicit")]
        full = agent["full"]
        assert full["text"] == fraction_text(full["count"], full["of"])


def test_charts_are_written_and_referenced_relatively(series):
    out, report = series
    assert set(report["charts"]) == {"agents.png", "companies.png", "mechanisms.png",
                                     "robots_outcomes.png", "trend_agents.png",
                                     "trend_mechanisms.png"}
    for name in report["charts"]:
        data = (out / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 2000
    page = (out / "report.html").read_text(encoding="utf-8")
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sorted(sources) == sorted(report["charts"])
    assert "<style>" in page and "http" not in " ".join(sources)
    assert "<script" not in page and "<link" not in page
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "](agents.png)" in md
    assert str(out) not in md + page  # nothing absolute


def test_report_is_reproducible(series, tmp_path):
    out, report = series
    inputs = [Path(p) for p in sorted(out.parent.glob("*.jsonl"))]
    again = build_report(inputs, tmp_path)
    assert again == report
    for name in ("report.md", "report.html", "report.json"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes()


def test_mechanism_adoption(tmp_path):
    origin = "https://full.example"
    full = analyse_origin(
        origin, surveyed_at="2026-03-01", agents=AGENTS,
        robots=site_file("robots.txt", origin + "/robots.txt", status=200,
                         body=b"User-agent: GPTBot\nDisallow: /\n\nUser-agent: *\nAllow: /\n"
                              b"Content-Usage: train-ai=n\nContent-Signal: ai-train=yes\n"
                              b"License: https://full.example/l.xml\n"),
        tdmrep=site_file("tdmrep.json", origin + "/t", status=200,
                         body=b'[{"location": "/", "tdm-reservation": 1}]'),
        ai_txt=site_file("ai.txt", origin + "/ai.txt", status=200,
                         body=b"User-Agent: *\nDisallow: /\n"),
        licences={},
        homepage=HomepageFetch(200, {"x-robots-tag": ["noai"]}, b""),
    )
    bare = analyse_origin(
        "https://bare.example", surveyed_at="2026-03-01", agents=AGENTS,
        robots=site_file("robots.txt", "https://bare.example/robots.txt", status=404),
        tdmrep=site_file("tdmrep.json", "https://bare.example/t", status=404),
        ai_txt=site_file("ai.txt", "https://bare.example/ai.txt", status=503),
        licences={}, homepage=HomepageFetch(None, {}, b""),
    )
    offline = analyse_robots_only("old.example", b"User-agent: *\nDisallow: /\n",
                                  surveyed_at="2026-03-01", agents=AGENTS)
    path = write_jsonl(tmp_path / "survey.jsonl", [full, bare, offline])
    report = build_report([path], tmp_path / "out")
    rows = {row[0]: row[2:] for row in report["tables"]["mechanisms"]["rows"]}
    # present: a group naming an AI agent; reserves: an AI agent fully blocked (also via '*')
    assert rows["robots.txt AI rules"] == ["1/3 (33.3 %)", "2/3 (66.7 %)"]
    assert rows["TDMRep"] == ["1/2 (50.0 %)", "1/2 (50.0 %)"]
    assert rows["ai.txt (Spawning)"] == ["1/1 (100.0 %)", "1/1 (100.0 %)"]  # 503 left out
    assert rows["Content-Usage (AIPREF)"] == ["1/3 (33.3 %)", "1/3 (33.3 %)"]
    assert rows["Content-Signal"] == ["1/3 (33.3 %)", "0/3 (0.0 %)"]
    assert rows["RSL licence"] == ["1/3 (33.3 %)", "0/3 (0.0 %)"]  # named, not fetched
    assert rows["noai / noimageai (header or meta)"] == ["1/1 (100.0 %)", "1/1 (100.0 %)"]
    assert (tmp_path / "out" / "mechanisms.png").read_bytes().startswith(PNG)
    assert "trend_agents.png" not in report["charts"]  # one wave: no time series


def test_audit_log_report(tmp_path):
    log = tmp_path / "audit.jsonl"
    ticks = iter(range(100))
    writer = AuditWriter(log, job="t", clock=lambda: f"2026-11-27T21:00:{next(ticks):02d}Z")

    def reason(signal):
        return {"signal": signal, "channel": "robots.txt", "rule": "Disallow: /"}

    writer.write(url="https://a.example/x", decision="deny", reasons=[reason("robots")],
                 policy_sha256="p" * 64)
    writer.write(url="https://a.example/y", decision="deny",
                 reasons=[reason("robots"), reason("tdmrep")], policy_sha256="p" * 64)
    writer.write(url="https://b.example/z", decision="allow", reasons=[],
                 policy_sha256="p" * 64)
    writer.write(url="https://b.example/w", decision="deny", reasons=[reason("noai")],
                 policy_sha256="p" * 64)
    writer.close()
    report = build_report([log], tmp_path / "out")
    assert report["kind"] == "audit"
    tables = md_tables((tmp_path / "out" / "report.md").read_text(encoding="utf-8"))
    assert dict(tables["Decisions"][1:]) == {"allow": "1/4 (25.0 %)", "deny": "3/4 (75.0 %)"}
    assert dict(tables["Refusals by signal"][1:]) == {
        "robots": "2/3 (66.7 %)", "tdmrep": "1/3 (33.3 %)", "noai": "1/3 (33.3 %)"}
    assert tables["Refusals by origin (top 20)"][1:] == [
        ["https://a.example", "2/2 (100.0 %)", "2/3 (66.7 %)"],
        ["https://b.example", "1/2 (50.0 %)", "1/3 (33.3 %)"],
    ]
    for name in ("audit_signals.png", "audit_origins.png"):
        data = (tmp_path / "out" / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 2000


def test_bad_inputs(tmp_path):
    survey = write_jsonl(tmp_path / "s.jsonl", wave("2026-01-01", WAVE1))
    audit = write_jsonl(tmp_path / "a.jsonl", [{"seq": 1, "hash": "x", "decision": "allow",
                                               "url": "https://a.example/"}])
    with pytest.raises(ReportError, match="mix"):
        build_report([survey, audit], tmp_path / "out")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(ReportError, match="no survey or audit record"):
        build_report([empty], tmp_path / "out")
    with pytest.raises(ReportError, match="cannot read"):
        build_report([tmp_path / "missing.jsonl"], tmp_path / "out")
    assert issubclass(ReportError, ValueError)


def test_unreadable_lines_are_skipped_and_said(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in wave("2026-01-01", WAVE1))
                    + "{not json\n[1, 2]\n", encoding="utf-8")
    report = build_report([path], tmp_path / "out")
    assert report["inputs"] == [{"file": "s.jsonl", "kind": "survey", "records": 3,
                                 "skipped_lines": 2}]
    assert "2 unreadable or unrecognised line(s) skipped." in (
        tmp_path / "out" / "report.md").read_text(encoding="utf-8")


def test_duplicate_dates_get_distinct_labels(tmp_path):
    a = write_jsonl(tmp_path / "2026-05-06_April.jsonl", wave("2026-05-06", WAVE1))
    b = write_jsonl(tmp_path / "2026-05-06_april.jsonl", wave("2026-05-06", WAVE2))
    report = build_report([a, b], tmp_path / "out")
    assert [w["label"] for w in report["figures"]["waves"]] == ["2026-05-06 (April)",
                                                                "2026-05-06 (april)"]


@pytest.mark.parametrize(("count", "of", "text", "percent"), [
    (47, 95, "47/95 (49.5 %)", 49.5),
    (0, 0, "0/0 (—)", None),
    (3, 3, "3/3 (100.0 %)", 100.0),
])
def test_fraction(count, of, text, percent):
    assert fraction(count, of) == {"count": count, "of": of, "percent": percent, "text": text}
