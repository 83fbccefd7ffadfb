"""``polite-crawl check``: decide URLs without collecting them, one JSON line per URL (the
audit record); ``--from-file`` for long lists."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from crawler.cli.common import NEVER_PAY, UsageError, run_crawl
from crawler.config.job import DEFAULT_CONFIG, load_config


def register(sub: argparse._SubParsersAction) -> None:
    check = sub.add_parser("check", help="decide without collecting; one JSON line per URL")
    check.add_argument("urls", nargs="*", metavar="URL")
    check.add_argument("--from-file", metavar="FILE",
                       help="the URLs to decide, one a line ('#' comments; millions are fine: "
                            "with --no-fetch, URLs of origins already fetched are decided in "
                            "place); each line out is the audit record as written, the "
                            "summary gives counts")
    check.add_argument("--config", help=f"config (default: {DEFAULT_CONFIG.name})")
    check.add_argument("--no-fetch", action="store_true",
                       help="site-level signals only: never request the URLs themselves")
    check.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    if bool(args.urls) == bool(args.from_file):
        raise UsageError("check: give URLs or --from-file FILE (one of them)")
    if args.from_file:
        return _check_from_file(args)
    for url in args.urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"{url!r} is not an http(s) URL")
    path = Path(args.config) if args.config else DEFAULT_CONFIG
    job = load_config(path)
    with tempfile.TemporaryDirectory(prefix="polite-check-") as tmp:
        records: list[dict[str, Any]] = []

        def emit(rec: dict[str, Any]) -> None:
            if rec.get("preflight"):
                return
            records.append(rec)
            print(json.dumps(rec, ensure_ascii=False, sort_keys=True), flush=True)

        run_crawl(job, path, spider="check", on_record=emit,
                  extra_settings={"POLITE_OUTPUT_DIR": tmp, "POLITE_CORPUS_ENABLED": False,
                                  **NEVER_PAY,
                                  "LOG_LEVEL": "WARNING"},
                  urls=json.dumps(list(args.urls)), no_fetch=bool(args.no_fetch))
    for rec in records:
        first = (rec.get("reasons") or [{}])[0]
        why = f"{first.get('signal')}: {first.get('rule')}" if rec["decision"] == "deny" else ""
        print(f"# {rec['decision'].upper():5} {rec['url']} {why}", file=sys.stderr)
    return 0


def _check_from_file(args: argparse.Namespace) -> int:
    """``check --from-file FILE``: one line out per URL, the audit record exactly as written
    to the log (canonical JSON); the summary on stderr counts decisions and refusing signals.
    """
    # lazy: crawler.crawl.meta imports Scrapy (~0.5 s to load)
    from crawler.crawl.meta import plain_url

    source = Path(args.from_file)
    try:
        with open(source, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                url = line.strip()
                if not url or url.startswith("#"):
                    continue
                if plain_url(url) is not None:  # (an http(s) URL with a host, as it is)
                    continue
                try:
                    parts = urlsplit(url)
                    ok = parts.scheme in ("http", "https") and bool(parts.hostname)
                except ValueError:
                    ok = False
                if not ok:
                    raise UsageError(f"{source}:{number}: {url[:200]!r} is not an http(s) URL")
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{source} is not UTF-8 text ({exc.reason})") from None
    path = Path(args.config) if args.config else DEFAULT_CONFIG
    job = load_config(path)
    out = sys.stdout.buffer
    counts: Counter[str] = Counter()
    refused_by: Counter[str] = Counter()
    pending: list[bytes] = []

    def emit(rec: dict[str, Any], line: bytes) -> None:
        if rec.get("preflight"):
            return
        pending.append(line)  # (the record as written: canonical JSON and its end of line)
        if len(pending) >= 1000:
            out.write(b"".join(pending))
            pending.clear()
        counts[rec["decision"]] += 1
        if rec["decision"] == "deny":
            refused_by[(rec.get("reasons") or [{}])[0].get("signal")] += 1

    with tempfile.TemporaryDirectory(prefix="polite-check-") as tmp:
        try:
            stats = run_crawl(job, path, spider="check", on_record=emit,
                              extra_settings={"POLITE_OUTPUT_DIR": tmp, **NEVER_PAY,
                                              "POLITE_CORPUS_ENABLED": False,
                                              "LOG_LEVEL": "WARNING"},
                              from_file=str(source.resolve()), no_fetch=bool(args.no_fetch))
        finally:
            out.write(b"".join(pending))
            out.flush()
    cached = stats.get("polite/check/decided_from_cache", 0)
    spent = stats.get("polite/check/from_cache_seconds") or 0.0
    print(f"# {sum(counts.values())} URLs: {counts['allow']} allowed, {counts['deny']} "
          f"refused" + (" (" + ", ".join(f"{n} by {s}" for s, n in refused_by.most_common())
                        + ")" if refused_by else "")
          + (f"; {cached} decided from the cached per-origin files in {spent:.2f} s"
             + (f" ({cached / spent:,.0f} URLs/s)" if spent else "") if cached else ""),
          file=sys.stderr)
    return 0


