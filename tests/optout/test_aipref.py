"""IETF AIPREF Content-Usage (crawler.optout.aipref): protocols.md §3.8 vectors and more."""

from __future__ import annotations

import random

import pytest

from crawler.optout.aipref import (
    LEGACY_NO_LABELS,
    VOCAB,
    combine,
    parse_preferences,
    statement_from_header,
    statements_from_robots,
)
from crawler.optout.model import Statement
from crawler.optout.robots import ALLOW_ALL, RobotsFile, parse_robots


def robots(text: str) -> RobotsFile:
    return parse_robots(text.encode("utf-8"))


def terms(value: str) -> dict[str, bool]:
    statement = statement_from_header(value)
    assert statement is not None
    return dict(statement.terms)


def robots_terms(text: str, url: str, token: str = "OtherBot") -> dict[str, bool] | None:
    """combine() of the robots statements, or None when the URL may not be crawled."""
    file = robots(text)
    if not file.verdict(url, token).allowed:
        assert statements_from_robots(file, url, token) == ()
        return None
    return combine(statements_from_robots(file, url, token))


def test_vocabulary() -> None:
    assert VOCAB == ("train-ai", "search")
    assert LEGACY_NO_LABELS == ("train-genai", "ai", "genai", "all", "bots", "tdm")


# --- protocols.md §3.8 vectors 1-8 (header) ----------------------------------------------

HEADER_VECTORS = [
    # 1. -> train-ai disallow, search unknown.
    ("train-ai=n", {"train-ai": False}),
    # 2.
    ("train-ai=y, search=n", {"train-ai": True, "search": False}),
    # 3. upper case -> parse failure -> all unknown.
    ("Train-AI=n", {}),
    # 4. last wins.
    ("train-ai=y, train-ai=n", {"train-ai": False}),
    # 5. String, not Token -> unknown; bare key = Boolean -> unknown.
    ('train-ai="n"', {}),
    ("train-ai", {}),
    # 6. parameter ignored.
    ("train-ai=n;reason=foo", {"train-ai": False}),
    # 7. trailing comma -> parse failure.
    ("train-ai=n,", {}),
    # 8. vocab-07 unknown label; [REC] legacy mapping keeps it as a training opt-out.
    ("train-genai=n", {"train-genai": False}),
    # vocab-07 §"Multiple Preferences" / §"Preference Parameters" examples.
    ('train-ai=y, train-ai, search=n, search="n"', {}),
    ("train-ai;allow=n, train-ai=y", {"train-ai": True}),
    ('train-ai;has;parameters="?";', {}),
    # Other values: Integer, Token other than y/n, Inner List, Byte Sequence -> unknown.
    ("train-ai=1, search=yes", {}),
    ("train-ai=(n), search=:bg==:", {}),
    ("train-ai=?0", {}),
    ("search=y, train-ai=n", {"train-ai": False, "search": True}),
    # Unknown labels are ignored; the rest still counts.
    ("foo=n, train-ai=y, ai-use=n, inference=n", {"train-ai": True}),
]


@pytest.mark.parametrize(("value", "expected"), HEADER_VECTORS)
def test_header_vectors(value: str, expected: dict[str, bool]) -> None:
    assert terms(value) == expected


def test_header_statement_fields() -> None:
    statement = statement_from_header("  train-ai=n  ")
    assert statement == Statement(
        signal="content-usage",
        channel="header",
        terms=(("train-ai", False),),
        rule="Content-Usage: train-ai=n",
    )
    assert statement.term("train-ai") is False and statement.term("search") is None


@pytest.mark.parametrize("value", ["", "   ", "\t"])
def test_blank_header_is_no_statement(value: str) -> None:
    assert statement_from_header(value) is None


@pytest.mark.parametrize("value", ["Train-AI=n", "train-ai=n,", "train-ai=n train-ai=y", "é=n"])
def test_parse_failure_is_reported(value: str) -> None:
    statement = statement_from_header(value)
    assert statement is not None and statement.terms == ()
    assert len(statement.problems) == 1
    assert "not a Structured Fields Dictionary" in statement.problems[0]
    assert "all preferences unknown" in statement.problems[0]


def test_non_token_values_are_noted() -> None:
    _, problems = parse_preferences('train-ai="n", search')
    assert problems == (
        "train-ai: the String 'n' is not the Token y or n; unknown",
        "search: the Boolean true (a bare key) is not the Token y or n; unknown",
    )


@pytest.mark.parametrize("label", LEGACY_NO_LABELS)
def test_legacy_labels_with_n_are_kept(label: str) -> None:
    found, problems = parse_preferences(f"{label}=n")
    assert found == ((label, False),)
    assert len(problems) == 1
    assert problems[0].startswith(f"legacy label {label!r} (vocab-0")
    assert problems[0].endswith("), kept")


def test_legacy_label_note_names_the_drafts() -> None:
    assert parse_preferences("train-genai=n")[1] == (
        "legacy label 'train-genai' (vocab-02..03), kept",
    )


@pytest.mark.parametrize("value", ["train-genai=y", "bots", 'all="n"', "tdm=n;x, tdm=y"])
def test_legacy_labels_without_n_are_ignored(value: str) -> None:
    found, problems = parse_preferences(value)
    assert found == ()
    assert len(problems) == 1 and "not set to n; ignored" in problems[0]


def test_terms_in_vocab_order_then_legacy() -> None:
    found, problems = parse_preferences("bots=n, search=y, xyz=n, train-ai=n")
    assert found == (("train-ai", False), ("search", True), ("bots", False))
    assert problems == ("legacy label 'bots' (vocab-03..04), kept", "unknown label 'xyz' ignored")


def test_combination_with_legacy_and_current_labels() -> None:
    # A site that still says train-genai=n but now allows train-ai: both terms reach policy.
    assert terms("train-ai=y, train-genai=n") == {"train-ai": True, "train-genai": False}


# --- protocols.md §3.6 / §3.8 vector 9: the attach draft's robots.txt example -------------

# attach-05 (as digested in protocols.md §3.6): the path is optional.
DRAFT_EXAMPLE = """\
User-Agent: *
Allow: /
Disallow: /never/
Content-Usage: train-ai=n
Content-Usage: /ai-ok/ train-ai=y

User-Agent: ExampleBot
Allow: /
Content-Usage: train-ai=y
"""
# The same example as written in earlier attach drafts, with "/" paths.
DRAFT_EXAMPLE_WITH_PATHS = DRAFT_EXAMPLE.replace(
    "Content-Usage: train-ai=", "Content-Usage: / train-ai="
)


@pytest.mark.parametrize("text", [DRAFT_EXAMPLE, DRAFT_EXAMPLE_WITH_PATHS])
@pytest.mark.parametrize(
    ("token", "path", "expected"),
    [
        ("OtherBot", "/test", {"train-ai": False}),
        ("OtherBot", "/x", {"train-ai": False}),
        ("OtherBot", "/never/test", None),
        ("OtherBot", "/never/x", None),
        ("OtherBot", "/ai-ok/test", {"train-ai": True}),
        ("OtherBot", "/ai-ok/x", {"train-ai": True}),
        ("OtherBot", "/ai-ok", {"train-ai": False}),
        ("ExampleBot", "/test", {"train-ai": True}),
        ("ExampleBot", "/never/test", {"train-ai": True}),
        ("ExampleBot", "/ai-ok/test", {"train-ai": True}),
        ("examplebot", "/x", {"train-ai": True}),
    ],
)
def test_vector_09_draft_example(
    text: str, token: str, path: str, expected: dict[str, bool] | None
) -> None:
    assert robots_terms(text, f"https://example.com{path}", token) == expected


def test_vector_09_statement_fields() -> None:
    file = robots(DRAFT_EXAMPLE)
    assert statements_from_robots(
        file, "https://example.com/ai-ok/x", "OtherBot", source="https://example.com/robots.txt"
    ) == (
        Statement(
            signal="content-usage",
            channel="robots.txt",
            terms=(("train-ai", True),),
            rule="Content-Usage: /ai-ok/ train-ai=y (line 5)",
            agent="*",
            source="https://example.com/robots.txt",
        ),
    )
    (statement,) = statements_from_robots(file, "https://example.com/x", "examplebot")
    assert statement.rule == "Content-Usage: train-ai=y (line 9)"
    assert statement.agent == "ExampleBot"
    assert statement.source is None


# --- vectors 10-12 -----------------------------------------------------------------------


def test_vector_10_identical_paths_most_restrictive() -> None:
    text = "User-agent: *\nContent-Usage: /a train-ai=y\nContent-Usage: /a train-ai=n\n"
    statements = statements_from_robots(robots(text), "https://example.com/a/b", "MyBot")
    assert [s.rule for s in statements] == [
        "Content-Usage: /a train-ai=y (line 2)",
        "Content-Usage: /a train-ai=n (line 3)",
    ]
    assert combine(statements) == {"train-ai": False}


def test_vector_11_robots_and_header_combined() -> None:
    text = "User-agent: *\nAllow: /\nContent-Usage: /blog/ train-ai=y\n"
    from_robots = statements_from_robots(robots(text), "https://example.com/blog/post", "MyBot")
    assert combine(from_robots) == {"train-ai": True}
    header = statement_from_header("train-ai=n")
    assert header is not None
    assert combine((*from_robots, header)) == {"train-ai": False}


def test_vector_12_comment_stripped() -> None:
    text = "User-agent: *\nContent-Usage: /docs train-ai=n # comment\n"
    (statement,) = statements_from_robots(robots(text), "https://example.com/docs/a", "MyBot")
    assert statement.terms == (("train-ai", False),)
    assert statement.rule == "Content-Usage: /docs train-ai=n (line 2)"
    assert statement.problems == ()
    assert statements_from_robots(robots(text), "https://example.com/other", "MyBot") == ()


# --- scoping and matching ----------------------------------------------------------------

SCOPING = [
    # The token's own group replaces '*' (RFC 9309), for Content-Usage as for Allow/Disallow.
    ("User-agent: *\nAllow: /\nContent-Usage: train-ai=n\n\nUser-agent: MyBot\nAllow: /\n",
     "/x", {}),
    (("User-agent: *\nAllow: /\nContent-Usage: train-ai=n\n\nUser-agent: MyBot\n"
     "Content-Usage: search=y\n"), "/x", {"search": True}),
    # robots.py (like Google) lets only Allow/Disallow end a run of user-agent lines: with no
    # Allow/Disallow in between, '*' and MyBot share one group.
    ("User-agent: *\nContent-Usage: train-ai=n\n\nUser-agent: MyBot\nAllow: /\n", "/x",
     {"train-ai": False}),
    ("User-agent: OtherBot\nContent-Usage: train-ai=n\n", "/x", {}),
    # Groups naming the token are combined.
    ("User-agent: MyBot\nContent-Usage: train-ai=y\n\nUser-agent: MyBot\nContent-Usage: search=n\n",
     "/x", {"train-ai": True, "search": False}),
    # Interleaved with Allow/Disallow; order carries no meaning.
    ("User-agent: *\nContent-Usage: /a/ train-ai=y\nDisallow: /b\nContent-Usage: /a train-ai=n\n",
     "/a/x", {"train-ai": True}),
    # The most specific rule decides all categories; search from the shorter rule is dropped.
    ("User-agent: *\nContent-Usage: train-ai=n, search=y\nContent-Usage: /a train-ai=y\n",
     "/a", {"train-ai": True}),
    # A rule with a path beats the path-less rule, even "/".
    ("User-agent: *\nContent-Usage: / train-ai=y\nContent-Usage: train-ai=n\n", "/x",
     {"train-ai": True}),
    # Path-less rules tie with each other: most restrictive.
    ("User-agent: *\nContent-Usage: train-ai=y\nContent-Usage: train-ai=n\n", "/x",
     {"train-ai": False}),
    # Wildcards and '$' as in Allow/Disallow; specificity counts octets.
    ("User-agent: *\nContent-Usage: /*.pdf$ train-ai=n\nContent-Usage: / train-ai=y\n",
     "/doc/a.pdf", {"train-ai": False}),
    ("User-agent: *\nContent-Usage: /*.pdf$ train-ai=n\nContent-Usage: / train-ai=y\n",
     "/doc/a.pdf?x=1", {"train-ai": True}),
    ("User-agent: *\nContent-Usage: /%7Euser train-ai=n\n", "/%7euser/x", {"train-ai": False}),
    ("User-agent: *\nContent-Usage: /a%20b train-ai=n\n", "/a%20b", {"train-ai": False}),
    ("User-agent: *\nContent-Usage: /A train-ai=n\n", "/a", {}),
    # Tab between path and preference; several spaces.
    ("User-agent: *\nContent-Usage: /a\ttrain-ai=n\n", "/a", {"train-ai": False}),
    ("User-agent: *\nContent-Usage:    /a    train-ai=n\n", "/a", {"train-ai": False}),
    # Directive name case-insensitive.
    ("user-agent: *\ncontent-usage: train-ai=n\n", "/a", {"train-ai": False}),
    ("User-agent: *\nCONTENT-USAGE: train-ai=n\n", "/a", {"train-ai": False}),
    # A rule outside any group belongs to none.
    ("Content-Usage: train-ai=n\nUser-agent: *\nAllow: /\n", "/a", {}),
    # A path without a preference is not a rule.
    ("User-agent: *\nContent-Usage: train-ai=n\nContent-Usage: /a\n", "/a/b", {"train-ai": False}),
    # A malformed preference still wins the longest match: unknown there.
    ("User-agent: *\nContent-Usage: train-ai=n\nContent-Usage: /a Train-AI=y\n", "/a/b", {}),
    # Legacy label in robots.txt.
    ("User-agent: *\nContent-Usage: train-genai=n\n", "/", {"train-genai": False}),
]


@pytest.mark.parametrize(("text", "path", "expected"), SCOPING)
def test_scoping(text: str, path: str, expected: dict[str, bool]) -> None:
    assert robots_terms(text, f"https://example.com{path}", "MyBot") == expected


def test_disallowed_url_has_no_preference() -> None:
    text = "User-agent: *\nDisallow: /\nContent-Usage: train-ai=y\n"
    assert statements_from_robots(robots(text), "https://example.com/a", "MyBot") == ()
    # robots.txt itself is implicitly allowed.
    assert combine(
        statements_from_robots(robots(text), "https://example.com/robots.txt", "MyBot")
    ) == {"train-ai": True}


def test_unreachable_robots_is_not_our_business_but_allow_all_is_empty() -> None:
    assert statements_from_robots(ALLOW_ALL, "https://example.com/", "MyBot") == ()


def test_malformed_winner_reports_problem() -> None:
    text = "User-agent: *\nContent-Usage: /a train-ai=n,\n"
    (statement,) = statements_from_robots(robots(text), "https://example.com/a", "MyBot")
    assert statement.terms == ()
    assert "not a Structured Fields Dictionary" in statement.problems[0]


def test_star_path_is_read_as_preference_and_noted() -> None:
    text = "User-agent: *\nContent-Usage: *.pdf train-ai=n\n"
    (statement,) = statements_from_robots(robots(text), "https://example.com/a.pdf", "MyBot")
    assert statement.terms == ()
    assert statement.problems[0] == (
        "line 2: a path must start with '/'; the whole value is read as the preference"
    )


def test_programmer_errors_raise() -> None:
    with pytest.raises(TypeError):
        statement_from_header(b"train-ai=n")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        statements_from_robots("User-agent: *", "https://example.com/", "MyBot")  # type: ignore[arg-type]


# --- combine -----------------------------------------------------------------------------


def _statement(*pairs: tuple[str, bool]) -> Statement:
    return Statement(signal="content-usage", channel="header", terms=pairs, rule="x")


@pytest.mark.parametrize(
    ("statements", "expected"),
    [
        ((), {}),
        ((_statement(),), {}),
        ((_statement(("train-ai", True)),), {"train-ai": True}),
        ((_statement(("train-ai", True)), _statement(("train-ai", False))), {"train-ai": False}),
        ((_statement(("train-ai", False)), _statement(("train-ai", True))), {"train-ai": False}),
        ((_statement(("train-ai", True), ("search", False)), _statement(("search", True))),
         {"train-ai": True, "search": False}),
    ],
)
def test_combine(statements: tuple[Statement, ...], expected: dict[str, bool]) -> None:
    assert combine(statements) == expected
    assert combine(iter(statements)) == expected


# --- robustness --------------------------------------------------------------------------


def test_garbage_headers_never_raise() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        size = rng.randrange(0, 80)
        value = bytes(rng.randrange(256) for _ in range(size)).decode("latin-1")
        statement = statement_from_header(value)
        assert statement is None or isinstance(statement, Statement)


@pytest.mark.parametrize(
    "value",
    [
        "train-ai=" + "n" * 100_000,
        'train-ai="' + "n" * 100_000,
        "train-ai=n, " * 10_000 + "search=y",
        ", ".join(f"k{i}=n" for i in range(20_000)),
        '"' * 100_000,
    ],
)
def test_large_headers(value: str) -> None:
    statement = statement_from_header(value)
    assert statement is not None
    assert len(statement.rule) <= 240
    assert all(len(problem) <= 300 for problem in statement.problems)


def test_garbage_robots_never_raise() -> None:
    rng = random.Random(11)
    pieces = ["User-agent: *\n", "User-agent: MyBot\n", "Content-Usage: ", "/a ", "/", "train-ai=",
              "n", "y", ",", ";", '"', "\n", " ", "\t", "Disallow: /b\n", "#", "*", "$", "é"]
    for _ in range(500):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 40)))
        file = parse_robots(text.encode("utf-8"))
        for url in ("https://example.com/a", "https://example.com/b/c", "https://example.com/"):
            for statement in statements_from_robots(file, url, "MyBot"):
                assert statement.channel == "robots.txt"


def test_large_robots_value() -> None:
    text = "User-agent: *\nContent-Usage: /a " + "train-ai=n, " * 1000 + "x\n"
    (statement,) = statements_from_robots(robots(text), "https://example.com/a", "MyBot")
    assert len(statement.rule) <= 240


def test_empty_rule_is_no_rule() -> None:
    text = "User-agent: *\nContent-Usage:\nContent-Usage: /a\n"
    assert statements_from_robots(robots(text), "https://example.com/a", "MyBot") == ()


@pytest.mark.parametrize(("url", "train"), [("https://x.org/~joe/a", False),
                                           ("https://x.org/%7Ejoe/a", True)])
def test_longest_match_in_either_reading_of_percent_encoding_most_restrictive(url, train):
    """A more specific rule that matches in one reading only cannot lift the rule the other
    reading selects: the winners of both readings are combined, most restrictive."""
    robots = parse_robots(b"User-agent: *\nAllow: /\nContent-Usage: / train-ai=n\n"
                          b"Content-Usage: /%7Ejoe/ train-ai=y\n")
    assert combine(statements_from_robots(robots, url, "Bot"))["train-ai"] is train
    # where both readings select the specific rule, it applies
    robots = parse_robots(b"User-agent: *\nAllow: /\nContent-Usage: / train-ai=n\n"
                          b"Content-Usage: /~joe/ train-ai=y\n")
    got = combine(statements_from_robots(robots, "https://x.org/~joe/a", "Bot"))
    assert got["train-ai"] is True
