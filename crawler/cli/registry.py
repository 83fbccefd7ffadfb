"""``polite-crawl registry import|serve``: build an SQLite opt-out registry from a text list;
serve one over a Spawning-compatible API."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from crawler.cli.common import UsageError
from crawler.registry.server import serve
from crawler.registry.sqlite import import_list


def register(sub: argparse._SubParsersAction) -> None:
    registry = sub.add_parser("registry", help="opt-out registries: import a list, serve one")
    rsub = registry.add_subparsers(dest="registry_command", metavar="SUBCOMMAND")
    rimport = rsub.add_parser("import", help="build an SQLite registry from a text list")
    rimport.add_argument("list", metavar="LIST", help="text list: one entry a line")
    rimport.add_argument("db", metavar="DB", help="SQLite file to write (replaced atomically)")
    rserve = rsub.add_parser("serve", help="serve a Spawning-compatible registry API")
    rserve.add_argument("source", metavar="DB_OR_LIST")
    rserve.add_argument("--port", type=int, default=8700)
    rserve.add_argument("--host", default="127.0.0.1", help="loopback only (default)")
    rserve.add_argument("--api-key-env", default=None,
                        help="require 'Authorization: API <key>' with the key from this "
                             "environment variable")
    rserve.add_argument("--max-connections", type=int, default=16,
                        help="connections served at once; more get 503 (default 16)")
    rserve.add_argument("--max-buffer-mib", type=int, default=64,
                        help="MiB of request bodies held at once across all requests; "
                             "more get 503 (default 64, at least 16)")
    rserve.add_argument("--read-timeout", type=float, default=10.0,
                        help="seconds a socket read, and a whole request body, may take "
                             "(default 10)")
    rimport.set_defaults(func=cmd_registry_import)
    rserve.set_defaults(func=cmd_registry_serve)


def cmd_registry_import(args: argparse.Namespace) -> int:
    src = Path(args.list)
    if not src.is_file():
        raise UsageError(f"{src}: no such list")
    count, problems = import_list(src, Path(args.db))
    for problem in problems[:50]:
        print(f"{src}: {problem}", file=sys.stderr)
    if len(problems) > 50:
        print(f"{src}: ... {len(problems) - 50} more problems", file=sys.stderr)
    print(f"polite-crawl: {count} entries imported into {args.db} "
          f"({len(problems)} lines skipped)")
    return 0


def cmd_registry_serve(args: argparse.Namespace) -> int:
    src = Path(args.source)
    if not src.is_file():
        raise UsageError(f"{src}: no such registry file or list")
    try:
        return serve(src, host=args.host, port=args.port, api_key_env=args.api_key_env,
                     max_connections=args.max_connections,
                     max_buffer_bytes=args.max_buffer_mib * 2**20,
                     read_timeout=args.read_timeout)
    except (ValueError, OSError) as exc:
        raise UsageError(str(exc)) from None
