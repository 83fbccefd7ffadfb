"""Training-ready text and ``polite-crawl export``, on a real crawl of a local web: main content
vs visible text; the export in Parquet and gzipped JSON lines matches the corpus and the audit
log, loads with pyarrow and 🤗 datasets, and leaves out every line without its proof."""

from __future__ import annotations

import gzip
import json
import shutil
import struct
import zlib

import pytest

from crawler.audit.log import AuditWriter, iter_records
from crawler.cli.main import main
from crawler.corpus.export import COLUMNS
from crawler.demo.web import LocalWeb, Page, Site

from .conftest import read_jsonl, run_cli, write_config

ARTICLE = "".join(
    f"<p>The river keeps its own calendar; in part {i} the ferryman counts the floods by the "
    "marks cut into his door, and the village learns to read them before the rain.</p>"
    for i in range(6))
BOILERPLATE = ("We use cookies to improve your experience", "Subscribe to our newsletter",
               "All rights reserved", "Shop the spring sale")
NAV = (f'<header><nav><a href="/">Home</a> <a href="/story.html">Story</a> '
       f'<a href="/notes.txt">Notes</a> <a href="/big.html">{BOILERPLATE[3]}</a> '
       '<a href="/empty.html">Gallery</a></nav></header>')


def page(title: str, body: str) -> Page:
    return Page(f"<!DOCTYPE html><html><head><title>{title}</title></head><body>"
                f'<div id="cookie-banner" class="cookie-consent"><p>{BOILERPLATE[0]}. '
                f"Accept all.</p></div>{NAV}{body}"
                f'<aside><a href="/subscribe">{BOILERPLATE[1]}</a></aside>'
                f"<footer><p>Copyright 2026 Example Media. {BOILERPLATE[2]}.</p></footer>"
                "</body></html>")


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b""))


def site() -> Site:
    return Site("news", "a page with boilerplate, plain text, a huge page, an empty one", {
        "/robots.txt": Page("User-agent: *\nDisallow: /private/\n", content_type="text/plain"),
        "/": page("Home", '<main><article><h1>The ferryman\'s calendar</h1>'
                          f'{ARTICLE}</article></main><a href="/private/x.html">x</a>'),
        "/story.html": page("Story", f"<main><article><h1>A second story</h1>{ARTICLE}"
                                     "</article></main>"),
        "/notes.txt": Page("Plain notes, kept as they are.\n", content_type="text/plain"),
        # more elements than the crawl allows trafilatura (POLITE_TEXT_MAX_ELEMENTS below)
        "/big.html": page("Big", "<main>" + "<p>row of the big table</p>" * 3000 + "</main>"),
        "/empty.html": Page('<html><head><title>Gallery</title></head><body>'
                            '<img src="/a.png"></body></html>'),
        "/a.png": Page(tiny_png(), content_type="image/png"),
        "/private/x.html": page("Private", "<p>never collected</p>"),
    })


def crawl(tmp_path, **cfg):
    with LocalWeb([site()]) as web:
        path = write_config(tmp_path / "job.yaml", seeds=[web.origin("news") + "/"],
                            settings={"POLITE_TEXT_MAX_ELEMENTS": 2000}, **cfg)
        proc = run_cli("run", str(path))
        assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / "out"
    docs = {d["url"].removeprefix(web.origin("news")): d
            for d in read_jsonl(out / "corpus.jsonl")}
    return out, docs, proc.stderr


@pytest.fixture(scope="module")
def crawled(tmp_path_factory):
    return crawl(tmp_path_factory.mktemp("main"), collect=["html", "text", "image"])


def test_main_text_leaves_the_boilerplate_out(crawled):
    _, docs, stderr = crawled
    assert set(docs) == {"/", "/story.html", "/notes.txt", "/big.html", "/empty.html", "/a.png"}
    for path in ("/", "/story.html"):
        doc = docs[path]
        assert doc["text_mode"] == "main"
        assert "in part 5 the ferryman counts the floods" in doc["text"]
        for text in BOILERPLATE:
            assert text not in doc["text"]
            assert text in doc["html"]  # html stays the page as received
    assert docs["/notes.txt"]["text"] == "Plain notes, kept as they are.\n"
    assert "text_mode" not in docs["/notes.txt"]
    # no page dropped for its text: the visible text, marked
    for path in ("/big.html", "/empty.html"):
        assert docs[path]["text_mode"] == "visible-fallback"
    assert BOILERPLATE[0] in docs["/big.html"]["text"]
    assert "'polite/text/visible-fallback/too-many-elements': 1" in stderr
    assert "'polite/text/visible-fallback/no-main-content': 1" in stderr
    assert "'polite/text/main': 2" in stderr


def test_visible_mode_keeps_every_visible_text(tmp_path, crawled):
    _, docs, _ = crawl(tmp_path, text="visible")
    for path in ("/", "/story.html", "/big.html"):
        assert docs[path]["text_mode"] == "visible"
        for text in BOILERPLATE:
            assert text in docs[path]["text"]
    assert "in part 5 the ferryman counts the floods" in docs["/"]["text"]
    assert docs["/"]["sha256"] == crawled[1]["/"]["sha256"]  # the same page, another text


def export(out, dest, *args):
    return main(["export", str(out), "--out", str(dest), *args])


def expected_rows(out):
    """The rows the export must hold: every corpus line, with its allow record's provenance."""
    allows = {r["seq"]: r for r in iter_records(out / "audit.jsonl") if r["decision"] == "allow"}
    run = json.loads((out / "run.json").read_text())
    rows = []
    for doc in read_jsonl(out / "corpus.jsonl"):
        rec = allows[doc["audit_seq"]]
        assert rec["url"] == doc["url"] and rec["hash"] == doc["audit_hash"]
        rows.append({"url": doc["url"], "sha256": doc["sha256"],
                     "fetched_at": doc["fetched_at"], "content_type": doc["content_type"],
                     "text": doc.get("text"), "title": doc.get("title"),
                     "text_mode": doc.get("text_mode"), "file": doc.get("file"),
                     "audit_log": "audit.jsonl",
                     "audit_seq": rec["seq"], "audit_hash": rec["hash"],
                     "policy_sha256": rec["policy_sha256"], "purpose": run["purpose"]})
    assert rows
    return rows


def test_parquet_and_jsonl_gz_hold_the_corpus_with_its_proof(crawled, tmp_path, capsys):
    import pyarrow.parquet as pq

    out = crawled[0]
    assert export(out, tmp_path / "c.parquet") == 0
    assert export(out, tmp_path / "c.jsonl.gz") == 0
    assert export(out, tmp_path / "c.data", "--format", "parquet") == 0
    err = capsys.readouterr().err
    assert f"exported 6 documents to {tmp_path / 'c.parquet'} (parquet); none skipped" in err
    want = expected_rows(out)
    table = pq.read_table(tmp_path / "c.parquet")
    image = next(r for r in want if r["content_type"] == "image/png")
    assert image["text"] is None and (out / image["file"]).read_bytes() == tiny_png()
    assert tuple(table.column_names) == COLUMNS
    assert str(table.schema.field("audit_seq").type) == "int64"
    assert table.to_pylist() == want
    assert pq.read_table(tmp_path / "c.data").to_pylist() == want
    with gzip.open(tmp_path / "c.jsonl.gz", "rt", encoding="utf-8") as fh:
        lines = [json.loads(line) for line in fh]
    assert lines == want and [tuple(r) for r in lines] == [COLUMNS] * len(want)
    assert not list(tmp_path.glob(".*.tmp"))
    # written atomically over an older export
    assert export(out, tmp_path / "c.parquet") == 0
    assert pq.read_table(tmp_path / "c.parquet").to_pylist() == want


def test_datasets_loads_the_parquet(crawled, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf" / "datasets"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    out = crawled[0]
    assert export(out, tmp_path / "c.parquet") == 0
    import datasets  # (the environment above is read when it is first imported)

    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "c.parquet"),
                               split="train", cache_dir=str(tmp_path / "hf" / "datasets"))
    assert ds.column_names == list(COLUMNS)
    assert ds.num_rows == 6
    assert ds.to_list() == expected_rows(out)
    assert ds.features["audit_seq"].dtype == "int64"


def test_a_line_without_its_proof_is_not_exported(crawled, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(crawled[0], out)
    docs = read_jsonl(out / "corpus.jsonl")
    records = list(iter_records(out / "audit.jsonl"))
    deny_or_send = next(r for r in records if r["decision"] != "allow")
    erased = docs[1]
    forged = [
        {**docs[0], "url": docs[0]["url"] + "?copy", "text": "forged copy"},   # other URL
        {**docs[0], "audit_hash": "0" * 64, "text": "forged hash"},           # wrong hash
        {**docs[0], "audit_seq": deny_or_send["seq"], "text": "not an allow record"},
        {**docs[0], "audit_seq": 10**6, "text": "no such record"},
        {**docs[0], "audit_seq": None, "text": "no audit_seq"},
    ]
    with open(out / "corpus.jsonl", "a", encoding="utf-8") as fh:
        fh.writelines(json.dumps(d) + "\n" for d in forged)
        fh.write('{"url": "torn')
    # revalidate --purge erased a document, and (say) a crash kept its line in the corpus
    writer = AuditWriter(out / "audit.jsonl", job="itest")
    writer.write(url=erased["url"], decision="erase",
                 reasons=[{"signal": "robots", "channel": "robots.txt", "rule": "Disallow: /"}],
                 policy_sha256=records[-1]["policy_sha256"],
                 extra={"erases": {"audit_seq": erased["audit_seq"],
                                   "sha256": erased["sha256"]}, "stage": "revalidate"})
    writer.close()
    assert run_cli("audit", "verify", str(out / "audit.jsonl")).returncode == 0

    assert export(out, tmp_path / "c.jsonl.gz") == 0
    with gzip.open(tmp_path / "c.jsonl.gz", "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    assert [r["audit_seq"] for r in rows] == [d["audit_seq"] for d in docs if d is not erased]
    assert not any((r["text"] or "").startswith(("forged", "no ", "not ")) for r in rows)
    err = capsys.readouterr().err
    for part in ("3 no allow record", "1 audit_hash differs from the allow record",
                 "1 the allow record is for another URL", "1 erased",
                 "1 unreadable corpus line", "exported 5 documents", "7 skipped"):
        assert part in err


def test_a_policy_whose_purpose_is_unknown_is_not_exported(crawled, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(crawled[0], out)
    policy = next(r for r in iter_records(out / "audit.jsonl"))["policy_sha256"]
    assert (out / "evidence" / policy).is_file()  # the run kept its policy document
    (out / "run.json").unlink()
    assert export(out, tmp_path / "a.jsonl.gz") == 0  # the policy document alone suffices
    assert "exported 6 documents" in capsys.readouterr().err
    (out / "evidence" / policy).write_bytes(b'{"purpose": "search"}')  # not what was hashed
    assert export(out, tmp_path / "b.jsonl.gz") == 0
    err = capsys.readouterr().err
    assert "exported 0 documents" in err and "6 skipped: 6 purpose of its policy unknown" in err


def test_a_log_that_does_not_verify_exports_nothing(crawled, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(crawled[0], out)
    log = out / "audit.jsonl"
    log.write_text(log.read_text().replace('"decision":"deny"', '"decision":"allow"', 1)
                   .replace('"decision":"send"', '"decision":"allow"', 1))
    assert export(out, tmp_path / "c.parquet") == 1
    assert "audit.jsonl does not verify, nothing exported" in capsys.readouterr().err
    assert not (tmp_path / "c.parquet").exists() and not list(tmp_path.glob(".*.tmp"))


def test_the_base_package_exports_jsonl_and_parquet_needs_its_extra(crawled, tmp_path,
                                                                   capsys):
    from .test_lean import lean_cli, missing  # the extras' modules hidden, as if not installed

    proc = lean_cli("export", str(crawled[0]), "--out", str(tmp_path / "c.parquet"))
    assert (proc.returncode, proc.stderr) == (2, missing(
        "polite-crawl export --format parquet", "parquet", "pyarrow"))
    assert not list(tmp_path.iterdir())
    proc = lean_cli("export", str(crawled[0]), "--out", str(tmp_path / "c.jsonl.gz"))
    assert proc.returncode == 0, proc.stderr
    with gzip.open(tmp_path / "c.jsonl.gz", "rt", encoding="utf-8") as fh:
        assert [json.loads(line) for line in fh] == expected_rows(crawled[0])
    assert export(tmp_path / "nowhere", tmp_path / "d.jsonl.gz") == 2
    assert export(crawled[0], tmp_path / "d.csv") == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"polite-crawl: {tmp_path / 'nowhere'}: not a directory",
                   "polite-crawl: --format: give one of parquet, jsonl.gz (or name --out "
                   "*.parquet or *.jsonl.gz)"]


def test_parquet_is_written_in_row_groups(crawled, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from crawler.corpus import export as ex
    monkeypatch.setattr(ex, "BATCH_ROWS", 2)
    assert export(crawled[0], tmp_path / "c.parquet") == 0
    parquet = pq.ParquetFile(tmp_path / "c.parquet")
    assert parquet.metadata.num_row_groups == 3
    assert parquet.read().to_pylist() == expected_rows(crawled[0])


def test_found_reserved_or_being_purged_is_not_exported(crawled, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(crawled[0], out)
    docs = read_jsonl(out / "corpus.jsonl")
    entry = {"url": docs[0]["url"], "reasons": [{"signal": "robots"}],
             "documents": [{"audit_seq": docs[0]["audit_seq"], "sha256": docs[0]["sha256"]}]}
    older = out / "revalidate" / "20260101T000000Z"
    older.mkdir(parents=True)
    (older / "report.jsonl").write_text(json.dumps(
        {"status": "reserved", **entry, "url": docs[1]["url"], "documents": [
            {"audit_seq": docs[1]["audit_seq"], "sha256": docs[1]["sha256"]}]}) + "\n")
    latest = out / "revalidate" / "20261201T000000Z"
    latest.mkdir()
    (latest / "report.jsonl").write_text(json.dumps({"status": "reserved", **entry}) + "\n"
                                         + json.dumps({"status": "undetermined", **entry,
                                                       "url": docs[2]["url"]}) + "\n")
    (out / "purge.pending.json").write_text(json.dumps({"policy_sha256": "p", "entries": [
        {**entry, "url": docs[3]["url"],
         "documents": [{"audit_seq": docs[3]["audit_seq"], "sha256": docs[3]["sha256"]}]}]}))
    assert export(out, tmp_path / "c.jsonl.gz") == 0
    with gzip.open(tmp_path / "c.jsonl.gz", "rt", encoding="utf-8") as fh:
        seqs = [json.loads(line)["audit_seq"] for line in fh]
    # the latest report counts (docs[1]: reserved once, allowed again since); undetermined
    # documents are kept, as revalidation keeps them
    assert seqs == [docs[i]["audit_seq"] for i in (1, 2, 4, 5)]
    err = capsys.readouterr().err
    for part in ("exported 4 documents", "2 skipped", "1 erased",
                 "1 found reserved by the latest revalidation"):
        assert part in err


def test_a_cluster_job_is_exported_worker_by_worker(crawled, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(crawled[0], out)
    for old, new in (("corpus.jsonl", "corpus-w1.jsonl"), ("audit.jsonl", "audit-w1.jsonl"),
                     ("audit.jsonl.head", "audit-w1.jsonl.head"), ("run.json", "run-w1.json")):
        (out / old).rename(out / new)
    assert export(out, tmp_path / "c.jsonl.gz") == 0
    with gzip.open(tmp_path / "c.jsonl.gz", "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    assert [r["audit_log"] for r in rows] == ["audit-w1.jsonl"] * 6
    assert [r["audit_seq"] for r in rows] == [d["audit_seq"] for d in crawled[1].values()]
