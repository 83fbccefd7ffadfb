"""Opt-out registries as the crawl asks them, without Scrapy or Twisted.

* :class:`LocalRegistry` wraps a text list or an SQLite database (loaded once; lookups are
  synchronous and fast) and says what a lookup means for a URL.
* For a remote API in Spawning's format, asked in batches by
  :class:`crawler.crawl.registries.HttpRegistry` through the Scrapy engine: the request's
  headers (:func:`request_headers`; the body is :func:`~crawler.registry.spawning.
  spawning_request_body`), the reading of an answer (:func:`read_answer`), when and how soon a
  batch is asked again (:func:`worth_retrying`, :func:`retry_delay`), what is kept for a URL
  and how long (:class:`CachedAnswer`, :func:`cached_answer`) and the evidence a kept answer
  gives (:func:`answer_evidence`). A registry that cannot answer leaves the URL
  **undecided**: it is not fetched, the audit record says why, and it is decided again after
  the backoff (fail closed).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from crawler.optout.model import Evidence, Statement
from crawler.policy.reservation import Policy
from crawler.registry.index import RegistryIndex
from crawler.registry.spawning import parse_spawning_response
from crawler.registry.sqlite import SqliteRegistry

__all__ = [
    "CachedAnswer",
    "LocalRegistry",
    "answer_evidence",
    "cached_answer",
    "matched_entries",
    "opt_out_evidence",
    "read_answer",
    "request_headers",
    "retry_delay",
    "worth_retrying",
]

logger = logging.getLogger(__name__)


def opt_out_evidence(policy: Policy, channel: str, rule: str, source: str) -> Evidence:
    """The policy's verdict on a registry entry that covers the URL."""
    return policy.judge(Statement("registry", channel, (("opt-out", False),), rule=rule,
                                  source=source))


class LocalRegistry:
    """A text list or SQLite registry, loaded once."""

    def __init__(self, spec: dict[str, Any], policy: Policy) -> None:
        self.name = spec["name"]
        self.kind = spec["type"]
        self.policy = policy
        if self.kind == "sqlite":
            self.backend: Any = SqliteRegistry(spec["path"])
            self.problems: tuple[str, ...] = tuple(self.backend.problems)
        else:
            self.backend, self.problems = RegistryIndex.from_file(spec["path"])
        for problem in self.problems[:20]:
            logger.warning("registry %s: %s", self.name, problem)
        logger.info("registry %s: %d entries (%s)", self.name, len(self.backend), self.kind)

    def check(self, url: str) -> Evidence:
        entry = self.backend.lookup(url)
        if entry is None:
            return Evidence("registry", self.kind, "unset", rule="no entry matches",
                            source=self.name)
        where = f" (line {entry.line})" if entry.line else ""
        return opt_out_evidence(self.policy, self.kind, f"{entry.kind} entry {entry.raw!r}{where}",
                                self.name)

    def close(self) -> None:
        close = getattr(self.backend, "close", None)
        if close is not None:
            close()


# --- a remote registry API -------------------------------------------------------------------


@dataclass
class CachedAnswer:
    """What is known about one URL until ``expires`` (a clock reading): opted out (True), not
    (False), or undecided (None, the registry could not answer; ``detail`` says why)."""

    opted_out: bool | None
    detail: str
    expires: float

    def fresh(self, now: float) -> bool:
        return self.expires > now

    def retry_in(self, now: float) -> float:
        """Seconds until an undecided URL is asked again (0 when the answer is known)."""
        if self.opted_out is not None:
            return 0.0
        return max(0.0, self.expires - now)


def cached_answer(opted_out: bool | None, why: str, entry: str | None, now: float, *,
                  ttl: float, backoff: float) -> CachedAnswer:
    """The cache entry for one URL of an answered (or failed) batch: an answer is kept for
    ``ttl`` seconds, naming the registry's ``entry`` when it gave one; no answer is kept for
    ``backoff`` seconds, with ``why`` (the batch's problem)."""
    if opted_out is None:
        return CachedAnswer(None, why or "no answer for this URL", now + backoff)
    detail = f"optOut: {'true' if opted_out else 'false'}" + (
        f"; entry {entry}" if entry else "")
    return CachedAnswer(opted_out, detail, now + ttl)


def answer_evidence(policy: Policy, answer: CachedAnswer, source: str) -> Evidence:
    """The evidence of a kept answer from the registry at ``source``; an undecided URL is
    refused as a network failure (it is not fetched, and decided again later)."""
    if answer.opted_out is None:
        return Evidence("network", "registry", "deny", rule=answer.detail, source=source,
                        detail="registry could not answer: URL undecided")
    if answer.opted_out:
        return opt_out_evidence(policy, "api", answer.detail, source)
    return Evidence("registry", "api", "unset", rule=answer.detail, source=source)


def request_headers(api_key: str | None) -> dict[str, str]:
    """The headers of a batch request (the body is ``spawning_request_body``)."""
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if api_key:
        headers["Authorization"] = f"API {api_key}"
    return headers


def read_answer(body: bytes, batch: list[str],
                ) -> tuple[dict[str, bool | None], dict[str, str], tuple[str, ...]]:
    """A 200 answer about ``batch``: (url -> opted out or None, url -> the entry named,
    problems); see :func:`~crawler.registry.spawning.parse_spawning_response`."""
    answers, problems = parse_spawning_response(body, batch)
    return answers, matched_entries(body), problems


def matched_entries(body: bytes) -> dict[str, str]:
    """``url -> "entry (line N)"`` from answers that name the entry (our server does)."""
    try:
        items = json.loads(body).get("urls")
    except (ValueError, AttributeError):
        return {}
    out: dict[str, str] = {}
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict) and isinstance(item.get("entry"), str):
            line = item.get("line")
            out[str(item.get("url"))] = repr(item["entry"]) + (
                f" (line {line})" if isinstance(line, int) else "")
    return out


def worth_retrying(status: int) -> bool:
    """Whether a batch answered with HTTP ``status`` is asked again: yes for 408, 429 and
    5xx; other 4xx answers would not change."""
    return status in (408, 429) or status >= 500


def retry_delay(attempt: int, backoff: float) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, ...): doubling from 0.5 s, at most
    ``backoff``."""
    return min(backoff, 0.5 * 2 ** (attempt - 1))
