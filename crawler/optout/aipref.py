"""IETF AI Preferences (AIPREF): the ``Content-Usage`` header field and robots.txt rule.

Implements draft-ietf-aipref-vocab-07 (vocabulary, exemplary serialization, combination) and
draft-ietf-aipref-attach-05 (the HTTP ``Content-Usage`` field and the robots.txt
``Content-Usage`` rule), as digested in protocols.md §3.  Sans-IO: header values and a parsed
:class:`~crawler.optout.robots.RobotsFile` go in, :class:`~crawler.optout.model.Statement` values
come out, in the vocabulary's own labels (``train-ai``, ``search``); which crawl purposes a label
binds is decided in :mod:`crawler.policy.reservation`.

Choices where the drafts leave room (each one is also noted where it is made):

* A value that fails to parse as a Structured Fields Dictionary gives a :class:`Statement` with
  no terms (every category unknown) and the failure in ``problems`` -- not ``None`` -- so the
  audit record shows that a statement was there and could not be read.  ``None`` means there was
  no statement at all (a blank header value).
* Legacy labels from earlier drafts (``train-genai``, ``ai``, ``genai``, ``all``, ``bots``,
  ``tdm``) with the Token ``n`` are kept as terms with ``False`` (protocols.md §3.2 [REC]) and a
  problem note; with ``y`` (or any other value) they are ignored, as vocab-07 requires.
* In robots.txt the most specific matching rule decides *all* categories, as Allow/Disallow do:
  a category it does not mention is unknown even if a less specific rule names it.
* A robots.txt rule whose preference does not parse still takes part in the longest match (the
  draft gives it a path like any other rule); it yields a statement with no terms.
* A ``Content-Usage`` rule without a path (attach-05 makes the path optional) applies to every
  path, below any rule with a path, ``/`` included.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from crawler.optout.model import Statement
from crawler.optout.pathpattern import PathPattern, compile_pattern, match_forms, path_query
from crawler.optout.robots import RobotsFile, RobotsGroup
from crawler.optout.sfv import DisplayString, InnerList, Member, Token, parse_dictionary

__all__ = [
    "LEGACY_NO_LABELS",
    "SIGNAL",
    "VOCAB",
    "combine",
    "parse_preferences",
    "statement_from_header",
    "statements_from_robots",
]

SIGNAL = "content-usage"
#: vocab-07 §"Usage Category Labels": the categories this version defines.
VOCAB = ("train-ai", "search")
#: Labels of earlier drafts whose ``n`` is still read as a training opt-out (protocols.md §3.2).
LEGACY_NO_LABELS = ("train-genai", "ai", "genai", "all", "bots", "tdm")
_LEGACY_DRAFTS = {
    "tdm": "vocab-01",
    "ai": "vocab-01",
    "genai": "vocab-01",
    "all": "vocab-02",
    "train-genai": "vocab-02..03",
    "bots": "vocab-03..04",
}
#: Longest value or rule text copied into a Statement or a problem note.
_SHOWN = 200
_WS = " \t"
_ROBOTS_KEY = "content-usage"

Terms = tuple[tuple[str, bool], ...]


def _clip(text: str, limit: int = _SHOWN) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(member: Member) -> str:
    """Name the type of a Dictionary value for a problem note."""
    if isinstance(member, InnerList):
        return "an Inner List"
    value = member.value
    if isinstance(value, bool):
        return "the Boolean true (a bare key)" if value else "the Boolean false"
    if isinstance(value, Token):
        return f"the Token {_clip(str(value), 40)}"
    if isinstance(value, DisplayString):
        return "a Display String"
    if isinstance(value, str):
        return f"the String {_clip(value, 40)!r}"
    if isinstance(value, bytes):
        return "a Byte Sequence"
    return f"the number {value}"


def _preference(member: Member | None) -> bool | None:
    """vocab-07 §"Processing Algorithm": "If the value is a Token with a value of `y`, the
    associated preference is to allow that category of use.  If the value is a Token with a
    value of `n`, the associated preference is to disallow that category of use.  Otherwise, the
    preference for that category is unknown."  Parameters are disregarded."""
    if member is None or isinstance(member, InnerList):
        return None
    value = member.value
    if isinstance(value, Token):
        if value == "y":
            return True
        if value == "n":
            return False
    return None


def parse_preferences(value: str) -> tuple[Terms, tuple[str, ...]]:
    """Read one usage-preference expression (the exemplary format of vocab-07 §6).

    Returns ``(terms, problems)``: ``terms`` pairs each vocabulary label with an explicit
    preference (``True`` allow, ``False`` disallow) in :data:`VOCAB` order, followed by legacy
    labels set to ``n``; every other category is unknown.  Never raises for ``str`` input.
    """
    if not isinstance(value, str):
        raise TypeError(f"value must be str, not {type(value).__name__}")
    # vocab-07 §"Processing Algorithm": "those bytes are parsed into a Dictionary".
    parsed = parse_dictionary(value)
    if parsed is None:
        # vocab-07: "If the parsing of the Dictionary fails, preferences are unknown.  This
        # includes where keys include uppercase characters".
        failure = (
            f"not a Structured Fields Dictionary (RFC 9651): {_clip(value)!r};"
            " all preferences unknown"
        )
        return (), (failure,)
    terms: list[tuple[str, bool]] = []
    problems: list[str] = []
    # "To obtain preferences, iterate through the defined categories in the vocabulary."
    for label in VOCAB:
        member = parsed.get(label)
        preference = _preference(member)
        if preference is not None:
            terms.append((label, preference))
        elif member is not None:
            # "All of these are not errors, they only result in the corresponding preference
            # being unknown."  Noted all the same: the publisher probably meant something.
            problems.append(f"{label}: {_describe(member)} is not the Token y or n; unknown")
    for label, member in parsed.items():
        if label in VOCAB:
            continue
        if label in _LEGACY_DRAFTS:
            # protocols.md §3.2 [REC]: "additionally treat train-genai=n, ai=n, genai=n, all=n,
            # bots=n, tdm=n as a training opt-out ... and log it as 'legacy label'".
            if _preference(member) is False:
                terms.append((label, False))
                problems.append(f"legacy label {label!r} ({_LEGACY_DRAFTS[label]}), kept")
            else:
                problems.append(
                    f"legacy label {label!r} ({_LEGACY_DRAFTS[label]}) not set to n; ignored"
                )
        else:
            # vocab-07 §"Syntax Extensions": "any unknown labels MUST be ignored."
            problems.append(f"unknown label {_clip(label, 40)!r} ignored")
    return tuple(terms), tuple(problems)


def statement_from_header(value: str) -> Statement | None:
    """The statement made by a ``Content-Usage`` response header (attach-05 §"HTTP Content-Usage
    Header Field"); ``None`` when the value is blank.

    The caller joins several field lines with ``", "`` (RFC 9651 §4.2: "parsers MUST combine all
    field lines in the same section ... that have the same name into one comma-separated field
    value").  The statement is about the content of that response only: "This field indicates
    usage preferences regarding the content of the HTTP message."
    """
    if not isinstance(value, str):
        raise TypeError(f"value must be str, not {type(value).__name__}")
    # HTTP field values carry no leading or trailing whitespace (RFC 9110 §5.5).
    value = value.strip(_WS)
    if not value:
        return None
    terms, problems = parse_preferences(value)
    return Statement(
        signal=SIGNAL,
        channel="header",
        terms=terms,
        rule=f"Content-Usage: {_clip(value)}",
        problems=problems,
    )


def split_rule(value: str) -> tuple[str | None, str]:
    """Split a robots.txt ``Content-Usage`` value into (path or None, preference).

    attach-05: "The first part of the rule value is the path. It always starts with "/" (U+2F),
    and ends immediately before the first SP (U+20) or HTAB ("U+09") character."  The ABNF
    ``*WS [ path-pattern 1*WS ] usage-pref`` makes the path optional: a value that does not
    start with "/" is all preference.
    """
    if not value.startswith("/"):
        return None, value
    end = len(value)
    for separator in _WS:
        found = value.find(separator)
        if 0 <= found < end:
            end = found
    return value[:end], value[end:].lstrip(_WS)


@lru_cache(maxsize=1024)
def _compiled(path: str) -> PathPattern:
    return compile_pattern(path)


def _group_agent(group: RobotsGroup, token: str) -> str:
    lowered = token.lower()
    return next((agent for agent in group.agents if agent.lower() == lowered), "*")


#: A Content-Usage rule of the groups that bind a token: (group, line, value as written,
#: preference, notes, path pattern or None for a rule without a path).
Candidate = tuple[RobotsGroup, int, str, str, tuple[str, ...], "PathPattern | None"]
#: A winning rule: (group, line, value as written, preference, notes).
Winner = tuple[RobotsGroup, int, str, str, tuple[str, ...]]


def statements_from_robots(
    robots: RobotsFile, url: str, token: str, *, source: str | None = None
) -> tuple[Statement, ...]:
    """The ``Content-Usage`` statements a robots.txt makes about ``url`` for crawler ``token``.

    Returns one statement per winning rule (several only when rules of equal specificity tie;
    :func:`combine` then applies the most restrictive), or ``()`` when no rule applies or the URL
    may not be crawled.  ``source`` (the robots.txt URL) is copied into each statement.
    """
    if not isinstance(robots, RobotsFile):
        raise TypeError(f"robots must be RobotsFile, not {type(robots).__name__}")
    # attach-05: "Usage preferences apply only to those resources that can be crawled according
    # to Allow/Disallow rules; no preferences are implied for resources that are disallowed."
    if not robots.verdict(url, token).allowed:
        return ()
    forms = match_forms(path_query(url))
    candidates = rules_for(robots, token)
    if not candidates:
        return ()
    return statements_for(winners(candidates, forms), token, source=source)


def rules_for(robots: RobotsFile, token: str) -> tuple[Candidate, ...]:
    """The ``Content-Usage`` rules of the groups that bind ``token``, in file order (they do not
    depend on the URL: a caller deciding many URLs may keep them with the file)."""
    candidates: list[Candidate] = []
    # attach-05: "Each group in the file applies to a set of crawlers, identified by product
    # token as defined in Section 2.2.1 of [RFC9309]" -- the same groups as Allow/Disallow.
    for group in robots.matching_groups(token):
        for line in group.extensions:
            if line.key != _ROBOTS_KEY:
                continue
            path, preference = split_rule(line.value)
            if not preference:
                # ``[ path-pattern 1*WS ] usage-pref``: a line with no preference is no rule.
                continue
            notes: tuple[str, ...] = ()
            pattern = None
            if path is None:
                # No path: applies to every path, below any rule that has one (inferred from the
                # draft's example; protocols.md §3.6).
                if line.value.startswith("*"):
                    note = (
                        f"line {line.line}: a path must start with '/'; the whole value is"
                        " read as the preference"
                    )
                    notes = (note,)
            else:
                pattern = _compiled(path)
            candidates.append((group, line.line, line.value, preference, notes, pattern))
    return tuple(candidates)


def winners(candidates: tuple[Candidate, ...], forms: tuple[str, str]) -> tuple[Winner, ...]:
    """The most specific of ``candidates`` for a path (``forms``: :func:`.match_forms` of it),
    in each reading of percent-encoding; ties are all kept."""
    # attach-05: "Any Content-Usage rules determine the usage preferences for resources using
    # the same path prefix matching rules as defined for Allow and Disallow.  That is, the path
    # prefix length is determined by counting the number of bytes in the encoded path."  The
    # most specific rules are found in each reading of percent-encoding (crawler.optout.
    # pathpattern); the winners of both are kept, and combine() takes the most restrictive.
    readings = [False]
    if forms[0] is not forms[1] or any(c[5] is not None and not c[5].reads_alike
                                       for c in candidates):
        readings.append(True)
    found: list[Winner] = []
    seen: set[int] = set()
    for rfc in readings:
        best = -2
        chosen: list[Winner] = []
        for group, number, value, preference, notes, pattern in candidates:
            if pattern is None:
                specificity = -1
            elif pattern.matches_reading(forms, rfc):
                specificity = pattern.specificity
            else:
                continue
            if specificity > best:
                best, chosen = specificity, []
            if specificity == best:
                chosen.append((group, number, value, preference, notes))
        for entry in chosen:
            if entry[1] not in seen:
                seen.add(entry[1])
                found.append(entry)
    return tuple(found)


def statements_for(chosen: tuple[Winner, ...], token: str, *,
                   source: str | None = None) -> tuple[Statement, ...]:
    """One statement per winning rule (:func:`winners`)."""
    statements = []
    for group, number, value, preference, notes in chosen:
        terms, problems = parse_preferences(preference)
        # attach-05: "If there are Content-Usage rules that have identical paths and conflicting
        # usage preferences, these preferences apply separately according to the process
        # defined in Section 7.1 of [VOCAB]" -- one statement each, for combine().
        statements.append(
            Statement(
                signal=SIGNAL,
                channel="robots.txt",
                terms=terms,
                rule=f"Content-Usage: {_clip(value)} (line {number})",
                agent=_group_agent(group, token),
                source=source,
                problems=notes + problems,
            )
        )
    return tuple(statements)


def combine(statements: Iterable[Statement]) -> dict[str, bool]:
    """Combine statements per term, most restrictive first (vocab-07 §"Combining Preferences").

    "If any statement of preference indicates that the usage is disallowed, the result is that
    the usage is disallowed.  Otherwise, if any statement of preference allows the usage, the
    result is that the usage is allowed.  Otherwise, the preference for that category is
    unknown."  Unknown terms are absent from the result.
    """
    result: dict[str, bool] = {}
    for statement in statements:
        for term, allowed in statement.terms:
            result[term] = result.get(term, True) and allowed
    return result
