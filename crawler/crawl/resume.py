"""Resumed and repeated runs of one job (same ``output_dir``).

* **Resume** — the previous run did not finish (``run.json`` has no ``finished_at``: killed,
  crashed, stopped): pages it collected are not fetched again. Their stored HTML is replayed
  to the spider for link extraction only (no new item, no new record), so the crawl rebuilds
  its frontier from what it had and carries on; URLs it already refused stay refused (their
  records stand). The audit chain simply continues. This needs no JOBDIR and survives
  ``kill -9``: corpus lines and audit records are flushed one by one.
* **Re-crawl** — the previous run finished (e.g. last week's scheduled run): every URL is
  decided again (robots.txt and the other per-origin files are fetched afresh), and pages
  already in the corpus are asked for conditionally (``If-None-Match`` / ``If-Modified-Since``
  from the stored ``etag`` / ``last_modified``). A ``304 Not Modified`` is recorded (allow,
  status 304) and the stored HTML is replayed for its links; only what changed is collected.

This module reads what a previous run left (``run.json``, the audit log, the corpus); the
downloader middleware that acts on it is :class:`crawler.crawl.recrawl.RecrawlMiddleware`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from crawler.audit.log import iter_records
from crawler.policy.network import origin_key

logger = logging.getLogger(__name__)

#: close reasons of a run that did its job: the frontier is exhausted ("finished") or the
#: job's page budget is spent (max_pages is CLOSESPIDER_ITEMCOUNT). Any other reason
#: ("shutdown" after SIGTERM/SIGINT, "closespider_timeout", errors) leaves the run resumable.
COMPLETED_REASONS = frozenset({"finished", "closespider_itemcount", "closespider_pagecount"})


def previous_run(output_dir: Path, name: str = "run.json") -> dict[str, Any] | None:
    try:
        info = json.loads((output_dir / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def run_finished(info: dict[str, Any]) -> bool:
    """Did the run that wrote ``info`` (``run.json``) finish (frontier exhausted or max_pages
    reached)? A stopped one (SIGTERM/SIGINT: reason ``shutdown``) did not, even in a
    ``run.json`` from an older version that wrote ``finished_at`` for it."""
    if not info.get("finished_at"):
        return False
    reason = info.get("finish_reason")
    return reason is None or reason in COMPLETED_REASONS


def sent_pages_per_origin(audit: Path, since: str | None = None) -> dict[str, int]:
    """Page requests sent per origin (``send`` records of pages: not per-origin files, not
    sitemaps, not a redirect hop or retry of a page already counted), from ``since`` (an audit
    ``time``) on: where a resumed run's ``max_pages_per_origin`` starts."""
    counts: dict[str, int] = {}
    if not audit.exists():
        return counts
    try:
        for rec in iter_records(audit):
            if (rec.get("decision") != "send" or rec.get("preflight") or rec.get("sitemap")
                    or rec.get("follows") is not None
                    or (since is not None and str(rec.get("time", "")) < since)):
                continue
            try:
                origin = origin_key(str(rec.get("url", "")))
            except ValueError:
                continue
            counts[origin] = counts.get(origin, 0) + 1
    except OSError as exc:
        logger.warning("cannot read %s for the page counts (%s): the cap starts at 0", audit,
                       exc)
    return counts


class CorpusIndex:
    """URL -> offset of its latest line in ``corpus.jsonl`` (the documents stay on disk)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offsets: dict[str, int] = {}
        if path.exists():
            with open(path, "rb") as fh:
                offset = 0
                for line in fh:
                    if line.endswith(b"\n"):
                        try:
                            self.offsets[json.loads(line)["url"]] = offset
                        except (ValueError, KeyError):
                            pass
                    offset += len(line)

    def __contains__(self, url: str) -> bool:
        return url in self.offsets

    def __len__(self) -> int:
        return len(self.offsets)

    def get(self, url: str) -> dict[str, Any] | None:
        offset = self.offsets.get(url)
        if offset is None:
            return None
        with open(self.path, "rb") as fh:
            fh.seek(offset)
            return json.loads(fh.readline())


def _decisions(audit: Path) -> Iterator[dict[str, Any]]:
    """The decision records of a log (``allow``/``deny``/``erase``; per-origin file and
    sitemap fetches, other kinds of record, lines that cannot be read and a line torn by a kill left out)."""
    if not audit.exists():
        return
    with open(audit, "rb") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:  # a torn last line (or a torn UTF-8 sequence in it)
                continue
            if (isinstance(rec, dict) and rec.get("decision") in ("allow", "deny", "erase")
                    and isinstance(rec.get("url"), str) and not rec.get("preflight")
                    and not rec.get("sitemap")):  # a sitemap is not a page: its walk asks again
                yield rec


def refused_urls(audit: Path) -> set[str]:
    """URLs whose last decision in a log was a refusal for good (not one only because a
    reservation could not be determined: see :func:`undecided_urls`)."""
    out: set[str] = set()
    for rec in _decisions(audit):
        if rec["decision"] == "deny" and not rec.get("undecided"):
            out.add(rec["url"])
        elif rec["decision"] in ("allow", "deny"):
            out.discard(rec["url"])
    return out


def undecided_urls(audit: Path) -> list[str]:
    """URLs whose last decision in a log was a refusal because a reservation could not be
    determined (an ``undecided`` record: final, e.g. ``deferred_to_next_run``, or still waiting
    for its retry when the run was stopped), in the order they were first refused. The job's
    next run (resumed or repeated) schedules them first."""
    out: dict[str, None] = {}
    for rec in _decisions(audit):
        if rec["decision"] == "deny" and rec.get("undecided"):
            out.setdefault(rec["url"], None)
        elif rec["decision"] in ("allow", "deny"):
            out.pop(rec["url"], None)
    return list(out)
