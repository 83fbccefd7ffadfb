"""Spawning ``ai.txt``: robots.txt-style AI-training permissions at ``/ai.txt``.

Status: a vendor proposal by Spawning (May 2023); there is no formal spec.  The file sits at the
**domain root** (not under ``/.well-known/``), uses the robots.txt grammar (``User-Agent``,
``Allow``, ``Disallow``, ``#`` comments), and Spawning's generator writes file-extension
wildcards that do not start with ``/`` (``Disallow: *.jpg``).  "Disallow" means "do not use for
AI training", "Allow" means "may be used" (protocols.md §6.1).

Sans-IO: :func:`parse_ai_txt` takes the body bytes and returns a frozen :class:`AiTxtFile`;
:func:`statement_for` turns the rule that decides one URL for one product token into a
:class:`~crawler.optout.model.Statement` with the single term ``ai-train``.  The body is parsed
by :func:`crawler.optout.robots.parse_robots`, so group selection (the token's group, else
``*``), rule precedence (longest match, ``Allow`` on a tie) and pattern matching are RFC 9309's.

Remote bytes never make the parser raise; what it noticed is listed in
:attr:`AiTxtFile.problems`.

Choices
-------
* "Only treat ``/ai.txt`` as Spawning-format if it contains robots-style
  ``User-Agent``/``Allow``/``Disallow`` lines" [REC].  Other files named ``ai.txt`` exist
  (aitxt.ing: Markdown with YAML front matter; prose; soft-404 HTML pages).  A body is read as
  Spawning format only when *all* of these hold, otherwise ``is_spawning_format`` is False, the
  reason is the first problem and ``robots`` is None:

  - it does not look like HTML/XML (first non-blank character ``<``);
  - it does not start with a YAML front-matter line ``---`` and has no Markdown code fence
    (a line starting with three backticks or tildes: robots-style lines inside a fence are an
    example in a document, not rules);
  - at least one ``User-Agent`` group holds at least one ``Allow``/``Disallow`` rule;
  - prose lines (non-blank, non-comment lines that are not ``key: value`` lines with a known
    robots.txt key) are not more numerous than recognised directive lines.  Markdown headings
    start with ``#`` and so read as comments, which is harmless.

* No rule matching the URL (or the implicitly allowed ``/robots.txt`` path) gives no statement:
  a file that does not mention a URL says nothing about it, the same as no file.
* An ``Allow`` rule that decides gives ``ai-train`` = True: the file explicitly permits it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .model import Statement
from .robots import ROBOTS_PARSE_LIMIT, RobotsFile, RobotsVerdict, parse_robots

__all__ = ["AI_TXT_SIGNAL", "AiTxtFile", "parse_ai_txt", "statement_for"]

#: ``Statement.signal`` of every statement from this module.
AI_TXT_SIGNAL = "ai-txt"
#: The term of Spawning's vocabulary: the file speaks of AI training only.
_TERM = "ai-train"

# A "key: value" line whose key is one robots.txt parsers know (spellings and common typos).
_KNOWN_KEY = re.compile(
    r"[ \t]*(?:user[- ]?agent|allow|disallow|dis+al+ow|diasllow|disallaw|sitemaps?|site-map"
    r"|crawl[- ]?delay|request[- ]rate|visit[- ]time|host|license|content-usage|content-signal"
    r"|clean-param|noindex|nofollow|noarchive)[ \t]*:",
    re.IGNORECASE,
)
_FENCE = re.compile(r"[ \t]*(?:```|~~~)")


@dataclass(frozen=True, slots=True)
class AiTxtFile:
    """A parsed ``/ai.txt`` body.

    ``robots`` is the body parsed as robots.txt when ``is_spawning_format`` is True, else None.
    ``problems`` starts with the reason when the body is not in Spawning's format; otherwise it
    holds the robots.txt parser's problems.
    """

    is_spawning_format: bool
    robots: RobotsFile | None
    problems: tuple[str, ...]
    size: int = 0


def _not_spawning_reason(text: str, robots: RobotsFile) -> str | None:
    """Why ``text`` is not a Spawning-format ai.txt, or None when it is one."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if not stripped:
        return "empty file: not in Spawning's ai.txt format"
    if stripped[0] == "<":
        return "body looks like HTML or XML: not in Spawning's ai.txt format"
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    first = next((line.strip(" \t\ufeff") for line in lines if line.strip(" \t\ufeff")), "")
    if first == "---":
        return "starts with YAML front matter ('---'): an aitxt.ing-style document, not Spawning's"
    directives = prose = 0
    for number, line in enumerate(lines, 1):
        if _FENCE.match(line):
            return (
                f"line {number}: Markdown code fence: a document about ai.txt/robots.txt, "
                "not Spawning's format"
            )
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        if _KNOWN_KEY.match(content):
            directives += 1
        else:
            prose += 1
    if prose > directives:
        return (
            f"{prose} prose lines against {directives} robots-style lines: prose or Markdown, "
            "not Spawning's format"
        )
    if not any(group.rules and group.agents for group in robots.groups):
        return "no 'User-Agent' group with 'Allow'/'Disallow' rules: not in Spawning's format"
    return None


def parse_ai_txt(body: bytes) -> AiTxtFile:
    """Parse the body of ``/ai.txt``.  Never raises for ``bytes`` input; see ``problems``."""
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError(f"body must be bytes, not {type(body).__name__}")
    data = bytes(body)
    # protocols.md §6.1 [REC]: "parse with the same engine as robots.txt".
    # read to the end: no spec allows a parsing limit for ai.txt, and a rule after one would
    # be lost (the caller bounds the size of what it fetched)
    robots = parse_robots(data, limit=max(len(data), ROBOTS_PARSE_LIMIT))
    text = data.decode("utf-8", "replace")
    reason = _not_spawning_reason(text, robots)
    if reason is not None:
        return AiTxtFile(is_spawning_format=False, robots=None, problems=(reason,),
                         size=len(data))
    return AiTxtFile(is_spawning_format=True, robots=robots, problems=robots.problems,
                     size=len(data))


def statement_for(
    f: AiTxtFile, url: str, token: str, *, source: str | None = None
) -> Statement | None:
    """What ``f`` says about training on ``url`` for the crawler ``token``; None if nothing.

    §6.1 [REC]: "select the group for your token, else ``*``; a 'disallowed' URL = no training
    use".  ``source`` (the ai.txt URL) is copied into the statement.
    """
    if not isinstance(f, AiTxtFile):
        raise TypeError(f"f must be AiTxtFile, not {type(f).__name__}")
    if not f.is_spawning_format or f.robots is None:
        return None
    return statement_from_verdict(f, f.robots.verdict(url, token), source=source)


def statement_from_verdict(f: AiTxtFile, verdict: RobotsVerdict, *,
                           source: str | None = None) -> Statement | None:
    """:func:`statement_for` once the file's verdict for the URL and token is known."""
    rule = verdict.rule
    if rule is None:
        return None
    return Statement(
        signal=AI_TXT_SIGNAL,
        channel="file",
        terms=((_TERM, rule.kind == "allow"),),
        rule=f"{rule.text} (line {rule.line})",
        agent=verdict.agent,
        source=source,
        problems=f.problems,
    )
