"""Signed audit checkpoints: when they are written, how they are published (Atom feed, key
directory) and checked, and RFC 3161 timestamps from a local TSA checked by ``openssl ts``."""

from __future__ import annotations

import base64
import json
import logging
import subprocess
from datetime import datetime, timezone

from crawler.audit.checkpoint import (
    CHECKPOINT_TYPE,
    TIMESTAMP_TYPE,
    CheckpointWriter,
    checkpoints_path,
    read_checkpoints,
    timestamp_message,
    verify_checkpoints,
)
from crawler.audit.log import AuditWriter
from crawler.cli.main import main
from crawler.config.job import parse_config
from crawler.identity.keys import generate_key, keys_from_jwks
from crawler.publish.about import JWKS_PATH, build_about

POLICY = "p" * 64


def write(log, n, *, identity=None, every=10, **kw):
    cps = CheckpointWriter(log, job="t", identity=identity, every=every, **kw)
    w = AuditWriter(log, job="t", checkpoints=cps)
    for i in range(n):
        w.write(url=f"https://example.org/{i}", decision="allow", reasons=[],
                policy_sha256=POLICY)
    w.close()
    return cps


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_checkpoints_every_n_records_and_at_the_end_of_each_run(tmp_path):
    log = tmp_path / "audit.jsonl"
    ident = generate_key(tmp_path / "id.pem")
    write(log, 25, identity=ident)
    cps = lines(checkpoints_path(log))
    assert [(c["seq"], c["reason"]) for c in cps] == [(10, "interval"), (20, "interval"),
                                                      (25, "run-end")]
    recs = lines(log)
    assert all(c["hash"] == recs[c["seq"] - 1]["hash"] for c in cps)
    assert all(c["keyid"] == ident.keyid and c["policy_sha256"] == POLICY for c in cps)
    # a second run continues: no duplicate of seq 25, next interval at 30, its own end
    write(log, 7, identity=ident)
    assert [c["seq"] for c in lines(checkpoints_path(log))] == [10, 20, 25, 30, 32]
    # a run that writes nothing adds no checkpoint
    write(log, 0, identity=ident)
    assert len(lines(checkpoints_path(log))) == 5


def test_every_zero_means_run_end_only_and_unsigned_without_a_key(tmp_path):
    log = tmp_path / "audit-w1.jsonl"
    write(log, 12, every=0)
    path = tmp_path / "audit-w1.checkpoints.jsonl"
    cps = lines(path)
    assert [(c["seq"], c["log"]) for c in cps] == [(12, "audit-w1.jsonl")]
    assert "sig" not in cps[0]
    report = verify_checkpoints(log, read_checkpoints(path))
    assert report.ok and "UNSIGNED" in report.lines[0]
    assert not verify_checkpoints(log, read_checkpoints(path), require_signed=True).ok


def test_an_unwritable_checkpoint_file_never_stops_the_log(tmp_path, caplog):
    log = tmp_path / "audit.jsonl"
    checkpoints_path(log).mkdir()  # a directory where the file should be: every write fails
    with caplog.at_level(logging.ERROR):
        cps = write(log, 11, every=5)
    assert cps.failures == 3 and cps.written == 0
    assert main(["audit", "verify", str(log)]) == 0
    assert "not anchored at seq 5" in caplog.text


def test_a_torn_last_checkpoint_line_is_reported_and_skipped(tmp_path):
    log = tmp_path / "audit.jsonl"
    write(log, 20)
    path = checkpoints_path(log)
    with open(path, "a") as fh:
        fh.write('{"type": "audit-checkpoint", "seq": 3')
    errors: list[str] = []
    assert [c["seq"] for c in read_checkpoints(path, errors=errors)] == [10, 20]
    assert errors and "torn" in errors[0]
    # and the next run still finds its last checkpoint
    write(log, 1)
    assert [c["seq"] for c in read_checkpoints(path)] == [10, 20, 21]


def test_published_in_the_feed_with_the_key_directory(tmp_path, capsys):
    """``about`` puts every checkpoint line in changes.atom (its content, exactly) and the
    public key at .well-known/http-message-signatures-directory; a third party checks the log
    against the feed alone. Publishing again adds no duplicates; the page itself does not
    change."""
    out = tmp_path / "out"
    key = tmp_path / "id.pem"
    ident = generate_key(key)
    log = out / "audit.jsonl"
    write(log, 15, identity=ident, every=10)
    job = parse_config({"job": "t", "user_agent": "TBot/1.0 (+https://example.org/bot)",
                        "output_dir": str(out), "identity": {"key_file": str(key)}},
                       path=tmp_path / "job.yaml")
    pub = tmp_path / "pub"
    assert main(["about", "--out", str(pub), "--config", _yaml(tmp_path, job, key)]) == 0
    directory = json.loads((pub / JWKS_PATH).read_text())
    assert set(keys_from_jwks(directory)) == {ident.keyid}
    feed = pub / "changes.atom"
    assert [c["seq"] for c in read_checkpoints(feed)] == [10, 15]
    assert main(["audit", "verify", str(log), "--checkpoints", str(feed),
                 "--keys", str(pub / JWKS_PATH), "--require-signed"]) == 0
    page = (pub / "about.html").read_text()
    assert ident.keyid in page and "Audit checkpoints" in page
    about_before = (pub / "about.json").read_text()
    # the next run's checkpoints join the feed; the old ones stay, none twice
    write(log, 10, identity=ident, every=10)
    assert main(["about", "--out", str(pub), "--config", _yaml(tmp_path, job, key)]) == 0
    assert [c["seq"] for c in read_checkpoints(feed)] == [10, 15, 20, 25]
    assert (pub / "about.json").read_text() == about_before
    assert feed.read_text().count("<entry>") == 5  # first published + 4 checkpoints


def _yaml(tmp_path, job, key):
    import yaml

    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump({"job": "t", "user_agent": job.user_agent,
                                    "output_dir": str(job.output_dir),
                                    "identity": {"key_file": str(key)}}))
    return str(path)


def test_a_new_key_keeps_the_old_one_in_the_published_key_history(tmp_path):
    # old checkpoints stay checkable: every key ever published stays in keys.json (the Web
    # Bot Auth directory lists only the keys requests may be signed with now)
    old, new = generate_key(tmp_path / "a.pem"), generate_key(tmp_path / "b.pem")
    job = {"job": "t", "user_agent": "TBot/1.0 (+https://example.org/bot)"}
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    log = tmp_path / "audit.jsonl"
    write(log, 3, identity=old, every=2)
    build_about(job, tmp_path / "pub", keys=[old.jwk], now=now)
    build_about(job, tmp_path / "pub", keys=[new.jwk], now=now)
    history = json.loads((tmp_path / "pub" / "keys.json").read_text())
    assert [k["kid"] for k in history["keys"]] == [old.keyid, new.keyid]
    directory = json.loads((tmp_path / "pub" / JWKS_PATH).read_text())
    assert [k["kid"] for k in directory["keys"]] == [new.keyid]
    assert "signing keys: +" + new.keyid in (tmp_path / "pub" / "changes.atom").read_text()
    # the old key's checkpoints verify with the history alone
    report = verify_checkpoints(log, read_checkpoints(checkpoints_path(log)),
                                keys=keys_from_jwks(history), require_signed=True)
    assert report.ok and report.checked == 2, report.problems
    assert not verify_checkpoints(log, read_checkpoints(checkpoints_path(log)),
                                  keys=keys_from_jwks(directory), require_signed=True).ok


def test_trusted_timestamps_from_a_local_tsa(tmp_path, local_tsa):
    """Each checkpoint is stamped by an RFC 3161 TSA (here a throw-away openssl TSA); the token
    is verified by ``audit verify --tsa-ca`` and, independently, by ``openssl ts -verify``."""
    log = tmp_path / "audit.jsonl"
    ident = generate_key(tmp_path / "id.pem")
    cps = write(log, 12, identity=ident, every=10, tsa_url=local_tsa.url, tsa_timeout=10)
    assert cps.timestamps == 2 and cps.timestamp_failures == 0
    found = read_checkpoints(checkpoints_path(log))
    stamps = [x for x in found if x["type"] == TIMESTAMP_TYPE]
    checks = {x["seq"]: x for x in found if x["type"] == CHECKPOINT_TYPE}
    assert sorted(s["seq"] for s in stamps) == [10, 12]
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [ident.jwk]}))
    assert main(["audit", "verify", str(log), "--checkpoints", "--keys", str(jwks_file),
                 "--tsa-ca", str(local_tsa.ca_file)]) == 0
    # the independent check: openssl over the checkpoint line's bytes
    st = stamps[0]
    (tmp_path / "msg").write_bytes(timestamp_message(checks[st["seq"]]))
    (tmp_path / "tsr").write_bytes(base64.b64decode(st["tsr"]))
    cmd = ["openssl", "ts", "-verify", "-data", str(tmp_path / "msg"), "-in",
           str(tmp_path / "tsr"), "-CAfile", str(local_tsa.ca_file), "-untrusted",
           str(local_tsa.tsa_cert_file)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0 and "Verification: OK" in done.stdout, done.stderr
    # a checkpoint altered after stamping: openssl and verify both refuse it
    (tmp_path / "msg").write_bytes(timestamp_message({**checks[st["seq"]], "seq": 9}))
    assert subprocess.run(cmd, capture_output=True).returncode != 0


def test_a_timestamp_of_another_checkpoint_or_ca_is_refused(tmp_path, local_tsa, capsys):
    log = tmp_path / "audit.jsonl"
    write(log, 10, every=10, tsa_url=local_tsa.url)
    path = checkpoints_path(log)
    found = read_checkpoints(path)
    stamp = next(x for x in found if x["type"] == TIMESTAMP_TYPE)
    # verify against the wrong root: refused
    other = tmp_path / "other-ca.pem"
    from tests.tsa_server import make_root_ca, pem

    other.write_bytes(pem(make_root_ca()[1]))
    assert main(["audit", "verify", str(log), "--checkpoints", "--tsa-ca", str(other)]) == 1
    assert "timestamp of checkpoint seq 10" in capsys.readouterr().out
    # a token moved onto another checkpoint: refused
    forged = dict(stamp, checkpoint_sha256="0" * 64)
    path.write_text("".join(json.dumps(x) + "\n" for x in [*found, forged]))
    assert main(["audit", "verify", str(log), "--checkpoints"]) == 1
    assert "stamps no checkpoint given" in capsys.readouterr().out


def test_an_unreachable_tsa_leaves_the_checkpoint_unstamped_and_says_so(tmp_path, caplog,
                                                                        local_tsa):
    log = tmp_path / "audit.jsonl"
    local_tsa.mode = "http500"
    with caplog.at_level(logging.ERROR):
        cps = write(log, 10, every=10, tsa_url=local_tsa.url, tsa_timeout=2)
    assert cps.written == 1 and cps.timestamps == 0 and cps.timestamp_failures == 1
    assert "no trusted timestamp" in caplog.text
    assert [x["type"] for x in read_checkpoints(checkpoints_path(log))] == [CHECKPOINT_TYPE]
