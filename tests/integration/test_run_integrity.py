"""One run per output_dir, a stop that is not a finish, one-line environment errors and honest
summaries: real `polite-crawl run` processes against a local web."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from crawler.audit.log import AuditWriter, verify_file
from crawler.cli.run import undecided_urls
from crawler.demo.sites import html
from crawler.demo.web import LocalWeb, Page, Site

from .conftest import ROOT, read_jsonl, run_cli, write_config

N = 16


def slow_site(delay: float = 0.3) -> Site:
    links = " ".join(f'<a href="/p{i}.html">{i}</a>' for i in range(N))
    pages = {"/robots.txt": Page("User-agent: *\nAllow: /\n", content_type="text/plain"),
             "/": Page(html("home", links))}
    pages.update({f"/p{i}.html": Page(html(f"p{i}", f"text {i}"), delay=delay)
                  for i in range(N)})
    return Site("s", "slow", pages)


def start(cfg: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "crawler", "run", str(cfg)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def wait_for(cond, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def corpus_lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def problem_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


# -- 3. one run per output_dir --------------------------------------------------------------
def test_second_run_is_refused_and_a_killed_run_leaves_no_stale_lock(tmp_path):
    with LocalWeb([slow_site()]) as web:
        cfg = write_config(tmp_path / "job.yaml", seeds=[web.origin("s") + "/"],
                           settings={"CONCURRENT_REQUESTS": 1})
        first = start(cfg)
        try:
            corpus = tmp_path / "out" / "corpus.jsonl"
            wait_for(lambda: corpus_lines(corpus) >= 2)
            second = run_cli("run", str(cfg))
            assert second.returncode == 2, second.stderr[-2000:]
            (line,) = problem_lines(second.stderr)  # one line, no traceback
            assert f"PID {first.pid}" in line and "started" in line, line
            assert first.poll() is None  # the first run goes on
        finally:
            first.kill()
            first.communicate()
        lock = tmp_path / "out" / "audit.jsonl.lock"
        assert lock.exists()
        third = run_cli("run", str(cfg))  # the kernel released the dead run's lock
        assert third.returncode == 0, third.stderr[-2000:]
        assert "resume" in third.stderr
    assert verify_file(tmp_path / "out" / "audit.jsonl").ok


# -- 4. stop is not finish -------------------------------------------------------------------
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_stop_signal_then_resume_fetches_nothing_twice(tmp_path, signum, code):
    with LocalWeb([slow_site()]) as web:
        cfg = write_config(tmp_path / "job.yaml", seeds=[web.origin("s") + "/"],
                           settings={"CONCURRENT_REQUESTS": 2})
        corpus = tmp_path / "out" / "corpus.jsonl"
        proc = start(cfg)
        wait_for(lambda: corpus_lines(corpus) >= 4)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == code, err[-2000:]
        name = signal.Signals(signum).name
        assert f"polite-crawl: interrupted by {name}; the next run of this job resumes" in err
        info = json.loads((tmp_path / "out" / "run.json").read_text())
        assert "finished_at" not in info, info
        assert info["interrupted_at"] and info["finish_reason"] == "shutdown"
        had = {d["url"] for d in read_jsonl(corpus)}
        assert 4 <= len(had) < N + 1
        first = len(web.requests)

        done = run_cli("run", str(cfg))
        assert done.returncode == 0, done.stderr[-2000:]
        assert "resume of job" in done.stderr
        again = Counter(r.path for r in web.requests[first:])
        pages = Counter(r.path for r in web.requests if r.path.endswith(".html")
                        or r.path == "/")
    urls = [d["url"] for d in read_jsonl(corpus)]
    assert len(urls) == len(set(urls)) == N + 1
    for url in had:
        assert again[url.replace(web.origin("s"), "")] == 0, url
    assert max(pages.values()) == 1, pages  # no page fetched twice across the stop
    info = json.loads((tmp_path / "out" / "run.json").read_text())
    assert info["finished_at"] and info["finish_reason"] == "finished"
    assert "interrupted_at" not in info
    assert verify_file(tmp_path / "out" / "audit.jsonl").ok


def test_second_signal_stops_at_once_and_the_job_still_resumes(tmp_path):
    with LocalWeb([slow_site(delay=1.0)]) as web:
        cfg = write_config(tmp_path / "job.yaml", seeds=[web.origin("s") + "/"],
                           settings={"CONCURRENT_REQUESTS": 4})
        corpus = tmp_path / "out" / "corpus.jsonl"
        proc = start(cfg)
        wait_for(lambda: corpus_lines(corpus) >= 2)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 143, err[-2000:]
        info = json.loads((tmp_path / "out" / "run.json").read_text())
        assert "finished_at" not in info
        assert verify_file(tmp_path / "out" / "audit.jsonl").ok
        had = {d["url"] for d in read_jsonl(corpus)}
        first = len(web.requests)
        done = run_cli("run", str(cfg))
        assert done.returncode == 0, done.stderr[-2000:]
        assert "resume of job" in done.stderr
        again = Counter(r.path for r in web.requests[first:])
    for url in had:
        assert again[url.replace(web.origin("s"), "")] == 0, url
    urls = [d["url"] for d in read_jsonl(corpus)]
    assert len(urls) == len(set(urls)) == N + 1


def test_old_run_json_with_finished_at_after_shutdown_resumes(tmp_path):
    """A run.json an older version wrote for a stopped run (finished_at, reason shutdown)."""
    with LocalWeb([slow_site(delay=0)]) as web:
        cfg = write_config(tmp_path / "job.yaml", seeds=[web.origin("s") + "/"])
        assert run_cli("run", str(cfg)).returncode == 0
        run_json = tmp_path / "out" / "run.json"
        info = json.loads(run_json.read_text())
        info.pop("interrupted_at", None)
        info.update(finished_at="2026-01-01T00:00:00Z", finish_reason="shutdown")
        run_json.write_text(json.dumps(info))
        done = run_cli("run", str(cfg))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resume of job" in done.stderr


# -- 6. one-line errors ----------------------------------------------------------------------
def one_line_failure(tmp_path: Path, output_dir: Path) -> str:
    cfg = write_config(tmp_path / "job.yaml", seeds=["http://127.0.0.1:9/"],
                       output_dir=str(output_dir))
    proc = run_cli("run", str(cfg))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "CRITICAL" not in proc.stderr
    (line,) = problem_lines(proc.stderr)
    assert line.startswith("polite-crawl: "), line
    return line


def test_output_dir_that_is_a_file(tmp_path):
    out = tmp_path / "out"
    out.write_text("not a directory")
    assert "is a file" in one_line_failure(tmp_path, out)


def test_output_dir_under_a_file(tmp_path):
    (tmp_path / "plain").write_text("a file")
    line = one_line_failure(tmp_path, tmp_path / "plain" / "sub" / "out")
    assert "cannot create output_dir" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 0500 (the file cases "
                    "above cover an unusable output_dir as root)")
def test_output_dir_not_writable(tmp_path):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        assert "not writable" in one_line_failure(tmp_path, out)
    finally:
        out.chmod(0o700)


def _log_with_records(out: Path, n: int = 3) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    w = AuditWriter(out / "audit.jsonl", job="itest")
    for i in range(n):
        w.write(url=f"https://x.example/{i}", decision="allow", reasons=[],
                policy_sha256="0" * 64)
    w.close()
    return out / "audit.jsonl"


def test_audit_log_with_a_tampered_record_cannot_be_continued(tmp_path):
    log = _log_with_records(tmp_path / "out")
    lines = log.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace("x.example/1", "y.example/1")
    log.write_text("".join(lines))
    before = log.read_bytes()
    line = one_line_failure(tmp_path, tmp_path / "out")
    assert "cannot continue the audit log" in line and "line 2" in line
    assert "new output_dir" in line
    assert log.read_bytes() == before


def test_audit_log_with_a_torn_last_line_points_to_repair(tmp_path):
    log = _log_with_records(tmp_path / "out")
    with open(log, "ab") as fh:
        fh.write(b'{"seq": 4, "url": "https://x.exa\n')
    line = one_line_failure(tmp_path, tmp_path / "out")
    assert "audit repair" in line
    assert run_cli("audit", "repair", str(log)).returncode == 0
    with LocalWeb([slow_site(delay=0)]) as web:
        cfg = write_config(tmp_path / "job.yaml", seeds=[web.origin("s") + "/"])
        proc = run_cli("run", str(cfg))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert verify_file(log).ok


# -- 7. honest summaries ---------------------------------------------------------------------
def test_summary_counts_new_documents_and_the_corpus(tmp_path):
    site = Site("one", "one page", {"/": Page(html("home", "only page"),
                                               headers=(("ETag", '"v1"'),))})
    with LocalWeb([site]) as web:
        cfg = write_config(tmp_path / "job.yaml", seeds=[web.origin("one") + "/"])
        first = run_cli("run", str(cfg))
        second = run_cli("run", str(cfg))
    assert first.returncode == 0 and second.returncode == 0, second.stderr[-2000:]
    assert "1 new document this run, 1 in " in first.stderr
    assert "0 new documents this run, 1 in " in second.stderr


def test_summary_lists_an_undecided_url_once(tmp_path):
    site = Site("r5", "robots 503", {"/robots.txt": Page("down", status=503,
                                                         content_type="text/plain"),
                                     "/": Page(html("home", "x"))})
    with LocalWeb([site]) as web:
        cfg = write_config(tmp_path / "job.yaml", seeds=[web.origin("r5") + "/"],
                           settings={"POLITE_SITE_RETRY_BACKOFF": 0.1})
        proc = run_cli("run", str(cfg))
        url = web.origin("r5") + "/"
    assert proc.returncode == 0, proc.stderr[-2000:]
    recs = [r for r in read_jsonl(tmp_path / "out" / "audit.jsonl") if r["url"] == url
            and r["decision"] == "deny"]
    assert len(recs) > 1  # refused several times while undecided ...
    assert "polite-crawl: 1 URL left undecided" in proc.stderr  # ... one undecided URL
    assert proc.stderr.count(f"  {url}  (") == 1


def test_undecided_urls_ignores_unknown_records_and_clears_on_allow(tmp_path):
    log = tmp_path / "audit.jsonl"
    u, v = "https://a.example/", "https://b.example/"

    def rec(url, decision, **extra):
        return json.dumps({"url": url, "decision": decision,
                           "reasons": [{"signal": "network", "rule": "robots.txt 503"}],
                           **extra}) + "\n"

    log.write_text(
        rec(u, "deny", undecided={"attempt": 1, "final": False})
        + rec(u, "deny", undecided={"attempt": 2, "final": True})
        + rec(u, "send", stage="send")
        + rec(u, "result", result="failed")
        + rec(v, "deny", undecided={"attempt": 1, "final": True})
        + rec(v, "deny", undecided={"attempt": 1, "final": True})
        + rec(v, "weird-future-kind")
        + rec(u, "allow")
        + '{"url": "https://c.example/", "decision": "deny", "undeci'  # torn last line
    )
    assert undecided_urls(log) == {v: "robots.txt 503"}
