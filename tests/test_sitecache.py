"""The site cache: bounded by bytes, least recently used and expired entries dropped, a dropped
file fetched again when needed (never read as "no reservation"), parses dropped and read again
to an equal parse, evidence kept on disk."""

from __future__ import annotations

import asyncio
import gc
import json
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import pytest
from scrapy.http import TextResponse
from scrapy.utils.test import get_crawler

from crawler.crawl import sitecache as sc
from crawler.crawl.sitecache import SiteCache
from crawler.policy.reservation import Policy, site_file

DATA = Path(__file__).parent / "data" / "real_robots"
ROBOTS = b"User-agent: *\nDisallow: /private/\n"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeEngine:
    def __init__(self, status: int = 200, body: bytes = ROBOTS) -> None:
        self.status, self.body = status, body
        self.downloads: list[str] = []
        self.fail = False

    async def download_async(self, request):
        self.downloads.append(request.url)
        if self.fail:
            raise ConnectionRefusedError("refused")
        status = self.status if request.url.endswith("/robots.txt") else 404
        return TextResponse(request.url, status=status, body=self.body, request=request)


def make_cache(tmp_path, *, max_bytes=sc.DEFAULT_MAX_BYTES, engine=None, clock=None):
    crawler = get_crawler()
    engine = engine or FakeEngine()
    crawler.engine = SimpleNamespace(download_async=engine.download_async)
    cache = SiteCache(crawler, ttl=600, backoff=10, timeout=5, maxsize=1 << 20,
                      max_redirects=5, evidence_dir=tmp_path / "evidence",
                      clock=clock or Clock(), max_bytes=max_bytes)
    return cache, engine


def origin(i: int) -> str:
    return f"http://10.0.{i >> 8 & 255}.{i & 255}"


def test_least_recently_used_origins_are_dropped_past_the_byte_budget(tmp_path):
    cache, engine = make_cache(tmp_path, max_bytes=40_000)
    for i in range(100):
        asyncio.run(cache.get(origin(i), "robots.txt"))
        asyncio.run(cache.get(origin(0), "robots.txt"))  # origin 0 stays in use
        assert cache.size_bytes <= 40_000
    assert cache.counts["evicted"] > 30
    assert cache.cached(origin(0), "robots.txt") is not None
    assert cache.cached(origin(1), "robots.txt") is None  # used least recently: dropped
    assert cache.cached(origin(99), "robots.txt") is not None
    assert engine.downloads.count(origin(0) + "/robots.txt") == 1


def test_a_dropped_file_is_fetched_again_and_decides_the_same(tmp_path):
    cache, engine = make_cache(tmp_path, max_bytes=20_000)
    policy = Policy(token="Bot", user_agent="Bot/1.0 (+https://x.example/bot)")
    first = asyncio.run(cache.get(origin(1), "robots.txt"))
    for i in range(2, 60):
        asyncio.run(cache.get(origin(i), "robots.txt"))
    assert cache.cached(origin(1), "robots.txt") is None  # dropped ...
    again = asyncio.run(cache.get(origin(1), "robots.txt"))  # ... so fetched again
    assert engine.downloads.count(origin(1) + "/robots.txt") == 2
    assert again == first and again.outcome == "parsed"
    url = origin(1) + "/private/x"
    assert policy.before_fetch(url, {"robots.txt": again}).denied
    # its evidence stayed on disk all along
    assert (tmp_path / "evidence" / first.sha256).read_bytes() == ROBOTS


def test_a_file_kept_without_its_parse_is_parsed_again_to_an_equal_file(tmp_path):
    cache, _ = make_cache(tmp_path)
    files = []
    for i, path in enumerate(sorted(DATA.glob("*.txt"))[::7]):
        kind = ("robots.txt", "ai.txt")[i % 2]
        url = origin(i) + sc.FILE_PATHS[kind]
        f = site_file(kind, url, status=200, body=path.read_bytes())
        cache._store((kind, url), f)
        files.append((kind, url, f))
    cache._hot.clear()
    cache._hot_bytes = 0
    for kind, url, f in files:
        got = cache.cached_url(kind, url)
        assert got == f and got.parsed == f.parsed and got is not f
        assert cache.cached_url(kind, url) is got  # kept parsed while in use
    assert cache.counts["rebuilt"] == len(files)


def test_expired_entries_are_swept_and_a_failed_file_keeps_its_backoff(tmp_path):
    clock = Clock()
    engine = FakeEngine()
    cache, _ = make_cache(tmp_path, engine=engine, clock=clock)
    asyncio.run(cache.get(origin(1), "robots.txt"))
    engine.fail = True
    asyncio.run(cache.get(origin(2), "robots.txt"))
    assert cache.retry_in("robots.txt", origin(2) + "/robots.txt") == 10
    clock.now += 605  # both expired (TTL 600 s; backoff 10 s)
    asyncio.run(cache.get(origin(3), "robots.txt"))  # a store: the sweep runs
    assert (("robots.txt", origin(1) + "/robots.txt")) not in cache._entries
    # the failed file is kept for a TTL past its expiry: the next failure doubles the wait
    assert (("robots.txt", origin(2) + "/robots.txt")) in cache._entries
    assert cache.cached(origin(2), "robots.txt") is None
    asyncio.run(cache.get(origin(2), "robots.txt"))
    assert cache.retry_in("robots.txt", origin(2) + "/robots.txt") == 20
    assert cache.counts["expired"] == 1


def test_the_budget_is_a_setting(tmp_path):
    crawler = get_crawler(settings_dict={
        "ADDONS": {"crawler.addon.Addon": 100},
        "POLITE_USER_AGENT": "GlueBot/1.0 (+https://example.org/bot)",
        "POLITE_OUTPUT_DIR": str(tmp_path), "POLITE_SITE_CACHE_MAX_BYTES": 12345})
    from crawler.crawl.runtime import get_runtime

    rt = get_runtime(crawler)
    try:
        assert rt.sitecache.max_bytes == 12345
    finally:
        rt.writer.close()
        rt.run_lock.release()


def _median_robots() -> bytes:
    files = json.loads((DATA / "manifest.json").read_text())["files"]
    robots = sorted((f for f in files if f["kind"] == "robots"), key=lambda f: f["bytes"])
    return (DATA / robots[len(robots) // 2]["file"]).read_bytes()


def test_a_typical_origin_takes_under_2_kb_and_the_estimate_is_above_what_it_takes(tmp_path):
    """tracemalloc over 3,000 origins (bench/sitecache_memory.py: 100,000): the median real
    robots.txt and 404s for tdmrep.json and ai.txt, with the parses of the files used last
    (HOT_FILES) counted in."""
    body = _median_robots()
    n = 3000
    cache, _ = make_cache(tmp_path)
    page = b"<html><body>404 Not Found</body></html>"
    files = []
    for i in range(n):
        for kind, status, b in (("robots.txt", 200, body), ("tdmrep.json", 404, page),
                                ("ai.txt", 404, page)):
            url = origin(i) + sc.FILE_PATHS[kind]
            files.append(((kind, url), site_file(kind, url, status=status, body=b)))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for key, f in files:
            cache._store(key, f)
        del files, key, f
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    per_origin = used / n
    assert per_origin < 2048, per_origin
    assert cache.size_bytes >= used  # the budget is counted conservatively


@pytest.mark.parametrize("body", [
    b"".join(b"User-agent: a%d\nDisallow: /%d\n" % (i, i) for i in range(2000)),
    b"User-agent: *\n" + b"".join(b"Allow: /%d*x$\n" % i for i in range(3000)),
    b"".join(b"Disallow: /%d\n" % i for i in range(3000)),
    b"User-agent: *\n" + b"Content-Usage: /a train-ai=n\n" * 2000,
    b"x\n" * 5000,
])
def test_the_parse_size_estimate_holds_for_dense_files(body):
    gc.collect()
    tracemalloc.start()
    try:
        f = site_file("robots.txt", "http://a.example/robots.txt", status=200, body=body)
        gc.collect()
        used = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert sc.parsed_size(f) >= used
