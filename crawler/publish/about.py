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

What the page says comes from :mod:`crawler.publish.about_content` (generated from
:mod:`crawler.policy.reservation`, so the page cannot drift from what the crawler does);
:func:`crawler.publish.about_server.serve_about` serves the directory (``polite-crawl about
--serve``) with the right media types, signing the key directory afresh for each response.

Deterministic: with the same input and ``now`` the files are byte-identical, and a run that
changes nothing leaves them as they were (no new entry, same timestamps).
"""

from __future__ import annotations

import hashlib
import html
import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from crawler import __version__
from crawler.audit.checkpoint import CHECKPOINT_TYPE, TIMESTAMP_TYPE
from crawler.audit.record import canonical_json
from crawler.config.job import JobConfig
from crawler.identity.keys import jwks, keys_from_jwks
from crawler.identity.websig import (
    DEFAULT_DIRECTORY_VALIDITY,
    agent_card,
    directory_response_headers,
)
from crawler.publish.about_content import about_content, content_hash, describe_changes

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


class AboutError(ValueError):
    """The previous page or feed cannot be read (so its history cannot be kept)."""


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
        published = {k["kid"] for k in directory["keys"]}
        headers = directory_response_headers(
            [i for i in signers if i.keyid in published], authority,
            now=datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp(),
            validity=directory_validity or DEFAULT_DIRECTORY_VALIDITY)
        _write(out / JWKS_HEADERS_PATH, _json_bytes(headers))
    if signature_agent:
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
