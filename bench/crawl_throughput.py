"""Throughput of `polite-crawl run` versus a plain Scrapy spider, in the same run.

Serves a local site of N pages (default 2,000) on 127.0.0.1 and crawls it with the same Scrapy
settings: (a) a plain spider with ROBOTSTXT_OBEY=True (``bench/plain_spider.py``), (b)
`polite-crawl run` (robots.txt, TDMRep, ai.txt and every other signal, two honoured agents'
worth of robots groups, the write-ahead audit log, corpus text). The plain spider is the one
issue 14 names: it yields ``{url, text}`` (visible text) and follows every link
``LinkExtractor`` finds (``--plain-mode len``: the lighter ``{url, len}`` baseline used before,
no text work). Rounds alternate (plain first in even rounds, polite first in odd ones) so that
a change in the machine's load hits both alike.

Per crawl it prints pages/s (from Scrapy's own ``elapsed_time_seconds`` stat, which excludes
process start-up) and the CPU time per page of the crawler process (``bench/cpu_stats.py``, the
same extension in both crawls; CPU time is far less sensitive than wall time to other work on
the machine). Then the median of each, the median of the per-round ratios polite/plain and their
spread (min-max): on a shared 2-core machine the spread is the noise.

    python bench/crawl_throughput.py [--pages 2000] [--rounds 5] [--concurrency 16]
        [--plain-mode text|len] [--plain-setting NAME=VALUE ...] [--polite-setting NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crawler.demo.web import LocalWeb, Page, Site  # noqa: E402

#: the same extension in both crawls: CPU seconds of the crawl in the stats
CPU_EXTENSION = {"cpu_stats.CpuStats": 0}


def make_site(n: int, fanout: int = 2) -> Site:
    pages = {"/robots.txt": Page("User-agent: *\nDisallow: /nowhere/\n",
                                 content_type="text/plain"),
             "/.well-known/tdmrep.json": Page('[{"location": "/nowhere/", "tdm-reservation": 1}]',
                                              content_type="application/json")}
    filler = "<p>" + "Lorem ipsum dolor sit amet. " * 40 + "</p>"
    for i in range(n):
        kids = [k for k in range(fanout * i + 1, fanout * i + fanout + 1) if k < n]
        links = "".join(f'<a href="/p/{k}.html">page {k}</a> ' for k in kids)
        path = "/" if i == 0 else f"/p/{i}.html"
        pages[path] = Page(f"<html><head><title>Page {i}</title></head><body>"
                           f"<h1>Page {i}</h1>{filler}{links}</body></html>")
    return Site("bench", f"{n} pages", pages)


SETTINGS = {
    "DOWNLOAD_DELAY": 0,
    "AUTOTHROTTLE_ENABLED": False,
    "CONCURRENT_REQUESTS": 16,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 16,
    "LOG_LEVEL": "INFO",
    "TELNETCONSOLE_ENABLED": False,
    "COOKIES_ENABLED": False,
}


def stats_of(stderr: str) -> dict:
    m = re.search(r"Dumping Scrapy stats:\n(\{.*?\})\n(?:\d{4}-|$)", stderr, re.DOTALL)
    if not m:
        raise SystemExit("no stats in crawl output:\n" + stderr[-3000:])
    text = re.sub(r"datetime\.datetime\(.*?tzinfo=datetime\.timezone\.utc\)", "None",
                  m.group(1))
    return ast.literal_eval(text)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "bench"), str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def run_plain(seed: str, tmp: Path, settings: dict | None = None,
              mode: str = "text") -> tuple[dict, float]:
    settings = {**SETTINGS, **(settings or {})}
    args = [sys.executable, "-m", "scrapy", "runspider", str(ROOT / "bench" / "plain_spider.py"),
            "-a", f"seed={seed}", "-a", f"mode={mode}", "-s", "ROBOTSTXT_OBEY=True",
            "-s", "USER_AGENT=BenchBot/1.0 (+https://example.org/bot)",
            "-s", f"EXTENSIONS={CPU_EXTENSION!r}".replace("'", '"'),
            "-o", str(tmp / "plain.jsonl")]
    for k, v in settings.items():
        args += ["-s", f"{k}={v}"]
    t0 = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, cwd=tmp, check=True, env=_env())
    return stats_of(proc.stderr), time.perf_counter() - t0


def run_polite(seed: str, tmp: Path, settings: dict | None = None,
               **extra: object) -> tuple[dict, float]:
    """`polite-crawl run` on ``seed`` (``extra``: more config keys); (stats, wall seconds)."""
    cfg = {"job": "bench", "user_agent": "BenchBot/1.0 (+https://example.org/bot)",
           "seeds": [seed], "allow_private_networks": True, "honor_agents": ["GPTBot"],
           "output_dir": str(tmp / "polite"),
           "settings": {**SETTINGS, "EXTENSIONS": CPU_EXTENSION, **(settings or {})}, **extra}
    path = tmp / "bench.yaml"
    path.write_text(yaml.safe_dump(cfg))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "crawler", "run", str(path)],
                          capture_output=True, text=True, cwd=ROOT, check=True, env=_env())
    return stats_of(proc.stderr), time.perf_counter() - t0


def _settings(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        out[name] = yaml.safe_load(value)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--plain-mode", choices=("text", "len"), default="text",
                    help="text: {url, text} and LinkExtractor (issue 14's baseline); len: "
                    "{url, len} and every <a href> (no text work)")
    ap.add_argument("--plain-setting", action="append", default=[], metavar="NAME=VALUE",
                    help="a Scrapy setting for the plain crawl only (a fairness check)")
    ap.add_argument("--polite-setting", action="append", default=[], metavar="NAME=VALUE")
    args = ap.parse_args()
    SETTINGS["CONCURRENT_REQUESTS"] = SETTINGS["CONCURRENT_REQUESTS_PER_DOMAIN"] = \
        args.concurrency
    plain_extra, polite_extra = _settings(args.plain_setting), _settings(args.polite_setting)
    runs = {"plain": lambda s, t: run_plain(s, t, plain_extra, args.plain_mode),
            "polite": lambda s, t: run_polite(s, t, polite_extra)}
    names = {"plain": f"plain Scrapy ({args.plain_mode}, ROBOTSTXT_OBEY)",
             "polite": "polite-crawl run"}
    rows: list[tuple[int, str, int, float, float, float]] = []
    with LocalWeb([make_site(args.pages)]) as web, tempfile.TemporaryDirectory() as d:
        seed = web.origin("bench") + "/"
        for r in range(args.rounds):
            order = ("plain", "polite") if r % 2 == 0 else ("polite", "plain")
            for kind in order:
                tmp = Path(d) / f"{kind}-{r}"
                tmp.mkdir()
                st, wall = runs[kind](seed, tmp)
                pages = st.get("response_received_count", 0)
                elapsed = st.get("elapsed_time_seconds") or wall
                cpu = st.get("bench/cpu_seconds") or float("nan")
                rows.append((r, kind, pages, elapsed, pages / elapsed, 1000 * cpu / pages))
                print(f"round {r} {names[kind]:30} {pages:5d} responses {elapsed:6.2f} s "
                      f"{pages / elapsed:7.1f} pages/s {1000 * cpu / pages:6.3f} CPU ms/page",
                      flush=True)
    by = {k: [row for row in rows if row[1] == k] for k in runs}
    print()
    print(f"{'crawler':32} {'median pages/s':>14} {'median CPU ms/page':>19}")
    for kind in runs:
        print(f"{names[kind]:32} {statistics.median(r[4] for r in by[kind]):14.1f} "
              f"{statistics.median(r[5] for r in by[kind]):19.3f}")
    ratios = [p[4] / q[4] for p, q in zip(by["polite"], by["plain"])]
    cpu_ratios = [q[5] / p[5] for p, q in zip(by["polite"], by["plain"])]
    print(f"ratio polite/plain pages per second: median {statistics.median(ratios):.2f} "
          f"(rounds {', '.join(f'{x:.2f}' for x in ratios)})")
    print(f"ratio polite/plain pages per CPU second: median {statistics.median(cpu_ratios):.2f} "
          f"(rounds {', '.join(f'{x:.2f}' for x in cpu_ratios)})")


if __name__ == "__main__":
    main()
