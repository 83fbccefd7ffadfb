"""Web Bot Auth signing cost: microseconds per signed request (crawler.identity.websig.sign_request).

Signs N requests to varied URLs with a fresh Ed25519 key and prints µs per signature, the
part of it that is the Ed25519 signature itself, and what the middleware adds (stripping old
fields, setting the three headers on a Scrapy Request, the stat).

    .venv/bin/python bench/sign_bench.py [--requests 5000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from crawler.identity.keys import Identity  # noqa: E402
from crawler.identity.websig import sign_request  # noqa: E402

AGENT = "https://crawler.example"


def _per_call_us(fn, n: int, rounds: int = 5) -> float:
    """Median over ``rounds`` of the mean µs per call of ``fn(i)`` for i in range(n)."""
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        for i in range(n):
            fn(i)
        out.append((time.perf_counter() - t) / n * 1e6)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=5000)
    n = ap.parse_args().requests
    ident = Identity(Ed25519PrivateKey.generate())
    urls = [f"https://site{i % 97}.example/path/{i}?q={i}" for i in range(n)]
    now = time.time()

    sign = _per_call_us(lambda i: sign_request(ident, "GET", urls[i], None,
                                               signature_agent=AGENT, now=now), n)
    ed = _per_call_us(lambda i: ident.sign(urls[i].encode()), n)

    from scrapy import Request
    from scrapy.utils.test import get_crawler

    from crawler.crawl.signing import SignRequestsMiddleware

    mw = SignRequestsMiddleware(ident, AGENT, stats=get_crawler().stats)
    reqs = [Request(u) for u in urls]
    mw_cost = _per_call_us(lambda i: mw.process_request(reqs[i]), n)
    print(f"sign_request:               {sign:8.1f} µs per signature ({n} requests, median of 5)")
    print(f"  of which Ed25519 sign:    {ed:8.1f} µs")
    print(f"  RFC 9421 serialisation:   {sign - ed:8.1f} µs (http-message-signatures, http-sf)")
    print(f"middleware process_request: {mw_cost:8.1f} µs per request (signing included)")


if __name__ == "__main__":
    main()
