"""``polite-crawl survey``: measure opt-out uptake, one JSON line per origin: online (the survey
spider) or offline from archived robots.txt files or WARC captures."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from crawler.cli.common import UsageError, run_crawl
from crawler.config.job import DEFAULT_CONFIG, load_config
from crawler.survey.analysis import parse_wave_date
from crawler.survey.archives import survey_from_dir, survey_from_warc


def register(sub: argparse._SubParsersAction) -> None:
    survey = sub.add_parser("survey", help="measure opt-out uptake: one JSON line per origin")
    survey.add_argument("origins", nargs="?", metavar="ORIGINS.txt",
                        help="origins or domains, one a line ('#' comments)")
    survey.add_argument("--out", required=True, help="survey JSONL (appended; re-runs resume)")
    survey.add_argument("--config", help=f"config (default: {DEFAULT_CONFIG.name})")
    survey.add_argument("--from-dir", metavar="DIR",
                        help="offline: archived robots.txt files named HOST.txt")
    survey.add_argument("--from-warc", nargs="+", metavar="WARC",
                        help="offline: WARC captures of robots.txt")
    survey.add_argument("--date", metavar="YYYY-MM-DD",
                        help="the date of this wave, recorded in every record (default: "
                             "today for an online survey, the date DIR's name starts with, "
                             "WARC-Date; else the wave is undated)")
    survey.add_argument("--retry-failed", action="store_true",
                        help="survey again the origins whose earlier record failed "
                             "(robots.txt unreachable, no homepage response...)")
    survey.add_argument("--force", action="store_true",
                        help="survey every origin again (the report keeps the last record)")
    survey.set_defaults(func=cmd_survey)


def cmd_survey(args: argparse.Namespace) -> int:
    out = Path(args.out)
    modes = [m for m in (args.origins, args.from_dir, args.from_warc) if m]
    if len(modes) != 1:
        raise UsageError("survey takes exactly one of ORIGINS.txt, --from-dir DIR, "
                         "--from-warc FILE...")
    date = None
    if args.date is not None:
        try:
            date = parse_wave_date(args.date)
        except ValueError as exc:
            raise UsageError(f"--date: {exc}") from None
    if args.from_dir or args.from_warc:
        if args.retry_failed or args.force:
            raise UsageError("--retry-failed and --force are for online surveys; an offline "
                             "survey analyses every file again")
        if args.from_dir and not Path(args.from_dir).is_dir():
            raise UsageError(f"{args.from_dir}: not a directory")
        for w in args.from_warc or ():
            if not Path(w).is_file():
                raise UsageError(f"{w}: no such WARC file")
        errors: list[str] = []
        records = (survey_from_dir(Path(args.from_dir), date=date) if args.from_dir
                   else survey_from_warc([Path(w) for w in args.from_warc], errors=errors,
                                         date=date))
        out.parent.mkdir(parents=True, exist_ok=True)
        n = 0
        undated = False
        with open(out, "w", encoding="utf-8") as fh:
            for rec in records:
                fh.write(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")
                n += 1
                undated = undated or not (rec.get("wave") or {}).get("date")
        for err in errors[:20]:
            print(f"polite-crawl: {err}", file=sys.stderr)
        if undated:
            print(f"polite-crawl: note: {args.from_dir or 'the WARC'} gives no date for this "
                  "wave (file times are not fetch dates); pass --date YYYY-MM-DD to use it in a "
                  "time series", file=sys.stderr)
        print(f"polite-crawl: {n} origins analysed offline into {out}", file=sys.stderr)
        return 0
    src = Path(args.origins)
    if not src.is_file():
        raise UsageError(f"{src}: no such origins file")
    path = Path(args.config) if args.config else DEFAULT_CONFIG
    job = load_config(path)
    # lazy: crawler.spiders.survey imports Scrapy (~0.5 s to load)
    from crawler.spiders.survey import read_origins

    try:
        total = len(read_origins(src))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"{src}: cannot read origins ({exc})") from None
    wave = _survey_wave(out, date)
    stats = run_crawl(job, path, spider="survey", origins=str(src), out=str(out.resolve()),
                      wave=wave, retry_failed=args.retry_failed, force=args.force)
    print(f"polite-crawl: {stats.get('polite/survey/origins', 0)} origins surveyed this run "
          f"({total} listed) into {out}, wave of {wave['date']}", file=sys.stderr)
    return 0 if stats.get("finish_reason") else 1


def _survey_wave(out: Path, date: str | None) -> dict[str, Any]:
    """The wave an online survey writes into ``out``: ``date`` (refused when ``out`` already
    holds another wave), else the wave ``out`` holds, else today's (UTC)."""
    held: dict[str, Any] | None = None
    if out.is_file():
        with open(out, encoding="utf-8") as fh:
            for line in fh:
                try:
                    wave = json.loads(line).get("wave")
                except (ValueError, AttributeError):
                    continue
                if isinstance(wave, dict) and wave.get("date"):
                    held = {"date": str(wave["date"]), "source": str(wave.get("source"))}
                    break
    if date is not None:
        if held is not None and held["date"] != date:
            raise UsageError(f"{out} holds the wave of {held['date']}; write the wave of {date} "
                             "to another file")
        return {"date": date, "source": "given"}
    if held is not None:
        return held
    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "source": "survey clock"}
