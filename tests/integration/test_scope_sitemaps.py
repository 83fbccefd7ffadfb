"""Sitemaps and scope wired into the crawl, ``run -s NAME=VALUE`` and ``run --dry-run``
(issue 13, items 3 and 4), judged from the local web's own request log.

One crawl with ``sitemaps: true``: robots.txt names an index (two sitemaps under it, one a
gzip file), a sitemap robots.txt disallows, and a sitemap on another origin (cross
submission); one page a sitemap lists is reserved by tdmrep.json, one is excluded by
``scope.exclude``, one is on a third origin; ``max_depth: 1`` counts from the listed pages. The
same job run again is a re-crawl (``lastmod``). A second crawl shows ``max_pages_per_origin``
(given with ``-s``, over the config's value) and the policy hash ``--dry-run`` printed.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from crawler.audit.log import verify_file
from crawler.demo.sites import html
from crawler.demo.web import LocalWeb, Page, Site

from .conftest import read_jsonl, run_cli, write_config

XML = "application/xml"


def _urlset(*locs: str, lastmod: str | None = None) -> str:
    mod = f"<lastmod>{lastmod}</lastmod>" if lastmod else ""
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            + "".join(f"<url><loc>{u}</loc>{mod}</url>" for u in locs) + "</urlset>")


def _page(title: str, links: str = "") -> Page:
    return Page(html(title, f"<p>{title} text</p>{links}"))


@pytest.fixture(scope="module")
def sitemap_crawl(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("sitemaps")
    a = Site("a", "the seed origin")
    maps = Site("maps", "hosts a sitemap for a (cross submission)")
    other = Site("other", "a third origin, listed by a sitemap of a")
    plain = Site("plain", "a second seed origin: no robots.txt (404), a /sitemap.xml")
    web = LocalWeb([a, maps, other, plain]).start()
    A, M, O = web.origin("a"), web.origin("maps"), web.origin("other")
    plain.pages.update({"/": _page("plain home"), "/listed": _page("listed"),
                        "/sitemap.xml": Page(f"{web.origin('plain')}/listed\n",
                                             content_type="text/plain")})
    a.pages.update({
        "/robots.txt": Page(f"User-agent: *\nDisallow: /private/\n"
                            f"Sitemap: {A}/sitemap-index.xml\n"
                            f"Sitemap: {A}/private/sitemap.xml\n"
                            f"Sitemap: {M}/for-a.xml\n", content_type="text/plain"),
        "/.well-known/tdmrep.json": Page(json.dumps(
            [{"location": "/news/reserved", "tdm-reservation": 1}]),
            content_type="application/json"),
        "/": _page("home", '<a href="/print/from-link">print</a>'),
        "/sitemap-index.xml": Page(
            '<?xml version="1.0"?><sitemapindex '
            'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"<sitemap><loc>{A}/sm-news.xml</loc></sitemap>"
            f"<sitemap><loc>{A}/sm-blog.xml.gz</loc></sitemap></sitemapindex>",
            content_type=XML),
        "/sm-news.xml": Page(_urlset(f"{A}/news/1", f"{A}/news/reserved", f"{A}/print/x",
                                     f"{O}/elsewhere", lastmod="2001-02-03"),
                             content_type=XML),
        "/sm-blog.xml.gz": Page(gzip.compress(_urlset(f"{A}/blog/1").encode()),
                                content_type="application/x-gzip"),
        "/private/sitemap.xml": Page(_urlset(f"{A}/private/secret"), content_type=XML),
        "/news/1": _page("news 1"), "/news/reserved": _page("reserved"),
        "/print/x": _page("print x"), "/print/from-link": _page("print link"),
        "/blog/1": _page("blog 1", '<a href="/blog/deeper">deeper</a>'),
        "/blog/deeper": _page("deeper"), "/from-maps": _page("from maps"),
        "/private/secret": _page("secret"),
    })
    maps.pages["/for-a.xml"] = Page(_urlset(f"{A}/from-maps", f"{M}/maps-own"),
                                    content_type=XML)
    maps.pages["/maps-own"] = _page("maps own")
    other.pages["/elsewhere"] = _page("elsewhere")
    cfg = write_config(tmp / "job.yaml", seeds=[f"{A}/", f"{web.origin('plain')}/"],
                       sitemaps=True, max_depth=1,
                       scope={"exclude": ["/print/"]})
    res = run_cli("run", str(cfg))
    out = tmp / "out"
    first = {name: web.paths(name) for name in ("a", "maps", "other", "plain")}
    # the same job again: a re-crawl (the first run finished)
    again = run_cli("run", str(cfg))
    try:
        yield web, res, out, first, again
    finally:
        web.stop()


def test_sitemap_pages_are_crawled_through_index_and_gzip(sitemap_crawl) -> None:
    web, res, out, first, _again = sitemap_crawl
    assert res.returncode == 0, res.stderr[-3000:]
    paths = first["a"]
    for p in ("/sitemap-index.xml", "/sm-news.xml", "/sm-blog.xml.gz", "/news/1", "/blog/1",
              "/from-maps"):
        assert p in paths, (p, paths)
    assert "/for-a.xml" in first["maps"]
    assert paths.count("/robots.txt") == 1  # the file the checks read, not fetched again
    corpus = {d["url"].split("/", 3)[-1] for d in read_jsonl(out / "corpus.jsonl")
              if d["url"].startswith(web.origin("a"))}
    # no sitemap is an item; a listed page is a seed (depth 0): max_depth 1 reaches its links
    assert corpus == {"", "news/1", "blog/1", "blog/deeper", "from-maps"}, corpus
    # robots.txt names no sitemap (there is none): /sitemap.xml, here a text sitemap
    assert first["plain"].count("/robots.txt") == 1 and "/listed" in first["plain"]
    assert "/sitemap.xml" not in paths                       # a's robots.txt names its own


def test_sitemap_fetches_pass_the_reservation_checks(sitemap_crawl) -> None:
    web, res, out, first, _again = sitemap_crawl
    assert "'polite/sitemap/failed': 1," in res.stderr      # the disallowed one, noted
    assert "sitemap " + web.origin("a") + "/private/sitemap.xml not read: " in res.stderr
    paths = web.paths("a")  # both runs
    assert "/private/sitemap.xml" not in paths and "/private/secret" not in paths
    assert "/news/reserved" not in paths                     # tdmrep.json reserves it
    assert web.paths("other") == [] and "/maps-own" not in web.paths("maps")
    records = read_jsonl(out / "audit.jsonl")  # both runs: the same decisions twice
    sm: dict[str, list[dict]] = {}
    for r in records:
        if r.get("sitemap") and r["decision"] in ("allow", "deny"):
            sm.setdefault(r["url"].split("/", 3)[-1], []).append(r)
    assert [r["decision"] for r in sm["private/sitemap.xml"]] == ["deny", "deny"]
    assert sm["private/sitemap.xml"][0]["reasons"][0]["signal"] == "robots"
    for name in ("sitemap-index.xml", "sm-news.xml", "sm-blog.xml.gz", "for-a.xml",
                 "sitemap.xml"):
        assert [r["decision"] for r in sm[name]] == ["allow", "allow"], name
    sends = [r for r in records if r["decision"] == "send" and r.get("sitemap")]
    assert len(sends) == 2 * 5
    reserved = [r for r in records if r["url"].endswith("/news/reserved")]
    assert [r["decision"] for r in reserved] == ["deny", "deny"]
    assert reserved[0]["reasons"][0]["signal"] == "tdmrep"
    assert verify_file(out / "audit.jsonl").ok


def test_scope_exclude_applies_to_sitemap_urls_and_links(sitemap_crawl) -> None:
    web, _res, out, _first, _again = sitemap_crawl
    paths = web.paths("a")
    assert "/print/x" not in paths and "/print/from-link" not in paths
    assert not [r for r in read_jsonl(out / "audit.jsonl") if "/print/" in r["url"]]
    run = json.loads((out / "run.json").read_text())
    assert run["scope"]["exclude"] == ["/print/"] and run["sitemaps"]["max_depth"] == 3


def test_recrawl_skips_sitemap_urls_not_modified_since_stored(sitemap_crawl) -> None:
    web, _res, out, first, again = sitemap_crawl
    assert again.returncode == 0, again.stderr[-3000:]
    paths = web.paths("a")
    # news/1: lastmod 2001-02-03, stored today: not asked again; blog/1 has no lastmod:
    # asked again (conditionally); the home page is a seed
    assert first["a"].count("/news/1") == 1 and paths.count("/news/1") == 1
    assert paths.count("/blog/1") == 2 and paths.count("/") == 2
    assert paths.count("/sm-news.xml") == 2                  # sitemaps are read again
    skipped = [r for r in read_jsonl(out / "audit.jsonl")
               if r.get("result") == "sitemap-unchanged"]
    assert [r["url"].rsplit("/", 2)[-2:] for r in skipped] == [["news", "1"]]
    assert skipped[0]["lastmod"] == "2001-02-03" and "request_seq" not in skipped[0]
    assert skipped[0]["listed_in"].endswith("/sm-news.xml")
    assert skipped[0]["stored_audit_seq"] > 0
    assert verify_file(out / "audit.jsonl").ok


def test_page_cap_from_the_command_line_and_dry_run(tmp_path: Path) -> None:
    site = Site("s", "eight pages")
    for i in range(8):
        site.pages[f"/p{i}"] = _page(f"page {i}")
    with LocalWeb([site]) as web:
        S = web.origin("s")
        cfg = write_config(tmp_path / "cap.yaml", seeds=[f"{S}/p{i}" for i in range(6)],
                           follow="none", scope={"max_pages_per_origin": 10})
        cap = ["-s", 'POLITE_SCOPE={"max_pages_per_origin": 3}']
        dry = run_cli("run", str(cfg), "--dry-run", *cap, "-s", "DOWNLOAD_DELAY=0")
        assert dry.returncode == 0, dry.stderr
        assert web.requests == []                            # a dry run sends nothing
        assert not (tmp_path / "out").exists()               # and writes nothing
        lines = dry.stdout.splitlines()
        assert f"  {S}/p5" in lines and "purpose: train-ai" in lines
        assert "signals: robots on, tdmrep on" in dry.stdout
        assert '  POLITE_SCOPE = "{\\"max_pages_per_origin\\": 3}"  (-s)' in lines
        hash_line = next(x for x in lines if x.startswith("policy_sha256: "))
        res = run_cli("run", str(cfg), *cap)
        assert res.returncode == 0, res.stderr[-3000:]
        pages = [p for p in web.paths("s") if p.startswith("/p")]
        assert len(pages) == 3, pages                        # the -s cap, not the config's
        # an interrupted run, resumed with two more seeds: the cap counts from the log
        out = tmp_path / "out"
        info = json.loads((out / "run.json").read_text())
        del info["finished_at"]
        (out / "run.json").write_text(json.dumps(info))
        cfg = write_config(tmp_path / "cap.yaml", seeds=[f"{S}/p{i}" for i in range(8)],
                           follow="none", scope={"max_pages_per_origin": 10})
        resumed = run_cli("run", str(cfg), *cap)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert [p for p in web.paths("s") if p.startswith("/p")] == pages
        late = [r for r in read_jsonl(out / "audit.jsonl") if r["url"] in (f"{S}/p6", f"{S}/p7")]
        assert [r["reasons"][0]["signal"] for r in late] == ["scope", "scope"]
    records = read_jsonl(out / "audit.jsonl")
    capped = [r for r in records if r["decision"] == "deny"
              and r["reasons"][0]["signal"] == "scope"]
    assert len(capped) == 3 + 2
    assert "reached max_pages_per_origin (3)" in capped[0]["reasons"][0]["rule"]
    assert not {r["url"].rsplit("/", 1)[-1] for r in capped} & {p[1:] for p in pages}
    run = json.loads((out / "run.json").read_text())
    assert hash_line == f"policy_sha256: {run['policy_sha256']}"
    assert run["scope"]["max_pages_per_origin"] == 3
    assert run["pass_started_at"] == info["pass_started_at"] < run["started_at"]


def test_sitemaps_propose_no_more_than_the_cap(tmp_path: Path) -> None:
    site = Site("s", "a seed and a sitemap of 20 pages")
    site.pages["/"] = _page("home")
    for i in range(20):
        site.pages[f"/q{i}"] = _page(f"q {i}")
    with LocalWeb([site]) as web:
        S = web.origin("s")
        site.pages["/sitemap.xml"] = Page(_urlset(*(f"{S}/q{i}" for i in range(20))),
                                          content_type=XML)
        cfg = write_config(tmp_path / "job.yaml", seeds=[f"{S}/"], follow="none",
                           sitemaps=True, scope={"max_pages_per_origin": 3})
        res = run_cli("run", str(cfg))
        assert res.returncode == 0, res.stderr[-3000:]
        pages = [p for p in web.paths("s") if p == "/" or p.startswith("/q")]
    assert len(pages) == 3, pages
    assert "'polite/sitemap/over_cap': 17," in res.stderr     # 3 proposed, 17 not queued
    capped = [r for r in read_jsonl(tmp_path / "out" / "audit.jsonl")
              if r["decision"] == "deny" and r["reasons"][0]["signal"] == "scope"]
    assert len(capped) == 1                                   # seed + 3 proposed, cap 3


@pytest.mark.parametrize("args, message", [
    (["-s", "POLITE_PURPOSE=evil"], "POLITE_PURPOSE"),
    (["-s", "DOWNLOAD_DELAY=nan"], "DOWNLOAD_DELAY"),
    (["-s", "POLITE_SCOPE={\"include\": [\"(a+)+\"]}"], "POLITE_SCOPE.include[0]"),
    (["-s", "POLITE_FOLOW=none"], "POLITE_FOLOW: unknown"),
    (["-s", "NOEQUALS"], "expected NAME=VALUE"),
])
def test_bad_setting_exits_2_naming_it(tmp_path: Path, args: list[str], message: str) -> None:
    cfg = write_config(tmp_path / "job.yaml", seeds=["http://127.0.0.1:9/"])
    res = run_cli("run", str(cfg), "--dry-run", *args)
    assert res.returncode == 2 and message in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_dry_run_of_a_bad_config_exits_2(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "job.yaml", seeds=["http://127.0.0.1:9/"],
                       sitemaps={"max_depth": 99})
    res = run_cli("run", str(cfg), "--dry-run")
    assert res.returncode == 2 and "sitemaps.max_depth" in res.stderr, res.stderr
