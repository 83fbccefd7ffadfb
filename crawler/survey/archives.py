"""Surveys of archived robots.txt files (``polite-crawl survey --from-dir`` / ``--from-warc``):
the thin file-reading loops that feed :func:`crawler.survey.analysis.analyse_robots_only`, one
record per archived file, each dated with its wave (see "Wave dates" in
:mod:`crawler.survey.analysis`).

* :func:`survey_from_dir`: a directory of ``HOST.txt`` files (the news data set's layout);
* :func:`survey_from_warc`: WARC files, Common Crawl's robots.txt captures or this crawler's.

These read local files only: no network, no Scrapy (a test checks).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from crawler.survey.agents import Agent, load_agent_list
from crawler.survey.analysis import analyse_robots_only, parse_wave_date

__all__ = ["survey_from_dir", "survey_from_warc"]

_ROBOTS_PATH = "/robots.txt"
_ISO_DATE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)


def _dir_timestamp(directory: Any, files: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """(surveyed_at, wave) of an archive directory: the date its name starts with, else the
    newest file's modification time (an undated wave)."""
    named = _ISO_DATE.match(directory.name)
    if named is not None:
        try:
            day = parse_wave_date(named.group(0)[:10])
        except ValueError:
            pass
        else:
            return named.group(0), {"date": day, "source": "directory name"}
    stamps = [f.stat().st_mtime for f in files] or [directory.stat().st_mtime]
    when = datetime.fromtimestamp(max(stamps), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return when, {"date": None, "source": "file times"}


def survey_from_dir(
    directory: Any,
    *,
    surveyed_at: str | None = None,
    date: str | None = None,
    agents: Sequence[Agent] | None = None,
    hosts: Iterable[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """One record per archived robots.txt in ``directory`` (files named ``HOST.txt``, in name
    order; other files are ignored).

    The wave's date: ``date`` (``YYYY-MM-DD``), else the date ``surveyed_at`` starts with, else
    the date the directory's name starts with (``2026-06-15_June`` -> ``2026-06-15``); without
    any, the wave is undated (``wave.source`` ``file times``).  ``surveyed_at`` defaults to
    ``date``, else the directory's date (or ISO 8601 timestamp), else the newest file's
    modification time (UTC).  With ``hosts``, one record per host in that order, a host without
    a file getting outcome ``unknown``.
    """
    directory = Path(directory)
    files = sorted(p for p in directory.iterdir()
                   if p.is_file() and p.name.endswith(".txt") and not p.name.startswith("."))
    if date is not None:
        wave = {"date": parse_wave_date(date), "source": "given"}
        when = surveyed_at if surveyed_at is not None else wave["date"]
    elif surveyed_at is not None:
        try:
            wave = {"date": parse_wave_date(surveyed_at[:10]), "source": "given"}
        except ValueError:
            wave = {"date": None, "source": "given"}  # a timestamp that is not a date
        when = surveyed_at
    else:
        when, wave = _dir_timestamp(directory, files)
    chosen = agents if agents is not None else load_agent_list().agents
    by_host = {p.name[:-4]: p for p in files}
    for host in (list(hosts) if hosts is not None else list(by_host)):
        path = by_host.get(host)
        body: bytes | None = None
        error = None
        if path is not None:
            try:
                body = path.read_bytes()
            except OSError as exc:
                error = f"cannot read {path.name}: {exc.strerror or exc}"
        yield analyse_robots_only(host, body, surveyed_at=when, agents=chosen, error=error,
                                  wave=wave)


def survey_from_warc(
    paths: Iterable[Any],
    *,
    agents: Sequence[Agent] | None = None,
    errors: list[str] | None = None,
    date: str | None = None,
) -> Iterator[dict[str, Any]]:
    """One record per WARC ``response`` record whose target URI path is ``/robots.txt`` (the
    form Common Crawl publishes its robots.txt captures in), in file order.

    The status comes from the captured HTTP headers, ``surveyed_at`` from ``WARC-Date``; the
    body is the payload with transfer and content encodings removed.  A ``resource`` record
    for a robots.txt (how this crawler's WARC keeps one whose content-coding it undid) counts
    too: its status is read from the evidence note that follows it (``WARC-Concurrent-To``),
    and a truncated one (``WARC-Truncated``) is not read.  ``revisit`` and other record types
    are skipped.  A WARC that cannot be read stops that file: the error is appended to
    ``errors`` and reading goes on with the next file, or, without ``errors``, a ValueError is
    raised.

    The wave's date is ``date`` (``YYYY-MM-DD``) when given, else each record's ``WARC-Date``
    (``wave.source`` ``capture time``; a report dates the wave by the earliest).
    """
    from warcio.archiveiterator import ArchiveIterator

    chosen = agents if agents is not None else load_agent_list().agents
    given = {"date": parse_wave_date(date), "source": "given"} if date is not None else None
    for path in paths:
        try:
            with open(path, "rb") as fh:
                held: _HeldResource | None = None
                for record in ArchiveIterator(fh):
                    if held is not None:
                        is_note, status = _note_status(record, held.record_id)
                        yield _dated(held.item(status, chosen), given)
                        held = None
                        if is_note:
                            continue
                    if record.rec_type == "resource":
                        held = _resource_robots(record)
                        continue
                    item = _warc_robots(record, chosen)
                    if item is not None:
                        yield _dated(item, given)
                if held is not None:
                    yield _dated(held.item(None, chosen), given)
        except Exception as exc:
            message = f"{path}: unreadable WARC ({type(exc).__name__}: {exc})"
            if errors is None:
                raise ValueError(message + "; pass errors=[] to skip broken files") from exc
            errors.append(message)


def _dated(record: dict[str, Any], given: dict[str, Any] | None) -> dict[str, Any]:
    if given is not None:
        record["wave"] = dict(given)
    else:
        day = str(record.get("surveyed_at") or "")[:10]
        try:
            record["wave"] = {"date": parse_wave_date(day), "source": "capture time"}
        except ValueError:
            record["wave"] = {"date": None, "source": "capture time"}
    return record


@dataclass
class _HeldResource:
    """A robots.txt kept as a ``resource`` record, until its evidence note gives the status."""

    record_id: str
    origin: str
    body: bytes | None
    surveyed_at: str
    error: str | None

    def item(self, status: int | None, agents: Sequence[Agent]) -> dict[str, Any]:
        error = self.error
        if status is None and error is None:
            error = "no HTTP status recorded with the capture"
        return analyse_robots_only(self.origin, self.body if self.error is None else None,
                                   surveyed_at=self.surveyed_at, agents=agents,
                                   status=status if self.error is None else None, error=error)


def _robots_origin(record: Any) -> str | None:
    """The origin whose ``/robots.txt`` ``record`` captured, else None."""
    uri = record.rec_headers.get_header("WARC-Target-URI") or ""
    try:
        parts = urlsplit(uri.strip("<>"))
        host = (parts.hostname or "").rstrip(".")
        port = parts.port
    except ValueError:
        return None
    if parts.path != _ROBOTS_PATH or not host or parts.scheme not in ("http", "https"):
        return None
    default = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def _resource_robots(record: Any) -> _HeldResource | None:
    origin = _robots_origin(record)
    if origin is None:
        return None
    error = None
    body: bytes | None = None
    if record.rec_headers.get_header("WARC-Truncated"):
        error = "truncated capture (WARC-Truncated): rules after the cut unknown"
    else:
        try:
            body = record.content_stream().read()
        except Exception as exc:  # noqa: BLE001 -- a bad payload is this capture's error
            error = f"unreadable payload ({type(exc).__name__}: {exc})"
    return _HeldResource(record.rec_headers.get_header("WARC-Record-ID") or "", origin, body,
                         record.rec_headers.get_header("WARC-Date") or "", error)


def _note_status(record: Any, record_id: str) -> tuple[bool, int | None]:
    """(is ``record`` the evidence note of ``record_id``, the HTTP status it records)."""
    if (record.rec_type != "metadata" or not record_id
            or record.rec_headers.get_header("WARC-Concurrent-To") != record_id):
        return False, None
    try:
        note = json.loads(record.content_stream().read())
    except ValueError:
        return True, None
    status = note.get("status") if isinstance(note, dict) else None
    return True, status if isinstance(status, int) and 100 <= status <= 599 else None


def _warc_robots(record: Any, agents: Sequence[Agent]) -> dict[str, Any] | None:
    if record.rec_type != "response" or record.http_headers is None:
        return None
    origin = _robots_origin(record)
    if origin is None:
        return None
    when = record.rec_headers.get_header("WARC-Date") or ""
    error = None
    try:
        status: int | None = int(record.http_headers.get_statuscode())
    except (TypeError, ValueError):
        status, error = None, "unreadable HTTP status line in the capture"
    body: bytes | None
    try:
        body = record.content_stream().read()
    except Exception as exc:  # noqa: BLE001 -- bad gzip/chunking in the captured payload
        body, status = None, None
        error = f"unreadable payload ({type(exc).__name__}: {exc})"
    if status is None:
        body = None
    return analyse_robots_only(origin, body, surveyed_at=when, agents=agents, status=status,
                               error=error)
