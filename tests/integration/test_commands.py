"""The CLI commands end to end: demo, check, the Scrapy way, and the add-on in a foreign project."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from crawler.audit.log import verify_file
from crawler.demo.sites import demo_sites, html
from crawler.demo.web import LocalWeb, Page, Site

from .conftest import ROOT, read_jsonl, run_cli, write_config


def test_demo_prints_a_decision_table(tmp_path):
    out = tmp_path / "demo"
    proc = run_cli("demo", "--any-port", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = proc.stdout
    assert table.splitlines()[0].split()[:4] == ["SITE", "PATH", "DECISION", "SIGNAL"]
    rows = [line.split() for line in table.splitlines()[1:] if line and line[0] != " "]
    decided = {(r[0], r[1]): (r[2], r[3]) for r in rows if len(r) >= 4}
    assert decided[("robots-partial", "/private/diary.html")] == ("deny", "robots")
    assert decided[("robots-ai-block", "/")] == ("deny", "robots")
    assert decided[("robots-5xx", "/")] == ("deny", "network")
    assert decided[("tdm-file", "/reserved/novel.html")] == ("deny", "tdmrep")
    assert decided[("tdm-header", "/header-reserved.html")] == ("deny", "tdmrep")
    assert decided[("tdm-meta", "/meta-reserved.html")] == ("deny", "tdmrep")
    assert decided[("open", "/a.html")][0] == "allow"
    # pay per crawl: the page paid within the budget is collected, the charge shown; one over
    # max_price is refused unpaid
    assert decided[("pay-per-crawl", "/paid.html")] == ("allow", "-")
    paid_row = next(line for line in table.splitlines() if "/paid.html" in line)
    assert "paid: crawler-charged USD 0.01" in paid_row
    assert decided[("pay-per-crawl", "/expensive.html")] == ("deny", "payment-required")
    assert "USD 0.01 spent by the job so far" in proc.stderr
    # the site that answers only to a verified Web Bot Auth signature answers ours
    assert decided[("web-bot-auth", "/members.html")] == ("allow", "-")
    audit = [json.loads(line) for line in (out / "audit.jsonl").read_text().splitlines()]
    charges = [r["payment"] for r in audit if r.get("result") == "pay-charge"
               and r["payment"]["charged"]]
    assert [c["charged"] for c in charges] == ["USD 0.01"]
    assert "OK" in table and verify_file(out / "audit.jsonl").ok
    names = {s.name for s in demo_sites()}
    assert {r[0] for r in rows if len(r) >= 4} >= names - {"robots-ai-block"} | {"open"}


def test_check_prints_one_decision_per_url(tmp_path):
    sites = [Site("c", "check", {
        "/robots.txt": Page("User-agent: *\nDisallow: /no/\n", content_type="text/plain"),
        "/yes.html": Page(html("y", "fine")),
        "/hdr.html": Page(html("h", "SECRET"), headers=(("tdm-reservation", "1"),)),
        "/no/x.html": Page(html("n", "SECRET")),
    })]
    with LocalWeb(sites) as web:
        cfg = write_config(tmp_path / "c.yaml", seeds=[])
        o = web.origin("c")
        urls = [o + "/yes.html", o + "/no/x.html", o + "/hdr.html"]
        proc = run_cli("check", *urls, "--config", str(cfg))
        assert proc.returncode == 0, proc.stderr[-2000:]
        recs = [json.loads(line) for line in proc.stdout.splitlines()]
        assert {r["url"]: r["decision"] for r in recs} == {
            urls[0]: "allow", urls[1]: "deny", urls[2]: "deny"}
        assert all({"seq", "hash", "prev_hash", "policy_sha256", "reasons"} <= set(r)
                   for r in recs)
        assert "/no/x.html" not in web.paths("c")
        # --no-fetch: site-level only, the URL itself is never requested
        before = len(web.requests)
        proc = run_cli("check", o + "/hdr.html", "--no-fetch", "--config", str(cfg))
        (rec,) = [json.loads(line) for line in proc.stdout.splitlines()]
        assert rec["decision"] == "allow" and "not fetched" in rec["note"]
        assert "/hdr.html" not in [r.path for r in web.requests[before:]]
    assert not (tmp_path / "out" / "corpus.jsonl").exists()


def test_check_rejects_bad_urls():
    proc = run_cli("check", "ftp://example.org/")
    assert proc.returncode == 2 and "not an http(s) URL" in proc.stderr


def test_scrapy_crawl_corpus_runs_the_same_job(tmp_path):
    sites = [Site("s", "scrapy way", {
        "/robots.txt": Page("User-agent: *\nDisallow: /private/\n", content_type="text/plain"),
        "/": Page(html("s", '<a href="/a.html">a</a> <a href="/private/p.html">p</a>')),
        "/a.html": Page(html("a", "text a")),
        "/private/p.html": Page(html("p", "SECRET")),
    })]
    with LocalWeb(sites) as web:
        cfg = write_config(tmp_path / "s.yaml", seeds=[web.origin("s") + "/"])
        proc = subprocess.run([sys.executable, "-m", "scrapy", "crawl", "corpus", "-a",
                               f"config={cfg}"], cwd=ROOT, capture_output=True, text=True,
                              timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "/private/p.html" not in web.paths("s")
    corpus = read_jsonl(tmp_path / "out" / "corpus.jsonl")
    assert {d["url"].rsplit("/", 1)[1] for d in corpus} == {"", "a.html"}
    assert verify_file(tmp_path / "out" / "audit.jsonl").ok


def test_addon_drops_into_a_foreign_scrapy_project(tmp_path):
    spider = tmp_path / "foreign.py"
    spider.write_text(textwrap.dedent("""
        import scrapy

        class Foreign(scrapy.Spider):
            name = "foreign"
            custom_settings = {
                "ADDONS": {"crawler.addon.Addon": 100},
                "POLITE_USER_AGENT": "ForeignBot/2.0 (+https://example.org/foreign)",
                "POLITE_ALLOW_PRIVATE_NETWORKS": True,
                "POLITE_CORPUS_ENABLED": False,
                "DOWNLOAD_DELAY": 0,
            }

            def __init__(self, seed="", out="", **kw):
                super().__init__(**kw)
                self.start_urls = [seed]

            def parse(self, response):
                yield {"url": response.url, "audit": response.meta.get("polite_audit")}
                yield from response.follow_all(css="a::attr(href)")
    """))
    sites = [Site("f", "foreign", {
        "/robots.txt": Page("User-agent: ForeignBot\nDisallow: /x/\n", content_type="text/plain"),
        "/": Page(html("f", '<a href="/ok.html">ok</a> <a href="/x/no.html">no</a>')),
        "/ok.html": Page(html("ok", "ok")),
        "/x/no.html": Page(html("no", "SECRET")),
    })]
    out = tmp_path / "out"
    with LocalWeb(sites) as web:
        proc = subprocess.run(
            [sys.executable, "-m", "scrapy", "runspider", str(spider), "-a",
             f"seed={web.origin('f')}/", "-s", f"POLITE_OUTPUT_DIR={out}",
             "-o", str(tmp_path / "items.jsonl")],
            cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "/x/no.html" not in web.paths("f")
        assert {r.user_agent for r in web.requests} == {
            "ForeignBot/2.0 (+https://example.org/foreign)"}
    items = read_jsonl(tmp_path / "items.jsonl")
    assert len(items) == 2 and all(i["audit"]["seq"] >= 1 for i in items)
    assert verify_file(out / "audit.jsonl").ok
    assert not (out / "corpus.jsonl").exists()
