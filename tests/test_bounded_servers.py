"""The servers we ship stay bounded (issue 18 item 7): connections, buffered bytes, time.

Real servers on 127.0.0.1 and raw sockets, so a test can send what no polite client would: a
body shorter than its Content-Length, a stalled body, a negative length, too many connections.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawler.demo import web as demo_web
from crawler.demo.web import LocalWeb, Page, Site
from crawler.registry.entries import parse_entry
from crawler.registry.index import RegistryIndex
from crawler.registry.server import MAX_BODY_BYTES, RegistryServer
from crawler.registry.spawning import SPAWNING_PATH

ROOT = Path(__file__).resolve().parent.parent
LIST = "example.com\nhttps://origin.test\n"
#: RSS growth the memory test allows the registry server (the issue's bound is 300 MiB; with
#: the default 64 MiB body budget the server needs well under half of it)
RSS_GROWTH_LIMIT = 150 * 2**20


def backend() -> RegistryIndex:
    return RegistryIndex([parse_entry(line) for line in LIST.split()])


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def read_all(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    """Everything until the server closes (or the socket timeout, or ``limit`` bytes)."""
    data = b""
    try:
        while len(data) < limit:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (TimeoutError, ConnectionError):
        pass
    return data


def status_of(answer: bytes) -> int | None:
    if not answer.startswith(b"HTTP/1."):
        return None
    return int(answer.split(b" ", 2)[1])


def head(answer: bytes, name: str) -> str | None:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.lower().encode():
            return value.strip().decode()
    return None


def exchange(port: int, request: bytes, *, half_close: bool = True,
             timeout: float = 5.0) -> bytes:
    """Send ``request`` (then EOF unless ``half_close`` is False) and read the answer."""
    with connect(port, timeout) as sock:
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return read_all(sock)


def post_head(path: str, length: str | None, extra: str = "") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: text/plain"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if extra:
        lines.append(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# -- the registry server -----------------------------------------------------------------------


@pytest.mark.parametrize(("length", "body", "status"), [
    ("100", b"https://example.com/\n", 400),         # ends before its Content-Length
    (None, b"https://example.com/\n", 411),
    ("-1", b"https://example.com/\n", 400),
    ("abc", b"https://example.com/\n", 400),
    ("21", b"https://example.com/\n", 200),          # exact: still answered
])
def test_registry_length_framing(length: str | None, body: bytes, status: int) -> None:
    with RegistryServer(backend()) as server:
        answer = exchange(server.port, post_head(SPAWNING_PATH, length) + body)
    assert status_of(answer) == status, answer[:300]
    if status == 400 and length == "100":
        assert b"ended after 21 of 100 bytes" in answer


def test_registry_cuts_off_a_stalled_body() -> None:
    with RegistryServer(backend(), read_timeout=1.0) as server, \
            connect(server.port, timeout=8) as sock:
        sock.sendall(post_head(SPAWNING_PATH, "1000") + b"https://example.com/\n")
        start = time.monotonic()
        answer = read_all(sock)  # the rest of the body never comes; the socket stays open
        took = time.monotonic() - start
    assert status_of(answer) == 408, answer[:300]
    assert 0.8 <= took < 4, took


def test_registry_cuts_off_a_body_trickled_byte_by_byte() -> None:
    # each read would be in time; the body as a whole is not
    with RegistryServer(backend(), read_timeout=1.0) as server, \
            connect(server.port, timeout=8) as sock:
        sock.sendall(post_head(SPAWNING_PATH, "1000"))
        start = time.monotonic()
        answer = b""
        try:
            for _ in range(60):
                sock.send(b"a")
                time.sleep(0.1)
                sock.setblocking(False)
                try:
                    answer = sock.recv(65536)
                except BlockingIOError:
                    pass
                finally:
                    sock.setblocking(True)
                    sock.settimeout(8)
                if answer:
                    break
        except ConnectionError:
            pass
        answer += read_all(sock)
        took = time.monotonic() - start
    assert status_of(answer) == 408, answer[:300]
    assert took < 4, took


def test_registry_closes_a_connection_stalled_in_its_headers() -> None:
    with RegistryServer(backend(), read_timeout=1.0) as server, \
            connect(server.port, timeout=8) as sock:
        sock.sendall(b"POST " + SPAWNING_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n")
        start = time.monotonic()
        answer = read_all(sock)
        took = time.monotonic() - start
    assert answer == b"" or status_of(answer) in (400, 408)
    assert took < 4, took


def test_registry_refuses_connection_17_while_16_stall() -> None:
    with RegistryServer(backend()) as server:  # the defaults: 16 connections, 10 s reads
        stalled = [connect(server.port) for _ in range(16)]
        try:
            for sock in stalled:  # each has begun a request and stalls in its headers
                sock.sendall(b"GET /health HTTP/1.1\r\n")
            start = time.monotonic()
            for _ in range(3):
                answer = exchange(server.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
                                  half_close=False, timeout=4)
                assert status_of(answer) == 503, answer[:300]
                assert head(answer, "Retry-After") is not None
            assert time.monotonic() - start < 2  # refused at once, not after a wait
            assert server.refused_connections == 3
        finally:
            for sock in stalled:
                sock.close()
        deadline = time.monotonic() + 5
        while True:  # the slots come free once the server sees the stalled clients go
            answer = exchange(server.port, b"GET /health HTTP/1.1\r\nHost: x\r\n"
                                           b"Connection: close\r\n\r\n", half_close=False)
            if status_of(answer) == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert status_of(answer) == 200


def test_registry_bounds_the_bytes_buffered_across_requests() -> None:
    with RegistryServer(backend(), max_buffer_bytes=MAX_BODY_BYTES,
                        read_timeout=6.0) as server, connect(server.port) as first:
        first.sendall(post_head(SPAWNING_PATH, str(MAX_BODY_BYTES - 10)) + b"https://a.test/\n")
        deadline = time.monotonic() + 5
        while server._buffered == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        answer = exchange(server.port, post_head(SPAWNING_PATH, "21") + b"https://example.com/\n")
        assert status_of(answer) == 503, answer[:300]
        assert head(answer, "Retry-After") is not None
        first.close()
        deadline = time.monotonic() + 5
        while server._buffered and time.monotonic() < deadline:
            time.sleep(0.01)
        answer = exchange(server.port, post_head(SPAWNING_PATH, "21") + b"https://example.com/\n")
    assert status_of(answer) == 200, answer[:300]


def _rss(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


@pytest.fixture
def registry_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """``polite-crawl registry serve`` with its default limits, in a subprocess."""
    (tmp_path / "list.txt").write_text(LIST, encoding="utf-8")
    code = "import sys; from crawler.cli.main import main; sys.exit(main())"
    proc = subprocess.Popen([sys.executable, "-c", code, "registry", "serve",
                             str(tmp_path / "list.txt"), "--port", "0"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stdout.readline()
        assert " at http://127.0.0.1:" in line, proc.stderr.read()
        port = int(line.split(" at http://127.0.0.1:", 1)[1].split("/", 1)[0])
        yield proc, port
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_registry_memory_stays_bounded_under_20_slow_large_bodies(registry_process) -> None:
    proc, port = registry_process
    time.sleep(0.3)
    base = _rss(proc.pid)
    piece = b"https://example.com/some/long/path\n" * (2**20 // 35)  # ~1 MiB
    stop = threading.Event()
    answers: list[bytes] = []
    lock = threading.Lock()

    def client() -> None:
        with connect(port, timeout=5) as sock:
            answer = b""
            try:
                sock.sendall(post_head(SPAWNING_PATH, str(MAX_BODY_BYTES)))
                sent = 0
                while sent + len(piece) < MAX_BODY_BYTES and not stop.is_set():
                    sock.sendall(piece)  # just under 16 MiB, in ~1 MiB steps, then stall
                    sent += len(piece)
                    time.sleep(0.05)
            except OSError:  # refused: the server closed its side
                pass
            sock.settimeout(0.2)
            while not stop.is_set():  # until an answer, EOF, a reset, or the end
                try:
                    answer = sock.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    pass
                break
            with lock:
                answers.append(answer)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(20)]
    for t in threads:
        t.start()
    peak = base
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and any(t.is_alive() for t in threads):
        peak = max(peak, _rss(proc.pid))
        with lock:
            if len(answers) >= 16:  # all refused but the four the budget admits
                break
        time.sleep(0.05)
    time.sleep(1.5)  # the admitted ones have sent (nearly) all they will
    peak = max(peak, _rss(proc.pid), _rss(proc.pid, "VmHWM"))
    stop.set()
    for t in threads:
        t.join(timeout=5)
    growth = peak - base
    print(f"registry server RSS: base {base / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB, "
          f"growth {growth / 2**20:.1f} MiB")
    assert growth < RSS_GROWTH_LIMIT, f"RSS grew {growth / 2**20:.0f} MiB"
    assert sum(status_of(a) == 503 for a in answers) >= 12, [a[:40] for a in answers]
    assert proc.poll() is None


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_registry_many_short_lines_cost_no_memory_per_line(registry_process) -> None:
    # 16 MiB of blank and two-character lines: counted in blocks and answered 413, never held
    # as millions of strings at once
    proc, port = registry_process
    time.sleep(0.3)
    base = _rss(proc.pid)
    body = b"  \nab\n" * (MAX_BODY_BYTES // 6)
    answer = exchange(port, post_head(SPAWNING_PATH, str(len(body))) + body, timeout=30)
    growth = _rss(proc.pid, "VmHWM") - base
    print(f"registry server RSS growth for one body of short lines: {growth / 2**20:.1f} MiB")
    assert status_of(answer) == 413, answer[:300]
    assert f"{MAX_BODY_BYTES // 6} URLs; at most 10000".encode() in answer
    assert growth < 80 * 2**20, f"RSS grew {growth / 2**20:.0f} MiB"


# -- the demo web (crawler.demo.web) -----------------------------------------------------------


@pytest.fixture
def local_web() -> Iterator[LocalWeb]:
    with LocalWeb([Site("a", "", pages={"/form": Page(b"thanks", content_type="text/plain")})]
                  ) as web:
        yield web


@pytest.mark.parametrize(("length", "body", "status"), [
    ("-1", b"abc", 400),
    (None, b"", 411),
    ("abc", b"abc", 400),
    ("1e3", b"abc", 400),
    (str(2**20 + 1), b"abc", 413),
    ("100", b"abc", 400),  # ends before its Content-Length
    ("3", b"abc", 200),
    ("0", b"", 200),
])
def test_demo_web_post_lengths(local_web: LocalWeb, length: str | None, body: bytes,
                               status: int) -> None:
    answer = exchange(local_web.ports["a"], post_head("/form", length) + body, timeout=4)
    assert status_of(answer) == status, answer[:300]
    if status == 200:
        assert answer.endswith(b"thanks")
    assert [r.method for r in local_web.requests] == ["POST"]


def test_demo_web_post_cuts_off_a_stalled_body(local_web: LocalWeb,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_web, "POST_TIMEOUT", 1.0)
    with connect(local_web.ports["a"], timeout=8) as sock:
        sock.sendall(post_head("/form", "1000") + b"abc")
        start = time.monotonic()
        answer = read_all(sock)
        took = time.monotonic() - start
    assert status_of(answer) == 408, answer[:300]
    assert 0.8 <= took < 4, took


def test_demo_web_get_and_head_unchanged(local_web: LocalWeb) -> None:
    answer = exchange(local_web.ports["a"], b"GET /form HTTP/1.1\r\nHost: x\r\n"
                                            b"Connection: close\r\n\r\n")
    assert status_of(answer) == 200 and answer.endswith(b"thanks")
