"""The tamper table: every way of altering an audit log, and what detects it.

Each row starts from the same log: 25 records written through the real writer with signed
checkpoints every 10 records and at close (seq 10, 20, 25). A third party keeps a copy of the
published checkpoints (the Atom feed of ``polite-crawl about``, or the checkpoints file) and the
key directory. Then the operator (or anyone who can write the output directory) alters the log,
and we run ``audit verify`` alone and ``audit verify --checkpoints COPY --keys JWKS``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from crawler.audit.checkpoint import CheckpointWriter, checkpoints_path, make_checkpoint
from crawler.audit.log import AuditWriter, head_path, write_head_file
from crawler.audit.record import GENESIS_HASH, canonical_json, record_hash
from crawler.cli.main import main
from crawler.identity.keys import generate_key, jwks

N = 25


def _write_log(tmp: Path, identity, *, every: int = 10) -> Path:
    log = tmp / "out" / "audit.jsonl"
    cps = CheckpointWriter(log, job="t", identity=identity, every=every)
    w = AuditWriter(log, job="t", checkpoints=cps)
    for i in range(1, N + 1):
        w.write(url=f"https://example.org/{i}", decision="allow" if i % 3 else "deny",
                reasons=[] if i % 3 else [{"signal": "robots", "rule": "Disallow: /"}],
                policy_sha256="p" * 64)
    w.close()
    return log


def _records(log: Path) -> list[dict]:
    return [json.loads(x) for x in log.read_text().splitlines()]


def _save(log: Path, recs: list[dict], *, rechain_from: int | None = None,
          head: bool = False) -> None:
    """Write records back; ``rechain_from`` (index) recomputes seq/prev_hash/hash from there
    on, as a forger who knows the public chain rules would; ``head`` rewrites the head."""
    if rechain_from is not None:
        prev = recs[rechain_from - 1]["hash"] if rechain_from else GENESIS_HASH
        for i in range(rechain_from, len(recs)):
            recs[i]["seq"] = i + 1
            recs[i]["prev_hash"] = prev
            recs[i].pop("hash", None)
            recs[i]["hash"] = prev = record_hash(recs[i])
    log.write_text("".join(canonical_json(r) + "\n" for r in recs))
    if head:
        last = recs[-1]
        write_head_file(log, {"seq": last["seq"], "hash": last["hash"]})


def edit(log):
    recs = _records(log)
    recs[4]["url"] = "https://evil.example/"
    _save(log, recs)


def drop(log):
    recs = _records(log)
    del recs[7]
    _save(log, recs)


def swap(log):
    recs = _records(log)
    recs[3], recs[4] = recs[4], recs[3]
    _save(log, recs)


def truncate(log):
    _save(log, _records(log)[:-3])


def append_forged(log):
    recs = _records(log)
    recs += [dict(recs[-1], url=f"https://example.org/forged/{i}", time="later")
             for i in range(3)]
    _save(log, recs, rechain_from=N)


def delete_head(log):
    head_path(log).unlink()


def truncate_and_delete_head(log):
    truncate(log)
    delete_head(log)


def rewrite_tail_and_head(log):
    """Change a deny (seq 24, after the interval checkpoint at 20) into an allow, rechain the
    tail and rewrite the head: only the run-end checkpoint (25) shows it."""
    recs = _records(log)
    recs[23]["decision"] = "allow"
    recs[23]["reasons"] = []
    _save(log, recs, rechain_from=23, head=True)


def cut_tail_and_head(log):
    """Remove the last 8 records and make the head agree."""
    _save(log, _records(log)[:-8], head=True)


def rechain_everything(log):
    recs = _records(log)
    recs[2]["reasons"] = []
    recs[2]["decision"] = "allow"
    _save(log, recs, rechain_from=0, head=True)


def rechain_and_forge_checkpoints(log):
    """Rechain everything and write new checkpoints (the forger has no key: signs with their
    own)."""
    rechain_everything(log)
    forger = generate_key(log.parent / "forger.pem")
    recs = _records(log)
    cp = make_checkpoint(job="t", log=log.name, seq=recs[-1]["seq"], hash=recs[-1]["hash"],
                         time="2026-01-01T00:00:00Z", policy_sha256="p" * 64,
                         reason="run-end", identity=forger)
    checkpoints_path(log).write_text(canonical_json(cp) + "\n")


#: (tampering, detected by verify alone, detected by verify --checkpoints against the copy)
TABLE = [
    (edit, True, True),
    (drop, True, True),
    (swap, True, True),
    (truncate, True, True),
    (append_forged, True, False),       # after the last checkpoint: the head catches it
    (delete_head, True, False),         # nothing lost: only the head's protection
    (truncate_and_delete_head, True, True),
    (rewrite_tail_and_head, False, True),
    (cut_tail_and_head, False, True),
    (rechain_everything, False, True),
    (rechain_and_forge_checkpoints, False, True),
]


@pytest.fixture
def published(tmp_path):
    ident = generate_key(tmp_path / "id.pem")
    log = _write_log(tmp_path, ident)
    copy = tmp_path / "third-party"
    copy.mkdir()
    shutil.copy(checkpoints_path(log), copy / "checkpoints.jsonl")
    (copy / "jwks.json").write_text(json.dumps(jwks([ident.jwk])))
    return log, copy


def verify(*args: str) -> int:
    return main(["audit", "verify", *args])


def test_the_untouched_log_passes_every_check(published, capsys):
    log, copy = published
    assert verify(str(log)) == 0
    assert verify(str(log), "--checkpoints", str(copy / "checkpoints.jsonl"),
                  "--keys", str(copy / "jwks.json"), "--require-signed") == 0
    out = capsys.readouterr().out
    assert out.count("the log extends it; signed by") == 3   # seq 10, 20, 25


@pytest.mark.parametrize(("tamper", "alone", "with_checkpoints"), TABLE,
                         ids=[t[0].__name__ for t in TABLE])
def test_tamper_table(published, capsys, tamper, alone, with_checkpoints):
    log, copy = published
    tamper(log)
    plain = verify(str(log))
    anchored = verify(str(log), "--no-head", "--allow-uncommitted-tail",
                      "--checkpoints", str(copy / "checkpoints.jsonl"),
                      "--keys", str(copy / "jwks.json"))
    out = capsys.readouterr().out
    assert (plain == 1) is alone, out
    assert (anchored == 1) is with_checkpoints, out
    assert alone or with_checkpoints, "every tampering in the table is detected by one mode"


def test_forged_checkpoints_beside_the_log_fail_against_the_published_keys(published, capsys):
    """The operator's own copy of the checkpoints is no anchor: re-signed with another key, it
    fails against the key directory a third party kept."""
    log, copy = published
    rechain_and_forge_checkpoints(log)
    assert verify(str(log), "--checkpoints", "--keys", str(copy / "jwks.json")) == 1
    assert "a key not in the key directory" in capsys.readouterr().out


def test_an_altered_checkpoint_fails_its_signature(published, capsys):
    log, copy = published
    lines = (copy / "checkpoints.jsonl").read_text().splitlines()
    cp = json.loads(lines[0])
    cp["seq"] = 11
    lines[0] = canonical_json(cp)
    (copy / "checkpoints.jsonl").write_text("\n".join(lines) + "\n")
    assert verify(str(log), "--checkpoints", str(copy / "checkpoints.jsonl"),
                  "--keys", str(copy / "jwks.json")) == 1
    assert "signature does not verify" in capsys.readouterr().out


def test_strict_verify_messages(published, capsys):
    log, _ = published
    append_forged(log)
    assert verify(str(log)) == 1
    out = capsys.readouterr().out
    assert "3 records after the committed head (seq 25): not committed" in out
    assert verify(str(log), "--allow-uncommitted-tail") == 0
    assert "3 after the committed head" in capsys.readouterr().out
    delete_head(log)
    assert verify(str(log), "--allow-uncommitted-tail") == 1
    assert "head file audit.jsonl.head is missing" in capsys.readouterr().out
    assert verify(str(log), "--no-head") == 0


def test_a_killed_writer_leaves_at_most_one_uncommitted_record_and_resuming_commits_it(
        tmp_path):
    """The writer appends a record, then moves the head: killed in between, one record is
    beyond the head. It was never acted on; the next run adopts it."""
    log = tmp_path / "audit.jsonl"
    w = AuditWriter(log, job="t")
    for i in range(3):
        w.write(url=f"u{i}", decision="allow", reasons=[], policy_sha256="p" * 64)
    w.close()
    head = head_path(log).read_bytes()
    w = AuditWriter(log, job="t")
    w.write(url="u3", decision="allow", reasons=[], policy_sha256="p" * 64)
    w.close()
    head_path(log).write_bytes(head)  # as if killed before the head write
    assert verify(str(log)) == 1
    assert verify(str(log), "--allow-uncommitted-tail") == 0
    AuditWriter(log, job="t").close()  # the next run of the job
    assert verify(str(log)) == 0


def test_checkpoints_must_name_this_log(published, capsys):
    log, copy = published
    other = log.with_name("audit-w1.jsonl")
    shutil.copy(log, other)
    shutil.copy(head_path(log), head_path(other))
    assert verify(str(other), "--checkpoints", str(copy / "checkpoints.jsonl"),
                  "--keys", str(copy / "jwks.json")) == 1
    assert "no checkpoint of audit-w1.jsonl" in capsys.readouterr().out


def test_signed_checkpoints_need_the_key_directory(published, capsys):
    log, copy = published
    assert verify(str(log), "--checkpoints", str(copy / "checkpoints.jsonl")) == 1
    assert "no key directory was given (--keys)" in capsys.readouterr().out
