"""Online survey speed: `polite-crawl survey` over N local origins on loopback (default 500).

Each origin serves a robots.txt naming a few AI agents, a homepage with a meta tag, and 404s for
tdmrep.json and ai.txt. Prints origins per second (from the survey's own elapsed time).

    python bench/survey_online.py [--origins 500]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crawler.demo.web import LocalWeb, Page, Site


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--origins", type=int, default=500)
    args = ap.parse_args()
    robots = "User-agent: GPTBot\nUser-agent: CCBot\nDisallow: /\n\nUser-agent: *\nAllow: /\n"
    sites = [Site(f"s{i}", "bench", {
        "/robots.txt": Page(robots, content_type="text/plain"),
        "/": Page('<html><head><meta name="robots" content="noai"></head><body>hi</body></html>',
                  headers=(("X-Robots-Tag", "noimageai"),)),
    }) for i in range(args.origins)]
    with LocalWeb(sites) as web, tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "origins.txt").write_text("\n".join(web.origin(s.name) for s in sites))
        cfg = {"job": "bench", "user_agent": "BenchBot/1.0 (+https://example.org/bot)",
               "seeds": [], "allow_private_networks": True,
               "settings": {"DOWNLOAD_DELAY": 0, "AUTOTHROTTLE_ENABLED": False,
                            "CONCURRENT_REQUESTS": 32, "LOG_LEVEL": "INFO"}}
        (tmp / "c.yaml").write_text(yaml.safe_dump(cfg))
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "crawler", "survey", str(tmp / "origins.txt"),
                               "--out", str(tmp / "s.jsonl"), "--config", str(tmp / "c.yaml")],
                              capture_output=True, text=True, cwd=ROOT, check=True)
        wall = time.perf_counter() - t0
        n = len((tmp / "s.jsonl").read_text().splitlines())
        requests = len(web.requests)
    import re

    m = re.search(r"'elapsed_time_seconds': ([0-9.]+)", proc.stderr)
    elapsed = float(m.group(1)) if m else wall
    print(f"origins surveyed: {n}   requests to the web: {requests} ({requests / n:.1f}/origin)")
    print(f"survey time: {elapsed:.2f} s (wall {wall:.2f} s incl. start-up)")
    print(f"origins per second: {n / elapsed:.1f}")


if __name__ == "__main__":
    main()
