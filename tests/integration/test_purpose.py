"""The same web crawled for another purpose, and with a signal switched off."""

from __future__ import annotations

import pytest

from crawler.demo.sites import demo_sites
from crawler.demo.web import LocalWeb

from .conftest import read_jsonl, run_cli, write_config

SITES = ("content-signal", "noai-header", "noai-meta", "content-usage", "rsl", "ai-txt",
         "tdm-file")


def crawl(tmp_path, **cfg):
    sites = [s for s in demo_sites() if s.name in SITES]
    with LocalWeb(sites) as web:
        path = write_config(tmp_path / "job.yaml", seeds=[web.origin(n) + "/" for n in SITES],
                            **cfg)
        proc = run_cli("run", str(path))
        assert proc.returncode == 0, proc.stderr[-2000:]
    recs = read_jsonl(tmp_path / "out" / "audit.jsonl")
    return web, {r["url"].replace(web.origin(n), n): r["decision"]
                 for r in recs for n in SITES if r["url"].startswith(web.origin(n) + "/")}, recs


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    return crawl(tmp_path_factory.mktemp("search"), purpose="search")


@pytest.mark.parametrize("url", [
    "content-signal/", "content-signal/news.html",          # search=yes, ai-train=no
    "noai-header/noai.html", "noai-meta/robots-meta.html",  # noai binds AI purposes only
    "content-usage/novels/one.html", "content-usage/header.html",  # train-ai=n; search=y
    "rsl/premium/story.html", "rsl/linked.html",            # prohibits AI uses, not search
    "ai-txt/notes.txt",                                     # ai.txt is about training
])
def test_search_crawl_may_take_what_training_may_not(search, url):
    _, decided, _ = search
    assert decided[url] == "allow"


def test_tdmrep_binds_search_too(search):
    _, decided, _ = search
    assert decided["tdm-file/reserved/novel.html"] == "deny"


def test_switched_off_signal_is_in_the_policy_hash(tmp_path, search):
    _, decided, recs = crawl(tmp_path, signals={"noai": False})
    assert decided["noai-header/noai.html"] == "allow"
    assert decided["noai-meta/robots-meta.html"] == "allow"
    assert decided["ai-txt/notes.txt"] == "deny"  # other signals still on
    assert not any(c["signal"] == "noai" for r in recs for c in r.get("checks", []))
    hashes = {r["policy_sha256"] for r in recs} | {r["policy_sha256"] for r in search[2]}
    assert len(hashes) == 2
