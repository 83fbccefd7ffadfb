"""`polite-crawl audit repair`: cut a torn last line, never rewrite verified history."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from crawler.audit.log import AuditWriter, verify_file
from crawler.audit.repair import diagnose, repairs_path
from crawler.audit.runlock import RunLock
from crawler.cli.main import main


def make_log(tmp_path: Path, n: int = 4) -> Path:
    path = tmp_path / "audit.jsonl"
    w = AuditWriter(path, job="t")
    for i in range(n):
        w.write(url=f"https://x.example/{i}", decision="allow", reasons=[],
                policy_sha256="0" * 64)
    w.close()
    return path


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


TORN = [
    b'{"seq": 5, "url": "https://x.exam',           # cut mid-write: no end of line
    b'{"seq": 5, "url": "https://x.exam\n',         # not JSON
    b"\x00\x00\x00\x00\n",                          # zeros (a filesystem after a crash)
]


@pytest.mark.parametrize("tail", TORN)
def test_torn_tail_is_cut_and_recorded(tmp_path, capsys, tail):
    log = make_log(tmp_path)
    good = log.read_bytes()
    append(log, tail)
    assert not verify_file(log).ok
    assert main(["audit", "repair", str(log)]) == 0
    assert log.read_bytes() == good  # exactly the torn line is gone
    assert verify_file(log).ok
    (entry,) = [json.loads(x) for x in repairs_path(log).read_text().splitlines()]
    assert entry["cut_bytes"] == len(tail)
    assert entry["sha256_of_cut"] == hashlib.sha256(tail).hexdigest()
    assert entry["cut_offset"] == len(good) and entry["now_ends_at_seq"] == 4
    assert entry["time"]
    assert "cut a torn last line" in capsys.readouterr().out
    # the writer continues the chain after a repair
    w = AuditWriter(log, job="t")
    w.write(url="https://x.example/next", decision="allow", reasons=[], policy_sha256="0" * 64)
    w.close()
    assert verify_file(log).ok and verify_file(log).records == 5


def test_last_record_that_does_not_chain_is_cut(tmp_path):
    log = make_log(tmp_path)
    good = log.read_bytes()
    last = json.loads(good.splitlines()[-1])
    forged = dict(last, seq=5, url="https://x.example/forged")  # wrong prev_hash and hash
    append(log, (json.dumps(forged) + "\n").encode())
    assert main(["audit", "repair", str(log)]) == 0
    assert log.read_bytes() == good and verify_file(log).ok


def test_tampered_middle_record_is_not_repaired(tmp_path, capsys):
    log = make_log(tmp_path)
    lines = log.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b"x.example/1", b"y.example/1")
    log.write_bytes(b"".join(lines))
    before = log.read_bytes()
    assert main(["audit", "repair", str(log)]) == 1
    assert log.read_bytes() == before  # unchanged
    assert not repairs_path(log).exists()
    err = capsys.readouterr().err
    assert "line 2" in err and "will not rewrite" in err


def test_tampered_middle_and_torn_tail_is_not_repaired(tmp_path):
    log = make_log(tmp_path)
    lines = log.read_bytes().splitlines(keepends=True)
    lines[0] = lines[0].replace(b"x.example/0", b"y.example/0")
    log.write_bytes(b"".join(lines) + TORN[0])
    before = log.read_bytes()
    assert main(["audit", "repair", str(log)]) == 1
    assert log.read_bytes() == before


def test_committed_last_record_is_never_cut(tmp_path):
    """The head file says the writer committed the last record: editing it is tampering, not
    a torn write, and cutting it would remove history."""
    log = make_log(tmp_path)
    lines = log.read_bytes().splitlines(keepends=True)
    lines[-1] = lines[-1].replace(b"x.example/3", b"y.example/3")
    log.write_bytes(b"".join(lines))
    before = log.read_bytes()
    assert diagnose(log).tail is None
    assert main(["audit", "repair", str(log)]) == 1
    assert log.read_bytes() == before


def test_intact_log_needs_no_repair(tmp_path, capsys):
    log = make_log(tmp_path)
    before = log.read_bytes()
    assert main(["audit", "repair", str(log)]) == 0
    assert log.read_bytes() == before and not repairs_path(log).exists()
    assert "nothing to repair" in capsys.readouterr().out


def test_log_in_use_is_not_repaired(tmp_path, capsys):
    log = make_log(tmp_path)
    append(log, TORN[0])
    before = log.read_bytes()
    with RunLock(log):
        assert main(["audit", "repair", str(log)]) == 2
    assert log.read_bytes() == before
    assert "another run" in capsys.readouterr().err


def test_missing_log(tmp_path, capsys):
    assert main(["audit", "repair", str(tmp_path / "nope.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_repair_is_noted_in_the_head_file_kept_by_the_writer_and_checked(tmp_path, capsys):
    from crawler.audit.log import read_head_file

    log = make_log(tmp_path)
    append(log, TORN[1])
    assert main(["audit", "repair", str(log)]) == 0
    head = read_head_file(log)
    assert head["repairs"] == 1
    assert head["repairs_sha256"] == hashlib.sha256(repairs_path(log).read_bytes()).hexdigest()
    w = AuditWriter(log, job="t")  # later records keep the note
    w.write(url="https://x.example/next", decision="allow", reasons=[], policy_sha256="0" * 64)
    w.close()
    assert read_head_file(log)["repairs"] == 1 and read_head_file(log)["seq"] == 5
    capsys.readouterr()
    assert main(["audit", "verify", str(log)]) == 0
    assert "audit repair" in capsys.readouterr().out
    # the repairs record cannot be edited or dropped unnoticed
    repairs_path(log).write_text(repairs_path(log).read_text().replace('"cut_bytes": ',
                                                                        '"cut_bytes": 1'))
    assert main(["audit", "verify", str(log)]) == 1
    repairs_path(log).unlink()
    assert main(["audit", "verify", str(log)]) == 1
