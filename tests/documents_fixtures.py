"""Small generated documents for the document-stage tests and bench/documents.py: PDFs (with
or without an XMP packet in the catalog's /Metadata) written byte by byte, JPEGs and PNGs
written by Pillow (when it is installed), XMP packets with IPTC Data Mining or TDMRep."""

from __future__ import annotations

import io

PLUS = "http://ns.useplus.org/ldf/xmp/1.0/"
VOCAB = "http://ns.useplus.org/ldf/vocab/"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"


def xmp_packet(description: str) -> bytes:
    """A complete XMP packet around one rdf:Description's properties."""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        f'<rdf:RDF xmlns:rdf="{RDF}">'
        f'<rdf:Description rdf:about="" xmlns:plus="{PLUS}" '
        f'xmlns:tdm="http://www.w3.org/ns/tdmrep/">{description}</rdf:Description>'
        "</rdf:RDF></x:xmpmeta>\n" + " " * 100 + '\n<?xpacket end="w"?>'
    ).encode()


def dmi(value: str) -> bytes:
    """XMP saying ``plus:DataMining`` = the PLUS vocabulary value ``value`` (DMI-...)."""
    return xmp_packet(f"<plus:DataMining>{VOCAB}{value}</plus:DataMining>")


def tdm_xmp(reservation: str) -> bytes:
    return xmp_packet(f"<tdm:reservation>{reservation}</tdm:reservation>")


def pdf(text: str, xmp: bytes | None = None, pages: int = 1) -> bytes:
    """A PDF 1.4 with ``pages`` pages showing ``text`` (Helvetica), a classic xref table, and
    ``xmp`` as the catalog's uncompressed /Metadata stream when given."""
    objects: list[bytes] = []
    n_pages = max(1, pages)
    first_page = 4 if xmp is None else 5
    kids = " ".join(f"{first_page + 2 * i} 0 R" for i in range(n_pages))
    meta = b"" if xmp is None else b" /Metadata 4 0 R"
    objects.append(b"<< /Type /Catalog /Pages 2 0 R" + meta + b" >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    if xmp is not None:
        objects.append(b"<< /Type /Metadata /Subtype /XML /Length %d >>\nstream\n" % len(xmp)
                       + xmp + b"\nendstream")
    for i in range(n_pages):
        stream = f"BT /F1 12 Tf 72 720 Td ({text} p{i + 1}) Tj ET".encode()
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                       f"/Resources << /Font << /F1 3 0 R >> >> "
                       f"/Contents {first_page + 2 * i + 1} 0 R >>".encode())
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(f"{i} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for off in offsets:
        out.write(f"{off:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n"
              "%%EOF\n".encode())
    return out.getvalue()


def jpeg(xmp: bytes | None = None, *, comment: str | None = None, size: int = 16,
         color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    kw: dict = {}
    if xmp is not None:
        kw["xmp"] = xmp
    if comment is not None:
        kw["comment"] = comment.encode()
    Image.new("RGB", (size, size), color).save(out, "JPEG", **kw)
    return out.getvalue()


def png(size: int = 8, color: tuple[int, int, int] = (10, 200, 10)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (size, size + 1), color).save(out, "PNG")
    return out.getvalue()


def cut_in_app1(data: bytes) -> bytes:
    """A JPEG cut inside its XMP APP1 segment (the segment's length runs past the end)."""
    at = data.index(b"http://ns.adobe.com/xap/1.0/\x00")
    return data[:at + 40]
