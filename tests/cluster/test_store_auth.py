"""Redis is not trusted with reservations: shared entries carry an HMAC keyed by the cluster
secret (``POLITE_CLUSTER_SECRET``), a worker refuses what it cannot authenticate and fetches
the file (asks the registry) itself; without a secret nothing is shared. Real Redis."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time

from crawler.cluster.sitestore import RedisSiteStore

from .conftest import CLUSTER_SECRET
from .test_store import (
    ROBOTS,
    URL,
    FakeEngine,
    FakeRegistryEngine,
    cache_for,
    no_twisted_sleep,
    registry_for,
    store_for,
)

__all__ = ["no_twisted_sleep"]  # the fixture, imported for these tests

ORIGIN = "http://127.0.0.1:8711"
PRIVATE = ORIGIN + "/private/x"
UNAUTHENTICATED = "polite/cluster/store/unauthenticated"
FORGED = b"User-agent: *\nAllow: /\n"


def forge_site_entry(client, keys, *, mac: str | None = None) -> None:
    """What anyone with write access to Redis can store: ``Allow: /`` with its real SHA-256."""
    fields = {"status": "200", "body": FORGED, "error": "", "final_url": "",
              "fetched_at": repr(time.time()), "sha256": hashlib.sha256(FORGED).hexdigest(),
              "outcome": "parsed", "worker": "w9", "complete": "1"}
    if mac is not None:
        fields["mac"] = mac
    key = keys.site("robots.txt", URL)
    client.delete(key)
    client.hset(key, mapping=fields)
    client.pexpire(key, 60_000)


def assert_fetched_itself(cache, engine, f) -> None:
    assert engine.downloads == [URL]              # the worker fetched robots.txt itself
    assert f.outcome == "parsed" and f.sha256 == hashlib.sha256(ROBOTS).hexdigest()
    assert not f.parsed.verdict(PRIVATE, "AnyBot").allowed
    # read twice: before taking the fetch lock, and again once holding it
    assert cache.crawler.stats.get_value(UNAUTHENTICATED) == 2


def test_a_forged_entry_without_a_mac_is_refused(redis_url, tmp_path, no_twisted_sleep,
                                                 caplog):
    e = FakeEngine(latency=0.01)
    cache = cache_for(redis_url, "a", e, tmp_path)
    forge_site_entry(cache.store.client, cache.store.keys)
    with caplog.at_level(logging.WARNING, logger="crawler.cluster.sitestore"):
        f = asyncio.run(cache.get(ORIGIN, "robots.txt"))
    assert_fetched_itself(cache, e, f)
    warnings = [r for r in caplog.records if "has no MAC" in r.getMessage()]
    assert len(warnings) == 1 and CLUSTER_SECRET not in caplog.text
    # the worker's own fetch replaced the forged entry with an authenticated one
    other = cache_for(redis_url, "b", FakeEngine(), tmp_path)
    hit = other.store.get("robots.txt", URL)
    assert hit is not None and hit.body == ROBOTS


def test_a_forged_entry_with_a_wrong_mac_is_refused(redis_url, tmp_path, no_twisted_sleep,
                                                    caplog):
    e = FakeEngine(latency=0.01)
    cache = cache_for(redis_url, "a", e, tmp_path)
    forge_site_entry(cache.store.client, cache.store.keys, mac="0" * 64)
    with caplog.at_level(logging.WARNING, logger="crawler.cluster.sitestore"):
        f = asyncio.run(cache.get(ORIGIN, "robots.txt"))
    assert_fetched_itself(cache, e, f)
    assert cache.crawler.stats.get_value(f"{UNAUTHENTICATED}/invalid") == 2
    assert sum("does not verify" in r.getMessage() for r in caplog.records) == 1


def test_an_entry_written_with_another_secret_is_refused(redis_url, tmp_path,
                                                         no_twisted_sleep):
    e = FakeEngine(latency=0.01)
    cache = cache_for(redis_url, "a", e, tmp_path)
    other = RedisSiteStore(cache.store.client, cache.store.keys, "w9", ttl=60, backoff=0.2,
                           secret=b"another-secret")
    other.put("robots.txt", URL, status=200, body=FORGED, outcome="parsed")
    f = asyncio.run(cache.get(ORIGIN, "robots.txt"))
    assert_fetched_itself(cache, e, f)


def test_a_valid_entry_is_used(redis_url, tmp_path, no_twisted_sleep):
    store_for(redis_url, "w9").put("robots.txt", URL, status=200, body=ROBOTS,
                                   outcome="parsed")
    e = FakeEngine(latency=0.01)
    cache = cache_for(redis_url, "a", e, tmp_path)
    f = asyncio.run(cache.get(ORIGIN, "robots.txt"))
    assert not e.downloads and f.outcome == "parsed"
    assert not f.parsed.verdict(PRIVATE, "AnyBot").allowed
    assert cache.crawler.stats.get_value("polite/cluster/site/shared") == 1
    assert cache.crawler.stats.get_value(UNAUTHENTICATED) is None


def test_every_field_that_matters_is_authenticated(redis_url):
    """One field changed under a valid MAC, a valid entry moved to another URL's key, an old
    entry replayed with a fresh expiry: each is refused."""
    store = store_for(redis_url, "a", ttl=60)
    key = store.keys.site("robots.txt", URL)
    changes = {"status": b"404", "final_url": b"http://127.0.0.1:8711/elsewhere",
               "error": b"x", "complete": b"0", "outcome": b"unavailable",
               "fetched_at": repr(time.time() + 1).encode()}
    for field, value in changes.items():
        store.put("robots.txt", URL, status=200, body=ROBOTS, outcome="parsed")
        assert store.get("robots.txt", URL) is not None
        store.client.hset(key, field, value)
        assert store.get("robots.txt", URL) is None, field
    # moved to another URL (or another job)
    store.put("robots.txt", URL, status=200, body=ROBOTS, outcome="parsed")
    other_url = "http://127.0.0.1:8712/robots.txt"
    raw = store.client.hgetall(key)
    store.client.hset(store.keys.site("robots.txt", other_url), mapping=raw)
    store.client.pexpire(store.keys.site("robots.txt", other_url), 60_000)
    assert store.get("robots.txt", other_url) is None
    # replayed: fetched two TTLs ago, given a long expiry again
    store.put("robots.txt", URL, status=200, body=ROBOTS, outcome="parsed",
              fetched_at=time.time() - 120)
    store.client.pexpire(key, 60_000)
    assert store.get("robots.txt", URL) is None
    # an expiry stretched by hand does not outlive the TTL from the signed fetch time
    store.put("robots.txt", URL, status=200, body=ROBOTS, outcome="parsed",
              fetched_at=time.time() - 50)
    store.client.pexpire(key, 3_600_000)
    assert store.get("robots.txt", URL).expires_in <= 10


def test_a_forged_registry_answer_is_refused(redis_url):
    url = "http://site/a"
    e = FakeRegistryEngine({url})                  # the registry says: opted out
    reg = registry_for(redis_url, "a", e)
    key = reg.store.keys.registry("spawning", url)
    reg.store.client.hset(key, mapping={"opted_out": "0", "detail": "optOut: false",
                                        "fetched_at": repr(time.time()), "worker": "w9"})
    reg.store.client.pexpire(key, 60_000)
    asyncio.run(reg._ask([url]))
    assert e.asked == [[url]]                      # asked the registry itself
    assert reg._cache[url].opted_out is True
    assert reg.crawler.stats.get_value(UNAUTHENTICATED) == 1
    # with a wrong MAC, or one made with another secret: refused too
    for mac in ("f" * 64, RedisSiteStore(reg.store.client, reg.store.keys, "w9", ttl=60,
                                         backoff=0.2, secret=b"other")._registry_mac(
                                             "spawning", url, {"opted_out": b"0",
                                                               "detail": b"optOut: false",
                                                               "fetched_at": b"1"})):
        e2 = FakeRegistryEngine({url})
        reg2 = registry_for(redis_url, f"b{len(mac)}{mac[0]}", e2)
        reg2.store.client.hset(key, mapping={"opted_out": "0", "detail": "optOut: false",
                                             "fetched_at": "1", "mac": mac})
        asyncio.run(reg2._ask([url]))
        assert e2.asked == [[url]] and reg2._cache[url].opted_out is True


def test_valid_registry_answers_are_used(redis_url):
    url = "http://site/a"
    store_for(redis_url, "w9").put_registry_many("spawning", {url: (True, "optOut: true")})
    e = FakeRegistryEngine(set())
    reg = registry_for(redis_url, "a", e)
    asyncio.run(reg._ask([url]))
    assert e.asked == [] and reg._cache[url].opted_out is True


def test_without_a_secret_nothing_is_shared(redis_url, tmp_path, no_twisted_sleep,
                                            monkeypatch, caplog):
    # a valid entry and a valid answer are there, but a worker without the secret cannot
    # tell them from forgeries: it reads nothing and writes nothing
    store = store_for(redis_url, "w9")
    store.put("robots.txt", URL, status=200, body=FORGED, outcome="parsed")
    store.put_registry_many("spawning", {"http://site/a": (False, "optOut: false")})
    before = {k: store.client.hgetall(k) for k in store.client.keys("polite:t:*")
              if store.client.type(k) == b"hash"}
    monkeypatch.delenv("POLITE_CLUSTER_SECRET")
    monkeypatch.setattr("crawler.cluster.store._NO_SECRET_WARNED", False)
    e = FakeEngine(latency=0.01)
    with caplog.at_level(logging.INFO, logger="crawler.cluster.store"):
        cache = cache_for(redis_url, "a", e, tmp_path)
        f = asyncio.run(cache.get(ORIGIN, "robots.txt"))
    assert e.downloads == [URL] and not f.parsed.verdict(PRIVATE, "AnyBot").allowed
    assert [r.levelno for r in caplog.records
            if "POLITE_CLUSTER_SECRET is not set" in r.getMessage()] == [logging.WARNING]
    re = FakeRegistryEngine({"http://site/a"})
    reg = registry_for(redis_url, "b", re)
    asyncio.run(reg._ask(["http://site/a", "http://site/b"]))
    assert re.asked == [["http://site/a", "http://site/b"]]
    assert reg._cache["http://site/a"].opted_out is True
    after = {k: store.client.hgetall(k) for k in store.client.keys("polite:t:*")
             if store.client.type(k) == b"hash"}
    assert after == before                          # nothing written either
    assert not store.client.keys("polite:t:*lock*")
