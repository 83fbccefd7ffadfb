"""The add-on in a foreign project: item provenance, the opt-in corpus pipeline, the output
directory's placeholders, the private-networks hint (glue tests with a real crawler)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import datetime, timedelta, timezone

import attr
import pytest
import scrapy
from scrapy.http import HtmlResponse, Request
from scrapy.utils.test import get_crawler

from crawler.crawl.addon import CORPUS, PROVENANCE
from crawler.crawl.meta import META_AUDIT
from crawler.crawl.provenance import FIELDS, ItemProvenanceMiddleware, attach, item_sha256
from crawler.crawl.runtime import expand_output_dir, get_runtime

UA = "GlueBot/1.0 (+https://example.org/bot)"
START = datetime(2026, 12, 2, 8, 19, 34, 123456, tzinfo=timezone.utc)


class Declared(scrapy.Item):
    url = scrapy.Field()
    polite_audit_seq = scrapy.Field()
    polite_audit_hash = scrapy.Field()
    polite_policy_sha256 = scrapy.Field()


class Partial(scrapy.Item):
    url = scrapy.Field()
    polite_audit_seq = scrapy.Field()


class Plain(scrapy.Item):
    url = scrapy.Field()


@dataclasses.dataclass
class DataItem:
    url: str
    polite_audit_seq: int | None = None
    polite_audit_hash: str | None = None
    polite_policy_sha256: str | None = None


@dataclasses.dataclass(frozen=True)
class Frozen:
    url: str
    polite_audit_seq: int | None = None
    polite_audit_hash: str | None = None
    polite_policy_sha256: str | None = None


@attr.s(auto_attribs=True)
class AttrsItem:
    url: str
    polite_audit_seq: int | None = None
    polite_audit_hash: str | None = None
    polite_policy_sha256: str | None = None


class Named(scrapy.Spider):
    name = "named"


def _crawler(tmp_path, spidercls=Named, **settings):
    crawler = get_crawler(spidercls, {"ADDONS": {"crawler.addon.Addon": 100},
                                      "POLITE_USER_AGENT": UA,
                                      "POLITE_OUTPUT_DIR": str(tmp_path / "out"), **settings})
    return crawler  # get_crawler applied the settings: the add-on's components are built


def _response(url="https://example.org/a", audit=True):
    request = Request(url)
    if audit:
        request.meta[META_AUDIT] = {"seq": 7, "hash": "h" * 64, "url": url}
    return HtmlResponse(url, body=b"<html></html>", request=request)


# -- the output directory -------------------------------------------------------------------

def test_output_dir_placeholders_are_feeds_uri_placeholders():
    from scrapy.extensions.feedexport import FeedExporter

    got = expand_output_dir("out/%(name)s/%(time)s/a%20b%", name="shop", start=START)
    # %(time)s as Scrapy's FEEDS write it (their code, the same instant)
    exporter = FeedExporter.__new__(FeedExporter)

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return START

    import scrapy.extensions.feedexport as fe

    real, fe.datetime = fe.datetime, Frozen
    try:
        feeds_time = exporter._get_uri_params(Named(), None)["time"]
    finally:
        fe.datetime = real
    assert feeds_time == "2026-12-02T08-19-34+00-00"
    assert str(got) == f"out/shop/{feeds_time}/a%20b%"
    other_zone = START.astimezone(timezone(timedelta(hours=5)))
    assert expand_output_dir("%(time)s", name=None, start=other_zone) == expand_output_dir(
        "%(time)s", name=None, start=START)


@pytest.mark.parametrize("template, message", [
    ("out/%(job)s", "unknown placeholder '%(job)s'"),
    ("out/%(name)d", "unknown placeholder '%(name)d'"),
    ("out/%(name)", "unknown placeholder '%(name)'"),
    ("out/%()s", "unknown placeholder '%()s'"),
])
def test_an_unknown_placeholder_is_a_settings_error_before_anything_is_opened(
        tmp_path, template, message):
    with pytest.raises(ValueError) as exc:
        _crawler(tmp_path, POLITE_OUTPUT_DIR=str(tmp_path / template))
    text = str(exc.value)
    assert text.startswith("POLITE_OUTPUT_DIR: ") and message in text and "\n" not in text
    assert "%(name)s, %(time)s" in text
    assert list(tmp_path.iterdir()) == []  # no directory, no lock, no log


def test_the_runtime_writes_everything_to_the_expanded_directory(tmp_path):
    crawler = _crawler(tmp_path, POLITE_OUTPUT_DIR=str(tmp_path / "%(name)s" / "%(time)s"))
    rt = get_runtime(crawler)
    try:
        assert rt.output_dir.parent == tmp_path / "named"
        assert "%" not in str(rt.output_dir) and rt.output_dir.is_dir()
        assert rt.writer.path.parent == rt.output_dir
        assert (rt.output_dir / "audit.jsonl.lock").exists()
        rt._opened(None)
        assert json.loads((rt.output_dir / "run.json").read_text())["policy_sha256"]
    finally:
        rt._closed(None, "finished")
    assert [p.name for p in tmp_path.iterdir()] == ["named"]


# -- the corpus pipeline runs only when asked -----------------------------------------------

def test_the_addon_keeps_the_corpus_pipeline_off_unless_asked(tmp_path):
    crawler = _crawler(tmp_path / "a")
    assert CORPUS not in crawler.settings.getdict("ITEM_PIPELINES")
    assert crawler.settings.getdict("SPIDER_MIDDLEWARES")[PROVENANCE] == 990
    get_runtime(crawler).writer.close()
    crawler = _crawler(tmp_path / "b", POLITE_CORPUS_ENABLED=True)
    assert crawler.settings.getdict("ITEM_PIPELINES")[CORPUS] == 800
    get_runtime(crawler).writer.close()


@pytest.mark.parametrize("config_settings, corpus, provenance", [
    ({}, True, False),
    ({"POLITE_CORPUS_ENABLED": False, "POLITE_ITEM_PROVENANCE": True}, False, True),
])
def test_the_corpus_spider_asks_for_its_pipeline(tmp_path, config_settings, corpus,
                                                 provenance):
    import yaml

    from crawler.spiders.corpus import CorpusSpider

    cfg = tmp_path / "job.yaml"
    cfg.write_text(yaml.safe_dump({"job": "j", "user_agent": UA, "seeds": [],
                                   "output_dir": str(tmp_path / "out"),
                                   "settings": config_settings}))
    from scrapy.crawler import Crawler
    from scrapy.utils.test import get_reactor_settings

    # get_crawler's settings, not yet frozen: the spider sets its own
    crawler = Crawler(CorpusSpider, {"TELNETCONSOLE_ENABLED": False, **get_reactor_settings()})
    crawler.spider = crawler._create_spider(config=str(cfg))
    crawler._apply_settings()
    assert (CORPUS in crawler.settings.getdict("ITEM_PIPELINES")) is corpus
    assert crawler.settings.getbool("POLITE_ITEM_PROVENANCE") is provenance
    get_runtime(crawler).writer.close()


def test_a_job_config_output_dir_takes_no_placeholders(tmp_path):
    from crawler.config.job import ConfigError, load_config

    cfg = tmp_path / "job.yaml"
    cfg.write_text(f"job: j\nuser_agent: '{UA}'\noutput_dir: out/%(name)s\n")
    with pytest.raises(ConfigError, match=r"^output_dir: "):
        load_config(cfg)


# -- item provenance ------------------------------------------------------------------------

def test_attach_where_the_item_type_takes_the_fields():
    fields = {"polite_audit_seq": 3, "polite_audit_hash": "x", "polite_policy_sha256": "p"}
    d = {"url": "u"}
    assert attach(d, fields) and d == {"url": "u", **fields}
    for cls in (Declared, DataItem, AttrsItem):
        item = cls(url="u")
        assert attach(item, fields), cls
        assert [getattr(item, k, None) or item[k] for k in FIELDS] == [3, "x", "p"]
    partial = Partial(url="u")
    assert not attach(partial, fields) and dict(partial) == {"url": "u", "polite_audit_seq": 3}
    assert not attach(Plain(url="u"), fields)
    frozen = Frozen(url="u")
    assert not attach(frozen, fields) and frozen.polite_audit_seq is None
    assert not attach(object(), fields)


def test_item_digest_is_stable_and_survives_a_json_feed():
    item = Plain(url="https://example.org/é")
    digest = item_sha256(item)
    assert digest == item_sha256({"url": "https://example.org/é"}) == item_sha256(
        json.loads(json.dumps(dict(item))))
    assert digest != item_sha256(Plain(url="https://example.org/e"))
    assert item_sha256(object()) is None
    assert item_sha256({1: "a", "b": 2}) is None  # keys JSON cannot sort
    assert len(item_sha256({"b": b"\x00", "t": datetime(2026, 1, 1)})) == 64


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_middleware_attaches_or_records_beside_and_drops_nothing(tmp_path, mode):
    crawler = _crawler(tmp_path)
    mw = ItemProvenanceMiddleware.from_crawler(crawler)
    rt = get_runtime(crawler)
    response = _response()
    request = Request("https://example.org/next")
    plain, frozen, other = Plain(url="p"), Frozen(url="f"), object()
    output = [{"url": "d"}, Declared(url="i"), request, plain, frozen, other]
    if mode == "sync":
        got = list(mw.process_spider_output(response, iter(output)))
    else:
        async def agen():
            for o in output:
                yield o

        async def collect():
            return [o async for o in mw.process_spider_output_async(response, agen())]

        got = asyncio.run(collect())
    assert got == output  # the same objects, in order, none dropped
    prov = {"polite_audit_seq": 7, "polite_audit_hash": "h" * 64,
            "polite_policy_sha256": rt.policy.sha256}
    assert got[0] == {"url": "d", **prov} and dict(got[1]) == {"url": "i", **prov}
    assert dict(plain) == {"url": "p"} and frozen.polite_audit_seq is None
    mw.log.close()
    lines = [json.loads(x) for x in (rt.output_dir / "provenance.jsonl").read_text().splitlines()]
    assert [x["item_class"].rsplit(".", 1)[1] for x in lines] == ["Plain", "Frozen", "object"]
    assert [x["item_sha256"] for x in lines] == [item_sha256(plain), item_sha256(frozen), None]
    assert all((x["url"], x["audit_seq"], x["audit_hash"], x["policy_sha256"]) == (
        response.url, 7, "h" * 64, rt.policy.sha256) for x in lines)
    stats = crawler.stats.get_stats()
    assert (stats["polite/provenance/attached"], stats["polite/provenance/recorded_beside"]) == (
        2, 3)
    rt.writer.close()


def test_no_allow_record_no_provenance_and_no_file(tmp_path):
    crawler = _crawler(tmp_path)
    mw = ItemProvenanceMiddleware.from_crawler(crawler)
    item = {"url": "x"}
    assert list(mw.process_spider_output(_response(audit=False), iter([item, Plain()]))) == [
        item, Plain()]
    assert item == {"url": "x"}
    assert not (get_runtime(crawler).output_dir / "provenance.jsonl").exists()
    assert crawler.stats.get_value("polite/provenance/no_decision") == 2
    get_runtime(crawler).writer.close()


def test_a_decision_copied_from_another_request_cites_nothing(tmp_path):
    # response.follow(url, meta=response.meta): the new request carries the first one's
    # record; its own response (a redirect not followed: no allow record) must not cite it
    crawler = _crawler(tmp_path)
    mw = ItemProvenanceMiddleware.from_crawler(crawler)
    first = _response("https://example.org/a")
    copied = Request("https://example.org/b", meta=dict(first.request.meta))
    response = HtmlResponse(copied.url, body=b"<html></html>", request=copied)
    item = {"url": "b"}
    assert list(mw.process_spider_output(response, iter([item]))) == [item]
    assert item == {"url": "b"}
    assert crawler.stats.get_value("polite/provenance/no_decision") == 1
    get_runtime(crawler).writer.close()


def test_the_middleware_is_off_when_asked(tmp_path):
    from scrapy.exceptions import NotConfigured

    crawler = _crawler(tmp_path, POLITE_ITEM_PROVENANCE=False)
    with pytest.raises(NotConfigured):
        ItemProvenanceMiddleware.from_crawler(crawler)
    get_runtime(crawler).writer.close()


def test_a_provenance_file_that_cannot_be_written_stops_the_crawl_items_pass(tmp_path):
    crawler = _crawler(tmp_path)
    mw = ItemProvenanceMiddleware.from_crawler(crawler)
    mw.log.path.mkdir()  # a directory where the file should be: EISDIR
    items = [Plain(url="1"), Plain(url="2")]
    assert list(mw.process_spider_output(_response(), iter(items))) == items
    assert "provenance.jsonl" in crawler.stats.get_value("polite/output/write_failed")
    assert crawler.stats.get_value("polite/provenance/recorded_beside") is None
    get_runtime(crawler).writer.close()


# -- private networks -----------------------------------------------------------------------

def test_the_private_network_refusal_names_both_spellings():
    from crawler.policy.reservation import network_refusal

    (ev,) = network_refusal("http://127.0.0.1/", "loopback address").reasons
    assert "allow_private_networks: true" in ev.detail
    assert "POLITE_ALLOW_PRIVATE_NETWORKS = True" in ev.detail
    (ev,) = network_refusal("file:///etc/passwd", "only http(s) URLs are crawled",
                            hint=False).reasons
    assert ev.detail is None


def test_the_refusal_log_line_names_both_spellings(tmp_path, caplog):
    import logging

    from crawler.policy.reservation import network_refusal

    crawler = _crawler(tmp_path)
    rt = get_runtime(crawler)
    with caplog.at_level(logging.INFO, logger="crawler.crawl.decisions"):
        rt.funnel.record("http://10.0.0.1/", network_refusal("http://10.0.0.1/", "private"),
                         checks=[], request=None)
        rt.funnel.record("file:///x", network_refusal("file:///x", "only http(s) URLs are "
                                                      "crawled", hint=False),
                         checks=[], request=None)
    rt.writer.close()
    private, scheme = [r.getMessage() for r in caplog.records if "Refused" in r.getMessage()]
    assert "allow_private_networks: true" in private
    assert "POLITE_ALLOW_PRIVATE_NETWORKS = True" in private
    assert scheme.endswith("(audit seq 2)")
