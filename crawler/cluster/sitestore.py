"""The cluster's store of per-origin file fetches and registry answers in Redis.

:class:`RedisSiteStore` keeps what a fetch of robots.txt, tdmrep.json, ai.txt or an RSL licence
returned — raw status, body, error, final URL, fetch time and the body's SHA-256 (the evidence
hash the audit records cite) — under ``polite:<job>:site:<kind>:<url>``, with an expiry: the
TTL for files that were read or found absent, a backoff for files that could not be fetched
(doubling per consecutive failure, counted for the cluster, capped by the TTL: an unreachable
file is never cached long, and the URLs depending on it stay refused meanwhile). It also holds
a file's fetch lock (``SET NX PX``; void at once if its holder's presence key expired) and the
answers of HTTP registry APIs, per registry and URL. It stores raw bytes only: every worker
re-parses them itself (:mod:`crawler.cluster.store`, the Scrapy components that use it).

Redis is not trusted with reservations: anyone who can write to it could store ``Allow: /``
with a recomputed SHA-256. Every entry therefore carries an HMAC-SHA256 (field ``mac``) over
every field a reader uses (job, kind, URL, status, body hash, error, final URL, fetch time,
complete, outcome; for registry answers job, name, URL, opted_out, detail, fetch time), keyed
by the cluster secret (:func:`crawler.cluster.store.cluster_secret`). An entry without a valid
MAC, or older than the TTL by its authenticated fetch time (a replayed old entry), is refused
(the caller fetches the file, or asks the registry, itself), counted in
``polite/cluster/store/unauthenticated`` and logged as one WARNING per kind of failure.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from crawler.cluster.connection import named_script
from crawler.cluster.keys import JobKeys
from crawler.cluster.state import LIVENESS, NOW, NUM

if TYPE_CHECKING:
    from crawler.cluster.connection import CountingRedis

logger = logging.getLogger(__name__)

#: Stats key counting shared entries refused for want of a valid MAC.
UNAUTHENTICATED = "polite/cluster/store/unauthenticated"
_MAC_VERSION = b"polite-crawler/cluster-store/v1"


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

