"""Reservations embedded in a file: IPTC/PLUS "Data Mining" and TDMRep, read before storing.

Sans-IO: :func:`read_embedded` takes a document's (decoded) body bytes and its Content-Type
and returns an :class:`EmbeddedResult`: the statements found (as :class:`Statement` for the
purpose table, plus :class:`TdmStatement` for TDMRep's own precedence), every value with the
block, property path and raw text it came from, and ``determined`` -- False when a part of the
file where a reservation may be written could not be read (fail closed: the caller refuses
the file and stores none of its bytes).

What is read
------------
* IPTC Photo Metadata Standard 2023.1 "Data Mining" = XMP ``plus:DataMining`` (PLUS namespace
  ``http://ns.useplus.org/ldf/xmp/1.0/``, any prefix), one value from the PLUS vocabulary
  ``http://ns.useplus.org/ldf/vocab/DMI-*``; and ``plus:OtherConstraints`` (kept as evidence
  for the ``...-SEECONSTRAINT`` value).  Accepted forms of a value: the vocabulary URI (http or
  https), the bare key (``DMI-PROHIBITED``), and ExifTool's / the IPTC standard's English
  labels ("Prohibited for AI/ML training"), compared case-insensitively with whitespace
  collapsed.  Attribute, element, ``rdf:resource``, ``rdf:Bag``/``Seq``/``Alt`` and
  ``rdf:value`` forms are all read (:func:`crawler.optout.xmp.parse_xmp`).
* W3C TDMRep (CG Final Report, May 2024) "EPUB/PDF metadata": XMP ``tdm:reservation`` and
  ``tdm:policy`` (namespace ``http://www.w3.org/ns/tdmrep/``; the EPUB 3 URI with ``#`` is
  accepted too), in PDF and in any other container we read XMP from; EPUB 2/3 package
  metadata (``<meta name="tdm:reservation" content="1"/>``,
  ``<meta property="tdm:reservation">1</meta>`` with the ``tdm`` prefix declared on
  ``<package prefix="...">``).

Where: see :mod:`crawler.optout.xmp` (containers, limits, when a failure is harmless).

Decisions as data
-----------------
A PLUS value becomes the term ``dmi-<suffix>`` (lower case) of the signal ``iptc``; which
purposes a term binds is :data:`TERM_ROWS` -- the rows for ``TERM_PURPOSES`` in
:mod:`crawler.policy.reservation` (this module does not import it).  Prohibitions are terms with
``False``; ``DMI-ALLOWED`` is the term ``dmi-allowed`` with ``True``; ``DMI-UNSPECIFIED`` is
``dmi-unspecified`` with ``True`` and binds nothing.  Several values in one file: every
prohibition is kept (the union binds: most restrictive) and an ``ALLOWED`` next to a
prohibition is dropped; the conflict is a problem.  A value that is not in the vocabulary but
names a prohibition (``DMI-PROHIBITED-FOO``) is read as ``dmi-prohibited`` (conservative);
anything else unknown is unset, with a problem (as a malformed TDM value is unset).
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from lxml import etree

from .model import Statement
from .tdmrep import TdmStatement, TdmValue, _merge_values
from .xmp import XmpDocument, container_of, find_xmp, parse_xmp

__all__ = [
    "DMI_LABELS",
    "EPUB_MEMBER_LIMIT",
    "EXIFTOOL_LABELS",
    "EmbeddedResult",
    "EmbeddedValue",
    "PLUS_NS",
    "PLUS_VOCAB",
    "TDMREP_NS",
    "TERM_ROWS",
    "dmi_term",
    "read_embedded",
]

PLUS_NS = "http://ns.useplus.org/ldf/xmp/1.0/"
PLUS_VOCAB = "http://ns.useplus.org/ldf/vocab/"
#: PDF XMP uses the slash form, EPUB 3 the hash form (TDMRep §"EPUB", §"PDF"); accept both.
TDMREP_NS = frozenset({"http://www.w3.org/ns/tdmrep/", "http://www.w3.org/ns/tdmrep#"})
OPF_NS = "http://www.idpf.org/2007/opf"
OCF_NS = "urn:oasis:names:tc:opendocument:xmlns:container"

#: Largest EPUB member (container.xml, package document) inflated; more = undetermined.
EPUB_MEMBER_LIMIT = 1 << 20
#: Most package documents (renditions) read from one EPUB.
EPUB_ROOTFILE_LIMIT = 8

#: The PLUS "Data Mining" vocabulary (IPTC Photo Metadata 2023.1; PLUS LDF vocab), with the
#: English labels ExifTool and the IPTC standard print.
DMI_LABELS: Mapping[str, str] = {
    "DMI-UNSPECIFIED": "Unspecified - no prohibition defined",
    "DMI-ALLOWED": "Allowed",
    "DMI-PROHIBITED-AIMLTRAINING": "Prohibited for AI/ML training",
    "DMI-PROHIBITED-GENAIMLTRAINING": "Prohibited for Generative AI/ML training",
    "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING": "Prohibited except for search engine indexing",
    "DMI-PROHIBITED": "Prohibited",
    "DMI-PROHIBITED-SEECONSTRAINT": "Prohibited, see Other Constraints property",
    "DMI-PROHIBITED-SEEEMBEDDEDRIGHTSEXPR": ("Prohibited, see Embedded Encoded Rights "
                                             "Expression property"),
    "DMI-PROHIBITED-SEELINKEDRIGHTSEXPR": ("Prohibited, see Linked Encoded Rights Expression "
                                           "property"),
}

_ALL = frozenset({"train-ai", "train-genai", "search", "ai-input"})
_TRAIN = frozenset({"train-ai", "train-genai"})
_AI = frozenset({"train-ai", "train-genai", "ai-input"})

#: Rows for ``crawler.policy.reservation.TERM_PURPOSES``: (signal, term) -> the purposes a "no" binds.
#: ``dmi-unspecified`` is deliberately absent (it binds nothing).
TERM_ROWS: Mapping[tuple[str, str], frozenset[str]] = {
    # "Prohibited": data mining of any kind, search indexing included (the vocabulary has a
    # separate "except search engine indexing" value, so this one covers it).
    ("iptc", "dmi-prohibited"): _ALL,
    # AI/ML training: both training purposes; not search, not ai-input (not training).
    ("iptc", "dmi-prohibited-aimltraining"): _TRAIN,
    # Generative AI/ML training: a train-ai corpus may feed a generative model, so it binds
    # train-ai too (conservative; the same reading as content-usage train-genai).
    ("iptc", "dmi-prohibited-genaimltraining"): _TRAIN,
    ("iptc", "dmi-prohibited-exceptsearchengineindexing"): _AI,
    # "Prohibited, see ...": a prohibition whose conditions are in free text or a rights
    # expression we do not interpret; it can only narrow what is allowed, never lift the
    # prohibition, so it binds like "Prohibited".
    ("iptc", "dmi-prohibited-seeconstraint"): _ALL,
    ("iptc", "dmi-prohibited-seeembeddedrightsexpr"): _ALL,
    ("iptc", "dmi-prohibited-seelinkedrightsexpr"): _ALL,
    # An explicit "Allowed" is evidence of permission for every purpose (outcome allow).
    ("iptc", "dmi-allowed"): _ALL,
}

#: ExifTool's labels where they differ from the IPTC standard's (ExifTool 13.58 PLUS.pm).
EXIFTOOL_LABELS: Mapping[str, str] = {
    "DMI-PROHIBITED-SEECONSTRAINT": "Prohibited, see plus:OtherConstraints",
    "DMI-PROHIBITED-SEEEMBEDDEDRIGHTSEXPR": "Prohibited, see iptcExt:EmbdEncRightsExpr",
    "DMI-PROHIBITED-SEELINKEDRIGHTSEXPR": "Prohibited, see iptcExt:LinkedEncRightsExpr",
}

_VOCAB_PREFIXES = ("http://ns.useplus.org/ldf/vocab/", "https://ns.useplus.org/ldf/vocab/")
_BY_LABEL = {" ".join(label.lower().split()): key
             for labels in (DMI_LABELS, EXIFTOOL_LABELS) for key, label in labels.items()}
_RAW_LIMIT = 300


@dataclass(frozen=True, slots=True)
class EmbeddedValue:
    """One value as read: ``block`` (where in the file), ``property`` (prefix:name as written,
    with its namespace URI), ``path`` (the RDF or OPF path), ``raw`` (the text, cut at 300
    characters) and ``term`` (the protocol term it reads as, None when unreadable)."""

    signal: str
    block: str
    property: str
    namespace: str
    path: str
    raw: str
    term: str | None

    def to_dict(self) -> dict[str, str]:
        out = {"signal": self.signal, "block": self.block, "property": self.property,
               "namespace": self.namespace, "path": self.path, "raw": self.raw}
        if self.term is not None:
            out["term"] = self.term
        return out


@dataclass(frozen=True, slots=True)
class EmbeddedResult:
    """What a file says about itself.

    ``determined`` False = a part where a reservation may be written could not be read: the
    file must be refused (undetermined), whatever ``statements`` holds.  ``statements`` are for
    the purpose table (signals ``iptc`` and ``tdmrep``); ``tdm`` is the TDMRep value for the
    spec's last processing step ("EPUB/PDF metadata"); ``values`` the evidence.
    """

    container: str
    determined: bool
    statements: tuple[Statement, ...] = ()
    tdm: TdmStatement | None = None
    values: tuple[EmbeddedValue, ...] = ()
    other_constraints: tuple[str, ...] = ()
    blocks: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()


def dmi_term(raw: str) -> tuple[str | None, str | None]:
    """(term, problem) for one ``plus:DataMining`` value in any documented form."""
    text = " ".join(raw.split())
    if not text:
        return None, "empty plus:DataMining value: unset"
    lowered = text.lower()
    key = None
    for prefix in _VOCAB_PREFIXES:
        if lowered.startswith(prefix):
            key = text[len(prefix):].upper()
            break
    problem = None
    if key is None and "/" in text:
        tail = text.rstrip("/").rsplit("/", 1)[-1].upper()
        if tail.startswith("DMI-"):
            key, problem = tail, (f"plus:DataMining {text!r} is not a PLUS vocabulary URI; "
                                  f"read as {tail}")
    if key is None:
        key = _BY_LABEL.get(lowered, text.upper() if lowered.startswith("dmi-") else None)
    if key is None:
        return None, f"plus:DataMining {text!r} is not in the PLUS vocabulary: unset"
    key = key.replace(" ", "")
    if key in DMI_LABELS:
        return key.lower(), problem
    if key.startswith("DMI-PROHIBITED"):
        return "dmi-prohibited", (f"plus:DataMining {text!r} is not in the PLUS vocabulary but "
                                  "names a prohibition: read as DMI-PROHIBITED (conservative)")
    return None, f"plus:DataMining {text!r} is not in the PLUS vocabulary: unset"


def _tdm_value(raw: str) -> tuple[TdmValue, str | None]:
    text = raw.strip()
    if text in ("1", "0"):
        return (TdmValue.RESERVED if text == "1" else TdmValue.NOT_RESERVED), None
    unquoted = text.strip("\"'")
    if unquoted in ("1", "0") and unquoted != text:
        return (TdmValue.RESERVED if unquoted == "1" else TdmValue.NOT_RESERVED), (
            f"tdm:reservation {raw!r}: non-conforming value type, read conservatively")
    return TdmValue.UNSET, f"tdm:reservation {raw!r} is not 0 or 1: unset (TDMRep 3.1)"


# ------------------------------------------------------------------------------------ entry

def read_embedded(body: bytes, content_type: str | None) -> EmbeddedResult:
    """The embedded reservations of one file (see the module docstring)."""
    container = container_of(body, content_type)
    if container == "none":
        return EmbeddedResult(container, True)
    if container == "epub":
        return _read_epub(body)
    scan = find_xmp(body, container)
    problems = list(scan.problems)
    determined = scan.complete
    docs: list[tuple[str, XmpDocument]] = []
    for packet in scan.packets:
        doc = parse_xmp(packet.data, packet.block)
        problems.extend(doc.problems)
        if not doc.ok:
            determined = False
        docs.append((packet.block, doc))
    values: list[EmbeddedValue] = []
    constraints: list[str] = []
    for block, doc in docs:
        for prop in doc.get({PLUS_NS}, "DataMining"):
            name = f"{prop.prefix or 'plus'}:DataMining"
            for raw, path in prop.values:
                term, problem = dmi_term(raw)
                if problem:
                    problems.append(f"{block}: {problem}")
                values.append(EmbeddedValue("iptc", block, name, PLUS_NS, path,
                                            raw[:_RAW_LIMIT], term))
        for prop in doc.get({PLUS_NS}, "OtherConstraints"):
            for raw, path in prop.values:
                if raw.strip():
                    constraints.append(raw.strip()[:_RAW_LIMIT])
                    values.append(EmbeddedValue("iptc", block,
                                                f"{prop.prefix or 'plus'}:OtherConstraints",
                                                PLUS_NS, path, raw.strip()[:_RAW_LIMIT], None))
        for local in ("reservation", "policy"):
            for prop in doc.get(TDMREP_NS, local):
                for raw, path in prop.values:
                    values.append(EmbeddedValue("tdmrep", block,
                                                f"{prop.prefix or 'tdm'}:{local}",
                                                prop.namespace, path, raw.strip()[:_RAW_LIMIT],
                                                f"tdm-{local}"))
    statements, tdm, more = _statements(values, constraints, channel="xmp")
    problems.extend(more)
    return EmbeddedResult(container, determined, statements, tdm, tuple(values),
                          tuple(constraints), tuple(p.block for p in scan.packets),
                          tuple(problems))


def _statements(values: list[EmbeddedValue], constraints: list[str], *,
                channel: str) -> tuple[tuple[Statement, ...], TdmStatement | None, list[str]]:
    problems: list[str] = []
    out: list[Statement] = []
    dmi = [v for v in values if v.signal == "iptc" and v.property.endswith(":DataMining")]
    if dmi:
        terms = [v.term for v in dmi if v.term is not None]
        prohibitions = sorted({t for t in terms if t.startswith("dmi-prohibited")})
        kept: list[tuple[str, bool]] = [(t, False) for t in prohibitions]
        if not prohibitions:
            kept = [(t, True) for t in sorted(set(terms))]
        if len(set(terms)) > 1:
            problems.append("plus:DataMining has conflicting values "
                            f"({', '.join(sorted(set(terms)))}): the most restrictive apply"
                            + (" (dmi-allowed dropped)" if prohibitions and
                               "dmi-allowed" in terms else ""))
        rule = "; ".join(f"XMP {v.property} = {v.raw} ({v.block}, {v.path})" for v in dmi)
        if constraints and "dmi-prohibited-seeconstraint" in prohibitions:
            rule += "; plus:OtherConstraints = " + " | ".join(constraints)
        elif "dmi-prohibited-seeconstraint" in prohibitions:
            problems.append("plus:DataMining says see plus:OtherConstraints, which is absent: "
                            "read as prohibited")
        out.append(Statement("iptc", channel, tuple(kept), rule,
                             problems=tuple(p for p in problems)))
    tdm = None
    reservations = [v for v in values if v.signal == "tdmrep" and v.term == "tdm-reservation"]
    policies = [v for v in values if v.signal == "tdmrep" and v.term == "tdm-policy"]
    if reservations or policies:
        copies = []
        for v in reservations:
            read, problem = _tdm_value(v.raw)
            copies.append((read, (f"{v.block}: {problem}",) if problem else ()))
        # several copies: TDMRep's own rule for repeated values (reserved if any says 1)
        value, tdm_problems = _merge_values(copies, "tdm:reservation")
        policy = next((p.raw for p in policies
                       if re.match(r"https?://", p.raw, re.I)), None)
        if policies and policy is None:
            tdm_problems.append("tdm:policy is not an absolute http(s) URL: dropped")
        rule = "; ".join(f"{v.property} = {v.raw} ({v.block}, {v.path})"
                         for v in reservations + policies)
        tdm = TdmStatement("embedded", value, policy, ", ".join(sorted({v.block for v in
                                                                        reservations})),
                           ", ".join(v.raw for v in reservations), tuple(tdm_problems))
        terms: tuple[tuple[str, bool], ...] = ()
        if value is not TdmValue.UNSET:
            terms = (("tdm-reservation", value is TdmValue.NOT_RESERVED),)
        out.append(Statement("tdmrep", channel, terms, rule, problems=tuple(tdm_problems)))
        problems.extend(tdm_problems)
    return tuple(out), tdm, problems


# ------------------------------------------------------------------------------------- EPUB

class _EpubFail(Exception):
    pass


def _member(zf: zipfile.ZipFile, name: str) -> bytes:
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise _EpubFail(f"EPUB: {name} is missing") from None
    if info.flag_bits & 0x1:
        raise _EpubFail(f"EPUB: {name} is encrypted")
    if info.file_size > EPUB_MEMBER_LIMIT:
        raise _EpubFail(f"EPUB: {name} declares {info.file_size} bytes, over "
                        f"{EPUB_MEMBER_LIMIT}: not read")
    try:
        with zf.open(info) as fh:
            data = fh.read(EPUB_MEMBER_LIMIT + 1)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError, OSError,
            ValueError, zlib.error) as exc:
        raise _EpubFail(f"EPUB: {name} cannot be read ({exc})") from None
    if len(data) > EPUB_MEMBER_LIMIT:
        raise _EpubFail(f"EPUB: {name} inflates past {EPUB_MEMBER_LIMIT} bytes (zip bomb?): "
                        "not read")
    return data


def _xml(data: bytes, what: str) -> etree._Element:
    if re.search(rb"<!DOCTYPE[^>]*\[|<!ENTITY", data, re.I):
        raise _EpubFail(f"EPUB: {what} declares entities: not read")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False, recover=False)
    try:
        return etree.fromstring(data, parser)
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise _EpubFail(f"EPUB: {what} is not well-formed XML ({exc})") from None


def _read_epub(body: bytes) -> EmbeddedResult:
    try:
        return _epub(body)
    except _EpubFail as exc:
        return EmbeddedResult("epub", False, problems=(f"{exc} (undetermined)",))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError,
            NotImplementedError, RuntimeError, zlib.error, KeyError, UnicodeDecodeError) as exc:
        return EmbeddedResult("epub", False, problems=(
            f"EPUB: not a readable ZIP ({type(exc).__name__}: {exc}) (undetermined)",))


def _epub(body: bytes) -> EmbeddedResult:
    zf = zipfile.ZipFile(io.BytesIO(body))
    container = _xml(_member(zf, "META-INF/container.xml"), "META-INF/container.xml")
    rootfiles = [r.get("full-path") for r in container.iter(f"{{{OCF_NS}}}rootfile")
                 if r.get("media-type", "application/oebps-package+xml")
                 == "application/oebps-package+xml" and r.get("full-path")]
    if not rootfiles:
        raise _EpubFail("EPUB: container.xml names no package document")
    if len(rootfiles) > EPUB_ROOTFILE_LIMIT:
        raise _EpubFail(f"EPUB: more than {EPUB_ROOTFILE_LIMIT} package documents")
    values: list[EmbeddedValue] = []
    problems: list[str] = []
    for path in rootfiles:
        opf = _xml(_member(zf, path), path)
        values.extend(_opf_values(opf, path, problems))
    statements, tdm, more = _statements(values, [], channel="epub")
    problems.extend(more)
    return EmbeddedResult("epub", True, statements, tdm, tuple(values), (),
                          tuple(rootfiles), tuple(problems))


def _opf_prefixes(package: etree._Element) -> dict[str, str]:
    """EPUB 3 ``prefix`` attribute: "tdm: http://www.w3.org/ns/tdmrep# other: ..."."""
    text = package.get("prefix") or ""
    return {m.group(1): m.group(2) for m in re.finditer(r"([A-Za-z_][\w.-]*):\s+(\S+)", text)}


def _opf_values(opf: etree._Element, path: str, problems: list[str]) -> list[EmbeddedValue]:
    prefixes = _opf_prefixes(opf)
    out: list[EmbeddedValue] = []
    metas = [m for m in opf.iter() if isinstance(m.tag, str) and
             etree.QName(m).localname == "meta"]
    for i, meta in enumerate(metas, 1):
        prop, raw, form = meta.get("property"), None, None
        if prop:
            raw, form = "".join(meta.itertext()), f'<meta property="{prop}">'
            name = prop
        elif meta.get("name"):
            name, raw, form = meta.get("name"), meta.get("content") or "", None
            form = f'<meta name="{name}">'
        else:
            continue
        prefix, _, local = name.partition(":")
        if local not in ("reservation", "policy"):
            continue
        ns = prefixes.get(prefix)
        if ns is None:
            if prefix != "tdm":
                continue
            ns = "http://www.w3.org/ns/tdmrep#"
            if prop:
                problems.append(f"EPUB {path}: prefix tdm used without a package prefix "
                                "declaration (read as TDMRep)")
        if ns not in TDMREP_NS:
            continue
        out.append(EmbeddedValue("tdmrep", f"EPUB package document {path}", name, ns,
                                 f"{form} (meta #{i})", raw.strip()[:_RAW_LIMIT],
                                 f"tdm-{local}"))
    return out

