"""The Scrapy glue with a real crawler and real Settings: an error while deciding refuses.

The components are built directly: the runtime on a crawler from ``get_crawler`` (its real
``Settings``, stats and signals; no add-on, so nothing is built behind the test's back), and
each middleware from the runtime's parts, passed as its constructor's arguments.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest
from scrapy import Request, Spider
from scrapy.exceptions import IgnoreRequest, StopDownload
from scrapy.http import Headers, HtmlResponse
from scrapy.utils.test import get_crawler

from crawler.crawl.integrity import ContentIntegrityMiddleware
from crawler.crawl.registries import Registries
from crawler.crawl.reservation import ReservationMiddleware
from crawler.crawl.runtime import PoliteRuntime
from crawler.crawl.sitecache import SiteCache
from crawler.crawl.state import META_STATE, RequestState
from crawler.policy.reservation import Policy

UA = "GlueBot/1.0 (+https://example.org/bot)"


def glue(tmp_path, **settings):
    """A crawler with these settings (and the glue's user agent and output directory) and the
    runtime built on it directly, with the single-process parts."""
    crawler = get_crawler(Spider, {"POLITE_USER_AGENT": UA, "POLITE_OUTPUT_DIR": str(tmp_path),
                                   **settings})
    return crawler, PoliteRuntime(crawler, sitecache_cls=SiteCache, registries_cls=Registries)


def reservations(crawler, rt, **kwargs):
    """The reservation middleware on the runtime's parts (``kwargs``: the settings' values)."""
    parts = {"policy": rt.policy, "funnel": rt.funnel, "sitecache": rt.sitecache,
             "registries": rt.registries, "log_name": rt.writer.path.name,
             "payment": rt.payment, "scope": rt.scope}
    return ReservationMiddleware(crawler, **{**parts, **kwargs})


class BrokenPolicy(Policy):
    def at_headers(self, *a, **kw):
        raise RuntimeError("parser bug")

    def at_response(self, *a, **kw):
        raise RuntimeError("parser bug")


@pytest.fixture
def middleware(tmp_path):
    crawler, rt = glue(tmp_path)
    mw = reservations(crawler, rt, policy=BrokenPolicy(token="GlueBot", user_agent=UA))
    yield mw, tmp_path
    rt.writer.close()


def records(path):
    return [json.loads(line) for line in (path / "audit.jsonl").read_text().splitlines()]


def test_error_at_the_headers_stops_the_download_and_is_recorded(middleware):
    mw, out = middleware
    request = Request("https://example.org/a", meta={META_STATE: RequestState(checks=[])})
    with pytest.raises(StopDownload):
        mw.headers_received(Headers({"Content-Type": "text/html"}), 10, request)
    (rec,) = records(out)
    assert rec["decision"] == "deny" and rec["reasons"][0]["channel"] == "internal-error"
    assert "parser bug" in rec["reasons"][0]["rule"]
    with pytest.raises(IgnoreRequest):
        mw.process_exception(request, StopDownload(fail=True))


def test_error_at_the_response_refuses(middleware):
    mw, out = middleware
    request = Request("https://example.org/b", meta={META_STATE: RequestState(checks=[])})
    response = HtmlResponse(request.url, body=b"<html></html>", request=request)
    with pytest.raises(IgnoreRequest):
        asyncio.run(mw.process_response(request, response))
    (rec,) = records(out)
    assert rec["decision"] == "deny" and rec["stage"] == "response"


def test_a_page_request_cannot_pose_as_a_preflight_fetch(tmp_path):
    """Only our own per-origin fetches (no callback) skip the checks; a spider request that
    carries the meta key is judged like any other."""
    from scrapy.http.request import NO_CALLBACK

    from crawler.crawl.meta import is_preflight
    from crawler.crawl.sitecache import PREFLIGHT_META

    def cb(response):
        return None

    assert is_preflight(Request("https://e.org/robots.txt", callback=NO_CALLBACK,
                                meta={PREFLIGHT_META: "robots.txt"}))
    assert not is_preflight(Request("https://e.org/page", callback=cb,
                                    meta={PREFLIGHT_META: "robots.txt"}))
    assert not is_preflight(Request("https://e.org/page", meta={PREFLIGHT_META: "x"}))


@pytest.mark.parametrize(
    "url, origin",
    [
        ("http://EXAMPLE.com./a", "http://example.com"),
        ("http://example.com:80/", "http://example.com"),
        ("https://Example.COM.:8443/x", "https://example.com:8443"),
        ("http://[::ffff:127.0.0.2]:9821/x", "http://127.0.0.2:9821"),
        ("http://[::FFFF:7f00:2]/", "http://127.0.0.2"),
        ("https://[2001:DB8:0::1]:443/", "https://[2001:db8::1]"),
        ("http://xn--BCHER-kva.example./", "http://xn--bcher-kva.example"),
    ],
)
def test_origin_key_is_one_per_host_spelling(url, origin):
    """origin_of keys the per-origin robots.txt cache and download slots: every spelling of a
    host (case, trailing dot, IPv4-mapped IPv6, IPv6 forms) gives one key."""
    from crawler.crawl.meta import origin_of

    assert origin_of(Request(url)) == origin


GLUE_SETTINGS = {
    "ADDONS": {"crawler.addon.Addon": 100},
    "POLITE_USER_AGENT": UA,
}


@pytest.mark.parametrize(
    "name, value",
    [("DOWNLOAD_DELAY", float("nan")), ("DOWNLOAD_DELAY", "nan"), ("DOWNLOAD_DELAY", -1),
     ("DOWNLOAD_DELAY", float("inf")), ("AUTOTHROTTLE_MAX_DELAY", "1e999"),
     ("POLITE_MAX_CRAWL_DELAY", float("nan")), ("POLITE_SITE_CACHE_TTL", -5),
     ("POLITE_PREFLIGHT_TIMEOUT", "inf"), ("POLITE_UNDECIDED_RETRIES", -1)],
)
def test_runtime_refuses_numbers_that_switch_politeness_off(tmp_path, name, value):
    """The add-on path (a Scrapy project's settings.py, no YAML config) checks the numbers."""
    with pytest.raises(ValueError) as exc:  # raised as the crawler builds its extensions
        get_crawler(Spider, {**GLUE_SETTINGS, "POLITE_OUTPUT_DIR": str(tmp_path), name: value})
    assert str(exc.value).startswith(f"{name}: ") and "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "base, slot_delay",
    [(float("nan"), float("nan")), (float("inf"), float("inf")), (-1.0, -1.0),
     (1.0, float("nan")), (1.0, float("inf"))],
)
def test_crawl_delay_floor_holds_whatever_the_delays(tmp_path, base, slot_delay):
    """A NaN, infinite or negative DOWNLOAD_DELAY (had it got past the checks) or slot delay
    (AutoThrottle computes it) counts as 0: the site's Crawl-delay is applied as a floor."""
    from types import SimpleNamespace

    from scrapy.core.downloader import Slot

    from crawler.optout.robots import parse_robots

    crawler, rt = glue(tmp_path)
    try:
        # the delay as if it had passed the checks
        mw = reservations(crawler, rt, download_delay=base)
        origin = "https://example.org"
        slot = Slot(1, slot_delay, jitter=0.0)
        downloader = SimpleNamespace(slots={origin: slot}, per_slot_settings={})
        crawler.engine = SimpleNamespace(downloader=downloader)  # no crawl runs: only its slots
        robots = parse_robots(b"User-agent: *\nCrawl-delay: 5\n")
        request = Request(origin + "/a", meta={"download_slot": origin})
        mw._apply_crawl_delay(request, origin, robots)
        assert (slot.delay, slot.jitter) == (5.0, 0.0)
        assert downloader.per_slot_settings[origin] == {"delay": 5.0, "jitter": 0.0}
    finally:
        rt.writer.close()


def test_exempt_origins_are_part_of_the_policy_hash(tmp_path):
    """Origins exempted from the network guard change what is crawled: the hash says so."""
    plain = reservations(*glue(tmp_path / "a"))
    exempt = reservations(*glue(tmp_path / "b",
                                POLITE_ALLOWED_PRIVATE_ORIGINS=["http://10.0.0.5:8080"]))
    try:
        assert plain.policy.sha256 != exempt.policy.sha256
        assert exempt.policy.allowed_private_origins == ("http://10.0.0.5:8080",)
        # the exemption is keyed like every origin (host normal form)
        assert "http://10.0.0.5:8080" in exempt._exempt
    finally:
        plain.funnel.writer.close()
        exempt.funnel.writer.close()


def integrity(**settings):
    """The integrity middleware with the page size limit of these settings."""
    from scrapy.settings import Settings

    return ContentIntegrityMiddleware(get_crawler(Spider),
                                      page_max=Settings(settings).getint("DOWNLOAD_MAXSIZE"))


def test_integrity_middleware_decodes_and_records_what_it_found(tmp_path):
    import gzip

    from crawler.crawl.sitecache import META_BODY

    mw = integrity()
    body = b"<html><head><title>t</title></head><body>x</body></html>"
    request = Request("https://example.org/c")
    raw = HtmlResponse(request.url, body=gzip.compress(body), request=request,
                       headers={"Content-Encoding": "gzip", "Content-Type": "text/html"})
    out = mw.process_response(request, raw)
    assert out.body == body and b"Content-Encoding" not in out.headers
    assert request.meta[META_BODY] == {"complete": True, "error": None, "problems": []}
    # cut by a stopped download: a prefix, marked incomplete
    request = Request("https://example.org/d")
    cut = HtmlResponse(request.url, body=gzip.compress(body * 50)[:40], request=request,
                       flags=["download_stopped"],
                       headers={"Content-Encoding": "gzip", "Content-Type": "text/html"})
    out = mw.process_response(request, cut)
    assert request.meta[META_BODY]["complete"] is False and request.meta[META_BODY]["error"] is None
    # an unknown coding: undecodable, and no lenient decoder after us may guess
    request = Request("https://example.org/e")
    odd = HtmlResponse(request.url, body=b"\x00\x01garbage", request=request,
                       headers={"Content-Encoding": "x-secret", "Content-Type": "text/html"})
    out = mw.process_response(request, odd)
    assert "unknown content-coding" in request.meta[META_BODY]["error"]
    assert b"Content-Encoding" not in out.headers and "polite-undecodable" in out.flags


def test_page_decoding_over_download_maxsize_is_undecodable(tmp_path):
    """Scrapy drops such a page without a record; we mark it, and the refusal is recorded."""
    import gzip

    from crawler.crawl.sitecache import META_BODY

    mw = integrity(DOWNLOAD_MAXSIZE=1000)
    request = Request("https://example.org/big")
    big = HtmlResponse(request.url, body=gzip.compress(b"<p>" + b"a" * 5000), request=request,
                       headers={"Content-Encoding": "gzip", "Content-Type": "text/html"})
    mw.process_response(request, big)
    assert "DOWNLOAD_MAXSIZE" in request.meta[META_BODY]["error"]
    # a per-origin file is read in part by design: cut, not an error
    from scrapy.http.request import NO_CALLBACK

    from crawler.crawl.sitecache import PREFLIGHT_META

    request = Request("https://example.org/robots.txt", callback=NO_CALLBACK,
                      meta={"polite_maxsize": 1000, PREFLIGHT_META: "robots.txt"})
    robots = HtmlResponse(request.url, body=gzip.compress(b"# x\n" * 2000), request=request,
                          headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"})
    mw.process_response(request, robots)
    assert request.meta[META_BODY]["error"] is None
    assert request.meta[META_BODY]["complete"] is False


def test_decision_signal_is_sent_exactly_when_someone_listens(tmp_path):
    # the funnel skips the pydispatch dispatch when nobody receives decision_recorded; it must
    # see a receiver connected at any time (WARC metadata depends on it) and one gone
    from crawler.crawl.signals import decision_recorded
    from crawler.policy.reservation import merge_verdicts

    crawler, rt = glue(tmp_path)
    got = []

    def receiver(record, request=None, **kw):
        got.append(record["url"])

    allow = merge_verdicts()
    rt.funnel.record("https://example.org/1", allow, checks=[], request=None)
    crawler.signals.connect(receiver, signal=decision_recorded)
    rt.funnel.record("https://example.org/2", allow, checks=[], request=None)
    rt.funnel.record_many([("https://example.org/3", allow, [], {"stage": "request"})])
    crawler.signals.disconnect(receiver, signal=decision_recorded)
    rt.funnel.record("https://example.org/4", allow, checks=[], request=None)
    rt.writer.close()
    assert got == ["https://example.org/2", "https://example.org/3"]


def test_a_signal_receiver_gets_each_batched_record_with_its_own_parts(tmp_path):
    # record_many shares one verdict's reasons and checks between its records only for our
    # own listeners; what decision_recorded gives to anyone's code is each record's own
    from types import MappingProxyType

    from crawler.crawl.signals import decision_recorded
    from crawler.policy.reservation import merge_verdicts

    crawler, rt = glue(tmp_path)
    allow = merge_verdicts()
    extra = MappingProxyType({"stage": "request"})
    batch = [(f"https://example.org/{i}", allow, [], extra) for i in range(3)]
    shared = rt.funnel.record_many(batch)
    assert len({id(r["checks"]) for r in shared}) == 1     # (no receiver: made once)
    got = []

    def receiver(record, request=None, **kw):
        got.append(record)

    crawler.signals.connect(receiver, signal=decision_recorded)
    recs = rt.funnel.record_many(batch)
    crawler.signals.disconnect(receiver, signal=decision_recorded)
    rt.writer.close()
    assert [r["url"] for r in got] == [u for u, *_ in batch]
    assert len({id(r["checks"]) for r in got}) == 3
    assert [{k: v for k, v in r.items() if k not in ("time", "seq", "prev_hash", "hash")}
            for r in recs] == [{k: v for k, v in r.items()
                                if k not in ("time", "seq", "prev_hash", "hash")}
                               for r in shared]


# -- Web Bot Auth and pay per crawl through the add-on (no YAML config) -------------------------

def test_addon_installs_the_request_signer_just_before_the_write_ahead_record():
    from scrapy.settings import Settings

    from crawler.crawl.addon import SIGN, WRITE_AHEAD, Addon

    s = Settings({"DOWNLOADER_MIDDLEWARES": {}, "EXTENSIONS": {}, "SPIDER_MIDDLEWARES": {},
                  "ITEM_PIPELINES": {}})
    Addon().update_settings(s)
    mws = s["DOWNLOADER_MIDDLEWARES"]
    assert mws[SIGN] == 980 and mws[WRITE_AHEAD] == 990
    assert s["POLITE_IDENTITY_SIGNATURE_AGENT"] is None  # off by default: nothing signed
    assert s["POLITE_PAYMENT_MAX_PRICE"] is None          # off by default: 402 is a refusal


PAY = {"POLITE_PAYMENT_MAX_PRICE": "USD 0.01", "POLITE_PAYMENT_BUDGET": "USD 1.00"}


@pytest.mark.parametrize("settings, message", [
    (PAY, "paying needs signed requests"),
    ({**PAY, "POLITE_IDENTITY_SIGNATURE_AGENT": "https://c.example"},
     "paying needs signed requests"),
    ({**PAY, "POLITE_PAYMENT_MAX_PRICE": "0.01 USD"}, "POLITE_PAYMENT_MAX_PRICE"),
    ({**PAY, "POLITE_PAYMENT_BUDGET": None}, "POLITE_PAYMENT_BUDGET"),
])
def test_runtime_refuses_payment_it_cannot_do(tmp_path, settings, message):
    with pytest.raises(ValueError) as exc:
        glue(tmp_path, **settings)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_payment_is_part_of_the_policy_hash_and_resumes_from_the_log(tmp_path):
    from crawler.identity.keys import generate_key
    from crawler.policy.payment import PayPerCrawl

    key = tmp_path / "k.pem"
    generate_key(key)
    signed = {"POLITE_IDENTITY_KEY_FILE": str(key),
              "POLITE_IDENTITY_SIGNATURE_AGENT": "https://c.example"}
    plain_crawler, plain_rt = glue(tmp_path / "a", **signed)
    plain = reservations(plain_crawler, plain_rt)
    paying_crawler, paying_rt = glue(tmp_path / "b", **signed, **PAY)
    paying = reservations(paying_crawler, paying_rt)
    try:
        assert plain.payment is None and isinstance(paying.payment, PayPerCrawl)
        assert plain.policy.sha256 != paying.policy.sha256
        assert "budget USD 1.00" in paying.policy.payment
        # a charge in the log: the next run's ledger starts from it
        origin = "https://a.example"
        ans = paying.payment.decide(origin, 402, {"crawler-price": ["USD 0.01"]})
        seqs = paying._pay_records(Request(origin + "/x"), ans.records)
        attempt = ans.attempt.with_ref(seqs[-1])
        done = paying.payment.decide(origin, 200, {"crawler-charged": ["USD 0.01"]}, attempt)
        paying._pay_records(Request(origin + "/x"), done.records)
    finally:
        plain_rt.writer.close()
        paying_rt.writer.close()
        paying_rt.run_lock.release()
    again_crawler, again_rt = glue(tmp_path / "b", **signed, **PAY)
    again = reservations(again_crawler, again_rt)
    try:
        assert again.payment.ledger.totals(origin).spent == 10_000
        up, _ = again.payment.up_front(origin)  # remembered as charging
        assert up is not None and up.header == "crawler-max-price"
    finally:
        again_rt.writer.close()


def test_unreadable_payment_records_mean_nothing_is_paid(tmp_path):
    from crawler.identity.keys import generate_key

    key = tmp_path / "k.pem"
    generate_key(key)
    out = tmp_path / "o"
    out.mkdir()
    from crawler.audit.record import GENESIS_HASH, canonical_json, seal

    rec = seal({"time": "t", "job": "default", "url": "https://a.example/x",
                "decision": "result", "reasons": [], "policy_sha256": "p",
                "result": "pay-charge", "payment": {"origin": "https://a.example", "ref": None,
                                                    "charged": "USD lots"}},
               seq=1, prev_hash=GENESIS_HASH)
    (out / "audit.jsonl").write_text(canonical_json(rec) + "\n", encoding="utf-8")
    crawler, rt = glue(out, POLITE_IDENTITY_KEY_FILE=str(key),
                       POLITE_IDENTITY_SIGNATURE_AGENT="https://c.example", **PAY)
    mw = reservations(crawler, rt)
    try:
        assert "cannot be read" in mw.payment.disabled
        ans = mw.payment.decide("https://b.example", 402, {"crawler-price": ["USD 0.01"]})
        assert type(ans).__name__ == "Refuse" and "not paying" in ans.reason
    finally:
        rt.writer.close()


# -- our commands' logging: a line no handler takes is not built ------------------------------

def _with_root_handler_at(level: int, call) -> int:
    """Call ``call`` with Scrapy's logging set-up (root at NOTSET, one handler at ``level``) as
    the root's only handler; the root's level after it (everything restored)."""
    root = logging.getLogger()
    saved_level, saved = root.level, list(root.handlers)
    # (the handlers of earlier tests' loggers and pytest's own capturing ones off for the call)
    others = [(lg, list(lg.handlers)) for lg in logging.root.manager.loggerDict.values()
              if isinstance(lg, logging.Logger) and lg.handlers]
    for lg, _ in others:
        lg.handlers[:] = []
    handler = logging.StreamHandler(io.StringIO())
    handler.setLevel(level)
    root.handlers[:] = [handler]
    root.setLevel(logging.NOTSET)
    try:
        call()
        return root.level
    finally:
        root.handlers[:] = saved
        root.setLevel(saved_level)
        for lg, handlers in others:
            lg.handlers[:] = handlers


def test_the_root_level_is_raised_to_the_lowest_handler_level():
    from crawler.cli.common import skip_records_no_handler_takes

    seen = {}

    def call():
        skip_records_no_handler_takes()
        engine = logging.getLogger("scrapy.core.engine")
        seen.update(debug=engine.isEnabledFor(logging.DEBUG),
                    info=engine.isEnabledFor(logging.INFO))

    assert _with_root_handler_at(logging.INFO, call) == logging.INFO
    assert seen == {"debug": False, "info": True}


def test_the_root_level_stays_where_a_handler_takes_lower_lines():
    from crawler.cli.common import skip_records_no_handler_takes

    mine = logging.getLogger("polite-test-own-handler")
    own = logging.StreamHandler(io.StringIO())
    own.setLevel(logging.DEBUG)
    seen = {}

    def call():
        mine.addHandler(own)
        try:
            skip_records_no_handler_takes()
            seen.update(mine=mine.isEnabledFor(logging.DEBUG))
        finally:
            mine.removeHandler(own)

    assert _with_root_handler_at(logging.INFO, call) == logging.DEBUG
    assert seen == {"mine": True}  # (its handler takes DEBUG lines: they are still made)
