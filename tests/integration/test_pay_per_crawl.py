"""Pay per crawl end to end: ``polite-crawl run`` against a local pay-per-crawl server.

The server (tests/paycrawl_server.py) behaves as Cloudflare documents it and checks every
paid request's Web Bot Auth signature with ``http-message-signatures``' verifier against the
directory of the job's key (crawler/demo/webbotauth.py). Checked from both sides: what the
server saw and charged, and what the audit log says (quote, decision, charge, then the URL's
allow or deny), for every row of the crawler-error table, a budget spent mid-crawl, a resumed
job with part of its budget spent, reservations on the 402 itself, and the demo's
signature-only site.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from crawler.audit.log import verify_file
from crawler.demo.sites import DEMO_SIGNATURE_AGENT, demo_sites
from crawler.demo.web import LocalWeb
from crawler.demo.webbotauth import WebBotAuthVerifier
from crawler.identity.keys import Identity, generate_key, jwks, load_key
from tests.paycrawl_server import PayCrawlServer, PricedPage

from .conftest import read_jsonl, run_cli, write_config

AGENT = "https://paying-crawler.example"
PRICE_HEADERS = ("crawler-exact-price", "crawler-max-price")


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "identity.pem"
    generate_key(path)
    return path


def verifying(key: Path, agent: str = AGENT) -> Any:
    """The server's check of a paid request: our published directory, their verifier."""
    verifier = WebBotAuthVerifier(agent, jwks([load_key(key).jwk]))
    return lambda headers, method, url: verifier.verify(method, url, headers) is None


def crawl(tmp_path: Path, server: PayCrawlServer, key: Path, paths: list[str], *,
          payment: dict[str, str] | None = None, name: str = "job", out: str = "out",
          **cfg: Any) -> dict[str, Any]:
    payment = {"max_price": "USD 0.01", "budget": "USD 5.00", "per_origin_budget": "USD 1.00",
               **(payment or {})}
    config = write_config(
        tmp_path / f"{name}.yaml", seeds=[server.url(p) for p in paths], payment=payment,
        identity={"key_file": str(key), "signature_agent": AGENT},
        output_dir=str(tmp_path / out), **cfg)
    proc = run_cli("run", str(config))
    audit = read_jsonl(tmp_path / out / "audit.jsonl")
    return {"proc": proc, "audit": audit, "out": tmp_path / out,
            "corpus": read_jsonl(tmp_path / out / "corpus.jsonl")}


def final(audit: list[dict], url: str) -> dict:
    """The URL's last allow/deny record."""
    recs = [r for r in audit if r["url"] == url and r["decision"] in ("allow", "deny")]
    assert recs, f"no decision for {url}"
    return recs[-1]


def pay(audit: list[dict], url: str | None = None, kind: str | None = None) -> list[dict]:
    return [r["payment"] | {"seq": r["seq"], "result": r["result"]} for r in audit
            if r.get("payment") and (url is None or r["url"] == url)
            and (kind is None or r["result"] == kind)]


def never_both_price_headers(server: PayCrawlServer) -> None:
    for seen in server.requests:
        assert not all(h in seen.headers for h in PRICE_HEADERS), seen


def charged_total(audit: list[dict]) -> Decimal:
    return sum((Decimal(p["charged"].split()[1]) for p in pay(audit, kind="pay-charge")
                if p["charged"]), Decimal(0))


def budget_state(rule: str) -> tuple[Decimal, Decimal]:
    m = re.search(r"over the job budget \(USD 0\.03: USD ([0-9.]+) spent, USD ([0-9.]+) held\)",
                  rule)
    assert m, rule
    return Decimal(m.group(1)), Decimal(m.group(2))


# -- the documented flow ----------------------------------------------------------------------

def test_a_402_within_budget_is_paid_once_signed_and_recorded(tmp_path, key):
    server = PayCrawlServer(pages={"/paid": PricedPage()}, verify=verifying(key))
    with server:
        got = crawl(tmp_path, server, key, ["/paid", "/free"])
    assert got["proc"].returncode == 0, got["proc"].stderr[-3000:]
    url = server.url("/paid")
    tries = [s for s in server.requests if s.path == "/paid"]
    assert len(tries) == 2
    assert not any(h in tries[0].headers for h in PRICE_HEADERS)        # unpaid first
    assert tries[1].headers["crawler-exact-price"] == "USD 0.01"        # then exactly the quote
    assert "crawler-max-price" not in tries[1].headers
    # every request signed (robots.txt and the free page too), the paid one verified
    assert all("signature" in s.headers and "signature-agent" in s.headers
               for s in server.requests)
    assert [(c.path, c.amount) for c in server.charges] == [("/paid", "USD 0.01")]
    # the audit trail: quote, pay (written before the paid request left), charge, allow
    kinds = [(r["decision"], r.get("result")) for r in got["audit"] if r["url"] == url]
    assert kinds == [("send", None), ("result", "pay-quote"), ("result", "pay-decision"),
                     ("send", None), ("result", "pay-charge"), ("allow", None)]
    quote, decision, charge = pay(got["audit"], url)
    assert quote["headers"] == {"crawler-price": ["USD 0.01"]} and quote["status"] == 402
    assert decision["action"] == "pay" and decision["header"] == [
        "crawler-exact-price", "USD 0.01"]
    paid_send = [r for r in got["audit"] if r["url"] == url and r["decision"] == "send"][1]
    assert decision["seq"] < paid_send["seq"]                 # authorised before it was sent
    assert charge["ref"] == decision["seq"] and charge["charged"] == "USD 0.01"
    assert charge["headers"] == {"crawler-charged": ["USD 0.01"]}
    allow = final(got["audit"], url)
    assert allow["decision"] == "allow" and allow["charged"] == "USD 0.01"
    assert {d["url"] for d in got["corpus"]} == {url, server.url("/free")}
    assert verify_file(got["out"] / "audit.jsonl").ok
    assert "polite-crawl: pay per crawl: 1 page paid for this run; USD 0.01 spent" in \
        got["proc"].stderr
    assert "'polite/payment/pay': 1" in got["proc"].stderr
    never_both_price_headers(server)


def test_revalidation_never_pays_again(tmp_path, key):
    # a page paid for at collection answers 402 again: revalidate lists it as reserved (a
    # refusal, as without payment:), and charges nothing
    server = PayCrawlServer(pages={"/paid": PricedPage()}, verify=verifying(key))
    with server:
        got = crawl(tmp_path, server, key, ["/paid"])
        assert got["proc"].returncode == 0, got["proc"].stderr[-3000:]
        assert len(server.charges) == 1
        proc = run_cli("revalidate", str(got["out"]))
        assert len(server.charges) == 1, proc.stderr[-2000:]
        revisits = [s for s in server.requests if s.path == "/paid"][2:]
    assert revisits and not any(h in s.headers for s in revisits for h in PRICE_HEADERS)
    assert server.url("/paid") in proc.stdout + proc.stderr


def test_without_payment_config_a_402_is_still_a_refusal(tmp_path, key):
    server = PayCrawlServer(pages={"/paid": PricedPage()})
    with server:
        config = write_config(tmp_path / "j.yaml", seeds=[server.url("/paid")],
                              identity={"key_file": str(key), "signature_agent": AGENT})
        proc = run_cli("run", str(config))
    assert proc.returncode == 0, proc.stderr[-2000:]
    audit = read_jsonl(tmp_path / "out" / "audit.jsonl")
    rec = final(audit, server.url("/paid"))
    assert rec["decision"] == "deny" and rec["reasons"][0]["signal"] == "payment-required"
    assert not pay(audit) and not server.charges
    assert [s.path for s in server.requests].count("/paid") == 1
    # requests are signed all the same (identity with signature_agent)
    assert all("signature" in s.headers for s in server.requests)


def test_check_never_pays_even_under_a_paying_config(tmp_path, key):
    # check decides without collecting: a 402 stays a refusal, nothing is charged
    server = PayCrawlServer(pages={"/paid": PricedPage()}, verify=verifying(key))
    with server:
        config = write_config(
            tmp_path / "j.yaml", seeds=[server.url("/paid")],
            payment={"max_price": "USD 0.01", "budget": "USD 5.00"},
            identity={"key_file": str(key), "signature_agent": AGENT})
        proc = run_cli("check", server.url("/paid"), "--config", str(config))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not server.charges
    assert not any(h in seen.headers for seen in server.requests for h in PRICE_HEADERS)
    assert '"signal":"payment-required"' in proc.stdout.replace(" ", "")


def test_an_origin_that_charged_gets_the_max_price_up_front(tmp_path, key):
    server = PayCrawlServer(pages={"/a": PricedPage(body=b'<a href="/b">b</a>'),
                                   "/b": PricedPage(price="USD 0.005")}, verify=verifying(key))
    with server:
        got = crawl(tmp_path, server, key, ["/a"])
    assert got["proc"].returncode == 0, got["proc"].stderr[-3000:]
    b = [s for s in server.requests if s.path == "/b"]
    assert len(b) == 1 and b[0].headers["crawler-max-price"] == "USD 0.01"
    assert "crawler-exact-price" not in b[0].headers
    assert [(c.path, c.amount, c.header) for c in server.charges] == [
        ("/a", "USD 0.01", "crawler-exact-price"), ("/b", "USD 0.005", "crawler-max-price")]
    decision, charge = pay(got["audit"], server.url("/b"))
    assert decision["action"] == "pay" and "up front" in decision["reason"]
    assert charge["charged"] == "USD 0.005" and charge["reserved"] == "USD 0.01"
    assert final(got["audit"], server.url("/b"))["decision"] == "allow"
    never_both_price_headers(server)


# -- the crawler-error table, row by row -----------------------------------------------------

ERROR_ROWS = [
    # (row, page, final decision, pay-decision actions on the URL, charges)
    ("CrawlerForbidden", PricedPage(forbidden=True), "deny", ["stop-origin"], 0),
    ("InternalError then paid", PricedPage(internal_errors=2), "allow", ["retry", "retry", "pay"],
     1),
    ("InternalError always", PricedPage(internal_errors=99), "deny",
     ["retry", "retry", "retry", "refuse"], 0),
    ("InvalidCrawlerExactPrice", PricedPage(price="USD 0.01", quote="USD 0.005"), "deny",
     ["pay", "refuse"], 0),
    ("InvalidContentPrice", PricedPage(invalid_content_price=True), "deny", ["refuse"], 0),
    ("PaymentFailed", PricedPage(payment_fails=True), "deny", ["pay", "stop-paying-job"], 0),
    ("StrongAuthRequired", PricedPage(paid_error=(400, "StrongAuthRequired")), "deny",
     ["pay", "stop-paying-job"], 0),
    ("InvalidSignature", PricedPage(), "deny", ["pay", "stop-paying-job"], 0),
    ("InvalidCrawlerPriceValue", PricedPage(paid_error=(400, "InvalidCrawlerPriceValue")),
     "deny", ["pay", "stop-paying-job"], 0),
    ("ConflictingPriceHeaders", PricedPage(paid_error=(400, "ConflictingPriceHeaders")),
     "deny", ["pay", "stop-paying-job"], 0),
    ("MissingCrawlerPrice", PricedPage(paid_error=(402, "MissingCrawlerPrice")), "deny",
     ["pay", "stop-paying-job"], 0),
    ("InvalidCrawlerMaxPrice", PricedPage(paid_error=(402, "InvalidCrawlerMaxPrice")), "deny",
     ["pay", "refuse"], 0),
]


@pytest.mark.parametrize("row, page, decision, actions, charges", ERROR_ROWS,
                         ids=[r[0] for r in ERROR_ROWS])
def test_crawler_error_rows(tmp_path, key, row, page, decision, actions, charges):
    # InvalidSignature: the site knows another key than ours
    other = tmp_path / "other.pem"
    generate_key(other)
    server = PayCrawlServer(pages={"/p": page, "/q": PricedPage()},
                            verify=verifying(other if row == "InvalidSignature" else key))
    with server:
        got = crawl(tmp_path, server, key, ["/p"])
        p_requests = [s.path for s in server.requests if s.path == "/p"]
        if "stop" in actions[-1]:
            # a second priced URL afterwards (a separate run of the same job: the state
            # survives it): stop-paying-job -> refused unpaid; stop-origin -> never requested
            again = crawl(tmp_path, server, key, ["/q"])
    assert got["proc"].returncode == 0, got["proc"].stderr[-3000:]
    url = server.url("/p")
    rec = final(got["audit"], url)
    assert rec["decision"] == decision, rec
    if decision == "deny":
        (reason,) = rec["reasons"]
        assert reason["signal"] == "payment-required"
        name = row.split()[0]
        assert name in reason["rule"] or (name == "InternalError" and "InternalError" in
                                          reason["rule"]), reason
    got_actions = [p["action"] for p in pay(got["audit"], url, "pay-decision")]
    assert got_actions == actions
    assert len(server.charges) == charges
    assert charged_total(got["audit"]) == Decimal("0.01") * charges
    # the raw crawler-error header is in the records
    if "InternalError" not in row or charges == 0:
        errors = [p for p in pay(got["audit"], url) if "crawler-error" in p.get("headers", {})]
        assert errors and errors[0]["headers"]["crawler-error"][0] in row.replace(
            " always", "")
    if row.startswith("InternalError"):
        assert p_requests.count("/p") == len(actions) + (1 if charges else 0)
    never_both_price_headers(server)
    if actions[-1] == "stop-paying-job":
        q = final(again["audit"], server.url("/q"))
        assert q["decision"] == "deny" and "not paying" in q["reasons"][0]["rule"]
        assert not any(h in s.headers for s in server.requests if s.path == "/q"
                       for h in PRICE_HEADERS)
    if actions[-1] == "stop-origin":
        assert "/q" not in [s.path for s in server.requests]
        q = final(again["audit"], server.url("/q"))
        assert q["decision"] == "deny" and "origin stopped" in q["reasons"][0]["rule"]


# -- budgets ------------------------------------------------------------------------------------

def test_budget_runs_out_mid_crawl_nothing_charged_beyond_it(tmp_path, key):
    paths = [f"/p{i}" for i in range(6)]
    server = PayCrawlServer(pages={p: PricedPage() for p in paths}, verify=verifying(key))
    with server:
        got = crawl(tmp_path, server, key, paths,
                    payment={"budget": "USD 0.03", "per_origin_budget": "USD 0.03"})
    assert got["proc"].returncode == 0, got["proc"].stderr[-3000:]
    assert len(server.charges) == 3 and server.total_charged() == Decimal("0.03")
    decisions = {p: final(got["audit"], server.url(p)) for p in paths}
    allowed = [p for p, r in decisions.items() if r["decision"] == "allow"]
    refused = [r for r in decisions.values() if r["decision"] == "deny"]
    assert len(allowed) == 3 and len(refused) == 3
    for r in refused:  # the reason says the budget and what was spent and held
        spent, held = budget_state(r["reasons"][0]["rule"])
        assert spent + held == Decimal("0.03")
    # the refused ones were never asked for with a price header
    paid_paths = {s.path for s in server.requests if "crawler-exact-price" in s.headers}
    assert paid_paths == set(allowed)
    assert charged_total(got["audit"]) == Decimal("0.03")


def test_per_origin_budget_refuses_before_the_job_budget(tmp_path, key):
    paths = [f"/p{i}" for i in range(3)]
    server = PayCrawlServer(pages={p: PricedPage() for p in paths}, verify=verifying(key))
    with server:
        got = crawl(tmp_path, server, key, paths,
                    payment={"budget": "USD 5.00", "per_origin_budget": "USD 0.02"})
    assert len(server.charges) == 2
    refused = [final(got["audit"], server.url(p)) for p in paths]
    refused = [r for r in refused if r["decision"] == "deny"]
    assert len(refused) == 1 and "per-origin budget" in refused[0]["reasons"][0]["rule"]


def test_resume_spends_only_what_is_left(tmp_path, key):
    first, second = ["/a0", "/a1"], ["/b0", "/b1", "/b2"]
    server = PayCrawlServer(pages={p: PricedPage() for p in first + second},
                            verify=verifying(key))
    budget = {"budget": "USD 0.03", "per_origin_budget": "USD 0.03"}
    with server:
        one = crawl(tmp_path, server, key, first, payment=budget)
        assert one["proc"].returncode == 0, one["proc"].stderr[-3000:]
        assert server.total_charged() == Decimal("0.02")
        two = crawl(tmp_path, server, key, second, payment=budget)  # same job, same log
    assert two["proc"].returncode == 0, two["proc"].stderr[-3000:]
    assert server.total_charged() == Decimal("0.03")      # one more page: what was left
    run_two = two["audit"][len(one["audit"]):]
    assert charged_total(run_two) == Decimal("0.01")
    assert charged_total(two["audit"]) == Decimal("0.03")
    refused = [final(two["audit"], server.url(p)) for p in second]
    refused = [r for r in refused if r["decision"] == "deny"]
    assert len(refused) == 2
    for r in refused:  # the first run's spending counted: at least USD 0.02 spent
        spent, held = budget_state(r["reasons"][0]["rule"])
        assert spent + held == Decimal("0.03") and spent >= Decimal("0.02")
    assert "USD 0.03 spent by the job so far" in two["proc"].stderr
    assert verify_file(two["out"] / "audit.jsonl").ok


# -- paying never overrides a reservation ------------------------------------------------------

RESERVED_402 = [
    ("tdm-reservation", (("tdm-reservation", "1"),), "tdmrep"),
    ("noai", (("X-Robots-Tag", "noai"),), "noai"),
    ("noai for our token", (("X-Robots-Tag", "politedemobot: noai"),), "noai"),
]


@pytest.mark.parametrize("case, headers, signal", RESERVED_402, ids=[c[0] for c in RESERVED_402])
def test_a_reservation_on_the_402_is_never_paid(tmp_path, key, case, headers, signal):
    server = PayCrawlServer(pages={"/r": PricedPage(headers=headers), "/ok": PricedPage()},
                            verify=verifying(key))
    with server:
        got = crawl(tmp_path, server, key, ["/r", "/ok"])
    assert got["proc"].returncode == 0, got["proc"].stderr[-3000:]
    r = [s for s in server.requests if s.path == "/r"]
    assert len(r) == 1 and not any(h in r[0].headers for h in PRICE_HEADERS)
    assert [c.path for c in server.charges] == ["/ok"]    # the control is paid
    rec = final(got["audit"], server.url("/r"))
    assert rec["decision"] == "deny" and {x["signal"] for x in rec["reasons"]} == {signal}
    quote, refusal = pay(got["audit"], server.url("/r"))
    assert quote["result"] == "pay-quote" and quote["price"] == "USD 0.01"
    assert refusal["action"] == "refuse" and "never overrides a reservation" in \
        refusal["reason"]


def test_robots_txt_keeps_a_priced_page_unrequested(tmp_path, key):
    server = PayCrawlServer(pages={"/private/p": PricedPage(), "/p": PricedPage()},
                            verify=verifying(key),
                            static={"/robots.txt": (200, "text/plain",
                                                    b"User-agent: *\nDisallow: /private/\n")})
    with server:
        got = crawl(tmp_path, server, key, ["/private/p", "/p"])
    assert "/private/p" not in [s.path for s in server.requests]
    rec = final(got["audit"], server.url("/private/p"))
    assert rec["decision"] == "deny" and rec["reasons"][0]["signal"] == "robots"
    assert not pay(got["audit"], server.url("/private/p"))
    assert [c.path for c in server.charges] == ["/p"]


# -- the demo's signature-only site -----------------------------------------------------------

@pytest.mark.parametrize("signer", ["ours", "stranger", "unsigned"])
def test_signature_only_demo_site_answers_200_only_to_our_signature(tmp_path, key, signer):
    verifier = WebBotAuthVerifier(DEMO_SIGNATURE_AGENT, jwks([load_key(key).jwk]))
    sites = [s for s in demo_sites(verifier.verify) if s.name == "web-bot-auth"]
    identity: dict[str, str] = {}
    if signer == "ours":
        identity = {"key_file": str(key), "signature_agent": DEMO_SIGNATURE_AGENT}
    elif signer == "stranger":
        stranger = tmp_path / "stranger.pem"
        generate_key(stranger)
        identity = {"key_file": str(stranger), "signature_agent": DEMO_SIGNATURE_AGENT}
    with LocalWeb(sites) as web:
        origin = web.origin("web-bot-auth")
        cfg = write_config(tmp_path / "j.yaml", seeds=[origin + "/"], identity=identity)
        proc = run_cli("run", str(cfg))
    assert proc.returncode == 0, proc.stderr[-3000:]
    audit = read_jsonl(tmp_path / "out" / "audit.jsonl")
    home = final(audit, origin + "/")
    if signer == "ours":
        assert home["decision"] == "allow"
        assert final(audit, origin + "/members.html")["decision"] == "allow"
    else:
        assert home["decision"] == "deny" and home["status"] == 401
        assert home["reasons"][0]["signal"] == "payment-required"
        assert not any(r["url"].endswith("/members.html") for r in audit)
    assert isinstance(load_key(key), Identity)
