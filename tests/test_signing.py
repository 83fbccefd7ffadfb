"""SignRequestsMiddleware glue, with a real Scrapy crawler and Settings: every request signed,
retries and redirects re-signed afresh, stats, and a crawl that refuses to start (fail closed)
when signing is configured but cannot be done."""

from __future__ import annotations

import os

import pytest
from scrapy import Request
from scrapy.downloadermiddlewares.redirect import RedirectMiddleware
from scrapy.downloadermiddlewares.retry import get_retry_request
from scrapy.exceptions import NotConfigured
from scrapy.http import Response
from scrapy.spiders import Spider
from scrapy.utils.test import get_crawler

from crawler.crawl.signing import SigningConfigError, SignRequestsMiddleware
from crawler.identity.keys import generate_key

AGENT = "https://crawler.example"


def _crawler(**settings):
    return get_crawler(Spider, settings_dict=settings)


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "id.pem"
    generate_key(path)
    return path


def _mw(key_file, clock, **extra):
    crawler = _crawler(POLITE_IDENTITY_KEY_FILE=str(key_file),
                       POLITE_IDENTITY_SIGNATURE_AGENT=AGENT, **extra)
    crawler.spider = crawler._create_spider("s")
    mw = SignRequestsMiddleware.from_crawler(crawler)
    mw.clock = clock
    return mw, crawler


def _param(request, name):
    text = request.headers[b"Signature-Input"].decode()
    return text.split(f";{name}=")[1].split(";")[0].strip('"')


def test_every_request_is_signed_and_counted(key_file):
    mw, crawler = _mw(key_file, lambda: 1_800_000_000.0)
    for url in ("https://a.example/robots.txt", "https://a.example/.well-known/tdmrep.json",
                "https://b.example/page"):
        req = Request(url)
        assert mw.process_request(req) is None
        assert req.headers[b"Signature-Agent"] == b'sig1="https://crawler.example"'
        assert req.headers[b"Signature"].startswith(b"sig1=:")
        assert _param(req, "tag") == "web-bot-auth"
        assert _param(req, "expires") == "1800000060"  # default validity: 60 s
    assert crawler.stats.get_value("polite/signed") == 3


def test_retry_and_redirect_copies_are_signed_afresh(key_file):
    now = [1_800_000_000.0]
    mw, crawler = _mw(key_file, lambda: now[0], POLITE_SIGNATURE_VALIDITY=30)
    spider = crawler.spider
    first = Request("https://a.example/flaky")
    mw.process_request(first)
    now[0] += 5
    retry = get_retry_request(first, spider=spider, reason="503")
    assert retry.headers[b"Signature"] == first.headers[b"Signature"]  # the copy's old one
    mw.process_request(retry)
    assert _param(retry, "nonce") != _param(first, "nonce")
    assert _param(retry, "created") == "1800000005" and _param(retry, "expires") == "1800000035"
    assert len(retry.headers.getlist(b"Signature")) == 1
    redirect_mw = RedirectMiddleware.from_crawler(crawler)
    response = Response("https://a.example/flaky", status=301,
                        headers={"Location": "https://c.example/moved"}, request=retry)
    hop = redirect_mw.process_response(retry, response)
    assert isinstance(hop, Request) and hop.url == "https://c.example/moved"
    mw.process_request(hop)
    assert _param(hop, "nonce") not in (_param(first, "nonce"), _param(retry, "nonce"))
    assert crawler.stats.get_value("polite/signed") == 3


def test_not_configured_without_key_or_agent(key_file):
    with pytest.raises(NotConfigured):
        SignRequestsMiddleware.from_crawler(_crawler())
    with pytest.raises(NotConfigured):
        SignRequestsMiddleware.from_crawler(_crawler(POLITE_IDENTITY_KEY_FILE=str(key_file)))


@pytest.mark.parametrize("problem", ["missing", "open-to-others", "not-a-key"])
def test_unusable_key_refuses_to_start(tmp_path, key_file, problem):
    path = key_file
    if problem == "missing":
        path = tmp_path / "nope.pem"
    elif problem == "open-to-others":
        os.chmod(key_file, 0o644)
    else:
        key_file.write_text("not a key")
    crawler = _crawler(POLITE_IDENTITY_KEY_FILE=str(path), POLITE_IDENTITY_SIGNATURE_AGENT=AGENT)
    with pytest.raises(SigningConfigError, match="identity.key_file"):
        SignRequestsMiddleware.from_crawler(crawler)


@pytest.mark.parametrize("settings", [
    {"POLITE_SIGNATURE_VALIDITY": 0}, {"POLITE_SIGNATURE_VALIDITY": 7200},
    {"POLITE_SIGNATURE_VALIDITY": "soon"},
    {"POLITE_IDENTITY_SIGNATURE_AGENT": "http://crawler.example"},
])
def test_bad_settings_refuse_to_start(key_file, settings):
    crawler = _crawler(**{"POLITE_IDENTITY_KEY_FILE": str(key_file),
                          "POLITE_IDENTITY_SIGNATURE_AGENT": AGENT, **settings})
    with pytest.raises(SigningConfigError):
        SignRequestsMiddleware.from_crawler(crawler)
