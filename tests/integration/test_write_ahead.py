"""Every request that leaves the crawler has a committed record first (write-ahead), and the
crawl stops, resumably, when its output cannot be written.

The local web logs each request before it answers, so "served" below means "reached the
server"; a record "in the complete part of the log" is one the chain verifies.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from crawler.audit.log import verify_file
from crawler.demo.sites import html
from crawler.demo.web import LocalWeb, Page, Site

from .conftest import ROOT, read_jsonl, run_cli, write_config

TXT = "text/plain; charset=utf-8"


def _served(web: LocalWeb) -> Counter[str]:
    return Counter(web.origin(r.site) + r.path for r in web.requests)


def _sent(audit: Path) -> Counter[str]:
    return Counter(r["url"] for r in read_jsonl(audit) if r["decision"] == "send")


def _unrecorded(web: LocalWeb, audit: Path) -> dict[str, int]:
    served, sent = _served(web), _sent(audit)
    return {u: n - sent[u] for u, n in served.items() if n > sent[u]}


def _tree_site(name: str, pages: int, *, fanout: int = 4) -> Site:
    content = {"/robots.txt": Page("User-agent: *\nDisallow: /private/\n", content_type=TXT)}
    for i in range(pages):
        kids = [f"/p{j}.html" for j in range(i * fanout + 1, min(pages, i * fanout + fanout + 1))]
        links = " ".join(f'<a href="{k}">{k}</a>' for k in kids)
        content["/" if i == 0 else f"/p{i}.html"] = Page(
            html(f"{name} {i}", f"page {i} {links} <a href='/r/{i}'>hop</a>"), delay=0.01)
        content[f"/r/{i}"] = Page(b"", status=302, headers=(("Location", f"/p{i}.html"),))
    return Site(name, f"{pages} pages", content)


def test_redirect_hops_retries_and_failures_have_their_records(tmp_path):
    site = Site("hops", "a redirect chain, a timeout, a preflight", {
        "/robots.txt": Page("User-agent: *\nAllow: /\n", content_type=TXT),
        "/": Page(html("h", '<a href="/r1">r</a> <a href="/slow">s</a>')),
        "/r1": Page(b"", status=301, headers=(("Location", "/r2"),)),
        "/r2": Page(b"", status=302, headers=(("Location", "/final"),)),
        "/final": Page(html("f", "final page")),
        "/slow": Page(html("s", "too slow"), delay=2.5),
    })
    with LocalWeb([site]) as web:
        cfg = write_config(tmp_path / "job.yaml", seeds=[web.origin("hops") + "/"],
                           settings={"DOWNLOAD_TIMEOUT": 1, "RETRY_TIMES": 1})
        proc = run_cli("run", str(cfg))
        assert proc.returncode == 0, proc.stderr[-2000:]
    audit = tmp_path / "out" / "audit.jsonl"
    assert verify_file(audit).ok
    assert _unrecorded(web, audit) == {}
    recs = read_jsonl(audit)
    o = web.origin("hops")
    send = {}
    for r in recs:
        if r["decision"] == "send":
            send.setdefault(r["url"], []).append(r)
    # the chain: /r1 -> /r2 -> /final, each hop's send names the one before it
    (r1,), (r2,), (final,) = send[o + "/r1"], send[o + "/r2"], send[o + "/final"]
    assert r2["follows"] == r1["seq"] and r2["via"] == "redirect"
    assert r2["redirected_from"] == o + "/r1" and r2["redirect_status"] == 301
    assert final["follows"] == r2["seq"] and final["redirected_from"] == o + "/r2"
    assert final["checks"], "the send record carries the evidence it was allowed on"
    allow = [r for r in recs if r["decision"] == "allow" and r["url"] == o + "/final"]
    assert allow and allow[0]["request_seq"] == final["seq"]
    # the timeout: a failed result naming its send, then a retry that follows it
    slow = send[o + "/slow"]
    assert len(slow) == 2 and slow[1]["follows"] == slow[0]["seq"] and slow[1]["via"] == "retry"
    failed = [r for r in recs if r["decision"] == "result" and r["result"] == "failed"]
    assert {r["request_seq"] for r in failed} == {s["seq"] for s in slow}
    assert all("TimeoutError" in r["error"] for r in failed)
    # per-origin files: sent, then fetched with their evidence hash
    (robots,) = send[o + "/robots.txt"]
    assert robots["preflight"] == "robots.txt"
    fetched = [r for r in recs if r["decision"] == "result" and r.get("request_seq")
               == robots["seq"]]
    assert fetched and fetched[0]["result"] == "fetched" and fetched[0]["status"] == 200
    assert fetched[0]["source_sha256"]


def test_kill_9_at_20_moments_leaves_no_request_without_its_record(tmp_path):
    """SIGKILL a crawl at 20 random moments (each run resuming the last): every request the
    server saw has its send record in the verified log."""
    sites = [_tree_site(f"t{i}", 120) for i in range(3)]
    rng = random.Random(20261201)
    with LocalWeb(sites) as web:
        cfg = write_config(tmp_path / "job.yaml", seeds=[web.origin(s.name) + "/" for s in sites],
                           settings={"CONCURRENT_REQUESTS": 8, "LOG_LEVEL": "WARNING"})
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        kills = 0
        for _ in range(20):
            before = len(web.requests)
            proc = subprocess.Popen([sys.executable, "-m", "crawler", "run", str(cfg)], cwd=ROOT,
                                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # wait for the crawl to be under way (a request reached the server), then a
            # random moment more
            deadline = time.monotonic() + 30
            while len(web.requests) == before and proc.poll() is None \
                    and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.6))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(30)
        last = run_cli("run", str(cfg), timeout=300)
        assert last.returncode == 0, last.stderr[-2000:]
    audit = tmp_path / "out" / "audit.jsonl"
    assert kills >= 15, "the crawl finished before most kills: nothing was tested"
    assert verify_file(audit).ok
    served = sum(_served(web).values())
    missing = _unrecorded(web, audit)
    print(f"kill -9 at {kills} moments: {served} requests served, "
          f"{served - sum(missing.values())} with their send record")
    assert served > 100
    assert missing == {}, "requests served without a record"
    # the checkpoints written by the runs that reached their end (and any torn by a kill)
    # still describe this log
    from crawler.audit.checkpoint import checkpoints_path, read_checkpoints, verify_checkpoints

    report = verify_checkpoints(audit, read_checkpoints(checkpoints_path(audit)))
    assert report.ok and report.checked >= 1, report.problems


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, check=False)
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    out = tmp_path / "out"
    if os.geteuid() != 0 or not _mount_tmpfs(out, "96k"):
        pytest.skip("mounting a small tmpfs needs root and mount permission (CI runs as root)")
    yield out
    subprocess.run(["umount", "-l", str(out)], check=False)


def test_full_disk_stops_the_crawl_before_any_unrecorded_request_and_resumes(tmp_path,
                                                                             small_disk):
    big = "x" * 6000  # pages that fill a 96 KiB disk in a few documents
    pages = {f"/p{i}.html": Page(html(f"p{i}", big + f" {i}")) for i in range(60)}
    pages["/"] = Page(html("i", " ".join(f'<a href="/p{i}.html">p</a>' for i in range(60))))
    pages["/robots.txt"] = Page("User-agent: *\nAllow: /\n", content_type=TXT)
    with LocalWeb([Site("full", "big pages", pages)]) as web:
        cfg = write_config(tmp_path / "job.yaml", seeds=[web.origin("full") + "/"])
        proc = run_cli("run", str(cfg))
        assert proc.returncode != 0
        lines = [x for x in proc.stderr.splitlines() if x.startswith("polite-crawl:")]
        assert any("No space left on device" in x for x in lines), proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
        audit = small_disk / "audit.jsonl"
        assert verify_file(audit).ok          # no partial record left behind
        assert _unrecorded(web, audit) == {}  # no request sent without its record
        served_then = sum(_served(web).values())
        sent_then = sum(_sent(audit).values())
        print(f"full disk: {served_then} requests served, {sent_then} send records, "
              f"{served_then - sum(_sent(audit).values())} served without one")
        assert served_then < 61, "the crawl went on after the disk was full"
        # space freed: the same command resumes the job and finishes it
        subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
        again = run_cli("run", str(cfg))
        assert again.returncode == 0, again.stderr[-3000:]
    assert verify_file(audit).ok
    assert _unrecorded(web, audit) == {}
    docs = {d["url"] for d in read_jsonl(small_disk / "corpus.jsonl")}
    assert len(docs) == 61
