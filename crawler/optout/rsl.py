"""RSL 1.0 (Really Simple Licensing) licence documents: safe parser, evaluator and discovery.

Spec: "Really Simple Licensing (RSL) 1.0 Specification", RSL-SPEC-1.0, Recommendation,
2025-11-06; namespace ``https://rslstandard.org/rsl``, media type ``application/rsl+xml``
(protocols.md §5).  Sans-IO: :func:`parse_rsl` takes the body bytes of a licence document and
returns a frozen :class:`RslDocument`; :func:`statement_for` selects the ``<content>`` covering a
URL and turns its ``<license>`` terms into a :class:`~crawler.optout.model.Statement` over the
usage terms ``ai-train``, ``ai-input``, ``ai-index`` and ``search`` (RSL's own vocabulary).
Discovery helpers read ``License:`` lines of a parsed robots.txt
(:func:`license_urls_from_robots`) and ``Link`` response headers
(:func:`license_urls_from_link_header`).

Remote bytes never make this module raise; what it refused, skipped or guessed is listed in a
``problems`` tuple.

XML safety
----------
Stdlib only, and no DTD processing at all:

* bodies over :data:`RSL_SIZE_LIMIT` (1 MiB) are not parsed (invalid);
* a body containing ``<!DOCTYPE`` or ``<!ENTITY`` anywhere (ASCII case-insensitive, also when
  spelled in UTF-16, i.e. with NUL bytes between the characters) is refused before parsing --
  even inside a comment or CDATA section, where it would be harmless: RSL needs no DTD;
* the parser is :mod:`xml.parsers.expat` with parameter-entity parsing off and handlers that
  abort on any DOCTYPE, entity, notation or external-entity declaration/reference, so nothing is
  ever expanded or fetched (billion laughs, XXE) even if the byte check were bypassed;
* a malformed document (an undefined entity such as ``&foo;`` included) is invalid as a whole:
  terms read before the error are not used.

Choices where the spec is silent or unconfirmed
-----------------------------------------------
* Namespace: the root must be ``<rsl>``.  "xmlns (required) ... Must be set to
  https://rslstandard.org/rsl."  A root ``<rsl>`` without a namespace or in another namespace
  is still read (problem noted): the element names say what the author meant, and dropping a
  licence that prohibits uses would be the less careful reading.  Child elements count when in
  the root's namespace; elements of other namespaces (extensions) are ignored.  A root other
  than ``<rsl>`` makes the document invalid.
* ``valid`` is False only when the document could not be read as RSL (too large, refused,
  malformed XML, wrong root); spec deviations that still leave clear terms are problems.
* Usage/user/geo values are split on whitespace and commas (1.0 examples use spaces, 2025 drafts
  commas).  Usage and user values are lower-cased, geo codes upper-cased.  Pre-1.0 draft usage
  values are mapped with a problem note: ``train-ai``/``train-genai`` -> ``ai-train``,
  ``ai-use``/``ai-summarize`` -> ``ai-input``.  ``ai-all`` expands to ``ai-train ai-input
  ai-index`` and ``all`` to every usage term (protocols.md §5.2, unconfirmed against the text).
* ``<permits>``/``<prohibits>`` without ``type`` are read as ``type="usage"`` (problem noted).
* ``<content url>`` empty or missing: covers any URL the document is applied to, at the lowest
  precedence (missing: problem noted).  A full URL (``https://ex.com/news/*``) covers only URLs
  of the same origin (scheme, host, port), its path and query being the pattern.  A path covers
  the URLs of whichever site the caller applies the document to -- the site whose robots.txt or
  response pointed at it -- not the host serving the licence file.  Several ``<content>``
  matching: the one whose pattern has the most octets wins (protocols.md §5.4.3 [REC]); a tie
  goes to the first in the document.
* Several ``<license>`` elements in one ``<content>`` are alternative licences: for each usage
  term, a prohibition in any applicable licence wins; otherwise the most favourable outcome
  among the applicable licences counts (free, then licence required, then not licensed).
  A licence whose ``user`` list excludes our user type, or whose ``geo`` list excludes our
  country, is not applicable; a usage term that no applicable licence decides is then False
  (so when no licence is applicable every usage term is False).  A
  ``geo`` list while our country is unknown (``country=None``) also makes the licence not
  applicable: we cannot show that we are allowed.
* ``<payment>`` without ``type`` is free when it has no amount or a zero amount, and a
  licence-requiring ``unspecified`` payment otherwise.  ``free`` and ``attribution`` payments
  need no licence; every other type (``purchase``, ``subscription``, ``training``, ``crawl``,
  ``use``, ``contribution`` ...) does.
* A ``server`` attribute or a licence-requiring payment with no usage permits/prohibits at all
  makes every usage term False ("licence required"); with neither, terms stay unknown.
* A covering ``<content>`` that decides no term gives no statement (None), like no document.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import NamedTuple
from urllib.parse import quote, urljoin, urlsplit
from xml.parsers import expat

from .model import Statement
from .pathpattern import PathPattern, compile_pattern, match_forms, path_query
from .robots import RobotsFile

__all__ = [
    "RSL_MEDIA_TYPE",
    "RSL_NAMESPACE",
    "RSL_SIGNAL",
    "RSL_SIZE_LIMIT",
    "USAGE_TERMS",
    "RslContent",
    "RslDocument",
    "RslLicense",
    "RslPayment",
    "license_urls_from_link_header",
    "license_urls_from_robots",
    "parse_rsl",
    "statement_for",
]

RSL_NAMESPACE = "https://rslstandard.org/rsl"
RSL_MEDIA_TYPE = "application/rsl+xml"
RSL_SIGNAL = "rsl"
#: Bodies larger than this are not parsed.
RSL_SIZE_LIMIT = 1 << 20
#: The usage terms a statement can decide, in output order.
USAGE_TERMS = ("ai-train", "ai-input", "ai-index", "search")
#: At most this many problems are listed; the rest are counted.
MAX_PROBLEMS = 100

_AI_ALL = frozenset({"ai-train", "ai-input", "ai-index"})
_EXPANSIONS: dict[str, frozenset[str]] = {"all": frozenset(USAGE_TERMS), "ai-all": _AI_ALL}
_USAGE_VALUES = frozenset(USAGE_TERMS) | frozenset(_EXPANSIONS)
_LEGACY_USAGE = {
    "train-ai": "ai-train",
    "train-genai": "ai-train",
    "ai-use": "ai-input",
    "ai-summarize": "ai-input",
}
_USER_VALUES = frozenset({"commercial", "non-commercial", "education", "government", "personal"})
_TYPES = frozenset({"usage", "user", "geo"})
_FREE_PAYMENTS = frozenset({"free", "attribution"})
_PAYMENT_TYPES = frozenset({
    "purchase", "subscription", "training", "crawl", "use", "contribution", "attribution", "free",
})

_VALUE_SPLIT = re.compile(r"[\s,]+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_FULL_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_ZERO = re.compile(r"[+]?0*(?:\.0*)?")
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters left as they are when a licence URL is made fetchable: RFC 3986 reserved and
# unreserved characters, and '%' (existing escapes).
_URL_SAFE = "!#$%&'()*+,-./:;=?@[]_~"


class RslPayment(NamedTuple):
    """One ``<payment>`` (one row per ``<amount>``): type, amount as written, currency."""

    type: str
    amount: str | None
    currency: str | None


def _frozen_map(values: Mapping[str, frozenset[str]]) -> Mapping[str, frozenset[str]]:
    return MappingProxyType(dict(values))


@dataclass(frozen=True, slots=True)
class RslLicense:
    """One ``<license>``: ``permits``/``prohibits`` map a type (``usage``, ``user``, ``geo``)
    to the values listed (as written, lower-cased; usage values mapped from legacy names, not
    expanded), ``payments`` lists the ``<payment>`` elements."""

    permits: Mapping[str, frozenset[str]]
    prohibits: Mapping[str, frozenset[str]]
    payments: tuple[RslPayment, ...]
    line: int | None = None

    def requirement(self, server: str | None) -> str | None:
        """Why using content under this licence needs a licence we do not hold, or None."""
        paid = [p for p in self.payments if p.type not in _FREE_PAYMENTS]
        # "If this attribute is present, clients must obtain a license for this asset, even if
        # the license is free."
        if not server and not paid:
            return None
        text = f"licence from {server} required" if server else "licence required"
        if paid:
            shown = ", ".join(
                " ".join(x for x in (p.type, p.amount, p.currency) if x) for p in paid
            )
            text += f" (payment: {shown})"
        return text + "; we hold none"


@dataclass(frozen=True, slots=True)
class RslContent:
    """One ``<content>`` element.

    ``url_pattern`` is None when the ``url`` attribute is empty or missing (covers any URL);
    for a full URL it is the URL's path (and query) and ``url_origin`` the origin it is limited
    to (``https://ex.com:443``).  ``permits``/``prohibits``/``payments`` merge every
    ``<license>`` of the element (union per type, payments in order); ``licenses`` keeps them
    apart, as :func:`statement_for` evaluates them.
    """

    url_pattern: PathPattern | None
    url_raw: str
    server: str | None
    permits: Mapping[str, frozenset[str]]
    prohibits: Mapping[str, frozenset[str]]
    payments: tuple[RslPayment, ...]
    line: int | None = None
    url_origin: str | None = None
    licenses: tuple[RslLicense, ...] = ()

    def match_length(self, url: str, *, forms: tuple[str, str] | None = None,
                     rfc: bool = False) -> int | None:
        """How specifically this element covers ``url``: the pattern's length in octets (-1 for
        an element covering any URL), or None when it does not cover ``url``.  With ``forms``
        (:func:`.pathpattern.match_forms` of the URL's path) only one reading of
        percent-encoding is tried, the RFC 9309 one when ``rfc``."""
        if self.url_origin is not None and _origin(url) != self.url_origin:
            return None
        if self.url_pattern is None:
            return -1
        if forms is None:
            if not self.url_pattern.matches(path_query(url)):
                return None
        elif not self.url_pattern.matches_reading(forms, rfc):
            return None
        return self.url_pattern.specificity


@dataclass(frozen=True, slots=True)
class RslDocument:
    """A parsed RSL document.  ``valid`` is False when it could not be read as RSL at all (then
    ``contents`` is empty); ``problems`` says why, and lists lesser deviations too."""

    contents: tuple[RslContent, ...]
    valid: bool
    problems: tuple[str, ...]
    base_url: str = ""
    size: int = 0
    namespace: str | None = None  # the root element's namespace ('' when none)


# --- URLs --------------------------------------------------------------------------------


def _origin(url: str) -> str | None:
    """``scheme://host:port`` of an absolute URL (lower-cased, default port filled), or None."""
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").rstrip(".")
        port = parts.port
    except ValueError:
        return None
    if not scheme or not host:
        return None
    if port is None:
        port = _DEFAULT_PORTS.get(scheme)
    return f"{scheme}://{host}:{port}" if port is not None else f"{scheme}://{host}"


def _fetchable(url: str) -> str | None:
    """``url`` as an ASCII http(s) URL (unsafe characters percent-encoded, IDNA host), or None
    when it is not an absolute http(s) URL."""
    try:
        parts = urlsplit(url)
        if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
            return None
        netloc = parts.netloc
        if not netloc.isascii():
            host = parts.hostname
            ascii_host = ".".join(
                label.encode("idna").decode("ascii") if not label.isascii() else label
                for label in host.split(".")
            )
            netloc = netloc.replace(host, ascii_host) if host in netloc else ascii_host
            if not netloc.isascii():
                return None
    except (ValueError, UnicodeError):
        return None
    rest = quote(url[url.find(parts.netloc) + len(parts.netloc):], safe=_URL_SAFE)
    return f"{parts.scheme.lower()}://{netloc}{rest}"


def _absolute_license_url(value: str, base: str, where: str) -> tuple[str | None, list[str]]:
    """Make a licence URL absolute and fetchable; (None, problems) when it cannot be used."""
    value = value.strip()
    problems: list[str] = []
    if not value:
        return None, [f"{where}: empty licence URL ignored"]
    if _FULL_URL.match(value) is None:
        if _SCHEME.match(value) is not None and not value.startswith(("/", "./", "../")):
            scheme = value.split(":", 1)[0]
            if scheme.lower() not in _DEFAULT_PORTS:
                return None, [f"{where}: licence URL {value!r} is not an http(s) URL; ignored"]
        resolved = urljoin(base, value)
        problems.append(
            f"{where}: licence URL {value!r} is not absolute (RSL requires a fully qualified "
            f"URL); resolved against {base} to {resolved}"
        )
        value = resolved
    fetchable = _fetchable(value)
    if fetchable is None:
        return None, [*problems, f"{where}: licence URL {value!r} is not an http(s) URL; ignored"]
    return fetchable, problems


# --- discovery ---------------------------------------------------------------------------


def license_urls_from_robots(
    robots: RobotsFile, robots_url: str
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The RSL licence URLs of a robots.txt: ``((url, problems), ...)`` in file order.

    RSL: "License: <absoluteURL>" -- a global directive, one or more lines; the URL must be
    fully qualified and may point to another host.  A relative value is resolved against
    ``robots_url`` with a problem note (protocols.md §5.5 vector 6 [REC]).  Values that are not
    http(s) URLs (``file:``, ``javascript:``, empty) are dropped.  A URL listed twice appears
    once (with the problems of every copy).
    """
    if not isinstance(robots, RobotsFile):
        raise TypeError(f"robots must be RobotsFile, not {type(robots).__name__}")
    found: dict[str, list[str]] = {}
    for line in robots.global_lines:
        if line.key != "license":
            continue
        url, problems = _absolute_license_url(line.value, robots_url,
                                              f"robots.txt line {line.line}")
        if url is not None:
            found.setdefault(url, []).extend(problems)
    return tuple((url, tuple(problems)) for url, problems in found.items())


_TOKEN_CHARS = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_UNQUOTED = re.compile(r"[^\s;,]+")
_OWS = " \t"


def _skip_ows(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _OWS:
        pos += 1
    return pos


def _skip_to_comma(text: str, pos: int) -> int:
    """Index just past the next comma outside a quoted string or ``<...>`` (or the end)."""
    quoted = angle = False
    while pos < len(text):
        char = text[pos]
        if quoted:
            if char == "\\":
                pos += 1
            elif char == '"':
                quoted = False
        elif angle:
            angle = char != ">"
        elif char == '"':
            quoted = True
        elif char == "<":
            angle = True
        elif char == ",":
            return pos + 1
        pos += 1
    return pos


def _parse_link_header(value: str) -> list[tuple[str, dict[str, str]]]:
    """RFC 8288 §3: ``Link = #link-value``; ``link-value = "<" URI-Reference ">" *( OWS ";"
    OWS link-param )``; ``link-param = token BWS [ "=" BWS ( token / quoted-string ) ]``.
    Lenient: a malformed link-value is skipped up to the next comma."""
    links: list[tuple[str, dict[str, str]]] = []
    pos, size = 0, len(value)
    while pos < size:
        pos = _skip_ows(value, pos)
        if pos >= size:
            break
        if value[pos] == ",":
            pos += 1
            continue
        if value[pos] != "<":
            pos = _skip_to_comma(value, pos)
            continue
        end = value.find(">", pos + 1)
        if end < 0:
            break
        target = value[pos + 1 : end].strip()
        pos = end + 1
        params: dict[str, str] = {}
        while True:
            pos = _skip_ows(value, pos)
            if pos >= size:
                break
            if value[pos] == ",":
                pos += 1
                break
            if value[pos] != ";":
                pos = _skip_to_comma(value, pos)
                break
            pos = _skip_ows(value, pos + 1)
            name_match = _TOKEN_CHARS.match(value, pos)
            if name_match is None:
                pos = _skip_to_comma(value, pos)
                break
            name = name_match.group(0).lower()
            pos = _skip_ows(value, name_match.end())
            param_value = ""
            if pos < size and value[pos] == "=":
                pos = _skip_ows(value, pos + 1)
                if pos < size and value[pos] == '"':
                    chars: list[str] = []
                    pos += 1
                    while pos < size and value[pos] != '"':
                        if value[pos] == "\\" and pos + 1 < size:
                            pos += 1
                        chars.append(value[pos])
                        pos += 1
                    pos += 1  # the closing quote (or past the end)
                    param_value = "".join(chars)
                else:
                    # Lenient: an unquoted value that is not a token (type=application/rsl+xml)
                    # runs up to the next ';', ',' or whitespace.
                    token = _UNQUOTED.match(value, pos)
                    if token is not None:
                        param_value = token.group(0)
                        pos = token.end()
            # RFC 8288 §3.3: the rel parameter "MUST NOT appear more than once in a given
            # link-value; occurrences after the first MUST be ignored by parsers."  The same is
            # done for every parameter.
            params.setdefault(name, param_value)
        links.append((target, params))
    return links


def license_urls_from_link_header(
    values: Sequence[str | bytes] | str | bytes, base_url: str
) -> tuple[str, ...]:
    """The RSL licence URLs named by ``Link`` header values, absolute, in order, no duplicates.

    RSL: ``Link: <https://example.com/license.xml>; rel="license";
    type="application/rsl+xml"``.  RFC 8288: a header (or each of several headers) may hold
    several comma-separated links; "rel" may hold several space-separated relation types,
    compared case-insensitively (§2.1.1); a relative target is resolved against ``base_url``
    (the URL of the response).  Only links whose ``rel`` includes ``license`` and whose
    ``type`` is ``application/rsl+xml`` (parameters ignored) count; non-http(s) targets are
    dropped.  Bytes are decoded as ISO-8859-1, as HTTP header bytes are.
    """
    if isinstance(values, (str, bytes)):
        values = [values]
    found: dict[str, None] = {}
    for raw in values:
        value = raw.decode("latin-1") if isinstance(raw, bytes) else raw
        if not isinstance(value, str):
            raise TypeError(f"header value must be str or bytes, not {type(raw).__name__}")
        for target, params in _parse_link_header(value):
            if "license" not in params.get("rel", "").lower().split():
                continue
            media_type = params.get("type", "").split(";", 1)[0].strip().lower()
            if media_type != RSL_MEDIA_TYPE:
                continue
            url = _fetchable(urljoin(base_url, target))
            if url is not None:
                found.setdefault(url, None)
    return tuple(found)


# --- XML parsing -------------------------------------------------------------------------


class _Refused(Exception):
    """Raised inside expat handlers to abort on DTD content."""


def _refuse_doctype(*_args: object) -> None:
    raise _Refused("DOCTYPE declaration")


def _refuse_entity(*_args: object) -> None:
    raise _Refused("ENTITY declaration")


def _refuse_notation(*_args: object) -> None:
    raise _Refused("NOTATION declaration")


def _refuse_external(*_args: object) -> int:
    raise _Refused("external entity reference")


def _has_dtd_markup(data: bytes) -> str | None:
    """Which DTD markup the raw bytes contain, or None.  Case-insensitive; NUL bytes are
    removed first so that UTF-16 spellings are found too."""
    folded = data.replace(b"\x00", b"").lower()
    for marker, name in ((b"<!doctype", "DOCTYPE"), (b"<!entity", "ENTITY")):
        if marker in folded:
            return name
    return None


class _LicenseBuilder:
    __slots__ = ("line", "payments", "permits", "prohibits")

    def __init__(self, line: int) -> None:
        self.line = line
        self.permits: dict[str, set[str]] = {}
        self.prohibits: dict[str, set[str]] = {}
        self.payments: list[RslPayment] = []


class _ContentBuilder:
    __slots__ = ("licenses", "line", "server", "url")

    def __init__(self, url: str | None, server: str | None, line: int) -> None:
        self.url = url
        self.server = server
        self.line = line
        self.licenses: list[_LicenseBuilder] = []


class _Reader:
    """Expat handlers collecting ``<content>`` elements into builders.

    Each open element gets a role from its parent's role: ``content`` under the root,
    ``license`` under ``content``, ``permits``/``prohibits``/``payment`` under ``license``,
    ``amount`` under ``payment``; anything else (and everything outside the root's namespace)
    gets no role and is ignored, with its subtree.
    """

    def __init__(self, parser: expat.XMLParserType, problems: list[str]) -> None:
        self.parser = parser
        self.problems = problems
        self.roles: list[str] = []
        self.root_ns: str | None = None
        self.root_ok = False
        self.contents: list[_ContentBuilder] = []
        self.license: _LicenseBuilder | None = None
        # The <permits>/<prohibits>/<amount> whose text is being collected: (attrs, line).
        self.collecting: tuple[dict[str, str], int] | None = None
        self.text: list[str] = []
        self.payment: tuple[str | None, int, list[tuple[str, str | None]]] | None = None

    def start(self, name: str, attrs: dict[str, str]) -> None:
        namespace, _, local = name.rpartition(" ")
        line = self.parser.CurrentLineNumber
        if not self.roles:
            self.root_ns = namespace
            self.root_ok = local == "rsl"
            self.roles.append("root" if self.root_ok else "")
            return
        parent = self.roles[-1]
        role = ""
        if namespace == self.root_ns and parent:
            if parent == "root" and local == "content":
                role = local
                self.contents.append(_ContentBuilder(attrs.get("url"), attrs.get("server"), line))
            elif parent == "content" and local == "license":
                role = local
                self.license = _LicenseBuilder(line)
                self.contents[-1].licenses.append(self.license)
            elif parent == "license" and local in ("permits", "prohibits"):
                role = local
                self.collecting = (attrs, line)
                self.text = []
            elif parent == "license" and local == "payment":
                role = local
                self.payment = (attrs.get("type"), line, [])
            elif parent == "payment" and local == "amount":
                role = local
                self.collecting = (attrs, line)
                self.text = []
        self.roles.append(role)

    def end(self, name: str) -> None:
        role = self.roles.pop()
        if role in ("permits", "prohibits", "amount") and self.collecting is not None:
            attrs, line = self.collecting
            self.collecting = None
            text = "".join(self.text)
            self.text = []
            if role == "amount":
                if self.payment is not None:
                    currency = (attrs.get("currency") or "").strip() or None
                    self.payment[2].append((text.strip(), currency))
            elif self.license is not None:
                self.finish_list(role, attrs, line, text, self.license)
        elif role == "payment" and self.payment is not None and self.license is not None:
            self.finish_payment(self.license)
        elif role == "license":
            self.license = None

    def data(self, text: str) -> None:
        if self.collecting is not None:
            self.text.append(text)

    def finish_list(
        self, kind: str, attrs: dict[str, str], line: int, text: str, license_: _LicenseBuilder
    ) -> None:
        raw_type = attrs.get("type")
        if raw_type is None:
            self.problems.append(f"line {line}: <{kind}> without type read as type=\"usage\"")
            type_ = "usage"
        else:
            type_ = raw_type.strip().lower()
            if type_ not in _TYPES:
                self.problems.append(f"line {line}: <{kind}> type {raw_type!r} unknown; kept")
        values: set[str] = set()
        for value in _VALUE_SPLIT.split(text.strip()):
            if not value:
                continue
            if type_ == "geo":
                values.add(value.upper())
                continue
            value = value.lower()
            if type_ == "usage":
                if value in _LEGACY_USAGE:
                    self.problems.append(
                        f"line {line}: pre-1.0 usage {value!r} read as {_LEGACY_USAGE[value]!r}"
                    )
                    value = _LEGACY_USAGE[value]
                elif value not in _USAGE_VALUES:
                    self.problems.append(f"line {line}: unknown usage {value!r}; kept")
            elif type_ == "user" and value not in _USER_VALUES:
                self.problems.append(f"line {line}: unknown user type {value!r}; kept")
            values.add(value)
        target = license_.permits if kind == "permits" else license_.prohibits
        target.setdefault(type_, set()).update(values)

    def finish_payment(self, license_: _LicenseBuilder) -> None:
        assert self.payment is not None
        raw_type, line, amounts = self.payment
        self.payment = None
        if raw_type is None or not raw_type.strip():
            nonzero = [a for a, _ in amounts if a and _ZERO.fullmatch(a) is None]
            type_ = "unspecified" if nonzero else "free"
            self.problems.append(f"line {line}: <payment> without type read as {type_!r}")
        else:
            type_ = raw_type.strip().lower()
            if type_ not in _PAYMENT_TYPES:
                self.problems.append(f"line {line}: unknown payment type {raw_type!r}; kept")
        if not amounts:
            license_.payments.append(RslPayment(type_, None, None))
        for amount, currency in amounts:
            license_.payments.append(RslPayment(type_, amount or None, currency or None))


def _read_xml(data: bytes, problems: list[str]) -> _Reader | None:
    """Parse ``data`` with expat, refusing all DTD content.  None when refused or malformed
    (the reason appended to ``problems``).  Does no byte-level screening itself."""
    parser = expat.ParserCreate(namespace_separator=" ")
    reader = _Reader(parser, problems)
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_entity
    parser.UnparsedEntityDeclHandler = _refuse_entity
    parser.NotationDeclHandler = _refuse_notation
    parser.ExternalEntityRefHandler = _refuse_external
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.data
    try:
        parser.Parse(data, True)
    except _Refused as exc:
        problems.append(f"{exc} refused (DTDs and entities are never processed); not parsed")
        return None
    except expat.ExpatError as exc:
        problems.append(f"malformed XML: {exc}")
        return None
    except (ValueError, UnicodeError, LookupError) as exc:
        problems.append(f"unreadable XML: {exc}")
        return None
    return reader


def _content_url(
    raw: str | None, base_url: str, line: int, problems: list[str]
) -> tuple[PathPattern | None, str | None]:
    """(pattern, origin) of a ``<content url>``; see the module notes."""
    if raw is None:
        problems.append(f"line {line}: <content> without url read as covering any URL")
        return None, None
    value = raw.strip()
    if not value:
        return None, None
    # "The value must be either a full URL, or a path on the server (e.g., /content/images/)
    # that follows the URL-matching rules of the Robots Exclusion Protocol (RFC 9309)".
    if value.startswith("//"):
        value = urljoin(base_url, value)
        problems.append(f"line {line}: scheme-relative content url {raw!r} read as {value!r}")
    if _FULL_URL.match(value) is not None:
        origin = _origin(value)
        if origin is None:
            problems.append(f"line {line}: content url {raw!r} is not a usable URL; matches none")
            return compile_pattern(""), ""
        try:
            parts = urlsplit(value)
        except ValueError:
            return compile_pattern(""), ""
        pattern = parts.path or "/"
        if parts.query:
            pattern += "?" + parts.query
        return compile_pattern(pattern), origin
    if value[0] not in "/*":
        problems.append(
            f"line {line}: content url {raw!r} is neither a full URL nor a path starting with "
            "'/'; it matches no URL"
        )
    return compile_pattern(value), None


def _build(reader: _Reader, base_url: str, problems: list[str]) -> tuple[RslContent, ...]:
    contents: list[RslContent] = []
    for builder in reader.contents:
        pattern, origin = _content_url(builder.url, base_url, builder.line, problems)
        server = (builder.server or "").strip() or None
        if server is not None and _FULL_URL.match(server) is None:
            resolved = urljoin(base_url, server)
            problems.append(
                f"line {builder.line}: server {server!r} is not a full URL; read as {resolved!r}"
            )
            server = resolved
        licenses = tuple(
            RslLicense(
                permits=_frozen_map({k: frozenset(v) for k, v in lic.permits.items()}),
                prohibits=_frozen_map({k: frozenset(v) for k, v in lic.prohibits.items()}),
                payments=tuple(lic.payments),
                line=lic.line,
            )
            for lic in builder.licenses
        )
        permits: dict[str, frozenset[str]] = {}
        prohibits: dict[str, frozenset[str]] = {}
        for lic in licenses:
            for merged, source in ((permits, lic.permits), (prohibits, lic.prohibits)):
                for type_, values in source.items():
                    merged[type_] = merged.get(type_, frozenset()) | values
        if not licenses:
            problems.append(f"line {builder.line}: <content> without <license>")
        contents.append(
            RslContent(
                url_pattern=pattern,
                url_raw=builder.url or "",
                server=server,
                permits=_frozen_map(permits),
                prohibits=_frozen_map(prohibits),
                payments=tuple(p for lic in licenses for p in lic.payments),
                line=builder.line,
                url_origin=origin,
                licenses=licenses,
            )
        )
    return tuple(contents)


def _capped(problems: list[str]) -> tuple[str, ...]:
    if len(problems) > MAX_PROBLEMS:
        extra = len(problems) - MAX_PROBLEMS
        problems = [*problems[:MAX_PROBLEMS], f"... and {extra} more problems not listed"]
    return tuple(problems)


def parse_rsl(body: bytes, *, base_url: str) -> RslDocument:
    """Parse an RSL licence document.  Never raises for ``bytes`` input; see ``problems``.

    ``base_url`` is the URL the document was fetched from; it resolves relative ``server``
    attributes and scheme-relative ``url`` attributes.
    """
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError(f"body must be bytes, not {type(body).__name__}")
    if not isinstance(base_url, str):
        raise TypeError(f"base_url must be str, not {type(base_url).__name__}")
    data = bytes(body)
    size = len(data)
    problems: list[str] = []

    def invalid(reason: str, namespace: str | None = None) -> RslDocument:
        problems.append(reason)
        return RslDocument(contents=(), valid=False, problems=_capped(problems),
                           base_url=base_url, size=size, namespace=namespace)

    if size > RSL_SIZE_LIMIT:
        return invalid(f"document of {size} bytes exceeds the {RSL_SIZE_LIMIT}-byte limit; "
                       "not parsed")
    if not data.strip():
        return invalid("empty document")
    dtd = _has_dtd_markup(data)
    if dtd is not None:
        return invalid(f"{dtd} declaration refused (DTDs and entities are never processed); "
                       "not parsed")
    reader = _read_xml(data, problems)
    if reader is None:
        return RslDocument(contents=(), valid=False, problems=_capped(problems),
                           base_url=base_url, size=size)
    namespace = reader.root_ns
    if not reader.root_ok:
        return invalid("root element is not <rsl>; not an RSL document", namespace)
    if namespace != RSL_NAMESPACE:
        shown = f"namespace {namespace!r}" if namespace else "no namespace"
        problems.insert(0, f"root <rsl> has {shown}, not {RSL_NAMESPACE!r}; read anyway")
    contents = _build(reader, base_url, problems)
    if not contents:
        problems.append("no <content> element: the document licenses nothing")
    return RslDocument(contents=contents, valid=True, problems=_capped(problems),
                       base_url=base_url, size=size, namespace=namespace)


# --- evaluation --------------------------------------------------------------------------


_PROHIBITED, _FREE, _REQUIRED, _NOT_LICENSED = 0, 1, 2, 3
_TERMS = "\x00terms\x00"  # placeholder in reason templates, replaced by the term names


def _expand(values: frozenset[str]) -> dict[str, str]:
    """usage term -> the value that names it (``ai-train`` -> ``ai-all`` when only via it)."""
    out: dict[str, str] = {}
    for value in sorted(values, key=lambda v: v in _EXPANSIONS):
        for term in _EXPANSIONS.get(value, frozenset((value,))):
            out.setdefault(term, value)
    return out


def _not_applicable(lic: RslLicense, user_type: str, country: str | None) -> str | None:
    """Why ``lic`` does not apply to us (user type, country), or None when it does."""
    users = lic.permits.get("user")
    if users is not None and user_type not in users:
        listed = " ".join(sorted(users)) or "(none)"
        return f"permits user {listed}, not {user_type}"
    if user_type in lic.prohibits.get("user", frozenset()):
        return f"prohibits user {user_type}"
    countries = lic.permits.get("geo")
    if countries is not None:
        listed = " ".join(sorted(countries)) or "(none)"
        if country is None:
            return f"permits geo {listed}; our country is unknown"
        if country not in countries:
            return f"permits geo {listed}, not {country}"
    banned = lic.prohibits.get("geo")
    if banned:
        if country is None:
            return f"prohibits geo {' '.join(sorted(banned))}; our country is unknown"
        if country in banned:
            return f"prohibits geo {country}"
    return None


def _named(term: str, via: str) -> str:
    """How a reason names the terms: ``{terms}``, or ``all ({terms})`` when via an expansion."""
    return _TERMS if via == term else f"{via} ({_TERMS})"


def _decide(lic: RslLicense, term: str, server: str | None) -> tuple[int, str] | None:
    """One licence's answer for one usage term: (outcome, reason template), None when unknown.
    The template names the term as ``{terms}`` so that reasons shared by terms are merged."""
    prohibited = _expand(lic.prohibits.get("usage", frozenset()))
    if term in prohibited:
        return _PROHIBITED, f"prohibits usage {_named(term, prohibited[term])}"
    requirement = lic.requirement(server)
    permitted_values = lic.permits.get("usage")
    if permitted_values is None:
        if requirement is not None:
            return _REQUIRED, f"usage {_TERMS}: {requirement}"
        return None
    permitted = _expand(permitted_values)
    if term in permitted:
        named = _named(term, permitted[term])
        if requirement is not None:
            return _REQUIRED, f"permits usage {named}, but {requirement}"
        return _FREE, f"permits usage {named} free"
    # protocols.md §5.4.4 [REC]: "if neither permitted nor prohibited while an RSL document
    # covers the URL -> treat as not licensed".
    listed = " ".join(sorted(permitted_values)) or "(none)"
    return _NOT_LICENSED, f"usage {_TERMS} not among permitted usages ({listed})"


def _select(doc: RslDocument, url: str) -> list[RslContent]:
    """The longest-matching ``<content>`` in each reading of percent-encoding (one element when
    both readings agree, none when nothing covers ``url``)."""
    forms = match_forms(path_query(url))
    readings = [False]
    if forms[0] is not forms[1] or any(
            c.url_pattern is not None and not c.url_pattern.reads_alike for c in doc.contents):
        readings.append(True)
    chosen: list[RslContent] = []
    for rfc in readings:
        best: RslContent | None = None
        best_length = -2
        for content in doc.contents:
            length = content.match_length(url, forms=forms, rfc=rfc)
            if length is not None and length > best_length:
                best, best_length = content, length
        if best is not None and all(best is not c for c in chosen):
            chosen.append(best)
    return chosen


def statement_for(
    doc: RslDocument,
    url: str,
    *,
    source: str,
    user_type: str = "commercial",
    country: str | None = None,
) -> Statement | None:
    """What ``doc`` says about the usage terms for ``url``; None when it says nothing.

    ``source`` is the URL of the RSL document; ``user_type`` our RSL user type; ``country``
    the ISO 3166-1 alpha-2 code of where we operate (None: unknown).  The statement's channel is
    ``file``; a caller that found the document through a ``Link`` header or robots.txt may
    change it with :func:`dataclasses.replace`.  The rule names the ``<content>`` and gives one
    reason per group of terms decided alike, joined by `` | ``:
    ``RSL <content url="/news/*"> prohibits usage ai-train | permits usage search free (line 3)``.
    """
    if not isinstance(doc, RslDocument):
        raise TypeError(f"doc must be RslDocument, not {type(doc).__name__}")
    if not doc.valid:
        return None
    statements = [st for content in _select(doc, url)
                  if (st := _content_statement(doc, content, source, user_type, country))]
    if len(statements) <= 1:
        return statements[0] if statements else None
    # the two readings of percent-encoding pick different <content>s: most restrictive per term
    merged: dict[str, bool] = {}
    for st in statements:
        for term, ok in st.terms:
            merged[term] = merged.get(term, True) and ok
    return replace(statements[0], terms=tuple(merged.items()),
                   rule=" + ".join(st.rule for st in statements))


def _content_statement(doc: RslDocument, content: RslContent, source: str, user_type: str,
                       country: str | None) -> Statement | None:
    user_type = user_type.strip().lower()
    country = country.strip().upper() if country else None
    where = f'RSL <content url="{content.url_raw}">'

    decisions: dict[str, tuple[int, str]] = {}
    if not content.licenses:
        if content.server:
            reason = f"licence from {content.server} required; we hold none"
            decisions = {term: (_REQUIRED, reason) for term in USAGE_TERMS}
    else:
        applicable = []
        excluded: list[str] = []
        for lic in content.licenses:
            why = _not_applicable(lic, user_type, country)
            if why is None:
                applicable.append(lic)
            else:
                excluded.append(why)
        for term in USAGE_TERMS:
            answers = [a for a in (_decide(lic, term, content.server) for lic in applicable) if a]
            if answers:
                prohibited = [a for a in answers if a[0] == _PROHIBITED]
                decisions[term] = prohibited[0] if prohibited else min(answers, key=lambda a: a[0])
            elif excluded:
                # A licence exists but not for us (user type, country), and no licence that
                # applies to us decides the term: not licensed.
                decisions[term] = (_NOT_LICENSED, f"{excluded[0]}: not licensed")
    if not decisions:
        return None

    terms = tuple((term, decisions[term][0] == _FREE) for term in USAGE_TERMS if term in decisions)
    grouped: dict[str, list[str]] = {}
    for term in USAGE_TERMS:
        if term in decisions:
            grouped.setdefault(decisions[term][1], []).append(term)
    reasons = [template.replace(_TERMS, ", ".join(names)) for template, names in grouped.items()]
    line = f" (line {content.line})" if content.line is not None else ""
    return Statement(
        signal=RSL_SIGNAL,
        channel="file",
        terms=terms,
        rule=f"{where} {' | '.join(reasons)}{line}",
        agent=None,
        source=source,
        problems=doc.problems,
    )
