"""merge_logs: each worker's chain verified first, one time-ordered report, chains intact."""

from __future__ import annotations

import itertools
import json

import pytest

from crawler.audit.log import AuditWriter, verify_file
from crawler.audit.merge import (
    MergeError,
    is_report,
    merge_logs,
    read_report,
    verify_report,
)


def clock(times):
    it = iter(times)
    return lambda: next(it)


def write_log(path, times, job="j"):
    w = AuditWriter(path, job=job, clock=clock(times))
    for i, _ in enumerate(times):
        w.write(url=f"http://example.org/{path.stem}/{i}", decision="allow", reasons=[],
                policy_sha256="p" * 64)
    w.close()
    return path


def ts(second: int) -> str:
    return f"2026-01-01T00:00:{second:02d}.000000Z"


@pytest.fixture
def logs(tmp_path):
    a = write_log(tmp_path / "audit-w1.jsonl", [ts(1), ts(4), ts(5), ts(9)])
    b = write_log(tmp_path / "audit-w2.jsonl", [ts(2), ts(3), ts(5), ts(7), ts(8)])
    c = write_log(tmp_path / "audit-w3.jsonl", [])
    return [a, b, c]


def test_records_are_time_ordered_and_keep_their_chain_fields(logs, tmp_path):
    before = {p: p.read_bytes() for p in logs}
    result = merge_logs(logs, tmp_path / "merged.jsonl")
    assert result.records == 9
    assert result.workers == {"audit-w1": 4, "audit-w2": 5, "audit-w3": 0}
    header, records = read_report(tmp_path / "merged.jsonl")
    assert header["chain"] is False and "not a hash chain" in header["note"]
    assert [s["worker"] for s in header["sources"]] == ["audit-w1", "audit-w2", "audit-w3"]
    assert [r["time"] for r in records] == sorted(r["time"] for r in records)
    # a tie on time: worker name, then seq
    assert [(r["worker"], r["seq"]) for r in records if r["time"] == ts(5)] == [
        ("audit-w1", 3), ("audit-w2", 3)]
    originals = {}
    for p in logs:
        for line in p.read_text().splitlines():
            rec = json.loads(line)
            originals[(p.stem, rec["seq"])] = rec
    for r in records:
        worker = r.pop("worker")
        assert r == originals[(worker, r["seq"])]  # seq, prev_hash, hash untouched
    assert {p: p.read_bytes() for p in logs} == before  # the logs themselves untouched
    assert all(verify_file(p).ok for p in logs)


def test_each_chain_verifies_from_the_report_alone(logs, tmp_path):
    merge_logs(logs, tmp_path / "merged.jsonl")
    assert is_report(tmp_path / "merged.jsonl") and not is_report(logs[0])
    results = verify_report(tmp_path / "merged.jsonl")
    assert set(results) == {"audit-w1", "audit-w2", "audit-w3"}
    assert all(r.ok for r in results.values()), results
    assert results["audit-w2"].records == 5


def test_a_report_missing_a_record_does_not_verify(logs, tmp_path):
    out = tmp_path / "merged.jsonl"
    merge_logs(logs, out)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:-1]))  # cut the last record
    results = verify_report(out)
    assert not all(r.ok for r in results.values())


def test_a_broken_chain_is_refused_and_nothing_is_written(logs, tmp_path):
    lines = logs[1].read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace("/2", "/two")  # edit a record
    logs[1].write_text("".join(lines))
    out = tmp_path / "merged.jsonl"
    with pytest.raises(MergeError, match=r"refusing to merge: .*audit-w2.jsonl: BROKEN"):
        merge_logs(logs, out)
    assert not out.exists()


def test_a_log_cut_short_is_refused(logs, tmp_path):
    lines = logs[0].read_text().splitlines(keepends=True)
    logs[0].write_text("".join(lines[:-1]))  # the .head file still names seq 4
    with pytest.raises(MergeError, match="removed from the end"):
        merge_logs(logs, tmp_path / "merged.jsonl")


@pytest.mark.parametrize("case", ["missing", "same-stem", "overwrite", "none"])
def test_bad_inputs(logs, tmp_path, case):
    out = tmp_path / "merged.jsonl"
    if case == "missing":
        args, match = [*logs, tmp_path / "audit-w9.jsonl"], "no such file"
    elif case == "same-stem":
        (tmp_path / "other").mkdir()
        dup = write_log(tmp_path / "other" / "audit-w1.jsonl", [ts(1)])
        args, match = [*logs, dup], "same name"
    elif case == "overwrite":
        args, out, match = logs, logs[0], "overwrite"
    else:
        args, match = [], "no audit logs"
    with pytest.raises(MergeError, match=match):
        merge_logs(args, out)


def test_many_workers_interleave(tmp_path):
    seconds = itertools.count()
    logs = [write_log(tmp_path / f"audit-w{i}.jsonl", [ts(next(seconds) % 60) for _ in range(5)])
            for i in range(4)]
    result = merge_logs(logs, tmp_path / "m.jsonl")
    assert result.records == 20
    assert all(r.ok for r in verify_report(tmp_path / "m.jsonl").values())
