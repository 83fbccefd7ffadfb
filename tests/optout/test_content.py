"""Strict body decoding: every cut, corrupt or unknown coding is said to be so, never guessed."""

from __future__ import annotations

import gzip
import random
import zlib

import brotli
import pytest

from crawler.optout.content import decode_content, parse_codings, utf8_from_bom

try:
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:
    from backports import zstd

TEXT = b"User-agent: *\nDisallow: /\nAllow: /public/page.html\n" * 20
NOISE = random.Random(3).randbytes(20_000)
_words = ["Disallow", "Allow", "User-agent", "/private/", "/public/", "*", "$", "GPTBot", "#"]
_r = random.Random(5)
WORDS = "\n".join(" ".join(_r.choice(_words) for _ in range(6)) for _ in range(2000)).encode()


def _raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


ENCODERS = {
    "gzip": lambda d: gzip.compress(d),
    "x-gzip": lambda d: gzip.compress(d),
    "deflate": zlib.compress,
    "deflate-raw": _raw_deflate,
    "br": brotli.compress,
    "zstd": zstd.compress,
}


def _coding(name: str) -> str:
    return "deflate" if name == "deflate-raw" else name


@pytest.mark.parametrize("name", sorted(ENCODERS))
@pytest.mark.parametrize("data", [TEXT, NOISE, b"x"], ids=["text", "noise", "one-byte"])
def test_round_trip_is_complete(name, data):
    got = decode_content(ENCODERS[name](data), [_coding(name).encode()])
    assert got.ok and got.complete and got.body == data
    assert got.codings == (_coding(name),)


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_stream_cut_by_the_server_is_an_error(name):
    """The transfer ended normally, the stream did not: corrupt, not 'empty'."""
    enc = ENCODERS[name](NOISE)
    got = decode_content(enc[: len(enc) // 2], [_coding(name)])
    assert not got.ok and not got.complete and got.body == b""
    assert _coding(name) in got.error


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_stream_cut_by_us_gives_a_prefix_marked_incomplete(name):
    enc = ENCODERS[name](NOISE)
    got = decode_content(enc[: len(enc) // 2], [_coding(name)], received_all=False)
    assert got.ok and not got.complete
    assert NOISE.startswith(got.body)
    assert any("prefix" in p for p in got.problems)


@pytest.mark.parametrize("name", ["gzip", "deflate", "br", "zstd"])
def test_corrupt_stream_is_an_error(name):
    # compressible input: the damage hits entropy-coded data (brotli and zstd store
    # incompressible blocks raw, and neither has a checksum by default: damage there is
    # undetectable by any decoder; gzip's CRC-32 catches it, see below)
    enc = bytearray(ENCODERS[name](WORDS))
    for i in range(len(enc) // 3, len(enc) // 3 + 16):
        enc[i] ^= 0xA5
    got = decode_content(bytes(enc), [name])
    assert not got.ok and got.body == b""


def test_gzip_crc_mismatch_is_an_error():
    enc = bytearray(gzip.compress(TEXT))
    enc[-6] ^= 1  # inside the CRC-32 of the trailer
    got = decode_content(bytes(enc), ["gzip"])
    assert not got.ok and "corrupt gzip" in got.error


@pytest.mark.parametrize("value", [["x-unknown"], ["gzip, compress"], [b"br, foo"], ["*"]])
def test_unknown_coding_is_an_error(value):
    got = decode_content(gzip.compress(TEXT), value)
    assert not got.ok and "unknown content-coding" in got.error


def test_codings_are_undone_last_first():
    data = brotli.compress(gzip.compress(TEXT))  # gzip applied first, then br
    assert decode_content(data, ["gzip, br"]).body == TEXT
    assert decode_content(data, [b"gzip", b"br"]).body == TEXT
    assert not decode_content(data, ["br, gzip"]).ok


def test_identity_and_empty_members_are_nothing():
    assert parse_codings([b"identity", b" , GZip ", "Identity, br"]) == ["gzip", "br"]
    got = decode_content(TEXT, ["identity"])
    assert got.ok and got.complete and got.body == TEXT


def test_no_coding_keeps_the_bytes_and_says_whether_all_came():
    assert decode_content(TEXT).complete
    got = decode_content(TEXT, received_all=False)
    assert got.ok and not got.complete and got.body == TEXT


def test_decompression_bomb_is_cut_at_max_size():
    bomb = gzip.compress(b"\0" * 50_000_000)
    got = decode_content(bomb, ["gzip"], max_size=100_000)
    assert got.ok and not got.complete and len(got.body) == 100_000
    assert any("limit" in p for p in got.problems)


@pytest.mark.parametrize("name", ["br", "zstd", "deflate"])
def test_max_size_applies_to_every_coding(name):
    got = decode_content(ENCODERS[name](b"a" * 1_000_000), [name], max_size=1000)
    assert got.ok and not got.complete and len(got.body) == 1000


def test_concatenated_gzip_members_are_one_body():
    assert decode_content(gzip.compress(b"a") + gzip.compress(b"b"), ["gzip"]).body == b"ab"


def test_garbage_after_the_stream_is_an_error():
    assert not decode_content(gzip.compress(TEXT) + b"junk", ["gzip"]).ok
    assert not decode_content(zlib.compress(TEXT) + b"junk", ["deflate"]).ok
    # zero padding after the gzip trailer is common and harmless
    assert decode_content(gzip.compress(TEXT) + b"\0" * 8, ["gzip"]).body == TEXT


def test_empty_body_with_a_coding_is_an_error():
    assert not decode_content(b"", ["gzip"]).ok


def test_never_raises_on_garbage():
    rng = random.Random(7)
    for _ in range(300):
        blob = rng.randbytes(rng.randint(0, 300))
        for coding in ("gzip", "deflate", "br", "zstd"):
            got = decode_content(blob, [coding], received_all=rng.random() < 0.5)
            assert got.error is None or got.body == b""


@pytest.mark.parametrize("codec,label", [("utf-16", "UTF-16LE"), ("utf-16-be", "UTF-16BE"),
                                         ("utf-32", "UTF-32LE"), ("utf-32-be", "UTF-32BE")])
def test_utf16_and_utf32_with_bom_become_utf8(codec, label):
    text = "User-agent: *\nDisallow: /ä/\n"
    data = text.encode(codec)
    if not data.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")):
        data = {"utf-16-be": b"\xfe\xff", "utf-32-be": b"\x00\x00\xfe\xff"}[codec] + data
    body, problem = utf8_from_bom(data)
    assert body == text.encode("utf-8")
    assert label in problem


def test_utf8_and_bomless_bodies_are_left_alone():
    for data in (TEXT, b"\xef\xbb\xbfUser-agent: *", b"\xff\xfd garbage"):
        assert utf8_from_bom(data) == (data, None)


def test_odd_utf16_is_replaced_and_said():
    body, problem = utf8_from_bom(b"\xff\xfeU\x00s\x00\x00")  # an odd trailing byte
    assert body.startswith(b"Us") and "replaced" in problem


def test_over_limit_is_flagged_apart_from_a_cut_transfer():
    assert decode_content(gzip.compress(b"a" * 5000), ["gzip"], max_size=100).over_limit
    assert decode_content(b"a" * 5000, max_size=100).over_limit
    got = decode_content(gzip.compress(NOISE)[:500], ["gzip"], received_all=False)
    assert not got.complete and not got.over_limit
