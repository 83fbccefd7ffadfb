"""Per-origin files (robots.txt, tdmrep.json), fetched once per origin through the engine.

Every request to an origin waits on the same pending fetch; the result is cached per origin
(scheme, host, port) with an expiry: the TTL (24 h by default, RFC 9309 2.4) for files that
were read or found absent, a doubling backoff for files that could not be fetched (the origin
stays refused meanwhile: fail closed). Fetches go through ``crawler.engine.download_async`` so
the User-Agent, delays, proxies and stats apply, as in Scrapy's ``RobotsTxtMiddleware``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scrapy import Request
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response
from scrapy.http.request import NO_CALLBACK
from twisted.internet.defer import Deferred

from crawler.decisions import META_SEND
from crawler.network import origin_key
from crawler.optout.model import SiteFile
from crawler.policy import site_file

try:  # Scrapy >= 2.13
    from scrapy.utils.defer import maybe_deferred_to_future
except ImportError:  # pragma: no cover
    from scrapy.utils.defer import deferred_to_future as maybe_deferred_to_future

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


@dataclass
class _Entry:
    file: SiteFile
    expires: float
    failures: int


class SiteCache:
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
        self._clock = clock
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._pending: dict[tuple[str, str], list[Deferred[SiteFile]]] = {}

    def cached(self, origin: str, kind: str) -> SiteFile | None:
        """The current cached per-origin file, if any and not expired (no fetch)."""
        return self.cached_url(kind, origin + FILE_PATHS[kind])

    def cached_url(self, kind: str, url: str) -> SiteFile | None:
        entry = self._entries.get((kind, url))
        if entry is not None and entry.expires > self._clock():
            return entry.file
        return None

    def retry_in(self, kind: str, url: str) -> float:
        """Seconds until a failed file may be fetched again (0 when it may be now)."""
        entry = self._entries.get((kind, url))
        if entry is None or entry.file.outcome != "unreachable":
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
            return hit
        waiters = self._pending.get(key)
        if waiters is not None:  # a fetch is under way: wait for it (one Deferred each)
            d: Deferred[SiteFile] = Deferred()
            waiters.append(d)
            return await maybe_deferred_to_future(d)
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
            failures = (old.failures + 1) if old and old.file.outcome == "unreachable" else 1
            wait = min(self.backoff * 2 ** (failures - 1), self.ttl)
            logger.warning("%s unreachable (%s): URLs depending on it are refused; it may be "
                           "fetched again in %.0f s", f.url, f.status_text, wait)
        else:
            failures, wait = 0, self.ttl
        self._entries[key] = _Entry(f, now + wait, failures)
        stats = self.crawler.stats
        stats.inc_value(f"polite/site/{key[0]}/{f.outcome}")

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
        status = response.status
        final_url = response.url if response.url != url else None
        if 300 <= status < 400:
            # a redirect that was not followed: no Location, or more than max_redirects hops
            return site_file(kind, url, status=None, final_url=final_url,
                             error=f"HTTP {status}: redirect not followed (too many hops?)")
        body = response.body
        state = body_state(request, response)
        f = site_file(kind, url, status=status, body=body, final_url=final_url,
                      error=state["error"], complete=state["complete"],
                      problems=state["problems"])
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
        """Keep the evidence file, named by its SHA-256, for auditors.

        Safe when several processes share the output directory (cluster workers): each writes
        its own temporary file and a file another wrote first is fine as it is (its name is
        its hash). Best effort: the audit records carry the hash either way.
        """
        if self.evidence_dir is None or f.sha256 is None or not (200 <= (f.status or 0) < 300):
            return
        path = self.evidence_dir / f.sha256
        if path.exists():
            return
        tmp = path.with_name(f"{f.sha256}.{os.getpid()}.{id(body):x}.tmp")
        try:
            self.evidence_dir.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(body)
            tmp.replace(path)
        except OSError as exc:
            logger.warning("could not keep evidence file %s (%s)", path, exc)
            tmp.unlink(missing_ok=True)


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
