"""Memory per cached origin, and the site cache's byte bound, measured with tracemalloc.

Each origin's files as the crawler fetches them: robots.txt is the real file of median size
among the 691 real robots.txt files of ``tests/data/real_robots`` (each origin parses its own
copy), tdmrep.json and ai.txt answer 404 with a small HTML page. Prints:

1. bytes per origin over N origins (default 100,000) with the default budget
   (``POLITE_SITE_CACHE_MAX_BYTES``, 256 MiB): entries without their parse, and the parses of
   the files used last (``HOT_FILES``);
2. the same with every parse kept (how the cache held origins before: about 9.4 KB each);
3. the bound: the same N origins into a cache of ``--bound`` MiB (default 16): what the cache
   holds after every 10 % of them (traced bytes, its own estimate, entries, evictions), which
   must stay flat once the bound is reached.

    python bench/sitecache_memory.py [--origins 100000] [--bound 16]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from decision_bench import median_file  # noqa: E402

from crawler import sitecache as sc  # noqa: E402
from crawler.policy.reservation import site_file  # noqa: E402

PAGE_404 = (b"<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1>"
            b"</body></html>")


class _Stats:
    def inc_value(self, *args, **kwargs) -> None:
        pass


def new_cache(max_bytes: int) -> sc.SiteCache:
    crawler = SimpleNamespace(stats=_Stats())
    return sc.SiteCache(crawler, ttl=86400, backoff=60, timeout=30, maxsize=1 << 20,
                        max_redirects=5, max_bytes=max_bytes)


def origin_files(i: int, body: bytes) -> list[tuple[tuple[str, str], object]]:
    origin = f"http://127.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}:8080"
    out = []
    for kind, status, b in (("robots.txt", 200, body), ("tdmrep.json", 404, PAGE_404),
                            ("ai.txt", 404, PAGE_404)):
        url = origin + sc.FILE_PATHS[kind]
        out.append(((kind, url), site_file(kind, url, status=status, body=b)))
    return out


def fill(cache: sc.SiteCache, n: int, body: bytes, report_every: int = 0) -> tuple[int, float]:
    """Store n origins' files (parsed as the crawler parses them); traced bytes held after."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    for i in range(n):
        for key, f in origin_files(i, body):
            cache._store(key, f)  # type: ignore[arg-type]
        if report_every and (i + 1) % report_every == 0:
            gc.collect()
            used = tracemalloc.get_traced_memory()[0] - base
            print(f"  {i + 1:7d} origins: traced {used / 2**20:7.2f} MiB, estimate "
                  f"{cache.size_bytes / 2**20:6.2f} MiB, {len(cache._entries):6d} entries, "
                  f"{cache.counts['evicted']:6d} evicted", flush=True)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return used, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--origins", type=int, default=100_000)
    ap.add_argument("--bound", type=float, default=16.0, help="MiB, for part 3")
    args = ap.parse_args()
    n = args.origins
    path = median_file()
    body = path.read_bytes()
    print(f"typical origin: robots.txt {path.name} ({len(body)} bytes, parsed per origin), "
          "tdmrep.json 404, ai.txt 404")

    cache = new_cache(sc.DEFAULT_MAX_BYTES)
    used, secs = fill(cache, n, body)
    print(f"1. default budget (256 MiB): {used / n:7.0f} bytes per origin over {n} origins "
          f"(estimate {cache.size_bytes / n:.0f}; {len(cache._hot)} files kept parsed; "
          f"{secs:.0f} s)")
    del cache
    gc.collect()

    hot = sc.HOT_FILES
    sc.HOT_FILES = 10**9
    cache = new_cache(10**12)
    cache._hot_max = 10**12
    m = max(1, n // 5)
    used, secs = fill(cache, m, body)
    print(f"2. every parse kept: {used / m:7.0f} bytes per origin over {m} origins")
    sc.HOT_FILES = hot
    del cache
    gc.collect()

    bound = int(args.bound * 2**20)
    print(f"3. bounded: {n} origins into a {args.bound:g} MiB cache")
    cache = new_cache(bound)
    used, secs = fill(cache, n, body, report_every=max(1, n // 10))
    print(f"   held at the end: traced {used / 2**20:.2f} MiB for a {args.bound:g} MiB bound "
          f"({len(cache._entries) // 3} origins)")


if __name__ == "__main__":
    main()
