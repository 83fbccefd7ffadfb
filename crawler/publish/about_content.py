"""What the crawler information page says (:mod:`crawler.publish.about` writes it): the
crawler's identity, every protocol honoured and how, opt-out examples, the failure policy, and
what changed between two versions of the page.

Every list is generated from :mod:`crawler.policy.reservation` (``SWITCHABLE_SIGNALS``,
``TERM_PURPOSES``, ``FAILURE_POLICY``) so the page cannot drift from what the crawler does.
Pure: no file is read or written here.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from crawler.config.job import JobConfig, product_token
from crawler.policy.reservation import (
    FAILURE_POLICY,
    IMAGE_ONLY_TERMS,
    POLICY_VERSION,
    SWITCHABLE_SIGNALS,
    TERM_PURPOSES,
)

#: Keys of about.json that are not page content (left out of the content hash).
VOLATILE_KEYS = ("updated", "content_sha256", "generator")

#: What each crawl purpose means, in plain words.
PURPOSE_TEXT: Mapping[str, str] = {
    "train-ai": "training AI models (any kind of model)",
    "train-genai": "training generative AI models",
    "search": "building a search index (no AI training, no AI answers)",
    "ai-input": "input to AI applications (retrieval, grounding answers), not training",
}

#: Every signal of the audit record: (name, where and how we read it).
SIGNAL_INFO: Mapping[str, tuple[str, str]] = {
    "robots": ("robots.txt (RFC 9309)",
               ("/robots.txt of every origin (scheme, host, port), fetched before any other "
               "request to it and re-read after at most 24 hours; groups naming our product "
               "token, else the '*' group")),
    "tdmrep": ("TDMRep (W3C TDM Reservation Protocol)",
               ("/.well-known/tdmrep.json, the tdm-reservation / tdm-policy HTTP headers and "
               "<meta name=\"tdm-reservation\"> in HTML; in a collected PDF or EPUB, its XMP "
               "or package metadata (the last and strongest step)")),
    "noai": ("noai / noimageai / noml / noarchive",
             ("X-Robots-Tag HTTP header and <meta name=\"robots\"> or a <meta> naming our "
             "token; noimageai binds images only")),
    "ai-txt": ("Spawning ai.txt", "/ai.txt in Spawning's robots-style format"),
    "content-usage": ("IETF AI preferences (Content-Usage)",
                      "Content-Usage lines in robots.txt and the Content-Usage HTTP header"),
    "content-signal": ("Content Signals (Content-Signal)",
                       ("Content-Signal lines in robots.txt, the Content-Signal HTTP header and "
                       "<meta name=\"content-signal\">")),
    "rsl": ("RSL 1.0 licences (Really Simple Licensing)",
            ("licences named by License: lines in robots.txt, by a Link header or by "
            "<link rel=\"license\" type=\"application/rsl+xml\">; a use that is prohibited, "
            "not permitted, paid or needs a licence server is reserved (we hold no licences)")),
    "payment-required": ("HTTP 402 / 401 / 403 and pay-per-crawl",
                         ("the response status and a crawler-price header: never retried, "
                         "never paid, never circumvented (no logins, no paywall bypass)")),
    "iptc": ("IPTC Photo Metadata \"Data Mining\" (PLUS)",
             ("plus:DataMining in the XMP of a collected image or PDF (JPEG, PNG, WebP, GIF, "
             "TIFF, PDF), read before the file is stored; a file whose metadata cannot be read "
             "completely is not collected")),
    "c2pa": ("C2PA / CAWG training-and-mining (Content Credentials)",
             ("the c2pa.training-mining / cawg.training-mining assertion in a collected "
             "image's or PDF's C2PA manifests, read before the file is stored (no network, no "
             "trust list); notAllowed or constrained in any manifest binds; a manifest that "
             "cannot be read, or only a reference to a remote one, leaves the file uncollected")),
    "registry": ("Opt-out registries",
                 ("each URL is looked up before anything is fetched from its origin; a "
                 "registry that cannot answer leaves the URL unfetched (decided again later)")),
    "network": ("Network safety and undetermined reservations",
                ("private, loopback and link-local addresses are refused; a URL whose "
                "reservation files cannot be fetched is not collected (fail closed)")),
    "scope": ("Crawl scope and sitemaps (the operator's choice, not a reservation)",
              ("the job's include/exclude patterns and per-origin page cap narrow what is "
               "asked for; sitemaps only propose URLs, each decided like any other")),
}

#: Which FAILURE_POLICY rows (by their first column) belong to which signal.
FAILURE_ROWS_FOR: Mapping[str, tuple[str, ...]] = {
    "robots": ("robots.txt",),
    "tdmrep": ("tdmrep.json", "tdm-reservation value", "tdm:reservation (in a file)"),
    "ai-txt": ("ai.txt",),
    "rsl": ("RSL licence",),
    "content-usage": ("Content-Usage value",),
    "content-signal": ("Content-Signal value",),
    "payment-required": ("HTTP status", "payment state"),
    "network": ("any target", "HTML page", "page body", "document (not HTML)", "embedded XMP",
                "PDF metadata", "EPUB", "other binary"),
    "iptc": ("plus:DataMining value",),
    "c2pa": ("C2PA manifest",),
    "scope": ("sitemap", "page"),
}


# -- the crawler's identity ---------------------------------------------------------------

_CONTACT_RES = (re.compile(r"\+?(https?://[^\s;)]+)"), re.compile(r"(mailto:[^\s;)]+)"),
                re.compile(r"([^\s;()+]+@[^\s;()]+\.[^\s;()]+)"))


def contact_url(user_agent: str) -> str | None:
    """The contact URL of a User-Agent (``+https://...``), else a mailto: or an address."""
    for i, rx in enumerate(_CONTACT_RES):
        m = rx.search(user_agent)
        if m:
            return m.group(1) if i < 2 else f"mailto:{m.group(1)}"
    return None


def crawler_identity(job: JobConfig | Mapping[str, Any] | Any) -> dict[str, Any]:
    """The facts the page is built from, from a :class:`JobConfig`, a ``run.json`` mapping or
    Scrapy settings (``POLITE_*``). Registries are reduced to type and name (never keys)."""
    if isinstance(job, JobConfig):
        ua, purpose = job.user_agent, job.purpose
        signals, honor, regs = job.signals, job.honor_agents, job.registries
    else:
        def get(key: str, default: Any = None) -> Any:
            value = job.get(key) if hasattr(job, "get") else None
            if value is None and hasattr(job, "get"):
                value = job.get(f"POLITE_{key.upper()}")
            return default if value is None else value

        ua = get("user_agent", "")
        purpose = get("purpose", "train-ai")
        signals = get("signals", SWITCHABLE_SIGNALS)
        if isinstance(signals, Mapping):
            signals = [s for s in SWITCHABLE_SIGNALS if signals.get(s, True)]
        honor = get("honor_agents", ())
        regs = get("registries", ())
    return {
        "user_agent": ua,
        "token": product_token(ua) if ua else "",
        "contact": contact_url(ua or ""),
        "purpose": purpose,
        "signals": [s for s in SWITCHABLE_SIGNALS if s in set(signals)],
        "honor_agents": list(honor),
        "registries": [registry_label(r) for r in regs],
    }


def registry_label(spec: Mapping[str, Any] | str) -> dict[str, str]:
    """``{"type", "name"}`` of a registry entry (a config mapping or a ``"type name"``)."""
    if isinstance(spec, str):
        kind, _, name = spec.partition(" ")
        return {"type": kind, "name": Path(name).name if kind != "http" else name}
    kind = str(spec.get("type", ""))
    name = spec.get("name")
    if not name:
        where = str(spec.get("url") or spec.get("path") or "")
        name = Path(where).name if kind != "http" else where
    return {"type": kind, "name": str(name)}


# -- generated from crawler.policy.reservation -----------------------------------------------------------

def binding_terms(signal: str, purpose: str) -> list[str]:
    """The statements of ``signal`` whose "no" binds ``purpose`` (TERM_PURPOSES order)."""
    return [term for (sig, term), purposes in TERM_PURPOSES.items()
            if sig == signal and purpose in purposes]


def _term_label(signal: str, term: str) -> str:
    return term + (" (images only)" if (signal, term) in IMAGE_ONLY_TERMS else "")


def failure_rows(signal: str) -> list[list[str]]:
    names = FAILURE_ROWS_FOR.get(signal, ())
    return [list(row) for row in FAILURE_POLICY if row[0] in names]


def protocols(purpose: str, signals: Iterable[str],
              registries: Sequence[Mapping[str, str]] = ()) -> list[dict[str, Any]]:
    """Every protocol, whether this crawl honours it, where it is read and what binds."""
    on = set(signals)
    out = []
    for signal in (*SWITCHABLE_SIGNALS, "registry", "network"):
        name, where = SIGNAL_INFO[signal]
        if signal == "registry":
            honoured = bool(registries)
        else:
            honoured = signal == "network" or signal in on
        all_terms = [t for (s, t) in TERM_PURPOSES if s == signal]
        binds = binding_terms(signal, purpose)
        out.append({
            "signal": signal,
            "name": name,
            "honoured": honoured,
            "where": where,
            "binds": [_term_label(signal, t) for t in binds],
            "not_binding": [_term_label(signal, t) for t in all_terms if t not in binds],
            "failure_policy": failure_rows(signal),
        })
    return out


def opt_out_examples(token: str, purpose: str, signals: Iterable[str],
                     registries: Sequence[Mapping[str, str]] = ()) -> list[dict[str, str]]:
    """How a rights holder stops this crawler, one example per honoured protocol that can
    reserve content from ``purpose`` (each uses a statement that binds it)."""
    on = set(signals)
    out: list[dict[str, str]] = []

    def first(signal: str) -> str | None:
        terms = [t for t in binding_terms(signal, purpose)
                 if (signal, t) not in IMAGE_ONLY_TERMS]
        return terms[0] if terms and signal in on else None

    if "robots" in on:
        out.append({"signal": "robots", "where": "/robots.txt",
                    "text": "Stop this crawler on the whole site (other crawlers unaffected)",
                    "example": f"User-agent: {token}\nDisallow: /\n"})
    if "tdmrep" in on:
        out.append({"signal": "tdmrep", "where": "/.well-known/tdmrep.json",
                    "text": "Reserve text and data mining rights for the whole site",
                    "example": '[{"location": "/", "tdm-reservation": 1}]\n'})
        out.append({"signal": "tdmrep", "where": "HTTP header or HTML <head>",
                    "text": "Reserve one page or file",
                    "example": 'tdm-reservation: 1\n<meta name="tdm-reservation" '
                               'content="1">\n'})
    if term := first("noai"):
        out.append({"signal": "noai", "where": "HTML <head> or X-Robots-Tag header",
                    "text": f"Reserve one page ({term})",
                    "example": f'<meta name="robots" content="{term}">\n'
                               f'X-Robots-Tag: {token}: {term}\n'})
    if term := first("ai-txt"):
        out.append({"signal": "ai-txt", "where": "/ai.txt",
                    "text": "Spawning ai.txt: no AI training on the whole site",
                    "example": "User-Agent: *\nDisallow: /\n"})
    if term := first("content-usage"):
        out.append({"signal": "content-usage", "where": "/robots.txt or HTTP header",
                    "text": f"IETF AI preference: {term} = no",
                    "example": f"User-agent: {token}\nContent-Usage: {term}=n\nAllow: /\n"})
    if term := first("content-signal"):
        out.append({"signal": "content-signal",
                    "where": "/robots.txt, HTTP header or <meta name=\"content-signal\">",
                    "text": f"Content Signals: {term} = no",
                    "example": f"User-agent: *\nContent-Signal: {term}=no\nAllow: /\n"})
    if term := first("rsl"):
        out.append({"signal": "rsl", "where": "/robots.txt and a licence document",
                    "text": f"An RSL licence that prohibits {term}",
                    "example": "License: https://example.com/license.xml\n\n"
                               '<rsl xmlns="https://rslstandard.org/rsl">\n'
                               '  <content url="/">\n    <license>\n'
                               f'      <prohibits type="usage">{term}</prohibits>\n'
                               "    </license>\n  </content>\n</rsl>\n"})
    if "payment-required" in on:
        out.append({"signal": "payment-required", "where": "HTTP status",
                    "text": "Answer 402 (pay per crawl), 401 or 403: we do not pay, retry "
                            "or circumvent",
                    "example": "HTTP/1.1 402 Payment Required\ncrawler-price: USD 0.01\n"})
    if term := first("iptc"):
        out.append({"signal": "iptc", "where": "XMP metadata inside an image or PDF",
                    "text": "IPTC Photo Metadata \"Data Mining\": the file says "
                            f"{term.upper()}",
                    "example": '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
                               '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf='
                               '"http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
                               '<rdf:Description rdf:about="" xmlns:plus='
                               '"http://ns.useplus.org/ldf/xmp/1.0/">\n'
                               '  <plus:DataMining>http://ns.useplus.org/ldf/vocab/'
                               f'{term.upper()}</plus:DataMining>\n'
                               '</rdf:Description></rdf:RDF></x:xmpmeta>\n'
                               '<?xpacket end="w"?>\n'})
    if term := first("c2pa"):
        label = term.split(".")[0] + ".training-mining"
        out.append({"signal": "c2pa", "where": "C2PA manifest (Content Credentials) of an "
                    "image or PDF",
                    "text": f"A signed {label} assertion: {term} notAllowed",
                    "example": '{"label": "' + label + '", "data": {"entries": {"' + term
                               + '": {"use": "notAllowed"}}}}\n'})
    if registries:
        names = ", ".join(f"{r['name']} ({r['type']})" for r in registries)
        out.append({"signal": "registry", "where": "opt-out registry",
                    "text": f"List your site or works in a registry we consult: {names}",
                    "example": ""})
    return out


def about_content(job: JobConfig | Mapping[str, Any] | Any,
                  signing_keys: Sequence[str] = ()) -> dict[str, Any]:
    """The page's content (no timestamps). ``signing_keys``: thumbprints of the keys in the
    published key directory (the crawler's identity; they sign its audit checkpoints)."""
    ident = crawler_identity(job)
    purpose = ident["purpose"]
    return {
        "crawler": {"name": ident["token"], "product_token": ident["token"],
                    "user_agent": ident["user_agent"], "contact": ident["contact"]},
        "purpose": {"name": purpose, "description": PURPOSE_TEXT.get(purpose, purpose)},
        "honor_agents": ident["honor_agents"],
        "signals": ident["signals"],
        "registries": ident["registries"],
        "protocols": protocols(purpose, ident["signals"], ident["registries"]),
        "opt_out": opt_out_examples(ident["token"], purpose, ident["signals"],
                                    ident["registries"]),
        "failure_policy": [list(row) for row in FAILURE_POLICY],
        "policy_version": POLICY_VERSION,
        "signing_keys": list(signing_keys),
    }


def content_hash(doc: Mapping[str, Any]) -> str:
    body = {k: v for k, v in doc.items() if k not in VOLATILE_KEYS}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode("utf-8")).hexdigest()


def describe_changes(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[str]:
    """What changed between two about.json contents, one short line per change."""
    if old is None:
        return ["first published"]
    out: list[str] = []
    oc, nc = old.get("crawler", {}), new.get("crawler", {})
    if oc.get("product_token") != nc.get("product_token"):
        out.append(f"product token: {oc.get('product_token')} -> {nc.get('product_token')}")
    if oc.get("user_agent") != nc.get("user_agent"):
        out.append("user agent changed")
    if oc.get("contact") != nc.get("contact"):
        out.append("contact changed")
    op, np = old.get("purpose", {}).get("name"), new.get("purpose", {}).get("name")
    if op != np:
        out.append(f"purpose: {op} -> {np}")
    for key, label in (("signals", "signals"), ("honor_agents", "honoured agents")):
        diff = _set_diff(old.get(key, []), new.get(key, []))
        if diff:
            out.append(f"{label}: {diff}")
    regs = _set_diff([f"{r['type']} {r['name']}" for r in old.get("registries", [])],
                     [f"{r['type']} {r['name']}" for r in new.get("registries", [])])
    if regs:
        out.append(f"registries: {regs}")
    if old.get("failure_policy") != new.get("failure_policy"):
        out.append("failure policy changed")
    keys = _set_diff(old.get("signing_keys", []), new.get("signing_keys", []))
    if keys:
        out.append(f"signing keys: {keys}")
    if old.get("policy_version") != new.get("policy_version"):
        out.append(f"policy version: {old.get('policy_version')} -> "
                   f"{new.get('policy_version')}")
    if not out and _without(old, "opt_out") != _without(new, "opt_out"):
        out.append("protocol descriptions changed")
    if not out:
        out.append("opt-out instructions changed" if old.get("opt_out") != new.get("opt_out")
                   else "page content changed")
    return out


def _without(doc: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != key and k not in VOLATILE_KEYS}


def _set_diff(old: Iterable[str], new: Iterable[str]) -> str:
    o, n = list(old), list(new)
    parts = [f"+{x}" for x in n if x not in o] + [f"-{x}" for x in o if x not in n]
    return ", ".join(parts)
