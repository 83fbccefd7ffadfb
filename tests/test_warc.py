"""WARC output: byte-exact golden records, read-back links, evidence once per SHA-256, and the
Scrapy pipeline (real Settings and runtime) writing only documents with audit provenance."""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import json
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from scrapy import Spider, signals
from scrapy.exceptions import NotConfigured
from scrapy.utils.test import get_crawler
from warcio.archiveiterator import ArchiveIterator

from crawler.optout.model import Evidence
from crawler.policy import verdict_of
from crawler.warc import (
    WARC_FILENAME,
    CorpusWarcWriter,
    WarcWriterPipeline,
    evidence_refs,
    iter_warc_documents,
    sha256_hex_from_digest,
)

UA = "TestBot/1.0 (+https://example.org/bot)"
POLICY = "ab" * 32
ROBOTS = b"User-agent: *\nAllow: /\n"
ROBOTS_SHA = hashlib.sha256(ROBOTS).hexdigest()
NOT_FOUND_SHA = hashlib.sha256(b"not found").hexdigest()


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


def _writer(buf: io.BytesIO, *, gzip_: bool) -> CorpusWarcWriter:
    ids = itertools.count(1)
    return CorpusWarcWriter(
        buf, job="golden", user_agent=UA, policy_sha256=POLICY, gzip=gzip_,
        software="polite-crawler/test",
        clock=lambda: datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        record_id=lambda: f"<urn:uuid:00000000-0000-4000-8000-{next(ids):012d}>")


def _scenario(buf: io.BytesIO, *, gzip_: bool = True) -> CorpusWarcWriter:
    """Two documents on one origin, one on another origin serving the same robots.txt."""
    w = _writer(buf, gzip_=gzip_)
    evidence = {ROBOTS_SHA: ROBOTS}
    w.write_document(
        url="http://a.example/page?x=1", status=200,
        response_headers={b"Content-Type": [b"text/html"], b"Content-Length": [b"29"],
                          b"Transfer-Encoding": [b"chunked"]},
        body=b"<p>hi</p>", request_headers={b"User-Agent": [UA.encode()]},
        audit={"seq": 3, "hash": "c" * 64, "policy_sha256": POLICY,
               "checks": _checks("http://a.example")},
        fetched_at="2026-01-02T03:04:06.500000Z", evidence=evidence)
    w.write_document(
        url="http://a.example/two", status=200,
        response_headers={"Content-Type": "text/plain"}, body=b"two",
        request_headers={"User-Agent": UA},
        audit={"seq": 5, "hash": "d" * 64, "checks": _checks("http://a.example")},
        fetched_at="2026-01-02T03:04:07Z", evidence=evidence)
    w.write_document(
        url="http://b.example/", status=200, response_headers={}, body=b"b",
        audit={"audit_seq": 6, "audit_hash": "e" * 64, "checks": _checks("http://b.example")},
        fetched_at="2026-01-02T03:04:08Z", evidence=evidence)
    return w


# The first document as written (warcinfo, its robots.txt evidence, request, response,
# metadata), CRLF shown as LF; GOLDEN_SHA256 pins the exact bytes of the whole file.
GOLDEN_SHA256 = "b7f74a63fd04d0ca1e9029b7f9203ffe50764938060dafd6e8a2e986ef0ab694"
GOLDEN_HEAD = """\
WARC/1.0
WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000001>
WARC-Date: 2026-01-02T03:04:05Z
WARC-Filename: corpus.warc.gz
WARC-Type: warcinfo
WARC-Block-Digest: sha256:7RK4IW575AWEPJZ3GPQKEHRA2XZEVW6OR5DHQ3G2BMVAQZVBGT7A====
Content-Type: application/warc-fields
Content-Length: 317

software: polite-crawler/test
format: WARC File Format 1.0
conformsTo: https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.0/
isPartOf: golden
http-header-user-agent: TestBot/1.0 (+https://example.org/bot)
policy-sha256: abababababababababababababababababababababababababababababababab


WARC/1.0
WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000002>
WARC-Date: 2026-01-02T03:04:05Z
WARC-Warcinfo-ID: <urn:uuid:00000000-0000-4000-8000-000000000001>
WARC-Type: response
WARC-Target-URI: http://a.example/robots.txt
WARC-Payload-Digest: sha256:C3HLL3R6BXATVKNN6MND5O7ELIOZMW4MFOPXF2XYJZMRDYKA5WKQ====
WARC-Block-Digest: sha256:RLI3DW36272UY3N5MIH3ODI32GXZXF27RUKVGUSZLBLRLXTI4EBQ====
Content-Type: application/http; msgtype=response
Content-Length: 62

HTTP/1.1 200 OK
Content-Length: 23

User-agent: *
Allow: /


WARC/1.0
WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000003>
WARC-Date: 2026-01-02T03:04:05Z
WARC-Warcinfo-ID: <urn:uuid:00000000-0000-4000-8000-000000000001>
WARC-Concurrent-To: <urn:uuid:00000000-0000-4000-8000-000000000002>
WARC-Type: metadata
WARC-Target-URI: http://a.example/robots.txt
WARC-Payload-Digest: sha256:7DUJM3TNEP34AR54VKKTQJODMSUUQUBTRYTWCLTH24I3MO2NZ6YQ====
WARC-Block-Digest: sha256:7DUJM3TNEP34AR54VKKTQJODMSUUQUBTRYTWCLTH24I3MO2NZ6YQ====
Content-Type: application/json
Content-Length: 339

{"channel": "robots.txt", "note": "evidence file as archived by the crawl (body only): the status line comes from the audit record, the HTTP headers were not kept", "role": "evidence", "sha256": "16ceb5ee3e0dc13aa9adf31a3ebbe45a1d965b8c2b9f72eaf84e5911e140ed95", "signal": "robots", "source": "http://a.example/robots.txt", "status": 200}


WARC/1.0
WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000005>
WARC-Date: 2026-01-02T03:04:06Z
WARC-Warcinfo-ID: <urn:uuid:00000000-0000-4000-8000-000000000001>
WARC-Concurrent-To: <urn:uuid:00000000-0000-4000-8000-000000000004>
WARC-Type: request
WARC-Target-URI: http://a.example/page?x=1
WARC-Payload-Digest: sha256:4OYMIQUY7QOBJGX36TEJS35ZEQT24QPEMSNZGTFESWMRW6CSXBKQ====
WARC-Block-Digest: sha256:YIWU4BJOKYH5M3S65BJXSU2UWLPEFWHU5N7RAQBVQHDUHOAWNLQA====
Content-Type: application/http; msgtype=request
Content-Length: 95

GET /page?x=1 HTTP/1.1
Host: a.example
User-Agent: TestBot/1.0 (+https://example.org/bot)



WARC/1.0
WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000004>
WARC-Date: 2026-01-02T03:04:06Z
WARC-Warcinfo-ID: <urn:uuid:00000000-0000-4000-8000-000000000001>
WARC-Type: response
WARC-Target-URI: http://a.example/page?x=1
WARC-Payload-Digest: sha256:BJDTKKA5W4ACEOXWHK6DQ7BVD5SOU2LBUHXZKVRR34ENSYLJ45ZA====
WARC-Block-Digest: sha256:2FUO2S622LMMUKEFW7ZYZ2ZS5B7SDCVRMZSYSTRFCFROCJ46C6BA====
Content-Type: application/http; msgtype=response
Content-Length: 140

HTTP/1.1 200 OK
Content-Type: text/html
X-Crawler-Content-Length: 29
X-Crawler-Transfer-Encoding: chunked
Content-Length: 9

<p>hi</p>

WARC/1.0
WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000006>
WARC-Date: 2026-01-02T03:04:06Z
WARC-Warcinfo-ID: <urn:uuid:00000000-0000-4000-8000-000000000001>
WARC-Concurrent-To: <urn:uuid:00000000-0000-4000-8000-000000000004>
WARC-Type: metadata
WARC-Target-URI: http://a.example/page?x=1
WARC-Payload-Digest: sha256:CSUM5GLWEDHRWNHRZPVL7NXYPSNUXIR7JGTRF6APWFMMF5PLN2KQ====
WARC-Block-Digest: sha256:CSUM5GLWEDHRWNHRZPVL7NXYPSNUXIR7JGTRF6APWFMMF5PLN2KQ====
Content-Type: application/json
Content-Length: 748

{"audit_hash": "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc", "audit_seq": 3, "evidence": [{"channel": "robots.txt", "signal": "robots", "source": "http://a.example/robots.txt", "source_sha256": "16ceb5ee3e0dc13aa9adf31a3ebbe45a1d965b8c2b9f72eaf84e5911e140ed95", "status": 200, "warc_record_id": "<urn:uuid:00000000-0000-4000-8000-000000000002>"}, {"channel": "file", "signal": "tdmrep", "source": "http://a.example/.well-known/tdmrep.json", "source_sha256": "907ba78b4545338d3539683e63ecb51cf51c10adc9dabd86e92bd52339f298b9", "status": 404}], "policy_sha256": "abababababababababababababababababababababababababababababababab", "role": "document", "sha256": "0a4735281db700223af63abc387c351f64ea6961a1ef955631df08d96169e772"}


"""


def _records(data: bytes) -> list[Any]:
    """(type, warc headers, http headers, payload bytes) of every record, via warcio."""
    out = []
    for rec in ArchiveIterator(io.BytesIO(data)):
        wh = dict(rec.rec_headers.headers)
        http = dict(rec.http_headers.headers) if rec.http_headers else {}
        out.append((rec.rec_type, wh, http, rec.content_stream().read()))
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


def test_golden_bytes_with_fixed_clock_and_ids() -> None:
    buf = io.BytesIO()
    _scenario(buf, gzip_=False)
    data = buf.getvalue()
    assert data.replace(b"\r\n", b"\n").decode().startswith(GOLDEN_HEAD)
    assert hashlib.sha256(data).hexdigest() == GOLDEN_SHA256


def test_gzip_output_is_one_member_per_record_and_deterministic() -> None:
    plain, first, second = io.BytesIO(), io.BytesIO(), io.BytesIO()
    _scenario(plain, gzip_=False)
    _scenario(first)
    _scenario(second)
    assert first.getvalue() == second.getvalue()
    assert gzip.decompress(first.getvalue()) == plain.getvalue()
    assert _gzip_members(first.getvalue()) == len(_records(first.getvalue())) == 14


def test_records_are_linked_and_digests_are_the_corpus_sha256() -> None:
    buf = io.BytesIO()
    _scenario(buf)
    recs = _records(buf.getvalue())
    warcinfo_id = recs[0][1]["WARC-Record-ID"]
    assert recs[0][0] == "warcinfo"
    assert all(r[1]["WARC-Warcinfo-ID"] == warcinfo_id for r in recs[1:])
    by_id = {r[1]["WARC-Record-ID"]: r for r in recs}
    responses = [r for r in recs if r[0] == "response" and "robots.txt" not in
                 r[1]["WARC-Target-URI"]]
    assert [r[1]["WARC-Target-URI"] for r in responses] == [
        "http://a.example/page?x=1", "http://a.example/two", "http://b.example/"]
    for rtype, wh, http, body in responses:
        rid, url = wh["WARC-Record-ID"], wh["WARC-Target-URI"]
        req = [r for r in recs if r[0] == "request" and r[1]["WARC-Concurrent-To"] == rid]
        meta = [r for r in recs if r[0] == "metadata" and r[1]["WARC-Concurrent-To"] == rid]
        assert len(req) == len(meta) == 1
        assert req[0][1]["WARC-Target-URI"] == meta[0][1]["WARC-Target-URI"] == url
        assert meta[0][1]["Content-Type"] == "application/json"
        doc = json.loads(meta[0][3])
        assert doc["role"] == "document"
        assert doc["sha256"] == hashlib.sha256(body).hexdigest()
        assert sha256_hex_from_digest(wh["WARC-Payload-Digest"]) == doc["sha256"]
        assert doc["policy_sha256"] == POLICY
        # the evidence the allow relied on: every source_sha256 of the checks, archived or not
        assert [(e["signal"], e["source_sha256"]) for e in doc["evidence"]] == [
            ("robots", ROBOTS_SHA), ("tdmrep", NOT_FOUND_SHA)]
        robots_ref = doc["evidence"][0]
        assert by_id[robots_ref["warc_record_id"]][1]["WARC-Target-URI"] == robots_ref["source"]
        assert "warc_record_id" not in doc["evidence"][1]   # a 404 body is not kept
    first = next(r for r in responses if r[1]["WARC-Target-URI"].endswith("x=1"))
    assert first[2]["Content-Length"] == "9"                     # the stored (decoded) body
    assert first[2]["X-Crawler-Content-Length"] == "29"          # as the server sent it
    assert first[2]["X-Crawler-Transfer-Encoding"] == "chunked"
    assert "Transfer-Encoding" not in first[2]
    request = next(r for r in recs if r[0] == "request")
    assert request[2]["Host"] == "a.example" and request[2]["User-Agent"] == UA


def test_digests_verify_with_warcio() -> None:
    buf = io.BytesIO()
    _scenario(buf)
    buf.seek(0)
    seen = 0
    for rec in ArchiveIterator(buf, check_digests="raise"):
        rec.content_stream().read()        # a wrong block or payload digest raises here
        seen += 1
    assert seen == 14


def test_evidence_written_once_per_sha256() -> None:
    buf = io.BytesIO()
    _scenario(buf)
    recs = _records(buf.getvalue())
    evidence = [r for r in recs if r[1].get("WARC-Target-URI", "").endswith("robots.txt")]
    kinds = [(r[0], r[1]["WARC-Target-URI"]) for r in evidence]
    # one response for the bytes, a revisit for the same bytes at another origin, each with
    # its "evidence" metadata note; documents 2 and 3 of origin a did not repeat it
    assert kinds == [("response", "http://a.example/robots.txt"),
                     ("metadata", "http://a.example/robots.txt"),
                     ("revisit", "http://b.example/robots.txt"),
                     ("metadata", "http://b.example/robots.txt")]
    response, note, revisit, _ = evidence
    assert response[3] == ROBOTS and response[2]["Content-Length"] == str(len(ROBOTS))
    assert json.loads(note[3])["role"] == "evidence"
    assert revisit[1]["WARC-Refers-To"] == response[1]["WARC-Record-ID"]
    assert revisit[1]["WARC-Payload-Digest"] == response[1]["WARC-Payload-Digest"]


def test_writer_refuses_evidence_that_does_not_match_its_hash() -> None:
    w = _writer(io.BytesIO(), gzip_=False)
    with pytest.raises(ValueError, match="does not match"):
        w.write_evidence(url="http://a.example/robots.txt", sha256=ROBOTS_SHA, body=b"x")


def test_evidence_refs_dedupe_and_skip_checks_without_files() -> None:
    checks = _checks("http://a.example") * 2
    assert [r["source_sha256"] for r in evidence_refs(checks)] == [ROBOTS_SHA, NOT_FOUND_SHA]


def test_iter_warc_documents_reads_lazily(tmp_path: Path) -> None:
    path = tmp_path / WARC_FILENAME
    with open(path, "wb") as fh:
        _scenario(fh)  # type: ignore[arg-type]
    entries = iter_warc_documents(path)
    first = next(entries)
    assert first.record_type == "warcinfo" and first.payload["isPartOf"] == "golden"
    rest = list(entries)
    docs = [e for e in rest if e.record_type == "response" and e.url.startswith("http://a")
            and not e.url.endswith("robots.txt")]
    assert [(e.url, e.status, e.payload) for e in docs] == [
        ("http://a.example/page?x=1", 200, hashlib.sha256(b"<p>hi</p>").hexdigest()),
        ("http://a.example/two", 200, hashlib.sha256(b"two").hexdigest())]
    meta = [e for e in iter_warc_documents(path, types={"metadata"})
            if e.payload.get("role") == "document"]
    assert [m.payload["audit_seq"] for m in meta] == [3, 5, 6]
    assert {m.concurrent_to for m in meta} == {
        e.record_id for e in rest if e.record_type == "response" and e.url in
        {"http://a.example/page?x=1", "http://a.example/two", "http://b.example/"}}
    revisit = next(e for e in rest if e.record_type == "revisit")
    assert revisit.payload == ROBOTS_SHA


# -- the Scrapy pipeline ------------------------------------------------------------------

def _crawler(tmp_path: Path, **settings: Any) -> Any:
    crawler = get_crawler(Spider, {
        "ADDONS": {"crawler.addon.Addon": 100},
        "POLITE_USER_AGENT": UA,
        "POLITE_OUTPUT_DIR": str(tmp_path),
        "POLITE_JOB": "pipe",
        **settings,
    })
    crawler._apply_settings()
    return crawler


def _close(crawler: Any) -> None:
    crawler.signals.send_catch_log(signal=signals.spider_closed, spider=None,
                                   reason="finished")


def test_pipeline_not_configured_unless_polite_warc(tmp_path: Path) -> None:
    crawler = _crawler(tmp_path)
    try:
        with pytest.raises(NotConfigured):
            WarcWriterPipeline.from_crawler(crawler)
    finally:
        _close(crawler)


def test_pipeline_writes_allowed_documents_only(tmp_path: Path) -> None:
    from crawler.runtime import get_runtime

    crawler = _crawler(tmp_path, POLITE_WARC=True)
    runtime = get_runtime(crawler)
    pipeline = WarcWriterPipeline.from_crawler(crawler)
    (tmp_path / "evidence").mkdir(exist_ok=True)
    (tmp_path / "evidence" / ROBOTS_SHA).write_bytes(ROBOTS)
    origin = "http://a.example"
    try:
        # a refused document: its decision is recorded, its body never reaches a pipeline
        refused = verdict_of([Evidence("robots", "robots.txt", "deny", rule="Disallow: /x",
                                       source=f"{origin}/robots.txt",
                                       source_sha256=ROBOTS_SHA, status=200)])
        runtime.funnel.record(f"{origin}/x", refused, checks=[])
        allowed = runtime.funnel.record(f"{origin}/ok", verdict_of([]),
                                        checks=_checks(origin)[:1], extra={"status": 200})
        payload = {"request_headers": {b"User-Agent": [UA.encode()]},
                   "response_headers": {b"Content-Type": [b"text/html"]},
                   "body": b"<p>ok</p>"}
        item = {"url": f"{origin}/ok", "fetched_at": "2026-01-02T03:04:05.000000Z",
                "status": 200, "content_type": "text/html",
                "sha256": hashlib.sha256(b"<p>ok</p>").hexdigest(), "bytes": 9,
                "audit_seq": allowed["seq"], "audit_hash": allowed["hash"], "job": "pipe",
                "_warc": payload}
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
    assert [e.record_type for e in entries] == [
        "warcinfo", "response", "metadata", "request", "response", "metadata"]
    assert {e.url for e in entries if e.record_type == "request"} == {f"{origin}/ok"}
    info = entries[0].payload
    assert info["policy-sha256"] == runtime.policy.sha256
    assert info["http-header-user-agent"] == UA and info["product-token"] == "TestBot"
    meta = entries[-1].payload
    assert meta["audit_seq"] == allowed["seq"] and meta["audit_hash"] == allowed["hash"]
    assert meta["policy_sha256"] == runtime.policy.sha256
    assert [e["source_sha256"] for e in meta["evidence"]] == [ROBOTS_SHA]
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
                      "checks": _checks("http://b.example")}})
    finally:
        _close(crawler)
    meta = [e for e in iter_warc_documents(tmp_path / WARC_FILENAME, types={"metadata"})]
    assert [m.payload["audit_seq"] for m in meta] == [99]
    # the evidence directory does not hold the file: referenced, not archived
    assert meta[0].payload["evidence"][0]["source_sha256"] == ROBOTS_SHA
    assert "warc_record_id" not in meta[0].payload["evidence"][0]


def test_http2_responses_get_an_http_version_status_line() -> None:
    buf = io.BytesIO()
    _writer(buf, gzip_=False).write_document(
        url="https://h2.example/", status=299, response_headers={}, body=b"",
        audit={"seq": 1, "hash": "a" * 64}, protocol="h2")
    text = buf.getvalue().decode()
    assert "GET / HTTP/2\r\nHost: h2.example\r\n" in text
    assert "\r\nHTTP/2 299\r\n" in text                          # no reason phrase for 299
