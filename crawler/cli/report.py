"""``polite-crawl report``: report.md/.html/.json and charts from surveys or an audit log;
``--transparency``: the crawled-data part of the EU public training-content summary."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path

from crawler.cli.common import UsageError
from crawler.extras import require
from crawler.publish.outputs import output_files
from crawler.publish.report import ReportError, build_report
from crawler.publish.transparency import build_transparency


def register(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser("report", help="report.md/.html/.json and charts")
    report.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="survey files (several = a time series) or an audit log; with "
                             "--transparency: crawl output directories")
    report.add_argument("--out", required=True, help="output directory")
    report.add_argument("--transparency", action="store_true",
                        help="the crawled-data part of the EU public training-content summary")
    report.add_argument("--sme", action="store_true",
                        help="with --transparency: the SME rule (top 5 %% or 1,000 domains)")
    report.add_argument("--use-file-times", action="store_true",
                        help="order undated survey waves by their records' surveyed_at "
                             "(for archives: file modification times) instead of refusing")
    report.set_defaults(func=cmd_report_or_transparency)


def cmd_report_or_transparency(args: argparse.Namespace) -> int:
    return cmd_transparency(args) if args.transparency else cmd_report(args)


def cmd_report(args: argparse.Namespace) -> int:
    require("matplotlib", "report", "report")  # its charts (report --transparency has none)

    inputs = [Path(p) for p in args.inputs]
    for p in inputs:
        if not p.is_file():
            raise UsageError(f"{p}: no such input file")
    try:
        result = build_report(inputs, Path(args.out), use_file_times=args.use_file_times)
    except ReportError as exc:
        raise UsageError(str(exc)) from None
    print(f"polite-crawl: report written to {Path(args.out) / 'report.md'}, report.html, "
          f"report.json" + (f" and {len(result.get('charts', []))} charts"
                           if isinstance(result, dict) and result.get("charts") else ""))
    return 0


def cmd_transparency(args: argparse.Namespace) -> int:
    dirs = [Path(p) for p in args.inputs]
    for d in dirs:
        if not output_files(d)[0]:
            raise UsageError(f"{d}: not a crawl output directory (no audit log)")
    build_transparency(dirs, Path(args.out), top_share=0.10, sme=args.sme,
                       now=datetime.now(timezone.utc))
    print(f"polite-crawl: {Path(args.out) / 'transparency.md'}, transparency.html and "
          "transparency.json written")
    return 0
