"""Cloudflare Content Signals (crawler.optout.contentsignal): protocols.md §4.3 and more."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from crawler.optout.contentsignal import (
    KEYS,
    parse_value,
    statement_from_header,
    statement_from_meta,
    statements_from_robots,
)
from crawler.optout.model import Statement
from crawler.optout.robots import RobotsFile, parse_robots


def robots(text: str) -> RobotsFile:
    return parse_robots(text.encode("utf-8"))


def combined(statements: tuple[Statement, ...]) -> dict[str, bool]:
    """Most restrictive per term (what policy does)."""
    result: dict[str, bool] = {}
    for statement in statements:
        for term, allowed in statement.terms:
            result[term] = result.get(term, True) and allowed
    return result


def robots_terms(text: str, path: str, token: str = "MyBot") -> dict[str, bool] | None:
    file = robots(text)
    url = f"https://example.com{path}"
    if not file.verdict(url, token).allowed:
        assert statements_from_robots(file, url, token) == ()
        return None
    return combined(statements_from_robots(file, url, token))


def test_keys() -> None:
    assert KEYS == ("search", "ai-input", "ai-train")


# --- protocols.md §4.3 vectors -----------------------------------------------------------


def test_vector_1_star_group() -> None:
    text = "User-Agent: *\nContent-Signal: search=yes, ai-train=no\nAllow: /"
    file = robots(text)
    assert file.verdict("https://example.com/a", "AnyBot").allowed
    assert statements_from_robots(file, "https://example.com/a", "AnyBot") == (
        Statement(
            signal="content-signal",
            channel="robots.txt",
            terms=(("search", True), ("ai-train", False)),
            rule="Content-Signal: search=yes, ai-train=no (line 2)",
            agent="*",
        ),
    )
    assert robots_terms(text, "/a") == {"search": True, "ai-train": False}  # ai-input unknown


def test_vector_2_star_signal_with_own_group() -> None:
    # As written in protocols.md: robots.py reads '*' and MyBot as one group (only Allow and
    # Disallow end a run of user-agent lines), so the signal reaches MyBot through its own group.
    text = "User-Agent: *\nContent-Signal: ai-train=no\n\nUser-agent: MyBot\nAllow: /"
    assert robots_terms(text, "/x") == {"ai-train": False}
    # With a rule in the '*' group the groups are separate: strict RFC 9309 gives MyBot no
    # signal; the [REC] site-wide reading still applies it, marked as such.
    text = "User-Agent: *\nAllow: /\nContent-Signal: ai-train=no\n\nUser-agent: MyBot\nAllow: /"
    (statement,) = statements_from_robots(robots(text), "https://example.com/x", "MyBot")
    assert statement.terms == (("ai-train", False),)
    assert statement.agent == "*"
    assert statement.problems == (
        ("from the '*' group although 'MyBot' has its own group: read as a site-wide statement"
        " (digest REC)"),
    )
    assert statement.rule == "Content-Signal: ai-train=no (line 3)"


def test_vector_3_use_reference() -> None:
    found, problems = parse_value("search=yes,ai-train=no,use=reference")
    assert found == (("search", True), ("ai-train", False), ("ai-train", False))
    assert problems == ("use=reference read as no training (digest REC, unconfirmed key)",)


def test_vector_4_maybe_is_unknown() -> None:
    found, problems = parse_value("ai-train=maybe, ai-input=yes")
    assert found == (("ai-input", True),)
    assert problems == ("ai-train=maybe: value is not yes or no; ai-train unknown",)


def test_vector_5_disallowed_means_moot() -> None:
    text = "User-agent: *\nDisallow: /\nContent-Signal: ai-train=yes"
    assert robots_terms(text, "/") is None
    assert robots_terms(text, "/a/b") is None


def test_vector_6_all_yes() -> None:
    statement = statement_from_header("search=yes, ai-input=yes, ai-train=yes")
    assert statement is not None
    assert dict(statement.terms) == {"search": True, "ai-input": True, "ai-train": True}
    assert statement.problems == ()


def test_vector_7_non_canonical_case() -> None:
    text = "User-agent: *\ncontent-signal: AI-TRAIN=NO\n"
    (statement,) = statements_from_robots(robots(text), "https://example.com/", "MyBot")
    assert statement.terms == (("ai-train", False),)
    assert statement.problems == ("AI-TRAIN=NO: not in canonical lower case; read as ai-train=no",)


# --- value grammar -----------------------------------------------------------------------

VALUES = [
    ("search=yes, ai-train=no", (("search", True), ("ai-train", False)), 0),
    ("search=yes,ai-train=no", (("search", True), ("ai-train", False)), 0),
    ("  search = yes ,  ai-train =no  ", (("search", True), ("ai-train", False)), 0),
    ("ai-input=no", (("ai-input", False),), 0),
    ("", (), 0),
    ("search=Yes", (("search", True),), 1),
    ("Search=yes", (("search", True),), 1),
    ("ai-train=no,", (("ai-train", False),), 1),
    (",,ai-train=no", (("ai-train", False),), 2),
    ("ai-train", (), 1),
    ("=no", (), 1),
    ("ai-train=", (), 1),
    ("ai-train=0", (), 1),
    ("ai-train=false", (), 1),
    ('ai-train="no"', (), 1),
    ("foo=bar, ai-train=no", (("ai-train", False),), 1),
    ("ai-train=no; search=yes", (), 1),
    ("ai-train=yes, ai-train=no", (("ai-train", True), ("ai-train", False)), 1),
    ("use=immediate", (("ai-train", False),), 1),
    ("use=REFERENCE", (("ai-train", False),), 2),
    ("use=full", (), 1),
    ("use=partial", (), 1),
    ("ai-train=yes, use=reference", (("ai-train", True), ("ai-train", False)), 1),
]


@pytest.mark.parametrize(("value", "expected", "problem_count"), VALUES)
def test_parse_value(value: str, expected: tuple[tuple[str, bool], ...], problem_count: int) -> None:
    found, problems = parse_value(value)
    assert found == expected
    assert len(problems) == problem_count, problems


def test_use_reference_overrides_ai_train_yes() -> None:
    statement = statement_from_header("ai-train=yes, use=reference")
    assert statement is not None and statement.term("ai-train") is False


def test_duplicate_key_is_noted() -> None:
    _, problems = parse_value("ai-train=yes, ai-train=no")
    assert problems == ("ai-train given more than once; the most restrictive applies",)


# --- robots.txt scoping ------------------------------------------------------------------

SCOPING = [
    # Own group only.
    ("User-agent: MyBot\nContent-Signal: ai-train=no\n", "/", {"ai-train": False}),
    ("User-agent: mybot\nContent-Signal: ai-train=no\n", "/", {"ai-train": False}),
    # Another crawler's group does not apply.
    ("User-agent: OtherBot\nContent-Signal: ai-train=no\n", "/", {}),
    # Star group plus own group: both apply (REC); most restrictive.
    (("User-agent: *\nAllow: /\nContent-Signal: ai-train=no, search=yes\n\n"
     "User-agent: MyBot\nAllow: /\nContent-Signal: ai-train=yes\n"), "/",
     {"ai-train": False, "search": True}),
    # Star group's signal when the token has its own group that disallows the URL: moot.
    (("User-agent: *\nAllow: /\nContent-Signal: ai-train=yes\n\n"
     "User-agent: MyBot\nDisallow: /private\n"), "/private/x", None),
    # The star group's Disallow does not bind MyBot when MyBot has its own group.
    (("User-agent: *\nDisallow: /\nContent-Signal: ai-train=no\n\n"
     "User-agent: MyBot\nAllow: /\n"), "/x", {"ai-train": False}),
    # Outside any group: site-wide (REC).
    ("Content-Signal: ai-train=no\nUser-agent: MyBot\nAllow: /\n", "/", {"ai-train": False}),
    ("Content-Signal: ai-train=no\n", "/", {"ai-train": False}),
    # No path scoping: a line covers every path of its group.
    ("User-agent: *\nAllow: /\nContent-Signal: ai-train=no\n", "/deep/page?q=1",
     {"ai-train": False}),
    # Several lines in a group.
    ("User-agent: *\nContent-Signal: search=yes\nContent-Signal: ai-train=no\n", "/",
     {"search": True, "ai-train": False}),
    # Directive spelling as Cloudflare's managed file writes it.
    ("User-agent: *\nContent-signal: search=yes,ai-train=no\nAllow: /\n", "/",
     {"search": True, "ai-train": False}),
]


@pytest.mark.parametrize(("text", "path", "expected"), SCOPING)
def test_scoping(text: str, path: str, expected: dict[str, bool] | None) -> None:
    assert robots_terms(text, path) == expected


def test_global_line_statement() -> None:
    text = "Content-Signal: ai-train=no\nUser-agent: MyBot\nAllow: /\n"
    (statement,) = statements_from_robots(
        robots(text), "https://example.com/", "MyBot", source="https://example.com/robots.txt"
    )
    assert statement.agent is None
    assert statement.source == "https://example.com/robots.txt"
    assert statement.rule == "Content-Signal: ai-train=no (line 1)"
    assert statement.problems == ("outside any user-agent group: read as site-wide (digest REC)",)


def test_statement_order_own_then_star_then_global() -> None:
    text = (
        "Content-Signal: search=no\n"
        "User-agent: *\nAllow: /\nContent-Signal: ai-input=no\n\n"
        "User-agent: MyBot\nAllow: /\nContent-Signal: ai-train=no\n"
    )
    statements = statements_from_robots(robots(text), "https://example.com/", "MyBot")
    assert [(s.agent, s.terms) for s in statements] == [
        ("MyBot", (("ai-train", False),)),
        ("*", (("ai-input", False),)),
        (None, (("search", False),)),
    ]


def test_star_token_itself_is_not_doubled() -> None:
    text = "User-agent: *\nContent-Signal: ai-train=no\n"
    assert len(statements_from_robots(robots(text), "https://example.com/", "MyBot")) == 1


def test_line_with_no_terms_is_still_returned() -> None:
    text = "User-agent: *\nContent-Signal: ai-train=maybe\n"
    (statement,) = statements_from_robots(robots(text), "https://example.com/", "MyBot")
    assert statement.terms == () and statement.problems


# --- header and meta ---------------------------------------------------------------------


def test_header() -> None:
    assert statement_from_header(" ai-train=yes, search=yes, ai-input=yes ") == Statement(
        signal="content-signal",
        channel="header",
        terms=(("ai-train", True), ("search", True), ("ai-input", True)),
        rule="Content-Signal: ai-train=yes, search=yes, ai-input=yes",
    )
    assert statement_from_header("") is None
    assert statement_from_header("  ") is None


@dataclass(frozen=True)
class Meta:
    name: str | None
    content: str
    line: int


@dataclass(frozen=True)
class Head:
    metas: tuple[Meta, ...]


def test_meta_objects() -> None:
    metas = (
        Meta("description", "ai-train=yes", 2),
        Meta("content-signal", "ai-train=no, search=yes", 3),
        Meta(None, "ai-train=yes", 4),
    )
    statement = statement_from_meta(metas)
    assert statement == Statement(
        signal="content-signal",
        channel="meta",
        terms=(("ai-train", False), ("search", True)),
        rule='<meta name="content-signal" content="ai-train=no, search=yes"> (line 3)',
        problems=('<meta name="content-signal"> is not an official carrier (unconfirmed)',),
    )
    assert statement_from_meta(Head(metas)) == statement


def test_meta_tuples_several_tags_and_case() -> None:
    statement = statement_from_meta(
        [("Content-Signal", "ai-train=yes", 5), ("content-signal", "ai-train=no", None)]
    )
    assert statement is not None
    assert statement.terms == (("ai-train", True), ("ai-train", False))
    assert statement.term("ai-train") is False
    assert statement.rule == (
        '<meta name="content-signal" content="ai-train=yes"> (line 5); '
        '<meta name="content-signal" content="ai-train=no">'
    )


def test_meta_absent() -> None:
    assert statement_from_meta([]) is None
    assert statement_from_meta([("robots", "noai", 1)]) is None


def test_meta_from_htmlmeta() -> None:
    htmlmeta = pytest.importorskip("crawler.optout.htmlmeta")
    head = htmlmeta.parse_html_head(
        b'<html><head>\n<meta name="Content-Signal" content="ai-train=no">\n</head></html>'
    )
    statement = statement_from_meta(head)
    assert statement is not None and statement.terms == (("ai-train", False),)
    assert statement_from_meta(head.metas) == statement


def test_programmer_errors_raise() -> None:
    with pytest.raises(TypeError):
        parse_value(b"ai-train=no")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        statement_from_header(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        statement_from_meta("content-signal")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        statements_from_robots(b"", "https://example.com/", "MyBot")  # type: ignore[arg-type]


# --- robustness --------------------------------------------------------------------------


def test_garbage_values_never_raise() -> None:
    rng = random.Random(4)
    for _ in range(2000):
        value = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80))).decode("latin-1")
        found, problems = parse_value(value)
        assert isinstance(found, tuple) and isinstance(problems, tuple)
        statement_from_header(value)
        statement_from_meta([("content-signal", value, 1)])


@pytest.mark.parametrize(
    "value",
    [
        "ai-train=" + "n" * 100_000,
        "ai-train=no, " * 10_000,
        "," * 100_000,
        '"' * 100_000,
        "=" * 100_000,
    ],
)
def test_large_values(value: str) -> None:
    statement = statement_from_header(value)
    assert statement is not None
    assert len(statement.rule) <= 240
    assert all(len(problem) <= 300 for problem in statement.problems)


def test_garbage_robots_never_raise() -> None:
    rng = random.Random(5)
    pieces = ["User-agent: *\n", "User-agent: MyBot\n", "Content-Signal: ", "ai-train=", "no",
              "yes", ",", "=", "\n", " ", "Disallow: /b\n", "Allow: /\n", "#", "use=reference"]
    for _ in range(500):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 40)))
        file = parse_robots(text.encode("utf-8"))
        for url in ("https://example.com/a", "https://example.com/b/c"):
            for statement in statements_from_robots(file, url, "MyBot"):
                assert statement.signal == "content-signal"
