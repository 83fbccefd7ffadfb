"""Documents beyond HTML (``collect:``): what kind a response is, what an image is, the text of
a PDF, and the content-addressed store their bytes go to.

Sans-IO but for :class:`BlobStore` (which writes under the output directory): no Scrapy, no
Twisted. pypdf (the ``documents`` extra) is imported only by :func:`pdf_text`, through
:func:`crawler.extras.require`.

Kinds (:data:`KINDS`, the values of ``collect:``):

* ``html``: what the HTML sniffer takes for HTML (``text/html``, XHTML, a mislabelled page);
* ``text``: ``text/plain``;
* ``pdf``: a body starting with ``%PDF-`` (or with it in its first 1024 bytes, as PDF readers
  accept, when it is not a page the HTML sniffer read), or labelled ``application/pdf``;
* ``image``: a body whose magic bytes are an image format (:func:`sniff_image`), or labelled
  ``image/*``;
* anything else (JSON, video, archives, EPUB, ...) is ``other``: never collected.

The magic bytes decide before the label: a PDF served as ``application/octet-stream`` is a
PDF, a JPEG labelled ``text/plain`` is an image.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BLOB_DIR",
    "DEFAULT_COLLECT",
    "KINDS",
    "PDF_MAX_CHARS",
    "PDF_MAX_PAGES",
    "BlobStore",
    "ImageInfo",
    "document_kind",
    "pdf_text",
    "sniff_image",
]

#: The values of ``collect:``.
KINDS = ("html", "text", "pdf", "image")
DEFAULT_COLLECT = ("html", "text")
#: Where blobs go under the output directory: ``files/sha256/<2 hex>/<sha256>``.
BLOB_DIR = "files/sha256"
#: pypdf reads at most this many pages and keeps at most this many characters of text.
PDF_MAX_PAGES = 500
PDF_MAX_CHARS = 2_000_000


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """An image as its magic bytes say: ``mime`` and, when the header gives them cheaply,
    ``width`` and ``height`` in pixels (None otherwise)."""

    mime: str
    width: int | None = None
    height: int | None = None


def _jpeg_size(body: bytes) -> tuple[int, int] | None:
    """Width, height from the first SOFn segment (segment headers only)."""
    pos = 2
    n = len(body)
    while pos + 4 <= n:
        if body[pos] != 0xFF:
            return None
        marker = body[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # no length
            pos += 2
            continue
        (length,) = struct.unpack(">H", body[pos + 2:pos + 4])
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE,
                      0xCF):
            if pos + 9 > n:
                return None
            h, w = struct.unpack(">HH", body[pos + 5:pos + 9])
            return w, h
        if marker == 0xDA or length < 2:  # start of scan without a frame header: give up
            return None
        pos += 2 + length
    return None


def sniff_image(body: bytes) -> ImageInfo | None:
    """The image format of ``body`` from its magic bytes (None: not an image we know)."""
    head = body[:32]
    try:
        if head.startswith(b"\xff\xd8\xff"):
            size = _jpeg_size(body)
            return ImageInfo("image/jpeg", *(size or (None, None)))
        if head.startswith(b"\x89PNG\r\n\x1a\n"):
            if head[12:16] == b"IHDR" and len(head) >= 24:
                w, h = struct.unpack(">II", head[16:24])
                return ImageInfo("image/png", w, h)
            return ImageInfo("image/png")
        if head.startswith((b"GIF87a", b"GIF89a")):
            w, h = struct.unpack("<HH", head[6:10]) if len(head) >= 10 else (None, None)
            return ImageInfo("image/gif", w, h)
        if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
            chunk = head[12:16]
            if chunk == b"VP8X" and len(head) >= 30:
                w = int.from_bytes(head[24:27], "little") + 1
                h = int.from_bytes(head[27:30], "little") + 1
                return ImageInfo("image/webp", w, h)
            if chunk == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
                bits = int.from_bytes(head[21:25], "little")
                return ImageInfo("image/webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
            if chunk == b"VP8 " and len(body) >= 30 and body[23:26] == b"\x9d\x01\x2a":
                w, h = struct.unpack("<HH", body[26:30])
                return ImageInfo("image/webp", w & 0x3FFF, h & 0x3FFF)
            return ImageInfo("image/webp")
        if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
            return ImageInfo("image/tiff")
        if head.startswith(b"BM") and len(head) >= 26:
            w, h = struct.unpack("<ii", head[18:26])
            return ImageInfo("image/bmp", abs(w), abs(h))
        if head[4:12] in (b"ftypavif", b"ftypavis"):
            return ImageInfo("image/avif")
    except struct.error:
        return None
    return None


def document_kind(body: bytes, mime: str, *, is_html: bool) -> str:
    """One of :data:`KINDS`, or ``other`` (see the module docstring). ``is_html``: the HTML
    sniffer took the response for HTML (its head is read like a page's)."""
    if body.startswith(b"%PDF-"):
        return "pdf"
    if sniff_image(body) is not None:
        return "image"
    if is_html:
        # a page whose head the HTML sniffer read; "%PDF-" in its first bytes (an article
        # about PDF) does not make it a PDF
        return "html"
    if b"%PDF-" in body[:1024]:
        return "pdf"  # junk before the header, as PDF readers accept
    if mime == "text/plain":
        return "text"
    if mime == "application/pdf":
        return "pdf"
    if mime.startswith("image/"):
        return "image"
    return "other"


def pdf_text(body: bytes, *, max_pages: int = PDF_MAX_PAGES,
             max_chars: int = PDF_MAX_CHARS) -> tuple[str, str | None]:
    """The text of a PDF as pypdf extracts it, page by page: ``(text, note)``. At most
    ``max_pages`` pages and ``max_chars`` characters (the note says so); a PDF pypdf cannot
    read gives ``("", note)``, never an exception. Needs the ``documents`` extra."""
    from crawler.extras import require

    pypdf = require("pypdf", "documents", "collect: [pdf]")
    parts: list[str] = []
    total = 0
    note = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pypdf warns about every oddity of remote files
        try:
            reader = pypdf.PdfReader(io.BytesIO(body), strict=False)
            if reader.is_encrypted:
                try:
                    reader.decrypt("")
                except Exception as exc:  # noqa: BLE001 - any failure: no text
                    return "", f"encrypted PDF, text not extracted ({type(exc).__name__})"
            pages = len(reader.pages)
            for i in range(min(pages, max_pages)):
                try:
                    chunk = reader.pages[i].extract_text() or ""
                except Exception as exc:  # noqa: BLE001 - a bad page: the others still count
                    note = f"page {i + 1}: text not extracted ({type(exc).__name__})"
                    continue
                parts.append(chunk)
                total += len(chunk)
                if total >= max_chars:
                    note = f"text cut at {max_chars} characters"
                    break
            if pages > max_pages and note is None:
                note = f"text of the first {max_pages} of {pages} pages"
        except Exception as exc:  # noqa: BLE001 - remote bytes: never a crash
            return "", f"text not extracted: pypdf cannot read it ({type(exc).__name__}: " \
                       f"{str(exc)[:200]})"
    return "\n".join(parts)[:max_chars], note


class BlobStore:
    """Bytes stored by content under ``root``: ``<root>/<2 hex>/<sha256>``.

    Written to a temporary file in ``<root>/.partial/`` and renamed into place, so a killed
    process never leaves a half file under a hash name; a blob already there is not written
    again. :meth:`put` returns the path relative to ``base`` (the output directory)."""

    def __init__(self, base: Path, subdir: str = BLOB_DIR) -> None:
        self.base = Path(base)
        self.root = self.base / subdir

    def path_of(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes, sha256: str | None = None) -> str:
        digest = sha256 or hashlib.sha256(data).hexdigest()
        final = self.path_of(digest)
        if not final.exists():
            partial = self.root / ".partial"
            partial.mkdir(parents=True, exist_ok=True)
            final.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=partial, prefix=digest[:16] + ".")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, final)
            except BaseException:
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass
                raise
        return final.relative_to(self.base).as_posix()
