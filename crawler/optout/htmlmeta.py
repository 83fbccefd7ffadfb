"""The ``<meta>`` and ``<link>`` elements of an HTML document's head, from its bytes.

Sans-IO: :func:`parse_html_head` takes the body bytes of an HTML response (and, if known, the
charset from its ``Content-Type``) and returns a frozen :class:`HtmlHead`.  The TDMRep, robots
meta (``noai``), RSL and Content-Usage readers all look at the same few head elements, so the
document is tokenised once here and each protocol module picks what it needs.

Scope
-----
* Only the head is read.  Scanning stops at the first ``</head>`` end tag or ``<body>``
  (or ``<frameset>``) start tag: ``<meta>`` and ``<link>`` are head elements (WHATWG HTML §4.2
  "Document metadata"), and TDMRep and the robots meta conventions define them there, so a
  ``<meta name="tdm-reservation">`` further down the page -- typically inside user content such
  as a blog comment or a code sample -- is ignored on purpose.  Any other tag (a ``<div>`` or a
  tracking-pixel ``<img>`` inside ``<noscript>``, common in heads) does *not* end the scan,
  unlike a browser's tree builder, which would open an implied body there.
* At most :data:`HTML_HEAD_LIMIT` bytes (1 MiB) are read; the rest is dropped with a problem.
* :attr:`HtmlHead.complete` says whether the whole head was seen: True when the scan stopped
  at the end of the head (``</head>``, ``<body>``, ``<frameset>``, or ``<plaintext>``, after
  which nothing is markup) or when the whole document was read (it ended inside the head, so
  nothing more can follow); False when the head was still open at :data:`HTML_HEAD_LIMIT`, at
  the end of a body the caller marked ``truncated=True`` (a cut download, a body that could not
  be fully decoded), or when the scan aborted on an internal error.  A reservation may hide in
  the unseen part of an incomplete head, so a fail-closed caller must not read "no
  ``tdm-reservation`` meta found" as "none there" when ``complete`` is False.

Tokenising
----------
The tokeniser follows the WHATWG HTML tokenisation rules for what matters here (tag names,
attribute names and the three attribute value syntaxes, comments, bogus comments, doctype, the
raw-text content of ``script``/``style``/``title``/``textarea``/...), so a ``>`` inside a quoted
attribute value, a tag inside a comment or a ``<meta>`` written inside a ``<script>`` string are
handled as a browser handles them.  Every step either consumes input or stops, so the cost is
linear in the input size whatever the bytes are.

Deviations
----------
* :mod:`html.parser` is not used: the Python 3.11 version (before the CVE-2025-6069 fix) takes
  quadratic time on inputs such as ``"<a " * 300_000`` (measured: minutes for 1 MiB).
* ``</head>`` ends the scan even though a browser would still move a ``<meta>`` that comes
  between ``</head>`` and ``<body>`` into the head (a parse error in the document).
* ``<noscript>`` is read as ordinary markup (a crawler runs no scripts, and the "scripting
  disabled" parse of a head keeps ``<meta>``/``<link>`` inside it); ``<template>`` contents are
  read too; the "script data escaped" states (``<!--`` inside ``<script>``) are not modelled.
* Encoding: a byte order mark wins, then the ``encoding`` argument (``latin1``/``ascii`` labels
  mean windows-1252, as in the WHATWG Encoding standard; an unknown label falls back with a
  problem), then UTF-8 (invalid bytes become U+FFFD).  ``<meta charset>`` is not sniffed: the values read from head elements are
  nearly always ASCII, which every ASCII-compatible charset decodes alike.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable
from dataclasses import dataclass
from html import unescape
from html.entities import html5 as _HTML5_ENTITIES
from typing import Protocol

__all__ = ["HTML_HEAD_LIMIT", "HtmlHead", "HtmlLink", "HtmlMeta", "parse_html_head"]

#: Bytes of the document that are read at most.
HTML_HEAD_LIMIT = 1 << 20

# WHATWG "ASCII whitespace" as the tokeniser sees it (CR is gone after newline normalisation).
_WS = "\t\n\f\r "
_TAG_NAME = re.compile(r"[A-Za-z][^\t\n\f\r />]*")
# Attribute syntax pieces (WHATWG "before attribute name" skips whitespace and stray '/';
# an attribute name may start with '=' and runs to whitespace, '/', '>' or '=').
_BEFORE_ATTRIBUTE = re.compile(r"[\t\n\f\r /]*")
_ATTRIBUTE_NAME = re.compile(r"[^\t\n\f\r />][^\t\n\f\r />=]*")
_SPACES = re.compile(r"[\t\n\f\r ]*")
_UNQUOTED_VALUE = re.compile(r"[^\t\n\f\r >]*")
# Comment end: "-->", or "--!>" (comment end bang state).
_COMMENT_END = re.compile(r"--!?>")
# Character references inside an attribute value.
_CHARREF = re.compile(r"&(#[xX][0-9A-Fa-f]+;?|#[0-9]+;?|[A-Za-z][A-Za-z0-9]*;?)")
# Elements whose content is text, not markup (WHATWG RAWTEXT / RCDATA / script data).
_RAW_TEXT_ELEMENTS = frozenset(
    {"script", "style", "title", "textarea", "xmp", "iframe", "noembed", "noframes"}
)
_RAW_TEXT_END = {
    name: re.compile(rf"</{name}[\t\n\f\r />]", re.IGNORECASE) for name in _RAW_TEXT_ELEMENTS
}
_HEAD_END_TAGS = frozenset({"head"})
_BODY_START_TAGS = frozenset({"body", "frameset"})
_WINDOWS_1252_LABELS = frozenset(
    {
        "ansi_x3.4-1968",
        "ascii",
        "cp1252",
        "cp819",
        "csisolatin1",
        "ibm819",
        "iso-8859-1",
        "iso-ir-100",
        "iso8859-1",
        "iso88591",
        "iso_8859-1",
        "iso_8859-1:1987",
        "l1",
        "latin1",
        "us-ascii",
        "windows-1252",
        "x-cp1252",
    }
)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
)


@dataclass(frozen=True, slots=True)
class HtmlMeta:
    """One ``<meta>`` element that has a ``name``, ``property`` or ``http-equiv`` attribute.

    ``name``, ``property`` and ``http_equiv`` are lower-cased (ASCII) and stripped; ``content``
    is the attribute value as the browser sees it (character references decoded, newlines
    normalised, not stripped), ``""`` when absent.  ``line`` is the 1-based line of the ``<``.
    """

    name: str | None
    property: str | None
    http_equiv: str | None
    content: str
    line: int


@dataclass(frozen=True, slots=True)
class HtmlLink:
    """One ``<link>`` element: ``rel`` split on whitespace and lower-cased, ``href`` stripped of
    surrounding whitespace (``""`` when absent), ``type`` lower-cased and stripped (or None)."""

    rel: tuple[str, ...]
    href: str
    type: str | None
    line: int


@dataclass(frozen=True, slots=True)
class HtmlHead:
    """The head elements of one document, in document order, and what went wrong reading it."""

    metas: tuple[HtmlMeta, ...]
    links: tuple[HtmlLink, ...]
    problems: tuple[str, ...]
    #: Whether the head was scanned to its end (see the module docstring): False means head
    #: elements after the scanned part -- a reservation among them -- may have been missed, and
    #: :attr:`problems` says why.  Defaults to True for heads built by hand.
    complete: bool = True

    def meta_values(self, name: str) -> tuple[HtmlMeta, ...]:
        """The ``<meta name=...>`` elements whose name equals ``name``, ASCII case-insensitively
        (WHATWG: meta names "must be compared in an ASCII case-insensitive manner")."""
        wanted = _ascii_lower(name.strip())
        return tuple(meta for meta in self.metas if meta.name == wanted)

    def http_equiv_values(self, name: str) -> tuple[HtmlMeta, ...]:
        """The ``<meta http-equiv=...>`` elements for ``name`` (case-insensitive)."""
        wanted = _ascii_lower(name.strip())
        return tuple(meta for meta in self.metas if meta.http_equiv == wanted)

    def property_values(self, name: str) -> tuple[HtmlMeta, ...]:
        """The ``<meta property=...>`` elements for ``name`` (case-insensitive)."""
        wanted = _ascii_lower(name.strip())
        return tuple(meta for meta in self.metas if meta.property == wanted)

    def links_with_rel(self, rel: str) -> tuple[HtmlLink, ...]:
        """The ``<link>`` elements whose ``rel`` contains the token ``rel`` (case-insensitive)."""
        wanted = _ascii_lower(rel.strip())
        return tuple(link for link in self.links if wanted in link.rel)


def _ascii_lower(text: str) -> str:
    # str.lower() also folds non-ASCII letters (and 'İ' to two characters); HTML folds ASCII only.
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _decode_charref(match: re.Match[str]) -> str:
    ref = match.group(1)
    if ref[0] == "#":
        # html.unescape applies the WHATWG numeric reference rules (NUL, surrogates, C1 table).
        return unescape(match.group(0))
    if ref.endswith(";"):
        return _HTML5_ENTITIES.get(ref, match.group(0))
    # WHATWG "named character reference state": in an attribute, a reference without ';'
    # followed by '=' or an alphanumeric is left as written ("for historical reasons").  The
    # regex consumed every alphanumeric, so only an exact legacy name not followed by '=' is
    # decoded (&copy -> ©, but &copy=2 and &copyright stay).
    following = match.string[match.end() : match.end() + 1]
    if following != "=" and ref in _HTML5_ENTITIES:
        return _HTML5_ENTITIES[ref]
    return match.group(0)


def _attribute_value(raw: str) -> str:
    if "&" not in raw:
        return raw
    return _CHARREF.sub(_decode_charref, raw)


def _decode(body: bytes, encoding: str | None, problems: list[str]) -> str:
    for bom, bom_encoding in _BOMS:
        if body.startswith(bom):
            # WHATWG "decode": a BOM overrides the transport-layer charset.
            return body[len(bom) :].decode(bom_encoding, "replace")
    label = "utf-8"
    if encoding is not None:
        label = encoding.strip().strip("\"'").strip() or "utf-8"
    # WHATWG Encoding: these labels all mean windows-1252 (Python's latin-1 and ascii differ).
    if label.lower() in _WINDOWS_1252_LABELS:
        label = "cp1252"
    try:
        # A non-text codec (base64, rot13, zlib...) raises LookupError here too.
        return body.decode(label, "replace")
    except (LookupError, ValueError, TypeError):
        problems.append(f"unknown charset {_clip(encoding or '')!r}; decoded as UTF-8")
    except Exception as exc:  # noqa: BLE001 -- a codec failing oddly must not stop us
        problems.append(f"charset {_clip(label)!r} failed: {type(exc).__name__}; decoded as UTF-8")
    return body.decode("utf-8", "replace")


class _HeadScanner:
    """One pass over a decoded document; collects head elements until the head ends."""

    __slots__ = ("closed", "line", "line_pos", "links", "metas", "pos", "problems", "text")

    def __init__(self, text: str, problems: list[str]) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.line_pos = 0
        self.metas: list[HtmlMeta] = []
        self.links: list[HtmlLink] = []
        self.problems = problems
        # True once the head has ended (</head>, <body>, <frameset>, <plaintext>); False when
        # the scan stopped because the text ran out (possibly inside a construct).
        self.closed = False

    def line_at(self, index: int) -> int:
        # Positions only move forward, so counting newlines incrementally stays linear.
        if index > self.line_pos:
            self.line += self.text.count("\n", self.line_pos, index)
            self.line_pos = index
        return self.line

    def run(self) -> None:
        text = self.text
        end = len(text)
        while True:
            start = text.find("<", self.pos)
            if start < 0 or start + 1 >= end:
                return
            nxt = text[start + 1]
            if nxt.isascii() and nxt.isalpha():
                if not self.start_tag(start):
                    return
            elif nxt == "/":
                if not self.end_tag(start):
                    return
            elif nxt == "!":
                if text.startswith("<!--", start):
                    if not self.comment(start):
                        return
                elif not self.bogus_comment(start, start + 2):
                    return
            elif nxt == "?":
                # WHATWG: "unexpected-question-mark-instead-of-tag-name" -> bogus comment.
                if not self.bogus_comment(start, start + 1):
                    return
            else:
                # "invalid-first-character-of-tag-name": the '<' is text.
                self.pos = start + 1

    def comment(self, start: int) -> bool:
        text = self.text
        body = start + 4
        # "abrupt-closing-of-empty-comment": <!--> and <!--->.
        if text.startswith(">", body):
            self.pos = body + 1
            return True
        if text.startswith("->", body):
            self.pos = body + 2
            return True
        match = _COMMENT_END.search(text, body)
        if match is None:
            self.problems.append(
                f"line {self.line_at(start)}: unterminated comment; rest of document ignored"
            )
            return False
        self.pos = match.end()
        return True

    def bogus_comment(self, start: int, body: int) -> bool:
        close = self.text.find(">", body)
        if close < 0:
            self.problems.append(
                f"line {self.line_at(start)}: unterminated {self.text[start:body]!r} markup; "
                "rest of document ignored"
            )
            return False
        self.pos = close + 1
        return True

    def attributes(self, start: int, pos: int) -> tuple[dict[str, str], int] | None:
        """Read attributes from ``pos`` to the closing ``>``; None when the input ends first."""
        text = self.text
        end = len(text)
        attrs: dict[str, str] = {}
        while True:
            pos = _BEFORE_ATTRIBUTE.match(text, pos).end()  # type: ignore[union-attr]
            if pos >= end:
                break  # "eof-in-tag": the tag is not emitted
            if text[pos] == ">":
                return attrs, pos + 1
            name_match = _ATTRIBUTE_NAME.match(text, pos)
            assert name_match is not None  # text[pos] is not whitespace, '/' or '>'
            pos = _SPACES.match(text, name_match.end()).end()  # type: ignore[union-attr]
            value = ""
            if pos < end and text[pos] == "=":
                pos = _SPACES.match(text, pos + 1).end()  # type: ignore[union-attr]
                if pos < end:
                    quote = text[pos]
                    if quote in "\"'":
                        close = text.find(quote, pos + 1)
                        if close < 0:
                            break  # "eof-in-tag" inside a quoted value
                        value = text[pos + 1 : close]
                        pos = close + 1
                    elif quote != ">":  # "missing-attribute-value" when it is '>'
                        value_match = _UNQUOTED_VALUE.match(text, pos)
                        assert value_match is not None
                        value = value_match.group(0)
                        pos = value_match.end()
            key = _ascii_lower(name_match.group(0))
            # "duplicate-attribute": the later one is dropped.
            if key not in attrs:
                attrs[key] = value
        self.problems.append(f"line {self.line_at(start)}: unterminated tag; rest ignored")
        return None

    def start_tag(self, start: int) -> bool:
        text = self.text
        name_match = _TAG_NAME.match(text, start + 1)
        assert name_match is not None  # run() checked for a letter
        tag = _ascii_lower(name_match.group(0))
        parsed = self.attributes(start, name_match.end())
        if parsed is None:
            return False
        attrs, self.pos = parsed
        if tag in _BODY_START_TAGS:
            self.closed = True
            return False
        if tag == "meta":
            self.meta(attrs, self.line_at(start))
        elif tag == "link":
            self.link(attrs, self.line_at(start))
        elif tag in _RAW_TEXT_ELEMENTS:
            close = _RAW_TEXT_END[tag].search(text, self.pos)
            if close is None:
                self.problems.append(
                    f"line {self.line_at(start)}: <{tag}> is never closed; rest ignored"
                )
                return False
            self.pos = close.start()
        elif tag == "plaintext":
            # Everything after <plaintext> is text: no further head element can follow.
            self.closed = True
            return False
        return True

    def end_tag(self, start: int) -> bool:
        text = self.text
        name_match = _TAG_NAME.match(text, start + 2)
        if name_match is None:
            if text.startswith(">", start + 2):
                # "missing-end-tag-name": </> is dropped.
                self.pos = start + 3
                return True
            # "invalid-first-character-of-tag-name" after '</': bogus comment.
            return self.bogus_comment(start, start + 2)
        # End tags may carry (ignored) attributes; quoted '>' inside them does not end the tag.
        parsed = self.attributes(start, name_match.end())
        if parsed is None:
            return False
        self.pos = parsed[1]
        if _ascii_lower(name_match.group(0)) in _HEAD_END_TAGS:
            self.closed = True
            return False
        return True

    def meta(self, attrs: dict[str, str], line: int) -> None:
        name = attrs.get("name")
        prop = attrs.get("property")
        http_equiv = attrs.get("http-equiv")
        if name is None and prop is None and http_equiv is None:
            return  # <meta charset>, <meta itemprop>: nothing a protocol reads
        self.metas.append(
            HtmlMeta(
                name=None if name is None else _ascii_lower(_attribute_value(name).strip(_WS)),
                property=None if prop is None else _ascii_lower(_attribute_value(prop).strip(_WS)),
                http_equiv=(
                    None
                    if http_equiv is None
                    else _ascii_lower(_attribute_value(http_equiv).strip(_WS))
                ),
                content=_attribute_value(attrs.get("content", "")),
                line=line,
            )
        )

    def link(self, attrs: dict[str, str], line: int) -> None:
        rel = _ascii_lower(_attribute_value(attrs.get("rel", "")))
        link_type = attrs.get("type")
        self.links.append(
            HtmlLink(
                rel=tuple(rel.split()),
                href=_attribute_value(attrs.get("href", "")).strip(_WS),
                type=None
                if link_type is None
                else _ascii_lower(_attribute_value(link_type).strip(_WS)),
                line=line,
            )
        )


def parse_html_head(
    body: bytes, *, encoding: str | None = None, truncated: bool = False
) -> HtmlHead:
    """Read the ``<meta>`` and ``<link>`` elements of the head of an HTML document.

    ``encoding`` is the charset the server declared (``Content-Type: text/html;
    charset=...``), if any.  ``truncated=True`` says ``body`` is only a prefix of the document
    (the download was cut, or the body could not be fully decoded): reaching its end with the
    head still open then leaves :attr:`HtmlHead.complete` False, since more head elements may
    follow in the part not given.  Never raises for ``bytes`` input: whatever had to be dropped
    or guessed is listed in :attr:`HtmlHead.problems`.
    """
    problems: list[str] = []
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError(f"body must be bytes, not {type(body).__name__}")
    cut = len(body) > HTML_HEAD_LIMIT
    data = bytes(body[:HTML_HEAD_LIMIT])
    if cut:
        problems.append(f"document longer than {HTML_HEAD_LIMIT} bytes; only the start was read")
    scanner: _HeadScanner | None = None
    try:
        text = _decode(data, encoding, problems)
        # WHATWG "preprocessing the input stream": CR LF and lone CR become LF.
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        scanner = _HeadScanner(text, problems)
        scanner.run()
    except Exception as exc:  # noqa: BLE001 -- a bug here must not crash on a remote page
        problems.append(f"HTML scan aborted: {type(exc).__name__}: {_clip(str(exc))}")
        problems.append(
            "head not scanned to its end (internal error): reservations after that point "
            "cannot be seen"
        )
        if scanner is None:
            return HtmlHead(metas=(), links=(), problems=tuple(problems), complete=False)
        return HtmlHead(
            metas=tuple(scanner.metas),
            links=tuple(scanner.links),
            problems=tuple(problems),
            complete=False,
        )
    # The head is complete when the scan saw it end, or when it saw the whole document.
    complete = scanner.closed or not (cut or truncated)
    if not complete:
        if cut:
            problems.append(
                f"head not closed within the first {HTML_HEAD_LIMIT} bytes: reservations after "
                "that point cannot be seen"
            )
        else:
            problems.append(
                f"head not closed within the {len(data)} bytes received (body truncated): "
                "reservations after that point cannot be seen"
            )
    return HtmlHead(
        metas=tuple(scanner.metas),
        links=tuple(scanner.links),
        problems=tuple(problems),
        complete=complete,
    )


class MetaLike(Protocol):
    """What :mod:`crawler.optout.htmlmeta`'s ``HtmlMeta`` offers (only these are read)."""

    @property
    def name(self) -> str | None: ...

    @property
    def content(self) -> str: ...

    @property
    def line(self) -> int: ...


class HasMetas(Protocol):
    """What :mod:`crawler.optout.htmlmeta`'s ``HtmlHead`` offers (only this is read)."""

    @property
    def metas(self) -> Iterable[MetaLike]: ...


#: ``<meta>`` elements: an ``HtmlHead``, ``HtmlMeta``-like objects, or ``(name, content, line)``
#: tuples.
MetaInput = HasMetas | Iterable[MetaLike | tuple[str | None, str | None, int | None]]


def meta_entries(metas: MetaInput) -> list[tuple[str, str, int | None]]:
    """(lower-cased name, content, line) of each ``<meta>`` that has a name.

    Accepts an ``HtmlHead`` (its ``metas``), ``HtmlMeta``-like objects or ``(name, content,
    line)`` tuples.
    """
    source = getattr(metas, "metas", metas)
    if isinstance(source, (str, bytes)) or not isinstance(source, Iterable):
        raise TypeError(f"metas must be an iterable of meta elements, not {type(metas).__name__}")
    entries: list[tuple[str, str, int | None]] = []
    for meta in source:
        if isinstance(meta, tuple):
            name, content, line = (tuple(meta) + (None, None, None))[:3]
        else:
            name = getattr(meta, "name", None)
            content = getattr(meta, "content", None)
            line = getattr(meta, "line", None)
        if not isinstance(name, str):
            continue
        entries.append((
            name.strip(" \t\n\f\r").lower(),
            content if isinstance(content, str) else "",
            line if isinstance(line, int) and not isinstance(line, bool) else None,
        ))
    return entries
