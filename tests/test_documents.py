"""crawler.corpus.documents (kinds, image sniffing, PDF text, the blob store), ``collect:`` in the
config, and the links a page yields for each ``collect``."""

from __future__ import annotations

import hashlib
import os
import struct
import sys

import pytest
from scrapy.http import HtmlResponse

from crawler.config.job import ConfigError, parse_config
from crawler.corpus.documents import BlobStore, document_kind, pdf_text, sniff_image
from crawler.crawl.links import link_urls
from tests.documents_fixtures import pdf

UA = "DocBot/1.0 (+https://example.org/bot)"


# -- kinds and images ---------------------------------------------------------------------

@pytest.mark.parametrize("body, mime, is_html, kind", [
    (b"%PDF-1.7\n...", "application/octet-stream", False, "pdf"),
    (b"junk" * 10 + b"%PDF-1.4", "", False, "pdf"),       # the header within 1024 bytes
    (b"\xff\xd8\xff\xe0....", "text/plain", False, "image"),  # bytes beat the label
    (b"<html><head></head></html>", "text/html", True, "html"),
    (b"<html><head><title>The %PDF-1.7 header</title>", "text/html", True, "html"),
    (b"%PDF-1.7 <html>", "text/html", True, "pdf"),
    (b"hello", "text/plain", False, "text"),
    (b"{}", "application/json", False, "other"),
    (b"PK\x03\x04", "application/epub+zip", False, "other"),
    (b"<svg/>", "image/svg+xml", False, "image"),          # labelled image: an image
    (b"????", "application/pdf", False, "pdf"),
])
def test_document_kind(body, mime, is_html, kind):
    assert document_kind(body, mime, is_html=is_html) == kind


def test_image_sizes_from_headers():
    png = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", 640, 480)
           + b"\x08\x02\x00\x00\x00")
    assert sniff_image(png) == sniff_image(png + b"rest")
    assert (sniff_image(png).mime, sniff_image(png).width, sniff_image(png).height) == (
        "image/png", 640, 480)
    gif = b"GIF89a" + struct.pack("<HH", 3, 5) + b"\x00" * 8
    assert (sniff_image(gif).width, sniff_image(gif).height) == (3, 5)
    sof = (b"\xff\xd8" + b"\xff\xe0\x00\x04ab" + b"\xff\xc0\x00\x11\x08"
           + struct.pack(">HH", 120, 300) + b"\x03" + b"\x00" * 9)
    info = sniff_image(sof)
    assert (info.mime, info.width, info.height) == ("image/jpeg", 300, 120)
    # a JPEG cut before its frame header: the type, no size; never an exception
    assert sniff_image(b"\xff\xd8\xff\xe0\x00\x10").width is None
    assert sniff_image(b"RIFF\x00\x00\x00\x00WEBPVP8X").mime == "image/webp"
    assert sniff_image(b"plain text") is None


# -- PDF text -----------------------------------------------------------------------------

def test_pdf_text_is_bounded_and_never_raises():
    pytest.importorskip("pypdf")
    text, note = pdf_text(pdf("Hello", pages=4), max_pages=2)
    assert text == "Hello p1\nHello p2" and note == "text of the first 2 of 4 pages"
    text, note = pdf_text(pdf("A" * 50, pages=3), max_chars=60)
    assert len(text) == 60 and note == "text cut at 60 characters"
    for broken in (b"%PDF-1.4\n", b"%PDF-1.4\n1 0 obj << /Type /Catalog", b"\x00" * 100,
                   pdf("x")[:-30]):
        text, note = pdf_text(broken)
        assert isinstance(text, str) and (text or note)


# -- the blob store -----------------------------------------------------------------------

def test_blob_store_names_by_hash_and_writes_atomically(tmp_path):
    store = BlobStore(tmp_path)
    data = b"some bytes"
    sha = hashlib.sha256(data).hexdigest()
    rel = store.put(data)
    assert rel == f"files/sha256/{sha[:2]}/{sha}"
    assert (tmp_path / rel).read_bytes() == data
    assert os.listdir(tmp_path / "files/sha256/.partial") == []  # renamed into place
    mtime = (tmp_path / rel).stat().st_mtime_ns
    assert store.put(data, sha) == rel and (tmp_path / rel).stat().st_mtime_ns == mtime


def test_blob_store_leaves_no_file_under_a_hash_name_when_the_write_fails(tmp_path,
                                                                         monkeypatch):
    store = BlobStore(tmp_path)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        store.put(b"x" * 1000)
    files = [p for p in (tmp_path / "files").rglob("*") if p.is_file()]
    assert files == []


# -- collect: in the config ---------------------------------------------------------------

def _cfg(**kw):
    return parse_config({"job": "j", "user_agent": UA, "seeds": [], **kw})


def test_collect_default_and_values():
    assert _cfg().collect == ("html", "text")
    assert _cfg(collect=["image", "html"]).collect == ("image", "html")
    assert _cfg(collect=["pdf"]).scrapy_settings()["POLITE_COLLECT"] == ["pdf"]


@pytest.mark.parametrize("value, message", [
    (["html", "video"], "collect[1]: 'video' is not one of html, text, pdf, image"),
    ("html", "collect: expected a list"),
    ([], "collect: empty"),
    ([3], "collect[0]: expected a string"),
])
def test_collect_errors_name_the_key(value, message):
    with pytest.raises(ConfigError) as exc:
        _cfg(collect=value)
    assert str(exc.value).startswith(message)


def test_collect_pdf_without_the_documents_extra_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "pypdf", None)  # as if not installed
    with pytest.raises(ConfigError) as exc:
        _cfg(collect=["html", "pdf"])
    assert str(exc.value) == ("collect: [pdf] needs the [documents] extra (pypdf is not "
                              "installed): pip install 'polite-crawler[documents]'")
    assert _cfg(collect=["html", "image"]).collect == ("html", "image")  # needs no pypdf


# -- links ------------------------------------------------------------------------------------

PAGE = b"""<html><head><base href="/sub/"></head><body>
<a href="a.html">a</a> <a href="doc.pdf">pdf</a> <a href="pic.JPG">pic</a>
<a href="movie.mp4">m</a> <img src="img/one.png"> <img src="data:image/png;base64,AAAA">
<picture><source srcset="two.webp 1x, /three.gif 2x"><img src="a.html" srcset=" four.jpeg 300w,
 five.png  600w "></picture> <img src="icon.svg"></body></html>"""


def test_links_default_is_link_extractor_and_collect_widens_them():
    from scrapy.linkextractors import LinkExtractor

    response = HtmlResponse("http://h.test/x/page.html", body=PAGE, encoding="utf-8")
    plain = [link.url for link in LinkExtractor().extract_links(response)]
    assert link_urls(response) == plain == ["http://h.test/sub/a.html"]
    assert link_urls(response, ("html", "pdf")) == ["http://h.test/sub/a.html",
                                                     "http://h.test/sub/doc.pdf"]
    assert link_urls(response, ("html", "image")) == [
        "http://h.test/sub/a.html", "http://h.test/sub/pic.JPG",
        "http://h.test/sub/img/one.png", "http://h.test/sub/two.webp",
        "http://h.test/three.gif", "http://h.test/sub/four.jpeg", "http://h.test/sub/five.png"]


# -- revalidate --purge erases the stored bytes too ---------------------------------------

def test_purge_removes_the_blob_of_an_erased_document_only(tmp_path):
    import json

    from crawler.corpus.revalidate import Outcome, Part, purge

    store = BlobStore(tmp_path)
    docs = []
    for i, data in enumerate((b"reserved now", b"still fine", b"reserved now")):
        sha = hashlib.sha256(data).hexdigest()
        docs.append({"url": f"https://e.org/{i}.pdf", "audit_seq": i + 1, "sha256": sha,
                     "file": store.put(data, sha)})
    shared = hashlib.sha256(b"reserved now").hexdigest()
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    part = Part(tmp_path / "corpus.jsonl", tmp_path / "audit.jsonl", tmp_path / "c.warc.gz")

    def reserved(*seqs):
        return Outcome(reserved=[{"url": docs[s - 1]["url"], "reasons": [{"signal": "iptc"}],
                                  "revalidation": {"seq": 1, "hash": "0" * 64},
                                  "documents": [{"audit_seq": s, "sha256": docs[s - 1]["sha256"]}]}
                                 for s in seqs])

    # doc 1 erased, doc 3 (the same bytes) kept: the blob stays
    assert purge(part, reserved(1), job="j", policy_sha256="p", fsync=False) == 1
    assert store.path_of(shared).exists()
    assert purge(part, reserved(3), job="j", policy_sha256="p", fsync=False) == 1
    assert not store.path_of(shared).exists()
    assert store.path_of(docs[1]["sha256"]).exists()
