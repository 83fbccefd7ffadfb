"""Every ``POLITE_*`` setting in one table: name, type, range or choices, default, one-line doc,
and the job config (YAML) key it is written as, where there is one (1:1).

Pure (no Scrapy): from this table come

* the defaults (:mod:`crawler.crawl.defaults` and :mod:`crawler.cluster.defaults` are made
  from it; the add-on sets the crawl group's at ``default`` priority, the cluster group's are
  read through ``crawler.cluster.worker.cluster_setting``),
* the validation of a setting given any way: a job config's keys and its ``settings:``
  (:mod:`crawler.config.job`), a Scrapy project's ``settings.py``, ``-s`` on the command line
  (:func:`check_settings`, called at crawl start and by ``polite-crawl run``): a bad value is
  a one-line :class:`SettingsError` naming both spellings (:func:`spelling`),
* the README's settings table (:func:`markdown`; ``tests/test_settings_table.py`` keeps it in
  step).

A new setting is one more :class:`Setting` row in :data:`SETTINGS` (``group="cluster"`` for
the ``POLITE_CLUSTER_*`` ones).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: The setting types: how a value (a Python value, or the string ``-s NAME=VALUE`` gives) is
#: read, as Scrapy's getters read it (``getbool``, ``getint``, ``getfloat``, ``getlist``,
#: ``getdict``); ``str`` and ``any`` take the value as it is.
TYPES = ("str", "bool", "int", "float", "list", "dict", "any")

_TYPE_WORDS = {"str": "a string", "bool": "true/false", "int": "a whole number",
               "float": "a number", "list": "a list", "dict": "a mapping", "any": "any value"}


class SettingsError(ValueError):
    """A setting that cannot be run with. ``str()`` is one line naming both spellings."""


@dataclass(frozen=True)
class Setting:
    #: the Scrapy setting name (``POLITE_*``)
    name: str
    #: one of :data:`TYPES`
    type: str
    #: the default (None: unset; its meaning is in ``doc``)
    default: Any
    #: one line: what it does
    doc: str
    #: the job config key it is written as (dotted: ``operator.country``); None: none (write it
    #: under ``settings:``)
    yaml: str | None = None
    #: the values it may take (each item's, for a list)
    choices: tuple[str, ...] | None = None
    #: the smallest / largest number it may be (numbers are finite and not negative anyway)
    min: float | None = None
    max: float | None = None
    #: None is a value it may hold (besides its default)
    nullable: bool = False
    #: "crawl" (crawler.crawl.defaults) or "cluster" (crawler.cluster.defaults)
    group: str = "crawl"
    #: the module that checks a value beyond its type (its own messages name the setting);
    #: :func:`check_setting` leaves such a setting to it
    checked_by: str | None = None
    #: set by polite-crawler itself (not for a user to set)
    internal: bool = False

    @property
    def spelling(self) -> str:
        """Both spellings: ``POLITE_X (job config: x.y)``, or the name alone without a key."""
        return f"{self.name} (job config: {self.yaml})" if self.yaml else self.name


PURPOSES = ("train-ai", "train-genai", "search", "ai-input")
SIGNALS = ("robots", "tdmrep", "noai", "ai-txt", "content-usage", "content-signal", "rsl",
           "payment-required", "iptc", "c2pa")
FOLLOW_MODES = ("same-origin", "same-host", "none")
COLLECT_KINDS = ("html", "text", "pdf", "image")
TEXT_MODES = ("main", "visible")
USER_TYPES = ("commercial", "non-commercial", "education", "government", "personal")
SPACINGS = ("response", "grant")

_S = Setting
SETTINGS: tuple[Setting, ...] = (
    # --- who, what for --------------------------------------------------------------------
    _S("POLITE_ENABLED", "bool", True,
       "False: polite-crawler is off for this crawl (its components are not started: no "
       "decisions, no audit log)"),
    _S("POLITE_JOB", "str", "default", "the job's name, in every audit record", yaml="job"),
    _S("POLITE_USER_AGENT", "str", "",
       "the full User-Agent: a product token (text before \"/\") and a contact URL; required",
       yaml="user_agent", checked_by="crawler.config.job.check_user_agent"),
    _S("POLITE_PURPOSE", "str", "train-ai", "the use the corpus serves (in the policy hash)",
       yaml="purpose", choices=PURPOSES),
    _S("POLITE_HONOR_AGENTS", "list", [],
       "robots.txt groups naming these product tokens bind this crawl too", yaml="honor_agents"),
    _S("POLITE_SIGNALS", "list", list(SIGNALS),
       "reservation signals honoured (one switched off is in the policy hash; the job "
       "config's signals: maps each to true/false)",
       yaml="signals", choices=SIGNALS),
    _S("POLITE_OPERATOR_USER_TYPE", "str", "commercial",
       "who we are for RSL licences: our user type", yaml="operator.user_type",
       choices=USER_TYPES),
    _S("POLITE_OPERATOR_COUNTRY", "str", None,
       "the ISO 3166-1 country we operate from, for RSL licences (None: unknown)",
       yaml="operator.country", nullable=True),
    _S("POLITE_REGISTRIES", "list", [],
       "opt-out registries: mappings such as {type: file, path: list.txt} (see \"Opt-out "
       "registries\")", yaml="registries", checked_by="crawler.config.job.check_registries"),
    # --- the network guard ------------------------------------------------------------------
    _S("POLITE_ALLOW_PRIVATE_NETWORKS", "bool", False,
       "allow loopback, private, link-local and metadata addresses",
       yaml="allow_private_networks"),
    _S("POLITE_ALLOWED_PRIVATE_ORIGINS", "list", [],
       "origins exempt from the network guard, e.g. [\"http://10.0.0.5:8080\"]"),
    # --- output -----------------------------------------------------------------------------
    _S("POLITE_OUTPUT_DIR", "str", "out",
       "where the run's files go; %(name)s (the spider) and %(time)s (the run's start) are "
       "filled in (a job config's output_dir takes neither)", yaml="output_dir",
       checked_by="crawler.crawl.runtime.expand_output_dir"),
    _S("POLITE_AUDIT_FILE", "str", "audit.jsonl", "the audit log's file name in the output dir"),
    _S("POLITE_CORPUS_FILE", "str", "corpus.jsonl", "the corpus file name in the output dir"),
    _S("POLITE_PROVENANCE_FILE", "str", "provenance.jsonl",
       "item provenance lines (items that cannot carry it), in the output dir"),
    _S("POLITE_RUN_FILE", "str", "run.json", "the run's state file name in the output dir"),
    _S("POLITE_WARC_FILE", "str", "corpus.warc.gz", "the WARC file name in the output dir"),
    _S("POLITE_CORPUS_ENABLED", "bool", False,
       "write corpus.jsonl (the corpus spider and polite-crawl run switch it on)"),
    _S("POLITE_ITEM_PROVENANCE", "bool", True,
       "attach the allow decision's provenance to each item a callback yields (the corpus "
       "spider switches it off)"),
    _S("POLITE_WARC", "bool", False, "also write the pages to a WARC file (warcio)",
       yaml="output.warc"),
    _S("POLITE_EVIDENCE_DIR", "str", None,
       "where per-origin files are kept, named by SHA-256 (None: evidence/ in the output dir)",
       nullable=True),
    _S("POLITE_RESUME", "bool", True,
       "continue an interrupted run / re-crawl a finished one in the same output dir"),
    _S("POLITE_CONFIG_PATH", "str", None,
       "the job config's path, recorded in run.json (set by the corpus spider)",
       nullable=True, internal=True),
    # --- the audit log ----------------------------------------------------------------------
    _S("POLITE_AUDIT_FSYNC", "bool", False, "fsync the audit log after every record",
       yaml="audit_fsync"),
    _S("POLITE_AUDIT_CHECKPOINT_EVERY", "int", 1000,
       "a signed checkpoint of the audit log every this many records (0: at each run's end "
       "only)", yaml="audit.checkpoint_every"),
    _S("POLITE_AUDIT_TSA_URL", "str", None,
       "RFC 3161 Time-Stamp Authority that timestamps each checkpoint (None: none)",
       yaml="audit.tsa_url", nullable=True),
    _S("POLITE_AUDIT_TSA_TIMEOUT", "float", 10.0, "seconds a timestamp request may take",
       yaml="audit.tsa_timeout"),
    # --- identity and payment -----------------------------------------------------------------
    _S("POLITE_IDENTITY_KEY_FILE", "str", None,
       "the crawler's Ed25519 key (identity init): signs the checkpoints, and with the "
       "signature agent every request", yaml="identity.key_file", nullable=True),
    _S("POLITE_IDENTITY_SIGNATURE_AGENT", "str", None,
       "https:// URL where the key directory is published (with the key: requests signed)",
       yaml="identity.signature_agent", nullable=True),
    _S("POLITE_SIGNATURE_VALIDITY", "float", 60, "seconds a request signature is valid",
       yaml="identity.signature_validity", min=1, max=3600,
       checked_by="crawler.crawl.signing"),
    _S("POLITE_PAYMENT_MAX_PRICE", "str", None,
       "pay per crawl: the most one page may cost, e.g. \"USD 0.01\" (None: a 402 is a "
       "refusal)", yaml="payment.max_price", nullable=True,
       checked_by="crawler.policy.ledger"),
    _S("POLITE_PAYMENT_BUDGET", "str", None,
       "the most the job may spend, across all origins and runs", yaml="payment.budget",
       nullable=True, checked_by="crawler.policy.ledger"),
    _S("POLITE_PAYMENT_PER_ORIGIN_BUDGET", "str", None,
       "the most one origin may take (None: the job's budget)",
       yaml="payment.per_origin_budget", nullable=True, checked_by="crawler.policy.ledger"),
    # --- what is crawled and collected --------------------------------------------------------
    _S("POLITE_FOLLOW", "str", "same-origin",
       "which links the corpus spider follows (another spider follows its own links)",
       yaml="follow", choices=FOLLOW_MODES),
    _S("POLITE_COLLECT", "list", None,
       "what is collected (html, text, pdf, image); None (the add-on's default): every "
       "response reaches the callbacks; a job config's default is [html, text]",
       yaml="collect", choices=COLLECT_KINDS, nullable=True,
       checked_by="crawler.config.job.check_collect"),
    _S("POLITE_SCOPE", "dict", {},
       "include / exclude regexes and max_pages_per_origin (empty: every URL, no cap)",
       yaml="scope", checked_by="crawler.policy.scope"),
    _S("POLITE_SITEMAPS", "any", None,
       "None (off) or the sitemap walk's limits as a mapping ({}: the defaults); read by the "
       "corpus spider", yaml="sitemaps", checked_by="crawler.corpus.sitemaps"),
    _S("POLITE_TEXT", "str", "main",
       "the corpus text of an HTML page: its main content or every visible text node",
       yaml="text", choices=TEXT_MODES),
    _S("POLITE_TEXT_MAX_ELEMENTS", "int", 50_000,
       "pages with more elements get their visible text instead of the main content (0: no "
       "limit)"),
    _S("POLITE_PDF_TEXT_TIMEOUT", "float", 60.0,
       "seconds a collected PDF's text extraction may take", checked_by="crawler.crawl.pipelines"),
    # --- per-origin files, retries, delays -----------------------------------------------------
    _S("POLITE_SITE_CACHE_TTL", "float", 86400.0,
       "per-origin files (robots.txt, ...) are fetched again after this many seconds"),
    _S("POLITE_SITE_CACHE_MAX_BYTES", "int", 256 * 1024 * 1024,
       "bytes the cache of per-origin files may hold (256 MiB, estimated; the least recently "
       "used origins' files are dropped)"),
    _S("POLITE_SITE_RETRY_BACKOFF", "float", 60.0,
       "seconds before a failed per-origin fetch is tried again (doubling up to the TTL)"),
    _S("POLITE_UNDECIDED_RETRIES", "int", 2,
       "times a URL undecided for want of a per-origin file is decided again"),
    _S("POLITE_MAX_IDLE_WAIT", "float", 60.0,
       "seconds a run whose only work left is waiting for those retries stays open (0: as "
       "long as the backoff says)"),
    _S("POLITE_CHECK_IN_PLACE", "bool", True,
       "polite-crawl check --no-fetch --from-file decides the URLs of cached origins in place "
       "(False: every URL through the engine, what the in-place decisions are compared with)"),
    # --- which classes the runtime builds (a cluster worker's settings name the shared ones) --
    _S("POLITE_SITECACHE_CLASS", "str", "crawler.crawl.sitecache.SiteCache",
       "class of the per-origin file cache (cluster: crawler.cluster.store.SharedSiteCache)"),
    _S("POLITE_REGISTRIES_CLASS", "str", "crawler.crawl.registries.Registries",
       "class of the opt-out registries built from POLITE_REGISTRIES"),
    _S("POLITE_HTTP_REGISTRY_CLASS", "str", "crawler.crawl.registries.HttpRegistry",
       "class of each HTTP registry client (cluster: crawler.cluster.store.SharedHttpRegistry, "
       "answers shared by the job's workers)"),
    _S("POLITE_PAYMENT_LEDGER_CLASS", "str", "crawler.policy.ledger.LocalLedger",
       "class of the pay-per-crawl ledger (cluster: crawler.cluster.store.SharedLedger, the "
       "job's budget in Redis)"),
    _S("POLITE_PREFLIGHT_TIMEOUT", "float", 30.0, "timeout of a per-origin fetch (seconds)"),
    _S("POLITE_PREFLIGHT_MAXSIZE", "int", 1_048_576,
       "bytes of a per-origin file read at most (the rest is not downloaded)"),
    _S("POLITE_PREFLIGHT_MAX_REDIRECTS", "int", 5,
       "redirect hops followed for per-origin files"),
    _S("POLITE_RETRY_AFTER_MAX", "float", 600.0,
       "longest Retry-After (seconds) honoured on 429/503; a longer one drops the retry"),
    _S("POLITE_MAX_CRAWL_DELAY", "float", 86400.0,
       "longest Crawl-delay / Request-rate interval honoured per origin (seconds)"),
    # --- cluster mode ---------------------------------------------------------------------------
    _S("POLITE_CLUSTER_REDIS_URL", "str", None,
       "redis://host:port/db of the Redis server the workers share (None: cluster mode off)",
       yaml="cluster.redis_url", nullable=True, group="cluster",
       checked_by="crawler.cluster.connection"),
    _S("POLITE_CLUSTER_WORKER", "str", "w1",
       "this worker's name, unique among the job's running workers ([A-Za-z0-9_.-], <= 64)",
       group="cluster", checked_by="crawler.cluster.keys"),
    _S("POLITE_CLUSTER_JOB", "str", None,
       "the job whose Redis keys this worker uses (None: POLITE_JOB)", nullable=True,
       group="cluster"),
    _S("POLITE_CLUSTER_DELAY", "float", 1.0,
       "seconds between two requests to one origin, across the cluster (the job's "
       "DOWNLOAD_DELAY)", group="cluster"),
    _S("POLITE_CLUSTER_SPACING", "str", "response",
       "where the delay counts from: the previous response, or the previous grant",
       choices=SPACINGS, group="cluster"),
    _S("POLITE_CLUSTER_LEASE_POLL", "float", 0.1,
       "while another worker holds an origin's lease, ask again after at most this (s)",
       group="cluster"),
    _S("POLITE_CLUSTER_LEASE_MARGIN", "float", 5.0,
       "added to a request's download timeout to get its lease's lifetime (s)",
       group="cluster"),
    _S("POLITE_CLUSTER_GATE_TIMEOUT", "float", 3600.0,
       "give up waiting for an origin after this many seconds (the request is dropped)",
       group="cluster"),
    _S("POLITE_CLUSTER_WORKER_TTL", "float", 10.0,
       "seconds a worker's presence lives without a heartbeat", group="cluster"),
    _S("POLITE_CLUSTER_RESTORE_WAIT", "float", 1800.0,
       "seconds a worker that finds the job's Redis state lost waits for seed --restore",
       group="cluster"),
    _S("POLITE_CLUSTER_RESTORE_HOLD", "float", None,
       "seconds a restored epoch holds every grant (None: the worker TTL)", nullable=True,
       group="cluster"),
    _S("POLITE_CLUSTER_HEARTBEAT", "float", 1.0,
       "seconds between heartbeats (at most a third of the worker TTL)", group="cluster"),
    _S("POLITE_CLUSTER_FETCH_WAIT", "float", 90.0,
       "a per-origin file another worker is fetching is waited for up to this (s)",
       group="cluster"),
    _S("POLITE_CLUSTER_FETCH_POLL", "float", 0.05,
       "how often a waiting worker looks for that file (s)", group="cluster"),
    _S("POLITE_CLUSTER_FETCH_LOCK_TTL", "float", 120.0,
       "lifetime of a fetch lock (s)", group="cluster"),
    _S("POLITE_CLUSTER_IDLE_CLOSE", "float", 5.0,
       "a worker closes once the whole cluster has had nothing to do for this long (s)",
       group="cluster"),
    _S("POLITE_CLUSTER_SEED_BATCH", "int", 100, "start URLs popped from Redis per batch",
       group="cluster"),
    _S("POLITE_CLUSTER_SECRET_ENV", "str", "POLITE_CLUSTER_SECRET",
       "the environment variable holding the cluster secret (never a setting itself)",
       group="cluster"),
    _S("POLITE_CLUSTER_SPOOL_FILE", "str", None,
       "links and requests kept while Redis cannot take them (None: spool-WORKER.jsonl)",
       nullable=True, group="cluster"),
)
del _S

#: A job config's ``collect:`` when absent (the add-on's ``POLITE_COLLECT`` default, None,
#: filters nothing).
COLLECT_DEFAULT = ("html", "text")

#: Scrapy settings a polite crawl starts from (a config's ``settings:`` may override them).
SCRAPY_DEFAULTS: dict[str, Any] = {
    "ROBOTSTXT_OBEY": False,  # our own robots path replaces Scrapy's (see crawl/addon.py)
    "CONCURRENT_REQUESTS_PER_DOMAIN": 1,
    "CONCURRENT_REQUESTS": 16,
    "DOWNLOAD_DELAY": 1.0,
    "AUTOTHROTTLE_ENABLED": True,
    "AUTOTHROTTLE_START_DELAY": 1.0,
    "AUTOTHROTTLE_TARGET_CONCURRENCY": 1.0,
    "COOKIES_ENABLED": False,
    "TELNETCONSOLE_ENABLED": False,
    "LOG_LEVEL": "INFO",
    "DOWNLOAD_MAXSIZE": 32 * 1024 * 1024,
    # items (per response) handled at once by the item pipelines: Scrapy starts this many
    # worker tasks for every callback's output (100 by default: ~15 % of a page's CPU time
    # here); the corpus spider yields one item per page and the pipelines are synchronous
    "CONCURRENT_ITEMS": 8,
}

#: name -> row
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
#: YAML key -> row (1:1)
BY_YAML: dict[str, Setting] = {s.yaml: s for s in SETTINGS if s.yaml}
if len(BY_NAME) != len(SETTINGS) or len(BY_YAML) != sum(1 for s in SETTINGS if s.yaml):
    raise ValueError("crawler.config.table: a setting name or a YAML key is written twice")


def defaults(group: str | None = None) -> dict[str, Any]:
    """``{name: default}`` of every setting (of ``group`` only: "crawl" or "cluster"); lists
    and mappings are fresh copies."""
    return {s.name: _copy(s.default) for s in SETTINGS if group is None or s.group == group}


def default(name: str) -> Any:
    """The default of one setting (a fresh copy of a list or mapping)."""
    return _copy(BY_NAME[name].default)


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


def spelling(name: str) -> str:
    """``POLITE_X (job config: x.y)`` for a setting with a YAML key, else the name."""
    row = BY_NAME.get(name)
    return row.spelling if row else name


def is_known(name: str) -> bool:
    return name in BY_NAME


# --- validation ---------------------------------------------------------------------------------

def _as_bool(value: Any) -> bool:
    """Scrapy's ``getbool``."""
    try:
        return bool(int(value))
    except (ValueError, TypeError):
        if value in ("True", "true"):
            return True
        if value in ("False", "false"):
            return False
        raise ValueError("not true/false") from None


def _as_list(value: Any) -> list[Any]:
    """Scrapy's ``getlist``."""
    if isinstance(value, str):
        return value.split(",")
    if isinstance(value, (list, tuple)):
        return list(value)
    raise ValueError("not a list")


def _as_dict(value: Any) -> dict[Any, Any]:
    """Scrapy's ``getdict`` (a string is JSON)."""
    if isinstance(value, str):
        value = json.loads(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise ValueError("not a mapping")


def convert(row: Setting, value: Any) -> Any:
    """``value`` read as the setting's type (ValueError, TypeError when it cannot be)."""
    if row.type == "bool":
        return _as_bool(value)
    if row.type == "int":
        if isinstance(value, bool):
            raise ValueError("a boolean")
        return int(value)
    if row.type == "float":
        if isinstance(value, bool):
            raise ValueError("a boolean")
        return float(value)
    if row.type == "list":
        return _as_list(value)
    if row.type == "dict":
        return _as_dict(value)
    if row.type == "str" and not isinstance(value, str):
        if isinstance(value, (bool, list, tuple, dict)) or value is None:
            raise ValueError("not a string")
        return str(value)  # a path object, a number: read as its text
    return value


def problem(name: str, value: Any) -> str | None:
    """Why ``value`` cannot be the setting ``name`` (without the name), or None when it can.
    A setting whose values another module checks (``checked_by``) is checked here for its type
    only; unknown names and None (unset) pass."""
    row = BY_NAME.get(name)
    if row is None or value is None:
        return None
    try:
        got = convert(row, value)
    except (ValueError, TypeError):
        return f"{value!r} is not {_TYPE_WORDS[row.type]}"
    if row.checked_by:
        return None
    if row.type in ("int", "float"):
        if isinstance(got, float) and not math.isfinite(got):
            return f"{value!r} is not a finite number"
        low = 0 if row.min is None else row.min
        if got < low:
            return f"{value!r} is below {low:g}"
        if row.max is not None and got > row.max:
            return f"{value!r} is above {row.max:g}"
    if row.choices is not None:
        for item in (got if row.type == "list" else [got]):
            if item not in row.choices:
                return f"{item!r} is not one of {', '.join(row.choices)}"
    return None


def check_setting(name: str, value: Any) -> None:
    """Raise :class:`SettingsError` (``POLITE_X (job config: x): problem``) for a bad value."""
    why = problem(name, value)
    if why:
        raise SettingsError(f"{spelling(name)}: {why}")


def check_settings(settings: Any, *, groups: tuple[str, ...] = ("crawl", "cluster")) -> None:
    """Check every setting of the table that ``settings`` (anything with ``get``: a Scrapy
    ``Settings``, a dict) holds; the first bad one raises :class:`SettingsError`."""
    for row in SETTINGS:
        if row.group in groups:
            check_setting(row.name, settings.get(row.name))


# --- the README table ----------------------------------------------------------------------------

def _shown(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value)


def _kind(row: Setting) -> str:
    words = {"str": "string", "bool": "bool", "int": "int", "float": "number", "list": "list",
             "dict": "mapping", "any": "mapping or None"}
    text = words[row.type]
    if row.choices:
        text += (" of " if row.type == "list" else ": ") + " \\| ".join(
            f"`{c}`" for c in row.choices)
    if row.min is not None or row.max is not None:
        text += f", {row.min:g} to {row.max:g}" if row.max is not None else f", >= {row.min:g}"
    if row.nullable and row.default is not None:
        text += " or None"
    return text


#: The README's settings table sits between these two lines.
README_START = "<!-- settings table: crawler.config.table.markdown(); generated, do not edit -->"
README_END = "<!-- end of the settings table -->"


def readme_section(readme: str) -> str:
    """The settings table as the README holds it (between :data:`README_START` and
    :data:`README_END`); "" when it has none."""
    start = readme.find(README_START)
    end = readme.find(README_END, start)
    if start < 0 or end < 0:
        return ""
    return readme[start + len(README_START):end].strip("\n")


def markdown(group: str | None = None) -> str:
    """The README's settings table (of one group, or all), one row per setting."""
    lines = ["| setting | job config key | type | default | meaning |",
             "| --- | --- | --- | --- | --- |"]
    for row in SETTINGS:
        if group is not None and row.group != group:
            continue
        key = f"`{row.yaml}`" if row.yaml else "—"
        doc = row.doc.replace("|", "\\|")
        if row.type == "list" and row.choices and row.default == list(row.choices):
            shown = "all"
        else:
            shown = f"`{_shown(row.default)}`"
        lines.append(f"| `{row.name}` | {key} | {_kind(row)} | {shown} | {doc} |")
    return "\n".join(lines)
