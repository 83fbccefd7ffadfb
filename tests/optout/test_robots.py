"""RFC 9309 parser and evaluator (crawler.optout.robots): vectors, reporting, robustness."""

from __future__ import annotations

import random
import subprocess
import sys
import timeit

import pytest

from crawler.optout.pathpattern import compile_pattern
from crawler.optout.robots import (
    ALLOW_ALL,
    MAX_LINE_PROBLEMS,
    ROBOTS_PARSE_LIMIT,
    RequestRate,
    RobotsFile,
    RobotsLine,
    RobotsOutcome,
    RobotsRule,
    RobotsVerdict,
    is_valid_product_token,
    parse_robots,
    robots_outcome,
)


def parse(text: str) -> RobotsFile:
    return parse_robots(text.encode("utf-8"))


def allowed(text: str, url: str, token: str = "MyBot") -> bool:
    return parse(text).verdict(url, token).allowed


# --- protocols.md §1.7 -------------------------------------------------------------------


def test_vector_01_404_is_unavailable_allow_all() -> None:
    assert robots_outcome(404) is RobotsOutcome.UNAVAILABLE
    assert ALLOW_ALL.verdict("https://example.com/anything", "MyBot") == RobotsVerdict(
        allowed=True, agent=None, explicit=False, rule=None, group_line=None
    )
    assert ALLOW_ALL.groups == () and ALLOW_ALL.problems == () and not ALLOW_ALL.truncated


@pytest.mark.parametrize("status", [503, None])
def test_vector_02_503_or_timeout_is_unreachable(status: int | None) -> None:
    assert robots_outcome(status) is RobotsOutcome.UNREACHABLE


def test_vector_03_redirect_chain() -> None:
    # The caller follows redirects and parses the file reached; a 3xx reaching us means the
    # caller gave up (too many hops): conservative "unreachable".
    assert robots_outcome(200) is RobotsOutcome.PARSED
    assert allowed("User-agent: *\nDisallow: /", "https://original.example/x") is False
    assert robots_outcome(301) is RobotsOutcome.UNREACHABLE


def test_vector_04_specific_group_replaces_star() -> None:
    text = "User-agent: *\nDisallow: /\n\nUser-agent: MyBot\nAllow: /public"
    verdict = parse(text).verdict("/private/x", "mybot")
    assert verdict == RobotsVerdict(
        allowed=True, agent="MyBot", explicit=True, rule=None, group_line=4
    )


@pytest.mark.parametrize(
    ("text", "url", "expected_rule"),
    [
        ("User-agent: *\nAllow: /folder\nDisallow: /folder", "/folder/page", "Allow: /folder"),
        ("User-agent: *\nAllow: /p\nDisallow: /", "/page", "Allow: /p"),
    ],
)
def test_vector_05_tie_and_longest_match(text: str, url: str, expected_rule: str) -> None:
    verdict = parse(text).verdict(url, "MyBot")
    assert verdict.allowed is True
    assert verdict.rule is not None and verdict.rule.text == expected_rule


@pytest.mark.parametrize(
    ("url", "expected"), [("/a.gif", False), ("/a.gif?x=1", True), ("/A.GIF", True)]
)
def test_vector_06_dollar_and_case(url: str, expected: bool) -> None:
    assert allowed("User-agent: *\nDisallow: /*.gif$", url) is expected


@pytest.mark.parametrize(
    ("text", "url", "expected"),
    [
        ("User-agent: *\nDisallow: /foo/bar%2Fbaz", "/foo/bar/baz", True),
        ("User-agent: *\nDisallow: /foo/bar%2Fbaz", "/foo/bar%2fbaz", False),
        ("User-agent: *\nDisallow: /a%3cd.html", "/a<d.html", False),
        ("User-agent: *\nDisallow: /a%3cd.html", "/a%3Cd.html", False),
    ],
)
def test_vector_07_percent_encoding(text: str, url: str, expected: bool) -> None:
    assert allowed(text, url) is expected


def test_vector_08_blank_line_and_merge() -> None:
    assert allowed("User-agent: a\n\nUser-agent: b\nDisallow: /", "/z", "a") is False
    robots = parse("User-agent: a\nDisallow: /x\n\nUser-agent: a\nDisallow: /y")
    verdict = robots.verdict("/y", "a")
    assert verdict.allowed is False
    assert verdict.rule is not None and (verdict.rule.text, verdict.rule.line) == (
        "Disallow: /y",
        5,
    )
    assert verdict.group_line == 4
    assert len(robots.matching_groups("A")) == 2


def test_vector_09_extension_lines_do_not_break_group() -> None:
    text = "User-agent: *\nContent-Signal: ai-train=no\nContent-Usage: train-ai=n\nDisallow: /x"
    robots = parse(text)
    assert robots.verdict("/x", "MyBot").allowed is False
    (group,) = robots.groups
    assert group.extensions == (
        RobotsLine("content-signal", "ai-train=no", 2),
        RobotsLine("content-usage", "train-ai=n", 3),
    )
    assert robots.problems == ()


@pytest.mark.parametrize(
    ("line", "delay", "rate"),
    [
        ("Crawl-delay: 2.5", 2.5, None),
        ("Crawl-delay: abc", None, None),
        ("Request-rate: 100/15m", None, RequestRate(100, 900.0)),
    ],
)
def test_vector_10_crawl_delay_request_rate(
    line: str, delay: float | None, rate: RequestRate | None
) -> None:
    robots = parse(f"User-agent: *\n{line}\nDisallow: /x")
    assert robots.crawl_delay("MyBot") == delay
    assert robots.request_rate("MyBot") == rate


def test_vector_11_parse_limit() -> None:
    head = b"User-agent: *\n"
    filler = b"# " + b"x" * 97 + b"\n"
    body = head + filler * ((550_000 - len(head)) // len(filler))
    body += b"\n" * (550_000 - len(body))
    assert len(body) == 550_000
    body += b"Disallow: /\n"
    body += (filler * 800)[: 600 * 1024 - len(body)]
    assert len(body) == 600 * 1024
    robots = parse_robots(body)
    assert robots.truncated is True
    assert robots.size == 600 * 1024
    assert robots.groups[0].rules == ()
    assert robots.verdict("/x", "MyBot").allowed is True
    assert robots.problems[0].startswith(f"file truncated at {ROBOTS_PARSE_LIMIT} bytes")
    # Within a larger limit the rule counts.
    assert parse_robots(body, limit=1_000_000).verdict("/x", "MyBot").allowed is False


def test_vector_12_exact_token_match_not_substring() -> None:
    text = "User-agent: bot\nDisallow: /\n\nUser-agent: *\nAllow: /"
    verdict = parse(text).verdict("/", "ExampleBot")
    assert verdict.allowed is True
    assert (verdict.agent, verdict.explicit) == ("*", False)


# --- robots_outcome ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, RobotsOutcome.PARSED),
        (204, RobotsOutcome.PARSED),
        (301, RobotsOutcome.UNREACHABLE),
        (404, RobotsOutcome.UNAVAILABLE),
        (401, RobotsOutcome.UNAVAILABLE),
        (403, RobotsOutcome.UNAVAILABLE),
        (410, RobotsOutcome.UNAVAILABLE),
        (429, RobotsOutcome.UNREACHABLE),
        (500, RobotsOutcome.UNREACHABLE),
        (503, RobotsOutcome.UNREACHABLE),
        (100, RobotsOutcome.UNREACHABLE),
        (600, RobotsOutcome.UNREACHABLE),
        (None, RobotsOutcome.UNREACHABLE),
    ],
)
def test_robots_outcome(status: int | None, outcome: RobotsOutcome) -> None:
    assert robots_outcome(status) is outcome
    assert outcome.value == str(outcome.value)


@pytest.mark.parametrize("status", ["200", 200.0, True])
def test_robots_outcome_rejects_wrong_types(status: object) -> None:
    with pytest.raises(TypeError):
        robots_outcome(status)  # type: ignore[arg-type]


# --- reporting ----------------------------------------------------------------------------

REPORT_FILE = """\
# comment
Sitemap: https://example.com/sitemap.xml
License: https://example.com/license.xml
Content-Signal: search=yes, ai-train=no

User-agent: *
Disallow: /private/
Allow: /private/ok   # public part
Crawl-delay: 3

User-agent: GPTBot
User-agent: CCBot
Disallow: /
Content-Usage: train-ai=n

User-agent: gptbot
Allow: /open/
"""


def test_rule_reporting_explicit_group() -> None:
    robots = parse(REPORT_FILE)
    verdict = robots.verdict("https://example.com/article?id=1", "GPTBot")
    assert verdict.allowed is False
    assert verdict.agent == "GPTBot"
    assert verdict.explicit is True
    assert verdict.group_line == 11
    assert verdict.rule == RobotsRule(
        kind="disallow", pattern=compile_pattern("/"), line=13, text="Disallow: /"
    )
    # Merged with the later 'gptbot' group: its longer Allow wins, and names that group.
    verdict = robots.verdict("https://example.com/open/x", "gptbot")
    assert verdict.allowed is True
    assert (verdict.agent, verdict.group_line) == ("gptbot", 16)
    assert verdict.rule is not None and (verdict.rule.text, verdict.rule.line) == (
        "Allow: /open/",
        17,
    )
    # Stacked user-agent lines: CCBot shares the group.
    verdict = robots.verdict("/open/x", "ccbot")
    assert (verdict.allowed, verdict.agent, verdict.group_line) == (False, "CCBot", 11)


def test_rule_reporting_star_group() -> None:
    robots = parse(REPORT_FILE)
    verdict = robots.verdict("/private/ok/1", "MyBot")
    assert (verdict.allowed, verdict.agent, verdict.explicit, verdict.group_line) == (
        True,
        "*",
        False,
        6,
    )
    assert verdict.rule is not None
    assert (verdict.rule.text, verdict.rule.line) == ("Allow: /private/ok", 8)
    verdict = robots.verdict("/private/x", "MyBot")
    assert verdict.rule is not None and verdict.rule.text == "Disallow: /private/"
    verdict = robots.verdict("/", "MyBot")
    assert (verdict.allowed, verdict.rule, verdict.agent) == (True, None, "*")


def test_global_lines_extensions_and_delays() -> None:
    robots = parse(REPORT_FILE)
    assert robots.sitemaps == ("https://example.com/sitemap.xml",)
    assert robots.global_lines == (
        RobotsLine("sitemap", "https://example.com/sitemap.xml", 2),
        RobotsLine("license", "https://example.com/license.xml", 3),
        RobotsLine("content-signal", "search=yes, ai-train=no", 4),
    )
    assert robots.groups[1].extensions == (RobotsLine("content-usage", "train-ai=n", 14),)
    assert robots.groups[1].agents == ("GPTBot", "CCBot")
    assert robots.crawl_delay("MyBot") == 3.0
    assert robots.crawl_delay("GPTBot") is None
    assert robots.problems == ()


def test_star_not_inherited_by_specific_group() -> None:
    text = "User-agent: *\nDisallow: /x/\nUser-agent: FooBot\nDisallow: /y/\n"
    robots = parse(text)
    assert robots.verdict("/x/page", "FooBot").allowed is True
    assert robots.verdict("/y/page", "FooBot").allowed is False
    assert robots.verdict("/x/page", "BarBot").allowed is False


def test_fallback_to_star_false() -> None:
    robots = parse(REPORT_FILE)
    assert robots.matching_groups("MyBot", fallback_to_star=False) == ()
    verdict = robots.verdict("/private/x", "MyBot", fallback_to_star=False)
    assert verdict == RobotsVerdict(
        allowed=True, agent=None, explicit=False, rule=None, group_line=None
    )
    verdict = robots.verdict("/x", "CCBot", fallback_to_star=False)
    assert (verdict.allowed, verdict.explicit) == (False, True)


def test_no_star_group_allows() -> None:
    robots = parse("User-agent: FooBot\nDisallow: /\n")
    assert robots.verdict("/x", "BarBot") == RobotsVerdict(True, None, False, None, None)


def test_trailing_group_without_rules_allows() -> None:
    robots = parse("User-agent: *\nDisallow: /\nUser-agent: FooBot\n")
    assert robots.verdict("/x", "FooBot").allowed is True
    assert robots.verdict("/x", "BarBot").allowed is False


def test_user_agent_after_extension_line_stacks() -> None:
    # Content-Usage is not an allow/disallow rule: the user-agent lines stay one group.
    robots = parse("User-agent: a\nContent-Usage: train-ai=n\nUser-agent: b\nDisallow: /\n")
    assert [g.agents for g in robots.groups] == [("a", "b")]
    assert robots.verdict("/", "a").allowed is False


def test_robots_txt_always_allowed() -> None:
    robots = parse("User-agent: *\nDisallow: /\n")
    verdict = robots.verdict("https://example.com/robots.txt", "MyBot")
    assert (verdict.allowed, verdict.rule, verdict.agent) == (True, None, "*")
    assert robots.verdict("https://example.com/robots.txt?x", "MyBot").allowed is False


def test_empty_values_match_nothing() -> None:
    robots = parse("User-agent: *\nDisallow:\nAllow:\n")
    verdict = robots.verdict("/x", "MyBot")
    assert (verdict.allowed, verdict.rule) == (True, None)
    assert [r.text for r in robots.groups[0].rules] == ["Disallow:", "Allow:"]


def test_empty_url_is_root() -> None:
    # path_query('') is '/', so an empty URL is evaluated as '/' (Google's google-003 agrees).
    assert allowed("User-agent: *\nDisallow: /\n", "") is False


@pytest.mark.parametrize(
    ("token", "agent"),
    [("Foo", "FOO"), ("foo", "FOO"), ("Googlebot", "Googlebot"), ("AI", "AI")],
)
def test_user_agent_value_cut_at_product_token(token: str, agent: str) -> None:
    text = (
        "User-Agent: FOO BAR\nDisallow: /foo\n"
        "User-agent: Googlebot/2.1 (+http://www.google.com/bot.html)\nDisallow: /g\n"
        "User-agent: AI2Bot\nDisallow: /ai\n"
    )
    robots = parse(text)
    groups = robots.matching_groups(token)
    assert len(groups) == 1 and groups[0].agents == (agent,)
    assert [line.value for g in robots.groups for line in g.agent_lines] == [
        "FOO BAR",
        "Googlebot/2.1 (+http://www.google.com/bot.html)",
        "AI2Bot",
    ]
    assert "line 5: user-agent 'AI2Bot' read as 'AI'" in robots.problems


@pytest.mark.parametrize("token", ["", "Foo Bar", "Googlebot/2.1", "AI2Bot", "*", "ツ"])
def test_invalid_tokens_match_only_star(token: str) -> None:
    robots = parse("User-agent: *\nDisallow: /\nUser-agent: Foo\nAllow: /\n")
    assert is_valid_product_token(token) is False
    verdict = robots.verdict("/x", token)
    assert (verdict.allowed, verdict.agent, verdict.explicit) == (False, "*", False)
    assert robots.matching_groups(token, fallback_to_star=False) == ()


def test_star_with_trailing_text_is_star_group() -> None:
    robots = parse("User-agent: * # everyone\nDisallow: /a\nUser-agent: *bot\nDisallow: /b\n")
    assert [g.agents for g in robots.groups] == [("*",), ()]
    assert "line 3: user-agent '*bot' names no valid product token" in robots.problems
    assert allowed("User-agent: *   \nDisallow: /a\n", "/a") is False


def test_missing_colon_and_typos() -> None:
    text = "user-agent FooBot\ndisalow /x\nUser agent: BarBot\nDissallow: /y\n"
    robots = parse(text)
    assert [g.agents for g in robots.groups] == [("FooBot",), ("BarBot",)]
    assert robots.verdict("/x", "FooBot").allowed is False
    assert robots.verdict("/y", "BarBot").allowed is False
    assert "line 2: 'disalow' read as 'disallow'" in robots.problems


def test_colon_inside_value_without_key_colon() -> None:
    robots = parse("Sitemap https://example.com/s.xml\nUser-agent: *\nDisallow /a:b\n")
    assert robots.sitemaps == ("https://example.com/s.xml",)
    assert robots.groups[0].rules[0].pattern.raw == "/a:b"


def test_comments_and_whitespace() -> None:
    robots = parse("  User-agent :\tFooBot  # the bot\n\tDisallow : /x#y \n# Allow: /\n")
    assert robots.groups[0].agents == ("FooBot",)
    assert robots.groups[0].rules[0].text == "Disallow: /x"


# --- problems -------------------------------------------------------------------------------


def test_problems_listed() -> None:
    text = (
        "Disallow: /early\n"  # 1
        "Crawl-delay: 4\n"  # 2
        "User-agent: *\n"  # 3
        "Foo: bar\n"  # 4
        "Crawl-delay: soon\n"  # 5
        "Request-rate: fast\n"  # 6
        "Disallow: images/\n"  # 7
        "just some words here\n"  # 8
        "Sitemap:\n"  # 9
    )
    robots = parse(text)
    assert robots.problems == (
        "line 1: rule before any user-agent line ignored",
        "line 2: crawl-delay before any user-agent line ignored",
        "line 4: unknown directive 'Foo'",
        "line 5: malformed crawl-delay 'soon'",
        "line 6: malformed request-rate 'fast'",
        "line 7: pattern 'images/' does not start with '/' or '*'; it matches no path",
        "line 8: not a 'key: value' line: 'just some words here'",
        "line 9: empty sitemap ignored",
    )
    assert robots.global_lines == (RobotsLine("crawl-delay", "4", 2),)
    assert robots.groups[0].extensions == (RobotsLine("foo", "bar", 4),)
    assert robots.crawl_delay("MyBot") is None
    assert robots.verdict("/early", "MyBot").allowed is True


def test_problem_list_is_capped() -> None:
    robots = parse_robots(b"nonsense line here\n" * 1000)
    assert len(robots.problems) == MAX_LINE_PROBLEMS + 1
    assert robots.problems[-1] == "... and 900 more line problems not listed"


def test_html_body() -> None:
    body = b"<!DOCTYPE html>\n<html><head><title>Not found</title></head>\n<body>404</body></html>"
    robots = parse_robots(body)
    assert robots.groups == () and robots.global_lines == ()
    assert robots.problems[0] == "body looks like HTML or XML, not like a robots.txt file"
    assert robots.verdict("/", "MyBot").allowed is True


# --- crawl-delay / request-rate ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2.5", 2.5),
        ("10", 10.0),
        ("0", 0.0),
        (".5", 0.5),
        ("5.", 5.0),
        ("abc", None),
        ("-1", None),
        ("1e3", None),
        ("inf", None),
        ("nan", None),
        ("1_0", None),
        ("10s", None),
        ("", None),
        ("9" * 400, None),
    ],
)
def test_crawl_delay_values(value: str, expected: float | None) -> None:
    robots = parse(f"User-agent: *\nCrawl-delay: {value}\n")
    assert robots.crawl_delay("MyBot") == expected
    assert robots.groups[0].crawl_delay == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10/1m", RequestRate(10, 60.0)),
        ("1/10s 1820-1940", RequestRate(1, 10.0)),
        ("1/10s 1820 1940", RequestRate(1, 10.0)),
        ("100/15m", RequestRate(100, 900.0)),
        ("1/60", RequestRate(1, 60.0)),
        ("3/1h", RequestRate(3, 3600.0)),
        ("1/1D", RequestRate(1, 86400.0)),
        ("2 / 5 s", RequestRate(2, 5.0)),
        ("1/0.5s", RequestRate(1, 0.5)),
        ("0/1m", None),
        ("1/0", None),
        ("1/m", None),
        ("1", None),
        ("a/b", None),
        ("1/10x", None),
        ("1/10s whenever", None),
    ],
)
def test_request_rate_values(value: str, expected: RequestRate | None) -> None:
    robots = parse(f"User-agent: *\nRequest-rate: {value}\n")
    assert robots.request_rate("MyBot") == expected


def test_request_rate_delay() -> None:
    assert RequestRate(100, 900.0).delay == 9.0
    assert RequestRate(1, 10.0).delay == 10.0


def test_delays_of_merged_groups_take_the_largest() -> None:
    text = (
        "User-agent: a\nCrawl-delay: 1\nRequest-rate: 1/5s\nDisallow: /x\n"
        "User-agent: a\nCrawl-delay: 7\nRequest-rate: 10/1m\nCrawl-delay: 2\nDisallow: /y\n"
        "User-agent: *\nCrawl-delay: 30\n"
    )
    robots = parse(text)
    assert robots.crawl_delay("A") == 7.0
    assert robots.request_rate("a") == RequestRate(10, 60.0)
    assert robots.crawl_delay("other") == 30.0
    assert robots.request_rate("other") is None


# --- decoding and robustness ------------------------------------------------------------------


def test_bom_stripped() -> None:
    robots = parse_robots(b"\xef\xbb\xbfUser-agent: *\nDisallow: /x\n")
    assert robots.groups[0].agents == ("*",)
    assert robots.problems == ()
    assert robots.size == 3 + 27


def test_cr_only_line_endings() -> None:
    robots = parse_robots(b"User-agent: *\rDisallow: /x\rAllow: /x/y\r")
    assert [(r.text, r.line) for r in robots.groups[0].rules] == [
        ("Disallow: /x", 2),
        ("Allow: /x/y", 3),
    ]


def test_crlf_counts_as_one_line_break() -> None:
    robots = parse_robots(b"User-agent: *\r\n\r\nDisallow: /x\r\n")
    assert robots.groups[0].rules[0].line == 3


def test_invalid_utf8() -> None:
    robots = parse_robots(b"User-agent: *\nDisallow: /caf\xe9\nAllow: /caf\xc3\xa9/ok\n")
    assert "not valid UTF-8; decoded with replacement" in robots.problems
    rule = robots.groups[0].rules[0]
    assert rule.pattern.raw == "/caf\ufffd"
    assert rule.text == "Disallow: /caf\ufffd"
    assert rule.pattern.encoded == "/caf%E9"  # the raw byte, as Google matches it
    assert robots.verdict("/caf%E9", "MyBot").allowed is False
    assert robots.verdict("/caf%C3%A9/ok", "MyBot").allowed is True
    rule.text.encode("utf-8")  # no surrogates leak into the result


def test_nul_bytes_and_control_characters() -> None:
    robots = parse_robots(b"User-agent: *\x00\nDisallow: /a\x00b\n\x00\x00\x00\n")
    assert robots.groups[0].rules[0].pattern.encoded == "/a%00b"


@pytest.mark.parametrize("seed", range(20))
def test_random_bytes_never_raise(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = b"User-agent:Disallow:Allow:*/$#\r\n \t\x00\xef\xbb\xbf\xff\xe9ab%2f"
    size = rng.randrange(0, 5000)
    if seed % 2:
        body = bytes(rng.randrange(256) for _ in range(size))
    else:
        body = bytes(rng.choice(alphabet) for _ in range(size))
    robots = parse_robots(body)
    assert isinstance(robots.problems, tuple)
    for url in ("/", "/a", "https://x.example/%FF?q#f", "", "//a/b"):
        for token in ("MyBot", "*", "", "a b"):
            assert isinstance(robots.verdict(url, token), RobotsVerdict)
    for text in robots.problems:
        text.encode("utf-8")


def test_five_megabyte_body() -> None:
    line = b"User-agent: *\nDisallow: /" + b"x" * 80 + b"\n"
    body = (line * (5_000_000 // len(line) + 1))[:5_000_000]
    robots = parse_robots(body)
    assert robots.truncated is True
    assert robots.size == 5_000_000
    assert robots.verdict("/" + "x" * 80, "MyBot").allowed is False


def test_huge_single_line() -> None:
    robots = parse_robots(b"User-agent: *\nDisallow: /" + b"a" * 1_000_000)
    assert robots.truncated is True
    # The partial last line is dropped rather than read as a shorter, wider pattern.
    assert robots.groups[0].rules == ()


def test_long_line_cut() -> None:
    robots = parse_robots(b"User-agent: *\nDisallow: /" + "é".encode() * 20_000 + b"\n")
    rule = robots.groups[0].rules[0]
    assert len(("Disallow: " + rule.pattern.raw).encode("utf-8")) <= 2083 * 8 - 1
    rule.text.encode("utf-8")


def test_programmer_errors_raise() -> None:
    with pytest.raises(TypeError):
        parse_robots("User-agent: *")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        parse_robots(b"", limit=-1)
    with pytest.raises(TypeError):
        parse(REPORT_FILE).verdict("/", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        is_valid_product_token(None)  # type: ignore[arg-type]


def test_bytearray_and_memoryview_accepted() -> None:
    body = b"User-agent: *\nDisallow: /x\n"
    assert parse_robots(bytearray(body)) == parse_robots(body)
    assert parse_robots(memoryview(body)) == parse_robots(body)


def test_results_are_frozen_and_hashable() -> None:
    robots = parse(REPORT_FILE)
    with pytest.raises(AttributeError):
        robots.size = 1  # type: ignore[misc]
    assert hash(robots) == hash(parse(REPORT_FILE))
    assert robots == parse(REPORT_FILE)


# --- performance --------------------------------------------------------------------------------


def test_evaluating_200_rules_is_fast() -> None:
    rng = random.Random(7)
    lines = ["User-agent: *"]
    for i in range(200):
        kind = rng.choice(["Allow", "Disallow"])
        if i % 10 == 0:
            lines.append(f"{kind}: /*/section{i}/*.php$")
        else:
            lines.append(f"{kind}: /dir{i}/sub{rng.randrange(1000)}/")
    robots = parse("\n".join(lines))
    url = "https://example.com/some/long/path/that/matches/nothing.html?x=1"
    robots.verdict(url, "MyBot")
    seconds = min(timeit.repeat(lambda: robots.verdict(url, "MyBot"), number=200, repeat=5))
    # Tens of microseconds on a laptop; the bound leaves room for slow CI machines.
    assert seconds / 200 < 500e-6


# --- layering -------------------------------------------------------------------------------------


def test_modules_import_nothing_outside_stdlib() -> None:
    code = (
        "import sys, crawler.optout.robots, crawler.optout.pathpattern\n"
        "bad = sorted(m for m in sys.modules"
        " if m.split('.')[0] in {'scrapy', 'twisted', 'protego', 'w3lib'})\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "body, interval",
    [
        ("User-agent: *\nCrawl-delay: 2.5\n", 2.5),
        ("User-agent: *\nRequest-rate: 1/10s\n", 10.0),
        ("User-agent: *\nCrawl-delay: 3\nRequest-rate: 100/15m\n", 9.0),
        ("User-agent: *\nDisallow: /x\n", None),
        ("User-agent: OtherBot\nCrawl-delay: 60\n", None),
    ],
)
def test_visit_interval_is_the_larger_ask(body, interval):
    assert parse_robots(body.encode()).visit_interval("MyBot") == interval
