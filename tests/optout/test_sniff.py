"""Vector tables for crawler.optout.sniff (which bodies are scanned for HTML head reservations).

Provenance of the ported vectors:

* ``LADYBIRD_HTML`` and ``LADYBIRD_TEXT``: the byte strings of the "text/html" and
  "text/plain" sets in LadybirdBrowser/ladybird ``Tests/LibWeb/TestMimeSniff.cpp``
  (BSD-2-Clause), which exercise every HTML pattern of the WHATWG MIME Sniffing standard §7.1
  with the leading whitespace bytes and both tag-terminating bytes, and the BOM rows of §7.2.
* ``WPT_NOT_HTML``: payloads (hex) from web-platform-tests
  ``mimesniff/mime-type-sniffing/resources/unknown-mime-types.json`` (BSD-3-Clause), served
  there with no Content-Type; none of them is HTML, so none may be scanned.
* The rest are written here from the text of https://mimesniff.spec.whatwg.org/ (§3 binary
  data byte, whitespace byte; §4.4 parsing a MIME type; §5.2 resource header of 1445 bytes;
  §7.1 rules for identifying an unknown MIME type) and Fetch's "extract a MIME type".
"""

from __future__ import annotations

import codecs
import time

import pytest

from crawler.optout.sniff import (
    LABELLED_HTML,
    RESOURCE_HEADER_LIMIT,
    XHTML_NAMESPACE,
    XML_ROOT_LIMIT,
    is_binary,
    mime_essence,
    sniff_html,
)

# --- ported vectors ------------------------------------------------------------------------

LADYBIRD_HTML = [
    b"\x09\x09<!DOCTYPE HTML\x20",
    b"\x0a<HTML\x3e",
    b"\x0c<HEAD\x20",
    b"\x0d<SCRIPT>",
    b"\x20<IFRAME>",
    b"<H1>",
    b"<DIV>",
    b"<FONT>",
    b"<TABLE>",
    b"<A>",
    b"<STYLE>",
    b"<TITLE>",
    b"<B>",
    b"<BODY>",
    b"<BR>",
    b"<P>",
    b"<!-->",
]
LADYBIRD_TEXT = [b"\xfe\xff\x00\x00", b"\xff\xfe\x00\x00", b"\xef\xbb\xbf\x00", b"Hello world!"]
WPT_NOT_HTML = {
    "Windows Icon": "00 00 01 00",
    "BMP": "42 4D",
    "GIF89a": "47 49 46 38 39 61",
    "WebP with VP": "52 49 46 46 00 00 00 00 57 45 42 50 56 50",
    "PNG": "89 50 4E 47 0D 0A 1A 0A",
    "JPEG": "FF D8 FF",
    "Ogg container with null byte": "4F 67 67 53 00",
    "mp4 (first brand)": "00 00 00 10 66 74 79 70 6D 70 34 00 00 00 00 00",
    "GZIP archive": "1F 8B 08",
    "ZIP archive": "50 4B 03 04",
    "binary bytes": (
        "00 01 02 03 04 05 06 07 08 0B 0E 0F 10 11 12 13 14 15 16 17 18 19 1A 1C 1D 1E 1F"
    ),
    "no binary bytes (lower ASCII)": " ".join(f"{b:02X}" for b in range(0x20, 0x80)),
    "no binary bytes (upper ASCII)": " ".join(f"{b:02X}" for b in range(0x80, 0x100)),
    "Extended M3U playlist": "23 45 58 54 4D 33 55",
    "JPEG2000 codestream (J2K)": "FF 4F FF 51",
}

# Content-Type values under which the unknown/mislabelled rules apply.
UNKNOWN_TYPES = [
    None,
    "",
    "   ",
    "garbage",
    "text",
    "/html",
    "text/",
    "te xt/html",
    "*/*",
    "unknown/unknown",
    "application/unknown",
    "Application/Unknown; x=1",
]
MISLABELLED_TYPES = [
    "text/plain",
    "text/plain; charset=ISO-8859-1",
    "TEXT/PLAIN;charset=UTF-8",
    "text/x-unknown",
    "text/css",
    "application/octet-stream",
]
SPEC_PATTERNS = [
    "<!DOCTYPE HTML",
    "<HTML",
    "<HEAD",
    "<SCRIPT",
    "<IFRAME",
    "<H1",
    "<DIV",
    "<FONT",
    "<TABLE",
    "<A",
    "<STYLE",
    "<TITLE",
    "<B",
    "<BODY",
    "<BR",
    "<P",
    "<!--",
]


# --- the unknown-type rules (§7.1) -------------------------------------------------------------


@pytest.mark.parametrize("content_type", UNKNOWN_TYPES + MISLABELLED_TYPES)
@pytest.mark.parametrize("body", LADYBIRD_HTML, ids=lambda b: repr(b)[2:-1])
def test_ladybird_html_vectors_are_scanned(body: bytes, content_type: str | None) -> None:
    reason = sniff_html(body, content_type)
    assert reason is not None
    assert "beyond" not in reason


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/octet-stream"])
@pytest.mark.parametrize("body", LADYBIRD_TEXT, ids=lambda b: repr(b)[2:-1])
def test_ladybird_text_vectors_are_not_scanned(body: bytes, content_type: str | None) -> None:
    assert sniff_html(body, content_type) is None


@pytest.mark.parametrize("content_type", [None, "application/octet-stream"])
@pytest.mark.parametrize("payload", WPT_NOT_HTML.values(), ids=WPT_NOT_HTML.keys())
def test_wpt_non_html_payloads_are_not_scanned(payload: str, content_type: str | None) -> None:
    assert sniff_html(bytes.fromhex(payload), content_type) is None


@pytest.mark.parametrize("terminator", [b" ", b">"])
@pytest.mark.parametrize("pattern", SPEC_PATTERNS)
def test_every_pattern_any_case(pattern: str, terminator: bytes) -> None:
    for spelled in (pattern, pattern.lower(), pattern.title(), pattern.swapcase()):
        reason = sniff_html(spelled.encode() + terminator + b"rest", None)
        assert reason is not None, spelled
        assert reason == f"no Content-Type: body starts with {pattern}"


@pytest.mark.parametrize("whitespace", [b"\t", b"\n", b"\x0c", b"\r", b" ", b" \r\n\t\x0c" * 50])
def test_leading_whitespace_bytes_are_skipped(whitespace: bytes) -> None:
    assert sniff_html(whitespace + b"<html>", None) is not None


NOT_HTML = {
    "tag name continues": b"<HTMLX>",
    "b continues": b"<Bx>",
    "a continues": b"<abbr>",
    "p continues": b"<pre>",
    "h1 continues": b"<H10>",
    "h2 is no pattern": b"<h2>",
    "doctype of another kind": b"<!DOCTYPE svg>",
    "doctype html continues": b"<!DOCTYPE HTMLX>",
    "pattern at the very end": b"<html",
    "lone lt": b"<",
    "empty": b"",
    "text before": b"x<html>",
    "vertical tab is no whitespace byte": b"\x0b<html>",
    "nul before": b"\x00<html>",
    "nbsp before": b"\xa0<html>",
    "escaped markup": b"&lt;html&gt;",
    "json": b'{"html": "<html>"}',
    "pattern after the resource header": b" " * RESOURCE_HEADER_LIMIT + b"<html>",
    "meta continues": b"<metadata>",
    "xml declaration then rss": b'<?xml version="1.0"?><rss version="2.0">',
}


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/octet-stream"])
@pytest.mark.parametrize("body", NOT_HTML.values(), ids=NOT_HTML.keys())
def test_not_html(body: bytes, content_type: str | None) -> None:
    assert sniff_html(body, content_type) is None


def test_pattern_inside_the_resource_header_is_found() -> None:
    body = b" " * (RESOURCE_HEADER_LIMIT - len(b"<html>")) + b"<html>" + b"x" * 100
    assert sniff_html(body, None) is not None
    # One byte further and the terminator is outside the header: the header is all we read.
    assert sniff_html(b" " + body, None) is None


EXTENSIONS = {
    "html then newline": b"<html\nlang=en>",
    "html then tab": b"<HTML\tlang=en>",
    "br self closing": b"<br/>",
    "conditional comment": b"<!--[if lt IE 9]><html class=ie><![endif]-->",
    "comment then newline": b"<!--\nbuilt by x\n-->",
    "meta first": b'<meta charset="utf-8"><title>x</title>',
    "meta reservation first": b'<meta name="tdm-reservation" content="1">',
    "link first": b'<LINK rel="license" href="/l">',
}


@pytest.mark.parametrize("content_type", [None, "text/plain"])
@pytest.mark.parametrize("body", EXTENSIONS.values(), ids=EXTENSIONS.keys())
def test_documented_extensions_scan(body: bytes, content_type: str | None) -> None:
    reason = sniff_html(body, content_type)
    assert reason is not None
    assert reason.endswith("(beyond the mimesniff patterns)")


# --- byte order marks -------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["utf-8", "utf-16-le", "utf-16-be"])
@pytest.mark.parametrize(
    ("document", "scanned"),
    [
        ("<!DOCTYPE html><html>", True),
        ("\r\n  <html lang=en>", True),
        ("<p>x</p>", True),
        ("Hello <html>", False),
        ("", False),
    ],
)
def test_bom_then_patterns(codec: str, document: str, scanned: bool) -> None:
    bom = {"utf-8": codecs.BOM_UTF8, "utf-16-le": codecs.BOM_UTF16_LE,
           "utf-16-be": codecs.BOM_UTF16_BE}[codec]
    body = bom + document.encode(codec)
    reason = sniff_html(body, None)
    assert (reason is not None) is scanned
    if scanned:
        assert f"after a {codec.upper()} BOM" in reason
        assert sniff_html(body, "text/plain") is not None


def test_utf16_without_bom_is_not_html() -> None:
    # §7.1 matches bytes: UTF-16 without a BOM does not start with 0x3C 'h'...
    assert sniff_html("<html>".encode("utf-16-le"), None) is None


def test_utf16_odd_length_does_not_raise() -> None:
    assert sniff_html(codecs.BOM_UTF16_LE + b"<\x00p\x00>\x00\x00", None) is not None
    assert sniff_html(codecs.BOM_UTF16_BE + b"\x00", None) is None


# --- labels -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/html",
        "text/html; charset=utf-8",
        "TEXT/HTML",
        " text/html ;charset=x",
        "application/xhtml+xml",
        "Application/XHTML+XML; charset=utf-8",
        b"text/html; charset=iso-8859-1",
        "text/plain, text/html",
        "text/html, */*",
    ],
)
@pytest.mark.parametrize("body", [b"", b"\x00\x01\x02", b"Hello", b"<html>"])
def test_labelled_html_is_always_scanned(content_type: str | bytes, body: bytes) -> None:
    assert sniff_html(body, content_type) == LABELLED_HTML


@pytest.mark.parametrize(
    "content_type",
    [
        "image/png",
        "application/json",
        "application/pdf",
        "application/javascript",
        "video/mp4",
        "font/woff2",
        "multipart/form-data",
        "text/html, image/png",
    ],
)
def test_other_types_are_never_scanned(content_type: str) -> None:
    assert sniff_html(b"<!DOCTYPE html><html><head>", content_type) is None


def test_reason_names_the_label() -> None:
    assert sniff_html(b"<p>", None) == "no Content-Type: body starts with <P"
    assert sniff_html(b"<p>", "text/plain; charset=utf-8") == (
        "Content-Type text/plain: body starts with <P"
    )
    assert sniff_html(b"<p>", "unknown/unknown") == (
        "Content-Type unknown/unknown (unknown): body starts with <P"
    )
    assert sniff_html(b"<p>", "nonsense") == (
        "unusable Content-Type 'nonsense': body starts with <P"
    )
    assert sniff_html(b"<p>", "") == "empty Content-Type: body starts with <P"


# --- XML types --------------------------------------------------------------------------------

XML_TYPES = ["application/xml", "text/xml", "application/rss+xml", "image/svg+xml",
             "Application/Atom+XML; charset=utf-8"]
XHTML = f'<html xmlns="{XHTML_NAMESPACE}"><head><meta name="tdm-reservation" content="1"/>'
XML_HTML = {
    "bare root": b"<html>",
    "root with namespace": XHTML.encode(),
    "upper-case root": b"<HTML>",
    "self-closing root": b"<html/>",
    "root then newline": b"<html\n>",
    "declaration": b'<?xml version="1.0" encoding="UTF-8"?>\n' + XHTML.encode(),
    "declaration, comment, PI, doctype": (
        b'<?xml version="1.0"?>\n<!-- generated -->\n<?xml-stylesheet href="s.xsl"?>\n'
        b'<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
        b'"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\n' + XHTML.encode()
    ),
    "doctype with internal subset": (
        b'<!DOCTYPE html [ <!ENTITY gt2 ">>"> <!-- ] > \' --> <!ENTITY a \']>\'> ]>'
        b"<html>"
    ),
    "prefixed root": f'<h:html xmlns:h="{XHTML_NAMESPACE}">'.encode(),
    "other prefix, html local name": b'<x:html xmlns:x="urn:other">',
    "root in the XHTML namespace": f'<div xmlns="{XHTML_NAMESPACE}">'.encode(),
    "prefixed root in the XHTML namespace": f"<h:body xmlns:h='{XHTML_NAMESPACE}'>".encode(),
    "doctype html, other root": b"<!DOCTYPE html><svg>",
    "comment longer than the resource header": (
        b"<!--" + b"x" * (4 * RESOURCE_HEADER_LIMIT) + b"-->" + XHTML.encode()
    ),
    "utf-8 bom": codecs.BOM_UTF8 + b"<?xml version='1.0'?><html>",
    "utf-16 bom": codecs.BOM_UTF16_LE + '<?xml version="1.0"?><html>'.encode("utf-16-le"),
    "utf-16be bom": codecs.BOM_UTF16_BE + "<!-- c --><html>".encode("utf-16-be"),
    "utf-16le no bom": '<?xml version="1.0" encoding="UTF-16"?><html>'.encode("utf-16-le"),
    "utf-16be no bom": "<html>".encode("utf-16-be"),
    "html patterns": b"<!DOCTYPE html>\n<head><title>x</title>",
}
XML_NOT_HTML = {
    "rss": b'<?xml version="1.0"?><rss version="2.0"><channel>',
    "atom": b'<feed xmlns="http://www.w3.org/2005/Atom"><title>x</title>',
    "svg": b'<svg xmlns="http://www.w3.org/2000/svg"><title>x</title></svg>',
    "svg with an xhtml prefix declared": (
        f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:h="{XHTML_NAMESPACE}">'.encode()
    ),
    "root html-ish name": b"<htmlx>",
    "doctype of another root": b'<!DOCTYPE rss SYSTEM "x"><rss>',
    "not xml at all": b'{"html": true}',
    "text before root": b"hello <html>",
}


@pytest.mark.parametrize("content_type", XML_TYPES)
@pytest.mark.parametrize("body", XML_HTML.values(), ids=XML_HTML.keys())
def test_xml_with_html_root_is_scanned(body: bytes, content_type: str) -> None:
    assert sniff_html(body, content_type) is not None


@pytest.mark.parametrize("content_type", XML_TYPES)
@pytest.mark.parametrize("body", XML_NOT_HTML.values(), ids=XML_NOT_HTML.keys())
def test_xml_with_other_root_is_not_scanned(body: bytes, content_type: str) -> None:
    assert sniff_html(body, content_type) is None


def test_xml_reasons() -> None:
    assert sniff_html(b"<?xml version='1.0'?><h:html>", "application/xml") == (
        "Content-Type application/xml: XML root element <h:html>"
    )
    assert sniff_html(f'<div xmlns="{XHTML_NAMESPACE}">'.encode(), "text/xml") == (
        "Content-Type text/xml: XML root element <div> in the XHTML namespace"
    )


@pytest.mark.parametrize(
    "body",
    [
        b"<!--" + b"x" * XML_ROOT_LIMIT + b"--><rss>",
        b'<?xml version="1.0"?><!DOCTYPE rss [' + b"<!ENTITY a 'b'>" * XML_ROOT_LIMIT + b"]><rss>",
        b"<?pi " + b"x" * (2 * XML_ROOT_LIMIT) + b"?><html>",
    ],
    ids=["long comment", "long internal subset", "long PI"],
)
def test_xml_root_beyond_the_bound_scans_anyway(body: bytes) -> None:
    reason = sniff_html(body, "application/xml")
    assert reason == (
        f"Content-Type application/xml: XML root element not found within the first "
        f"{XML_ROOT_LIMIT} bytes; scanned to be safe"
    )


@pytest.mark.parametrize(
    "body", [b"", b"   ", b"<?xml version='1.0'?>", b"<!-- open", b"<!DOCTYPE x"]
)
def test_xml_without_a_root_scans_anyway(body: bytes) -> None:
    reason = sniff_html(body, "text/xml")
    assert reason == "Content-Type text/xml: XML root element not found; scanned to be safe"


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/octet-stream", "*/*"])
def test_xml_declaration_in_unlabelled_body_gets_the_root_check(content_type: str | None) -> None:
    assert sniff_html(b'<?xml version="1.0"?>\n' + XHTML.encode(), content_type) is not None
    assert sniff_html(b'  <?XML version="1.0"?><html>', content_type) is not None
    assert sniff_html(b'<?xml version="1.0"?><rss>', content_type) is None


# --- MIME type parsing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "essence"),
    [
        (None, None),
        ("", None),
        ("text/html", "text/html"),
        ("Text/HTML;Charset=UTF-8", "text/html"),
        ("  text/html  ", "text/html"),
        ("text/html ; charset=x", "text/html"),
        (b"text/plain", "text/plain"),
        (b"text/\xe9", None),
        ("text / html", None),
        ("text/ html", None),
        ("text", None),
        ("/html", None),
        ("text/", None),
        ("*/*", None),
        ("text/plain, text/html", "text/html"),
        ("text/html, */*", "text/html"),
        ("text/html, nonsense", "text/html"),
        ('text/plain; note="a, text/csv", text/html', "text/html"),
        ('text/html; note="a, text/csv"', "text/html"),
        ("application/vnd.api+json", "application/vnd.api+json"),
    ],
)
def test_mime_essence(value: str | bytes | None, essence: str | None) -> None:
    assert mime_essence(value) == essence


# --- binary data (§7.2) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "binary"),
    [
        (bytes.fromhex(WPT_NOT_HTML["binary bytes"]), True),
        (bytes.fromhex(WPT_NOT_HTML["no binary bytes (lower ASCII)"]), False),
        (bytes.fromhex(WPT_NOT_HTML["no binary bytes (upper ASCII)"]), False),
        (b"\x00", True),
        (b"\x1b", False),  # ESC is not a binary data byte (ISO-2022-JP)
        (b"\x0c\t\r\n", False),
        (b"", False),
        *((body, False) for body in LADYBIRD_TEXT),
        (b"x" * RESOURCE_HEADER_LIMIT + b"\x00", False),
    ],
)
def test_is_binary(body: bytes, binary: bool) -> None:
    assert is_binary(body) is binary


# --- robustness -------------------------------------------------------------------------------

HOSTILE = {
    "10 MB of comment openers": b"<!--" * (10 * 1024 * 1024 // 4),
    "10 MB of quotes in a doctype": b"<!DOCTYPE x [" + b"'" * (10 * 1024 * 1024),
    "10 MB of lt": b"<" * (10 * 1024 * 1024),
    "10 MB junk": bytes(range(256)) * (10 * 1024 * 1024 // 256),
    "many attributes": b"<svg " + b'a="b" ' * (XML_ROOT_LIMIT // 6) + b">",
}


@pytest.mark.parametrize("body", HOSTILE.values(), ids=HOSTILE.keys())
@pytest.mark.parametrize("content_type", [None, "text/plain", "application/xml"])
def test_hostile_input_returns_quickly(body: bytes, content_type: str | None) -> None:
    started = time.perf_counter()
    sniff_html(body, content_type)
    assert time.perf_counter() - started < 1.0


def test_body_type_is_checked() -> None:
    with pytest.raises(TypeError):
        sniff_html("<html>", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sniff_html(b"<html>", 3)  # type: ignore[arg-type]


def test_bytearray_and_memoryview_bodies() -> None:
    assert sniff_html(bytearray(b"<html>"), None) is not None
    assert sniff_html(memoryview(b"<html>"), "text/plain") is not None
