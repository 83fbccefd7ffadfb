"""Whether a response body must be scanned as HTML for reservations, from its bytes and label.

Sans-IO: :func:`sniff_html` takes the body bytes and the ``Content-Type`` header value and
returns a short reason string when the body must go through
:func:`crawler.optout.htmlmeta.parse_html_head` (``<meta name="tdm-reservation">``,
``<meta name="robots" content="noai">`` ...), or None when it need not.

It follows the WHATWG MIME Sniffing standard (https://mimesniff.spec.whatwg.org/) as far as
reservations need it:

* ``text/html`` and ``application/xhtml+xml`` are always scanned (:data:`LABELLED_HTML`).
* No ``Content-Type``, an unparseable one, or ``*/*``, ``unknown/unknown``,
  ``application/unknown`` (§7.1 "rules for identifying an unknown MIME type"): the body is
  scanned when its resource header (the first :data:`RESOURCE_HEADER_LIMIT` = 1445 bytes),
  after any leading whitespace bytes (0x09 0x0A 0x0C 0x0D 0x20), starts with one of the HTML
  patterns of §7.1 -- ``<!DOCTYPE HTML``, ``<HTML``, ``<HEAD``, ``<SCRIPT``, ``<IFRAME``,
  ``<H1``, ``<DIV``, ``<FONT``, ``<TABLE``, ``<A``, ``<STYLE``, ``<TITLE``, ``<B``, ``<BODY``,
  ``<BR``, ``<P``, ``<!--`` -- ASCII case-insensitively, each followed by a tag-terminating
  byte (0x20 or 0x3E).  A UTF-8 or UTF-16 byte order mark is skipped first (the body is decoded
  for UTF-16).  A body that starts with ``<?xml`` gets the XML root check below.
* Mislabelled text: any other ``text/*`` type and ``application/octet-stream`` get the same
  pattern check.  This is deliberately more than a browser does: §7.2 never turns
  ``text/plain`` into HTML (and the "Apache bug" rule exists to keep it so), because rendering
  a text file as HTML would be a security hole.  A crawler renders nothing; but a page we store
  as text still carries its author's meta tags, and a reservation written in them is still the
  author's reservation -- so the crawler reads them.
* XML types (``application/xml``, ``text/xml`` and any ``*/*+xml``): the body is scanned when
  its root element is ``html`` (any prefix, any case), is in the XHTML namespace
  (``http://www.w3.org/1999/xhtml``), or the document type declaration names ``html``; the
  XML declaration, processing instructions, comments and the doctype (internal subset
  included) before the root are skipped.  That prolog can be long, so the root is looked for in
  the first :data:`XML_ROOT_LIMIT` bytes (64 KiB), not only the resource header; when it is not
  found there (or the prolog is never closed), the body is scanned anyway: scanning a non-HTML
  XML document for HTML meta tags finds nothing, so over-scanning is harmless, whereas missing
  an XHTML page would miss its reservations.  An XML type whose body starts like HTML by the
  patterns above is scanned as well.
* Every other type (images, ``application/json``, ``application/pdf``...) is not scanned.

Deviations from the standard, all towards scanning more
-------------------------------------------------------
* The HTML patterns are applied in every context (the standard applies them only when the
  "sniff-scriptable" flag is set, i.e. for browsing contexts) and to mislabelled ``text/*``.
* Besides 0x20 and 0x3E, the other HTML whitespace bytes (0x09 0x0A 0x0C 0x0D) and ``/`` also
  end a pattern's tag name (``<html\\n lang=en>``, ``<br/>``), any byte may follow ``<!--``
  (``<!--[if IE]>``, ``<!--\\n``), and ``<META`` and ``<LINK`` are patterns too (a head
  fragment that starts with the very element a reservation is written in); the reason then
  says "beyond the mimesniff patterns".
* The ``<?xml`` pattern is matched case-insensitively.

``Content-Type`` is read as Fetch's "extract a MIME type" does: comma-separated values, the
last parseable one that is not ``*/*`` wins, parameters ignored.
"""

from __future__ import annotations

__all__ = [
    "LABELLED_HTML",
    "RESOURCE_HEADER_LIMIT",
    "XHTML_NAMESPACE",
    "XML_ROOT_LIMIT",
    "is_binary",
    "mime_essence",
    "sniff_html",
]

#: The reason :func:`sniff_html` gives for ``text/html`` and ``application/xhtml+xml``.
LABELLED_HTML = "labelled HTML"
#: Bytes of the body the patterns look at (mimesniff §5.2 "read the resource header").
RESOURCE_HEADER_LIMIT = 1445
#: Bytes of an XML body searched for its root element.
XML_ROOT_LIMIT = 64 * 1024
#: The XHTML namespace name.
XHTML_NAMESPACE = "http://www.w3.org/1999/xhtml"

# mimesniff §3 "whitespace byte" and §7.1 "tag-terminating byte".
_WHITESPACE_BYTES = b"\t\n\x0c\r "
_TAG_TERMINATING = b" >"
# Extension: whatever else ends a tag name for the HTML tokeniser.
_LENIENT_TERMINATING = b"\t\n\x0c\r/"
# §7.1 HTML patterns (upper case; matched against the upper-cased header).
_HTML_PATTERNS = (
    b"<!DOCTYPE HTML",
    b"<HTML",
    b"<HEAD",
    b"<SCRIPT",
    b"<IFRAME",
    b"<H1",
    b"<DIV",
    b"<FONT",
    b"<TABLE",
    b"<A",
    b"<STYLE",
    b"<TITLE",
    b"<B",
    b"<BODY",
    b"<BR",
    b"<P",
    b"<!--",
)
_EXTRA_PATTERNS = (b"<META", b"<LINK")
_XML_PATTERN = b"<?XML"
# §3 "binary data byte".
_BINARY_BYTES = frozenset(
    [*range(0x00, 0x09), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20)]
)
_BOMS = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
)
_UNKNOWN_ESSENCES = frozenset({"*/*", "unknown/unknown", "application/unknown"})
_HTML_ESSENCES = frozenset({"text/html", "application/xhtml+xml"})
_XML_ESSENCES = frozenset({"text/xml", "application/xml"})
# Fetch/MIME Sniffing "HTTP token code points" and "HTTP whitespace".
_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
_HTTP_WHITESPACE = "\t\n\r "
_XML_WHITESPACE = "\t\n\x0c\r "
_NAME_END = frozenset(_XML_WHITESPACE + "/>")


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _as_bytes(body: object, limit: int) -> bytes:
    """The first ``limit`` bytes of ``body`` (without copying the rest)."""
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError(f"body must be bytes, not {type(body).__name__}")
    return bytes(memoryview(body)[:limit])


def _parse_mime_essence(value: str) -> str | None:
    """mimesniff §4.4 "parse a MIME type", essence only (``type/subtype``, lower case)."""
    value = value.strip(_HTTP_WHITESPACE)
    slash = value.find("/")
    if slash <= 0:
        return None
    mime_type = value[:slash]
    rest = value[slash + 1 :]
    semicolon = rest.find(";")
    subtype = (rest if semicolon < 0 else rest[:semicolon]).rstrip(_HTTP_WHITESPACE)
    if not subtype:
        return None
    if not all(ch in _TOKEN_CHARS for ch in mime_type + subtype):
        return None
    return f"{mime_type}/{subtype}".lower()


def _split_header_values(value: str) -> list[str]:
    """Split a header value on commas outside double-quoted strings (Fetch "get, decode, and
    split")."""
    values: list[str] = []
    current: list[str] = []
    quoted = False
    escaped = False
    for ch in value:
        if quoted:
            current.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
            current.append(ch)
        elif ch == ",":
            values.append("".join(current))
            current = []
        else:
            current.append(ch)
    values.append("".join(current))
    return values


def mime_essence(content_type: str | bytes | None) -> str | None:
    """The essence (``type/subtype``, lower-cased) of a ``Content-Type`` header value, or None
    when it is absent or unusable.

    As Fetch's "extract a MIME type": the value may hold several comma-separated MIME types;
    the last parseable one whose essence is not ``*/*`` wins.  Bytes are read as ISO-8859-1
    (header bytes are not UTF-8 by definition).
    """
    if content_type is None:
        return None
    if isinstance(content_type, (bytes, bytearray, memoryview)):
        content_type = bytes(content_type).decode("latin-1")
    if not isinstance(content_type, str):
        raise TypeError(
            f"content_type must be str, bytes or None, not {type(content_type).__name__}"
        )
    essence: str | None = None
    for part in _split_header_values(content_type):
        parsed = _parse_mime_essence(part)
        if parsed is None or parsed == "*/*":
            continue
        essence = parsed
    return essence


def is_binary(body: bytes) -> bool:
    """mimesniff §7.2 "rules for distinguishing if a resource is text or binary": True when the
    resource header holds a binary data byte and does not start with a UTF-8/UTF-16 BOM."""
    header = _as_bytes(body, RESOURCE_HEADER_LIMIT)
    if header[:2] in (b"\xfe\xff", b"\xff\xfe") or header[:3] == b"\xef\xbb\xbf":
        return False
    return any(byte in _BINARY_BYTES for byte in header)


def _header_for_patterns(body: bytes) -> tuple[bytes, str]:
    """The resource header as ASCII-comparable upper-case bytes, BOM removed (UTF-16 decoded,
    non-ASCII characters as ``?``), and a note naming the BOM if there was one."""
    header = body[:RESOURCE_HEADER_LIMIT]
    note = ""
    for bom, encoding in _BOMS:
        if header.startswith(bom):
            note = f" after a {encoding.upper()} BOM"
            header = header[len(bom) :]
            if encoding != "utf-8":
                header = (
                    header[: len(header) // 2 * 2]
                    .decode(encoding, "replace")
                    .encode("ascii", "replace")
                )
            break
    return header.upper(), note


def _match_html_pattern(header: bytes) -> tuple[str, bool] | None:
    """(pattern, within the standard) for the first HTML pattern the upper-cased header starts
    with after leading whitespace bytes, or None."""
    start = len(header) - len(header.lstrip(_WHITESPACE_BYTES))
    best: tuple[str, bool] | None = None
    for pattern in _HTML_PATTERNS + _EXTRA_PATTERNS:
        if not header.startswith(pattern, start):
            continue
        end = start + len(pattern)
        following = header[end : end + 1]
        if not following:
            continue  # the pattern needs one more byte than the header has
        standard = pattern in _HTML_PATTERNS
        if following in (b" ", b">") and standard:
            return pattern.decode("ascii"), True
        # Extension: more tag-name terminators, any byte after "<!--", <META and <LINK.
        if following in (b" ", b">") or following in _LENIENT_TERMINATING or pattern == b"<!--":
            best = best or (pattern.decode("ascii"), False)
    return best


def _starts_with_xml_declaration(header: bytes) -> bool:
    return header.lstrip(_WHITESPACE_BYTES).startswith(_XML_PATTERN)


def _decode_for_xml(data: bytes) -> str:
    """Enough of a decode to find ASCII markup: BOM or UTF-16 ``<?`` autodetection, else
    ISO-8859-1 (byte-transparent; the names compared are ASCII)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            rest = data[len(bom) :]
            if encoding != "utf-8":
                rest = rest[: len(rest) // 2 * 2]
                return rest.decode(encoding, "replace")
            return rest.decode("latin-1")
    # XML 1.0 Appendix F: UTF-16 without a BOM that starts with '<' (00 3C / 3C 00).
    if data.startswith(b"\x00<") and data[2:3] == b"\x00":
        return data[: len(data) // 2 * 2].decode("utf-16-be", "replace")
    if data.startswith(b"<\x00") and data[3:4] == b"\x00":
        return data[: len(data) // 2 * 2].decode("utf-16-le", "replace")
    return data.decode("latin-1")


def _skip_doctype(text: str, pos: int) -> int:
    """Index after the ``>`` that closes the doctype starting at ``pos``, or -1."""
    end = len(text)
    depth = 0
    i = pos + 9  # len("<!DOCTYPE")
    while i < end:
        ch = text[i]
        if ch in "\"'":
            close = text.find(ch, i + 1)
            if close < 0:
                return -1
            i = close + 1
            continue
        if depth and text.startswith("<!--", i):
            close = text.find("-->", i + 4)
            if close < 0:
                return -1
            i = close + 3
            continue
        if depth and text.startswith("<?", i):
            close = text.find("?>", i + 2)
            if close < 0:
                return -1
            i = close + 2
            continue
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth = max(depth - 1, 0)
        elif ch == ">" and depth == 0:
            return i + 1
        i += 1
    return -1


def _read_name(text: str, pos: int) -> str:
    end = pos
    while end < len(text) and text[end] not in _NAME_END:
        end += 1
    return text[pos:end]


def _local(name: str) -> str:
    return name.rpartition(":")[2].lower()


def _root_attributes(text: str, pos: int) -> dict[str, str]:
    """Attributes of the start tag whose name ends at ``pos`` (quoted values only, as XML
    requires); stops at ``>`` or the end of the text."""
    attrs: dict[str, str] = {}
    end = len(text)
    i = pos
    while i < end:
        while i < end and text[i] in _XML_WHITESPACE + "/":
            i += 1
        if i >= end or text[i] == ">":
            break
        name_start = i
        while i < end and text[i] not in _XML_WHITESPACE + "=/>":
            i += 1
        name = text[name_start:i]
        while i < end and text[i] in _XML_WHITESPACE:
            i += 1
        if i < end and text[i] == "=":
            i += 1
            while i < end and text[i] in _XML_WHITESPACE:
                i += 1
            if i < end and text[i] in "\"'":
                close = text.find(text[i], i + 1)
                if close < 0:
                    break
                attrs.setdefault(name, text[i + 1 : close])
                i = close + 1
                continue
        if not name:
            i += 1
    return attrs


def _xml_root_reason(body: bytes, label: str) -> str | None:
    """The reason to scan an XML(-looking) body, by its root element, or None."""
    text = _decode_for_xml(body[:XML_ROOT_LIMIT])
    cut = len(body) > XML_ROOT_LIMIT
    end = len(text)
    pos = 0
    doctype: str | None = None
    while True:
        while pos < end and text[pos] in _XML_WHITESPACE:
            pos += 1
        if pos >= end:
            break
        if text.startswith("<?", pos):
            close = text.find("?>", pos + 2)
            if close < 0:
                break
            pos = close + 2
        elif text.startswith("<!--", pos):
            close = text.find("-->", pos + 4)
            if close < 0:
                break
            pos = close + 3
        elif text[pos : pos + 9].upper() == "<!DOCTYPE":
            name_start = pos + 9
            while name_start < end and text[name_start] in _XML_WHITESPACE:
                name_start += 1
            doctype = _read_name(text, name_start).rstrip("[")
            close = _skip_doctype(text, pos)
            if close < 0:
                break
            pos = close
        elif text.startswith("<", pos) and pos + 1 < end and text[pos + 1] not in _NAME_END:
            name = _read_name(text, pos + 1)
            if _local(name) == "html":
                return f"{label}: XML root element <{_clip(name)}>"
            prefix = name.partition(":")[0] if ":" in name else None
            attrs = _root_attributes(text, pos + 1 + len(name))
            namespace = attrs.get("xmlns" if prefix is None else f"xmlns:{prefix}")
            if namespace is not None and namespace.strip(_XML_WHITESPACE) == XHTML_NAMESPACE:
                return f"{label}: XML root element <{_clip(name)}> in the XHTML namespace"
            if doctype is not None and _local(doctype) == "html":
                return f"{label}: XML document type {_clip(doctype)!r}"
            return None
        else:
            # Text or markup that cannot come before an XML root: not XML; nothing to find.
            if doctype is not None and _local(doctype) == "html":
                return f"{label}: XML document type {_clip(doctype)!r}"
            return None
    # Ran out of input (or of the bound) before the root element: scan to be safe.
    if doctype is not None and _local(doctype) == "html":
        return f"{label}: XML document type {_clip(doctype)!r}"
    if cut:
        return (
            f"{label}: XML root element not found within the first {XML_ROOT_LIMIT} bytes; "
            "scanned to be safe"
        )
    return f"{label}: XML root element not found; scanned to be safe"


def _reason(body: bytes, label: str, *, xml: bool) -> str | None:
    if xml:
        # Labelled XML: the root decides; failing that, the HTML patterns (HTML served as XML).
        reason = _xml_root_reason(body, label)
        if reason is not None:
            return reason
    header, bom_note = _header_for_patterns(body)
    match = _match_html_pattern(header)
    if match is not None:
        pattern, standard = match
        extra = "" if standard else " (beyond the mimesniff patterns)"
        return f"{label}: body starts with {pattern}{bom_note}{extra}"
    if not xml and _starts_with_xml_declaration(header):
        return _xml_root_reason(body, label)
    return None


def sniff_html(body: bytes, content_type: str | bytes | None) -> str | None:
    """Why ``body`` must be scanned for HTML head reservations, or None when it need not be.

    ``content_type`` is the ``Content-Type`` header value as received (None when absent; bytes
    are read as ISO-8859-1).  The reason is :data:`LABELLED_HTML` for ``text/html`` and
    ``application/xhtml+xml``; otherwise a short sentence naming the label and what was found
    (for the audit log).  Only the first :data:`RESOURCE_HEADER_LIMIT` bytes are matched against
    the HTML patterns, and at most :data:`XML_ROOT_LIMIT` bytes are searched for an XML root;
    the cost is bounded whatever the body.  Raises TypeError only for a non-bytes ``body`` or a
    ``content_type`` of another type; never for any bytes.
    """
    # One byte past the XML bound tells "not found within the bound" from "document ended".
    data = _as_bytes(body, XML_ROOT_LIMIT + 1)
    essence = mime_essence(content_type)
    if essence in _HTML_ESSENCES:
        return LABELLED_HTML
    if essence is None:
        if content_type is None:
            label = "no Content-Type"
        else:
            shown = content_type
            if isinstance(shown, (bytes, bytearray, memoryview)):
                shown = bytes(shown).decode("latin-1")
            shown = shown.strip(_HTTP_WHITESPACE)
            label = f"unusable Content-Type {_clip(shown)!r}" if shown else "empty Content-Type"
        return _reason(data, label, xml=False)
    if essence in _UNKNOWN_ESSENCES:
        return _reason(data, f"Content-Type {essence} (unknown)", xml=False)
    if essence in _XML_ESSENCES or essence.endswith("+xml"):
        return _reason(data, f"Content-Type {essence}", xml=True)
    if essence.startswith("text/") or essence == "application/octet-stream":
        return _reason(data, f"Content-Type {essence}", xml=False)
    return None
