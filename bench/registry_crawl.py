"""HTTP registry cost: `polite-crawl run` on a 2,000-page local site, with and without a local
Spawning-compatible registry server, in the same run.

Prints pages/s for both, the throughput ratio (target >= 0.9) and registry requests per page
(target <= 0.02, i.e. batches of >= 50 URLs).

    python bench/registry_crawl.py [--pages 2000] [--rounds 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from crawl_throughput import make_site, run_polite

from crawler.demo.web import LocalWeb
from crawler.registry.entries import parse_list
from crawler.registry.index import RegistryIndex
from crawler.registry.server import RegistryServer

MAX_WAIT = float(__import__("os").environ.get("BENCH_MAX_WAIT", "0.1"))


def run(seed: str, tmp: Path, registry_url: str | None) -> tuple[dict, float]:
    extra = {"registries": [{"type": "http", "url": registry_url, "max_wait": MAX_WAIT}]
             } if registry_url else {}
    return run_polite(seed, tmp, **extra)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--fanout", type=int, default=10,
                    help="links per page (a k-ary tree of pages; 2 = the throughput bench)")
    args = ap.parse_args()
    # a list that opts out 1 % of the pages (every 100th), so the registry has work to do
    with LocalWeb([make_site(args.pages, args.fanout)]) as web, tempfile.TemporaryDirectory() as d:
        origin = web.origin("bench")
        listing = "\n".join(f"{origin}/p/{i}.html" for i in range(100, args.pages, 100))
        index = RegistryIndex(parse_list(listing.encode()).entries)
        rows = []
        with RegistryServer(index) as server:
            for r in range(args.rounds):
                for label, url in (("without registry", None),
                                   ("with HTTP registry", server.query_url)):
                    tmp = Path(d) / f"{r}-{label.split()[0]}"
                    tmp.mkdir()
                    before = len(server.requests)
                    st, wall = run(origin + "/", tmp, url)
                    calls = len(server.requests) - before
                    pages = st.get("polite/decision/allow", 0) + st.get("polite/decision/deny", 0)
                    elapsed = st.get("elapsed_time_seconds") or wall
                    rows.append((label, pages, calls, elapsed, pages / elapsed))
    print(f"{'run':22} {'decisions':>9} {'registry calls':>14} {'calls/page':>10} "
          f"{'crawl s':>8} {'pages/s':>8}")
    for label, pages, calls, el, pps in rows:
        print(f"{label:22} {pages:9d} {calls:14d} {calls / pages:10.4f} {el:8.2f} {pps:8.1f}")
    base = [r[4] for r in rows if r[0].startswith("without")]
    reg = [r[4] for r in rows if r[0].startswith("with ")]
    print(f"throughput ratio with/without registry: "
          f"{(sum(reg) / len(reg)) / (sum(base) / len(base)):.2f}")


if __name__ == "__main__":
    main()
