"""The crawler information page for rights holders, and an Atom feed of its changes.

EU GPAI Code of Practice, copyright chapter, measure 1.3(c): publish which crawlers are used,
their robots.txt tokens and the other measures applied, with a way to be notified of changes.
:func:`build_about` writes, into one directory:

* ``about.html``: a self-contained page (no external resources): name, product token, full
  User-Agent, contact, purpose, every protocol honoured and how, how to opt out (with examples
  that the tests feed back through the policy and see refused), and the failure policy;
* ``about.json``: the same content, machine-readable;
* ``changes.atom``: an Atom feed (RFC 4287) with one entry per change of the page's content;
* with a signing key: ``.well-known/http-message-signatures-directory`` (the Web Bot Auth key
  directory: the current key and the retired keys still in their grace period), beside it
  ``http-message-signatures-directory.headers.json`` (the headers it must be served with:
  its media type and its signatures, see :func:`crawler.identity.websig.sign_directory`), and
  ``keys.json`` (every key ever published: old audit checkpoints stay checkable);
* with ``identity.signature_agent``: ``signature-agent-card``, the Signature Agent card.

:func:`serve_about` serves that directory (``polite-crawl about --serve``) with the right media
types, signing the key directory afresh for each response.

Every list on the page is generated from :mod:`crawler.policy.reservation` (``SWITCHABLE_SIGNALS``,
``TERM_PURPOSES``, ``FAILURE_POLICY``) so the page cannot drift from what the crawler does.
Deterministic: with the same input and ``now`` the files are byte-identical, and a run that
changes nothing leaves them as they were (no new entry, same timestamps).
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from crawler import __version__
from crawler.config.job import JobConfig, product_token
from crawler.policy.reservation import (
    FAILURE_POLICY,
    IMAGE_ONLY_TERMS,
    POLICY_VERSION,
    SWITCHABLE_SIGNALS,
    TERM_PURPOSES,
)

ATOM_NS = "http://www.w3.org/2005/Atom"
ABOUT_HTML, ABOUT_JSON, CHANGES_ATOM = "about.html", "about.json", "changes.atom"
#: feed entries that are not page changes: published audit checkpoints and their timestamps
CHECKPOINT_CATEGORY = "audit-checkpoint"
#: the key directory (JWK Set of the crawler's public keys), relative to the page
JWKS_PATH = ".well-known/http-message-signatures-directory"
#: the headers the key directory must be served with (for static hosting), beside it
JWKS_HEADERS_PATH = JWKS_PATH + ".headers.json"
#: every key ever published (a JWK Set), for checking old audit checkpoints
KEY_HISTORY = "keys.json"
#: the Signature Agent card (draft-meunier-webbotauth-registry)
AGENT_CARD = "signature-agent-card"
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


class AboutError(ValueError):
    """The previous page or feed cannot be read (so its history cannot be kept)."""


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


# -- the feed ------------------------------------------------------------------------------

def _rfc3339(when: datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _a(tag: str) -> str:
    return f"{{{ATOM_NS}}}{tag}"


def read_feed(path: Path) -> tuple[str | None, list[dict[str, str]]]:
    """The feed id and entries (newest first) of an Atom feed this module wrote."""
    if not path.exists():
        return None, []
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise AboutError(f"{path}: cannot read the previous change feed ({exc}); move it "
                         "away to start a new one") from None
    if root.tag != _a("feed"):
        raise AboutError(f"{path}: not an Atom feed (root {root.tag!r})")
    entries = []
    for e in root.findall(_a("entry")):
        entries.append({
            "id": e.findtext(_a("id"), ""),
            "title": e.findtext(_a("title"), ""),
            "updated": e.findtext(_a("updated"), ""),
            "summary": e.findtext(_a("summary"), ""),
            "content": e.findtext(_a("content"), ""),
            "category": next((c.get("term", "") for c in e.findall(_a("category"))), ""),
        })
    entries.sort(key=lambda x: x["updated"], reverse=True)
    return root.findtext(_a("id")), entries


def render_feed(feed_id: str, content: Mapping[str, Any], entries: Sequence[Mapping[str, str]],
                *, base_url: str | None = None) -> bytes:
    """An Atom 1.0 feed (RFC 4287): id, title, updated, author, links; entries newest first."""
    ET.register_namespace("", ATOM_NS)
    crawler = content["crawler"]
    token = crawler["product_token"] or "crawler"
    page = _join(base_url, ABOUT_HTML)
    feed = ET.Element(_a("feed"))
    ET.SubElement(feed, _a("id")).text = feed_id
    ET.SubElement(feed, _a("title")).text = f"{token}: changes to the crawler information page"
    ET.SubElement(feed, _a("updated")).text = entries[0]["updated"] if entries else ""
    author = ET.SubElement(feed, _a("author"))
    ET.SubElement(author, _a("name")).text = f"Operator of {token}"
    if crawler.get("contact", "") and str(crawler["contact"]).startswith("http"):
        ET.SubElement(author, _a("uri")).text = crawler["contact"]
    ET.SubElement(feed, _a("link"), {"rel": "self", "type": "application/atom+xml",
                                     "href": _join(base_url, CHANGES_ATOM)})
    ET.SubElement(feed, _a("link"), {"rel": "alternate", "type": "text/html", "href": page})
    ET.SubElement(feed, _a("generator"), {"version": __version__}).text = "polite-crawler"
    for entry in entries:
        el = ET.SubElement(feed, _a("entry"))
        ET.SubElement(el, _a("id")).text = entry["id"]
        ET.SubElement(el, _a("title")).text = entry["title"]
        ET.SubElement(el, _a("updated")).text = entry["updated"]
        if entry.get("category"):
            ET.SubElement(el, _a("category"), {"term": entry["category"]})
        ET.SubElement(el, _a("link"), {"rel": "alternate", "type": "text/html", "href": page})
        ET.SubElement(el, _a("summary"), {"type": "text"}).text = entry["summary"]
        ET.SubElement(el, _a("content"), {"type": "text"}).text = entry["content"]
    ET.indent(feed)
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True) + b"\n"


def _join(base_url: str | None, name: str) -> str:
    return f"{base_url.rstrip('/')}/{name}" if base_url else name


# -- the page ------------------------------------------------------------------------------

_CSS = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;
line-height:1.5;color:#222}code,pre{font-family:ui-monospace,monospace;background:#f4f4f4}
pre{padding:.6rem;overflow-x:auto}table{border-collapse:collapse;margin:1rem 0}
th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#eee}.no{color:#888}"""


def render_html(doc: Mapping[str, Any], entries: Sequence[Mapping[str, str]]) -> str:
    e = html.escape
    c = doc["crawler"]
    token = c["product_token"]
    contact = c.get("contact")
    contact_html = (f'<a href="{e(contact)}">{e(contact)}</a>' if contact else "not given")
    purpose = doc["purpose"]
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(token)}: crawler information</title>",
        (f'<link rel="alternate" type="application/atom+xml" href="{CHANGES_ATOM}" '
        f'title="{e(token)}: changes to this page">'),
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{e(token)}: crawler information</h1>",
        ("<p>This page tells rights holders which crawler this is, what it collects content "
        "for, which reservations of rights it honours and how to opt out. Subscribe to "
        f'<a href="{CHANGES_ATOM}">the change feed</a> (Atom) to be told when it changes.</p>'),
        "<h2>Identity</h2><table>",
        (f"<tr><th>Name / product token</th><td><code>{e(token)}</code> (the robots.txt "
        "user-agent token we obey)</td></tr>"),
        f"<tr><th>User-Agent header</th><td><code>{e(c['user_agent'])}</code></td></tr>",
        f"<tr><th>Contact</th><td>{contact_html}</td></tr>",
        (f"<tr><th>Purpose</th><td><code>{e(purpose['name'])}</code>: "
        f"{e(purpose['description'])}</td></tr>"),
    ]
    if doc["honor_agents"]:
        agents = ", ".join(f"<code>{e(a)}</code>" for a in doc["honor_agents"])
        out.append(f"<tr><th>Also obeys robots.txt groups for</th><td>{agents}</td></tr>")
    if doc["registries"]:
        regs = ", ".join(f"{e(r['name'])} ({e(r['type'])})" for r in doc["registries"])
        out.append(f"<tr><th>Opt-out registries consulted</th><td>{regs}</td></tr>")
    out.append(f"<tr><th>Last changed</th><td>{e(doc.get('updated', ''))}</td></tr></table>")

    out += ["<h2>Reservations of rights we honour</h2>",
            ("<p>Every decision is written to a hash-chained audit log with the evidence (the "
            "files as fetched, by SHA-256). Statements combine most-restrictive-wins: any "
            f"statement below that says no to <code>{e(purpose['name'])}</code> stops us.</p>"),
            ("<table><tr><th>Protocol</th><th>Honoured</th><th>Where we read it</th>"
            f"<th>Statements that stop a {e(purpose['name'])} crawl</th>"
            "<th>Read, but not about this purpose</th></tr>")]
    for p in doc["protocols"]:
        honoured = "yes" if p["honoured"] else '<span class="no">no</span>'
        binds = ", ".join(f"<code>{e(t)}</code>" for t in p["binds"]) or "—"
        other = ", ".join(f"<code>{e(t)}</code>" for t in p["not_binding"]) or "—"
        out.append(f"<tr><td>{e(p['name'])}</td><td>{honoured}</td><td>{e(p['where'])}</td>"
                   f"<td>{binds}</td><td>{other}</td></tr>")
    out.append("</table>")

    out += ["<h2>How to opt out</h2>",
            "<p>Any one of these is enough. robots.txt is re-read at least once a day.</p>"]
    for ex in doc["opt_out"]:
        out.append(f"<h3>{e(ex['text'])}</h3><p>{e(ex['where'])}</p>")
        if ex["example"]:
            out.append(f"<pre>{e(ex['example'])}</pre>")

    out += ["<h2>When a reservation cannot be determined</h2>",
            "<p>We fail closed: when a file cannot be fetched, nothing is collected.</p>",
            ("<table><tr><th>File / value</th><th>Outcome</th><th>Decision</th><th>Basis</th>"
            "</tr>")]
    for row in doc["failure_policy"]:
        out.append("<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>")
    out.append("</table>")

    keys = doc.get("signing_keys") or []
    checkpoints = [x for x in entries if x.get("category") == CHECKPOINT_CATEGORY]
    out += ["<h2>Audit checkpoints</h2>",
            ("<p>Every 1,000 audit records or so, and at the end of every crawl, the crawler "
             "publishes a checkpoint of its audit log (job, record number, the record's hash, "
             "time, policy hash) in <a href=\"" + CHANGES_ATOM + "\">the feed</a>"
             + (", signed with the key" + ("s" if len(keys) > 1 else "") + " "
                + ", ".join(f"<code>{e(k)}</code>" for k in keys)
                + f' (public keys: <a href="{KEY_HISTORY}">every key we used</a>, JWK Set; '
                + f'<a href="{JWKS_PATH}">the key directory</a> of our signed requests)'
                if keys else " (unsigned: no signing key is configured)")
             + ". Archive the feed: a checkpoint you keep lets anyone prove later, with "
               "<code>polite-crawl audit verify LOG --checkpoints FEED --keys JWKS</code>, "
               "that the audit log shown to them is the one published then.</p>"),
            f"<p>{len(checkpoints)} checkpoint entries in the feed.</p>"]
    out += ["<h2>Changes to this page</h2>",
            f'<p><a href="{CHANGES_ATOM}">Atom feed</a></p><ul>']
    for entry in entries:
        if entry.get("category"):
            continue
        out.append(f"<li>{e(entry['updated'])}: {e(entry['summary'])}</li>")
    out += ["</ul>",
            (f"<p><small>Generated by polite-crawler; policy version "
            f"{e(str(doc['policy_version']))}; content SHA-256 "
            f"<code>{e(doc.get('content_sha256', ''))}</code>.</small></p>"),
            "</body></html>", ""]
    return "\n".join(out)


# -- putting it together -------------------------------------------------------------------

def build_about(
    job: JobConfig | Mapping[str, Any] | Any,
    out_dir: str | Path,
    *,
    now: datetime | None = None,
    previous_dir: str | Path | None = None,
    base_url: str | None = None,
    checkpoints: Iterable[Mapping[str, Any]] = (),
    keys: Sequence[Mapping[str, Any]] = (),
    signers: Sequence[Any] = (),
    signature_agent: str | None = None,
    directory_validity: float | None = None,
    rate_expectation: str | None = None,
) -> Path:
    """Write about.html, about.json and changes.atom into ``out_dir``; return about.html.

    The previous about.json and changes.atom are read from ``previous_dir`` (default
    ``out_dir``): their entries are kept, and a new entry (dated ``now``, default UTC now) is
    added only when the content changed. ``base_url``: where the page will be published
    (makes the feed's links absolute).

    ``keys``: the public keys the key directory publishes now (the current key and the retired
    keys in their grace period, :func:`crawler.identity.keys.published_keys`); none: the previous
    directory is kept as it was. ``keys.json`` keeps every key ever published. ``signers``:
    the :class:`crawler.identity.keys.Identity` objects that sign the directory for static hosting
    (its headers, valid ``directory_validity`` seconds, go to ``JWKS_HEADERS_PATH``), for the
    authority of ``signature_agent`` (else of ``base_url``). ``signature_agent``: where the
    directory is published; with it the Signature Agent card is written.
    """
    from crawler.identity.keys import jwks

    out = Path(out_dir)
    prev = Path(previous_dir) if previous_dir is not None else out
    when = _rfc3339(now or datetime.now(timezone.utc))
    previous_directory = _read_jwks(prev / JWKS_PATH, "key directory")
    directory = jwks(_merge([], keys)) if keys else jwks(previous_directory)
    history = jwks(_merge(_merge(_read_jwks(prev / KEY_HISTORY, "key history"),
                                 previous_directory), keys))
    content = about_content(job, [k["kid"] for k in history["keys"]])
    digest = content_hash(content)

    old: dict[str, Any] | None = None
    old_path = prev / ABOUT_JSON
    if old_path.exists():
        try:
            old = json.loads(old_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise AboutError(f"{old_path}: cannot read the previous page ({exc})") from None
    feed_id, all_entries = read_feed(prev / CHANGES_ATOM)
    if feed_id is None:
        seed = f"{content['crawler']['contact']}#{content['crawler']['product_token']}"
        feed_id = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, seed)}"
    entries = [x for x in all_entries if not x.get("category")]
    others = [x for x in all_entries if x.get("category")]

    unchanged = old is not None and content_hash(old) == digest and bool(entries)
    if unchanged:
        updated = entries[0]["updated"]
    else:
        if old is None and entries:
            changes = ["page regenerated (the previous about.json was not found)"]
        else:
            changes = describe_changes(old, content)
        updated = when
        entries = [{
            "id": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{feed_id}#{digest}#{when}')}",
            "title": f"{content['crawler']['product_token']} crawler information "
                     f"{'published' if changes == ['first published'] else 'changed'}",
            "updated": when,
            "summary": "; ".join(changes),
            "content": "\n".join(changes),
        }, *entries]

    known = {x["id"] for x in others}
    for entry in checkpoint_entries(feed_id, checkpoints):
        if entry["id"] not in known:
            known.add(entry["id"])
            others.append(entry)
    entries = sorted([*entries, *others], key=lambda x: x["updated"], reverse=True)

    doc = {**content, "updated": updated, "content_sha256": digest,
           "generator": f"polite-crawler {__version__}"}
    out.mkdir(parents=True, exist_ok=True)
    if directory["keys"]:
        (out / JWKS_PATH).parent.mkdir(parents=True, exist_ok=True)
        _write(out / JWKS_PATH, _json_bytes(directory))
    if history["keys"]:
        _write(out / KEY_HISTORY, _json_bytes(history))
    authority = urlsplit(signature_agent or base_url or "").netloc
    if signers and directory["keys"] and authority:
        from crawler.identity.websig import DEFAULT_DIRECTORY_VALIDITY, directory_response_headers

        published = {k["kid"] for k in directory["keys"]}
        headers = directory_response_headers(
            [i for i in signers if i.keyid in published], authority,
            now=datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp(),
            validity=directory_validity or DEFAULT_DIRECTORY_VALIDITY)
        _write(out / JWKS_HEADERS_PATH, _json_bytes(headers))
    if signature_agent:
        from crawler.identity.websig import agent_card

        c = content["crawler"]
        card = agent_card(signature_agent=signature_agent, name=c["name"],
                          user_agent=c["user_agent"], product_token=c["product_token"],
                          purpose=content["purpose"]["name"], contact=c.get("contact"),
                          about_url=_join(base_url, ABOUT_HTML) if base_url else None,
                          rate_expectation=rate_expectation)
        _write(out / AGENT_CARD, _json_bytes(card))
    _write(out / ABOUT_JSON, (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False)
                              + "\n").encode("utf-8"))
    _write(out / CHANGES_ATOM, render_feed(feed_id, doc, entries, base_url=base_url))
    page = out / ABOUT_HTML
    _write(page, render_html(doc, entries).encode("utf-8"))
    return page


def _read_jwks(path: Path, what: str) -> list[dict[str, Any]]:
    """The keys of a JWK Set this module wrote before ([] when there is none); a set whose kids
    do not match their keys is refused."""
    from crawler.identity.keys import keys_from_jwks

    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        keys_from_jwks(data)
    except (OSError, ValueError) as exc:
        raise AboutError(f"{path}: cannot read the previous {what} ({exc})") from None
    return [dict(k) for k in data["keys"]]


def _merge(published: Sequence[Mapping[str, Any]], keys: Iterable[Mapping[str, Any]]
           ) -> list[dict[str, Any]]:
    """``published`` then the ``keys`` not in it, each once (by kid), oldest first. Public
    keys only: a JWK with private members is refused."""
    out = [dict(k) for k in published]
    seen = {k.get("kid") for k in out}
    for k in keys:
        if "d" in k:
            raise AboutError("a private key cannot be published")
        if k.get("kid") not in seen:
            seen.add(k.get("kid"))
            out.append(dict(k))
    return out


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def checkpoint_entries(feed_id: str, lines: Iterable[Mapping[str, Any]]
                       ) -> list[dict[str, str]]:
    """One feed entry per audit checkpoint or timestamp line (its content: the line itself,
    exactly, so that a copy of the feed is a copy of the checkpoint)."""
    from crawler.audit.checkpoint import CHECKPOINT_TYPE, TIMESTAMP_TYPE
    from crawler.audit.record import canonical_json

    out = []
    for line in lines:
        kind = line.get("type")
        if kind not in (CHECKPOINT_TYPE, TIMESTAMP_TYPE):
            continue
        text = canonical_json(line)
        sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
        when = _parse_when(str(line.get("time") or line.get("gen_time") or ""))
        if kind == CHECKPOINT_TYPE:
            signed = f"signed by {line['keyid']}" if line.get("sig") else "unsigned"
            title = f"audit checkpoint: {line.get('log')} seq {line.get('seq')}"
            summary = (f"job {line.get('job')}, {line.get('log')} up to record {line.get('seq')} "
                       f"(hash {line.get('hash')}), {line.get('reason')}; {signed}")
        else:
            title = f"trusted timestamp: {line.get('log')} seq {line.get('seq')}"
            summary = (f"RFC 3161 token from {line.get('tsa_url')} for checkpoint seq "
                       f"{line.get('seq')} of {line.get('log')} (job {line.get('job')})")
        out.append({
            "id": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{feed_id}#{sha}')}",
            "title": title, "updated": when, "summary": summary, "content": text,
            "category": CHECKPOINT_CATEGORY,
        })
    return out


def _parse_when(text: str) -> str:
    try:
        return _rfc3339(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return _rfc3339(datetime.now(timezone.utc))


def _write(path: Path, data: bytes) -> None:
    """Write whole or not at all (a reader never sees half a page)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


# -- serving it ----------------------------------------------------------------------------

#: what ``about --serve`` serves (nothing else: no directory listing, no other file)
def media_types() -> dict[str, str]:
    from crawler.identity.keys import JWKS_MEDIA_TYPE

    return {ABOUT_HTML: "text/html; charset=utf-8", ABOUT_JSON: "application/json",
            CHANGES_ATOM: "application/atom+xml", KEY_HISTORY: "application/json",
            AGENT_CARD: "application/json", JWKS_PATH: JWKS_MEDIA_TYPE}


class AboutServer(ThreadingHTTPServer):
    """A small threaded HTTP server for an about directory (see :func:`serve_about`)."""

    daemon_threads = True

    def __init__(self, root: Path, address: tuple[str, int], *, signers: Sequence[Any],
                 clock: Callable[[], float], validity: float,
                 authorities: Iterable[str] | None = None) -> None:
        self.root, self.signers, self.clock, self.validity = root, list(signers), clock, validity
        self.authorities = None if authorities is None else {a.lower() for a in authorities}
        self.types = media_types()
        self._thread: threading.Thread | None = None
        super().__init__(address, _AboutHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> AboutServer:
        self._thread = threading.Thread(target=self.serve_forever, name="about-server",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def directory_headers(self, authority: str) -> dict[str, str]:
        """The key directory's signature headers for a request to ``authority``: signed now by
        every key we hold that the directory lists; else the ones ``about`` wrote beside it.
        An authority we do not serve (a forged Host) gets no signature: our keys sign a
        directory only for where it is published."""
        from crawler.identity.keys import keys_from_jwks
        from crawler.identity.websig import sign_directory

        try:
            listed = set(keys_from_jwks(json.loads((self.root / JWKS_PATH).read_text("utf-8"))))
        except (OSError, ValueError):
            listed = set()
        signers = [i for i in self.signers if i.keyid in listed]
        own = self.url.split("://", 1)[1]
        if self.authorities is not None and authority.lower() not in self.authorities | {own}:
            return {}
        if signers:
            return sign_directory(signers, authority, now=self.clock(), validity=self.validity)
        try:
            saved = json.loads((self.root / JWKS_HEADERS_PATH).read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        return {k: v for k, v in saved.items() if k in ("Signature", "Signature-Input")}


class _AboutHandler(BaseHTTPRequestHandler):
    server: AboutServer
    server_version = "polite-crawler-about"

    def _serve(self, head_only: bool) -> None:
        path = urlsplit(self.path).path.lstrip("/") or ABOUT_HTML
        media = self.server.types.get(path)
        body = None
        if media is not None:
            try:
                body = (self.server.root / path).read_bytes()
            except OSError:
                body = None
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", media)
        self.send_header("Content-Length", str(len(body)))
        if path == JWKS_PATH:
            authority = self.headers.get("Host") or "%s:%d" % self.server.server_address[:2]
            for name, value in self.server.directory_headers(authority).items():
                self.send_header(name, value)
            self.send_header("Cache-Control", "max-age=300")
        self.end_headers()
        if not head_only:
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._serve(head_only=False)

    def do_HEAD(self) -> None:
        self._serve(head_only=True)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the CLI says where it is
        return


def serve_about(out_dir: str | Path, host: str = "127.0.0.1", port: int = 0, *,
                signers: Sequence[Any] = (), clock: Callable[[], float] = time.time,
                validity: float = 3600, authorities: Iterable[str] | None = None
                ) -> AboutServer:
    """Start serving ``out_dir`` (what :func:`build_about` wrote) on ``host:port`` (loopback by
    default; port 0 picks a free one) in a background thread; ``stop()`` ends it. The key
    directory is signed for each response (``signers``: the keys we hold), valid ``validity``
    seconds, for the authority the client asked for (its Host header) when it is the server's
    own address or one of ``authorities`` (None: any)."""
    return AboutServer(Path(out_dir), (host, port), signers=signers, clock=clock,
                       validity=validity, authorities=authorities).start()
