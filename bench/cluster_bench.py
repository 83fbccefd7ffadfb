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
trips per page (``polite/cluster/redis_calls`` of all workers / pages), gate tries per grant,
and the smallest gap between two requests to one origin the server saw.

    python bench/cluster_bench.py [--origins 40] [--pages 12] [--one-origin-pages 60]
                                  [--delay 0.1] [--workers 1 2 3]

Needs the lead's wiring (``polite-crawl seed`` and ``run --worker``) and ``redis-server``.

A run on a 2-CPU machine (``--origins 80 --pages 20``; LocalWeb and Redis on the same CPUs):

    scenario                      workers  pages  span s  pages/s redis/page tries/grant min gap s
    many origins (80 x 21 pages)        1   1680    9.64    174.3        8.1        1.13     0.102
    many origins (80 x 21 pages)        2   1680    6.66    252.4        8.3        1.18     0.104
    many origins (80 x 21 pages)        3   1680    6.02    279.1        8.7        1.40     0.104
    one origin (61 pages)               1     61    6.55      9.3        9.9        2.02     0.102
    one origin (61 pages)               2     61    6.53      9.3       12.7        3.06     0.102
    one origin (61 pages)               3     61    6.55      9.3       15.3        3.84     0.102
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
import time
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from crawl_throughput import stats_of

from crawler.cluster.connection import redis_client
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


def run_cluster(web: LocalWeb, redis_url: str, tmp: Path, workers: int,
                delay: float) -> dict:
    client = redis_client(redis_url)
    reset_job(client, JOB)
    client.close()
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
    logs = [tmp / f"w{i}-{workers}.log" for i in range(1, workers + 1)]
    procs = []
    for i, log in enumerate(logs, start=1):
        with open(log, "w") as fh:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "crawler", "run", str(path), "--worker", f"w{i}"],
                cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT))
    for p in procs:
        p.wait()
    requests = web.requests[first_request:]
    stats = [stats_of(log.read_text()) for log in logs]
    pages = sum(s.get("polite/corpus/documents", 0) for s in stats)
    calls = sum(s.get("polite/cluster/redis_calls", 0) for s in stats)
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
            "ok": all(p.returncode == 0 for p in procs)}


def main() -> None:
    from crawler import cli

    if not hasattr(cli, "cmd_seed"):
        raise SystemExit("cluster_bench needs the lead's wiring (polite-crawl seed / run "
                         "--worker); not there yet")
    ap = argparse.ArgumentParser()
    ap.add_argument("--origins", type=int, default=40)
    ap.add_argument("--pages", type=int, default=12)
    ap.add_argument("--one-origin-pages", type=int, default=60)
    ap.add_argument("--delay", type=float, default=0.1)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    args = ap.parse_args()
    scenarios = {
        f"many origins ({args.origins} x {args.pages + 1} pages)":
            [make_site(f"o{i}", args.pages) for i in range(args.origins)],
        f"one origin ({args.one_origin_pages + 1} pages)":
            [make_site("one", args.one_origin_pages)],
    }
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
        finally:
            redis_proc.terminate()
            redis_proc.wait(10)


if __name__ == "__main__":
    main()
