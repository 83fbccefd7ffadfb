"""Conformance table against peer robots.txt parsers: Protego and CPython's urllib.robotparser.

tests/data/peers/robots_peer_cases.json holds the peers' own test vectors with the peer's answer
and their provenance.  Every case asserts OUR answer: the peer's, or -- where we differ on purpose
-- ``ours_allowed``/``ours_value`` with a class explaining why.  The safety rule (fail closed): no
case may allow a URL the peer disallows unless RFC 9309 says so in so many words, quoted in the
case's ``rfc`` field.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from crawler.optout.robots import RobotsFile, parse_robots

DATA = Path(__file__).resolve().parent.parent / "data" / "peers" / "robots_peer_cases.json"
TABLE: dict[str, Any] = json.loads(DATA.read_text(encoding="utf-8"))
CASES: list[dict[str, Any]] = TABLE["cases"]


def _robots(case: dict[str, Any]) -> RobotsFile:
    body = TABLE["bodies"][case["body"]]
    if "robots_txt_hex" in body:
        return parse_robots(bytes.fromhex(body["robots_txt_hex"]))
    return parse_robots(body["robots_txt"].encode("utf-8"))


def _ours(case: dict[str, Any]) -> Any:
    robots = _robots(case)
    kind = case["kind"]
    if kind == "can_fetch":
        return robots.verdict(case["url"], case["agent"]).allowed
    if kind == "crawl_delay":
        return robots.crawl_delay(case["agent"])
    if kind == "request_rate":
        rate = robots.request_rate(case["agent"])
        return None if rate is None else [rate.requests, rate.seconds]
    assert kind == "sitemaps"
    return list(robots.sitemaps)


def _expected(case: dict[str, Any]) -> Any:
    if case["kind"] == "can_fetch":
        return case.get("ours_allowed", case["peer_allowed"])
    return case.get("ours_value", case["peer_value"])


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_case(case: dict[str, Any]) -> None:
    assert _ours(case) == _expected(case), case.get("class")


def test_table_shape_and_provenance() -> None:
    counts = Counter(case["peer"] for case in CASES)
    assert counts == {"protego": 329, "cpython": 219}
    assert len({case["id"] for case in CASES}) == len(CASES)
    for peer in counts:
        provenance = TABLE["provenance"][peer]
        assert provenance["repository"] and provenance["path"] and provenance["licence"]
        assert provenance["commit"] or provenance["commit_note"]
    for case in CASES:
        assert case["body"] in TABLE["bodies"]
        differs = "ours_allowed" in case or "ours_value" in case
        assert differs == ("class" in case), case["id"]
        if differs:
            assert case["class"] in TABLE["classes"], case["id"]
            ours = case.get("ours_allowed", case.get("ours_value"))
            assert ours != case.get("peer_allowed", case.get("peer_value")), case["id"]


def test_never_more_permissive_than_a_peer_without_rfc_words() -> None:
    """Every "we allow, the peer disallows" row must quote RFC 9309 (field ``rfc``)."""
    unjustified = [
        case["id"]
        for case in CASES
        if case["kind"] == "can_fetch"
        and case["peer_allowed"] is False
        and case.get("ours_allowed", False) is True
        and "RFC 9309 §" not in case.get("rfc", "")
    ]
    assert unjustified == []


def test_agreement_summary() -> None:
    """Most of the table agrees; the differences are the documented classes only."""
    classes = Counter(case.get("class", "agree") for case in CASES)
    assert classes["agree"] == 463
    permissive = {
        case["class"]
        for case in CASES
        if case["kind"] == "can_fetch" and case.get("ours_allowed") is True
    }
    assert permissive == {
        "product-token", "reserved-escape", "anchor", "pattern-not-path", "fragment"
    }
