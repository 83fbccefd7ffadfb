"""noai / noimageai in X-Robots-Tag and robots meta (crawler.optout.noai): §6.4 vectors 4-9."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from crawler.optout.model import Statement
from crawler.optout.noai import (
    AI_DIRECTIVES,
    Directives,
    directives_from_meta,
    directives_from_x_robots_tag,
    statement_from_meta,
    statement_from_x_robots_tag,
)


def header_terms(values: list[str], token: str = "mybot") -> dict[str, bool] | None:
    statement = statement_from_x_robots_tag(values, token)
    return None if statement is None else dict(statement.terms)


def meta_terms(metas: list[tuple[str, str, int]], token: str = "mybot") -> dict[str, bool] | None:
    statement = statement_from_meta(metas, token)
    return None if statement is None else dict(statement.terms)


def test_ai_directives() -> None:
    assert AI_DIRECTIVES == ("noai", "noimageai", "noml", "noarchive")


# --- protocols.md §6.4 vectors 4-9 -------------------------------------------------------


def test_vector_4_x_robots_tag_noai() -> None:
    assert statement_from_x_robots_tag(["noai"], "mybot") == Statement(
        signal="noai", channel="header", terms=(("noai", False),), rule="X-Robots-Tag: noai"
    )


def test_vector_5_meta_noimageai_case_insensitive() -> None:
    statement = statement_from_meta([("robots", "NoImageAI", 7)], "mybot")
    assert statement == Statement(
        signal="noai",
        channel="meta",
        terms=(("noimageai", False),),
        rule='<meta name="robots" content="NoImageAI"> (line 7)',
    )
    # Images only: "noai" (text too) is not implied.
    assert statement.term("noai") is None


def test_vector_6_other_bot_does_not_apply() -> None:
    assert statement_from_x_robots_tag(["otherbot: noai"], "mybot") is None
    directives = directives_from_x_robots_tag(["otherbot: noai"], "mybot")
    assert directives.ai == ()
    assert directives.problems == ("'otherbot: noai' addresses another crawler; ignored",)


def test_vector_7_scoped_to_us() -> None:
    statement = statement_from_x_robots_tag(["MyBot: noindex, noai"], "mybot")
    assert statement == Statement(
        signal="noai",
        channel="header",
        terms=(("noai", False),),
        rule="X-Robots-Tag: MyBot: noindex, noai",
        agent="mybot",
    )
    directives = directives_from_x_robots_tag(["MyBot: noindex, noai"], "MyBot")
    assert directives == Directives(
        ai=("noai",), other=("noindex",), rules=("X-Robots-Tag: MyBot: noindex, noai",),
        scoped=True,
    )


def test_vector_8_noindex_is_not_an_ai_signal() -> None:
    assert statement_from_x_robots_tag(["noindex"], "mybot") is None
    assert directives_from_x_robots_tag(["noindex"], "mybot").other == ("noindex",)


def test_vector_9_noarchive_meta() -> None:
    assert meta_terms([("robots", "noarchive", 1)]) == {"noarchive": False}


# --- X-Robots-Tag scoping (protocols.md §6.3 [REC]) --------------------------------------

HEADER_CASES = [
    (["noai, noimageai"], {"noai": False, "noimageai": False}),
    (["noai", "noimageai"], {"noai": False, "noimageai": False}),
    (["NOAI"], {"noai": False}),
    (["noml"], {"noml": False}),
    (["noarchive"], {"noarchive": False}),
    (["none"], None),
    (["all"], None),
    (["noindex, nofollow"], None),
    ([], None),
    ([""], None),
    # A prefix scopes the items that follow it on the same line...
    (["otherbot: noindex, noai"], None),
    (["mybot: noindex", "noai"], {"noai": False}),
    # ...until another prefix.
    (["otherbot: noindex, mybot: noai"], {"noai": False}),
    (["mybot: noindex, otherbot: noai"], None),
    # A new header line resets the scope to all.
    (["otherbot: noindex", "noai"], {"noai": False}),
    # Crawler names compare case-insensitively.
    (["MYBOT: NoAI"], {"noai": False}),
    (["mybot:noai"], {"noai": False}),
    (["  mybot  :  noai  "], {"noai": False}),
    # Valued directives are not crawler names.
    (["max-snippet: 50, noai"], {"noai": False}),
    (["max-image-preview: large, noai"], {"noai": False}),
    (["max-video-preview:-1, noai"], {"noai": False}),
    (["unavailable_after: 25 Jun 2010 15:00:00 PST, noai"], {"noai": False}),
    # An RFC 850 date holds a comma; the date stays one item.
    (["unavailable_after: Sunday, 01-Sep-2024 15:00:00 PST, noimageai"], {"noimageai": False}),
    (["otherbot: unavailable_after: Sunday, 01-Sep-2024 15:00:00 PST, noai"], None),
    (["otherbot: unavailable_after: Sunday, mybot: noai"], {"noai": False}),
    # Space-separated directives in a header are read too.
    (["noai noimageai"], {"noai": False, "noimageai": False}),
    # Bot names with dots, digits and underscores.
    (["my.bot_2: noai"], None),
    # Similar-looking words are not the directive.
    (["noaiml, no-ai, noai2"], None),
]


@pytest.mark.parametrize(("values", "expected"), HEADER_CASES)
def test_x_robots_tag(values: list[str], expected: dict[str, bool] | None) -> None:
    assert header_terms(values) == expected


def test_token_with_punctuation_matches_its_scope() -> None:
    assert header_terms(["my.bot_2: noai"], "My.Bot_2") == {"noai": False}


def test_union_of_all_and_our_scope() -> None:
    statement = statement_from_x_robots_tag(
        ["noimageai", "mybot: noai", "otherbot: noml"], "MyBot"
    )
    assert statement is not None
    assert statement.terms == (("noimageai", False), ("noai", False))
    assert statement.agent == "MyBot"
    assert statement.rule == "X-Robots-Tag: noimageai; X-Robots-Tag: mybot: noai"
    assert statement.problems == ("'otherbot: noml' addresses another crawler; ignored",)


def test_repeated_directive_is_one_term() -> None:
    statement = statement_from_x_robots_tag(["noai, noai", "noai"], "mybot")
    assert statement is not None and statement.terms == (("noai", False),)
    assert statement.rule == "X-Robots-Tag: noai, noai; X-Robots-Tag: noai"


def test_other_directives_are_kept_apart() -> None:
    directives = directives_from_x_robots_tag(
        ["noindex, max-snippet: 50, noai", "unavailable_after: Sunday, 01-Sep-2024 15:00 PST"],
        "mybot",
    )
    assert directives.ai == ("noai",)
    assert directives.other == (
        "noindex",
        "max-snippet:50",
        "unavailable_after:sunday, 01-sep-2024 15:00 pst",
    )
    assert directives.problems == ()


def test_unknown_directive_is_noted() -> None:
    directives = directives_from_x_robots_tag(["noai, nofoo"], "mybot")
    assert directives.other == ("nofoo",)
    assert directives.problems == ("unknown directive 'nofoo'",)


def test_header_input_forms() -> None:
    assert header_terms("noai") == {"noai": False}  # type: ignore[arg-type]
    statement = statement_from_x_robots_tag([b"noai"], "mybot")
    assert statement is not None and statement.terms == (("noai", False),)
    assert statement_from_x_robots_tag((b"\xff\xfe", "noimageai"), "mybot") is not None


# --- robots meta -------------------------------------------------------------------------

META_CASES = [
    ([("robots", "noai", 1)], {"noai": False}),
    ([("ROBOTS", "NOAI, NoImageAI", 1)], {"noai": False, "noimageai": False}),
    ([("robots", "noai noimageai", 1)], {"noai": False, "noimageai": False}),
    ([("robots", " noai ,noml ", 1)], {"noai": False, "noml": False}),
    ([("robots", "noindex, nofollow", 1)], None),
    ([("robots", "", 1)], None),
    ([("mybot", "noai", 1)], {"noai": False}),
    ([("MyBot", "noai", 1)], {"noai": False}),
    ([("otherbot", "noai", 1)], None),
    ([("googlebot", "noai", 1), ("robots", "index", 2)], None),
    ([("description", "noai", 1)], None),
    # Several tags add up.
    ([("robots", "noai", 1), ("mybot", "noimageai", 2)], {"noai": False, "noimageai": False}),
    ([("robots", "all", 1), ("robots", "noarchive", 2)], {"noarchive": False}),
    ([("robots", "max-snippet:50, noai", 1)], {"noai": False}),
    ([("robots", "max-snippet: 50 , noai", 1)], {"noai": False}),
]


@pytest.mark.parametrize(("metas", "expected"), META_CASES)
def test_meta(metas: list[tuple[str, str, int]], expected: dict[str, bool] | None) -> None:
    assert meta_terms(metas) == expected


def test_meta_statement_fields() -> None:
    statement = statement_from_meta(
        [("robots", "noai", 3), ("mybot", "noimageai", 4), ("robots", "noindex", 5)], "MyBot"
    )
    assert statement == Statement(
        signal="noai",
        channel="meta",
        terms=(("noai", False), ("noimageai", False)),
        rule='<meta name="robots" content="noai"> (line 3); '
        '<meta name="mybot" content="noimageai"> (line 4)',
        agent="MyBot",
    )


@dataclass(frozen=True)
class Meta:
    name: str | None
    content: str
    line: int


@dataclass(frozen=True)
class Head:
    metas: tuple[Meta, ...]


def test_meta_objects_and_head() -> None:
    metas = (Meta("robots", "noai", 1), Meta(None, "noai", 2), Meta("robots", "noindex", 3))
    expected = Statement(
        signal="noai", channel="meta", terms=(("noai", False),),
        rule='<meta name="robots" content="noai"> (line 1)',
    )
    assert statement_from_meta(metas, "mybot") == expected
    assert statement_from_meta(Head(metas), "mybot") == expected
    assert directives_from_meta(Head(metas), "mybot").other == ("noindex",)


def test_meta_from_htmlmeta() -> None:
    htmlmeta = pytest.importorskip("crawler.optout.htmlmeta")
    head = htmlmeta.parse_html_head(
        b"<html><head>\n<title>x</title>\n"
        b'<META NAME="Robots" CONTENT="NoAI, NoImageAI">\n</head><body></body></html>'
    )
    statement = statement_from_meta(head, "mybot")
    assert statement is not None
    assert statement.terms == (("noai", False), ("noimageai", False))
    assert statement.rule.endswith("(line 3)")


def test_programmer_errors_raise() -> None:
    with pytest.raises(TypeError):
        statement_from_x_robots_tag(["noai"], None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        statement_from_x_robots_tag([None], "mybot")  # type: ignore[list-item]
    with pytest.raises(TypeError):
        statement_from_meta("robots", "mybot")  # type: ignore[arg-type]


# --- robustness --------------------------------------------------------------------------


def test_garbage_never_raises() -> None:
    rng = random.Random(6)
    words = ["noai", "mybot:", "otherbot:", ",", " ", ":", "max-snippet:", "unavailable_after:",
             "noimageai", "\t", "none"]
    for _ in range(2000):
        if rng.random() < 0.5:
            value = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80))).decode(
                "latin-1"
            )
        else:
            value = "".join(rng.choice(words) for _ in range(rng.randrange(0, 20)))
        statement = statement_from_x_robots_tag([value, value], "mybot")
        assert statement is None or statement.terms
        statement = statement_from_meta([("robots", value, 1), ("mybot", value, 2)], "mybot")
        assert statement is None or statement.terms


@pytest.mark.parametrize(
    "value",
    [
        "noai, " * 20_000,
        "x" * 100_000,
        "mybot: " * 15_000 + "noai",
        "unavailable_after: " + "a, " * 30_000,
        "nofoo" + ", nobar" * 20_000,
        "," * 100_000,
    ],
)
def test_large_values(value: str) -> None:
    directives = directives_from_x_robots_tag([value], "mybot")
    assert len(directives.problems) <= 20
    assert all(len(rule) <= 240 for rule in directives.rules)
    directives_from_meta([("robots", value, 1)], "mybot")
