"""Per-crawl state shared by the middlewares and pipelines, as a Scrapy extension.

:class:`PoliteRuntime` validates the ``POLITE_*`` settings once into a frozen
:class:`~crawler.policy.reservation.Policy`, opens the audit log and builds the decision funnel,
the per-origin file cache and the registries. It owns that state; the components do not
reach into it: each takes the pieces it uses (policy, funnel, site cache, ...) as constructor
arguments, and its ``from_crawler`` finds the runtime with :func:`get_runtime` (the one way
to find it) and passes them.

The parts that have a cluster variant are chosen by settings holding class paths (Scrapy's
``ROBOTSTXT_PARSER`` pattern), loaded with :func:`scrapy.utils.misc.load_object` and built with
:func:`scrapy.utils.misc.build_from_crawler`: ``POLITE_SITECACHE_CLASS``,
``POLITE_REGISTRIES_CLASS`` (and, inside it, ``POLITE_HTTP_REGISTRY_CLASS``) and
``POLITE_PAYMENT_LEDGER_CLASS``. Their defaults are the single-process classes
(:mod:`crawler.crawl.defaults`); a cluster worker's settings (:mod:`crawler.cluster.settings`)
name the shared ones in :mod:`crawler.cluster.store`.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.utils.defer import deferred_from_coro
from scrapy.utils.misc import build_from_crawler, load_object

from crawler import __version__
from crawler.audit.checkpoint import CheckpointWriter
from crawler.audit.log import AuditWriter, iter_records, utc_now
from crawler.audit.runlock import RunLock
from crawler.config import table
from crawler.config.job import (
    PURPOSES,
    SIGNAL_NAMES,
    ConfigError,
    check_settings,
    check_user_agent,
    number_problem,
)
from crawler.config.table import spelling
from crawler.crawl import defaults
from crawler.crawl.decisions import DecisionFunnel
from crawler.crawl.resume import (
    COMPLETED_REASONS,
    previous_run,
    run_finished,
    sent_pages_per_origin,
)
from crawler.crawl.scrapy_internals import engine_of
from crawler.crawl.signals import decision_recorded
from crawler.crawl.sitecache import keep_file
from crawler.identity.keys import IdentityError, load_key
from crawler.policy.ledger import FailClosedLedger, LocalLedger, PaymentConfigError, PaymentPolicy
from crawler.policy.payment import PayPerCrawl
from crawler.policy.payment_replay import replay
from crawler.policy.prices import Money
from crawler.policy.reservation import Policy
from crawler.policy.scope import Scope, scope_config

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)


def polite_setting(crawler: Crawler, name: str):
    """A ``POLITE_*`` setting, falling back to :mod:`crawler.crawl.defaults`."""
    return crawler.settings.get(name, getattr(defaults, name))


class PoliteRuntime:
    """The per-crawl state (a Scrapy extension, ``EXTENSIONS``; the add-on installs it).

    ``sitecache_cls``, ``registries_cls``, ``ledger_cls``: the classes of the per-origin file
    cache, the registries and the pay-per-crawl ledger, each built with
    :func:`~scrapy.utils.misc.build_from_crawler` (its ``from_crawler`` when it has one);
    :meth:`from_crawler` loads them from ``POLITE_SITECACHE_CLASS``,
    ``POLITE_REGISTRIES_CLASS`` and ``POLITE_PAYMENT_LEDGER_CLASS``.
    """

    def __init__(self, crawler: Crawler, *, sitecache_cls: Any, registries_cls: Any,
                 ledger_cls: Any = LocalLedger) -> None:
        s = crawler.settings
        self.crawler = crawler
        self.policy, pay_policy = policy_from_settings(crawler)
        token, purpose, enabled = self.policy.token, self.policy.purpose, self.policy.signals
        scope_cfg = _scope_config(crawler)  # validated before anything is opened
        #: POLITE_OUTPUT_DIR with its %(name)s and %(time)s filled in: everything of this run
        #: (audit log, run lock, run.json, corpus, evidence, provenance) goes here
        self.output_dir = output_dir_of(crawler)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        audit_path = self.output_dir / str(polite_setting(crawler, "POLITE_AUDIT_FILE"))
        # one run per output_dir (per audit log): taken before the log is opened, released at
        # close or by the kernel when the process dies; raises RunLockError (one line)
        self.run_lock = RunLock(audit_path).acquire()
        try:
            self.previous_run = previous_run(  # read before this run overwrites it
                self.output_dir, str(polite_setting(crawler, "POLITE_RUN_FILE")))
            job = str(polite_setting(crawler, "POLITE_JOB"))
            fsync = s.getbool("POLITE_AUDIT_FSYNC", defaults.POLITE_AUDIT_FSYNC)
            self.checkpoints = _checkpoint_writer(crawler, audit_path, job, fsync)
            #: the job's pay-per-crawl session (crawler.policy.payment), None: payments off
            self.payment = (None if pay_policy is None else
                            _payment_session(crawler, pay_policy, audit_path, ledger_cls))
            self.writer = AuditWriter(audit_path, job=job, fsync=fsync,
                                      checkpoints=self.checkpoints)
        except BaseException:
            self.run_lock.release()
            raise
        #: the crawl's scope (``scope:``): include/exclude patterns, the per-origin page cap
        self.scope, self._pass_started_at = _scope(crawler, scope_cfg, self.previous_run,
                                                   audit_path)
        self.funnel = DecisionFunnel(self.writer, self.policy, crawler.stats,
                                     crawler.signals.send_catch_log,
                                     on_failure=self._audit_failed,
                                     has_receivers=_receivers_of(crawler))
        # direct listeners of every record (the command line's), set before the crawl
        self.funnel.listeners.extend(getattr(crawler, "polite_record_listeners", ()))
        self.sitecache = build_from_crawler(
            sitecache_cls, crawler,
            # revalidation keeps the files it fetches with the job's (the erase records cite them)
            evidence_dir=Path(s.get("POLITE_EVIDENCE_DIR") or self.output_dir / "evidence"),
            funnel=self.funnel)
        self.registries = build_from_crawler(
            registries_cls, crawler, self.policy, ttl=self.sitecache.ttl,
            backoff=self.sitecache.backoff)
        crawler.signals.connect(self._opened, signal=signals.spider_opened)
        crawler.signals.connect(self._closed, signal=signals.spider_closed)
        logger.info("polite-crawler: token %r, purpose %s, signals %s, policy %s, audit %s",
                    token, purpose, ",".join(enabled), self.policy.sha256[:12],
                    self.writer.path)

    def _audit_failed(self, exc: OSError) -> None:
        """The audit log cannot be written: stop the crawl (nothing more is sent: every request
        needs its record first, and every one now fails to get it)."""
        self.output_failed(str(exc.strerror or exc))

    def output_failed(self, message: str) -> None:
        """An output file (audit log, corpus) cannot be written: stop the crawl once, with one
        line; ``polite/output/write_failed`` in the stats says why (the CLI prints it)."""
        if getattr(self, "output_error", None):
            return
        self.output_error = message
        self.crawler.stats.set_value("polite/output/write_failed", message)
        logger.critical("polite-crawler: %s; stopping the crawl (the job resumes once the "
                        "problem is fixed)", message)
        engine = engine_of(self.crawler)  # None before the crawl starts: nothing to stop yet
        if engine is None or engine.spider is None:
            return
        deferred_from_coro(engine.close_spider_async(reason="output_write_failed"))

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> PoliteRuntime:
        if not crawler.settings.getbool("POLITE_ENABLED", defaults.POLITE_ENABLED):
            raise NotConfigured
        return cls(crawler,
                   sitecache_cls=load_object(polite_setting(crawler, "POLITE_SITECACHE_CLASS")),
                   registries_cls=load_object(polite_setting(crawler,
                                                             "POLITE_REGISTRIES_CLASS")),
                   ledger_cls=load_object(polite_setting(crawler,
                                                         "POLITE_PAYMENT_LEDGER_CLASS")))

    def _run_info(self, **extra: object) -> None:
        """``output_dir/run.json``: what this run honoured, for transparency and revalidation."""
        s = self.crawler.settings
        info = {
            "job": str(polite_setting(self.crawler, "POLITE_JOB")),
            "user_agent": self.policy.user_agent,
            "token": self.policy.token,
            "purpose": self.policy.purpose,
            "signals": list(self.policy.signals),
            "honor_agents": list(self.policy.honor_agents),
            "registries": [{"type": r["type"], "name": r.get("name")}
                           for r in s.getlist("POLITE_REGISTRIES", defaults.POLITE_REGISTRIES)],
            "policy_sha256": self.policy.sha256,
            "config": s.get("POLITE_CONFIG_PATH"),
            # who the sites saw: the Web Bot Auth key (JWK thumbprint; it signs the checkpoints
            # too) and where its directory is published (None: requests unsigned)
            "keyid": getattr(getattr(self.checkpoints, "identity", None), "keyid", None),
            "signature_agent": s.get("POLITE_IDENTITY_SIGNATURE_AGENT"),
            "version": __version__,
            # what the crawl asked for (not what it may collect: not in the policy hash)
            "scope": self.scope.config.as_dict(),
            "sitemaps": s.get("POLITE_SITEMAPS"),
            **self._info_extra,
            **extra,
        }
        # the run's times (and how it ended) carry over between writes; a time given as None
        # is dropped: a run that has not finished has no ``finished_at`` at all
        info = {k: v for k, v in info.items() if not (k.endswith("_at") and v is None)}
        self._info_extra = {k: v for k, v in info.items()
                            if k.endswith("_at") or k == "finish_reason"}
        name = str(polite_setting(self.crawler, "POLITE_RUN_FILE"))
        tmp = self.output_dir / f"{name}.tmp"
        try:
            tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            tmp.replace(self.output_dir / name)
        except OSError as exc:
            # the previous run.json stays (a run without finished_at is resumed next time)
            tmp.unlink(missing_ok=True)
            logger.error("polite-crawler: cannot write %s (%s)", self.output_dir / name,
                         exc.strerror or exc)
            self.output_failed(f"cannot write {self.output_dir / name}: {exc.strerror or exc}")

    def _opened(self, spider: object) -> None:
        # the policy the records' policy_sha256 names, beside the files they cite
        keep_file(self.sitecache.evidence_dir, self.policy.sha256, self.policy.document)
        self._info_extra: dict[str, object] = {}
        now = utc_now()
        # the pass this run belongs to: a resumed run continues its predecessor's (the page
        # cap counts from there), a fresh or re-crawl run starts one
        self._run_info(started_at=now, pass_started_at=self._pass_started_at or now)

    def _closed(self, spider: object, reason: str) -> None:
        if hasattr(self, "_info_extra"):
            if reason in COMPLETED_REASONS:  # the next run is a re-crawl
                self._run_info(finished_at=utc_now(), finish_reason=reason)
            else:  # stopped (SIGTERM/SIGINT: "shutdown"), failed: the next run resumes
                self._run_info(interrupted_at=utc_now(), finish_reason=reason)
        if getattr(self, "payment", None) is not None:
            try:  # what the job has spent so far (all runs; the cluster's in cluster mode)
                spent = self.payment.ledger.totals("").spent
                self.crawler.stats.set_value("polite/payment/spent", _money(
                    self.payment.policy.currency, spent))
            except Exception as exc:  # noqa: BLE001 - a summary line, nothing decided on it
                logger.warning("polite-crawler: cannot read the payment totals (%s)", exc)
        publish = getattr(self.sitecache, "publish_stats", None)
        if publish is not None:
            publish()
        try:
            self.writer.close()
            self.registries.close()
        finally:
            self.run_lock.release()
        st = self.crawler.stats
        logger.info(
            "polite-crawler: %s allowed, %s denied; audit log %s (last seq %d)",
            st.get_value("polite/decision/allow", 0), st.get_value("polite/decision/deny", 0),
            self.writer.path, self.writer.state.seq,
        )


def _payment_policy(crawler: Crawler, signals: tuple[str, ...]) -> Any:
    """``POLITE_PAYMENT_*`` validated into a :class:`crawler.policy.ledger.PaymentPolicy`, or None
    when payments are off. Refuses to start (ValueError, one line) on a bad amount, without a
    signing identity (paying needs a Web Bot Auth verified bot) or without the
    payment-required signal."""
    s = crawler.settings
    raw = {"max_price": s.get("POLITE_PAYMENT_MAX_PRICE"), "budget": s.get("POLITE_PAYMENT_BUDGET"),
           "per_origin_budget": s.get("POLITE_PAYMENT_PER_ORIGIN_BUDGET")}
    if all(v is None for v in raw.values()):
        return None
    try:
        policy = PaymentPolicy.from_config({k: v for k, v in raw.items() if v is not None})
    except PaymentConfigError as exc:
        setting = f"POLITE_PAYMENT_{exc.key.upper()}" if exc.key else "POLITE_PAYMENT_*"
        raise ValueError(f"polite-crawler refuses to start: {setting} ({exc})") from None
    if not (polite_setting(crawler, "POLITE_IDENTITY_KEY_FILE")
            and polite_setting(crawler, "POLITE_IDENTITY_SIGNATURE_AGENT")):
        raise ValueError("polite-crawler refuses to start: payment: paying needs signed requests"
                         " (Web Bot Auth): set POLITE_IDENTITY_KEY_FILE and "
                         "POLITE_IDENTITY_SIGNATURE_AGENT (identity.key_file, "
                         "identity.signature_agent)")
    if "payment-required" not in signals:
        raise ValueError("polite-crawler refuses to start: payment: needs the payment-required "
                         "signal in POLITE_SIGNALS")
    return policy


def _payment_session(crawler: Crawler, policy: PaymentPolicy, audit_path: Path,
                     ledger_cls: Any = LocalLedger) -> PayPerCrawl:
    """The job's :class:`crawler.policy.payment.PayPerCrawl`: its ledger built from
    ``ledger_cls`` (``POLITE_PAYMENT_LEDGER_CLASS``: a local ledger, or in cluster mode the
    job's shared one in Redis, ``crawler.cluster.store.SharedLedger``), behind
    :class:`~crawler.policy.ledger.FailClosedLedger` (a ledger that fails holds nothing). The
    budgets survive a resume: the spent totals and per-origin state are replayed from the
    job's audit log (a shared ledger keeps the totals; the worker's own log gives the
    per-origin state). A log whose payment records cannot be read pays nothing this run."""
    inner: Any = build_from_crawler(ledger_cls, crawler, policy)
    ppc = PayPerCrawl(policy, FailClosedLedger(inner))
    if audit_path.exists():
        try:
            history = replay(iter_records(audit_path), log=Path(audit_path).name)
        except (ValueError, KeyError, TypeError) as exc:  # PriceError, CurrencyMismatch, ...
            ppc.disabled = (f"the audit log's payment records cannot be read ({exc}): nothing "
                            "is paid in this run")
            logger.error("polite-crawler: %s", ppc.disabled)
        else:
            if isinstance(inner, LocalLedger):
                inner.load(history.spent)
            else:  # the shared totals must cover at least what this worker spent
                try:
                    shared = inner.totals("").spent
                except Exception as exc:  # noqa: BLE001 - unreadable: nothing is paid
                    ppc.disabled = f"the shared budget cannot be read ({exc}): nothing is paid"
                else:
                    ppc.check_shared(history, shared)
                if ppc.disabled:
                    logger.error("polite-crawler: %s", ppc.disabled)
            ppc.restore(history)
            if history.spent or history.open_holds:
                logger.info("polite-crawler: pay per crawl resumed: %s spent of %s (%d "
                            "authorisations without an answer counted in full)",
                            _money(policy.currency, sum(history.spent.values())),
                            policy.budget, history.open_holds)
    logger.info("polite-crawler: pay per crawl on: max_price %s, budget %s, per origin %s",
                policy.max_price, policy.budget, policy.per_origin_budget)
    return ppc


def _money(currency: str, micros: int) -> str:
    return str(Money.from_micros(currency, micros))


def _checkpoint_writer(crawler: Crawler, audit_path: Path, job: str, fsync: bool) -> Any:
    """The signed-checkpoint writer of this run's audit log (crawler/audit/checkpoint.py).

    A key file that cannot be used stops the run before anything is sent (ValueError, one
    line): a job configured to sign its checkpoints never runs unsigned by accident.
    """
    key_file = polite_setting(crawler, "POLITE_IDENTITY_KEY_FILE")
    identity = None
    if key_file:
        try:
            identity = load_key(key_file)
        except IdentityError as exc:
            raise ValueError(f"identity.key_file: {exc}") from None
    return CheckpointWriter(
        audit_path, job=job, identity=identity,
        every=crawler.settings.getint("POLITE_AUDIT_CHECKPOINT_EVERY",
                                      defaults.POLITE_AUDIT_CHECKPOINT_EVERY),
        tsa_url=polite_setting(crawler, "POLITE_AUDIT_TSA_URL") or None,
        tsa_timeout=crawler.settings.getfloat("POLITE_AUDIT_TSA_TIMEOUT",
                                              defaults.POLITE_AUDIT_TSA_TIMEOUT),
        fsync=fsync)


def _receivers_of(crawler: Crawler) -> Any:
    """() -> whether ``decision_recorded`` has a receiver: pydispatch's own
    ``getAllReceivers`` for the crawler's sender (what ``send_catch_log`` walks), so that a
    record nobody listens to does not pay for a dispatch. Any doubt answers True."""
    try:
        from pydispatch import dispatcher
    except ImportError:  # pragma: no cover - Scrapy's signals are pydispatch's
        return None
    sender = getattr(crawler.signals, "sender", None)
    get_all = getattr(dispatcher, "getAllReceivers", None)
    if sender is None or get_all is None:  # pragma: no cover
        return None

    def has_receivers() -> bool:
        try:
            return next(iter(get_all(sender, decision_recorded)), None) is not None
        except Exception:  # pragma: no cover - never skip a dispatch on doubt
            return True

    return has_receivers


#: ``%(key)`` and the conversion after it, in POLITE_OUTPUT_DIR (the placeholders of Scrapy's
#: FEEDS URIs; any other ``%`` is a literal character, as in FEEDS)
_PLACEHOLDER = re.compile(r"%\(([^)]*)\)([a-zA-Z]?)")
OUTPUT_DIR_PLACEHOLDERS = ("name", "time")


def expand_output_dir(template: str, *, name: str | None, start: datetime) -> Path:
    """``template`` with ``%(name)s`` (the spider's name) and ``%(time)s`` (``start`` in UTC
    as Scrapy's FEEDS URIs write it: ``2026-12-02T08-19-34+00-00``) filled in.

    Any other placeholder, another conversion than ``s``, or ``%(name)s`` for a spider without
    a name is a settings error: ValueError with one line naming the setting.
    """
    params = {"name": name,
              "time": start.astimezone(timezone.utc).replace(microsecond=0).isoformat()
              .replace(":", "-")}

    def fill(match: re.Match[str]) -> str:
        key, conversion = match.groups()
        if key not in params or conversion != "s":
            raise ValueError(
                f"POLITE_OUTPUT_DIR: unknown placeholder {match.group(0)!r} in {template!r} "
                f"(known: {', '.join(f'%({k})s' for k in OUTPUT_DIR_PLACEHOLDERS)})")
        if params[key] is None:
            raise ValueError(f"POLITE_OUTPUT_DIR: {template!r} uses %({key})s, and the "
                             "spider has no name")
        return str(params[key])

    return Path(_PLACEHOLDER.sub(fill, str(template)))


def output_dir_of(crawler: Crawler, start: datetime | None = None) -> Path:
    """The run's output directory: ``POLITE_OUTPUT_DIR`` expanded (:func:`expand_output_dir`)
    for the crawler's spider, ``start`` (default: now) as its start time."""
    spider = getattr(crawler, "spider", None)
    name = getattr(spider, "name", None) or getattr(crawler.spidercls, "name", None)
    return expand_output_dir(str(polite_setting(crawler, "POLITE_OUTPUT_DIR")), name=name,
                             start=start or datetime.now(timezone.utc))


def policy_from_settings(crawler: Any) -> tuple[Policy, Any]:
    """The run's :class:`~crawler.policy.reservation.Policy` and pay-per-crawl policy (None: off) from the
    ``POLITE_*`` settings, validated: a bad value raises ValueError naming the setting. Reads
    only ``crawler.settings`` (``polite-crawl run --dry-run`` calls it without a crawl)."""
    s = crawler.settings
    user_agent = s.get("POLITE_USER_AGENT") or s.get("USER_AGENT") or ""
    try:
        token = check_user_agent(user_agent, spelling("POLITE_USER_AGENT"))
    except ConfigError as exc:
        raise ValueError(f"polite-crawler refuses to start: {exc}") from None
    purpose = polite_setting(crawler, "POLITE_PURPOSE")
    if purpose not in PURPOSES:
        raise ValueError(f"{spelling('POLITE_PURPOSE')}: {purpose!r} is not one of {PURPOSES}")
    enabled = tuple(s.getlist("POLITE_SIGNALS", defaults.POLITE_SIGNALS))
    unknown = [x for x in enabled if x not in SIGNAL_NAMES]
    if unknown:
        raise ValueError(f"{spelling('POLITE_SIGNALS')}: unknown signal {unknown[0]!r}")
    # numbers: finite, 0 or more (a NaN delay would switch the Crawl-delay floor off)
    groups = ("crawl", "cluster") if s.get("POLITE_CLUSTER_REDIS_URL") else ("crawl",)
    numeric = [n for group in groups for n, v in table.defaults(group).items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)]
    for name in ("DOWNLOAD_DELAY", "AUTOTHROTTLE_START_DELAY", "AUTOTHROTTLE_MAX_DELAY",
                 *numeric):
        problem = number_problem(name, s.get(name))
        if problem:
            raise ValueError(f"{spelling(name)}: {problem}")
    pay_policy = _payment_policy(crawler, enabled)
    # every other POLITE_* value against the settings table (types, ranges, choices, the
    # registries' entries): one line naming both spellings, never a KeyError below
    try:
        check_settings(s)
    except ConfigError as exc:
        raise ValueError(f"polite-crawler refuses to start: {exc}") from None
    policy = Policy(
        token=token,
        user_agent=user_agent,
        purpose=purpose,
        honor_agents=tuple(s.getlist("POLITE_HONOR_AGENTS", defaults.POLITE_HONOR_AGENTS)),
        signals=enabled,
        allow_private_networks=s.getbool("POLITE_ALLOW_PRIVATE_NETWORKS",
                                          defaults.POLITE_ALLOW_PRIVATE_NETWORKS),
        allowed_private_origins=tuple(
            str(o) for o in s.getlist("POLITE_ALLOWED_PRIVATE_ORIGINS",
                                defaults.POLITE_ALLOWED_PRIVATE_ORIGINS)),
        rsl_user_type=str(polite_setting(crawler, "POLITE_OPERATOR_USER_TYPE")),
        rsl_country=polite_setting(crawler, "POLITE_OPERATOR_COUNTRY"),
        registries=tuple(f"{r['type']} {r.get('url') or r.get('path')}"
                         for r in s.getlist("POLITE_REGISTRIES", defaults.POLITE_REGISTRIES)),
        payment=None if pay_policy is None else (
            f"max_price {pay_policy.max_price}, budget {pay_policy.budget}, "
            f"per_origin_budget {pay_policy.per_origin_budget}"),
    )
    return policy, pay_policy


def _scope_config(crawler: Crawler) -> Any:
    """``POLITE_SCOPE`` validated (ValueError naming the setting)."""
    try:
        return scope_config(crawler.settings.getdict("POLITE_SCOPE") or None, "POLITE_SCOPE")
    except ValueError as exc:
        raise ValueError(f"polite-crawler refuses to start: {exc}") from None


def _scope(crawler: Crawler, cfg: Any, previous: dict[str, Any] | None,
           audit: Path) -> tuple[Any, str | None]:
    """The run's :class:`crawler.policy.scope.Scope` and when its pass started (None: now).

    ``max_pages_per_origin`` counts the pages of one pass over the job: a resumed run (the
    previous one did not finish) starts from the pages the audit log says were sent since the
    pass began; a re-crawl (the previous run finished) or a run with ``POLITE_RESUME: false``
    starts a new pass from zero."""
    if previous is None or run_finished(previous) or not crawler.settings.getbool(
            "POLITE_RESUME", defaults.POLITE_RESUME):
        return Scope(cfg), None
    since = previous.get("pass_started_at") or previous.get("started_at")
    if not isinstance(since, str):
        since = None
    counts = sent_pages_per_origin(audit, since) if cfg.max_pages_per_origin else {}
    return Scope(cfg, counts=counts), since


@overload
def get_runtime(crawler: Crawler) -> PoliteRuntime: ...


@overload
def get_runtime(crawler: Crawler, *, required: Literal[True]) -> PoliteRuntime: ...


@overload
def get_runtime(crawler: Crawler, *, required: bool) -> PoliteRuntime | None: ...


def get_runtime(crawler: Crawler, *, required: bool = True) -> PoliteRuntime | None:
    """The crawler's :class:`PoliteRuntime` (the extension the add-on installs): the one way a
    component's ``from_crawler`` finds the per-crawl state whose pieces it takes. Raises
    :class:`~scrapy.exceptions.NotConfigured` when the extension is not enabled (a component
    without the runtime is switched off, never run without its policy and audit log); with
    ``required=False`` returns None instead (a component that works without it: the cluster
    gate spaces requests by its own delay alone)."""
    rt = crawler.get_extension(PoliteRuntime)
    if rt is None and not required:
        return None
    if rt is None:
        raise NotConfigured("PoliteRuntime extension is not enabled (use crawler.addon.Addon)")
    return rt
