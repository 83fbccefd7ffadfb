"""A real ``redis-server`` for the cluster tests, on a free loopback port, no persistence.

Outside CI a missing ``redis-server`` skips the cluster tests with a clear message; in CI
(``CI`` set) it fails them: there the server must be installed (.ci/run installs the
distribution's package).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawler.cluster.connection import CountingRedis, redis_client

#: The cluster secret the tests' workers share (shared reservations are authenticated with
#: it; without one nothing is shared through Redis).
CLUSTER_SECRET = "test-cluster-secret-not-for-production"


def seeded(client: CountingRedis, job: str = "t") -> str:
    """The job's epoch, written once as ``polite-crawl seed`` does (a worker refuses a job
    without one, and every grant, pop, push and heartbeat checks it)."""
    from crawler.cluster.state import read_epoch, write_epoch

    epoch = read_epoch(client, job)
    return epoch.id if epoch else str(write_epoch(client, job, "seed"))


def seeded_url(url: str, job: str = "t") -> str:
    client = redis_client(url)
    try:
        return seeded(client, job)
    finally:
        client.close()


def as_if_dead(client: CountingRedis, job: str, worker: str) -> None:
    """Make ``worker`` look dead, as it would a TTL after it was killed while Redis kept
    answering the others: its presence key gone, its last beat a minute old, Redis serving
    beats without a gap for longer than that."""
    from crawler.cluster.keys import JobKeys

    keys = JobKeys(job)
    sec, usec = client.time()
    now = int(sec) * 1000 + int(usec) // 1000
    client.delete(keys.alive(worker))
    client.hset(keys.beats, worker, f"{now - 60_000}:3000")
    client.hset(keys.clock, mapping={"last": now, "since": now - 120_000})


@pytest.fixture(autouse=True)
def cluster_secret_env(monkeypatch: pytest.MonkeyPatch) -> str:
    """Every in-process worker of a cluster test has the secret in its environment (a test
    about a missing secret deletes it)."""
    monkeypatch.setenv("POLITE_CLUSTER_SECRET", CLUSTER_SECRET)
    return CLUSTER_SECRET


def redis_server_binary() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """One ``redis-server`` process; ``url`` points at database 0."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        last = ""
        for _attempt in range(5):  # the free port may be taken between probe and bind
            self.port = _free_port()
            log = self.workdir / f"redis-{self.port}.log"
            self.proc = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
                 "--logfile", str(log), "--daemonize", "no", "--protected-mode", "yes"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                probe = redis_client(self.url)
                try:
                    if probe.ping():
                        return self
                except Exception:  # noqa: BLE001 - not up yet
                    time.sleep(0.05)
                finally:
                    probe.close()
            last = log.read_text(errors="replace")[-500:] if log.exists() else ""
            self.stop()
        raise RuntimeError(f"redis-server did not start: {last}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    binary = redis_server_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed: the cluster tests need it in CI "
                        "(apt-get install redis-server)")
        pytest.skip("redis-server is not installed: cluster tests skipped "
                    "(apt-get install redis-server to run them)")
    server = RedisServer(binary, tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The server's URL, with an empty database for each test."""
    client = redis_client(redis_server.url)
    client.flushall()
    try:
        yield redis_server.url
    finally:
        client.flushall()
        client.close()


@pytest.fixture
def rclient(redis_url: str) -> Iterator[CountingRedis]:
    client = redis_client(redis_url)
    try:
        yield client
    finally:
        client.close()
