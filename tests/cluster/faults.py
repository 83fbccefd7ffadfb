"""Fault injection for the cluster: a redis-server of the test's own (restarted empty, frozen,
killed with AOF), worker processes, and a local web that times every request.

A scenario crawls a small web with three workers, injects one fault while requests are in
flight, lets the operator's recovery run (``recover``), and is judged from the web's own log:

* ``duplicates``: page fetches beyond the first (per URL, robots.txt and co. counted apart);
* ``overlaps``: requests that reached an origin while another request to it was being served;
* ``min_gap``: the smallest time between the end of one request to an origin and the arrival
  of the next one (the delay counts from the answer: POLITE_CLUSTER_SPACING "response");
* ``lost``: pages of the web no worker collected;
* ``max_stall``: the longest an origin with pages left waited between two requests;
* ``exits``: each worker's exit status, and ``verified``: ``polite-crawl audit verify`` of each
  worker's log.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crawler.demo.web import LocalWeb, Page, Site

from ..integration.conftest import ROOT, read_jsonl, run_cli, write_config
from .conftest import CLUSTER_SECRET, redis_server_binary

TXT = "text/plain"
JOB = "faults"
DELAY = 0.3          # the job's DOWNLOAD_DELAY: the cluster-wide per-origin delay
PAGE_TIME = 0.3      # every page takes this long to answer: requests are in flight
SLOW_TIME = 5.0      # s0's /p0.html takes this long: on the wire across the fault
SLOW = ("s0", "/p0.html")
TOLERANCE = 0.002    # Redis TIME is read to the millisecond


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisProc:
    """One redis-server on a port that stays the same across restarts (the workers' URL)."""

    def __init__(self, workdir: Path, *, aof: bool = False) -> None:
        binary = redis_server_binary()
        if binary is None:  # pragma: no cover - conftest skips or fails first
            raise RuntimeError("redis-server is not installed")
        self.binary = binary
        self.workdir = workdir
        self.aof = aof
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self) -> RedisProc:
        self.starts += 1
        log = self.workdir / f"redis-{self.port}-{self.starts}.log"
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--dir", str(self.workdir), "--logfile", str(log),
                "--daemonize", "no", "--protected-mode", "yes"]
        args += (["--appendonly", "yes", "--appendfsync", "everysec"] if self.aof
                 else ["--appendonly", "no"])
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                c = self.client()
                try:
                    if c.ping() and not c.info("persistence").get("loading"):
                        return self
                finally:
                    c.close()
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start: "
                           f"{log.read_text(errors='replace')[-500:] if log.exists() else ''}")

    def shutdown_nosave(self) -> None:
        """``SHUTDOWN NOSAVE`` (on a raw socket: redis-py would retry the lost connection)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"SHUTDOWN NOSAVE\r\n")
            try:
                sock.recv(100)
            except OSError:
                pass
        assert self.proc is not None
        self.proc.wait(10)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


class RedisLink:
    """A TCP relay in front of a redis-server: :meth:`cut` drops every connection and refuses
    new ones (Redis unreachable, as over a broken network; the server itself keeps its data
    and its run_id), :meth:`mend` accepts again on the same port."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = upstream_port
        self.port = _free_port()
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.mend()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def mend(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            socks, self._socks = self._socks, []
            listener, self._listener = self._listener, None
        for sock in [*socks, *([listener] if listener else [])]:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class TimedWeb:
    """A LocalWeb whose every request is timed from its arrival to the end of its body."""

    def __init__(self, web: LocalWeb) -> None:
        self.web = web
        self.lock = threading.Lock()
        self.open: dict[int, tuple[str, str, float]] = {}
        self.spans: list[tuple[str, str, float, float]] = []   # site, path, arrival, end
        self.arrivals: list[tuple[str, str, float]] = []
        log = web.log
        timed = self

        def timed_log(entry: Any) -> None:
            with timed.lock:
                timed.open[threading.get_ident()] = (entry.site, entry.path, entry.time)
                timed.arrivals.append((entry.site, entry.path, entry.time))
            log(entry)

        class Ends(list):
            def append(self, item: Any) -> None:
                super().append(item)
                now = time.time()
                with timed.lock:
                    started = timed.open.pop(threading.get_ident(), None)
                    if started is not None:
                        timed.spans.append((*started, now))

        web.log = timed_log  # type: ignore[method-assign]
        web.completed = Ends()


def html(title: str, body: str) -> str:
    return f"<html><head><title>{title}</title></head><body>{body}</body></html>"


def make_web(sites: int = 5, pages: int = 5, *, slow: bool = True) -> TimedWeb:
    """``sites`` origins of ``pages`` pages; the first ones link every page from their index
    (many requests wait at the gate), the last two are chains (index -> p0 -> p1 ...: a link
    dropped is the rest of the chain lost). s0's /p0.html is slow (SLOW_TIME): the scenarios
    inject their fault while it is on the wire."""
    out = []
    for s in range(sites):
        name = f"s{s}"
        chain = s >= sites - 2
        links = ('<a href="/p0.html">p0</a>' if chain else
                 " ".join(f'<a href="/p{i}.html">p{i}</a>' for i in range(pages)))
        content = {
            "/robots.txt": Page("User-agent: *\nDisallow: /private/\n", content_type=TXT),
            "/": Page(html(name, f'{links} <a href="/private/x.html">x</a>'), delay=PAGE_TIME),
        }
        for i in range(pages):
            nxt = (f'<a href="/p{i + 1}.html">next</a>' if i + 1 < pages else "") + \
                ' <a href="/">home</a>'
            is_slow = slow and (name, f"/p{i}.html") == SLOW
            content[f"/p{i}.html"] = Page(html(f"{name} {i}", f"{name} page {i} {nxt}"),
                                          delay=SLOW_TIME if is_slow else PAGE_TIME)
        out.append(Site(name, f"{pages} pages", content))
    return TimedWeb(LocalWeb(out).start())


def expected_pages(web: LocalWeb) -> set[str]:
    return {web.origin(name) + path for name, s in web.sites.items() for path, page in
            s.pages.items() if page.status == 200 and path not in ("/robots.txt",)
            and not path.startswith(("/private/", "/.well-known/"))}


def config(tmp: Path, web: LocalWeb, redis_url: str, **settings: Any) -> Path:
    return write_config(
        tmp / "job.yaml", job=JOB, seeds=[web.origin(n) + "/" for n in web.sites],
        follow="same-host", cluster={"redis_url": redis_url},
        settings={"DOWNLOAD_DELAY": DELAY, "POLITE_CLUSTER_WORKER_TTL": 3,
                  "POLITE_CLUSTER_HEARTBEAT": 1, "POLITE_CLUSTER_IDLE_CLOSE": 1.0,
                  "POLITE_CLUSTER_RESTORE_HOLD": 2,
                  "POLITE_CLUSTER_FETCH_WAIT": 20, "DOWNLOAD_TIMEOUT": 30,
                  "CONCURRENT_REQUESTS": 8, "LOG_LEVEL": "INFO", **settings})


def start_worker(cfg: Path, name: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "POLITE_CLUSTER_SECRET": CLUSTER_SECRET}
    with open(log, "wb") as fh:
        return subprocess.Popen([sys.executable, "-m", "crawler", "run", str(cfg),
                                 "--worker", name], cwd=ROOT, env=env, stdout=fh,
                                stderr=subprocess.STDOUT)


@dataclass
class Outcome:
    duplicates: int = 0
    duplicate_urls: dict[str, int] = field(default_factory=dict)
    file_duplicates: int = 0          # robots.txt and co. fetched more than once per origin
    overlaps: int = 0
    min_gap: float = float("inf")
    min_arrival_gap: float = float("inf")
    lost: list[str] = field(default_factory=list)
    max_stall: float = 0.0
    exits: dict[str, int | None] = field(default_factory=dict)
    verified: dict[str, bool] = field(default_factory=dict)
    seconds: float = 0.0
    logs: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    ctx: Any = None

    def figures(self) -> dict[str, Any]:
        return {"duplicates": self.duplicates, "file_duplicates": self.file_duplicates,
                "overlaps": self.overlaps, "min_gap": round(self.min_gap, 3),
                "min_arrival_gap": round(self.min_arrival_gap, 3), "delay": DELAY,
                "lost": len(self.lost), "max_stall": round(self.max_stall, 1),
                "exits": self.exits, "verified": self.verified,
                "seconds": round(self.seconds, 1)}

    def tail(self, name: str, n: int = 2500) -> str:
        return self.logs.get(name, "")[-n:]


def judge(timed: TimedWeb, out: Path, names: list[str], procs: dict[str, Any],
          logs: dict[str, Path], started: float) -> Outcome:
    web = timed.web
    o = Outcome(seconds=time.monotonic() - started)
    files = ("/robots.txt", "/ai.txt")
    counts = Counter((s, p) for s, p, _t in timed.arrivals)
    for (s, p), n in counts.items():
        if n > 1:
            if p in files or p.startswith("/.well-known/"):
                o.file_duplicates += n - 1
            else:
                o.duplicates += n - 1
                o.duplicate_urls[web.origin(s) + p] = n
    by_site: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for s, _p, a, e in timed.spans:
        by_site[s].append((a, e))
    arrivals: dict[str, list[float]] = defaultdict(list)
    for s, _p, a in timed.arrivals:
        arrivals[s].append(a)
    for s, spans in by_site.items():
        spans.sort()
        for (a0, e0), (a1, _e1) in zip(spans, spans[1:]):
            o.min_gap = min(o.min_gap, a1 - e0)
            if a1 < e0:
                o.overlaps += 1
    for s, times in arrivals.items():
        times.sort()
        for t0, t1 in zip(times, times[1:]):
            o.min_arrival_gap = min(o.min_arrival_gap, t1 - t0)
            o.max_stall = max(o.max_stall, t1 - t0)
    collected = {d["url"] for n in names for d in read_jsonl(out / f"corpus-{n}.jsonl")}
    o.lost = sorted(expected_pages(web) - collected)
    for n in names:
        o.exits[n] = procs[n].returncode
        o.logs[n] = logs[n].read_text(errors="replace")
    # one `polite-crawl audit verify` of every worker's log (it says OK per file)
    paths = {n: out / f"audit-{n}.jsonl" for n in names}
    v = run_cli("audit", "verify", *map(str, paths.values()))
    for n, path in paths.items():
        o.verified[n] = v.returncode == 0 and f"{path}: OK," in v.stdout
    if v.returncode != 0:
        o.notes.append(f"verify: {v.stdout[-600:]} {v.stderr[-300:]}")
    return o


def arrivals_between(timed: TimedWeb, start: float, end: float) -> list[tuple[str, str]]:
    """(site, path) of the requests that reached the web between two times."""
    with timed.lock:
        return [(s, p) for s, p, t in timed.arrivals if start <= t < end]


def when_collected(n: int) -> Callable[[Ctx], bool]:
    """A trigger: ``n`` pages are in the workers' corpora."""
    return lambda ctx: corpus_count(ctx.out, list(ctx.procs)) >= n


def corpus_count(out: Path, names: list[str]) -> int:
    total = 0
    for n in names:
        p = out / f"corpus-{n}.jsonl"
        if p.exists():
            total += sum(1 for line in p.read_bytes().splitlines() if line.endswith(b"}"))
    return total


def slow_in_flight(timed: TimedWeb) -> float | None:
    """Since when (time.time()) the slow page is on the wire, or None."""
    with timed.lock:
        for site, path, start in timed.open.values():
            if (site, path) == SLOW:
                return start
    return None


def when_slow_on_the_wire(for_at_least: float = 0.0) -> Callable[[Ctx], bool]:
    """A trigger: the slow page has been on the wire for ``for_at_least`` seconds."""
    def trigger(ctx: Ctx) -> bool:
        start = slow_in_flight(ctx.web)
        return start is not None and time.time() - start >= for_at_least
    return trigger


@dataclass
class Ctx:
    tmp: Path
    redis: RedisProc
    cfg: Path
    web: TimedWeb
    procs: dict[str, subprocess.Popen[bytes]]
    logs: dict[str, Path]
    out: Path
    #: time.time() when the fault was injected
    fault_at: float = 0.0
    #: whatever a recovery wants the test to see (exit codes of a first round of workers...)
    seen: dict[str, Any] = field(default_factory=dict)


def restore(ctx: Ctx) -> subprocess.CompletedProcess[str]:
    """The operator's recovery: ``polite-crawl seed CONFIG --restore``."""
    done = run_cli("seed", str(ctx.cfg), "--restore")
    ctx.seen["restore"] = done
    return done


def wait_for(procs: dict[str, subprocess.Popen[bytes]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for p in procs.values():
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for p in procs.values():
        if p.poll() is None:
            p.kill()
            p.wait(10)


def scenario(tmp: Path, fault: Callable[[Ctx], None], *,
             recover: Callable[[Ctx], None] | None = None, names: tuple[str, ...] = (
                 "w1", "w2", "w3"), aof: bool = False,
             trigger: Callable[[Ctx], bool] = when_slow_on_the_wire(),
             timeout: float = 120, settings: dict[str, Any] | None = None,
             sites: int = 5, pages: int = 5, slow: bool = True) -> Outcome:
    """Crawl with ``names`` workers; once ``trigger(ctx)``, ``fault(ctx)``; then
    ``recover(ctx)``; wait for every worker (killed after ``timeout``); judge."""
    redis = RedisProc(tmp, aof=aof).start()
    timed = make_web(sites, pages, slow=slow)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    started = time.monotonic()
    try:
        cfg = config(tmp, timed.web, redis.url, **(settings or {}))
        seeded = run_cli("seed", str(cfg))
        assert seeded.returncode == 0, seeded.stderr
        out = tmp / "out"
        logs = {n: tmp / f"{n}.log" for n in names}
        procs = {n: start_worker(cfg, n, logs[n]) for n in names}
        ctx = Ctx(tmp, redis, cfg, timed, procs, logs, out)
        deadline = time.monotonic() + 60
        while not trigger(ctx):
            if time.monotonic() > deadline or all(p.poll() is not None for p in procs.values()):
                raise AssertionError("the crawl did not reach the fault: " + "\n".join(
                    logs[n].read_text(errors="replace")[-1500:] for n in names))
            time.sleep(0.02)
        ctx.fault_at = time.time()
        fault(ctx)
        if recover is not None:
            recover(ctx)
        wait_for(ctx.procs, timeout)
        outcome = judge(timed, out, list(names), ctx.procs, ctx.logs, started)
        outcome.ctx = ctx
        return outcome
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(10)
        timed.web.stop()
        redis.stop()


def dump(o: Outcome) -> str:
    return json.dumps(o.figures(), sort_keys=True)
