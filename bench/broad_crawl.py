"""A broad crawl: N origins (default 100,000) on loopback, addresses across 127.0.0.0/8.

One server process (asyncio, HTTP/1.1 keep-alive) answers for every origin
``http://127.A.B.C:PORT``: its robots.txt is one of the real robots.txt files of
``tests/data/real_robots`` (those without Crawl-delay / Request-rate, taken in turn: no delay
beyond the per-origin download slot; and without License lines, which name real hosts),
tdmrep.json and ai.txt answer 404, and it has 1 to 3 pages (``/`` links to 0-2 more). Both
crawlers start from the N roots, with the same Scrapy settings (64 concurrent requests, one per
origin, no delay, no AutoThrottle, Scrapy's plain priority queue: see ``--priority-queue``):

* plain Scrapy with ``ROBOTSTXT_OBEY=True`` (``bench/plain_spider.py``, a ``{url, len}`` item
  per page, every link followed);
* ``polite-crawl run`` with every signal, the write-ahead audit log and the corpus, the site
  cache bounded at ``--cache-mib`` MiB (``POLITE_SITE_CACHE_MAX_BYTES``; default 16 MiB, far
  below what N origins take, so that the bound is what is measured).

Prints for each: pages (items) and pages/s, CPU ms per page, peak RSS, RSS per origin, RSS
samples along the crawl (every 10 % of the expected responses), the server's CPU time, and for
the polite crawl the site cache's hit rate, entries, bytes and evictions; then the ratio of
pages/s.

The server binds 0.0.0.0 (the only way one socket hears all of 127.0.0.0/8) and closes, unread,
every connection that does not come from and go to a loopback address.

    python bench/broad_crawl.py [--origins 100000] [--cache-mib 16] [--only plain|polite]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from crawl_throughput import CPU_EXTENSION, _env, stats_of  # noqa: E402

FILLER = "<p>" + "Lorem ipsum dolor sit amet. " * 40 + "</p>"
SETTINGS = {
    "DOWNLOAD_DELAY": 0,
    "AUTOTHROTTLE_ENABLED": False,
    "CONCURRENT_REQUESTS": 64,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 1,
    "LOG_LEVEL": "INFO",
    "TELNETCONSOLE_ENABLED": False,
    "COOKIES_ENABLED": False,
    "DOWNLOAD_TIMEOUT": 60,
    "RETRY_ENABLED": False,
    "LOGSTATS_INTERVAL": float(os.environ.get("BENCH_LOGSTATS", "600")),
}


def address(i: int) -> str:
    """The i-th origin's address: 127.A.B.C with B, C in 1..254 (A from 1)."""
    return f"127.{1 + i // (254 * 254)}.{1 + i // 254 % 254}.{1 + i % 254}"


def index_of(addr: str) -> int:
    _, a, b, c = (int(x) for x in addr.split("."))
    return (a - 1) * 254 * 254 + (b - 1) * 254 + (c - 1)


def robots_bodies() -> list[bytes]:
    data = ROOT / "tests" / "data" / "real_robots"
    files = json.loads((data / "manifest.json").read_text())["files"]
    out = []
    for f in sorted(files, key=lambda f: f["file"]):
        if f["kind"] != "robots":
            continue
        body = (data / f["file"]).read_bytes()
        low = body.lower()
        if (b"crawl-delay" in low or b"request-rate" in low or b"license" in low
                or len(body) > 64_000):
            continue  # no delay beyond the slot, no RSL licence on another (real) host
        out.append(body)
    return out


def pages_of(i: int) -> int:
    return 1 + (i * 7919) % 3  # 1, 2 or 3 pages


# -- the server ---------------------------------------------------------------------------------
def serve(port: int, n: int, ready: Path) -> None:
    robots = robots_bodies()

    def page(i: int, k: int) -> bytes:
        kids = [j for j in (2 * k + 1, 2 * k + 2) if j < pages_of(i)]
        links = "".join(f'<a href="/p/{j}.html">page {j}</a> ' for j in kids)
        return (f"<html><head><title>Origin {i} page {k}</title></head><body><h1>{i}/{k}</h1>"
                f"{FILLER}{links}</body></html>").encode()

    def answer(i: int, path: str) -> tuple[int, bytes, str]:
        if i >= n:
            return 404, b"no such origin", "text/plain"
        if path == "/robots.txt":
            return 200, robots[i % len(robots)], "text/plain"
        if path == "/":
            return 200, page(i, 0), "text/html; charset=utf-8"
        if path.startswith("/p/") and path.endswith(".html"):
            try:
                k = int(path[3:-5])
            except ValueError:
                k = -1
            if 0 < k < pages_of(i):
                return 200, page(i, k), "text/html; charset=utf-8"
        return 404, b"<html><body>404 Not Found</body></html>", "text/html"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        local = writer.get_extra_info("sockname")[0]
        peer = writer.get_extra_info("peername")[0]
        if not (local.startswith("127.") and peer.startswith("127.")):
            writer.close()
            return
        i = index_of(local)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line = head.split(b"\r\n", 1)[0].decode("latin-1")
                method, target = line.split(" ")[:2]
                status, body, ctype = answer(i, target.split("?", 1)[0])
                reason = {200: "OK", 404: "Not Found"}[status]
                writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                             f"Content-Length: {len(body)}\r\n\r\n".encode()
                             + (body if method != "HEAD" else b""))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, KeyError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", port))
        server = await asyncio.start_server(handle, sock=sock, backlog=1024)
        ready.write_text("ready")
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the crawls -------------------------------------------------------------------------------
def run(kind: str, seeds: list[str], tmp: Path, cache_mib: float, every: int) -> dict:
    settings = {**SETTINGS, "BENCH_RSS_EVERY": every}
    if kind == "plain":
        (tmp / "seeds.txt").write_text("\n".join(seeds) + "\n")
        args = [sys.executable, "-m", "scrapy", "runspider",
                str(ROOT / "bench" / "plain_spider.py"), "-a", f"seeds_file={tmp / 'seeds.txt'}",
                "-a", "mode=len",
                "-s", "ROBOTSTXT_OBEY=True", "-s",
                "USER_AGENT=BenchBot/1.0 (+https://example.org/bot)",
                "-s", f"EXTENSIONS={CPU_EXTENSION!r}".replace("'", '"'),
                "-o", str(tmp / "plain.jsonl")]
        for k, v in settings.items():
            args += ["-s", f"{k}={v}"]
        cwd = tmp
    else:
        cfg = {"job": "broad", "user_agent": "BenchBot/1.0 (+https://example.org/bot)",
               "seeds": seeds, "allow_private_networks": True,
               "output_dir": str(tmp / "polite"),
               "settings": {**settings, "EXTENSIONS": CPU_EXTENSION,
                            "POLITE_SITE_CACHE_MAX_BYTES": int(cache_mib * 2**20)}}
        (tmp / "broad.yaml").write_text(yaml.safe_dump(cfg))
        args = [sys.executable, "-m", "crawler", "run", str(tmp / "broad.yaml")]
        cwd = ROOT
    t0 = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=_env())
    wall = time.perf_counter() - t0
    if os.environ.get("BENCH_LOG"):
        Path(os.environ["BENCH_LOG"] + f".{kind}").write_text(proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} crawl failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    st = stats_of(proc.stderr)
    st["bench/wall"] = wall
    return st


def report(kind: str, st: dict, n: int) -> float:
    pages = st.get("item_scraped_count", 0)
    elapsed = st.get("elapsed_time_seconds") or st["bench/wall"]
    peak = st.get("bench/maxrss_kib", 0) / 1024
    cpu = st.get("bench/cpu_seconds", float("nan"))
    print(f"{kind:7} {pages:8d} pages {st.get('response_received_count', 0):8d} responses "
          f"{elapsed:8.1f} s {pages / elapsed:7.1f} pages/s {1000 * cpu / max(pages, 1):6.2f} "
          f"CPU ms/page  peak RSS {peak:7.1f} MiB ({peak * 2**20 / n:6.0f} B/origin)")
    samples = st.get("bench/rss") or []
    if samples:
        print("        RSS along the crawl (responses: MiB): "
              + ", ".join(f"{int(r)}: {m:.0f}" for r, m in samples))
    if kind == "polite":
        hit, miss = st.get("polite/site/cache/hit", 0), st.get("polite/site/cache/miss", 0)
        print(f"        site cache: hit rate {hit / max(hit + miss, 1):.3f} ({hit} hits, {miss} "
              f"fetches), {st.get('polite/site/cache/entries')} entries, "
              f"{st.get('polite/site/cache/bytes', 0) / 2**20:.1f} MiB held at the end, "
              f"{st.get('polite/site/cache/evicted', 0)} evicted, "
              f"{st.get('polite/site/cache/rebuilt', 0)} rebuilt from their bytes")
    return pages / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--origins", type=int, default=100_000)
    ap.add_argument("--cache-mib", type=float, default=16.0)
    ap.add_argument("--only", choices=["plain", "polite"])
    ap.add_argument("--priority-queue", default="scrapy.pqueues.ScrapyPriorityQueue",
                    help="SCHEDULER_PRIORITY_QUEUE of both crawls (default: Scrapy's plain "
                         "priority queue; Scrapy's default DownloaderAwarePriorityQueue looks "
                         "at every download slot on every pop, so with 100,000 origins "
                         "waiting both crawlers spend their time there: plain Scrapy had "
                         "not finished after 36 CPU minutes)")
    ap.add_argument("--serve", nargs=3, metavar=("PORT", "N", "READY"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    SETTINGS["SCHEDULER_PRIORITY_QUEUE"] = args.priority_queue
    if args.serve:
        serve(int(args.serve[0]), int(args.serve[1]), Path(args.serve[2]))
        return
    n = args.origins
    port = free_port()
    seeds = [f"http://{address(i)}:{port}/" for i in range(n)]
    expected = sum(pages_of(i) for i in range(n))
    with tempfile.TemporaryDirectory() as d:
        ready = Path(d) / "ready"
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(port), str(n),
                                   str(ready)])
        try:
            for _ in range(100):
                if ready.exists():
                    break
                time.sleep(0.1)
            print(f"{n} origins on 127.0.0.0/8 port {port}, {expected} pages; robots.txt: the "
                  f"{len(robots_bodies())} real files without Crawl-delay or License, in turn; "
                  f"polite site cache bound {args.cache_mib:g} MiB", flush=True)
            rates = {}
            for kind in ("plain", "polite"):
                if args.only and kind != args.only:
                    continue
                tmp = Path(d) / kind
                tmp.mkdir()
                every = max(1, (expected + (4 if kind == "polite" else 2) * n) // 10)
                cpu0 = _cpu_of(server.pid)
                st = run(kind, seeds, tmp, args.cache_mib, every)
                rates[kind] = report(kind, st, n)
                print(f"        server CPU {_cpu_of(server.pid) - cpu0:.1f} s", flush=True)
            if len(rates) == 2:
                ratio = rates["polite"] / rates["plain"]
                print(f"ratio polite/plain pages per second: {ratio:.2f}")
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
