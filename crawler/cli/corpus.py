"""``polite-crawl revalidate`` (re-check collected documents; ``--purge`` erases those now
reserved) and ``polite-crawl export`` (the corpus with its provenance as a data set)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from crawler.audit.checkpoint import CheckpointWriter
from crawler.audit.log import verify_file
from crawler.cli.common import NEVER_PAY, UsageError, check_identity, run_crawl
from crawler.config.job import JobConfig, load_config
from crawler.corpus import export as ex
from crawler.corpus import revalidate as rv
from crawler.identity.keys import load_key


def register(sub: argparse._SubParsersAction) -> None:
    reval = sub.add_parser("revalidate", help="re-check collected documents; --purge erases "
                           "those now reserved")
    reval.add_argument("output_dir", metavar="OUTPUT_DIR")
    reval.add_argument("--purge", action="store_true",
                       help="remove them from the corpus and append erase records")
    reval.add_argument("--config", help="config (default: the one recorded in run.json)")
    reval.set_defaults(func=cmd_revalidate)
    export = sub.add_parser("export", help="the corpus with its provenance as a data set "
                            "(Parquet or gzipped JSON lines); documents without proof are "
                            "skipped")
    export.add_argument("output_dir", metavar="OUTPUT_DIR")
    export.add_argument("--format", choices=("parquet", "jsonl.gz"), default=None,
                        help="default: from the name of --out (*.parquet, *.jsonl.gz)")
    export.add_argument("--out", required=True, metavar="PATH",
                        help="the file to write (replaced atomically)")
    export.set_defaults(func=cmd_export)


def cmd_revalidate(args: argparse.Namespace) -> int:
    out = Path(args.output_dir).resolve()
    try:
        found = rv.check_output_dir(out)
    except rv.RevalidateError as exc:
        raise UsageError(str(exc)) from None
    cfg_path = Path(args.config) if args.config else None
    if cfg_path is None:
        infos = [out / "run.json", *sorted(out.glob("run-*.json"))]
        recorded = next((json.loads(i.read_text()).get("config") for i in infos
                         if i.exists()), None)
        if not recorded:
            raise UsageError(f"{out}: no config recorded in run.json; pass --config")
        cfg_path = Path(recorded)
    job = load_config(cfg_path)
    check_identity(job)
    checkpoints = _checkpoints_for(job)
    if args.purge:
        for part in found:
            if part.journal.exists():
                n = rv.purge(part, rv.Outcome(), job=job.job, policy_sha256="",
                             checkpoints=checkpoints)
                print(f"polite-crawl: completed an interrupted purge of {part.corpus.name} "
                      f"({n} erase records)", file=sys.stderr)
    work = out / "revalidate" / "current"
    work.mkdir(parents=True, exist_ok=True)
    urls = rv.pending_urls(found, work)
    if urls:
        with open(work / "urls.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(u) + "\n" for u in urls)
        stats = run_crawl(job, cfg_path, spider="revalidate",
                          urls_file=str(work / "urls.jsonl"),
                          extra_settings={"POLITE_OUTPUT_DIR": str(work), **NEVER_PAY,
                                          "POLITE_EVIDENCE_DIR": str(out / "evidence"),
                                          "POLITE_CORPUS_ENABLED": False, "POLITE_WARC": False,
                                          "CLOSESPIDER_ITEMCOUNT": 0, "DEPTH_LIMIT": 0})
        if not stats.get("finish_reason"):
            return 1
    decided = rv.decisions(work)
    outcomes = []
    for part in found:
        outcome = rv.assess(part, work)
        if args.purge and outcome.reserved:
            policy = decided[outcome.reserved[0]["url"]]["policy_sha256"]
            outcome.erased = rv.purge(part, outcome, job=job.job, policy_sha256=policy,
                                      checkpoints=checkpoints)
        outcomes.append(outcome)
    total = rv.merge_outcomes(outcomes)
    for e in total.reserved:
        why = "; ".join(f"{r['signal']}: {r.get('rule')}" for r in e["reasons"])
        print(f"RESERVED  {e['url']}  ({len(e['documents'])} document(s))  {why}")
    for e in total.undetermined:
        why = "; ".join(str(r.get("rule")) for r in e["reasons"])
        print(f"UNDETERMINED (kept)  {e['url']}  {why}")
    report = rv.write_report(work, total)
    docs = sum(len(e["documents"]) for e in total.reserved)
    print(f"polite-crawl: {docs} documents now reserved, {len(total.undetermined)} URLs "
          f"undetermined (kept), {total.kept} kept; {total.erased} erased; report {report}",
          file=sys.stderr)
    status = 0
    for part in found:
        result = verify_file(part.audit)
        if not result.ok:
            print(result.describe(str(part.audit)), file=sys.stderr)
            status = 1
    return status


def _checkpoints_for(job: JobConfig) -> Any:
    """A function giving the checkpoint writer of an audit log for this job's config (the
    commands that append to a log outside a crawl, e.g. revalidate --purge, sign as a run)."""
    identity = load_key(job.identity_key_file) if job.identity_key_file else None

    def make(log: Path) -> CheckpointWriter:
        return CheckpointWriter(log, job=job.job, identity=identity,
                                every=job.checkpoint_every, tsa_url=job.tsa_url,
                                tsa_timeout=job.tsa_timeout, fsync=job.audit_fsync)
    return make


def cmd_export(args: argparse.Namespace) -> int:
    """Exit 0 (documents without proof skipped and counted), 1 an audit log does not verify
    (nothing written), 2 bad usage or a missing extra."""
    out, dest = Path(args.output_dir), Path(args.out)
    try:
        summary = ex.export(out, dest, args.format)  # a missing extra: MissingExtra, exit 2
    except ex.ProofError as exc:
        print(f"polite-crawl: {exc}", file=sys.stderr)
        return 1
    except ex.ExportError as exc:
        raise UsageError(str(exc)) from None
    print(f"polite-crawl: exported {summary.exported} documents to {dest} "
          f"({ex.format_of(dest, args.format)}); {summary.describe()}", file=sys.stderr)
    return 0
