"""``polite-crawl about``: the crawler information page, its key directory and its change
feed (``--serve``: then serve them, the key directory signed afresh for each response)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from crawler.audit.checkpoint import read_checkpoints
from crawler.cli.common import UsageError
from crawler.config.job import DEFAULT_CONFIG, JobConfig, load_config
from crawler.identity.keys import (
    JWKS_PATH,
    IdentityError,
    load_key,
    published_keys,
    read_retired,
)
from crawler.publish.about import AboutError, build_about
from crawler.publish.about_server import serve_about


def register(sub: argparse._SubParsersAction) -> None:
    about = sub.add_parser("about", help="the crawler information page and its change feed")
    about.add_argument("--out", required=True, help="output directory (about.html, "
                       "about.json, changes.atom; the feed keeps earlier entries)")
    about.add_argument("--config", help=f"config (default: {DEFAULT_CONFIG.name})")
    about.add_argument("--previous", help="directory of the previously published page")
    about.add_argument("--base-url", help="where the page will be published")
    about.add_argument("--checkpoints", nargs="*", metavar="FILE", default=None,
                       help="audit checkpoint files to publish in the feed (default: every "
                            "*.checkpoints.jsonl in the config's output_dir)")
    about.add_argument("--directory-validity", type=float, default=86400, metavar="SECONDS",
                       help="life of the key directory's signatures written for static "
                            "hosting (default 1 day: re-run about before it ends)")
    about.add_argument("--serve", metavar="[HOST:]PORT",
                       help="then serve the directory over HTTP (default host 127.0.0.1), the "
                            "key directory signed afresh for each response; Ctrl-C stops")
    about.set_defaults(func=cmd_about)


def cmd_about(args: argparse.Namespace) -> int:
    job = load_config(Path(args.config) if args.config else DEFAULT_CONFIG)
    files = ([Path(f) for f in args.checkpoints] if args.checkpoints is not None
             else sorted(job.output_dir.glob("*.checkpoints.jsonl")))
    lines: list[dict[str, Any]] = []
    for f in files:
        errors: list[str] = []
        try:
            lines += read_checkpoints(f, errors=errors)
        except FileNotFoundError as exc:
            raise UsageError(str(exc)) from None
        for e in errors:
            print(f"polite-crawl: note: {e}", file=sys.stderr)
    keys: list[dict[str, Any]] = []
    signers = _about_signers(job)
    if job.identity_key_file is not None:
        try:
            keys = published_keys(job.identity_key_file, now=time.time())
        except IdentityError as exc:
            raise UsageError(f"identity.key_file: {exc}") from None
    if not 0 < args.directory_validity <= 366 * 86400:
        raise UsageError("--directory-validity: seconds, more than 0 and at most a year")
    try:
        page = build_about(job, Path(args.out), previous_dir=args.previous,
                           base_url=args.base_url, checkpoints=lines, keys=keys,
                           signers=signers, signature_agent=job.signature_agent,
                           directory_validity=args.directory_validity)
    except AboutError as exc:
        raise UsageError(str(exc)) from None
    extra = f", {JWKS_PATH}" if keys or (Path(args.out) / JWKS_PATH).exists() else ""
    print(f"polite-crawl: {page}, about.json and changes.atom{extra} written "
          f"({len(lines)} checkpoint lines from {len(files)} file(s) in the feed)")
    if args.serve:
        return _serve_about(args, job, signers)
    return 0


def _about_signers(job: JobConfig) -> list[Any]:
    """The keys that sign the key directory: the current key and the retired keys whose private
    half is still beside it (one signature per key the directory lists)."""
    if job.identity_key_file is None:
        return []
    path = job.identity_key_file
    try:
        out = [load_key(path)]
        for entry in read_retired(path):
            aside = path.with_name(f"{path.name}.retired-{entry['jwk']['kid']}")
            if aside.exists():
                out.insert(-1, load_key(aside))
    except IdentityError as exc:
        raise UsageError(f"identity.key_file: {exc}") from None
    return out


def _serve_about(args: argparse.Namespace, job: JobConfig, signers: list[Any]) -> int:
    host, _, port = args.serve.rpartition(":")
    if not port.isdigit() or int(port) > 65535:
        raise UsageError("--serve: [HOST:]PORT, e.g. 127.0.0.1:8080")
    host = host.strip("[]") or "127.0.0.1"
    own = [urlsplit(u).netloc for u in (job.signature_agent, args.base_url) if u]
    try:
        server = serve_about(args.out, host, int(port), signers=signers, authorities=own)
    except OSError as exc:
        raise UsageError(f"--serve {args.serve}: {exc.strerror or exc}") from None
    print(f"polite-crawl: serving {args.out} at {server.url}/ (Ctrl-C stops)", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
