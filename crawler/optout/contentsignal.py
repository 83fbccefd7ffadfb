"""Cloudflare Content Signals: ``Content-Signal: search=yes, ai-train=no`` (contentsignals.org).

A vendor policy (Cloudflare, 24 Sep 2025, CC0; also ``draft-romm-aipref-contentsignals-00``),
not a standard; digested in protocols.md §4.  The line lives in a robots.txt user-agent group;
the same value grammar is also seen in a ``Content-Signal`` response header and in
``<meta name="content-signal">`` (neither documented by Cloudflare).  Sans-IO: values and a
parsed :class:`~crawler.optout.robots.RobotsFile` go in, :class:`~crawler.optout.model.Statement`
values come out with terms in the policy's own keys (``search``, ``ai-input``, ``ai-train``).

Choices where the policy text leaves room (each one is also noted where it is made):

* Keys and values are compared case-insensitively; anything not written in lower case is noted
  as non-canonical.  Spaces around ``,`` and ``=`` are accepted.
* A value other than ``yes``/``no`` leaves that key unknown (noted); unknown keys are ignored
  (noted).
* ``use=immediate`` and ``use=reference`` add the term ``("ai-train", False)`` to the same
  statement (protocols.md §4.1 [REC]: training is a "full" use), with a problem note saying so;
  ``use=full`` adds nothing.  The key is unconfirmed by any Cloudflare primary text.
* A key given twice is kept twice; :meth:`Statement.term` then reads the most restrictive.
* robots.txt: besides the groups RFC 9309 selects for the token, ``Content-Signal`` lines of the
  ``*`` group (when the token has its own group) and lines outside any group are returned as
  site-wide statements (protocols.md §4.2 [REC]), each with a note saying why.
* A line whose value yields no term is still returned (with ``terms=()`` and its problems) so the
  audit record shows it.
"""

from __future__ import annotations

from crawler.optout.htmlmeta import MetaInput, meta_entries
from crawler.optout.model import Statement
from crawler.optout.robots import RobotsFile, RobotsGroup

__all__ = [
    "KEYS",
    "SIGNAL",
    "USE_NO_TRAINING",
    "parse_value",
    "statement_from_header",
    "statement_from_meta",
    "statements_from_robots",
]

SIGNAL = "content-signal"
#: The three signals of the Content Signals Policy.
KEYS = ("search", "ai-input", "ai-train")
#: ``use=`` values read as "no training" (protocols.md §4.1 [REC]).
USE_NO_TRAINING = ("immediate", "reference")
_VALUES = {"yes": True, "no": False}
_USE_KEY = "use"
_USE_VALUES = ("immediate", "reference", "full")
_ROBOTS_KEY = "content-signal"
_META_NAME = "content-signal"
_WS = " \t"
_SHOWN = 200

Terms = tuple[tuple[str, bool], ...]




def _clip(text: str, limit: int = _SHOWN) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_value(value: str) -> tuple[Terms, tuple[str, ...]]:
    """Read a ``Content-Signal`` value: ``key=value`` pairs separated by commas.

    Returns ``(terms, problems)``.  Never raises for ``str`` input.
    """
    if not isinstance(value, str):
        raise TypeError(f"value must be str, not {type(value).__name__}")
    terms: list[tuple[str, bool]] = []
    problems: list[str] = []
    seen: set[str] = set()
    # protocols.md §4.1: "One line `Content-Signal: <key>=<value>[, <key>=<value>...]`,
    # comma-separated, spaces optional (`search=yes,ai-train=no` also occurs)."
    for raw in value.split(","):
        item = raw.strip(_WS)
        if not item:
            if value.strip(_WS):
                problems.append("empty item (stray comma) ignored")
            continue
        written_key, equals, written_value = item.partition("=")
        written_key = written_key.strip(_WS)
        written_value = written_value.strip(_WS)
        if not equals or not written_key:
            problems.append(f"{_clip(item, 60)!r} is not key=value; ignored")
            continue
        # protocols.md §4.1 [REC]: "compare case-insensitively, ignore anything else (->
        # unknown)"; the canonical form is lower case.
        key = written_key.lower()
        word = written_value.lower()
        shown = f"{_clip(written_key, 40)}={_clip(written_value, 40)}"
        if key != written_key or word != written_value:
            problems.append(f"{shown}: not in canonical lower case; read as {key}={word}")
        if key in KEYS:
            allowed = _VALUES.get(word)
            if allowed is None:
                # "A signal that is not present neither grants nor restricts that use": a value
                # other than yes/no is read as not present.
                problems.append(f"{shown}: value is not yes or no; {key} unknown")
                continue
            if key in seen:
                problems.append(f"{key} given more than once; the most restrictive applies")
            seen.add(key)
            terms.append((key, allowed))
        elif key == _USE_KEY:
            # protocols.md §4.1 [REC]: "a training crawler should treat `use=immediate` or
            # `use=reference` as **not** permitting training (training is a "full" use)".
            if word in USE_NO_TRAINING:
                terms.append(("ai-train", False))
                problems.append(f"use={word} read as no training (digest REC, unconfirmed key)")
            elif word == "full":
                problems.append("use=full recorded; it restricts nothing (unconfirmed key)")
            else:
                problems.append(
                    f"{shown}: use= value is not one of {', '.join(_USE_VALUES)}; ignored"
                )
        else:
            # protocols.md §4.1: "Unknown keys: ignore [REC]."
            problems.append(f"unknown key {_clip(written_key, 40)!r} ignored")
    return tuple(terms), tuple(problems)


def _statement(
    value: str,
    channel: str,
    rule: str,
    *,
    agent: str | None = None,
    source: str | None = None,
    notes: tuple[str, ...] = (),
) -> Statement:
    terms, problems = parse_value(value)
    return Statement(
        signal=SIGNAL,
        channel=channel,
        terms=terms,
        rule=rule,
        agent=agent,
        source=source,
        problems=notes + problems,
    )


def _group_agent(group: RobotsGroup, token: str) -> str:
    lowered = token.lower()
    return next((agent for agent in group.agents if agent.lower() == lowered), "*")


def statements_from_robots(
    robots: RobotsFile, url: str, token: str, *, source: str | None = None
) -> tuple[Statement, ...]:
    """The ``Content-Signal`` statements a robots.txt makes for ``token`` fetching ``url``.

    In file order: the lines of the groups RFC 9309 selects for ``token``; then, when ``token``
    has a group of its own, the ``*`` group's lines (``agent='*'``, noted); then lines outside
    any group (``agent=None``, noted).  ``()`` when ``url`` may not be crawled.  No path scoping:
    a line covers every path of its group.
    """
    if not isinstance(robots, RobotsFile):
        raise TypeError(f"robots must be RobotsFile, not {type(robots).__name__}")
    # protocols.md §4.2: "It does not change crawl permission: Allow/Disallow still decide
    # access."  A URL that may not be fetched is never used, so no signal applies to it (§4.3
    # vector 5: "nothing may be crawled; signal moot").
    if not robots.verdict(url, token).allowed:
        return ()
    return statements_for(robots, token, source=source)


def statements_for(robots: RobotsFile, token: str, *,
                   source: str | None = None) -> tuple[Statement, ...]:
    """The ``Content-Signal`` statements of a robots.txt for ``token`` on any URL it may crawl
    (:func:`statements_from_robots` without the Allow/Disallow check: they do not depend on the
    path, so a caller deciding many URLs may keep them with the file)."""
    statements: list[Statement] = []
    # protocols.md §4.2: "The line belongs to the user-agent group it sits in, so it applies to
    # the crawlers that select that group under RFC 9309".
    selected = robots.matching_groups(token)
    explicit = bool(robots.matching_groups(token, fallback_to_star=False))
    for group in selected:
        agent = _group_agent(group, token)
        for line in group.extensions:
            if line.key == _ROBOTS_KEY:
                rule = f"Content-Signal: {_clip(line.value)} (line {line.line})"
                statements.append(
                    _statement(line.value, "robots.txt", rule, agent=agent, source=source)
                )
    if explicit:
        # protocols.md §4.2 [REC]: "still honour any `Content-Signal` found in the `*` group as
        # a site-wide statement (most restrictive wins), because publishers write it as a site
        # policy."
        chosen = {id(group) for group in selected}
        note = (
            f"from the '*' group although {token!r} has its own group: read as a site-wide"
            " statement (digest REC)"
        )
        for group in robots.groups:
            if "*" not in group.agents or id(group) in chosen:
                continue
            for line in group.extensions:
                if line.key == _ROBOTS_KEY:
                    rule = f"Content-Signal: {_clip(line.value)} (line {line.line})"
                    statements.append(
                        _statement(
                            line.value, "robots.txt", rule, agent="*", source=source,
                            notes=(note,),
                        )
                    )
    # protocols.md §4.2: "A Content-Signal line placed before any `User-agent` line (outside a
    # group): undefined; [REC] treat as site-wide."
    for line in robots.global_lines:
        if line.key == _ROBOTS_KEY:
            rule = f"Content-Signal: {_clip(line.value)} (line {line.line})"
            statements.append(
                _statement(
                    line.value, "robots.txt", rule, agent=None, source=source,
                    notes=("outside any user-agent group: read as site-wide (digest REC)",),
                )
            )
    return tuple(statements)


def statement_from_header(value: str) -> Statement | None:
    """The statement of a ``Content-Signal`` response header; ``None`` when blank.

    protocols.md §4.2: "an HTTP response header `Content-Signal: ai-train=yes, search=yes,
    ai-input=yes` emitted by Cloudflare's "Markdown for Agents" conversions ... [REC] parse both
    with the same value grammar".  Several header lines: join them with ``", "``.
    """
    if not isinstance(value, str):
        raise TypeError(f"value must be str, not {type(value).__name__}")
    value = value.strip(_WS)
    if not value:
        return None
    return _statement(value, "header", f"Content-Signal: {_clip(value)}")


def statement_from_meta(metas: MetaInput) -> Statement | None:
    """The statement of ``<meta name="content-signal" content="...">`` tags; ``None`` if none.

    protocols.md §4.2: "`<meta name="content-signal" content="...">` in some CMS plugins (not an
    official Cloudflare carrier -- UNCONFIRMED). [REC] parse both with the same value grammar".
    Several tags make one statement with the terms of all of them.
    """
    terms: list[tuple[str, bool]] = []
    problems: list[str] = ["<meta name=\"content-signal\"> is not an official carrier (unconfirmed)"]
    rules: list[str] = []
    for name, content, line in meta_entries(metas):
        if name != _META_NAME:
            continue
        where = f" (line {line})" if line is not None else ""
        rules.append(f'<meta name="content-signal" content="{_clip(content)}">{where}')
        found, notes = parse_value(content)
        terms.extend(found)
        problems.extend(notes)
    if not rules:
        return None
    return Statement(
        signal=SIGNAL,
        channel="meta",
        terms=tuple(terms),
        rule="; ".join(rules),
        problems=tuple(problems),
    )
