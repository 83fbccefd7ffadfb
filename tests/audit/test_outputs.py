"""``audit verify OUTPUT_DIR``: the corpus, WARC and evidence cross-checked against the log.

Each test builds a small output directory the way a run does (the real writers), breaks one
thing, and checks that verify names it (and passes before it is broken).
"""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from crawler.audit.log import AuditWriter
from crawler.audit.outputs import verify_output_dir
from crawler.cli.main import main
from crawler.corpus.warc import CorpusWarcWriter

ROBOTS = b"User-agent: *\nAllow: /\n"
ROBOTS_SHA = hashlib.sha256(ROBOTS).hexdigest()
ERROR_BODY = b"<h1>503 Service Unavailable</h1>"
ERROR_SHA = hashlib.sha256(ERROR_BODY).hexdigest()
POLICY = "p" * 64


@pytest.fixture
def out(tmp_path):
    out = tmp_path / "out"
    w = AuditWriter(out / "audit.jsonl", job="t")
    check = {"signal": "robots", "channel": "robots.txt", "outcome": "allow",
             "source": "https://a.example/robots.txt", "source_sha256": ROBOTS_SHA,
             "status": 200}
    w.write(url="https://a.example/robots.txt", decision="result", reasons=[],
            policy_sha256=POLICY, extra={"result": "fetched", "source_sha256": ROBOTS_SHA})
    w.write(url="https://b.example/robots.txt", decision="result", reasons=[],
            policy_sha256=POLICY, extra={"result": "fetched", "status": 503,
                                         "source_sha256": ERROR_SHA})
    docs = []
    for i in range(3):
        rec = w.write(url=f"https://a.example/{i}", decision="allow", reasons=[],
                      policy_sha256=POLICY, extra={"checks": [check]})
        docs.append({"url": rec["url"], "audit_seq": rec["seq"], "audit_hash": rec["hash"],
                     "sha256": "x", "text": f"doc {i}"})
    w.write(url="https://b.example/", decision="deny", policy_sha256=POLICY, reasons=[
        {"signal": "network", "outcome": "deny", "source": "https://b.example/robots.txt",
         "source_sha256": ERROR_SHA, "status": 503, "rule": "robots.txt unreachable"}])
    w.close()
    (out / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (out / "evidence").mkdir()
    (out / "evidence" / ROBOTS_SHA).write_bytes(ROBOTS)
    (out / "evidence" / ERROR_SHA).write_bytes(ERROR_BODY)
    with open(out / "corpus.warc.gz", "wb") as fh:
        ww = CorpusWarcWriter(fh, job="t", user_agent="TBot/1.0", policy_sha256=POLICY)
        ww.write_evidence(url="https://a.example/robots.txt", sha256=ROBOTS_SHA, body=ROBOTS)
        ww.write_evidence(url="https://b.example/robots.txt", sha256=ERROR_SHA,
                          body=ERROR_BODY, status=503)
        for d in docs:
            ww.write_document(url=d["url"], status=200, response_headers={},
                              body=d["text"].encode(),
                              audit={"seq": d["audit_seq"], "hash": d["audit_hash"],
                                     "checks": [check]})
    return out


def problems(out):
    return [p for c in verify_output_dir(out) for p in c.problems]


def test_a_whole_output_directory_passes(out, capsys):
    assert problems(out) == []
    assert main(["audit", "verify", str(out)]) == 0
    text = capsys.readouterr().out
    assert "3 documents, each on an allow record" in text
    assert "2 distinct files cited, all in evidence/ and corpus.warc.gz" in text


def test_a_corpus_line_on_a_deny_or_rewritten_record_fails(out):
    lines = (out / "corpus.jsonl").read_text().splitlines()
    doc = json.loads(lines[0])
    doc["audit_seq"] = 6  # the deny record
    lines[0] = json.dumps(doc)
    (out / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    assert any("audit_seq 6 is not an allow record" in p for p in problems(out))
    doc["audit_seq"], doc["audit_hash"] = 3, "0" * 64
    lines[0] = json.dumps(doc)
    (out / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    assert any("audit_hash differs from record 3" in p for p in problems(out))


def test_a_corpus_line_for_another_url_fails(out):
    lines = (out / "corpus.jsonl").read_text().splitlines()
    doc = json.loads(lines[1])
    doc["url"] = "https://a.example/private"
    lines[1] = json.dumps(doc)
    (out / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    assert any("allowed https://a.example/1, not this URL" in p for p in problems(out))


def test_a_missing_or_altered_evidence_file_fails(out, capsys):
    (out / "evidence" / ERROR_SHA).unlink()
    assert any(f"{ERROR_SHA} is cited but not in evidence/" in p for p in problems(out))
    (out / "evidence" / ERROR_SHA).write_bytes(ERROR_BODY + b" ")
    assert any("hashes to" in p and "altered" in p for p in problems(out))
    assert main(["audit", "verify", str(out)]) == 1


def test_evidence_missing_from_the_warc_fails(out, tmp_path):
    shutil.move(out / "corpus.warc.gz", tmp_path / "old.warc.gz")
    with open(out / "corpus.warc.gz", "wb") as fh:  # the documents, not the 503 body
        ww = CorpusWarcWriter(fh, job="t", user_agent="TBot/1.0", policy_sha256=POLICY)
        ww.write_evidence(url="https://a.example/robots.txt", sha256=ROBOTS_SHA, body=ROBOTS)
    assert any(f"{ERROR_SHA} is cited but not archived in corpus.warc.gz" in p
               for p in problems(out))


def test_warc_metadata_naming_a_wrong_record_fails(out):
    with open(out / "corpus.warc.gz", "ab") as fh:
        ww = CorpusWarcWriter(fh, job="t", user_agent="TBot/1.0", policy_sha256=POLICY)
        ww.write_document(url="https://a.example/9", status=200, response_headers={},
                          body=b"forged", audit={"seq": 3, "hash": "f" * 64, "checks": []})
    assert any("metadata for https://a.example/9: audit_hash differs" in p
               for p in problems(out))


def test_a_directory_without_a_log_is_a_usage_error(tmp_path):
    assert main(["audit", "verify", str(tmp_path)]) == 2
