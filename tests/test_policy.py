"""The signal x purpose table and the failure policy, as vector tables (sans-IO)."""

from __future__ import annotations

import pytest

from crawler.optout.model import Statement
from crawler.policy.reservation import (
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


# -- every limit and decoder fails closed (site_file is where the failure policy lives) ------

_P = Policy(token="T", user_agent="T/1 (+https://x.org)")
_R = "https://example.org/robots.txt"


def _robots_allows(f, path):
    return not _P.before_fetch("https://example.org" + path, {"robots.txt": f}).denied


def test_robots_cut_past_the_parse_limit_drops_the_line_the_cut_went_through():
    head = b"User-agent: *\nDisallow: /\n"
    pad = b"#" * (600_000 - len(head)) + b"\n"
    f = site_file("robots.txt", _R, status=200, body=head + pad + b"Allow: /", complete=False)
    assert f.outcome == "parsed" and not _robots_allows(f, "/public/page.html")
    # complete, the same bytes are a file whose rules after 512,000 bytes are ignored anyway
    assert not _robots_allows(site_file("robots.txt", _R, status=200, body=head + pad +
                                        b"Allow: /\n"), "/x")


def test_robots_cut_before_the_rfc_minimum_is_undetermined():
    f = site_file("robots.txt", _R, status=200, body=b"User-agent: *\nDisallow: /\nAllow: /",
                  complete=False)
    assert f.outcome == "unreachable" and "RFC 9309 2.5" in f.status_text
    v = _P.before_fetch("https://example.org/x", {"robots.txt": f})
    assert v.denied and v.undetermined


@pytest.mark.parametrize("kind", ["tdmrep.json", "ai.txt", "rsl"])
def test_cut_json_xml_and_ai_txt_are_undetermined(kind):
    body = {"tdmrep.json": b'[{"location": "/", "tdm-reservation": 0}, ',
            "ai.txt": b"User-Agent: *\nDisallow: /a\n",
            "rsl": b'<rsl xmlns="https://rslstandard.org/rsl"><content url="/">'}[kind]
    f = site_file(kind, "https://example.org/f", status=200, body=body, complete=False)
    assert f.outcome == "unreachable" and "cut" in f.status_text


@pytest.mark.parametrize("kind", ["tdmrep.json", "rsl"])
def test_over_the_reader_limit_is_undetermined_not_absent(kind):
    body = b'[{"location": "/", "tdm-reservation": 1}' + b" " * (1 << 20) + b"]"
    if kind == "rsl":
        body = (b'<rsl xmlns="https://rslstandard.org/rsl"><content url="/"/>'
                + b" " * (1 << 20) + b"</rsl>")
    f = site_file(kind, "https://example.org/f", status=200, body=body)
    assert f.outcome == "unreachable" and "limit" in f.status_text


@pytest.mark.parametrize("kind", ["robots.txt", "tdmrep.json", "ai.txt", "rsl"])
def test_undecodable_2xx_is_unreachable_with_its_status_and_cause(kind):
    f = site_file(kind, "https://example.org/f", status=200, body=b"\x1f\x8b garbage",
                  error="corrupt gzip stream (invalid block type)")
    assert f.outcome == "unreachable" and f.status == 200
    assert f.status_text == "HTTP 200: corrupt gzip stream (invalid block type)"


@pytest.mark.parametrize("codec", ["utf-16", "utf-32"])
def test_bom_encoded_files_are_read(codec):
    robots = site_file("robots.txt", _R, status=200,
                       body="User-agent: *\nDisallow: /\n".encode(codec))
    assert robots.outcome == "parsed" and not _robots_allows(robots, "/x")
    assert any("byte order mark" in p for p in robots.problems)
    ev = _P.before_fetch("https://example.org/x", {"robots.txt": robots}).reasons[0]
    assert any("byte order mark" in p for p in ev.problems)  # the evidence says so
    tdm = site_file("tdmrep.json", "https://example.org/t", status=200,
                    body='[{"location": "/", "tdm-reservation": 1}]'.encode(codec))
    assert tdm.outcome == "parsed"
    assert _P.before_fetch("https://example.org/x", {"tdmrep.json": tdm}).denied


def test_ai_txt_rules_after_the_robots_parse_limit_are_read():
    body = b"User-Agent: *\n" + b"# x\n" * 150_000 + b"Disallow: /\n"
    f = site_file("ai.txt", "https://example.org/ai.txt", status=200, body=body)
    assert f.outcome == "parsed"
    assert _P.before_fetch("https://example.org/x", {"ai.txt": f}).denied
