"""RFC 9651 Dictionary parser (crawler.optout.sfv): RFC examples, invalid input, robustness."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from crawler.optout.sfv import (
    Date,
    DisplayString,
    InnerList,
    Item,
    SfDictionary,
    Token,
    parse_dictionary,
)


def simple(value: str) -> dict[str, object] | None:
    """Parse and reduce to {key: bare value or [bare values]} (parameters dropped)."""
    parsed = parse_dictionary(value)
    if parsed is None:
        return None
    out: dict[str, object] = {}
    for key, member in parsed.items():
        if isinstance(member, InnerList):
            out[key] = [item.value for item in member.items]
        else:
            out[key] = member.value
    return out


# --- RFC 9651 examples (§3.2 Dictionaries, §3.1.1 Inner Lists, §3.3 Items) ---------------

RFC_EXAMPLES = [
    # §3.2: Example-Dict: en="Applepie", da=:w4ZibGV0w6ZydGU=:
    ('en="Applepie", da=:w4ZibGV0w6ZydGU=:',
     {"en": "Applepie", "da": "Æbletærte".encode()}),
    # §3.2: "A Dictionary with a member whose value is Boolean true"
    ("a=?0, b, c; foo=bar", {"a": False, "b": True, "c": True}),
    # §3.2: Example-Dict: rating=1.5, feelings=(joy sadness)
    ("rating=1.5, feelings=(joy sadness)",
     {"rating": Decimal("1.5"), "feelings": [Token("joy"), Token("sadness")]}),
    # §3.2: Example-Dict: a=(1 2), b=3, c=4;aa=bb, d=(5 6);valid
    ("a=(1 2), b=3, c=4;aa=bb, d=(5 6);valid", {"a": [1, 2], "b": 3, "c": 4, "d": [5, 6]}),
    # §3.2: "Example-Dict: foo=1, bar=2" -- the two-line form, as a caller joins it.
    ("foo=1, bar=2", {"foo": 1, "bar": 2}),
    # §3.3.7 Dates, §3.3.8 Display Strings (as dictionary values).
    ("d=@1659578233", {"d": Date(1659578233)}),
    ('t=%"This is intended for display to %c3%bc%c3%b1%c3%ae%c3%a7%c3%b8%c3%b0%c3%a9."',
     {"t": DisplayString("This is intended for display to üñîçøðé.")}),
    # §3.3.3 Strings with escapes, §3.3.4 Tokens, §3.3.5 Byte Sequences.
    ('s="hello \\"world\\" \\\\o/"', {"s": 'hello "world" \\o/'}),
    ("t=foo123/456:bar, u=*x", {"t": Token("foo123/456:bar"), "u": Token("*x")}),
    ("b=:cHJldGVuZCB0aGlzIGlzIGJpbmFyeSBjb250ZW50Lg==:",
     {"b": b"pretend this is binary content."}),
]


@pytest.mark.parametrize(("value", "expected"), RFC_EXAMPLES, ids=[v for v, _ in RFC_EXAMPLES])
def test_rfc_examples(value: str, expected: dict[str, object]) -> None:
    result = simple(value)
    assert result == expected
    parsed = parse_dictionary(value)
    assert parsed is not None
    for key, want in expected.items():
        got = parsed[key]
        if isinstance(got, Item):
            assert type(got.value) is type(want), key


def test_parameters_are_kept() -> None:
    parsed = parse_dictionary("a=?0, b, c; foo=bar, d=(5 6);valid")
    assert parsed is not None
    assert parsed["c"] == Item(True, (("foo", Token("bar")),))
    assert isinstance(parsed["d"], InnerList) and parsed["d"].param("valid") is True
    assert parsed["c"].param("foo") == "bar" and parsed["c"].param("nope") is None


def test_token_is_distinct_from_string() -> None:
    parsed = parse_dictionary('a=n, b="n"')
    assert parsed is not None
    assert isinstance(parsed["a"].value, Token)
    assert not isinstance(parsed["b"].value, Token) and parsed["b"].value == "n"
    assert repr(Token("n")) == "Token('n')"


def test_duplicate_keys_last_wins_in_first_position() -> None:
    # RFC 9651 §4.2.2: "If dictionary already contains a key this_key ..., overwrite its value".
    parsed = parse_dictionary("a=1, b=2, a=3;x")
    assert parsed is not None
    assert list(parsed) == ["a", "b"]
    assert parsed["a"] == Item(3, (("x", True),))


def test_duplicate_parameters_last_wins() -> None:
    parsed = parse_dictionary("a;q=1;r;q=2")
    assert parsed is not None
    assert parsed["a"].params == (("q", 2), ("r", True))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", {}),
        ("   ", {}),
        ("  a=1", {"a": 1}),
        ("a=1   ", {"a": 1}),
        ("a=1 ,\tb=2", {"a": 1, "b": 2}),
        ("a=1,b=2", {"a": 1, "b": 2}),
        ("a;b=?1", {"a": True}),
        ("*=1, a*b.c_d-e=2", {"*": 1, "a*b.c_d-e": 2}),
        ("a=-0", {"a": 0}),
        ("a=-999999999999999", {"a": -999999999999999}),
        ("a=999999999999999", {"a": 999999999999999}),
        ("a=123456789012.123", {"a": Decimal("123456789012.123")}),
        ("a=-1.5", {"a": Decimal("-1.5")}),
        ("a=0.001", {"a": Decimal("0.001")}),
        ("a=()", {"a": []}),
        ("a=( 1  2 );x=y", {"a": [1, 2]}),
        ("a=(\"x\" y ?1 :AA==:)", {"a": ["x", Token("y"), True, b"\x00"]}),
        ("a=::", {"a": b""}),
        ("a=:aGVsbG8:", {"a": b"hello"}),  # "SHOULD NOT fail when "=" padding is not present"
        ("a=:aGVsbG9=:", {"a": b"hello"}),  # "SHOULD NOT fail when non-zero pad bits are present"
        ('a=""', {"a": ""}),
        ('a="~ !"', {"a": "~ !"}),
        ("a=@-1", {"a": Date(-1)}),
        ('a=%""', {"a": DisplayString("")}),
        ("a=foo!#$%&'*+-.^_`|~:/", {"a": Token("foo!#$%&'*+-.^_`|~:/")}),
        ("a=?1;b", {"a": True}),
    ],
)
def test_valid(value: str, expected: dict[str, object]) -> None:
    assert simple(value) == expected


INVALID = [
    "a=1,",  # "there is a trailing comma; fail parsing"
    "a=1, b=2,",
    "a=1,,b=2",
    ",a=1",
    "A=1",  # keys are lcalpha
    "Train-AI=n",
    "1a=1",
    "_a=1",
    "-a=1",
    "a=1 b=2",  # members need ","
    "a= 1",
    "a =1",
    "a=b ;q=0.5",
    "a=b;q =0.5",
    "a=b;q= 0.5",
    "a=b;",
    "a=b;Q=1",
    "a=",
    "a=1;",
    "\ta=1",  # only SP is discarded at the start
    "a=1\x00",
    "a=é",  # not ASCII
    'a="é"',
    # Numbers
    "a=-",
    "a=--1",
    "a=-a",
    "a=1234567890123456",  # more than 15 digits
    "a=1234567890123.0",  # more than 12 integer digits in a decimal
    "a=123456789012.1234",
    "a=1.",
    "a=1.2345",
    "a=1.5.5",
    "a=0x1",
    "a=1a",
    # Strings
    'a="abc',
    'a="a\\b"',
    'a="a\\',
    'a="tab\there"',
    'a="\x7f"',
    'a="abc"def',
    # Tokens
    'a=foo"',
    "a=foo bar",
    "a=foo(",
    # Byte sequences
    "a=:aGVsbG8=",
    "a=:aGVs*G8=:",
    "a=:=aGVsbG8=:",
    "a=:aGVs=bG8=:",
    "a=:a:",
    # Booleans
    "a=?",
    "a=?2",
    "a=?T",
    "a=?01",
    # Dates
    "a=@",
    "a=@1.5",
    "a=@x",
    # Display strings
    'a=%"abc',
    "a=%abc",
    'a=%"%C3%BC"',  # upper-case hex
    'a=%"%c3"',  # not UTF-8
    'a=%"%c"',
    'a=%"\x01"',
    # Inner lists
    "a=(1 2",
    "a=(1,2)",
    "a=(1 (2))",
    "a=(1 2)x",
    "a=(1\t2)",
    "a=(1 2);",
    # Unknown item type, stray characters
    "a=#1",
    "a=&",
    "a=1)",
    "a=1;b=2 c",
    "=1",
    ";a",
]


@pytest.mark.parametrize("value", INVALID)
def test_invalid(value: str) -> None:
    assert parse_dictionary(value) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # vocab-07 §"Multiple Preferences": "the following results in all preferences being
        # unknown, because the type of the parameter values ... are not tokens"
        ('train-ai=y, train-ai, search=n, search="n"', {"train-ai": True, "search": "n"}),
        # vocab-07 §"Preference Parameters": last value, and only its parameters, apply.
        ("train-ai;allow=n, train-ai=y", {"train-ai": Token("y")}),
        ("train-ai=n;reason=foo", {"train-ai": Token("n")}),
    ],
)
def test_aipref_examples(value: str, expected: dict[str, object]) -> None:
    assert simple(value) == expected


def test_aipref_parameters_follow_the_last_value() -> None:
    parsed = parse_dictionary("train-ai;allow=n, train-ai=y")
    assert parsed is not None and parsed["train-ai"] == Item(Token("y"), ())
    # vocab-07's own example of "parameters even though the preference is unknown" ends in ";",
    # which RFC 9651 rejects (a parameter key must follow).
    assert parse_dictionary('train-ai;has;parameters="?";') is None
    assert parse_dictionary('train-ai;has;parameters="?"') is not None


def test_dictionary_is_a_frozen_mapping() -> None:
    parsed = parse_dictionary("a=1, b=2")
    assert isinstance(parsed, SfDictionary)
    assert len(parsed) == 2 and "a" in parsed and "z" not in parsed
    assert parsed.get("z") is None
    assert parsed == parse_dictionary("a=1,b=2")
    assert hash(parsed) == hash(parse_dictionary("a=1,b=2"))
    with pytest.raises(AttributeError):
        parsed.members = ()  # type: ignore[misc]


def test_programmer_error_raises() -> None:
    with pytest.raises(TypeError):
        parse_dictionary(b"a=1")  # type: ignore[arg-type]


# --- robustness --------------------------------------------------------------------------


def test_random_bytes_never_raise() -> None:
    rng = random.Random(9651)
    alphabet = 'az09=,;()"\\:?@%*-. \t' + "".join(map(chr, range(256)))
    for _ in range(3000):
        size = rng.randrange(0, 60)
        if rng.random() < 0.5:
            text = bytes(rng.randrange(256) for _ in range(size)).decode("latin-1")
        else:
            text = "".join(rng.choice(alphabet) for _ in range(size))
        result = parse_dictionary(text)
        assert result is None or isinstance(result, SfDictionary)


@pytest.mark.parametrize(
    "value",
    [
        "a=" + "x" * 100_000,
        'a="' + "x" * 100_000,
        'a="' + "x" * 100_000 + '"',
        ", ".join(f"k{i}=?1" for i in range(10_000)),
        "a=(" + "1 " * 30_000 + ")",
        "a=:" + "A" * 100_000,
        '"' * 100_000,
        "(" * 100_000,
        "a" + ";b" * 50_000,
    ],
)
def test_large_values(value: str) -> None:
    result = parse_dictionary(value)
    assert result is None or isinstance(result, SfDictionary)
