"""Opt-out registry: load time, memory and lookup speed with a large synthetic list.

Writes N synthetic entries (default 1,000,000: 55 % domains, 12 % origins, 33 % URL prefixes,
with comments and a few malformed lines) to a temporary directory with a fixed seed, then
prints: text-list parse + index build time, the in-memory index's memory (tracemalloc: retained
and peak; RSS growth), in-memory lookups/s over random URLs (about half hits), ``import_list``
time and database size, and SQLite lookups/s (one at a time, and ``lookup_many`` in batches).
Every SQLite answer is checked against the in-memory one.

    python bench/registry_lookup.py [--entries 1000000] [--lookups 200000] [--seed 7]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crawler.registry.index import RegistryIndex
from crawler.registry.sqlite import SqliteRegistry, import_list

TLDS = ("com", "org", "net", "de", "fr", "io", "co.uk", "example", "info", "nl")
SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "ta", "vo", "xi", "ze", "pa", "shu", "bri", "ton",
             "gal", "dor", "fen", "qua", "lin", "mar", "sol")


def rand_name(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 5))) + \
        str(rng.randint(0, 9999))


def rand_host(rng: random.Random) -> str:
    host = f"{rand_name(rng)}.{rng.choice(TLDS)}"
    if rng.random() < 0.3:
        host = f"{rng.choice(('www', 'cdn', 'img', 'blog', 'shop'))}.{host}"
    return host


def rand_origin(rng: random.Random, host: str | None = None) -> str:
    origin = f"{rng.choice(('https', 'https', 'http'))}://{host or rand_host(rng)}"
    if rng.random() < 0.05:
        origin += f":{rng.randint(1025, 65000)}"
    return origin


def rand_path(rng: random.Random) -> str:
    parts = [rng.choice(("img", "media", "blog", "art", "p", "photos", "u", "gallery"))]
    parts += [rand_name(rng) for _ in range(rng.randint(0, 2))]
    return "/" + "/".join(parts) + rng.choice(("/", "/", "", ".html"))


def make_entries(n: int, rng: random.Random) -> tuple[list[str], list[str], list[str]]:
    """(domains, origins, prefixes) as written, about 55/12/33 %."""
    domains, origins, prefixes = [], [], []
    while len(domains) + len(origins) + len(prefixes) < n:
        r = rng.random()
        if r < 0.70:
            domains.append(rand_host(rng))
        elif r < 0.85:
            origins.append(rand_origin(rng))
        else:
            origin = rand_origin(rng)
            for _ in range(rng.choice((1, 1, 1, 2, 3, 8))):
                prefixes.append(origin + rand_path(rng))
    return domains, origins, prefixes


def write_list(path: Path, domains: list[str], origins: list[str], prefixes: list[str],
               rng: random.Random) -> int:
    lines = [f"{d}\n" for d in domains] + [f"{o}\n" for o in origins] + \
        [f"{p}\n" for p in prefixes]
    rng.shuffle(lines)
    for i in range(0, len(lines), 1000):  # comments, blank and malformed lines
        lines[i] = f"# block {i}\n\n{lines[i]}"
    for i in range(500, len(lines), 50_000):
        lines[i] = f"not a domain {i}\n{lines[i]}"
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(lines)
    return len(lines)


def make_urls(n: int, rng: random.Random, domains: list[str], origins: list[str],
              prefixes: list[str]) -> list[str]:
    urls = []
    for _ in range(n):
        r = rng.random()
        if r < 0.2:
            urls.append(f"https://{rng.choice(('', 'www.', 'a.b.'))}{rng.choice(domains)}"
                        f"{rand_path(rng)}")
        elif r < 0.3:
            urls.append(rng.choice(origins) + rand_path(rng))
        elif r < 0.5:
            urls.append(rng.choice(prefixes) + rng.choice(("", "x.jpg", "a/b?c=d")))
        elif r < 0.6:  # a miss on a listed origin's host with the other scheme or a path
            origin = rng.choice(prefixes).split("/", 3)
            urls.append(f"{'http' if origin[0] == 'https:' else 'https'}://{origin[2]}/zz")
        else:
            urls.append(f"{rng.choice(('https', 'http'))}://{rand_host(rng)}{rand_path(rng)}")
    return urls


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s ({seconds * 1e6 / n:.2f} µs each)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--lookups", type=int, default=200_000)
    ap.add_argument("--sqlite-lookups", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory(prefix="registry-bench-") as tmp:
        list_path = Path(tmp) / "optouts.txt"
        domains, origins, prefixes = make_entries(args.entries, rng)
        n_lines = write_list(list_path, domains, origins, prefixes, rng)
        urls = make_urls(args.lookups, rng, domains, origins, prefixes)
        print(f"list: {len(domains):,} domains, {len(origins):,} origins, "
              f"{len(prefixes):,} prefixes; {n_lines:,} entry lines, "
              f"{mib(list_path.stat().st_size)}")
        gc.collect()

        rss0 = rss_bytes()
        t0 = time.perf_counter()
        index, problems = RegistryIndex.from_file(list_path)
        load = time.perf_counter() - t0
        gc.collect()
        rss1 = rss_bytes()
        print(f"in-memory: parse + index {len(index):,} entries in {load:.2f} s "
              f"({len(problems)} problems); RSS +{mib(rss1 - rss0)} "
              f"(max RSS so far {mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)})")

        del index
        gc.collect()
        tracemalloc.start()
        index, _ = RegistryIndex.from_file(list_path)
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"in-memory: tracemalloc retained {mib(current)} "
              f"({current / len(index):.0f} B/entry), peak {mib(peak)} during the load")

        t0 = time.perf_counter()
        hits = sum(1 for u in urls if index.lookup(u) is not None)
        took = time.perf_counter() - t0
        print(f"in-memory lookup: {len(urls):,} URLs ({hits:,} hits) -> {rate(len(urls), took)}")

        db_path = Path(tmp) / "optouts.db"
        t0 = time.perf_counter()
        count, _ = import_list(list_path, db_path)
        took = time.perf_counter() - t0
        print(f"import_list: {count:,} entries in {took:.2f} s; "
              f"DB {mib(db_path.stat().st_size)}")

        sample = urls[:args.sqlite_lookups]
        with SqliteRegistry(db_path) as db:
            t0 = time.perf_counter()
            answers = [db.lookup(u) for u in sample]
            took = time.perf_counter() - t0
            print(f"sqlite lookup: {len(sample):,} URLs -> {rate(len(sample), took)}")
            t0 = time.perf_counter()
            batched: dict = {}
            for i in range(0, len(sample), 100):
                batched.update(db.lookup_many(sample[i:i + 100]))
            took = time.perf_counter() - t0
            print(f"sqlite lookup_many (batches of 100): {rate(len(sample), took)}")
        expected = [index.lookup(u) for u in sample]
        bad = sum(1 for u, a, e in zip(sample, answers, expected, strict=True)
                  if a != e or batched[u] != e)
        print(f"check: SQLite and in-memory answers differ for {bad} of {len(sample):,} URLs")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
