"""A record that cannot be written leaves no partial line, refuses every later write, and the
log continues where it stopped once the problem is gone (disk full, I/O error)."""

from __future__ import annotations

import errno
import os

import pytest

from crawler.audit import log as audit_log
from crawler.audit.log import AuditWriteError, AuditWriter, read_head, verify_file
from crawler.crawl.decisions import AuditUnavailable, DecisionFunnel
from crawler.policy.reservation import Policy, Verdict

_REAL_WRITE = os.write


def _write(writer: AuditWriter, n: int) -> None:
    for i in range(n):
        writer.write(url=f"https://example.org/{i}", decision="allow", reasons=[],
                     policy_sha256="p")


class _DiskFull:
    """os.write that writes ``room`` more bytes, then fails with ENOSPC (a short write first,
    as a filling disk does)."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.real = _REAL_WRITE

    def __call__(self, fd: int, data) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = self.real(fd, bytes(data[: self.room]))
        self.room -= n
        return n


def test_disk_full_leaves_no_partial_record_and_stops_every_later_write(tmp_path, monkeypatch):
    path = tmp_path / "audit.jsonl"
    writer = AuditWriter(path, job="j")
    _write(writer, 3)
    good = path.read_bytes()
    monkeypatch.setattr(audit_log.os, "write", _DiskFull(room=40))  # half a record fits
    with pytest.raises(AuditWriteError) as info:
        _write(writer, 1)
    assert "No space left on device" in str(info.value.strerror)
    assert path.read_bytes() == good          # the half record was cut back
    assert read_head(path).seq == 3 and writer.state.seq == 3
    monkeypatch.setattr(audit_log.os, "write", _DiskFull(room=10**6))  # space again...
    with pytest.raises(AuditWriteError):
        _write(writer, 1)                     # ...but this writer stays failed (fail closed)
    writer.close()
    assert verify_file(path).ok
    again = AuditWriter(path, job="j")        # the next run continues the chain
    _write(again, 1)
    again.close()
    result = verify_file(path)
    assert result.ok and result.records == 4


@pytest.mark.parametrize("code", [errno.EIO, errno.EACCES, errno.EDQUOT])
def test_any_write_error_is_a_write_failure(tmp_path, monkeypatch, code):
    writer = AuditWriter(tmp_path / "a.jsonl", job="j")

    def broken(fd, data):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(audit_log.os, "write", broken)
    with pytest.raises(AuditWriteError):
        _write(writer, 1)
    assert writer.failed is not None and (tmp_path / "a.jsonl").read_bytes() == b""
    writer.close()


def test_funnel_refuses_and_reports_the_failure_once(tmp_path, monkeypatch):
    writer = AuditWriter(tmp_path / "a.jsonl", job="j")
    seen = []
    funnel = DecisionFunnel(writer, Policy(token="T", user_agent="T/1 (+https://x.org)"),
                            on_failure=seen.append)
    monkeypatch.setattr(audit_log.os, "write", _DiskFull(room=0))
    allow = Verdict("allow", (), ())
    for _ in range(3):
        with pytest.raises(AuditUnavailable):  # an IgnoreRequest: the request is not sent
            funnel.record("https://example.org/", allow)
    assert len(seen) == 1 and isinstance(seen[0], AuditWriteError)
    writer.close()
