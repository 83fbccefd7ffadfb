"""The canonical form of a record is exactly the documented ``json.dumps`` form, byte for byte,
whichever serialiser writes it (orjson where it writes the same bytes, json where it would not).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import struct

import orjson
import pytest

from crawler.audit.log import AuditWriter
from crawler.audit.record import canonical_bytes, canonical_json, record_hash


def documented(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_ALPHABET = ("abcXYZ09 -_/:.%?#&=\"\\\t\n\r\b\f\x00\x01\x1f\x7f\x80\u00e9\u00ff\u0100"
             "\u2028\u2029\ufeff\uffff\U0001f600\U00010000\U0010ffff日本語")


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 12)))


def _float(rng: random.Random) -> float:
    pick = rng.random()
    if pick < 0.3:
        return struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0]
    if pick < 0.5:
        return rng.choice([0.0, -0.0, 1.0, 0.1, 1e16, 1e-7, 1.5e-5, 1e-4, 1e22, 5e-324,
                           1.7976931348623157e308, math.inf, -math.inf, math.nan])
    return rng.random() * 10 ** rng.randint(-12, 20)


def _int(rng: random.Random) -> int:
    return rng.choice([0, 1, -1, 255, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64,
                       -2**63, -2**63 - 1, 10**30, -10**40, rng.randint(-10**6, 10**6)])


def _value(rng: random.Random, depth: int):
    pick = rng.random()
    if depth > 3 or pick < 0.35:
        return _text(rng)
    if pick < 0.45:
        return _int(rng)
    if pick < 0.52:
        return _float(rng)
    if pick < 0.58:
        return rng.choice([True, False, None])
    if pick < 0.8:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {_text(rng): _value(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def _record(rng: random.Random) -> dict:
    """A record like the writer's (and then some): plain ones most of the time, with any of
    the kinds of value orjson and json disagree on in a fifth of them."""
    rec = {"seq": rng.randint(1, 10**9), "time": "2026-12-02T03:08:20.126756Z",
           "url": "https://example.com/" + _text(rng), "decision": "allow",
           "reasons": [], "policy_sha256": "ab" * 32, "prev_hash": "cd" * 32,
           "checks": [{"signal": "robots", "outcome": "allow", "rule": _text(rng),
                       "status": 200, "problems": [_text(rng)]}
                      for _ in range(rng.randint(0, 6))]}
    if rng.random() < 0.2:
        rec["extra"] = _value(rng, 0)
        rec[_text(rng)] = _value(rng, 1)
    return rec


def test_10000_random_records_serialise_to_the_documented_bytes():
    rng = random.Random(20261202)
    differs = 0
    for _ in range(10_000):
        rec = _record(rng)
        want = documented(rec)
        assert canonical_json(rec) == want
        try:
            encoded = want.encode("utf-8")
        except UnicodeEncodeError:  # pragma: no cover - the alphabet has no lone surrogate
            continue
        assert canonical_bytes(rec) == encoded
        try:
            differs += orjson.dumps(rec, option=orjson.OPT_SORT_KEYS) != encoded
        except TypeError:
            differs += 1
    assert differs > 300  # the fallback to json was needed, and taken


@pytest.mark.parametrize("value", [
    1e-7, -3.9e-08, 1.5e-5, 6.3e-05, math.nan, math.inf, -math.inf, 2**64, -2**63 - 1, 10**40,
])
def test_where_orjson_writes_other_bytes_json_writes_them(value):
    rec = {"a": [value], "b": {"c": value}}
    want = documented(rec).encode()
    try:
        assert orjson.dumps(rec, option=orjson.OPT_SORT_KEYS) != want
    except TypeError:
        pass  # orjson refuses it outright
    assert canonical_bytes(rec) == want


def test_floats_at_every_exponent_and_at_random():
    rng = random.Random(3)
    values = [struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0]
              for _ in range(100_000)]
    values += [m * 10.0 ** e for e in range(-320, 309) for m in (1, 1.5, 9.999999999999999)
               if math.isfinite(m * 10.0 ** e)]
    for v in values:
        assert canonical_bytes([v]) == documented([v]).encode(), v


def test_every_code_point_in_strings_and_keys():
    points = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    for i in range(0, len(points), 4096):
        chunk = "".join(points[i:i + 4096])
        rec = {chunk: chunk, "k" + chunk[:5]: [chunk[::-1]]}
        assert canonical_bytes(rec) == documented(rec).encode()


def test_keys_that_are_not_strings_and_subclasses_go_to_json():
    from collections import OrderedDict

    class Text(str):
        pass

    for rec in ({1: "a", 2: "b"}, {"a": Text("x")}, OrderedDict(b=1, a=2), {"a": (1, 2)},
                {"a": {True: 1}}):
        assert canonical_bytes(rec) == documented(rec).encode()


def test_a_lone_surrogate_fails_as_it_did():
    rec = {"url": "http://a/\ud800"}
    assert canonical_json(rec) == documented(rec)  # a str, as json gives it
    with pytest.raises(UnicodeEncodeError):
        record_hash(rec)


def test_written_lines_verify_with_the_standard_library_alone(tmp_path):
    writer = AuditWriter(tmp_path / "audit.jsonl", job="j")
    rng = random.Random(9)
    for _ in range(200):
        extra = {"status": rng.choice([200, 404]), "note": _text(rng),
                 "retry_after_s": round(rng.random() * 100, 1), "n": _int(rng)}
        writer.write(url="https://example.com/" + _text(rng), decision="allow", reasons=[],
                     policy_sha256="ab" * 32, extra=extra)
    writer.close()
    prev, seq = "0" * 64, 0
    with open(tmp_path / "audit.jsonl", encoding="utf-8") as fh:
        lines = list(fh)
    for line in lines:  # the README's snippet
        rec = json.loads(line)
        h = rec.pop("hash")
        seq += 1
        body = json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert rec["seq"] == seq and rec["prev_hash"] == prev
        assert hashlib.sha256(body.encode("utf-8")).hexdigest() == h
        prev = h
        rec["hash"] = h
        assert line == documented(rec) + "\n"


def test_sealed_lines_are_the_canonical_form_of_their_records():
    from crawler.audit.record import seal, seal_line

    rng = random.Random(77)
    keys = ["a", "checks", "h", "hash0", "has", "i", "job", "z", "\u00e9", "Job"]
    for i in range(3000):
        body = {"decision": rng.choice(["allow", "deny", "send"]), "reasons": []}
        if body["decision"] == "deny":
            body["reasons"] = [{"signal": "robots", "rule": _text(rng)}]
        for key in rng.sample(keys, rng.randint(0, len(keys))):
            body[key] = _value(rng, 1)
        if rng.random() < 0.3:  # a nested object with the first key after "hash" too
            body["checks"] = [{"job": 1, "x": {"job": _text(rng)}}, {"a": 1, "job": 2}]
        rec, line = seal_line(body, seq=i + 1, prev_hash="0" * 64)
        assert rec == seal(body, seq=i + 1, prev_hash="0" * 64)
        assert line == documented(rec).encode() + b"\n"


@pytest.mark.parametrize("shared", [False, True])
def test_records_written_together_from_a_template_are_the_records_written_one_by_one(
        tmp_path, shared):
    """AuditWriter.write_many with templates (check --no-fetch) writes the bytes write() does,
    whatever the URL (unicode, quotes, escapes) and however the shapes interleave; and returns
    the records write() returns, whether each body has its own reasons and extra or the bodies
    of a shape share them (``shared``: what the decision funnel gives for a batch)."""
    ticks = iter(range(10**6))

    def clock():
        return f"2026-12-02T03:08:{next(ticks) % 60:02d}.{next(ticks):06d}Z"

    rng = random.Random(12)
    checks = [{"signal": "robots", "channel": "robots.txt", "outcome": "deny",
               "rule": "Disallow: / (line 3)", "problems": ["x\u00e9"]}]
    shapes = [("deny", checks[:1], {"stage": "request"}),
              ("allow", [], {"stage": "request", "note": "site-level signals only"}),
              ("deny", checks[:1], {"stage": "request", "seq": "ignored", "hash": "popped"})]
    bodies = []
    own = [([dict(r) for r in reasons], {**extra, "checks": checks})
           for _, reasons, extra in shapes]
    for _ in range(600):
        k = rng.randrange(3)
        decision, reasons, extra = shapes[k]
        url = "https://example.com/" + _text(rng) + rng.choice(['"', "\\", "\u2028", "%s%", ""])
        body_reasons, body_extra = own[k] if shared else (
            [dict(r) for r in reasons], {**extra, "checks": checks})
        bodies.append({"url": url, "decision": decision, "reasons": body_reasons,
                       "policy_sha256": "ab" * 32, "extra": body_extra,
                       "template": (decision, tuple(extra)), "template_owner": shapes})
    one = AuditWriter(tmp_path / "one.jsonl", job="j", clock=clock)
    expected = [one.write(url=b["url"], decision=b["decision"], reasons=b["reasons"],
                          policy_sha256=b["policy_sha256"], extra=b["extra"]) for b in bodies]
    one.close()
    ticks = iter(range(10**6))
    many = AuditWriter(tmp_path / "many.jsonl", job="j", clock=clock)
    recs = []
    for i in range(0, len(bodies), 64):
        got = many.write_many(bodies[i:i + 64])
        # a record given out is the caller's own: a listener's change is in no later record
        assert not any("seen by a listener" in r for r in got)
        recs += [dict(r) for r in got]
        for r in got:
            r["seen by a listener"] = True
    many.close()
    assert (tmp_path / "many.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()
    lines = (tmp_path / "many.jsonl").read_bytes().splitlines(keepends=True)
    assert [documented(r).encode() + b"\n" for r in recs] == lines
    assert recs == expected
    assert [list(r) for r in recs] == [list(r) for r in expected]  # (the same key order)
