"""The pages people read, opened in a real browser: report.html (a survey time series and an
audit log), the transparency summary as HTML and about.html render in headless Chromium with
every chart image loaded, no console error and no network fetch; a full-page screenshot of each
is kept (pytest's tmp dir; also copied to $POLITE_ARTEFACTS when set).

Chromium is Debian's ``chromium`` package (``.ci/run`` installs it): missing, these tests fail
in CI (``CI`` set) and are skipped elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from crawler.audit.log import AuditWriter
from crawler.publish.report import PALETTE, build_report
from crawler.publish.transparency import build_transparency
from crawler.survey.archives import survey_from_dir

from .chromium import Browser, PageCheck, find_chromium, png_stats
from .conftest import ROOT, run_cli

NEWS = ROOT / "tests" / "data" / "news_top100_longitudinal.json"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    executable = find_chromium()
    if executable is None:
        message = "chromium is not installed (Debian: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must install it (.ci/run)")
        pytest.skip(message)
    browser = Browser(executable, tmp_path_factory.mktemp("chromium") / "profile")
    yield browser
    browser.close()


def keep(check: PageCheck) -> None:
    """Copy the screenshot to $POLITE_ARTEFACTS, when set."""
    target = os.environ.get("POLITE_ARTEFACTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(check.screenshot, Path(target) / check.screenshot.name)


def survey_series(root: Path) -> list[Path]:
    """Two dated waves of the bundled news data (the first 30 sites of the first and the last
    snapshot)."""
    data = json.loads(NEWS.read_text(encoding="utf-8"))
    files = []
    for snapshot in (data["snapshots"][0], data["snapshots"][-1]):
        directory = root / snapshot["date"]
        directory.mkdir(parents=True)
        for site in snapshot["sites"][:30]:
            host = site["fetched_url"].split("/")[2].lower()
            sha = site["robots_sha256"]
            (directory / f"{host}.txt").write_text(data["texts"][sha] if sha else "",
                                                   encoding="utf-8")
        path = root / f"{snapshot['date']}.jsonl"
        with open(path, "w", encoding="utf-8") as fh:
            for record in survey_from_dir(directory, date=snapshot["date"]):
                fh.write(json.dumps(record) + "\n")
        files.append(path)
    return files


def crawl_output(out: Path) -> Path:
    """A small crawl output directory: audit log, corpus, run.json."""
    out.mkdir(parents=True)
    ticks = iter(range(1000))
    writer = AuditWriter(out / "audit.jsonl", job="pages",
                         clock=lambda: f"2026-03-01T10:{next(ticks) // 60:02d}:"
                                       f"{next(ticks) % 60:02d}.000000Z")
    docs = []
    for i in range(12):
        url = f"https://site{i % 4}.example.org/p{i}"
        if i % 3 == 0:
            writer.write(url=url, decision="deny", policy_sha256="p" * 64,
                         reasons=[{"signal": "robots", "channel": "robots.txt",
                                   "rule": "Disallow: /"}])
            continue
        rec = writer.write(url=url, decision="allow", reasons=[], policy_sha256="p" * 64)
        docs.append({"url": url, "bytes": 100 * (i + 1), "content_type": "text/html",
                     "audit_seq": rec["seq"], "audit_hash": rec["hash"]})
    writer.close()
    (out / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (out / "run.json").write_text(json.dumps({
        "job": "pages", "user_agent": "PageBot/1.0 (+https://example.org/bot)",
        "purpose": "train-ai", "signals": ["robots", "tdmrep"], "honor_agents": []}))
    return out


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    root = tmp_path_factory.mktemp("pages")
    survey = build_report(survey_series(root / "waves"), root / "survey-report")
    audit_dir = crawl_output(root / "crawl")
    audit = build_report([audit_dir / "audit.jsonl"], root / "audit-report")
    build_transparency([audit_dir], root / "transparency")
    proc = run_cli("about", "--out", str(root / "about"), "--config",
                   str(ROOT / "configs" / "demo.yaml"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {"survey": (root / "survey-report" / "report.html", survey["charts"]),
            "audit": (root / "audit-report" / "report.html", audit["charts"]),
            "transparency": (root / "transparency" / "transparency.html", []),
            "about": (root / "about" / "about.html", [])}


@pytest.mark.parametrize("name", ["survey", "audit", "transparency", "about"])
def test_page_renders_in_chromium(browser, pages, name, tmp_path):
    page, charts = pages[name]
    check = browser.check(page, tmp_path / f"{name}.png")
    keep(check)
    assert check.problems() == [], f"{page.name}: {check.problems()}"
    assert check.title and check.text_length > 500
    # every chart image referenced loaded (a decoded image has a size) and none is missing
    assert sorted(i["src"] for i in check.images) == sorted(charts)
    assert all(i["width"] > 100 and i["height"] > 100 for i in check.images)
    stats = png_stats(check.screenshot)
    assert stats["width"] >= 1200 and stats["height"] >= 900
    assert stats["non_white"] > 0.01, "the screenshot is blank"
    if charts:
        # the charts are on screen, in their colours (not just loaded)
        first = tuple(int(PALETTE[0][i:i + 2], 16) for i in (1, 3, 5))
        assert first in stats["colours"]
        # the whole page, every chart one under another, is in the screenshot
        assert stats["height"] > 900 + 300 * len(charts)


def test_the_check_catches_broken_pages(browser, tmp_path):
    """The same check on pages that are broken: it must be able to fail."""
    (tmp_path / "ok.png").write_bytes((ROOT / "tests" / "data" / "README.md").read_bytes())
    broken = tmp_path / "broken.html"
    broken.write_text(
        "<!DOCTYPE html><html><head><title>broken</title></head><body><h1>Broken</h1>"
        '<img src="missing.png"><img src="ok.png"><img src="https://example.com/x.png">'
        "<script>console.error('boom'); undefined_function();</script></body></html>")
    check = browser.check(broken, tmp_path / "broken-shot.png")
    problems = "\n".join(check.problems())
    assert "boom" in problems and "undefined_function" in problems
    assert "network request: https://example.com/x.png" in problems
    assert set(check.broken_images) == {"missing.png", "ok.png", "https://example.com/x.png"}
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><head><title>b</title></head><body></body></html>")
    check = browser.check(blank, tmp_path / "blank-shot.png")
    assert check.problems() == []
    assert png_stats(check.screenshot)["non_white"] < 0.001
