"""The Scrapy glue with a real crawler and real Settings: an error while deciding refuses."""

from __future__ import annotations

import asyncio
import json

import pytest
from scrapy import Request, Spider
from scrapy.exceptions import IgnoreRequest, StopDownload
from scrapy.http import Headers, HtmlResponse
from scrapy.utils.test import get_crawler

from crawler.crawl.middlewares import ReservationMiddleware
from crawler.policy.reservation import Policy
from crawler.crawl.runtime import PoliteRuntime
from crawler.crawl.state import META_STATE, RequestState


class BrokenPolicy(Policy):
    def at_headers(self, *a, **kw):
        raise RuntimeError("parser bug")

    def at_response(self, *a, **kw):
        raise RuntimeError("parser bug")


@pytest.fixture
def middleware(tmp_path):
    crawler = get_crawler(Spider, {
        "ADDONS": {"crawler.addon.Addon": 100},
        "POLITE_USER_AGENT": "GlueBot/1.0 (+https://example.org/bot)",
        "POLITE_OUTPUT_DIR": str(tmp_path),
    })
    crawler._apply_settings()
    mw = ReservationMiddleware.from_crawler(crawler)
    mw.policy = BrokenPolicy(token="GlueBot", user_agent="GlueBot/1.0 (+https://example.org/bot)")
    yield mw, tmp_path
    mw.rt.writer.close()


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

    from crawler.crawl.middlewares import is_preflight
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
    from crawler.crawl.middlewares import origin_of

    assert origin_of(Request(url)) == origin


GLUE_SETTINGS = {
    "ADDONS": {"crawler.addon.Addon": 100},
    "POLITE_USER_AGENT": "GlueBot/1.0 (+https://example.org/bot)",
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
    with pytest.raises(ValueError) as exc:
        crawler = get_crawler(Spider, {**GLUE_SETTINGS, "POLITE_OUTPUT_DIR": str(tmp_path),
                                       name: value})
        crawler._apply_settings()
    assert str(exc.value).startswith(f"{name}: ") and "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "base, slot_delay",
    [(float("nan"), float("nan")), (float("inf"), float("inf")), (-1.0, -1.0),
     (1.0, float("nan")), (1.0, float("inf"))],
)
def test_crawl_delay_floor_holds_whatever_the_delays(tmp_path, monkeypatch, base, slot_delay):
    """A NaN, infinite or negative DOWNLOAD_DELAY (had it got past the checks) or slot delay
    (AutoThrottle computes it) counts as 0: the site's Crawl-delay is applied as a floor."""
    from types import SimpleNamespace

    from scrapy.core.downloader import Slot

    from crawler.optout.robots import parse_robots

    from scrapy.settings import Settings

    from crawler.crawl.runtime import get_runtime

    crawler = get_crawler(Spider, {**GLUE_SETTINGS, "POLITE_OUTPUT_DIR": str(tmp_path)})
    crawler._apply_settings()
    try:
        settings = Settings(crawler.settings.copy_to_dict())  # as if it had passed the checks
        settings.set("DOWNLOAD_DELAY", base)
        monkeypatch.setattr(crawler, "settings", settings)
        mw = ReservationMiddleware.from_crawler(crawler)
        origin = "https://example.org"
        slot = Slot(1, slot_delay, jitter=0.0)
        downloader = SimpleNamespace(slots={origin: slot}, per_slot_settings={})
        engine = SimpleNamespace(downloader=downloader)  # no crawl runs: only its slots
        monkeypatch.setattr(type(crawler), "engine", property(lambda self: engine))
        robots = parse_robots(b"User-agent: *\nCrawl-delay: 5\n")
        request = Request(origin + "/a", meta={"download_slot": origin})
        mw._apply_crawl_delay(request, origin, robots)
        assert (slot.delay, slot.jitter) == (5.0, 0.0)
        assert downloader.per_slot_settings[origin] == {"delay": 5.0, "jitter": 0.0}
    finally:
        get_runtime(crawler).writer.close()


def _runtime_crawler(tmp_path, **settings):
    crawler = get_crawler(Spider, {
        "ADDONS": {"crawler.addon.Addon": 100},
        "POLITE_USER_AGENT": "GlueBot/1.0 (+https://example.org/bot)",
        "POLITE_OUTPUT_DIR": str(tmp_path),
        **settings,
    })
    crawler._apply_settings()
    return crawler


def test_exempt_origins_are_part_of_the_policy_hash(tmp_path):
    """Origins exempted from the network guard change what is crawled: the hash says so."""
    plain = ReservationMiddleware.from_crawler(_runtime_crawler(tmp_path / "a"))
    exempt = ReservationMiddleware.from_crawler(_runtime_crawler(
        tmp_path / "b", POLITE_ALLOWED_PRIVATE_ORIGINS=["http://10.0.0.5:8080"]))
    try:
        assert plain.policy.sha256 != exempt.policy.sha256
        assert exempt.policy.allowed_private_origins == ("http://10.0.0.5:8080",)
        # the exemption is keyed like every origin (host normal form)
        assert "http://10.0.0.5:8080" in exempt._exempt
    finally:
        plain.rt.writer.close()
        exempt.rt.writer.close()


def test_integrity_middleware_decodes_and_records_what_it_found(tmp_path):
    import gzip

    from crawler.crawl.middlewares import ContentIntegrityMiddleware
    from crawler.crawl.sitecache import META_BODY

    crawler = _runtime_crawler(tmp_path)
    mw = ContentIntegrityMiddleware.from_crawler(crawler)
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
    crawler.get_extension(PoliteRuntime).writer.close()


def test_page_decoding_over_download_maxsize_is_undecodable(tmp_path):
    """Scrapy drops such a page without a record; we mark it, and the refusal is recorded."""
    import gzip

    from crawler.crawl.middlewares import ContentIntegrityMiddleware
    from crawler.crawl.sitecache import META_BODY

    crawler = _runtime_crawler(tmp_path, DOWNLOAD_MAXSIZE=1000)
    mw = ContentIntegrityMiddleware.from_crawler(crawler)
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
    crawler.get_extension(PoliteRuntime).writer.close()


def test_decision_signal_is_sent_exactly_when_someone_listens(tmp_path):
    # the funnel skips the pydispatch dispatch when nobody receives decision_recorded; it must
    # see a receiver connected at any time (WARC metadata depends on it) and one gone
    from crawler.policy.reservation import merge_verdicts
    from crawler.crawl.signals import decision_recorded

    crawler = get_crawler(Spider, {"ADDONS": {"crawler.addon.Addon": 100},
                                   "POLITE_USER_AGENT": "GlueBot/1.0 (+https://example.org/bot)",
                                   "POLITE_OUTPUT_DIR": str(tmp_path)})
    crawler._apply_settings()
    rt = crawler.get_extension(PoliteRuntime)
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
        _runtime_crawler(tmp_path, **settings)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_payment_is_part_of_the_policy_hash_and_resumes_from_the_log(tmp_path):
    from crawler.identity.keys import generate_key
    from crawler.policy.payment import PayPerCrawl

    key = tmp_path / "k.pem"
    generate_key(key)
    signed = {"POLITE_IDENTITY_KEY_FILE": str(key),
              "POLITE_IDENTITY_SIGNATURE_AGENT": "https://c.example"}
    plain = ReservationMiddleware.from_crawler(_runtime_crawler(tmp_path / "a", **signed))
    paying = ReservationMiddleware.from_crawler(_runtime_crawler(tmp_path / "b", **signed,
                                                                 **PAY))
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
        plain.rt.writer.close()
        paying.rt.writer.close()
        paying.rt.run_lock.release()
    again = ReservationMiddleware.from_crawler(_runtime_crawler(tmp_path / "b", **signed, **PAY))
    try:
        assert again.payment.ledger.totals(origin).spent == 10_000
        up, _ = again.payment.up_front(origin)  # remembered as charging
        assert up is not None and up.header == "crawler-max-price"
    finally:
        again.rt.writer.close()


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
    mw = ReservationMiddleware.from_crawler(_runtime_crawler(
        out, POLITE_IDENTITY_KEY_FILE=str(key),
        POLITE_IDENTITY_SIGNATURE_AGENT="https://c.example", **PAY))
    try:
        assert "cannot be read" in mw.payment.disabled
        ans = mw.payment.decide("https://b.example", 402, {"crawler-price": ["USD 0.01"]})
        assert type(ans).__name__ == "Refuse" and "not paying" in ans.reason
    finally:
        mw.rt.writer.close()
