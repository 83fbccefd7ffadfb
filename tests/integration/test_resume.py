"""A killed run resumes without fetching again what it had; a finished job's next run re-checks
reservations and only collects what changed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

from crawler.audit.log import verify_file
from crawler.demo.sites import html
from crawler.demo.web import LocalWeb, Page, Site

from .conftest import ROOT, read_jsonl, run_cli, write_config

N = 24


def site(delay: float = 0.0) -> Site:
    links = " ".join(f'<a href="/p{i}.html">{i}</a>' for i in range(N))
    pages = {"/robots.txt": Page("User-agent: *\nDisallow: /no/\n", content_type="text/plain"),
             "/": Page(html("home", links + ' <a href="/no/x.html">no</a>'))}
    pages.update({f"/p{i}.html": Page(html(f"p{i}", f"text {i}"), delay=delay,
                                      headers=(("ETag", f'"v1-{i}"'),)) for i in range(N)})
    return Site("s", "resume", pages)


def test_kill_9_then_resume(tmp_path):
    with LocalWeb([site(delay=0.15)]) as web:
        cfg = write_config(tmp_path / "job.yaml", seeds=[web.origin("s") + "/"],
                           settings={"CONCURRENT_REQUESTS": 2})
        proc = subprocess.Popen([sys.executable, "-m", "crawler", "run", str(cfg)], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        corpus = tmp_path / "out" / "corpus.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if corpus.exists() and len(corpus.read_text().splitlines()) >= 8:
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        had = {d["url"] for d in read_jsonl(corpus)}
        assert 8 <= len(had) < N + 1
        assert verify_file(tmp_path / "out" / "audit.jsonl").ok
        first = len(web.requests)

        done = run_cli("run", str(cfg))
        assert done.returncode == 0, done.stderr[-2000:]
        again = Counter(r.path for r in web.requests[first:])
    docs = read_jsonl(corpus)
    urls = [d["url"] for d in docs]
    assert len(urls) == len(set(urls)) == N + 1  # every page once, none twice
    for url in had:
        assert again[url.replace(web.origin("s"), "")] == 0, url  # not fetched again
    assert "/no/x.html" not in again
    assert verify_file(tmp_path / "out" / "audit.jsonl").ok  # one chain across the kill
    assert "resume" in done.stderr


def test_recrawl_rechecks_and_collects_only_what_changed(tmp_path):
    s = site()
    with LocalWeb([s]) as web:
        cfg = write_config(tmp_path / "job.yaml", seeds=[web.origin("s") + "/"])
        assert run_cli("run", str(cfg)).returncode == 0
        corpus = tmp_path / "out" / "corpus.jsonl"
        assert len(read_jsonl(corpus)) == N + 1
        first = len(web.requests)
        s.pages["/p3.html"] = Page(html("p3", "changed text"), headers=(("ETag", '"v2-3"'),))
        s.pages["/robots.txt"] = Page("User-agent: *\nDisallow: /p5.html\n",
                                      content_type="text/plain")
        proc = run_cli("run", str(cfg))
        assert proc.returncode == 0, proc.stderr[-2000:]
        second = [r.path for r in web.requests[first:]]
    assert second.count("/robots.txt") == 1  # reservations checked afresh
    assert "/p5.html" not in second  # now disallowed: not asked for
    docs = read_jsonl(corpus)
    assert len(docs) == N + 2  # only the changed page was collected again
    assert docs[-1]["url"].endswith("/p3.html") and "changed" in docs[-1]["text"]
    audit = read_jsonl(tmp_path / "out" / "audit.jsonl")
    unchanged = [r for r in audit if r.get("status") == 304]
    assert len(unchanged) == N - 2  # all but p3 (changed) and p5 (now refused)
    assert all(r["decision"] == "allow" for r in unchanged)
    assert verify_file(tmp_path / "out" / "audit.jsonl").ok
