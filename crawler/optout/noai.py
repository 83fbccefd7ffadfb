"""``noai`` / ``noimageai`` (+ ``noml``, ``noarchive``) in ``X-Robots-Tag`` and robots ``<meta>``.

``noai`` and ``noimageai`` are a DeviantArt convention (November 2022), not a standard; the
grammar of the carriers is Google's robots meta tag / ``X-Robots-Tag`` specification.  Digested
in protocols.md §6.2-6.4.  Sans-IO: header values or ``<meta>`` elements go in; a
:class:`Directives` (everything that applies to the crawler) or a
:class:`~crawler.optout.model.Statement` (the AI directives only) comes out.

The AI directives are recorded as terms with ``False`` in their own names -- ``noai``,
``noimageai`` (images only), ``noml``, ``noarchive`` (Bing's training opt-out, protocols.md §6.2
[REC]) -- and :mod:`crawler.policy.reservation` decides which crawl purposes each binds.  Indexing
directives (``noindex``, ``none``, ``max-snippet:50`` ...) are not AI signals: they are kept in
:attr:`Directives.other` and never become terms.

Choices where the conventions leave room (each one is also noted where it is made):

* Crawler scoping follows protocols.md §6.3 [REC]: ``name: directive`` starts a scope for crawler
  ``name`` (unless ``name`` is a valued directive such as ``max-snippet``); later plain items on
  the same header line inherit it; each header line starts in scope "all".
* Inside an item, words separated by spaces are read as separate directives (``noai noimageai``)
  -- usual in ``<meta content>``, noted as a problem in a header.
* ``<meta>`` tags named ``robots`` or the crawler's token are read; ``name`` and ``content`` are
  case-insensitive; several tags add up (the most restrictive applies).
* A directive addressed only to another crawler is ignored (noted when it is an AI directive).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from crawler.optout.htmlmeta import MetaInput, meta_entries
from crawler.optout.model import Statement

__all__ = [
    "AI_DIRECTIVES",
    "KNOWN_DIRECTIVES",
    "SIGNAL",
    "VALUED_DIRECTIVES",
    "Directives",
    "directives_from_meta",
    "directives_from_x_robots_tag",
    "statement_from_meta",
    "statement_from_x_robots_tag",
]

SIGNAL = "noai"
#: Directives read as AI-training opt-outs (protocols.md §6.2 [REC]), recorded as terms.
AI_DIRECTIVES = ("noai", "noimageai", "noml", "noarchive")
#: Directives that carry a value after a colon (Google; protocols.md §6.3).
VALUED_DIRECTIVES = ("unavailable_after", "max-snippet", "max-image-preview", "max-video-preview")
#: Other robots directives known to Google, Bing and others: kept, not AI signals.
KNOWN_DIRECTIVES = (
    "all", "none", "index", "noindex", "follow", "nofollow", "nosnippet", "indexifembedded",
    "notranslate", "noimageindex", "nositelinkssearchbox", "nocache", "noodp", "noydir",
    "noyaca",
)
# protocols.md §6.3 [REC]: "if it matches `^\s*([A-Za-z0-9_.-]+)\s*:\s*(.+)$` and group 1 is not a
# known valued directive ... start a new scope for crawler group 1".
_SCOPED = re.compile(r"([A-Za-z0-9_.-]+)[ \t]*:[ \t]*(.*)", re.DOTALL)
_SPACES = re.compile(r"[ \t\n\r\f\v]+")
_DIRECTIVE_NAMES = frozenset(AI_DIRECTIVES + VALUED_DIRECTIVES + KNOWN_DIRECTIVES)
_ALL = ""  # the scope of directives without a crawler prefix
_SHOWN = 200
_MAX_PROBLEMS = 20




@dataclass(frozen=True, slots=True)
class Directives:
    """The robots directives of one response that apply to one crawler.

    ``ai``: AI directives (:data:`AI_DIRECTIVES`), lower case, first occurrence order, no
    repeats.  ``other``: every other directive that applies (``noindex``, ``max-snippet:50``,
    unknown words), lower case.  ``rules``: the header lines / meta tags, as written, that gave
    an AI directive.  ``scoped``: an AI directive was addressed to the crawler by name.
    """

    ai: tuple[str, ...] = ()
    other: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    scoped: bool = False
    problems: tuple[str, ...] = ()

    def to_statement(self, channel: str, token: str) -> Statement | None:
        """The AI directives as a :class:`Statement`; ``None`` when there are none."""
        if not self.ai:
            return None
        return Statement(
            signal=SIGNAL,
            channel=channel,
            terms=tuple((name, False) for name in self.ai),
            rule="; ".join(self.rules),
            agent=token if self.scoped else None,
            problems=self.problems,
        )


def _clip(text: str, limit: int = _SHOWN) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _words(item: str) -> list[str]:
    """The directives of one comma item, lower case: a valued directive whole
    (``max-snippet:50``), otherwise each space-separated word."""
    item = item.strip()
    if not item:
        return []
    name, colon, value = item.partition(":")
    name = name.strip().lower()
    if colon and name in VALUED_DIRECTIVES:
        return [f"{name}:{value.strip().lower()}"]
    return [word.lower() for word in _SPACES.split(item) if word]


def _items(text: str) -> list[str]:
    """Split a directive list on commas, keeping a date's comma inside ``unavailable_after``.

    A date written RFC 850 style (``unavailable_after: Sunday, 01-Sep-2024 15:00:00 PST``) holds a
    comma: an item that follows ``unavailable_after`` and does not start like a directive or a
    crawler scope is the rest of the date.
    """
    items: list[list[str]] = []
    in_date = False
    for raw in text.split(","):
        item = raw.strip()
        if in_date and item:
            first = _SPACES.split(item, maxsplit=1)[0].partition(":")[0].lower()
            if first not in _DIRECTIVE_NAMES and _SCOPED.fullmatch(item) is None:
                items[-1].append(item)
                continue
        items.append([item])
        in_date = "unavailable_after" in item.lower()
    return [", ".join(parts) for parts in items]


class _Collector:
    """Accumulates the directives that apply, in order, without repeats."""

    def __init__(self) -> None:
        self.ai: dict[str, None] = {}
        self.other: dict[str, None] = {}
        self.rules: dict[str, None] = {}
        self.problems: dict[str, None] = {}
        self.scoped = False

    def add(self, word: str, rule: str, scoped: bool) -> None:
        if word in AI_DIRECTIVES:
            self.ai[word] = None
            self.rules[rule] = None
            self.scoped = self.scoped or scoped
            return
        self.other[word] = None
        name = word.partition(":")[0]
        if name not in KNOWN_DIRECTIVES and name not in VALUED_DIRECTIVES:
            self.note(f"unknown directive {_clip(word, 60)!r}")

    def note(self, problem: str) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems[problem] = None

    def result(self) -> Directives:
        return Directives(
            ai=tuple(self.ai),
            other=tuple(self.other),
            rules=tuple(self.rules),
            scoped=self.scoped,
            problems=tuple(self.problems),
        )


def _check_token(token: str) -> str:
    if not isinstance(token, str):
        raise TypeError(f"token must be str, not {type(token).__name__}")
    return token.strip().lower()


def directives_from_x_robots_tag(values: Sequence[str | bytes] | str, token: str) -> Directives:
    """The directives of the ``X-Robots-Tag`` header lines ``values`` that apply to ``token``.

    Pass each header line separately (a ``str`` is taken as one line; ``bytes`` are decoded as
    Latin-1, as Scrapy hands them over).  Never raises for remote input.
    """
    wanted = _check_token(token)
    if isinstance(values, (str, bytes)):
        values = [values]
    collector = _Collector()
    for value in values:
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        if not isinstance(value, str):
            raise TypeError(f"header values must be str or bytes, not {type(value).__name__}")
        line = value.strip()
        rule = f"X-Robots-Tag: {_clip(line)}"
        # protocols.md §6.3 [REC]: "each new header line resets scope to "all"."
        scope = _ALL
        # protocols.md §6.3: "Several headers may appear; a single header may hold a
        # **comma-separated** list."
        for item in _items(line):
            if not item:
                continue
            scoped = _SCOPED.fullmatch(item)
            if scoped is not None and scoped.group(1).lower() not in VALUED_DIRECTIVES:
                # protocols.md §6.3: "A header value may be prefixed by a crawler name:
                # `X-Robots-Tag: googlebot: nofollow` ... Directives **without** a crawler
                # prefix apply to all crawlers."  A prefix starts a scope for that crawler.
                scope = scoped.group(1).lower()
                item = scoped.group(2)
            # protocols.md §6.3 [REC]: "subsequent plain items inherit the current scope".
            words = _words(item)
            if len(words) > 1 and ":" not in words[0]:
                collector.note(f"{rule!r}: directives separated by spaces, not commas")
            for word in words:
                if scope == _ALL or scope == wanted:
                    # "Apply the union of "all" and "your-token" directives (most restrictive)."
                    collector.add(word, rule, scoped=scope != _ALL)
                elif word in AI_DIRECTIVES:
                    collector.note(
                        f"'{scope}: {word}' addresses another crawler; ignored"
                    )
    return collector.result()


def statement_from_x_robots_tag(
    values: Sequence[str | bytes] | str, token: str
) -> Statement | None:
    """The AI directives of ``X-Robots-Tag`` that apply to ``token``; ``None`` if there are none.

    ``rule`` lists the header lines that gave them (``"X-Robots-Tag: MyBot: noindex, noai"``,
    joined by ``"; "``); ``agent`` is ``token`` when one was addressed to it by name.
    """
    return directives_from_x_robots_tag(values, token).to_statement("header", token)


def directives_from_meta(metas: MetaInput, token: str) -> Directives:
    """The directives of ``<meta name="robots">`` and ``<meta name="<token>">`` tags.

    Google's robots meta specification: "Both the name and the content attributes are
    case-insensitive."  Several tags add up: "In the case of conflicting robots rules, the more
    restrictive rule applies."
    """
    wanted = _check_token(token)
    collector = _Collector()
    for name, content, line in meta_entries(metas):
        # protocols.md §6.3: "In HTML, `name="robots"` addresses all crawlers;
        # `name="<crawler>"` (e.g. `googlebot`, `googlebot-news`) addresses one."
        if name != "robots" and (not wanted or name != wanted):
            continue
        where = f" (line {line})" if line is not None else ""
        rule = f'<meta name="{_clip(name, 60)}" content="{_clip(content)}">{where}'
        for item in _items(content):
            for word in _words(item):
                collector.add(word, rule, scoped=name != "robots")
    return collector.result()


def statement_from_meta(metas: MetaInput, token: str) -> Statement | None:
    """The AI directives of robots ``<meta>`` tags that apply to ``token``; ``None`` if none."""
    return directives_from_meta(metas, token).to_statement("meta", token)
