"""Two and three worker processes crawl one local web through a real Redis.

Checked from the server's own request log: every URL fetched once in the cluster, each
origin's robots.txt fetched once, requests to one origin never closer than its delay across
all workers, nothing a reservation refuses ever requested; every worker's audit log verifies.
A worker killed with SIGKILL mid-crawl: the others finish its share.

What a SIGKILL loses, and what these tests therefore assert: requests the killed worker had
popped come back to the queue once its heartbeat expires (scheduler.py), so every URL of the
web ends up collected by a survivor or recorded in some audit log (the killed worker's log
verifies: each record is one write). Lost for good: the corpus line of a page whose allow
record the killed worker wrote but whose item it had not yet written (the page is fetched
again by a survivor, so it is still collected), and undecided URLs the killed worker was
holding for a later retry (their refusal is in its log). A URL may be fetched twice around a
kill (at least once delivery), never before its reservations were checked.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from crawler.audit.log import verify_file
from crawler.demo.web import LocalWeb, Page, Site

from ..integration.conftest import ROOT, read_jsonl, run_cli, write_config
from .conftest import CLUSTER_SECRET


def _wired() -> bool:
    try:
        from crawler.cli import seed as cli
    except ImportError:  # pragma: no cover
        return False
    return hasattr(cli, "cmd_seed")


pytestmark = pytest.mark.skipif(not _wired(), reason="needs the lead's wiring "
                                "(polite-crawl seed / run --worker / audit merge)")

TXT = "text/plain"
DELAY = 0.2          # the job's DOWNLOAD_DELAY: the cluster-wide per-origin delay
SLOW_DELAY = 0.5     # Crawl-delay of the "slow" site
# POLITE_CLUSTER_SPACING "response": the next grant comes at least the delay after the previous
# answer, which the server sends after logging the request: the gap at the server is never
# shorter (up to the millisecond Redis TIME is read at)
TOLERANCE = 0.002


def html(title: str, body: str) -> str:
    return f"<html><head><title>{title}</title></head><body>{body}</body></html>"


def site(name: str, pages: int, *, robots: str = "User-agent: *\nDisallow: /private/\n",
         others: tuple[str, ...] = ()) -> Site:
    links = " ".join(f'<a href="/p{i}.html">p{i}</a>' for i in range(pages))
    content = {
        "/robots.txt": Page(robots, content_type=TXT),
        "/": Page(html(name, f'{links} <a href="/private/secret.html">secret</a>')),
        "/private/secret.html": Page(html("secret", f"SECRET-{name}")),
    }
    for i in range(pages):
        # every page links back to the index and to its neighbours: many duplicate links
        nxt = f'<a href="/p{(i + 1) % pages}.html">next</a> <a href="/">home</a>'
        content[f"/p{i}.html"] = Page(html(f"{name} {i}", f"{name} page {i} {nxt}"))
    return Site(name, f"{pages} pages", content)


def make_web(pages: int) -> LocalWeb:
    sites = [site(f"s{i}", pages) for i in range(5)]
    sites.append(site("slow", 4, robots="User-agent: *\nCrawl-delay: 0.5\n"
                                        "Disallow: /private/\n"))
    sites.append(Site("reserved", "robots.txt refuses everything", {
        "/robots.txt": Page("User-agent: *\nDisallow: /\n", content_type=TXT),
        "/": Page(html("reserved", "SECRET-reserved")),
    }))
    sites.append(Site("tdm", "TDMRep reserves /", {
        "/robots.txt": Page("User-agent: *\nAllow: /\n", content_type=TXT),
        "/.well-known/tdmrep.json": Page('[{"location": "/", "tdm-reservation": 1}]',
                                         content_type="application/json"),
        "/": Page(html("tdm", "SECRET-tdm")),
    }))
    web = LocalWeb(sites).start()
    # one redirect to another site's page
    web.sites["s0"].pages["/go"] = Page(b"", status=302, headers=(
        ("Location", web.origin("s1") + "/p0.html"),))
    web.sites["s0"].pages["/"] = Page(html("s0", " ".join(
        f'<a href="/p{i}.html">p{i}</a>' for i in range(pages))
        + ' <a href="/go">go</a> <a href="/private/secret.html">secret</a>'))
    return web


def cluster_config(tmp: Path, web: LocalWeb, redis_url: str, **settings) -> Path:
    return write_config(
        tmp / "job.yaml", job="ctest", seeds=[web.origin(n) + "/" for n in web.sites],
        follow="same-host", cluster={"redis_url": redis_url},
        settings={"DOWNLOAD_DELAY": DELAY, "POLITE_CLUSTER_WORKER_TTL": 3,
                  "POLITE_CLUSTER_HEARTBEAT": 0.5, "POLITE_CLUSTER_IDLE_CLOSE": 1.5,
                  "CONCURRENT_REQUESTS": 8, **settings})


def start_worker(cfg: Path, name: str, log: Path) -> subprocess.Popen[bytes]:
    # the same cluster secret for every worker: reservations are shared (robots.txt once)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "POLITE_CLUSTER_SECRET": CLUSTER_SECRET}
    with open(log, "wb") as fh:
        return subprocess.Popen([sys.executable, "-m", "crawler", "run", str(cfg),
                                 "--worker", name], cwd=ROOT, env=env, stdout=fh,
                                stderr=subprocess.STDOUT)


def wait_all(procs: dict[str, subprocess.Popen[bytes]], logs: dict[str, Path],
             timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    for name, p in procs.items():
        try:
            p.wait(max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in procs.values():
                q.kill()
            pytest.fail(f"worker {name} did not finish:\n{logs[name].read_text()[-3000:]}")


def gets(web: LocalWeb) -> list:
    return [r for r in web.requests if r.method == "GET"]


def expected_pages(web: LocalWeb) -> set[str]:
    """Every URL a complete crawl collects (allowed HTML pages that answer 200)."""
    out = set()
    for name, s in web.sites.items():
        if name in ("reserved", "tdm"):
            continue
        for path, page in s.pages.items():
            if path.startswith("/private/") or path == "/robots.txt" or page.status != 200:
                continue
            if path.startswith("/.well-known/"):
                continue
            out.add(web.origin(name) + path)
    return out


def assert_polite(web: LocalWeb) -> None:
    """Per origin: gaps between requests never below the delay; nothing reserved fetched."""
    by_site: dict[str, list[float]] = defaultdict(list)
    for r in web.requests:
        by_site[r.site].append(r.time)
        assert not r.path.startswith("/private/"), f"refused URL fetched: {r.site}{r.path}"
        assert not (r.site in ("reserved", "tdm") and r.path == "/"), f"{r.site}/ fetched"
    for name, times in by_site.items():
        times.sort()
        delay = SLOW_DELAY if name == "slow" else DELAY
        gaps = [b - a for a, b in itertools.pairwise(times)]
        if gaps:
            assert min(gaps) >= delay - TOLERANCE, (name, min(gaps), delay)


@pytest.fixture(scope="module")
def crawl(tmp_path_factory, redis_server):
    """Three workers crawl the web to its end (database 1: the other tests flush 0)."""
    from crawler.cluster.connection import redis_client

    tmp_path = tmp_path_factory.mktemp("cluster")
    redis_url = redis_server.url[:-1] + "1"
    client = redis_client(redis_url)
    client.flushdb()
    client.close()
    web = make_web(pages=6)
    try:
        cfg = cluster_config(tmp_path, web, redis_url)
        seeded = run_cli("seed", str(cfg))
        assert seeded.returncode == 0, seeded.stderr
        names = ["w1", "w2", "w3"]
        logs = {n: tmp_path / f"{n}.log" for n in names}
        procs = {n: start_worker(cfg, n, logs[n]) for n in names}
        wait_all(procs, logs)
    finally:
        web.stop()
    out = tmp_path / "out"
    return {"web": web, "procs": procs, "logs": logs, "out": out, "names": names, "cfg": cfg,
            "redis_url": redis_url}


def test_workers_finish_and_every_audit_log_verifies(crawl):
    for name, p in crawl["procs"].items():
        assert p.returncode == 0, crawl["logs"][name].read_text()[-3000:]
    paths = [crawl["out"] / f"audit-{n}.jsonl" for n in crawl["names"]]
    for path in paths:
        assert verify_file(path).ok, verify_file(path).describe(str(path))
    assert run_cli("audit", "verify", *map(str, paths)).returncode == 0
    merged = run_cli("audit", "merge", *map(str, paths), "--out", str(crawl["out"] / "m.jsonl"))
    assert merged.returncode == 0, merged.stderr
    from crawler.audit.merge import verify_report

    assert all(r.ok for r in verify_report(crawl["out"] / "m.jsonl").values())
    report = run_cli("audit", "verify", str(crawl["out"] / "m.jsonl"))
    assert report.returncode == 0 and report.stdout.count(": OK,") == 3, report.stdout


def test_every_url_is_fetched_once_in_the_cluster(crawl):
    web = crawl["web"]
    counts = Counter((r.site, r.path) for r in gets(web))
    twice = {k: n for k, n in counts.items() if n > 1}
    assert not twice, twice
    for name in web.sites:
        assert counts[(name, "/robots.txt")] == 1, name


def test_the_corpus_is_complete_and_shared_out(crawl):
    web = crawl["web"]
    corpora = {n: read_jsonl(crawl["out"] / f"corpus-{n}.jsonl") for n in crawl["names"]}
    urls = [d["url"] for docs in corpora.values() for d in docs]
    assert len(urls) == len(set(urls))            # no document twice
    assert set(urls) == expected_pages(web)
    assert sum(1 for docs in corpora.values() if docs) >= 2  # the work was shared


def test_the_delay_and_reservations_hold_across_workers(crawl):
    assert_polite(crawl["web"])


def test_cli_refuses_a_cluster_job_without_a_worker_name(crawl):
    proc = run_cli("run", str(crawl["cfg"]))
    assert proc.returncode == 2 and "--worker" in proc.stderr


def test_a_killed_worker_s_share_is_finished_by_the_others(tmp_path, redis_url):
    web = make_web(pages=14)
    try:
        cfg = cluster_config(tmp_path, web, redis_url)
        assert run_cli("seed", str(cfg)).returncode == 0
        names = ["w1", "w2", "w3"]
        logs = {n: tmp_path / f"{n}.log" for n in names}
        procs = {n: start_worker(cfg, n, logs[n]) for n in names}
        victim = tmp_path / "out" / "corpus-w2.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(read_jsonl(victim)) < 3:
            time.sleep(0.05)
        assert procs["w2"].poll() is None, "w2 finished before it could be killed"
        procs["w2"].send_signal(signal.SIGKILL)
        procs["w2"].wait(10)
        survivors = {n: p for n, p in procs.items() if n != "w2"}
        wait_all(survivors, logs)
    finally:
        web.stop()
    out = tmp_path / "out"
    for n, p in survivors.items():
        assert p.returncode == 0, logs[n].read_text()[-3000:]
    for n in names:  # the killed worker's log too: each record is one write
        assert verify_file(out / f"audit-{n}.jsonl").ok
    assert_polite(web)
    collected = {d["url"] for n in names for d in read_jsonl(out / f"corpus-{n}.jsonl")}
    recorded = {r["url"] for n in names for r in read_jsonl(out / f"audit-{n}.jsonl")}
    missing = expected_pages(web) - collected - recorded
    assert not missing, sorted(missing)
    # the survivors did collect what the killed worker left (beyond its own records)
    assert expected_pages(web) - collected <= {
        r["url"] for r in read_jsonl(out / "audit-w2.jsonl") if r["decision"] == "allow"}
