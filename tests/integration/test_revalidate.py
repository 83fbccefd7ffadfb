"""Revalidation: creators opt out after collection; exactly their documents are reported and
purged, the audit log still verifies, a second run changes nothing, a killed purge leaves a
whole corpus and is completed by the next run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from crawler.audit.log import verify_file
from crawler.demo.sites import html
from crawler.demo.web import LocalWeb, Page, Site

from .conftest import ROOT, read_jsonl, run_cli, write_config

TXT = "text/plain"


def sites() -> list[Site]:
    def site(name: str) -> Site:
        return Site(name, name, {
            "/robots.txt": Page("User-agent: *\nAllow: /\n", content_type=TXT),
            "/": Page(html(name, '<a href="/x.html">x</a> <a href="/y.html">y</a>')),
            "/x.html": Page(html("x", f"{name} x")),
            "/y.html": Page(html("y", f"{name} y")),
        })
    return [site(n) for n in ("robots", "tdm", "header", "registry", "same")]


def warc_targets(path):
    from warcio.archiveiterator import ArchiveIterator

    with open(path, "rb") as fh:
        return {r.rec_headers.get_header("WARC-Target-URI") for r in ArchiveIterator(fh)
                if r.rec_type in ("request", "response", "metadata")}


def urls(recs):
    return {r["url"] for r in recs}


@pytest.fixture
def collected(tmp_path):
    web = LocalWeb(sites()).start()
    (tmp_path / "list.txt").write_text("# nothing yet\n")
    cfg = write_config(tmp_path / "job.yaml", seeds=[web.origin(s) + "/" for s in web.sites],
                       registries=[{"type": "file", "path": "list.txt"}],
                       settings={"POLITE_SITE_CACHE_TTL": 3600}, output={"warc": True})
    proc = run_cli("run", str(cfg))
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / "out"
    assert len(read_jsonl(out / "corpus.jsonl")) == 15
    # the creators change their minds
    s = web.sites
    s["robots"].pages["/robots.txt"] = Page("User-agent: *\nDisallow: /x.html\n",
                                            content_type=TXT)
    s["tdm"].pages["/.well-known/tdmrep.json"] = Page(
        '[{"location": "/", "tdm-reservation": 1}]', content_type="application/json")
    s["header"].pages["/y.html"] = Page(html("y", "header y"),
                                        headers=(("tdm-reservation", "1"),))
    (tmp_path / "list.txt").write_text(f"{web.origin('registry')}/x.html\n")
    yield web, out, tmp_path
    web.stop()


def expected_reserved(web):
    o = web.origin
    return {o("robots") + "/x.html", o("tdm") + "/", o("tdm") + "/x.html", o("tdm") + "/y.html",
            o("header") + "/y.html", o("registry") + "/x.html"}


def test_report_then_purge_then_nothing(collected):
    web, out, _ = collected
    before = (out / "corpus.jsonl").read_text()
    proc = run_cli("revalidate", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    reported = {line.split()[1] for line in proc.stdout.splitlines()
                if line.startswith("RESERVED")}
    assert reported == expected_reserved(web)
    assert (out / "corpus.jsonl").read_text() == before  # a report only

    origin_files = [r.path for r in web.requests if r.path == "/robots.txt"]
    proc = run_cli("revalidate", str(out), "--purge")
    assert proc.returncode == 0, proc.stderr[-2000:]
    corpus = urls(read_jsonl(out / "corpus.jsonl"))
    assert corpus.isdisjoint(expected_reserved(web)) and len(corpus) == 9
    audit = read_jsonl(out / "audit.jsonl")
    erased = [r for r in audit if r["decision"] == "erase"]
    assert urls(erased) == expected_reserved(web) and len(erased) == 6
    assert {r["reasons"][0]["signal"] for r in erased} == {"robots", "tdmrep", "registry"}
    assert verify_file(out / "audit.jsonl").ok
    # the erasures end with a checkpoint of their own, like a run; the whole directory (corpus,
    # WARC, evidence) still checks out against the log
    last = read_jsonl(out / "audit.checkpoints.jsonl")[-1]
    assert last["seq"] == audit[-1]["seq"] and last["hash"] == audit[-1]["hash"]
    done = run_cli("audit", "verify", str(out), "--checkpoints")
    assert done.returncode == 0, done.stdout
    in_warc = warc_targets(out / "corpus.warc.gz")
    assert in_warc.isdisjoint(expected_reserved(web))
    assert corpus <= in_warc  # the kept documents are still archived
    # site-level files once per origin and run, not once per document
    robots_fetches = [r.path for r in web.requests if r.path == "/robots.txt"]
    assert len(robots_fetches) - len(origin_files) == 5

    proc = run_cli("revalidate", str(out), "--purge")
    assert proc.returncode == 0
    assert len([r for r in read_jsonl(out / "audit.jsonl") if r["decision"] == "erase"]) == 6
    assert len(read_jsonl(out / "corpus.jsonl")) == 9


@pytest.mark.parametrize("point", ["before-corpus-rename", "after-first-erase"])
def test_killed_purge_leaves_a_whole_corpus_and_is_completed(collected, point):
    web, out, _ = collected
    before = (out / "corpus.jsonl").read_text()
    env = dict(os.environ)  # the crash point: armed by tests/crash_cli.py, not the environment
    proc = subprocess.run([sys.executable, "-m", "tests.crash_cli", point, "revalidate",
                           str(out), "--purge"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 137, proc.stderr[-2000:]
    corpus = (out / "corpus.jsonl").read_text()
    if point == "before-corpus-rename":
        assert corpus == before  # the old corpus, whole
    else:
        assert len(corpus.splitlines()) == 9  # the new corpus, whole
    assert verify_file(out / "audit.jsonl").ok
    proc = run_cli("revalidate", str(out), "--purge")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert urls(read_jsonl(out / "corpus.jsonl")).isdisjoint(expected_reserved(web))
    erased = [r for r in read_jsonl(out / "audit.jsonl") if r["decision"] == "erase"]
    assert len(erased) == 6 and urls(erased) == expected_reserved(web)
    assert verify_file(out / "audit.jsonl").ok


def test_not_an_output_dir(tmp_path):
    assert run_cli("revalidate", str(tmp_path)).returncode == 2


def test_erase_records_carry_the_policy_hash(collected):
    _web, out, _ = collected
    env = dict(os.environ)
    subprocess.run([sys.executable, "-m", "tests.crash_cli", "after-first-erase", "revalidate",
                    str(out), "--purge"],
                   cwd=ROOT, env=env, capture_output=True, timeout=120, check=False)
    assert run_cli("revalidate", str(out), "--purge").returncode == 0
    erased = [r for r in read_jsonl(out / "audit.jsonl") if r["decision"] == "erase"]
    assert len({r["policy_sha256"] for r in erased}) == 1
    assert len(erased[0]["policy_sha256"]) == 64


def test_cluster_output_dir_per_worker_logs(tmp_path):
    """A cluster job's directory (corpus-<w>.jsonl + audit-<w>.jsonl per worker): erase
    records go to the chain of the worker that collected the document."""
    import json

    from crawler.audit.log import AuditWriter

    s = sites()[0]
    with LocalWeb([s]) as web:
        o = web.origin("robots")
        for worker, paths in (("a", ["/", "/x.html"]), ("b", ["/y.html"])):
            writer = AuditWriter(tmp_path / "out" / f"audit-{worker}.jsonl", job="itest")
            with open(tmp_path / "out" / f"corpus-{worker}.jsonl", "w") as fh:
                for p in paths:
                    rec = writer.write(url=o + p, decision="allow", reasons=[],
                                       policy_sha256="0" * 64)
                    fh.write(json.dumps({"url": o + p, "audit_seq": rec["seq"],
                                         "sha256": "0" * 64}) + "\n")
            writer.close()
        s.pages["/robots.txt"] = Page("User-agent: *\nDisallow: /x.html\nDisallow: /y.html\n",
                                      content_type=TXT)
        cfg = write_config(tmp_path / "job.yaml", seeds=[])
        proc = run_cli("revalidate", str(tmp_path / "out"), "--purge", "--config", str(cfg))
        assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / "out"
    assert urls(read_jsonl(out / "corpus-a.jsonl")) == {o + "/"}
    assert read_jsonl(out / "corpus-b.jsonl") == []
    erased_a = [r for r in read_jsonl(out / "audit-a.jsonl") if r["decision"] == "erase"]
    erased_b = [r for r in read_jsonl(out / "audit-b.jsonl") if r["decision"] == "erase"]
    assert urls(erased_a) == {o + "/x.html"} and urls(erased_b) == {o + "/y.html"}
    assert verify_file(out / "audit-a.jsonl").ok and verify_file(out / "audit-b.jsonl").ok
