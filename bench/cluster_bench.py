"""Cluster mode throughput: 1, 2 and 3 workers, many origins versus one origin.

Serves a local web on 127.0.0.1 and starts a throw-away ``redis-server`` (``--save ''``), then
for each scenario and worker count: resets the job, ``polite-crawl seed``, starts N
``polite-crawl run CONFIG --worker wN`` processes and waits for them. Two webs:

* **many origins** (default 40 sites x 12 pages, delay 0.1 s): the cluster-wide per-origin
  limit is far above what one worker can do, so more workers should crawl faster (up to the
  machine's cores: every worker is a Python process);
* **one origin** (60 pages, delay 0.1 s): the per-origin delay is the limit, for the whole
  cluster: more workers must not crawl it faster.

Prints, per run: pages collected, seconds from the first to the last request the server saw
(process start-up and the idle wait before closing excluded), pages per second, Redis round
trips per page (``polite/cluster/redis_calls`` of all workers / pages: every round trip,
heartbeats and idle polling included), gate tries per grant, the smallest gap between two
requests to one origin the server saw; then (unless ``--no-details``) the round trips by kind
and without the background ones, what the step scripts carried, the Redis server's main-thread
CPU (``INFO cpu``), network (``INFO stats``) and ``INFO commandstats`` per page, and its memory
by key kind (``MEMORY USAGE``) at the end and per queued request at the queue's peak.

    python bench/cluster_bench.py [--origins 40] [--pages 12] [--one-origin-pages 60]
                                  [--delay 0.1] [--workers 1 2 3] [--no-details]
                                  [--skip-one-origin]

Needs the lead's wiring (``polite-crawl seed`` and ``run --worker``) and ``redis-server``.

A run on a 2-CPU machine (LocalWeb and Redis on the same CPUs, other jobs running), before
batching (one script call per grant, release, link and pop) and after (one step script per
page carries the grant, the last release, the links found and the next pops):

    scenario                      workers  pages  span s  pages/s redis/page tries/grant min gap s
    before: many origins (40 x 13)      1    520    4.16    125.1        7.8        1.21     0.103
    before: many origins (40 x 13)      2    520    3.59    144.9        8.9        1.79     0.103
    after:  many origins (40 x 13)      1    520    3.38    153.9        2.1        1.00     0.107
    after:  many origins (40 x 13)      2    520    3.75    138.8        2.8        1.28     0.103
    after:  many origins (40 x 13)      3    520    4.59    113.3        3.5        1.48     0.106
    after:  one origin (61 pages)       1     61    7.28      8.4        3.3        1.00     0.105
    after:  one origin (61 pages)       2     61    7.07      8.6        6.0        2.20     0.103

2026-12-02, the same machine and load (three runs each way, ranges): gate tries that came back
for nothing cut (a grant made ahead for a send at the delay's end, the turn after a delay
booked, waits behind a lease from the last lease's time), four pops ahead, link-only flushes
later:

    scenario                      workers  pages  span s  pages/s redis/page tries/grant min gap s
    before: many origins (40 x 13)      1    520    3.4-3.9  133-154   2.1-2.2        1.00   >=0.103
    before: many origins (40 x 13)      2    520    3.1-3.3  159-167   2.6-2.7   1.26-1.34   >=0.103
    before: many origins (40 x 13)      3    520    3.6-4.0  131-146   3.2-3.4   1.58-1.64   >=0.105
    after:  many origins (40 x 13)      1    520    3.3-3.5  149-159       2.0        1.00   >=0.104
    after:  many origins (40 x 13)      2    520    3.3-3.6  147-160   2.2-2.3   1.09-1.12   >=0.105
    after:  many origins (40 x 13)      3    520    3.8-4.2  124-138   2.6-2.7   1.24-1.32   >=0.107
    after:  one origin (61 pages)   1/2/3     61        7.2  8.5-8.6 3.3/5.3/7.4  1.00/1.73/2.38 >=0.104
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from crawl_throughput import stats_of

from crawler.cluster.connection import redis_client
from crawler.cluster.keys import JobKeys
from crawler.cluster.seeds import reset_job
from crawler.demo.web import LocalWeb, Page, Site

JOB = "bench"
FILLER = "<p>" + "Lorem ipsum dolor sit amet. " * 40 + "</p>"


def make_site(name: str, pages: int) -> Site:
    content = {"/robots.txt": Page("User-agent: *\nDisallow: /nowhere/\n",
                                   content_type="text/plain")}
    links = " ".join(f'<a href="/p/{i}.html">{i}</a>' for i in range(pages))
    content["/"] = Page(f"<html><head><title>{name}</title></head><body>{FILLER}{links}"
                        "</body></html>")
    for i in range(pages):
        content[f"/p/{i}.html"] = Page(
            f"<html><head><title>{name} {i}</title></head><body>{FILLER}"
            f'<a href="/p/{(i + 1) % pages}.html">next</a> <a href="/">home</a></body></html>')
    return Site(name, f"{pages} pages", content)


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(200):
        client = redis_client(url)
        try:
            client.ping()
            return proc, url
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.05)
        finally:
            client.close()
    proc.kill()
    raise SystemExit("redis-server did not start")


class QueueSampler(threading.Thread):
    """Samples the shared queue while workers run: the largest it got, and its memory then
    (``MEMORY USAGE`` of the sorted set: bytes per queued request)."""

    def __init__(self, redis_url: str) -> None:
        super().__init__(daemon=True)
        self.client = redis_client(redis_url)
        self.stop = threading.Event()
        self.most = (0, 0)   # (requests queued, bytes)

    def run(self) -> None:
        key = JobKeys(JOB).requests
        while not self.stop.wait(0.02):
            try:
                n = int(self.client.zcard(key))
                if n > self.most[0]:
                    self.most = (n, int(self.client.memory_usage(key, samples=0) or 0))
            except Exception:  # noqa: BLE001 - best effort
                pass


def command_stats(client: Any) -> dict[str, tuple[int, float]]:
    """``INFO commandstats``: command -> (calls, usec in total)."""
    out = {}
    for name, v in client.info("commandstats").items():
        out[name.removeprefix("cmdstat_")] = (int(v["calls"]), float(v["usec"]))
    return out


def redis_cpu(client: Any) -> float:
    """CPU seconds the Redis server's main thread has used (user + system): every command,
    script and network read/write it served."""
    info = client.info("cpu")
    user = info.get("used_cpu_user_main_thread", info.get("used_cpu_user", 0.0))
    system = info.get("used_cpu_sys_main_thread", info.get("used_cpu_sys", 0.0))
    return float(user) + float(system)


def redis_memory(client: Any) -> dict[str, Any]:
    """At the end of a run: used memory, and ``MEMORY USAGE`` of the job's keys by kind."""
    keys = JobKeys(JOB)
    kinds: dict[str, list[int]] = defaultdict(list)
    for key in client.scan_iter(match=keys.prefix + ":*", count=1000):
        k = key.decode()
        rest = k[len(keys.prefix) + 1:]
        kind = rest.split(":", 1)[0]
        if kind == "site":
            kind = "site:" + rest.split(":", 2)[1]
        kinds[kind].append(int(client.memory_usage(key, samples=0) or 0))
    return {"used_memory": int(client.info("memory")["used_memory"]),
            "keys": {k: (len(v), sum(v)) for k, v in sorted(kinds.items())},
            "seen": int(client.scard(keys.dupefilter))}


def run_cluster(web: LocalWeb, redis_url: str, tmp: Path, workers: int,
                delay: float) -> dict:
    client = redis_client(redis_url)
    reset_job(client, JOB)
    client.config_resetstat()
    out = tmp / f"out-{workers}"
    cfg = {"job": JOB, "user_agent": "BenchBot/1.0 (+https://example.org/bot)",
           "seeds": [web.origin(n) + "/" for n in web.sites], "allow_private_networks": True,
           "output_dir": str(out), "cluster": {"redis_url": redis_url},
           "settings": {"DOWNLOAD_DELAY": delay, "CONCURRENT_REQUESTS": 16,
                        "LOG_LEVEL": "INFO", "TELNETCONSOLE_ENABLED": False,
                        "POLITE_CLUSTER_IDLE_CLOSE": 1.0, "POLITE_CLUSTER_HEARTBEAT": 0.5,
                        "POLITE_CLUSTER_WORKER_TTL": 5}}
    path = tmp / f"bench-{workers}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    # one cluster secret for the job: shared reservation entries are authenticated with it
    env = {"POLITE_CLUSTER_SECRET": "bench-" + os.urandom(16).hex(), **os.environ,
           "PYTHONUNBUFFERED": "1"}
    subprocess.run([sys.executable, "-m", "crawler", "seed", str(path)], cwd=ROOT, env=env,
                   check=True, capture_output=True)
    first_request = len(web.requests)
    base_memory = int(client.info("memory")["used_memory"])
    cpu_before = redis_cpu(client)
    net_before = client.info("stats")
    sampler = QueueSampler(redis_url)
    sampler.start()
    logs = [tmp / f"w{i}-{workers}.log" for i in range(1, workers + 1)]
    procs = []
    for i, log in enumerate(logs, start=1):
        with open(log, "w") as fh:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "crawler", "run", str(path), "--worker", f"w{i}"],
                cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT))
    for p in procs:
        p.wait()
    sampler.stop.set()
    sampler.join()
    sampler.client.close()
    cpu = redis_cpu(client) - cpu_before
    net_after = client.info("stats")
    net = {k: int(net_after[k]) - int(net_before[k])
           for k in ("total_net_input_bytes", "total_net_output_bytes")}
    cmdstats = command_stats(client)
    for name, n in sampler.client.kinds.items():   # the sampler's own calls are not the job's
        cmd = {"ZCARD": "zcard", "MEMORY": "memory|usage"}.get(name)
        if cmd in cmdstats:
            c, u = cmdstats[cmd]
            cmdstats[cmd] = (max(0, c - n), u * max(0, c - n) / max(c, 1))
    memory = redis_memory(client)
    memory["base_memory"] = base_memory
    client.close()
    requests = web.requests[first_request:]
    stats = [stats_of(log.read_text()) for log in logs]
    pages = sum(s.get("polite/corpus/documents", 0) for s in stats)
    calls = sum(s.get("polite/cluster/redis_calls", 0) for s in stats)
    background = sum(s.get("polite/cluster/redis_calls_background", 0) for s in stats)
    kinds: dict[str, int] = defaultdict(int)
    steps: dict[str, int] = defaultdict(int)
    for s in stats:
        for k, v in s.items():
            if k.startswith("polite/cluster/redis_calls/"):
                kinds[k.removeprefix("polite/cluster/redis_calls/")] += v
            elif k.startswith("polite/cluster/step/"):
                steps[k.removeprefix("polite/cluster/step/")] += v
    tries = sum(s.get("polite/cluster/gate/tries", 0) for s in stats)
    grants = sum(s.get("polite/cluster/gate/granted", 0) for s in stats)
    times = sorted(r.time for r in requests)
    span = times[-1] - times[0] if len(times) > 1 else float("nan")
    by_site: dict[str, list[float]] = defaultdict(list)
    for r in requests:
        by_site[r.site].append(r.time)
    gaps = [b - a for ts in by_site.values() for a, b in itertools.pairwise(sorted(ts))]
    return {"workers": workers, "pages": pages, "requests": len(requests), "span": span,
            "pps": pages / span if span else float("nan"), "calls_per_page": calls / max(pages, 1),
            "tries_per_grant": tries / max(grants, 1), "min_gap": min(gaps, default=float("nan")),
            "per_worker": [s.get("polite/corpus/documents", 0) for s in stats],
            "foreground_per_page": (calls - background) / max(pages, 1),
            "kinds": dict(kinds), "steps": dict(steps), "cpu": cpu, "net": net,
            "cmdstats": cmdstats, "memory": memory,
            "queue_peak": sampler.most, "calls": calls,
            "ok": all(p.returncode == 0 for p in procs)}


def print_details(r: dict) -> None:
    """Round trips by kind per page; Redis server CPU (``INFO commandstats``); memory."""
    pages = max(r["pages"], 1)
    kinds = ", ".join(f"{k} {v / pages:.2f}" for k, v in
                      sorted(r["kinds"].items(), key=lambda kv: -kv[1]))
    print(f"    round trips per page by kind: {kinds}")
    print(f"    per page without background calls: {r['foreground_per_page']:.2f}")
    if r["steps"]:
        steps = ", ".join(f"{k} {v / pages:.2f}" for k, v in
                          sorted(r["steps"].items(), key=lambda kv: -kv[1]))
        print(f"    step round trips per page (what they carried): {steps}")
    cs = r["cmdstats"]
    calls = sum(c for c, _ in cs.values())
    scripts = cs.get("evalsha", (0, 0.0))
    top = ", ".join(f"{k} {c / pages:.2f}/{u / max(c, 1):.1f}us"
                    for k, (c, u) in sorted(cs.items(), key=lambda kv: -kv[1][1])[:8])
    cpu_us = r["cpu"] * 1e6
    print(f"    redis server: main thread CPU {cpu_us / pages:.0f} us/page "
          f"({cpu_us / max(r['calls'], 1):.0f} us per round trip, {r['cpu']:.3f} s = "
          f"{100 * r['cpu'] / r['span']:.0f}% of one core over the span); "
          f"{calls / pages:.1f} commands/page counting those inside scripts; scripts "
          f"{scripts[0] / pages:.2f}/page at {scripts[1] / max(scripts[0], 1):.0f} us each")
    net = r["net"]
    print(f"    redis network: {net['total_net_input_bytes'] / pages:.0f} B in and "
          f"{net['total_net_output_bytes'] / pages:.0f} B out per page")
    print(f"    INFO commandstats (calls per page / us per call; a script's time includes "
          f"the commands it runs): {top}")
    m = r["memory"]
    keys = ", ".join(f"{k} {n}x{b / max(n, 1):.0f}B" for k, (n, b) in m["keys"].items())
    n, b = r["queue_peak"]
    print(f"    redis memory at the end: used {m['used_memory'] / 1e6:.2f} MB "
          f"(+{(m['used_memory'] - m['base_memory']) / 1e3:.0f} kB in the run); "
          f"{m['seen']} URLs seen; keys (count x bytes each): {keys}")
    if n:
        print(f"    queue peak: {n} requests, {b} bytes ({b / n:.0f} B per queued request)")


def main() -> None:
    from crawler.cli import seed as cli
    if not hasattr(cli, "cmd_seed"):
        raise SystemExit("cluster_bench needs the lead's wiring (polite-crawl seed / run "
                         "--worker); not there yet")
    ap = argparse.ArgumentParser()
    ap.add_argument("--origins", type=int, default=40)
    ap.add_argument("--pages", type=int, default=12)
    ap.add_argument("--one-origin-pages", type=int, default=60)
    ap.add_argument("--delay", type=float, default=0.1)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--no-details", dest="details", action="store_false",
                    help="only the table (no round trips by kind, Redis CPU and memory)")
    ap.add_argument("--skip-one-origin", action="store_true")
    args = ap.parse_args()
    scenarios: dict[str, list[Site]] = {
        f"many origins ({args.origins} x {args.pages + 1} pages)":
            [make_site(f"o{i}", args.pages) for i in range(args.origins)],
        f"one origin ({args.one_origin_pages + 1} pages)":
            [make_site("one", args.one_origin_pages)],
    }
    if args.skip_one_origin:
        scenarios.popitem()
    print(f"{os.cpu_count()} CPUs; per-origin delay {args.delay} s (POLITE_CLUSTER_SPACING "
          "response: the delay counts from the previous answer)")
    header = (f"{'scenario':34} {'workers':>7} {'pages':>6} {'span s':>7} {'pages/s':>8} "
              f"{'redis/page':>10} {'tries/grant':>11} {'min gap s':>9}  per worker")
    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as d:
        tmp = Path(d)
        redis_proc, url = start_redis(tmp)
        try:
            print(header)
            for name, sites in scenarios.items():
                with LocalWeb(sites) as web:
                    for n in args.workers:
                        r = run_cluster(web, url, tmp, n, args.delay)
                        flag = "" if r["ok"] else "  (a worker failed: see its log)"
                        print(f"{name:34} {n:7d} {r['pages']:6d} {r['span']:7.2f} "
                              f"{r['pps']:8.1f} {r['calls_per_page']:10.1f} "
                              f"{r['tries_per_grant']:11.2f} {r['min_gap']:9.3f}  "
                              f"{r['per_worker']}{flag}", flush=True)
                        if args.details:
                            print_details(r)
        finally:
            redis_proc.terminate()
            redis_proc.wait(10)


if __name__ == "__main__":
    main()
