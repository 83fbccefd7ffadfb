"""``polite-crawl run``: crawl from a job config's seeds (``--dry-run``: show what it would run
with; ``--worker``: one worker of a cluster job), then a summary of what the run did."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from crawler.audit.repair import diagnose
from crawler.audit.runlock import RunLock, RunLockError
from crawler.cli.common import UsageError, check_identity, run_crawl
from crawler.cluster import require_cluster
from crawler.cluster.keys import check_name
from crawler.config import table
from crawler.config.job import JobConfig, load_config, number_problem
from crawler.corpus.sitemaps import sitemap_limits
from crawler.crawl import defaults
from crawler.crawl.addon import Addon
from crawler.policy.reservation import SWITCHABLE_SIGNALS
from crawler.policy.scope import Scope

#: exit status after a stop signal: 128 + its number (130 SIGINT, 143 SIGTERM)
SIGNAL_EXIT = 128
#: the job stopped because an output file (audit log, corpus) could not be written
OUTPUT_FAILED_EXIT = 3


def register(sub: argparse._SubParsersAction) -> None:
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
    run.set_defaults(func=cmd_run)


def _audit_name(job: JobConfig, worker: str | None) -> str:
    if worker:
        return f"audit-{worker}.jsonl"
    return str(job.settings.get("POLITE_AUDIT_FILE") or defaults.POLITE_AUDIT_FILE)


def check_output_dir(out: Path, audit_name: str) -> None:
    """Before Scrapy starts: can this run use ``out``? Raises UsageError (one line) when not:
    not a directory, cannot be created or written, held by another run, or its audit log
    cannot be continued."""
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
        job = dataclasses.replace(job, output_dir=Path(str(effective.get("POLITE_OUTPUT_DIR"))))
    if args.dry_run:
        print_dry_run(job, path, effective, overrides)
        return 0
    extra = overrides or None
    kwargs: dict[str, Any] = {}
    if job.cluster_redis_url:
        require_cluster("a cluster: job")
    if args.worker is not None:
        if not job.cluster_redis_url:
            raise UsageError(f"{path}: --worker needs a cluster job (cluster: {{redis_url: ...}})")
        # lazy: crawler.cluster.worker needs redis, the [cluster] extra
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
    print_summary(job, stats, worker=args.worker)
    failed = stats.get("polite/output/write_failed")
    if failed:
        print(f"polite-crawl: stopped: {failed}. Nothing was sent without its record; fix it "
              "(e.g. free space) and run the same command again to resume the job",
              file=sys.stderr)
        return OUTPUT_FAILED_EXIT
    signum = stats.get("polite-crawl/signal")
    if signum:
        resumes = ("the next run of this job resumes"
                   if effective.getbool("POLITE_RESUME", _polite_defaults()["POLITE_RESUME"])
                   else "POLITE_RESUME is off: the next run starts afresh")
        print(f"polite-crawl: interrupted by {signal.Signals(signum).name}; {resumes}",
              file=sys.stderr)
        return SIGNAL_EXIT + int(signum)
    return 0 if stats.get("finish_reason") else 1


#: ``POLITE_*`` names ``-s`` takes besides the settings table's (environment variables the
#: code reads by these names; harmless as settings)
_OTHER_POLITE_SETTINGS = frozenset({"POLITE_CLUSTER_SECRET"})


def _polite_defaults() -> dict[str, Any]:
    """Every ``POLITE_*`` setting and its default: the settings table's."""
    return table.defaults()


def setting_overrides(pairs: Sequence[str]) -> dict[str, str]:
    """``-s NAME=VALUE`` arguments, in order (a later one wins), as Scrapy's ``crawl -s``
    takes them: the value is a string, converted where the setting is read (``getbool``,
    ``getint``, ``getlist`` splits on commas, ``getdict`` reads JSON)."""
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
            raise UsageError(f"-s {name}: unknown polite-crawler setting (see the README's "
                             "settings table, crawler/config/table.py)")
        out[name] = value
    return out


def effective_settings(job: JobConfig, path: Path, overrides: dict[str, str]) -> Any:
    """The Scrapy settings the job would run with: ours (crawler/settings.py), the ``-s``
    overrides (Scrapy's ``cmdline`` priority, above the config's), and what the corpus spider
    and the add-on set from the config (their own ``from_crawler`` and ``update_settings``,
    run on a crawler that is never started); validated as the crawl validates them. Raises
    UsageError naming the setting."""
    # lazy: Scrapy and Twisted (and our modules that import them) take ~0.5 s to load
    from scrapy.crawler import Crawler
    from scrapy.settings import Settings

    from crawler.crawl.runtime import _scope_config, policy_from_settings
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
    # lazy: crawler.crawl.runtime imports Scrapy (~0.5 s to load)
    from crawler.crawl.runtime import _scope_config, policy_from_settings

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


def print_summary(job: JobConfig, stats: dict[str, Any], worker: str | None = None) -> None:
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


