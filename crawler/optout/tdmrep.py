"""W3C TDM Reservation Protocol (TDMRep): the well-known file, HTTP headers and HTML meta.

Spec: "TDM Reservation Protocol (TDMRep)", W3C TDMRep Community Group, Final Community Group
Report (third version, May 2024).  Sans-IO: :func:`parse_tdmrep_file` takes the body bytes of
``/.well-known/tdmrep.json``; :func:`statement_from_file`, :func:`statement_from_headers` and
:func:`statement_from_html` each turn one channel into a :class:`TdmStatement` for one resource;
:func:`combine` applies the precedence of spec §"Processing order" and returns a
:class:`TdmDecision`.  EPUB and PDF embedded metadata (the last processing step) are not read
here.

Remote input never makes this module raise.  Whatever had to be skipped, repaired or guessed is
listed in a ``problems`` tuple (``"rule #1: tdm-reservation 'yes' is not 0 or 1 ..."``), so the
evidence can go into an audit record.

Channels and precedence
-----------------------
"The processing order is: 1. tdmrep.json file, 2. HTTP headers, 3. HTML metadata, 4. EPUB/PDF
metadata" -- each later step supersedes the values found earlier, and absence (no statement, or a
statement whose value is unset) at a later step never resets an earlier value.  So a page-level
``0`` *can* lower a site-level ``1``; :attr:`TdmDecision.downgraded` says when that happened so
the caller can log it.  ``tdm-policy`` follows the reservation: the decision carries the latest
policy stated alongside a reservation that is not ``0``, and no policy when the effective value
is not ``1`` ("the TDM Policy SHOULD NOT be processed" then).  A policy never lifts a
reservation: it only says how a licence may be obtained.

Deviations
----------
From the spec (conservative project choices; each one is recorded as a problem):

* ``tdm-reservation`` "can only take the values 0 or 1 ... Any other value is a protocol error
  and the value is then treated as unset".  Here the file's JSON string ``"1"``/``"0"``, the
  numbers ``1.0``/``0.0`` and header or meta values wrapped in quotes (``"1"``) -- or, for
  meta, surrounded by whitespace -- are read as 1 / 0 ("non-conforming value type, read
  conservatively"), and JSON ``true`` is read as 1.  Everything else (``yes``, ``2``, ``false``,
  ``null``, arrays, objects) is unset, as the spec says.  Whitespace around a header value is
  HTTP optional whitespace, not part of the value, and is not a problem.
* A header or meta sent several times with different values: the spec says nothing; here it is
  reserved if any copy says 1, otherwise not reserved if any copy says 0.
* A ``tdm-policy`` that is not an absolute ``http``/``https`` URL is dropped (policy = None).
* Bodies over :data:`TDMREP_FILE_LIMIT` (1 MiB) are not parsed: the file is invalid.
* Duplicate keys in a rule object: a ``tdm-reservation`` read several times counts as 1 if any
  copy is 1 (JSON parsers usually keep the last copy).

Kept as the spec says (where a more lenient reading was possible):

* The file must be a JSON array ("brackets are mandatory even with one rule").  A bare object
  (``{"tdm-reservation": 1}``), an array wrapped in an object, HTML (a soft 404), invalid JSON,
  an empty body or a body that is not UTF-8 make the file invalid: the site does not implement
  TDMRep through the well-known file.  The problem text says what the object claimed.
* Rules are tried in array order and the first whose ``location`` matches wins ("the most
  specific match is the first in sequence").  A rule with an unreadable ``tdm-reservation``
  still matches, with an unset value; a rule without ``location`` or ``tdm-reservation``, or
  an array item that is not an object, is skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from urllib.parse import urlsplit

from .htmlmeta import HtmlHead, HtmlMeta
from .pathpattern import PathPattern, compile_pattern, match_forms, path_query

__all__ = [
    "TDMREP_FILE_LIMIT",
    "TdmDecision",
    "TdmRepFile",
    "TdmRule",
    "TdmStatement",
    "TdmValue",
    "combine",
    "parse_tdmrep_file",
    "statement_from_file",
    "statement_from_headers",
    "statement_from_html",
]

#: Largest tdmrep.json body that is parsed (larger bodies make the file invalid).
TDMREP_FILE_LIMIT = 1 << 20
#: Longest rule text kept in :attr:`TdmRule.text` (evidence, not data).
RULE_TEXT_LIMIT = 2000

_RESERVATION_KEY = "tdm-reservation"
_POLICY_KEY = "tdm-policy"
_LOCATION_KEY = "location"
_KNOWN_KEYS = frozenset({_LOCATION_KEY, _RESERVATION_KEY, _POLICY_KEY})
# Precedence of the channels (spec "Processing order"); later supersedes earlier.
# "embedded" (EPUB/PDF metadata, read from the file itself: crawler.optout.embedded) is the
# spec's last and strongest step.
_CHANNEL_RANK = {"file": 0, "header": 1, "meta": 2, "embedded": 3}
_OWS = " \t"
_QUOTES = "\"'"
_CONSERVATIVE = "non-conforming value type, read conservatively"


class TdmValue(Enum):
    """The value of ``tdm-reservation``: 1, 0, or unset (absent or a protocol error)."""

    RESERVED = 1
    NOT_RESERVED = 0
    UNSET = None


@dataclass(frozen=True, slots=True)
class TdmRule:
    """One object of the tdmrep.json array.

    ``index`` is its 0-based position in the array (counting skipped items), ``text`` the rule
    as compact JSON (cut after :data:`RULE_TEXT_LIMIT` characters) and ``problems`` what was
    wrong with it (an unreadable value, a rejected policy...).
    """

    location: PathPattern
    reservation: TdmValue
    policy: str | None
    index: int
    text: str
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TdmRepFile:
    """A parsed ``/.well-known/tdmrep.json``.

    ``valid`` is False when the body is not a TDMRep file at all (then ``rules`` is empty and
    the site is treated as not implementing TDMRep through this channel).  ``problems`` holds
    the file-level problems and every rule's problems (prefixed ``rule #i:``).
    """

    rules: tuple[TdmRule, ...]
    problems: tuple[str, ...]
    valid: bool

    def match(self, url: str) -> TdmRule | None:
        """The rule that applies to ``url`` (a full URL or a path), or None.

        Spec: "the most specific match found MUST be used. The most specific match is the first
        in sequence" -- the array is tried in order and the first matching rule wins.
        """
        if not self.valid or not self.rules:
            return None
        return self.match_forms(match_forms(path_query(url)))

    def match_forms(self, forms: tuple[str, str]) -> TdmRule | None:
        """:meth:`match` for a path already in its two readings (:func:`.match_forms`)."""
        if not self.valid or not self.rules:
            return None
        # Two readings of percent-encoding (crawler.optout.pathpattern): the first match is
        # found in each; where they pick different rules, a reserving one wins.
        raw = self._first(forms, rfc=False)
        if forms[0] is forms[1] and all(r.location.reads_alike for r in self.rules):
            return raw
        rfc = self._first(forms, rfc=True)
        if rfc is not None and rfc is not raw and (
                raw is None or (rfc.reservation is TdmValue.RESERVED
                                and raw.reservation is not TdmValue.RESERVED)):
            return rfc
        return raw

    def _first(self, forms: tuple[str, str], *, rfc: bool) -> TdmRule | None:
        for rule in self.rules:
            if rule.location.matches_reading(forms, rfc):
                return rule
        return None


@dataclass(frozen=True, slots=True)
class TdmStatement:
    """What one channel says about one resource.

    ``channel`` is ``file``, ``header`` or ``meta``; ``source`` names where the value came from
    (``tdmrep.json rule #2``, ``tdm-reservation header``, ``<meta name="tdm-reservation"> line
    5``); ``raw`` is the value(s) as received.
    """

    channel: str
    reservation: TdmValue
    policy: str | None
    source: str
    raw: str
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TdmDecision:
    """The effective TDMRep value for one resource after precedence.

    ``deciding`` is the statement whose value is in force (None when unset), ``statements``
    every statement seen in precedence order, ``downgraded`` True when the effective value is 0
    although an earlier step said 1 (allowed by the spec; worth a log line).
    """

    reservation: TdmValue
    policy: str | None
    deciding: TdmStatement | None
    statements: tuple[TdmStatement, ...]
    downgraded: bool
    problems: tuple[str, ...] = field(default=())

    @property
    def reserved(self) -> bool:
        """True when TDM rights are reserved (``tdm-reservation`` 1 in force)."""
        return self.reservation is TdmValue.RESERVED


# --------------------------------------------------------------------------- values


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _json_value(value: object) -> tuple[TdmValue, tuple[str, ...]]:
    """Read a JSON ``tdm-reservation`` value."""
    # bool first: in Python True == 1 and isinstance(True, int).
    if value is True:
        return TdmValue.RESERVED, (f"tdm-reservation true read as 1 ({_CONSERVATIVE})",)
    if isinstance(value, int) and not isinstance(value, bool):
        # "The value of tdm-reservation can only take the values 0 or 1."
        if value == 1:
            return TdmValue.RESERVED, ()
        if value == 0:
            return TdmValue.NOT_RESERVED, ()
    elif isinstance(value, float) and value in (0.0, 1.0):
        read = TdmValue.RESERVED if value == 1.0 else TdmValue.NOT_RESERVED
        return read, (f"tdm-reservation {value!r} read as {read.value} ({_CONSERVATIVE})",)
    elif isinstance(value, str):
        text = value.strip().strip(_QUOTES).strip()
        if text in ("0", "1"):
            read = TdmValue.RESERVED if text == "1" else TdmValue.NOT_RESERVED
            return read, (
                f"tdm-reservation string {_clip(value)!r} read as {text} ({_CONSERVATIVE})",
            )
    # "Any other value is a protocol error and the value is then treated as unset."
    shown = _clip(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    return TdmValue.UNSET, (f"tdm-reservation {shown} is not 0 or 1 (protocol error: unset)",)


def _text_value(value: str, *, channel: str) -> tuple[TdmValue, tuple[str, ...]]:
    """Read one header or meta ``tdm-reservation`` value."""
    core = value.strip(_OWS) if channel == "header" else value
    if core in ("0", "1"):
        return (TdmValue.RESERVED if core == "1" else TdmValue.NOT_RESERVED), ()
    text = core.strip().strip(_QUOTES).strip()
    if text in ("0", "1"):
        return (TdmValue.RESERVED if text == "1" else TdmValue.NOT_RESERVED), (
            f"tdm-reservation {_clip(value)!r} read as {text} ({_CONSERVATIVE})",
        )
    # "Any other value is a protocol error and the value is then treated as unset."
    return TdmValue.UNSET, (
        f"tdm-reservation {_clip(value)!r} is not 0 or 1 (protocol error: unset)",
    )


def _merge_values(
    values: list[tuple[TdmValue, tuple[str, ...]]], what: str
) -> tuple[TdmValue, list[str]]:
    """Combine several copies of one value (repeated header, several metas): conservative."""
    problems = [problem for _, found in values for problem in found]
    read = {value for value, _ in values} - {TdmValue.UNSET}
    if TdmValue.RESERVED in read:
        result = TdmValue.RESERVED
    elif TdmValue.NOT_RESERVED in read:
        result = TdmValue.NOT_RESERVED
    else:
        result = TdmValue.UNSET
    if len(values) > 1:
        if len({value for value, _ in values}) > 1:
            problems.append(
                f"{what} given {len(values)} times with different values; "
                f"{result.value if result is not TdmValue.UNSET else 'unset'} kept (reserved if "
                "any copy says 1)"
            )
        else:
            problems.append(f"{what} given {len(values)} times")
    return result, problems


def _check_policy(value: object) -> tuple[str | None, tuple[str, ...]]:
    """Validate a ``tdm-policy`` value: "the value of tdm-policy is an absolute URL"."""
    if not isinstance(value, str):
        shown = _clip(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
        return None, (f"tdm-policy {shown} is not a string; ignored",)
    url = value.strip()
    try:
        parts = urlsplit(url)
        ok = (
            parts.scheme.lower() in ("http", "https")
            and bool(parts.netloc)
            and not any(char.isspace() or ord(char) < 0x20 for char in url)
        )
    except ValueError:
        ok = False
    if not ok:
        return None, (f"tdm-policy {_clip(value)!r} is not an absolute http(s) URL; ignored",)
    return url, ()


def _policy_note(reservation: TdmValue, policy: str | None) -> tuple[str, ...]:
    if policy is not None and reservation is TdmValue.NOT_RESERVED:
        # "If tdm-reservation is set to 0, the TDM Policy ... SHOULD NOT be processed" (not an
        # error, but nothing to act on).
        return ("note: tdm-policy given with tdm-reservation 0 is irrelevant (not an error)",)
    return ()


# --------------------------------------------------------------------------- file


class _Object(dict):  # type: ignore[type-arg]
    """A JSON object that remembers the values of keys that appeared more than once."""

    __slots__ = ("duplicates",)

    def __init__(self, pairs: list[tuple[str, object]]) -> None:
        super().__init__()
        self.duplicates: dict[str, list[object]] = {}
        for key, value in pairs:
            if key in self:
                self.duplicates.setdefault(key, [self[key]]).append(value)
            self[key] = value


def _reject_constant(name: str) -> object:
    # NaN / Infinity are not JSON (RFC 8259 §6); Python's json accepts them by default.
    raise ValueError(f"{name} is not valid JSON")


def _describe_object(data: dict[object, object]) -> str:
    keys = ", ".join(repr(key) for key in list(data)[:5])
    claim = ""
    if _RESERVATION_KEY in data:
        claim = f"; it says tdm-reservation {_clip(json.dumps(data[_RESERVATION_KEY]), 20)}"
    for value in data.values():
        if isinstance(value, list) and any(
            isinstance(item, dict) and _RESERVATION_KEY in item for item in value
        ):
            claim += "; it wraps an array of rules"
            break
    return f"keys {keys}{claim}"


def _invalid(*problems: str) -> TdmRepFile:
    return TdmRepFile(rules=(), problems=tuple(problems), valid=False)


def _rule(item: object, index: int) -> tuple[TdmRule | None, list[str]]:
    prefix = f"rule #{index}: "
    if not isinstance(item, dict):
        kind = "array" if isinstance(item, list) else type(item).__name__
        if item is None:
            kind = "null"
        return None, [f"{prefix}{kind} is not an object; skipped"]
    unknown = [key for key in item if key not in _KNOWN_KEYS]
    missing = [key for key in (_LOCATION_KEY, _RESERVATION_KEY) if key not in item]
    if missing:
        extra = f" (has {', '.join(repr(key) for key in unknown[:5])})" if unknown else ""
        return None, [f"{prefix}no {' or '.join(missing)}{extra}; skipped"]
    problems: list[str] = []
    location = item[_LOCATION_KEY]
    if not isinstance(location, str):
        shown = _clip(json.dumps(location, ensure_ascii=False))
        return None, [f"{prefix}location {shown} is not a string; skipped"]
    if not location:
        problems.append("empty location matches nothing")
    elif location[0] not in "/*":
        problems.append(f"location {_clip(location)!r} does not start with '/' or '*'")
    duplicates = getattr(item, "duplicates", {})
    if _RESERVATION_KEY in duplicates:
        reservation, merged = _merge_values(
            [_json_value(value) for value in duplicates[_RESERVATION_KEY]], "tdm-reservation"
        )
        problems.extend(merged)
    else:
        reservation, found = _json_value(item[_RESERVATION_KEY])
        problems.extend(found)
    policy: str | None = None
    if _POLICY_KEY in item:
        policy, found = _check_policy(item[_POLICY_KEY])
        problems.extend(found)
        problems.extend(_policy_note(reservation, policy))
    for key in duplicates:
        if key != _RESERVATION_KEY:
            problems.append(f"key {_clip(key)!r} given {len(duplicates[key])} times; last kept")
    for key in unknown[:5]:
        problems.append(f"unknown key {_clip(key)!r} ignored")
    text = json.dumps(item, ensure_ascii=False, separators=(",", ":"))
    if len(text) > RULE_TEXT_LIMIT:
        text = text[:RULE_TEXT_LIMIT] + "..."
    rule = TdmRule(
        location=compile_pattern(location),
        reservation=reservation,
        policy=policy,
        index=index,
        text=text,
        problems=tuple(problems),
    )
    return rule, [prefix + problem for problem in problems]


def parse_tdmrep_file(body: bytes) -> TdmRepFile:
    """Parse the body of ``/.well-known/tdmrep.json``; never raises for ``bytes`` input.

    Call it only for a successful (2xx, after redirects) response: "any other response means
    the server does not implement TDMRep" is the caller's business.
    """
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError(f"body must be bytes, not {type(body).__name__}")
    try:
        return _parse_file(body)
    except Exception as exc:  # noqa: BLE001 -- last line of defence: remote bytes never raise
        return _invalid(f"could not read the file ({type(exc).__name__}: {_clip(str(exc))})")


def _parse_file(body: bytes) -> TdmRepFile:
    size = len(body)
    if size > TDMREP_FILE_LIMIT:
        return _invalid(f"body is {size} bytes, over the {TDMREP_FILE_LIMIT}-byte limit; not read")
    data = bytes(body)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _invalid("body is UTF-16 (byte order mark); JSON on the web must be UTF-8")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _invalid(f"body is not UTF-8 (byte {exc.start}); not a TDMRep file")
    stripped = text.strip(" \t\r\n")
    if not stripped:
        return _invalid("empty body; not a TDMRep file")
    if stripped[0] == "<":
        return _invalid("body is HTML or XML, not JSON (soft 404?); not a TDMRep file")
    try:
        parsed = json.loads(stripped, object_pairs_hook=_Object, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        return _invalid(
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}; not a TDMRep file"
        )
    except RecursionError:
        return _invalid("JSON nested too deeply to read; not a TDMRep file")
    except Exception as exc:  # noqa: BLE001 -- e.g. ValueError for a 5000-digit integer
        return _invalid(
            f"unreadable JSON ({type(exc).__name__}: {_clip(str(exc))}); not a TDMRep file"
        )
    if isinstance(parsed, dict):
        # "The brackets are mandatory, even if the array contains a unique rule."
        return _invalid(
            f"JSON object, not an array ({_describe_object(parsed)}); not a TDMRep file"
        )
    if not isinstance(parsed, list):
        kind = "null" if parsed is None else type(parsed).__name__
        return _invalid(f"JSON {kind}, not an array; not a TDMRep file")
    rules: list[TdmRule] = []
    problems: list[str] = []
    for index, item in enumerate(parsed):
        try:
            rule, found = _rule(item, index)
        except RecursionError:  # json.dumps of a deeply nested rule
            rule, found = None, [f"rule #{index}: nested too deeply to read; skipped"]
        if rule is not None:
            rules.append(rule)
        problems.extend(found)
    if not rules:
        problems.append("no usable rule: nothing is reserved or allowed by this file")
    return TdmRepFile(rules=tuple(rules), problems=tuple(problems), valid=True)


def statement_from_file(f: TdmRepFile, url: str) -> TdmStatement | None:
    """The file's statement for ``url``: the first matching rule, or None (no rule matches, or
    the file is invalid)."""
    return statement_from_rule(f.match(url))


def statement_from_rule(rule: TdmRule | None) -> TdmStatement | None:
    """:func:`statement_from_file` once the matching rule is known (:meth:`TdmRepFile.match`)."""
    if rule is None:
        return None
    return TdmStatement(
        channel="file",
        reservation=rule.reservation,
        policy=rule.policy,
        source=f"tdmrep.json rule #{rule.index}",
        raw=rule.text,
        problems=rule.problems,
    )


# --------------------------------------------------------------------------- headers, meta


def _split_joined(value: str) -> list[str]:
    # The caller joins repeated fields with ", " (RFC 9110 §5.3); an empty member is dropped.
    parts = [part.strip(_OWS) for part in value.split(",")]
    return [part for part in parts if part] or [value.strip(_OWS)]


def _split_policies(value: str) -> list[str]:
    # A URL may contain ',' but never whitespace: split only on ',' followed by whitespace.
    parts: list[str] = []
    for chunk in value.split(","):
        if parts and chunk and not chunk[0].isspace():
            parts[-1] += "," + chunk
        else:
            parts.append(chunk)
    return [part.strip() for part in parts if part.strip()]


def _policies(values: Iterable[str], what: str) -> tuple[str | None, list[str]]:
    problems: list[str] = []
    accepted: list[str] = []
    for value in values:
        policy, found = _check_policy(value)
        problems.extend(found)
        if policy is not None and policy not in accepted:
            accepted.append(policy)
    if len(accepted) > 1:
        problems.append(f"{what} names {len(accepted)} different policies; the first is kept")
    return (accepted[0] if accepted else None), problems


def statement_from_headers(reservation: str | None, policy: str | None) -> TdmStatement | None:
    """The statement of the ``tdm-reservation`` / ``tdm-policy`` response headers.

    Pass each header's value (None when absent); a header received several times is passed as
    its values joined with ``", "``.  Returns None when neither header is present.
    """
    if reservation is None and policy is None:
        return None
    problems: list[str] = []
    raw_lines: list[str] = []
    value = TdmValue.UNSET
    if reservation is not None:
        raw_lines.append(f"tdm-reservation: {reservation}")
        copies = [_text_value(part, channel="header") for part in _split_joined(reservation)]
        value, merged = _merge_values(copies, "tdm-reservation header")
        problems.extend(merged)
    else:
        problems.append("tdm-policy header without tdm-reservation")
    found_policy: str | None = None
    if policy is not None:
        raw_lines.append(f"tdm-policy: {policy}")
        found_policy, found = _policies(_split_policies(policy) or [policy], "tdm-policy header")
        problems.extend(found)
        problems.extend(_policy_note(value, found_policy))
    return TdmStatement(
        channel="header",
        reservation=value,
        policy=found_policy,
        source="tdm-reservation header" if reservation is not None else "tdm-policy header",
        raw="\n".join(raw_lines),
        problems=tuple(problems),
    )


def _meta_source(metas: tuple[HtmlMeta, ...], name: str) -> str:
    lines = ", ".join(str(meta.line) for meta in metas[:10])
    return f'<meta name="{name}"> line{"s" if len(metas) > 1 else ""} {lines}'


def statement_from_html(head: HtmlHead) -> TdmStatement | None:
    """The statement of ``<meta name="tdm-reservation">`` / ``<meta name="tdm-policy">`` in the
    head of an HTML document, or None when neither is present.  It covers that document only,
    not the images or media it references."""
    reservation_metas = head.meta_values("tdm-reservation")
    policy_metas = head.meta_values("tdm-policy")
    if not reservation_metas and not policy_metas:
        return None
    problems: list[str] = []
    raw_lines = [
        f'<meta name="{meta.name}" content="{_clip(meta.content, 200)}">'
        for meta in (reservation_metas + policy_metas)[:20]
    ]
    value = TdmValue.UNSET
    if reservation_metas:
        copies = [_text_value(meta.content, channel="meta") for meta in reservation_metas]
        value, merged = _merge_values(copies, '<meta name="tdm-reservation">')
        problems.extend(merged)
        source = _meta_source(reservation_metas, "tdm-reservation")
    else:
        problems.append('<meta name="tdm-policy"> without <meta name="tdm-reservation">')
        source = _meta_source(policy_metas, "tdm-policy")
    policy: str | None = None
    if policy_metas:
        policy, found = _policies((meta.content for meta in policy_metas), "tdm-policy meta")
        problems.extend(found)
        problems.extend(_policy_note(value, policy))
    return TdmStatement(
        channel="meta",
        reservation=value,
        policy=policy,
        source=source,
        raw="\n".join(raw_lines),
        problems=tuple(problems),
    )


# --------------------------------------------------------------------------- precedence


def combine(*statements: TdmStatement | None) -> TdmDecision:
    """Apply the spec's processing order to the statements found for one resource.

    Spec: "1. tdmrep.json file, 2. HTTP headers, 3. HTML metadata" with each step superseding
    the values found at an earlier step, and "the absence of TDM properties at a given step
    does not reset the values possibly obtained at a previous step".  Statements may be passed
    in any order (they are sorted by channel, stably); None entries are ignored.
    """
    seen: list[TdmStatement] = []
    for statement in statements:
        if statement is None:
            continue
        if statement.channel not in _CHANNEL_RANK:
            raise ValueError(f"unknown TDMRep channel {statement.channel!r}")
        seen.append(statement)
    seen.sort(key=lambda statement: _CHANNEL_RANK[statement.channel])
    value = TdmValue.UNSET
    deciding: TdmStatement | None = None
    ever_reserved = False
    policy: str | None = None
    for statement in seen:
        if statement.reservation is not TdmValue.UNSET:
            value = statement.reservation
            deciding = statement
            ever_reserved = ever_reserved or value is TdmValue.RESERVED
        # The policy goes with a value that is not 0; a later step without one keeps it.
        if statement.policy is not None and statement.reservation is not TdmValue.NOT_RESERVED:
            policy = statement.policy
    downgraded = ever_reserved and value is TdmValue.NOT_RESERVED
    problems: tuple[str, ...] = ()
    if downgraded:
        assert deciding is not None
        problems = (f"downgrade: {deciding.source} lowers an earlier tdm-reservation 1 to 0",)
    return TdmDecision(
        reservation=value,
        policy=policy if value is TdmValue.RESERVED else None,
        deciding=deciding,
        statements=tuple(seen),
        downgraded=downgraded,
        problems=problems,
    )
