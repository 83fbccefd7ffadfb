"""``polite-crawl audit verify|merge|repair``: check audit logs (and an output directory's
corpus, WARC, evidence and published checkpoints), merge workers' logs into one report, cut a
torn last line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from crawler.audit.checkpoint import checkpoints_path, read_checkpoints, verify_checkpoints
from crawler.audit.log import read_head_file, verify_file
from crawler.audit.merge import MergeError, is_report, merge_logs, verify_report
from crawler.audit.outputs import find_logs, verify_output_dir
from crawler.audit.repair import repair, repairs_problem
from crawler.audit.runlock import RunLock, RunLockError
from crawler.cli.common import UsageError
from crawler.identity.keys import keys_from_jwks


def register(sub: argparse._SubParsersAction) -> None:
    audit = sub.add_parser("audit", help="audit log tools")
    asub = audit.add_subparsers(dest="audit_command", metavar="SUBCOMMAND")
    verify = asub.add_parser(
        "verify", help="check audit logs: hash chain, committed head; given an output "
        "directory, also its corpus, WARC and evidence; with --checkpoints, published "
        "checkpoints")
    verify.add_argument("logs", nargs="+", metavar="AUDIT.jsonl|OUTPUT_DIR")
    verify.add_argument("--allow-uncommitted-tail", action="store_true",
                        help="accept records after the committed head (reported, not failed)")
    verify.add_argument("--no-head", action="store_true",
                        help="accept a log without a (readable) head file: the chain alone "
                             "is checked, records cut from its end go unnoticed")
    verify.add_argument("--checkpoints", nargs="*", metavar="FILE", default=None,
                        help="check the log against checkpoints (a checkpoints .jsonl or a "
                             "published changes.atom; no FILE: the one beside each log)")
    verify.add_argument("--keys", metavar="JWKS",
                        help="the published key directory (JWK Set file) that signed the "
                             "checkpoints")
    verify.add_argument("--tsa-ca", metavar="PEM",
                        help="root certificate of the Time-Stamp Authority: verify the "
                             "checkpoints' RFC 3161 tokens cryptographically")
    verify.add_argument("--require-signed", action="store_true",
                        help="an unsigned checkpoint is an error")
    merge = asub.add_parser("merge", help="one time-ordered report from several workers' "
                            "audit logs (each chain verified first; the report is not a chain)")
    merge.add_argument("logs", nargs="+", metavar="AUDIT.jsonl")
    merge.add_argument("--out", required=True, help="the report (JSONL, header line first)")
    repair = asub.add_parser("repair", help="cut a torn last line (a killed write) so the log "
                             "verifies again; never rewrites verified history")
    repair.add_argument("log", metavar="AUDIT.jsonl")
    verify.set_defaults(func=cmd_verify)
    merge.set_defaults(func=cmd_merge)
    repair.set_defaults(func=cmd_repair)


def cmd_verify(args: argparse.Namespace) -> int:
    status = 0
    keys = _load_keys(args.keys) if args.keys else None
    tsa_ca = _read_arg_file(args.tsa_ca, "--tsa-ca") if args.tsa_ca else None
    for name in args.logs:
        target = Path(name)
        if target.is_dir():
            logs = find_logs(target)
            if not logs:
                raise UsageError(f"{name}: no audit log in this directory")
        elif target.exists():
            logs = [target]
        else:
            raise UsageError(f"{name}: no such file or directory")
        for log in logs:
            if is_report(log):  # a merged cluster report: each worker's chain inside it
                for w, r in verify_report(log).items():
                    print(r.describe(f"{log} [{w}]"))
                    status |= 0 if r.ok else 1
                continue
            result = verify_file(log, allow_uncommitted=args.allow_uncommitted_tail,
                                 require_head=not args.no_head)
            print(result.describe(str(log)))
            status |= 0 if result.ok else 1
            problem = repairs_problem(log)
            if problem:
                print(f"{log}: BROKEN: {problem}")
                status = 1
            elif (read_head_file(log) or {}).get("repairs"):
                n = read_head_file(log)["repairs"]
                print(f"{log}: note: a torn last line was cut {n} time(s) by audit repair "
                      f"(see {log}.repairs.jsonl)")
            if args.checkpoints is not None:
                status |= _verify_checkpoints(log, args, keys, tsa_ca)
        if target.is_dir():
            for check in verify_output_dir(target):
                for line in check.describe():
                    print(f"{target}: {line}")
                status |= 0 if check.ok else 1
    return status


def _verify_checkpoints(log: Path, args: argparse.Namespace, keys: Any,
                        tsa_ca: bytes | None) -> int:
    files = [Path(f) for f in args.checkpoints] or [checkpoints_path(log)]
    found: list[dict[str, Any]] = []
    errors: list[str] = []
    for f in files:
        try:
            found += read_checkpoints(f, errors=errors)
        except FileNotFoundError as exc:
            print(f"{log}: BROKEN: checkpoints: {exc}")
            return 1
    for e in errors:
        print(f"{log}: note: {e}")
    report = verify_checkpoints(log, found, keys=keys, tsa_ca=tsa_ca,
                                require_signed=args.require_signed)
    for line in report.lines:
        print(f"{log}: {line}")
    for line in report.problems:
        print(f"{log}: BROKEN: {line}")
    return 0 if report.ok else 1


def _read_arg_file(path: str, flag: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{flag} {path}: {exc.strerror or exc}") from None


def _load_keys(path: str) -> Any:
    try:
        return keys_from_jwks(json.loads(_read_arg_file(path, "--keys")))
    except ValueError as exc:
        raise UsageError(f"--keys {path}: {exc}") from None


def cmd_merge(args: argparse.Namespace) -> int:
    try:
        result = merge_logs(args.logs, args.out)
    except MergeError as exc:
        print(f"polite-crawl: {exc}", file=sys.stderr)
        return 1
    print(result.describe())
    return 0


def cmd_repair(args: argparse.Namespace) -> int:
    path = Path(args.log)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        with RunLock(path):  # never while a run is writing the log
            outcome = repair(path)
    except RunLockError as exc:
        raise UsageError(f"{exc}; not repairing a log in use") from None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None
    print(outcome.message, file=sys.stdout if outcome.status != "broken" else sys.stderr)
    return 1 if outcome.status == "broken" else 0
