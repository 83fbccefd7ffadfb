"""Vector tables for crawler.optout.htmlmeta (head <meta>/<link> extraction)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from crawler.optout.htmlmeta import (
    HTML_HEAD_LIMIT,
    HtmlHead,
    HtmlLink,
    HtmlMeta,
    parse_html_head,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "tdmrep_examples"


def metas(body: bytes, **kwargs: str | None) -> list[tuple[str | None, str]]:
    return [(meta.name, meta.content) for meta in parse_html_head(body, **kwargs).metas]


# (id, document, expected [(name, content), ...])
META_VECTORS = [
    ("plain", b'<head><meta name="a" content="1"></head>', [("a", "1")]),
    ("name case folded", b'<META NAME="TDM-Reservation" CONTENT="1">', [("tdm-reservation", "1")]),
    ("unquoted", b"<meta name=tdm-reservation content=1>", [("tdm-reservation", "1")]),
    ("single quoted", b"<meta name='a' content='x y'>", [("a", "x y")]),
    ("self closing", b'<meta name="a" content="1"/>', [("a", "1")]),
    ("unquoted then slash", b"<meta name=a content=1/>", [("a", "1/")]),
    ("gt inside quotes", b'<meta name="a" content="x>y">', [("a", "x>y")]),
    ("content case kept", b'<meta name="A" content="NoAI">', [("a", "NoAI")]),
    ("content not stripped", b'<meta name="a" content=" 1 ">', [("a", " 1 ")]),
    ("name stripped", b'<meta name=" robots " content="noai">', [("robots", "noai")]),
    ("missing content", b'<meta name="a">', [("a", "")]),
    ("empty value", b'<meta name="a" content=>', [("a", "")]),
    ("no spaces between attrs", b'<meta name="a"content="1">', [("a", "1")]),
    ("spaces around =", b'<meta name = "a" content = "1" >', [("a", "1")]),
    ("newlines in tag", b'<meta\nname="a"\ncontent="1"\n>', [("a", "1")]),
    ("duplicate attribute first wins", b'<meta name="a" name="b" content="1">', [("a", "1")]),
    (
        "duplicates kept",
        b"<meta name=a content=1><meta name=a content=0>",
        [("a", "1"), ("a", "0")],
    ),
    ("charset meta skipped", b'<meta charset="utf-8"><meta name=a content=1>', [("a", "1")]),
    ("itemprop skipped", b'<meta itemprop="x" content="1">', []),
    ("entity decoded", b'<meta name="a" content="x&amp;y&#x41;&#66;">', [("a", "x&yAB")]),
    (
        "legacy entity before = kept",
        b'<meta name="a" content="?a=1&copy=2">',
        [("a", "?a=1&copy=2")],
    ),
    ("legacy entity alone decoded", b'<meta name="a" content="&copy 2">', [("a", "\u00a9 2")]),
    ("unknown entity kept", b'<meta name="a" content="&nosuch;">', [("a", "&nosuch;")]),
    (
        "in comment ignored",
        b"<!-- <meta name=a content=1> --><meta name=b content=2>",
        [("b", "2")],
    ),
    ("comment --!> end", b"<!-- x --!><meta name=b content=2>", [("b", "2")]),
    ("empty comment <!-->", b"<!--><meta name=b content=2>", [("b", "2")]),
    (
        "in script ignored",
        b'<script>x="<meta name=a content=1>"</script><meta name=b content=2>',
        [("b", "2")],
    ),
    (
        "in style ignored",
        b"<style>/*<meta name=a content=1>*/</style><meta name=b content=2>",
        [("b", "2")],
    ),
    (
        "in title ignored",
        b"<title><meta name=a content=1></title><meta name=b content=2>",
        [("b", "2")],
    ),
    ("script end tag case", b"<SCRIPT>1</Script ><meta name=b content=2>", [("b", "2")]),
    ("noscript read", b"<noscript><meta name=a content=1></noscript>", [("a", "1")]),
    ("doctype", b"<!DOCTYPE html><meta name=a content=1>", [("a", "1")]),
    ("processing instruction", b"<?xml version='1.0'?><meta name=a content=1>", [("a", "1")]),
    ("stray lt", b"a < b <3 <<meta name=a content=1>", [("a", "1")]),
    ("end tag with quoted gt", b'</x a=">"><meta name=a content=1>', [("a", "1")]),
    ("missing end tag name", b"</><meta name=a content=1>", [("a", "1")]),
    (
        "after </head> ignored",
        b"<head><meta name=a content=1></head><meta name=b content=2>",
        [("a", "1")],
    ),
    (
        "after <body> ignored",
        b"<meta name=a content=1><BODY class=x><meta name=b content=2>",
        [("a", "1")],
    ),
    ("after <frameset> ignored", b"<frameset><meta name=b content=2>", []),
    (
        "no head tags at all",
        b"<meta name=a content=1><p>text<meta name=b content=2>",
        [("a", "1"), ("b", "2")],
    ),
    ("</header> is not </head>", b"<header></header><meta name=a content=1>", [("a", "1")]),
    ("<bodyx> is not <body>", b"<bodyx><meta name=a content=1>", [("a", "1")]),
    ("unterminated tag dropped", b'<meta name=a content=1><meta name="b" content="2', [("a", "1")]),
    ("unterminated comment", b"<meta name=a content=1><!-- <meta name=b content=2>", [("a", "1")]),
    ("unclosed script", b"<meta name=a content=1><script><meta name=b content=2>", [("a", "1")]),
    ("CRLF", b'<meta\r\nname="a"\rcontent="x\r\ny">', [("a", "x\ny")]),
    ("nul bytes", b'<meta name="a\x00" content="1">', [("a\x00", "1")]),
    ("empty", b"", []),
]


@pytest.mark.parametrize(
    ("document", "expected"), [v[1:] for v in META_VECTORS], ids=[v[0] for v in META_VECTORS]
)
def test_meta_vectors(document: bytes, expected: list[tuple[str | None, str]]) -> None:
    assert metas(document) == expected


def test_meta_fields_and_lines() -> None:
    head = parse_html_head(
        b"<!doctype html>\n<html>\n<head>\n"
        b'  <meta property="OG:Title" content="T">\n'
        b'  <meta http-equiv="X-Robots-Tag" content="noai">\n'
        b'  <meta name="robots" content="noindex">\n'
        b"</head>\n"
    )
    assert head.metas == (
        HtmlMeta(name=None, property="og:title", http_equiv=None, content="T", line=4),
        HtmlMeta(name=None, property=None, http_equiv="x-robots-tag", content="noai", line=5),
        HtmlMeta(name="robots", property=None, http_equiv=None, content="noindex", line=6),
    )
    assert head.problems == ()
    assert head.property_values("og:TITLE") == head.metas[:1]
    assert head.http_equiv_values("x-robots-tag") == head.metas[1:2]


def test_meta_values_case_insensitive_and_duplicates() -> None:
    head = parse_html_head(
        b'<meta name="Robots" content="noai"><meta name="ROBOTS" content="noimageai">'
        b'<meta name="googlebot" content="noindex">'
    )
    found = head.meta_values("rObOtS")
    assert [meta.content for meta in found] == ["noai", "noimageai"]
    assert head.meta_values("bingbot") == ()


def test_meta_name_folding_is_ascii_only() -> None:
    # WHATWG folds ASCII letters only: a Kelvin sign must not turn into 'k'.
    head = parse_html_head('<meta name="\u212aEY" content="1">'.encode())
    assert head.metas[0].name == "\u212aey"
    assert head.meta_values("key") == ()


# (id, document, expected links)
LINK_VECTORS = [
    (
        "license alternate tokenised",
        b'<link rel="License  Alternate" href="/license.xml" type="Application/RSL+XML">',
        [
            HtmlLink(
                rel=("license", "alternate"),
                href="/license.xml",
                type="application/rsl+xml",
                line=1,
            )
        ],
    ),
    (
        "tabs and newlines in rel, href stripped, no type",
        b'<link rel="\tlicense\nalternate " href="  https://x/l?a=1&amp;b=2  ">',
        [HtmlLink(rel=("license", "alternate"), href="https://x/l?a=1&b=2", type=None, line=1)],
    ),
    (
        "no rel, no href",
        b"<link>",
        [HtmlLink(rel=(), href="", type=None, line=1)],
    ),
    (
        "after body ignored",
        b"<link rel=a href=/a><body><link rel=b href=/b>",
        [HtmlLink(rel=("a",), href="/a", type=None, line=1)],
    ),
]


@pytest.mark.parametrize(
    ("document", "expected"), [v[1:] for v in LINK_VECTORS], ids=[v[0] for v in LINK_VECTORS]
)
def test_link_vectors(document: bytes, expected: list[HtmlLink]) -> None:
    assert list(parse_html_head(document).links) == expected


def test_links_with_rel() -> None:
    head = parse_html_head(b'<link rel="stylesheet" href="/s.css"><link rel="LICENSE" href="/l">')
    assert [link.href for link in head.links_with_rel("license")] == ["/l"]


# (id, body, encoding, expected content, problem expected)
CHARSET_VECTORS = [
    ("utf-8 default", '<meta name=a content="été">'.encode(), None, "été", False),
    ("invalid utf-8 replaced", b'<meta name=a content="\xe9t\xe9">', None, "\ufffdt\ufffd", False),
    (
        "latin-1 argument",
        '<meta name=a content="été">'.encode("latin-1"),
        "ISO-8859-1",
        "été",
        False,
    ),
    ("latin-1 means windows-1252", b'<meta name=a content="\x80">', "latin1", "\u20ac", False),
    (
        "quoted charset",
        '<meta name=a content="жук">'.encode("cp1251"),
        '"windows-1251"',
        "жук",
        False,
    ),
    ("shift_jis", '<meta name=a content="日本">'.encode("shift_jis"), "Shift_JIS", "日本", False),
    (
        "utf-8 BOM beats argument",
        b'\xef\xbb\xbf<meta name=a content="\xc3\xa9">',
        "latin-1",
        "é",
        False,
    ),
    ("utf-16le BOM", "\ufeff<meta name=a content=é>".encode("utf-16-le"), None, "é", False),
    ("utf-16be BOM", "\ufeff<meta name=a content=é>".encode("utf-16-be"), None, "é", False),
    ("unknown charset falls back", '<meta name=a content="é">'.encode(), "x-no-such", "é", True),
    ("non-text codec refused", '<meta name=a content="é">'.encode(), "base64", "é", True),
    ("empty charset", '<meta name=a content="é">'.encode(), "  ", "é", False),
]


@pytest.mark.parametrize(
    ("body", "encoding", "content", "problem"),
    [v[1:] for v in CHARSET_VECTORS],
    ids=[v[0] for v in CHARSET_VECTORS],
)
def test_charset(body: bytes, encoding: str | None, content: str, problem: bool) -> None:
    head = parse_html_head(body, encoding=encoding)
    assert [meta.content for meta in head.metas] == [content]
    assert bool(head.problems) is problem


BROKEN_DOCUMENTS = [
    b"<",
    b"<a",
    b"</",
    b"<!",
    b"<!-",
    b"<?",
    b"<meta",
    b"<meta name",
    b"<meta name=",
    b'<meta name="',
    b"<meta name='x' content='",
    b"<script>",
    b"<<<<>>>>",
    b"<a b=c d='e' f=\"g\" / / / >",
    b"\x00\xff\xfe" * 100,
    b"<![CDATA[<meta name=a content=1>]]>",
    b"<svg><style><meta name=a content=1></style></svg>",
    b"<meta name=a content=1" + b" x" * 1000,
    b"&" * 1000 + b"<meta name=a content='" + b"&#" * 1000 + b"'>",
    b"<meta name=a content='&#0;&#xD800;&#x110000;&#128;&#99999999999999999999;'>",
]


@pytest.mark.parametrize("document", BROKEN_DOCUMENTS, ids=range(len(BROKEN_DOCUMENTS)))
def test_broken_html_never_raises(document: bytes) -> None:
    head = parse_html_head(document)
    assert isinstance(head, HtmlHead)
    for meta in head.metas:
        assert isinstance(meta.content, str)


def test_charrefs_in_values_follow_html_rules() -> None:
    head = parse_html_head(b"<meta name=a content='&#0;&#x80;&#65'>")
    assert head.metas[0].content == "\ufffd\u20acA"


def test_unterminated_constructs_are_reported() -> None:
    for document in (b'<meta name="a', b"<!-- x", b"<script>x", b"<!doctype"):
        assert parse_html_head(document).problems, document


def test_problems_name_the_line() -> None:
    head = parse_html_head(b"<meta name=a content=1>\n\n<!-- never closed")
    assert head.problems == ("line 3: unterminated comment; rest of document ignored",)


def test_limit_cuts_document() -> None:
    body = b"<meta name=a content=1>" + b" " * HTML_HEAD_LIMIT + b"<meta name=b content=2>"
    head = parse_html_head(body)
    assert [meta.name for meta in head.metas] == ["a"]
    assert any("only the start was read" in problem for problem in head.problems)


# Inputs that make a naive or backtracking tokeniser slow (html.parser before the
# CVE-2025-6069 fix is quadratic on several of these).
HOSTILE = {
    "10 MB junk": bytes(range(256)) * (10 * 1024 * 1024 // 256),
    "10 MB of '<'": b"<" * (10 * 1024 * 1024),
    "unclosed start tags": b"<a " * (HTML_HEAD_LIMIT // 3),
    "unclosed quotes": b'<a b="' * (HTML_HEAD_LIMIT // 6),
    "many attributes": b"<a " + b"b " * (HTML_HEAD_LIMIT // 2),
    "many tags": b"<a>" * (HTML_HEAD_LIMIT // 3),
    "many metas": b"<meta name=a content=b>" * (HTML_HEAD_LIMIT // 23),
    "comment openers": b"<!--" * (HTML_HEAD_LIMIT // 4),
    "end tag openers": b"</" * (HTML_HEAD_LIMIT // 2),
    "script openers": b"<script>" * (HTML_HEAD_LIMIT // 8),
    "ampersands in value": b"<meta name=a content='" + b"&" * (HTML_HEAD_LIMIT - 40) + b"'>",
    "equals signs": b"<a " + b"=" * HTML_HEAD_LIMIT,
}


@pytest.mark.parametrize("document", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_input_returns_quickly(document: bytes) -> None:
    started = time.perf_counter()
    head = parse_html_head(document)
    elapsed = time.perf_counter() - started
    assert isinstance(head, HtmlHead)
    assert elapsed < 3.0, f"{elapsed:.2f}s"


def test_spec_html_example() -> None:
    head = parse_html_head((DATA / "spec" / "html_meta_reserved_with_policy.html").read_bytes())
    assert [(m.name, m.content, m.line) for m in head.meta_values("tdm-reservation")] == [
        ("tdm-reservation", "1", 5)
    ]
    assert [m.content for m in head.meta_values("TDM-Policy")] == [
        "https://provider.com/policies/policy.json"
    ]
    assert head.problems == ()


def test_results_are_frozen() -> None:
    head = parse_html_head(b"<meta name=a content=1><link rel=a href=/>")
    for obj, field in ((head, "metas"), (head.metas[0], "line"), (head.links[0], "line")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, field, 2)


def test_body_type_is_checked() -> None:
    with pytest.raises(TypeError):
        parse_html_head("<meta>")  # type: ignore[arg-type]


# --- completeness: was the whole head seen? ---------------------------------------------------

LIMIT_PROBLEM = (
    f"head not closed within the first {HTML_HEAD_LIMIT} bytes: reservations after that point "
    "cannot be seen"
)

COMPLETE_DOCUMENTS = {
    "head closed": b"<html><head><meta name=a content=1></head><body><meta name=b content=2>",
    "body opened": b"<meta name=a content=1><body><meta name=b content=2>",
    "frameset opened": b"<meta name=a content=1><FRAMESET><meta name=b content=2>",
    "plaintext": b"<meta name=a content=1><plaintext><meta name=b content=2>",
    "ends inside the head": b"<html><head><meta name=a content=1>",
    "ends inside a comment": b"<meta name=a content=1><!-- <meta name=b content=2>",
    "ends inside a tag": b'<meta name=a content=1><meta name="b',
    "ends inside a script": b"<meta name=a content=1><script>x",
    "empty": b"",
    "not html at all": b"just some text",
    "head closed just before the limit": (
        b"<meta name=a content=1>" + b" " * (HTML_HEAD_LIMIT - 30) + b"</head>"
        + b"<meta name=b content=2>" * 10
    ),
}


@pytest.mark.parametrize("document", COMPLETE_DOCUMENTS.values(), ids=COMPLETE_DOCUMENTS.keys())
def test_complete_heads(document: bytes) -> None:
    head = parse_html_head(document)
    assert head.complete is True
    assert not any("reservations after that point" in problem for problem in head.problems)
    if b"name=a" in document:
        assert [meta.name for meta in head.metas] == ["a"]


def test_reservation_after_the_limit_is_reported_as_unseen() -> None:
    body = (
        b"<html><head><title>x</title>"
        + b"<!-- padding -->" * (HTML_HEAD_LIMIT // 16 + 1)
        + b'<meta name="tdm-reservation" content="1"></head><body>'
    )
    assert len(body) > HTML_HEAD_LIMIT
    head = parse_html_head(body)
    assert head.complete is False
    assert head.meta_values("tdm-reservation") == ()
    assert LIMIT_PROBLEM in head.problems


def test_existing_limit_test_document_is_incomplete() -> None:
    body = b"<meta name=a content=1>" + b" " * HTML_HEAD_LIMIT + b"<meta name=b content=2>"
    head = parse_html_head(body)
    assert head.complete is False
    assert head.problems[-1] == LIMIT_PROBLEM


def test_head_end_straddling_the_limit_is_incomplete() -> None:
    body = b"<meta name=a content=1>"
    body += b" " * (HTML_HEAD_LIMIT - len(body) - 3) + b"</head>"
    assert len(body) == HTML_HEAD_LIMIT + 4
    assert parse_html_head(body).complete is False
    # A head that ends exactly at the limit was seen whole.
    exact = body[: HTML_HEAD_LIMIT - 6] + b"<body>"
    assert len(exact) == HTML_HEAD_LIMIT
    assert parse_html_head(exact + b"more").complete is True


def test_document_of_exactly_the_limit_ending_inside_the_head_is_complete() -> None:
    body = b"<meta name=a content=1>" + b" " * (HTML_HEAD_LIMIT - 23)
    assert len(body) == HTML_HEAD_LIMIT
    assert parse_html_head(body).complete is True


@pytest.mark.parametrize(
    "document",
    [
        b"<html><head><meta name=a content=1>",
        b"<meta name=a content=1><!-- cut here",
        b'<meta name=a content=1><meta name="tdm-res',
        b"",
    ],
    ids=["open head", "inside a comment", "inside a tag", "empty"],
)
def test_truncated_body_with_open_head_is_incomplete(document: bytes) -> None:
    head = parse_html_head(document, truncated=True)
    assert head.complete is False
    assert head.problems[-1] == (
        f"head not closed within the {len(document)} bytes received (body truncated): "
        "reservations after that point cannot be seen"
    )
    # The same bytes as a whole document: complete.
    assert parse_html_head(document).complete is True


@pytest.mark.parametrize(
    "document",
    [
        b"<head><meta name=a content=1></head><p>cut he",
        b"<meta name=a content=1><body><p>cut he",
        b"<meta name=a content=1></HEAD ><!-- cut",
    ],
    ids=["head end tag", "body start tag", "head end then cut comment"],
)
def test_truncated_body_with_closed_head_is_complete(document: bytes) -> None:
    head = parse_html_head(document, truncated=True)
    assert head.complete is True
    assert [meta.name for meta in head.metas] == ["a"]


def test_truncated_and_over_the_limit_names_the_limit() -> None:
    body = b"<meta name=a content=1>" + b" " * HTML_HEAD_LIMIT
    head = parse_html_head(body, truncated=True)
    assert head.complete is False
    assert head.problems[-1] == LIMIT_PROBLEM


def test_internal_error_is_incomplete(monkeypatch: pytest.MonkeyPatch) -> None:
    from crawler.optout import htmlmeta

    def boom(self: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(htmlmeta._HeadScanner, "run", boom)
    head = parse_html_head(b"<head></head>")
    assert head.complete is False
    assert head.problems[0] == "HTML scan aborted: RuntimeError: bug"
    assert "reservations after that point cannot be seen" in head.problems[1]


def test_internal_error_before_scanning_is_incomplete(monkeypatch: pytest.MonkeyPatch) -> None:
    from crawler.optout import htmlmeta

    def boom(body: bytes, encoding: str | None, problems: list[str]) -> str:
        raise RuntimeError("bug")

    monkeypatch.setattr(htmlmeta, "_decode", boom)
    head = parse_html_head(b"<head></head>")
    assert head.complete is False
    assert head.metas == () and head.links == ()


def test_metas_found_before_an_internal_error_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    from crawler.optout import htmlmeta

    original = htmlmeta._HeadScanner.link

    def broken_link(self: object, attrs: dict[str, str], line: int) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(htmlmeta._HeadScanner, "link", broken_link)
    head = parse_html_head(b"<meta name=a content=1><link rel=x href=/><meta name=b content=2>")
    assert head.complete is False
    assert [meta.name for meta in head.metas] == ["a"]
    assert original is not broken_link


def test_complete_defaults_to_true_for_heads_built_by_hand() -> None:
    assert HtmlHead(metas=(), links=(), problems=()).complete is True
    assert HtmlHead((), (), (), False).complete is False


def test_hostile_inputs_are_incomplete_only_when_cut() -> None:
    for document in HOSTILE.values():
        head = parse_html_head(document)
        if len(document) <= HTML_HEAD_LIMIT:
            assert head.complete is True
