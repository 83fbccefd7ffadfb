"""Throughput of `polite-crawl run` versus a plain Scrapy spider, in the same run.

Serves a local site of N pages (default 2,000) on 127.0.0.1 and crawls it twice with the same
Scrapy settings: (a) a plain spider with ROBOTSTXT_OBEY=True, (b) `polite-crawl run` (robots.txt
+ TDMRep + audit log + corpus). Prints pages/s for each (from Scrapy's own elapsed_time_seconds
stat, which excludes process start-up) and the ratio.

    python bench/crawl_throughput.py [--pages 2000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crawler.demo.web import LocalWeb, Page, Site


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


def run_plain(seed: str, tmp: Path) -> tuple[dict, float]:
    args = [sys.executable, "-m", "scrapy", "runspider", str(ROOT / "bench" / "plain_spider.py"),
            "-a", f"seed={seed}", "-s", "ROBOTSTXT_OBEY=True",
            "-s", "USER_AGENT=BenchBot/1.0 (+https://example.org/bot)",
            "-o", str(tmp / "plain.jsonl")]
    for k, v in SETTINGS.items():
        args += ["-s", f"{k}={v}"]
    t0 = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, cwd=tmp, check=True)
    return stats_of(proc.stderr), time.perf_counter() - t0


def run_polite(seed: str, tmp: Path, **extra: object) -> tuple[dict, float]:
    """`polite-crawl run` on ``seed`` (``extra``: more config keys); (stats, wall seconds)."""
    cfg = {"job": "bench", "user_agent": "BenchBot/1.0 (+https://example.org/bot)",
           "seeds": [seed], "allow_private_networks": True, "honor_agents": ["GPTBot"],
           "output_dir": str(tmp / "polite"), "settings": SETTINGS, **extra}
    path = tmp / "bench.yaml"
    path.write_text(yaml.safe_dump(cfg))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "crawler", "run", str(path)],
                          capture_output=True, text=True, cwd=ROOT, check=True)
    return stats_of(proc.stderr), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    with LocalWeb([make_site(args.pages)]) as web, tempfile.TemporaryDirectory() as d:
        seed = web.origin("bench") + "/"
        rows = []
        for r in range(args.rounds):
            for name, fn in (("plain Scrapy (ROBOTSTXT_OBEY)", run_plain),
                             ("polite-crawl run", run_polite)):
                tmp = Path(d) / f"{name.split()[0]}-{r}"
                tmp.mkdir()
                st, wall = fn(seed, tmp)
                pages = st.get("response_received_count", 0)
                elapsed = st.get("elapsed_time_seconds") or wall
                rows.append((name, pages, elapsed, wall, pages / elapsed))
    print(f"{'crawler':32} {'responses':>9} {'crawl s':>8} {'wall s':>7} {'pages/s':>8}")
    for name, pages, el, wall, pps in rows:
        print(f"{name:32} {pages:9d} {el:8.2f} {wall:7.2f} {pps:8.1f}")
    plain = [r[4] for r in rows if r[0].startswith("plain")]
    polite = [r[4] for r in rows if r[0].startswith("polite")]
    ratio = (sum(polite) / len(polite)) / (sum(plain) / len(plain))
    print(f"ratio polite/plain pages per second: {ratio:.2f}")


if __name__ == "__main__":
    main()
