"""Crawls that consult opt-out registries: file, SQLite, a real HTTP registry server, and
registries that are down, slow or answer garbage (nothing they have not cleared is fetched)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawler.audit.log import verify_file
from crawler.demo.sites import html
from crawler.demo.web import LocalWeb, Page, Site
from crawler.registry.entries import parse_list
from crawler.registry.index import RegistryIndex
from crawler.registry.server import RegistryServer

from .conftest import read_jsonl, run_cli, write_config

TXT = "text/plain"


def web_sites() -> list[Site]:
    links = " ".join(f'<a href="/p/{i}.html">{i}</a>' for i in range(6))
    links += ' <a href="/members/a.html">m</a> <a href="/members/b.html">m</a>'
    pages = {"/robots.txt": Page("User-agent: *\nAllow: /\n", content_type=TXT),
             "/": Page(html("home", links))}
    pages.update({f"/p/{i}.html": Page(html(f"p{i}", "public")) for i in range(6)})
    pages.update({f"/members/{x}.html": Page(html("m", f"SECRET-members-{x}")) for x in "ab"})
    return [Site("pub", "a publisher with a members area", pages),
            Site("optedout", "a whole origin on the list", {
                "/": Page(html("o", "SECRET-optedout")),
                "/robots.txt": Page("User-agent: *\nAllow: /\n", content_type=TXT)})]


def entries(web: LocalWeb) -> str:
    return (f"# test list\n{web.origin('pub')}/members/\n\n{web.origin('optedout')}   # all\n"
            "not a valid entry!!\n")


def assert_cleared_only(web: LocalWeb, out: Path) -> None:
    assert web.requests, "nothing was fetched at all"
    assert web.paths("optedout") == []  # not even robots.txt
    assert not [p for p in web.paths("pub") if p.startswith("/members/")]
    recs = read_jsonl(out / "audit.jsonl")
    denied = {r["url"]: r for r in recs if r["decision"] == "deny"}
    members = denied[web.origin("pub") + "/members/a.html"]
    assert members["reasons"][0]["signal"] == "registry"
    assert "/members/" in members["reasons"][0]["rule"]
    assert denied[web.origin("optedout") + "/"]["reasons"][0]["signal"] == "registry"
    allowed = {r["url"] for r in recs if r["decision"] == "allow"}
    assert len(allowed) == 7
    assert verify_file(out / "audit.jsonl").ok


def seeds(web: LocalWeb) -> list[str]:
    return [web.origin("pub") + "/", web.origin("optedout") + "/"]


def test_file_registry(tmp_path):
    with LocalWeb(web_sites()) as web:
        (tmp_path / "list.txt").write_text(entries(web))
        cfg = write_config(tmp_path / "job.yaml", seeds=seeds(web),
                           registries=[{"type": "file", "path": "list.txt"}])
        proc = run_cli("run", str(cfg))
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "not a valid entry" in proc.stderr  # malformed line reported, not fatal
        assert_cleared_only(web, tmp_path / "out")


def test_sqlite_registry_built_by_the_cli(tmp_path):
    with LocalWeb(web_sites()) as web:
        (tmp_path / "list.txt").write_text(entries(web))
        proc = run_cli("registry", "import", str(tmp_path / "list.txt"), str(tmp_path / "r.db"))
        assert proc.returncode == 0, proc.stderr
        cfg = write_config(tmp_path / "job.yaml", seeds=seeds(web),
                           registries=[{"type": "sqlite", "path": "r.db"}])
        proc = run_cli("run", str(cfg))
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert_cleared_only(web, tmp_path / "out")


def test_http_registry_batched_through_the_engine(tmp_path):
    with LocalWeb(web_sites()) as web:
        index = RegistryIndex(parse_list(entries(web).encode()).entries)
        with RegistryServer(index) as server:
            cfg = write_config(tmp_path / "job.yaml", seeds=seeds(web), registries=[
                {"type": "http", "url": server.url + "/api/v2/query/urls", "max_wait": 0.1}])
            proc = run_cli("run", str(cfg))
            assert proc.returncode == 0, proc.stderr[-2000:]
            calls = len(server.requests)
        assert_cleared_only(web, tmp_path / "out")
    assert 1 <= calls <= 6, calls  # 10 URLs in a handful of batches, not one call each


BROKEN = {
    "down": None,
    "slow": Page(b'{"urls": []}', content_type="application/json", delay=3),
    "garbage": Page(b"<html>surprise</html>", content_type="text/html"),
    "error": Page(b"oops", status=500, content_type=TXT),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_registry_that_cannot_answer_clears_nothing(tmp_path, kind):
    api = Site("api", kind, {"/q": BROKEN[kind]} if BROKEN[kind] else {})
    with LocalWeb(web_sites()) as web, LocalWeb([api]) as api_web:
        url = api_web.origin("api") + "/q"
        if kind == "down":
            api_web.stop()
        cfg = write_config(tmp_path / "job.yaml", seeds=seeds(web), registries=[
            {"type": "http", "url": url, "timeout": 1, "retries": 1, "max_wait": 0.05}],
            settings={"POLITE_SITE_RETRY_BACKOFF": 0.2, "POLITE_UNDECIDED_RETRIES": 1})
        proc = run_cli("run", str(cfg))
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert web.requests == []  # nothing fetched: not even robots.txt
    recs = read_jsonl(tmp_path / "out" / "audit.jsonl")
    assert recs and all(r["decision"] == "deny" for r in recs)
    assert all(r["reasons"][0]["channel"] == "registry" for r in recs)
    finals = [r for r in recs if r["undecided"]["final"]]
    assert {r["url"] for r in finals} == set(seeds(web))
    assert "left undecided" in proc.stderr
