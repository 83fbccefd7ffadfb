"""crawler.policy.scope: include/exclude patterns (safe regexes), the per-origin cap, validation."""

from __future__ import annotations

import pytest

from crawler.policy.scope import (
    MAX_CHOICES,
    MAX_PATTERN_CHARS,
    MAX_PATTERNS,
    MAX_URL_CHARS,
    Scope,
    ScopeConfig,
    compile_pattern,
    scope_config,
)


def scope(**cfg) -> Scope:
    return Scope(scope_config(cfg))


def test_no_scope_allows_everything():
    assert Scope().decide("https://a.example/x") == (True, "in scope")
    assert scope_config(None) == ScopeConfig() == scope_config({})


def test_include_exclude_like_linkextractor_allow_deny():
    s = scope(include=[r"/news/\d+", r"^https://b\.example/"], exclude=[r"\.pdf$", "/news/1"])
    assert s.decide("https://a.example/news/42") == (
        True, r"in scope: scope.include[0] '/news/\\d+'")
    assert s.decide("https://b.example/anything")[0]
    assert s.decide("https://a.example/about") == (False, "matches no scope.include pattern")
    # deny wins over allow, as in LinkExtractor
    assert s.decide("https://a.example/news/42.pdf") == (
        False, r"excluded by scope.exclude[0] '\\.pdf$'")
    assert s.decide("https://a.example/news/17") == (False, "excluded by scope.exclude[1] "
                                                            "'/news/1'")
    only_exclude = scope(exclude=["/private/"])
    assert only_exclude.decide("https://a.example/x")[0]
    assert not only_exclude.decide("https://a.example/private/x")[0]


def test_matches_as_linkextractor_does():
    """The same patterns give the same answers as Scrapy's LinkExtractor allow/deny."""
    from scrapy.linkextractors import LinkExtractor

    allow, deny = [r"/news/\d+", r"\?page=\d$"], [r"/news/\d+/print"]
    le = LinkExtractor(allow=allow, deny=deny)
    s = scope(include=allow, exclude=deny)
    for url in ["https://a.example/news/1", "https://a.example/news/1/print",
                "https://a.example/list?page=2", "https://a.example/list?page=22",
                "https://a.example/other"]:
        assert s.decide(url)[0] == le._link_allowed(_Link(url)), url


class _Link:
    def __init__(self, url: str) -> None:
        self.url = url
        self.nofollow = False


def test_per_origin_cap():
    s = scope(max_pages_per_origin=2)
    for _ in range(2):
        assert s.decide("https://a.example/p")[0]
        s.count("https://a.example/p")
    assert s.decide("https://a.example/q") == (
        False, "origin https://a.example reached max_pages_per_origin (2)")
    # other origins (scheme, host, port) are counted apart; host spellings are one origin
    assert s.decide("http://a.example/q")[0]
    assert s.decide("https://a.example:8443/q")[0]
    assert not s.decide("https://A.EXAMPLE./q")[0]
    resumed = Scope(scope_config({"max_pages_per_origin": 2}), counts={"https://a.example": 2})
    assert not resumed.decide("https://a.example/")[0]
    assert scope(max_pages_per_origin=0).decide("https://a.example/")[0]


def test_long_urls_are_out_of_scope():
    s = scope(include=["a"])
    ok, reason = s.decide("https://a.example/" + "a" * MAX_URL_CHARS)
    assert not ok and "scope patterns read at most 2,048" in reason


@pytest.mark.parametrize("pattern,why", [
    (r"(a+)+$", "a repeat inside a repeat"),
    (r"(\w*/)*x", "a repeat inside a repeat"),
    (r"(ab?){20}", "a repeat inside a repeat"),
    (r"(a|aa)+$", "an alternation inside a repeat"),
    (r"(x+x+)+y", "a repeat inside a repeat"),
    (r"\d+\d+$", "2 unbounded repeats"),
    (r"a.*b.*c.*d", "3 unbounded repeats"),
    (r"[a-z]+\d*[a-z]+$", "3 unbounded repeats"),
    (r"(\w+)\1", "backreferences"),
    (r"(a)?(?(1)b|c)", "conditional groups"),
    (r"a?" * 5 + "b", f"32 alternative ways to match; at most {MAX_CHOICES}"),
    ("(", "not a regular expression"),
    ("", "empty pattern"),
    ("a" * (MAX_PATTERN_CHARS + 1), f"at most {MAX_PATTERN_CHARS}"),
])
def test_catastrophic_patterns_refused(pattern, why):
    with pytest.raises(ValueError) as err:
        compile_pattern(pattern)
    assert why in str(err.value)


@pytest.mark.parametrize("pattern,simplified", [
    (r".*foo.*bar", "foo.*bar"),      # search floats: a leading .* only costs time
    (r"^.*foo", "foo"),
    (r"foo.*", "foo"),
    (r"foo\.*", r"foo\.*"),           # an escaped dot's repeat is kept
    (r"^https?://(www\.)?example\.org/(news|blog|docs)/", None),
    (r"/[a-z]{1,16}/\d+\.html$", None),
    (r"(?i)/TAG/", None),
    (r"\.(pdf|zip|gz)$", None),
])
def test_ordinary_patterns_accepted(pattern, simplified):
    assert compile_pattern(pattern).pattern == (simplified or pattern)


@pytest.mark.parametrize("pattern", [
    r"a?a?a?a?a+$",               # the most alternatives allowed, then one long repeat
    r"a{1,16}a+$",
    r"[a-z]+$",
    r".*foo.*bar",
    r"x.*y",
    r"(a|b|c|d)(e|f|g|h)[a-z]+$",
])
def test_accepted_patterns_are_bounded_on_adversarial_urls(pattern):
    """Every accepted pattern on the worst URLs we could think of, at the length limit, comes
    to an answer. (Not a timing test: ~0.3 s is the slowest measured; the alarm only turns a
    pattern that runs away, as the refused ones do for minutes, into a failure, not a hang.)"""
    import signal

    compiled = compile_pattern(pattern)
    s = Scope(ScopeConfig(include=(pattern,), _include=(compiled,)))

    def runaway(signum, frame):
        raise AssertionError(f"{pattern}: still matching after 60 s")

    previous = signal.signal(signal.SIGALRM, runaway)
    signal.alarm(60)
    try:
        for url in ["a" * (MAX_URL_CHARS - 1) + "!", "foo" * (MAX_URL_CHARS // 3),
                    "x" * MAX_URL_CHARS, "ab" * (MAX_URL_CHARS // 2)]:
            ok, _ = s.decide(url[:MAX_URL_CHARS])
            assert isinstance(ok, bool)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("value,message", [
    ([], r"^scope: expected a mapping"),
    ({"includes": []}, r"^scope\.includes: unknown key"),
    ({"include": "a", "exclude": 3}, r"^scope\.exclude: expected a list"),
    ({"include": ["ok", "/x/", "(a+)+"]}, r"^scope\.include\[2\]: '\(a\+\)\+': a repeat inside"),
    ({"exclude": [3]}, r"^scope\.exclude\[0\]: expected a string"),
    ({"include": ["x"] * (MAX_PATTERNS + 1)}, r"^scope\.include: 101 patterns"),
    ({"max_pages_per_origin": -1}, r"^scope\.max_pages_per_origin:"),
    ({"max_pages_per_origin": True}, r"^scope\.max_pages_per_origin:"),
    ({"max_pages_per_origin": 1.5}, r"^scope\.max_pages_per_origin:"),
])
def test_validation_names_the_key(value, message):
    with pytest.raises(ValueError, match=message):
        scope_config(value)


def test_config_round_trip():
    cfg = scope_config({"include": "/news/", "max_pages_per_origin": 5})
    assert cfg.include == ("/news/",)
    assert cfg.as_dict() == {"include": ["/news/"], "exclude": [], "max_pages_per_origin": 5}
    assert Scope(cfg).filter(["https://a.example/news/1", "https://a.example/x"]) == [
        ("https://a.example/news/1", True, "in scope: scope.include[0] '/news/'"),
        ("https://a.example/x", False, "matches no scope.include pattern")]
