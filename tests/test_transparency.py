"""The EU training-content summary (crawled data): figures checked exactly on synthetic output
directories with known sizes, registrable domains from the bundled Public Suffix List."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crawler.audit.log import AuditWriter
from crawler.policy.reservation import FAILURE_POLICY, SWITCHABLE_SIGNALS
from crawler.publish import domains
from crawler.publish.domains import registrable_domain
from crawler.publish.outputs import read_run_info
from crawler.publish.transparency import build_transparency, top_domain_count

UA = "SumBot/1.0 (+https://example.org/sumbot)"
POLICY = "9" * 64


@pytest.mark.parametrize(("host", "domain"), [
    ("www.example.co.uk", "example.co.uk"),
    ("news.example.co.uk", "example.co.uk"),
    ("example.co.uk", "example.co.uk"),
    ("a.b.example.com", "example.com"),
    ("WWW.Example.COM.", "example.com"),
    ("https://user@www.example.co.uk:8443/x?y", "example.co.uk"),
    ("foo.github.io", "foo.github.io"),          # private section of the PSL
    ("co.uk", "co.uk"),                          # a public suffix is its own domain
    ("127.0.0.1", "127.0.0.1"),
    ("http://127.0.0.1:8711/a", "127.0.0.1"),
    ("http://[::1]:8080/", "::1"),
    ("localhost", "localhost"),
    ("http://localhost:8000/", "localhost"),
    ("bücher.example.de", "example.de"),
    ("", ""),
])
def test_registrable_domain(host: str, domain: str) -> None:
    assert registrable_domain(host) == domain


def test_public_suffix_list_needs_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the Public Suffix List must be read from the package, offline")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    domains._psl.cache_clear()
    registrable_domain.cache_clear()
    assert registrable_domain("a.b.example.co.uk") == "example.co.uk"


@pytest.mark.parametrize(("domains", "sme", "expected"), [
    (0, False, 0),
    (1, False, 1),
    (9, False, 1),
    (10, False, 1),
    (11, False, 2),
    (30, False, 3),          # 30 x 0.1 is 3.0000000000000004 in floating point
    (100_000, False, 10_000),
    (1, True, 1),
    (30, True, 2),
    (40, True, 2),
    (41, True, 3),
    (19_999, True, 1000),
    (100_000, True, 1000),   # 5 % would be 5,000: the lower figure, 1,000, applies
])
def test_top_domain_count(domains: int, sme: bool, expected: int) -> None:
    assert top_domain_count(domains, sme=sme) == expected


# -- a synthetic crawl -----------------------------------------------------------------------

DOCS_A = [("https://www.example.co.uk/a", 1000), ("https://news.example.co.uk/b", 500),
          ("https://a.example.com/", 700), ("https://b.example.com/x", 900),
          ("http://127.0.0.1:8711/", 300)]
DOCS_B = [("http://localhost:8000/", 200), ("https://foo.github.io/", 50),
          *[(f"https://www.site{i:02d}.org/p", i) for i in range(1, 26)]]


def _clock(day: int) -> Iterator[str]:
    for minute in range(10_000):
        yield f"2026-03-{day:02d}T{10 + minute // 60:02d}:{minute % 60:02d}:00.000000Z"


def _reason(signal: str) -> dict[str, Any]:
    return {"signal": signal, "channel": "test", "outcome": "deny", "rule": f"{signal} says no"}


def _write_dir(out: Path, docs: list[tuple[str, int]], *, day: int, job: str,
               extra: list[tuple[str, str, list[str], dict[str, Any]]]) -> None:
    """An audit log (allow per document, then ``extra`` decisions) and a corpus."""
    out.mkdir(parents=True)
    times = _clock(day)
    writer = AuditWriter(out / "audit.jsonl", job=job, clock=lambda: next(times))
    lines = []
    try:
        for url, size in docs:
            rec = writer.write(url=url, decision="allow", reasons=[], policy_sha256=POLICY,
                               extra={"checks": [], "status": 200})
            lines.append({"url": url, "bytes": size, "status": 200,
                          "content_type": "text/plain" if size == 300 else "text/html",
                          "fetched_at": rec["time"], "sha256": "0" * 64, "job": job,
                          "audit_seq": rec["seq"], "audit_hash": rec["hash"], "text": "x"})
        for url, decision, signals, fields in extra:
            writer.write(url=url, decision=decision, reasons=[_reason(s) for s in signals],
                         policy_sha256=POLICY, extra=fields)
    finally:
        writer.close()
    with open(out / "corpus.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(line) + "\n" for line in lines)


@pytest.fixture
def crawl(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "run-a", tmp_path / "run-b"
    _write_dir(a, DOCS_A, day=1, job="alpha", extra=[
        ("https://x.example/robots.txt", "deny", ["network"], {"preflight": "robots.txt"}),
        ("https://x.example/1", "deny", ["robots"], {}),
        ("https://x.example/2", "deny", ["robots"], {}),
        ("https://x.example/3", "deny", ["tdmrep", "noai"], {}),
        ("https://y.example/1", "deny", ["network"], {"undecided": {"attempt": 1,
                                                                   "final": False}}),
        ("https://y.example/1", "deny", ["network"], {"undecided": {"attempt": 3,
                                                                   "final": True}}),
        ("https://x.example/404", "allow", [], {"status": 404}),
        ("https://www.example.co.uk/gone", "erase", ["registry"], {}),
    ])
    with open(a / "corpus.jsonl", "a", encoding="utf-8") as fh:   # no provenance: ignored
        fh.write(json.dumps({"url": "https://ignored.example/", "bytes": 10**6}) + "\n")
    (a / "run.json").write_text(json.dumps({
        "job": "alpha", "user_agent": UA, "token": "SumBot", "purpose": "train-ai",
        "signals": [s for s in SWITCHABLE_SIGNALS if s != "rsl"], "honor_agents": ["GPTBot"],
        "registries": [{"type": "file", "name": "optout.txt"}],
        "started_at": "2026-03-01T09:59:00Z", "finished_at": "2026-03-01T11:00:00Z",
        "policy_sha256": POLICY, "version": "0.1.0"}), encoding="utf-8")
    _write_dir(b, DOCS_B, day=5, job="beta", extra=[
        ("https://pay.example/", "deny", ["payment-required"], {}),
    ])
    return a, b


def test_figures_across_two_output_dirs(crawl: tuple[Path, Path], tmp_path: Path) -> None:
    s = build_transparency(list(crawl), tmp_path / "report")
    assert json.loads((tmp_path / "report" / "transparency.json").read_text()) == s

    # distinct URLs by their final decision: y.example/1, refused provisionally then for good,
    # is one refused URL; the erased URL is decided (erased), not allowed
    assert s["urls"] == {
        "unit": "distinct URLs, by the final decision about each",
        "decided": 39, "allowed": 33, "refused": 5, "refused_share": round(5 / 39, 4),
        "erased_later": 1, "postponed_not_decided": 0}
    assert s["records"] == {
        "unit": "audit decision records (a URL may have several)",
        "allow": 33, "deny": 6, "erase": 1, "provisional_refusals": 1,
        "preflight": {"deny": 1}}
    assert [(r["signal"], r["urls"], r["of_refused_urls"], r["records"],
             r["of_refusal_records"]) for r in s["refused_by_signal"]] == [
        ("robots", 2, 5, 2, 6), ("network", 1, 5, 2, 6), ("noai", 1, 5, 1, 6),
        ("payment-required", 1, 5, 1, 6), ("tdmrep", 1, 5, 1, 6)]
    assert s["erased_by_signal"] == [{"signal": "registry", "urls": 1, "of_erased_urls": 1,
                                      "records": 1}]
    assert s["content"]["bytes"] == 3975 and s["content"]["documents"] == 32
    assert [(t["content_type"], t["documents"]) for t in s["content"]["types"]] == [
        ("text/html", 31), ("text/plain", 1)]
    assert s["collection_period"] == {"first": "2026-03-01T10:00:00.000000Z",
                                      "last": "2026-03-05T10:27:00.000000Z"}

    dom = s["domains"]
    assert (dom["total_domains"], dom["listed"]) == (30, 3)
    assert [(t["rank"], t["domain"], t["bytes"], t["documents"]) for t in dom["top"]] == [
        (1, "example.com", 1600, 2), (2, "example.co.uk", 1500, 2), (3, "127.0.0.1", 300, 1)]
    assert dom["listed_bytes"] == 3400
    assert dom["listed_share_of_bytes"] == round(3400 / 3975, 4)

    crawler = s["crawlers"]
    assert len(crawler) == 1
    assert crawler[0] == {"name": "SumBot", "product_token": "SumBot", "user_agent": UA,
                               "contact": "https://example.org/sumbot", "purpose": "train-ai",
                               "honor_agents": ["GPTBot"], "keyids": [],
                               "signature_agents": [], "runs": 1}
    protocols = {p["signal"]: p for p in s["protocols"]}
    assert set(protocols) == {*SWITCHABLE_SIGNALS, "registry", "network"}
    assert (protocols["robots"]["honoured_in_runs"], protocols["robots"]["of_runs_recorded"]) \
        == (1, 1)
    assert protocols["rsl"]["honoured_in_runs"] == 0          # switched off in run.json
    assert protocols["registry"]["registries"] == ["file optout.txt"]
    assert protocols["robots"]["binds"] == {"train-ai": ["disallow"]}
    assert s["failure_policy"] == [list(r) for r in FAILURE_POLICY]
    runs = {r["job"]: r for r in s["runs"]}
    assert runs["alpha"]["audit_log"]["verified"] is True
    assert runs["alpha"]["audit_log"]["records"] == 13
    assert (runs["alpha"]["documents"], runs["alpha"]["bytes"]) == (5, 3400)
    assert runs["beta"]["info_source"] is None and runs["beta"]["signals"] is None

    md = (tmp_path / "report" / "transparency.md").read_text()
    assert "- User-Agent: `SumBot/1.0 (+https://example.org/sumbot)`" in md
    assert "- Refused: 5 of 39 (12.8 %) URLs" in md
    assert "- Allowed: 33 of 39 (84.6 %) URLs" in md
    assert "| robots | 2 of 5 | 40.0 % | 2 of 6 |" in md
    assert "| network | 1 of 5 | 20.0 % | 2 of 6 |" in md
    assert "Unit: distinct URLs" in md
    assert "3 of 30 registrable domains listed, holding 3,400 of 3,975 (85.5 %)" in md
    assert "| 1 | example.com | 1,600 of 3,975 | 40.3 % | 2 |" in md
    assert "From 2026-03-01T10:00:00.000000Z to 2026-03-05T10:27:00.000000Z" in md
    for row in FAILURE_POLICY:
        assert row[2].replace("<", "&lt;") in md


def test_sme_rule_lists_fewer_domains(crawl: tuple[Path, Path], tmp_path: Path) -> None:
    s = build_transparency(list(crawl), tmp_path / "sme", sme=True)
    assert [t["domain"] for t in s["domains"]["top"]] == ["example.com", "example.co.uk"]
    assert "SME rule" in s["domains"]["rule"]


def test_at_least_one_domain_and_custom_share(tmp_path: Path) -> None:
    _write_dir(tmp_path / "one", [("https://only.example.net/", 5)], day=2, job="one",
               extra=[])
    s = build_transparency([tmp_path / "one"], tmp_path / "r1")
    assert [t["domain"] for t in s["domains"]["top"]] == ["example.net"]
    s = build_transparency([tmp_path / "one"], tmp_path / "r2", top_share=0.5)
    assert s["domains"]["listed"] == 1 and "top 50 %" in s["domains"]["rule"]


def test_missing_run_json_is_reported_not_fatal(crawl: tuple[Path, Path],
                                                tmp_path: Path) -> None:
    s = build_transparency([crawl[1]], tmp_path / "norun")
    assert s["crawlers"][0]["user_agent"] is None
    assert "no run.json" in s["crawlers"][0]["note"]
    robots = next(p for p in s["protocols"] if p["signal"] == "robots")
    assert (robots["honoured_in_runs"], robots["of_runs_recorded"]) == (0, 0)
    md = (tmp_path / "norun" / "transparency.md").read_text()
    assert "Crawler identity not recorded" in md
    assert s["content"]["documents"] == 27


def test_job_config_beside_the_output_is_the_fallback(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    _write_dir(out, [("https://a.example.org/", 10)], day=3, job="demo", extra=[])
    (out / "demo-config.yaml").write_text(
        f"job: demo\nuser_agent: '{UA}'\npurpose: search\nsignals: {{noai: false}}\n",
        encoding="utf-8")
    info, source = read_run_info(out)
    assert source == "demo-config.yaml"
    assert info["purpose"] == "search" and "noai" not in info["signals"]
    s = build_transparency([out], tmp_path / "r")
    assert s["crawlers"][0]["purpose"] == "search"
    assert s["purposes"] == [{"name": "search", "description":
                              "building a search index (no AI training, no AI answers)"}]
    noai = next(p for p in s["protocols"] if p["signal"] == "noai")
    assert noai["honoured_in_runs"] == 0 and noai["binds"] == {"search": []}


def test_a_tampered_audit_log_is_flagged(crawl: tuple[Path, Path], tmp_path: Path) -> None:
    audit = crawl[0] / "audit.jsonl"
    audit.write_text(audit.read_text().replace('"robots says no"', '"robots said no"'))
    s = build_transparency([crawl[0]], tmp_path / "r")
    assert s["runs"][0]["audit_log"]["verified"] is False
    assert "NOT verified" in (tmp_path / "r" / "transparency.md").read_text()


def test_cluster_output_dir_reads_every_worker(tmp_path):
    """A cluster job's directory: audit-<worker>.jsonl and corpus-<worker>.jsonl, and a merged
    report beside them that must not be counted twice."""
    from crawler.audit.log import AuditWriter
    from crawler.audit.merge import merge_logs
    from crawler.publish.outputs import read_output_dir

    for worker, urls in (("a", ["https://a.example.com/1", "https://a.example.com/2"]),
                         ("b", ["https://b.example.org/1"])):
        writer = AuditWriter(tmp_path / f"audit-{worker}.jsonl", job="j")
        with open(tmp_path / f"corpus-{worker}.jsonl", "w", encoding="utf-8") as fh:
            for url in urls:
                rec = writer.write(url=url, decision="allow", reasons=[], policy_sha256="p")
                fh.write(json.dumps({"url": url, "audit_seq": rec["seq"], "bytes": 100,
                                     "content_type": "text/html"}) + "\n")
        writer.write(url=urls[0] + "x", decision="deny", policy_sha256="p",
                     reasons=[{"signal": "robots", "channel": "robots.txt"}])
        writer.close()
    merge_logs([tmp_path / "audit-a.jsonl", tmp_path / "audit-b.jsonl"],
               tmp_path / "audit-merged.jsonl")
    run = read_output_dir(tmp_path)
    assert run.audit_ok is True
    assert run.documents == 3 and run.bytes == 300
    assert run.tally.outcomes()["allowed"] == 3 and run.tally.signal_urls()["robots"] == 2


# -- the same run, two reports -----------------------------------------------------------------


def test_transparency_and_report_agree_on_the_same_run(crawl: tuple[Path, Path],
                                                       tmp_path: Path) -> None:
    """`report --transparency OUT` and `report OUT/audit.jsonl` count the same refused URLs,
    per signal, and the same records."""
    from crawler.publish.report import build_report

    run = crawl[0]
    s = build_transparency([run], tmp_path / "t")
    r = build_report([run / "audit.jsonl"], tmp_path / "r")["figures"]
    assert r["urls"]["decided"] == s["urls"]["decided"] == 11
    for outcome in ("allowed", "refused"):
        assert r["urls"][outcome]["count"] == s["urls"][outcome]
    assert r["urls"]["erased"]["count"] == s["urls"]["erased_later"]
    assert r["urls"]["postponed"] == s["urls"]["postponed_not_decided"]
    by_signal = {x["signal"]: x for x in s["refused_by_signal"]}
    assert set(by_signal) == set(r["refusals_by_signal"])
    for signal, fig in r["refusals_by_signal"].items():
        assert fig["urls"]["count"] == by_signal[signal]["urls"]
        assert fig["urls"]["of"] == by_signal[signal]["of_refused_urls"]
        assert fig["records"]["count"] == by_signal[signal]["records"]
        assert fig["records"]["of"] == by_signal[signal]["of_refusal_records"]
    assert r["records"]["provisional_refusals"] == s["records"]["provisional_refusals"]
    assert r["records"]["preflight"] == s["records"]["preflight"]


def test_one_url_refused_three_times_counts_once(tmp_path: Path) -> None:
    """The issue's run: 18 URLs refused by the network signal, one of them three times (twice
    provisionally while its robots.txt was unreachable); both summaries say 18 URLs and 20
    records."""
    from crawler.publish.report import build_report

    extra = [(f"https://n{i}.example/", "deny", ["network"], {}) for i in range(17)]
    extra += [("https://slow.example/a", "deny", ["network"],
               {"undecided": {"attempt": k, "final": k == 3}}) for k in (1, 2, 3)]
    _write_dir(tmp_path / "run", [("https://ok.example/", 10)], day=9, job="n", extra=extra)
    s = build_transparency([tmp_path / "run"], tmp_path / "t")
    r = build_report([tmp_path / "run" / "audit.jsonl"], tmp_path / "r")["figures"]
    (net,) = s["refused_by_signal"]
    assert (net["urls"], net["records"]) == (18, 20)
    assert r["refusals_by_signal"]["network"]["urls"]["text"].startswith("18/18 ")
    assert r["refusals_by_signal"]["network"]["records"]["text"].startswith("20/20 ")
    md = (tmp_path / "r" / "report.md").read_text()
    assert "| network | 18/18 (100.0 % [82.4–100.0]) | 20/20 (100.0 % [83.9–100.0]) |" in md


def test_transparency_html_page_is_self_contained(crawl: tuple[Path, Path],
                                                  tmp_path: Path) -> None:
    import re

    build_transparency(list(crawl), tmp_path / "t")
    page = (tmp_path / "t" / "transparency.html").read_text(encoding="utf-8")
    md = (tmp_path / "t" / "transparency.md").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page and "<link" not in page and "src=" not in page
    assert "<h1>Public summary of training content" in page
    assert page.count("<table>") == md.count("\n|---") and page.count("<h2>") == md.count(
        "\n## ")
    assert "<td>robots</td><td>2 of 5</td><td>40.0 %</td><td>2 of 6</td>" in page
    assert "<code>SumBot/1.0 (+https://example.org/sumbot)</code>" in page
    # the failure-policy cells keep their '<' (escaped for HTML, not doubly)
    assert "&amp;lt;" not in page
    assert not re.search(r"<(?!/?(html|head|meta|title|style|body|h\d|p|ul|li|table|thead|"
                         r"tbody|tr|th|td|code)\b|!DOCTYPE)", page)


# -- pay per crawl and the signing identity -----------------------------------------------------


def _paid_dir(out: Path, *, hostile: bool = False, run_info: dict[str, Any] | None = None
              ) -> Path:
    """An output directory whose audit log holds the real session's payment records (see
    tests/pay_log.py), a corpus and a run.json."""
    from tests.pay_log import UA as PAY_UA
    from tests.pay_log import write_paid_log

    out.mkdir(parents=True)
    write_paid_log(out / "audit.jsonl", hostile=hostile)
    (out / "corpus.jsonl").write_text("", encoding="utf-8")
    (out / "run.json").write_text(json.dumps({
        "job": "pay", "user_agent": PAY_UA, "token": "PayBot", "purpose": "train-ai",
        "signals": list(SWITCHABLE_SIGNALS), **(run_info or {})}), encoding="utf-8")
    return out


def test_payments_per_registrable_domain(tmp_path: Path) -> None:
    """3 charges of USD 0.01 and 1 of EUR 0.02 over two registrable domains: two currency
    rows, exact sums, pages; the refused quotes and why; the stopped origin."""
    from decimal import Decimal

    s = build_transparency([_paid_dir(tmp_path / "run")], tmp_path / "t")
    pay = s["payments"]
    assert [(t["currency"], t["text"], t["pages"], t["domains"]) for t in pay["totals"]] == [
        ("EUR", "EUR 0.02", 1, 1), ("USD", "USD 0.03", 3, 2)]
    assert sum(Decimal(d["charged"]) for d in pay["by_domain"] if d["currency"] == "USD") \
        == Decimal("0.03")
    # www. and news.example.com are one registrable domain
    assert [(d["domain"], d["currency"], d["charged"], d["pages"]) for d in pay["by_domain"]] \
        == [("example.org", "EUR", "0.02", 1), ("example.com", "USD", "0.02", 2),
            ("example.org", "USD", "0.01", 1)]
    assert pay["quotes"]["refusals"] == 2 and pay["quotes"]["refused_urls"] == 2
    assert [x["origin"] for x in pay["stopped"]] == ["https://blocked.example.net"]
    assert json.loads((tmp_path / "t" / "transparency.json").read_text()) == s

    md = (tmp_path / "t" / "transparency.md").read_text(encoding="utf-8")
    assert "## 7. Payments for access (pay per crawl)" in md
    assert "| EUR | EUR 0.02 | 1 | 1 |" in md and "| USD | USD 0.03 | 3 | 2 |" in md
    assert "| example.com | USD | USD 0.02 | 2 |" in md
    assert "| example.org | USD | USD 0.01 | 1 |" in md
    assert "| price [price] over max_price [price] | 1 | 1 |" in md
    assert "| 402 without a valid crawler-price | 1 | 1 |" in md
    assert ("| https://blocked.example.net | origin not crawled any more (the site blocks us) "
            "| crawler-error CrawlerForbidden (the site blocks this crawler; payment cannot "
            "help) |") in md
    assert "unreadable" not in md
    page = (tmp_path / "t" / "transparency.html").read_text(encoding="utf-8")
    assert "<h2>7. Payments for access (pay per crawl)</h2>" in page
    assert "<td>price [price] over max_price [price]</td>" in page


def test_no_payment_records_no_payment_section(crawl: tuple[Path, Path],
                                               tmp_path: Path) -> None:
    s = build_transparency(list(crawl), tmp_path / "t")
    assert "payments" not in s
    md = (tmp_path / "t" / "transparency.md").read_text(encoding="utf-8")
    assert "## 7." not in md and "Payments for access" not in md
    assert "Signing key" not in md and "Signature agent" not in md  # none known: no line


def test_unreadable_charge_is_shown_not_summed(tmp_path: Path) -> None:
    s = build_transparency([_paid_dir(tmp_path / "run", hostile=True)], tmp_path / "t")
    pay = s["payments"]
    assert [(t["currency"], t["text"], t["pages"]) for t in pay["totals"]] == [
        ("EUR", "EUR 0.02", 1), ("USD", "USD 0.03", 3)]
    assert [(b["value"], b["why"]) for b in pay["unreadable_charges"]] == [
        ("USD 1e3", "exponent, NaN or Infinity"), ("0.01", "not a string (float)")]
    assert s["runs"][0]["audit_log"]["verified"] is True  # written by the writer: a bad tool
    md = (tmp_path / "t" / "transparency.md").read_text(encoding="utf-8")
    assert "2 charge record(s) with an unreadable amount, not summed in any total:" in md
    assert "| audit.jsonl | 106 | https://shop.example.org | `USD 1e3` | exponent, NaN or " \
           "Infinity |" in md


def test_report_and_transparency_agree_on_the_money(tmp_path: Path) -> None:
    from crawler.publish.report import build_report

    run = _paid_dir(tmp_path / "run", hostile=True)
    s = build_transparency([run], tmp_path / "t")["payments"]
    r = build_report([run / "audit.jsonl"], tmp_path / "r")["figures"]["payments"]
    assert s == r


def test_identity_from_signed_checkpoints_and_the_config_run_json_names(tmp_path: Path) -> None:
    """run.json without keyid: the keyid of the signed checkpoints (the key that signed the
    log), the signature agent from the config run.json names."""
    from crawler.audit.checkpoint import CheckpointWriter
    from crawler.identity.keys import generate_key

    key = generate_key(tmp_path / "keys" / "id.pem")
    out = tmp_path / "run"
    out.mkdir()
    cfg = tmp_path / "job.yaml"
    cfg.write_text(f"job: j\nuser_agent: '{UA}'\nidentity:\n  key_file: keys/other.pem\n"
                   "  signature_agent: https://crawler.example.org\n", encoding="utf-8")
    writer = AuditWriter(out / "audit.jsonl", job="j",
                         checkpoints=CheckpointWriter(out / "audit.jsonl", job="j",
                                                      identity=key, every=1))
    writer.write(url="https://a.example/", decision="allow", reasons=[], policy_sha256=POLICY)
    writer.close()
    (out / "run.json").write_text(json.dumps({"job": "j", "user_agent": UA,
                                              "config": str(cfg)}), encoding="utf-8")
    s = build_transparency([out], tmp_path / "t")
    (cr,) = s["crawlers"]
    assert cr["keyids"] == [{"keyid": key.keyid,
                             "source": "signed audit checkpoints (as they name their key)"}]
    assert cr["signature_agents"] == [{
        "url": "https://crawler.example.org",
        "source": "job config job.yaml (identity.signature_agent)"}]
    assert s["runs"][0]["identity"]["problems"] == []
    md = (tmp_path / "t" / "transparency.md").read_text(encoding="utf-8")
    assert (f"- Signing key (Web Bot Auth `keyid`, RFC 7638 JWK SHA-256 thumbprint): "
            f"`{key.keyid}` (from signed audit checkpoints (as they name their key))") in md
    assert ("- Signature agent (where the key directory is published): "
            "https://crawler.example.org (from job config job.yaml "
            "(identity.signature_agent))") in md
    assert "BEGIN" not in md and "PRIVATE" not in json.dumps(s)


def test_identity_recorded_in_run_json_comes_first(tmp_path: Path) -> None:
    out = _paid_dir(tmp_path / "run", run_info={
        "keyid": "kid-from-run", "signature_agent": "https://agent.example.org"})
    s = build_transparency([out], tmp_path / "t")
    (cr,) = s["crawlers"]
    assert cr["keyids"] == [{"keyid": "kid-from-run", "source": "run.json"}]
    assert cr["signature_agents"] == [{"url": "https://agent.example.org",
                                       "source": "run.json"}]


def test_identity_from_the_job_config_beside_the_output(tmp_path: Path) -> None:
    """No run.json, no checkpoints: the thumbprint of the config's key file (resolved beside
    the config, as crawler.config.job does); a key file that cannot be used is a problem, not a
    crash."""
    from crawler.identity.keys import generate_key

    out = tmp_path / "demo"
    _write_dir(out, [("https://a.example.org/", 10)], day=3, job="demo", extra=[])
    key = generate_key(out / "demo-identity.pem")
    (out / "demo-config.yaml").write_text(
        f"job: demo\nuser_agent: '{UA}'\nidentity: {{key_file: demo-identity.pem}}\n",
        encoding="utf-8")
    s = build_transparency([out], tmp_path / "t")
    assert s["crawlers"][0]["keyids"] == [{
        "keyid": key.keyid,
        "source": "job config demo-config.yaml (identity.key_file, the key as it is now)"}]
    assert s["crawlers"][0]["signature_agents"] == []

    (out / "demo-identity.pem").chmod(0o644)  # open to others: load_key refuses it
    s = build_transparency([out], tmp_path / "t2")
    assert s["crawlers"][0]["keyids"] == []
    (problem,) = s["runs"][0]["identity"]["problems"]
    assert problem.startswith("identity.key_file: ") and "chmod 600" in problem
