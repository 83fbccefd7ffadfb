"""Opt-out registry (crawler.registry: entries, index, sqlite, spawning): entry syntax, matching,
both backends, Spawning codec."""

from __future__ import annotations

import json
import random
import re
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from crawler.registry import entries as registry
from crawler.registry import index as registry_index
from crawler.registry.entries import (
    MAX_LIST_PROBLEMS,
    RegistryEntry,
    canonical_url,
    parse_entry,
    parse_list,
)
from crawler.registry.index import RegistryIndex
from crawler.registry.spawning import (
    SPAWNING_PATH,
    parse_spawning_request,
    parse_spawning_response,
    spawning_request_body,
)
from crawler.registry.sqlite import RegistryFormatError, SqliteRegistry, import_list, open_registry

# --- parse_entry -----------------------------------------------------------------------------

ENTRY_VECTORS = [
    # text, kind, normalised value
    ("example.com", "domain", "example.com"),
    ("Example.COM", "domain", "example.com"),
    ("example.com.", "domain", "example.com"),
    ("*.example.com", "domain", "example.com"),
    (".example.com", "domain", "example.com"),
    ("sub.example.com", "domain", "sub.example.com"),
    ("  example.com\t", "domain", "example.com"),
    ("localhost", "domain", "localhost"),
    ("192.0.2.1", "domain", "192.0.2.1"),
    ("[2001:DB8:0::1]", "domain", "[2001:db8::1]"),
    ("bücher.example", "domain", "xn--bcher-kva.example"),
    ("BÜCHER.example", "domain", "xn--bcher-kva.example"),
    ("xn--bcher-kva.example", "domain", "xn--bcher-kva.example"),
    ("bücher。example", "domain", "xn--bcher-kva.example"),
    ("https://example.com", "origin", "https://example.com"),
    ("https://example.com/", "origin", "https://example.com"),
    ("HTTPS://Example.COM:443/", "origin", "https://example.com"),
    ("http://example.com:80", "origin", "http://example.com"),
    ("http://example.com:8080", "origin", "http://example.com:8080"),
    ("https://example.com:80/", "origin", "https://example.com:80"),
    ("https://example.com.:443", "origin", "https://example.com"),
    ("https://user:pw@example.com/", "origin", "https://example.com"),
    ("https://example.com/#top", "origin", "https://example.com"),
    ("http://[::1]:80/", "origin", "http://[::1]"),
    ("https://bücher.example/", "origin", "https://xn--bcher-kva.example"),
    ("https://example.com/path/", "prefix", "https://example.com/path/"),
    ("https://example.com/Path", "prefix", "https://example.com/Path"),
    ("https://EXAMPLE.com:443/a/b?x=1", "prefix", "https://example.com/a/b?x=1"),
    ("https://example.com/?page=2", "prefix", "https://example.com/?page=2"),
    ("https://example.com/a/#frag", "prefix", "https://example.com/a/"),
    ("https://example.com/a%2fb%c3%bc", "prefix", "https://example.com/a%2Fb%C3%BC"),
    ("https://example.com/ü/", "prefix", "https://example.com/%C3%BC/"),
    ("https://example.com/a|b", "prefix", "https://example.com/a%7Cb"),
]


@pytest.mark.parametrize(("text", "kind", "value"), ENTRY_VECTORS)
def test_parse_entry(text: str, kind: str, value: str) -> None:
    entry = parse_entry(text, line=7)
    assert (entry.kind, entry.value, entry.raw, entry.line) == (kind, value, text.strip(), 7)


MALFORMED = [
    # text, fragment of the message
    ("", "empty"),
    ("   ", "empty"),
    ("foo", "no dot"),
    ("example", "no dot"),
    ("a b.com", "whitespace"),
    ("https://example.com/a b", "whitespace"),
    ("ftp://example.com/", "only http and https"),
    ("mailto:someone@example.com", "unsupported scheme 'mailto'"),
    ("javascript:alert(1)", "scheme"),
    ("https:example.com", "write https://"),
    ("example.com/path", "needs a scheme"),
    ("example.com:8080", "needs a scheme"),
    ("https://", "empty host"),
    ("https:///path", "empty host"),
    ("https://:443/", "empty host"),
    ("a..example.com", "empty label"),
    ("https://exa mple.com/", "whitespace"),
    ("https://exa%41mple.com/", "not allowed"),
    ("ex*ample.com", "not allowed"),
    ("*.*.example.com", "not allowed"),
    ("https://example.com:99999/", "out of range"),
    ("https://example.com:0/", "out of range"),
    ("https://example.com:http/", "not a number"),
    ("https://[::1/", "IPv6"),
    ("https://[zz::1]/", "IPv6"),
    ("1.2.3", "IPv4"),
    ("999.1.1.1", "IPv4"),
    ("a" * 64 + ".com", "too long"),
    ("https://example.com/" + "a" * 2100, "longer than 2048"),
    ("\u05d0a.example", "not a valid internationalised name"),  # IDNA bidi rule
    ("ü" * 60 + ".example", "not a valid internationalised name"),
]


@pytest.mark.parametrize(("text", "message"), MALFORMED)
def test_parse_entry_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_entry(text)


def test_long_entries_are_shortened_in_messages() -> None:
    with pytest.raises(ValueError) as info:
        parse_entry("x" * 300 + " y.com")
    assert len(str(info.value)) < 150


# --- parse_list ------------------------------------------------------------------------------


def test_parse_list_comments_blank_and_malformed_lines() -> None:
    data = (
        b"# opt-out list\n"                   # 1 whole-line comment
        b"\n"                                 # 2 blank
        b"example.com   # trailing comment\n"  # 3
        b"   # indented comment\n"             # 4
        b"https://a.test/p#frag\n"            # 5 '#' without whitespace: a fragment
        b"foo\n"                              # 6 malformed
        b"*.wild.test\n"                      # 7 accepted, noted
        b"ftp://x.test/\n"                    # 8 malformed
        b"   \t  \n"                          # 9 blank
        b"https://b.test/ # x\n"              # 10
    )
    parsed = parse_list(data)
    assert [(e.kind, e.value, e.line) for e in parsed.entries] == [
        ("domain", "example.com", 3),
        ("prefix", "https://a.test/p", 5),
        ("domain", "wild.test", 7),
        ("origin", "https://b.test", 10),
    ]
    assert parsed.entries[0].raw == "example.com"
    assert [p.split(":", 1)[0] for p in parsed.problems] == ["line 6", "line 7", "line 8"]
    assert "no dot" in parsed.problems[0]
    assert "not needed" in parsed.problems[1]
    assert "only http and https" in parsed.problems[2]


def test_parse_list_bom_crlf_and_cr() -> None:
    parsed = parse_list(b"\xef\xbb\xbfexample.com\r\nexample.org\rexample.net\n")
    assert [(e.value, e.line) for e in parsed.entries] == [
        ("example.com", 1), ("example.org", 2), ("example.net", 3)]
    assert parsed.problems == ()


def test_parse_list_bad_utf8_line_is_a_problem() -> None:
    parsed = parse_list(b"example.com\n\xff\xfe.com\nexample.org\n")
    assert [e.value for e in parsed.entries] == ["example.com", "example.org"]
    assert parsed.problems[0].startswith("line 2: not UTF-8")


def test_parse_list_lists_a_bounded_number_of_problems() -> None:
    parsed = parse_list(b"bad\n" * (MAX_LIST_PROBLEMS + 5))
    assert len(parsed.problems) == MAX_LIST_PROBLEMS + 1
    assert parsed.problems[-1] == "... and 5 more problems not listed"


def test_parse_list_never_raises_on_random_bytes() -> None:
    rng = random.Random(1)
    alphabet = b"abc.:/#%[]@*\\ \t\r\n\x00\xff\xc3\xbc" + bytes(range(0x20, 0x7f))
    for _ in range(400):
        data = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 200)))
        parsed = parse_list(data)
        for entry in parsed.entries:
            assert parse_entry(entry.value).value == entry.value  # values are fixed points


# --- matching, on both backends --------------------------------------------------------------

LIST = """\
# matching vectors
example.com
https://www.example.com
https://www.example.com/a/
sub.example.org
https://origin.test
http://ported.test:8080
https://prefix.test/private/
https://prefix.test/private/deeper/
https://prefix.test/Case/
https://prefix.test/q?id=1
https://prefix.test/img
bücher.example
xn--caf-dma.example
trailing.test.
https://default-port.test:443/
http://[2001:db8::1]:8080/
192.0.2.7
localhost
https://pct.test/a%2fb/
https://uni.test/ü/
example.com
"""

MATCH_VECTORS = [
    # url, expected (kind, value) or None
    ("https://example.com/", ("domain", "example.com")),
    ("http://example.com:8080/x", ("domain", "example.com")),
    ("https://a.b.example.com/x", ("domain", "example.com")),
    ("https://EXAMPLE.COM/x", ("domain", "example.com")),
    ("https://example.com./x", ("domain", "example.com")),
    ("https://badexample.com/", None),
    ("https://example.com.evil.org/", None),
    ("https://example.co/", None),
    # most specific first: prefix > origin > domain
    ("https://www.example.com/b", ("origin", "https://www.example.com")),
    ("https://www.example.com/a/x", ("prefix", "https://www.example.com/a/")),
    ("http://www.example.com/a/x", ("domain", "example.com")),
    ("https://www.example.com:8443/a/x", ("domain", "example.com")),
    ("https://sub.example.org/", ("domain", "sub.example.org")),
    ("https://x.y.sub.example.org/p", ("domain", "sub.example.org")),
    ("https://example.org/", None),
    ("https://other.example.org/", None),
    ("https://xsub.example.org/", None),
    # origins: scheme, host and port exactly
    ("https://origin.test/any/path?q=1", ("origin", "https://origin.test")),
    ("https://origin.test:443/", ("origin", "https://origin.test")),
    ("https://Origin.Test", ("origin", "https://origin.test")),
    ("http://origin.test/", None),
    ("https://origin.test:8443/", None),
    ("https://www.origin.test/", None),
    ("http://ported.test:8080/x", ("origin", "http://ported.test:8080")),
    ("http://ported.test/", None),
    ("https://ported.test:8080/", None),
    # prefixes: string prefix of the normalised URL, longest first, path case-sensitive
    ("https://prefix.test/private/", ("prefix", "https://prefix.test/private/")),
    ("https://prefix.test/private/x.jpg", ("prefix", "https://prefix.test/private/")),
    ("https://prefix.test/private/deeper/x", ("prefix", "https://prefix.test/private/deeper/")),
    ("https://prefix.test/private/deeperx", ("prefix", "https://prefix.test/private/")),
    ("https://prefix.test/private", None),
    ("https://prefix.test/privateer/", None),
    ("https://prefix.test/public/x", None),
    ("https://prefix.test/", None),
    ("http://prefix.test/private/x", None),
    ("https://prefix.test:8443/private/x", None),
    ("https://PREFIX.test:443/private/x", ("prefix", "https://prefix.test/private/")),
    ("https://prefix.test/PRIVATE/x", None),
    ("https://prefix.test/Case/x", ("prefix", "https://prefix.test/Case/")),
    ("https://prefix.test/case/x", None),
    ("https://prefix.test/q?id=1", ("prefix", "https://prefix.test/q?id=1")),
    ("https://prefix.test/q?id=12", ("prefix", "https://prefix.test/q?id=1")),
    ("https://prefix.test/q?id=2", None),
    ("https://prefix.test/q", None),
    ("https://prefix.test/imgs/a.png", ("prefix", "https://prefix.test/img")),
    ("https://prefix.test/img", ("prefix", "https://prefix.test/img")),
    ("https://prefix.test/im", None),
    ("https://prefix.test/private/#frag", ("prefix", "https://prefix.test/private/")),
    ("https://prefix.test/private#/x", None),
    # IDN: the Unicode and punycode forms match each other
    ("https://xn--bcher-kva.example/", ("domain", "xn--bcher-kva.example")),
    ("https://bücher.example/x", ("domain", "xn--bcher-kva.example")),
    ("https://www.BÜCHER.example/x", ("domain", "xn--bcher-kva.example")),
    ("https://café.example/", ("domain", "xn--caf-dma.example")),
    ("https://cafe.example/", None),
    # trailing dots, default ports, IP addresses, localhost
    ("https://trailing.test/", ("domain", "trailing.test")),
    ("https://a.trailing.test./", ("domain", "trailing.test")),
    ("https://default-port.test/", ("origin", "https://default-port.test")),
    ("https://default-port.test:443/x", ("origin", "https://default-port.test")),
    ("http://default-port.test/", None),
    ("http://[2001:db8::1]:8080/x", ("origin", "http://[2001:db8::1]:8080")),
    ("http://[2001:0db8:0:0::1]:8080/", ("origin", "http://[2001:db8::1]:8080")),
    ("http://[2001:db8::1]/", None),
    ("http://192.0.2.7/", ("domain", "192.0.2.7")),
    ("https://192.0.2.7:8443/x", ("domain", "192.0.2.7")),
    ("http://192.0.2.77/", None),
    ("http://localhost:8000/", ("domain", "localhost")),
    ("http://a.localhost/", ("domain", "localhost")),
    # percent-escapes: hex case normalised, nothing decoded; non-ASCII encoded
    ("https://pct.test/a%2Fb/x", ("prefix", "https://pct.test/a%2Fb/")),
    ("https://pct.test/a%2fb/x", ("prefix", "https://pct.test/a%2Fb/")),
    ("https://pct.test/a/b/x", None),
    ("https://uni.test/%C3%BC/x", ("prefix", "https://uni.test/%C3%BC/")),
    ("https://uni.test/%c3%bc/x", ("prefix", "https://uni.test/%C3%BC/")),
    ("https://uni.test/ü/x", ("prefix", "https://uni.test/%C3%BC/")),
    # not looked up
    ("ftp://example.com/", None),
    ("example.com", None),
    ("", None),
    ("https://", None),
    ("https://exa mple.com/", None),
    ("http://[::1/", None),
]


def build(kind: str, tmp_path: Path, text: str = LIST) -> RegistryIndex | SqliteRegistry:
    list_path = tmp_path / "list.txt"
    list_path.write_text(text, encoding="utf-8")
    if kind == "memory":
        return RegistryIndex.from_file(list_path)[0]
    import_list(list_path, tmp_path / "list.db")
    return SqliteRegistry(tmp_path / "list.db")


@pytest.fixture(params=["memory", "sqlite"])
def backend(request: pytest.FixtureRequest, tmp_path: Path):
    reg = build(request.param, tmp_path)
    yield reg
    if isinstance(reg, SqliteRegistry):
        reg.close()


def _kv(entry: RegistryEntry | None) -> tuple[str, str] | None:
    return None if entry is None else (entry.kind, entry.value)


def test_matching_vectors(backend: RegistryIndex | SqliteRegistry) -> None:
    failures = [(url, want, _kv(backend.lookup(url))) for url, want in MATCH_VECTORS
                if _kv(backend.lookup(url)) != want]
    assert failures == []


def test_lookup_many_agrees_with_lookup(backend: RegistryIndex | SqliteRegistry) -> None:
    urls = [url for url, _ in MATCH_VECTORS] + ["https://example.com/"]  # one repeated
    many = backend.lookup_many(urls)
    assert set(many) == set(urls)
    assert {u: _kv(e) for u, e in many.items()} == {u: w for u, w in MATCH_VECTORS}


def test_entry_carries_raw_text_and_first_line(backend: RegistryIndex | SqliteRegistry) -> None:
    assert backend.lookup("https://example.com/") == RegistryEntry(
        "domain", "example.com", "example.com", 2)  # listed again on line 22: first kept
    assert backend.lookup("https://bücher.example/") == RegistryEntry(
        "domain", "xn--bcher-kva.example", "bücher.example", 13)
    assert backend.lookup("https://default-port.test/") == RegistryEntry(
        "origin", "https://default-port.test", "https://default-port.test:443/", 16)
    assert len(backend) == 20


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_backends_agree_on_random_urls(kind: str, tmp_path: Path) -> None:
    rng = random.Random(5)
    hosts = [f"{rng.choice('abc')}{i}.{rng.choice(['com', 'org'])}" for i in range(60)]
    lines, urls = [], []
    for host in hosts:
        r = rng.random()
        if r < 0.3:
            lines.append(host)
        elif r < 0.5:
            lines.append(f"https://{host}")
        else:
            for _ in range(rng.randint(1, 6)):
                lines.append(f"https://{host}/{rng.choice('ab')}{rng.choice(['', 'a', 'ab'])}")
    for _ in range(600):
        host = rng.choice(hosts)
        sub = rng.choice(["", "www.", "x.y."])
        path = "/" + "".join(rng.choice("ab/") for _ in range(rng.randint(0, 5)))
        urls.append(f"{rng.choice(['http', 'https'])}://{sub}{host}{path}")
    memory = RegistryIndex(parse_list("\n".join(lines).encode()).entries)
    other = build(kind, tmp_path, "\n".join(lines))
    try:
        assert [other.lookup(u) for u in urls] == [memory.lookup(u) for u in urls]
        assert other.lookup_many(urls) == memory.lookup_many(urls)
        assert any(memory.lookup(u) is not None for u in urls)
        assert any(memory.lookup(u) is None for u in urls)
    finally:
        if isinstance(other, SqliteRegistry):
            other.close()


def test_longest_prefix_search_backtracks() -> None:
    # the greatest entry <= the URL ("/ab/z") is not a prefix of it; "/a" is
    paths = sorted(["/a", "/ab/c", "/ab/d", "/ab/y", "/b"])
    assert paths[registry_index._longest_prefix(paths, "/ab/z")] == "/a"
    assert registry_index._longest_prefix(paths, "/") == -1
    assert paths[registry_index._longest_prefix(paths, "/ab/cc")] == "/ab/c"
    assert registry_index._longest_prefix([], "/x") == -1


FAST_PATH_URLS = [
    "https://example.com", "https://Example.COM:443/a/b?c=d#e", "http://a.b:8080?x",
    "http://a.b#f?g", "https://a.b/%7e/ü?q=ä", "https://a.b/a b", "https://a.b.:80/",
    "http://a.b:00080/", "https://a_b.c/", "https://1.2.3.4/", "https://a.b/p;params?q",
    "https://a.b/?", "https://a.b/#", "https://a.b/x//y/../z",
]


def test_plain_url_fast_path_agrees_with_urlsplit(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = [canonical_url(u) for u in FAST_PATH_URLS]
    assert sum(1 for u in FAST_PATH_URLS if registry._PLAIN_URL_RE.match(u)) >= 10
    monkeypatch.setattr(registry, "_PLAIN_URL_RE", re.compile(r"(?!)"))
    assert [canonical_url(u) for u in FAST_PATH_URLS] == fast


def test_canonical_url() -> None:
    assert canonical_url("HTTPS://Bücher.Example.:443/a%2f?b#c") == \
        "https://xn--bcher-kva.example/a%2F?b"
    with pytest.raises(ValueError, match="only http and https"):
        canonical_url("file:///etc/passwd")


HOST_LIST = """\
http://127.0.0.2:9821
http://Example.COM.:9821
[::ffff:192.0.2.9]
https://[::FFFF:198.51.100.3]/private/
http://bücher.example:9821/
"""

HOST_VECTORS = [
    # every spelling of one host matches the entry written in any other spelling
    ("http://127.0.0.2:9821/x", ("origin", "http://127.0.0.2:9821")),
    ("http://[::ffff:127.0.0.2]:9821/x", ("origin", "http://127.0.0.2:9821")),
    ("http://[::FFFF:7f00:2]:9821/", ("origin", "http://127.0.0.2:9821")),
    ("http://[0:0:0:0:0:ffff:127.0.0.2]:9821/x?y", ("origin", "http://127.0.0.2:9821")),
    ("http://[::ffff:127.0.0.3]:9821/x", None),
    ("http://[::ffff:127.0.0.2]:9822/x", None),
    ("HTTP://Example.COM.:9821/", ("origin", "http://example.com:9821")),
    ("http://EXAMPLE.com:9821/a", ("origin", "http://example.com:9821")),
    ("http://192.0.2.9/", ("domain", "192.0.2.9")),
    ("https://[::ffff:192.0.2.9]:8443/x", ("domain", "192.0.2.9")),
    ("https://198.51.100.3/private/x", ("prefix", "https://198.51.100.3/private/")),
    ("https://[::ffff:198.51.100.3]/private/x", ("prefix", "https://198.51.100.3/private/")),
    ("https://[::ffff:198.51.100.3]/public/x", None),
    ("HTTP://XN--BCHER-KVA.Example.:9821/x", ("origin", "http://xn--bcher-kva.example:9821")),
    ("http://BÜCHER.example\u3002:9821/", ("origin", "http://xn--bcher-kva.example:9821")),
]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_host_spellings_match_one_entry(kind: str, tmp_path: Path) -> None:
    """IPv4-mapped IPv6, trailing dots, case and IDNA, on the entry side and the URL side,
    for the text-list registry and the SQLite database (its keys are the normal forms)."""
    reg = build(kind, tmp_path, HOST_LIST)
    try:
        assert reg.problems == ()
        failures = [(url, want, _kv(reg.lookup(url))) for url, want in HOST_VECTORS
                    if _kv(reg.lookup(url)) != want]
        assert failures == []
        many = reg.lookup_many([url for url, _ in HOST_VECTORS])
        assert [_kv(many[url]) for url, _ in HOST_VECTORS] == [want for _, want in HOST_VECTORS]
    finally:
        if isinstance(reg, SqliteRegistry):
            reg.close()


def test_entries_and_urls_use_the_network_host_form() -> None:
    """The registry's host normal form is crawler.policy.network.normalize_host's (bracketed IPv6)."""
    from crawler.policy.network import normalize_host

    assert parse_entry("[::ffff:192.0.2.1]").value == "192.0.2.1"
    assert parse_entry("http://[::ffff:127.0.0.2]:9821/").value == "http://127.0.0.2:9821"
    assert canonical_url("http://[::ffff:127.0.0.2]:9821/x") == "http://127.0.0.2:9821/x"
    for host in ("Example.COM.", "BÜCHER.example", "[::FFFF:127.0.0.2]", "[2001:DB8:0::1]",
                 "192.0.2.1", "xn--BCHER-kva.example\u3002"):
        assert registry._normalize_host(host)[0].strip("[]") == normalize_host(host)


def test_index_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown entry kind"):
        RegistryIndex([RegistryEntry("regex", ".*", ".*", None)])


def test_index_from_entries_elsewhere() -> None:
    index = RegistryIndex([parse_entry("example.com"), parse_entry("https://x.test/a/")])
    assert len(index) == 2
    assert index.lookup("https://www.example.com/").line is None
    assert index.problems == ()


# --- SQLite database -------------------------------------------------------------------------


def test_import_list_round_trip(tmp_path: Path) -> None:
    (tmp_path / "list.txt").write_text(LIST + "foo\n", encoding="utf-8")
    count, problems = import_list(tmp_path / "list.txt", tmp_path / "reg.db")
    assert count == 20
    assert problems == parse_list((tmp_path / "list.txt").read_bytes()).problems
    assert len(problems) == 1 and problems[0].startswith("line 23:")
    with SqliteRegistry(tmp_path / "reg.db") as db:
        assert len(db) == 20
        assert db.problems == problems
        assert db.meta["format"] == "polite-crawler-registry"
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            db._con.execute("DELETE FROM entries")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["list.txt", "reg.db"]


def test_import_list_replaces_atomically(tmp_path: Path) -> None:
    db_path = tmp_path / "reg.db"
    (tmp_path / "one.txt").write_text("one.test\n", encoding="utf-8")
    (tmp_path / "two.txt").write_text("two.test\nthree.test\n", encoding="utf-8")
    import_list(tmp_path / "one.txt", db_path)
    old = SqliteRegistry(db_path)
    import_list(tmp_path / "two.txt", db_path)
    new = SqliteRegistry(db_path)
    try:
        # the open reader keeps the database it opened; a new reader sees the new one
        assert old.lookup("https://one.test/") is not None and len(old) == 1
        assert new.lookup("https://one.test/") is None and len(new) == 2
        assert new.lookup("https://two.test/") is not None
    finally:
        old.close()
        new.close()
    # a failed import leaves the database and no temporary file behind
    with pytest.raises(FileNotFoundError):
        import_list(tmp_path / "missing.txt", db_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.txt", "reg.db", "two.txt"]
    with SqliteRegistry(db_path) as db:
        assert len(db) == 2


def test_sqlite_registry_refuses_other_files(tmp_path: Path) -> None:
    text = tmp_path / "list.txt"
    text.write_text("example.com\n", encoding="utf-8")
    with pytest.raises(RegistryFormatError, match="not an SQLite registry"):
        SqliteRegistry(text)
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    with pytest.raises(RegistryFormatError, match="not a registry database"):
        SqliteRegistry(other)
    with pytest.raises(FileNotFoundError):
        SqliteRegistry(tmp_path / "missing.db")


def test_sqlite_registry_from_another_thread(tmp_path: Path) -> None:
    db = build("sqlite", tmp_path)
    answers: list[RegistryEntry | None] = []
    t = threading.Thread(target=lambda: answers.append(db.lookup("https://example.com/")))
    t.start()
    t.join()
    db.close()
    assert answers[0] is not None and answers[0].value == "example.com"


def test_sqlite_lookup_many_over_several_batches(tmp_path: Path) -> None:
    db = build("sqlite", tmp_path)
    urls = [f"https://h{i}.example.com/" for i in range(250)] + ["https://nope.test/"]
    try:
        answers = db.lookup_many(urls)
    finally:
        db.close()
    assert len(answers) == 251
    assert all(answers[u] is not None for u in urls[:-1]) and answers[urls[-1]] is None


def test_open_registry_by_content(tmp_path: Path) -> None:
    (tmp_path / "list.db.txt").write_text("example.com\nfoo\n", encoding="utf-8")
    index = open_registry(tmp_path / "list.db.txt")  # the name does not matter
    assert isinstance(index, RegistryIndex) and len(index) == 1
    assert len(index.problems) == 1
    import_list(tmp_path / "list.db.txt", tmp_path / "list.txt")
    db = open_registry(tmp_path / "list.txt")
    try:
        assert isinstance(db, SqliteRegistry) and len(db) == 1
    finally:
        db.close()


def test_registry_module_is_stdlib_only() -> None:
    code = ("import sys, crawler.registry.entries, crawler.registry.index, "
            "crawler.registry.sqlite, crawler.registry.spawning, crawler.registry.client\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('scrapy', 'twisted'))\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- Spawning API codec (protocols.md §8.1, §8.6) --------------------------------------------


def answer(*items: dict) -> bytes:
    return json.dumps({"urls": list(items)}).encode()


def test_spawning_vector_1_opt_out_excludes() -> None:
    body = b'{"urls":[{"url":"https://a.com/x.jpg","optOut":true,"optIn":false}]}'
    assert parse_spawning_response(body, ["https://a.com/x.jpg"]) == (
        {"https://a.com/x.jpg": True}, ())


def test_spawning_vector_2_no_opt_out() -> None:
    body = b'{"urls":[{"url":"https://b.com/y.jpg","optOut":false,"optIn":false}]}'
    assert parse_spawning_response(body, ["https://b.com/y.jpg"]) == (
        {"https://b.com/y.jpg": False}, ())


def test_spawning_vector_3_opt_out_wins_over_opt_in() -> None:
    body = b'{"urls":[{"url":"https://laion.ai","optOut":true,"optIn":true}]}'
    assert parse_spawning_response(body, ["https://laion.ai"])[0] == {"https://laion.ai": True}


def test_spawning_vector_4_server_error_is_undecided() -> None:
    urls = ["https://a.com/1", "https://a.com/2"]
    result, problems = parse_spawning_response(b"Internal Server Error", urls, status=500)
    assert result == dict.fromkeys(urls)
    assert problems == ("HTTP 500: no answer for 2 URLs",)


def test_spawning_request_body() -> None:
    urls = ["https://a.com/x.jpg", "https://b.com/ü"]
    body = spawning_request_body(urls)
    assert body == "https://a.com/x.jpg\nhttps://b.com/ü".encode()
    assert parse_spawning_request(body) == tuple(urls)
    assert parse_spawning_request(b"\xef\xbb\xbf a \r\n\n\nb\n") == ("a", "b")
    for bad in (["https://a.com/\nx"], [""], ["https://a.com/\r"]):
        with pytest.raises(ValueError, match="line break"):
            spawning_request_body(bad)
    assert SPAWNING_PATH == "/api/v2/query/urls"


GARBAGE = [
    b"",
    b"<html><body>Bad gateway</body></html>",
    b"\xff\xfe\x00",
    b"null",
    b"[]",
    b'[{"url": "https://a.com/1", "optOut": true}]',
    b'{"urls": {"https://a.com/1": true}}',
    b'{"result": []}',
    b"[" * 100_000 + b"]" * 100_000,
    b'{"urls": [1, "x", null, []]}',
    b'{"urls": [{"url": "https://a.com/1", "optOut": "true"}]}',
    b'{"urls": [{"url": "https://a.com/1", "optOut": 1}]}',
    b'{"urls": [{"url": "https://a.com/1"}]}',
    b'{"urls": [{"url": "https://a.com/1", "optIn": true}]}',
    b'{"urls": [{"url": 7, "optOut": true}]}',
    b'{"urls": []}',
]


@pytest.mark.parametrize("body", GARBAGE, ids=lambda b: repr(b[:30]))
def test_spawning_garbage_is_undecided(body: bytes) -> None:
    result, problems = parse_spawning_response(body, ["https://a.com/1"])
    assert result == {"https://a.com/1": None}
    assert problems


def test_spawning_answers_matched_by_url_not_position() -> None:
    urls = ["https://a.com/1", "https://a.com/2", "https://a.com/3"]
    body = answer({"url": "https://a.com/3", "optOut": True, "optIn": False},
                  {"url": "https://a.com/1", "optOut": False, "optIn": False},
                  {"url": "https://a.com/2", "optOut": True, "optIn": True})
    assert parse_spawning_response(body, urls) == (
        {"https://a.com/1": False, "https://a.com/2": True, "https://a.com/3": True}, ())


def test_spawning_missing_and_unasked_entries() -> None:
    urls = ["https://a.com/1", "https://a.com/2"]
    body = answer({"url": "https://a.com/2", "optOut": False},
                  {"url": "https://other.com/", "optOut": True})
    result, problems = parse_spawning_response(body, urls)
    assert result == {"https://a.com/1": None, "https://a.com/2": False}
    assert any("not asked" in p for p in problems)
    assert problems[-1] == "no usable answer for 1 of 2 URLs"


def test_spawning_answer_url_normalised_by_the_server() -> None:
    body = answer({"url": "https://a.com/%7Ex", "optOut": True})
    assert parse_spawning_response(body, ["HTTPS://A.COM:443/%7ex"])[0] == {
        "HTTPS://A.COM:443/%7ex": True}


def test_spawning_position_fallback_without_url_fields() -> None:
    urls = ["https://a.com/1", "https://a.com/2"]
    body = answer({"optOut": True, "optIn": False}, {"optOut": False, "optIn": False})
    result, problems = parse_spawning_response(body, urls)
    assert result == {"https://a.com/1": True, "https://a.com/2": False}
    assert problems == ("2 answers had no 'url' field: matched by position",)
    # with a different count, position means nothing
    result, problems = parse_spawning_response(answer({"optOut": False}), urls)
    assert result == dict.fromkeys(urls)
    assert "differs from the URL count" in problems[0]


def test_spawning_contradictory_answers_read_as_opted_out() -> None:
    body = answer({"url": "https://a.com/1", "optOut": False},
                  {"url": "https://a.com/1", "optOut": True})
    result, problems = parse_spawning_response(body, ["https://a.com/1"])
    assert result == {"https://a.com/1": True}
    assert "contradictory" in problems[0]


def test_spawning_response_never_raises_on_random_json() -> None:
    rng = random.Random(3)
    values = [None, True, False, 0, 1, "", "https://a.com/1", [], {}, 1.5]
    for _ in range(300):
        items = [{rng.choice(["url", "optOut", "optIn", "x"]): rng.choice(values)
                  for _ in range(rng.randint(0, 4))} for _ in range(rng.randint(0, 3))]
        result, _problems = parse_spawning_response(
            json.dumps({"urls": items}).encode(), ["https://a.com/1", "https://a.com/2"])
        assert set(result) == {"https://a.com/1", "https://a.com/2"}
        assert all(v in (True, False, None) for v in result.values())
