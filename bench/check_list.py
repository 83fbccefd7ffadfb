"""``polite-crawl check --no-fetch --from-file``: URLs/s over a list whose origins are cached.

Serves ``--origins`` loopback origins (default 20; robots.txt: the real file of median size of
``tests/data/real_robots``, tdmrep.json and ai.txt 404) and writes ``--urls`` URLs spread over
them (default 200,000). Every signal on, two honoured agents (GPTBot, CCBot). Runs:

1. ``check --no-fetch --from-file`` as shipped: the first URL of each origin goes through the
   crawler, the rest are decided in place from the cached files; prints the rate of those
   (the command's own figure: URLs decided from the cache / seconds spent on them) and the
   end-to-end rate (wall time of the command, start-up and the first fetches included);
2. the same list through the engine, one request per URL (``POLITE_CHECK_IN_PLACE: false``, what
   ``check`` did for each URL before), on the first ``--engine-urls`` URLs (default 10,000),
   its rate without the start-up (a one-URL run's wall time taken off).

    python bench/check_list.py [--origins 20] [--urls 200000] [--engine-urls 10000]
"""

from __future__ import annotations

import argparse
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from decision_bench import median_file  # noqa: E402

from crawler.demo.web import LocalWeb, Page, Site  # noqa: E402


def run(listing: Path, cfg: Path, n: int, in_place: bool) -> tuple[float, float | None, str]:
    if not in_place:  # the same config, every URL through the engine
        job = yaml.safe_load(cfg.read_text())
        job["settings"] = {**job.get("settings", {}), "POLITE_CHECK_IN_PLACE": False}
        cfg = cfg.with_name("engine.yaml")
        cfg.write_text(yaml.safe_dump(job))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "crawler", "check", "--no-fetch",
                           "--from-file", str(listing), "--config", str(cfg)],
                          capture_output=True, cwd=ROOT, check=True)
    wall = time.perf_counter() - t0
    lines = proc.stdout.count(b"\n")
    if lines != n:
        raise SystemExit(f"{lines} lines for {n} URLs:\n{proc.stderr.decode()[-2000:]}")
    summary = proc.stderr.decode().strip().splitlines()[-1]
    m = re.search(r"\(([\d,]+) URLs/s\)", summary)
    return wall, (float(m.group(1).replace(",", "")) if m else None), summary


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--origins", type=int, default=20)
    ap.add_argument("--urls", type=int, default=200_000)
    ap.add_argument("--engine-urls", type=int, default=10_000)
    args = ap.parse_args()
    body = median_file().read_bytes()
    sites = [Site(f"s{i}", "bench", {"/robots.txt": Page(body, content_type="text/plain")})
             for i in range(args.origins)]
    rng = random.Random(1)
    words = ["news", "2024", "article", "index.html", "virtual", "folha", "a", "b"]
    with LocalWeb(sites) as web, tempfile.TemporaryDirectory() as d:
        urls = [f"{web.origin(f's{rng.randrange(args.origins)}')}/"
                f"{'/'.join(rng.choice(words) for _ in range(3))}/{i}"
                + (f"?id={i}" if i % 5 == 0 else "") for i in range(args.urls)]
        tmp = Path(d)
        cfg = tmp / "check.yaml"
        cfg.write_text(yaml.safe_dump({
            "job": "check-bench", "user_agent": "PoliteCrawler/1.0 (+https://example.org/bot)",
            "allow_private_networks": True, "honor_agents": ["GPTBot", "CCBot"],
            "settings": {"DOWNLOAD_DELAY": 0, "AUTOTHROTTLE_ENABLED": False}}))
        listing = tmp / "urls.txt"
        listing.write_text("\n".join(urls) + "\n")
        print(f"{args.urls} URLs over {args.origins} origins (robots.txt {median_file().name}, "
              "tdmrep.json and ai.txt 404), every signal, honour_agents GPTBot and CCBot")
        wall, rate, summary = run(listing, cfg, args.urls, True)
        print(f"in place (as shipped): {rate or 0:,.0f} URLs/s decided from the cache; "
              f"{args.urls / wall:,.0f} URLs/s end to end ({wall:.1f} s)")
        print(f"   {summary}")
        m = min(args.engine_urls, args.urls)
        small = tmp / "small.txt"
        small.write_text("\n".join(urls[:m]) + "\n")
        one = tmp / "one.txt"
        one.write_text(urls[0] + "\n")
        wall, _, _ = run(small, cfg, m, False)
        wall0, _, _ = run(one, cfg, 1, False)
        print(f"through the engine, a request per URL (before): "
              f"{m / max(wall - wall0, 1e-9):,.0f} URLs/s ({m} URLs in {wall:.1f} s, "
              f"{wall0:.1f} s of it start-up and one fetch)")


if __name__ == "__main__":
    main()
