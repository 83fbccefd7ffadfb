"""``polite-crawl``: the command line.

Exit codes: 0 success, 1 a check failed (e.g. a tampered audit log), 2 bad usage, bad config or
an environment problem (one line naming the key, file or directory at fault, never a
traceback), 3 a run stopped because an output file could not be written (disk full: it resumes
once fixed), 130/143 a run stopped by SIGINT/SIGTERM (it resumes).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crawler import __version__
from crawler.config.job import ConfigError, JobConfig, load_config, parse_config
from crawler.extras import MissingExtra, require

DEFAULT_CONFIG = Path(__file__).parent.parent / "data" / "default-config.yaml"


class UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="polite-crawl",
        description="Collect web content only where rights holders have not reserved it.",
    )
    p.add_argument("--version", action="version", version=f"polite-crawler {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="crawl from a config's seeds; write corpus + audit log")
    run.add_argument("config", help="job config (YAML)")
    run.add_argument("--log-level", default=None, help="Scrapy LOG_LEVEL (default INFO)")
    run.add_argument("--worker", metavar="NAME", default=None,
                     help="cluster mode: run one worker of the job (the config's cluster: "
                          "redis_url); writes audit-NAME.jsonl and corpus-NAME.jsonl")
    run.add_argument("-s", "--set", dest="set", action="append", default=[],
                     metavar="NAME=VALUE",
                     help="a Scrapy or POLITE_* setting, over the config (repeatable; "
                          "Scrapy's -s)")
    run.add_argument("--dry-run", action="store_true",
                     help="print the effective settings, seeds, signals, purpose and policy "
                          "hash; send nothing")

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

    demo = sub.add_parser("demo", help="crawl the bundled local demo web; print a table")
    demo.add_argument("--out", default="out/demo", help="output directory (default out/demo)")
    demo.add_argument("--serve", action="store_true",
                      help="only serve the demo web on its fixed ports until interrupted")
    demo.add_argument("--any-port", action="store_true",
                      help="serve on free ports instead of the fixed 8711-8726")

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

    reval = sub.add_parser("revalidate", help="re-check collected documents; --purge erases "
                           "those now reserved")
    reval.add_argument("output_dir", metavar="OUTPUT_DIR")
    reval.add_argument("--purge", action="store_true",
                       help="remove them from the corpus and append erase records")
    reval.add_argument("--config", help="config (default: the one recorded in run.json)")

    export = sub.add_parser("export", help="the corpus with its provenance as a data set "
                            "(Parquet or gzipped JSON lines); documents without proof are "
                            "skipped")
    export.add_argument("output_dir", metavar="OUTPUT_DIR")
    export.add_argument("--format", choices=("parquet", "jsonl.gz"), default=None,
                        help="default: from the name of --out (*.parquet, *.jsonl.gz)")
    export.add_argument("--out", required=True, metavar="PATH",
                        help="the file to write (replaced atomically)")

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

    ident = sub.add_parser("identity", help="the crawler's signing key (Ed25519)")
    isub = ident.add_subparsers(dest="identity_command", metavar="SUBCOMMAND")
    init = isub.add_parser("init", help="create a new key (mode 0600; never overwrites)")
    init.add_argument("--out", required=True, metavar="PATH", help="the key file to create")
    show = isub.add_parser("show", help="print the public key directory (JWK Set) of a key")
    show.add_argument("key", metavar="PATH", help="a key file made by identity init")
    rotate = isub.add_parser("rotate", help="replace the key with a new one; the old public key "
                             "stays in the key directory for a grace period")
    rotate.add_argument("key", metavar="PATH", help="the key file to rotate (identity.key_file)")
    rotate.add_argument("--grace", type=float, default=7.0, metavar="DAYS",
                        help="days the old key stays published (default 7)")

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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "check":
            return cmd_check(args)
        if args.command == "demo":
            return cmd_demo(args)
        if args.command == "audit" and args.audit_command == "verify":
            return cmd_verify(args)
        if args.command == "audit" and args.audit_command == "merge":
            return cmd_merge(args)
        if args.command == "audit" and args.audit_command == "repair":
            return cmd_repair(args)
        if args.command == "identity" and args.identity_command == "init":
            return cmd_identity_init(args)
        if args.command == "identity" and args.identity_command == "show":
            return cmd_identity_show(args)
        if args.command == "identity" and args.identity_command == "rotate":
            return cmd_identity_rotate(args)
        if args.command == "seed":
            return cmd_seed(args)
        if args.command == "revalidate":
            return cmd_revalidate(args)
        if args.command == "survey":
            return cmd_survey(args)
        if args.command == "report":
            return cmd_transparency(args) if args.transparency else cmd_report(args)
        if args.command == "export":
            return cmd_export(args)
        if args.command == "about":
            return cmd_about(args)
        if args.command == "registry" and args.registry_command == "import":
            return cmd_registry_import(args)
        if args.command == "registry" and args.registry_command == "serve":
            return cmd_registry_serve(args)
        parser.print_help(sys.stderr)
        return 2
    except (ConfigError, UsageError, MissingExtra) as exc:
        print(f"polite-crawl: {exc}", file=sys.stderr)
        return 2


# -- run ------------------------------------------------------------------------------------
#: exit status after a stop signal: 128 + its number (130 SIGINT, 143 SIGTERM)
SIGNAL_EXIT = 128
#: the job stopped because an output file (audit log, corpus) could not be written
OUTPUT_FAILED_EXIT = 3


def run_crawl(job: JobConfig, config_path: Path, *, spider: str = "corpus",
              extra_settings: dict[str, Any] | None = None, on_record: Any = None,
              **spider_kwargs: Any) -> dict[str, Any]:
    """Run one crawl in this process (the Twisted reactor runs once per process).

    Returns the crawl's stats; ``stats["polite-crawl/signal"]`` is the number of the first
    SIGINT/SIGTERM received (Scrapy's handling stands: the first one shuts the crawl down
    gracefully, a second one stops it at once). A run that cannot start because of its
    environment (another run holds the output_dir, an audit log that cannot be continued, a
    directory that cannot be written) raises :class:`UsageError` with one line.
    """
    from scrapy.crawler import CrawlerProcess
    from scrapy.settings import Settings

    from crawler.audit.log import AuditLogError
    from crawler.audit.runlock import RunLockError
    from crawler.spiders.check import CheckSpider
    from crawler.spiders.corpus import CorpusSpider

    received: list[int] = []

    class Process(CrawlerProcess):
        # observe Scrapy's shutdown handlers (installed once the reactor runs)
        def _signal_shutdown(self, signum: int, frame: Any) -> None:
            received.append(signum)
            super()._signal_shutdown(signum, frame)

        def _signal_kill(self, signum: int, frame: Any) -> None:
            received.append(signum)
            super()._signal_kill(signum, frame)

    settings = Settings()
    settings.setmodule("crawler.settings", priority="project")
    if extra_settings:
        settings.setdict(extra_settings, priority="cmdline")
    process = Process(settings)
    from crawler.spiders.revalidate import RevalidateSpider
    from crawler.spiders.survey import SurveySpider

    cls = {"check": CheckSpider, "survey": SurveySpider,
           "revalidate": RevalidateSpider}.get(spider, CorpusSpider)
    crawler = process.create_crawler(cls)
    if on_record is not None:
        # every committed record, in order, as the decision_recorded signal gives it (a direct
        # listener of the funnel: pydispatch's dispatch cost ~7 us a record); an on_record
        # with two parameters is given the record's line as written too
        import inspect

        wants_line = len(inspect.signature(on_record).parameters) >= 2
        crawler.polite_record_listeners = [
            on_record if wants_line else (lambda record, line: on_record(record))]
    refused: list[BaseException] = []

    def environment_problem(failure: Any) -> Any:
        # raised while the crawler builds its extensions (PoliteRuntime): one line, exit 2
        if failure.check(RunLockError, AuditLogError, OSError, MissingExtra):
            refused.append(failure.value)
            return None
        return failure

    process.crawl(crawler, config=str(config_path), **spider_kwargs).addErrback(
        environment_problem)
    process.start()
    if refused:
        exc = refused[0]
        if isinstance(exc, OSError) and not isinstance(exc, RunLockError):
            where = f"{exc.filename}: " if exc.filename else ""
            raise UsageError(f"cannot start the crawl: {where}{exc.strerror or exc}")
        raise UsageError(str(exc))
    stats = dict(crawler.stats.get_stats()) if crawler.stats else {}
    if received:
        stats["polite-crawl/signal"] = received[0]
    elif not stats.get("finish_reason"):
        print("polite-crawl: the crawl did not run to its end (see the log above)",
              file=sys.stderr)
    return stats


def _audit_name(job: JobConfig, worker: str | None) -> str:
    if worker:
        return f"audit-{worker}.jsonl"
    from crawler.crawl import defaults
    return str(job.settings.get("POLITE_AUDIT_FILE") or defaults.POLITE_AUDIT_FILE)


def check_output_dir(out: Path, audit_name: str) -> None:
    """Before Scrapy starts: can this run use ``out``? Raises UsageError (one line) when not:
    not a directory, cannot be created or written, held by another run, or its audit log
    cannot be continued."""
    import os

    from crawler.audit.repair import diagnose
    from crawler.audit.runlock import RunLock, RunLockError

    if out.exists() and not out.is_dir():
        raise UsageError(f"output_dir {out} is a file, not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        what = "a parent of it is a file" if isinstance(exc, (NotADirectoryError,
                                                                FileExistsError)) else \
            (exc.strerror or str(exc))
        raise UsageError(f"cannot create output_dir {out}: {what}") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".polite-write-probe-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"output_dir {out} is not writable ({exc.strerror or exc}); fix its "
                         "permissions or choose another output_dir") from None
    audit = out / audit_name
    try:
        RunLock(audit).acquire().release()
    except RunLockError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot lock {audit}.lock: {exc.strerror or exc}") from None
    if audit.exists() and (audit.is_dir() or audit.stat().st_size):
        try:
            found = diagnose(audit)
        except OSError as exc:
            raise UsageError(f"cannot read the audit log {audit}: {exc.strerror or exc}") \
                from None
        if found.ok or (found.tail is not None and not found.tail.data.endswith(b"\n")):
            return  # (a last line cut short without its newline is dropped by the writer)
        broken = found.result.describe(str(audit))
        if found.tail is not None:
            raise UsageError(f"cannot continue the audit log: {broken}; only its last line is "
                             f"torn: 'polite-crawl audit repair {audit}' cuts it (and records "
                             "the cut), then run the job again")
        raise UsageError(f"cannot continue the audit log: {broken}; its verified history will "
                         "not be extended or rewritten: keep it as evidence and give the job a "
                         "new output_dir")


def cmd_run(args: argparse.Namespace) -> int:
    import signal

    path = Path(args.config)
    job = load_config(path)
    overrides = setting_overrides(args.set)
    if args.log_level:
        overrides.setdefault("LOG_LEVEL", args.log_level)
    if "%(" in overrides.get("POLITE_OUTPUT_DIR", ""):
        raise UsageError("-s POLITE_OUTPUT_DIR: %(...)s placeholders are for a Scrapy "
                         "project's setting; a job names its directory")
    effective = effective_settings(job, path, overrides)  # validated: a bad value exits 2
    if overrides.get("POLITE_OUTPUT_DIR") is not None:
        import dataclasses

        job = dataclasses.replace(job, output_dir=Path(str(effective.get("POLITE_OUTPUT_DIR"))))
    if args.dry_run:
        print_dry_run(job, path, effective, overrides)
        return 0
    extra = overrides or None
    kwargs: dict[str, Any] = {}
    if job.cluster_redis_url:
        from crawler.cluster import require_cluster

        require_cluster("a cluster: job")
    if args.worker is not None:
        if not job.cluster_redis_url:
            raise UsageError(f"{path}: --worker needs a cluster job (cluster: {{redis_url: ...}})")
        from crawler.cluster.keys import check_name
        from crawler.cluster.worker import check_name_free

        try:
            kwargs["worker"] = check_name(args.worker, "--worker")
            # before anything is opened: a live worker of that name (any machine) -> exit 2
            check_name_free(job.cluster_redis_url, job.job, args.worker)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    elif job.cluster_redis_url:
        raise UsageError(f"{path} is a cluster job: start each worker with --worker NAME "
                         "(and push the seeds once with polite-crawl seed)")
    check_output_dir(job.output_dir, _audit_name(job, args.worker))
    check_identity(job)
    stats = run_crawl(job, path, extra_settings=extra, **kwargs)
    _summary(job, stats, worker=args.worker)
    failed = stats.get("polite/output/write_failed")
    if failed:
        print(f"polite-crawl: stopped: {failed}. Nothing was sent without its record; fix it "
              "(e.g. free space) and run the same command again to resume the job",
              file=sys.stderr)
        return OUTPUT_FAILED_EXIT
    signum = stats.get("polite-crawl/signal")
    if signum:
        resumes = ("the next run of this job resumes"
                   if effective.getbool("POLITE_RESUME", True)
                   else "POLITE_RESUME is off: the next run starts afresh")
        print(f"polite-crawl: interrupted by {signal.Signals(signum).name}; {resumes}",
              file=sys.stderr)
        return SIGNAL_EXIT + int(signum)
    return 0 if stats.get("finish_reason") else 1


#: ``POLITE_*`` settings read by the code but without a value in crawler/crawl/defaults.py
_OTHER_POLITE_SETTINGS = frozenset({
    "POLITE_ENABLED", "POLITE_CORPUS_ENABLED", "POLITE_REGISTRIES", "POLITE_WARC_FILE",
    "POLITE_CONFIG_PATH", "POLITE_CHECK_IN_PLACE", "POLITE_CLUSTER_SECRET",
    "POLITE_CLUSTER_SECRET_ENV", "POLITE_CLUSTER_SPOOL_FILE", "POLITE_CLUSTER_REDIS_URL"})


def _polite_defaults() -> dict[str, Any]:
    from crawler.crawl import defaults
    out = {n: v for n, v in vars(defaults).items() if n.startswith("POLITE_")}
    try:
        from crawler.cluster import defaults as cluster_defaults
    except ImportError:  # the cluster extra is not installed
        pass
    else:
        out.update({n: v for n, v in vars(cluster_defaults).items()
                    if n.startswith("POLITE_")})
    return out


def setting_overrides(pairs: Sequence[str]) -> dict[str, str]:
    """``-s NAME=VALUE`` arguments, in order (a later one wins), as Scrapy's ``crawl -s``
    takes them: the value is a string, converted where the setting is read (``getbool``,
    ``getint``, ``getlist`` splits on commas, ``getdict`` reads JSON)."""
    import re

    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep:
            raise UsageError(f"-s {pair}: expected NAME=VALUE")
        if not re.match(r"^[A-Z][A-Z0-9_]*$", name):
            raise UsageError(f"-s {name}: Scrapy setting names are UPPER_CASE")
        if name in ("USER_AGENT", "ROBOTSTXT_OBEY"):
            raise UsageError(f"-s {name}: set by polite-crawler itself; use user_agent "
                             "(or -s POLITE_USER_AGENT=...)")
        if name.startswith("POLITE_") and name not in _polite_defaults() \
                and name not in _OTHER_POLITE_SETTINGS:
            raise UsageError(f"-s {name}: unknown polite-crawler setting (see "
                             "crawler/crawl/defaults.py)")
        out[name] = value
    return out


def effective_settings(job: JobConfig, path: Path, overrides: dict[str, str]) -> Any:
    """The Scrapy settings the job would run with: ours (crawler/settings.py), the ``-s``
    overrides (Scrapy's ``cmdline`` priority, above the config's), and what the corpus spider
    and the add-on set from the config (their own ``from_crawler`` and ``update_settings``,
    run on a crawler that is never started); validated as the crawl validates them. Raises
    UsageError naming the setting."""
    from types import SimpleNamespace

    from scrapy.crawler import Crawler
    from scrapy.settings import Settings

    from crawler.crawl.addon import Addon
    from crawler.config.job import number_problem
    from crawler.crawl.runtime import _scope_config, policy_from_settings
    from crawler.corpus.sitemaps import sitemap_limits
    from crawler.spiders.corpus import CorpusSpider

    base = Settings()
    base.setmodule("crawler.settings", priority="project")
    base.setdict(overrides, priority="cmdline")
    probe = Crawler(CorpusSpider, base)
    try:
        CorpusSpider.from_crawler(probe, config=str(path))
    except ValueError as exc:  # a setting the spider refuses (e.g. POLITE_TEXT): one line
        raise UsageError(str(exc)) from None
    Addon().update_settings(probe.settings)
    settings = probe.settings
    known = _polite_defaults()
    for name, value in overrides.items():
        problem = number_problem(name, value)
        if problem:
            raise UsageError(f"-s {name}: {problem}")
        default = known.get(name)
        try:
            if isinstance(default, bool):
                settings.getbool(name)
            elif isinstance(default, int):
                settings.getint(name)
            elif isinstance(default, float):
                settings.getfloat(name)
            elif isinstance(default, list):
                settings.getlist(name)
        except ValueError:
            kind = {bool: "true/false", int: "a whole number", float: "a number",
                    list: "a comma-separated list"}[type(default)]
            raise UsageError(f"-s {name}: {value!r} is not {kind}") from None
    if "POLITE_SCOPE" in overrides:
        try:
            settings.getdict("POLITE_SCOPE")
        except ValueError as exc:
            raise UsageError(f"-s POLITE_SCOPE: not a JSON mapping ({exc})") from None
    crawler = SimpleNamespace(settings=settings)
    try:
        policy_from_settings(crawler)
        _scope_config(crawler)
        sitemap_limits(settings.get("POLITE_SITEMAPS"))
    except ValueError as exc:
        msg = str(exc).removeprefix("polite-crawler refuses to start: ")
        raise UsageError(msg) from None
    return settings


def print_dry_run(job: JobConfig, path: Path, settings: Any, overrides: dict[str, str]) -> None:
    """``run --dry-run``: what the job would run with. Nothing is sent, nothing written."""
    from types import SimpleNamespace

    from crawler.crawl import defaults
    from crawler.policy.reservation import SWITCHABLE_SIGNALS
    from crawler.crawl.runtime import _scope_config, policy_from_settings
    from crawler.corpus.sitemaps import sitemap_limits

    crawler = SimpleNamespace(settings=settings)
    policy, _pay = policy_from_settings(crawler)
    scope = _scope_config(crawler)
    limits = sitemap_limits(settings.get("POLITE_SITEMAPS"))

    def shown(value: Any) -> str:
        if hasattr(value, "copy_to_dict"):
            value = value.copy_to_dict()
        try:
            return json.dumps(value, sort_keys=True, default=str)
        except (TypeError, ValueError):
            return repr(value)

    out = sys.stdout
    print(f"polite-crawl: dry run of {path}: nothing is sent", file=out)
    print(f"job: {job.job}", file=out)
    print(f"purpose: {policy.purpose}", file=out)
    print(f"policy_sha256: {policy.sha256}", file=out)
    print(f"user_agent: {policy.user_agent}", file=out)
    print("signals: " + ", ".join(f"{n} {'on' if n in policy.signals else 'off'}"
                                  for n in SWITCHABLE_SIGNALS), file=out)
    print(f"seeds ({len(job.seeds)}):", file=out)
    for url in job.seeds:
        ok, why = True, ""
        if scope.include or scope.exclude:
            from crawler.policy.scope import Scope

            ok, why = Scope(scope).decide(url)
        print(f"  {url}" + ("" if ok else f"  (outside scope: {why})"), file=out)
    print(f"scope: {shown(scope.as_dict())}", file=out)
    print("sitemaps: " + ("off" if limits is None else shown(
        {"max_depth": limits.max_depth, "max_files_per_origin": limits.max_files,
         "max_urls_per_origin": limits.max_urls,
         "max_bytes_per_origin": limits.max_bytes})), file=out)
    print(f"output_dir: {settings.get('POLITE_OUTPUT_DIR')}", file=out)
    print("settings (-s: from the command line):", file=out)
    scrapy_names = set(defaults.SCRAPY_DEFAULTS) | set(job.settings) | set(overrides) | {
        "USER_AGENT", "CLOSESPIDER_ITEMCOUNT", "DEPTH_LIMIT"}
    names = sorted(n for n in (set(_polite_defaults()) | {n for n in scrapy_names
                                                          if n in settings}
                               | {n for n in settings if str(n).startswith("POLITE_")})
                   if job.cluster_redis_url or not n.startswith("POLITE_CLUSTER_")
                   or n in overrides)
    for name in names:
        value = settings.get(name, _polite_defaults().get(name))
        mark = "  (-s)" if name in overrides else ""
        print(f"  {name} = {shown(value)}{mark}", file=out)


def _count(n: int, noun: str, plural: str | None = None) -> str:
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def _corpus_lines(path: Path) -> int:
    try:
        with open(path, "rb") as fh:
            return sum(1 for line in fh if line.endswith(b"\n"))
    except OSError:
        return 0


def _summary(job: JobConfig, stats: dict[str, Any], worker: str | None = None) -> None:
    out = job.output_dir
    audit, corpus = ((f"audit-{worker}.jsonl", f"corpus-{worker}.jsonl") if worker
                     else ("audit.jsonl", "corpus.jsonl"))
    new = int(stats.get("polite/corpus/documents", 0) or 0)
    print(
        f"polite-crawl: job {job.job!r}: {stats.get('polite/decision/allow', 0)} allowed, "
        f"{stats.get('polite/decision/deny', 0)} denied; "
        f"{_count(new, 'new document')} this run, {_corpus_lines(out / corpus)} in "
        f"{out / corpus}; audit log {out / audit}",
        file=sys.stderr,
    )
    if stats.get("polite/payment/spent") is not None:
        charges = _count(int(stats.get("polite/payment/charged", 0)), "page")
        print(f"polite-crawl: pay per crawl: {charges} paid for this run; "
              f"{stats['polite/payment/spent']} spent by the job so far (budget "
              f"{(job.payment or {}).get('budget', '?')})", file=sys.stderr)
    undecided = undecided_urls(out / audit)
    if undecided:
        print(f"polite-crawl: {_count(len(undecided), 'URL')} left undecided (a reservation "
              "could not be determined; not fetched):", file=sys.stderr)
        for url, why in list(undecided.items())[:20]:
            print(f"  {url}  ({why})", file=sys.stderr)
        if len(undecided) > 20:
            print(f"  ... and {len(undecided) - 20} more (audit records with "
                  '"undecided": {"final": true})', file=sys.stderr)


def undecided_urls(audit_path: Path) -> dict[str, str]:
    """URLs whose last decision was a final 'undecided' refusal, with the reason (each URL
    once, however often it was refused while its reservation could not be determined).

    A later allow, or a later refusal that was decided (a reservation found), takes the URL
    off the list; records of other kinds (``send``, ``result``, ...) and unreadable lines (a
    torn last line) are ignored.
    """
    out: dict[str, str] = {}
    if not audit_path.exists():
        return out
    with open(audit_path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if not isinstance(rec, dict) or not isinstance(rec.get("url"), str):
                continue
            decision, url = rec.get("decision"), rec["url"]
            und = rec.get("undecided")
            if decision == "deny" and isinstance(und, dict):
                if und.get("final"):
                    reasons = rec.get("reasons") or [{}]
                    out[url] = str(reasons[0].get("rule", "")) if isinstance(
                        reasons[0], dict) else ""
            elif decision in ("allow", "deny", "erase"):
                out.pop(url, None)
    return out


# -- check ----------------------------------------------------------------------------------
#: ``check`` decides, it never collects, and ``revalidate`` re-checks what was collected: neither
#: ever pays (a 402 stays a refusal, as with no ``payment:`` in the config)
_NEVER_PAY = {"POLITE_PAYMENT_MAX_PRICE": None, "POLITE_PAYMENT_BUDGET": None,
              "POLITE_PAYMENT_PER_ORIGIN_BUDGET": None}


def cmd_check(args: argparse.Namespace) -> int:
    from urllib.parse import urlsplit

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
                                  **_NEVER_PAY,
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
    from collections import Counter
    from urllib.parse import urlsplit

    from crawler.crawl.middlewares import plain_url

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
                              extra_settings={"POLITE_OUTPUT_DIR": tmp, **_NEVER_PAY,
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


# -- demo -----------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    from crawler.demo.sites import (
        DEMO_PAYMENT,
        DEMO_PORTS,
        DEMO_SIGNATURE_AGENT,
        DEMO_TOKEN,
        demo_sites,
    )
    from crawler.demo.web import LocalWeb
    from crawler.demo.webbotauth import WebBotAuthVerifier
    from crawler.identity.keys import generate_key, jwks, load_key

    out = Path(args.out).resolve()
    # the demo signs its requests and its audit checkpoints with a key of its own, kept
    # beside (not in) the output directory; its sites that check signatures know its directory
    key = out.parent / f"{out.name}-identity.pem"
    if not key.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        generate_key(key)
    verifier = WebBotAuthVerifier(DEMO_SIGNATURE_AGENT, jwks([load_key(key).jwk]))
    ports = None if args.any_port else DEMO_PORTS
    web = LocalWeb(demo_sites(verifier.verify), ports=ports)
    try:
        web.start()
    except OSError as exc:
        raise UsageError(f"cannot serve the demo web on ports {min(DEMO_PORTS.values())}-"
                         f"{max(DEMO_PORTS.values())} ({exc}); try --any-port") from None
    try:
        if args.serve:
            return _serve_forever(web)
        if (out / "audit.jsonl").exists():
            for name in ("audit.jsonl", "audit.jsonl.head", "corpus.jsonl", "run.json",
                         "audit.checkpoints.jsonl"):
                (out / name).unlink(missing_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        cfg = demo_config(web, out, DEMO_TOKEN)
        cfg["identity"] = {"key_file": str(key), "signature_agent": DEMO_SIGNATURE_AGENT}
        # one site charges per page: the demo pays within a small budget (signed requests)
        cfg["payment"] = dict(DEMO_PAYMENT)
        cfg_path = out / "demo-config.yaml"
        import yaml

        cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
        job = parse_config(cfg, path=cfg_path)
        print(f"Demo web: {len(web.sites)} sites on 127.0.0.1 ports "
              f"{min(web.ports.values())}-{max(web.ports.values())}; crawling as "
              f"{DEMO_TOKEN} (honouring GPTBot groups too)...", file=sys.stderr)
        stats = run_crawl(job, cfg_path, extra_settings={"LOG_LEVEL": "WARNING"})
    finally:
        web.stop()
    print_decision_table(out / "audit.jsonl", web)
    _summary(job, stats)
    return _demo_verify(out, key)


def _demo_verify(out: Path, key: Path) -> int:
    """What `audit verify OUTPUT_DIR --checkpoints --keys` says of the demo's output."""
    from crawler.audit.checkpoint import checkpoints_path, read_checkpoints, verify_checkpoints
    from crawler.audit.log import verify_file
    from crawler.audit.outputs import verify_output_dir
    from crawler.identity.keys import load_key

    log = out / "audit.jsonl"
    result = verify_file(log)
    print(result.describe(str(log)))
    ok = result.ok
    for check in verify_output_dir(out):
        for line in check.describe():
            print(f"{out}: {line}")
        ok = ok and check.ok
    ident = load_key(key)
    report = verify_checkpoints(log, read_checkpoints(checkpoints_path(log)),
                                keys={ident.keyid: ident.public_key}, require_signed=True)
    for line in [*report.lines, *report.problems]:
        print(f"{log.name}: {line}")
    return 0 if ok and report.ok else 1


def demo_config(web: Any, out: Path, token: str) -> dict[str, Any]:
    return {
        "job": "demo",
        "user_agent": f"{token}/1.0 (+https://github.com/polite-crawler/polite-crawler)",
        "seeds": [web.origin(name) + "/" for name in web.sites],
        "max_pages": 100,
        "purpose": "train-ai",
        "honor_agents": ["GPTBot"],
        "allow_private_networks": True,
        "output_dir": str(out),
        "settings": {"DOWNLOAD_DELAY": 0.05, "AUTOTHROTTLE_ENABLED": False,
                     "POLITE_SITE_RETRY_BACKOFF": 1.0},
    }


def _serve_forever(web: Any) -> int:
    import time

    for name, site in web.sites.items():
        print(f"{web.origin(name)}/  {name}: {site.description}")
    print("Serving the demo web; Ctrl-C to stop.", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0


def print_decision_table(audit_path: Path, web: Any = None) -> None:
    """One row per decision, grouped by site (demo order), then in decision order."""
    names = {web.origin(n): n for n in web.sites} if web is not None else {}
    order = {n: i for i, n in enumerate(names.values())}
    rows = []
    for line in audit_path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec["decision"] not in ("allow", "deny", "erase"):
            continue  # write-ahead send/result records: the table shows decisions
        url = rec["url"]
        site = next((n for o, n in names.items() if url.startswith(o + "/")), "")
        path = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else url
        if rec["decision"] == "deny":
            reasons = rec.get("reasons") or []
            signal = ",".join(sorted({r["signal"] for r in reasons}))
            evidence = "; ".join(_evidence_text(r) for r in reasons)
            undecided = rec.get("undecided")
            if undecided:
                evidence += (" [final]" if undecided.get("final") else
                             f" [asked again in {undecided.get('retry_after_s')} s]")
        else:
            signal = "-"
            evidence = "; ".join(_evidence_text(c) for c in rec.get("checks", [])
                                 if c.get("outcome") != "unset") or "no reservation found"
            if rec.get("charged"):  # a page paid for (pay per crawl)
                evidence = f"paid: crawler-charged {rec['charged']}; {evidence}"
        rows.append((order.get(site, len(order)), rec["seq"], site, path, rec["decision"],
                     signal, evidence))
    rows.sort()
    cells = [r[2:] for r in rows]
    header = ("SITE", "PATH", "DECISION", "SIGNAL", "EVIDENCE")
    widths = [max([len(c[i]) for c in cells] + [len(header[i])]) for i in range(4)]
    fmt = "  ".join(f"{{:{w}}}" for w in widths) + "  {}"
    print(fmt.format(*header))
    for c in cells:
        ev = c[4] if len(c[4]) <= 100 else c[4][:97] + "..."
        print(fmt.format(*c[:4], ev))


def _evidence_text(ev: dict[str, Any]) -> str:
    where = ev.get("channel", "")
    agent = ev.get("agent")
    if ev.get("signal") == "robots" and agent:
        where += f" [{agent}]"
    rule = " | ".join(str(ev.get("rule", "")).splitlines())
    return f"{ev.get('signal')} {where}: {rule}"


# -- audit verify ---------------------------------------------------------------------------
def cmd_verify(args: argparse.Namespace) -> int:
    from crawler.audit.log import read_head_file, verify_file
    from crawler.audit.outputs import find_logs, verify_output_dir
    from crawler.audit.repair import repairs_problem
    from crawler.cluster.audit import is_report, verify_report

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
    from crawler.audit.checkpoint import checkpoints_path, read_checkpoints, verify_checkpoints

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
    from crawler.identity.keys import keys_from_jwks

    try:
        return keys_from_jwks(json.loads(_read_arg_file(path, "--keys")))
    except ValueError as exc:
        raise UsageError(f"--keys {path}: {exc}") from None


# -- identity ---------------------------------------------------------------------------------
def cmd_identity_init(args: argparse.Namespace) -> int:
    from crawler.identity.keys import IdentityError, generate_key

    try:
        ident = generate_key(args.out)
    except IdentityError as exc:
        raise UsageError(str(exc)) from None
    print(f"polite-crawl: key {ident.keyid} written to {args.out} (mode 0600); name it in the "
          f"job config as identity: {{key_file: {args.out}}} and keep it private")
    return 0


def cmd_identity_show(args: argparse.Namespace) -> int:
    from crawler.identity.keys import IdentityError, jwks, load_key

    try:
        ident = load_key(args.key)
    except IdentityError as exc:
        raise UsageError(str(exc)) from None
    print(json.dumps(jwks([ident.jwk]), indent=2, sort_keys=True))
    return 0


def cmd_identity_rotate(args: argparse.Namespace) -> int:
    import time

    from crawler.identity.keys import IdentityError, retired_keys_path, rotate_key

    if not args.grace >= 0:
        raise UsageError("--grace: a number of days >= 0")
    try:
        new, old = rotate_key(args.key, now=time.time(), grace=args.grace * 86400)
    except IdentityError as exc:
        raise UsageError(str(exc)) from None
    print(f"polite-crawl: key {new.keyid} now in {args.key}; {old} retired (listed in "
          f"{retired_keys_path(args.key)}, published {args.grace:g} more days; its private "
          f"key moved to {args.key}.retired-{old}: destroy it when nothing needs it). Run "
          "polite-crawl about to publish the new directory")
    return 0


def _checkpoints_for(job: JobConfig) -> Any:
    """A function giving the checkpoint writer of an audit log for this job's config (the
    commands that append to a log outside a crawl, e.g. revalidate --purge, sign as a run)."""
    from crawler.audit.checkpoint import CheckpointWriter
    from crawler.identity.keys import load_key

    identity = load_key(job.identity_key_file) if job.identity_key_file else None

    def make(log: Path) -> CheckpointWriter:
        return CheckpointWriter(log, job=job.job, identity=identity,
                                every=job.checkpoint_every, tsa_url=job.tsa_url,
                                tsa_timeout=job.tsa_timeout, fsync=job.audit_fsync)
    return make


def check_identity(job: JobConfig) -> None:
    """Before Scrapy starts: the configured signing key can be used (one line otherwise)."""
    if job.identity_key_file is None:
        return
    from crawler.identity.keys import IdentityError, load_key

    try:
        load_key(job.identity_key_file)
    except IdentityError as exc:
        raise UsageError(f"identity.key_file: {exc}") from None


def cmd_repair(args: argparse.Namespace) -> int:
    from crawler.audit.repair import repair

    path = Path(args.log)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    from crawler.audit.runlock import RunLock, RunLockError

    try:
        with RunLock(path):  # never while a run is writing the log
            outcome = repair(path)
    except RunLockError as exc:
        raise UsageError(f"{exc}; not repairing a log in use") from None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None
    print(outcome.message, file=sys.stdout if outcome.status != "broken" else sys.stderr)
    return 1 if outcome.status == "broken" else 0


def cmd_merge(args: argparse.Namespace) -> int:
    from crawler.cluster.audit import MergeError, merge_logs

    try:
        result = merge_logs(args.logs, args.out)
    except MergeError as exc:
        print(f"polite-crawl: {exc}", file=sys.stderr)
        return 1
    print(result.describe())
    return 0


# -- seed (cluster mode) -------------------------------------------------------------------
def cmd_seed(args: argparse.Namespace) -> int:
    from crawler.cluster import require_cluster

    require_cluster("seed")  # before the modules that import redis

    from crawler.cluster import defaults as cluster_defaults
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


# -- registry -------------------------------------------------------------------------------
def cmd_registry_import(args: argparse.Namespace) -> int:
    from crawler.registry.lists import import_list

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
    from crawler.registry.server import serve

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


# -- survey / report -------------------------------------------------------------------------
def cmd_survey(args: argparse.Namespace) -> int:
    from crawler.survey.analysis import parse_wave_date, survey_from_dir, survey_from_warc

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
    from datetime import datetime, timezone

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


def cmd_report(args: argparse.Namespace) -> int:
    from crawler.publish.report import ReportError, build_report

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


# -- revalidate -------------------------------------------------------------------------------
def cmd_export(args: argparse.Namespace) -> int:
    """Exit 0 (documents without proof skipped and counted), 1 an audit log does not verify
    (nothing written), 2 bad usage or a missing extra."""
    from crawler.corpus import export as ex
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


def cmd_revalidate(args: argparse.Namespace) -> int:
    from crawler.corpus import revalidate as rv
    from crawler.audit.log import verify_file

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
                          extra_settings={"POLITE_OUTPUT_DIR": str(work), **_NEVER_PAY,
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


# -- transparency / about ---------------------------------------------------------------------
def cmd_transparency(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from crawler.publish.transparency import build_transparency, output_files

    dirs = [Path(p) for p in args.inputs]
    for d in dirs:
        if not output_files(d)[0]:
            raise UsageError(f"{d}: not a crawl output directory (no audit log)")
    build_transparency(dirs, Path(args.out), top_share=0.10, sme=args.sme,
                       now=datetime.now(timezone.utc))
    print(f"polite-crawl: {Path(args.out) / 'transparency.md'}, transparency.html and "
          "transparency.json written")
    return 0


def cmd_about(args: argparse.Namespace) -> int:
    from crawler.publish.about import AboutError, build_about

    from crawler.audit.checkpoint import read_checkpoints
    from crawler.identity.keys import JWKS_PATH, IdentityError

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
        import time

        from crawler.identity.keys import published_keys
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
    from crawler.identity.keys import IdentityError, load_key, read_retired

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
    import signal
    import threading
    from urllib.parse import urlsplit

    from crawler.publish.about import serve_about

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
