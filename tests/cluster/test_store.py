"""The shared reservation store (raw bytes + evidence hash, expiry, fetch lock) and
SharedSiteCache's fetch-once logic, against a real Redis."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from types import SimpleNamespace

import pytest
from scrapy.http import TextResponse
from scrapy.utils.test import get_crawler

from crawler.cluster.connection import redis_client
from crawler.cluster.keys import JobKeys
from crawler.cluster.sitestore import RedisSiteStore
from crawler.cluster.store import SharedSiteCache, cluster_secret
from crawler.cluster.worker import ClusterWorker, Presence, cluster_setting
from crawler.policy.reservation import site_file

from .conftest import CLUSTER_SECRET, seeded, seeded_url

URL = "http://127.0.0.1:8711/robots.txt"
ROBOTS = b"User-agent: *\nDisallow: /private/\nCrawl-delay: 2\n"


def store_for(url: str, worker: str, *, ttl: float = 60, backoff: float = 0.2,
              alive: bool = True) -> RedisSiteStore:
    client = redis_client(url)
    keys = JobKeys("t")
    if alive:
        assert Presence(client, keys, worker, ttl=30, epoch=seeded(client)).claim()
    return RedisSiteStore(client, keys, worker, ttl=ttl, backoff=backoff,
                          secret=CLUSTER_SECRET.encode())


def test_put_and_get_keep_raw_bytes_status_and_evidence_hash(redis_url):
    store = store_for(redis_url, "a")
    life = store.put("robots.txt", URL, status=200, body=ROBOTS, outcome="parsed",
                     final_url="http://127.0.0.1:8711/hop4")
    assert life == 60
    hit = store.get("robots.txt", URL)
    assert hit is not None
    status, body, error, final_url, fetched_at = hit[:5]
    assert (status, body, error, final_url) == (200, ROBOTS,
                                                None, "http://127.0.0.1:8711/hop4")
    assert abs(fetched_at - time.time()) < 5
    assert hit.sha256 == hashlib.sha256(ROBOTS).hexdigest()
    assert 59 < hit.expires_in <= 60
    # another worker re-parses the same bytes into the same file
    mine = site_file("robots.txt", URL, status=200, body=ROBOTS,
                     final_url="http://127.0.0.1:8711/hop4")
    theirs = site_file("robots.txt", URL, status=hit.status, body=hit.body, error=hit.error,
                       final_url=hit.final_url)
    assert (theirs.outcome, theirs.sha256, theirs.size) == (mine.outcome, mine.sha256, mine.size)
    assert theirs.parsed.crawl_delay("AnyBot") == 2


def test_no_response_is_stored_without_a_hash(redis_url):
    store = store_for(redis_url, "a")
    store.put("robots.txt", URL, status=None, error="TimeoutError", outcome="unreachable")
    hit = store.get("robots.txt", URL)
    assert hit.status is None and hit.sha256 is None and hit.error == "TimeoutError"
    assert site_file("robots.txt", URL, status=None, error=hit.error).outcome == "unreachable"


def test_unreachable_is_never_cached_long_and_backs_off_per_failure(redis_url):
    store = store_for(redis_url, "a", ttl=1.0, backoff=0.1)
    lives = [store.put("robots.txt", URL, status=503, body=b"busy", outcome="unreachable")
             for _ in range(5)]
    assert lives == [0.1, 0.2, 0.4, 0.8, 1.0]  # doubling, capped by the TTL
    assert store.put("robots.txt", URL, status=200, body=ROBOTS, outcome="parsed") == 1.0
    # a success resets the count
    assert store.put("robots.txt", URL, status=503, body=b"", outcome="unreachable") == 0.1
    time.sleep(0.15)
    assert store.get("robots.txt", URL) is None


def test_entries_expire(redis_url):
    store = store_for(redis_url, "a", ttl=0.2)
    store.put("tdmrep.json", URL, status=404, body=b"no", outcome="unavailable")
    assert store.get("tdmrep.json", URL) is not None
    time.sleep(0.3)
    assert store.get("tdmrep.json", URL) is None


def test_a_tampered_entry_is_ignored(redis_url):
    store = store_for(redis_url, "a")
    store.put("robots.txt", URL, status=200, body=ROBOTS, outcome="parsed")
    store.client.hset(store.keys.site("robots.txt", URL), "body", b"User-agent: *\nAllow: /\n")
    assert store.get("robots.txt", URL) is None


def test_the_fetch_lock_goes_to_exactly_one_of_many_workers(redis_url):
    stores = [store_for(redis_url, f"w{i}") for i in range(8)]
    results: dict[str, bool] = {}
    barrier = threading.Barrier(len(stores))

    def grab(store: RedisSiteStore) -> None:
        barrier.wait()
        results[store.worker] = store.acquire("robots.txt", URL, 30)

    threads = [threading.Thread(target=grab, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [w for w, ok in results.items() if ok]
    assert len(winners) == 1
    holder = next(s for s in stores if s.worker == winners[0])
    other = next(s for s in stores if s.worker != winners[0])
    assert not other.release("robots.txt", URL)       # only the holder can release
    assert not other.acquire("robots.txt", URL, 30)
    assert holder.release("robots.txt", URL)
    assert other.acquire("robots.txt", URL, 30)


def test_the_fetch_lock_expires_and_dies_with_its_holder(redis_url):
    a = store_for(redis_url, "a")
    b = store_for(redis_url, "b")
    assert a.acquire("robots.txt", URL, 0.2)
    assert not b.acquire("robots.txt", URL, 30)
    time.sleep(0.25)
    assert b.acquire("robots.txt", URL, 30)            # expired
    b.client.delete(b.keys.alive("b"))                 # b is dead (killed)
    assert a.acquire("robots.txt", URL, 30)            # a dead holder holds nothing


def test_registry_answers_are_shared_and_failures_short_lived(redis_url):
    store = store_for(redis_url, "a", ttl=60, backoff=0.2)
    store.put_registry_many("spawning", {"http://x/1": (True, "optOut: true"),
                                         "http://x/2": (False, "optOut: false"),
                                         "http://x/3": (None, "registry down")})
    got = store_for(redis_url, "b").get_registry_many("spawning", ["http://x/1", "http://x/2",
                                                                   "http://x/3", "http://x/4"])
    assert got["http://x/1"].opted_out is True and got["http://x/1"].expires_in > 59
    assert got["http://x/2"].opted_out is False
    assert got["http://x/3"].opted_out is None and got["http://x/3"].expires_in <= 0.2
    assert "http://x/4" not in got
    assert store.get_registry("other", "http://x/1") is None
    time.sleep(0.25)
    assert store.get_registry("spawning", "http://x/3") is None


# -- SharedSiteCache: the fetch path, with a stand-in engine ---------------------------------
class FakeEngine:
    """Counts downloads; each takes `latency` seconds and answers `status`/`body`."""

    def __init__(self, status: int = 200, body: bytes = ROBOTS, latency: float = 0.1,
                 fail: bool = False) -> None:
        self.status, self.body, self.latency, self.fail = status, body, latency, fail
        self.downloads: list[str] = []

    async def download_async(self, request):
        self.downloads.append(request.url)
        await asyncio.sleep(self.latency)
        if self.fail:
            raise ConnectionRefusedError("refused")
        return TextResponse(request.url, status=self.status, body=self.body, request=request)


#: SharedSiteCache's fetch timings and the settings they come from
FETCH_SETTINGS = {"fetch_wait": "POLITE_CLUSTER_FETCH_WAIT",
                  "fetch_poll": "POLITE_CLUSTER_FETCH_POLL",
                  "lock_ttl": "POLITE_CLUSTER_FETCH_LOCK_TTL"}


def cache_for(redis_url: str, worker: str, engine: FakeEngine, tmp_path, **settings):
    seeded_url(redis_url)
    crawler = get_crawler(settings_dict={
        "POLITE_CLUSTER_REDIS_URL": redis_url, "POLITE_CLUSTER_JOB": "t",
        "POLITE_CLUSTER_WORKER": worker, "POLITE_CLUSTER_FETCH_POLL": 0.01, **settings})
    crawler.engine = SimpleNamespace(download_async=engine.download_async)
    ClusterWorker.of(crawler)  # claims the worker's presence
    return SharedSiteCache(crawler, worker=ClusterWorker.of(crawler),
                           secret=cluster_secret(crawler.settings),
                           **{name: float(cluster_setting(crawler.settings, setting))
                              for name, setting in FETCH_SETTINGS.items()},
                           ttl=60, backoff=0.2, timeout=5, maxsize=100_000,
                           max_redirects=5, evidence_dir=tmp_path / worker / "evidence")


@pytest.fixture
def no_twisted_sleep(monkeypatch):
    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds)

    monkeypatch.setattr("crawler.cluster.store.sleep", sleep)


def test_three_workers_fetch_one_file_once(redis_url, tmp_path, no_twisted_sleep):
    engines = [FakeEngine() for _ in range(3)]
    caches = [cache_for(redis_url, f"w{i}", e, tmp_path) for i, e in enumerate(engines)]

    async def all_get():
        return await asyncio.gather(*(c.get("http://127.0.0.1:8711", "robots.txt")
                                      for c in caches))

    files = asyncio.run(all_get())
    assert sum(len(e.downloads) for e in engines) == 1
    assert {f.outcome for f in files} == {"parsed"}
    assert len({f.sha256 for f in files}) == 1
    for i, f in enumerate(files):  # every worker keeps the evidence file
        assert (tmp_path / f"w{i}" / "evidence" / f.sha256).read_bytes() == ROBOTS
    stats = [c.crawler.stats.get_stats() for c in caches]
    assert sum(s.get("polite/cluster/site/fetched", 0) for s in stats) == 1
    assert sum(s.get("polite/cluster/site/waited", 0) for s in stats) == 2


def test_a_failed_fetch_is_shared_as_unreachable_with_backoff(redis_url, tmp_path,
                                                              no_twisted_sleep):
    a = cache_for(redis_url, "a", FakeEngine(fail=True), tmp_path)
    eb = FakeEngine()
    b = cache_for(redis_url, "b", eb, tmp_path)
    f = asyncio.run(a.get("http://127.0.0.1:8711", "robots.txt"))
    assert f.outcome == "unreachable"
    g = asyncio.run(b.get("http://127.0.0.1:8711", "robots.txt"))
    assert g.outcome == "unreachable" and not eb.downloads  # never fail open
    assert 0 < b.retry_in("robots.txt", "http://127.0.0.1:8711/robots.txt") <= 0.2
    time.sleep(0.25)
    assert b.cached("http://127.0.0.1:8711", "robots.txt") is None
    assert asyncio.run(b.get("http://127.0.0.1:8711", "robots.txt")).outcome == "parsed"
    assert len(eb.downloads) == 1


def test_waiters_fetch_themselves_when_the_holder_takes_too_long(redis_url, tmp_path,
                                                                 no_twisted_sleep):
    slow = FakeEngine(latency=1.0)
    quick = FakeEngine(latency=0.01)
    a = cache_for(redis_url, "a", slow, tmp_path)
    b = cache_for(redis_url, "b", quick, tmp_path, POLITE_CLUSTER_FETCH_WAIT=0.2)

    async def both():
        first = asyncio.ensure_future(a.get("http://127.0.0.1:8711", "robots.txt"))
        await asyncio.sleep(0.05)
        second = await b.get("http://127.0.0.1:8711", "robots.txt")
        return await first, second

    fa, fb = asyncio.run(both())
    assert fa.outcome == fb.outcome == "parsed"
    assert len(slow.downloads) == len(quick.downloads) == 1
    assert b.crawler.stats.get_value("polite/cluster/site/wait_timeout") == 1


def test_a_dead_holder_does_not_make_others_wait(redis_url, tmp_path, no_twisted_sleep):
    dead = store_for(redis_url, "ghost")
    assert dead.acquire("robots.txt", URL, 600)
    dead.client.delete(dead.keys.alive("ghost"))
    e = FakeEngine(latency=0.01)
    b = cache_for(redis_url, "b", e, tmp_path, POLITE_CLUSTER_FETCH_WAIT=30)
    started = time.monotonic()
    assert asyncio.run(b.get("http://127.0.0.1:8711", "robots.txt")).outcome == "parsed"
    assert time.monotonic() - started < 2 and len(e.downloads) == 1


def test_a_worker_name_cannot_run_twice(redis_url, tmp_path):
    cache_for(redis_url, "same", FakeEngine(), tmp_path)
    with pytest.raises(ValueError, match="already running"):
        cache_for(redis_url, "same", FakeEngine(), tmp_path)


# -- SharedHttpRegistry: answers asked once per cluster ---------------------------------------
class FakeRegistryEngine:
    def __init__(self, opted: set[str]) -> None:
        self.opted = opted
        self.asked: list[list[str]] = []

    async def download_async(self, request):
        import json

        urls = request.body.decode().split("\n")
        urls = [u for u in urls if u]
        self.asked.append(urls)
        body = json.dumps({"urls": [{"url": u, "optOut": u in self.opted} for u in urls]})
        return TextResponse(request.url, status=200, body=body.encode(), request=request)


def registry_for(redis_url: str, worker: str, engine) -> object:
    from crawler.cluster.store import SharedHttpRegistry
    from crawler.policy.reservation import Policy

    seeded_url(redis_url)
    crawler = get_crawler(settings_dict={
        "POLITE_CLUSTER_REDIS_URL": redis_url, "POLITE_CLUSTER_JOB": "t",
        "POLITE_CLUSTER_WORKER": worker})
    crawler.engine = SimpleNamespace(download_async=engine.download_async)
    ClusterWorker.of(crawler)
    spec = {"type": "http", "url": "http://127.0.0.1:8700/api", "name": "spawning",
            "format": "spawning", "batch_size": 100, "max_wait": 0.2, "timeout": 5,
            "retries": 0, "api_key_env": None}
    policy = Policy(token="PoliteDemoBot", user_agent="PoliteDemoBot/1.0 (+https://x.org)",
                    purpose="train-ai")
    return SharedHttpRegistry(spec, policy, crawler, ttl=60, backoff=0.2,
                              worker=ClusterWorker.of(crawler),
                              secret=cluster_secret(crawler.settings))


def test_registry_answers_are_asked_once_per_cluster(redis_url):
    urls = ["http://site/a", "http://site/b"]
    ea = FakeRegistryEngine({"http://site/a"})
    eb = FakeRegistryEngine(set())
    a, b = registry_for(redis_url, "a", ea), registry_for(redis_url, "b", eb)
    asyncio.run(a._ask(urls))
    asyncio.run(b._ask([*urls, "http://site/c"]))
    assert ea.asked == [urls]
    assert eb.asked == [["http://site/c"]]          # only what the cluster had not asked
    assert b._cache["http://site/a"].opted_out is True
    assert b._cache["http://site/b"].opted_out is False
    assert b.crawler.stats.get_value("polite/cluster/registry/spawning/shared") == 2


def test_a_cut_file_stays_cut_for_the_other_workers(redis_url):
    """A worker that read a robots.txt cut at the cap shares that it was cut: another worker's
    re-parse drops the same partial last line (a cut "Allow: /public/x" must not become
    "Allow: /" there either), and a cut tdmrep.json stays undetermined."""
    store = store_for(redis_url, "a")
    cut = b"User-agent: *\nDisallow: /\n" + b"#" * 600_000 + b"\nAllow: /"
    store.put("robots.txt", URL, status=200, body=cut, outcome="parsed", complete=False)
    hit = store.get("robots.txt", URL)
    assert hit is not None and hit.complete is False
    theirs = site_file("robots.txt", URL, status=hit.status, body=hit.body, error=hit.error,
                       complete=hit.complete)
    assert not theirs.parsed.verdict("http://127.0.0.1:8711/public/x", "AnyBot").allowed
    # cut before RFC 9309's 500 KiB minimum: undetermined for every worker
    store.put("robots.txt", URL, status=200, body=cut[:100], outcome="unreachable",
              complete=False)
    hit = store.get("robots.txt", URL)
    assert site_file("robots.txt", URL, status=hit.status, body=hit.body,
                     complete=hit.complete).outcome == "unreachable"
    tdm_url = "http://127.0.0.1:8711/.well-known/tdmrep.json"
    store.put("tdmrep.json", tdm_url, status=200, body=b'[{"location": "/x", ',
              outcome="unreachable", complete=False)
    hit = store.get("tdmrep.json", tdm_url)
    assert site_file("tdmrep.json", tdm_url, status=hit.status, body=hit.body,
                     complete=hit.complete).outcome == "unreachable"
    # a whole file reads as whole
    store.put("robots.txt", URL, status=200, body=ROBOTS, outcome="parsed")
    assert store.get("robots.txt", URL).complete is True


def test_the_origins_other_files_are_read_ahead_in_the_same_round_trip(redis_url):
    origin = "http://127.0.0.1:8711"
    tdm, ai = origin + "/.well-known/tdmrep.json", origin + "/ai.txt"
    a = store_for(redis_url, "a")
    a.put("robots.txt", URL, status=200, body=ROBOTS, outcome="parsed")
    a.put("tdmrep.json", tdm, status=200, body=b"[]", outcome="parsed")
    a.put("ai.txt", ai, status=200, body=b"User-agent: *\nDisallow: /\n", outcome="parsed")
    # a forged entry is read ahead and refused, as a get refuses it
    a.client.hset(a.keys.site("ai.txt", ai), "body", b"User-agent: *\nAllow: /\n")
    b = store_for(redis_url, "b")
    b.get_or_lock("robots.txt", origin + "/x", 5, [("ai.txt", origin + "/y")])  # script loaded
    calls = b.client.calls
    hit, locked = b.get_or_lock("robots.txt", URL, 5,
                                [("tdmrep.json", tdm), ("ai.txt", ai)])
    assert hit is not None and hit.body == ROBOTS and not locked
    assert b.client.calls == calls + 1
    early = b.take_ahead("tdmrep.json", tdm)
    assert early is not None and early.body == b"[]" and early.expires_in <= 60
    assert b.take_ahead("tdmrep.json", tdm) is None  # once
    assert b.take_ahead("ai.txt", ai) is None  # forged: not kept
    # what was not read ahead is not there
    assert b.take_ahead("robots.txt", URL) is None
