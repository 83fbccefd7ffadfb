"""The base package crawls without any extra (issue 13, lean install).

Each command runs in a subprocess whose imports of the extras' modules fail exactly as when
they are not installed (tests/lean/sitecustomize.py, put first on PYTHONPATH): ``run``,
``check``, ``audit verify``, ``revalidate`` and ``report --transparency`` work; ``report`` and
the cluster commands say in one line which extra they need and exit 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from crawler.audit.log import verify_file
from crawler.demo.sites import html
from crawler.demo.web import LocalWeb, Page, Site

from .conftest import ROOT, read_jsonl, write_config

BLOCKER = ROOT / "tests" / "lean"
#: what the blocker hides: the modules of every extra, and what matplotlib would bring
BLOCKED = ("matplotlib", "numpy", "PIL", "redis", "scrapy_redis", "pypdf", "c2pa", "pyarrow")


def lean_env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(BLOCKER) + (os.pathsep + path if path else "")}


def lean_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``polite-crawl ARGS`` as if no extra were installed."""
    return subprocess.run([sys.executable, "-m", "crawler", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, env=lean_env(), check=False)


def missing(what: str, extra: str, module: str) -> str:
    return (f"polite-crawl: {what} needs the [{extra}] extra ({module} is not installed):"
            f" pip install 'polite-crawler[{extra}]'\n")


def test_the_blocker_hides_the_extras_as_if_not_installed():
    probe = ("import importlib, importlib.util, json, sys\n"
             "out = {}\n"
             f"for name in {BLOCKED!r}:\n"
             "    spec = importlib.util.find_spec(name)\n"
             "    try:\n"
             "        importlib.import_module(name + '.x' if name == 'scrapy_redis' else name)\n"
             "        out[name] = 'imported'\n"
             "    except ModuleNotFoundError as exc:\n"
             "        out[name] = [exc.name, str(exc), spec is None]\n"
             "import scrapy, lxml, trafilatura, yaml\n"
             "print(json.dumps(out))\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, env=lean_env(), check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        name: [name, f"No module named {name!r}", True] for name in BLOCKED}
    # and without the blocker they are there (else this test would prove nothing)
    proc = subprocess.run([sys.executable, "-c", "import matplotlib, redis, scrapy_redis"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def lean_crawl(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lean")
    sites = [Site("open", "no reservation", {
        "/robots.txt": Page("User-agent: *\nAllow: /\n", content_type="text/plain"),
        "/": Page(html("home", '<a href="/a.html">a</a> <a href="/reserved.html">r</a>')),
        "/a.html": Page(html("a", "collected without any extra")),
        "/reserved.html": Page(html("r", "SECRET-lean"), headers=(("tdm-reservation", "1"),)),
    })]
    with LocalWeb(sites) as web:
        cfg = write_config(tmp / "job.yaml", seeds=[web.origin("open") + "/"])
        proc = lean_cli("run", str(cfg))
        yield {"web": web, "cfg": cfg, "proc": proc, "out": tmp / "out", "tmp": tmp}


def test_run_crawls_and_the_log_verifies(lean_crawl):
    proc, out = lean_crawl["proc"], lean_crawl["out"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    urls = {d["url"].rsplit("/", 1)[1] for d in read_jsonl(out / "corpus.jsonl")}
    assert urls == {"", "a.html"}
    assert not any(b"SECRET-lean" in f.read_bytes() for f in out.rglob("*") if f.is_file())
    assert verify_file(out / "audit.jsonl").ok
    proc = lean_cli("audit", "verify", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_check_and_revalidate(lean_crawl):
    web, cfg, out = lean_crawl["web"], lean_crawl["cfg"], lean_crawl["out"]
    assert lean_crawl["proc"].returncode == 0
    url = web.origin("open") + "/reserved.html"
    proc = lean_cli("check", url, "--no-fetch", "--config", str(cfg))
    assert proc.returncode == 0, proc.stderr[-2000:]
    (rec,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert rec["url"] == url and rec["decision"] == "allow" and "not fetched" in rec["note"]
    # the page collected before now reserves itself: revalidate reports it
    web.sites["open"].pages["/a.html"] = Page(html("a", "now reserved"),
                                              headers=(("tdm-reservation", "1"),))
    proc = lean_cli("revalidate", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert web.origin("open") + "/a.html" in proc.stdout


def test_transparency_summary_needs_no_extra(lean_crawl):
    assert lean_crawl["proc"].returncode == 0
    dest = lean_crawl["tmp"] / "transparency"
    proc = lean_cli("report", "--transparency", str(lean_crawl["out"]), "--out", str(dest))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert any(dest.iterdir())


def test_report_needs_the_report_extra(lean_crawl):
    dest = lean_crawl["tmp"] / "report"
    proc = lean_cli("report", str(lean_crawl["out"] / "audit.jsonl"), "--out", str(dest))
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        2, "", missing("report", "report", "matplotlib"))
    assert not dest.exists()


def test_cluster_commands_need_the_cluster_extra(tmp_path):
    cfg = write_config(tmp_path / "cluster.yaml", seeds=["http://127.0.0.1:9/"],
                       cluster={"redis_url": "redis://127.0.0.1:9/0"})
    proc = lean_cli("seed", str(cfg))
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        2, "", missing("seed", "cluster", "redis"))
    for args in (["--worker", "w1"], []):
        proc = lean_cli("run", str(cfg), *args)
        assert (proc.returncode, proc.stdout, proc.stderr) == (
            2, "", missing("a cluster: job", "cluster", "redis")), args
    assert not (tmp_path / "out").exists()


def test_an_extra_required_while_the_crawl_starts_is_one_line(tmp_path):
    """A crawl component that requires an extra when it is built (as a document stage would)
    stops the run before anything is sent: one line, exit 2."""
    with LocalWeb([Site("s", "s", {"/": Page(html("s", "s"))})]) as web:
        cfg = write_config(tmp_path / "job.yaml", seeds=[web.origin("s") + "/"], settings={
            "EXTENSIONS": {"needs_documents.NeedsDocuments": 0}})
        proc = lean_cli("run", str(cfg))
        assert web.requests == []
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.splitlines()[-1] == missing(
        "collect: [pdf]", "documents", "pypdf").rstrip("\n")
    assert "Traceback" not in proc.stderr


#: the only modules of the package that need an extra to be imported at all (cluster mode's
#: Scrapy components); everything else imports its extra where it is used, through
#: crawler.extras.require
NEED_AN_EXTRA = {f"crawler.cluster.{m}" for m in (
    "budget", "connection", "gate", "politeness", "queue", "restore", "scheduler", "scripts",
    "seeds", "settings", "sitestore", "state", "store", "worker")}


def test_no_module_imports_an_extra_at_import_time():
    """Every module of the package imported under the blocker: a new top-level import of an
    extra's module fails here (make it lazy, with crawler.extras.require) before a user of the
    base package meets it."""
    code = ("import importlib, json, pkgutil, crawler\n"
            "failed = {}\n"
            "for m in pkgutil.walk_packages(crawler.__path__, 'crawler.'):\n"
            "    if m.name == 'crawler.__main__':\n"
            "        continue\n"
            "    try:\n"
            "        importlib.import_module(m.name)\n"
            "    except ModuleNotFoundError as exc:\n"
            "        failed[m.name] = exc.name\n"
            "try:\n"
            "    from crawler.cluster import apply_cluster_settings\n"
            "except ImportError as exc:\n"
            "    failed['crawler.cluster:apply_cluster_settings'] = str(exc)\n"
            "print(json.dumps(failed))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env=lean_env(), check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    failed = json.loads(proc.stdout)
    # the cluster package's names (the Scrapy add-on's way into cluster mode) say which extra
    assert failed.pop("crawler.cluster:apply_cluster_settings") == missing(
        "cluster mode", "cluster", "redis")[len("polite-crawl: "):-1]
    assert set(failed) == NEED_AN_EXTRA, failed
    assert set(failed.values()) <= {"redis", "scrapy_redis"}
