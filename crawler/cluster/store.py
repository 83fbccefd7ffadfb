"""The shared reservation cache: per-origin files and registry answers, once per cluster.

:class:`RedisSiteStore` keeps what a fetch of robots.txt, tdmrep.json, ai.txt or an RSL licence
returned — raw status, body, error, final URL, fetch time and the body's SHA-256 (the evidence
hash the audit records cite) — under ``polite:<job>:site:<kind>:<url>``, with an expiry: the
TTL for files that were read or found absent, a backoff for files that could not be fetched
(doubling per consecutive failure, counted for the cluster, capped by the TTL: an unreachable
file is never cached long, and the URLs depending on it stay refused meanwhile). Every worker
re-parses the raw bytes itself with :func:`crawler.policy.reservation.site_file`, so a worker never trusts
a parsed object from another process, and its own audit records carry the same hashes.

:class:`SharedSiteCache` is :class:`crawler.crawl.sitecache.SiteCache` with the fetch going through
the store: a worker that finds the file there uses it; otherwise it takes the file's fetch
lock (``SET NX PX``; void at once if its holder's presence key expired) and fetches it through
the engine as usual, then stores it; a worker that does not get the lock polls the store for up
to ``POLITE_CLUSTER_FETCH_WAIT`` seconds, then fetches the file itself. Never fail open: if
neither happens (the fetch fails, Redis is gone and the fetch fails), the file counts as
unreachable, as in a single process.

:class:`SharedHttpRegistry` does the same for the answers of an HTTP registry API (without a
lock: each URL is asked by the worker that needs it first; answers are shared).

:class:`SharedLedger` is the job's pay-per-crawl budget in Redis (crawler/cluster/budget.py) on
the worker's client. The three are a worker's ``POLITE_SITECACHE_CLASS``,
``POLITE_HTTP_REGISTRY_CLASS`` and ``POLITE_PAYMENT_LEDGER_CLASS`` (crawler/cluster/settings.py).

Redis is not trusted with reservations: anyone who can write to it could store ``Allow: /``
with a recomputed SHA-256. Every entry therefore carries an HMAC-SHA256 (field ``mac``) over
every field a reader uses (job, kind, URL, status, body hash, error, final URL, fetch time,
complete, outcome; for registry answers job, name, URL, opted_out, detail, fetch time), keyed
by the cluster secret from the environment variable ``POLITE_CLUSTER_SECRET`` (its name:
setting ``POLITE_CLUSTER_SECRET_ENV``; the secret itself is never in a setting nor a log).
An entry without a valid MAC, or older than the TTL by its authenticated fetch time (a replayed
old entry), is refused: the worker fetches the file (asks the registry) itself, counts it in
``polite/cluster/store/unauthenticated`` and logs one WARNING per kind of failure. Without a
secret nothing is shared: each worker fetches its own files and asks registries itself.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from redis.exceptions import RedisError

from crawler.cluster import defaults
from crawler.cluster.budget import RedisLedger
from crawler.cluster.connection import named_script
from crawler.cluster.keys import JobKeys
from crawler.cluster.state import LIVENESS, NOW, NUM
from crawler.cluster.worker import ClusterWorker, cluster_setting, sleep
from crawler.optout.model import SiteFile
from crawler.policy.ledger import PaymentPolicy
from crawler.policy.reservation import site_file
from crawler.crawl.registries import HttpRegistry, _Cached
from crawler.crawl.sitecache import FILE_PATHS, SiteCache

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from crawler.cluster.connection import CountingRedis

logger = logging.getLogger(__name__)

#: The environment variable holding the cluster secret (setting ``POLITE_CLUSTER_SECRET_ENV``
#: names another one). Every worker of a job needs the same value.
SECRET_ENV = "POLITE_CLUSTER_SECRET"
#: Stats key counting shared entries refused for want of a valid MAC.
UNAUTHENTICATED = "polite/cluster/store/unauthenticated"
_MAC_VERSION = b"polite-crawler/cluster-store/v1"


def secret_env_name(settings: Any) -> str:
    return str(settings.get("POLITE_CLUSTER_SECRET_ENV") or SECRET_ENV)


def cluster_secret(settings: Any, environ: Mapping[str, str] | None = None) -> bytes | None:
    """The cluster secret from the environment (None when unset or empty)."""
    value = (os.environ if environ is None else environ).get(secret_env_name(settings), "")
    return value.encode("utf-8") if value else None


def _warn_no_secret(settings: Any) -> None:
    global _NO_SECRET_WARNED
    if not _NO_SECRET_WARNED:
        _NO_SECRET_WARNED = True
        logger.warning("cluster: %s is not set: reservations (robots.txt, tdmrep.json, ai.txt, "
                       "licences, registry answers) are not shared through Redis; each worker "
                       "fetches and asks them itself. To share them, set %s to the same secret "
                       "value in the environment of every worker of the job",
                       secret_env_name(settings), secret_env_name(settings))


_NO_SECRET_WARNED = False


def _mac_message(*fields: str | bytes) -> bytes:
    """Length-prefixed, unambiguous encoding of ``fields``."""
    out = [_MAC_VERSION]
    for f in fields:
        b = f.encode("utf-8") if isinstance(f, str) else f
        out.append(len(b).to_bytes(8, "big"))
        out.append(b)
    return b"".join(out)


class StoredFile(NamedTuple):
    """One fetch of a per-origin file as the cluster stored it."""

    status: int | None      # None: no response (network error, timeout, redirect loop)
    body: bytes
    error: str | None
    final_url: str | None
    fetched_at: float       # Unix time of the fetch
    sha256: str | None      # of ``body`` when there was a response (the evidence hash)
    expires_in: float       # seconds the entry has left
    complete: bool = True   # False: only a prefix of the file was read (a size cap cut it)


class StoredAnswer(NamedTuple):
    """One registry answer for one URL (``opted_out`` None: the registry could not answer)."""

    opted_out: bool | None
    detail: str
    fetched_at: float
    expires_in: float


# KEYS: entry hash, failure counter. ARGV: unreachable ("1"/"0"), ttl ms, backoff ms, then the
# entry's field/value pairs. Returns the entry's lifetime in ms.
_PUT_BODY = """
local ttl = tonumber(ARGV[2])
local wait = ttl
if ARGV[1] == '1' then
  local n = redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], ttl)
  wait = math.min(tonumber(ARGV[3]) * 2 ^ (n - 1), ttl)
else
  redis.call('DEL', KEYS[2])
end
wait = math.max(math.floor(wait), 1)
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, FIELDS))
redis.call('PEXPIRE', KEYS[1], wait)
return wait
"""
_PUT = _PUT_BODY.replace("FIELDS", "4")

# The same, and the fetch lock released in the same call (one round trip after a fetch).
# KEYS: entry hash, failure counter, lock. ARGV: as _PUT's, the worker (the lock's holder)
# before the field/value pairs.
_PUT_UNLOCK = """
if redis.call('GET', KEYS[3]) == ARGV[4] then redis.call('DEL', KEYS[3]) end
""" + _PUT_BODY.replace("FIELDS", "5")

# KEYS: lock, beats, clock. ARGV: worker, ttl ms, alive-key prefix, heartbeat gap ms. 1 when
# this worker holds the lock now (a lock held by a dead worker is void: state.py's liveness).
_LOCK = NOW + NUM + LIVENESS + """
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] and is_alive(cur, KEYS[2], KEYS[3], ARGV[3], tonumber(ARGV[4])) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# The stored entry if there is one, else the fetch lock as _LOCK takes it: one round trip where
# a get, a lock and a second get (stored just before the lock was taken) were three.
# KEYS: entry hash, lock, beats, clock. ARGV: worker, ttl ms, alive-key prefix, heartbeat gap
# ms, "1" to take the lock whatever the entry (it failed its checks here; the entry is still
# answered with the lock, to be checked once more as a get after the lock would be). Returns
# {entry field/value pairs, entry PTTL, 1 when this worker holds the lock now}.
_GET_OR_LOCK = NOW + NUM + LIVENESS + """
local pttl = redis.call('PTTL', KEYS[1])
if ARGV[5] ~= '1' and pttl > 0 then return {redis.call('HGETALL', KEYS[1]), pttl, 0} end
local cur = redis.call('GET', KEYS[2])
if cur and cur ~= ARGV[1] and is_alive(cur, KEYS[3], KEYS[4], ARGV[3], tonumber(ARGV[4])) then
  return {{}, -2, 0}
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
if pttl > 0 then return {redis.call('HGETALL', KEYS[1]), pttl, 1} end
return {{}, -2, 1}
"""

# KEYS: lock. ARGV: worker.
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


# _GET_OR_LOCK, and in the same round trip the entries of KEYS[5..] (the origin's other
# per-origin files, read ahead, never locked): {field/value pairs, PTTL} each, appended as a
# fourth element.
_GET_OR_LOCK_AHEAD = NOW + NUM + LIVENESS + """
local function main()
""" + _GET_OR_LOCK[len(NOW + NUM + LIVENESS):] + """
end
local r = main()
local ahead = {}
for i = 5, #KEYS do
  local p = redis.call('PTTL', KEYS[i])
  if p > 0 then table.insert(ahead, redis.call('HGETALL', KEYS[i])) else table.insert(ahead, {}) end
  table.insert(ahead, p)
end
table.insert(r, ahead)
return r
"""

#: how long an entry read ahead may wait for its file to be asked for (seconds)
AHEAD_LIFE = 5.0


class RedisSiteStore:
    """Raw per-origin file fetches and registry answers shared by a job's workers."""

    def __init__(self, client: CountingRedis, keys: JobKeys, worker: str, *, ttl: float,
                 backoff: float, secret: bytes, clock: Callable[[], float] = time.time,
                 stats: Any = None, gap: float = 1.0) -> None:
        if not secret:
            raise ValueError("RedisSiteStore needs the cluster secret (entries are "
                             "authenticated; without a secret nothing is shared)")
        self.client = client
        self.keys = keys
        self.worker = worker
        self.ttl = ttl
        self.backoff = backoff
        self.gap_ms = max(1, int(gap * 1000))   # the heartbeat interval (liveness)
        self._key = bytes(secret)
        self._clock = clock
        self.stats = stats
        self._warned: set[str] = set()
        self._put = named_script(client, _PUT, "site_put")
        self._lock = named_script(client, _LOCK, "site_lock")
        self._unlock = named_script(client, _UNLOCK, "site_unlock")
        self._get_or_lock = named_script(client, _GET_OR_LOCK, "site_get_or_lock")
        self._get_or_lock_ahead = named_script(client, _GET_OR_LOCK_AHEAD, "site_get_or_lock")
        #: entries read ahead (:meth:`get_or_lock` ``ahead``): (kind, url) -> (entry, when)
        self._ahead: dict[tuple[str, str], tuple[StoredFile, float]] = {}
        self._put_unlock = named_script(client, _PUT_UNLOCK, "site_put_unlock")

    # -- authentication --------------------------------------------------------------------
    def _mac(self, msg: bytes) -> str:
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def _site_mac(self, kind: str, url: str, f: Mapping[str, bytes | str]) -> str:
        body = f.get("body", b"")
        body = body.encode() if isinstance(body, str) else body
        return self._mac(_mac_message(
            "site", self.keys.job, kind, url, *(f.get(n, b"") for n in (
                "status", "sha256", "error", "final_url", "fetched_at", "complete",
                "outcome")), hashlib.sha256(body).hexdigest()))

    def _registry_mac(self, name: str, url: str, f: Mapping[str, bytes | str]) -> str:
        return self._mac(_mac_message(
            "registry", self.keys.job, name, url,
            *(f.get(n, b"") for n in ("opted_out", "detail", "fetched_at"))))

    def _authentic(self, what: str, url: str, f: Mapping[str, bytes], expected: str,
                   life: float, *, report: bool = True) -> bool:
        """True when ``f`` carries ``expected`` as its MAC and is not older than ``life``.
        ``report=False``: a refusal is neither counted nor logged (an entry read ahead: it is
        read, and reported, again when its file is asked for)."""
        got = f.get("mac", b"")
        if not got:
            reason = "missing"
        elif not hmac.compare_digest(got, expected.encode()):
            reason = "invalid"
        else:
            try:
                at = float(f.get("fetched_at", b""))
            except ValueError:
                at = float("nan")
            age = self._clock() - at
            if age == age and -60 <= age <= life + 1:  # NaN fails; 60 s of clock skew
                return True
            reason = "stale"
        if not report:
            return False
        if self.stats is not None:
            self.stats.inc_value(UNAUTHENTICATED)
            self.stats.inc_value(f"{UNAUTHENTICATED}/{reason}")
        if reason not in self._warned:
            self._warned.add(reason)
            text = {"missing": "has no MAC", "invalid": "has a MAC that does not verify (a "
                    "forged entry, or a worker with another POLITE_CLUSTER_SECRET)",
                    "stale": "is older than its lifetime (a replayed entry)"}[reason]
            logger.warning("shared %s entry for %s %s: refused, fetched here instead (further "
                           "entries refused for this reason are counted in %s, not logged)",
                           what, url, text, UNAUTHENTICATED)
        return False

    # -- per-origin files ------------------------------------------------------------------
    def get(self, kind: str, url: str) -> StoredFile | None:
        """The stored fetch of ``url``, or None (absent, expired, or failing its hash)."""
        key = self.keys.site(kind, url)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(key)
            pipe.pttl(key)
            raw, pttl = pipe.execute()
        return self._decode(kind, url, raw, pttl)

    def get_or_lock(self, kind: str, url: str, timeout: float,
                    ahead: Iterable[tuple[str, str]] = ()) -> tuple[StoredFile | None, bool]:
        """In one round trip: the stored fetch of ``url`` (as :meth:`get`), or else the fetch
        lock (as :meth:`acquire`); and the entries of the files ``ahead`` ((kind, url) pairs:
        the origin's other per-origin files, about to be asked for), read, checked as a get
        checks them and kept for :meth:`take_ahead` (never locked). (None, True): this worker holds the lock and fetches;
        (None, False): a live worker holds it. An entry that fails its checks here is not
        used: the lock is asked for in a second call, which answers the entry again (checked
        again, as a get just after the lock was taken: then (hit, True), and the caller
        releases the lock)."""
        keys = [self.keys.site(kind, url), self.keys.site_lock(kind, url), self.keys.beats,
                self.keys.clock]
        args = [self.worker, max(1, int(timeout * 1000)), self.keys.alive_prefix, self.gap_ms]
        if ahead:
            flat, pttl, locked, more = self._get_or_lock_ahead(
                keys=[*keys, *(self.keys.site(k, u) for k, u in ahead)], args=[*args, "0"])
            self._keep_ahead(ahead, more)
        else:
            flat, pttl, locked = self._get_or_lock(keys=keys, args=[*args, "0"])
        if int(pttl) > 0 and not int(locked):
            hit = self._decode(kind, url, dict(zip(flat[::2], flat[1::2], strict=True)), pttl)
            if hit is not None:
                return hit, False
            flat, pttl, locked = self._get_or_lock(keys=keys, args=[*args, "1"])
            if int(pttl) > 0 and int(locked):
                hit = self._decode(kind, url, dict(zip(flat[::2], flat[1::2], strict=True)),
                                   pttl)
                return hit, True
        return None, bool(int(locked))

    def _keep_ahead(self, ahead: Iterable[tuple[str, str]], more: list[Any]) -> None:
        now = time.monotonic()
        if len(self._ahead) > 1000:
            self._ahead = {k: v for k, v in self._ahead.items() if now - v[1] < AHEAD_LIFE}
        for (kind, url), flat, pttl in zip(ahead, more[::2], more[1::2], strict=True):
            if int(pttl) > 0:
                hit = self._decode(kind, url, dict(zip(flat[::2], flat[1::2], strict=True)),
                                   pttl, report=False)
                if hit is not None:
                    self._ahead[(kind, url)] = (hit, now)

    def take_ahead(self, kind: str, url: str) -> StoredFile | None:
        """The entry of ``url`` read ahead in the last :data:`AHEAD_LIFE` seconds (its
        lifetime shortened by the time it waited), once; None otherwise."""
        got = self._ahead.pop((kind, url), None)
        if got is None:
            return None
        hit, when = got
        waited = time.monotonic() - when
        if waited >= AHEAD_LIFE or hit.expires_in - waited <= 0:
            return None
        return hit._replace(expires_in=hit.expires_in - waited)

    def _decode(self, kind: str, url: str, raw: Mapping[bytes, bytes],
                pttl: Any, *, report: bool = True) -> StoredFile | None:
        if not raw or pttl is None or int(pttl) <= 0:
            return None
        f = {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}
        if not self._authentic(kind, url, f, self._site_mac(kind, url, f), self.ttl,
                               report=report):
            return None
        try:
            status = int(f["status"]) if f.get("status") else None
            fetched_at = float(f.get("fetched_at", b"0"))
        except ValueError:
            return None
        body = f.get("body", b"")
        sha = f["sha256"].decode() if f.get("sha256") else None
        if status is not None and sha != hashlib.sha256(body).hexdigest():
            logger.warning("shared cache entry for %s does not match its hash: ignored", url)
            return None
        # never longer than the TTL from its authenticated fetch time (a PEXPIRE is not signed)
        left = min(int(pttl) / 1000, fetched_at + self.ttl - self._clock())
        if left <= 0:
            return None
        return StoredFile(status, body, _text(f.get("error")), _text(f.get("final_url")),
                          fetched_at, sha, left, f.get("complete", b"1") != b"0")

    def put(self, kind: str, url: str, *, status: int | None, body: bytes = b"",
            error: str | None = None, final_url: str | None = None, outcome: str,
            fetched_at: float | None = None, complete: bool = True,
            unlock: bool = False) -> float:
        """Store one fetch; returns its lifetime in seconds (the TTL, or the backoff when
        ``outcome`` is ``unreachable``, doubling per consecutive failure, capped by the TTL).
        ``unlock``: release this worker's fetch lock for ``url`` in the same call."""
        sha = hashlib.sha256(body).hexdigest() if status is not None else ""
        fields = {"status": "" if status is None else str(status), "body": body,
                  "error": error or "", "final_url": final_url or "",
                  "fetched_at": repr(self._clock() if fetched_at is None else fetched_at),
                  "sha256": sha, "outcome": outcome, "worker": self.worker,
                  "complete": "1" if complete else "0"}
        fields["mac"] = self._site_mac(kind, url, fields)
        args: list[Any] = ["1" if outcome == "unreachable" else "0",
                           max(1, int(self.ttl * 1000)), max(1, int(self.backoff * 1000))]
        keys = [self.keys.site(kind, url), self.keys.site_failures(kind, url)]
        if unlock:
            keys.append(self.keys.site_lock(kind, url))
            args.append(self.worker)
        for k, v in fields.items():
            args += [k, v]
        ms = (self._put_unlock if unlock else self._put)(keys=keys, args=args)
        return int(ms) / 1000

    def acquire(self, kind: str, url: str, timeout: float) -> bool:
        """The fetch lock for ``url`` (held for at most ``timeout`` seconds); False when a
        live worker holds it."""
        return bool(int(self._lock(keys=[self.keys.site_lock(kind, url), self.keys.beats,
                                         self.keys.clock],
                                   args=[self.worker, max(1, int(timeout * 1000)),
                                         self.keys.alive_prefix, self.gap_ms])))

    def release(self, kind: str, url: str) -> bool:
        return bool(int(self._unlock(keys=[self.keys.site_lock(kind, url)],
                                     args=[self.worker])))

    # -- registry answers ------------------------------------------------------------------
    def get_registry(self, name: str, url: str) -> StoredAnswer | None:
        return self.get_registry_many(name, [url]).get(url)

    def get_registry_many(self, name: str, urls: Iterable[str]) -> dict[str, StoredAnswer]:
        urls = list(urls)
        if not urls:
            return {}
        with self.client.pipeline(transaction=False) as pipe:
            for url in urls:
                key = self.keys.registry(name, url)
                pipe.hgetall(key)
                pipe.pttl(key)
            res = pipe.execute()
        out = {}
        for i, url in enumerate(urls):
            raw, pttl = res[2 * i], res[2 * i + 1]
            if not raw or pttl is None or int(pttl) <= 0:
                continue
            f = {k.decode(): v for k, v in raw.items()}
            if not self._authentic(f"registry {name}", url, f,
                                   self._registry_mac(name, url, f), self.ttl):
                continue
            opted = {b"1": True, b"0": False}.get(f.get("opted_out", b""))
            at = float(f.get("fetched_at", b"0"))
            left = min(int(pttl) / 1000, at + self.ttl - self._clock())
            if left <= 0:
                continue
            out[url] = StoredAnswer(opted, _text(f.get("detail")) or "", at, left)
        return out

    def put_registry(self, name: str, url: str, opted_out: bool | None, detail: str) -> float:
        return self.put_registry_many(name, {url: (opted_out, detail)})[url]

    def put_registry_many(self, name: str,
                          answers: Mapping[str, tuple[bool | None, str]]) -> dict[str, float]:
        """Definite answers live for the TTL; "could not answer" for the backoff."""
        out: dict[str, float] = {}
        if not answers:
            return out
        now = repr(self._clock())
        with self.client.pipeline(transaction=False) as pipe:
            for url, (opted, detail) in answers.items():
                key = self.keys.registry(name, url)
                life = self.ttl if opted is not None else min(self.backoff, self.ttl)
                fields = {"opted_out": {True: "1", False: "0"}.get(opted, ""),
                          "detail": detail, "fetched_at": now, "worker": self.worker}
                fields["mac"] = self._registry_mac(name, url, fields)
                pipe.delete(key)
                pipe.hset(key, mapping=fields)
                pipe.pexpire(key, max(1, int(life * 1000)))
                out[url] = life
            pipe.execute()
        return out


def _text(value: bytes | None) -> str | None:
    return value.decode("utf-8", "replace") if value else None


class SharedSiteCache(SiteCache):
    """:class:`~crawler.crawl.sitecache.SiteCache` whose fetches go through :class:`RedisSiteStore`.

    A cluster worker's ``POLITE_SITECACHE_CLASS``. Takes ``SiteCache``'s arguments and the
    worker's :class:`~crawler.cluster.worker.ClusterWorker` (its Redis client, job keys, name
    and heartbeat), the cluster ``secret`` (None: nothing shared) and the fetch lock's
    timings; :meth:`from_crawler` finds them in the crawler's worker and settings.
    """

    def __init__(self, crawler: Crawler, *, worker: ClusterWorker, secret: bytes | None,
                 fetch_wait: float = defaults.POLITE_CLUSTER_FETCH_WAIT,
                 fetch_poll: float = defaults.POLITE_CLUSTER_FETCH_POLL,
                 lock_ttl: float = defaults.POLITE_CLUSTER_FETCH_LOCK_TTL,
                 **kwargs: Any) -> None:
        super().__init__(crawler, **kwargs)
        self.store: RedisSiteStore | None = None
        if secret is None:
            _warn_no_secret(crawler.settings)
        else:
            self.store = RedisSiteStore(worker.redis, worker.keys, worker.name, ttl=self.ttl,
                                        backoff=self.backoff, secret=secret,
                                        stats=crawler.stats, gap=worker.interval)
        self.fetch_wait = float(fetch_wait)
        self.fetch_poll = float(fetch_poll)
        self.lock_ttl = float(lock_ttl)
        self._bodies: dict[tuple[str, str], bytes] = {}
        self._shared_expiry: dict[tuple[str, str], float] = {}
        #: fetch locks released with the put (the fetch's finally need not release them)
        self._unlocked: dict[tuple[str, str], bool] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler, **kwargs: Any) -> SharedSiteCache:
        s = crawler.settings
        return cls(crawler, worker=ClusterWorker.of(crawler), secret=cluster_secret(s),
                   fetch_wait=float(cluster_setting(s, "POLITE_CLUSTER_FETCH_WAIT")),
                   fetch_poll=float(cluster_setting(s, "POLITE_CLUSTER_FETCH_POLL")),
                   lock_ttl=float(cluster_setting(s, "POLITE_CLUSTER_FETCH_LOCK_TTL")),
                   **{**cls.options(s), **kwargs})

    async def _fetch(self, kind: str, url: str) -> SiteFile:
        if self.store is None:  # no cluster secret: nothing shared (fail closed)
            return await self._fetch_here(kind, url, share=False)
        try:
            return await self._fetch_shared(kind, url)
        except RedisError as exc:
            self.crawler.stats.inc_value("polite/cluster/site/redis_error")
            logger.warning("shared reservation cache unavailable (%s): %s fetched by this "
                           "worker alone", exc, url)
            return await self._fetch_here(kind, url, share=False)

    async def _fetch_shared(self, kind: str, url: str) -> SiteFile:
        assert self.store is not None
        stats = self.crawler.stats
        early = self.store.take_ahead(kind, url)
        if early is not None:  # read with a sibling file of its origin, a moment ago
            stats.inc_value("polite/cluster/site/shared")
            stats.inc_value("polite/cluster/site/read_ahead")
            return self._from_store(kind, url, early)
        deadline = time.monotonic() + self.fetch_wait
        waited = False
        ahead = self._siblings(kind, url)
        while True:
            # the stored file, or else the fetch lock, in one call (atomically: a file stored
            # just before the lock was free is found, not fetched again); the origin's other
            # files read ahead in the same call
            hit, locked = self.store.get_or_lock(kind, url, self.lock_ttl, ahead)
            ahead = ()
            if hit is not None:
                if locked:  # stored just before we took the lock
                    try:
                        self.store.release(kind, url)
                    except RedisError:  # the lock expires by itself
                        pass
                    stats.inc_value("polite/cluster/site/shared")
                    return self._from_store(kind, url, hit)
                stats.inc_value("polite/cluster/site/waited" if waited else
                                "polite/cluster/site/shared")
                return self._from_store(kind, url, hit)
            if locked:
                try:
                    # stored and unlocked in one call
                    return await self._fetch_here(kind, url, share=True, unlock=True)
                finally:
                    if not self._unlocked.pop((kind, url), False):
                        try:
                            self.store.release(kind, url)
                        except RedisError:  # the lock expires by itself
                            pass
            if time.monotonic() >= deadline:
                stats.inc_value("polite/cluster/site/wait_timeout")
                logger.warning("%s: another worker has been fetching it for %.0f s; fetching "
                               "it here too", url, self.fetch_wait)
                return await self._fetch_here(kind, url, share=True)
            waited = True
            await sleep(self.fetch_poll)

    def _siblings(self, kind: str, url: str) -> list[tuple[str, str]]:
        """The other per-origin files of ``url``'s origin when ``url`` is one (robots.txt,
        tdmrep.json, ai.txt), not cached here and not being fetched: read ahead with it."""
        path = FILE_PATHS.get(kind)
        if path is None or not url.endswith(path):
            return []
        origin = url[:-len(path)]
        out = []
        for other, other_path in FILE_PATHS.items():
            key = (other, origin + other_path)
            if (other != kind and key not in self._pending
                    and self.cached_url(*key) is None):
                out.append(key)
        return out

    async def _fetch_here(self, kind: str, url: str, *, share: bool,
                          unlock: bool = False) -> SiteFile:
        f = await super()._fetch(kind, url)
        body = self._bodies.pop((kind, url), b"")
        self.crawler.stats.inc_value("polite/cluster/site/fetched")
        if share and self.store is not None:
            try:
                self._shared_expiry[(kind, url)] = self.store.put(
                    kind, url, status=f.status, body=body, error=f.error,
                    final_url=f.final_url, outcome=f.outcome, complete=f.complete,
                    unlock=unlock)
                if unlock:
                    self._unlocked[(kind, url)] = True
            except RedisError as exc:
                logger.warning("could not share %s with the cluster (%s)", url, exc)
        return f

    def _from_store(self, kind: str, url: str, hit: StoredFile) -> SiteFile:
        f = site_file(kind, url, status=hit.status, body=hit.body, error=hit.error,
                      final_url=hit.final_url, complete=hit.complete)
        SiteCache._archive(self, f, hit.body)  # this worker's evidence directory too
        self._shared_expiry[(kind, url)] = hit.expires_in
        return f

    def _archive(self, f: SiteFile, body: bytes) -> None:
        # SiteCache._fetch hands every response body it parsed to _archive: keep it for the
        # store (the fetch coroutine picks it up right after _fetch returns)
        self._bodies[(f.kind, f.url)] = body
        super()._archive(f, body)

    def _store(self, key: tuple[str, str], f: SiteFile) -> None:
        super()._store(key, f)
        remaining = self._shared_expiry.pop(key, None)
        if remaining is not None and key in self._entries:
            # expire with the cluster's entry, not a full TTL after this worker read it
            self._entries[key].expires = self._clock() + remaining


class SharedHttpRegistry(HttpRegistry):
    """:class:`~crawler.crawl.registries.HttpRegistry` whose answers are shared by the job's
    workers: a URL already answered (or found unanswerable, for the backoff) is not asked
    again by another worker. A cluster worker's ``POLITE_HTTP_REGISTRY_CLASS``: takes
    ``HttpRegistry``'s arguments, the worker's :class:`~crawler.cluster.worker.ClusterWorker`
    and the cluster ``secret`` (None: nothing shared); :meth:`from_crawler` finds them."""

    def __init__(self, spec: dict[str, Any], policy: Any, crawler: Crawler, *, ttl: float,
                 backoff: float, worker: ClusterWorker, secret: bytes | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(spec, policy, crawler, ttl=ttl, backoff=backoff, clock=clock)
        self.store: RedisSiteStore | None = None
        if secret is None:
            _warn_no_secret(crawler.settings)
        else:
            # the store's clock is wall time (fetch times are compared across machines)
            self.store = RedisSiteStore(worker.redis, worker.keys, worker.name, ttl=ttl,
                                        backoff=backoff, secret=secret, stats=crawler.stats)

    @classmethod
    def from_crawler(cls, crawler: Crawler, spec: dict[str, Any], policy: Any,
                     **kwargs: Any) -> SharedHttpRegistry:
        return cls(spec, policy, crawler, worker=ClusterWorker.of(crawler),
                   secret=cluster_secret(crawler.settings), **kwargs)

    async def _ask(self, batch: list[str]) -> None:
        if self.store is None:  # no cluster secret: this worker asks the registry itself
            await super()._ask(batch)
            return
        stats = self.crawler.stats
        try:
            known = self.store.get_registry_many(self.name, batch)
        except RedisError as exc:
            logger.warning("shared registry answers unavailable (%s)", exc)
            known = {}
        now = self._clock()
        for url, hit in known.items():
            c = _Cached(hit.opted_out, hit.detail, now + hit.expires_in)
            self._cache[url] = c
            for d in self._waiters.pop(url, []):
                d.callback(c)
        if known:
            stats.inc_value(f"polite/cluster/registry/{self.name}/shared", len(known))
        rest = [u for u in batch if u not in known]
        if not rest:
            return
        await super()._ask(rest)
        answers = {u: (self._cache[u].opted_out, self._cache[u].detail)
                   for u in rest if u in self._cache}
        try:
            self.store.put_registry_many(self.name, answers)
        except RedisError as exc:
            logger.warning("could not share registry answers (%s)", exc)


class SharedLedger(RedisLedger):
    """The job's pay-per-crawl ledger in Redis (:class:`~crawler.cluster.budget.RedisLedger`)
    on the worker's Redis client, under the worker's current epoch: a cluster worker's
    ``POLITE_PAYMENT_LEDGER_CLASS``."""

    @classmethod
    def from_crawler(cls, crawler: Crawler, policy: PaymentPolicy) -> SharedLedger:
        worker = ClusterWorker.of(crawler)
        return cls(worker.redis, worker.keys, policy, epoch=lambda: worker.epoch)
