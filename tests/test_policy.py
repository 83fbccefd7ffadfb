"""The signal x purpose table and the failure policy, as vector tables (sans-IO)."""

from __future__ import annotations

import pytest

from crawler.optout.model import Statement
from crawler.policy import (
    IMAGE_ONLY_TERMS,
    PURPOSES,
    TERM_PURPOSES,
    Policy,
    purpose_table_markdown,
    site_file,
)

EXPECTED = {
    # (signal, term): purposes a "no" binds (the README prints this table)
    ("content-signal", "ai-train"): {"train-ai", "train-genai"},
    ("content-signal", "search"): {"search"},
    ("content-signal", "ai-input"): {"ai-input"},
    ("content-usage", "train-ai"): {"train-ai", "train-genai"},
    ("content-usage", "search"): {"search"},
    ("noai", "noai"): {"train-ai", "train-genai", "ai-input"},
    ("noai", "noml"): {"train-ai", "train-genai"},
    ("ai-txt", "ai-train"): {"train-ai", "train-genai"},
    ("rsl", "ai-train"): {"train-ai", "train-genai"},
    ("rsl", "ai-input"): {"ai-input"},
    ("rsl", "search"): {"search"},
    ("tdmrep", "tdm-reservation"): set(PURPOSES),
    ("payment-required", "402"): set(PURPOSES),
}


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_table_rows(key):
    assert set(TERM_PURPOSES[key]) == EXPECTED[key]


@pytest.mark.parametrize("purpose", PURPOSES)
@pytest.mark.parametrize("key", sorted(k for k in TERM_PURPOSES if k[0] not in
                                       ("robots", "tdmrep")))
def test_judge_follows_the_table(key, purpose):
    signal, term = key
    policy = Policy(token="TestBot", user_agent="TestBot/1 (+https://x.org)", purpose=purpose)
    ctype = "image/png" if key in IMAGE_ONLY_TERMS else "text/html"
    ev = policy.judge(Statement(signal, "header", ((term, False),), rule=f"{term}=no"),
                      content_type=ctype)
    assert (ev.outcome == "deny") == (purpose in TERM_PURPOSES[key])
    yes = policy.judge(Statement(signal, "header", ((term, True),), rule=f"{term}=yes"),
                       content_type=ctype)
    assert yes.outcome in ("allow", "unset")


def test_most_restrictive_wins_and_every_binding_statement_is_listed():
    policy = Policy(token="TestBot", user_agent="TestBot/1 (+https://x.org)")
    ev = policy.judge(Statement("content-signal", "robots.txt",
                                (("search", True), ("ai-train", False)), rule="r"))
    assert ev.outcome == "deny" and "ai-train" in ev.detail
    ev = policy.judge(Statement("content-usage", "header", (("train-ai", True),), rule="r"))
    assert ev.outcome == "allow"


def test_noimageai_binds_images_only():
    policy = Policy(token="TestBot", user_agent="TestBot/1 (+https://x.org)")
    stmt = Statement("noai", "header", (("noimageai", False),), rule="X-Robots-Tag: noimageai")
    assert policy.judge(stmt, content_type="image/jpeg").outcome == "deny"
    assert policy.judge(stmt, content_type="text/html").outcome == "unset"


def test_policy_hash_changes_with_what_it_honours():
    a = Policy(token="T", user_agent="T/1 (+https://x.org)")
    b = Policy(token="T", user_agent="T/1 (+https://x.org)", signals=("robots",))
    c = Policy(token="T", user_agent="T/1 (+https://x.org)", purpose="search")
    assert len({a.sha256, b.sha256, c.sha256}) == 3


def test_needed_files_follow_the_signals():
    p = Policy(token="T", user_agent="T/1 (+https://x.org)")
    assert p.needed_files() == ("robots.txt", "tdmrep.json", "ai.txt")
    p = Policy(token="T", user_agent="T/1 (+https://x.org)", signals=("tdmrep",))
    assert p.needed_files() == ("tdmrep.json",)


@pytest.mark.parametrize(
    "kind, status, body, outcome",
    [
        ("robots.txt", 200, b"User-agent: *\nDisallow: /", "parsed"),
        ("robots.txt", 404, b"", "unavailable"),
        ("robots.txt", 401, b"", "unavailable"),
        ("robots.txt", 429, b"", "unreachable"),
        ("robots.txt", 503, b"<html>error</html>", "unreachable"),
        ("robots.txt", None, b"", "unreachable"),
        ("tdmrep.json", 200, b'[{"location": "/", "tdm-reservation": 1}]', "parsed"),
        ("tdmrep.json", 200, b"<html>soft 404</html>", "unavailable"),
        ("tdmrep.json", 404, b"", "unavailable"),
        ("tdmrep.json", 500, b"", "unreachable"),
        ("ai.txt", 200, b"User-Agent: *\nDisallow: /", "parsed"),
        ("ai.txt", 200, b"# About our AI policy\n\nWe like robots.", "unavailable"),
        ("ai.txt", 503, b"", "unreachable"),
        ("rsl", 200, b'<rsl xmlns="https://rslstandard.org/rsl"><content url="/"/></rsl>',
         "parsed"),
        ("rsl", 200, b"<!DOCTYPE x [<!ENTITY a 'b'>]><rsl/>", "unavailable"),
        ("rsl", 404, b"", "unavailable"),
        ("rsl", None, b"", "unreachable"),
    ],
)
def test_failure_policy(kind, status, body, outcome):
    f = site_file(kind, "https://example.org/f", status=status, body=body,
                  error=None if status else "TimeoutError")
    assert f.outcome == outcome
    assert (f.sha256 is None) == (status is None)


def test_unreadable_licence_licenses_no_ai_use():
    p = Policy(token="T", user_agent="T/1 (+https://x.org)")
    lic = site_file("rsl", "https://example.org/l.xml", status=404)
    robots = site_file("robots.txt", "https://example.org/robots.txt", status=404)
    v = p.before_fetch("https://example.org/a", {"robots.txt": robots},
                       {"https://example.org/l.xml": lic})
    assert v.denied and v.reasons[0].signal == "rsl"
    v = Policy(token="T", user_agent="T/1 (+https://x.org)", purpose="search").before_fetch(
        "https://example.org/a", {"robots.txt": robots}, {"https://example.org/l.xml": lic})
    assert not v.denied


def test_purpose_table_markdown_has_a_row_per_term():
    md = purpose_table_markdown()
    assert md.count("\n") == len(TERM_PURPOSES) + 1
