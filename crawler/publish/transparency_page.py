"""The transparency summary as text: Markdown (:func:`render_markdown`, from the summary
:mod:`crawler.publish.transparency` computes) and the same text as a self-contained HTML page
(:func:`markdown_page`: inline styles, no script, nothing fetched).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

from crawler.publish.about_content import PURPOSE_TEXT

__all__ = ["markdown_page", "render_markdown"]


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "n/a"


def _pct(part: int, whole: int) -> str:
    return f"{part:,} of {whole:,} ({100 * part / whole:.1f} %)" if whole else f"{part:,} of 0"


def render_markdown(s: Mapping[str, Any]) -> str:
    d, r, c, dom = s["urls"], s["records"], s["content"], s["domains"]
    lines = [f"# {s['title']}", "", f"Basis: {s['basis']}.", ""]
    if s.get("generated_at"):
        lines += [f"Generated {s['generated_at']} by {s['generator']}.", ""]

    lines += ["## 1. Crawler", ""]
    for cr in s["crawlers"]:
        if cr.get("user_agent") is None:
            lines.append(f"- Crawler identity not recorded ({cr.get('note')}).")
            lines += _identity_lines(cr)
            continue
        lines += [f"- Name / product token: `{cr['product_token']}`",
                  f"- User-Agent: `{cr['user_agent']}`",
                  f"- Contact: {cr['contact'] or 'not given'}",
                  f"- Purpose: `{cr['purpose']}` ({PURPOSE_TEXT.get(cr['purpose'], '')})"]
        if cr["honor_agents"]:
            lines.append("- Also obeys robots.txt groups for: "
                         + ", ".join(f"`{a}`" for a in cr["honor_agents"]))
        lines += _identity_lines(cr)
        lines.append(f"- Runs: {cr['runs']} of {len(s['runs'])}")
    period = s["collection_period"]
    lines += ["", "## 2. Period of data collection", "",
              (f"From {period['first'] or 'unknown'} to {period['last'] or 'unknown'} (first and "
              "last decision in the audit logs, UTC)."), ""]

    lines += ["## 3. Measures to respect reservations of rights", "",
              ("Reservations are checked before each request, at the response headers and in "
              "the document, and the most restrictive statement wins; every decision is "
              "written to a hash-chained audit log with the evidence files. No paywall, login "
              "or other technical protection is circumvented."), "",
              "| protocol | honoured (runs) | where it is read | statements that refuse |",
              "|---|---|---|---|"]
    for p in s["protocols"]:
        binds = "; ".join(f"{purpose}: " + (", ".join(f"`{t}`" for t in terms) or "none")
                          for purpose, terms in p["binds"].items())
        honoured = f"{p['honoured_in_runs']} of {p['of_runs_recorded']}"
        if p["signal"] == "registry" and p.get("registries"):
            honoured += " (" + ", ".join(p["registries"]) + ")"
        lines.append(f"| {p['name']} | {honoured} | {_md(p['where'])} | {binds} |")
    lines += ["", "When a reservation cannot be determined (fail closed):", "",
              "| file / value | outcome | decision | basis |", "|---|---|---|---|"]
    lines += [f"| {' | '.join(_md(x) for x in row)} |" for row in s["failure_policy"]]

    preflight = ", ".join(f"{k} {v:,}" for k, v in r["preflight"].items()) or "none"
    lines += ["", "## 4. Documents collected and refused", "",
              ("Unit: distinct URLs, each counted once by the final decision about it (a URL "
               "refused while a per-origin file was unreachable and decided again later "
               "counts once); records are counted separately below."), "",
              (f"- URLs decided (allowed, refused or erased): {d['decided']:,}"),
              f"- Allowed: {_pct(d['allowed'], d['decided'])} URLs",
              f"- Refused: {_pct(d['refused'], d['decided'])} URLs",
              (f"- Erased after collection (opt-out seen later): "
               f"{_pct(d['erased_later'], d['decided'])} URLs"),
              (f"- Documents in the corpus now: {c['documents']:,} (allowed responses that "
               "were stored; erased documents removed)"),
              (f"- Postponed, not decided (refused only provisionally): "
               f"{d['postponed_not_decided']:,} URLs"),
              (f"- Audit records (a separate unit): {r['allow'] + r['deny'] + r['erase']:,} "
               f"decision records (allow {r['allow']:,}, deny {r['deny']:,}, erase "
               f"{r['erase']:,}), of which {r['provisional_refusals']:,} provisional refusals; "
               f"preflight records about per-origin files: {preflight}"), ""]
    if s["refused_by_signal"]:
        lines += ["| signal | refused URLs citing it | share of refused URLs | refusal records "
                  "citing it |", "|---|---|---|---|"]
        for x in s["refused_by_signal"]:
            lines.append(f"| {x['signal']} | {x['urls']:,} of {x['of_refused_urls']:,} | "
                         f"{_share(x['urls'], x['of_refused_urls'])} | {x['records']:,} of "
                         f"{x['of_refusal_records']:,} |")
        lines += ["", ("A refused URL counts under each signal of its final refusal; refusal "
                       "records include provisional ones."), ""]

    lines += ["## 5. Content collected", "",
              f"{c['documents']:,} documents, {c['bytes']:,} bytes.", ""]
    if c["types"]:
        lines += ["| content type | documents | share |", "|---|---|---|"]
        lines += [f"| {t['content_type']} | {t['documents']:,} of {t['of_documents']:,} | "
                  f"{_share(t['documents'], t['of_documents'])} |" for t in c["types"]]
        lines.append("")

    lines += ["## 6. Most relevant domain names", "",
              (f"Rule: {dom['rule']}. {dom['listed']:,} of {dom['total_domains']:,} "
              f"registrable domains listed, holding {_pct(dom['listed_bytes'], c['bytes'])} "
              "of the bytes collected."), ""]
    if dom["top"]:
        lines += ["| rank | domain | bytes | share of bytes | documents |", "|---|---|---|---|---|"]
        lines += [f"| {t['rank']} | {t['domain']} | {t['bytes']:,} of {c['bytes']:,} | "
                  f"{_share(t['bytes'], c['bytes'])} | {t['documents']:,} |"
                  for t in dom["top"]]
        lines.append("")

    if s.get("payments"):
        lines += _payment_lines(s["payments"])

    lines += ["## Runs", "", "| output | job | period | documents | bytes | audit log |",
              "|---|---|---|---|---|---|"]
    for r in s["runs"]:
        audit = ("verified" if r["audit_log"]["verified"] else
                 "NOT verified" if r["audit_log"]["verified"] is False else "missing")
        lines.append(f"| {r['output_dir']} | {r['job']} | {r['first_record'] or '?'} to "
                     f"{r['last_record'] or '?'} | {r['documents']:,} | {r['bytes']:,} | "
                     f"{audit} ({r['audit_log']['records']:,} records) |")
    return "\n".join(lines) + "\n"


def _identity_lines(cr: Mapping[str, Any]) -> list[str]:
    """The signing key(s) and signature agent(s), when known (nothing when not)."""
    lines = []
    for k in cr.get("keyids") or ():
        lines.append(f"- Signing key (Web Bot Auth `keyid`, RFC 7638 JWK SHA-256 thumbprint): "
                     f"`{_code(k['keyid'])}` (from {_md(k['source'])})")
    for a in cr.get("signature_agents") or ():
        lines.append(f"- Signature agent (where the key directory is published): "
                     f"{_md(a['url'])} (from {_md(a['source'])})")
    return lines


def _payment_lines(pay: Mapping[str, Any]) -> list[str]:
    """Section 7: what was paid, to whom, and what was refused (pay per crawl)."""
    q = pay["quotes"]
    lines = ["## 7. Payments for access (pay per crawl)", "",
             ("Pages behind HTTP 402 (Cloudflare's pay per crawl) were paid for only within the "
              "job's maximum price per page and budgets, and only when no other reservation "
              "refused them. Amounts are those debited, added up exactly as decimals; amounts "
              "in different currencies are never added together or converted. Unit: money and "
              "pages charged (charge records with an amount)."), ""]
    lines += ["| currency | charged | pages charged | registrable domains paid |",
              "|---|---|---|---|"]
    lines += [f"| {t['currency']} | {t['text']} | {t['pages']:,} | {t['domains']:,} |"
              for t in pay["totals"]]
    if not pay["totals"]:
        lines.append("| — | nothing charged | 0 | 0 |")
    lines.append("")
    if pay["by_domain"]:
        lines += ["| registrable domain | currency | charged | pages charged |",
                  "|---|---|---|---|"]
        lines += [f"| {_md(d['domain'])} | {d['currency']} | {d['text']} | {d['pages']:,} |"
                  for d in pay["by_domain"]]
        assumed = sum(d["debited_as_authorised"] for d in pay["by_domain"])
        lines.append("")
        if assumed:
            lines += [(f"{assumed:,} charge(s) whose amount the site sent unreadably (or in "
                       "another currency) are counted at the amount authorised, as the budget "
                       "debited them."), ""]
    held = pay["authorised_without_charge_record"]
    if held:
        lines += [("Payments authorised with no charge record (the request may have been "
                   "charged; the budget counts them as spent, and they are not in the totals "
                   "above): " + "; ".join(f"{_md(h['domain'])} {h['text']} "
                                           f"({h['authorisations']:,})" for h in held) + "."),
                  ""]
    lines += [(f"Price quotes: {q['records']:,} quote records, {q['urls_with_a_price']:,} URLs "
               f"quoted with a valid price; {q['refusals']:,} refused ({q['refused_urls']:,} "
               "URLs), by reason:"), ""]
    if q["refused_by_reason"]:
        lines += ["| why refused | refusals (records) | URLs |", "|---|---|---|"]
        lines += [f"| {_md(r['reason'])} | {r['records']:,} | {r['urls']:,} |"
                  for r in q["refused_by_reason"]]
        lines.append("")
    if pay["stopped"]:
        lines += ["Stopped for the rest of the job:", "",
                  "| origin | what stopped | why | when |", "|---|---|---|---|"]
        lines += [f"| {_md(x['origin'])} | {_md(x['meaning'])} | {_md(x['reason'])} | "
                  f"{_md(x['time'])} |" for x in pay["stopped"]]
        lines.append("")
    bad = pay["unreadable_charges"]
    if bad:
        lines += [(f"{len(bad):,} charge record(s) with an unreadable amount, not summed in any "
                   "total:"), "",
                  "| log | seq | origin | amount as recorded | why it cannot be read |",
                  "|---|---|---|---|---|"]
        lines += [f"| {_md(b['log'])} | {b['seq']} | {_md(b['origin'])} | "
                  f"`{_code(b['value'])}` | {_md(b['why'])} |" for b in bad]
        lines.append("")
    return lines


def _code(text: Any) -> str:
    """Text for inside `code` spans: no backtick, no pipe, no line break."""
    return (str(text).replace("`", "'").replace("|", "/").replace("\n", " ")
            .replace("<", "&lt;"))


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("<", "&lt;")


# -- HTML ----------------------------------------------------------------------------------

_CSS = ("body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;"
        "color:#222;background:#fff;line-height:1.45}table{border-collapse:collapse;"
        "margin:.5em 0 1em}th,td{border:1px solid #ccc;padding:.25em .6em;font-size:.9em;"
        "text-align:left;vertical-align:top}th{background:#f3f3f3}"
        "td{font-variant-numeric:tabular-nums}code{background:#f4f4f4;padding:0 .2em}")


def _inline(text: str) -> str:
    """Markdown inline text (as render_markdown writes it) to HTML: `code`, escapes."""
    text = text.replace("\\|", "|").replace("&lt;", "<")
    parts = re.split(r"(`[^`]*`)", text)
    return "".join(f"<code>{html.escape(p[1:-1])}</code>" if p.startswith("`") and len(p) > 1
                   else html.escape(p) for p in parts)


def markdown_page(markdown: str, title: str) -> str:
    """The Markdown that :func:`render_markdown` writes, as one self-contained HTML page
    (headings, paragraphs, lists and tables; inline styles; no script, nothing fetched)."""
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"]
    block: list[str] = []
    kind = ""

    def flush() -> None:
        nonlocal block, kind
        if kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in block) + "</ul>")
        elif kind == "table":
            rows = [[c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
                    for line in block if not re.fullmatch(r"\|(-+\|)+", line.strip())]
            head, body = rows[0], rows[1:]
            out.append("<table><thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head)
                       + "</tr></thead><tbody>" + "".join(
                           "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>"
                           for row in body) + "</tbody></table>")
        elif kind == "p":
            out.append(f"<p>{_inline(' '.join(block))}</p>")
        block, kind = [], ""

    for line in markdown.splitlines():
        heading = re.match(r"(#{1,6}) (.*)", line)
        if heading:
            flush()
            level = len(heading.group(1))
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
            continue
        if not line.strip():
            flush()
            continue
        now = "ul" if line.startswith("- ") else "table" if line.startswith("|") else "p"
        if now != kind:
            flush()
            kind = now
        block.append(line[2:] if now == "ul" else line)
    flush()
    out.append("</body></html>")
    return "\n".join(out) + "\n"

