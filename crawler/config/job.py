"""YAML job config → validated, frozen :class:`JobConfig` → Scrapy settings.

Unknown keys, wrong types and missing files are :class:`ConfigError` (the CLI exits 2 with
one line naming the key). Paths are relative to the config file. Numbers must be finite and
not negative, our own keys' and those under ``settings:`` alike (see :func:`number_problem`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from crawler.config import table
from crawler.corpus.maintext import TEXT_MODES
from crawler.corpus.sitemaps import SitemapLimits, sitemap_config
from crawler.policy.reservation import PURPOSES, SWITCHABLE_SIGNALS
from crawler.policy.scope import ScopeConfig, scope_config

#: the config a command uses when given none (``check``, ``survey``, ``about``; the survey spider)
DEFAULT_CONFIG = Path(__file__).parent.parent / "data" / "default-config.yaml"
SIGNAL_NAMES = SWITCHABLE_SIGNALS
USER_TYPES = table.USER_TYPES
FOLLOW_MODES = table.FOLLOW_MODES
#: the values of ``collect:`` (crawler/corpus/documents.py KINDS)
COLLECT_KINDS = table.COLLECT_KINDS
_TOKEN_RE = re.compile(r"^[A-Za-z_-]+$")
_CONTACT_RE = re.compile(r"(https?://\S+|mailto:\S+|\S+@\S+\.\S+)")


class ConfigError(ValueError):
    """A config that cannot be run. ``str()`` is one line naming the key or file at fault."""


def product_token(user_agent: str) -> str:
    """The product token of a User-Agent: the text before the first "/" (or space)."""
    return re.split(r"[/\s]", user_agent.strip(), maxsplit=1)[0]


def check_user_agent(user_agent: str, key: str = "user_agent") -> str:
    """Refuse a User-Agent without a valid product token and a contact URL."""
    if not isinstance(user_agent, str) or not user_agent.strip():
        raise ConfigError(f"{key}: required, e.g. 'MyCrawler/1.0 (+https://example.org/bot)'")
    token = product_token(user_agent)
    if not _TOKEN_RE.match(token):
        raise ConfigError(
            f"{key}: product token {token!r} (text before '/') may only contain letters, "
            "'_' and '-' (RFC 9309)"
        )
    if token.lower() == "scrapy":
        raise ConfigError(f"{key}: use your own product token, not Scrapy's default")
    if not _CONTACT_RE.search(user_agent):
        raise ConfigError(
            f"{key}: must contain a contact URL, e.g. '{token}/1.0 (+https://example.org/bot)'"
        )
    return token


@dataclass(frozen=True)
class JobConfig:
    path: Path | None
    job: str
    user_agent: str
    seeds: tuple[str, ...]
    max_pages: int = 0
    purpose: str = "train-ai"
    honor_agents: tuple[str, ...] = ()
    allow_private_networks: bool = False
    output_dir: Path = Path("out")
    signals: tuple[str, ...] = SIGNAL_NAMES
    follow: str = "same-origin"
    max_depth: int = 0
    audit_fsync: bool = False
    registries: tuple[dict[str, Any], ...] = ()
    warc: bool = False
    user_type: str = "commercial"
    country: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    #: cluster mode: the Redis server the workers share (``cluster: {redis_url: ...}``)
    cluster_redis_url: str | None = None
    #: the crawler's Ed25519 signing key (``identity: {key_file: PATH}``), resolved
    identity_key_file: Path | None = None
    #: where the crawler's key directory / agent card is published (``identity:
    #: {signature_agent: URL}``)
    signature_agent: str | None = None
    #: audit checkpoints: every this many records (0 = only at the end of each run)
    checkpoint_every: int = 1000
    #: RFC 3161 Time-Stamp Authority for the checkpoints (``audit: {tsa_url: URL}``)
    tsa_url: str | None = None
    tsa_timeout: float = 10.0
    #: seconds a request signature is valid (``identity: {signature_validity: 60}``)
    signature_validity: int | float | None = None
    #: pay per crawl (``payment: {max_price, budget, per_origin_budget}``), canonical price
    #: strings; None: payments off (a 402 is a refusal)
    payment: dict[str, str] | None = None
    #: what the corpus collects (``collect:``): html, text, pdf, image
    collect: tuple[str, ...] = ("html", "text")
    #: ``scope:`` include/exclude patterns and the per-origin page cap (crawler/policy/scope.py)
    scope: ScopeConfig = ScopeConfig()
    #: ``sitemaps:`` the walk's limits; None: sitemaps off (crawler/corpus/sitemaps.py)
    sitemaps: SitemapLimits | None = None
    #: ``text:`` main | visible (None: not given; POLITE_TEXT from ``settings:`` or default)
    text: str | None = None

    @property
    def token(self) -> str:
        return product_token(self.user_agent)

    def scrapy_settings(self) -> dict[str, Any]:
        """The Scrapy settings this job runs with (defaults < config ``settings:`` < keys)."""
        out: dict[str, Any] = dict(table.SCRAPY_DEFAULTS)
        out.update(self.settings)
        out.update(
            {
                "USER_AGENT": self.user_agent,
                "POLITE_JOB": self.job,
                "POLITE_USER_AGENT": self.user_agent,
                "POLITE_PURPOSE": self.purpose,
                "POLITE_HONOR_AGENTS": list(self.honor_agents),
                "POLITE_ALLOW_PRIVATE_NETWORKS": self.allow_private_networks,
                "POLITE_OUTPUT_DIR": str(self.output_dir),
                "POLITE_SIGNALS": list(self.signals),
                "POLITE_FOLLOW": self.follow,
                "POLITE_COLLECT": list(self.collect),
                "POLITE_AUDIT_FSYNC": self.audit_fsync,
                "POLITE_OPERATOR_USER_TYPE": self.user_type,
                "POLITE_OPERATOR_COUNTRY": self.country,
                "POLITE_REGISTRIES": [dict(r) for r in self.registries],
                "POLITE_WARC": self.warc,
                # the identity keys when given; else what ``settings:`` says (None by default)
                "POLITE_IDENTITY_KEY_FILE": (str(self.identity_key_file)
                                             if self.identity_key_file else
                                             self.settings.get("POLITE_IDENTITY_KEY_FILE")),
                "POLITE_AUDIT_CHECKPOINT_EVERY": self.checkpoint_every,
                "POLITE_AUDIT_TSA_URL": self.tsa_url,
                "POLITE_AUDIT_TSA_TIMEOUT": self.tsa_timeout,
                "POLITE_IDENTITY_SIGNATURE_AGENT": (
                    self.signature_agent or self.settings.get("POLITE_IDENTITY_SIGNATURE_AGENT")),
            }
        )
        if self.signature_validity is not None:
            out["POLITE_SIGNATURE_VALIDITY"] = self.signature_validity
        if self.payment is not None:
            out.update({"POLITE_PAYMENT_MAX_PRICE": self.payment["max_price"],
                        "POLITE_PAYMENT_BUDGET": self.payment["budget"],
                        "POLITE_PAYMENT_PER_ORIGIN_BUDGET": self.payment["per_origin_budget"]})
        if self.scope != ScopeConfig() or "POLITE_SCOPE" not in out:
            out["POLITE_SCOPE"] = self.scope.as_dict()
        if self.sitemaps is not None or "POLITE_SITEMAPS" not in out:
            out["POLITE_SITEMAPS"] = (dataclasses.asdict(self.sitemaps)
                                      if self.sitemaps is not None else None)
        if self.text is not None:
            out["POLITE_TEXT"] = self.text
        if self.max_pages:
            out["CLOSESPIDER_ITEMCOUNT"] = self.max_pages
        if self.max_depth:
            out["DEPTH_LIMIT"] = self.max_depth
        return out


def number_problem(key: str, value: Any) -> str | None:
    """Why ``value`` cannot be the number setting ``key`` holds, or None when it can.

    A NaN or infinite number, or a negative one, is refused: ``DOWNLOAD_DELAY: .nan`` would
    otherwise switch off the robots.txt Crawl-delay floor (every comparison with NaN is
    false). A string that ``float()`` reads (``"nan"``, ``"1e999"``, ``"-1"``: Scrapy's
    ``getfloat`` would) is judged as that number; other strings, booleans, None, lists and
    mappings are not numbers and pass. Keys naming a priority (``DEPTH_PRIORITY``,
    ``RETRY_PRIORITY_ADJUST``) may be negative, never NaN or infinite.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            number: float | int = float(value)
        except ValueError:
            return None
    elif isinstance(value, (int, float)):
        number = value
    else:
        return None
    if isinstance(number, float) and not math.isfinite(number):
        return f"{value!r} is not a finite number"
    if number < 0 and "PRIORITY" not in key:
        return f"{value!r} is negative (numbers must be 0 or more)"
    return None


def _expect(data: dict[str, Any], key: str, types: type | tuple[type, ...], default: Any) -> Any:
    value = data.get(key, default)
    if value is default:
        return value
    # bool is an int subclass: refuse True where a number is expected, and vice versa
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ConfigError(f"{key}: expected {_typename(types)}, got a boolean{_hint(key)}")
    if not isinstance(value, types):
        raise ConfigError(f"{key}: expected {_typename(types)}, got {type(value).__name__}"
                          f"{_hint(key)}")
    return value


def _hint(key: str) -> str:
    """`` (setting POLITE_X)`` for a job config key that is a setting's other spelling."""
    row = table.BY_YAML.get(key)
    return f" (setting {row.name})" if row else ""


def _typename(types: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true/false",
             list: "a list", dict: "a mapping"}
    ts = types if isinstance(types, tuple) else (types,)
    return " or ".join(names.get(t, t.__name__) for t in ts)


def _str_list(data: dict[str, Any], key: str) -> tuple[str, ...]:
    value = _expect(data, key, list, [])
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ConfigError(f"{key}[{i}]: expected a string, got {type(item).__name__}")
    return tuple(value)


KNOWN_KEYS = {
    "job", "user_agent", "seeds", "max_pages", "purpose", "honor_agents", "registries",
    "allow_private_networks", "output_dir", "settings", "signals", "follow", "max_depth",
    "audit_fsync", "operator", "output", "cluster", "identity", "audit", "payment",
    "collect", "scope", "sitemaps", "text",
}


def parse_config(data: Any, *, path: Path | None = None) -> JobConfig:
    """Validate a config mapping (as loaded from YAML)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping of keys at the top level")
    unknown = sorted(set(map(str, data)) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown key (known: {', '.join(sorted(KNOWN_KEYS))})")
    base = path.parent if path else Path.cwd()

    job = _expect(data, "job", str, path.stem if path else "default")
    user_agent = _expect(data, "user_agent", str, "")
    check_user_agent(user_agent)

    seeds = _str_list(data, "seeds")
    for i, seed in enumerate(seeds):
        parts = urlsplit(seed)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"seeds[{i}]: {seed!r} is not an http(s) URL")

    max_pages = _expect(data, "max_pages", int, 0)
    if max_pages < 0:
        raise ConfigError("max_pages: must be 0 (no limit) or more")
    purpose = _expect(data, "purpose", str, "train-ai")
    if purpose not in PURPOSES:
        raise ConfigError(f"purpose: {purpose!r} is not one of {', '.join(PURPOSES)}"
                          f"{_hint('purpose')}")
    honor = _str_list(data, "honor_agents")
    for i, token in enumerate(honor):
        if not _TOKEN_RE.match(token):
            raise ConfigError(f"honor_agents[{i}]: {token!r} is not a product token (RFC 9309)")

    registries = tuple(_registry(i, r, base) for i, r in
                       enumerate(_expect(data, "registries", list, [])))

    allow_private = _expect(data, "allow_private_networks", bool, False)
    output_dir = Path(_expect(data, "output_dir", str, f"out/{job}"))
    if "%(" in str(output_dir):  # the commands read and write the directory the config names
        raise ConfigError("output_dir: %(...)s placeholders are for the POLITE_OUTPUT_DIR "
                          "setting of a Scrapy project; a job config names its directory")
    if not output_dir.is_absolute():
        output_dir = base / output_dir

    signals_cfg = _expect(data, "signals", dict, {})
    for name, on in signals_cfg.items():
        if name not in SIGNAL_NAMES:
            raise ConfigError(f"signals.{name}: unknown signal (known: {', '.join(SIGNAL_NAMES)})")
        if not isinstance(on, bool):
            raise ConfigError(f"signals.{name}: expected true/false")
    signals = tuple(n for n in SIGNAL_NAMES if signals_cfg.get(n, True))

    follow = _expect(data, "follow", str, "same-origin")
    if follow not in FOLLOW_MODES:
        raise ConfigError(f"follow: {follow!r} is not one of {', '.join(FOLLOW_MODES)}"
                          f"{_hint('follow')}")
    collect = check_collect(_str_list(data, "collect") if "collect" in data
                            else table.COLLECT_DEFAULT, "collect")
    max_depth = _expect(data, "max_depth", int, 0)
    if max_depth < 0:
        raise ConfigError("max_depth: must be 0 (no limit) or more")
    audit_fsync = _expect(data, "audit_fsync", bool, False)
    text = _expect(data, "text", str, None)
    if text is not None and text not in TEXT_MODES:
        raise ConfigError(f"text: {text!r} is not one of {', '.join(TEXT_MODES)}{_hint('text')}")
    output = _expect(data, "output", dict, {})
    for key, value in output.items():
        if key != "warc":
            raise ConfigError(f"output.{key}: unknown key (known: warc)")
        if not isinstance(value, bool):
            raise ConfigError("output.warc: expected true/false")
    operator = _expect(data, "operator", dict, {})
    for key in operator:
        if key not in ("user_type", "country"):
            raise ConfigError(f"operator.{key}: unknown key (known: user_type, country)")
    user_type = operator.get("user_type", "commercial")
    if user_type not in USER_TYPES:
        raise ConfigError(f"operator.user_type: {user_type!r} is not one of "
                          f"{', '.join(USER_TYPES)}{_hint('operator.user_type')}")
    country = operator.get("country")
    if country is not None and not (isinstance(country, str) and re.match(r"^[A-Z]{2}$",
                                                                           country)):
        raise ConfigError("operator.country: an ISO 3166-1 alpha-2 code such as DE"
                          + _hint("operator.country"))

    cluster = _expect(data, "cluster", dict, {})
    for key in cluster:
        if key != "redis_url":
            raise ConfigError(f"cluster.{key}: unknown key (known: redis_url)")
    redis_url = cluster.get("redis_url")
    if cluster and not (isinstance(redis_url, str)
                        and redis_url.startswith(("redis://", "rediss://", "unix://"))):
        raise ConfigError("cluster.redis_url: a redis://host:port/db URL is required"
                          + _hint("cluster.redis_url"))

    identity = _expect(data, "identity", dict, {})
    for key in identity:
        if key not in ("key_file", "signature_agent", "signature_validity"):
            raise ConfigError(f"identity.{key}: unknown key (known: key_file, signature_agent, "
                              "signature_validity)")
    key_file = identity.get("key_file")
    if key_file is not None and not (isinstance(key_file, str) and key_file):
        raise ConfigError("identity.key_file: the path of a key made by "
                          "`polite-crawl identity init`")
    key_path = None
    if key_file:
        key_path = Path(key_file).expanduser()
        if not key_path.is_absolute():
            key_path = base / key_path
    agent_url = identity.get("signature_agent")
    if agent_url is not None and not (isinstance(agent_url, str)
                                      and urlsplit(agent_url).scheme == "https"):
        raise ConfigError("identity.signature_agent: an https:// URL"
                          + _hint("identity.signature_agent"))
    validity = identity.get("signature_validity")
    if validity is not None and (isinstance(validity, bool)
                                 or not isinstance(validity, (int, float))
                                 or not math.isfinite(validity) or not 1 <= validity <= 3600):
        raise ConfigError("identity.signature_validity: seconds a request signature is valid, "
                          "1 to 3600" + _hint("identity.signature_validity"))
    payment = _payment(data.get("payment"), key_path, agent_url, signals)

    audit = _expect(data, "audit", dict, {})
    for key in audit:
        if key not in ("checkpoint_every", "tsa_url", "tsa_timeout"):
            raise ConfigError(f"audit.{key}: unknown key (known: checkpoint_every, tsa_url, "
                              "tsa_timeout)")
    every = audit.get("checkpoint_every", 1000)
    if isinstance(every, bool) or not isinstance(every, int) or every < 0:
        raise ConfigError("audit.checkpoint_every: a whole number of records, 0 or more "
                          "(0 = only at the end of each run)" + _hint("audit.checkpoint_every"))
    tsa_url = audit.get("tsa_url")
    if tsa_url is not None and not (isinstance(tsa_url, str)
                                    and urlsplit(tsa_url).scheme in ("http", "https")
                                    and urlsplit(tsa_url).hostname):
        raise ConfigError("audit.tsa_url: an http(s):// URL of an RFC 3161 Time-Stamp "
                          "Authority" + _hint("audit.tsa_url"))
    tsa_timeout = audit.get("tsa_timeout", 10.0)
    if isinstance(tsa_timeout, bool) or not isinstance(tsa_timeout, (int, float)) or \
            number_problem("audit.tsa_timeout", tsa_timeout) or tsa_timeout <= 0:
        raise ConfigError("audit.tsa_timeout: seconds, a finite number above 0"
                          + _hint("audit.tsa_timeout"))

    try:
        scope = scope_config(data.get("scope"))          # empty: every URL, no cap
        sitemaps = sitemap_config(data.get("sitemaps"))  # None: off
    except ValueError as exc:
        raise ConfigError(str(exc)) from None            # "scope.include[2]: ..." etc.

    settings = _expect(data, "settings", dict, {})
    for key in settings:
        if not isinstance(key, str) or not re.match(r"^[A-Z][A-Z0-9_]*$", key):
            raise ConfigError(f"settings.{key}: Scrapy setting names are UPPER_CASE")
        if key in ("USER_AGENT", "ROBOTSTXT_OBEY"):
            raise ConfigError(f"settings.{key}: set by polite-crawler itself; use user_agent")
        problem = number_problem(key, settings[key])
        if problem:
            raise ConfigError(f"settings.{key}: {problem}")
        if key.startswith("POLITE_"):
            _check_polite_setting(key, settings[key], base)

    return JobConfig(
        path=path, job=job, user_agent=user_agent, seeds=seeds, max_pages=max_pages,
        purpose=purpose, honor_agents=honor, allow_private_networks=allow_private,
        output_dir=output_dir, signals=signals, follow=follow, max_depth=max_depth,
        audit_fsync=audit_fsync, registries=registries, warc=bool(output.get("warc", False)),
        user_type=user_type, country=country,
        settings=dict(settings), cluster_redis_url=redis_url,
        identity_key_file=key_path, signature_agent=agent_url, checkpoint_every=every,
        tsa_url=tsa_url, tsa_timeout=float(tsa_timeout), signature_validity=validity,
        payment=payment, collect=collect, scope=scope, sitemaps=sitemaps, text=text,
    )


def check_collect(value: Any, key: str = "collect") -> tuple[str, ...]:
    """``collect:`` / ``POLITE_COLLECT`` validated: a list of :data:`COLLECT_KINDS`, not
    empty; ``pdf`` needs the documents extra (pypdf), else the one-line :class:`MissingExtra`
    message as a :class:`ConfigError`."""
    from crawler.extras import MissingExtra, require

    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"{key}: expected a list such as [html, text, pdf, image]")
    for i, kind in enumerate(value):
        if kind not in COLLECT_KINDS:
            raise ConfigError(f"{key}[{i}]: {kind!r} is not one of {', '.join(COLLECT_KINDS)}")
    if not value:
        raise ConfigError(f"{key}: empty (collect at least one of {', '.join(COLLECT_KINDS)})")
    if "pdf" in value:
        try:
            require("pypdf", "documents", f"{key}: [pdf]")
        except MissingExtra as exc:
            raise ConfigError(str(exc)) from None
    return tuple(dict.fromkeys(value))


def _payment(value: Any, key_file: Path | None, agent: str | None,
             signals: tuple[str, ...]) -> dict[str, str] | None:
    """``payment:`` validated (crawler.policy.payment's grammar), as canonical price strings; None
    when absent. Paying needs a signed request (Cloudflare takes payment only from Web Bot
    Auth verified bots) and the payment-required signal (the 402 rule payment answers)."""
    from crawler.policy.ledger import PaymentConfigError, PaymentPolicy

    if value is None:
        return None
    try:
        policy = PaymentPolicy.from_config(value)
    except PaymentConfigError as exc:
        raise ConfigError(str(exc).replace("payment.:", "payment:", 1)) from None
    assert policy is not None
    if key_file is None or not agent:
        missing = " and ".join(k for k, v in (("identity.key_file", key_file),
                                              ("identity.signature_agent", agent)) if not v)
        raise ConfigError(f"payment: paying needs signed requests (Web Bot Auth: Cloudflare "
                          f"takes payment only from verified bots): set {missing} "
                          "(`polite-crawl identity init` makes a key)")
    if "payment-required" not in signals:
        raise ConfigError("payment: needs the payment-required signal (signals.payment-"
                          "required is false: a 402 would be neither refused nor paid)")
    return {"max_price": str(policy.max_price), "budget": str(policy.budget),
            "per_origin_budget": str(policy.per_origin_budget)}


def _check_polite_setting(key: str, value: Any, base: Path) -> None:
    """A ``POLITE_*`` setting under a config's ``settings:``, checked against the settings
    table (:mod:`crawler.config.table`): ``settings.POLITE_X: problem``, naming the job config
    key too where there is one."""
    row = table.BY_NAME.get(key)
    if row is None:
        raise ConfigError(f"settings.{key}: unknown polite-crawler setting (see the README's "
                          "settings table, crawler/config/table.py)")
    problem = table.problem(key, value)
    if problem is None and key == "POLITE_REGISTRIES" and value is not None:
        try:
            check_registries(value, base=base)
        except ConfigError as exc:  # settings.POLITE_REGISTRIES[0].type: ...
            raise ConfigError(f"settings.{exc}") from None
    if problem:
        also = f" (job config key: {row.yaml})" if row.yaml else ""
        raise ConfigError(f"settings.{key}: {problem}{also}")


def check_settings(settings: Any, *, base: Path | None = None) -> None:
    """Every ``POLITE_*`` setting ``settings`` holds (a Scrapy ``Settings`` or a mapping),
    checked against the settings table, ``POLITE_REGISTRIES`` entry by entry as a config's
    ``registries:``: a bad value raises :class:`ConfigError`, one line naming both spellings
    (``POLITE_X (job config: x): ...``). How the crawl start checks a Scrapy project's
    settings, ``-s`` values included."""
    try:
        table.check_settings(settings)
    except table.SettingsError as exc:
        raise ConfigError(str(exc)) from None
    registries = settings.get("POLITE_REGISTRIES")
    if registries:
        check_registries(registries, base=base)


def check_registries(value: Any, *, base: Path | None = None) -> tuple[dict[str, Any], ...]:
    """``POLITE_REGISTRIES`` (a list of ``registries:`` entries) validated as a config's
    ``registries:`` (relative paths from ``base``, default the working directory): a bad entry
    raises :class:`ConfigError` ``POLITE_REGISTRIES[i].field: ... (job config: registries)``,
    never a KeyError later."""
    name = table.spelling("POLITE_REGISTRIES")
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"{name}: expected a list of mappings such as "
                          "{type: file, path: list.txt}")
    out = []
    for i, spec in enumerate(value):
        try:
            out.append(_registry(i, spec, base or Path.cwd()))
        except ConfigError as exc:
            where, _, why = str(exc).partition(": ")
            raise ConfigError(f"POLITE_REGISTRIES{where.removeprefix('registries')}: {why} "
                              f"(job config: {where})") from None
    return tuple(out)


REGISTRY_KEYS = {
    "file": {"type", "path", "name"},
    "sqlite": {"type", "path", "name"},
    "http": {"type", "url", "format", "name", "api_key_env", "batch_size", "max_wait",
             "timeout", "retries"},
}


def _registry(i: int, spec: Any, base: Path) -> dict[str, Any]:
    """One ``registries:`` entry, validated; paths made absolute; the API key read from the
    environment variable the entry names (never from the config itself)."""
    key = f"registries[{i}]"
    if not isinstance(spec, dict):
        raise ConfigError(f"{key}: expected a mapping such as {{type: file, path: list.txt}}")
    kind = spec.get("type")
    if kind not in REGISTRY_KEYS:
        raise ConfigError(f"{key}.type: {kind!r} is not one of file, sqlite, http")
    unknown = sorted(set(map(str, spec)) - REGISTRY_KEYS[kind])
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}: unknown key for a {kind} registry")
    out: dict[str, Any] = {"type": kind}
    name = spec.get("name")
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"{key}.name: expected a string")
    if kind in ("file", "sqlite"):
        raw = spec.get("path")
        if not isinstance(raw, str) or not raw:
            raise ConfigError(f"{key}.path: required, the {kind} registry's file")
        path = Path(raw) if Path(raw).is_absolute() else base / raw
        if not path.is_file():
            raise ConfigError(f"{key}.path: {path} not found")
        out.update(path=str(path), name=name or path.name)
        return out
    url = spec.get("url")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{key}.url: an http(s) URL of the registry API is required")
    fmt = spec.get("format", "spawning")
    if fmt != "spawning":
        raise ConfigError(f"{key}.format: {fmt!r} is not supported (supported: spawning)")
    env = spec.get("api_key_env")
    if env is not None:  # the key itself is read at run time, never stored in settings/logs
        if not isinstance(env, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", env):
            raise ConfigError(f"{key}.api_key_env: the name of an environment variable")
        if not os.environ.get(env):
            raise ConfigError(f"{key}.api_key_env: environment variable {env} is not set")
    numbers = {"batch_size": (int, 100, 1, 10_000), "max_wait": ((int, float), 0.1, 0, 60),
               "timeout": ((int, float), 20, 1, 600), "retries": (int, 3, 0, 10)}
    for field_name, (types, default, lo, hi) in numbers.items():
        value = spec.get(field_name, default)
        if (isinstance(value, bool) or not isinstance(value, types)
                or not math.isfinite(value) or not lo <= value <= hi):
            raise ConfigError(f"{key}.{field_name}: a number from {lo} to {hi}")
        out[field_name] = value
    out.update(url=url, format=fmt, name=name or parts.netloc, api_key_env=env)
    return out


def load_config(path: str | Path) -> JobConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read config ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{p}:{where} invalid YAML") from None
    return parse_config(data, path=p.resolve())
