"""Documents beyond HTML (``collect:``) end to end, against a real local web on 127.0.0.1.

The files are generated here (tests/documents_fixtures.py): a plain PDF, a PDF whose XMP says
``tdm:reservation`` 1, JPEGs whose XMP says ``plus:DataMining`` DMI-PROHIBITED-AIMLTRAINING or
DMI-ALLOWED, a JPEG cut inside its XMP segment, a PNG served as octet-stream. What was and
was not requested is read from the server's own log; what was stored from the output dir.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytest.importorskip("PIL")
pytest.importorskip("pypdf")
pytest.importorskip("c2pa")

from crawler.audit.log import verify_file  # noqa: E402
from crawler.demo.sites import html  # noqa: E402
from crawler.demo.web import LocalWeb, Page, Site  # noqa: E402
from tests.documents_fixtures import (  # noqa: E402
    cut_in_app1,
    dmi,
    jpeg,
    pdf,
    png,
    tdm_xmp,
)
from tests.optout.test_c2pa import make_chain, sign  # noqa: E402

from .conftest import read_jsonl, run_cli, write_config  # noqa: E402

PDF_TYPE = "application/pdf"
FILES = {
    "/plain.pdf": (pdf("Hello PDFTEXT plain"), PDF_TYPE),
    "/reserved.pdf": (pdf("SECRET-RESERVED-PDF", tdm_xmp("1")), PDF_TYPE),
    "/prohibited.jpg": (jpeg(dmi("DMI-PROHIBITED-AIMLTRAINING"),
                             comment="SECRET-PROHIBITED-JPEG"), "image/jpeg"),
    "/allowed.jpg": (jpeg(dmi("DMI-ALLOWED"), color=(1, 2, 3)), "image/jpeg"),
    "/cut.jpg": (cut_in_app1(jpeg(dmi("DMI-ALLOWED"), comment="SECRET-CUT-JPEG",
                                  color=(9, 9, 9))), "image/jpeg"),
    "/photo": (png(), "application/octet-stream"),
    # Content Credentials: a signed c2pa.training-mining assertion, AI training notAllowed
    "/c2pa.jpg": (sign(make_chain(), {"c2pa.ai_training": {"use": "notAllowed"}}),
                  "image/jpeg"),
    # a page tree pypdf cannot read (the catalog, where the metadata would be, is fine)
    "/broken.pdf": (pdf("UNEXTRACTABLE").replace(
        b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
        b"(not a page tree at all, sorry)          "), PDF_TYPE),
}
SECRETS = (b"SECRET-RESERVED-PDF", b"SECRET-PROHIBITED-JPEG", b"SECRET-CUT-JPEG",
           b"SECRET-GZIP-CUT-JPEG")
#: a JPEG (allowed inside) sent as a gzip stream cut short: the body is not all there
GZIP_CUT = gzip.compress(jpeg(dmi("DMI-ALLOWED"), comment="SECRET-GZIP-CUT-JPEG" * 50,
                              color=(4, 5, 6)))[:-40]


def docs_site() -> Site:
    index = html("docs", '<a href="/plain.pdf">plain</a> <a href="/reserved.pdf">r</a> '
                 '<a href="/broken.pdf">broken</a> '
                 '<a href="/photo">photo</a> <img src="/prohibited.jpg" alt="p"> '
                 '<a href="/photo-noimageai">photo 2</a> '
                 '<img src="/gz-cut.jpg" alt="g"> <img src="/c2pa.jpg" alt="c"> '
                 '<picture><img srcset="/allowed.jpg 1x, /cut.jpg 2x" alt="a"></picture>')
    pages = {"/robots.txt": Page("User-agent: *\nAllow: /\n", content_type="text/plain"),
             "/": Page(index)}
    pages.update({path: Page(body, content_type=ct) for path, (body, ct) in FILES.items()})
    # an image labelled as a binary, its header saying noimageai: binds all the same
    pages["/photo-noimageai"] = Page(png(color=(7, 8, 9)), content_type="application/octet-stream",
                                     headers=(("X-Robots-Tag", "noimageai"),))
    pages["/gz-cut.jpg"] = Page(GZIP_CUT, content_type="image/jpeg",
                                headers=(("Content-Encoding", "gzip"),))
    return Site("docs", "documents beyond HTML", pages)


def crawl(tmp: Path, **cfg) -> dict:
    web = LocalWeb([docs_site()]).start()
    try:
        seeds = [web.origin("docs") + p for p in cfg.pop("seed_paths", ["/"])]
        config = write_config(tmp / "job.yaml", seeds=seeds, **cfg)
        proc = run_cli("run", str(config))
    finally:
        web.stop()
    out = tmp / "out"
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert verify_file(out / "audit.jsonl").ok
    return {"web": web, "out": out, "audit": read_jsonl(out / "audit.jsonl"),
            "corpus": {urlsplit(c["url"]).path.lstrip("/") or "/": c
                       for c in read_jsonl(out / "corpus.jsonl")}}


def decisions(run: dict, name: str) -> list[dict]:
    return [r for r in run["audit"] if r["url"].endswith("/" + name)
            and r["decision"] in ("allow", "deny", "result")]


@pytest.fixture(scope="module")
def everything(tmp_path_factory):
    return crawl(tmp_path_factory.mktemp("docs-all"), collect=["html", "text", "pdf", "image"],
                 output={"warc": True})


def test_plain_pdf_is_collected_with_its_text_and_its_bytes_by_hash(everything):
    item = everything["corpus"]["plain.pdf"]
    body = FILES["/plain.pdf"][0]
    sha = hashlib.sha256(body).hexdigest()
    assert item["kind"] == "pdf" and item["content_type"] == PDF_TYPE
    assert "Hello PDFTEXT plain" in item["text"]
    assert item["sha256"] == sha and item["bytes"] == len(body)
    assert item["file"] == f"files/sha256/{sha[:2]}/{sha}"
    assert (everything["out"] / item["file"]).read_bytes() == body
    (allow,) = [r for r in decisions(everything, "plain.pdf") if r["decision"] == "allow"]
    assert allow["seq"] == item["audit_seq"]
    assert allow["embedded"] == {"container": "pdf", "determined": True}


def test_pdf_pypdf_cannot_read_is_still_collected_as_bytes(everything):
    item = everything["corpus"]["broken.pdf"]
    assert item["text"] == "" and "pypdf cannot read it" in item["note"]
    assert (everything["out"] / item["file"]).read_bytes() == FILES["/broken.pdf"][0]


def test_pdf_reserved_in_its_xmp_is_refused_and_stored_nowhere(everything):
    (deny,) = decisions(everything, "reserved.pdf")
    assert deny["decision"] == "deny" and deny["stage"] == "document"
    (reason,) = deny["reasons"]
    assert (reason["signal"], reason["channel"], reason["outcome"]) == ("tdmrep", "xmp", "deny")
    assert "PDF catalog /Metadata stream" in reason["rule"]
    (value,) = deny["embedded"]["values"]
    assert (value["property"], value["raw"], value["namespace"]) == (
        "tdm:reservation", "1", "http://www.w3.org/ns/tdmrep/")
    assert "reserved.pdf" not in everything["corpus"]


def test_jpeg_prohibiting_ai_training_is_refused_with_evidence(everything):
    (deny,) = decisions(everything, "prohibited.jpg")
    assert deny["decision"] == "deny" and deny["stage"] == "document"
    (reason,) = deny["reasons"]
    assert (reason["signal"], reason["channel"]) == ("iptc", "xmp")
    assert "DMI-PROHIBITED-AIMLTRAINING" in reason["rule"]
    assert reason["detail"] == "binds train-ai: dmi-prohibited-aimltraining=no"
    (value,) = deny["embedded"]["values"]
    assert value["block"].startswith("JPEG APP1 at byte ")
    assert value["property"] == "plus:DataMining"
    assert value["namespace"] == "http://ns.useplus.org/ldf/xmp/1.0/"
    assert value["path"] == "rdf:Description/plus:DataMining"
    assert value["raw"].endswith("/DMI-PROHIBITED-AIMLTRAINING")


def test_jpeg_whose_content_credentials_say_no_ai_training_is_refused(everything):
    (deny,) = decisions(everything, "c2pa.jpg")
    assert deny["decision"] == "deny" and deny["stage"] == "document"
    (reason,) = deny["reasons"]
    assert (reason["signal"], reason["outcome"]) == ("c2pa", "deny")
    assert "c2pa.ai_training" in reason["detail"]
    assert any(v["signal"] == "c2pa" for v in deny["embedded"]["values"])


def test_jpeg_allowing_data_mining_is_collected_with_type_and_size(everything):
    item = everything["corpus"]["allowed.jpg"]
    assert (item["kind"], item["image_type"], item["width"], item["height"]) == (
        "image", "image/jpeg", 16, 16)
    assert (everything["out"] / item["file"]).read_bytes() == FILES["/allowed.jpg"][0]
    (allow,) = [r for r in decisions(everything, "allowed.jpg") if r["decision"] == "allow"]
    assert any(c["signal"] == "iptc" and c["outcome"] == "allow" for c in allow["checks"])


def test_image_type_comes_from_its_bytes_not_its_label(everything):
    item = everything["corpus"]["photo"]
    assert item["content_type"] == "application/octet-stream"
    assert (item["image_type"], item["width"], item["height"]) == ("image/png", 8, 9)


def test_noimageai_binds_an_image_whatever_its_label(everything):
    assert "photo-noimageai" not in everything["corpus"]
    (rec,) = [r for r in decisions(everything, "photo-noimageai") if r["decision"] == "deny"]
    assert [r["signal"] for r in rec["reasons"]] == ["noai"]
    assert "noimageai" in rec["reasons"][0]["detail"]


def test_file_cut_where_a_packet_may_be_is_undetermined_and_refused(everything):
    (deny,) = decisions(everything, "cut.jpg")
    assert deny["decision"] == "deny"
    (reason,) = deny["reasons"]
    assert (reason["signal"], reason["channel"]) == ("network", "embedded")
    assert "undetermined" in reason["rule"]
    assert any("cut" in p for p in reason["problems"])
    assert deny["embedded"]["determined"] is False


def test_body_cut_in_transport_is_refused(everything):
    (deny,) = decisions(everything, "gz-cut.jpg")
    assert deny["decision"] == "deny"
    assert [r["signal"] for r in deny["reasons"]] == ["network"]
    assert "gz-cut.jpg" not in everything["corpus"]


def test_no_byte_of_a_refused_file_anywhere_in_the_output(everything):
    files = [p for p in everything["out"].rglob("*") if p.is_file()]
    assert any("files/sha256" in p.as_posix() for p in files)
    assert any(p.name == "corpus.warc.gz" for p in files)
    for p in files:
        data = p.read_bytes()
        if p.suffix == ".gz":  # the WARC: its records decompressed
            data = gzip.decompress(data)
        if p.name == "corpus.warc.gz":
            assert b"Hello PDFTEXT plain" in data  # the collected PDF is in it
        for secret in SECRETS:
            assert secret not in data, (p, secret)
    # the blob store holds exactly the collected files, none half-written
    blobs = {p.name for p in (everything["out"] / "files" / "sha256").rglob("*")
             if p.is_file() and ".partial" not in p.parts}
    assert blobs == {c["sha256"] for c in everything["corpus"].values() if "file" in c}


def test_iptc_off_collects_the_prohibited_jpeg_pdf_not_requested_html_not_stored(tmp_path):
    run = crawl(tmp_path, collect=["image"], signals={"iptc": False})
    assert "prohibited.jpg" in run["corpus"]
    # html not collected: the page is read for its links, not stored
    assert "/" not in run["corpus"]
    (index,) = [r for r in run["audit"] if r["url"].endswith("/") and r["decision"] == "allow"]
    assert index["note"] == "read for its links only: not collected"
    assert not any(c["signal"] == "iptc" for r in decisions(run, "prohibited.jpg")
                   for c in r.get("checks", []))
    # pdf not collected: its links are not followed, so the PDFs are never requested
    paths = run["web"].paths("docs")
    assert "/plain.pdf" not in paths and "/reserved.pdf" not in paths
    # the cut file stays refused: TDMRep could be in the packet it cannot read
    assert decisions(run, "cut.jpg")[0]["decision"] == "deny"


def test_default_collect_does_not_request_pdfs_and_stores_no_seeded_image(tmp_path):
    run = crawl(tmp_path, seed_paths=["/", "/allowed.jpg"])
    paths = run["web"].paths("docs")
    assert "/plain.pdf" not in paths and "/prohibited.jpg" not in paths
    (rec,) = decisions(run, "allowed.jpg")
    assert (rec["decision"], rec["result"], rec["kind"]) == ("result", "not-collected",
                                                             "image")
    assert set(run["corpus"]) == {"/"}
    assert not (run["out"] / "files").exists()


def test_check_decides_a_file_whatever_collect_says(tmp_path):
    """`polite-crawl check` decides, never collects: a JPEG is judged on its embedded
    metadata even with the default collect: [html, text]."""
    import json

    with LocalWeb([docs_site()]) as web:
        config = write_config(tmp_path / "job.yaml", seeds=[])
        base = web.origin("docs")
        proc = run_cli("check", base + "/prohibited.jpg", base + "/allowed.jpg",
                       "--config", str(config))
    assert proc.returncode == 0, proc.stderr[-3000:]
    decided = {r["url"].rsplit("/", 1)[1]: r for r in map(json.loads, proc.stdout.splitlines())
               if r["decision"] in ("allow", "deny")}
    assert decided["prohibited.jpg"]["decision"] == "deny"
    assert decided["prohibited.jpg"]["reasons"][0]["signal"] == "iptc"
    assert decided["allowed.jpg"]["decision"] == "allow"


def test_pdf_text_past_its_time_is_kept_without_text(tmp_path):
    # PdfTextPipeline: the text is extracted on a thread of its own, bounded in time; past it
    # the PDF is still collected (bytes by hash) with empty text and a note
    run = crawl(tmp_path, collect=["pdf"], seed_paths=["/plain.pdf"],
                settings={"POLITE_PDF_TEXT_TIMEOUT": 0.0005})
    item = run["corpus"]["plain.pdf"]
    assert item["text"] == "" and "over 0.0005 s" in item["note"]
    assert (run["out"] / item["file"]).read_bytes() == FILES["/plain.pdf"][0]
