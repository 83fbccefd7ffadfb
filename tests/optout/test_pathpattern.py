"""Vector tables for robots.txt-style path patterns (crawler.optout.pathpattern)."""

from __future__ import annotations

import json
import timeit
from pathlib import Path

import pytest

from crawler.optout.pathpattern import (
    PathPattern,
    compile_pattern,
    escape_pattern,
    match_forms,
    path_query,
)
from crawler.optout.robots import parse_robots

DATA = Path(__file__).resolve().parent.parent / "data" / "google_robotstxt_cases.json"
GOOGLE = json.loads(DATA.read_text(encoding="utf-8"))

# (pattern, path_query, expected match)
MATCH_VECTORS: list[tuple[str, str, bool]] = [
    # plain prefix
    ("/", "/", True),
    ("/", "/anything?x=1", True),
    ("/fish", "/fish", True),
    ("/fish", "/fish.html", True),
    ("/fish", "/fishheads/yummy.html", True),
    ("/fish", "/Fish.asp", False),  # case-sensitive
    ("/fish", "/catfish", False),  # anchored at the start
    ("/fish", "/?id=fish", False),
    ("/fish/", "/fish", False),
    ("/fish/", "/fish/?id=anything", True),
    # '*'
    ("/fish*", "/fish", True),
    ("/fish*", "/fishheads", True),
    ("/*.php", "/filename.php", True),
    ("/*.php", "/folder/filename.php?parameters", True),
    ("/*.php", "//folder/any.php.file.html", True),
    ("/*.php", "/index?f=filename.php/", True),
    ("/*.php", "/php/", False),
    ("/*.php", "/windows.PHP", False),
    ("/fish*.php", "/fishheads/catfish.php?parameters", True),
    ("/fish*.php", "/Fish.PHP", False),
    ("/foo/*/qux", "/foo/bar/qux", True),
    ("/foo/*/qux", "/foo//qux", True),
    ("/foo/*/qux", "/foo/qux", False),
    ("/a**b", "/axxb", True),
    ("/a*b*c", "/a-b-b-c", True),
    ("/a*b*c", "/a-c-b", False),
    ("*", "/", True),
    ("*", "/x?y", True),
    ("**", "/x", True),
    # '$'
    ("/*.php$", "/filename.php", True),
    ("/*.php$", "/folder/filename.php", True),
    ("/*.php$", "/filename.php?parameters", False),
    ("/*.php$", "/filename.php/", False),
    ("/*.php$", "/filename.php5", False),
    ("/*.gif$", "/a.gif", True),
    ("/*.gif$", "/a.gif?x=1", False),
    ("/*.gif$", "/A.GIF", False),
    ("/$", "/", True),
    ("/$", "/page.html", False),
    ("/foo/bar$", "/foo/bar", True),
    ("/foo/bar$", "/foo/bar/", False),
    ("/a*$", "/abc", True),
    ("/a*c$", "/abcabc", True),
    ("/a*c$", "/abcab", False),
    ("/a$b", "/a$b", True),  # '$' not at the end is an ordinary character
    ("/a$b", "/a", False),
    ("$", "/", False),
    # patterns that do not start with '/'
    ("*.jpg", "/img/a.jpg", True),
    ("*.jpg", "/img/a.png", False),
    ("*.jpg$", "/img/a.jpg?x", False),
    ("img/", "/img/a.jpg", False),
    ("http://example.com/a", "/a", False),
    # empty pattern matches nothing
    ("", "/", False),
    ("", "", False),
    # percent-encoding: hex case normalised; matches() is True in the raw (Google) or the RFC 9309
    # reading (unreserved escapes decoded, non-ASCII encoded); reserved escapes never decoded
    ("/foo/bar%2Fbaz", "/foo/bar/baz", False),
    ("/foo/bar%2fbaz", path_query("/foo/bar%2fbaz"), True),
    ("/a%3cd.html", path_query("/a<d.html"), True),
    ("/a%3Cd.html", "/a%3Cd.html", True),
    ("/foo/bar/%62%61%7A", "/foo/bar/baz", True),  # RFC reading (robots.txt: see test_robots)
    ("/foo/bar/%62%61%7A", "/foo/bar/%62%61%7A", True),
    ("/foo/bar/ツ", "/foo/bar/%E3%83%84", True),
    ("/foo/bar/ツ", "/foo/bar/ツ", True),  # RFC reading encodes the URL's non-ASCII
    ("/ä", "/%C3%A4", True),
    ("/my page", path_query("/my page"), True),
    ("/my page", "/my%20page", True),
    ("/%2A", "/*", True),  # RFC 9309 §2.2.3: %2A is a literal '*'
    ("/%2A", "/%2A", True),
]


@pytest.mark.parametrize(("pattern", "path", "expected"), MATCH_VECTORS)
def test_matches(pattern: str, path: str, expected: bool) -> None:
    assert compile_pattern(pattern).matches(path) is expected


# (raw, encoded, specificity)
ENCODING_VECTORS: list[tuple[str, str, int]] = [
    ("/", "/", 1),
    ("", "", 0),
    ("/fish*", "/fish*", 6),
    ("/*.php$", "/*.php$", 7),
    ("/foo/bar/ツ", "/foo/bar/%E3%83%84", 18),
    ("/ä", "/%C3%A4", 7),
    ("/%aa/%Bc", "/%AA/%BC", 8),
    ("/%zz", "/%zz", 4),  # not an escape: left alone
    ("/%a", "/%a", 3),
    ("/a b", "/a%20b", 6),
    ("/a<b>", "/a%3Cb%3E", 9),
    ('/"{|}^`\\', "/%22%7B%7C%7D%5E%60%5C", 22),
    ("/a\tb\x00", "/a%09b%00", 9),
    ("/q?a=1&b=:/@!$'()*+,;", "/q?a=1&b=:/@!$'()*+,;", 21),  # reserved characters stay
    ("/\udce9t\udce9", "/%E9t%E9", 8),  # bytes kept by errors="surrogateescape"
    ("/\ud800", "/%ED%A0%80", 10),  # a lone surrogate never raises
]


@pytest.mark.parametrize(("raw", "encoded", "specificity"), ENCODING_VECTORS)
def test_encoding_and_specificity(raw: str, encoded: str, specificity: int) -> None:
    pattern = compile_pattern(raw)
    assert pattern.raw == raw
    assert pattern.encoded == encoded
    assert pattern.specificity == specificity


@pytest.mark.parametrize("case", GOOGLE["maybe_escape_pattern"], ids=lambda c: repr(c["pattern"]))
def test_google_maybe_escape_pattern(case: dict[str, str]) -> None:
    assert escape_pattern(case["pattern"]) == case["expected_escaped"]
    assert compile_pattern(case["pattern"]).encoded == case["expected_escaped"]


@pytest.mark.parametrize("case", GOOGLE["get_path_params_query"], ids=lambda c: repr(c["url"]))
def test_google_get_path_params_query(case: dict[str, str]) -> None:
    assert path_query(case["url"]) == case["expected_path_params_query"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://example.com/a%2fb%3a?q=%e3%83", "/a%2Fb%3A?q=%E3%83"),
        ("http://example.com/%62%61%7A", "/%62%61%7A"),  # not decoded
        ("http://example.com/ツ", "/ツ"),  # not encoded
        ("http://example.com/a b<c>", "/a%20b%3Cc%3E"),
        ("http://example.com/a%zz", "/a%zz"),
        ("https://user:pw@example.com:8080/p;x?y#z", "/p;x?y"),
        ("http://example.com/?", "/?"),
        ("http://example.com#frag/x", "/"),
        ("/robots.txt", "/robots.txt"),
    ],
)
def test_path_query(url: str, expected: str) -> None:
    assert path_query(url) == expected


def test_prefix_property() -> None:
    assert compile_pattern("/a/b").prefix == "/a/b"
    assert compile_pattern("/a/b***").prefix == "/a/b"
    assert compile_pattern("*").prefix == ""
    assert compile_pattern("/a*b").prefix is None
    assert compile_pattern("/a$").prefix is None
    assert compile_pattern("").prefix is None


def test_pattern_is_frozen_and_comparable() -> None:
    a = compile_pattern("/x*")
    assert a == PathPattern(raw="/x*", encoded="/x*")
    assert hash(a) == hash(compile_pattern("/x*"))
    with pytest.raises(AttributeError):
        a.raw = "/y"  # type: ignore[misc]


def test_programmer_errors_raise() -> None:
    with pytest.raises(TypeError):
        compile_pattern(b"/x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        path_query(None)  # type: ignore[arg-type]


def test_hostile_pattern_is_linear() -> None:
    """Many stars against a long non-matching path must not backtrack exponentially."""
    pattern = compile_pattern("/" + "*a" * 30 + "*b$")
    path = "/" + "a" * 5000
    seconds = timeit.timeit(lambda: pattern.matches(path), number=10) / 10
    assert not pattern.matches(path)
    assert seconds < 0.01


# --------------------------------------------------------------- issue 10, items 5, 6 and 7


def _allowed(body: str, url: str, agent: str = "FooBot") -> bool:
    return parse_robots(body.encode("utf-8", "surrogateescape")).verdict(url, agent).allowed


@pytest.mark.parametrize(
    ("rule", "url"),
    [
        # RFC 9309 §2.2.2: escapes of unreserved characters are decoded on both sides.
        ("/%7Ejoe/", "http://x/~joe/index.html"),
        ("/%7ejoe/", "http://x/~joe/index.html"),
        ("/~joe/", "http://x/%7Ejoe/index.html"),
        ("/~joe/", "http://x/%7ejoe/index.html"),
        ("/a2/%5A%2D%2E%5F%7E", "http://x/a2/Z-._~"),
        ("/a1/Z-._~", "http://x/a1/%5A%2D%2E%5F%7E"),
        ("/*/%62az", "http://x/foo/baz"),
        ("/foo/%62az$", "http://x/foo/baz"),
        # Non-ASCII in the URL is UTF-8 encoded before comparison (RFC reading).
        ("/u/%F0%9F%90%8D", "http://x/u/\U0001f40d"),
        ("/u/\U0001f40d", "http://x/u/\U0001f40d"),
    ],
)
def test_unreserved_escapes_bind_either_way(rule: str, url: str) -> None:
    body = f"User-agent: *\nDisallow: {rule}\n"
    assert _allowed(body, url) is False


@pytest.mark.parametrize(
    ("rule", "url"),
    [
        ("/a%2Fb", "http://x/a/b"),  # reserved escapes are never decoded
        ("/a/b", "http://x/a%2Fb"),
        ("/q%3Fx", "http://x/q?x"),
        ("/%7Ejoe/", "http://x/~jo"),
        ("/~joe/", "http://x/%7Ejo"),
    ],
)
def test_reserved_escapes_stay_distinct(rule: str, url: str) -> None:
    assert _allowed(f"User-agent: *\nDisallow: {rule}\n", url) is True


def test_encoded_allow_does_not_open_a_plain_url() -> None:
    """Google's ID_Encoding: where the readings disagree the more restrictive one wins."""
    body = "User-agent: FooBot\nDisallow: /\nAllow: /foo/bar/%62%61%7A\n"
    assert _allowed(body, "http://x/foo/bar/baz") is False
    assert _allowed(body, "http://x/foo/bar/%62%61%7A") is True
    body = "User-agent: FooBot\nDisallow: /\nAllow: /foo/bar/\u30c4\n"
    assert _allowed(body, "http://x/foo/bar/%E3%83%84") is True
    assert _allowed(body, "http://x/foo/bar/\u30c4") is False


def test_longest_match_is_counted_per_reading() -> None:
    # Raw reading: only the Allow matches /foo/%62ar.  RFC reading: the Allow is /foo/ba (7
    # octets), the Disallow /foo/bar (8): the Disallow is longer and wins, so the URL is denied.
    body = "User-agent: *\nDisallow: /foo/bar\nAllow: /foo/%62a\n"
    assert _allowed(body, "http://x/foo/%62ar") is False
    assert _allowed(body, "http://x/foo/bax") is True
    # An encoded Allow that stays longer than the Disallow after decoding still wins.
    body = "User-agent: *\nDisallow: /foo/ba\nAllow: /foo/%62ar\n"
    assert _allowed(body, "http://x/foo/%62ar") is True
    assert _allowed(body, "http://x/foo/bar") is False  # raw reading: only the Disallow matches
    # Allow wins ties in each reading.
    body = "User-agent: *\nDisallow: /~joe\nAllow: /%7Ejoe\n"
    for url in ("http://x/%7Ejoe/a", "http://x/~joe/a"):
        # RFC reading: Allow /~joe and Disallow /~joe tie and the Allow wins.  Raw reading: only
        # the Allow matches /%7Ejoe/a, only the Disallow matches /~joe/a -- which is denied.
        verdict = parse_robots(body.encode()).verdict(url, "a")
        assert (verdict.allowed, url) == (url.endswith("%7Ejoe/a"), url)


def test_winning_rule_of_the_rfc_reading_is_reported() -> None:
    robots = parse_robots(b"User-agent: *\nDisallow: /%7Ejoe/\n")
    verdict = robots.verdict("http://x/~joe/index.html", "FooBot")
    assert verdict.allowed is False
    assert verdict.rule is not None and verdict.rule.text == "Disallow: /%7Ejoe/"


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://foo.bar/x/abc$abc", False),
        ("http://foo.bar/x/abc$", False),
        ("http://foo.bar/x/abc%24", False),
        ("http://foo.bar/x/abc", True),
        ("http://foo.bar/x*x/abc", False),
        ("http://foo.bar/x*x/abcdef", False),
        ("http://foo.bar/x%2Ax/abc", False),
        ("http://foo.bar/x%2ax/abc", False),
        ("http://foo.bar/xabcx/abc", True),
    ],
)
def test_escaped_special_characters_are_literal(url: str, allowed: bool) -> None:
    """RFC 9309 §2.2.3 (Protego's test_escaped_special_symbols)."""
    body = "user-agent: FooBot\ndisallow: /x/abc%24\ndisallow: /x%2Ax/abc\n"
    assert _allowed(body, url) is allowed


def test_escaped_specials_at_pattern_level() -> None:
    assert compile_pattern("/a%24").matches("/a$b")
    assert compile_pattern("/a%24$").matches("/a%24")
    assert not compile_pattern("/a%24$").matches("/a%24b")
    assert not compile_pattern("/a%24").matches("/a")  # %24 is not an anchor
    assert compile_pattern("/a%2Ab").matches("/a*b")
    assert not compile_pattern("/a%2Ab").matches("/axb")  # %2A is not a wildcard
    assert compile_pattern("/a%2ab").prefix == "/a*b"


def test_trailing_control_characters_in_a_disallow_are_cut() -> None:
    robots = parse_robots(b"User-agent: *\nDisallow: /family/photos\x00\x00\x00\n")
    verdict = robots.verdict("http://x/family/photos", "FooBot")
    assert verdict.allowed is False
    assert verdict.rule is not None and verdict.rule.text == "Disallow: /family/photos"
    assert any("line 2: trailing control characters" in p for p in robots.problems)
    assert robots.verdict("http://x/family/photos/a.jpg", "FooBot").allowed is False
    assert robots.verdict("http://x/family/", "FooBot").allowed is True


def test_trailing_control_characters_in_an_allow_are_kept() -> None:
    """Cutting them would only widen the Allow: fail closed."""
    robots = parse_robots(b"User-agent: *\nDisallow: /\nAllow: /family\x01\n")
    assert robots.verdict("http://x/family/photos", "FooBot").allowed is False
    assert any("line 3: trailing control characters" in p for p in robots.problems)


def test_match_forms_fast_path_returns_the_same_object() -> None:
    path = path_query("http://x/articles/2024/story.html?page=2")
    raw, rfc = match_forms(path)
    assert raw is path and rfc is path
    assert match_forms("/%7Ea%2A") == ("/%7Ea*", "/~a*")
    raw, rfc = match_forms("/%2F")
    assert raw is rfc


def test_rfc_form_of_patterns() -> None:
    plain = compile_pattern("/a/b")
    assert plain.rfc is plain
    encoded = compile_pattern("/%7ejoe/%2f")
    assert encoded.encoded == "/%7Ejoe/%2F"
    assert encoded.rfc.encoded == "/~joe/%2F"
    assert encoded.rfc.specificity == 9
    assert encoded.rfc.rfc is encoded.rfc
