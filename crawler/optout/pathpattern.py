"""Robots.txt-style path patterns, shared by robots.txt, TDMRep, ai.txt, RSL and Content-Usage.

RFC 9309 §2.2.3: "Crawlers MUST support the following special characters: ``#`` (designates a
line comment), ``$`` (designates the end of the match pattern), ``*`` (designates 0 or more
instances of any character)."  Comments are the caller's business; this module handles ``*`` and
a trailing ``$``.  Matching is a prefix match on the path, parameters and query of the URL
(:func:`path_query`), octet by octet and case-sensitive (§2.2.2: "The matching SHOULD be
case sensitive").

Percent-encoding is read two ways, and a URL is bound by a rule if either reading says so
(fail closed; see :class:`PathPattern`):

* the *raw* reading is Google's reference parser: patterns have characters outside US-ASCII
  UTF-8 percent-encoded and ``%xx`` escapes upper-cased (Google's ``MaybeEscapePattern``); URLs
  have ``%xx`` escapes upper-cased and nothing else touched -- ``%62%61%7A`` does not match ``baz``
  and a raw ``ツ`` in the URL does not match ``%E3%83%84`` (Google's test ``ID_Encoding``);
* the *RFC* reading is RFC 9309 §2.2.2: on both sides characters outside US-ASCII are UTF-8
  percent-encoded and escapes of *unreserved* characters (RFC 3986 §2.3: ``A-Za-z0-9-._~``) are
  decoded ("If a percent-encoded ASCII octet is encountered in the URI, it MUST be unencoded prior
  to comparison, unless it is a reserved character"), so ``/%7Ejoe/`` and ``/~joe/`` are the same
  path.  Escapes of reserved characters are never decoded: ``%2F`` is not ``/``.  A ``%`` that
  starts no escape is read as ``%25`` (RFC 3986 §2.4), so ``/p%xy`` and ``/p%25xy`` are the same.

In both readings (RFC 9309 §2.2.3, "If crawlers match special characters verbatim in the URI,
crawlers SHOULD use "%" encoding"): ``%24`` and ``%2A`` in a pattern are a literal ``$`` and ``*``
(neither an anchor nor a wildcard), and they match ``$``/``*`` in the URL written raw or escaped;
``$`` other than at the very end of a pattern is an ordinary character too.  On both sides the
US-ASCII characters that can never appear literally in a URI (controls, space, ``"<>\\^`{|}``) are
percent-encoded, so ``Disallow: /a%3cd.html`` covers a URL written ``/a<d.html`` and a rule
written with a raw space covers the ``%20`` a URL will carry.

Most patterns and URLs contain no ``%`` and only US-ASCII: then the two readings coincide and
only one is evaluated.  Rule sets that need "longest match wins" over both readings (robots.txt)
evaluate each reading separately and deny if either denies; :meth:`PathPattern.matches` (used
where a matching rule *binds* a statement: TDMRep, Content-Usage, RSL) is True if either reading
matches.

Matching is done by a hand-written matcher (literal prefix, exact, or ``*``-separated parts found
left to right) whose cost is linear in the URL length for every pattern, so a hostile pattern such
as ``/*a*a*a*a*b$`` cannot make evaluation blow up the way a backtracking regular expression can.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "PathPattern",
    "compile_pattern",
    "escape_pattern",
    "match_forms",
    "path_query",
    "rfc_path_query",
]

# A %xx escape (the hex digits may be of either case).
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
# Characters never valid literally in a URI (RFC 3986 §2): controls, space, DEL and "<>\^`{|}.
_URI_UNSAFE_ASCII = '\x00-\x20\x7f"<>\\\\^`{|}'
_URL_NEEDS_ESCAPE = re.compile(f"[{_URI_UNSAFE_ASCII}]")
# In patterns, additionally everything outside US-ASCII.
_PATTERN_NEEDS_ESCAPE = re.compile(f"[{_URI_UNSAFE_ASCII}]|[^\x00-\x7f]")
# Google's GetPathParamsQuery looks for the first of these to find where the path starts.
_PATH_START = re.compile(r"[/?;]")
_STARS = re.compile(r"\*{2,}")
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
# RFC 3986 §2.3: unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~".
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

# Matcher kinds.
_NEVER = 0  # empty pattern: matches nothing
_PREFIX = 1  # no '*', no trailing '$': str.startswith
_EXACT = 2  # no '*', trailing '$': equality
_WILDCARD = 3  # contains '*'


def _upper_escape(match: re.Match[str]) -> str:
    return match.group(0).upper()


def _percent_encode_char(match: re.Match[str]) -> str:
    char = match.group(0)
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:
        # A byte that was not valid UTF-8, smuggled through by errors="surrogateescape":
        # encode the original byte, as Google's byte-oriented parser does.
        data = bytes((code - 0xDC00,))
    else:
        data = char.encode("utf-8", "surrogatepass")
    return "".join(f"%{byte:02X}" for byte in data)


def _normalise_escapes(text: str) -> str:
    """Upper-case the hex digits of every ``%xx`` escape (RFC 9309 §2.2.2 compares octets)."""
    if "%" not in text:
        return text
    return _ESCAPE.sub(_upper_escape, text)


def _decode_if_unreserved(match: re.Match[str]) -> str:
    escape = match.group(0)
    char = chr(int(escape[1:], 16))
    return char if char in _UNRESERVED else escape.upper()


def _decode_unreserved(text: str) -> str:
    """RFC 9309 §2.2.2: decode escapes of unreserved characters; upper-case the others.  A ``%``
    that starts no escape is data, written ``%25`` (RFC 3986 §2.4)."""
    if "%" not in text:
        return text
    return _ESCAPE.sub(_decode_if_unreserved, _STRAY_PERCENT.sub("%25", text))


def _literal_specials(text: str) -> str:
    """``%24`` and ``%2A`` (hex already upper-cased) as the literal ``$`` and ``*`` they stand for:
    the matcher splits wildcards off before this is applied, so they stay literal."""
    if "%" not in text:
        return text
    return text.replace("%24", "$").replace("%2A", "*")


def rfc_path_query(path: str) -> str:
    """The RFC 9309 §2.2.2 reading of a :func:`path_query` result: characters outside US-ASCII
    UTF-8 percent-encoded, escapes of unreserved characters decoded.  (``%24``/``%2A`` are left as
    they are; :meth:`PathPattern.matches` takes care of them.)"""
    if not path.isascii():
        path = _NON_ASCII.sub(_percent_encode_char, path)
    return _decode_unreserved(path)


def match_forms(path: str) -> tuple[str, str]:
    """``(raw, rfc)``: a :func:`path_query` result in the raw and in the RFC 9309 reading, ready
    for matching (``%24``/``%2A`` read as ``$``/``*``).  When the two are the same string (no
    ``%``, only US-ASCII: the usual case) the same object is returned twice, for free."""
    if "%" not in path and path.isascii():
        return path, path
    raw = _literal_specials(path)
    rfc = _literal_specials(rfc_path_query(path))
    return raw, (raw if rfc == raw else rfc)


def escape_pattern(text: str) -> str:
    """Return ``text`` as robots.txt matching compares it (Google's ``MaybeEscapePattern``).

    RFC 9309 §2.2.2: "Octets in the URI and robots.txt paths outside the range of the ASCII coded
    character set, and those in the reserved range defined by [RFC3986], MUST be percent-encoded
    as defined by [RFC3986] prior to comparison."  Non-ASCII characters become UTF-8 ``%XX``
    escapes, existing escapes get upper-case hex digits, and the ASCII characters that can never
    appear literally in a URI are escaped too.  Reserved ASCII characters are left as written
    (encoding them would stop ``/a?b`` from matching ``/a?b``).  Lone surrogates U+DC80..U+DCFF
    (bytes kept by ``errors="surrogateescape"``) are encoded as the original byte.
    """
    if not isinstance(text, str):
        raise TypeError(f"pattern must be str, not {type(text).__name__}")
    if _PATTERN_NEEDS_ESCAPE.search(text) is not None:
        text = _PATTERN_NEEDS_ESCAPE.sub(_percent_encode_char, text)
    return _normalise_escapes(text)


def path_query(url: str) -> str:
    """Path + params + query of ``url`` as robots.txt matching sees it.

    RFC 9309 §2.2.2: "The matching MUST start with the first octet of the path."  Google's
    ``GetPathParamsQuery`` is followed exactly: an initial ``//`` is skipped, a scheme is
    recognised only when ``://`` comes before any ``/``, ``?`` or ``;``, the fragment is dropped,
    an empty path gives ``/`` and a result starting with ``?`` or ``;`` gets a ``/`` in front.
    ``%xx`` escapes are upper-cased and the ASCII characters never valid in a URI are escaped;
    nothing is decoded and non-ASCII characters are left as they are.
    """
    if not isinstance(url, str):
        raise TypeError(f"url must be str, not {type(url).__name__}")
    search_start = 2 if url.startswith("//") else 0
    early_path = _PATH_START.search(url, search_start)
    protocol_end = url.find("://", search_start)
    if protocol_end < 0 or (early_path is not None and early_path.start() < protocol_end):
        # If a path, params or query start before "://", the "://" does not end a scheme.
        path_from = search_start
    else:
        path_from = protocol_end + 3
    path_start_match = _PATH_START.search(url, path_from)
    if path_start_match is None:
        return "/"
    path_start = path_start_match.start()
    hash_pos = url.find("#", search_start)
    if 0 <= hash_pos < path_start:
        return "/"
    result = url[path_start : hash_pos if hash_pos >= 0 else len(url)]
    if result[0] != "/":
        result = "/" + result
    if _URL_NEEDS_ESCAPE.search(result) is not None:
        result = _URL_NEEDS_ESCAPE.sub(_percent_encode_char, result)
    return _normalise_escapes(result)


@dataclass(frozen=True, slots=True)
class PathPattern:
    """A compiled path pattern.

    ``raw`` is the value as written (after comment stripping and trimming); ``encoded`` is what is
    matched in the raw (Google) reading (see :func:`escape_pattern`).  Build one with
    :func:`compile_pattern`; constructing it directly trusts ``encoded`` as given.

    :attr:`rfc` is the same pattern in the RFC 9309 reading (escapes of unreserved characters
    decoded); it is the pattern itself when that changes nothing, as for most patterns.
    """

    raw: str
    encoded: str
    _kind: int = field(init=False, repr=False, compare=False)
    _parts: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _anchored: bool = field(init=False, repr=False, compare=False)
    _rfc: PathPattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        encoded = self.encoded
        anchored = encoded.endswith("$")
        # RFC 9309 §2.2.3: '$' "designates the end of the match pattern"; anywhere else it is an
        # ordinary character (Google: "Includes '$' when not at end of pattern").
        body = encoded[:-1] if anchored else encoded
        if not encoded:
            kind, parts = _NEVER, ("",)
        elif "*" not in body:
            kind, parts = (_EXACT if anchored else _PREFIX), (body,)
        else:
            body = _STARS.sub("*", body)
            if not anchored:
                # Trailing stars add nothing to a prefix match.
                body = body.rstrip("*")
            if "*" not in body:
                kind, parts = _PREFIX, (body,)
            else:
                kind, parts = _WILDCARD, tuple(body.split("*"))
        if "%" in encoded:
            # RFC 9309 §2.2.3: "%2A" and "%24" are a literal '*' and '$' (the wildcards and the
            # anchor are already split off, so the literal characters are not special any more).
            parts = tuple(_literal_specials(part) for part in parts)
        object.__setattr__(self, "_kind", kind)
        object.__setattr__(self, "_parts", parts)
        object.__setattr__(self, "_anchored", anchored)
        decoded = _decode_unreserved(encoded)
        rfc = self if decoded == encoded else PathPattern(raw=self.raw, encoded=decoded)
        object.__setattr__(self, "_rfc", rfc)

    @property
    def rfc(self) -> PathPattern:
        """This pattern in the RFC 9309 §2.2.2 reading (escapes of unreserved characters
        decoded); ``self`` when that reading is the same."""
        return self._rfc

    @property
    def specificity(self) -> int:
        """Length in octets of ``encoded``: RFC 9309 §2.2.2 "the most specific match found MUST be
        used. The most specific match is the match that has the most octets."
        """
        return len(self.encoded)

    @property
    def prefix(self) -> str | None:
        """The literal text this pattern matches as a plain prefix (no ``*`` inside the pattern, no
        ``$`` anchor; trailing stars dropped), else None.  Lets a rule set look matching
        prefixes up in a dict instead of trying every rule.
        """
        return self._parts[0] if self._kind == _PREFIX else None

    def matches(self, path_query: str) -> bool:
        """True when this pattern matches ``path_query`` (as returned by :func:`path_query`) in
        the raw or in the RFC 9309 reading (see the module docstring)."""
        if "%" not in path_query:
            if self._match(path_query):
                return True
            if self._rfc is self and path_query.isascii():
                return False  # both readings are the same
        elif self._match(_literal_specials(path_query)):
            return True
        return self._rfc._match(_literal_specials(rfc_path_query(path_query)))

    def matches_reading(self, forms: tuple[str, str], rfc: bool) -> bool:
        """True when this pattern matches in one reading only: ``forms`` is
        :func:`match_forms` of the path, ``rfc`` picks the RFC 9309 reading (else Google's raw
        one).  For readers that select one rule among several (first match, longest match): they
        select once per reading and keep the more restrictive outcome, as robots.txt does."""
        if rfc:
            return self._rfc._match(forms[1])
        return self._match(forms[0])

    @property
    def reads_alike(self) -> bool:
        """True when the RFC 9309 reading of this pattern is the raw one (the usual case)."""
        return self._rfc is self

    def _match(self, path_query: str) -> bool:
        """This reading of the pattern against a path in the same reading, with ``%24``/``%2A``
        already turned into ``$``/``*`` (see :func:`match_forms`)."""
        kind = self._kind
        if kind == _PREFIX:
            return path_query.startswith(self._parts[0])
        if kind == _NEVER:
            return False
        if kind == _EXACT:
            return path_query == self._parts[0]
        parts = self._parts
        first = parts[0]
        if not path_query.startswith(first):
            return False
        pos = len(first)
        # Each '*' part is placed at its leftmost possible position: that leaves the most room for
        # the parts after it, so a match exists iff this greedy placement finds one.
        for part in parts[1:-1]:
            found = path_query.find(part, pos)
            if found < 0:
                return False
            pos = found + len(part)
        last = parts[-1]
        if self._anchored:
            return len(path_query) - len(last) >= pos and path_query.endswith(last)
        return path_query.find(last, pos) >= 0


def compile_pattern(raw: str) -> PathPattern:
    """Compile a robots.txt-style pattern; never raises for ``str`` input.

    ``*`` matches any sequence (also across ``/``), a trailing ``$`` anchors the end, otherwise the
    pattern is a prefix.  Patterns need not start with ``/``: ``*.jpg`` matches ``/img/a.jpg``
    (ai.txt writes them so), while ``img/`` matches nothing since every path starts with ``/``.
    An empty pattern matches nothing (so ``Disallow:`` with no value disallows nothing).
    """
    return PathPattern(raw=raw, encoded=escape_pattern(raw))
