"""Vector tables for crawler.optout.embedded / crawler.optout.xmp (IPTC Data Mining, TDMRep).

Files are written by code we did not write wherever it can: Pillow (JPEG, PNG, WebP, TIFF
with XMP), pypdf and pikepdf/qpdf (PDF: plain, FlateDecode metadata, object and
cross-reference streams, incremental updates, encryption), ExifTool 13.58 (every container,
the PLUS labels, TDMRep via a user-defined namespace; stored below as zlib+base64 with how
each was made) and the stdlib zipfile (EPUB).  GIF with XMP and JPEG Extended XMP are built
here by hand from Pillow files, following XMP Specification Part 3 (said where).
"""

from __future__ import annotations

import base64
import hashlib
import io
import struct
import zipfile
import zlib

import pytest

pytest.importorskip("PIL")
from PIL import Image, PngImagePlugin  # noqa: E402

from crawler.optout.embedded import (  # noqa: E402
    DMI_LABELS,
    EPUB_MEMBER_LIMIT,
    EXIFTOOL_LABELS,
    TERM_ROWS,
    dmi_term,
    read_embedded,
)
from crawler.optout.tdmrep import TdmValue  # noqa: E402
from crawler.optout.xmp import XMP_PACKET_LIMIT, container_of, find_xmp, parse_xmp  # noqa: E402

PLUS = "http://ns.useplus.org/ldf/xmp/1.0/"
VOCAB = "http://ns.useplus.org/ldf/vocab/"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"


# ----------------------------------------------------------------------------------- builders

def packet(description: str, ns: str = "") -> bytes:
    """A complete XMP packet (wrapper + x:xmpmeta + rdf:RDF) around one rdf:Description."""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        f'<rdf:RDF xmlns:rdf="{RDF}">'
        f'<rdf:Description rdf:about="" xmlns:plus="{PLUS}" '
        f'xmlns:tdm="http://www.w3.org/ns/tdmrep/" {ns}>{description}</rdf:Description>'
        "</rdf:RDF></x:xmpmeta>\n" + " " * 200 + '\n<?xpacket end="w"?>'
    ).encode()


def dmi(value: str) -> bytes:
    return packet(f"<plus:DataMining>{VOCAB}{value}</plus:DataMining>")


def image() -> Image.Image:
    return Image.new("RGB", (16, 16), (200, 30, 30))


def jpeg(xmp: bytes | None = None) -> bytes:
    out = io.BytesIO()
    image().save(out, "JPEG", **({"xmp": xmp} if xmp is not None else {}))
    return out.getvalue()


def png(xmp: bytes | None = None, *, zip_: bool = False, chunk: str = "iTXt") -> bytes:
    info = PngImagePlugin.PngInfo()
    if xmp is not None:
        if chunk == "iTXt":
            info.add_itxt("XML:com.adobe.xmp", xmp.decode(), zip=zip_)
        else:
            info.add_text("XML:com.adobe.xmp", xmp.decode("latin-1"), zip=zip_)
    info.add_text("Comment", "hello")
    out = io.BytesIO()
    image().save(out, "PNG", pnginfo=info)
    return out.getvalue()


def webp(xmp: bytes | None = None) -> bytes:
    out = io.BytesIO()
    image().save(out, "WEBP", **({"xmp": xmp} if xmp is not None else {}))
    return out.getvalue()


def tiff(xmp: bytes | None = None, *, big_endian: bool = False) -> bytes:
    out = io.BytesIO()
    kw: dict = {"tiffinfo": {700: xmp}} if xmp is not None else {}
    # Pillow writes big-endian (MM) TIFF for 16-bit big-endian images
    (Image.new("I;16B", (16, 16)) if big_endian else image()).save(out, "TIFF", **kw)
    return out.getvalue()


def gif(xmp: bytes | None = None) -> bytes:
    """A Pillow GIF; XMP inserted before the trailer as XMP Part 3 (GIF) says: application
    extension 0x21 0xFF 0x0B "XMP DataXMP", the raw packet, then the 258-byte magic trailer
    (0x01, 0xFF..0x00, 0x00 block terminator)."""
    out = io.BytesIO()
    image().convert("P").save(out, "GIF")
    data = out.getvalue()
    assert data.endswith(b";")
    if xmp is None:
        return data
    ext = b"\x21\xff\x0bXMP DataXMP" + xmp + b"\x01" + bytes(range(0xFF, -1, -1)) + b"\x00"
    return data[:-1] + ext + b";"


def pdf(xmp: bytes | None = None, *, flate: bool = False, objstm: bool = False) -> bytes:
    pikepdf = pytest.importorskip("pikepdf")  # qpdf underneath: xref and object streams

    doc = pikepdf.new()
    doc.add_blank_page()
    if xmp is not None:
        if flate:
            stream = pikepdf.Stream(doc, zlib.compress(xmp))
            stream.Filter = pikepdf.Name.FlateDecode
        else:
            stream = pikepdf.Stream(doc, xmp)
        stream.Type = pikepdf.Name.Metadata
        stream.Subtype = pikepdf.Name.XML
        doc.Root.Metadata = doc.make_indirect(stream)
    out = io.BytesIO()
    mode = pikepdf.ObjectStreamMode.generate if objstm else pikepdf.ObjectStreamMode.disable
    doc.save(out, object_stream_mode=mode, compress_streams=False, fix_metadata_version=False)
    return out.getvalue()


def pypdf_pdf(xmp: bytes | None) -> bytes:
    PdfWriter = pytest.importorskip("pypdf").PdfWriter  # noqa: N806

    writer = PdfWriter()
    writer.add_blank_page(72, 72)
    if xmp is not None:
        writer.xmp_metadata = xmp
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def pypdf_update(base: bytes, xmp: bytes | None) -> bytes:
    """An incremental update (pypdf appends the changed objects and a new xref section)."""
    pypdf = pytest.importorskip("pypdf")
    PdfReader, PdfWriter = pypdf.PdfReader, pypdf.PdfWriter  # noqa: N806

    writer = PdfWriter(PdfReader(io.BytesIO(base)), incremental=True)
    writer.xmp_metadata = xmp
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


BUILDERS = {"jpeg": jpeg, "png": png, "webp": webp, "tiff": tiff, "gif": gif, "pdf": pdf}


def terms(result) -> set[tuple[str, bool]]:
    return {t for s in result.statements if s.signal == "iptc" for t in s.terms}


# ---------------------------------------------------------------------------- every container

DMI_EXPECTED = {
    "DMI-UNSPECIFIED": ("dmi-unspecified", True),
    "DMI-ALLOWED": ("dmi-allowed", True),
    "DMI-PROHIBITED-AIMLTRAINING": ("dmi-prohibited-aimltraining", False),
    "DMI-PROHIBITED-GENAIMLTRAINING": ("dmi-prohibited-genaimltraining", False),
    "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING": ("dmi-prohibited-exceptsearchengineindexing",
                                                  False),
    "DMI-PROHIBITED": ("dmi-prohibited", False),
    "DMI-PROHIBITED-SEECONSTRAINT": ("dmi-prohibited-seeconstraint", False),
    "DMI-PROHIBITED-SEEEMBEDDEDRIGHTSEXPR": ("dmi-prohibited-seeembeddedrightsexpr", False),
    "DMI-PROHIBITED-SEELINKEDRIGHTSEXPR": ("dmi-prohibited-seelinkedrightsexpr", False),
}


@pytest.mark.parametrize("kind", sorted(BUILDERS))
@pytest.mark.parametrize("value", sorted(DMI_EXPECTED))
def test_each_container_each_value(kind, value):
    body = BUILDERS[kind](dmi(value))
    result = read_embedded(body, None)
    assert result.container == kind
    assert result.determined, result.problems
    assert terms(result) == {DMI_EXPECTED[value]}
    (stmt,) = [s for s in result.statements if s.signal == "iptc"]
    assert stmt.channel == "xmp"
    assert f"{VOCAB}{value}" in stmt.rule and result.blocks[0] in stmt.rule
    (evidence,) = [v for v in result.values if v.property == "plus:DataMining"]
    assert evidence.raw == f"{VOCAB}{value}" and evidence.path == "rdf:Description/plus:DataMining"


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_no_xmp_no_statement_determined(kind):
    result = read_embedded(BUILDERS[kind](None), None)
    assert result.determined, result.problems
    assert result.statements == () and result.values == ()


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_xmp_without_reservation_is_determined(kind):
    result = read_embedded(BUILDERS[kind](packet("<dc:title xmlns:dc='http://purl.org/dc/"
                                                 "elements/1.1/'>x</dc:title>")), None)
    assert result.determined and result.statements == () and result.blocks


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_malformed_xmp_is_undetermined(kind):
    bad = dmi("DMI-PROHIBITED").replace(b"</rdf:RDF>", b"</rdf:RDFX>")
    result = read_embedded(BUILDERS[kind](bad), None)
    assert not result.determined
    assert any("not well-formed" in p for p in result.problems), result.problems


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_cut_in_the_middle_of_the_xmp_is_undetermined(kind):
    body = BUILDERS[kind](dmi("DMI-PROHIBITED"))
    at = body.index(b"DataMining") + 5
    result = read_embedded(body[:at], None)
    assert not result.determined, (kind, result)
    assert result.problems


@pytest.mark.parametrize("kind", ["png", "tiff", "webp", "gif", "pdf"])
def test_packet_over_the_limit_is_undetermined(kind):
    huge = packet("<plus:DataMining>" + VOCAB + "DMI-ALLOWED</plus:DataMining>"
                  + "<!--" + "x" * (XMP_PACKET_LIMIT + 10) + "-->")
    result = read_embedded(BUILDERS[kind](huge), None)
    assert not result.determined
    assert any(str(XMP_PACKET_LIMIT) in p for p in result.problems), result.problems


def test_png_compressed_itxt_bomb_is_undetermined():
    bomb = packet("<!--" + " " * (8 * XMP_PACKET_LIMIT) + "-->")
    body = png(bomb, zip_=True)
    assert len(body) < 100_000
    result = read_embedded(body, "image/png")
    assert not result.determined and "inflates to more than" in " ".join(result.problems)


# ----------------------------------------------------------------------------------- RDF forms

FORMS = {
    "attribute": '" plus:DataMining="' + VOCAB + 'DMI-PROHIBITED',
    "element": "<plus:DataMining>" + VOCAB + "DMI-PROHIBITED</plus:DataMining>",
    "resource": '<plus:DataMining rdf:resource="' + VOCAB + 'DMI-PROHIBITED"/>',
    "bag": ("<plus:DataMining><rdf:Bag><rdf:li>" + VOCAB + "DMI-PROHIBITED</rdf:li>"
            "</rdf:Bag></plus:DataMining>"),
    "seq-resource": ('<plus:DataMining><rdf:Seq><rdf:li rdf:resource="' + VOCAB +
                     'DMI-PROHIBITED"/></rdf:Seq></plus:DataMining>'),
    "alt": ('<plus:DataMining><rdf:Alt><rdf:li xml:lang="x-default">' + VOCAB +
            "DMI-PROHIBITED</rdf:li></rdf:Alt></plus:DataMining>"),
    "parsetype-resource": ('<plus:DataMining rdf:parseType="Resource"><rdf:value>' + VOCAB +
                           "DMI-PROHIBITED</rdf:value></plus:DataMining>"),
    "nested-description": ("<plus:DataMining><rdf:Description><rdf:value>" + VOCAB +
                           "DMI-PROHIBITED</rdf:value></rdf:Description></plus:DataMining>"),
    "value-attribute": '<plus:DataMining rdf:value="' + VOCAB + 'DMI-PROHIBITED"/>',
    "bare-key": "<plus:DataMining>DMI-PROHIBITED</plus:DataMining>",
    "other-prefix": ('<p:DataMining xmlns:p="' + PLUS + '">' + VOCAB +
                     "DMI-PROHIBITED</p:DataMining>"),
    "default-namespace": ('<DataMining xmlns="' + PLUS + '">' + VOCAB +
                          "DMI-PROHIBITED</DataMining>"),
}


def form_packet(form: str) -> bytes:
    text = FORMS[form]
    if form == "attribute":
        # an attribute on the rdf:Description itself
        return packet("").replace(b'rdf:about=""', b'rdf:about=""' + text[1:].encode() + b'"')
    return packet(text)


@pytest.mark.parametrize("form", sorted(FORMS))
def test_rdf_forms(form):
    result = read_embedded(jpeg(form_packet(form)), "image/jpeg")
    assert result.determined, result.problems
    assert terms(result) == {("dmi-prohibited", False)}, (form, result.values)


def test_other_prefix_is_reported_as_written():
    result = read_embedded(jpeg(form_packet("other-prefix")), None)
    assert result.values[0].property == "p:DataMining"
    assert result.values[0].namespace == PLUS


def test_same_local_name_in_another_namespace_is_not_plus():
    body = jpeg(packet('<q:DataMining xmlns:q="http://example.com/not-plus/">' + VOCAB +
                       "DMI-PROHIBITED</q:DataMining>"))
    assert read_embedded(body, None).statements == ()


def test_separate_descriptions_and_two_rdf_blocks():
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="' + RDF.encode() +
           b'"><rdf:Description rdf:about=""/><rdf:Description rdf:about="" xmlns:plus="' +
           PLUS.encode() + b'" plus:DataMining="DMI-PROHIBITED-AIMLTRAINING"/></rdf:RDF>'
           b"</x:xmpmeta>")
    assert terms(read_embedded(png(xmp), None)) == {("dmi-prohibited-aimltraining", False)}


# ------------------------------------------------------------------------------ value variants

@pytest.mark.parametrize(("raw", "term"), [
    (VOCAB + "DMI-PROHIBITED", "dmi-prohibited"),
    ("https://ns.useplus.org/ldf/vocab/DMI-PROHIBITED", "dmi-prohibited"),
    ("  http://ns.useplus.org/ldf/vocab/dmi-prohibited-aimltraining \n",
     "dmi-prohibited-aimltraining"),
    ("DMI-PROHIBITED-GENAIMLTRAINING", "dmi-prohibited-genaimltraining"),
    ("dmi-allowed", "dmi-allowed"),
    ("DMI-UNSPECIFIED", "dmi-unspecified"),
    ("Prohibited for Generative AI/ML training", "dmi-prohibited-genaimltraining"),
    ("prohibited  for ai/ml   training", "dmi-prohibited-aimltraining"),
    ("Prohibited except for search engine indexing", "dmi-prohibited-exceptsearchengineindexing"),
    ("Prohibited, see Other Constraints property", "dmi-prohibited-seeconstraint"),
    ("Prohibited, see plus:OtherConstraints", "dmi-prohibited-seeconstraint"),
    ("Unspecified - no prohibition defined", "dmi-unspecified"),
    ("DMI-PROHIBITED-SOMETHINGNEW", "dmi-prohibited"),      # conservative
    ("http://example.com/vocab/DMI-PROHIBITED", "dmi-prohibited"),
    ("maybe", None),
    ("", None),
    ("DMI-SOMETHING", None),
])
def test_dmi_value_forms(raw, term):
    assert dmi_term(raw)[0] == term


def test_every_vocabulary_value_and_label_reads_back():
    for key, label in DMI_LABELS.items():
        assert dmi_term(VOCAB + key)[0] == key.lower()
        assert dmi_term(label)[0] == key.lower()
    for key, label in EXIFTOOL_LABELS.items():
        assert dmi_term(label)[0] == key.lower()


def test_unknown_value_is_unset_with_a_problem():
    result = read_embedded(jpeg(packet("<plus:DataMining>perhaps</plus:DataMining>")), None)
    assert result.determined
    assert [s.terms for s in result.statements] == [()]
    assert any("not in the PLUS vocabulary" in p for p in result.problems)


def test_conflicting_values_most_restrictive_noted():
    xmp = packet("<plus:DataMining><rdf:Bag><rdf:li>DMI-ALLOWED</rdf:li>"
                 "<rdf:li>DMI-PROHIBITED-GENAIMLTRAINING</rdf:li><rdf:li>DMI-PROHIBITED-"
                 "AIMLTRAINING</rdf:li></rdf:Bag></plus:DataMining>")
    result = read_embedded(webp(xmp), None)
    assert terms(result) == {("dmi-prohibited-genaimltraining", False),
                             ("dmi-prohibited-aimltraining", False)}
    assert any("conflicting" in p and "dmi-allowed dropped" in p for p in result.problems)


def test_see_constraint_keeps_the_constraint_text():
    xmp = packet("<plus:DataMining>" + VOCAB + "DMI-PROHIBITED-SEECONSTRAINT</plus:DataMining>"
                 '<plus:OtherConstraints><rdf:Alt><rdf:li xml:lang="x-default">Licence '
                 "required for research</rdf:li></rdf:Alt></plus:OtherConstraints>")
    result = read_embedded(tiff(xmp), None)
    assert terms(result) == {("dmi-prohibited-seeconstraint", False)}
    assert result.other_constraints == ("Licence required for research",)
    assert "Licence required for research" in result.statements[0].rule


def test_see_constraint_without_constraint_text_is_still_prohibited():
    result = read_embedded(tiff(dmi("DMI-PROHIBITED-SEECONSTRAINT")), None)
    assert terms(result) == {("dmi-prohibited-seeconstraint", False)}
    assert any("absent" in p for p in result.problems)


# ---------------------------------------------------------------------------- the purpose rows

def test_term_rows_cover_the_vocabulary():
    from crawler.policy.reservation import PURPOSES

    for key in DMI_LABELS:
        term = key.lower()
        if term == "dmi-unspecified":
            assert ("iptc", term) not in TERM_ROWS
        else:
            assert TERM_ROWS[("iptc", term)] <= set(PURPOSES)
    assert TERM_ROWS[("iptc", "dmi-prohibited")] == set(PURPOSES)
    assert "search" not in TERM_ROWS[("iptc", "dmi-prohibited-exceptsearchengineindexing")]
    assert TERM_ROWS[("iptc", "dmi-prohibited-aimltraining")] == {"train-ai", "train-genai"}


def test_policy_rows_match_when_present():
    from crawler.policy.reservation import TERM_PURPOSES

    present = {k: v for k, v in TERM_PURPOSES.items() if k[0] == "iptc"}
    if not present:
        pytest.skip("crawler.policy.reservation has no iptc rows yet")
    assert present == dict(TERM_ROWS)


# ------------------------------------------------------------------------------------- TDMRep

@pytest.mark.parametrize(("raw", "value", "term"), [
    ("1", TdmValue.RESERVED, (("tdm-reservation", False),)),
    ("0", TdmValue.NOT_RESERVED, (("tdm-reservation", True),)),
    (" 1 ", TdmValue.RESERVED, (("tdm-reservation", False),)),
    ('"1"', TdmValue.RESERVED, (("tdm-reservation", False),)),
    ("yes", TdmValue.UNSET, ()),
])
def test_tdmrep_in_pdf_xmp(raw, value, term):
    xmp = packet(f"<tdm:reservation>{raw}</tdm:reservation>"
                 "<tdm:policy>https://example.com/policy.json</tdm:policy>")
    result = read_embedded(pdf(xmp), "application/pdf")
    assert result.determined
    assert result.tdm is not None and result.tdm.reservation is value
    assert result.tdm.channel == "embedded"
    (stmt,) = [s for s in result.statements if s.signal == "tdmrep"]
    assert stmt.terms == term
    if value is TdmValue.RESERVED:
        assert result.tdm.policy == "https://example.com/policy.json"


def test_tdmrep_hash_namespace_and_attribute_form():
    xmp = packet("").replace(b'rdf:about=""', b'rdf:about="" xmlns:t="http://www.w3.org/ns/'
                             b'tdmrep#" t:reservation="1"')
    result = read_embedded(pdf(xmp), None)
    assert result.tdm.reservation is TdmValue.RESERVED


# ------------------------------------------------------------------------------- PDF structure

def test_pdf_flate_metadata():
    result = read_embedded(pdf(dmi("DMI-PROHIBITED"), flate=True), None)
    assert result.determined and terms(result) == {("dmi-prohibited", False)}


def test_pdf_catalog_in_object_stream_with_xref_stream():
    body = pdf(dmi("DMI-PROHIBITED-AIMLTRAINING"), objstm=True)
    assert b"/ObjStm" in body and b"/XRef" in body
    result = read_embedded(body, None)
    assert result.determined and terms(result) == {("dmi-prohibited-aimltraining", False)}


def test_pdf_written_by_pypdf():
    result = read_embedded(pypdf_pdf(dmi("DMI-PROHIBITED")), None)
    assert terms(result) == {("dmi-prohibited", False)}


@pytest.mark.parametrize(("first", "then", "expected"), [
    ("DMI-ALLOWED", "DMI-PROHIBITED", {("dmi-prohibited", False)}),
    ("DMI-PROHIBITED", "DMI-ALLOWED", {("dmi-allowed", True)}),        # the last update wins
    (None, "DMI-PROHIBITED-GENAIMLTRAINING", {("dmi-prohibited-genaimltraining", False)}),
])
def test_pdf_incremental_update_last_one_wins(first, then, expected):
    base = pypdf_pdf(dmi(first) if first else None)
    body = pypdf_update(base, dmi(then))
    assert body.startswith(base) and body.count(b"startxref") >= 2
    result = read_embedded(body, None)
    assert result.determined, result.problems
    assert terms(result) == expected


def test_pdf_update_removing_the_metadata():
    body = pypdf_update(pypdf_pdf(dmi("DMI-PROHIBITED")), None)
    result = read_embedded(body, None)
    assert result.determined and result.statements == ()


def test_pdf_broken_xref_with_two_versions_is_undetermined():
    body = pypdf_update(pypdf_pdf(dmi("DMI-PROHIBITED")), dmi("DMI-ALLOWED"))
    at = body.rindex(b"startxref")
    broken = body[:at] + b"startxref\n999999999\n%%EOF\n"
    result = read_embedded(broken, None)
    assert not result.determined
    assert any("which is current cannot be known" in p for p in result.problems)


def test_pdf_broken_xref_single_version_is_recovered():
    body = pypdf_pdf(dmi("DMI-PROHIBITED"))
    at = body.rindex(b"startxref")
    result = read_embedded(body[:at] + b"startxref\n5\n%%EOF\n", None)
    assert result.determined and terms(result) == {("dmi-prohibited", False)}
    assert any("recovered by scanning" in p for p in result.problems)


def test_pdf_encrypted_metadata_is_undetermined():
    pypdf = pytest.importorskip("pypdf")
    PdfReader, PdfWriter = pypdf.PdfReader, pypdf.PdfWriter  # noqa: N806

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pypdf_pdf(dmi("DMI-PROHIBITED")))))
    writer.encrypt("user", "owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    result = read_embedded(out.getvalue(), None)
    assert not result.determined
    assert any("encrypted" in p or "corrupt" in p for p in result.problems), result.problems


def test_pdf_decoy_in_a_content_stream_is_not_a_statement():
    pikepdf = pytest.importorskip("pikepdf")

    doc = pikepdf.new()
    doc.add_blank_page()
    decoy = b"% " + dmi("DMI-PROHIBITED").replace(b"\n", b" ")
    doc.pages[0].Contents = doc.make_stream(decoy)
    out = io.BytesIO()
    doc.save(out, compress_streams=False)
    assert b"plus:DataMining" in out.getvalue()
    result = read_embedded(out.getvalue(), None)
    assert result.determined and result.statements == ()


def test_pdf_filter_we_do_not_read_is_undetermined():
    pikepdf = pytest.importorskip("pikepdf")

    doc = pikepdf.new()
    doc.add_blank_page()
    stream = pikepdf.Stream(doc, base64.a85encode(dmi("DMI-PROHIBITED"), adobe=True)[2:])
    stream.Filter = pikepdf.Name.ASCII85Decode
    doc.Root.Metadata = doc.make_indirect(stream)
    out = io.BytesIO()
    doc.save(out, compress_streams=False, stream_decode_level=pikepdf.StreamDecodeLevel.none,
             fix_metadata_version=False)
    result = read_embedded(out.getvalue(), None)
    assert not result.determined and "ASCII85Decode" in " ".join(result.problems)


# ---------------------------------------------------------------------------- JPEG / PNG detail

def _jpeg_insert(body: bytes, segments: list[bytes]) -> bytes:
    app = b"".join(b"\xff\xe1" + struct.pack(">H", len(s) + 2) + s for s in segments)
    return body[:2] + app + body[2:]


def extended_jpeg(ext: bytes, *, drop_last: bool = False, announce: bool = True) -> bytes:
    """XMP Part 3 (JPEG): the main packet names the GUID (MD5 of the extended XMP, upper
    hex); each APP1 = signature, GUID, full length, offset, portion (<= 65,400 bytes)."""
    guid = hashlib.md5(ext).hexdigest().upper()  # noqa: S324 - the format's identifier
    main = packet(f'<xmpNote:HasExtendedXMP xmlns:xmpNote="http://ns.adobe.com/xmp/note/">'
                  f"{guid if announce else ''}</xmpNote:HasExtendedXMP>")
    parts = [ext[i:i + 65000] for i in range(0, len(ext), 65000)]
    if drop_last:
        parts = parts[:-1]
    segs = [b"http://ns.adobe.com/xap/1.0/\x00" + main]
    for i, part in enumerate(parts):
        segs.append(b"http://ns.adobe.com/xmp/extension/\x00" + guid.encode() +
                    struct.pack(">II", len(ext), i * 65000) + part)
    return _jpeg_insert(jpeg(), segs)


def _big_ext() -> bytes:
    filler = "<dc:description xmlns:dc='http://purl.org/dc/elements/1.1/'>" + "z" * 150_000 + \
        "</dc:description>"
    return packet(filler + "<plus:DataMining>" + VOCAB + "DMI-PROHIBITED</plus:DataMining>")


def test_jpeg_extended_xmp_is_joined():
    result = read_embedded(extended_jpeg(_big_ext()), None)
    assert result.determined, result.problems
    assert terms(result) == {("dmi-prohibited", False)}
    assert any("Extended XMP" in b for b in result.blocks)


def test_jpeg_extended_xmp_missing_portion_is_undetermined():
    result = read_embedded(extended_jpeg(_big_ext(), drop_last=True), None)
    assert not result.determined


def test_jpeg_extended_xmp_not_announced_is_ignored():
    result = read_embedded(extended_jpeg(_big_ext(), announce=False), None)
    assert result.determined and result.statements == ()
    assert any("not named by the main packet" in p for p in result.problems)


def test_jpeg_decoys_outside_xmp():
    decoy = dmi("DMI-PROHIBITED")
    body = jpeg()
    com = b"\xff\xfe" + struct.pack(">H", len(decoy) + 2) + decoy     # COM segment
    body = body[:2] + com + body[2:-2] + decoy + body[-2:]              # and in the scan data
    assert body.count(b"DataMining") == 4
    result = read_embedded(body, None)
    assert result.determined and result.statements == ()


def test_jpeg_cut_in_scan_data_is_harmless():
    out = io.BytesIO()
    Image.effect_noise((128, 128), 60).save(out, "JPEG", xmp=dmi("DMI-ALLOWED"))
    body = out.getvalue()
    result = read_embedded(body[:-40], None)
    assert result.determined and terms(result) == {("dmi-allowed", True)}


@pytest.mark.parametrize("chunk", ["tEXt", "zTXt"])
def test_png_text_variants(chunk):
    body = png(dmi("DMI-PROHIBITED"), zip_=chunk == "zTXt", chunk="tEXt")
    result = read_embedded(body, None)
    assert terms(result) == {("dmi-prohibited", False)}


def test_png_compressed_itxt():
    result = read_embedded(png(dmi("DMI-PROHIBITED"), zip_=True), None)
    assert terms(result) == {("dmi-prohibited", False)}


def test_png_decoy_in_comment_is_not_a_statement():
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", dmi("DMI-PROHIBITED").decode())
    out = io.BytesIO()
    image().save(out, "PNG", pnginfo=info)
    assert read_embedded(out.getvalue(), None).statements == ()


def test_png_crc_mismatch_is_undetermined():
    body = bytearray(png(dmi("DMI-ALLOWED")))
    at = body.index(b"DMI-ALLOWED")
    body[at] ^= 0x20
    result = read_embedded(bytes(body), None)
    assert not result.determined and "CRC" in " ".join(result.problems)


def test_png_imagemagick_raw_profile():
    xmp = dmi("DMI-PROHIBITED")
    hexed = xmp.hex()
    raw = f"\nxmp\n{len(xmp):8d}\n" + "\n".join(hexed[i:i + 72] for i in range(0, len(hexed), 72))
    info = PngImagePlugin.PngInfo()
    info.add_text("Raw profile type xmp", raw, zip=True)
    out = io.BytesIO()
    image().save(out, "PNG", pnginfo=info)
    assert terms(read_embedded(out.getvalue(), None)) == {("dmi-prohibited", False)}


def test_tiff_big_endian():
    body = tiff(dmi("DMI-PROHIBITED"), big_endian=True)
    assert body.startswith(b"MM")
    assert terms(read_embedded(body, None)) == {("dmi-prohibited", False)}


def test_tiff_xmp_in_second_ifd():
    """A multi-page TIFF whose second page alone carries XMP: the IFD chain is followed."""
    first, second = image(), image()
    second.encoderinfo = {"tiffinfo": {700: dmi("DMI-PROHIBITED")}}   # Pillow: per frame
    out = io.BytesIO()
    first.save(out, "TIFF", save_all=True, append_images=[second])
    result = read_embedded(out.getvalue(), None)
    assert result.blocks == ("TIFF IFD1 tag 700 (XMLPacket)",)
    assert terms(result) == {("dmi-prohibited", False)}


def test_webp_flag_without_chunk_is_undetermined():
    body = bytearray(webp(dmi("DMI-ALLOWED")))
    at = body.index(b"XMP ")
    body[at:at + 4] = b"XMQ "
    result = read_embedded(bytes(body), None)
    assert not result.determined and "VP8X" in " ".join(result.problems)


# ------------------------------------------------------------------------ the packet scan

def test_unknown_binary_is_scanned():
    body = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100 + dmi("DMI-PROHIBITED") + b"\x00" * 50
    result = read_embedded(body, "video/mp4")
    assert result.container == "scan"
    assert terms(result) == {("dmi-prohibited", False)}


def test_unknown_binary_cut_packet_is_undetermined():
    body = b"\x00\x01binary" + dmi("DMI-PROHIBITED")[:-30]
    assert not read_embedded(body, "application/octet-stream").determined


def test_text_is_not_scanned():
    body = b"An article quoting XMP: " + dmi("DMI-PROHIBITED")
    for ctype in ("text/plain", "text/html; charset=utf-8", "application/json", None):
        result = read_embedded(body, ctype)
        assert result.container == "none" and result.determined and result.statements == ()


def test_container_of_prefers_magic_bytes():
    assert container_of(jpeg(), "text/html") == "jpeg"
    assert container_of(pdf(), None) == "pdf"


# ----------------------------------------------------------------- vectors written by ExifTool
# ExifTool 13.58 (exiftool/exiftool @ 38bdbace3037a89d2c332664fc60bddad118958a, run with perl
# 5.36 from the source tree), on 4x4 files written by Pillow 13.0 / a one-page pypdf PDF:
#   et-jpeg.jpg  -XMP-plus:DataMining="Prohibited"
#   et-png.png   -XMP-plus:DataMining="Prohibited for AI/ML training"
#   et-webp.webp -XMP-plus:DataMining="Prohibited except for search engine indexing"
#   et-tiff.tif  -XMP-plus:DataMining="Allowed"
#   et-gif.gif   -XMP-plus:DataMining="Prohibited, see plus:OtherConstraints"
#                -XMP-plus:OtherConstraints="No AI training without a licence"
#   et-pdf.pdf   -config tdm.config -XMP-plus:DataMining="Prohibited for Generative AI/ML
#                training" -XMP-tdm:reservation=1 -XMP-tdm:policy=https://example.com/
#                tdm-policy.json   (tdm.config: a UserDefined XMP table, namespace
#                http://www.w3.org/ns/tdmrep/; ExifTool writes PDF as an incremental update)
# Stored as base64(zlib.compress(file, 9)).
EXIFTOOL = {
    "et-jpeg.jpg": (
        "eNr7f+P/AwYBLzdPNwZGRgYGRiBk+P+Q2yqjpKTASl8/r1gvMSU/KVUvOT9XvyKxQN9Qz0Cfwca+oiAxOTu1RCEp"
        "NT0zz1b9/e796gqZKbbq4aa+Br4FzqkZmR5VRanBVX4hyVXZyZYp6vZ2XDYVVhW5BbmpJYkKFbk5ecVWFbbqYMOt"
        "gGyQsL66AlhJSbatumduYnqqlZVrRWZaSH5+joKhsZ6phTrQkKKUNKsgFzeoEUCerTrUreXl5Xrlxnr5Ren6hpaW"
        "lvoGRvpGRrpAFbrFlXkliRW6ecXKQBO4FMBmuKQWJxdlFpRk5ucpgPiJSfmlJbbq6lwKUKMLckqL4WYDw6G0OBUk"
        "BDY/JyVNH+hQcGgAjVRQsAFJWbkkliT6ZuZl5qXb4dZXlp+cmKTv4uupGxDk7+Hp5Bni6mKjj64f6Ep9NGcCPa8P"
        "9T2ICQ9NkP20B6OWjFoyasmoJaOWjFoyasmoJaOWKHAh2sGpecDGbzmwlfv/NoMzAwcbGzsbKwc7OzsnJwcXjwgv"
        "Dzc3j6SQML+IrJS8nKyUjIyCip66gpKOsoyMhrmmjoGhiYmJvLqlrYWRjZ6xiRHIEEZOTk4ebh4JXl4JI0UZRSOS"
        "wf8DDIIcDCwMLMyMSgxMgozMgoz/jzDIA9v4rIxgwAAFjEzMLKxs7BycXNxABVsFGJgYmZmZWJhZWVlYgLK1QHkG"
        "FkFWIUVDRzbhwER2pUIRo8aJCzmUnTYeFA26+EHFOKmoiZNLTFxCUkpVTV1DU8vE1MzcwtLK2cXVzd3D0ys4JDQs"
        "PCIyKjklNS09IzOruKS0rLyisqq5pbWtvaOza9LkKVOnTZ8xc9aixUuWLlu+YuWqTZu3bN22fcfOXYcOHzl67PiJ"
        "k6cuXb5y9dr1GzdvPXz0+MnTZ89fvHz18dPnL1+/ff/x8xfIX4wMzIwwgNVfgkB/MbGwMLOwg/zFyFQOUiDIwqpo"
        "yCbkGMieWCisZNTIIeI0ceHGg5zKxkEfRJOKLnKJqZg8VP0I8hrYZ8R5rIksn8E9hvDXLQYeZkZg5DELMtgzfDyl"
        "sWh/oc3h/zcBDjeUFA=="
    ),
    "et-png.png": (
        "eNp1kb9P4zAUx80PCS7Agm5isnQS1g2J2yJ01GpAhRRqqcmhEgkkBnATt1htnChxaeh4GzMr/wES/wDDbbcysLEz"
        "szKeU1UdkLBk+73n54+evt/bY+9ozdgwAABrtOm09b1Y7OV5fW7effsJwNw/4Z+pM7dFgjiyWBh3uJVHCShWbS9P"
        "WNDnCnZ4T0gbvT/9RVCENjrddktucsCvRHOc8pOx5wfjflAN0d6uUcuJBkRcMZhHA5mR3EYTLtFxUcYITlpU30Y0"
        "Yj1OSCMXXT+OB7C8ZW3vIA1Jwy5pO4dThM5sdKVUQjAejUbWaMuK0x4uV6tVXKrgSsXUHWZ2IxXLTZn90AQDThgO"
        "z4JUJErEEhY568RDZSNkwCk6GQyzGVtm1jDjRWnCH4RdrAfFZauENRLCWvFEHKaYK6SQvd2v/13HAetgx6Xmcft3"
        "k+5Tv+GYdeq2/HadetQ7quHPMD0y/jSzVgJPpSjCmbQ6mZnDpXYk1dJfPFy/adu+U6fu5/dBePnxDBZaq03wawmU"
        "X+aWzlfWXwtfacNzHvcv//wHpU2poA=="
    ),
    "et-webp.webp": (
        "eNrtlrFu00AYgC+0k3mELichOAnJviRVUWPFLW18aTzYWGmgWS/2JbWSnK34gk2W7p0YWZAY4AUYYUC8AANPgMTE"
        "xAMgEX5HUZEqMbKddZbu/+/u++7+6e973e71XYQu2Gn4LDwcGgihXfh3NgMy2ILoZQ29rj3chZXa4wf339xRH9DO"
        "K/T719Pv63ef11+/rX9kVzD23n/Ze4vQ0A/xI2C2j8uMR1Oh8EhMEumQnx8/EZzEDrk48Ot+1hGXSW+1EOerYBCt"
        "plErJsdHRru0y3k2F4rjcj6TuV06hMfpSNgwr9KU4M0WNXWIN+cTYdusTMaDNJ3hxr51cEgAsojHdt/tbhEQOeRS"
        "qcymtCgKq9i30sWENlqtFq03abNpwg4zfyEVL02Z3wOCgTcMV+TRIslUkkpcxXyULpVDiIG36Gy2zG/YMreWuahS"
        "G/4sHlO4KG1YdQpIjNvVku1yxf1EJnJy9O9zz9OIj6jre2bYf9LzTr0Bc0027LBwcM5O+p0eC868gHmBy4ZecNam"
        "t9HwAHrrBVAXui1MNb0pdHW1//9piZZoiZZoiZZoiZZoCTb+tshCQl9cQAP8B7JN2wA="
    ),
    "et-tiff.tif": (
        "eNrtVstOwkAUnQIxBlcufCxcTOJiEhM6PEIiDYUYi5EENFES1kM7QANMGzrYyme48jPca+In+Ql6BxskJC5cuJtp"
        "T3rm9t5z7szqtttnaBchtIeQkUMGsBzA2OAZI4uy8H0CZIGruMJOyjOA/TT/BWQO0riqOdzQOUp5EXCyofOWMdAx"
        "1D2j77W7eurNJGTuhEs84CNf2OTj9Z1g37NJv9otdsNLPvavl3N+v7zpucuJW/NIs5GvJ1YyC2dcMpzMpiKyEpsw"
        "LxhwC7gKU4JXKXJik/aMjbhltRJ/2AuCKS5VzOo5AZG5N7TunKtUAnY2GUsZWpTGcWzGFTOYj2ipVqvRYpmWywXI"
        "KESPQrKkIKJTUMjjlYbDI3fuh9IPBFZ7NggW0iYkj1PpcLqI1toiMhcRV6GV/tQbUmiUlswiBUmM6+qX5TDJur7w"
        "xajxe91D4LIBdbrtwkWnc9tvOXW6XQwt0q0e4eQ0Pbqi66tU5v+/tIk20SbaRJtoE22iTbQJzv8MwVzA5BvDiIvQ"
        "55/eLw0ozJ0="
    ),
    "et-gif.gif": (
        "eNpz93SzsExkYWBhaGQAgv8MMKD4nzvCN0DBJbEkEUjb2FcUJCZnp5YoJKWmZ+bZqr/fvV9dITPFVj3c1NfAt8A5"
        "NSPTo6ooNbjKLyS5KjvZMkXd3o7LpsKqIrcgN7UkUaEiNyev2KrCVj0xJT8p1QrIBgnrqyuAlZRk26p75iamp1pZ"
        "uVZkpoXk5+coGBrrmVqoAw0pSkmzCnJxgxoB5NmqZ5SUFFjp65eXl+uVG+vlF6XrG1paWuobGOkbGekCVegWV+aV"
        "JFbo5hUrA03gUgCb4ZJanFyUWVCSmZ+nAOInJuWXltiqq3MpQI0uyCkthpudV6xXWpwKEgKbn5OSpg90qL6hnoE+"
        "0EgFBRuQlBUoeHwz8zLz0u1w6yvLT05M0nfx9dQNCPL38HTyDHF10Q12dXX29wsOCXL09Aux0Uc3DW6Df0lGapFz"
        "fl5xSVFiZl5JMUgG4h/HnBIwB8LLyQT5wionMS/dVr1CNyU1LbE0p0Tdzi9fwdFTAawZaK5CeWZJBtDbCokKOZnJ"
        "qXnJqTb6EN0Qc/WRDIY6CosDIMqQwhMYS/rQaAIx4dEOcR+twaglo5aMWjJqyaglo5aMWjJqyaglClyIBntqHrCV"
        "Xg5sjjP+//f3z+9fP398//b1y+dPHz+8f/f2zetXL188f/b0yeNHDx/cv3f3zu1bN29cv3b1yuVLFy+cP3f2zOlT"
        "J08cP3b0yOFDBw/s37d3z+5dO3ds37Z1y+ZNGzesX7d2zepVK1csX7Z0yeJFCxfMnzd3zuxZM2dMnzZ1yuRJEyf0"
        "9/X2dHd1drS3tbY0NzU21NfV1lRXVVaUl5WWFBcVFuTn5eZkZ2VmpKelpiQnJSbEx8XGREdFRoSHhYYEBwUG+Pv5"
        "+nh7eXq4u7m6ODs5Otjb2dpYW1lamJuZmhgbGRro6+nqaGtpaqirqaooKykqyMvJykhLSUqIi4mKCAsJCvDz8fJw"
        "c3FysLOxsjAzMTIw6IA6NqC+DgMHJwMjh4zHBoWGBgZrAHaremE="
    ),
    "et-pdf.pdf": (
        "eNrtV8tu2kAU3Y/UfxipQm4XePzASbEgURJIYjUQRKhaqcpisAfixMxY4yEYfq2LfkIX/YP2A/oLvTYvF4iUTXe2"
        "QBqfufeccwcWcyq91mXV1G1U+fX7x09kYgOL4SNqNBDpSRFMfSbxu3geB6P36OQEMR5k21ahbDCPGSY9OmYJIhdi"
        "yhU2EfkYBgn+imtQ2Mf3hVZ7r/WCKhqJMVpy4Iy7X2ioHdRCpM8SMZU+dMAOlJMOC0J6LlKQNXQj/x5b2ec+o5YM"
        "jO1yp5KNkIEdZGwefOQ4toNHeIOZDl7u8C3m1PYw07T3sSNriylJw4jJfJC7cMFAlvSFUNjOXRGPjwQ21w4TRaXK"
        "/VlODVUq7dtLVDln45C303A0ECL6FAdUsdceKByPotBAsbNzCM4ewboUfE6HKoe+dG4QuWF8rB6wbTjHS4uS0ckb"
        "1DhNY+o/MYWHmb+m9ufbdw2HQVP77HSMTnzBHsLrhWR3i+7AXzz59UA7PUGN1E0n8QSkcDqJeOKmTY2CIebCOoOJ"
        "hvMS9dTUvAmM4rrr0bFp684HDUhkMHL7rcsVBbw1tQelYpeQ2Wymz2xdyDEx6/U6MSxiWVWoqCZzrmha5clbYEA4"
        "52ixxJdhrELBcfZOh2KqmpqG8Io6jqbJhpsn+jRhGZTzR8GIgFFi6gYBSowb2ZbbgiPshDzk45OX+56FT4ek1fGq"
        "vf7ttXfuDdqt6lW7e+Z1bgb9M6/rda8aZJcPXJMd268fRQWTQ6fEEwI7ksWrGeDFjUUU+vPcfgLVLKWTOGK6LyZZ"
        "bXW5rT8mgjdIoX7dLlnC5DPN7ZnLiiJ0cIolBL9pttz8RzLK//+UIqVIKVKKlCKlSClSipQiuHC7h7zQ1GbZ3R1W"
        "y8v/TpAyDwYpe4vXHGMbiJwt7hRD1l5QOnoxKEFIZc84S0iQRyptHvwbjnDNqheSlA2WVlHqL40kzS4="
    ),
}
EXIFTOOL_EXPECTED = {
    "et-jpeg.jpg": ("jpeg", {("dmi-prohibited", False)}),
    "et-png.png": ("png", {("dmi-prohibited-aimltraining", False)}),
    "et-webp.webp": ("webp", {("dmi-prohibited-exceptsearchengineindexing", False)}),
    "et-tiff.tif": ("tiff", {("dmi-allowed", True)}),
    "et-gif.gif": ("gif", {("dmi-prohibited-seeconstraint", False)}),
    "et-pdf.pdf": ("pdf", {("dmi-prohibited-genaimltraining", False)}),
}


def exiftool_file(name: str) -> bytes:
    return zlib.decompress(base64.b64decode("".join(EXIFTOOL[name])))


@pytest.mark.parametrize("name", sorted(EXIFTOOL))
def test_exiftool_vectors(name):
    kind, expected = EXIFTOOL_EXPECTED[name]
    result = read_embedded(exiftool_file(name), None)
    assert result.container == kind
    assert result.determined, result.problems
    assert terms(result) == expected
    # ExifTool stores the vocabulary URI, not the label it was given.
    dm = [v for v in result.values if v.property == "plus:DataMining"]
    assert dm and all(v.raw.startswith(VOCAB) for v in dm)


def test_exiftool_gif_constraint_and_pdf_tdmrep():
    gif_result = read_embedded(exiftool_file("et-gif.gif"), None)
    assert gif_result.other_constraints == ("No AI training without a licence",)
    pdf_result = read_embedded(exiftool_file("et-pdf.pdf"), None)
    assert pdf_result.tdm.reservation is TdmValue.RESERVED
    assert pdf_result.tdm.policy == "https://example.com/tdm-policy.json"
    # ExifTool appended an incremental update: two xref sections, the newest read.
    assert exiftool_file("et-pdf.pdf").count(b"startxref") == 2


@pytest.mark.parametrize("name", sorted(EXIFTOOL))
def test_exiftool_vectors_cut_anywhere_never_say_no_reservation(name):
    """Every prefix of a reserved file is either undetermined or still reserved."""
    body = exiftool_file(name)
    _, expected = EXIFTOOL_EXPECTED[name]
    step = max(1, len(body) // 97)
    for cut in [*range(1, 40), *range(40, len(body), step)]:
        result = read_embedded(body[:cut], None)
        if result.determined and result.container != "none":
            if name == "et-pdf.pdf" and b"%%EOF" in body[max(0, cut - 8):cut]:
                # Cut exactly at the end of the earlier revision: that *is* a whole PDF (the
                # one before ExifTool's update); only the transport can tell it was cut.
                assert result.statements == ()
                continue
            assert terms(result) == expected, (cut, result)


# --------------------------------------------------------------------------------------- EPUB

def epub(opf: str, *, extra: dict[str, bytes] | None = None, prefix: str | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")
        zf.writestr("META-INF/container.xml",
                    '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:'
                    'opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/'
                    'content.opf" media-type="application/oebps-package+xml"/></rootfiles>'
                    "</container>", compress_type=zipfile.ZIP_DEFLATED)
        pfx = f' prefix="{prefix}"' if prefix is not None else ""
        zf.writestr("OEBPS/content.opf",
                    f'<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" '
                    f'version="3.0"{pfx}><metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
                    f"<dc:title>T</dc:title>{opf}</metadata></package>",
                    compress_type=zipfile.ZIP_DEFLATED)
        for name, data in (extra or {}).items():
            zf.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def test_epub3_meta_property():
    body = epub('<meta property="tdm:reservation">1</meta><meta property="tdm:policy">'
                "https://example.com/p.json</meta>", prefix="tdm: http://www.w3.org/ns/tdmrep#")
    result = read_embedded(body, "application/epub+zip")
    assert result.container == "epub" and result.determined
    assert result.tdm.reservation is TdmValue.RESERVED
    assert result.tdm.policy == "https://example.com/p.json"
    assert result.statements[0].channel == "epub"


def test_epub3_other_prefix_bound_to_tdmrep():
    body = epub('<meta property="t:reservation">1</meta>',
                prefix="t: http://www.w3.org/ns/tdmrep#")
    assert read_embedded(body, None).tdm.reservation is TdmValue.RESERVED


def test_epub3_prefix_bound_elsewhere_is_not_tdmrep():
    body = epub('<meta property="tdm:reservation">1</meta>', prefix="tdm: http://example.com/x#")
    assert read_embedded(body, None).tdm is None


def test_epub2_meta_name():
    body = epub('<meta name="tdm:reservation" content="0"/>')
    result = read_embedded(body, None)
    assert result.tdm.reservation is TdmValue.NOT_RESERVED


def test_epub_without_tdm_is_determined():
    result = read_embedded(epub(""), None)
    assert result.determined and result.statements == ()


def test_epub_zip_bomb_is_undetermined():
    bomb = "<!-- " + " " * (EPUB_MEMBER_LIMIT * 20) + " -->"
    body = epub("<!-- x -->" + bomb)
    assert len(body) < 200_000
    result = read_embedded(body, None)
    assert not result.determined and "over" in " ".join(result.problems)


def test_epub_lying_sizes_are_bounded():
    body = bytearray(epub('<meta property="tdm:reservation">1</meta>' + " " * 5_000_000,
                          prefix="tdm: http://www.w3.org/ns/tdmrep#"))
    # Make the central directory claim a small uncompressed size for the OPF.
    cd = body.rindex(b"PK\x01\x02")
    while True:
        name_len = struct.unpack_from("<H", body, cd + 28)[0]
        if body[cd + 46:cd + 46 + name_len] == b"OEBPS/content.opf":
            body[cd + 24:cd + 28] = struct.pack("<I", 100)
            break
        cd = body.rindex(b"PK\x01\x02", 0, cd)
    result = read_embedded(bytes(body), None)
    assert not result.determined


def test_epub_cut_is_undetermined():
    body = epub('<meta property="tdm:reservation">1</meta>',
                prefix="tdm: http://www.w3.org/ns/tdmrep#")
    result = read_embedded(body[: len(body) // 2], "application/epub+zip")
    assert not result.determined


def test_epub_dtd_is_undetermined():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("mimetype", "application/epub+zip")
        zf.writestr("META-INF/container.xml", '<!DOCTYPE c [<!ENTITY e "x">]><container/>')
    assert not read_embedded(out.getvalue(), "application/epub+zip").determined


# ------------------------------------------------------------------------------ low-level API

def test_parse_xmp_rejects_entities():
    doc = parse_xmp(b'<!DOCTYPE x [<!ENTITY a "DMI-PROHIBITED">]>' + dmi("&a;"))
    assert not doc.ok


def test_find_xmp_reports_blocks():
    scan = find_xmp(png(dmi("DMI-ALLOWED")), "png")
    assert scan.complete and scan.packets[0].block.startswith("PNG iTXt XML:com.adobe.xmp")


def test_garbage_never_raises():
    for body in (b"", b"\xff\xd8\xff", PngImagePlugin._MAGIC, b"RIFF\x00\x00\x00\x00WEBP",
                 b"GIF89a", b"II*\x00\xff\xff\xff\xff", b"MM\x00*", b"%PDF-1.7\n",
                 b"PK\x03\x04" + b"\x00" * 26 + b"mimetypeapplication/epub+zip"):
        for n in range(len(body) + 1):
            read_embedded(body[:n] + b"\x00" * 5, None)


def test_archives_are_undetermined():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("a.txt", "hello")
    result = read_embedded(out.getvalue(), "application/zip")
    assert result.container == "scan" and not result.determined


def test_mutated_files_never_raise():
    import random

    rng = random.Random(13)
    bodies = [exiftool_file(n) for n in sorted(EXIFTOOL)]
    bodies += [pdf(dmi("DMI-PROHIBITED"), objstm=True), extended_jpeg(_big_ext()),
               epub('<meta property="tdm:reservation">1</meta>',
                    prefix="tdm: http://www.w3.org/ns/tdmrep#")]
    for _ in range(1500):
        body = bytearray(rng.choice(bodies))
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(len(body))
            op = rng.random()
            if op < 0.6:
                body[at] = rng.randrange(256)
            elif op < 0.8:
                del body[at:at + rng.randint(1, 50)]
            else:
                body[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 20)))
        read_embedded(bytes(body), None)


def test_utf16_packet_in_tiff():
    xmp = dmi("DMI-PROHIBITED").decode().replace("\ufeff", "")
    data = "\ufeff".encode("utf-16-le") + xmp.encode("utf-16-le")
    result = read_embedded(tiff(data), None)
    assert result.determined, result.problems
    assert terms(result) == {("dmi-prohibited", False)}


# ExifTool's own test image t/images/ExtendedXMP.jpg (exiftool/exiftool @ 38bdbace30, same
# licence as ExifTool): a main packet naming Extended XMP 04B9E480..., carried in one
# extension segment. Stored as base64(zlib.compress(file, 9)).
EXIFTOOL_EXTENDED_XMP = (
    "eNrVU02P0kAYni6JMcQDGM0uiclONOkcNnSm5WOhoSWwZV01bIiSrNcunYUGaJt2CJWzf8aLF48e1oM/wo/T/gJv"
    "XusUCoLoqokX315mnnne5337PjPRh+gKvB4w5qkYO4FkWu45lXruGIdjD9OQUSewXQcDUmxWW8UKKZJGgTTKBVI5"
    "lAtNQ24VFaXQLMoA7KQBEF7ZTg171oXa8V1r0qO+noawFgNdm42o3jGO4Xy1YC3ANKxhn+8MGvR822O8oJ5eQE+N"
    "43gZqrydMWWmno6uhMuf9mt6WJYIBrV66Jm9IWXwnPZtR0Nf3l4iaFsaOiu1Sds7ogP7ZObTZ7PTbm827FUtVOc1"
    "ViVgOB45gRpqaC6u8nUMYwTnFDbU0KOx2aeq2grti67rjuChVCKIayQdJwp8p6Gk1el0Kk0Lkuv3sVytVjFRsKLk"
    "OSMfvHCYGead4AFX4JP4YRAw3pvn7oRpCPFZJs2NvVOX0ZX8lnMOP8VoPvyEq56YQSv206LW83ZH/52hNfyLxL9y"
    "67sZPF9DUz5qbuDXf3bhAPi/jPPWpDf+nh/w61tIPIvfRmPCBq6vdwb2iPe6eC8JtqQc+dSMaxkmo7pCSCUvk7xC"
    "unJVLRVVubRI2mBtpHKphxMaBPBs4K5x1yq0Xet68SVhmbB6948nAYOrQZt9M/oMXoI7mUzudg7t7iJF3BcVSeQh"
    "6aU4dKMxD+O6EO7mcvAeFPf2xLIIxbJRPjgoc7xZahp/FNE7kL0J+JcS7oOdrJDKCtF78AQIAtiMG1sIyGwh2S0k"
    "+gRupQSunMqCOngD9qOP3wDLW5LB"
)


def test_exiftool_extended_xmp_test_image():
    body = zlib.decompress(base64.b64decode("".join(EXIFTOOL_EXTENDED_XMP)))
    scan = find_xmp(body, "jpeg")
    assert scan.complete and scan.problems == ()
    assert [p.block for p in scan.packets] == [
        "JPEG APP1 at byte 178", "JPEG Extended XMP 04B9E48040A30A6308713BD1E4223B41"]
    assert parse_xmp(scan.packets[1].data).ok
    result = read_embedded(body, "image/jpeg")
    assert result.determined and result.statements == ()
    # the extension segment removed: the main packet still names it -> undetermined
    at = body.index(b"http://ns.adobe.com/xmp/extension/")
    start = at - 4
    (length,) = struct.unpack_from(">H", body, start + 2)
    cut = body[:start] + body[start + 2 + length:]
    assert not read_embedded(cut, "image/jpeg").determined
