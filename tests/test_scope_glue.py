"""The pure pieces of the scope and sitemap glue: the page counts a resumed run starts from,
``lastmod`` against a stored copy, the ``POLITE_SITEMAPS`` setting, releasing a count."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawler.audit.log import AuditWriter
from crawler.corpus.sitemaps import SitemapLimits, lastmod_not_after, sitemap_limits
from crawler.crawl.resume import sent_pages_per_origin
from crawler.policy.scope import Scope, scope_config

P = "0" * 64


def test_sent_pages_per_origin_counts_pages_only(tmp_path: Path) -> None:
    times = iter(f"2026-01-01T00:00:0{i}.000000Z" for i in range(10))
    log = tmp_path / "audit.jsonl"
    w = AuditWriter(log, job="t", clock=lambda: next(times))

    def send(url: str, **extra: object) -> None:
        w.write(url=url, decision="send", reasons=[], policy_sha256=P,
                extra={"stage": "send", **extra})

    send("https://a.example/1")                                   # 00: before the pass
    send("https://a.example/robots.txt", preflight="robots.txt")  # 01: a per-origin file
    send("https://a.example/2")                                   # 02: counted
    send("https://a.example/sitemap.xml", sitemap=True)           # 03: a sitemap
    send("https://a.example/3")                                   # 04: counted
    send("https://a.example/3b", follows=4, via="redirect")       # 05: the same page
    send("https://B.example:443/x")                               # 06: counted
    w.write(url="https://a.example/4", decision="result", reasons=[], policy_sha256=P,
            extra={"result": "failed"})                           # 07: not a send
    w.close()
    assert sent_pages_per_origin(log, "2026-01-01T00:00:01.000000Z") == {
        "https://a.example": 2, "https://b.example": 1}
    assert sent_pages_per_origin(log)["https://a.example"] == 3
    assert sent_pages_per_origin(tmp_path / "none.jsonl") == {}


def test_a_released_count_frees_its_place() -> None:
    scope = Scope(scope_config({"max_pages_per_origin": 1}))
    assert scope.decide("https://a.example/1")[0]
    scope.count("https://a.example/1")
    assert scope.decide("https://a.example/2") == (
        False, "origin https://a.example reached max_pages_per_origin (1)")
    scope.release("https://a.example/1")
    assert scope.decide("https://a.example/2")[0] and scope.counts == {}


@pytest.mark.parametrize("lastmod, fetched, skip", [
    ("2024-05-01", "2024-05-02T00:00:00.000000Z", True),
    ("2024-05-01", "2024-05-01T23:59:59.999999Z", False),  # the date reaches to its end
    ("2024-05", "2024-06-01T00:00:00.000000Z", True),
    ("2024", "2024-12-31T12:00:00.000000Z", False),
    ("2024-05-01T09:00:00+02:00", "2024-05-01T07:00:01.000000Z", True),
    ("2024-05-01T09:00:00+02:00", "2024-05-01T07:00:00.500000Z", False),
    ("2024-05-01T07:00Z", "2024-05-01T07:00:30.000000Z", False),  # the minute is not over
    ("2024-05-01T07:00:00.25Z", "2024-05-01T07:00:00.250000Z", True),
    ("2024-02-30", "2025-01-01T00:00:00.000000Z", False),  # not a date: fetched
    ("yesterday", "2025-01-01T00:00:00.000000Z", False),
    ("2024-05-01", None, False),
    (None, "2025-01-01T00:00:00.000000Z", False),
])
def test_lastmod_not_after(lastmod: str | None, fetched: str | None, skip: bool) -> None:
    assert lastmod_not_after(lastmod, fetched) is skip


def test_sitemaps_setting() -> None:
    assert sitemap_limits(None) is None and sitemap_limits(False) is None
    assert sitemap_limits("off") is None
    assert sitemap_limits(True) == sitemap_limits("true") == sitemap_limits({}) \
        == SitemapLimits()
    assert sitemap_limits({"max_depth": 1}).max_depth == 1
    assert sitemap_limits({"max_files_per_origin": 7}).max_files == 7  # the config's names
    assert sitemap_limits('{"max_urls": 9}').max_urls == 9              # -s JSON
    for bad, key in (("maybe", "POLITE_SITEMAPS"), ({"max_depth": 11}, "max_depth"),
                     ({"colour": 1}, "colour"), ({"max_file_urls": 50_001}, "max_file_urls")):
        with pytest.raises(ValueError, match=key):
            sitemap_limits(bad)


def test_reports_count_sitemap_fetches_apart_from_documents() -> None:
    from crawler.publish.tallies import AuditTally

    tally = AuditTally()
    tally.add({"decision": "allow", "url": "https://a.example/sitemap.xml", "sitemap": True,
               "time": "2026-01-01T00:00:00.000000Z", "reasons": []})
    tally.add({"decision": "deny", "url": "https://a.example/p", "time":
               "2026-01-01T00:00:01.000000Z", "reasons": [{"signal": "scope"}]})
    assert tally.preflight == {"sitemap allow": 1}
    assert tally.records == {"deny": 1} and tally.refusal_records == {"scope": 1}


def test_an_undecided_sitemap_is_not_asked_for_again_as_a_page(tmp_path: Path) -> None:
    from crawler.crawl.resume import undecided_urls

    log = tmp_path / "audit.jsonl"
    w = AuditWriter(log, job="t")
    reason = [{"signal": "network", "channel": "robots.txt", "outcome": "deny"}]
    for url, extra in (("https://a.example/sitemap.xml", {"sitemap": True}),
                       ("https://a.example/page", {})):
        w.write(url=url, decision="deny", reasons=reason, policy_sha256=P,
                extra={"stage": "request", "undecided": {"attempt": 3, "final": True},
                       **extra})
    w.close()
    assert undecided_urls(log) == ["https://a.example/page"]
