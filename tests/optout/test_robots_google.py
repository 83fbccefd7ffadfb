"""Conformance against the test vectors of Google's reference robots.txt parser.

Every `rfc9309` case must pass. `google_specific` cases run too: those we deviate from on
purpose are listed in DEVIATIONS and must fail (xfail strict), every other one must pass.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crawler.optout.robots import is_valid_product_token, parse_robots

DATA = Path(__file__).resolve().parent.parent / "data" / "google_robotstxt_cases.json"
GOOGLE: dict[str, Any] = json.loads(DATA.read_text(encoding="utf-8"))
CASES: list[dict[str, Any]] = GOOGLE["cases"]

DEVIATIONS: dict[str, str] = {
    "google-079": (
        "Google's 'Allow: /x/index.html also allows /x/' quirk is not implemented: it only widens"
        " access, and RFC 9309 has no such rule"
    ),
}


def _params(scope: str) -> list[Any]:
    params = []
    for case in CASES:
        if case["scope"] != scope:
            continue
        marks = []
        if case["id"] in DEVIATIONS:
            marks.append(pytest.mark.xfail(strict=True, reason=DEVIATIONS[case["id"]]))
        params.append(pytest.param(case, id=case["id"], marks=marks))
    return params


def _allowed(case: dict[str, Any]) -> bool:
    robots = parse_robots(case["robots_txt"].encode("utf-8"))
    return robots.verdict(case["url"], case["user_agent"]).allowed


def test_case_counts() -> None:
    assert len(CASES) == GOOGLE["counts"]["cases"] == 145
    assert sum(case["scope"] == "rfc9309" for case in CASES) == 72
    assert all(case["id"] in {c["id"] for c in CASES} for case in CASES)
    assert set(DEVIATIONS) <= {c["id"] for c in CASES if c["scope"] == "google_specific"}


@pytest.mark.parametrize("case", _params("rfc9309"))
def test_rfc9309_case(case: dict[str, Any]) -> None:
    assert _allowed(case) is case["expected_allowed"], case.get("comment")


@pytest.mark.parametrize("case", _params("google_specific"))
def test_google_specific_case(case: dict[str, Any]) -> None:
    assert _allowed(case) is case["expected_allowed"], case.get("comment")


@pytest.mark.parametrize(
    "case",
    GOOGLE["is_valid_user_agent_to_obey"],
    ids=lambda c: repr(c["user_agent"]),
)
def test_is_valid_user_agent_to_obey(case: dict[str, Any]) -> None:
    assert is_valid_product_token(case["user_agent"]) is case["expected_valid"]


@pytest.mark.parametrize("case", GOOGLE["sitemap"], ids=["after-groups", "before-groups"])
def test_sitemap(case: dict[str, Any]) -> None:
    robots = parse_robots(case["robots_txt"].encode("utf-8"))
    assert list(robots.sitemaps) == case["expected_sitemaps"]
    assert [line.key for line in robots.global_lines] == ["sitemap"]


@pytest.mark.parametrize("case", GOOGLE["parse_stats"], ids=lambda c: c["name"])
def test_parse_stats_line_endings_and_bom(case: dict[str, Any]) -> None:
    """Line endings (LF, CRLF, CR, mixed, no final newline) and (partial) byte order marks."""
    robots = parse_robots(bytes.fromhex(case["robots_txt_hex"]))
    rules = [rule for group in robots.groups for rule in group.rules]
    agents = [group.agents for group in robots.groups]
    expected = case["expected"]
    if "last_line_seen" in expected:
        # Four valid directives: two groups, foo (Allow /some/path) and bar (Disallow /).
        assert agents == [("foo",), ("bar",)]
        assert [(r.kind, r.pattern.raw, r.line) for r in rules] == [
            ("allow", "/some/path", 2),
            ("disallow", "/", 6),
        ]
        assert robots.verdict("/x", "bar").allowed is False
        assert robots.verdict("/some/path", "foo").allowed is True
    elif expected["valid_directives"] == 2:
        assert agents == [("foo",)]
        assert [r.text for r in rules] == ["Allow: /AnyValue"]
    else:
        # One directive valid, one unknown: a broken BOM spoils the first line (so the Allow
        # line has no group), a BOM in the middle of the file spoils the line it starts.
        assert rules == []
        assert agents in ([], [("foo",)])
        assert any("not a 'key: value' line" in p for p in robots.problems)


def _line_report_case(name: str) -> dict[str, Any]:
    return next(c for c in GOOGLE["line_reports"]["cases"] if c["name"] == name)


def test_line_reports_simple_file() -> None:
    """Google's reporting test: typos accepted, missing colon accepted, junk reported."""
    case = _line_report_case("kSimpleFile")
    robots = parse_robots(case["robots_txt"].encode("utf-8"))
    assert [g.agents for g in robots.groups] == [("foo",), ("bar",), ("baz",)]
    assert [(r.text, r.line) for g in robots.groups for r in g.rules] == [
        ("Allow: /some/path", 2),
        ("Disallow: /", 9),
        ("Disallow: /some", 12),
    ]
    assert robots.sitemaps == ("https://e/s.xml", "https://e/t.xml")
    assert [(x.key, x.value, x.line) for x in robots.groups[1].extensions] == [
        ("unicorns", "/extinct", 7),
        ("noarchive", "/some", 8),
    ]
    assert [(x.key, x.value, x.line) for x in robots.groups[2].extensions] == [
        ("noarchive", "/someCapital", 15),
    ]
    problems = "\n".join(robots.problems)
    assert "line 4: not a 'key: value' line" in problems
    assert "line 7: unknown directive 'unicorns'" in problems
    assert "line 10: not a 'key: value' line" in problems
    assert "line 11: 'useragent' read as 'user-agent'" in problems
    assert "line 12: 'disallaw' read as 'disallow'" in problems
    assert "line 13: 'site-map' read as 'sitemap'" in problems
    # Valid directives per Google: 8 (3 user-agent, 3 rules, 2 sitemaps).
    valid = sum(len(g.agent_lines) + len(g.rules) for g in robots.groups) + len(robots.sitemaps)
    assert valid == case["expected_valid_directives"]


def test_line_reports_line_too_long() -> None:
    case = _line_report_case("LinesTooLongReportedCorrectly")
    robots = parse_robots(case["robots_txt"].encode("utf-8"))
    (group,) = robots.groups
    assert [r.kind for r in group.rules] == ["disallow", "allow"]
    assert len(group.rules[0].text.encode()) == 2083 * 8 - 1
    assert any(p.startswith("line 2: longer than 16663 bytes") for p in robots.problems)


@pytest.mark.parametrize("name", ["kDosFile", "kMacFile"])
def test_line_reports_line_endings(name: str) -> None:
    case = _line_report_case(name)
    robots = parse_robots(case["robots_txt"].encode("utf-8"))
    directives = sum(len(g.agent_lines) + len(g.rules) for g in robots.groups)
    assert directives == case["expected_valid_directives"]
    assert robots.groups[1].rules[0].line == 6
