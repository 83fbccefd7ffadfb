"""``polite-crawl seed``: cluster mode: push a job's seeds to its Redis start URLs
(``--reset``: a fresh re-crawl; ``--restore``: rebuild the job's Redis state from its output)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from crawler.cli.common import UsageError
from crawler.cluster import defaults as cluster_defaults
from crawler.cluster import require_cluster
from crawler.config.job import load_config


def register(sub: argparse._SubParsersAction) -> None:
    seed = sub.add_parser("seed", help="cluster mode: push a config's seeds to its job's "
                          "Redis start URLs")
    seed.add_argument("config", help="job config (YAML) with cluster: {redis_url: ...}")
    seed_mode = seed.add_mutually_exclusive_group()
    seed_mode.add_argument("--reset", action="store_true",
                           help="first delete the job's queue, duplicate filter and shared "
                                "cache (a fresh re-crawl; refused while a worker is alive)")
    seed_mode.add_argument("--restore", action="store_true",
                           help="rebuild the job's Redis state from its output_dir (the "
                                "workers' audit logs, corpora and spools) after Redis lost it "
                                "or restarted: nothing sent is fetched again; waiting workers "
                                "resume")
    seed.set_defaults(func=cmd_seed)


def cmd_seed(args: argparse.Namespace) -> int:
    require_cluster("seed")  # before the modules that import redis

    # lazy, once require_cluster has passed: connection and worker import redis, the
    # [cluster] extra
    from crawler.cluster.connection import redis_client
    from crawler.cluster.restore import prepare_seed, restore_job
    from crawler.cluster.seeds import push_seeds, reset_job
    from crawler.cluster.worker import _redacted

    path = Path(args.config)
    job = load_config(path)
    if not job.cluster_redis_url:
        raise UsageError(f"{path}: not a cluster job (add cluster: {{redis_url: ...}})")
    if not job.seeds and not args.restore:
        raise UsageError(f"{path}: no seeds to push")
    # restored or reset epochs hold every grant while waiting workers re-register their
    # requests on the wire: a worker TTL by default (each live worker beats thrice in it)
    hold = job.settings.get("POLITE_CLUSTER_RESTORE_HOLD") or job.settings.get(
        "POLITE_CLUSTER_WORKER_TTL") or cluster_defaults.POLITE_CLUSTER_WORKER_TTL
    try:
        hold = float(hold)
    except (TypeError, ValueError):
        raise UsageError(f"{path}: POLITE_CLUSTER_RESTORE_HOLD: {hold!r} is not a number") \
            from None
    client = redis_client(job.cluster_redis_url)
    try:
        if args.restore:
            report = restore_job(client, job, hold=hold)
            print(report.describe())
            return 0
        if args.reset:
            n = reset_job(client, job.job, hold=hold)
            print(f"polite-crawl: job {job.job!r}: {n} Redis keys deleted", file=sys.stderr)
        else:
            prepare_seed(client, job.job, job.output_dir)
        pushed = push_seeds(client, job.job, job.seeds)
    except RuntimeError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot read {exc.filename or job.output_dir}: "
                         f"{exc.strerror or exc}") from None
    except Exception as exc:  # noqa: BLE001 - redis errors: one line, exit 2
        raise UsageError(f"cannot reach Redis at {_redacted(job.cluster_redis_url)}: "
                         f"{exc}") from None
    finally:
        client.close()
    print(f"polite-crawl: job {job.job!r}: {pushed} seeds pushed to polite:{job.job}:start_urls")
    return 0
