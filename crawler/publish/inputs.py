"""A report's inputs: JSON-lines files, each recognised by its records as an audit log
(records with ``seq``, ``hash`` and ``decision``) or a survey file (``origin`` and
``surveyed_at``).  Lines that are not JSON objects of either kind are counted as skipped.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crawler.publish.figures import ReportError

__all__ = ["Input", "read_input"]


@dataclass(frozen=True, slots=True)
class Input:
    """One input file: its kind (``survey``, ``audit`` or ``empty``), its records, and the lines
    skipped."""

    path: Path
    kind: str  # 'survey' | 'audit' | 'empty'
    records: tuple[dict[str, Any], ...]
    skipped: int


def _kind(record: Mapping[str, Any]) -> str | None:
    if {"seq", "hash", "decision"} <= record.keys():
        return "audit"
    if {"origin", "surveyed_at"} <= record.keys():
        return "survey"
    return None


def read_input(path: Path) -> Input:
    records: list[dict[str, Any]] = []
    kinds: Counter[str] = Counter()
    skipped = 0
    try:
        with open(path, "rb") as fh:
            for raw in fh:
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw)
                except ValueError:
                    skipped += 1
                    continue
                kind = _kind(record) if isinstance(record, dict) else None
                if kind is None:
                    skipped += 1
                    continue
                kinds[kind] += 1
                records.append(record)
    except OSError as exc:
        raise ReportError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if len(kinds) > 1:
        raise ReportError(f"{path}: holds both survey and audit records; give them separately")
    kind = next(iter(kinds)) if kinds else "empty"
    return Input(path=path, kind=kind, records=tuple(records), skipped=skipped)
