"""The middleware's per-request state (crawler.crawl.state) and the Crawl-delay clamp."""

from __future__ import annotations

import math
import pickle

import pytest
from scrapy import Request, Spider
from scrapy.utils.request import request_from_dict

from crawler.crawl.state import META_STATE, RequestState, reset, state_of, update
from crawler.policy.pacing import clamp_crawl_delay


class _Spider(Spider):
    name = "state"

    def parse(self, response):
        return []


def _stateful(spider: Spider) -> Request:
    request = Request("https://a.example/x", callback=spider.parse)
    update(request, origin="https://a.example", checks=[{"signal": "robots"}], attempt=2,
           payment={"origin": "https://a.example", "header": "crawler-max-price"},
           kind="html", collect=True, send_url="https://a.example/x")
    return request


def test_a_request_without_state_reads_the_defaults_and_stores_nothing():
    request = Request("https://a.example/")
    assert state_of(request) == RequestState()
    assert state_of(request).checks is None and META_STATE not in request.meta
    reset(request, "checks")
    assert META_STATE not in request.meta


def test_a_copied_request_never_shares_a_change():
    spider = _Spider()
    request = _stateful(spider)
    copy = request.replace(url="https://a.example/y")
    update(copy, denied="refused", checks=[])
    reset(copy, "payment")
    assert state_of(request).denied is None and state_of(request).checks == [{"signal": "robots"}]
    assert state_of(request).payment is not None
    assert state_of(copy).denied == "refused" and state_of(copy).payment is None


def test_the_state_survives_pickled_queues():
    """Scrapy's disk queues and the cluster's Redis queue and spool pickle request.to_dict()."""
    spider = _Spider()
    request = _stateful(spider)
    again = request_from_dict(pickle.loads(pickle.dumps(request.to_dict(spider=spider))),
                              spider=spider)
    assert state_of(again) == state_of(request)
    picklecompat = pytest.importorskip("scrapy_redis.picklecompat")
    again = request_from_dict(picklecompat.loads(picklecompat.dumps(
        request.to_dict(spider=spider))), spider=spider)
    assert state_of(again) == state_of(request)


@pytest.mark.parametrize(("wanted", "base", "cap", "expected"), [
    (None, 0.0, 60.0, None),          # the site asks for nothing
    (1.0, 2.0, 60.0, None),           # no more than the delay that applies anyway
    (2.0, 2.0, 60.0, None),
    (5.0, 0.0, 60.0, 5.0),
    (500.0, 0.0, 60.0, 60.0),         # capped
    (5.0, 0.0, 0.0, 0.0),
    (5.0, 0.0, math.nan, 5.0),        # a cap that is not a finite number >= 0 caps nothing
    (5.0, 0.0, math.inf, 5.0),
    (5.0, 0.0, -1.0, 5.0),
])
def test_the_crawl_delay_clamp(wanted, base, cap, expected):
    assert clamp_crawl_delay(wanted, base, cap) == expected
