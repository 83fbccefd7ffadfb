"""The reservation middleware: the thin Scrapy glue around :mod:`crawler.policy.reservation`.

:class:`ReservationMiddleware` decides at three points, each as early as the signal can be
known:

* ``process_request``: network guard, then site-level files (robots.txt, tdmrep.json) fetched
  once per origin through the engine. A reserved URL is never requested.
* ``headers_received`` (signal): response headers; a reserved response is stopped there with
  ``StopDownload`` and its body is never downloaded.
* ``process_response``: HTML ``<meta>`` tags, before the response reaches any spider callback.

Every decision goes through the one funnel (audit record first, then the refusal).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NoReturn

from scrapy import signals
from scrapy.exceptions import DontCloseSpider, IgnoreRequest, StopDownload
from scrapy.http import Request, Response
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached

from crawler.config.job import ConfigError, check_collect
from crawler.corpus.documents import document_kind, sniff_image
from crawler.crawl import defaults
from crawler.crawl.decisions import META_FOLLOWS, META_SEND, AuditUnavailable
from crawler.crawl.meta import (
    META_ANY_KIND,
    META_AUDIT,
    META_NO_FETCH,
    META_SITEMAP,
    charset_of,
    is_preflight,
    location_of,
    origin_of,
    plain_url,
)
from crawler.crawl.runtime import get_runtime, polite_setting
from crawler.crawl.scrapy_internals import (
    floor_slot_delay,
    set_slot_defaults,
    slot_by_key,
    wake_engine,
)
from crawler.crawl.sitecache import META_BODY, META_RAW, PREFLIGHT_META, SiteCache, body_state
from crawler.crawl.state import reset, state_of, update
from crawler.optout import tdmrep
from crawler.optout.c2pa import read_c2pa
from crawler.optout.embedded import read_embedded
from crawler.optout.htmlmeta import parse_html_head
from crawler.optout.sniff import sniff_html
from crawler.policy.network import address_refusal, host_refusal, origin_key, parse_ip
from crawler.policy.pacing import clamp_crawl_delay
from crawler.policy.reservation import (
    Verdict,
    embedded_record,
    internal_error,
    merge_embedded,
    merge_verdicts,
    network_refusal,
    payment_refusal,
    scope_refusal,
    unreadable,
)
from crawler.policy.reservation import verdict_of as _verdict_of

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from crawler.crawl.decisions import DecisionFunnel
    from crawler.crawl.registries import Registries
    from crawler.policy.payment import PayPerCrawl
    from crawler.policy.reservation import Policy
    from crawler.policy.scope import Scope

logger = logging.getLogger(__name__)

#: The readers of the reservations written inside a document: ``(signals it reads, reader)``,
#: each reader ``(body, content_type) -> crawler.optout.embedded.EmbeddedResult``. A reader
#: runs when one of its signals is on; the results are merged (crawler.policy.reservation.merge_embedded:
#: any undetermined -> undetermined, every statement judged, the most restrictive wins):
#: IPTC / TDMRep in XMP and EPUB, C2PA Content Credentials.
EMBEDDED_READERS = ((("iptc", "tdmrep"), read_embedded), (("c2pa",), read_c2pa))
#: what a re-request (paid, or retried after an InternalError) starts without: these fields of
#: its state, and these meta keys (its body records, its allow record)
_REDECIDE_FIELDS = ("checks", "denied", "tdm_file", "tdm_header", "headers_checked",
                    "payment_reserved_at_headers", "payment_charged", "payment")
_REDECIDE_KEYS = (META_AUDIT, META_BODY, META_RAW)
# the extra fields of decide_from_cache's records: the same two objects for every URL (read
# only), which the funnel's record_many recognises as records of one shape
_AT_REQUEST: Mapping[str, Any] = MappingProxyType({"stage": "request"})
_NOT_FETCHED: Mapping[str, Any] = MappingProxyType(
    {"stage": "request", "note": "site-level signals only; not fetched"})


def _headers_dict(headers: Any) -> dict[str, list[str]]:
    return {
        k.decode("latin-1").lower(): [v.decode("latin-1") for v in vs]
        for k, vs in headers.items()
    }


class ReservationMiddleware:
    """The reservation decisions (see the module docstring).

    Takes what it decides with: the ``policy``, the decision ``funnel`` (audit record first),
    the per-origin file cache (``sitecache``), the ``registries``, the name of the audit log
    (``log_name``: a paid attempt's authorisation is named by it and a seq), pay per crawl
    (``payment``, None: a 402 is a refusal), the job's ``scope`` (None: every URL) and the
    values it reads from settings; ``crawler`` is the crawl it serves (its stats, signals and
    engine). :meth:`from_crawler` takes them from the runtime
    (:func:`crawler.crawl.runtime.get_runtime`) and the crawler's settings.
    """

    def __init__(self, crawler: Crawler, *, policy: Policy, funnel: DecisionFunnel,
                 sitecache: SiteCache, registries: Registries, log_name: str,
                 payment: PayPerCrawl | None = None, scope: Scope | None = None,
                 collect: tuple[str, ...] | None = None, download_delay: float = 0.0,
                 cluster: bool = False,
                 undecided_retries: int = defaults.POLITE_UNDECIDED_RETRIES,
                 max_idle_wait: float = defaults.POLITE_MAX_IDLE_WAIT) -> None:
        self.crawler = crawler
        self.policy = policy
        self.funnel = funnel
        self.sitecache = sitecache
        self.registries = registries
        #: pay per crawl (crawler.policy.payment.PayPerCrawl), None: a 402 is a refusal
        self.payment = payment
        #: the job's scope (crawler.policy.scope.Scope): include/exclude, the per-origin page cap
        self.scope = scope
        #: the name of our audit log (a paid attempt's authorisation is named by it and seq)
        self._log_name = log_name
        self._files_memo: dict[Any, Any] = {}
        self._plain_cache = (type(self.sitecache).get is SiteCache.get
                             and type(self.sitecache).get_url is SiteCache.get_url
                             and type(self.sitecache).cached_url is SiteCache.cached_url)
        base = download_delay  # NaN/inf/negative: the floor holds
        self._base_delay = base if math.isfinite(base) and base > 0 else 0.0
        # keyed like origin_of (the same host normalisation); part of the policy hash
        self._exempt = {origin_key(o.strip()) for o in self.policy.allowed_private_origins}
        self._origin_delay: dict[str, float] = {}
        # cluster mode: the shared gate (crawler.cluster.politeness) spaces every origin's
        # requests; a local slot delay on top would only shift a granted send
        self._cluster = cluster
        self._retries = undecided_retries
        # undecided requests waiting for a retry, by id(retry): {"call", "request", "verdict",
        # "attempt", "waits_on": [(what, why)], "due": time.monotonic() of the retry}
        self._waiting: dict[int, dict[str, Any]] = {}
        # while only those waits remain (the spider idle): a progress line every ~10 s, and
        # after POLITE_MAX_IDLE_WAIT s (0 = patient) they are left to the next run
        idle_wait = max_idle_wait
        self._max_idle_wait = idle_wait if math.isfinite(idle_wait) and idle_wait > 0 else 0.0
        self._idle_since: float | None = None  # when the spider became idle with waits left
        self._idle_seen = 0.0  # the last spider_idle (one every engine heartbeat, ~5 s)
        self._idle_logged = 0.0
        self._idle_timer: Any = None
        # None (the add-on's default): every kind passes on to the callbacks after its
        # document stage; a job config's collect: (run, scrapy crawl corpus) filters
        self.collect: tuple[str, ...] | None = collect
        crawler.signals.connect(self.headers_received, signal=signals.headers_received)
        crawler.signals.connect(self._idle, signal=signals.spider_idle)
        crawler.signals.connect(self.bytes_received, signal=signals.bytes_received)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ReservationMiddleware:
        rt = get_runtime(crawler)
        s = crawler.settings
        collect = s.get("POLITE_COLLECT", defaults.POLITE_COLLECT)
        try:
            collect = (None if collect is None
                       else check_collect(s.getlist("POLITE_COLLECT"), "POLITE_COLLECT"))
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return cls(
            crawler, policy=rt.policy, funnel=rt.funnel, sitecache=rt.sitecache,
            registries=rt.registries, log_name=Path(rt.writer.path).name,
            payment=getattr(rt, "payment", None), scope=getattr(rt, "scope", None),
            collect=collect, download_delay=s.getfloat("DOWNLOAD_DELAY"),
            cluster=bool(s.get("POLITE_CLUSTER_REDIS_URL")),
            undecided_retries=s.getint("POLITE_UNDECIDED_RETRIES",
                                       defaults.POLITE_UNDECIDED_RETRIES),
            max_idle_wait=s.getfloat("POLITE_MAX_IDLE_WAIT", defaults.POLITE_MAX_IDLE_WAIT))

    # -- before the request -------------------------------------------------------------
    async def process_request(self, request: Request, spider: Any = None) -> None:
        # a redirect or retry carries its previous hop's send record: it is the one this hop
        # follows, not the one this hop's decisions conclude
        previous = request.meta.pop(META_SEND, None)
        if previous is not None:
            request.meta[META_FOLLOWS] = previous
        counted = self._scope_request(request)
        try:
            await self._decide_request(request)
        except IgnoreRequest:
            if counted:  # refused or deferred before it was sent: not a page of the cap
                self._scope_release(request)
            raise
        except Exception as exc:
            if counted:
                self._scope_release(request)
            logger.exception("deciding on %s failed", request.url)
            self._deny(request, internal_error(request.url, "request", exc))

    def _scope_request(self, request: Request) -> bool:
        """A page outside the job's scope, or of an origin that reached
        ``max_pages_per_origin``, is refused with a record (signal scope). A page in scope is
        counted now, as it is decided (so that concurrent requests of one origin cannot pass
        the cap together), and released if it is refused before it is sent; a redirect hop or
        retry (it follows a send) is the same page and is not counted again. Per-origin files
        and sitemaps are not pages. Returns whether the request was counted."""
        scope = self.scope
        if (scope is None or is_preflight(request) or request.meta.get(META_SITEMAP)
                or request.meta.get(META_NO_FETCH)
                or request.url.startswith(("data:", "file:", "about:"))):
            return False
        ok, reason = scope.decide(request.url)
        if not ok:
            self.crawler.stats.inc_value("polite/scope/refused")
            self._deny(request, scope_refusal(request.url, reason))
        if not scope.config.max_pages_per_origin or META_FOLLOWS in request.meta:
            return False
        scope.count(request.url)
        return True

    def _scope_release(self, request: Request) -> None:
        if self.scope is not None:
            self.scope.release(request.url)

    async def _decide_request(self, request: Request) -> None:
        """Before the request, in order: its scheme, the network guard (a registry endpoint
        the operator configured and per-origin files stop after it), the registries, the
        origin's files, then (a check-only request stops there) the Crawl-delay and pay per
        crawl. A refusal or a deferral raises IgnoreRequest after its record."""
        origin = self._request_origin(request)
        if request.meta.get("polite_trusted") and is_preflight(request):
            return  # an endpoint the operator configured (a registry API), not a crawl target
        await self._guard_network(request, origin)
        if is_preflight(request):
            return
        update(request, origin=origin)
        if self.registries:
            await self._check_registries(request)
        files, verdict = await self._check_origin_files(request, origin)
        tdm_file = files.get("tdmrep.json")
        update(request, checks=(state_of(request).checks or []) + verdict.check_dicts(),
               tdm_file=(_tdm_file_statement(tdm_file, request.url)
                         if tdm_file is not None else None),
               tdm_header=None)
        if request.meta.get(META_NO_FETCH):
            self._check_only(request, verdict)
        robots = files.get("robots.txt")
        if robots is not None and robots.parsed is not None:
            self._apply_crawl_delay(request, origin, robots.parsed)
        if self.payment is not None and not request.meta.get(META_SITEMAP):
            # after every reservation: paying never overrides one (a sitemap is never paid)
            self._payment_request(request, origin)

    def _request_origin(self, request: Request) -> str:
        """Only http(s) URLs are crawled; the request's origin, its download slot by default."""
        if request.url.startswith(("data:", "file:", "about:")):
            self._deny(request, network_refusal(request.url, "only http(s) URLs are crawled",
                                                hint=False))
        origin = origin_of(request)
        request.meta.setdefault("download_slot", origin)
        return origin

    async def _guard_network(self, request: Request, origin: str) -> None:
        """The network guard: no private, local or unresolvable address (unless exempt)."""
        refusal = None if origin in self._exempt else await self._network_refusal(request)
        if refusal is not None:
            self._deny(request, network_refusal(request.url, refusal))

    async def _check_registries(self, request: Request) -> None:
        """The opt-out registries, before anything is fetched from the origin (robots.txt
        included): their checks start the request's."""
        reg = _verdict_of(await self.registries.check(request.url))
        if reg.undetermined:
            self._defer(request, reg, [], self.registries.retry_in(request.url))
        if reg.denied:
            self._deny(request, reg)
        update(request, checks=[e.to_dict() for e in reg.checks])

    async def _check_origin_files(self, request: Request, origin: str
                                  ) -> tuple[dict[str, Any], Verdict]:
        """The origin's files (robots.txt, tdmrep.json, ...) and the licences they name, and
        the verdict before the request; an undetermined one defers it, a refusal denies it."""
        sitecache = self.sitecache
        files: dict[str, Any] = {}
        for kind in self.policy.needed_files():
            # a cached file is what get() would give, without a coroutine per file (only for
            # the plain cache: a subclass may do more in get())
            f = sitecache.cached(origin, kind) if self._plain_cache else None
            if f is not None:
                sitecache.counts["hit"] += 1
                files[kind] = f
            else:
                files[kind] = await sitecache.get(origin, kind)
        licences = {u: await sitecache.get_url("rsl", u)
                    for u in self.policy.licence_urls(files)}
        verdict = self.policy.before_fetch(request.url, files, licences)
        if verdict.undetermined:
            self._defer(request, verdict, [*files.values(), *licences.values()])
        if verdict.denied:
            self._deny(request, verdict)
        return files, verdict

    def _check_only(self, request: Request, verdict: Verdict) -> NoReturn:
        """``polite-crawl check``'s request (``polite_no_fetch``): decided on the site-level
        signals, recorded, never sent."""
        self.funnel.record(request.url, verdict, extra={"stage": "request",
                           "note": "site-level signals only; not fetched"},
                           request=request)
        raise IgnoreRequest("check only: not fetched")

    # -- pay per crawl (crawler.policy.payment decides; this only carries it out) -------------------
    def _payment_request(self, request: Request, origin: str) -> None:
        """Before sending: refuse an origin that forbade us; put the one price header of a
        paid attempt on the request (a re-request's, or ``crawler-max-price`` up front for an
        origin that charged before, its ``pay`` decision written first)."""
        from crawler.policy.payment import PRICE_HEADERS, PaidAttempt

        ppc = self.payment
        meta = request.meta
        stopped = ppc.stopped(origin)
        if stopped:
            self._deny(request, payment_refusal(request.url, f"origin stopped: {stopped}"))
        for name in PRICE_HEADERS:  # only ever the attempt's own header, never both
            request.headers.pop(name, None)
        raw = state_of(request).payment
        if raw is not None:
            attempt = PaidAttempt.from_meta(raw)
        else:
            attempt, records = ppc.up_front(origin)
            if attempt is None:
                return
            seqs = self._pay_records(request, records, request_seq=None)
            attempt = attempt.with_ref(seqs[-1], self._log_name)
            update(request, payment=attempt.to_meta())
        for name, value in attempt.headers.items():
            request.headers[name] = value
        # one paid try: Scrapy must neither retry it (a second charge on one hold) nor carry
        # its price header to another URL
        meta["dont_retry"] = meta["dont_redirect"] = True

    def _pay_records(self, request: Request, records: Any, *,
                     request_seq: Any = "sent") -> list[int]:
        """Write the payment decision's records, in order (one ``result`` record each, the
        raw headers in ``payment``); stats ``polite/payment/<action>``. Returns their seqs."""
        if request_seq == "sent":
            request_seq = request.meta.get(META_SEND)
        stats = self.crawler.stats
        seqs = []
        for result, payload in records:
            rec = self.funnel.result(request.url, result, request_seq=request_seq,
                                     extra={"payment": payload})
            seqs.append(rec["seq"])
            what = payload.get("action") if result == "pay-decision" else result[4:]
            stats.inc_value(f"polite/payment/{what}")
            if result == "pay-charge" and payload.get("charged") is not None:
                stats.inc_value("polite/payment/charged")
        return seqs

    async def _decide_payment(self, request: Request, response: Response,
                              headers: dict[str, list[str]]) -> Request | bool:
        """The payment decision for a response, after the reservations: a Request (the paid
        re-request), True (a paid page: the usual checks without the 402 rule), False (not a
        payment matter); a refusal raises IgnoreRequest after its records."""
        from crawler.policy.payment import (
            Collect,
            PaidAttempt,
            Pass,
            PayAndRetry,
            RetryLater,
            pay_headers,
        )

        ppc = self.payment
        st = state_of(request)
        origin = st.origin or origin_of(request)
        raw = st.payment
        attempt = PaidAttempt.from_meta(raw) if raw is not None else None
        status = response.status
        reserved = await self._reserved_without_payment(request, response, headers)
        if reserved is not None:
            # paying never overrides a reservation: the quote is refused unpaid; a paid
            # attempt's answer is still accounted for (money may have been charged)
            if attempt is not None:
                ans = ppc.decide(origin, status, headers, attempt)
                records = list(ans.records)
                if isinstance(ans, RetryLater) and ans.attempt is not None:
                    records += ppc.cancel(ans.attempt, "reserved; not retried")
                self._pay_records(request, records)
            elif status == 402 or pay_headers(headers):
                why = _refusal_text(reserved, "reserved")
                self._pay_records(request, ppc.not_paid(origin, status, headers, why).records)
            self._refuse_response(request, response, reserved)
        ans = ppc.decide(origin, status, headers, attempt,
                         retries=int(state_of(request).payment_retries))
        seqs = self._pay_records(request, ans.records)
        if isinstance(ans, Pass):
            return False
        if isinstance(ans, Collect):
            if ans.charged is not None:
                update(request, payment_charged=str(ans.charged))
            return True
        if isinstance(ans, PayAndRetry):
            paid = self._redecide(request)
            attempt = ans.attempt.with_ref(seqs[-1], self._log_name)
            update(paid, payment=attempt.to_meta())
            paid.meta["dont_retry"] = paid.meta["dont_redirect"] = True
            # no deny record for the 402: the paid response's records conclude the URL
            return paid
        if isinstance(ans, RetryLater):
            self._payment_retry(request, ans, origin)
        self._refuse_response(request, response, payment_refusal(request.url, ans.reason,
                                                                 status))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _reserved_without_payment(self, request: Request, response: Response,
                                        headers: dict[str, list[str]]) -> Verdict | None:
        """The response's own reservations, the payment rule left out (its headers, unless
        already allowed while downloading, and licences named by its Link header): the
        refusing verdict, or None."""
        verdicts = []
        st = state_of(request)
        if not st.headers_checked or st.payment_reserved_at_headers:
            hv, stmt = self.policy.at_headers(request.url, headers, st.tdm_file,
                                              payment_rule=False)
            update(request, tdm_header=stmt)
            verdicts.append(hv)
        links = self.policy.licence_links(request.url, headers, None)
        if links:
            licences = {u: (await self.sitecache.get_url("rsl", u), ch) for u, ch in links}
            verdicts.append(self.policy.at_response(request.url, response.status, headers,
                                                    licences, payment_rule=False))
        denied = [v for v in verdicts if v.denied]
        return merge_verdicts(*denied) if denied else None

    def _redecide(self, request: Request) -> Request:
        """A copy of ``request`` to send again (decided afresh: robots.txt and the rest)."""
        again = request.replace(dont_filter=True)
        for key in _REDECIDE_KEYS:
            again.meta.pop(key, None)
        reset(again, *_REDECIDE_FIELDS)
        return again

    def _payment_retry(self, request: Request, ans: Any, origin: str) -> None:
        """InternalError: the same URL again after ``ans.delay`` (its hold kept), waited for
        like an undecided URL (the run stays open for it); the current response is dropped
        without a deny record (the pay-decision ``retry`` record concludes it)."""
        from scrapy.utils.asyncio import call_later

        retry = self._redecide(request)
        update(retry, payment_retries=ans.retries)
        if ans.attempt is not None:
            update(retry, payment=ans.attempt.to_meta())
        self._waiting[id(retry)] = {
            "call": call_later(ans.delay, self._requeue, retry), "request": retry,
            "verdict": payment_refusal(request.url, "crawler-error InternalError: the retry "
                                       "was not waited for"),
            "attempt": ans.retries, "waits_on": [(f"pay per crawl at {origin}",
                                                  "InternalError")],
            "due": time.monotonic() + ans.delay}
        denied = update(request, denied="pay per crawl: InternalError, retried later").denied
        raise IgnoreRequest(denied)

    # -- check --no-fetch: URLs of origins whose files are cached, decided without a request --
    def decide_from_cache(self, url: str, plain: tuple[str, str] | None = None
                          ) -> tuple[str, Verdict, list[dict[str, Any]],
                                     Mapping[str, Any]] | None:
        """What :meth:`process_request` decides for ``Request(url)`` with ``polite_no_fetch``
        (``polite-crawl check --no-fetch``), without the request, when everything it needs is
        at hand: a plain URL (:func:`plain_url`: the one the request would carry), an address
        the network guard decides without DNS, no HTTP registry, every per-origin file cached
        and a determined verdict. Returns ``(url, verdict, checks, extra)``, what
        :meth:`DecisionFunnel.record` would be given (nothing is recorded here), or None:
        then the URL goes through the engine like any other (a file to fetch, an undetermined
        verdict waiting for its retry, DNS to ask, ...). ``plain``: :func:`plain_url` of
        ``url`` when the caller has it."""
        if plain is None:
            plain = plain_url(url)
        if plain is None or self.registries.http:
            return None
        origin, host = plain
        if not self.policy.allow_private_networks and origin not in self._exempt:
            if host_refusal(host) is not None or parse_ip(host) is None:
                return None  # refused (the engine records it), or a name to resolve
        checks: list[dict[str, Any]] = []
        if self.registries:
            reg = _verdict_of([r.check(url) for r in self.registries.local])
            if reg.undetermined:
                return None
            if reg.denied:
                return url, reg, [], _AT_REQUEST
            checks = reg.check_dicts()
        sitecache = self.sitecache
        if not self._plain_cache:
            return None
        got = self._origin_files(origin)
        if got is None:
            return None
        files, licences, plan = got
        verdict = plan.decide(url)  # (Policy.before_fetch(url, files, licences))
        if verdict.undetermined:
            return None
        sitecache.counts["hit"] += len(files) + len(licences)
        if verdict.denied:
            return url, verdict, checks, _AT_REQUEST
        return url, verdict, [], _NOT_FETCHED

    def _origin_files(self, origin: str) -> tuple[dict[str, Any], dict[str, Any], Any] | None:
        """The origin's cached files and licences (what :meth:`SiteCache.cached` gives) and
        their site plan (:meth:`Policy.site_plan`), or None when one is not cached. Kept for
        the next URLs of the origin while the cache is unchanged (its ``generation``) and none
        of them has expired: the same files."""
        sitecache = self.sitecache
        memo = self._files_memo
        if memo.get("generation") != sitecache.generation:
            memo.clear()
            memo["generation"] = sitecache.generation
        hit = memo.get(origin)
        if hit is not None and sitecache._clock() < hit[2]:
            return hit[0], hit[1], hit[3]
        files = {}
        for kind in self.policy.needed_files():
            f = sitecache.cached(origin, kind)
            if f is None:
                return None
            files[kind] = f
        licences = {}
        for u in self.policy.licence_urls(files):
            f = sitecache.cached_url("rsl", u)
            if f is None:
                return None
            licences[u] = f
        until = min([sitecache.expires(f.kind, f.url) for f in files.values()]
                    + [sitecache.expires("rsl", u) for u in licences])
        if len(memo) > 10_000:
            memo.clear()
            memo["generation"] = sitecache.generation
        plan = self.policy.site_plan(files, licences)
        memo[origin] = (files, licences, until, plan)
        return files, licences, plan

    def forget_origin_files(self) -> None:
        """Let the next :meth:`decide_from_cache` of each origin ask the cache again (and so
        mark its files as used: the cache's least-recently-used order)."""
        self._files_memo.clear()

    async def _network_refusal(self, request: Request) -> str | None:
        if self.policy.allow_private_networks:
            return None
        host = urlparse_cached(request).hostname or ""
        refusal = host_refusal(host)
        if refusal is not None or parse_ip(host) is not None:
            return refusal
        from twisted.internet import reactor  # the installed one (never at import time)

        try:
            ip = await maybe_deferred_to_future(reactor.resolve(host))
        except Exception as exc:  # noqa: BLE001 - any DNS failure refuses the target
            return f"cannot resolve {host}: {type(exc).__name__}"
        parsed = parse_ip(ip)
        if parsed is None:
            return f"{host} resolved to an unparseable address {ip!r}"
        refusal = address_refusal(parsed)
        return f"{host} resolves to {refusal}" if refusal else None

    def _apply_crawl_delay(self, request: Request, origin: str, robots: Any) -> None:
        """Crawl-delay / Request-rate for our token, per origin (Scrapy ignores both)."""
        if self._cluster:
            return
        wanted = clamp_crawl_delay(self.policy.visit_interval(robots), self._base_delay,
                                   float(polite_setting(self.crawler, "POLITE_MAX_CRAWL_DELAY")))
        if wanted is None:
            return
        request.meta["autothrottle_dont_adjust_delay"] = True
        # the site's delay is a floor: no random jitter below it
        slot = slot_by_key(self.crawler, request.meta["download_slot"])
        if slot is not None:
            floor_slot_delay(slot, wanted)
        if self._origin_delay.get(origin) != wanted:
            self._origin_delay[origin] = wanted
            set_slot_defaults(self.crawler, origin, wanted)
            self.crawler.stats.set_value(f"polite/crawl_delay/{origin}", wanted)
            logger.info("%s asks for %.1f s between requests: applied", origin, wanted)

    # -- at the headers ---------------------------------------------------------------------
    def headers_received(self, headers: Any, body_length: Any, request: Request,
                         spider: Any = None) -> None:
        if is_preflight(request) or state_of(request).checks is None:
            return
        if b"Location" in headers:  # a redirect: judged on the final response
            return
        try:
            self._decide_headers(headers, request)
        except StopDownload:
            raise
        except AuditUnavailable:
            update(request, denied="refused: the audit log cannot be written")
            raise StopDownload(fail=True) from None
        except Exception as exc:
            # Scrapy logs and swallows a signal handler's other errors and goes on
            # downloading: here an error must stop the download instead (fail closed)
            logger.exception("evaluating the headers of %s failed", request.url)
            st = update(request,
                        denied="refused at the headers: internal error (fail closed)")
            self.funnel.record(request.url, internal_error(request.url, "headers", exc),
                               checks=st.checks, extra={"stage": "headers"},
                               request=request)
            raise StopDownload(fail=True) from None

    def _decide_headers(self, headers: Any, request: Request) -> None:
        hdrs = _headers_dict(headers)
        paying = self.payment is not None and not request.meta.get(META_SITEMAP)
        # with pay per crawl on, a quote (crawler-price) is the payment decision's, at the
        # response; every other header signal binds here as always
        verdict, header_stmt = self.policy.at_headers(
            request.url, hdrs, state_of(request).tdm_file, payment_rule=not paying
        )
        st = update(request, tdm_header=header_stmt, headers_checked=True)
        if verdict.denied and paying and (st.payment is not None or any(
                k.startswith("crawler-") for k in hdrs)):
            # reserved, and about money (a paid attempt's answer, a quote): the body is not
            # downloaded, but the payment outcome needs the status, known at the response
            update(request, payment_reserved_at_headers=True)
            raise StopDownload(fail=False)
        if verdict.denied:
            update(request, denied=_refusal_text(verdict, "reserved at the headers"))
            self.funnel.record(request.url, verdict, checks=st.checks,
                               extra={"stage": "headers", **({"sitemap": True} if
                                      request.meta.get(META_SITEMAP) else {})},
                               request=request)
            raise StopDownload(fail=True)
        update(request, checks=st.checks + verdict.check_dicts())

    def bytes_received(self, data: bytes, request: Request, spider: Any = None) -> None:
        """Per-origin files are read up to a cap; the rest is never downloaded."""
        cap = request.meta.get("polite_maxsize")
        if cap is None:
            return
        got = state_of(request).received + len(data)
        update(request, received=got)
        if got >= cap:
            raise StopDownload(fail=False)

    # -- the response -------------------------------------------------------------------------
    async def process_response(self, request: Request, response: Response,
                               spider: Any = None) -> Response:
        if is_preflight(request) or state_of(request).checks is None:
            return response
        try:
            return await self._decide_response(request, response)
        except IgnoreRequest:
            raise
        except Exception as exc:
            logger.exception("evaluating the response of %s failed", request.url)
            st = update(request,
                        denied="refused at the response: internal error (fail closed)")
            self.funnel.record(request.url, internal_error(request.url, "response", exc),
                               checks=st.checks,
                               extra={"status": response.status, "stage": "response"},
                               request=request)
            raise IgnoreRequest("internal error: refused (fail closed)") from None

    async def _decide_response(self, request: Request, response: Response) -> Response:
        checks = state_of(request).checks
        if 300 <= response.status < 400 and b"Location" in response.headers:
            # a redirect Scrapy did not follow (dont_redirect, too many hops); nothing collected
            self.funnel.result(request.url, "redirect-not-followed",
                               request_seq=request.meta.get(META_SEND),
                               extra={"status": response.status, "location": location_of(response)})
            return response
        headers = _headers_dict(response.headers)
        paid = False
        paying = self.payment is not None and not request.meta.get(META_SITEMAP)
        if paying:
            got = await self._decide_payment(request, response, headers)
            if isinstance(got, Request):
                return got  # the paid re-request goes back through the engine
            paid = got
        header_verdict = None
        if not state_of(request).headers_checked:
            # the headers were not judged while downloading (a Location header on a final
            # response, a cached or replayed response, another download handler): judge them
            # now, before anything of the body is used
            header_verdict, header_stmt = self.policy.at_headers(
                request.url, headers, state_of(request).tdm_file,
                payment_rule=not paying)
            update(request, tdm_header=header_stmt)
        state = body_state(request, response)
        if state["error"] is not None:
            self._refuse_response(request, response, unreadable(
                request.url, "body", f"the body could not be decoded ({state['error']})"),
                header_verdict)
        head = None
        kind = None
        if 200 <= response.status < 300:
            ctype = (headers.get("content-type") or [None])[0]
            why = sniff_html(response.body, ctype)
            if why is not None:
                head = parse_html_head(response.body, encoding=charset_of(response),
                                       truncated=not state["complete"])
                if not head.complete:
                    self._refuse_response(request, response, unreadable(
                        request.url, "html-head", "the HTML head could not be read to its end"
                        f" ({'; '.join(head.problems[-1:]) or why})"), header_verdict)
            kind = document_kind(response.body, (ctype or "").split(";")[0].strip().lower(),
                                 is_html=head is not None)
            update(request, kind=kind, collect=self.collect is None or kind in self.collect)
            if (self.collect is not None and kind != "html" and kind not in self.collect
                    and not request.meta.get(META_ANY_KIND)
                    and not request.meta.get(META_SITEMAP)):  # read for its URLs, not kept
                # not what the corpus collects (a seed, a redirect target): nothing of it is
                # read or stored; the record says so
                self.funnel.result(request.url, "not-collected",
                                   request_seq=request.meta.get(META_SEND),
                                   extra={"status": response.status, "kind": kind,
                                          "content_type": (ctype or "")[:200],
                                          "collect": list(self.collect)})
                raise IgnoreRequest(f"not collected: {kind} (collect: "
                                    f"{', '.join(self.collect)})")
        licences = {}
        for lic_url, channel in self.policy.licence_links(request.url, headers, head):
            licences[lic_url] = (await self.sitecache.get_url("rsl", lic_url), channel)
        verdict = self.policy.at_response(request.url, response.status, headers, licences,
                                          payment_rule=not paid)
        if header_verdict is not None:
            verdict = merge_verdicts(header_verdict, verdict)
        if kind == "image" and not (ctype or "").split(";")[0].strip().lower().startswith(
                "image/"):
            # an image labelled as something else: noimageai in its X-Robots-Tag binds it
            # all the same (the headers were judged by the label)
            info = sniff_image(response.body)
            again = self.policy.image_directives(request.url, headers,
                                                 info.mime if info else "image/unknown")
            if again is not None:
                verdict = merge_verdicts(verdict, again)
        stage = "response"
        if head is not None:
            st = state_of(request)
            doc = self.policy.at_document(request.url, head, st.tdm_file, st.tdm_header)
            verdict = merge_verdicts(verdict, doc)
            stage = "document" if doc.denied else stage
        embedded_extra = None
        if (kind in ("pdf", "image", "other") and self.policy.reads_embedded()
                and not request.meta.get(META_SITEMAP)):
            # (a sitemap, gzipped or not, is read for its URLs and never stored: what it says
            # about itself decides nothing)
            # the document stage: the reservations written inside the file, read before
            # anything of it is stored (a cut body is undetermined)
            found = merge_embedded([read(response.body, ctype) for signals, read
                                    in EMBEDDED_READERS if any(map(self.policy.on, signals))])
            st = state_of(request)
            doc = self.policy.at_embedded(
                request.url, found, st.tdm_file, st.tdm_header, content_type=ctype,
                complete=bool(state["complete"]))
            verdict = merge_verdicts(verdict, doc)
            stage = "document" if doc.denied else stage
            embedded_extra = embedded_record(found)
            if not state["complete"]:
                embedded_extra["complete"] = False
        extra: dict[str, Any] = {"status": response.status, "stage": stage}
        if embedded_extra is not None:
            extra["embedded"] = embedded_extra
        if kind == "html" and self.collect is not None and "html" not in self.collect:
            extra["note"] = "read for its links only: not collected"
        charged = state_of(request).payment_charged
        if charged:
            extra["charged"] = charged  # what the page cost
        if request.meta.get(META_SITEMAP):
            extra["sitemap"] = True
        if verdict.denied:
            denied = update(request, denied=_refusal_text(verdict, f"refused at the {stage}")
                            ).denied
            self.funnel.record(request.url, verdict, checks=checks, extra=extra,
                               request=request)
            raise IgnoreRequest(denied)
        rec = self.funnel.record(request.url, verdict, checks=checks, extra=extra,
                                 request=request)
        # the URL it was decided for: a copy of this meta on another request (a user's
        # response.follow(..., meta=response.meta)) cites nothing (audit_of)
        request.meta[META_AUDIT] = {"seq": rec["seq"], "hash": rec["hash"], "url": request.url}
        return response

    def _refuse_response(self, request: Request, response: Response, verdict: Verdict,
                         also: Verdict | None = None) -> NoReturn:
        if also is not None:  # e.g. headers judged only now: their statements are evidence too
            verdict = merge_verdicts(verdict, also)
        st = update(request, denied=_refusal_text(verdict, "refused at the response"))
        extra: dict[str, Any] = {"status": response.status, "stage": "response"}
        if request.meta.get(META_SITEMAP):
            extra["sitemap"] = True
        self.funnel.record(request.url, verdict, checks=st.checks,
                           extra=extra, request=request)
        raise IgnoreRequest(st.denied)

    def process_exception(self, request: Request, exception: BaseException,
                          spider: Any = None) -> None:
        if (self.payment is not None and state_of(request).payment is not None
                and isinstance(exception, IgnoreRequest)
                and request.meta.get(META_SEND) is None):
            self._unsent_attempt(request, exception)
        reason = state_of(request).denied
        if reason and not isinstance(exception, IgnoreRequest):
            # the download was stopped by a refusal (StopDownload at the headers): say which;
            # an IgnoreRequest of ours already says what happened and passes unchanged
            raise IgnoreRequest(reason if isinstance(reason, str) else "refused")

    def _unsent_attempt(self, request: Request, exception: BaseException) -> None:
        """A paid attempt refused before it left (a reservation decided again, a later
        middleware): its hold is released and its authorisation closed. An attempt that may
        have reached the server (a download error) keeps its hold: fail closed."""
        from crawler.policy.payment import PaidAttempt

        attempt = PaidAttempt.from_meta(state_of(request).payment)
        reset(request, "payment")
        try:
            self._pay_records(request, self.payment.cancel(attempt, str(exception)[:200]),
                              request_seq=None)
        except AuditUnavailable:
            pass  # the crawl is stopping; replay counts the open authorisation as spent

    def _deny(self, request: Request, verdict: Verdict,
              extra: dict[str, Any] | None = None) -> NoReturn:
        """Refuse before the request: the record, then IgnoreRequest (always raises)."""
        where = "refused before the request"
        if is_preflight(request):
            where = f"{request.meta[PREFLIGHT_META]} fetch refused before the request"
        st = update(request, denied=_refusal_text(verdict, where))
        fields: dict[str, Any] = {"stage": "request", **(extra or {})}
        if is_preflight(request):
            fields["preflight"] = request.meta[PREFLIGHT_META]
        elif request.meta.get(META_SITEMAP):
            fields["sitemap"] = True
        self.funnel.record(request.url, verdict, checks=st.checks or [],
                           extra=fields, request=request)
        raise IgnoreRequest(st.denied)

    # -- undecided: refused now, asked again after the origin's backoff ---------------------
    def _defer(self, request: Request, verdict: Verdict, consulted: list[Any],
               wait: float = 0.0) -> NoReturn:
        """Refuse now (the record says so) and schedule the same URL for a later decision
        (always raises IgnoreRequest)."""
        from scrapy.utils.asyncio import call_later

        attempt = state_of(request).attempt + 1
        if attempt > self._retries:
            self._deny(request, verdict, {"undecided": {"attempt": attempt, "final": True}})
        wait = max([self.sitecache.retry_in(f.kind, f.url) for f in consulted] + [wait, 1.0])
        retry = request.replace(dont_filter=True)
        update(retry, attempt=attempt)
        reset(retry, "checks", "denied", "tdm_file", "tdm_header")
        # what the URL waits on, for the progress line while the run idles on it
        origin = state_of(request).origin or origin_of(request)
        waits_on = [(f"{f.kind} of {origin}" if f.kind in ("robots.txt", "tdmrep.json",
                                                          "ai.txt") else f"{f.kind} {f.url}",
                     f.status_text) for f in consulted if f.outcome == "unreachable"]
        if not waits_on:  # e.g. a registry that could not answer
            waits_on = [(f"{r.channel} {r.source or origin}", r.rule or "undetermined")
                        for r in verdict.reasons]
        self._waiting[id(retry)] = {
            "call": call_later(wait, self._requeue, retry), "request": retry,
            "verdict": verdict, "attempt": attempt, "waits_on": waits_on,
            "due": time.monotonic() + wait}
        self.crawler.stats.inc_value("polite/undecided/deferred")
        self._deny(request, verdict, {"undecided": {"attempt": attempt, "final": False,
                                                    "retry_after_s": round(wait, 1)}})

    def _requeue(self, request: Request) -> None:
        self._waiting.pop(id(request), None)
        if not self._waiting and self._idle_timer is not None:  # no limit to watch for now
            self._idle_timer.cancel()
            self._idle_timer = None
        if self.crawler.engine is not None and self.crawler.engine.spider is not None:
            self.crawler.engine.crawl(request)

    def _idle(self, spider: Any = None, *, deadline: bool = False) -> None:
        """Keep the spider open while undecided URLs wait for their retry, saying so.

        Called on ``spider_idle`` (again every engine heartbeat, ~5 s, while idle) and, with
        ``deadline=True``, by our own timer when ``POLITE_MAX_IDLE_WAIT`` has passed. The wait
        counts from the moment the spider became idle with URLs waiting; the retries made
        meanwhile do not restart it (a spider busy for longer than a few heartbeats does). Past
        it, or at once when no retry falls due before it, the waiting URLs are refused for good
        in this run (a final undecided record, ``deferred_to_next_run``) and the spider may
        close; the job's next run decides them first (``crawler.crawl.resume.undecided_urls``).
        """
        from scrapy.utils.asyncio import call_later

        engine = self.crawler.engine
        if deadline:
            self._idle_timer = None
            try:
                if engine is None or engine.spider is None or not engine.spider_is_idle():
                    return  # closing, or busy: the next spider_idle decides
            except RuntimeError:  # the engine's slot is gone: closing
                return
        if not self._waiting:
            self._idle_since = None
            return
        now = time.monotonic()
        if not deadline:
            if now - self._idle_seen > 15.0:  # busy since the last one: a new idle stretch
                self._idle_since = None
            self._idle_seen = now
        entries = list(self._waiting.values())
        due = min(e["due"] for e in entries)
        started = self._idle_since is None
        if started:
            self._idle_since = now
        limit = self._idle_since + self._max_idle_wait if self._max_idle_wait else None
        give_up = limit is not None and (now >= limit or due > limit)
        if started or give_up or now - self._idle_logged >= 10.0:
            self._idle_logged = now
            what = list(dict.fromkeys(f"{w} ({why})" for e in entries for w, why in e["waits_on"]))
            if len(what) > 5:
                what[5:] = [f"{len(what) - 5} more"]
            wall = time.time()

            def clock(at: float) -> str:
                return time.strftime("%H:%M:%S", time.localtime(wall + max(0.0, at - now)))

            logger.info("waiting on %s: %d URL%s, next retry at %s (in %.0f s)%s",
                        ", ".join(what), len(entries),
                        "" if len(entries) == 1 else "s", clock(due), max(0.0, due - now),
                        "" if limit is None else f"; left to the next run at {clock(limit)}"
                        f" (POLITE_MAX_IDLE_WAIT {self._max_idle_wait:g} s)")
        if not give_up:
            if limit is not None and self._idle_timer is None:
                self._idle_timer = call_later(max(0.0, limit - now) + 0.01,
                                              lambda: self._idle(deadline=True))
            if not deadline:
                raise DontCloseSpider
            return
        # only waiting is left and it would outlast the limit: the next run decides them
        self._waiting.clear()
        self._idle_since = None
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        for e in entries:
            e["call"].cancel()
        for e in entries:
            try:
                self._deny(e["request"], e["verdict"], {"undecided": {
                    "attempt": e["attempt"], "final": True, "deferred_to_next_run": True}})
            except IgnoreRequest:
                pass
        self.crawler.stats.inc_value("polite/undecided/deferred_to_next_run", len(entries))
        logger.warning("%d undecided URL%s not waited for (POLITE_MAX_IDLE_WAIT %g s): refused "
                       "in this run, decided first by the job's next run", len(entries),
                       "" if len(entries) == 1 else "s", self._max_idle_wait)
        if deadline and engine is not None:
            # wake the engine now rather than at its next heartbeat: idle, it closes
            wake_engine(engine)


def _refusal_text(verdict: Verdict, where: str) -> str:
    """One line saying what refused a request and why (exception text, evidence errors)."""
    r = verdict.reasons[0]
    channel = "network guard" if (r.signal, r.channel) == ("network", "address") else r.signal
    return f"{where} by {channel}: {r.rule}" if r.rule else f"{where} by {channel}"


def _tdm_file_statement(f: Any, url: str) -> Any:
    if f.outcome != "parsed" or f.parsed is None:
        return None
    return tdmrep.statement_from_file(f.parsed, url)
