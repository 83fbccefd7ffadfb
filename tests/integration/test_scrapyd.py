"""Deployment to scrapyd: the egg scrapyd-deploy builds runs the corpus spider with a config."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from crawler.audit.log import verify_file
from crawler.demo.sites import demo_sites
from crawler.demo.web import LocalWeb

from .conftest import ROOT, read_jsonl, write_config

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url: str, data: dict | None = None, files: dict | None = None) -> dict:
    if files:
        boundary = uuid.uuid4().hex
        body = b""
        for k, v in (data or {}).items():
            body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n"
                     f"{v}\r\n").encode()
        for k, (name, content) in files.items():
            body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"; "
                     f"filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                     ).encode() + content + b"\r\n"
        body += f"--{boundary}--\r\n".encode()
        req = urllib.request.Request(url, body, {
            "Content-Type": f"multipart/form-data; boundary={boundary}"})
    elif data is not None:
        req = urllib.request.Request(url, urllib.parse.urlencode(data).encode())
    else:
        req = urllib.request.Request(url)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.mark.skipif(not (BIN / "scrapyd").exists() or not (BIN / "scrapyd-deploy").exists(),
                    reason="scrapyd and scrapyd-client are test dependencies (pip install -e "
                           "'.[test]')")
def test_deploy_and_schedule_on_scrapyd(tmp_path):
    egg = tmp_path / "polite.egg"
    build = subprocess.run([str(BIN / "scrapyd-deploy"), "--build-egg", str(egg)], cwd=ROOT,
                           capture_output=True, text=True, timeout=120, check=False)
    for junk in ("build", "project.egg-info"):
        shutil.rmtree(ROOT / junk, ignore_errors=True)
    assert build.returncode == 0 and egg.exists(), build.stderr[-2000:]
    port = free_port()
    (tmp_path / "scrapyd.conf").write_text(
        f"[scrapyd]\nbind_address = 127.0.0.1\nhttp_port = {port}\nmax_proc = 1\n"
        f"eggs_dir = {tmp_path / 'eggs'}\nlogs_dir = {tmp_path / 'logs'}\n"
        f"dbs_dir = {tmp_path / 'dbs'}\nitems_dir =\n")
    server = subprocess.Popen([str(BIN / "scrapyd")], cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                call(base + "/daemonstatus.json")
                break
            except OSError:
                time.sleep(0.1)
        added = call(base + "/addversion.json", {"project": "polite-crawler", "version": "1"},
                     {"egg": ("polite.egg", egg.read_bytes())})
        assert added["status"] == "ok", added
        assert added["spiders"] >= 4  # corpus, check, survey, revalidate
        with LocalWeb([s for s in demo_sites() if s.name in ("open", "robots-partial")]) as web:
            cfg = write_config(tmp_path / "job.yaml",
                               seeds=[web.origin(n) + "/" for n in web.sites])
            job = call(base + "/schedule.json", {"project": "polite-crawler",
                                                  "spider": "corpus", "config": str(cfg)})
            assert job["status"] == "ok", job
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                jobs = call(base + "/listjobs.json?project=polite-crawler")
                if any(j["id"] == job["jobid"] for j in jobs["finished"]):
                    break
                time.sleep(0.3)
            else:
                pytest.fail("the scrapyd job did not finish")
            assert "/private/diary.html" not in web.paths("robots-partial")
    finally:
        server.terminate()
        server.wait(timeout=10)
    out = tmp_path / "out"
    assert len(read_jsonl(out / "corpus.jsonl")) == 6
    assert verify_file(out / "audit.jsonl").ok
