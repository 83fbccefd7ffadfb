"""``polite-crawl``: the command line.

Exit codes: 0 success, 1 a check failed (e.g. a tampered audit log), 2 bad usage, bad config or
an environment problem (one line naming the key, file or directory at fault, never a
traceback), 3 a run stopped because an output file could not be written (disk full: it resumes
once fixed), 130/143 a run stopped by SIGINT/SIGTERM (it resumes).

One module per command group (run, seed, check, demo, registry, survey, corpus: revalidate and
export, report, identity, about, audit), each adding its subcommands to the parser with
``register`` and naming the function that runs one with ``set_defaults(func=...)``; what they
share is in :mod:`crawler.cli.common`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from crawler import __version__
from crawler.cli import (
    about,
    audit,
    check,
    corpus,
    demo,
    identity,
    registry,
    report,
    run,
    seed,
    survey,
)
from crawler.cli.common import UsageError
from crawler.config.job import ConfigError
from crawler.extras import MissingExtra

#: the command groups, in the order ``polite-crawl --help`` lists their commands
GROUPS = (run, seed, check, demo, registry, survey, corpus, report, identity, about, audit)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="polite-crawl",
        description="Collect web content only where rights holders have not reserved it.",
    )
    p.add_argument("--version", action="version", version=f"polite-crawler {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    command = getattr(args, "func", None)
    if command is None:  # no command, or a command group without its subcommand
        parser.print_help(sys.stderr)
        return 2
    try:
        return command(args)
    except (ConfigError, UsageError, MissingExtra) as exc:
        print(f"polite-crawl: {exc}", file=sys.stderr)
        return 2
