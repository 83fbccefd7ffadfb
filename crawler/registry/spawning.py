"""Opt-out registries: a sans-IO codec for Spawning's "Do Not Train" API.

:data:`SPAWNING_PATH`, :func:`spawning_request_body` and :func:`parse_spawning_response` for the
client side, :func:`parse_spawning_request` for the server side: the HTTP client
(:mod:`crawler.registry.client`, :mod:`crawler.crawl.registries`) and
:mod:`crawler.registry.server` share them.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence

from crawler.registry.entries import canonical_url

__all__ = [
    "SPAWNING_PATH",
    "parse_spawning_request",
    "parse_spawning_response",
    "spawning_request_body",
]

# protocols.md §8.1, from the reference client datadiligence.rules.SpawningAPI: "POST
# .../api/v2/query/urls/", "body: the URLs, newline-separated, UTF-8"; "Response (200):
# {"urls": [{"url": "...", "optOut": true|false, "optIn": true|false}, ...]}"; "The client
# treats a URL as allowed iff optOut is false (so optOut: true, optIn: true -> excluded)".
# Ordering of the answers is not documented, so answers are matched by their "url" field.

SPAWNING_PATH = "/api/v2/query/urls"


def spawning_request_body(urls: Sequence[str]) -> bytes:
    """The request body for ``urls``: newline-separated UTF-8.

    Raises ValueError for an empty URL or one containing a line break (it would be read as
    several URLs, or none).
    """
    for url in urls:
        if not url or "\n" in url or "\r" in url:
            raise ValueError(f"cannot send {url!r} to a registry: empty or has a line break")
    return "\n".join(urls).encode("utf-8")


def parse_spawning_request(body: bytes) -> tuple[str, ...]:
    """The URLs of a request body (server side): one per line, blank lines skipped.

    Raises ValueError (a ``UnicodeDecodeError``) when the body is not UTF-8.
    """
    text = bytes(body).decode("utf-8")
    text = text.removeprefix("\ufeff")
    return tuple(s for line in text.split("\n") if (s := line.strip()))


def parse_spawning_response(body: bytes, urls: Sequence[str], *, status: int = 200,
                            ) -> tuple[dict[str, bool | None], tuple[str, ...]]:
    """Read an answer of the Spawning API about ``urls``.  Never raises.

    Returns (url -> True when opted out, False when not, None when the answer says nothing
    usable about it, problems).  ``optOut: true`` wins over ``optIn: true``.  Answers are
    matched to the asked URLs by their ``url`` field (exactly, else by :func:`canonical_url`);
    only when an answer has no ``url`` field and there are as many answers as URLs is it
    matched by position (noted).  A non-2xx ``status``, a body that is not JSON or not of the
    documented shape, and URLs the answer leaves out give None: the caller treats None as
    undecided and must not fetch (protocols.md §8.1 [REC], §8.6 vector 4).
    """
    result: dict[str, bool | None] = dict.fromkeys(urls)
    problems: list[str] = []
    if not 200 <= status < 300:
        return result, (f"HTTP {status}: no answer for {len(result)} URLs",)
    try:
        data = json.loads(bytes(body))
    except (ValueError, RecursionError, TypeError) as exc:
        problem = f"the answer is not JSON ({type(exc).__name__}); no answer for {len(result)} URLs"
        return result, (problem,)
    items = data.get("urls") if isinstance(data, dict) else None
    if not isinstance(items, list):
        what = "an object without a 'urls' list" if isinstance(data, dict) else \
            f"a JSON {type(data).__name__}"
        problem = f"the answer is {what}, not {{\"urls\": [...]}}; no answer for {len(result)} URLs"
        return result, (problem,)
    canonical: dict[str, str] | None = None
    positional = len(items) == len(urls)
    answered: dict[str, bool] = {}
    by_position = 0
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(f"answer #{position + 1} is not an object")
            continue
        opt_out = item.get("optOut")
        url = item.get("url")
        if url is None:
            if not positional:
                problems.append(f"answer #{position + 1} has no 'url' and the answer count "
                                f"({len(items)}) differs from the URL count ({len(urls)})")
                continue
            url = urls[position]
            by_position += 1
        elif not isinstance(url, str):
            problems.append(f"answer #{position + 1}: 'url' is not a string")
            continue
        elif url not in result:
            if canonical is None:
                canonical = {}
                for asked in urls:
                    with contextlib.suppress(ValueError):
                        canonical.setdefault(canonical_url(asked), asked)
            try:
                asked_url = canonical.get(canonical_url(url))
            except ValueError:
                asked_url = None
            if asked_url is None:
                problems.append(f"answer #{position + 1} is about {url[:200]!r}, "
                                f"which was not asked")
                continue
            url = asked_url
        if not isinstance(opt_out, bool):
            problems.append(f"answer #{position + 1} ({url[:200]}): 'optOut' is "
                            f"{opt_out!r}, not true/false")
            continue
        previous = answered.get(url)
        if previous is not None and previous != opt_out:
            problems.append(f"contradictory answers about {url[:200]}: read as opted out")
        answered[url] = opt_out or bool(previous)
    if by_position:
        problems.append(f"{by_position} answers had no 'url' field: matched by position")
    result.update(answered)
    missing = sum(1 for v in result.values() if v is None)
    if missing:
        problems.append(f"no usable answer for {missing} of {len(result)} URLs")
    return result, tuple(problems)
