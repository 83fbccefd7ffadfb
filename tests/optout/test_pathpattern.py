"""Vector tables for robots.txt-style path patterns (crawler.optout.pathpattern)."""

from __future__ import annotations

import json
import timeit
from pathlib import Path

import pytest

from crawler.optout.pathpattern import PathPattern, compile_pattern, escape_pattern, path_query

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
    # percent-encoding: hex case normalised, nothing decoded
    ("/foo/bar%2Fbaz", "/foo/bar/baz", False),
    ("/foo/bar%2fbaz", path_query("/foo/bar%2fbaz"), True),
    ("/a%3cd.html", path_query("/a<d.html"), True),
    ("/a%3Cd.html", "/a%3Cd.html", True),
    ("/foo/bar/%62%61%7A", "/foo/bar/baz", False),
    ("/foo/bar/%62%61%7A", "/foo/bar/%62%61%7A", True),
    ("/foo/bar/ツ", "/foo/bar/%E3%83%84", True),
    ("/foo/bar/ツ", "/foo/bar/ツ", False),
    ("/ä", "/%C3%A4", True),
    ("/my page", path_query("/my page"), True),
    ("/my page", "/my%20page", True),
    ("/%2A", "/*", False),
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
