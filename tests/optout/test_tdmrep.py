"""Vector tables for crawler.optout.tdmrep (W3C TDMRep: file, headers, HTML meta)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crawler.optout.htmlmeta import parse_html_head
from crawler.optout.tdmrep import (
    TDMREP_FILE_LIMIT,
    TdmDecision,
    TdmRepFile,
    TdmStatement,
    TdmValue,
    combine,
    parse_tdmrep_file,
    statement_from_file,
    statement_from_headers,
    statement_from_html,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "tdmrep_examples"
SPEC = DATA / "spec"
DEPLOYED = DATA / "deployed"

R, N, U = TdmValue.RESERVED, TdmValue.NOT_RESERVED, TdmValue.UNSET


def file_of(rules: object) -> TdmRepFile:
    return parse_tdmrep_file(json.dumps(rules).encode())


def html(document: str) -> TdmStatement | None:
    return statement_from_html(parse_html_head(document.encode()))


# --------------------------------------------------------------------------- protocols.md §2.7


def test_vector_1_root_rule_reserves_everything() -> None:
    f = file_of([{"location": "/", "tdm-reservation": 1}])
    for url in ("https://ex.com/", "https://ex.com/a/b.jpg?x=1", "https://ex.com"):
        decision = combine(statement_from_file(f, url))
        assert decision.reserved
        assert decision.policy is None


VECTOR_2 = [
    {"location": "/b/images/*.jpg", "tdm-reservation": 0},
    {"location": "/", "tdm-reservation": 1},
]


@pytest.mark.parametrize(
    ("rules", "url", "expected", "index"),
    [
        (VECTOR_2, "https://ex.com/b/images/x.jpg", N, 0),
        (VECTOR_2, "https://ex.com/b/images/x.png", R, 1),
        (VECTOR_2[::-1], "https://ex.com/b/images/x.jpg", R, 0),
        (VECTOR_2[::-1], "https://ex.com/b/images/x.png", R, 0),
    ],
)
def test_vector_2_first_match_in_array_order(
    rules: list[dict[str, object]], url: str, expected: TdmValue, index: int
) -> None:
    f = file_of(rules)
    rule = f.match(url)
    assert rule is not None and rule.index == index
    assert combine(statement_from_file(f, url)).reservation is expected


def test_vector_3_no_file_no_headers_no_meta_is_unset() -> None:
    # A 404 for tdmrep.json means the caller has no file to parse: no statement at all.
    decision = combine(None, statement_from_headers(None, None), html("<head></head>"))
    assert decision.reservation is U
    assert not decision.reserved
    assert decision.deciding is None and decision.statements == ()


def test_vector_4_header_supersedes_file() -> None:
    f = file_of([{"location": "/", "tdm-reservation": 0}])
    decision = combine(
        statement_from_file(f, "https://ex.com/p"), statement_from_headers("1", None)
    )
    assert decision.reserved
    assert decision.deciding is not None and decision.deciding.channel == "header"
    assert not decision.downgraded


def test_vector_5_html_supersedes_header_and_is_a_downgrade() -> None:
    decision = combine(
        statement_from_headers("1", None), html('<meta name="tdm-reservation" content="0">')
    )
    assert decision.reservation is N
    assert decision.downgraded
    assert decision.deciding is not None and decision.deciding.channel == "meta"
    assert any("downgrade" in problem for problem in decision.problems)


def test_vector_6_absence_does_not_reset() -> None:
    f = file_of([{"location": "/", "tdm-reservation": 1}])
    decision = combine(
        statement_from_file(f, "https://ex.com/page.html"),
        statement_from_headers(None, None),
        html('<head><meta name="robots" content="index"></head>'),
    )
    assert decision.reserved
    assert decision.deciding is not None and decision.deciding.channel == "file"


def test_vector_7_policy_with_zero_is_ignored() -> None:
    statement = statement_from_headers("0", "https://x/p.json")
    assert statement is not None
    assert statement.reservation is N
    assert any("irrelevant" in problem for problem in statement.problems)
    decision = combine(statement)
    assert not decision.reserved
    assert decision.policy is None


def test_vector_8_yes_is_a_protocol_error() -> None:
    statement = statement_from_headers("yes", None)
    assert statement is not None
    assert statement.reservation is U
    assert statement.problems
    assert not combine(statement).reserved


# --------------------------------------------------------------------------- spec examples

# (file, [(location raw, reservation, policy), ...]) for the spec's tdmrep.json examples.
SPEC_FILES = [
    ("tdmrep_root_reserved.json", [("/", R, None)]),
    (
        "tdmrep_multi_location.json",
        [
            ("/directory-a/", R, None),
            ("/directory-b/html/", R, "https://provider.com/policies/policy.json"),
            ("/directory-b/images/*.jpg", N, None),
        ],
    ),
]


@pytest.mark.parametrize(("name", "expected"), SPEC_FILES, ids=[v[0] for v in SPEC_FILES])
def test_spec_files(name: str, expected: list[tuple[str, TdmValue, str | None]]) -> None:
    f = parse_tdmrep_file((SPEC / name).read_bytes())
    assert f.valid and f.problems == ()
    assert [(r.location.raw, r.reservation, r.policy) for r in f.rules] == expected
    assert [r.index for r in f.rules] == list(range(len(expected)))


@pytest.mark.parametrize(
    ("path", "expected", "policy"),
    [
        ("/directory-a/", R, None),
        ("/directory-a/x/y.html", R, None),
        ("/directory-b/html/page.html", R, "https://provider.com/policies/policy.json"),
        ("/directory-b/images/a.jpg", N, None),
        ("/directory-b/images/sub/a.jpg?size=2", N, None),
        ("/directory-b/images/a.png", U, None),
        ("/directory-c/", U, None),
        ("/Directory-a/", U, None),  # matching is case-sensitive
        ("/", U, None),
    ],
)
def test_spec_multi_location_matching(path: str, expected: TdmValue, policy: str | None) -> None:
    f = parse_tdmrep_file((SPEC / "tdmrep_multi_location.json").read_bytes())
    statement = statement_from_file(f, "https://provider.com" + path)
    decision = combine(statement)
    assert decision.reservation is expected
    assert decision.policy == policy
    if expected is U:
        assert statement is None


@pytest.mark.parametrize(
    "name",
    ["policy_obtain_consent.json", "policy_compensate_nonresearch.json", "tdmrep_context.jsonld"],
)
def test_other_spec_json_is_not_a_tdmrep_file(name: str) -> None:
    f = parse_tdmrep_file((SPEC / name).read_bytes())
    assert not f.valid and f.rules == () and f.problems


def headers_of(path: Path) -> tuple[str | None, str | None]:
    """Read the header lines of a printed HTTP response (first line is the status line)."""
    fields: dict[str, list[str]] = {}
    for line in path.read_text().splitlines()[1:]:
        if not line.strip():
            break
        name, _, value = line.partition(":")
        fields.setdefault(name.strip().lower(), []).append(value.strip())
    joined = {name: ", ".join(values) for name, values in fields.items()}
    return joined.get("tdm-reservation"), joined.get("tdm-policy")


@pytest.mark.parametrize(
    ("name", "policy"),
    [
        ("http_header_reserved.txt", None),
        ("http_header_reserved_with_policy.txt", "https://provider.com/policies/policy.json"),
    ],
)
def test_spec_header_examples(name: str, policy: str | None) -> None:
    statement = statement_from_headers(*headers_of(SPEC / name))
    assert statement is not None
    assert (statement.channel, statement.reservation, statement.policy) == ("header", R, policy)
    assert statement.source == "tdm-reservation header"
    assert statement.problems == ()
    decision = combine(statement)
    assert decision.reserved and decision.policy == policy


def test_spec_html_example() -> None:
    head = parse_html_head((SPEC / "html_meta_reserved_with_policy.html").read_bytes())
    statement = statement_from_html(head)
    assert statement == TdmStatement(
        channel="meta",
        reservation=R,
        policy="https://provider.com/policies/policy.json",
        source='<meta name="tdm-reservation"> line 5',
        raw='<meta name="tdm-reservation" content="1">\n'
        '<meta name="tdm-policy" content="https://provider.com/policies/policy.json">',
        problems=(),
    )


# --------------------------------------------------------------------------- deployed files

DEPLOYED_INDEX = json.loads((DEPLOYED / "index.json").read_text())


@pytest.mark.parametrize("entry", DEPLOYED_INDEX, ids=[e["repo"] for e in DEPLOYED_INDEX])
def test_deployed_files(entry: dict[str, object]) -> None:
    f = parse_tdmrep_file((DEPLOYED / str(entry["file"])).read_bytes())
    if entry["shape"] == "conforming_array":
        assert f.valid, f.problems
        assert f.problems == ()
        decision = combine(statement_from_file(f, "https://site.example/"))
        assert decision.reservation is TdmValue(entry["root_tdm_reservation_if_conforming"])
        if decision.reserved:
            for rule in f.rules:
                assert rule.policy is None or rule.policy.startswith("https://")
    else:
        assert entry["shape"] == "non_conforming"
        assert not f.valid
        assert f.rules == ()
        assert f.problems
        assert statement_from_file(f, "https://site.example/") is None


def test_deployed_index_covers_every_file() -> None:
    names = {path.name for path in DEPLOYED.glob("*.tdmrep.json")}
    assert names == {entry["file"] for entry in DEPLOYED_INDEX}
    assert sum(entry["shape"] == "non_conforming" for entry in DEPLOYED_INDEX) == 5


def test_bare_object_problem_says_what_it_claimed() -> None:
    f = parse_tdmrep_file((DEPLOYED / "Jan64X__janpetrlik.com.tdmrep.json").read_bytes())
    assert "not an array" in f.problems[0] and "tdm-reservation 1" in f.problems[0]
    f = parse_tdmrep_file((DEPLOYED / "OR13__vibeslop.ceo.tdmrep.json").read_bytes())
    assert "wraps an array of rules" in f.problems[0]


# --------------------------------------------------------------------------- file: malformed

# (id, body, problem fragment)
INVALID_FILES = [
    ("empty", b"", "empty"),
    ("whitespace", b" \r\n\t", "empty"),
    ("bom only", b"\xef\xbb\xbf", "empty"),
    ("html soft 404", b"<!DOCTYPE html><html><body>Not found</body></html>", "HTML"),
    ("html after whitespace", b"\n  <html>", "HTML"),
    ("invalid json", b'[{"location": "/", "tdm-reservation": 1,}]', "invalid JSON"),
    ("truncated json", b'[{"location": "/"', "invalid JSON"),
    ("trailing garbage", b"[] x", "invalid JSON"),
    ("bare object", b'{"location": "/", "tdm-reservation": 1}', "not an array"),
    ("wrapped", b'{"rules": [{"location": "/", "tdm-reservation": 1}]}', "wraps"),
    ("string", b'"[]"', "not an array"),
    ("number", b"1", "not an array"),
    ("null", b"null", "not an array"),
    ("true", b"true", "not an array"),
    ("NaN", b"[NaN]", "NaN"),
    ("Infinity", b'[{"location": "/", "tdm-reservation": Infinity}]', "Infinity"),
    ("latin-1", '[{"location": "/é", "tdm-reservation": 1}]'.encode("latin-1"), "UTF-8"),
    ("utf-16 with bom", "\ufeff[]".encode("utf-16-le"), "UTF-16"),
    ("garbage bytes", bytes(range(256)) * 4, "UTF-8"),
    ("deeply nested arrays", b"[" * 100_000, "nested too deeply"),
    ("deeply nested objects", b'{"a":' * 100_000, "nested too deeply"),
    ("nested closed", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("huge integer", b'[{"location": "/", "tdm-reservation": ' + b"1" * 5000 + b"}]", "JSON"),
    ("over the limit", b"[" + b" " * TDMREP_FILE_LIMIT + b"]", "limit"),
]


@pytest.mark.parametrize(
    ("body", "fragment"), [v[1:] for v in INVALID_FILES], ids=[v[0] for v in INVALID_FILES]
)
def test_invalid_files(body: bytes, fragment: str) -> None:
    f = parse_tdmrep_file(body)
    assert not f.valid
    assert f.rules == ()
    assert any(fragment in problem for problem in f.problems), f.problems
    assert f.match("https://ex.com/") is None
    assert statement_from_file(f, "https://ex.com/") is None


def test_bom_is_stripped() -> None:
    f = parse_tdmrep_file(b'\xef\xbb\xbf[{"location": "/", "tdm-reservation": 1}]')
    assert f.valid and f.problems == () and f.rules[0].reservation is R


def test_limit_is_inclusive() -> None:
    body = b'[{"location":"/","tdm-reservation":1}]'
    padded = body + b" " * (TDMREP_FILE_LIMIT - len(body))
    assert parse_tdmrep_file(padded).valid


@pytest.mark.parametrize("depth", [500, 5000])
def test_deeply_nested_rule_value_does_not_raise(depth: int) -> None:
    inner = b"[" * depth + b"]" * depth
    f = parse_tdmrep_file(
        b'[{"location": "/a", "tdm-reservation": ' + inner + b'}, {"location": "/", '
        b'"tdm-reservation": 1}]'
    )
    # Either the JSON is too deep to read at all, or the rule is read as unset: never a raise.
    if depth == 500:
        assert f.valid
        assert combine(statement_from_file(f, "https://ex.com/a")).reservation is U
        assert combine(statement_from_file(f, "https://ex.com/b")).reservation is R
    else:
        assert not f.valid


# (id, items, expected [(index, reservation)], problem fragments)
RULE_VECTORS = [
    ("empty array", [], [], ["no usable rule"]),
    (
        "non-object items skipped",
        [1, "x", None, [], {"location": "/", "tdm-reservation": 1}],
        [(4, R)],
        ["#0: int", "#1: str", "#2: null", "#3: array"],
    ),
    (
        "missing location",
        [{"tdm-reservation": 1}, {"location": "/", "tdm-reservation": 0}],
        [(1, N)],
        ["#0: no location"],
    ),
    (
        "missing reservation",
        [{"location": "/", "tdm-policy": "https://x/p"}],
        [],
        ["#0: no tdm-reservation", "no usable rule"],
    ),
    ("underscored keys", [{"location": "/", "tdm_reservation": 1}], [], ["'tdm_reservation'"]),
    ("location not a string", [{"location": ["/"], "tdm-reservation": 1}], [], ["not a string"]),
    (
        "unknown key noted",
        [{"location": "/", "tdm-reservation": 1, "policy": "x"}],
        [(0, R)],
        ["unknown key 'policy'"],
    ),
    (
        "location without slash",
        [{"location": "img/", "tdm-reservation": 1}],
        [(0, R)],
        ["does not start with '/'"],
    ),
    (
        "empty location",
        [{"location": "", "tdm-reservation": 1}],
        [(0, R)],
        ["empty location matches nothing"],
    ),
]


@pytest.mark.parametrize(
    ("items", "expected", "fragments"),
    [v[1:] for v in RULE_VECTORS],
    ids=[v[0] for v in RULE_VECTORS],
)
def test_rule_vectors(
    items: list[object], expected: list[tuple[int, TdmValue]], fragments: list[str]
) -> None:
    f = file_of(items)
    assert f.valid
    assert [(rule.index, rule.reservation) for rule in f.rules] == expected
    for fragment in fragments:
        assert any(fragment in problem for problem in f.problems), (fragment, f.problems)


def test_skipped_rules_keep_remaining_rules_working() -> None:
    f = file_of([{"location": "/a/"}, "junk", {"location": "/", "tdm-reservation": 1}])
    assert f.match("https://ex.com/a/x").index == 2  # type: ignore[union-attr]


def test_empty_location_matches_nothing() -> None:
    f = file_of([{"location": "", "tdm-reservation": 1}])
    assert f.match("https://ex.com/") is None


# (id, JSON value, reservation, problem expected)
JSON_VALUES = [
    ("1", 1, R, False),
    ("0", 0, N, False),
    ('"1"', "1", R, True),
    ('"0"', "0", N, True),
    ('" 1 "', " 1 ", R, True),
    ("true", True, R, True),
    ("1.0", 1.0, R, True),
    ("0.0", 0.0, N, True),
    ("false", False, U, True),
    ("2", 2, U, True),
    ("-1", -1, U, True),
    ("0.5", 0.5, U, True),
    ('"yes"', "yes", U, True),
    ('"true"', "true", U, True),
    ('""', "", U, True),
    ("null", None, U, True),
    ("[1]", [1], U, True),
    ('{"v": 1}', {"v": 1}, U, True),
]


@pytest.mark.parametrize(
    ("value", "expected", "problem"), [v[1:] for v in JSON_VALUES], ids=[v[0] for v in JSON_VALUES]
)
def test_file_reservation_values(value: object, expected: TdmValue, problem: bool) -> None:
    f = file_of([{"location": "/", "tdm-reservation": value}])
    assert f.valid
    rule = f.rules[0]
    assert rule.reservation is expected
    assert bool(rule.problems) is problem
    statement = statement_from_file(f, "https://ex.com/x")
    assert statement is not None and statement.reservation is expected
    assert statement.problems == rule.problems


def test_unset_rule_still_matches_first() -> None:
    # The spec: an invalid value is "treated as unset"; the rule is still the first match.
    f = file_of(
        [{"location": "/a/", "tdm-reservation": "yes"}, {"location": "/", "tdm-reservation": 1}]
    )
    statement = statement_from_file(f, "https://ex.com/a/1")
    assert statement is not None and statement.reservation is U
    assert not combine(statement).reserved
    assert combine(statement_from_file(f, "https://ex.com/b")).reserved


def test_duplicate_reservation_key_is_conservative() -> None:
    f = parse_tdmrep_file(b'[{"location": "/", "tdm-reservation": 1, "tdm-reservation": 0}]')
    assert f.rules[0].reservation is R
    assert any("2 times" in problem for problem in f.problems)
    f = parse_tdmrep_file(b'[{"location": "/", "tdm-reservation": 0, "tdm-reservation": 0}]')
    assert f.rules[0].reservation is N


def test_rule_text_and_source() -> None:
    f = parse_tdmrep_file(
        b'[\n {"location": "/a/", "tdm-reservation": 0},\n'
        b' {"location": "/", "tdm-reservation": 1, "tdm-policy": "https://p.example/x"}\n]'
    )
    statement = statement_from_file(f, "https://ex.com/b")
    assert statement == TdmStatement(
        channel="file",
        reservation=R,
        policy="https://p.example/x",
        source="tdmrep.json rule #1",
        raw='{"location":"/","tdm-reservation":1,"tdm-policy":"https://p.example/x"}',
        problems=(),
    )


def test_rule_text_is_capped() -> None:
    f = file_of([{"location": "/", "tdm-reservation": 1, "note": "x" * 100_000}])
    assert len(f.rules[0].text) < 3000


def test_match_uses_robots_path_semantics() -> None:
    f = file_of(
        [
            {"location": "/exact$", "tdm-reservation": 0},
            {"location": "/*.pdf$", "tdm-reservation": 1},
            {"location": "/q?x=", "tdm-reservation": 1},
        ]
    )
    assert f.match("https://ex.com/exact").index == 0  # type: ignore[union-attr]
    assert f.match("https://ex.com/exactly") is None
    assert f.match("https://ex.com/docs/a.pdf").index == 1  # type: ignore[union-attr]
    assert f.match("https://ex.com/docs/a.pdf?dl=1") is None
    assert f.match("https://ex.com/q?x=1").index == 2  # type: ignore[union-attr]
    assert f.match("https://ex.com/exact#frag").index == 0  # type: ignore[union-attr]


# --------------------------------------------------------------------------- policy values

POLICY_VALUES = [
    ("https://ex.com/p.json", "https://ex.com/p.json", False),
    ("http://ex.com/p", "http://ex.com/p", False),
    ("HTTPS://ex.com/p", "HTTPS://ex.com/p", False),
    ("  https://ex.com/p  ", "https://ex.com/p", False),
    ("https://ex.com/a,b", "https://ex.com/a,b", False),
    ("/policy.json", None, True),
    ("policy.json", None, True),
    ("//ex.com/p", None, True),
    ("ftp://ex.com/p", None, True),
    ("mailto:x@ex.com", None, True),
    ("https://", None, True),
    ("https://ex.com/a b", None, True),
    ("http://[::1", None, True),
    ("", None, True),
]


@pytest.mark.parametrize(("value", "expected", "problem"), POLICY_VALUES)
def test_policy_values_in_file(value: str, expected: str | None, problem: bool) -> None:
    f = file_of([{"location": "/", "tdm-reservation": 1, "tdm-policy": value}])
    assert f.rules[0].policy == expected
    assert bool(f.rules[0].problems) is problem


@pytest.mark.parametrize(("value", "expected", "problem"), POLICY_VALUES)
def test_policy_values_in_header(value: str, expected: str | None, problem: bool) -> None:
    statement = statement_from_headers("1", value)
    assert statement is not None and statement.policy == expected
    assert bool(statement.problems) is problem


@pytest.mark.parametrize("value", [1, None, ["https://ex.com/p"], {"url": "https://ex.com"}])
def test_policy_not_a_string(value: object) -> None:
    f = file_of([{"location": "/", "tdm-reservation": 1, "tdm-policy": value}])
    assert f.rules[0].policy is None
    assert any("not a string" in problem for problem in f.problems)


def test_policy_never_lifts_a_reservation() -> None:
    decision = combine(statement_from_headers("1", "https://ex.com/licence.json"))
    assert decision.reserved and decision.policy == "https://ex.com/licence.json"


# --------------------------------------------------------------------------- header values

# (id, tdm-reservation header value, expected, problem expected)
HEADER_VALUES = [
    ("1", "1", R, False),
    ("0", "0", N, False),
    ("ows", "  1\t", R, False),
    ("double quoted", '"1"', R, True),
    ("single quoted", "'0'", N, True),
    ("yes", "yes", U, True),
    ("true", "true", U, True),
    ("2", "2", U, True),
    ("01", "01", U, True),
    ("1.0", "1.0", U, True),
    ("empty", "", U, True),
    ("repeated same", "1, 1", R, True),
    ("repeated disagree 1 wins", "0, 1", R, True),
    ("repeated disagree 1 first", "1, 0", R, True),
    ("repeated 0 and junk", "0, yes", N, True),
    ("repeated junk", "yes, no", U, True),
    ("trailing comma", "1,", R, False),
]


@pytest.mark.parametrize(
    ("value", "expected", "problem"),
    [v[1:] for v in HEADER_VALUES],
    ids=[v[0] for v in HEADER_VALUES],
)
def test_header_values(value: str, expected: TdmValue, problem: bool) -> None:
    statement = statement_from_headers(value, None)
    assert statement is not None
    assert statement.channel == "header"
    assert statement.reservation is expected
    assert bool(statement.problems) is problem
    assert statement.raw == f"tdm-reservation: {value}"


def test_no_headers_no_statement() -> None:
    assert statement_from_headers(None, None) is None


def test_policy_header_alone() -> None:
    statement = statement_from_headers(None, "https://ex.com/p")
    assert statement is not None
    assert statement.reservation is U and statement.policy == "https://ex.com/p"
    assert statement.source == "tdm-policy header"
    # It adds the policy to an earlier 1 and does not reset it.
    f = file_of([{"location": "/", "tdm-reservation": 1}])
    decision = combine(statement_from_file(f, "https://ex.com/"), statement)
    assert decision.reserved and decision.policy == "https://ex.com/p"
    assert decision.deciding is not None and decision.deciding.channel == "file"


def test_repeated_policy_header_keeps_first() -> None:
    statement = statement_from_headers("1", "https://a.example/p, https://b.example/q")
    assert statement is not None and statement.policy == "https://a.example/p"
    assert any("2 different policies" in problem for problem in statement.problems)


# --------------------------------------------------------------------------- meta values

# (id, document, expected, policy, problem expected)
META_VALUES = [
    ("1", '<meta name="tdm-reservation" content="1">', R, None, False),
    ("0", '<meta name="tdm-reservation" content="0">', N, None, False),
    ("name case", '<META NAME="TDM-RESERVATION" CONTENT="1">', R, None, False),
    ("whitespace", '<meta name="tdm-reservation" content=" 1 ">', R, None, True),
    ("quoted", '<meta name="tdm-reservation" content=\'"1"\'>', R, None, True),
    ("yes", '<meta name="tdm-reservation" content="yes">', U, None, True),
    ("empty", '<meta name="tdm-reservation" content="">', U, None, True),
    ("missing content", '<meta name="tdm-reservation">', U, None, True),
    (
        "two agree",
        '<meta name="tdm-reservation" content="1"><meta name="tdm-reservation" content="1">',
        R,
        None,
        True,
    ),
    (
        "two disagree",
        '<meta name="tdm-reservation" content="0"><meta name="tdm-reservation" content="1">',
        R,
        None,
        True,
    ),
    (
        "with policy",
        (
            '<meta name="tdm-reservation" content="1">'
            '<meta name="tdm-policy" content="https://ex.com/p">'
        ),
        R,
        "https://ex.com/p",
        False,
    ),
    (
        "relative policy",
        '<meta name="tdm-reservation" content="1"><meta name="tdm-policy" content="/p">',
        R,
        None,
        True,
    ),
    (
        "policy with 0",
        (
            '<meta name="tdm-reservation" content="0">'
            '<meta name="tdm-policy" content="https://ex.com/p">'
        ),
        N,
        "https://ex.com/p",
        True,
    ),
    (
        "policy alone",
        '<meta name="tdm-policy" content="https://ex.com/p">',
        U,
        "https://ex.com/p",
        True,
    ),
]


@pytest.mark.parametrize(
    ("document", "expected", "policy", "problem"),
    [v[1:] for v in META_VALUES],
    ids=[v[0] for v in META_VALUES],
)
def test_meta_values(document: str, expected: TdmValue, policy: str | None, problem: bool) -> None:
    statement = html(f"<html><head>{document}</head><body></body></html>")
    assert statement is not None
    assert statement.channel == "meta"
    assert statement.reservation is expected
    assert statement.policy == policy
    assert bool(statement.problems) is problem


@pytest.mark.parametrize(
    "document",
    [
        "<head></head>",
        '<meta name="robots" content="noai">',
        '<meta property="tdm-reservation" content="1">',  # property, not name
        '<meta http-equiv="tdm-reservation" content="1">',
        '<meta name="tdm:reservation" content="1">',  # EPUB 2 syntax, not HTML's
        '<head></head><body><meta name="tdm-reservation" content="1"></body>',  # body ignored
        '<!-- <meta name="tdm-reservation" content="1"> -->',
    ],
)
def test_no_meta_statement(document: str) -> None:
    assert html(document) is None


def test_meta_source_names_lines() -> None:
    statement = html(
        '<head>\n<meta name="tdm-reservation" content="1">\n\n'
        '<meta name="tdm-reservation" content="1">\n</head>'
    )
    assert statement is not None
    assert statement.source == '<meta name="tdm-reservation"> lines 2, 4'


# --------------------------------------------------------------------------- precedence table

F1 = TdmStatement("file", R, "https://f.example/p", "tdmrep.json rule #0", "", ())
F0 = TdmStatement("file", N, None, "tdmrep.json rule #0", "", ())
FU = TdmStatement("file", U, None, "tdmrep.json rule #0", "", ("bad",))
H1 = TdmStatement("header", R, None, "tdm-reservation header", "", ())
H0 = TdmStatement("header", N, None, "tdm-reservation header", "", ())
HU = TdmStatement("header", U, None, "tdm-reservation header", "", ("bad",))
HP = TdmStatement("header", R, "https://h.example/p", "tdm-reservation header", "", ())
M1 = TdmStatement("meta", R, None, '<meta name="tdm-reservation"> line 1', "", ())
M0 = TdmStatement("meta", N, "https://m.example/p", '<meta name="tdm-reservation"> line 1', "", ())
MU = TdmStatement("meta", U, None, '<meta name="tdm-reservation"> line 1', "", ("bad",))

# (id, statements, reservation, deciding, downgraded, policy)
PRECEDENCE = [
    ("nothing", [], U, None, False, None),
    ("all none", [None, None, None], U, None, False, None),
    ("file 1", [F1], R, F1, False, "https://f.example/p"),
    ("file 0", [F0], N, F0, False, None),
    ("file unset", [FU], U, None, False, None),
    ("file 0, header 1", [F0, H1], R, H1, False, None),
    ("file 1, header 0", [F1, H0], N, H0, True, None),
    ("file 1, header absent", [F1, None], R, F1, False, "https://f.example/p"),
    ("file 1, header unset", [F1, HU], R, F1, False, "https://f.example/p"),
    ("file 1, header 1 keeps file policy", [F1, H1], R, H1, False, "https://f.example/p"),
    ("file 1, header 1 with policy", [F1, HP], R, HP, False, "https://h.example/p"),
    ("header 1, meta 0", [H1, M0], N, M0, True, None),
    ("header 0, meta 1", [H0, M1], R, M1, False, None),
    ("header 1, meta unset", [H1, MU], R, H1, False, None),
    ("file 1, header 0, meta 1", [F1, H0, M1], R, M1, False, "https://f.example/p"),
    ("file 0, header 1, meta 0", [F0, H1, M0], N, M0, True, None),
    ("file 1, meta 0", [F1, None, M0], N, M0, True, None),
    ("file 0, header 0, meta 0", [F0, H0, M0], N, M0, False, None),
    ("all unset", [FU, HU, MU], U, None, False, None),
    ("file 1, rest unset", [F1, HU, MU], R, F1, False, "https://f.example/p"),
    ("argument order does not matter", [M0, H1, F1], N, M0, True, None),
]


@pytest.mark.parametrize(
    ("statements", "reservation", "deciding", "downgraded", "policy"),
    [v[1:] for v in PRECEDENCE],
    ids=[v[0] for v in PRECEDENCE],
)
def test_precedence(
    statements: list[TdmStatement | None],
    reservation: TdmValue,
    deciding: TdmStatement | None,
    downgraded: bool,
    policy: str | None,
) -> None:
    decision = combine(*statements)
    assert isinstance(decision, TdmDecision)
    assert decision.reservation is reservation
    assert decision.reserved is (reservation is R)
    assert decision.deciding is deciding
    assert decision.downgraded is downgraded
    assert decision.policy == policy
    present = [s for s in statements if s is not None]
    assert list(decision.statements) == sorted(
        present, key=lambda s: ["file", "header", "meta"].index(s.channel)
    )


def test_unknown_channel_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        combine(TdmStatement("pdf", R, None, "xmp", "", ()))


def test_value_enum() -> None:
    assert TdmValue(1) is R and TdmValue(0) is N and TdmValue(None) is U


# --------------------------------------------------------------------------- end to end


def test_end_to_end_all_channels() -> None:
    f = parse_tdmrep_file((SPEC / "tdmrep_multi_location.json").read_bytes())
    url = "https://provider.com/directory-b/images/cat.jpg"
    decision = combine(
        statement_from_file(f, url),
        statement_from_headers(*headers_of(SPEC / "http_header_reserved.txt")),
        None,  # an image has no HTML meta
    )
    assert decision.reserved
    assert [s.channel for s in decision.statements] == ["file", "header"]
    assert decision.statements[0].source == "tdmrep.json rule #2"


@pytest.mark.parametrize("url", ["https://x.org/~joe/a", "https://x.org/%7Ejoe/a",
                                 "https://x.org/%7ejoe/a"])
@pytest.mark.parametrize("first,second", [("/%7Ejoe/*", "/~joe/*"), ("/~joe/*", "/%7Ejoe/*")])
def test_first_match_in_either_reading_of_percent_encoding_reserves(url, first, second):
    """RFC 9309 §2.2.2's reading (TDMRep's location: "the same syntax") and Google's raw one pick
    different first rules here; the one that reserves wins."""
    f = parse_tdmrep_file(json.dumps([{"location": first, "tdm-reservation": 0},
                                      {"location": second, "tdm-reservation": 1}]).encode())
    if (first.startswith("/~") and "~" in url) or (first.startswith("/%7E")
                                                   and "%7e" in url.lower()):
        # the first rule matches in both readings: it is the first match, whatever the other
        assert statement_from_file(f, url).reservation is TdmValue.NOT_RESERVED
    else:
        assert statement_from_file(f, url).reservation is TdmValue.RESERVED
