"""A worker name is one live process per job, on any machine: a twin is refused before it
opens anything (the live worker's audit log and its head are left alone), in one line, exit 2.

The live worker is simulated by its presence key set directly in Redis (as a worker on another
machine, with another output_dir, would hold it): the per-file lock cannot see it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crawler.audit.log import AuditWriter, head_path
from crawler.cluster.keys import JobKeys
from crawler.cluster.worker import Presence, WorkerNameTaken, check_name_free

from ..integration.conftest import run_cli, write_config
from .conftest import seeded

JOB = "wtest"


def cluster_config(tmp: Path, redis_url: str) -> Path:
    return write_config(tmp / "job.yaml", job=JOB, seeds=["http://127.0.0.1:9/"],
                        cluster={"redis_url": redis_url},
                        settings={"POLITE_CLUSTER_WORKER_TTL": 3,
                                  "POLITE_CLUSTER_HEARTBEAT": 0.5,
                                  "POLITE_CLUSTER_IDLE_CLOSE": 0.5})


def a_previous_audit_log(out: Path, name: str) -> Path:
    """A valid audit log and head, as an earlier run of the worker left them."""
    path = out / f"audit-{name}.jsonl"
    writer = AuditWriter(path, job=JOB)
    writer.write(url="http://127.0.0.1:9/", decision="allow", reasons=[],
                 policy_sha256="0" * 64)
    writer.close()
    return path


def snapshot(path: Path) -> dict[str, tuple[bytes, int] | None]:
    out = {}
    for p in (path, head_path(path)):
        out[str(p)] = (p.read_bytes(), os.stat(p).st_mtime_ns) if p.exists() else None
    return out


def test_a_live_name_is_refused_before_anything_is_opened(tmp_path, redis_url, rclient):
    cfg = cluster_config(tmp_path, redis_url)
    audit = a_previous_audit_log(tmp_path / "out", "a")
    before = snapshot(audit)
    assert before[str(head_path(audit))] is not None
    keys = JobKeys(JOB)
    rclient.set(keys.alive("a"), b"1", px=60_000)   # worker a is alive, elsewhere
    rclient.sadd(keys.workers, "a")

    proc = run_cli("run", str(cfg), "--worker", "a", timeout=60)

    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert "'a'" in lines[0] and "alive" in lines[0] and JOB in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert snapshot(audit) == before                  # log and head: same bytes, same mtime
    assert not (tmp_path / "out" / "corpus-a.jsonl").exists()
    assert rclient.exists(keys.alive("a"))            # the live worker's name is still its own


def test_a_name_without_a_live_worker_is_free(redis_url, rclient):
    seeded(rclient, JOB)                              # the job's epoch (polite-crawl seed)
    check_name_free(redis_url, JOB, "a")              # never used
    keys = JobKeys(JOB)
    presence = Presence(rclient, keys, "a", ttl=30, epoch=seeded(rclient, JOB))
    assert presence.claim()
    with pytest.raises(WorkerNameTaken, match="worker 'a' of job 'wtest' is alive"):
        check_name_free(redis_url, JOB, "a")
    check_name_free(redis_url, JOB, "b")              # other names are not affected
    presence.leave()                                  # a clean stop frees it at once
    check_name_free(redis_url, JOB, "a")


def test_an_unreachable_redis_is_one_line(tmp_path):
    cfg = cluster_config(tmp_path, "redis://127.0.0.1:9/0")
    proc = run_cli("run", str(cfg), "--worker", "a", timeout=60)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "cannot reach Redis" in lines[0], proc.stderr[-2000:]
    assert not (tmp_path / "out" / "audit-a.jsonl").exists()
