"""Reports (crawler.publish.report) from small fixed survey files and audit logs: tables, units and
denominators, 95 % intervals, dated waves, the glossary, charts, and report.json figures equal to
the printed ones."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from crawler.audit.log import AuditWriter
from crawler.policy.reservation import site_file
from crawler.publish.charts import percent_axis as _percent_axis
from crawler.publish.figures import top_ranked as _top
from crawler.publish.report import (
    MEASURES,
    PALETTE,
    ReportError,
    build_report,
    fraction,
    fraction_text,
    intervals_overlap,
    wilson_interval,
)
from crawler.survey.agents import load_agents
from crawler.survey.analysis import HomepageFetch, analyse_origin, analyse_robots_only

AGENTS = tuple(a for a in load_agents() if a.token in ("GPTBot", "CCBot", "ClaudeBot"))
PNG = b"\x89PNG\r\n\x1a\n"


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def wave(when: str, files: dict[str, tuple[int | None, bytes]], *,
         date: str | None = "auto") -> list[dict]:
    """Survey records of one wave, dated ``date`` (default: the day ``when`` starts with;
    None: undated, as an archive dated by file times)."""
    dated = ({"date": when[:10] if date == "auto" else date, "source": "given"}
             if date is not None else {"date": None, "source": "file times"})
    return [analyse_robots_only(host, body, surveyed_at=when, agents=AGENTS, status=status,
                                wave=dated)
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
    agents = tables["AI agents blocked by robots.txt: top 3 of 3 (2026-02-01)"]
    assert agents[0] == ["#", "agent", "operator", "full", "partial", "full or partial",
                         "/ disallowed", "named by a group"]
    rows = {row[1]: row for row in agents[1:]}
    two, one, none = ("2/3 (66.7 % [20.8–93.9])", "1/3 (33.3 % [6.1–79.2])",
                      "0/3 (0.0 % [0.0–56.1])")
    assert rows["GPTBot"] == ["2", "GPTBot", "OpenAI", two, none, two, two, one]
    assert rows["CCBot"][3:] == [two, none, two, two, one]
    assert rows["ClaudeBot"][3] == one
    assert rows["`*` (any crawler)"][3:6] == [one, none, one]
    # ranking: full blocks first, then name
    assert [row[1] for row in agents[2:]] == ["CCBot", "GPTBot", "ClaudeBot"]


def test_outcomes_and_first_wave_denominators(series):
    out, report = series
    waves = report["figures"]["waves"]
    assert [w["label"] for w in waves] == ["2026-01-01", "2026-02-01"]
    jan = waves[0]
    assert (jan["origins"], jan["evaluated"]) == (3, 2)  # the unreachable one is left out
    assert jan["robots_outcomes"]["unreachable"]["text"] == "1/3 (33.3 % [6.1–79.2])"
    tables = md_tables((out / "report.md").read_text(encoding="utf-8"))
    outcomes = dict(tables["robots.txt outcomes (2026-02-01)"][1:])
    assert outcomes["parsed"] == "3/3 (100.0 % [43.9–100.0])"
    assert outcomes["unreachable"] == "0/3 (0.0 % [0.0–56.1])"
    trend = tables["Trend: full blocks per agent"]
    assert trend[0][:2] == ["wave", "evaluated"]
    col = trend[0].index("CCBot")
    assert [row[col] for row in trend[1:]] == ["0/2 (0.0 % [0.0–65.8])",
                                               "2/3 (66.7 % [20.8–93.9])"]


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
    mechs = {m["name"]: m for m in report["figures"]["waves"][-1]["mechanisms"]}

    def counts(name):
        m = mechs[name]
        return (f"{m['present']['count']}/{m['present']['of']}",
                f"{m['reserves']['count']}/{m['reserves']['of']}")

    # three robots.txt measures, named apart; reserves is always within present (the old
    # "robots.txt AI rules: present 1/3, reserves 2/3" mixed a named-group count with a
    # count that included '*')
    assert counts("robots.txt: groups naming an AI agent") == ("1/3", "1/3")
    assert counts("robots.txt: the * group") == ("1/3", "1/3")  # offline: '*' Disallow: /
    assert counts("robots.txt: own or * group (AI agents)") == ("2/3", "2/3")
    assert counts("TDMRep") == ("1/2", "1/2")
    assert counts("ai.txt (Spawning)") == ("1/1", "1/1")  # 503 left out
    assert counts("Content-Usage (AIPREF)") == ("1/3", "1/3")
    assert counts("Content-Signal") == ("1/3", "0/3")
    assert counts("RSL licence") == ("1/3", "0/3")  # named, not fetched
    assert counts("noai / noimageai (header or meta)") == ("1/1", "1/1")
    rows = {row[0]: row[2:] for row in report["tables"]["mechanisms"]["rows"]}
    assert rows["TDMRep"] == ["1/2 (50.0 % [9.5–90.5])"] * 2
    assert (tmp_path / "out" / "mechanisms.png").read_bytes().startswith(PNG)
    assert "trend_agents.png" not in report["charts"]  # one wave: no time series


def reason(signal):
    return {"signal": signal, "channel": "robots.txt", "rule": "Disallow: /"}


def write_audit_log(path: Path) -> Path:
    """One URL refused three times while its robots.txt was unreachable (twice provisionally,
    then for good), one allowed, then erased, a preflight record, write-ahead records."""
    ticks = iter(range(100))
    writer = AuditWriter(path, job="t", clock=lambda: f"2026-11-27T21:00:{next(ticks):02d}Z")
    policy = "p" * 64

    def write(url, decision, signals=(), **extra):
        writer.write(url=url, decision=decision, reasons=[reason(s) for s in signals],
                     policy_sha256=policy, extra=extra or None)

    write("https://a.example/robots.txt", "deny", ["network"], preflight="robots.txt")
    write("https://a.example/x", "send")
    write("https://a.example/x", "deny", ["network"], undecided={"attempt": 1, "final": False})
    write("https://a.example/x", "deny", ["network"], undecided={"attempt": 2, "final": False})
    write("https://a.example/x", "deny", ["network"], undecided={"attempt": 3, "final": True})
    write("https://a.example/y", "deny", ["robots", "tdmrep"])
    write("https://b.example/z", "allow")
    write("https://b.example/w", "deny", ["noai"])
    write("https://b.example/v", "allow")
    write("https://b.example/v", "erase", ["registry"])
    write("https://c.example/p", "deny", ["network"], undecided={"attempt": 1, "final": False})
    writer.close()
    return path


def test_audit_log_report_counts_distinct_urls_by_final_decision(tmp_path):
    log = write_audit_log(tmp_path / "audit.jsonl")
    report = build_report([log], tmp_path / "out")
    assert report["kind"] == "audit"
    figures = report["figures"]
    urls = figures["urls"]
    assert urls["decided"] == 5  # a/x, a/y, b/z, b/w, b/v; c/p was only postponed
    assert (urls["allowed"]["count"], urls["refused"]["count"], urls["erased"]["count"],
            urls["postponed"]) == (1, 3, 1, 1)
    signals = figures["refusals_by_signal"]
    # a/x counts once as a URL, three times as a record (the "network 3/20")
    assert signals["network"]["urls"]["count"] == 1 and signals["network"]["urls"]["of"] == 3
    assert signals["network"]["records"]["count"] == 4  # c/p's provisional refusal too
    assert signals["network"]["records"]["of"] == 6  # deny records, preflight left out
    assert {s: f["urls"]["count"] for s, f in signals.items()} == {
        "network": 1, "robots": 1, "tdmrep": 1, "noai": 1}
    assert figures["records"]["by_decision"]["deny"]["count"] == 6
    assert figures["records"]["provisional_refusals"] == 3
    assert figures["records"]["preflight"] == {"deny": 1}

    tables = md_tables((tmp_path / "out" / "report.md").read_text(encoding="utf-8"))
    assert tables["URLs by final decision"][1:] == [
        ["allowed", "1/5 (20.0 % [3.6–62.4])"], ["refused", "3/5 (60.0 % [23.1–88.2])"],
        ["erased", "1/5 (20.0 % [3.6–62.4])"], ["postponed (not decided)", "1"]]
    by_signal = {row[0]: row[1:] for row in tables["Refusals by signal"][1:]}
    assert by_signal["network"] == ["1/3 (33.3 % [6.1–79.2])", "4/6 (66.7 % [30.0–90.3])"]
    assert tables["Refusals by signal"][0] == ["signal", "refused URLs citing it",
                                               "refusal records citing it"]
    assert tables["Refusals by origin (top 2 by refused URLs)"][1:] == [
        ["https://a.example", "2/2 (100.0 % [34.2–100.0])", "2/3 (66.7 % [20.8–93.9])"],
        ["https://b.example", "1/3 (33.3 % [6.1–79.2])", "1/3 (33.3 % [6.1–79.2])"],
    ]
    # records are a separate, labelled figure
    assert "Decision records (a separate unit: records, not URLs)" in tables
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "Unit: distinct URLs" in md and "Unit: audit records" in md
    for name in ("audit_outcomes.png", "audit_signals.png", "audit_origins.png"):
        data = (tmp_path / "out" / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 2000


def test_final_decision_is_the_latest_across_logs(tmp_path):
    """Two workers' logs read one after the other: record times order them."""
    late = AuditWriter(tmp_path / "w1.jsonl", job="t", clock=lambda: "2026-01-02T00:00:00Z")
    late.write(url="https://a.example/x", decision="allow", reasons=[], policy_sha256="p")
    late.close()
    early = AuditWriter(tmp_path / "w2.jsonl", job="t", clock=lambda: "2026-01-01T00:00:00Z")
    early.write(url="https://a.example/x", decision="deny", reasons=[reason("robots")],
                policy_sha256="p")
    early.close()
    report = build_report([tmp_path / "w1.jsonl", tmp_path / "w2.jsonl"], tmp_path / "out")
    assert report["figures"]["urls"]["allowed"]["count"] == 1
    assert report["figures"]["urls"]["refused"]["count"] == 0
    assert report["figures"]["records"]["decisions"] == 2


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


@pytest.mark.parametrize(("count", "of", "text", "percent", "ci"), [
    (47, 95, "47/95 (49.5 % [39.6–59.4])", 49.5, [39.6, 59.4]),
    (0, 0, "0/0 (—)", None, None),
    (3, 3, "3/3 (100.0 % [43.9–100.0])", 100.0, [43.9, 100.0]),
])
def test_fraction(count, of, text, percent, ci):
    assert fraction(count, of) == {"count": count, "of": of, "percent": percent, "ci95": ci,
                                   "text": text}
    assert fraction_text(count, of) == text


@pytest.mark.parametrize(("count", "of", "lo", "hi"), [
    # Wilson score intervals as published (Newcombe 1998, Table I; Brown, Cai & DasGupta 2001)
    (0, 10, 0.0, 0.2775),
    (1, 10, 0.0179, 0.4042),
    (5, 10, 0.2366, 0.7634),
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
])
def test_wilson_interval_known_values(count, of, lo, hi):
    got = wilson_interval(count, of)
    assert got is not None
    assert got[0] == pytest.approx(lo, abs=6e-5) and got[1] == pytest.approx(hi, abs=6e-5)
    assert wilson_interval(0, 0) is None


def test_intervals_overlap():
    assert intervals_overlap(fraction(10, 40), fraction(12, 40)) is True
    assert intervals_overlap(fraction(2, 40), fraction(30, 40)) is False
    assert intervals_overlap(fraction(0, 0), fraction(3, 4)) is None


# --------------------------------------------------------------------------- dated waves


JUNE = {"site.example": (200, b"User-agent: GPTBot\nDisallow: /\n"),
        "other.example": (200, b"User-agent: *\nDisallow:\n")}
JULY = {"site.example": (200, b"User-agent: *\nDisallow:\n"),  # dropped its GPTBot block
        "other.example": (200, b"User-agent: *\nDisallow:\n")}


def test_waves_are_ordered_by_their_recorded_date_not_by_file_times(tmp_path):
    """The issue's inverted trend: a "June" archive copied after "July" has the later file
    time; with the wave dates recorded, the report orders June first and the site that dropped
    its block reads as looser."""
    june = write_jsonl(tmp_path / "june.jsonl",
                       wave("2026-08-02T10:00:00Z", JUNE, date="2026-06-15"))
    july = write_jsonl(tmp_path / "july.jsonl",
                       wave("2026-08-01T10:00:00Z", JULY, date="2026-07-15"))
    report = build_report([july, june], tmp_path / "out")
    waves = report["figures"]["waves"]
    assert [(w["label"], w["date"], w["date_source"]) for w in waves] == [
        ("2026-06-15", "2026-06-15", "given"), ("2026-07-15", "2026-07-15", "given")]
    (change,) = report["figures"]["changes"]
    assert change["origin"] == "https://site.example"
    assert change["looser"] == ["GPTBot full→none"] and change["stricter"] == []


def test_undated_waves_make_no_time_series_unless_told_to_use_file_times(tmp_path):
    june = write_jsonl(tmp_path / "june.jsonl", wave("2026-08-02T10:00:00Z", JUNE, date=None))
    july = write_jsonl(tmp_path / "july.jsonl", wave("2026-08-01T10:00:00Z", JULY, date=None))
    with pytest.raises(ReportError) as caught:
        build_report([june, july], tmp_path / "out")
    message = str(caught.value)
    assert "\n" not in message
    assert "june.jsonl" in message and "july.jsonl" in message
    assert "--date" in message and "--use-file-times" in message
    # one undated wave alone is no time series: reported, labelled as such
    single = build_report([june], tmp_path / "single")
    assert single["figures"]["waves"][0]["label"] == "2026-08-02 (file times)"
    # told to: ordered by surveyed_at (here: the inverted order the issue describes), labelled
    told = build_report([june, july], tmp_path / "told", use_file_times=True)
    assert [w["label"] for w in told["figures"]["waves"]] == ["2026-08-01 (file times)",
                                                              "2026-08-02 (file times)"]
    assert "Undated wave(s)" in (tmp_path / "told" / "report.md").read_text(encoding="utf-8")
    # records written before waves were dated count as undated too
    legacy = [{k: v for k, v in r.items() if k != "wave"}
              for r in wave("2026-01-01T00:00:00Z", WAVE1)]
    old = write_jsonl(tmp_path / "old.jsonl", legacy)
    dated = write_jsonl(tmp_path / "dated.jsonl", wave("2026-02-01T00:00:00Z", WAVE2))
    with pytest.raises(ReportError, match="no wave date in old.jsonl:"):
        build_report([old, dated], tmp_path / "mixed")


def test_trend_changes_flag_overlapping_intervals(tmp_path):
    def many(n_blocked, n):
        return {f"s{i}.example": (200, b"User-agent: GPTBot\nDisallow: /\n" if i < n_blocked
                                  else b"User-agent: *\nDisallow:\n") for i in range(n)}

    waves = [write_jsonl(tmp_path / f"w{i}.jsonl", wave(f"2026-0{i + 1}-01T00:00:00Z", files))
             for i, files in enumerate([many(2, 40), many(3, 40), many(30, 40)])]
    report = build_report(waves, tmp_path / "out", track=["GPTBot"])
    changes = {(c["from"], c["to"]): c for c in report["figures"]["trend_changes"]}
    small = changes[("2026-01-01", "2026-02-01")]
    assert (small["points"], small["intervals_overlap"]) == (2.5, True)
    assert small["text"] == "+2.5 pts (intervals overlap)"
    big = changes[("2026-02-01", "2026-03-01")]
    assert (big["points"], big["intervals_overlap"]) == (67.5, False)
    assert changes[("2026-01-01", "2026-03-01")]["text"] == "+70.0 pts (intervals apart)"
    rows = report["tables"]["trend_changes"]["rows"]
    assert rows[-1] == ["first → latest: 2026-01-01 → 2026-03-01", "+70.0 pts (intervals apart)"]


# --------------------------------------------------------------------------- definitions


def test_glossary_defines_every_measure_used_once(series):
    out, report = series
    glossary = report["tables"]["glossary"]
    assert glossary["headers"] == ["measure", "unit", "definition", "denominator"]
    names = [row[0] for row in glossary["rows"]]
    assert len(names) == len(set(names))  # each measure defined once
    for key in ("agent_full", "agent_root", "robots_named_present", "robots_named_reserves",
                "robots_star_present", "change", "outcome_unreachable"):
        assert MEASURES[key].name in names
    assert "full" in names and "/ disallowed" in names
    assert all(row[1] for row in glossary["rows"])  # every measure has a unit
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "## Glossary: what each figure counts" in md
    # glossary text comes from the code that computes the figures
    from crawler.survey.analysis import BLOCK_LEVEL_DEFINITIONS
    assert BLOCK_LEVEL_DEFINITIONS["full"] in md


def test_reserves_never_exceeds_present_and_alike_measures_differ_in_name(series):
    _, report = series
    for w in report["figures"]["waves"]:
        for m in w["mechanisms"]:
            assert m["reserves"]["count"] <= m["present"]["count"], m
    names = [m.name for m in MEASURES.values()]
    assert len(names) == len(set(names))


# --------------------------------------------------------------------------- tables, charts


def test_no_tie_padding(tmp_path):
    # only GPTBot and CCBot are blocked anywhere: ClaudeBot (0 everywhere) is not padded in
    files = {"a.example": (200, b"User-agent: GPTBot\nUser-agent: CCBot\nDisallow: /\n"),
             "b.example": (200, b"User-agent: *\nDisallow:\n")}
    path = write_jsonl(tmp_path / "s.jsonl", wave("2026-01-01T00:00:00Z", files))
    report = build_report([path], tmp_path / "out")
    table = report["tables"]["agents"]
    assert [row[1] for row in table["rows"]] == ["`*` (any crawler)", "CCBot", "GPTBot"]
    assert "1 listed agents blocked at no origin are not listed" in table["note"]
    assert report["figures"]["agents_listed"] == {"shown": 2, "blocked_anywhere": 2,
                                                  "left_out_tied_at_cut": 0,
                                                  "blocked_nowhere": 1}
    # a tie across the cut is left out whole, never cut alphabetically
    cut = build_report([path], tmp_path / "cut", top=1)
    assert [row[1] for row in cut["tables"]["agents"]["rows"]] == ["`*` (any crawler)"]
    assert "2 more agents tied at the cut are not listed" in cut["tables"]["agents"]["note"]


def test_top_helper():
    items = [5, 4, 4, 4, 2, 1]
    assert _top(items, lambda x: x, 2) == ([5], 3)
    assert _top(items, lambda x: x, 4) == ([5, 4, 4, 4], 0)
    assert _top(items, lambda x: x, 10) == (items, 0)


def test_axes_are_scaled_to_the_data():
    end, ticks = _percent_axis(15.0)  # values around 15 % are not squashed into 0-100
    assert 15 < end < 25 and ticks[-1] <= 20
    end, ticks = _percent_axis(97.0)
    assert ticks[-1] == 100 and end >= 100


def test_charts_use_the_colour_blind_safe_palette(series):
    from matplotlib.image import imread

    out, _ = series
    pixels = imread(out / "agents.png")[:, :, :3].reshape(-1, 3)
    colours = {tuple(round(float(c) * 255) for c in px) for px in pixels}

    def rgb(hex_):
        return tuple(int(hex_[i:i + 2], 16) for i in (1, 3, 5))

    assert rgb(PALETTE[0]) in colours and rgb(PALETTE[1]) in colours
    assert (31, 119, 180) not in colours  # matplotlib's default blue


# -- pay per crawl: spend over time -------------------------------------------------------------


def test_spend_over_time_sums_each_currency_exactly(tmp_path):
    """3 charges of USD 0.01 and 1 of EUR 0.02 over two registrable domains and two days, as
    the real session writes them through the real funnel: one row per day and currency, a total
    per currency, never one across currencies; Decimal sums, no float anywhere."""
    from decimal import Decimal

    from tests.pay_log import write_paid_log

    write_paid_log(tmp_path / "audit.jsonl")
    report = build_report([tmp_path / "audit.jsonl"], tmp_path / "out")
    pay = report["figures"]["payments"]
    assert pay["records"] == {"pay-quote": 7, "pay-decision": 7, "pay-charge": 4}
    assert [(t["currency"], t["charged"], t["pages"], t["domains"]) for t in pay["totals"]] == [
        ("EUR", "0.02", 1, 1), ("USD", "0.03", 3, 2)]
    assert Decimal(pay["totals"][1]["charged"]) == Decimal("0.01") * 3  # exact
    assert [(d["day"], d["currency"], d["text"], d["pages"]) for d in pay["by_day"]] == [
        ("2026-12-01", "USD", "USD 0.02", 2), ("2026-12-02", "EUR", "EUR 0.02", 1),
        ("2026-12-02", "USD", "USD 0.01", 1)]
    assert pay["unreadable_charges"] == [] and pay["authorised_without_charge_record"] == []
    assert [(r["reason"], r["records"]) for r in pay["quotes"]["refused_by_reason"]] == [
        ("402 without a valid crawler-price", 1), ("price [price] over max_price [price]", 1)]
    assert [(s["origin"], s["action"]) for s in pay["stopped"]] == [
        ("https://blocked.example.net", "stop-origin")]

    def floats(value):
        if isinstance(value, float):
            yield value
        elif isinstance(value, dict):
            for v in value.values():
                yield from floats(v)
        elif isinstance(value, list):
            for v in value:
                yield from floats(v)

    assert list(floats(pay)) == []  # money is never a float in report.json

    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    tables = md_tables(md)
    assert tables["Spend over time (pay per crawl)"] == [
        ["day (UTC)", "currency", "charged", "pages charged"],
        ["2026-12-01", "USD", "USD 0.02", "2"], ["2026-12-02", "EUR", "EUR 0.02", "1"],
        ["2026-12-02", "USD", "USD 0.01", "1"], ["all days", "EUR", "EUR 0.02", "1"],
        ["all days", "USD", "USD 0.03", "3"]]
    assert "Charge records with an unreadable amount (not summed)" not in tables
    assert "2 price quote(s) refused; 1 stop(s)" in md
    assert "the pay-per-crawl tables after it count money and pages" in md
    glossary = {row[0] for row in tables["Glossary: what each figure counts"][1:]}
    assert {"charged", "pages charged"} <= glossary and "unreadable charge records" not in glossary
    # the chart: written, referenced, Okabe-Ito colours, one panel per currency
    assert "audit_spend.png" in report["charts"]
    assert "![Spend over time (pay per crawl)](audit_spend.png)" in md
    from matplotlib.image import imread

    pixels = imread(tmp_path / "out" / "audit_spend.png")[:, :, :3].reshape(-1, 3)
    colours = {tuple(round(float(c) * 255) for c in px) for px in pixels}
    assert {(0, 114, 178), (230, 159, 0)} <= colours  # PALETTE[0], PALETTE[1]
    # the other figures are untouched by the payment records (results, not decisions)
    assert report["figures"]["records"]["by_decision"]["allow"]["count"] == 1
    assert report["figures"]["urls"]["decided"] == 2


def test_unreadable_charge_amounts_are_listed_not_summed(tmp_path):
    """A charge record whose amount is malformed ("USD 1e3", a JSON float): shown as unreadable,
    left out of every total, no crash."""
    from tests.pay_log import write_paid_log

    write_paid_log(tmp_path / "audit.jsonl", hostile=True)
    report = build_report([tmp_path / "audit.jsonl"], tmp_path / "out")
    pay = report["figures"]["payments"]
    assert [(t["currency"], t["charged"], t["pages"]) for t in pay["totals"]] == [
        ("EUR", "0.02", 1), ("USD", "0.03", 3)]  # as without the bad records
    assert [(b["log"], b["value"], b["why"]) for b in pay["unreadable_charges"]] == [
        ("audit.jsonl", "USD 1e3", "exponent, NaN or Infinity"),
        ("audit.jsonl", "0.01", "not a string (float)")]
    tables = md_tables((tmp_path / "out" / "report.md").read_text(encoding="utf-8"))
    rows = tables["Charge records with an unreadable amount (not summed)"]
    assert rows[0] == ["log", "seq", "time", "origin", "amount as recorded",
                       "why it cannot be read"]
    assert [r[4] for r in rows[1:]] == ["USD 1e3", "0.01"]
    glossary = {row[0] for row in tables["Glossary: what each figure counts"][1:]}
    assert "unreadable charge records" in glossary


def test_a_log_without_payments_gives_the_report_it_gave_before(tmp_path):
    """No pay-per-crawl records: no payment figure, table, chart or glossary row, and the
    intro as before."""
    log = write_audit_log(tmp_path / "audit.jsonl")
    report = build_report([log], tmp_path / "out")
    assert "payments" not in report["figures"]
    assert list(report["tables"]) == ["url_outcomes", "refusals_by_signal",
                                      "refusals_by_origin", "records", "glossary"]
    assert report["charts"] == ["audit_outcomes.png", "audit_signals.png", "audit_origins.png"]
    assert not (tmp_path / "out" / "audit_spend.png").exists()
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "Unit of every table but the last: distinct URLs" in md
    assert "pay" not in md.lower().replace("payload", "")
    glossary = [row[0] for row in report["tables"]["glossary"]["rows"]]
    assert not {"charged", "pages charged", "unreadable charge records"} & set(glossary)


def test_payment_tally_keeps_logs_apart_and_counts_open_authorisations(tmp_path):
    """Ten charges of USD 0.10 add up to exactly USD 1.00 (a float sum would not); a ``ref``
    names a seq of its own log only; a payment authorised with no charge record (the crawl
    died) is shown apart, not in the totals."""
    from crawler.audit.log import iter_records
    from crawler.publish.tallies import PaymentTally
    from tests.pay_log import PayingCrawl

    logs = []
    for name in ("a", "b"):
        ticks = iter(range(1000))
        writer = AuditWriter(tmp_path / f"audit-{name}.jsonl", job="j",
                             clock=lambda: f"2026-12-0{1 + next(ticks) // 500}T00:00:00Z")
        crawl = PayingCrawl(writer, "USD", max_price="0.10")
        for i in range(5):
            crawl.paid_page(f"https://{name}.example.com/{i}", "USD 0.10")
        if name == "b":
            crawl.authorised_then_lost("https://b.example.com/lost", "USD 0.07")
        writer.close()
        logs.append(tmp_path / f"audit-{name}.jsonl")
    tally = PaymentTally()
    for log in logs:
        for rec in iter_records(log):
            tally.add(rec, log=str(log))
    pay = tally.to_json()
    assert [(t["text"], t["pages"], t["domains"]) for t in pay["totals"]] == [
        ("USD 1.00", 10, 1)]
    assert sum([0.1] * 10) != 1.0  # what a float total would have shown
    assert pay["authorised_without_charge_record"] == [
        {"domain": "example.com", "currency": "USD", "amount": "0.07", "text": "USD 0.07",
         "authorisations": 1}]
    merged = PaymentTally()
    merged.merge(tally)
    merged.merge(PaymentTally())
    assert merged.to_json() == pay


@pytest.mark.parametrize(("reason", "kind"), [
    ("price USD 9.00 over max_price USD 0.05", "price [price] over max_price [price]"),
    ("over the job budget (USD 1.00: USD 0.99 spent, USD 0.01 held)", "over the job budget"),
    ("crawler-error InvalidCrawlerMaxPrice (the price is over our maximum)",
     "crawler-error InvalidCrawlerMaxPrice"),
    ("unknown crawler-error 'x`\n|y' (refused)", "unknown crawler-error 'x??|y'"),
    ("402 without a valid crawler-price (a list of values (one price only))",
     "402 without a valid crawler-price"),
    ("crawler-error InternalError (Cloudflare failed): 3 retries exhausted",
     "crawler-error InternalError: 3 retries exhausted"),
    ("reserved (robots): paying never overrides a reservation",
     "reserved: paying never overrides a reservation"),
    ("not paying: charged USD 0.02, more than the crawler-exact-price USD 0.01",
     "not paying: charged [price], more than the crawler-exact-price [price]"),
    (None, "null"),
    ("", "(no reason)"),
])
def test_refusal_kinds(reason, kind):
    from crawler.publish.tallies import refusal_kind

    assert refusal_kind(reason) == kind


@pytest.mark.parametrize("payment", [
    None, "x", [], {}, {"origin": 7, "charged": "USD 0.01"},
    {"charged": {"amount": 1}}, {"charged": "USD -0.01"}, {"charged": "usd 0.01"},
    {"charged": "USD 0.01", "headers": {"crawler-charged": [1]}, "ref": "3"},
    {"action": "pay", "reserved": "lots"}, {"action": "refuse", "reason": ["x"]},
    {"action": "stop-origin", "reason": "`\x00|\n" * 50, "origin": "https://a.example\n"},
])
def test_hostile_payment_records_never_crash(tmp_path, payment):
    """Whatever a log holds under ``payment``: counted where readable, never a crash, never a
    float, every cell free of line breaks and backticks."""
    result = "pay-decision" if isinstance(payment, dict) and "action" in payment else "pay-charge"
    writer = AuditWriter(tmp_path / "audit.jsonl", job="j", clock=lambda: "2026-12-01T00:00:00Z")
    writer.write(url="https://a.example/x", decision="result", reasons=[], policy_sha256="p",
                 extra={"result": result, "payment": payment})
    writer.write(url="https://a.example/x", decision="result", reasons=[], policy_sha256="p",
                 extra={"result": "pay-quote", "payment": payment})
    writer.close()
    report = build_report([tmp_path / "audit.jsonl"], tmp_path / "out")
    pay = report["figures"]["payments"]
    text = json.dumps(pay)
    assert "\\n" not in text and "`" not in text
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "Spend over time (pay per crawl)" in md
    if result == "pay-charge" and payment not in (None, "x", [], {}):
        readable = payment.get("charged") == "USD 0.01"
        assert (len(pay["unreadable_charges"]), len(pay["totals"])) == (
            (0, 1) if readable else (1, 0))
