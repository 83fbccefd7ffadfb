"""Spawning ai.txt (crawler.optout.aitxt): digest vectors, real-world shapes, robustness."""

from __future__ import annotations

import dataclasses
import random

import pytest

from crawler.optout.aitxt import AI_TXT_SIGNAL, AiTxtFile, parse_ai_txt, statement_for
from crawler.optout.model import Statement

GENERATOR = """\
# Spawning AI
# Prevent datasets from using the following file types

User-Agent: *
Disallow: *.txt
Disallow: *.pdf
Disallow: *.jpg
Disallow: *.py
Disallow: /
Disallow: *
"""


def parse(text: str) -> AiTxtFile:
    return parse_ai_txt(text.encode("utf-8"))


def train(text: str, url: str, token: str = "MyBot") -> bool | None:
    statement = statement_for(parse(text), url, token)
    return None if statement is None else statement.term("ai-train")


# --- protocols.md §6.4 ---------------------------------------------------------------------


def test_vector_1_extension_wildcard() -> None:
    f = parse("User-Agent: *\nDisallow: *.jpg")
    assert f.is_spawning_format and f.robots is not None
    statement = statement_for(f, "https://ex.com/img/a.jpg", "MyBot")
    assert statement == Statement(
        signal="ai-txt", channel="file", terms=(("ai-train", False),),
        rule="Disallow: *.jpg (line 2)", agent="*",
    )
    # "/a.png -> no statement from ai.txt (allowed by this signal)"
    assert statement_for(f, "https://ex.com/a.png", "MyBot") is None


def test_vector_2_disallow_all() -> None:
    for url in ("https://ex.com/", "https://ex.com/a.png", "https://ex.com/x/y?z=1"):
        assert train("User-Agent: *\nDisallow: /", url) is False


def test_vector_3_prose_is_not_spawning_format() -> None:
    f = parse("# About this site\n\nWe love AI. Please be kind to our content.\n"
              "Contact us at hello@example.com if you want to train on it.\n")
    assert not f.is_spawning_format and f.robots is None
    assert "prose" in f.problems[0]
    assert statement_for(f, "https://ex.com/a.jpg", "MyBot") is None


def test_vector_3_empty_body_no_statement() -> None:
    # A 404 is the caller's (no file = no statement); an empty 200 body says nothing either.
    f = parse_ai_txt(b"")
    assert not f.is_spawning_format
    assert statement_for(f, "https://ex.com/", "MyBot") is None


# --- generator output and per-bot groups ---------------------------------------------------


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("https://ex.com/img/a.jpg", "Disallow: *.jpg (line 7)"),
        ("https://ex.com/doc.pdf", "Disallow: *.pdf (line 6)"),
        ("https://ex.com/src/x.py", "Disallow: *.py (line 8)"),
        # "/" and "*" have the same length: the first in the file decides.
        ("https://ex.com/page.html", "Disallow: / (line 9)"),
        ("https://ex.com/", "Disallow: / (line 9)"),
    ],
)
def test_generator_file(url: str, rule: str) -> None:
    f = parse(GENERATOR)
    assert f.is_spawning_format
    statement = statement_for(f, url, "AnyBot")
    assert statement is not None
    assert statement.terms == (("ai-train", False),)
    assert statement.rule == rule
    assert statement.signal == AI_TXT_SIGNAL and statement.agent == "*"


def test_generator_file_with_only_wildcards() -> None:
    text = "# Spawning AI\nUser-Agent: *\nDisallow: *.png\nDisallow: *.gif\n"
    assert train(text, "https://ex.com/a/b.PNG") is None  # case-sensitive, as robots.txt
    assert train(text, "https://ex.com/a/b.png") is False
    assert train(text, "https://ex.com/a/b.gif?size=2") is False
    assert train(text, "https://ex.com/a/b.html") is None


def test_allow_rule_gives_explicit_permission() -> None:
    text = "User-Agent: *\nDisallow: /\nAllow: *.png\n"
    statement = statement_for(parse(text), "https://ex.com/img/a.png", "MyBot")
    assert statement is not None
    assert statement.terms == (("ai-train", True),)
    assert statement.rule == "Allow: *.png (line 3)"
    assert train(text, "https://ex.com/img/a.jpg") is False


def test_allow_all() -> None:
    assert train("User-Agent: *\nAllow: /\n", "https://ex.com/a.jpg") is True


def test_empty_disallow_says_nothing() -> None:
    assert train("User-Agent: *\nDisallow:\n", "https://ex.com/a.jpg") is None


PER_BOT = """\
User-Agent: GPTBot
Disallow: /

User-Agent: ClaudeBot
Disallow: /images/

User-Agent: *
Allow: /
"""


@pytest.mark.parametrize(
    ("token", "url", "expected", "agent"),
    [
        ("GPTBot", "https://ex.com/a", False, "GPTBot"),
        ("gptbot", "https://ex.com/a", False, "GPTBot"),  # tokens match case-insensitively
        ("ClaudeBot", "https://ex.com/images/x.jpg", False, "ClaudeBot"),
        ("ClaudeBot", "https://ex.com/text", None, None),  # its group has no matching rule
        ("MyBot", "https://ex.com/images/x.jpg", True, "*"),
    ],
)
def test_per_bot_groups(token: str, url: str, expected: bool | None, agent: str | None) -> None:
    statement = statement_for(parse(PER_BOT), url, token)
    if expected is None:
        assert statement is None
    else:
        assert statement is not None
        assert statement.term("ai-train") is expected
        assert statement.agent == agent


def test_per_bot_group_without_star_does_not_bind_others() -> None:
    text = "User-Agent: GPTBot\nUser-Agent: CCBot\nDisallow: /\n"
    assert train(text, "https://ex.com/a", "CCBot") is False
    assert train(text, "https://ex.com/a", "MyBot") is None


def test_commented_file_with_long_header_is_spawning_format() -> None:
    text = (
        "# ai.txt for https://example.com\n"
        "# Spawning ai.txt spec: https://site.spawning.ai/spawning-ai-txt\n"
        "# Policy: disallow training-data harvesting\n"
        "# ------------------------------------------------------------------\n\n"
        "User-Agent: *\nDisallow: /\n\n"
        "User-Agent: OAI-SearchBot\nAllow: /\n"
    )
    f = parse(text)
    assert f.is_spawning_format
    assert train(text, "https://example.com/blog", "MyBot") is False
    assert train(text, "https://example.com/blog", "OAI-SearchBot") is True


def test_source_and_problems_are_carried() -> None:
    text = "User-Agent: *\nDisalow: /\n"  # Google's accepted typo
    f = parse(text)
    assert f.is_spawning_format and f.problems
    statement = statement_for(f, "https://ex.com/x", "MyBot", source="https://ex.com/ai.txt")
    assert statement is not None
    assert statement.source == "https://ex.com/ai.txt"
    assert statement.problems == f.problems
    # The caller may change the channel.
    assert dataclasses.replace(statement, channel="link").channel == "link"


# --- other files named ai.txt ----------------------------------------------------------------


NOT_SPAWNING = {
    "aitxt.ing front matter": (
        "---\nupdated: 2026-01-14\nscope: /\n---\n# Example Corp\n\nWe make widgets.\n"
        "## What we don't do\n- We don't sell data\n"
    ),
    "markdown with a fenced robots example": (
        "# ai.txt\n\nAdd this to your robots.txt:\n\n```\nUser-Agent: GPTBot\nDisallow: /\n```\n"
    ),
    "html soft 404": "<!DOCTYPE html>\n<html><body><h1>Not found</h1></body></html>\n",
    "html with robots text": "<html><pre>\nUser-Agent: *\nDisallow: /\n</pre></html>",
    "prose with a stray directive": (
        "This website does not consent to AI training.\nAll rights reserved by the owner.\n"
        "Please contact us for licensing.\nUser-Agent: *\nDisallow: /\nThank you for reading.\n"
    ),
    "agents but no rules": "User-Agent: *\nUser-Agent: GPTBot\n",
    "rules but no agent": "Disallow: /\nDisallow: *.jpg\n",
    "yaml policy": "policies:\n  training: deny\n  scraping: allow\n",
    "json": '{"ai": {"train": false}}',
    "only comments": "# nothing here\n# really\n",
    "whitespace": " \n\t\r\n",
}


@pytest.mark.parametrize("text", NOT_SPAWNING.values(), ids=NOT_SPAWNING.keys())
def test_not_spawning_format(text: str) -> None:
    f = parse(text)
    assert f.is_spawning_format is False
    assert f.robots is None
    assert len(f.problems) == 1 and f.problems[0]
    assert statement_for(f, "https://ex.com/a.jpg", "GPTBot") is None


def test_non_directive_known_keys_count_as_directives() -> None:
    text = "Sitemap: https://ex.com/s.xml\nUser-Agent: *\nCrawl-delay: 5\nDisallow: /private\n"
    assert parse(text).is_spawning_format


# --- robustness ----------------------------------------------------------------------------


def test_rejects_non_bytes() -> None:
    with pytest.raises(TypeError):
        parse_ai_txt("User-Agent: *")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        statement_for(None, "https://ex.com/", "MyBot")  # type: ignore[arg-type]


def test_result_is_frozen() -> None:
    f = parse("User-Agent: *\nDisallow: /")
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.is_spawning_format = False  # type: ignore[misc]


def test_invalid_utf8_and_bom() -> None:
    f = parse_ai_txt(b"\xef\xbb\xbfUser-Agent: *\nDisallow: /caf\xe9\n")
    assert f.is_spawning_format
    assert any("UTF-8" in p for p in f.problems)
    assert statement_for(f, "https://ex.com/caf%E9", "MyBot") is not None


@pytest.mark.parametrize("seed", range(50))
def test_garbage_bytes_never_raise(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = b"User-Agent: */Disallow:Allow:\n\r#*$<>-\x00\xff\xfe\xc3\xa9 abc.jpg---```"
    body = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 400)))
    if seed % 2:
        body = rng.randbytes(rng.randrange(0, 400))
    f = parse_ai_txt(body)
    assert isinstance(f.problems, tuple)
    assert f.size == len(body)
    for url in ("https://ex.com/", "https://ex.com/a.jpg", "/x?y", ""):
        result = statement_for(f, url, "MyBot")
        assert result is None or isinstance(result, Statement)
