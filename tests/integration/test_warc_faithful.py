"""A faithful WARC, and every cited file archived, after a real crawl.

One crawl (a subprocess of ``polite-crawl run``, WARC on) of the whole demo web, as
``polite-crawl demo`` configures it, plus three sites of this test: one serving gzip-encoded
pages (one of them chunked), one serving its robots.txt gzip-encoded, one whose robots.txt is cut
at the per-origin size cap (``POLITE_PREFLIGHT_MAXSIZE``). Then:

* the independent tools accept the WARC: ``warcio check``, ``fastwarc check -p`` (block and
  payload digests) and ``cdxj-indexer`` (the URLs and digests expected);
* the gzip-encoded pages replay as the server's exact bytes, the corpus holds their text;
* every SHA-256 an audit record cites, and every evidence citation in the WARC's metadata, is
  in ``evidence/`` (hashing to its name, with its HTTP sidecar) and in the WARC (a record whose
  payload hashes to it, with the status the audit record gives).

Against the code before this change, 50 of the 80 evidence citations of such a crawl named
bodies kept nowhere (404 and 503 bodies), and the gzip pages were stored decoded.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from warcio.archiveiterator import ArchiveIterator

from crawler.demo.sites import DEMO_TOKEN, demo_sites
from crawler.demo.web import LocalWeb, Page, Site

from ..test_warc import cdxj_index, fastwarc_check, warcio_check
from .conftest import read_jsonl, run_cli

CAP = 1024
HTML = ("<!DOCTYPE html><html><head><title>Gzip page</title></head><body><h1>Gzip page</h1>"
        + "compressed words, " * 200
        + '<a href="/chunked.html">chunked</a> <a href="/notes.txt">notes</a></body></html>')
GZ = gzip.compress(HTML.encode(), mtime=0)
CHUNKED_HTML = ("<html><head><title>Chunked</title></head><body>"
                + "chunked and gzipped, " * 400 + "</body></html>")
CHUNKED_GZ = gzip.compress(CHUNKED_HTML.encode(), mtime=0)
NOTES = "plain text sent in chunks\n" * 80
GZ_ROBOTS = b"User-agent: *\nAllow: /\n# served gzip-encoded\n"
BIG_ROBOTS = b"User-agent: *\nAllow: /\n" + b"# padding to pass the size cap\n" * 200


def _sites() -> list[Site]:
    gz = (("Content-Encoding", "gzip"),)
    return [
        Site("w-gzip", "gzip-encoded pages", {
            "/robots.txt": Page("User-agent: *\nAllow: /\n", content_type="text/plain"),
            "/": Page(GZ, headers=gz),
            "/chunked.html": Page(CHUNKED_GZ, headers=gz, chunked=True, chunk=1000),
            "/notes.txt": Page(NOTES, content_type="text/plain; charset=utf-8", chunked=True,
                               chunk=500),
        }),
        Site("w-gzip-robots", "robots.txt served gzip-encoded", {
            "/robots.txt": Page(gzip.compress(GZ_ROBOTS, mtime=0), content_type="text/plain",
                                headers=gz),
            "/": Page("<html><body><p>behind a gzip robots.txt</p></body></html>"),
        }),
        Site("w-cut-robots", "robots.txt longer than the per-origin cap", {
            "/robots.txt": Page(BIG_ROBOTS, content_type="text/plain", chunk=256,
                                chunk_pause=0.05),
            "/": Page("<html><body>SECRET-w-cut-robots: never fetched</body></html>"),
        }),
    ]


@pytest.fixture(scope="module")
def crawl(tmp_path_factory: Any) -> dict[str, Any]:
    from crawler.cli.demo import demo_config

    tmp = tmp_path_factory.mktemp("faithful")
    out = tmp / "out"
    with LocalWeb([*demo_sites(), *_sites()]) as web:
        cfg = demo_config(web, out, DEMO_TOKEN)          # every site, as `polite-crawl demo`
        cfg["output"] = {"warc": True}
        cfg["settings"] = {**cfg["settings"], "POLITE_PREFLIGHT_MAXSIZE": CAP,
                           "LOG_LEVEL": "INFO"}
        path = tmp / "job.yaml"
        path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
        proc = run_cli("run", str(path), timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        origins = {name: web.origin(name) for name in web.sites}
    return {"out": out, "origins": origins, "warc": out / "corpus.warc.gz",
            "corpus": read_jsonl(out / "corpus.jsonl"),
            "audit": read_jsonl(out / "audit.jsonl")}


def _records(path: Path) -> list[dict[str, Any]]:
    """Every record: type, WARC and HTTP headers, the payload as stored (no decoding)."""
    out = []
    with open(path, "rb") as fh:
        for rec in ArchiveIterator(fh):
            out.append({"type": rec.rec_type, "warc": dict(rec.rec_headers.headers),
                        "http": rec.http_headers, "raw": rec.raw_stream.read()})
    return out


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _notes(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Metadata notes by the record id they describe (WARC-Concurrent-To)."""
    return {r["warc"]["WARC-Concurrent-To"]: json.loads(r["raw"]) for r in records
            if r["type"] == "metadata"}


def test_independent_tools_accept_the_warc(crawl: dict[str, Any]) -> None:
    records = _records(crawl["warc"])
    assert warcio_check(crawl["warc"]) == fastwarc_check(crawl["warc"]) == len(records)
    index = cdxj_index(crawl["warc"])
    notes = _notes(records)
    by_url = {}
    for r in records:
        if r["type"] == "response" and notes[r["warc"]["WARC-Record-ID"]]["role"] == "document":
            by_url[r["warc"]["WARC-Target-URI"]] = r
    assert set(by_url) == {d["url"] for d in crawl["corpus"]}
    indexed = {e["url"]: e for e in index if e.get("mime") != "application/json"}
    for doc in crawl["corpus"]:
        entry = indexed[doc["url"]]
        payload = by_url[doc["url"]]["raw"]
        assert entry["status"] == "200" and entry["digest"] == f"sha256:{_sha(payload)}"
        if "Content-Encoding" not in dict(by_url[doc["url"]]["http"].headers):
            assert _sha(payload) == doc["sha256"]       # stored as received = the corpus
    gz_home = crawl["origins"]["w-gzip"] + "/"
    assert indexed[gz_home]["digest"] == f"sha256:{_sha(GZ)}"   # the bytes the server sent
    assert indexed[gz_home]["mime"] == "text/html"


def test_gzip_pages_replay_as_the_servers_exact_bytes(crawl: dict[str, Any]) -> None:
    origin = crawl["origins"]["w-gzip"]
    corpus = {d["url"]: d for d in crawl["corpus"]}
    records = _records(crawl["warc"])
    notes = _notes(records)
    responses = {r["warc"]["WARC-Target-URI"]: r for r in records if r["type"] == "response"}
    for path, sent, text in [("/", GZ, HTML), ("/chunked.html", CHUNKED_GZ, CHUNKED_HTML)]:
        rec = responses[origin + path]
        headers = dict(rec["http"].headers)
        assert rec["raw"] == sent                               # byte for byte
        assert headers["Content-Encoding"] == "gzip"
        assert headers["Content-Length"] == str(len(sent))
        assert "Transfer-Encoding" not in headers
        assert rec["warc"]["WARC-Payload-Digest"] == f"sha256:{_sha(sent)}"
        note = notes[rec["warc"]["WARC-Record-ID"]]
        assert note["sha256"] == _sha(text.encode()) == corpus[origin + path]["sha256"]
        assert note["payload_sha256"] == _sha(sent) and note["content_encoding"] == "gzip"
        assert note["payload"] == "as received"
        assert "compressed words" in corpus[origin + "/"]["text"]
    # sent chunked: Twisted hands over neither Transfer-Encoding nor Content-Length; the
    # stored (de-chunked) message gets its length, and the metadata says it was added
    chunked = notes[responses[origin + "/chunked.html"]["warc"]["WARC-Record-ID"]]
    assert chunked["added_headers"] == [["Content-Length", str(len(CHUNKED_GZ))]]
    notes_rec = responses[origin + "/notes.txt"]
    assert notes_rec["raw"] == NOTES.encode()
    assert dict(notes_rec["http"].headers)["Content-Length"] == str(len(NOTES))
    assert corpus[origin + "/notes.txt"]["text"] == NOTES
    # a reader that undoes content-codings (warcio's default) gets the page itself
    with open(crawl["warc"], "rb") as fh:
        for rec in ArchiveIterator(fh):
            if rec.rec_type == "response" and \
                    rec.rec_headers.get_header("WARC-Target-URI") == origin + "/":
                assert rec.content_stream().read() == HTML.encode()
                break
        else:
            pytest.fail("no response record for the gzip page")


def test_evidence_records_hold_the_cited_bytes_with_the_real_exchange(crawl) -> None:
    records = _records(crawl["warc"])
    notes = _notes(records)
    evidence = {}
    for r in records:
        note = notes.get(r["warc"].get("WARC-Record-ID", ""))
        if note is not None and note["role"] == "evidence":
            evidence[note["source"]] = (r, note)
    o = crawl["origins"]
    # a 503 robots.txt: a response record with its real status, the body the audit cites
    rec, note = evidence[o["robots-5xx"] + "/robots.txt"]
    assert rec["type"] == "response" and rec["http"].get_statuscode() == "503"
    assert note["status"] == 503 and rec["raw"] == b"Service unavailable"
    # a robots.txt served gzip-encoded: the audit cites the decoded bytes -> a resource
    rec, note = evidence[o["w-gzip-robots"] + "/robots.txt"]
    assert rec["type"] == "resource" and rec["raw"] == GZ_ROBOTS
    assert rec["warc"]["Content-Type"] == "text/plain"
    assert rec["warc"]["WARC-Block-Digest"] == f"sha256:{_sha(GZ_ROBOTS)}"
    assert note["status"] == 200 and note["decoded"] is True
    assert ["Content-Encoding", "gzip"] in note["headers"]
    # cut at the cap: the bytes read and hashed, marked truncated; the site was refused
    rec, note = evidence[o["w-cut-robots"] + "/robots.txt"]
    assert rec["type"] == "resource" and rec["warc"]["WARC-Truncated"] == "length"
    assert CAP <= len(rec["raw"]) < len(BIG_ROBOTS) and BIG_ROBOTS.startswith(rec["raw"])
    assert note["complete"] is False and "POLITE_PREFLIGHT_MAXSIZE" in note["note"]
    assert not [d for d in crawl["corpus"] if d["url"].startswith(o["w-cut-robots"])]
    with gzip.open(crawl["warc"]) as fh:
        assert b"SECRET-" not in fh.read()


def _cited(value: Any, out: set[tuple[str, str, Any, Any]], key: str = "") -> None:
    """Every (key, sha256, source, status) an audit record cites, at any depth: keys ending
    in ``sha256`` except the policy's."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k.endswith("sha256") and k != "policy_sha256" and isinstance(v, str):
                out.add((k, v, value.get("source") or value.get("url"), value.get("status")))
            else:
                _cited(v, out, k)
    elif isinstance(value, list):
        for v in value:
            _cited(v, out, key)


def test_every_cited_file_is_archived(crawl: dict[str, Any]) -> None:
    out = crawl["out"]
    ev = out / "evidence"
    from crawler.crawl.sitecache import load_capture

    # the top of evidence/ holds only files named by their own SHA-256
    top = [p for p in ev.iterdir() if p.is_file()]
    assert top and all(_sha(p.read_bytes()) == p.name for p in top)
    assert sorted(p.name for p in ev.iterdir() if p.is_dir()) == [".partial", "http"]
    assert not list((ev / ".partial").iterdir())
    archived = {p.name for p in top}

    cited: set[tuple[str, str, Any, Any]] = set()
    for rec in crawl["audit"]:
        _cited({k: v for k, v in rec.items() if k not in ("hash", "prev_hash")}, cited)
    assert {k for k, *_ in cited} == {"source_sha256"}
    citations = {(sha, src, status) for _, sha, src, status in cited}

    records = _records(crawl["warc"])
    notes = _notes(records)
    in_warc: dict[tuple[str, str, Any], tuple[dict[str, Any], dict[str, Any]]] = {}
    for r in records:
        note = notes.get(r["warc"].get("WARC-Record-ID", ""))
        if note is not None and note["role"] == "evidence":
            assert _sha(r["raw"]) == note["sha256"]
            in_warc[(note["sha256"], note["source"], note["status"])] = (r, note)
    # WARC metadata citations (the evidence of each document) resolve to those records
    by_id = {r["warc"]["WARC-Record-ID"]: r for r in records if "WARC-Record-ID" in r["warc"]}
    meta_refs = 0
    missing = []
    for note in notes.values():
        for ref in note.get("evidence") or ():
            meta_refs += 1
            citations.add((ref["source_sha256"], ref["source"], ref.get("status")))
            target = by_id.get(ref.get("warc_record_id", ""))
            if target is None or _sha(target["raw"]) != ref["source_sha256"]:
                missing.append(f"WARC metadata cites {ref['source_sha256']} ({ref['source']}): "
                               "no record of it linked")
    for sha, source, status in sorted(citations, key=str):
        if sha not in archived:
            missing.append(f"{sha} ({source}, {status}) not in evidence/")
            continue
        rec_note = in_warc.get((sha, source, status))
        if rec_note is None:
            missing.append(f"{sha} ({source}, {status}) not in the WARC")
            continue
        rec, note = rec_note
        assert _sha(rec["raw"]) == sha
        assert note["status"] == status, (source, note, status)
        if rec["type"] == "response":
            assert int(rec["http"].get_statuscode()) == status
        capture = load_capture(ev, sha, source, status)
        assert capture is not None and capture["status"] == status, (source, capture)
    assert not missing, "\n".join(missing)
    statuses = {status for _, _, status in citations}
    assert {200, 404, 503} <= statuses        # error bodies are cited, and archived
    distinct = {sha for sha, _, _ in citations}
    print(f"\n{len(citations)} distinct (sha256, source, status) citations ({meta_refs} in WARC "
          f"metadata), {len(distinct)} distinct files: all in evidence/ and the WARC")


def test_survey_reads_robots_txt_from_the_crawl_warc(crawl: dict[str, Any]) -> None:
    from crawler.survey.archives import survey_from_warc

    o = crawl["origins"]
    got = {r["origin"]: r["robots"] for r in survey_from_warc([crawl["warc"]])}
    assert got[o["open"]]["status"] == 200 and got[o["open"]]["outcome"] == "parsed"
    assert got[o["robots-5xx"]]["status"] == 503
    assert got[o["robots-5xx"]]["outcome"] == "unreachable"
    assert got[o["w-gzip-robots"]]["status"] == 200      # a resource record, its status noted
    assert got[o["w-gzip-robots"]]["outcome"] == "parsed"
    assert got[o["w-cut-robots"]]["outcome"] == "unknown"  # truncated: not read


def test_revalidation_purge_keeps_every_other_record_byte_for_byte(crawl, tmp_path) -> None:
    """The WARC rewrite of ``revalidate --purge`` drops the documents' records and copies every
    other gzip member unchanged (payloads as received, digests)."""
    from crawler.corpus.revalidate import _rewrite_warc

    copy = tmp_path / "corpus.warc.gz"
    copy.write_bytes(crawl["warc"].read_bytes())
    gone = crawl["origins"]["w-gzip"] + "/"
    _rewrite_warc(copy, {gone}, fsync=False)

    def members(path: Path) -> list[bytes]:
        data, out = path.read_bytes(), []
        with open(path, "rb") as fh:
            it = ArchiveIterator(fh)
            for rec in it:
                it.read_to_end(rec)
                out.append(data[it.get_record_offset():it.get_record_offset()
                                + it.get_record_length()])
        return out

    before, after = members(crawl["warc"]), members(copy)
    dropped = [m for m in before if m not in after]
    assert len(dropped) == 3 and len(after) == len(before) - 3    # request, response, metadata
    for m in dropped:
        rec = next(iter(ArchiveIterator(io.BytesIO(m))))
        assert rec.rec_headers.get_header("WARC-Target-URI") == gone
    assert warcio_check(copy) == len(after)
