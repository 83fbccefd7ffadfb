"""The audit log: chain, writer durability, and `audit verify` catching every kind of tamper."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from crawler.audit.log import AuditLogError, AuditWriter, verify_file
from crawler.audit.record import GENESIS_HASH, canonical_json, record_hash, seal, verify_lines
from crawler.cli.main import main

REASON = {"signal": "robots", "channel": "robots.txt", "agent": "GPTBot",
          "rule": "Disallow: /", "source": "https://example.org/robots.txt",
          "source_sha256": "ab" * 32}


def _clock():
    n = iter(range(10_000))
    return lambda: f"2026-11-27T21:00:{next(n) % 60:02d}.000000Z"


def write_log(path: Path, n: int = 5) -> list[dict]:
    w = AuditWriter(path, job="t", clock=_clock())
    recs = []
    for i in range(n):
        deny = i % 2 == 0
        recs.append(w.write(url=f"https://example.org/{i}", decision="deny" if deny else "allow",
                            reasons=[REASON] if deny else [], policy_sha256="p" * 64))
    w.close()
    return recs


def independent_verify(path: Path) -> bool:
    """The ten lines INTERFACE.md promises, with no project code."""
    prev = "0" * 64
    for seq, line in enumerate(path.read_text(encoding="utf-8").splitlines(keepends=True), 1):
        try:
            rec = json.loads(line)
        except ValueError:
            return False
        h = rec.pop("hash")
        body = json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        if rec["seq"] != seq or rec["prev_hash"] != prev:
            return False
        if hashlib.sha256(body.encode("utf-8")).hexdigest() != h:
            return False
        prev = h
    return True


def test_chain_shape_and_independent_verification(tmp_path):
    log = tmp_path / "audit.jsonl"
    recs = write_log(log)
    assert [r["seq"] for r in recs] == [1, 2, 3, 4, 5]
    assert recs[0]["prev_hash"] == GENESIS_HASH
    assert all(recs[i]["prev_hash"] == recs[i - 1]["hash"] for i in range(1, 5))
    first = json.loads(log.read_text().splitlines()[0])
    assert set(first) >= {"seq", "time", "job", "url", "decision", "reasons",
                          "policy_sha256", "prev_hash", "hash"}
    assert independent_verify(log)
    assert verify_file(log).ok


def test_lines_are_canonical_json(tmp_path):
    log = tmp_path / "audit.jsonl"
    write_log(log, 2)
    for line in log.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        assert canonical_json(rec) == line
        assert record_hash(rec) == rec["hash"]


def test_unicode_urls_hash_as_utf8(tmp_path):
    log = tmp_path / "audit.jsonl"
    w = AuditWriter(log, job="ü")
    w.write(url="https://example.org/ツ", decision="allow", reasons=[], policy_sha256="p")
    w.close()
    assert "ツ" in log.read_text(encoding="utf-8")
    assert independent_verify(log)


def _mutate(log: Path, fn) -> None:
    lines = log.read_text(encoding="utf-8").splitlines(keepends=True)
    log.write_text("".join(fn(lines)), encoding="utf-8")


def _edit(lines):
    rec = json.loads(lines[2])
    rec["decision"] = "allow"
    rec["reasons"] = []
    lines[2] = canonical_json(rec) + "\n"
    return lines


def _edit_and_rehash(lines):
    rec = json.loads(lines[2])
    rec["url"] = "https://example.org/other"
    rec["hash"] = record_hash(rec)
    lines[2] = canonical_json(rec) + "\n"
    return lines


@pytest.mark.parametrize(
    "name, mutate, bad_line",
    [
        ("edited", _edit, 3),
        ("edited and re-hashed", _edit_and_rehash, 4),
        ("dropped", lambda ls: ls[:1] + ls[2:], 2),
        ("reordered", lambda ls: [ls[0], ls[2], ls[1], *ls[3:]], 2),
        ("duplicated", lambda ls: [*ls[:3], ls[2], *ls[3:]], 4),
        ("truncated mid-record", lambda ls: [*ls[:-1], ls[-1][:40]], 5),
        ("garbage line", lambda ls: [*ls[:2], "not json\n", *ls[2:]], 3),
        ("last record dropped", lambda ls: ls[:-1], 5),
        ("first record dropped", lambda ls: ls[1:], 1),
    ],
)
def test_verify_names_first_bad_record(tmp_path, name, mutate, bad_line):
    log = tmp_path / "audit.jsonl"
    write_log(log)
    _mutate(log, mutate)
    result = verify_file(log)
    assert not result.ok, name
    assert result.bad_line == bad_line, result.describe()
    assert not independent_verify(log) or name == "last record dropped"


def test_verify_cli_exit_codes(tmp_path, capsys):
    log = tmp_path / "audit.jsonl"
    write_log(log)
    assert main(["audit", "verify", str(log)]) == 0
    assert "OK, 5 records" in capsys.readouterr().out
    _mutate(log, _edit)
    assert main(["audit", "verify", str(log)]) == 1
    out = capsys.readouterr().out
    assert "line 3 (seq 3)" in out and "edited" in out
    assert main(["audit", "verify", str(tmp_path / "missing.jsonl")]) == 2


def test_writer_continues_chain_across_restart(tmp_path):
    log = tmp_path / "audit.jsonl"
    write_log(log, 3)
    w = AuditWriter(log, job="t")
    rec = w.write(url="https://example.org/next", decision="allow", reasons=[],
                  policy_sha256="p")
    w.close()
    assert rec["seq"] == 4
    assert verify_file(log).ok and independent_verify(log)


def test_writer_drops_partial_tail_from_killed_run(tmp_path):
    log = tmp_path / "audit.jsonl"
    write_log(log, 3)
    with open(log, "ab") as fh:
        fh.write(b'{"seq": 4, "half a rec')
    w = AuditWriter(log, job="t")
    assert w.state.seq == 3
    w.write(url="https://example.org/x", decision="allow", reasons=[], policy_sha256="p")
    w.close()
    assert verify_file(log).ok


def test_writer_refuses_to_extend_a_broken_log(tmp_path):
    log = tmp_path / "audit.jsonl"
    write_log(log, 3)
    _mutate(log, _edit)
    with pytest.raises(AuditLogError, match="line 3"):
        AuditWriter(log, job="t")


def test_seal_rejects_what_the_interface_forbids():
    with pytest.raises(ValueError, match="at least one reason"):
        seal({"decision": "deny", "reasons": []}, seq=1, prev_hash=GENESIS_HASH)
    with pytest.raises(ValueError, match="decision"):
        seal({"decision": "maybe", "reasons": []}, seq=1, prev_hash=GENESIS_HASH)
    with pytest.raises(ValueError, match="signal"):
        seal({"decision": "deny", "reasons": [{"signal": "vibes"}]}, seq=1,
             prev_hash=GENESIS_HASH)


def test_verify_lines_rejects_invalid_utf8():
    result = verify_lines([b"\xff\xfe\n"])
    assert not result.ok and result.bad_line == 1


def test_record_committed_before_a_kill(tmp_path):
    """A record is on disk (flushed) as soon as write() returns: kill -9 right after."""
    log = tmp_path / "audit.jsonl"
    code = (
        "import os, signal, sys\n"
        "from crawler.audit.log import AuditWriter\n"
        f"w = AuditWriter({str(log)!r}, job='k')\n"
        "w.write(url='https://example.org/a', decision='allow', reasons=[], policy_sha256='p')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False)
    assert proc.returncode == -9
    result = verify_file(log)
    assert result.ok and result.records == 1


def test_writer_refuses_a_log_cut_short_of_its_head(tmp_path):
    log = tmp_path / "audit.jsonl"
    write_log(log, 3)
    _mutate(log, lambda ls: ls[:-1])
    with pytest.raises(AuditLogError, match="removed from the end"):
        AuditWriter(log, job="t")
