"""The Scrapy glue with a real crawler and real Settings: an error while deciding refuses."""

from __future__ import annotations

import asyncio
import json

import pytest
from scrapy import Request, Spider
from scrapy.exceptions import IgnoreRequest, StopDownload
from scrapy.http import Headers, HtmlResponse
from scrapy.utils.test import get_crawler

from crawler.middlewares import META_CHECKS, ReservationMiddleware
from crawler.policy import Policy


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
    request = Request("https://example.org/a", meta={META_CHECKS: []})
    with pytest.raises(StopDownload):
        mw.headers_received(Headers({"Content-Type": "text/html"}), 10, request)
    (rec,) = records(out)
    assert rec["decision"] == "deny" and rec["reasons"][0]["channel"] == "internal-error"
    assert "parser bug" in rec["reasons"][0]["rule"]
    with pytest.raises(IgnoreRequest):
        mw.process_exception(request, StopDownload(fail=True))


def test_error_at_the_response_refuses(middleware):
    mw, out = middleware
    request = Request("https://example.org/b", meta={META_CHECKS: []})
    response = HtmlResponse(request.url, body=b"<html></html>", request=request)
    with pytest.raises(IgnoreRequest):
        asyncio.run(mw.process_response(request, response))
    (rec,) = records(out)
    assert rec["decision"] == "deny" and rec["stage"] == "response"


def test_a_page_request_cannot_pose_as_a_preflight_fetch(tmp_path):
    """Only our own per-origin fetches (no callback) skip the checks; a spider request that
    carries the meta key is judged like any other."""
    from scrapy.http.request import NO_CALLBACK

    from crawler.middlewares import is_preflight
    from crawler.sitecache import PREFLIGHT_META

    def cb(response):
        return None

    assert is_preflight(Request("https://e.org/robots.txt", callback=NO_CALLBACK,
                                meta={PREFLIGHT_META: "robots.txt"}))
    assert not is_preflight(Request("https://e.org/page", callback=cb,
                                    meta={PREFLIGHT_META: "robots.txt"}))
    assert not is_preflight(Request("https://e.org/page", meta={PREFLIGHT_META: "x"}))
