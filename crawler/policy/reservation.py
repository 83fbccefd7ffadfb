"""The reservation policy: which statements bind this crawl, and what a failed fetch means.

Sans-IO: per-origin file outcomes, header values and parsed HTML go in; a :class:`Verdict`
with the evidence comes out. The Scrapy glue (``middlewares.py``) calls four stages, each as
early as its signals can be known:

1. :meth:`Policy.before_fetch`: site-level signals (robots.txt and the Content-Usage,
   Content-Signal and License lines in it, tdmrep.json, ai.txt, RSL licences named by
   robots.txt). A URL they reserve is never requested.
2. :meth:`Policy.at_headers`: response headers (``tdm-reservation``, ``X-Robots-Tag``,
   ``Content-Usage``, ``Content-Signal``, ``crawler-price``); a reserved response is cut off
   at the headers, its body never downloaded.
3. :meth:`Policy.at_response`: the status (402, 401, 403) and RSL licences named by a
   ``Link`` header.
4. :meth:`Policy.at_document`: HTML ``<meta>`` and ``<link rel="license">``, before any item.

Statements are read in each protocol's vocabulary; :data:`TERM_PURPOSES` is the one table
that says which crawl purposes each term binds. Any binding "no" denies (most restrictive
wins) and every binding statement is listed in the record, not just the first.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from crawler.optout import aipref, aitxt, c2pa, contentsignal, embedded, noai, rsl
from crawler.optout import content as content_mod
from crawler.optout import robots as robots_mod
from crawler.optout import tdmrep as tdm
from crawler.optout.htmlmeta import HtmlHead
from crawler.optout.model import Evidence, SiteFile, Statement

#: Bump when the meaning of any row below changes; it is part of every record's policy hash.
POLICY_VERSION = "1"

#: What a per-origin fetch outcome means. One table, printed in the README.
FAILURE_POLICY: tuple[tuple[str, str, str, str], ...] = (
    ("robots.txt", "2xx", "parse and obey", "RFC 9309 2.3.1.1"),
    ("robots.txt", "3xx", ("follow up to 5 hops; the file reached applies to the original "
     "origin; more hops = deny all"), "RFC 9309 2.3.1.2 (stricter: RFC allows allow-all)"),
    ("robots.txt", "4xx except 429", "no restrictions (allow all)", "RFC 9309 2.3.1.3"),
    ("robots.txt", "429, 5xx, timeout, DNS/TCP/TLS error", ("deny all (fail closed); the URL "
     "is decided again after a doubling backoff, twice, then refused for good"),
     "RFC 9309 2.3.1.4"),
    ("robots.txt", "over 512,000 bytes", ("first 512,000 bytes parsed; the line the limit cuts "
     "is dropped"), "RFC 9309 2.5"),
    ("robots.txt", ("cut at the download cap (POLITE_PREFLIGHT_MAXSIZE, of the bytes received "
     "or decoded) after 512,000 bytes or more"), ("the first 512,000 bytes parsed, the line the "
     "limit cuts dropped; the cut is in the evidence"), "RFC 9309 2.5 (parsing limit)"),
    ("robots.txt", "cut at the download cap before 512,000 bytes (a cap set below it)",
     "unreachable: deny all, decided again after the backoff",
     "RFC 9309 2.5 (the limit MUST be at least 500 KiB)"),
    ("robots.txt", ("2xx whose body cannot be decoded (unknown Content-Encoding; corrupt, "
     "truncated or trailing-garbage gzip/deflate/br/zstd stream)"), ("unreachable: deny all, "
     "decided again after the backoff"), "project rule (fail closed)"),
    ("robots.txt", "UTF-16 or UTF-32 with a byte order mark", ("converted to UTF-8 and obeyed "
     "(problem recorded); other bytes are read as UTF-8 with replacement"),
     "RFC 9309 2.3 (lenient reading)"),
    ("tdmrep.json", "2xx, valid JSON array", "first matching rule applies", "TDMRep 3.2"),
    ("tdmrep.json", "4xx, or 2xx that is not a TDMRep array", "TDMRep not used (unset)",
     "TDMRep 3.2"),
    ("tdmrep.json", "429, 5xx, timeout, network error", ("deny all (fail closed); decided "
     "again after a backoff, as for robots.txt"), "project rule (spec: 'not implemented')"),
    ("tdmrep.json", ("cut at the download cap, over 1 MiB, or a 2xx whose body cannot be "
     "decoded"), "undetermined: deny all, decided again after a backoff",
     "project rule (fail closed)"),
    ("tdmrep.json", "UTF-16 or UTF-32 with a byte order mark", ("converted to UTF-8 and read "
     "(problem recorded)"), "project rule (RFC 8259 asks for UTF-8)"),
    ("tdm-reservation value", "not 0 or 1", "unset; string \"1\" and JSON true read as 1",
     "TDMRep 3.1 (conservative reading)"),
    ("ai.txt", "2xx in Spawning's robots-style format", "obey for AI training", "Spawning"),
    ("ai.txt", "4xx, or prose/Markdown/HTML (another 'ai.txt')", "no statement", "digest REC"),
    ("ai.txt", "429, 5xx, timeout, network error", ("deny (fail closed), decided again "
     "later"), "digest REC ('do not treat as consent')"),
    ("ai.txt", "over 512,000 bytes (within the download cap)", ("read to its end: no parsing "
     "limit applies"), "project rule"),
    ("ai.txt", "cut at the download cap, or a 2xx whose body cannot be decoded", ("undetermined: "
     "deny, decided again later"), "project rule (fail closed)"),
    ("ai.txt", "UTF-16 or UTF-32 with a byte order mark", ("converted to UTF-8 and read "
     "(problem recorded)"), "project rule"),
    ("RSL licence", "2xx valid RSL", ("the <content> matching the URL applies; a use that is "
     "prohibited, not permitted, paid or needs a licence server = reserved"), "RSL 1.0"),
    ("RSL licence", "named but 4xx, invalid, or with a DTD/entities", ("no AI use licensed "
     "(search unaffected)"), "project rule (conservative)"),
    ("RSL licence", "429, 5xx, timeout, network error", ("deny (fail closed), decided again "
     "later"), "RSL 'do not assume permission'"),
    ("RSL licence", ("cut at the download cap, over 1 MiB, or a 2xx whose body cannot be "
     "decoded"), "undetermined: deny, decided again later", "project rule (fail closed)"),
    ("HTML page", ("head not closed within its first 1 MiB, or the body ends (cut, or not "
     "fully decodable) before the head does"), ("refused: its reservations undetermined (signal "
     "network, channel html-head)"), "project rule (fail closed)"),
    ("HTML page", ("served with no Content-Type, as text/plain (or another text/*, "
     "octet-stream), or XHTML as XML"), ("sniffed (WHATWG MIME Sniffing HTML patterns, XML "
     "root element) and its head checked like any HTML page"),
     "MIME Sniffing 7.1 (wider: text/* too)"),
    ("page body", ("cannot be decoded (unknown Content-Encoding; corrupt or truncated stream), "
     "or over DOWNLOAD_MAXSIZE once decoded"), ("refused with a record (signal network, "
     "channel body); nothing of it stored"), "project rule (fail closed)"),
    ("Content-Usage value", "not a valid Structured Fields dictionary", "no preference",
     "AIPREF vocab"),
    ("Content-Signal value", "unknown value (e.g. maybe)", "that use unknown", "Content Signals"),
    ("HTTP status", "402 (or a crawler-price header), 401, 403", ("deny, never retried, "
     "never circumvented"), "Cloudflare pay per crawl; CoP 1.2"),
    ("HTTP status", ("402 with a crawler-price, when payment: is configured (requests signed, "
     "Web Bot Auth)"), ("paid once (crawler-exact-price) when the price is at or under "
     "max_price, within both budgets and nothing else reserves the response; otherwise deny; "
     "crawler-error values per the pay-per-crawl table"), "Cloudflare pay per crawl; project "
     "rule (budgets)"),
    ("payment state", ("the budget cannot be read or written (Redis down or garbled), or the "
     "audit log's payment records cannot be read on resume"), ("nothing is paid: the 402 is "
     "refused, with a record"), "project rule (fail closed)"),
    ("any target", "loopback/private/link-local/metadata address", ("deny (signal network) "
     "unless allow_private_networks"), "project rule"),
    # documents beyond HTML (collect: pdf, image): the reservations written inside the file,
    # read before anything of it is stored (crawler.optout.embedded, crawler.optout.xmp)
    ("document (not HTML)", ("cut (download stopped, dataloss, a Content-Length not met) or "
     "not fully decodable"), "undetermined: refused, nothing stored (signal network, channel "
     "embedded)", "project rule (fail closed)"),
    ("embedded XMP", ("JPEG, PNG, WebP, GIF or TIFF cut or corrupt where a packet may be (a "
     "segment, chunk, IFD or tag value past the end; no IEND, RIFF end or GIF trailer; PNG "
     "text chunk CRC mismatch; BigTIFF)"), "undetermined: refused, nothing stored",
     "project rule (fail closed)"),
    ("embedded XMP", "JPEG cut or corrupt after its first SOS marker", ("read: every metadata "
     "segment is before it"), "Adobe XMP Toolkit (JPEG handler quits at the first SOS)"),
    ("embedded XMP", ("packet not well-formed, with a DTD or entities, over 1 MiB, or over 4 "
     "MiB per file (inflated chunks included)"), "undetermined: refused",
     "project rule (fail closed)"),
    ("embedded XMP", "JPEG Extended XMP named by the main packet but missing or incomplete",
     "undetermined: refused", "XMP Part 3"),
    ("embedded XMP", "Extended XMP not named by the main packet", "ignored (problem recorded)",
     "XMP Part 3"),
    ("PDF metadata", ("no startxref in the last 4096 bytes, or objects after it (an update "
     "without its trailer), encrypted metadata, a filter other than FlateDecode"),
     "undetermined: refused", "project rule (fail closed)"),
    ("PDF metadata", "cross-reference data that cannot be read", ("objects recovered by "
     "scanning; undetermined when there are object streams, several catalogs, or versions of the "
     "catalog or metadata object that differ"), "ISO 32000-1 7.5.6 (incremental updates); "
     "project rule"),
    ("PDF metadata", "a PDF cut exactly at the end of an earlier revision", ("read as that "
     "revision: only the transport check (Content-Length, strict decoding) can tell"),
     "ISO 32000-1 7.5.6"),
    ("EPUB", ("not a readable ZIP, container.xml or package document missing or encrypted, a "
     "member over 1 MiB inflated (zip bomb), a DTD or entities"), "undetermined: refused",
     "project rule (fail closed)"),
    ("other binary", ("packet without its end wrapper, UTF-16/32 wrapper, x:xmpmeta without a "
     "wrapper; a compressed archive (ZIP, gzip, 7z, xz, bzip2, zstd, RAR)"),
     "undetermined: refused", "XMP Part 1 (packet scanning); project rule"),
    ("plus:DataMining value", "not in the PLUS vocabulary", ("unset (problem recorded); "
     "DMI-PROHIBITED-… with an unknown suffix read as DMI-PROHIBITED"),
     "IPTC Photo Metadata 2023.1 (conservative reading)"),
    ("plus:DataMining value", "several values in one file", ("the most restrictive; ALLOWED "
     "beside a prohibition dropped"), "project rule"),
    ("tdm:reservation (in a file)", "not 0 or 1", "unset; a quoted \"1\" read as 1",
     "TDMRep 3.1 (conservative reading)"),
    ("C2PA manifest", ("the bytes show a store the library cannot read to its end (cut, "
     "damaged, a validation code saying part is undecodable or missing, no store found where "
     "the bytes show one), over 64 MiB, over 64 manifests or an ingredient chain deeper than "
     "16; only a remote manifest reference; c2pa-python not installed"),
     "undetermined: refused, nothing stored", "project rule (fail closed)"),
    ("C2PA manifest", ("training-mining use constrained, not one of allowed / notAllowed / "
     "constrained, or an assertion without entries"), "read as notAllowed",
     "CAWG 1.1 §3.1 (conservative reading)"),
    ("C2PA manifest", "allowed in an ingredient's manifest or in an Invalid manifest",
     "not permission (dropped, problem recorded); a notAllowed in any manifest binds",
     "project rule (conservative)"),
    ("sitemap", "2xx", "its URLs, within the sitemap rules, each decided like any link",
     "sitemaps.org"),
    ("sitemap", "refused by a reservation, 4xx, 5xx, network error", ("not read; the walk "
     "records why; no retry in this run"), "project rule (discovery only)"),
    ("sitemap", "cut, corrupt, over a limit", ("the entries read completely before the fault; "
     "problem recorded"), "project rule (discovery, not a reservation)"),
    ("sitemap", "with a DTD or entities", "not read", "project rule"),
    ("page", "outside scope.include / inside scope.exclude", ("never requested (counted; a "
     "seed or a URL another spider yields: refused with a record, signal scope)"), "config"),
    ("page", "its origin reached scope.max_pages_per_origin", ("refused with a record (signal "
     "scope)"), "config"),
)

PURPOSES = ("train-ai", "train-genai", "search", "ai-input")
_ALL = frozenset(PURPOSES)
_TRAIN = frozenset({"train-ai", "train-genai"})
_AI = frozenset({"train-ai", "train-genai", "ai-input"})

#: Signals the operator can switch off (``network`` — unreachable files, private addresses —
#: cannot be: it is how the crawl fails closed).
SWITCHABLE_SIGNALS = ("robots", "tdmrep", "noai", "ai-txt", "content-usage", "content-signal",
                      "rsl", "payment-required", "iptc", "c2pa")
#: Signals read from inside a document (:meth:`Policy.at_embedded`): with every one of them
#: off, the document stage reads nothing.
EMBEDDED_SIGNALS = ("iptc", "tdmrep", "c2pa")

#: The one table: (signal, term as the protocol words it) -> the crawl purposes a "no" binds.
#: A term that is not listed binds nothing (recorded as evidence all the same).
TERM_PURPOSES: Mapping[tuple[str, str], frozenset[str]] = {
    # robots.txt governs access itself: a disallowed URL is not fetched, whatever the use.
    ("robots", "disallow"): _ALL,
    # TDMRep reserves text and data mining, which every purpose we collect for involves.
    ("tdmrep", "tdm-reservation"): _ALL,
    # noai / noimageai / noml: "not for AI datasets"; noarchive: Bing's training opt-out
    # (conservative). noimageai binds images only (see IMAGE_ONLY_TERMS). Not search.
    ("noai", "noai"): _AI,
    ("noai", "noimageai"): _AI,
    ("noai", "noml"): _TRAIN,
    ("noai", "noarchive"): _TRAIN,
    # Spawning ai.txt: datasets for AI training.
    ("ai-txt", "ai-train"): _TRAIN,
    # IETF AIPREF vocab-07: train-ai, search. Legacy labels of earlier drafts read as the
    # training opt-outs their authors meant (digest REC).
    ("content-usage", "train-ai"): _TRAIN,
    ("content-usage", "search"): frozenset({"search"}),
    ("content-usage", "train-genai"): _TRAIN,
    ("content-usage", "ai"): _TRAIN,
    ("content-usage", "genai"): _TRAIN,
    ("content-usage", "all"): _ALL,
    ("content-usage", "bots"): _ALL,
    ("content-usage", "tdm"): _ALL,
    # Cloudflare Content Signals.
    ("content-signal", "ai-train"): _TRAIN,
    ("content-signal", "search"): frozenset({"search"}),
    ("content-signal", "ai-input"): frozenset({"ai-input"}),
    # RSL usages (ai-all / all are expanded by the parser).
    ("rsl", "ai-train"): _TRAIN,
    ("rsl", "ai-input"): frozenset({"ai-input"}),
    ("rsl", "ai-index"): frozenset({"ai-input"}),
    ("rsl", "search"): frozenset({"search"}),
    # Opt-out registries (Spawning's API, local lists, piracy-site lists): no use at all.
    ("registry", "opt-out"): _ALL,
    # HTTP 402 (pay per crawl) and 401/403: content we may not take without an agreement.
    ("payment-required", "402"): _ALL,
    ("payment-required", "crawler-price"): _ALL,
    ("payment-required", "401"): _ALL,
    ("payment-required", "403"): _ALL,
    # IPTC Photo Metadata "Data Mining" (plus:DataMining) embedded in a file
    # (crawler.optout.embedded; dmi-allowed is a "yes", dmi-unspecified has no row).
    **embedded.TERM_ROWS,
    # C2PA / CAWG training-and-mining assertions in a file's Content Credentials
    # (crawler.optout.c2pa; an allowed counts only from a valid active manifest).
    **c2pa.TERM_ROWS,
}
#: Terms that bind only when the resource itself is an image.
IMAGE_ONLY_TERMS = frozenset({("noai", "noimageai")})

#: Which per-origin files each signal needs.
_FILES_FOR = {
    "robots": ("robots.txt",),
    "content-usage": ("robots.txt",),
    "content-signal": ("robots.txt",),
    "rsl": ("robots.txt",),
    "tdmrep": ("tdmrep.json",),
    "ai-txt": ("ai.txt",),
}


@dataclass(frozen=True, slots=True)
class Verdict:
    decision: str                      # 'allow' | 'deny'
    reasons: tuple[Evidence, ...]      # the statements that denied (empty for allow)
    checks: tuple[Evidence, ...]       # everything checked at this stage
    #: ``checks`` as record dicts, made once (a verdict of a site plan serves many URLs)
    _dicts: tuple[dict[str, Any], ...] | None = field(default=None, init=False, compare=False,
                                                      repr=False)
    #: :attr:`undetermined`, once asked (neither cache is an argument: ``replace()`` of a
    #: verdict starts both afresh)
    _undetermined: bool | None = field(default=None, init=False, compare=False, repr=False)

    @property
    def denied(self) -> bool:
        return self.decision == "deny"

    def check_dicts(self) -> list[dict[str, Any]]:
        """``[e.to_dict() for e in self.checks]``: fresh dicts (and problem lists) each call."""
        cached = self._dicts
        if cached is None:
            cached = tuple(e.to_dict() for e in self.checks)
            object.__setattr__(self, "_dicts", cached)
        return [_copy_dict(d) if "problems" in d else d.copy() for d in cached]

    def reason_dicts(self) -> list[dict[str, Any]]:
        """``[e.to_dict() for e in self.reasons]`` (fresh dicts)."""
        if not self.reasons:
            return []
        cached = self._dicts
        if cached is None:
            self.check_dicts()
            cached = self._dicts
        out = []
        for r in self.reasons:
            for e, d in zip(self.checks, cached):  # type: ignore[arg-type]
                if e is r:
                    out.append(_copy_dict(d))
                    break
            else:
                out.append(r.to_dict())
        return out

    @property
    def undetermined(self) -> bool:
        """Denied only because a per-origin file could not be fetched (worth a later retry)."""
        known = self._undetermined
        if known is None:
            known = self.denied and all(
                r.signal == "network" and r.channel not in ("address", "preflight")
                for r in self.reasons
            )
            object.__setattr__(self, "_undetermined", known)  # (a site plan's verdicts repeat)
        return known


def _copy_dict(d: dict[str, Any]) -> dict[str, Any]:
    out = dict(d)
    problems = out.get("problems")
    if problems is not None:
        out["problems"] = list(problems)
    return out


def _verdict(checks: Sequence[Evidence]) -> Verdict:
    reasons = tuple(e for e in checks if e.outcome == "deny")
    return Verdict("deny" if reasons else "allow", reasons, tuple(checks))


def verdict_of(checks: Sequence[Evidence]) -> Verdict:
    """The verdict of a list of evidence (any deny wins)."""
    return _verdict(checks)


def merge_verdicts(*verdicts: Verdict) -> Verdict:
    """One verdict from several stages' (any deny wins; every check kept)."""
    return _verdict([e for v in verdicts for e in v.checks])


def _noted(evidence: list[Evidence], f: SiteFile) -> list[Evidence]:
    """Evidence from ``f`` with what happened to its bytes (cut, converted) among the problems."""
    if not f.problems:
        return evidence
    return [replace(e, problems=(*f.problems, *e.problems)) if e.source == f.url else e
            for e in evidence]


def _is_image(content_type: str | None) -> bool:
    return bool(content_type) and content_type.split(";")[0].strip().lower().startswith("image/")


@dataclass(frozen=True)
class Policy:
    token: str
    user_agent: str
    purpose: str = "train-ai"
    honor_agents: tuple[str, ...] = ()
    signals: tuple[str, ...] = SWITCHABLE_SIGNALS
    allow_private_networks: bool = False
    rsl_user_type: str = "commercial"
    rsl_country: str | None = None
    registries: tuple[str, ...] = ()   # "type name" of each registry consulted
    #: origins exempt from the network guard (``POLITE_ALLOWED_PRIVATE_ORIGINS``): they change
    #: what may be crawled, so they are part of the policy hash
    allowed_private_origins: tuple[str, ...] = ()
    #: pay per crawl (``payment:``), e.g. ``"max_price USD 0.01, budget USD 5.00,
    #: per_origin_budget USD 1.00"``; None: a 402 is a refusal. Part of the policy hash (it
    #: changes what may be collected) only when set, so hashes without it are unchanged.
    payment: str | None = None
    sha256: str = field(init=False)
    #: the canonical JSON ``sha256`` is of; each run keeps it in ``evidence/<sha256>``, so the
    #: ``policy_sha256`` of a record can be looked up (``polite-crawl export`` reads its purpose)
    document: bytes = field(init=False, repr=False, compare=False)
    #: compiled stage-1 plans (:class:`_SitePlan`) of the per-origin files seen last, by the
    #: identity of those files: a file fetched again is a new object, so a plan never outlives
    #: the file it was built from (see :meth:`before_fetch`)
    _plans: OrderedDict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        doc = {
            "version": POLICY_VERSION,
            "token": self.token,
            "user_agent": self.user_agent,
            "purpose": self.purpose,
            "honor_agents": list(self.honor_agents),
            "signals": list(self.signals),
            "allow_private_networks": self.allow_private_networks,
            "rsl": [self.rsl_user_type, self.rsl_country],
            "registries": list(self.registries),
            "allowed_private_origins": sorted(self.allowed_private_origins),
            "failure_policy": [list(row) for row in FAILURE_POLICY],
            "term_purposes": sorted([*k, *sorted(v)] for k, v in TERM_PURPOSES.items()),
        }
        if self.payment is not None:
            doc["payment"] = self.payment
        blob = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        object.__setattr__(self, "sha256", hashlib.sha256(blob).hexdigest())
        object.__setattr__(self, "document", blob)
        object.__setattr__(self, "_plans", OrderedDict())

    def on(self, signal: str) -> bool:
        return signal in self.signals

    # -- statements -> evidence ----------------------------------------------------------
    def judge(self, stmt: Statement, *, content_type: str | None = None,
              source: str | None = None, sha256: str | None = None,
              status: int | None = None) -> Evidence:
        """A statement as evidence: ``deny`` when a "no" binds our purpose (TERM_PURPOSES)."""
        bound, allowed, ignored = [], [], []
        for term, ok in stmt.terms:
            purposes = TERM_PURPOSES.get((stmt.signal, term), frozenset())
            if (stmt.signal, term) in IMAGE_ONLY_TERMS and not _is_image(content_type):
                purposes = frozenset()
            if self.purpose not in purposes:
                ignored.append(term)
            elif ok:
                allowed.append(term)
            else:
                bound.append(term)
        if bound:
            outcome, detail = "deny", f"binds {self.purpose}: {', '.join(bound)}=no"
        elif allowed:
            outcome, detail = "allow", f"allows {self.purpose}: {', '.join(allowed)}"
        else:
            outcome = "unset"
            detail = (f"not about {self.purpose}: {', '.join(ignored)}" if ignored
                      else "no preference stated")
        return Evidence(stmt.signal, stmt.channel, outcome, rule=stmt.rule, agent=stmt.agent,
                        source=stmt.source or source, source_sha256=sha256, status=status,
                        detail=detail, problems=stmt.problems)

    def _judge_all(self, stmts: Sequence[Statement | None], **kw: object) -> list[Evidence]:
        return [self.judge(s, **kw) for s in stmts if s is not None]  # type: ignore[arg-type]

    # -- stage 1 -------------------------------------------------------------------------
    def needed_files(self) -> tuple[str, ...]:
        """The per-origin files the enabled signals need, in fetch order."""
        plans = self._plans
        hit = plans.get("needed_files")
        if hit is not None:
            return hit
        out: list[str] = []
        for signal in SWITCHABLE_SIGNALS:
            if self.on(signal):
                out += [f for f in _FILES_FOR.get(signal, ()) if f not in out]
        plans["needed_files"] = needed = tuple(out)
        return needed

    def visit_interval(self, robots: robots_mod.RobotsFile) -> float | None:
        """``robots.visit_interval(self.token)``, kept with the file (it asks the same of
        every URL of the origin)."""
        key = ("interval", id(robots))
        hit = self._plans.get(key)
        if hit is not None and hit[0] is robots:
            return hit[1]
        wanted = robots.visit_interval(self.token)
        self._remember(key, (robots, wanted))
        return wanted

    def licence_urls(self, files: Mapping[str, SiteFile]) -> tuple[str, ...]:
        """RSL licences named by robots.txt ``License:`` lines (to fetch before deciding)."""
        robots = files.get("robots.txt")
        if not self.on("rsl") or robots is None or robots.parsed is None:
            return ()
        plans = self._plans
        key = ("licences", id(robots))
        hit = plans.get(key)
        if hit is not None and hit[0] is robots:
            return hit[1]
        urls = tuple(u for u, _ in rsl.license_urls_from_robots(robots.parsed, robots.url))
        self._remember(key, (robots, urls))
        return urls

    def before_fetch(self, url: str, files: Mapping[str, SiteFile],
                     licences: Mapping[str, SiteFile] | None = None) -> Verdict:
        """Site-level signals: robots.txt (and the Content-Usage, Content-Signal and License
        lines in it), tdmrep.json, ai.txt, the RSL licences robots.txt names.

        Decided by a plan compiled once per set of files (:class:`_SitePlan`: each agent's
        groups, the Content-Usage rules and Content-Signal statements, the evidence of each
        rule), so that a URL costs one path computation and one rule lookup per agent; the
        plan gives what :meth:`_before_fetch_reference` (the plain reading of every file for
        every URL) gives, which the tests check on the real files of ``tests/data``.
        """
        return self.site_plan(files, licences).decide(url)

    def site_plan(self, files: Mapping[str, SiteFile],
                  licences: Mapping[str, SiteFile] | None = None) -> _SitePlan:
        """The compiled plan of these files (kept, least recently used first out): its
        ``decide(url)`` is :meth:`before_fetch` of these files. A caller deciding many URLs of
        one origin may keep the plan while it keeps the files."""
        key = (*((k, id(f)) for k, f in files.items()),
               *(((u, id(f)) for u, f in licences.items()) if licences else ()))
        plans = self._plans
        plan = plans.get(key)
        if plan is None:
            # (a plan holds the files it was built from, so while it is kept no other object
            # can have their ids: a plan found under these ids was built from these files)
            plan = _SitePlan(self, files, licences or {})
            self._remember(key, plan)
        elif plans.get(next(reversed(plans))) is not plan:
            plans.move_to_end(key)
        return plan

    def _remember(self, key: Any, value: Any) -> None:
        plans = self._plans
        plans[key] = value
        while len(plans) > _MAX_PLANS:
            plans.popitem(last=False)

    def _before_fetch_reference(self, url: str, files: Mapping[str, SiteFile],
                                licences: Mapping[str, SiteFile] | None = None) -> Verdict:
        """:meth:`before_fetch` read plainly: every file evaluated afresh for this URL (what the
        compiled plan must always agree with; kept for the tests)."""
        checks: list[Evidence] = []
        robots = files.get("robots.txt")
        if robots is not None:
            checks.extend(_noted(self._robots(url, robots), robots))
        tdm_file = files.get("tdmrep.json")
        if tdm_file is not None and self.on("tdmrep"):
            checks.extend(_noted(self._tdmrep_file(url, tdm_file), tdm_file))
        ai_file = files.get("ai.txt")
        if ai_file is not None and self.on("ai-txt"):
            checks.extend(_noted(self._ai_txt(url, ai_file), ai_file))
        for lic_url, lic in (licences or {}).items():
            checks.extend(_noted(self._licence(url, lic, channel="robots.txt",
                                               named_by=lic_url), lic))
        return _verdict(checks)

    def _common(self, f: SiteFile) -> dict[str, object]:
        return {"source": f.url, "sha256": f.sha256, "status": f.status}

    def _robots(self, url: str, f: SiteFile) -> list[Evidence]:
        common = {"source": f.url, "source_sha256": f.sha256, "status": f.status}
        if f.outcome == "unreachable":
            return [Evidence("network", "robots.txt", "deny", agent=self.token,
                             rule=f"robots.txt unreachable ({f.status_text}): complete "
                             "disallow", **common)]
        if f.outcome == "unavailable":
            if not self.on("robots"):
                return []
            return [Evidence("robots", "robots.txt", "allow", agent=self.token,
                             rule=f"robots.txt unavailable ({f.status_text}): no restrictions",
                             **common)]
        rf: robots_mod.RobotsFile = f.parsed
        out: list[Evidence] = []
        if self.on("robots"):
            out.append(self._robots_evidence(rf.verdict(url, self.token), self.token, common,
                                             rf.problems))
            for agent in self.honor_agents:
                v = rf.verdict(url, agent, fallback_to_star=False)
                if v.agent is not None:
                    out.append(self._robots_evidence(v, agent, common, ()))
        agents = (self.token, *self.honor_agents)
        kw = {"source": f.url, "sha256": f.sha256, "status": f.status}
        if self.on("content-usage"):
            out += self._judge_all(_for_agents(aipref.statements_from_robots, rf, url, agents),
                                   **kw)
        if self.on("content-signal"):
            out += self._judge_all(
                _for_agents(contentsignal.statements_from_robots, rf, url, agents), **kw)
        return out

    def _binds(self, signal: str, term: str) -> bool:
        return self.purpose in TERM_PURPOSES.get((signal, term), frozenset())

    def _robots_evidence(
        self, v: robots_mod.RobotsVerdict, token: str, common: dict, problems: tuple[str, ...]
    ) -> Evidence:
        if v.rule is not None:
            rule = f"{v.rule.text} (line {v.rule.line})"
        elif v.agent is None:
            rule = "no group applies"
        else:
            rule = f"no rule matches in group 'User-agent: {v.agent}' (line {v.group_line})"
        deny = not v.allowed and self._binds("robots", "disallow")
        return Evidence("robots", "robots.txt", "deny" if deny else "allow",
                        agent=token if v.agent in (None, "*") else v.agent, rule=rule,
                        detail=None if v.agent != "*" else "group 'User-agent: *'",
                        problems=problems, **common)

    def _tdmrep_file(self, url: str, f: SiteFile) -> list[Evidence]:
        common = {"source": f.url, "source_sha256": f.sha256, "status": f.status}
        if f.outcome == "unreachable":
            return [Evidence("network", "tdmrep.json", "deny",
                             rule=f"tdmrep.json unreachable ({f.status_text}): reservation "
                             "undetermined", **common)]
        if f.outcome == "unavailable" or f.parsed is None:
            probs = f.parsed.problems if f.parsed is not None else ()
            return [Evidence("tdmrep", "file", "unset",
                             rule=f"no TDMRep file ({f.status_text})", problems=probs, **common)]
        stmt = tdm.statement_from_file(f.parsed, url)
        if stmt is None:
            return [Evidence("tdmrep", "file", "unset", rule="no rule matches",
                             problems=f.parsed.problems, **common)]
        return [self._tdm_evidence(stmt, **common)]

    def _tdm_evidence(self, stmt: tdm.TdmStatement, **common: object) -> Evidence:
        if stmt.reservation is tdm.TdmValue.RESERVED:
            outcome = "deny" if self._binds("tdmrep", "tdm-reservation") else "unset"
        elif stmt.reservation is tdm.TdmValue.NOT_RESERVED:
            outcome = "allow"
        else:
            outcome = "unset"
        detail = f"tdm-policy: {stmt.policy}" if stmt.policy else None
        return Evidence("tdmrep", stmt.channel, outcome, rule=f"{stmt.source}: {stmt.raw}",
                        detail=detail, problems=stmt.problems, **common)  # type: ignore[arg-type]

    def _ai_txt(self, url: str, f: SiteFile) -> list[Evidence]:
        common = {"source": f.url, "source_sha256": f.sha256, "status": f.status}
        if f.outcome == "unreachable":
            return [Evidence("network", "ai.txt", "deny",
                             rule=f"ai.txt unreachable ({f.status_text}): undetermined",
                             **common)]
        if f.outcome != "parsed":
            probs = f.parsed.problems[:3] if f.parsed is not None else ()
            return [Evidence("ai-txt", "file", "unset", rule=f"no Spawning ai.txt "
                             f"({f.status_text})", problems=probs, **common)]
        agents = (self.token, *self.honor_agents)
        stmts = [aitxt.statement_for(f.parsed, url, self.token, source=f.url)]
        stmts += [s for a in agents[1:]
                  if (s := aitxt.statement_for(f.parsed, url, a, source=f.url)) is not None
                  and s.agent not in (None, "*")]
        out = self._judge_all(stmts, sha256=f.sha256, status=f.status)
        return out or [Evidence("ai-txt", "file", "unset", rule="no rule matches", **common)]

    def _licence(self, url: str, f: SiteFile, *, channel: str, named_by: str,
                 content_type: str | None = None) -> list[Evidence]:
        common = {"source": f.url, "source_sha256": f.sha256, "status": f.status}
        where = f"RSL licence {named_by} (named in {channel})"
        if f.outcome == "unreachable":
            return [Evidence("network", "rsl", "deny", rule=f"{where} unreachable "
                             f"({f.status_text}): licence terms undetermined", **common)]
        if f.outcome != "parsed":
            # a licence is named but cannot be read: no AI use is licensed (conservative)
            probs = f.parsed.problems[:3] if f.parsed is not None else ()
            stmt = Statement("rsl", channel, (("ai-train", False), ("ai-input", False),
                                              ("ai-index", False)),
                             rule=f"{where} cannot be read ({f.status_text}): no AI use "
                             "licensed", source=f.url, problems=probs)
            return [self.judge(stmt, content_type=content_type, sha256=f.sha256,
                               status=f.status)]
        stmt = rsl.statement_for(f.parsed, url, source=f.url, user_type=self.rsl_user_type,
                                 country=self.rsl_country)
        if stmt is None:
            return [Evidence("rsl", channel, "unset", rule=f"{where}: no <content> covers "
                             "this URL", **common)]
        return [self.judge(replace(stmt, channel=channel), content_type=content_type,
                           sha256=f.sha256, status=f.status)]

    # -- stage 2 -------------------------------------------------------------------------
    def at_headers(
        self, url: str, headers: Mapping[str, Sequence[str]], file_stmt: tdm.TdmStatement | None,
        *, payment_rule: bool = True,
    ) -> tuple[Verdict, tdm.TdmStatement | None]:
        """Header-level statements. Returns the verdict and the TDMRep header statement.

        ``payment_rule=False``: the ``crawler-price`` rule is left out (pay per crawl is on and
        :meth:`crawler.policy.payment.PayPerCrawl.decide` decides the quote); every other header
        signal still binds."""
        checks: list[Evidence] = []
        header_stmt = None
        ctype = (headers.get("content-type") or [None])[0]
        if self.on("tdmrep"):
            res = headers.get("tdm-reservation")
            pol = headers.get("tdm-policy")
            header_stmt = tdm.statement_from_headers(
                ", ".join(res) if res else None, ", ".join(pol) if pol else None
            )
            if header_stmt is not None:
                ev = self._tdm_evidence(header_stmt, source="tdm-reservation header")
                reserved = tdm.combine(file_stmt, header_stmt).reserved
                if reserved and ev.outcome != "deny" and self._binds("tdmrep", "tdm-reservation"):
                    ev = replace(ev, outcome="deny")
                checks.append(ev)
        if self.on("noai") and headers.get("x-robots-tag"):
            checks += self._judge_all(
                [noai.statement_from_x_robots_tag(headers["x-robots-tag"], self.token)],
                content_type=ctype)
        if self.on("content-usage") and headers.get("content-usage"):
            checks += self._judge_all(
                [aipref.statement_from_header(", ".join(headers["content-usage"]))])
        if self.on("content-signal") and headers.get("content-signal"):
            checks += self._judge_all(
                [contentsignal.statement_from_header(", ".join(headers["content-signal"]))])
        if payment_rule and self.on("payment-required") and headers.get("crawler-price"):
            price = ", ".join(headers["crawler-price"])
            checks.append(self.judge(Statement(
                "payment-required", "header", (("crawler-price", False),),
                rule=f"crawler-price: {price}"), content_type=ctype))
        return _verdict(checks), header_stmt

    def image_directives(self, url: str, headers: Mapping[str, Sequence[str]],
                         mime: str) -> Verdict | None:
        """``X-Robots-Tag`` judged again for a response whose bytes are an image (``mime``, as
        sniffed) though its Content-Type does not say so: ``noimageai`` binds images, and a
        mislabelled image is one (the label must not lift it). None when there is nothing to
        judge again."""
        if not self.on("noai") or not headers.get("x-robots-tag"):
            return None
        return _verdict(self._judge_all(
            [noai.statement_from_x_robots_tag(headers["x-robots-tag"], self.token)],
            content_type=mime))

    # -- stage 3 -------------------------------------------------------------------------
    def licence_links(self, url: str, headers: Mapping[str, Sequence[str]],
                      head: HtmlHead | None = None) -> tuple[tuple[str, str], ...]:
        """RSL licences a response names: ``((licence_url, channel), ...)``."""
        if not self.on("rsl"):
            return ()
        out = [(u, "header") for u in rsl.license_urls_from_link_header(
            list(headers.get("link", ())), url)]
        if head is not None:
            for link in head.links_with_rel("license"):
                if (link.type or "").split(";")[0].strip().lower() == rsl.RSL_MEDIA_TYPE:
                    for u in rsl.license_urls_from_link_header(
                            f'<{link.href}>; rel="license"; type="{rsl.RSL_MEDIA_TYPE}"', url):
                        out.append((u, "meta"))
        seen: set[str] = set()
        return tuple(x for x in out if not (x[0] in seen or seen.add(x[0])))

    def at_response(self, url: str, status: int, headers: Mapping[str, Sequence[str]],
                    licences: Mapping[str, tuple[SiteFile, str]] | None = None, *,
                    payment_rule: bool = True) -> Verdict:
        """The final response's status, and licences named by its ``Link`` header.

        ``payment_rule=False``: the 401/402/403 rule is left out (the payment decision took
        over: a paid 200, or a 402 about to be paid); licences still bind."""
        checks: list[Evidence] = []
        ctype = (headers.get("content-type") or [None])[0]
        if payment_rule and self.on("payment-required") and status in (401, 402, 403):
            price = ", ".join(headers.get("crawler-price", ()))
            error = ", ".join(headers.get("crawler-error", ()))
            extra = "; ".join(x for x in (price and f"crawler-price: {price}",
                                          error and f"crawler-error: {error}") if x)
            rule = f"HTTP {status}" + (f" ({extra})" if extra else "")
            checks.append(self.judge(Statement("payment-required", "status",
                                               ((str(status), False),), rule=rule),
                                     content_type=ctype))
        for lic_url, (f, channel) in (licences or {}).items():
            checks.extend(_noted(self._licence(url, f, channel=channel, named_by=lic_url,
                                               content_type=ctype), f))
        return _verdict(checks)

    # -- stage 4 -------------------------------------------------------------------------
    def at_document(
        self,
        url: str,
        head: HtmlHead,
        file_stmt: tdm.TdmStatement | None,
        header_stmt: tdm.TdmStatement | None,
    ) -> Verdict:
        checks: list[Evidence] = []
        if self.on("tdmrep"):
            meta_stmt = tdm.statement_from_html(head)
            if meta_stmt is not None:
                checks.append(self._tdm_later_channel(
                    meta_stmt, tdm.combine(file_stmt, header_stmt, meta_stmt),
                    source="html meta", says="the page"))
        if self.on("noai"):
            checks += self._judge_all([noai.statement_from_meta(head, self.token)],
                                      content_type="text/html")
        if self.on("content-signal"):
            checks += self._judge_all([contentsignal.statement_from_meta(head)])
        return _verdict(checks)

    # -- stage 5: the document itself (not HTML) -------------------------------------------
    def reads_embedded(self) -> bool:
        """Whether the document stage reads anything (some embedded signal is on)."""
        return any(self.on(s) for s in EMBEDDED_SIGNALS)

    def _tdm_later_channel(self, stmt: tdm.TdmStatement, decision: Any, *, source: str,
                           says: str) -> Evidence:
        """Evidence of a TDMRep statement read after earlier channels (the page's meta, the
        file's metadata): it denies when the combined decision reserves, and says so when it
        lowers an earlier channel's 1 to 0."""
        ev = self._tdm_evidence(stmt, source=source)
        if (decision.reserved and ev.outcome != "deny"
                and self._binds("tdmrep", "tdm-reservation")):
            ev = replace(ev, outcome="deny")
        if decision.downgraded:
            note = f"downgrade: an earlier channel reserved, {says} says 0"
            ev = replace(ev, detail=f"{ev.detail}; {note}" if ev.detail else note)
        return ev

    def at_embedded(
        self,
        url: str,
        found: embedded.EmbeddedResult,
        file_stmt: tdm.TdmStatement | None = None,
        header_stmt: tdm.TdmStatement | None = None,
        *,
        content_type: str | None = None,
        complete: bool = True,
    ) -> Verdict:
        """The reservations written inside a file (``found``: :func:`merge_embedded` of the
        readers' results), before anything of it is stored.

        ``complete`` False (the body was cut) or ``found.determined`` False: undetermined,
        refused (signal ``network``, channel ``embedded``), whatever was read. Statements of
        a switched-off signal are left out; TDMRep in the file is the last step of TDMRep's
        processing order (it supersedes the header and tdmrep.json values; a downgrade is
        noted). Every statement that binds is a reason (most restrictive wins)."""
        checks: list[Evidence] = []
        where = found.container
        if not complete:
            checks.append(Evidence(
                "network", "embedded", "deny", source=url,
                rule=(f"{where}: the body was not received completely: its embedded "
                      "reservations are undetermined; refused (fail closed)")))
        elif not found.determined:
            checks.append(Evidence(
                "network", "embedded", "deny", source=url,
                rule=(f"{where}: a part where a reservation may be written could not be read: "
                      "undetermined; refused (fail closed)"),
                problems=found.problems))
        for stmt in found.statements:
            if stmt.signal == "tdmrep":
                continue  # through found.tdm and TDMRep's processing order, below
            if stmt.signal in SWITCHABLE_SIGNALS and not self.on(stmt.signal):
                continue
            checks.append(replace(self.judge(stmt, content_type=content_type), source=url))
        if found.tdm is not None and self.on("tdmrep"):
            ev = self._tdm_later_channel(
                found.tdm, tdm.combine(file_stmt, header_stmt, found.tdm), source=url,
                says="the file")
            checks.append(replace(ev, channel=_EMBEDDED_CHANNEL.get(where, "xmp")))
        return _verdict(checks)


#: The evidence channel of a statement read from a file, by container.
_EMBEDDED_CHANNEL = {"epub": "epub"}


def merge_embedded(results: Sequence[embedded.EmbeddedResult]) -> embedded.EmbeddedResult:
    """One result from several readers' (``read_embedded``, a C2PA reader ...): undetermined
    if any is; every statement and value kept (each is judged, any binding one denies: the
    most restrictive wins); of several TDMRep values in files, a reservation wins."""
    if len(results) == 1:
        return results[0]
    if not results:
        return embedded.EmbeddedResult("none", True)
    tdms = [r.tdm for r in results if r.tdm is not None]
    best = next((t for t in tdms if t.reservation is tdm.TdmValue.RESERVED), None) or \
        next((t for t in tdms if t.reservation is tdm.TdmValue.NOT_RESERVED), None) or \
        (tdms[0] if tdms else None)
    return embedded.EmbeddedResult(
        container=next((r.container for r in results if r.container != "none"),
                       results[0].container),
        determined=all(r.determined for r in results),
        statements=tuple(s for r in results for s in r.statements),
        tdm=best,
        values=tuple(v for r in results for v in r.values),
        other_constraints=tuple(c for r in results for c in r.other_constraints),
        blocks=tuple(b for r in results for b in r.blocks),
        problems=tuple(p for r in results for p in r.problems))


def embedded_record(found: embedded.EmbeddedResult) -> dict[str, Any]:
    """The document stage's evidence for the audit record (``"embedded"``): the container,
    whether it was read completely, each value with where it was (block, property,
    namespace, RDF/OPF path, raw value) and the readers' problems."""
    out: dict[str, Any] = {"container": found.container, "determined": found.determined}
    if found.blocks:
        out["blocks"] = list(found.blocks[:20])
    if found.values:
        out["values"] = [v.to_dict() for v in found.values[:50]]
    if found.problems:
        out["problems"] = list(found.problems[:20])
    return out


def _for_agents(fn, robots: robots_mod.RobotsFile, url: str,
                agents: Sequence[str]) -> list[Statement]:
    """Statements for our token (with the ``*`` fallback), plus those that groups naming an
    honoured agent make explicitly (deduplicated)."""
    out: list[Statement] = list(fn(robots, url, agents[0]))
    seen = {(s.rule, s.agent) for s in out}
    for agent in agents[1:]:
        for s in fn(robots, url, agent):
            if s.agent not in (None, "*") and (s.rule, s.agent) not in seen:
                seen.add((s.rule, s.agent))
                out.append(s)
    return out


#: Site plans kept per policy (the origins being crawled at once are far fewer).
_MAX_PLANS = 512
#: Memo entries a plan keeps (rule x agent combinations seen); past it they start afresh.
_MAX_MEMO = 20_000


class _SitePlan:
    """Stage 1 for one set of per-origin files, compiled for many URLs.

    What :meth:`Policy._before_fetch_reference` does per URL, reorganised so that a URL costs
    one :func:`.path_query`, one rule lookup per distinct group set (our token's, each honoured
    agent's) and per file, and a dictionary lookup. What does not depend on the URL (each
    agent's groups, the Content-Usage rules, the Content-Signal statements, the evidence of
    unreachable or absent files) is computed once. A URL's *signature* is what decides it: the
    rule (and group) that wins in each group set, the winning Content-Usage rules, the TDMRep
    rule, the ai.txt rule. URLs with the same signature get the same verdict, built the first
    time from the same functions the reference uses and kept (one per signature). The plan
    holds its files, so the identities its keys are made of stay valid.
    """

    __slots__ = ("policy", "files", "licences", "_robots", "_tdm", "_ai", "_agents",
                 "_static", "_memo", "_needs_path", "_rgroups", "_rsets", "_cu", "_ai_groups",
                 "_ai_sets")

    def __init__(self, policy: Policy, files: Mapping[str, SiteFile],
                 licences: Mapping[str, SiteFile]) -> None:
        self.policy = policy
        self.files = dict(files)
        self.licences = dict(licences)
        agents = self._agents = (policy.token, *policy.honor_agents)
        self._memo: dict[Any, Any] = {}
        robots = files.get("robots.txt")
        tdm_file = files.get("tdmrep.json") if policy.on("tdmrep") else None
        ai_file = files.get("ai.txt") if policy.on("ai-txt") else None
        self._robots = robots
        self._tdm = tdm_file
        self._ai = ai_file
        # evidence that does not depend on the URL at all (files unreachable, absent, ...)
        static: dict[str, tuple[Evidence, ...] | None] = {}
        needs_path = False
        self._rgroups: list[tuple[Any, bool, Any, bool]] = []
        self._rsets: list[tuple[Any, ...]] = []
        self._cu: list[tuple[Any, ...]] = []
        if robots is not None:
            if robots.outcome in ("unreachable", "unavailable"):
                static["robots"] = tuple(_noted(policy._robots("", robots), robots))
            else:
                static["robots"] = None
                needs_path = True
                rf: robots_mod.RobotsFile = robots.parsed
                # each agent's group sets: with the '*' fallback (our token's robots verdict,
                # and every agent's Content-Usage / Content-Signal) and without it (an
                # honoured agent's robots verdict)
                self._rgroups = [(*rf._select(a, True), *rf._select(a, False)) for a in agents]
                self._rsets = _distinct(g for row in self._rgroups for g in (row[0], row[2]))
                if policy.on("content-usage"):
                    self._cu = [aipref.rules_for(rf, a) for a in agents]
        if tdm_file is not None:
            if tdm_file.outcome == "unreachable" or tdm_file.outcome == "unavailable" \
                    or tdm_file.parsed is None:
                static["tdm"] = tuple(_noted(policy._tdmrep_file("", tdm_file), tdm_file))
            else:
                static["tdm"] = None
                needs_path = True
        self._ai_groups: list[tuple[Any, bool]] = []
        self._ai_sets: list[tuple[Any, ...]] = []
        if ai_file is not None:
            if ai_file.outcome != "parsed":
                static["ai"] = tuple(_noted(policy._ai_txt("", ai_file), ai_file))
            else:
                static["ai"] = None
                needs_path = True
                parsed = ai_file.parsed
                if parsed.is_spawning_format and parsed.robots is not None:
                    self._ai_groups = [parsed.robots._select(a, True) for a in agents]
                    self._ai_sets = _distinct(g for g, _ in self._ai_groups)
        self._static = static
        self._needs_path = needs_path

    # -- per URL ----------------------------------------------------------------------------
    def decide(self, url: str) -> Verdict:
        if self.licences:  # (rare) licence evidence is made per URL: no signature
            return self._decide(url)
        if not self._needs_path:
            key: tuple[Any, ...] = ()
        else:
            path = robots_mod.path_query(url)
            forms = robots_mod.match_forms(path)
            # the signature: ids of the rules and groups that win (objects of the files this
            # plan holds, so the ids stay theirs), the winning Content-Usage lines by number
            sig: list[Any] = []
            if self._rsets:
                decide = robots_mod.decide_groups
                for groups in self._rsets:
                    best, group = decide(groups, path, forms)
                    sig.append(id(best))
                    sig.append(id(group))
                for cands in self._cu:
                    # (whether the agent may crawl the URL is in the robots part already)
                    sig.append(tuple(w[1] for w in aipref.winners(cands, forms))
                               if cands else None)
            if self._static.get("tdm", ()) is None:
                sig.append(id(self._tdm.parsed.match_forms(forms)))  # type: ignore[union-attr]
            if self._ai_sets:
                decide = robots_mod.decide_groups
                for groups in self._ai_sets:
                    best, group = decide(groups, path, forms)
                    sig.append(id(best))
                    sig.append(id(group))
            key = tuple(sig)
        memo = self._memo
        hit = memo.get(key)
        if hit is None:
            if len(memo) > _MAX_MEMO:
                memo.clear()
            hit = memo[key] = self._decide(url)
        return hit

    def _decide(self, url: str) -> Verdict:
        """The verdict built piece by piece with the reference's functions."""
        static = self._static
        path = forms = None
        if self._needs_path:
            path = robots_mod.path_query(url)
            forms = robots_mod.match_forms(path)
        checks: list[Evidence] = []
        if self._robots is not None:
            got = static["robots"]
            checks.extend(got if got is not None else self._robots_checks(path, forms))
        if self._tdm is not None:
            got = static["tdm"]
            checks.extend(got if got is not None else self._tdm_checks(forms))
        if self._ai is not None:
            got = static["ai"]
            checks.extend(got if got is not None else self._ai_checks(url))
        policy = self.policy
        for lic_url, lic in self.licences.items():
            checks.extend(_noted(policy._licence(url, lic, channel="robots.txt",
                                                 named_by=lic_url), lic))
        return _verdict(checks)

    def _robots_checks(self, path: str, forms: tuple[str, str]) -> list[Evidence]:
        """``_noted(Policy._robots(url, robots), robots)`` for a parsed robots.txt."""
        policy = self.policy
        f = self._robots
        rf: robots_mod.RobotsFile = f.parsed  # type: ignore[union-attr]
        agents = self._agents
        decided = {id(g): robots_mod.decide_groups(g, path, forms) for g in self._rsets}

        def allowed(i: int) -> bool:
            groups = self._rgroups[i][0]
            if not groups:
                return True
            best = decided[id(groups)][0]
            return best is None or best.kind == "allow"

        out: list[Evidence] = []
        common = {"source": f.url, "source_sha256": f.sha256, "status": f.status}
        if policy.on("robots"):
            for i, agent in enumerate(agents):
                star = i == 0
                groups, explicit = self._rgroups[i][:2] if star else self._rgroups[i][2:]
                if not groups:
                    if not star:
                        continue  # an honoured agent without a group of its own: nothing
                    v = robots_mod.RobotsFile.verdict_for_path(rf, path, forms, agent)
                else:
                    best, best_group = decided[id(groups)]
                    v = robots_mod.verdict_from(best, best_group, explicit, agent)
                out.append(policy._robots_evidence(v, agent, common,
                                                   rf.problems if star else ()))
        kw = {"source": f.url, "sha256": f.sha256, "status": f.status}
        if policy.on("content-usage"):
            per_agent = []
            for i, agent in enumerate(agents):
                cands = self._cu[i]
                if not cands or not allowed(i):
                    per_agent.append(())
                    continue
                per_agent.append(aipref.statements_for(aipref.winners(cands, forms), agent))
            out += policy._judge_all(_merge_agents(per_agent), **kw)
        if policy.on("content-signal"):
            per_agent = []
            for i, agent in enumerate(agents):
                if not allowed(i):
                    per_agent.append(())
                    continue
                stmts = self._memo.get(("cs", i))
                if stmts is None:
                    stmts = self._memo[("cs", i)] = contentsignal.statements_for(rf, agent)
                per_agent.append(stmts)
            out += policy._judge_all(_merge_agents(per_agent), **kw)
        return _noted(out, f)  # type: ignore[arg-type]

    def _tdm_checks(self, forms: tuple[str, str]) -> list[Evidence]:
        """``_noted(Policy._tdmrep_file(url, f), f)`` for a parsed tdmrep.json."""
        f = self._tdm
        parsed: tdm.TdmRepFile = f.parsed  # type: ignore[union-attr]
        common = {"source": f.url, "source_sha256": f.sha256, "status": f.status}
        stmt = tdm.statement_from_rule(parsed.match_forms(forms))
        if stmt is None:
            ev = Evidence("tdmrep", "file", "unset", rule="no rule matches",
                          problems=parsed.problems, **common)  # type: ignore[arg-type]
        else:
            ev = self.policy._tdm_evidence(stmt, **common)
        return _noted([ev], f)  # type: ignore[arg-type]

    def _ai_checks(self, url: str) -> list[Evidence]:
        """``_noted(Policy._ai_txt(url, f), f)`` (a parsed Spawning ai.txt)."""
        f = self._ai
        return _noted(self.policy._ai_txt(url, f), f)  # type: ignore[arg-type]


def _distinct(groups: Any) -> list[tuple[Any, ...]]:
    """The non-empty group tuples among ``groups``, each once (by identity), in order."""
    out: list[tuple[Any, ...]] = []
    seen: set[int] = set()
    for g in groups:
        if g and id(g) not in seen:
            seen.add(id(g))
            out.append(g)
    return out


def _merge_agents(per_agent: Sequence[Sequence[Statement]]) -> list[Statement]:
    """Statements for our token (with the ``*`` fallback), plus those that groups naming an
    honoured agent make explicitly (deduplicated): :func:`_for_agents` over computed lists."""
    out: list[Statement] = list(per_agent[0])
    seen = {(s.rule, s.agent) for s in out}
    for stmts in per_agent[1:]:
        for s in stmts:
            if s.agent not in (None, "*") and (s.rule, s.agent) not in seen:
                seen.add((s.rule, s.agent))
                out.append(s)
    return out


def purpose_table_markdown() -> str:
    """:data:`TERM_PURPOSES` as the README's signal x purpose table."""
    lines = ["| signal | statement | " + " | ".join(PURPOSES) + " |",
             "|---|---|" + "---|" * len(PURPOSES)]
    for (signal, term), purposes in TERM_PURPOSES.items():
        label = f"`{term}`" + (" (images only)" if (signal, term) in IMAGE_ONLY_TERMS else "")
        cells = " | ".join("binds" if p in purposes else "—" for p in PURPOSES)
        lines.append(f"| {signal} | {label} | {cells} |")
    return "\n".join(lines)


#: How to crawl a target the network guard refuses, in both spellings of the switch
PRIVATE_NETWORKS_HINT = ("set allow_private_networks: true (job config) or "
                         "POLITE_ALLOW_PRIVATE_NETWORKS = True (Scrapy setting) to crawl such "
                         "targets")


def network_refusal(url: str, reason: str, *, hint: bool = True) -> Verdict:
    """The verdict for a target the network guard refuses (``hint``: the refusal is one the
    private-networks switch lifts, and its evidence says how)."""
    ev = Evidence("network", "address", "deny", rule=reason, source=url,
                  detail=PRIVATE_NETWORKS_HINT if hint else None)
    return Verdict("deny", (ev,), (ev,))


def scope_refusal(url: str, reason: str) -> Verdict:
    """The verdict for a URL outside the job's ``scope:`` (a pattern, or its origin's
    ``max_pages_per_origin`` reached): signal ``scope``, the reason as the rule. Scope narrows
    what the crawl asks for, never what it may collect: it is not a switchable signal and not
    part of the policy hash."""
    ev = Evidence("scope", "config", "deny", rule=reason, source=url,
                  detail="scope: in the job config")
    return Verdict("deny", (ev,), (ev,))


def payment_refusal(url: str, reason: str, status: int | None = None) -> Verdict:
    """The verdict for a URL the pay-per-crawl decision refuses (a price over ``max_price``,
    a budget spent, a ``crawler-error``, an origin that forbade us): signal
    ``payment-required``, channel ``payment``, the reason as the rule."""
    ev = Evidence("payment-required", "payment", "deny", rule=reason, source=url,
                  status=status, detail="not paid: see the pay-decision record before this one")
    return Verdict("deny", (ev,), (ev,))


def unreadable(url: str, channel: str, why: str) -> Verdict:
    """The verdict for a document whose reservations cannot be read completely (a body that
    cannot be decoded, an HTML head that cannot be scanned to its end): undetermined, refused."""
    ev = Evidence("network", channel, "deny", source=url,
                  rule=f"{why}: its reservations are undetermined; refused (fail closed)")
    return Verdict("deny", (ev,), (ev,))


def internal_error(url: str, stage: str, exc: BaseException) -> Verdict:
    """The verdict when evaluating a URL failed unexpectedly: refused (fail closed)."""
    ev = Evidence("network", "internal-error", "deny", source=url,
                  rule=f"evaluating the {stage} failed ({type(exc).__name__}: {exc}); refused",
                  detail="a bug, not a reservation: the log has the traceback")
    return Verdict("deny", (ev,), (ev,))


#: Files the readers refuse to parse beyond a size (not cut: read whole or not at all).
_PARSE_LIMITS = {"tdmrep.json": tdm.TDMREP_FILE_LIMIT, "rsl": rsl.RSL_SIZE_LIMIT}


def site_file(
    kind: str,
    url: str,
    *,
    status: int | None,
    body: bytes = b"",
    error: str | None = None,
    final_url: str | None = None,
    complete: bool = True,
    problems: Sequence[str] = (),
) -> SiteFile:
    """Apply :data:`FAILURE_POLICY` to one per-origin fetch (``status`` None = no response).

    ``body`` is the decoded body (see :mod:`crawler.optout.content`); ``complete`` False when
    it is only a prefix of the file (a download or size cap cut it); ``error`` with a 2xx
    status: the body could not be decoded. What a file's reservations cannot be read from
    completely is undetermined (``unreachable``), never "no statement": robots.txt alone may be
    read in part (RFC 9309 §2.5 parsing limit), without its partial last line.
    """
    sha = hashlib.sha256(body).hexdigest() if status is not None else None
    notes = list(problems)
    common = {"status": status, "sha256": sha, "size": len(body), "error": error,
              "final_url": final_url, "complete": complete}
    ok = status is not None and 200 <= status < 300
    if ok and error is not None:
        # a 2xx whose body cannot be decoded (unknown content-coding, corrupt stream)
        return SiteFile(kind, url, "unreachable", problems=tuple(notes), **common)
    if ok and kind in ("robots.txt", "ai.txt", "tdmrep.json"):
        converted, note = content_mod.utf8_from_bom(body)
        if note is not None:
            body = converted
            notes.append(note)
    limit = _PARSE_LIMITS.get(kind)
    if ok and limit is not None and len(body) > limit:
        common["error"] = (f"{len(body)} bytes, over the {limit}-byte limit of the {kind} "
                           "reader: its reservations are undetermined")
        return SiteFile(kind, url, "unreachable", problems=tuple(notes), **common)
    if ok and not complete and kind != "robots.txt":
        # JSON and XML cannot be read in part; an ai.txt rule after the cut may reserve
        common["error"] = (f"only the first {len(body)} bytes could be read (cut at the size "
                           "limit): its reservations are undetermined")
        return SiteFile(kind, url, "unreachable", problems=tuple(notes), **common)
    if kind == "robots.txt":
        outcome = robots_mod.robots_outcome(status)
        if outcome is robots_mod.RobotsOutcome.PARSED:
            if not complete and len(body) < robots_mod.ROBOTS_PARSE_LIMIT:
                # RFC 9309 §2.5: "The parsing limit MUST be at least 500 kibibytes": a file cut
                # before that (a small POLITE_PREFLIGHT_MAXSIZE) may hold rules we must obey
                common["error"] = (f"cut after {len(body)} bytes, before the "
                                   f"{robots_mod.ROBOTS_PARSE_LIMIT} bytes RFC 9309 2.5 requires "
                                   "a crawler to read: its rules are undetermined")
                return SiteFile(kind, url, "unreachable", problems=tuple(notes), **common)
            if not complete:
                # past the RFC 9309 §2.5 parsing limit: the rules read so far apply; a line the
                # cut went through is dropped (a half-read "Allow: /a/b" must not become
                # "Allow: /a")
                last_break = max(body.rfind(b"\n"), body.rfind(b"\r"))
                dropped = len(body) - (last_break + 1)
                body = body[: last_break + 1]
                notes.append(f"file cut after {len(body) + dropped} bytes (size limit): "
                             f"rules after that and the partial last line ({dropped} bytes) "
                             "ignored")
            return SiteFile(kind, url, "parsed", parsed=_parse(kind, body, url, final_url),
                            problems=tuple(notes), source=body, **common)
        return SiteFile(kind, url, outcome.value, problems=tuple(notes), **common)
    if kind == "tdmrep.json":
        if ok:
            parsed = _parse(kind, body, url, final_url)
            return SiteFile(kind, url, "parsed" if parsed.valid else "unavailable",
                            parsed=parsed, problems=tuple(notes), source=body, **common)
        if status is not None and 400 <= status < 500 and status != 429:
            return SiteFile(kind, url, "unavailable", **common)
        return SiteFile(kind, url, "unreachable", **common)
    if kind in ("ai.txt", "rsl"):
        if ok:
            parsed = _parse(kind, body, url, final_url)
            good = parsed.is_spawning_format if kind == "ai.txt" else parsed.valid
            return SiteFile(kind, url, "parsed" if good else "unavailable", parsed=parsed,
                            problems=tuple(notes), source=body, **common)
        if status is not None and 400 <= status < 500 and status != 429:
            return SiteFile(kind, url, "unavailable", **common)
        return SiteFile(kind, url, "unreachable", **common)
    raise ValueError(f"unknown per-origin file {kind!r}")


def _parse(kind: str, body: bytes, url: str, final_url: str | None) -> Any:
    """The reader of each per-origin file (what :func:`site_file` keeps as ``parsed``)."""
    if kind == "robots.txt":
        return robots_mod.parse_robots(body)
    if kind == "tdmrep.json":
        return tdm.parse_tdmrep_file(body)
    if kind == "ai.txt":
        return aitxt.parse_ai_txt(body)
    return rsl.parse_rsl(body, base_url=final_url or url)


def reparsed(f: SiteFile, source: bytes) -> SiteFile:
    """``f`` (kept without its parse) with ``parsed`` read again from ``source``, the bytes
    :func:`site_file` parsed it from: equal to the file :func:`site_file` made (the readers are
    pure functions of those bytes)."""
    return replace(f, parsed=_parse(f.kind, source, f.url, f.final_url), source=source)


def failure_policy_markdown() -> str:
    """:data:`FAILURE_POLICY` as the Markdown table printed in the README (a test keeps the
    two equal)."""
    lines = ["| file / value | outcome | decision | basis |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in FAILURE_POLICY]
    return "\n".join(lines)
