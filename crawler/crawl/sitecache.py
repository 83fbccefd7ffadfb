"""Per-origin files (robots.txt, tdmrep.json), fetched once per origin through the engine.

Every request to an origin waits on the same pending fetch; the result is cached per origin
(scheme, host, port) with an expiry: the TTL (24 h by default, RFC 9309 2.4) for files that
were read or found absent, a doubling backoff for files that could not be fetched (the origin
stays refused meanwhile: fail closed). Fetches go through ``crawler.engine.download_async`` so
the User-Agent, delays, proxies and stats apply, as in Scrapy's ``RobotsTxtMiddleware``.

The cache holds at most ``POLITE_SITE_CACHE_MAX_BYTES`` (estimated; see :class:`SiteCache`):
least recently used and expired entries are dropped, and a dropped file is fetched again when
it is next needed; entries keep a file's bytes instead of its parse (about 1.7 KB for an origin
with a typical robots.txt and 404s for the other files, against ~9.4 KB parsed).

Every fetched file that got a response, whatever its status (a 404 page, the body of a 503, a
file cut at the ``POLITE_PREFLIGHT_MAXSIZE`` cap), is evidence: audit records cite its SHA-256
(``source_sha256``), so its bytes are kept as ``evidence/<sha256>`` and, beside them, what the
server answered (``evidence/http/<sha256>.<url hash>.<status>.json``: URL, final URL, status,
headers as received, fetch time); the :data:`EVIDENCE_KEPT` signal hands both to the WARC writer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scrapy import Request
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response
from scrapy.http.request import NO_CALLBACK
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.defer import Deferred

from crawler.crawl import defaults
from crawler.crawl.decisions import META_SEND
from crawler.optout.model import SiteFile
from crawler.policy.network import origin_key
from crawler.policy.reservation import reparsed, site_file

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

#: Where each per-origin file lives (RSL licences live wherever robots.txt or a page says).
FILE_PATHS = {"robots.txt": "/robots.txt", "tdmrep.json": "/.well-known/tdmrep.json",
              "ai.txt": "/ai.txt"}
PREFLIGHT_META = "polite_preflight"
PREFLIGHT_PRIORITY = 1000
#: request.meta key where ContentIntegrityMiddleware records what it found about the body
META_BODY = "polite_body"
#: request.meta key where ContentIntegrityMiddleware keeps the response as received, before any
#: content-coding is undone: ``{"headers", "body", "complete", "decoded"}`` (per-origin files
#: always; pages only when the WARC is written, ``POLITE_WARC``)
META_RAW = "polite_raw"
#: Scrapy signal sent when a per-origin file is kept as evidence, with ``file`` (the
#: :class:`SiteFile`), ``body`` (the bytes its ``sha256`` is of) and ``capture`` (the HTTP
#: exchange, as in the sidecar; None when not known, e.g. fetched by another cluster worker)
EVIDENCE_KEPT = object()
#: ``evidence/`` subdirectories: the HTTP sidecars, and temporary files before their rename
CAPTURE_DIR = "http"
PARTIAL_DIR = ".partial"


#: Bytes the site cache may hold by default (``POLITE_SITE_CACHE_MAX_BYTES``).
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
#: Estimated bytes of one cache entry besides its variable parts: the key and its URL's
#: object, the dictionary slot, the entry and its expiry, the SHA-256 (tracemalloc: about 400;
#: the tests keep the estimate above what is measured)
ENTRY_OVERHEAD = 480
#: Estimated bytes of a file kept whole (its record, SHA-256 text) besides its parse
FILE_OVERHEAD = 400
#: Estimated bytes of a file's parse per byte parsed, and per parse (the real robots.txt files
#: of tests/data take 20 per byte at the median and at most 40 per byte + 4 KiB)
PARSED_PER_BYTE = 64
PARSED_OVERHEAD = 4096
#: Files kept whole (as :class:`SiteFile`, with their parse) at once, the ones used last; the
#: others are rebuilt from their entry (a parse read again from its bytes) when asked for
HOT_FILES = 6144
#: Seconds between two sweeps of expired entries
SWEEP_EVERY = 60.0
_HEX = frozenset("0123456789abcdef")


class _Entry:
    """One cached per-origin file, kept small: the fields of its :class:`SiteFile` (its kind
    and URL are the key; its SHA-256 as bytes), and instead of its parse the bytes it was
    parsed from (``raw``, zlib-compressed when ``zipped``). ``whole`` is the file itself when
    it cannot be rebuilt from these (a parse without its bytes, a URL other than the key's).
    """

    __slots__ = ("outcome", "status", "sha", "size", "error", "final_url", "complete",
                 "problems", "raw", "zipped", "whole", "expires", "failures")

    def __init__(self, key: tuple[str, str], f: SiteFile, expires: float,
                 failures: int) -> None:
        self.expires = expires
        self.failures = failures
        self.outcome = f.outcome
        sha = f.sha256
        rebuildable = (f.kind == key[0] and f.url == key[1]
                       and (f.parsed is None or f.source is not None)
                       and (sha is None or (len(sha) == 64 and _HEX.issuperset(sha))))
        if not rebuildable:
            self.whole: SiteFile | None = f
            self.status = self.sha = self.size = self.error = self.final_url = None
            self.complete, self.problems, self.raw, self.zipped = True, (), None, False
            return
        self.whole = None
        self.status = f.status
        self.sha = bytes.fromhex(sha) if sha is not None else None
        self.size = f.size
        self.error = f.error
        self.final_url = f.final_url
        self.complete = f.complete
        self.problems = f.problems
        raw = f.source if f.parsed is not None else None
        self.zipped = False
        if raw is not None and len(raw) > 64:
            packed = zlib.compress(raw, 6)
            if len(packed) < len(raw):
                raw, self.zipped = packed, True
        self.raw = raw

    def rebuild(self, key: tuple[str, str]) -> SiteFile:
        """The file as it was stored (a parse read again from its bytes: an equal parse)."""
        if self.whole is not None:
            return self.whole
        f = SiteFile(key[0], key[1], self.outcome, status=self.status,
                     sha256=self.sha.hex() if self.sha is not None else None, size=self.size,
                     error=self.error, final_url=self.final_url, complete=self.complete,
                     problems=self.problems)
        raw = self.raw
        if raw is None:
            return f
        return reparsed(f, zlib.decompress(raw) if self.zipped else raw)

    def nbytes(self, key: tuple[str, str]) -> int:
        """Estimated bytes of this entry (a conservative estimate: see ENTRY_OVERHEAD)."""
        whole = self.whole
        if whole is not None:
            return ENTRY_OVERHEAD + FILE_OVERHEAD + len(key[1]) + parsed_size(whole)
        n = ENTRY_OVERHEAD + len(key[1])
        if self.raw is not None:
            n += len(self.raw) + 33
        for text in (self.error, self.final_url):
            if text:
                n += 50 + len(text)
        for text in self.problems:
            n += 58 + len(text)
        return n


def parsed_size(f: SiteFile) -> int:
    """Estimated bytes of ``f``'s parse and its source bytes (bounded: see PARSED_PER_BYTE)."""
    if f.parsed is None:
        return 0
    return PARSED_PER_BYTE * (len(f.source) if f.source is not None else f.size) \
        + PARSED_OVERHEAD


class SiteCache:
    """Per-origin files, fetched once per origin and cache period, kept within a byte budget.

    Entries are kept in least-recently-used order and the cache holds at most ``max_bytes``
    (``POLITE_SITE_CACHE_MAX_BYTES``, estimated sizes): past it the least recently used entries
    are dropped, and expired ones are swept away every minute (a file that could not be fetched
    stays until it has been expired for a TTL, so that its backoff keeps doubling). A dropped
    entry is simply fetched again when a URL of its origin is next decided (fail closed: a
    missing entry is never read as "no reservation"); its evidence files stay on disk.

    An entry keeps a file's fields and, instead of its parse (a robots.txt's groups and rules,
    ...), the bytes it was parsed from, compressed. The files used last (:data:`HOT_FILES`,
    within a quarter of the budget) are also kept whole, as the same objects while they are in
    use; any other is rebuilt when asked for, its parse read again from its bytes (the readers
    are pure: an equal parse).
    """

    def __init__(
        self,
        crawler: Crawler,
        *,
        ttl: float,
        backoff: float,
        timeout: float,
        maxsize: int,
        max_redirects: int,
        evidence_dir: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        funnel: Any = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.crawler = crawler
        #: the decision funnel: each fetched file's outcome is recorded against its send record
        self.funnel = funnel
        self.ttl = ttl
        self.backoff = backoff
        self.timeout = timeout
        self.maxsize = maxsize
        self.max_redirects = max_redirects
        self.evidence_dir = evidence_dir
        self.max_bytes = max(0, int(max_bytes))
        self._clock = clock
        #: (kind, url) -> entry, least recently used first
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._bytes = 0
        #: (kind, url) -> (the file, its estimated size), least recently used first: the
        #: files used last, kept whole
        self._hot: dict[tuple[str, str], tuple[SiteFile, int]] = {}
        self._hot_bytes = 0
        self._hot_max = self.max_bytes // 4
        self._next_sweep = clock() + SWEEP_EVERY
        self._pending: dict[tuple[str, str], list[Deferred[SiteFile]]] = {}
        #: the HTTP exchange of a fetch, from _fetch to the _archive call right after it
        self._captures: dict[tuple[str, str], dict[str, Any]] = {}
        #: counters published as ``polite/site/cache/*`` stats (:meth:`publish_stats`)
        self.counts = {"hit": 0, "miss": 0, "evicted": 0, "expired": 0, "rebuilt": 0}
        #: changes whenever an entry is stored or dropped (a reader holding files it got from
        #: :meth:`cached` knows they are still the cache's while it is unchanged and they
        #: have not expired: :meth:`expires`)
        self.generation = 0

    @staticmethod
    def options(settings: Any) -> dict[str, Any]:
        """The constructor's keyword arguments that come from settings (``POLITE_SITE_CACHE_*``,
        ``POLITE_SITE_RETRY_BACKOFF``, ``POLITE_PREFLIGHT_*``)."""
        s = settings
        return {
            "ttl": s.getfloat("POLITE_SITE_CACHE_TTL", defaults.POLITE_SITE_CACHE_TTL),
            "max_bytes": s.getint("POLITE_SITE_CACHE_MAX_BYTES",
                                  defaults.POLITE_SITE_CACHE_MAX_BYTES),
            "backoff": s.getfloat("POLITE_SITE_RETRY_BACKOFF",
                                  defaults.POLITE_SITE_RETRY_BACKOFF),
            "timeout": s.getfloat("POLITE_PREFLIGHT_TIMEOUT", defaults.POLITE_PREFLIGHT_TIMEOUT),
            "maxsize": s.getint("POLITE_PREFLIGHT_MAXSIZE", defaults.POLITE_PREFLIGHT_MAXSIZE),
            "max_redirects": s.getint("POLITE_PREFLIGHT_MAX_REDIRECTS",
                                      defaults.POLITE_PREFLIGHT_MAX_REDIRECTS),
        }

    @classmethod
    def from_crawler(cls, crawler: Crawler, **kwargs: Any) -> SiteCache:
        """The cache with :meth:`options` from the crawler's settings; ``kwargs`` (the
        runtime's ``evidence_dir`` and ``funnel``, or any option) go to the constructor."""
        return cls(crawler, **{**cls.options(crawler.settings), **kwargs})

    def cached(self, origin: str, kind: str) -> SiteFile | None:
        """The current cached per-origin file, if any and not expired (no fetch)."""
        return self.cached_url(kind, origin + FILE_PATHS[kind])

    def cached_url(self, kind: str, url: str) -> SiteFile | None:
        key = (kind, url)
        entries = self._entries
        entry = entries.get(key)
        if entry is None or entry.expires <= self._clock():
            return None
        entries[key] = entries.pop(key)  # now the most recently used
        hot = self._hot
        got = hot.pop(key, None)
        if got is None:
            f = entry.rebuild(key)
            if entry.whole is None:
                self.counts["rebuilt"] += 1
            got = (f, FILE_OVERHEAD + parsed_size(f))
            self._hot_bytes += got[1]
            hot[key] = got
            self._trim_hot()
        else:
            hot[key] = got
        return got[0]

    def expires(self, kind: str, url: str) -> float:
        """When the cached file expires (monotonic clock; 0 when it is not cached)."""
        entry = self._entries.get((kind, url))
        return entry.expires if entry is not None else 0.0

    def _trim_hot(self) -> None:
        hot = self._hot
        while len(hot) > 1 and (len(hot) > HOT_FILES or self._hot_bytes > self._hot_max):
            self._hot_bytes -= hot.pop(next(iter(hot)))[1]

    def retry_in(self, kind: str, url: str) -> float:
        """Seconds until a failed file may be fetched again (0 when it may be now)."""
        entry = self._entries.get((kind, url))
        if entry is None or entry.outcome != "unreachable":
            return 0.0
        return max(0.0, entry.expires - self._clock())

    async def get(self, origin: str, kind: str) -> SiteFile:
        """The per-origin file ``kind`` of ``origin``, fetched once per cache period."""
        return await self.get_url(kind, origin + FILE_PATHS[kind])

    async def get_url(self, kind: str, url: str) -> SiteFile:
        """Any evidence file (e.g. an RSL licence named by robots.txt), cached by URL."""
        key = (kind, url)
        hit = self.cached_url(kind, url)
        if hit is not None:
            self.counts["hit"] += 1
            return hit
        waiters = self._pending.get(key)
        if waiters is not None:  # a fetch is under way: wait for it (one Deferred each)
            d: Deferred[SiteFile] = Deferred()
            waiters.append(d)
            self.counts["hit"] += 1
            return await maybe_deferred_to_future(d)
        self.counts["miss"] += 1
        self._pending[key] = waiters = []
        try:
            f = await self._fetch(kind, url)
        except Exception as exc:  # never fail open: an unexpected error is "unreachable"
            logger.exception("fetching %s failed", url)
            f = SiteFile(kind, url, "unreachable", error=f"{type(exc).__name__}: {exc}")
        self._store(key, f)
        del self._pending[key]
        for d in waiters:
            d.callback(f)
        return f

    def _store(self, key: tuple[str, str], f: SiteFile) -> None:
        now = self._clock()
        old = self._entries.get(key)
        if f.outcome == "unreachable":
            failures = (old.failures + 1) if old and old.outcome == "unreachable" else 1
            wait = min(self.backoff * 2 ** (failures - 1), self.ttl)
            logger.warning("%s unreachable (%s): URLs depending on it are refused; it may be "
                           "fetched again in %.0f s", f.url, f.status_text, wait)
        else:
            failures, wait = 0, self.ttl
        if old is not None:
            self._drop(key, old)
        entry = _Entry(key, f, now + wait, failures)
        self.generation += 1
        self._entries[key] = entry
        self._bytes += entry.nbytes(key)
        if entry.whole is None:  # kept whole too, as the file used last
            size = FILE_OVERHEAD + parsed_size(f)
            self._hot[key] = (f, size)
            self._hot_bytes += size
            self._trim_hot()
        if now >= self._next_sweep:
            self._sweep(now)
        self._evict()
        stats = self.crawler.stats
        stats.inc_value(f"polite/site/{key[0]}/{f.outcome}")

    def _drop(self, key: tuple[str, str], entry: _Entry) -> None:
        self.generation += 1
        del self._entries[key]
        self._bytes -= entry.nbytes(key)
        got = self._hot.pop(key, None)
        if got is not None:
            self._hot_bytes -= got[1]

    def _sweep(self, now: float) -> None:
        """Drop expired entries (a failed file's once it has been expired for a TTL: until
        then it keeps the count its backoff doubles with)."""
        self._next_sweep = now + SWEEP_EVERY
        gone = [(k, e) for k, e in self._entries.items()
                if e.expires <= now and (e.outcome != "unreachable"
                                         or e.expires + self.ttl <= now)]
        for key, entry in gone:
            self._drop(key, entry)
        self.counts["expired"] += len(gone)

    def _evict(self) -> None:
        """Least recently used entries out until the cache is within its budget (the entry
        stored last always stays: a file bigger than the budget is still used once)."""
        entries = self._entries
        while self._bytes + self._hot_bytes > self.max_bytes and len(entries) > 1:
            key = next(iter(entries))
            self._drop(key, entries[key])
            self.counts["evicted"] += 1

    @property
    def size_bytes(self) -> int:
        """Estimated bytes held (entries and the files kept whole)."""
        return self._bytes + self._hot_bytes

    def publish_stats(self) -> None:
        """Set the ``polite/site/cache/*`` stats from the counters (and the size held)."""
        stats = self.crawler.stats
        for name, value in self.counts.items():
            stats.set_value(f"polite/site/cache/{name}", value)
        stats.set_value("polite/site/cache/entries", len(self._entries))
        stats.set_value("polite/site/cache/bytes", self.size_bytes)

    async def _fetch(self, kind: str, url: str) -> SiteFile:
        request = Request(
            url,
            priority=PREFLIGHT_PRIORITY,
            callback=NO_CALLBACK,
            dont_filter=True,
            meta={
                PREFLIGHT_META: kind,
                "dont_obey_robotstxt": True,
                "download_timeout": self.timeout,
                "redirect_ttl": self.max_redirects,
                "download_slot": origin_key(url),
                "dont_retry": True,  # our own backoff retries it (fail closed meanwhile)
                "polite_maxsize": self.maxsize,
            },
        )
        assert self.crawler.engine is not None
        try:
            response = await self.crawler.engine.download_async(request)
        except IgnoreRequest as exc:  # refused by our own checks: the text says by what
            return site_file(kind, url, status=None, error=str(exc) or "refused")
        except Exception as exc:  # noqa: BLE001 - any failure is "unreachable" (fail closed)
            return site_file(kind, url, status=None, error=_describe(exc))
        fetched_at = datetime.now(timezone.utc)
        status = response.status
        final_url = response.url if response.url != url else None
        if 300 <= status < 400:
            # a redirect that was not followed: no Location, or more than max_redirects hops
            return site_file(kind, url, status=None, final_url=final_url,
                             error=f"HTTP {status}: redirect not followed (too many hops?)")
        body = response.body
        # after a redirect, the response belongs to the last hop's request (a copy)
        final_request = getattr(response, "request", None) or request
        state = body_state(final_request, response)
        f = site_file(kind, url, status=status, body=body, final_url=final_url,
                      error=state["error"], complete=state["complete"],
                      problems=state["problems"])
        try:
            self._captures[(kind, url)] = capture_of(
                kind, url, response, body, f.sha256, final_request.meta.get(META_RAW),
                complete=state["complete"], fetched_at=fetched_at)
        except Exception:  # noqa: BLE001 - the sidecar is a record of the fetch, never its outcome
            logger.exception("%s: the HTTP exchange could not be recorded", url)
        self._archive(f, body)
        if self.funnel is not None:
            self.funnel.result(url, "fetched", request_seq=response.meta.get(META_SEND), extra={
                "preflight": kind, "status": status, "source_sha256": f.sha256,
                "bytes": len(body), "outcome": f.outcome,
                **({"final_url": final_url} if final_url else {}),
                **({"error": f.error} if f.error else {}),
                **({} if f.complete else {"complete": False})})
        return f

    def _archive(self, f: SiteFile, body: bytes) -> None:
        """Keep the evidence file, named by its SHA-256, for auditors, whatever its status.

        ``body`` is exactly the bytes ``f.sha256`` is of (what the audit records cite): the
        body after its content-coding was undone, cut at ``POLITE_PREFLIGHT_MAXSIZE`` when it
        was longer. Beside it, the HTTP exchange (``evidence/http/``) when this process fetched
        it. Safe when several processes share the output directory (cluster workers): each
        writes its own temporary file (in ``evidence/.partial/``) and renames it; a file
        another wrote first is fine as it is (its name is its hash). Best effort: the audit
        records carry the hash either way. Then :data:`EVIDENCE_KEPT` is sent (the WARC).
        """
        capture = self._captures.pop((f.kind, f.url), None)
        if f.sha256 is None:  # no response at all: nothing to keep, nothing is cited
            return
        if self.evidence_dir is not None:
            keep_file(self.evidence_dir, f.sha256, body)
            if capture is not None:
                keep_file(self.evidence_dir, capture_name(f.sha256, f.url, f.status),
                          json.dumps(capture, sort_keys=True, ensure_ascii=False).encode())
        signals = getattr(self.crawler, "signals", None)
        if signals is not None:
            signals.send_catch_log(signal=EVIDENCE_KEPT, file=f, body=body, capture=capture)


def capture_name(sha256: str, url: str, status: int | None) -> str:
    """``http/<sha256>.<16 hex of SHA-256(url)>.<status>.json``, relative to ``evidence/``: the
    sidecar of these bytes as fetched from ``url`` (the URL the audit records cite as
    ``source``) with this HTTP status (the same bytes may come with another status later)."""
    tag = hashlib.sha256(url.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return f"{CAPTURE_DIR}/{sha256}.{tag}.{status}.json"


def load_capture(evidence_dir: Path, sha256: str, url: str,
                 status: int | None) -> dict[str, Any] | None:
    """The sidecar of ``sha256`` fetched from ``url`` with ``status``; None when absent or
    unreadable (or not about these bytes and this status)."""
    try:
        data = json.loads((evidence_dir / capture_name(sha256, url, status)).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("sha256") != sha256 or \
            data.get("status") != status:
        return None
    return data


def keep_file(evidence_dir: Path, name: str, data: bytes) -> None:
    """Write ``evidence_dir/name`` once: a temporary file in ``.partial/``, then a rename
    (atomic on one file system: readers see the whole file or none). Never raises."""
    path = evidence_dir / name
    if path.exists():
        return
    partial = evidence_dir / PARTIAL_DIR
    tmp = partial / (f"{path.name}.{os.getpid()}.{threading.get_ident():x}."
                     f"{id(data):x}.tmp")
    try:
        partial.mkdir(parents=True, exist_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        logger.warning("could not keep evidence file %s (%s)", path, exc)
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def capture_of(kind: str, url: str, response: Response, body: bytes, sha256: str | None,
               raw: Mapping[str, Any] | None, *, complete: bool,
               fetched_at: datetime) -> dict[str, Any]:
    """The HTTP exchange of one per-origin fetch, as the sidecar keeps it.

    ``headers`` are the response headers as received (before a content-coding was undone:
    ``raw`` from ContentIntegrityMiddleware), in order; ``decoded`` says whether ``body`` is
    the body after undoing a content-coding (True), the body as received (False) or unknown
    (None: the middleware did not run); ``complete`` False when it was cut at the size cap.
    """
    headers = raw.get("headers") if raw is not None else None
    ip = getattr(response, "ip_address", None)
    return {
        "url": url,
        "final_url": response.url,
        "status": response.status,
        "protocol": getattr(response, "protocol", None) or None,
        "headers": header_list(headers if headers is not None else response.headers),
        "fetched_at": fetched_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "ip_address": str(ip) if ip else None,
        "kind": kind,
        "sha256": sha256,
        "bytes": len(body),
        "complete": bool(complete),
        "decoded": bool(raw.get("decoded")) if raw is not None else None,
    }


def header_list(headers: Any) -> list[list[str]]:
    """Scrapy ``Headers`` (or any ``{name: value(s)}`` / pairs) as ``[[name, value], ...]``,
    one pair per value, bytes read as Latin-1 (lossless)."""
    items: Iterable[Any] = headers.items() if isinstance(headers, Mapping) or hasattr(
        headers, "items") else headers
    out: list[list[str]] = []
    for name, values in items:
        if isinstance(values, (str, bytes, bytearray)) or not isinstance(values, Iterable):
            values = [values]
        for value in values:
            out.append([_latin1(name), _latin1(value)])
    return out


def _latin1(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)


def body_state(request: Request, response: Response) -> dict[str, Any]:
    """What :class:`ContentIntegrityMiddleware` found (or, without it, a conservative guess:
    a stopped download is incomplete, a body still carrying a ``Content-Encoding`` after
    Scrapy's decompression is undecodable)."""
    state = request.meta.get(META_BODY)
    if state is not None:
        return state
    flags = response.flags or []
    leftover = response.headers.getlist(b"Content-Encoding")
    error = (f"content-coding {b', '.join(leftover).decode('latin-1')!r} not decoded"
             if leftover else None)
    return {"complete": "download_stopped" not in flags and "dataloss" not in flags,
            "error": error, "problems": []}


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
