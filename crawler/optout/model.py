"""Types shared by every signal: what a per-origin file fetch gave, and a piece of evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Evidence:
    """One statement checked for one URL, as it appears in an audit record.

    ``outcome`` is ``deny`` (the statement reserves the URL for this crawl), ``allow`` (it
    permits it) or ``unset`` (the signal says nothing here: file absent, no rule matched,
    malformed value).
    """

    signal: str
    channel: str
    outcome: str
    rule: str | None = None
    agent: str | None = None
    source: str | None = None
    source_sha256: str | None = None
    status: int | None = None
    detail: str | None = None
    problems: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"signal": self.signal, "channel": self.channel,
                               "outcome": self.outcome}
        for key in ("rule", "agent", "source", "source_sha256", "status", "detail"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.problems:
            out["problems"] = list(self.problems[:20])
        return out


@dataclass(frozen=True, slots=True)
class SiteFile:
    """The outcome of fetching one per-origin file (robots.txt, tdmrep.json, ...).

    ``outcome``: ``parsed`` (2xx, body parsed into ``parsed``), ``unavailable`` (the file is
    not there: 4xx, or a body that is not in the protocol's format), ``unreachable`` (it could
    not be determined: 5xx, 429, network error, timeout, too many redirects, a body that could
    not be decoded, a JSON/XML file cut at the size limit).

    ``complete`` is False when only a prefix of the file was read (download cap, decoded-size
    limit); ``problems`` lists what happened to the bytes before parsing (cut, converted from
    UTF-16, ...), for the evidence.

    ``source`` holds the bytes ``parsed`` was parsed from (after the conversions above), so a
    cache may drop ``parsed`` and parse them again (:func:`crawler.policy.reservation.reparsed`); it is
    not part of the file's value (not compared, not shown).
    """

    kind: str
    url: str
    outcome: str
    status: int | None = None
    sha256: str | None = None
    size: int = 0
    error: str | None = None
    final_url: str | None = None
    parsed: Any = None
    complete: bool = True
    problems: tuple[str, ...] = ()
    source: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def status_text(self) -> str:
        if self.status is not None:
            return f"HTTP {self.status}: {self.error}" if self.error else f"HTTP {self.status}"
        return self.error or "no response"


@dataclass(frozen=True, slots=True)
class Statement:
    """One machine-readable statement about uses, in the protocol's own vocabulary.

    ``terms`` pairs each term the statement mentions (lower-case, as the protocol names it:
    ``ai-train`` for Content-Signal, ``train-ai`` for Content-Usage, ``noai`` for robots meta
    ...) with ``True`` (the use is allowed) or ``False`` (reserved / not allowed). Terms the
    statement does not mention are unknown. Which crawl purposes a term binds is decided in
    one table in :mod:`crawler.policy.reservation`, not here.
    """

    signal: str                        # content-usage | content-signal | noai | ai-txt | rsl
    channel: str                       # robots.txt | header | meta | file | link
    terms: tuple[tuple[str, bool], ...]
    rule: str                          # as written, with where: "Content-Signal: ai-train=no (line 3)"
    agent: str | None = None           # the user-agent group / crawler scope it came from
    source: str | None = None          # URL of the document it came from, when not the page
    problems: tuple[str, ...] = ()

    def term(self, name: str) -> bool | None:
        value = None
        for term, allowed in self.terms:
            if term == name:
                value = allowed if value is None else (value and allowed)
        return value
