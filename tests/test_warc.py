"""WARC output: byte-exact golden records, documents stored as received (compressed payload,
Content-Encoding kept, Transfer-Encoding removed), evidence records with their real status and
headers (or a resource record when the cited bytes are not the body as received), read-back
links, and the Scrapy glue: ContentIntegrityMiddleware keeping the raw response, the site cache
keeping every cited body with its HTTP sidecar, the pipeline writing evidence when fetched."""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import json
import shutil
import subprocess
import sys
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from scrapy import Request, Spider, signals
from scrapy.exceptions import NotConfigured
from scrapy.http import HtmlResponse, TextResponse
from scrapy.http.request import NO_CALLBACK
from scrapy.utils.test import get_crawler
from warcio.archiveiterator import ArchiveIterator

from crawler.corpus.warc import (
    WARC_FILENAME,
    CorpusWarcWriter,
    evidence_refs,
    stored_response_headers,
)
from crawler.corpus.warc_reader import iter_warc_documents, sha256_hex_from_digest
from crawler.crawl.warc import WarcWriterPipeline
from crawler.optout.model import Evidence
from crawler.policy.reservation import site_file, verdict_of

UA = "TestBot/1.0 (+https://example.org/bot)"
POLICY = "ab" * 32
ROBOTS = b"User-agent: *\nAllow: /\n"
ROBOTS_SHA = hashlib.sha256(ROBOTS).hexdigest()
NOT_FOUND = b"not found"
NOT_FOUND_SHA = hashlib.sha256(NOT_FOUND).hexdigest()
HTML = b"<html><body><p>compressed</p></body></html>"
GZ = gzip.compress(HTML, mtime=0)   # the bytes a server sends with Content-Encoding: gzip


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _checks(origin: str) -> list[dict[str, Any]]:
    return [
        {"signal": "robots", "channel": "robots.txt", "outcome": "allow", "agent": "TestBot",
         "rule": "Allow: / (line 2)", "source": f"{origin}/robots.txt",
         "source_sha256": ROBOTS_SHA, "status": 200},
        {"signal": "tdmrep", "channel": "file", "outcome": "unset",
         "source": f"{origin}/.well-known/tdmrep.json", "source_sha256": NOT_FOUND_SHA,
         "status": 404},
        {"signal": "noai", "channel": "meta", "outcome": "unset"},   # no file: not evidence
    ]


def _capture(url: str, body: bytes, *, status: int = 200, ctype: str = "text/plain",
             decoded: bool | None = False, complete: bool = True,
             extra: list[list[str]] | None = None) -> dict[str, Any]:
    """An evidence sidecar, as SiteCache keeps it (crawler.crawl.sitecache.capture_of)."""
    return {"url": url, "final_url": url, "status": status, "protocol": "HTTP/1.1",
            "headers": [["Content-Length", str(len(body))], ["Content-Type", ctype],
                        *(extra or [])],
            "fetched_at": "2026-01-02T03:04:04.250000Z", "ip_address": "192.0.2.7",
            "kind": "robots.txt", "sha256": _sha(body), "bytes": len(body),
            "complete": complete, "decoded": decoded}


def _writer(buf: Any, *, gzip_: bool) -> CorpusWarcWriter:
    ids = itertools.count(1)
    return CorpusWarcWriter(
        buf, job="golden", user_agent=UA, policy_sha256=POLICY, gzip=gzip_,
        software="polite-crawler/test",
        clock=lambda: datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        record_id=lambda: f"<urn:uuid:00000000-0000-4000-8000-{next(ids):012d}>")


def _scenario(buf: Any, *, gzip_: bool = True) -> CorpusWarcWriter:
    """Origin a: its robots.txt and a 404 tdmrep.json archived when fetched, then a document
    whose server sent Transfer-Encoding, and a gzip-encoded one. Origin b serves the same
    robots.txt bytes: archived (a whole record: its own status and headers) from the evidence
    directory and sidecars when its document is written."""
    w = _writer(buf, gzip_=gzip_)
    a_robots, a_tdm = "http://a.example/robots.txt", "http://a.example/.well-known/tdmrep.json"
    w.write_evidence(url=a_robots, sha256=ROBOTS_SHA, body=ROBOTS, kind="robots.txt",
                     capture=_capture(a_robots, ROBOTS))
    w.write_evidence(url=a_tdm, sha256=NOT_FOUND_SHA, body=NOT_FOUND, kind="tdmrep.json",
                     capture=_capture(a_tdm, NOT_FOUND, status=404))
    w.write_document(
        url="http://a.example/page?x=1", status=200,
        response_headers={b"Content-Type": [b"text/html"], b"Content-Length": [b"29"],
                          b"Transfer-Encoding": [b"chunked"]},
        body=b"<p>hi</p>", request_headers={b"User-Agent": [UA.encode()]},
        audit={"seq": 3, "hash": "c" * 64, "policy_sha256": POLICY,
               "checks": _checks("http://a.example")},
        fetched_at="2026-01-02T03:04:06.500000Z", ip_address="192.0.2.7")
    w.write_document(
        url="http://a.example/gz", status=200,
        response_headers={"Content-Type": "text/html", "Content-Length": str(len(GZ)),
                          "Content-Encoding": "gzip"},
        body=GZ, content_sha256=_sha(HTML), request_headers={"User-Agent": UA},
        audit={"seq": 5, "hash": "d" * 64, "checks": _checks("http://a.example")},
        fetched_at="2026-01-02T03:04:07Z")
    b_robots = "http://b.example/robots.txt"
    w.write_document(
        url="http://b.example/", status=200, response_headers={}, body=b"b",
        audit={"audit_seq": 6, "audit_hash": "e" * 64, "checks": _checks("http://b.example")[:1]},
        fetched_at="2026-01-02T03:04:08Z", evidence={ROBOTS_SHA: ROBOTS},
        captures=lambda sha, url, status: _capture(url, ROBOTS) if url == b_robots else None)
    return w


# The head of the file as written (warcinfo, the robots.txt evidence and its note, the 404
# evidence, the first document's request/response/metadata), CRLF shown as LF; GOLDEN_SHA256
# pins the exact bytes of the whole file.
GOLDEN_SHA256 = "8abc94e85bdf33be60130fc22666ed3f2d5ed1ac32db28e78c7c9a1c64d318e5"
GOLDEN_HEAD = """\
WARC/1.1
WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000001>
WARC-Date: 2026-01-02T03:04:05Z
WARC-Filename: corpus.warc.gz
WARC-Type: warcinfo
WARC-Block-Digest: sha256:6386c6f3c297cbe6dce68c4484387b19a256ef6e9e8baff5564b40aa07d773ab
Content-Type: application/warc-fields
Content-Length: 317

software: polite-crawler/test
format: WARC File Format 1.1
conformsTo: https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/
isPartOf: golden
http-header-user-agent: TestBot/1.0 (+https://example.org/bot)
policy-sha256: abababababababababababababababababababababababababababababababab


WARC/1.1
WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000002>
WARC-Date: 2026-01-02T03:04:04.250000Z
WARC-Warcinfo-ID: <urn:uuid:00000000-0000-4000-8000-000000000001>
WARC-IP-Address: 192.0.2.7
WARC-Type: response
WARC-Target-URI: http://a.example/robots.txt
WARC-Payload-Digest: sha256:16ceb5ee3e0dc13aa9adf31a3ebbe45a1d965b8c2b9f72eaf84e5911e140ed95
WARC-Block-Digest: sha256:54bebd34898f3a7403e911ff9586e9f86f37139ead70a1df3529bdf23a9182c2
Content-Type: application/http; msgtype=response
Content-Length: 88

HTTP/1.1 200 OK
Content-Length: 23
Content-Type: text/plain

User-agent: *
Allow: /


WARC/1.1
WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000003>
WARC-Date: 2026-01-02T03:04:04.250000Z
WARC-Warcinfo-ID: <urn:uuid:00000000-0000-4000-8000-000000000001>
WARC-Concurrent-To: <urn:uuid:00000000-0000-4000-8000-000000000002>
WARC-Type: metadata
WARC-Target-URI: http://a.example/robots.txt
WARC-Block-Digest: sha256:9f1089dc7ab20d5b85d082c08f67645465078fcc0da3ef254531d4b1bd1ea979
Content-Type: application/json
Content-Length: 275

{"bytes": 23, "complete": true, "fetched_at": "2026-01-02T03:04:04.250000Z", "kind": "robots.txt", "record": "response", "role": "evidence", "sha256": "16ceb5ee3e0dc13aa9adf31a3ebbe45a1d965b8c2b9f72eaf84e5911e140ed95", "source": "http://a.example/robots.txt", "status": 200}


WARC/1.1
WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000004>
WARC-Date: 2026-01-02T03:04:04.250000Z
WARC-Warcinfo-ID: <urn:uuid:00000000-0000-4000-8000-000000000001>
WARC-IP-Address: 192.0.2.7
WARC-Type: response
WARC-Target-URI: http://a.example/.well-known/tdmrep.json
WARC-Payload-Digest: sha256:907ba78b4545338d3539683e63ecb51cf51c10adc9dabd86e92bd52339f298b9
WARC-Block-Digest: sha256:7f27f615649b26b0ba1cc964be73a5ace42bbd6e1da058563365753ee594fa6e
Content-Type: application/http; msgtype=response
Content-Length: 80

HTTP/1.1 404 Not Found
Content-Length: 9
Content-Type: text/plain

not found

WARC/1.1
WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000005>
WARC-Date: 2026-01-02T03:04:04.250000Z
WARC-Warcinfo-ID: <urn:uuid:00000000-0000-4000-8000-000000000001>
WARC-Concurrent-To: <urn:uuid:00000000-0000-4000-8000-000000000004>
WARC-Type: metadata
WARC-Target-URI: http://a.example/.well-known/tdmrep.json
WARC-Block-Digest: sha256:de745cb165253962184bcf3140a31871e027cfa234ae9b87da7ad24539f2b601
Content-Type: application/json
Content-Length: 288

{"bytes": 9, "complete": true, "fetched_at": "2026-01-02T03:04:04.250000Z", "kind": "tdmrep.json", "record": "response", "role": "evidence", "sha256": "907ba78b4545338d3539683e63ecb51cf51c10adc9dabd86e92bd52339f298b9", "source": "http://a.example/.well-known/tdmrep.json", "status": 404}


WARC/1.1
WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000007>
WARC-Date: 2026-01-02T03:04:06.500000Z
WARC-Warcinfo-ID: <urn:uuid:00000000-0000-4000-8000-000000000001>
WARC-Concurrent-To: <urn:uuid:00000000-0000-4000-8000-000000000006>
WARC-Type: request
WARC-Target-URI: http://a.example/page?x=1
WARC-Payload-Digest: sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
WARC-Block-Digest: sha256:c22d4e052e560fd66e5ee853795354b2de42d8f4eb7f10403581c743b8166ae0
Content-Type: application/http; msgtype=request
Content-Length: 95

GET /page?x=1 HTTP/1.1
Host: a.example
User-Agent: TestBot/1.0 (+https://example.org/bot)



WARC/1.1
WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000006>
WARC-Date: 2026-01-02T03:04:06.500000Z
WARC-Warcinfo-ID: <urn:uuid:00000000-0000-4000-8000-000000000001>
WARC-IP-Address: 192.0.2.7
WARC-Type: response
WARC-Target-URI: http://a.example/page?x=1
WARC-Payload-Digest: sha256:0a4735281db700223af63abc387c351f64ea6961a1ef955631df08d96169e772
WARC-Block-Digest: sha256:86c5f3b9d30a16efa87b5bb4a855c22c6490fdeed19333f390c2683b484f9070
Content-Type: application/http; msgtype=response
Content-Length: 72

HTTP/1.1 200 OK
Content-Type: text/html
Content-Length: 9

<p>hi</p>

WARC/1.1
WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000008>
WARC-Date: 2026-01-02T03:04:06.500000Z
WARC-Warcinfo-ID: <urn:uuid:00000000-0000-4000-8000-000000000001>
WARC-Concurrent-To: <urn:uuid:00000000-0000-4000-8000-000000000006>
WARC-Type: metadata
WARC-Target-URI: http://a.example/page?x=1
WARC-Block-Digest: sha256:1ad0a49227505010481d61f715899eb5aceef7a637eb415fafdbc3ce2bb683f9
Content-Type: application/json
Content-Length: 1054

{"added_headers": [["Content-Length", "9"]], "audit_hash": "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc", "audit_seq": 3, "evidence": [{"channel": "robots.txt", "signal": "robots", "source": "http://a.example/robots.txt", "source_sha256": "16ceb5ee3e0dc13aa9adf31a3ebbe45a1d965b8c2b9f72eaf84e5911e140ed95", "status": 200, "warc_record_id": "<urn:uuid:00000000-0000-4000-8000-000000000002>"}, {"channel": "file", "signal": "tdmrep", "source": "http://a.example/.well-known/tdmrep.json", "source_sha256": "907ba78b4545338d3539683e63ecb51cf51c10adc9dabd86e92bd52339f298b9", "status": 404, "warc_record_id": "<urn:uuid:00000000-0000-4000-8000-000000000004>"}], "payload": "as received", "payload_sha256": "0a4735281db700223af63abc387c351f64ea6961a1ef955631df08d96169e772", "policy_sha256": "abababababababababababababababababababababababababababababababab", "removed_headers": [["Content-Length", "29"], ["Transfer-Encoding", "chunked"]], "role": "document", "sha256": "0a4735281db700223af63abc387c351f64ea6961a1ef955631df08d96169e772"}


"""


def _records(data: bytes) -> list[Any]:
    """(type, warc headers, http headers, payload as stored) of every record, via warcio."""
    out = []
    for rec in ArchiveIterator(io.BytesIO(data)):
        wh = dict(rec.rec_headers.headers)
        http = dict(rec.http_headers.headers) if rec.http_headers else {}
        out.append((rec.rec_type, wh, http, rec.raw_stream.read()))
    return out


def _gzip_members(data: bytes) -> int:
    members = 0
    while data:
        d = zlib.decompressobj(zlib.MAX_WBITS | 16)
        d.decompress(data)
        assert d.eof, "truncated gzip member"
        data = d.unused_data
        members += 1
    return members


def _scenario_bytes(gzip_: bool = True) -> bytes:
    buf = io.BytesIO()
    _scenario(buf, gzip_=gzip_)
    return buf.getvalue()


def test_golden_bytes_with_fixed_clock_and_ids() -> None:
    data = _scenario_bytes(gzip_=False)
    assert data.replace(b"\r\n", b"\n").decode("latin-1").startswith(GOLDEN_HEAD)
    assert hashlib.sha256(data).hexdigest() == GOLDEN_SHA256


def test_gzip_output_is_one_member_per_record_and_deterministic() -> None:
    first, second = _scenario_bytes(), _scenario_bytes()
    assert first == second
    assert gzip.decompress(first) == _scenario_bytes(gzip_=False)
    assert _gzip_members(first) == len(_records(first)) == 16


def test_warc_1_1_with_base16_sha256_digests() -> None:
    recs = _records(_scenario_bytes())
    for rtype, wh, _, payload in recs:
        assert wh.get("WARC-Block-Digest", "").startswith("sha256:")
        assert len(wh["WARC-Block-Digest"]) == len("sha256:") + 64          # lower-case hex
        if rtype in ("response", "request"):
            assert wh["WARC-Payload-Digest"] == f"sha256:{_sha(payload)}"
        else:  # warcinfo and metadata have no payload (WARC 1.1 §5.9)
            assert "WARC-Payload-Digest" not in wh
    data = gzip.decompress(_scenario_bytes())
    assert data.count(b"WARC/1.1\r\n") == 16 and b"WARC/1.0" not in data


def test_document_is_stored_as_received() -> None:
    """The gzip-encoded document: the compressed bytes, Content-Encoding kept; the payload
    digest is over what the server sent, the metadata carries the decoded body's SHA-256."""
    recs = _records(_scenario_bytes())
    (resp,) = [r for r in recs if r[0] == "response" and r[1]["WARC-Target-URI"].endswith("/gz")]
    _, wh, http, payload = resp
    assert payload == GZ
    assert http["Content-Encoding"] == "gzip" and http["Content-Length"] == str(len(GZ))
    assert sha256_hex_from_digest(wh["WARC-Payload-Digest"]) == _sha(GZ)
    (meta,) = [r for r in recs if r[0] == "metadata"
               and r[1]["WARC-Concurrent-To"] == wh["WARC-Record-ID"]]
    doc = json.loads(meta[3])
    assert doc["sha256"] == _sha(HTML) and doc["payload_sha256"] == _sha(GZ)
    assert doc["content_encoding"] == "gzip" and doc["payload"] == "as received"
    # a reader that decodes content-codings (warcio's default) gets the document back
    for rec in ArchiveIterator(io.BytesIO(_scenario_bytes())):
        if rec.rec_headers.get_header("WARC-Target-URI") == "http://a.example/gz" \
                and rec.rec_type == "response":
            assert rec.content_stream().read() == HTML


def test_transfer_encoding_removed_and_content_length_restored() -> None:
    recs = _records(_scenario_bytes())
    first = next(r for r in recs if r[0] == "response" and r[1]["WARC-Target-URI"].endswith("x=1"))
    assert first[3] == b"<p>hi</p>"
    assert "Transfer-Encoding" not in first[2] and first[2]["Content-Length"] == "9"
    assert not any(k.startswith("X-Crawler") for k in first[2])
    meta = next(json.loads(r[3]) for r in recs if r[0] == "metadata"
                and r[1]["WARC-Concurrent-To"] == first[1]["WARC-Record-ID"])
    assert meta["removed_headers"] == [["Content-Length", "29"], ["Transfer-Encoding", "chunked"]]
    # Twisted hands a chunked body over with neither header: Content-Length is added
    b_doc = next(r for r in recs if r[0] == "response" and r[1]["WARC-Target-URI"] ==
                 "http://b.example/")
    assert b_doc[2] == {"Content-Length": "1"}
    # the pure function: order kept, nothing else touched; a cut body gets no length
    assert stored_response_headers([("A", "1"), ("Content-Length", "3")], 3) == (
        [("A", "1"), ("Content-Length", "3")], [], [])
    assert stored_response_headers([("A", "1")], 7, complete=False) == ([("A", "1")], [], [])
    assert stored_response_headers({"A": "1"}, 7) == (
        [("A", "1"), ("Content-Length", "7")], [], [("Content-Length", "7")])


def test_truncated_document_is_marked() -> None:
    buf = io.BytesIO()
    _writer(buf, gzip_=False).write_document(
        url="http://t.example/", status=200,
        response_headers={"Content-Length": "100", "Content-Encoding": "gzip"},
        body=GZ[:10], content_sha256="f" * 64, complete=False,
        audit={"seq": 1, "hash": "a" * 64})
    (resp,) = [r for r in _records(buf.getvalue()) if r[0] == "response"]
    assert resp[1]["WARC-Truncated"] == "length"
    assert resp[2]["Content-Length"] == "100"          # as received, not made to fit
    assert resp[3] == GZ[:10]


def test_evidence_response_records_carry_the_real_status_and_headers() -> None:
    recs = _records(_scenario_bytes())
    ev = {(r[0], r[1]["WARC-Target-URI"]): r for r in recs
          if r[1].get("WARC-Target-URI", "").endswith(("robots.txt", "tdmrep.json"))}
    assert sorted(ev) == [
        ("metadata", "http://a.example/.well-known/tdmrep.json"),
        ("metadata", "http://a.example/robots.txt"),
        ("metadata", "http://b.example/robots.txt"),
        ("response", "http://a.example/.well-known/tdmrep.json"),
        ("response", "http://a.example/robots.txt"),
        ("response", "http://b.example/robots.txt")]
    tdm = ev[("response", "http://a.example/.well-known/tdmrep.json")]
    assert tdm[3] == NOT_FOUND and sha256_hex_from_digest(
        tdm[1]["WARC-Payload-Digest"]) == NOT_FOUND_SHA
    assert tdm[1]["WARC-Date"] == "2026-01-02T03:04:04.250000Z"      # the fetch time
    assert tdm[1]["WARC-IP-Address"] == "192.0.2.7"
    assert tdm[2] == {"Content-Length": "9", "Content-Type": "text/plain"}
    with gzip.open(io.BytesIO(_scenario_bytes())) as fh:
        assert b"HTTP/1.1 404 Not Found\r\n" in fh.read()
    note = json.loads(ev[("metadata", "http://a.example/.well-known/tdmrep.json")][3])
    assert note == {"role": "evidence", "record": "response", "kind": "tdmrep.json",
                    "source": "http://a.example/.well-known/tdmrep.json",
                    "sha256": NOT_FOUND_SHA, "bytes": 9, "status": 404, "complete": True,
                    "fetched_at": "2026-01-02T03:04:04.250000Z"}
    # the same bytes at another origin: a whole record of its own (no revisit)
    assert not [r for r in recs if r[0] == "revisit"]
    assert ev[("response", "http://b.example/robots.txt")][3] == ROBOTS


def test_document_metadata_links_every_cited_file_to_its_record() -> None:
    recs = _records(_scenario_bytes())
    by_id = {r[1]["WARC-Record-ID"]: r for r in recs}
    docs = [json.loads(r[3]) for r in recs if r[0] == "metadata"
            and json.loads(r[3])["role"] == "document"]
    assert [d["audit_seq"] for d in docs] == [3, 5, 6]
    for doc in docs:
        assert doc["evidence"], doc
        for ref in doc["evidence"]:
            target = by_id[ref["warc_record_id"]]     # 404 bodies included
            assert target[1]["WARC-Target-URI"] == ref["source"]
            assert _sha(target[3]) == ref["source_sha256"]
    assert [(e["signal"], e["status"]) for e in docs[0]["evidence"]] == [
        ("robots", 200), ("tdmrep", 404)]


def test_evidence_resource_when_the_cited_bytes_are_not_the_body_as_received() -> None:
    """A robots.txt served gzip-encoded: the audit cites the decoded bytes, so they are a
    resource record (Content-Type the server's), the real status and headers in its note."""
    buf = io.BytesIO()
    w = _writer(buf, gzip_=False)
    url = "http://c.example/robots.txt"
    cap = _capture(url, gzip.compress(ROBOTS, mtime=0), decoded=True, ctype="text/plain; x=1",
                   extra=[["Content-Encoding", "gzip"]])
    w.write_evidence(url=url, sha256=ROBOTS_SHA, body=ROBOTS, capture=cap)
    cut = b"User-agent: *\nDisallow: /a\n" * 3
    w.write_evidence(url="http://d.example/ai.txt", sha256=_sha(cut), body=cut,
                     capture=_capture("http://d.example/ai.txt", cut, complete=False))
    w.write_evidence(url="http://e.example/robots.txt", sha256=NOT_FOUND_SHA, body=NOT_FOUND,
                     status=404, kind="robots.txt")      # no sidecar: nothing is made up
    recs = _records(buf.getvalue())
    res = [r for r in recs if r[0] == "resource"]
    notes = [json.loads(r[3]) for r in recs if r[0] == "metadata"]
    assert [r[1]["WARC-Target-URI"] for r in res] == [
        url, "http://d.example/ai.txt", "http://e.example/robots.txt"]
    assert [r[3] for r in res] == [ROBOTS, cut, NOT_FOUND]
    for r in res:   # the block is the payload: its digest is the cited SHA-256
        assert r[1]["WARC-Block-Digest"] == f"sha256:{_sha(r[3])}"
        assert "WARC-Payload-Digest" not in r[1]
    assert [r[1]["Content-Type"] for r in res] == [
        "text/plain; x=1", "text/plain", "application/octet-stream"]
    assert [r[1].get("WARC-Truncated") for r in res] == [None, "length", None]
    assert notes[0]["status"] == 200 and notes[0]["decoded"] is True
    assert ["Content-Encoding", "gzip"] in notes[0]["headers"]
    assert "content-coding (gzip)" in notes[0]["note"]
    assert "POLITE_PREFLIGHT_MAXSIZE" in notes[1]["note"] and notes[1]["complete"] is False
    assert notes[2]["status"] == 404 and notes[2]["headers"] is None
    assert "not recorded" in notes[2]["note"]


def test_evidence_once_per_sha256_url_and_status() -> None:
    w = _writer(io.BytesIO(), gzip_=False)
    url = "http://a.example/robots.txt"
    first = w.write_evidence(url=url, sha256=ROBOTS_SHA, body=ROBOTS, capture=_capture(url, ROBOTS))
    assert first is not None
    assert w.write_evidence(url=url, sha256=ROBOTS_SHA, body=ROBOTS, status=200) is None
    assert w.write_evidence(url=url.replace("a.", "b."), sha256=ROBOTS_SHA, body=ROBOTS,
                            status=200)
    # the same bytes with another status (a 503 page that later came back as 200): both
    # exchanges are cited, both are kept
    again = w.write_evidence(url=url, sha256=ROBOTS_SHA, body=ROBOTS,
                             capture=_capture(url, ROBOTS, status=503))
    assert again not in (None, first)
    assert w.archived(ROBOTS_SHA) and w.record_for(ROBOTS_SHA, url, 200) == first
    assert w.record_for(ROBOTS_SHA, url, 503) == again


def test_digests_verify_with_warcio() -> None:
    seen = 0
    for rec in ArchiveIterator(io.BytesIO(_scenario_bytes()), check_digests="raise"):
        rec.content_stream().read()        # a wrong block or payload digest raises here
        seen += 1
    assert seen == 16
    # and a flipped payload byte is caught (the check can fail)
    data = _scenario_bytes(gzip_=False)
    bad = data.replace(b"<p>hi</p>", b"<p>ho</p>")
    assert bad != data
    with pytest.raises(Exception, match="digest"):
        for rec in ArchiveIterator(io.BytesIO(bad), check_digests="raise"):
            rec.content_stream().read()


def test_writer_refuses_evidence_that_does_not_match_its_hash() -> None:
    w = _writer(io.BytesIO(), gzip_=False)
    with pytest.raises(ValueError, match="does not match"):
        w.write_evidence(url="http://a.example/robots.txt", sha256=ROBOTS_SHA, body=b"x")


def test_evidence_refs_dedupe_and_skip_checks_without_files() -> None:
    checks = _checks("http://a.example") * 2
    assert [r["source_sha256"] for r in evidence_refs(checks)] == [ROBOTS_SHA, NOT_FOUND_SHA]


def test_malformed_sidecar_headers_give_a_resource_record() -> None:
    buf = io.BytesIO()
    cap = {**_capture("http://a.example/robots.txt", ROBOTS), "headers": [["only-a-name"]]}
    _writer(buf, gzip_=False).write_evidence(
        url="http://a.example/robots.txt", sha256=ROBOTS_SHA, body=ROBOTS, capture=cap)
    assert [r[0] for r in _records(buf.getvalue())] == ["warcinfo", "resource", "metadata"]


def test_iter_warc_documents_reads_lazily(tmp_path: Path) -> None:
    path = tmp_path / WARC_FILENAME
    with open(path, "wb") as fh:
        _scenario(fh)
    entries = iter_warc_documents(path)
    first = next(entries)
    assert first.record_type == "warcinfo" and first.payload["isPartOf"] == "golden"
    rest = list(entries)
    docs = [e for e in rest if e.record_type == "response" and e.url.startswith("http://a")
            and not e.url.endswith(("robots.txt", "tdmrep.json"))]
    # the payload as stored: the gzip bytes for the compressed document
    assert [(e.url, e.status, e.payload) for e in docs] == [
        ("http://a.example/page?x=1", 200, _sha(b"<p>hi</p>")),
        ("http://a.example/gz", 200, _sha(GZ))]
    meta = [e for e in iter_warc_documents(path, types={"metadata"})
            if e.payload.get("role") == "document"]
    assert [m.payload["audit_seq"] for m in meta] == [3, 5, 6]
    assert [m.payload["sha256"] for m in meta][1] == _sha(HTML)
    evidence = {e.url: e.status for e in rest if e.record_type == "response"
                and e.url.endswith(("robots.txt", "tdmrep.json"))}
    assert evidence == {"http://a.example/robots.txt": 200, "http://b.example/robots.txt": 200,
                        "http://a.example/.well-known/tdmrep.json": 404}


# -- independent checkers ------------------------------------------------------------------

def test_independent_checkers_accept_every_record_type(tmp_path: Path) -> None:
    """warcio check, FastWARC (block and payload digests) and cdxj-indexer on a file with
    every record type this writer makes: responses (gzip, 404), resources (decoded, cut)."""
    path = tmp_path / WARC_FILENAME
    with open(path, "wb") as fh:
        w = _scenario(fh)
        cap = _capture("http://c.example/robots.txt", gzip.compress(ROBOTS), decoded=True,
                       extra=[["Content-Encoding", "gzip"]])
        w.write_evidence(url="http://c.example/robots.txt", sha256=ROBOTS_SHA, body=ROBOTS,
                         capture=cap)
        w.write_evidence(url="http://d.example/ai.txt", sha256=NOT_FOUND_SHA, body=NOT_FOUND,
                         capture=_capture("http://d.example/ai.txt", NOT_FOUND, complete=False))
    assert warcio_check(path) == fastwarc_check(path) == 20
    index = {e["url"]: e for e in cdxj_index(path) if e.get("mime") != "application/json"}
    assert index["http://a.example/gz"]["digest"] == f"sha256:{_sha(GZ)}"
    assert index["http://a.example/gz"]["mime"] == "text/html"
    assert index["http://a.example/.well-known/tdmrep.json"]["status"] == "404"
    assert index["http://a.example/.well-known/tdmrep.json"]["digest"] == \
        f"sha256:{NOT_FOUND_SHA}"
    # a resource's digest is computed by the indexer (no WARC-Payload-Digest: block = payload)
    assert index["http://c.example/robots.txt"]["mime"] == "text/plain"


def test_independent_checkers_catch_a_changed_byte(tmp_path: Path) -> None:
    path = tmp_path / "bad.warc"
    data = _scenario_bytes(gzip_=False).replace(b"<p>hi</p>", b"<p>ho</p>")
    path.write_bytes(data)
    assert run_tool("warcio", "check", str(path)).returncode != 0
    assert run_tool("fastwarc", "check", "-q", "-p", str(path)).returncode != 0


# -- independent checkers (their command-line tools, in a subprocess) ----------------------

def run_tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run an installed command-line tool (warcio, fastwarc, cdxj-indexer: test extras)."""
    exe = Path(sys.executable).parent / name
    path = str(exe) if exe.exists() else shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (pip install -e '.[test]')")
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=300,
                          check=False)


def warcio_check(path: Path) -> int:
    """``warcio check -v``: every record's digests verified; returns the records checked."""
    proc = run_tool("warcio", "check", "-v", str(path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = [ln.strip() for ln in proc.stdout.splitlines()]
    records = sum(1 for ln in lines if ln.startswith("offset "))
    verdicts = [ln for ln in lines if ln and not ln.startswith("offset ")
                and ln != str(path)]
    assert verdicts == ["digest pass"] * records, verdicts
    return records


def fastwarc_check(path: Path) -> int:
    """``fastwarc check -p``: block and payload digests; every record verified (no record
    without a digest, every payload digest present checked); returns the records."""
    details = path.with_name(path.name + ".fastwarc.txt")
    proc = run_tool("fastwarc", "check", "-q", "-p", "-o", str(details), str(path))
    out = details.read_text()
    details.unlink()
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    statuses = [line.split(": ", 1)[1] for line in out.splitlines() if line]
    assert set(statuses) <= {"OK, PAYLOAD_OK", "OK, PAYLOAD_NO_DIGEST"}, statuses
    return len(statuses)


def cdxj_index(path: Path) -> list[dict[str, Any]]:
    """``cdxj-indexer``: one JSON object per indexed record (with its ``surt`` and ``ts``)."""
    proc = run_tool("cdxj-indexer", str(path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = []
    for line in proc.stdout.splitlines():
        surt, ts, blob = line.split(" ", 2)
        out.append({"surt": surt, "ts": ts, **json.loads(blob)})
    return out


# -- the Scrapy glue ------------------------------------------------------------------------

def _crawler(tmp_path: Path, **settings: Any) -> Any:
    crawler = get_crawler(Spider, {
        "ADDONS": {"crawler.addon.Addon": 100},
        "POLITE_USER_AGENT": UA,
        "POLITE_OUTPUT_DIR": str(tmp_path),
        "POLITE_JOB": "pipe",
        **settings,
    })
    return crawler  # get_crawler applied the settings: the add-on's components are built


def _close(crawler: Any) -> None:
    crawler.signals.send_catch_log(signal=signals.spider_closed, spider=None,
                                   reason="finished")


def test_integrity_middleware_keeps_the_raw_response_only_when_needed(tmp_path: Path) -> None:
    from crawler.crawl.integrity import ContentIntegrityMiddleware
    from crawler.crawl.sitecache import META_RAW, PREFLIGHT_META

    def gz_response(request: Request) -> HtmlResponse:
        return HtmlResponse(request.url, body=GZ, request=request,
                            headers={"Content-Encoding": "gzip", "Content-Type": "text/html"})

    off = _crawler(tmp_path / "off")
    on = _crawler(tmp_path / "on", POLITE_WARC=True)
    try:
        mw_off = ContentIntegrityMiddleware.from_crawler(off)
        mw_on = ContentIntegrityMiddleware.from_crawler(on)
        page = Request("https://example.org/p")
        assert mw_off.process_response(page, gz_response(page)).body == HTML
        assert META_RAW not in page.meta                    # WARC off: nothing kept
        page = Request("https://example.org/p")
        sent = gz_response(page)
        out = mw_on.process_response(page, sent)
        assert out.body == HTML and b"Content-Encoding" not in out.headers
        raw = page.meta[META_RAW]
        assert raw["body"] is sent.body == GZ              # a reference, not a copy
        assert raw["headers"][b"Content-Encoding"] == b"gzip" and raw["decoded"] is True
        assert raw["complete"] is True
        plain = Request("https://example.org/q")
        resp = HtmlResponse(plain.url, body=HTML, request=plain)
        assert mw_on.process_response(plain, resp) is resp
        assert plain.meta[META_RAW]["body"] is resp.body and not plain.meta[META_RAW]["decoded"]
        # a per-origin file: kept whatever the WARC setting (its evidence sidecar needs it)
        pre = Request("https://example.org/robots.txt", callback=NO_CALLBACK,
                      meta={PREFLIGHT_META: "robots.txt"})
        mw_off.process_response(pre, gz_response(pre))
        assert pre.meta[META_RAW]["body"] == GZ
    finally:
        _close(off)
        _close(on)


def test_site_cache_keeps_every_cited_body_with_its_sidecar(tmp_path: Path) -> None:
    """A 503 body is cited like a 200 one: kept as evidence/<sha256> with its HTTP sidecar in
    evidence/http/, only files named by their hash at the top, and EVIDENCE_KEPT sent."""
    from crawler.crawl.runtime import get_runtime
    from crawler.crawl.sitecache import EVIDENCE_KEPT, capture_name, load_capture

    crawler = _crawler(tmp_path)
    cache = get_runtime(crawler).sitecache
    got: list[tuple[Any, bytes, Any]] = []
    crawler.signals.connect(lambda file, body, capture, **kw: got.append((file, body, capture)),
                            signal=EVIDENCE_KEPT, weak=False)
    try:
        url = "http://a.example/robots.txt"
        busy = b"Service unavailable"
        f = site_file("robots.txt", url, status=503, body=busy)
        cap = _capture(url, busy, status=503)
        cache._captures[("robots.txt", url)] = cap
        cache._archive(f, busy)
        cut = site_file("ai.txt", "http://a.example/ai.txt", status=200, body=b"User-agent: *",
                        complete=False)
        cache._archive(cut, b"User-agent: *")        # no sidecar known: body only
        cache._archive(site_file("robots.txt", url, status=None, error="refused"), b"")
    finally:
        _close(crawler)
    ev = tmp_path / "evidence"
    assert (ev / _sha(busy)).read_bytes() == busy
    assert (ev / _sha(b"User-agent: *")).read_bytes() == b"User-agent: *"
    top = sorted(p.name for p in ev.iterdir() if p.is_file())
    assert top == sorted([_sha(busy), _sha(b"User-agent: *")])
    assert all(hashlib.sha256((ev / n).read_bytes()).hexdigest() == n for n in top)
    assert (ev / capture_name(_sha(busy), url, 503)).parent.name == "http"
    assert load_capture(ev, _sha(busy), url, 503) == cap
    assert load_capture(ev, _sha(busy), url, 200) is None
    assert load_capture(ev, _sha(busy), "http://other.example/robots.txt", 503) is None
    assert [(g[0].status, g[1], g[2]) for g in got] == [
        (503, busy, cap), (200, b"User-agent: *", None)]


def test_pipeline_not_configured_unless_polite_warc(tmp_path: Path) -> None:
    crawler = _crawler(tmp_path)
    try:
        with pytest.raises(NotConfigured):
            WarcWriterPipeline.from_crawler(crawler)
    finally:
        _close(crawler)


def test_pipeline_archives_evidence_when_fetched_whatever_the_decision(tmp_path: Path) -> None:
    """A robots.txt answering 503 refuses everything: no document, but the cited body is in
    the WARC (with its real status and headers) the moment it is kept."""
    from crawler.crawl.sitecache import EVIDENCE_KEPT

    crawler = _crawler(tmp_path, POLITE_WARC=True)
    pipeline = WarcWriterPipeline.from_crawler(crawler)   # held: signals are weak references
    url = "http://a.example/robots.txt"
    busy = b"Service unavailable"
    f = site_file("robots.txt", url, status=503, body=busy)
    try:
        crawler.signals.send_catch_log(signal=EVIDENCE_KEPT, file=f, body=busy,
                                       capture=_capture(url, busy, status=503))
        crawler.signals.send_catch_log(signal=EVIDENCE_KEPT, file=f, body=busy,
                                       capture=_capture(url, busy, status=503))  # once
        assert pipeline.path.exists()
    finally:
        _close(crawler)
    entries = list(iter_warc_documents(tmp_path / WARC_FILENAME))
    assert [(e.record_type, e.url, e.status) for e in entries] == [
        ("warcinfo", "", None), ("response", url, 503), ("metadata", url, None)]
    assert entries[1].payload == _sha(busy) and entries[2].payload["status"] == 503
    assert crawler.stats.get_value("polite/warc/evidence") == 1


def test_pipeline_writes_allowed_documents_only(tmp_path: Path) -> None:
    from crawler.crawl.runtime import get_runtime
    from crawler.crawl.sitecache import capture_name

    crawler = _crawler(tmp_path, POLITE_WARC=True)
    runtime = get_runtime(crawler)
    pipeline = WarcWriterPipeline.from_crawler(crawler)
    origin = "http://a.example"
    ev = tmp_path / "evidence"
    (ev / "http").mkdir(parents=True, exist_ok=True)
    (ev / ROBOTS_SHA).write_bytes(ROBOTS)
    (ev / capture_name(ROBOTS_SHA, f"{origin}/robots.txt", 200)).write_text(
        json.dumps(_capture(f"{origin}/robots.txt", ROBOTS)))
    try:
        # a refused document: its decision is recorded, its body never reaches a pipeline
        refused = verdict_of([Evidence("robots", "robots.txt", "deny", rule="Disallow: /x",
                                       source=f"{origin}/robots.txt",
                                       source_sha256=ROBOTS_SHA, status=200)])
        runtime.funnel.record(f"{origin}/x", refused, checks=[])
        allowed = runtime.funnel.record(f"{origin}/ok", verdict_of([]),
                                        checks=_checks(origin)[:1], extra={"status": 200})
        payload = {"request_headers": {b"User-Agent": [UA.encode()]},
                   "response_headers": {b"Content-Type": [b"text/html"],
                                        b"Content-Encoding": [b"gzip"]},
                   "body": GZ, "content_sha256": _sha(HTML), "as_received": True}
        item = {"url": f"{origin}/ok", "fetched_at": "2026-01-02T03:04:05.000000Z",
                "status": 200, "content_type": "text/html", "sha256": _sha(HTML),
                "bytes": len(HTML), "audit_seq": allowed["seq"], "audit_hash": allowed["hash"],
                "job": "pipe", "_warc": payload}
        before = dict(item)
        assert pipeline.process_item(item) is item
        assert item == before                                    # the item is not changed
        # no provenance, or no payload: not written (the corpus writer drops the former)
        assert pipeline.process_item({**item, "audit_seq": None, "url": f"{origin}/x",
                                      "_warc": {**payload, "body": b"SECRET"}})
        assert pipeline.process_item({k: v for k, v in item.items() if k != "_warc"})
    finally:
        _close(crawler)
    data = (tmp_path / WARC_FILENAME).read_bytes()
    assert b"SECRET" not in gzip.decompress(data)
    entries = list(iter_warc_documents(tmp_path / WARC_FILENAME))
    # the robots.txt was not announced by the site cache: written from evidence/ and its
    # sidecar (a response: the sidecar says these are the bytes as received)
    assert [e.record_type for e in entries] == [
        "warcinfo", "response", "metadata", "request", "response", "metadata"]
    assert {e.url for e in entries if e.record_type == "request"} == {f"{origin}/ok"}
    assert entries[1].url == f"{origin}/robots.txt" and entries[1].status == 200
    info = entries[0].payload
    assert info["policy-sha256"] == runtime.policy.sha256
    assert info["http-header-user-agent"] == UA and info["product-token"] == "TestBot"
    assert entries[4].payload == _sha(GZ) and entries[4].headers["Content-Encoding"] == "gzip"
    meta = entries[-1].payload
    assert meta["audit_seq"] == allowed["seq"] and meta["audit_hash"] == allowed["hash"]
    assert meta["policy_sha256"] == runtime.policy.sha256
    assert meta["sha256"] == _sha(HTML) and meta["payload_sha256"] == _sha(GZ)
    assert [e["source_sha256"] for e in meta["evidence"]] == [ROBOTS_SHA]
    assert meta["evidence"][0]["warc_record_id"] == entries[1].record_id
    stats = crawler.stats.get_stats()
    assert stats["polite/warc/documents"] == 1
    assert stats["polite/warc/skipped_no_provenance"] == 1
    assert stats["polite/warc/skipped_no_payload"] == 1


def test_pipeline_takes_checks_from_the_item_when_given(tmp_path: Path) -> None:
    crawler = _crawler(tmp_path, POLITE_WARC=True)
    pipeline = WarcWriterPipeline.from_crawler(crawler)
    try:
        pipeline.process_item({
            "url": "http://b.example/", "status": 200, "audit_seq": 99, "audit_hash": "f" * 64,
            "fetched_at": "2026-01-02T03:04:05Z",
            "_warc": {"request_headers": {}, "response_headers": {}, "body": b"b",
                      "as_received": False, "checks": _checks("http://b.example")}})
    finally:
        _close(crawler)
    meta = [e for e in iter_warc_documents(tmp_path / WARC_FILENAME, types={"metadata"})]
    assert [m.payload["audit_seq"] for m in meta] == [99]
    assert meta[0].payload["payload"].startswith("decoded by the crawler")
    # the evidence directory does not hold the file: referenced, not archived
    assert meta[0].payload["evidence"][0]["source_sha256"] == ROBOTS_SHA
    assert "warc_record_id" not in meta[0].payload["evidence"][0]
    assert crawler.stats.get_value("polite/warc/decoded_payload") == 1


def test_http2_responses_get_an_http_version_status_line() -> None:
    buf = io.BytesIO()
    _writer(buf, gzip_=False).write_document(
        url="https://h2.example/", status=299, response_headers={}, body=b"",
        audit={"seq": 1, "hash": "a" * 64}, protocol="h2")
    text = buf.getvalue().decode()
    assert "GET / HTTP/2\r\nHost: h2.example\r\n" in text
    assert "\r\nHTTP/2 299\r\n" in text                          # no reason phrase for 299


def test_corpus_spider_hands_the_raw_response_to_the_warc(tmp_path: Path) -> None:
    """The corpus keeps the decoded text; the _warc payload is the response as received."""
    import yaml

    from crawler.config.job import load_config
    from crawler.crawl.meta import META_AUDIT
    from crawler.crawl.sitecache import META_RAW
    from crawler.spiders.corpus import CorpusSpider

    cfg = tmp_path / "job.yaml"
    cfg.write_text(yaml.safe_dump({"job": "t", "user_agent": UA, "seeds": ["http://a.example/"],
                                   "output_dir": str(tmp_path / "out"),
                                   "output": {"warc": True},
                                   # no runtime here: links would need its scope
                                   "follow": "none"}))
    spider = CorpusSpider()
    spider.job = load_config(cfg)
    spider._set_crawler(get_crawler(CorpusSpider))
    request = Request("http://a.example/", meta={META_AUDIT: {"seq": 1, "hash": "a" * 64,
                                                            "url": "http://a.example/"}})
    sent_headers = {"Content-Type": "text/html", "Content-Encoding": "gzip"}
    raw_resp = HtmlResponse(request.url, body=GZ, headers=sent_headers, request=request)
    request.meta[META_RAW] = {"headers": raw_resp.headers, "body": GZ, "complete": True,
                              "decoded": True}
    decoded = HtmlResponse(request.url, body=HTML, headers={"Content-Type": "text/html"},
                           request=request)
    (item,) = [i for i in spider.parse(decoded) if isinstance(i, dict)]
    assert item["sha256"] == _sha(HTML) and "compressed" in item["text"]
    warc = item["_warc"]
    assert warc["body"] is GZ and warc["response_headers"][b"Content-Encoding"] == b"gzip"
    assert warc["content_sha256"] == _sha(HTML) and warc["as_received"] is True
    # a body replaced after the middleware is not claimed to be as received
    request.meta[META_RAW] = {"headers": raw_resp.headers, "body": b"other", "complete": True,
                              "decoded": False}
    plain = TextResponse(request.url, body=b"x", headers={"Content-Type": "text/plain"},
                         request=request)
    (item,) = [i for i in spider.parse(plain) if isinstance(i, dict)]
    assert item["_warc"]["as_received"] is False and item["_warc"]["body"] == b"x"
