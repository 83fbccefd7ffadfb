"""`polite-crawl survey` online against the local web (every mechanism), resumed, offline from
a directory, and `polite-crawl report` on the result."""

from __future__ import annotations

import json

import pytest

from crawler.demo.sites import demo_sites
from crawler.demo.web import LocalWeb

from .conftest import read_jsonl, run_cli, write_config


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("survey")
    with LocalWeb(demo_sites()) as web:
        origins = tmp / "origins.txt"
        lines = [web.origin(n) for n in web.sites]
        origins.write_text("# the demo web\n" + "\n".join(lines) + "\n" + lines[0] + "\n")
        cfg = write_config(tmp / "c.yaml", seeds=[], honor_agents=[])
        out = tmp / "survey.jsonl"
        first = run_cli("survey", str(origins), "--out", str(out), "--config", str(cfg))
        asked = len(web.requests)
        again = run_cli("survey", str(origins), "--out", str(out), "--config", str(cfg))
        asked_again = len(web.requests) - asked
        names = {web.origin(n): n for n in web.sites}
    recs = {names[r["origin"]]: r for r in read_jsonl(out)}
    return {"first": first, "again": again, "asked_again": asked_again, "recs": recs,
            "out": out, "tmp": tmp, "web": web}


def test_one_line_per_origin_and_resumable(survey):
    assert survey["first"].returncode == 0, survey["first"].stderr[-2000:]
    sites = len(demo_sites())  # 16: one line per origin of the demo web
    assert len(survey["recs"]) == sites == len(survey["out"].read_text().splitlines())
    assert survey["again"].returncode == 0
    assert survey["asked_again"] == 0  # everything was there: nothing fetched again


def test_fields_per_mechanism(survey):
    r = survey["recs"]
    assert r["robots-ai-block"]["agents"]["GPTBot"] == {"block": "full", "explicit": True,
                                                        "root": True}
    assert r["robots-ai-block"]["agents"]["*"]["block"] == "none"
    assert r["robots-5xx"]["robots"]["outcome"] == "unreachable"
    assert r["robots-5xx"]["agents"] is None
    assert r["robots-404"]["robots"]["outcome"] == "unavailable"
    assert r["robots-partial"]["robots"]["status"] == 200
    assert len(r["open"]["robots"]["sha256"]) == 64
    assert r["tdm-file"]["tdmrep"] is not None and r["open"]["tdmrep"] is None
    assert r["ai-txt"]["ai_txt"] is not None and r["open"]["ai_txt"] is None
    assert r["content-usage"]["content_usage"] is not None
    assert r["content-signal"]["content_signal"] is not None
    assert r["rsl"]["rsl"] is not None
    for rec in r.values():
        assert rec["surveyed_at"].endswith("Z") and rec["origin"].startswith("http://127.")
    text = json.dumps(r["content-signal"]["content_signal"])
    assert "ai-train" in text


def test_report_from_the_survey(survey, tmp_path):
    proc = run_cli("report", str(survey["out"]), "--out", str(tmp_path / "rep"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "GPTBot" in md and "/15" in md
    assert json.loads((tmp_path / "rep" / "report.json").read_text())
    pngs = list((tmp_path / "rep").glob("*.png"))
    assert pngs and all(p.stat().st_size > 1000 for p in pngs)


def test_report_from_an_audit_log(tmp_path):
    with LocalWeb([s for s in demo_sites() if s.name in ("open", "tdm-file")]) as web:
        cfg = write_config(tmp_path / "c.yaml", seeds=[web.origin(n) + "/" for n in web.sites])
        assert run_cli("run", str(cfg)).returncode == 0
    proc = run_cli("report", str(tmp_path / "out" / "audit.jsonl"), "--out",
                   str(tmp_path / "rep"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "tdmrep" in (tmp_path / "rep" / "report.md").read_text()


def test_offline_survey_from_dir(tmp_path):
    d = tmp_path / "robots"
    d.mkdir()
    (d / "a.example.txt").write_text("User-agent: GPTBot\nUser-agent: CCBot\nDisallow: /\n")
    (d / "b.example.txt").write_text("<html><body>Not found</body></html>")
    out = tmp_path / "s.jsonl"
    proc = run_cli("survey", "--from-dir", str(d), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    recs = {r["origin"]: r for r in read_jsonl(out)}
    assert recs["https://a.example"]["agents"]["CCBot"]["block"] == "full"
    assert recs["https://b.example"]["robots"]["html"] is True


def test_survey_usage_errors(tmp_path):
    assert run_cli("survey", "--out", str(tmp_path / "x")).returncode == 2
    assert run_cli("survey", str(tmp_path / "none.txt"), "--out", "x").returncode == 2
    assert run_cli("report", str(tmp_path / "none.jsonl"), "--out", "x").returncode == 2


# -- dated waves, retries ------------------------------------------------------------------------


def test_retry_failed_and_force(tmp_path):
    """The issue's case: origins refused by the network guard are recorded as failed; with the
    config fixed, a plain re-run surveys nothing, --retry-failed surveys them again, --force
    everything; every record carries the wave's date."""
    with LocalWeb([s for s in demo_sites() if s.name in ("open", "robots-ai-block")]) as web:
        origins = tmp_path / "origins.txt"
        origins.write_text("".join(web.origin(n) + "\n" for n in web.sites))
        guarded = write_config(tmp_path / "guarded.yaml", seeds=[], honor_agents=[],
                               allow_private_networks=False)
        fixed = write_config(tmp_path / "fixed.yaml", seeds=[], honor_agents=[])
        out = tmp_path / "s.jsonl"

        def survey(cfg, *flags):
            proc = run_cli("survey", str(origins), "--out", str(out), "--config", str(cfg),
                           "--date", "2026-06-15", *flags)
            assert proc.returncode == 0, proc.stderr[-2000:]
            return proc.stderr

        assert "2 origins surveyed this run (2 listed)" in survey(guarded)
        assert all(r["robots"]["outcome"] == "unreachable" for r in read_jsonl(out))
        assert "0 origins surveyed this run (2 listed)" in survey(fixed)
        assert "2 origins surveyed this run (2 listed)" in survey(fixed, "--retry-failed")
        assert "0 origins surveyed this run" in survey(fixed, "--retry-failed")  # none failed
        assert "2 origins surveyed this run" in survey(fixed, "--force")
        recs = read_jsonl(out)
        assert len(recs) == 6
        assert {json.dumps(r["wave"]) for r in recs} == {
            json.dumps({"date": "2026-06-15", "source": "given"})}
        # another wave into the same file is refused, with one line
        proc = run_cli("survey", str(origins), "--out", str(out), "--config", str(fixed),
                       "--date", "2026-07-15")
        assert proc.returncode == 2
        assert proc.stderr.strip().count("\n") == 0 and "2026-06-15" in proc.stderr
    rep = run_cli("report", str(out), "--out", str(tmp_path / "rep"))
    assert rep.returncode == 0, rep.stderr[-2000:]
    waves = json.loads((tmp_path / "rep" / "report.json").read_text())["figures"]["waves"]
    # the last record of each origin counts: both parsed now
    assert waves[0]["origins"] == 2 and waves[0]["robots_outcomes"]["parsed"]["count"] == 2
    assert waves[0]["date"] == "2026-06-15"


def test_offline_waves_dated_and_undated(tmp_path):
    archive = tmp_path / "archive"
    for month, body in (("2026-06", "User-agent: GPTBot\nDisallow: /\n"),
                        ("2026-07", "User-agent: *\nDisallow:\n")):
        (archive / month).mkdir(parents=True)
        (archive / month / "a.example.txt").write_text(body)
    # the README's archive/2026-06/ is no date: without --date the wave is undated ...
    proc = run_cli("survey", "--from-dir", str(archive / "2026-06"), "--out",
                   str(tmp_path / "u6.jsonl"))
    assert proc.returncode == 0 and "--date" in proc.stderr
    proc = run_cli("survey", "--from-dir", str(archive / "2026-07"), "--out",
                   str(tmp_path / "u7.jsonl"))
    assert proc.returncode == 0
    # ... and a time series of undated waves is refused with one line, unless told
    proc = run_cli("report", str(tmp_path / "u6.jsonl"), str(tmp_path / "u7.jsonl"), "--out",
                   str(tmp_path / "r0"))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--use-file-times" in proc.stderr
    assert not (tmp_path / "r0" / "report.md").exists()
    assert run_cli("report", str(tmp_path / "u6.jsonl"), str(tmp_path / "u7.jsonl"), "--out",
                   str(tmp_path / "r1"), "--use-file-times").returncode == 0
    # with --date: dated waves, ordered by date whatever the order given
    for month in ("2026-06", "2026-07"):
        proc = run_cli("survey", "--from-dir", str(archive / month), "--date", f"{month}-15",
                       "--out", str(tmp_path / f"{month}.jsonl"))
        assert proc.returncode == 0, proc.stderr
    proc = run_cli("report", str(tmp_path / "2026-07.jsonl"), str(tmp_path / "2026-06.jsonl"),
                   "--out", str(tmp_path / "r2"))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "r2" / "report.json").read_text())
    assert [w["date"] for w in report["figures"]["waves"]] == ["2026-06-15", "2026-07-15"]
    (change,) = report["figures"]["changes"]
    assert "GPTBot full→none" in change["looser"]


def test_survey_flag_errors(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    for flags in (["--date", "2026-13-01"], ["--date", "June"], ["--retry-failed"],
                  ["--force"]):
        proc = run_cli("survey", "--from-dir", str(d), "--out", str(tmp_path / "x"), *flags)
        assert proc.returncode == 2, flags
        assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
