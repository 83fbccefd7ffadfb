"""End-to-end crawls against a real multi-site web on 127.0.0.1.

What was and was not requested is read from the server's own request log.
"""

from __future__ import annotations

import itertools

import pytest

from crawler.audit.log import verify_file
from crawler.demo.sites import demo_sites, html
from crawler.demo.web import LocalWeb, Page, Site

from .conftest import read_jsonl, run_cli, write_config


def extra_sites() -> list[Site]:
    txt = "text/plain"
    hops = {f"/hop{i}": Page(b"", status=301, headers=(("Location", f"/hop{i + 1}"),))
            for i in range(1, 4)}
    return [
        Site("robots-redirect", "robots.txt reached after 4 redirects", {
            "/robots.txt": Page(b"", status=301, headers=(("Location", "/hop1"),)),
            **hops,
            "/hop4": Page("User-agent: *\nDisallow: /blocked/\n", content_type=txt),
            "/": Page(html("R", '<a href="/ok.html">ok</a> <a href="/blocked/x.html">x</a>')),
            "/ok.html": Page(html("ok", "fine")),
            "/blocked/x.html": Page(html("x", "SECRET-robots-redirect-x")),
        }),
        Site("robots-loop", "robots.txt redirects forever", {
            "/robots.txt": Page(b"", status=302, headers=(("Location", "/robots.txt?again"),)),
            "/": Page(html("loop", "SECRET-robots-loop-index")),
        }),
        Site("tdm-5xx", "tdmrep.json answers 500", {
            "/robots.txt": Page("User-agent: *\nAllow: /\n", content_type=txt),
            "/.well-known/tdmrep.json": Page(b"oops", status=500, content_type=txt),
            "/": Page(html("tdm down", "SECRET-tdm-5xx-index")),
        }),
        Site("garbage-robots", "robots.txt is binary garbage", {
            "/robots.txt": Page(bytes(range(256)) * 50 + b"\x00\xff" * 1000,
                                content_type="application/octet-stream"),
            "/": Page(html("garbage", "collected despite garbage robots")),
        }),
        Site("location-200", "a 200 carrying a Location header and a reservation", {
            "/robots.txt": Page("User-agent: *\nAllow: /\n", content_type=txt),
            "/": Page(html("l", '<a href="/trick.html">t</a>')),
            "/trick.html": Page(html("t", "SECRET-location-200"), headers=(
                ("Location", "/elsewhere"), ("tdm-reservation", "1"))),
        }),
        Site("redirect-out", "a page redirects to a reserved page on another site", {
            "/robots.txt": Page("User-agent: *\nAllow: /\n", content_type=txt),
            "/": Page(html("ro", '<a href="/go">go</a>')),
        }),
    ]


@pytest.fixture(scope="module")
def crawl(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("crawl")
    sites = demo_sites() + extra_sites()
    web = LocalWeb(sites).start()
    try:
        # a redirect from one site to a path another site's robots.txt reserves
        target = web.origin("robots-partial") + "/private/diary.html"
        web.sites["redirect-out"].pages["/go"] = Page(b"", status=302,
                                                      headers=(("Location", target),))
        cfg = write_config(tmp / "job.yaml", seeds=[web.origin(n) + "/" for n in web.sites])
        proc = run_cli("run", str(cfg))
    finally:
        web.stop()
    out = tmp / "out"
    return {"web": web, "proc": proc, "out": out,
            "audit": read_jsonl(out / "audit.jsonl"), "corpus": read_jsonl(out / "corpus.jsonl")}


def test_crawl_succeeds_and_log_verifies(crawl):
    assert crawl["proc"].returncode == 0, crawl["proc"].stderr[-3000:]
    assert verify_file(crawl["out"] / "audit.jsonl").ok
    assert run_cli("audit", "verify", str(crawl["out"] / "audit.jsonl")).returncode == 0


NEVER_REQUESTED = [
    ("robots-partial", "/private/diary.html"),
    ("robots-ai-block", "/"),
    ("robots-ai-block", "/article.html"),
    ("robots-5xx", "/"),
    ("tdm-file", "/reserved/novel.html"),
    ("robots-redirect", "/blocked/x.html"),
    ("robots-loop", "/"),
    ("tdm-5xx", "/"),
    ("ai-txt", "/notes.txt"),
    ("ai-txt", "/gallery/a.html"),
    ("content-usage", "/novels/one.html"),
    ("content-signal", "/"),
    ("content-signal", "/news.html"),
    ("rsl", "/premium/story.html"),
]


@pytest.mark.parametrize("site, path", NEVER_REQUESTED)
def test_reserved_urls_are_never_requested(crawl, site, path):
    assert path not in crawl["web"].paths(site)


def test_robots_txt_comes_first_and_once_per_origin(crawl):
    web = crawl["web"]
    for name in web.sites:
        paths = web.paths(name)
        assert paths, name
        assert paths[0] == "/robots.txt", (name, paths)
        if name not in ("robots-5xx", "robots-loop"):  # retried / looping by design
            assert paths.count("/robots.txt") == 1, (name, paths)
    # an unreachable robots.txt is asked again after the backoff, once per retry, no more
    assert web.paths("robots-5xx").count("/robots.txt") == 3
    assert web.paths("tdm-5xx").count("/.well-known/tdmrep.json") == 3


def test_tdmrep_file_fetched_once_per_origin_after_robots(crawl):
    web = crawl["web"]
    for name in ("open", "tdm-file", "tdm-header", "tdm-meta", "robots-404"):
        paths = web.paths(name)
        assert paths.count("/.well-known/tdmrep.json") == 1, (name, paths)
        assert paths.index("/.well-known/tdmrep.json") == 1


def test_header_reservation_stops_the_download(crawl):
    web = crawl["web"]
    assert "/header-reserved.html" in web.paths("tdm-header")  # asked: headers are needed
    assert ("tdm-header", "/header-reserved.html") not in web.completed  # body never sent
    assert ("tdm-header", "/ok.html") in web.completed


def test_no_refused_text_anywhere_in_output(crawl):
    for f in crawl["out"].rglob("*"):
        if f.is_file():
            assert b"SECRET-" not in f.read_bytes(), f


DECIDED = ("allow", "deny", "erase")


def by_url(records):
    """The decisions about each URL (write-ahead ``send``/``result`` records left out)."""
    out = {}
    for r in records:
        if r["decision"] in DECIDED:
            out.setdefault(r["url"], []).append(r)
    return out


def test_every_decision_has_evidence(crawl):
    web, recs = crawl["web"], by_url(crawl["audit"])

    def only(site, path):
        rs = recs[web.origin(site) + path]
        assert len(rs) == 1, rs
        return rs[0]

    r = only("robots-partial", "/private/diary.html")
    assert r["decision"] == "deny"
    (reason,) = r["reasons"]
    assert reason["signal"] == "robots" and reason["channel"] == "robots.txt"
    assert reason["rule"] == "Disallow: /private/ (line 5)"
    assert reason["agent"] == "PoliteDemoBot"
    assert reason["source"] == web.origin("robots-partial") + "/robots.txt"
    assert len(reason["source_sha256"]) == 64

    r = only("robots-ai-block", "/")
    assert r["decision"] == "deny" and r["reasons"][0]["agent"] == "GPTBot"
    assert r["reasons"][0]["rule"] == "Disallow: / (line 2)"

    for site, channel, why in (("robots-5xx", "robots.txt", "503"),
                               ("robots-loop", "robots.txt", "redirect"),
                               ("tdm-5xx", "tdmrep.json", "500")):
        rs = recs[web.origin(site) + "/"]
        assert [r["undecided"]["attempt"] for r in rs] == [1, 2, 3], rs
        assert [r["undecided"]["final"] for r in rs] == [False, False, True]
        for r in rs:
            assert r["decision"] == "deny"
            assert r["reasons"][0]["signal"] == "network"
            assert r["reasons"][0]["channel"] == channel and why in r["reasons"][0]["rule"]

    r = only("tdm-file", "/reserved/novel.html")
    assert r["reasons"][0]["signal"] == "tdmrep" and r["reasons"][0]["channel"] == "file"
    r = only("tdm-header", "/header-reserved.html")
    assert r["reasons"][0]["signal"] == "tdmrep" and r["reasons"][0]["channel"] == "header"
    assert r["stage"] == "headers"
    r = only("tdm-meta", "/meta-reserved.html")
    assert r["reasons"][0]["signal"] == "tdmrep" and r["reasons"][0]["channel"] == "meta"
    assert r["stage"] == "document"

    r = only("robots-redirect", "/blocked/x.html")
    assert r["reasons"][0]["rule"] == "Disallow: /blocked/ (line 2)"

    r = only("open", "/a.html")
    assert r["decision"] == "allow" and r["reasons"] == []
    signals = {(c["signal"], c["outcome"]) for c in r["checks"]}
    assert ("robots", "allow") in signals and ("tdmrep", "unset") in signals


SIGNAL_CASES = [
    # site, path, signal, channel, stage, words in the rule
    ("noai-header", "/noai.html", "noai", "header", "headers", "X-Robots-Tag: noai"),
    ("noai-header", "/photo", "noai", "header", "headers", "noimageai"),
    ("noai-meta", "/robots-meta.html", "noai", "meta", "document", 'content="noai, noimageai"'),
    ("noai-meta", "/token-meta.html", "noai", "meta", "document", "politedemobot"),
    ("ai-txt", "/notes.txt", "ai-txt", "file", "request", "Disallow: *.txt"),
    ("ai-txt", "/gallery/a.html", "ai-txt", "file", "request", "Disallow: /gallery/"),
    ("content-usage", "/novels/one.html", "content-usage", "robots.txt", "request",
     "Content-Usage: /novels/ train-ai=n"),
    ("content-usage", "/header.html", "content-usage", "header", "headers", "train-ai=n"),
    ("content-signal", "/", "content-signal", "robots.txt", "request", "ai-train=no"),
    ("rsl", "/premium/story.html", "rsl", "robots.txt", "request", "prohibits usage ai-train"),
    ("rsl", "/linked.html", "rsl", "header", "response", "ai-all"),
    # no payment: config: a 402 is a refusal (the quote read at the headers)
    ("pay-per-crawl", "/paid.html", "payment-required", "header", "headers", "USD 0.01"),
    ("pay-per-crawl", "/expensive.html", "payment-required", "header", "headers", "USD 0.50"),
    # an unsigned request to the site that answers only verified bots
    ("web-bot-auth", "/", "payment-required", "status", "response", "401"),
    # headers not judged while downloading are judged before the body is used
    ("location-200", "/trick.html", "tdmrep", "header", "response", "tdm-reservation: 1"),
]


@pytest.mark.parametrize("site, path, signal, channel, stage, words", SIGNAL_CASES)
def test_each_signal_denies_at_its_stage(crawl, site, path, signal, channel, stage, words):
    web, recs = crawl["web"], by_url(crawl["audit"])
    (rec,) = recs[web.origin(site) + path]
    assert rec["decision"] == "deny" and rec["stage"] == stage
    assert [(r["signal"], r["channel"]) for r in rec["reasons"]] == [(signal, channel)]
    assert words in rec["reasons"][0]["rule"]
    if signal not in ("robots", "tdmrep"):  # the statement-based signals say what bound
        assert rec["reasons"][0]["detail"].startswith("binds train-ai")


def test_statements_that_do_not_bind_are_recorded_but_allow(crawl):
    web, recs = crawl["web"], by_url(crawl["audit"])
    (rec,) = recs[web.origin("noai-header") + "/otherbot.html"]
    assert rec["decision"] == "allow"
    (rec,) = recs[web.origin("noai-header") + "/page-noimageai.html"]
    assert rec["decision"] == "allow"
    ev = [c for c in rec["checks"] if c["signal"] == "noai"]
    assert ev and ev[0]["outcome"] == "unset" and "noimageai" in ev[0]["detail"]
    (rec,) = recs[web.origin("rsl") + "/free.html"]
    ev = [c for c in rec["checks"] if c["signal"] == "rsl"]
    assert ev[0]["outcome"] == "allow" and len(ev[0]["source_sha256"]) == 64


def test_per_origin_files_fetched_once_and_licences_once(crawl):
    web = crawl["web"]
    paths = web.paths("rsl")
    assert paths.count("/license.xml") == 1 and paths.count("/page-license.xml") == 1
    assert paths.count("/ai.txt") == 1 and paths.count("/robots.txt") == 1
    assert web.paths("ai-txt").count("/ai.txt") == 1


def test_redirect_into_a_reserved_path_is_refused(crawl):
    web, recs = crawl["web"], by_url(crawl["audit"])
    target = web.origin("robots-partial") + "/private/diary.html"
    assert all(r["decision"] == "deny" for r in recs[target])


def test_corpus_has_exactly_the_allowed_documents_with_provenance(crawl):
    web = crawl["web"]
    audit = {r["seq"]: r for r in crawl["audit"]}
    urls = {d["url"] for d in crawl["corpus"]}
    expected = {web.origin("open") + p for p in ("/", "/a.html", "/b.html", "/notes.txt")}
    expected |= {web.origin("robots-partial") + p for p in ("/", "/public.html")}
    expected |= {web.origin("tdm-file") + p for p in ("/", "/free.html")}
    expected |= {web.origin("tdm-header") + p for p in ("/", "/ok.html")}
    expected |= {web.origin("tdm-meta") + p for p in ("/", "/meta-free.html")}
    expected |= {web.origin("robots-404") + p for p in ("/", "/page.html")}
    expected |= {web.origin("robots-redirect") + p for p in ("/", "/ok.html")}
    expected |= {web.origin("garbage-robots") + "/", web.origin("redirect-out") + "/"}
    expected |= {web.origin("noai-header") + p
                 for p in ("/", "/otherbot.html", "/page-noimageai.html")}
    expected |= {web.origin("noai-meta") + p for p in ("/", "/noindex.html")}
    expected |= {web.origin("ai-txt") + p for p in ("/", "/essay.html")}
    expected |= {web.origin("content-usage") + p for p in ("/", "/blog.html")}
    expected |= {web.origin("rsl") + p for p in ("/", "/free.html")}
    expected |= {web.origin("pay-per-crawl") + "/", web.origin("location-200") + "/"}
    assert urls == expected
    for doc in crawl["corpus"]:
        rec = audit[doc["audit_seq"]]
        assert rec["decision"] == "allow" and rec["url"] == doc["url"]
        assert rec["hash"] == doc["audit_hash"]
        assert len(doc["sha256"]) == 64 and doc["fetched_at"].endswith("Z")
        assert doc["status"] == 200 and doc["content_type"]
        assert doc.get("text") is not None


def test_stats_mirror_decisions(crawl):
    err = crawl["proc"].stderr
    denies = sum(1 for r in crawl["audit"] if r["decision"] == "deny")
    assert f"'polite/decision/deny': {denies}" in err
    assert "'polite/decision/deny/robots'" in err and "'polite/decision/deny/tdmrep'" in err


def test_honest_user_agent_on_every_request(crawl):
    assert {r.user_agent for r in crawl["web"].requests} == {
        "PoliteDemoBot/1.0 (+https://example.org/bot)"}


def test_private_targets_refused_without_a_single_request(tmp_path):
    sites = [Site("s", "plain", {"/": Page(html("s", "SECRET-private"))})]
    with LocalWeb(sites) as web:
        cfg = write_config(tmp_path / "job.yaml", allow_private_networks=False,
                           seeds=[web.origin("s") + "/", "http://localhost:1/x"])
        proc = run_cli("run", str(cfg))
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert web.requests == []
    recs = read_jsonl(tmp_path / "out" / "audit.jsonl")
    assert len(recs) == 2
    assert all(r["decision"] == "deny" and r["reasons"][0]["signal"] == "network" for r in recs)
    assert "loopback" in recs[0]["reasons"][0]["rule"]


def test_site_cache_expires_and_refetches(tmp_path):
    pages = {"/robots.txt": Page("User-agent: *\nAllow: /\n", content_type="text/plain"),
             "/": Page(html("slow", " ".join(f'<a href="/p{i}">p</a>' for i in range(4))))}
    pages.update({f"/p{i}": Page(html("p", "x"), delay=0.4) for i in range(4)})
    with LocalWeb([Site("slow", "slow pages", pages)]) as web:
        cfg = write_config(tmp_path / "job.yaml", seeds=[web.origin("slow") + "/"],
                           settings={"POLITE_SITE_CACHE_TTL": 0.5, "CONCURRENT_REQUESTS": 1})
        proc = run_cli("run", str(cfg))
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert web.paths("slow").count("/robots.txt") >= 2


def test_crawl_delay_is_applied_per_origin(tmp_path):
    pages = {"/robots.txt": Page("User-agent: *\nCrawl-delay: 0.3\n", content_type="text/plain"),
             "/": Page(html("cd", " ".join(f'<a href="/p{i}">p</a>' for i in range(5))))}
    pages.update({f"/p{i}": Page(html("p", "x")) for i in range(5)})
    with LocalWeb([Site("cd", "crawl delay", pages)]) as web:
        cfg = write_config(tmp_path / "job.yaml", seeds=[web.origin("cd") + "/"])
        proc = run_cli("run", str(cfg))
        assert proc.returncode == 0, proc.stderr[-2000:]
        times = [r.time for r in web.requests if r.path.startswith("/p")]
    assert len(times) == 5
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # the server notes arrival times: the first of two requests can be noted late by a busy
    # machine (seen: 0.282 s under a full test load), so allow 10 % below the 0.3 s the crawler
    # waits between sends; without the Crawl-delay the gaps are the config's 0.05 s
    assert min(gaps) >= 0.27, gaps


def test_guard_holds_after_redirects_and_for_links(tmp_path):
    """Only the exempt origin may be fetched: a redirect or a link elsewhere is refused unsent."""
    inner = [Site("inner", "never to be reached", {"/": Page(html("in", "SECRET-inner"))})]
    with LocalWeb(inner) as hidden:
        target = hidden.origin("inner") + "/"
        outer = [Site("outer", "exempt", {
            "/robots.txt": Page("User-agent: *\nAllow: /\n", content_type="text/plain"),
            "/": Page(html("o", '<a href="/jump">j</a> <a href="http://169.254.169.254/x">m</a>'
                           f' <a href="{target}">i</a>')),
            "/jump": Page(b"", status=302, headers=(("Location", target),)),
        })]
        with LocalWeb(outer) as web:
            cfg = write_config(
                tmp_path / "job.yaml", allow_private_networks=False, follow="same-host",
                seeds=[web.origin("outer") + "/"],
                settings={"POLITE_ALLOWED_PRIVATE_ORIGINS": [web.origin("outer")]})
            proc = run_cli("run", str(cfg))
            assert proc.returncode == 0, proc.stderr[-2000:]
            assert "/jump" in web.paths("outer")
        assert hidden.requests == []
    recs = {r["url"]: r for r in read_jsonl(tmp_path / "out" / "audit.jsonl")}
    assert recs[target]["decision"] == "deny"
    assert recs[target]["reasons"][0]["signal"] == "network"
    assert "loopback" in recs[target]["reasons"][0]["rule"]


def test_preflight_refused_by_the_guard_says_so(tmp_path):
    """robots.txt of an exempt origin redirects to a private address: not fetched, and the
    evidence says the network guard refused it (not 'reserved at the headers')."""
    inner = [Site("inner", "never to be reached", {
        "/robots.txt": Page("User-agent: *\nAllow: /\n", content_type="text/plain")})]
    with LocalWeb(inner) as hidden:
        target = hidden.origin("inner") + "/robots.txt"
        outer = [Site("outer", "exempt", {
            "/robots.txt": Page(b"", status=302, headers=(("Location", target),)),
            "/": Page(html("o", "SECRET-outer-index")),
        })]
        with LocalWeb(outer) as web:
            cfg = write_config(
                tmp_path / "job.yaml", allow_private_networks=False,
                seeds=[web.origin("outer") + "/"],
                settings={"POLITE_ALLOWED_PRIVATE_ORIGINS": [web.origin("outer")],
                          "POLITE_UNDECIDED_RETRIES": 0})
            proc = run_cli("run", str(cfg))
            assert proc.returncode == 0, proc.stderr[-2000:]
            assert "/" not in web.paths("outer")
        assert hidden.requests == []
    recs = read_jsonl(tmp_path / "out" / "audit.jsonl")
    page = [r for r in recs if r["url"] == web.origin("outer") + "/"]
    assert page and page[-1]["decision"] == "deny"
    rule = page[-1]["reasons"][0]["rule"]
    assert "network guard" in rule and "loopback" in rule, rule
    assert "headers" not in rule
    fetch = [r for r in recs if r["url"] == target]
    assert fetch and fetch[0]["preflight"] == "robots.txt"


def test_retry_after_is_honoured(tmp_path):
    site = Site("busy", "429 then 200", {
        "/robots.txt": Page("User-agent: *\nAllow: /\n", content_type="text/plain"),
        "/": Page(html("b", '<a href="/later">later</a> <a href="/never">never</a>'))},
        sequences={
            "/later": [Page(b"busy", status=429, headers=(("Retry-After", "1"),)),
                       Page(html("later", "now fine"))],
            "/never": [Page(b"busy", status=503, headers=(("Retry-After", "86400"),)),
                       Page(html("never", "too late"))],
        })
    with LocalWeb([site]) as web:
        cfg = write_config(tmp_path / "job.yaml", seeds=[web.origin("busy") + "/"],
                           settings={"RETRY_TIMES": 2})
        proc = run_cli("run", str(cfg))
        assert proc.returncode == 0, proc.stderr[-2000:]
        later = [r.time for r in web.requests if r.path == "/later"]
        never = [r for r in web.requests if r.path == "/never"]
    assert len(later) == 2 and later[1] - later[0] >= 0.95, later
    assert len(never) == 1  # Retry-After beyond POLITE_RETRY_AFTER_MAX: not retried
    docs = {d["url"].rsplit("/", 1)[1] for d in read_jsonl(tmp_path / "out" / "corpus.jsonl")}
    assert "later" in docs and "never" not in docs
