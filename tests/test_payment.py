"""Pay per crawl: the price grammar, the crawler-error table, budgets, the decision, replay,
and the local pay-per-crawl test server (protocols.md §8.5, §8.6)."""

from __future__ import annotations

import ast
import http.client
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import pytest

from crawler.audit.record import GENESIS_HASH, canonical_json, seal, verify_lines
from crawler.policy.ledger import LocalLedger, PaymentConfigError, PaymentPolicy
from crawler.policy.payment import (
    CRAWLER_ERRORS,
    Collect,
    ErrorAction,
    PaidAttempt,
    Pass,
    PayAndRetry,
    PayPerCrawl,
    Refuse,
    RetryLater,
    StopOrigin,
    error_action,
)
from crawler.policy.payment_replay import replay
from crawler.policy.prices import CurrencyMismatch, Money, PriceError, parse_price
from tests.paycrawl_server import PayCrawlServer, PricedPage

O = "https://a.example:443"
O2 = "https://b.example:443"


def usd(text: str) -> Money:
    return Money("USD", Decimal(text))


def policy(max_price="USD 0.01", budget="USD 5.00", per_origin="USD 1.00") -> PaymentPolicy:
    p = PaymentPolicy.from_config({"max_price": max_price, "budget": budget,
                                   "per_origin_budget": per_origin})
    assert p is not None
    return p


# -- the price grammar ---------------------------------------------------------------------

@pytest.mark.parametrize("text, currency, amount", [
    ("USD 0.01", "USD", "0.01"),          # Cloudflare's example
    ("USD 0.05", "USD", "0.05"),
    ("EUR 1", "EUR", "1"),
    ("USD 0", "USD", "0"),
    ("USD 10.5", "USD", "10.5"),
    ("USD 0.000001", "USD", "0.000001"),  # six decimals: one micro-unit
    ("USD 999999999.999999", "USD", "999999999.999999"),
    (" USD 0.01\t", "USD", "0.01"),       # OWS around a field value is not part of it
    (b"USD 0.01", "USD", "0.01"),
])
def test_valid_prices(text, currency, amount):
    m = parse_price(text)
    assert m == Money(currency, Decimal(amount))
    assert isinstance(m.amount, Decimal)


@pytest.mark.parametrize("text, reason", [
    ("", "empty"),
    ("   ", "empty"),
    ("0.01", "CUR AMOUNT"),
    ("USD", "CUR AMOUNT"),
    ("USD0.01", "CUR AMOUNT"),
    ("USD  0.01", "CUR AMOUNT"),              # extra whitespace inside
    ("USD\t0.01", "ASCII"),
    ("USD 0.01 USD", "CUR AMOUNT"),
    ("usd 0.01", "upper-case"),
    ("US 0.01", "upper-case"),
    ("USDX 0.01", "upper-case"),
    ("$ 0.01", "upper-case"),
    ("ÜSD 0.01", "non-ASCII"),
    ("USD -0.01", "signed"),
    ("USD +0.01", "signed"),
    ("USD 1e-2", "exponent"),
    ("USD 1E2", "exponent"),
    ("USD NaN", "NaN"),
    ("USD Infinity", "Infinity"),
    ("USD inf", "Infinity"),
    ("USD 1,000.00", "list"),                 # thousands separator (or a list)
    ("USD 1'000", "digits"),
    ("USD 1_000", "digits"),
    ("USD 0.01, USD 0.02", "list"),           # list syntax
    ("USD 0.0000001", "decimal places"),      # seven decimals
    ("USD 01", "leading zero"),
    ("USD 00.01", "leading zero"),
    ("USD .5", "decimal point"),
    ("USD 5.", "decimal point"),
    ("USD 1.2.3", "decimal point"),
    ("USD 1000000000", "integer digits"),
    ("USD ٠.٠١", "non-ASCII"),                  # Arabic-Indic digits: str.isdigit() says yes
    ("USD 0.01" + " " * 40, "longer"),        # over-long input (before stripping)
    ("USD " + "9" * 100, "longer"),
    ("USD 0.01\r\nX-Evil: 1", "control"),  # header injection
    ("USD 0.01\n", "control"),
    ("USD 0.01\x00", "control"),
])
def test_invalid_prices(text, reason):
    with pytest.raises(PriceError) as exc:
        parse_price(text)
    assert reason.lower() in exc.value.reason.lower()


@pytest.mark.parametrize("value", [None, 0.01, 1, ["USD 0.01"], b"USD 0.01\xff"])
def test_non_string_prices_are_refused(value):
    with pytest.raises(PriceError):
        parse_price(value)


def test_money_is_decimal_only_and_exact():
    with pytest.raises(TypeError):
        Money("USD", 0.01)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Money("USD", Decimal("-1"))
    with pytest.raises(ValueError):
        Money("USD", Decimal("NaN"))
    with pytest.raises(ValueError):
        Money("USD", Decimal("0.0000001"))
    with pytest.raises(ValueError):
        Money("usd", Decimal("1"))
    assert usd("0.01").micros == 10_000
    assert usd("0.010") == usd("0.01")
    assert str(parse_price("USD 0.010")) == "USD 0.010"   # digits as quoted (exact-price echo)
    assert Money.from_micros("USD", 10_000) == usd("0.01")
    assert str(Money.from_micros("USD", 5_000_000)) == "USD 5.00"
    assert str(Money.from_micros("USD", 1)) == "USD 0.000001"
    assert usd("0.01") + usd("0.02") == usd("0.03")       # no float rounding
    with pytest.raises(CurrencyMismatch):
        usd("1") <= Money("EUR", Decimal("1"))
    with pytest.raises(CurrencyMismatch):
        usd("1") + Money("EUR", Decimal("1"))


# -- the crawler-error table ---------------------------------------------------------------

#: protocols.md §8.5 and Cloudflare's error-codes page: name -> status
DOCUMENTED = {"CrawlerForbidden": 403, "StrongAuthRequired": 400, "InvalidSignature": 400,
              "InvalidCrawlerPriceValue": 400, "ConflictingPriceHeaders": 400,
              "MissingCrawlerPrice": 402, "InvalidCrawlerExactPrice": 402,
              "InvalidCrawlerMaxPrice": 402, "PaymentFailed": 403, "InvalidContentPrice": 502,
              "InternalError": 500}


def test_error_table_matches_the_documented_codes():
    assert {n: r.status for n, r in CRAWLER_ERRORS.items()} == DOCUMENTED


@pytest.mark.parametrize("name, action", [
    ("CrawlerForbidden", ErrorAction.STOP_ORIGIN),
    ("InternalError", ErrorAction.RETRY),
    ("InvalidCrawlerExactPrice", ErrorAction.REFUSE_URL),
    ("InvalidCrawlerMaxPrice", ErrorAction.REFUSE_URL),
    ("InvalidContentPrice", ErrorAction.REFUSE_URL),
    ("StrongAuthRequired", ErrorAction.CONFIG_ERROR),
    ("InvalidSignature", ErrorAction.CONFIG_ERROR),
    ("InvalidCrawlerPriceValue", ErrorAction.CONFIG_ERROR),
    ("ConflictingPriceHeaders", ErrorAction.CONFIG_ERROR),
    ("MissingCrawlerPrice", ErrorAction.CONFIG_ERROR),
    ("PaymentFailed", ErrorAction.CONFIG_ERROR),
])
def test_error_actions(name, action):
    assert error_action(name, DOCUMENTED[name])[0] is action


def test_unknown_errors_and_status_mismatches_fail_closed():
    assert error_action("SomethingNew", 400)[0] is ErrorAction.REFUSE_URL
    assert error_action("internalerror", 500)[0] is ErrorAction.REFUSE_URL   # case matters
    # only a real 500 InternalError is retried
    act, why = error_action("InternalError", 503)
    assert act is ErrorAction.REFUSE_URL and "503" in why
    assert error_action("CrawlerForbidden", 400)[0] is ErrorAction.STOP_ORIGIN


# -- the config ----------------------------------------------------------------------------

def test_policy_from_config():
    p = policy()
    assert (p.max_price, p.budget, p.per_origin_budget) == (usd("0.01"), usd("5"), usd("1"))
    assert PaymentPolicy.from_config(None) is None
    only = PaymentPolicy.from_config({"max_price": "USD 0.01", "budget": "USD 2"})
    assert only is not None and only.per_origin_budget == usd("2")


@pytest.mark.parametrize("cfg, key", [
    ({"max_price": 0.01, "budget": "USD 5"}, "max_price"),          # YAML float
    ({"max_price": "USD 0.01"}, "budget"),
    ({"budget": "USD 5"}, "max_price"),
    ({"max_price": "USD 0.01", "budget": "USD 5", "limit": "x"}, "limit"),
    ({"max_price": "EUR 0.01", "budget": "USD 5"}, "max_price"),    # currency mismatch
    ({"max_price": "USD 0.01", "budget": "USD 5", "per_origin_budget": "EUR 1"},
     "per_origin_budget"),
    ({"max_price": "USD 1e-2", "budget": "USD 5"}, "max_price"),
])
def test_bad_config_names_the_key(cfg, key):
    with pytest.raises(PaymentConfigError) as exc:
        PaymentPolicy.from_config(cfg)
    assert exc.value.key == key


def test_config_must_be_a_mapping():
    with pytest.raises(PaymentConfigError):
        PaymentPolicy.from_config(["USD 1"])


# -- the local ledger ----------------------------------------------------------------------

def test_ledger_holds_against_both_budgets():
    led = LocalLedger(policy(max_price="USD 1", budget="USD 0.05", per_origin="USD 0.03"))
    assert led.reserve(O, usd("0.02"))
    assert led.reserve(O, usd("0.01"))
    no = led.reserve(O, usd("0.01"))          # origin at 0.03 held
    assert not no and "per-origin" in no.reason
    assert led.reserve(O2, usd("0.02"))
    no = led.reserve(O2, usd("0.000001"))     # job at 0.05 held
    assert not no and "job budget" in no.reason
    led.release(O2, usd("0.02"))
    assert led.reserve(O2, usd("0.02"))
    led.commit(O, usd("0.02"), usd("0.015"))
    t = led.totals(O)
    assert (t.spent, t.held, t.origin_spent, t.origin_held) == (15_000, 30_000, 15_000, 10_000)
    assert not led.reserve(O, usd("0.01"))    # 0.015 spent + 0.01 held + 0.01 > 0.03
    assert led.reserve(O, usd("0.005"))       # exactly the per-origin budget
    assert not led.reserve(O2, Money("EUR", Decimal("0.01")))


def test_ledger_threads_never_overspend():
    led = LocalLedger(policy(max_price="USD 1", budget="USD 0.50", per_origin="USD 0.50"))
    wins = []

    def take():
        for _ in range(100):
            if led.reserve(O, usd("0.01")):
                wins.append(1)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 50


# -- the decision --------------------------------------------------------------------------

class Log:
    """What the glue does with the records: seal them as audit records, in order."""

    def __init__(self) -> None:
        self.records: list[dict] = []

    def write(self, records) -> list[int]:
        seqs = []
        for result, payment in records:
            prev = self.records[-1]["hash"] if self.records else GENESIS_HASH
            rec = seal({"time": "t", "job": "j", "url": "u", "decision": "result",
                        "reasons": [], "policy_sha256": "p", "result": result,
                        "payment": payment}, seq=len(self.records) + 1, prev_hash=prev)
            self.records.append(rec)
            seqs.append(rec["seq"])
        return seqs

    def kinds(self) -> list[str]:
        return [r["result"] for r in self.records]


def session(**kw) -> tuple[PayPerCrawl, LocalLedger, Log]:
    p = policy(**kw)
    led = LocalLedger(p)
    return PayPerCrawl(p, led), led, Log()


def quote(ppc, log, price="USD 0.01", origin=O):
    ans = ppc.decide(origin, 402, {"crawler-price": [price]})
    seqs = log.write(ans.records)
    if isinstance(ans, PayAndRetry):
        return ans, ans.attempt.with_ref(seqs[-1])
    return ans, None


def test_402_within_budget_pays_once_with_the_exact_price():
    ppc, led, log = session()
    ans, attempt = quote(ppc, log)
    assert isinstance(ans, PayAndRetry)
    assert attempt.headers == {"crawler-exact-price": "USD 0.01"}   # one header, never both
    assert led.totals(O).held == 10_000
    assert log.kinds() == ["pay-quote", "pay-decision"]
    assert log.records[0]["payment"]["headers"] == {"crawler-price": ["USD 0.01"]}
    assert log.records[1]["payment"]["action"] == "pay"
    ans = ppc.decide(O, 200, {"crawler-charged": ["USD 0.01"], "content-type": ["text/html"]},
                     attempt)
    assert isinstance(ans, Collect) and ans.charged == usd("0.01")
    log.write(ans.records)
    assert led.totals(O) == type(led.totals(O))(10_000, 0, 10_000, 0)
    charge = log.records[-1]
    assert charge["result"] == "pay-charge" and charge["payment"]["ref"] == attempt.ref
    assert charge["payment"]["headers"] == {"crawler-charged": ["USD 0.01"]}
    assert "content-type" not in charge["payment"]["headers"]
    assert verify_lines([canonical_json(r) + "\n" for r in log.records]).ok


def test_the_exact_price_echoes_the_quote_digits():
    ppc, _, log = session()
    _, attempt = quote(ppc, log, "USD 0.010")
    assert attempt.headers == {"crawler-exact-price": "USD 0.010"}


@pytest.mark.parametrize("headers, why", [
    ({}, "without a valid crawler-price"),
    ({"crawler-price": ["USD 1e-2"]}, "exponent"),
    ({"crawler-price": ["USD 0.01", "USD 0.01"]}, "2 values"),
    ({"crawler-price": ["USD 0.01, USD 0.02"]}, "list"),
    ({"crawler-price": ["USD 0.02"]}, "over max_price"),
    ({"crawler-price": ["EUR 0.01"]}, "currency EUR"),
])
def test_402_refusals(headers, why):
    ppc, led, log = session()
    ans = ppc.decide(O, 402, headers)
    assert isinstance(ans, Refuse) and why in ans.reason
    log.write(ans.records)
    assert log.kinds() == ["pay-quote", "pay-decision"]
    assert log.records[-1]["payment"]["action"] == "refuse"
    assert led.totals(O).held == 0


def test_over_job_budget_and_over_origin_budget():
    ppc, led, log = session(max_price="USD 0.50", budget="USD 1.00", per_origin="USD 0.60")
    ans, a1 = quote(ppc, log, "USD 0.50")
    assert a1 is not None
    ans, _ = quote(ppc, log, "USD 0.50")
    assert isinstance(ans, Refuse) and "per-origin" in ans.reason
    ans, b1 = quote(ppc, log, "USD 0.50", origin=O2)
    assert b1 is not None
    ans, _ = quote(ppc, log, "USD 0.01", origin="https://c.example:443")
    assert isinstance(ans, Refuse) and "job budget" in ans.reason
    # a hold released frees the money again
    log.write(ppc.decide(O, 200, {}, a1).records)
    ans, _ = quote(ppc, log, "USD 0.01", origin="https://c.example:443")
    assert isinstance(ans, PayAndRetry)


def test_second_402_after_paying_is_refused_no_loop():
    ppc, led, log = session()
    _, attempt = quote(ppc, log)
    ans = ppc.decide(O, 402, {"crawler-price": ["USD 0.01"]}, attempt)
    assert isinstance(ans, Refuse) and "after paying" in ans.reason
    assert led.totals(O).held == 0 and led.totals(O).spent == 0


def test_overcharge_is_debited_recorded_and_stops_paying_the_origin():
    ppc, led, log = session()
    _, attempt = quote(ppc, log)
    ans = ppc.decide(O, 200, {"crawler-charged": ["USD 0.05"]}, attempt)
    assert isinstance(ans, Collect) and ans.charged == usd("0.05")
    log.write(ans.records)
    assert led.totals(O).spent == 50_000 and led.totals(O).held == 0
    assert log.kinds()[-2:] == ["pay-charge", "pay-decision"]
    assert log.records[-1]["payment"]["action"] == "stop-paying"
    assert ppc.paying(O)
    ans, _ = quote(ppc, log)
    assert isinstance(ans, Refuse) and "not paying" in ans.reason
    assert ppc.up_front(O) == (None, ())
    ans, _ = quote(ppc, log, origin=O2)   # other origins are still paid
    assert isinstance(ans, PayAndRetry)


def test_unreadable_charge_debits_what_was_authorised():
    ppc, led, log = session()
    _, attempt = quote(ppc, log)
    ans = ppc.decide(O, 200, {"crawler-charged": ["USD lots"]}, attempt)
    assert isinstance(ans, Collect) and ans.charged == usd("0.01")
    assert led.totals(O).spent == 10_000
    assert ppc.paying(O)


def test_charged_on_a_non_200_is_debited_and_refused():
    ppc, led, log = session()
    _, attempt = quote(ppc, log)
    ans = ppc.decide(O, 404, {"crawler-charged": ["USD 0.01"]}, attempt)
    assert isinstance(ans, Refuse) and "404" in ans.reason
    assert led.totals(O).spent == 10_000 and led.totals(O).held == 0
    assert ppc.paying(O)


def test_charged_without_a_price_header_is_debited_and_stops_paying():
    ppc, led, log = session()
    ans = ppc.decide(O, 200, {"crawler-charged": ["USD 0.01"]})
    assert isinstance(ans, Collect) and ans.charged == usd("0.01")
    assert led.totals(O).spent == 10_000
    assert "without a price header" in ppc.paying(O)


def test_paid_200_without_charge_releases_the_hold():
    ppc, led, log = session()
    _, attempt = quote(ppc, log)
    ans = ppc.decide(O, 200, {}, attempt)
    assert isinstance(ans, Collect) and ans.charged is None
    assert led.totals(O) == type(led.totals(O))()


def test_responses_without_payment_headers_pass():
    ppc, led, log = session()
    for status in (200, 301, 403, 404, 500):
        ans = ppc.decide(O, status, {"content-type": ["text/html"]})
        assert isinstance(ans, Pass) and ans.records == ()
    ans = ppc.decide(O, 200, {"crawler-price": ["USD 0.01"]})
    assert isinstance(ans, Refuse)


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_every_error_row_after_paying(name):
    ppc, led, log = session()
    _, attempt = quote(ppc, log)
    ans = ppc.decide(O, DOCUMENTED[name], {"crawler-error": [name]}, attempt)
    log.write(ans.records)
    action = CRAWLER_ERRORS[name].action
    if action is ErrorAction.RETRY:
        assert isinstance(ans, RetryLater) and ans.delay == 1.0 and ans.attempt.retries == 1
        assert led.totals(O).held == 10_000          # the hold goes on with the retry
        return
    assert led.totals(O).held == 0 and led.totals(O).spent == 0
    assert "pay-charge" in log.kinds()
    if action is ErrorAction.STOP_ORIGIN:
        assert isinstance(ans, StopOrigin) and ppc.stopped(O)
    elif action is ErrorAction.CONFIG_ERROR:
        assert isinstance(ans, Refuse) and ppc.disabled
        again, _ = quote(ppc, log, origin=O2)          # the job pays no more
        assert isinstance(again, Refuse)
    else:
        assert isinstance(ans, Refuse) and not ppc.disabled and not ppc.stopped(O)
        again, _ = quote(ppc, log)
        assert isinstance(again, PayAndRetry)


def test_crawler_forbidden_on_an_unpaid_request_stops_the_origin():
    ppc, led, log = session()
    ans = ppc.decide(O, 403, {"crawler-error": ["CrawlerForbidden"]})
    assert isinstance(ans, StopOrigin)
    assert ppc.stopped(O) and not ppc.stopped(O2)
    ans = ppc.decide(O, 402, {"crawler-price": ["USD 0.01"]})
    assert isinstance(ans, Refuse)


def test_config_errors_on_unpaid_requests_refuse_only_the_url():
    ppc, led, log = session()
    ans = ppc.decide(O, 400, {"crawler-error": ["StrongAuthRequired"]})
    assert isinstance(ans, Refuse) and not ppc.disabled
    assert isinstance(quote(ppc, log)[0], PayAndRetry)


@pytest.mark.parametrize("headers", [
    {"crawler-error": ["NewError"]},
    {"crawler-error": ["InternalError", "InternalError"]},
])
def test_unknown_or_repeated_errors_refuse(headers):
    ppc, led, log = session()
    _, attempt = quote(ppc, log)
    ans = ppc.decide(O, 500, headers, attempt)
    assert isinstance(ans, Refuse)
    assert led.totals(O).held == 0


def test_internal_error_backs_off_then_gives_up():
    ppc, led, log = session()
    _, attempt = quote(ppc, log)
    delays = []
    for _ in range(3):
        ans = ppc.decide(O, 500, {"crawler-error": ["InternalError"]}, attempt)
        assert isinstance(ans, RetryLater)
        delays.append(ans.delay)
        attempt = ans.attempt
    assert delays == [1.0, 2.0, 4.0]
    ans = ppc.decide(O, 500, {"crawler-error": ["InternalError"]}, attempt)
    assert isinstance(ans, Refuse) and "exhausted" in ans.reason
    assert led.totals(O).held == 0 and led.totals(O).spent == 0
    # unpaid request: retried too, with no hold
    ans = ppc.decide(O2, 500, {"crawler-error": ["InternalError"]})
    assert isinstance(ans, RetryLater) and ans.attempt is None and ans.retries == 1


def test_up_front_max_price_for_origins_that_charged():
    ppc, led, log = session()
    assert ppc.up_front(O) == (None, ())
    _, attempt = quote(ppc, log)
    log.write(ppc.decide(O, 200, {"crawler-charged": ["USD 0.01"]}, attempt).records)
    up, recs = ppc.up_front(O)
    assert up is not None and up.headers == {"crawler-max-price": "USD 0.01"}
    assert "crawler-exact-price" not in up.headers
    assert led.totals(O).held == 10_000
    assert [r for r, _ in recs] == ["pay-decision"]
    up = up.with_ref(log.write(recs)[-1])
    ans = ppc.decide(O, 200, {"crawler-charged": ["USD 0.008"]}, up)
    assert isinstance(ans, Collect) and ans.charged == usd("0.008")
    assert led.totals(O).spent == 18_000 and led.totals(O).held == 0
    # a max-price attempt answered 402 (price now over max): refused, not looped
    up, recs = ppc.up_front(O)
    up = up.with_ref(log.write(recs)[-1])
    ans = ppc.decide(O, 402, {"crawler-error": ["InvalidCrawlerMaxPrice"],
                              "crawler-price": ["USD 0.02"]}, up)
    assert isinstance(ans, Refuse) and led.totals(O).held == 0


def test_up_front_needs_budget():
    ppc, led, log = session(budget="USD 0.01", per_origin="USD 0.01")
    _, attempt = quote(ppc, log)
    ppc.decide(O, 200, {"crawler-charged": ["USD 0.01"]}, attempt)
    assert ppc.up_front(O) == (None, ())   # budget spent: the request goes unpaid


def test_attempt_without_ref_is_a_programmer_error():
    ppc, led, log = session()
    ans = ppc.decide(O, 402, {"crawler-price": ["USD 0.01"]})
    with pytest.raises(ValueError, match="ref"):
        ppc.decide(O, 200, {}, ans.attempt)


def test_attempt_meta_round_trip():
    a = PaidAttempt(O, "crawler-exact-price", usd("0.01"), usd("0.01"), 2, 7)
    assert PaidAttempt.from_meta(a.to_meta()) == a
    with pytest.raises(ValueError):
        PaidAttempt.from_meta({**a.to_meta(), "header": "x-price"})


# -- resume --------------------------------------------------------------------------------

def test_replay_restores_spent_and_origin_state():
    ppc, led, log = session()
    _, a = quote(ppc, log)
    log.write(ppc.decide(O, 200, {"crawler-charged": ["USD 0.01"]}, a).records)
    _, b = quote(ppc, log, origin=O2)
    log.write(ppc.decide(O2, 200, {"crawler-charged": ["USD 0.05"]}, b).records)  # overcharge
    log.write(ppc.decide("https://c.example:443", 403,
                         {"crawler-error": ["CrawlerForbidden"]}).records)
    _, c = quote(ppc, log)   # authorised, then the crawl dies before its answer
    h = replay(log.records)
    assert h.spent == {O: 20_000, O2: 50_000}   # the open hold counts as spent
    assert h.open_holds == 1
    assert h.charged == {O, O2}
    assert O2 in h.no_pay and "https://c.example:443" in h.stopped
    led2 = LocalLedger(ppc.policy)
    led2.load(h.spent)
    ppc2 = PayPerCrawl(ppc.policy, led2)
    ppc2.restore(h)
    assert led2.totals(O).spent == 70_000
    assert ppc2.up_front(O)[0] is not None          # charged before: max price up front
    assert ppc2.paying(O2) and ppc2.stopped("https://c.example:443")


def test_replay_makes_budgets_survive_resume():
    ppc, led, log = session(budget="USD 0.03", per_origin="USD 1")
    for origin in (O, O2, "https://c.example:443"):
        _, a = quote(ppc, log, origin=origin)
        log.write(ppc.decide(origin, 200, {"crawler-charged": ["USD 0.01"]}, a).records)
    led2 = LocalLedger(ppc.policy)
    led2.load(replay(log.records).spent)
    ppc2 = PayPerCrawl(ppc.policy, led2)
    ans = ppc2.decide("https://d.example:443", 402, {"crawler-price": ["USD 0.01"]})
    assert isinstance(ans, Refuse) and "job budget" in ans.reason


def test_replay_ignores_other_records_and_refuses_lying_money():
    recs = [{"seq": 1, "decision": "allow", "url": "u"},
            {"seq": 2, "decision": "result", "result": "robots"}]
    assert replay(recs).spent == {}
    with pytest.raises(PriceError):
        replay([{"seq": 1, "result": "pay-charge",
                 "payment": {"origin": O, "charged": "USD 1e9", "ref": None}}])
    with pytest.raises(CurrencyMismatch):
        replay([{"seq": 1, "result": "pay-charge",
                 "payment": {"origin": O, "charged": "USD 1", "ref": None}},
                {"seq": 2, "result": "pay-charge",
                 "payment": {"origin": O, "charged": "EUR 1", "ref": None}}])


def test_replay_disabled_job_and_currency_change():
    ppc, led, log = session()
    _, a = quote(ppc, log)
    log.write(ppc.decide(O, 400, {"crawler-error": ["StrongAuthRequired"]}, a).records)
    h = replay(log.records)
    ppc2 = PayPerCrawl(ppc.policy, LocalLedger(ppc.policy))
    ppc2.restore(h)
    assert ppc2.disabled
    eur = PaymentPolicy.from_config({"max_price": "EUR 1", "budget": "EUR 5"})
    log2 = Log()
    ppc3 = PayPerCrawl(ppc.policy, LocalLedger(ppc.policy))
    _, b = quote(ppc3, log2)
    log2.write(ppc3.decide(O, 200, {"crawler-charged": ["USD 0.01"]}, b).records)
    ppc4 = PayPerCrawl(eur, LocalLedger(eur))
    ppc4.restore(replay(log2.records))
    assert "USD" in ppc4.disabled


# -- layering ------------------------------------------------------------------------------

PAYMENT = Path(__file__).resolve().parent.parent / "crawler" / "policy" / "payment.py"
#: the pay-per-crawl core: the decision, money, budgets, replay (they import one another only)
PAYMENT_CORE = [PAYMENT.with_name(name) for name in ("payment.py", "prices.py", "ledger.py",
                                                     "payment_replay.py")]


@pytest.mark.parametrize("path", PAYMENT_CORE, ids=lambda p: p.name)
def test_payment_core_is_sans_io(path):
    forbidden = {"scrapy", "twisted", "redis", "socket", "time", "datetime", "os", "http",
                 "asyncio", "subprocess", "pathlib", "random", "urllib"}
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        for name in names:
            assert name.split(".")[0] not in forbidden, name
            assert not name.startswith("crawler"), name
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in {"open", "print", "input", "float"}, node.func.id


def test_importing_payment_loads_no_scrapy_twisted_or_redis():
    code = ("import sys, crawler.policy.payment\n"
            "bad = [m for m in ('scrapy', 'twisted', 'redis') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PAYMENT.parent.parent)


# -- the test server -----------------------------------------------------------------------

def get(server: PayCrawlServer, path: str, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        conn.close()


SIG = {"Signature": "sig1=:AAAA:", "Signature-Input": 'sig1=("@authority");tag="web-bot-auth"'}


@pytest.fixture
def server():
    s = PayCrawlServer(pages={
        "/paid": PricedPage(),
        "/forbidden": PricedPage(forbidden=True),
        "/flaky": PricedPage(internal_errors=2),
        "/fails": PricedPage(payment_fails=True),
        "/badprice": PricedPage(invalid_content_price=True),
        "/greedy": PricedPage(charge="USD 0.05"),
        "/signed": PricedPage(price="USD 0", signed_only=True),
    })
    with s:
        yield s


def test_server_binds_loopback_on_a_free_port(server):
    assert server._httpd.server_address[0] == "127.0.0.1" and server.port > 0


def test_server_documented_flow(server):
    assert get(server, "/free")[0] == 200
    status, h, body = get(server, "/paid")
    assert (status, h["crawler-price"], body) == (402, "USD 0.01", b"")
    status, h, body = get(server, "/paid", {"crawler-exact-price": "USD 0.01"})
    assert status == 200 and h["crawler-charged"] == "USD 0.01" and b"paid content" in body
    status, h, _ = get(server, "/paid", {"crawler-max-price": "USD 0.05"})
    assert status == 200 and h["crawler-charged"] == "USD 0.01"
    assert [c.header for c in server.charges] == ["crawler-exact-price", "crawler-max-price"]
    assert server.total_charged() == Decimal("0.02")
    assert [s.path for s in server.requests] == ["/free", "/paid", "/paid", "/paid"]


@pytest.mark.parametrize("path, headers, status, error", [
    ("/paid", {"crawler-exact-price": "USD 0.02"}, 402, "InvalidCrawlerExactPrice"),
    ("/paid", {"crawler-max-price": "USD 0.005"}, 402, "InvalidCrawlerMaxPrice"),
    ("/paid", {"crawler-max-price": "EUR 1"}, 402, "InvalidCrawlerMaxPrice"),
    ("/paid", {"crawler-exact-price": "USD 0.01", "crawler-max-price": "USD 0.01"}, 400,
     "ConflictingPriceHeaders"),
    ("/paid", {"crawler-exact-price": "one cent"}, 400, "InvalidCrawlerPriceValue"),
    ("/forbidden", {}, 403, "CrawlerForbidden"),
    ("/fails", {"crawler-exact-price": "USD 0.01"}, 403, "PaymentFailed"),
    ("/badprice", {}, 502, "InvalidContentPrice"),
    ("/signed", {}, 400, "StrongAuthRequired"),
])
def test_server_error_rows(server, path, headers, status, error):
    got, h, _ = get(server, path, headers)
    assert (got, h.get("crawler-error")) == (status, error)
    assert not server.charges


def test_server_internal_error_n_times_then_normal(server):
    assert [get(server, "/flaky")[0] for _ in range(3)] == [500, 500, 402]


def test_server_signatures():
    seen = []

    def verify(headers, method, url):
        seen.append((method, url))
        return headers.get("signature") == SIG["Signature"]

    with PayCrawlServer(pages={"/paid": PricedPage()}, verify=verify) as s:
        assert get(s, "/paid")[0] == 402                      # quoting needs no signature
        got = get(s, "/paid", {"crawler-exact-price": "USD 0.01"})
        assert (got[0], got[1]["crawler-error"]) == (400, "StrongAuthRequired")
        bad = {**SIG, "Signature": "sig1=:BBBB:", "crawler-exact-price": "USD 0.01"}
        got = get(s, "/paid", bad)
        assert (got[0], got[1]["crawler-error"]) == (400, "InvalidSignature")
        got = get(s, "/paid", {**SIG, "crawler-exact-price": "USD 0.01"})
        assert got[0] == 200 and len(s.charges) == 1
        assert seen[-1] == ("GET", f"{s.origin}/paid")


# -- the core against the server -----------------------------------------------------------

def crawl(server: PayCrawlServer, ppc: PayPerCrawl, log: Log, path: str):
    """What the glue does for one URL: up-front offer, decide, pay once, retry on 500."""
    origin = server.origin
    attempt, recs = ppc.up_front(origin)
    if attempt is not None:
        attempt = attempt.with_ref(log.write(recs)[-1])
    paid_once = False
    for _ in range(10):
        status, headers, body = get(server, path, attempt.headers if attempt else {})
        ans = ppc.decide(origin, status, {k: [v] for k, v in headers.items()}, attempt)
        seqs = log.write(ans.records)
        if isinstance(ans, PayAndRetry):
            assert not paid_once, "paid twice for one URL"
            paid_once = True
            attempt = ans.attempt.with_ref(seqs[-1])
        elif isinstance(ans, RetryLater):
            attempt = ans.attempt
        else:
            return ans, body
    raise AssertionError("no answer after 10 requests")


def test_core_against_the_server_never_exceeds_the_budget():
    pages = {f"/p{i}": PricedPage() for i in range(10)}
    pages["/flaky"] = PricedPage(internal_errors=1)
    pages["/greedy"] = PricedPage(charge="USD 0.02")
    with PayCrawlServer(pages=pages) as s:
        p = policy(max_price="USD 0.01", budget="USD 0.05", per_origin="USD 1")
        led = LocalLedger(p)
        ppc, log = PayPerCrawl(p, led), Log()
        ans, body = crawl(s, ppc, log, "/flaky")
        assert isinstance(ans, Collect) and b"paid content" in body
        results = [crawl(s, ppc, log, f"/p{i}")[0] for i in range(10)]
        assert sum(isinstance(r, Collect) for r in results) == 4
        assert s.total_charged() == Decimal("0.05") == Decimal(led.totals(s.origin).spent) / 10**6
        # the second page onwards went with crawler-max-price up front, never both headers
        paid = [r.headers for r in s.requests if "crawler-max-price" in r.headers]
        assert paid and all("crawler-exact-price" not in h for h in paid)
        assert all(not ("crawler-max-price" in r.headers and "crawler-exact-price" in r.headers)
                   for r in s.requests)
        # every charge is in the audit records
        charged = [r["payment"]["charged"] for r in log.records if r["result"] == "pay-charge"
                   and r["payment"]["charged"]]
        assert len(charged) == len(s.charges) == 5
        assert replay(log.records).spent == {s.origin: 50_000}


def test_core_against_the_server_overcharge_stops_paying():
    with PayCrawlServer(pages={"/greedy": PricedPage(charge="USD 0.02"),
                               "/next": PricedPage()}) as s:
        p = policy(max_price="USD 0.01", budget="USD 5", per_origin="USD 1")
        ppc, log = PayPerCrawl(p, LocalLedger(p)), Log()
        ans, _ = crawl(s, ppc, log, "/greedy")
        assert isinstance(ans, Collect) and ans.charged == usd("0.02")
        ans, _ = crawl(s, ppc, log, "/next")
        assert isinstance(ans, Refuse) and "not paying" in ans.reason
        assert len(s.charges) == 1


# -- extensions for the glue: unpaid retries counted, reservations never paid, fail closed ----

def test_unpaid_internal_error_retries_are_bounded_by_the_glue_count():
    ppc, led, log = session()
    retries, delays = 0, []
    while True:
        ans = ppc.decide(O, 500, {"crawler-error": ["InternalError"]}, retries=retries)
        log.write(ans.records)
        if not isinstance(ans, RetryLater):
            break
        assert ans.attempt is None
        delays.append(ans.delay)
        retries = ans.retries
    assert delays == [1.0, 2.0, 4.0]
    assert isinstance(ans, Refuse) and "3 retries exhausted" in ans.reason
    assert led.totals(O) == LocalLedger(ppc.policy).totals(O)  # nothing held, nothing spent


def test_not_paid_records_the_quote_and_holds_nothing():
    ppc, led, log = session()
    ans = ppc.not_paid(O, 402, {"crawler-price": ["USD 0.01"], "tdm-reservation": ["1"]},
                       "tdmrep header: tdm-reservation=1")
    assert isinstance(ans, Refuse) and "never overrides" in ans.reason
    assert [k for k, _ in ans.records] == ["pay-quote", "pay-decision"]
    quote_rec, decision = (p for _, p in ans.records)
    assert quote_rec["price"] == "USD 0.01" and quote_rec["headers"] == {
        "crawler-price": ["USD 0.01"]}
    assert decision["action"] == "refuse" and "tdm-reservation" in decision["reason"]
    assert led.totals(O).held == 0
    log.write(ans.records)
    assert replay(log.records).spent == {}
    # a hostile quote is recorded raw with its problem, still nothing held
    ans = ppc.not_paid(O, 402, {"crawler-price": ["USD -1"]}, "noai")
    assert ans.records[0][1]["price"] is None and ans.records[0][1]["problems"]


class _Down:
    def __init__(self, fail_commit=False):
        self.fail_commit = fail_commit

    def reserve(self, origin, amount):
        raise ConnectionError("redis down")

    def commit(self, origin, reserved, charged):
        if self.fail_commit:
            raise ConnectionError("redis down")

    def release(self, origin, reserved):
        raise ConnectionError("redis down")

    def totals(self, origin):
        raise ConnectionError("redis down")


def test_fail_closed_ledger_refuses_when_the_state_cannot_be_read():
    from crawler.policy.ledger import FailClosedLedger

    p = policy()
    ppc = PayPerCrawl(p, FailClosedLedger(_Down()))
    ans = ppc.decide(O, 402, {"crawler-price": ["USD 0.01"]})
    assert isinstance(ans, Refuse) and "unreadable" in ans.reason and "redis down" in ans.reason
    assert [k for k, _ in ans.records] == ["pay-quote", "pay-decision"]


def test_fail_closed_ledger_stops_paying_after_a_lost_commit():
    from crawler.policy.ledger import FailClosedLedger

    p = policy()
    inner = LocalLedger(p)
    led = FailClosedLedger(inner)
    ppc = PayPerCrawl(p, led)
    log = Log()
    _, attempt = quote(ppc, log)
    inner.commit = _Down(fail_commit=True).commit  # the charge cannot be recorded
    ans = ppc.decide(O, 200, {"crawler-charged": ["USD 0.01"]}, attempt)
    assert isinstance(ans, Collect)
    assert led.broken and "charge could not be recorded" in led.broken
    ans = ppc.decide(O2, 402, {"crawler-price": ["USD 0.01"]})
    assert isinstance(ans, Refuse) and "payment state unknown" in ans.reason
    # a working ledger behind it is used as is
    ok = FailClosedLedger(LocalLedger(p))
    assert ok.reserve(O, usd("0.01")) and ok.totals(O).held == 10_000


def test_cancel_releases_a_hold_that_never_left_and_replay_agrees():
    ppc, led, log = session()
    _, attempt = quote(ppc, log)
    assert led.totals(O).held == 10_000
    recs = ppc.cancel(attempt, "refused before the request by robots")
    log.write(recs)
    assert led.totals(O).held == 0
    (kind, rec), = recs
    assert kind == "pay-charge" and rec["ref"] == attempt.ref and rec["charged"] is None
    assert "not sent" in rec["problems"][0]
    assert replay(log.records).spent == {} and replay(log.records).open_holds == 0


def test_a_shared_ledger_behind_the_workers_own_log_stops_paying():
    ppc, led, log = session()
    _, attempt = quote(ppc, log)
    log.write(ppc.decide(O, 200, {"crawler-charged": ["USD 0.01"]}, attempt).records)
    history = replay(log.records)
    fresh = PayPerCrawl(policy(), LocalLedger(policy()))
    assert fresh.check_shared(history, 10_000) == "" and not fresh.disabled
    assert fresh.check_shared(history, 20_000) == ""          # others spent too: fine
    why = fresh.check_shared(history, 0)                       # Redis lost it
    assert "USD 0.00 spent, less than" in why and "USD 0.01" in why
    ans = fresh.decide(O2, 402, {"crawler-price": ["USD 0.01"]})
    assert isinstance(ans, Refuse) and "payment state was lost" in ans.reason


def test_replay_matches_charges_to_authorisations_across_worker_logs():
    # cluster: worker A authorised (seq 3), worker B sent the paid request and recorded the
    # charge; B also has an authorisation of its own at seq 3 that no charge closed
    from crawler.policy.payment_replay import cross_log_charges

    def auth(seq, origin):
        return {"seq": seq, "result": "pay-decision", "payment": {
            "kind": "decision", "origin": origin, "action": "pay", "reserved": "USD 0.01"}}

    def charge(seq, origin, ref, ref_log):
        return {"seq": seq, "result": "pay-charge", "payment": {
            "kind": "charge", "origin": origin, "ref": ref, "ref_log": ref_log,
            "charged": "USD 0.01"}}

    a = [auth(3, "https://a.example")]
    b = [auth(3, "https://b.example"), charge(4, "https://a.example", 3, "audit-a.jsonl")]
    closed = cross_log_charges({"audit-a.jsonl": a, "audit-b.jsonl": b})
    assert closed == {"audit-a.jsonl": {3}, "audit-b.jsonl": set()}
    ha = replay(a, log="audit-a.jsonl", closed=closed["audit-a.jsonl"])
    hb = replay(b, log="audit-b.jsonl", closed=closed["audit-b.jsonl"])
    assert dict(ha.spent) == {}                               # charged in B's log
    # B: the charge it recorded, and its own open authorisation counted in full
    assert dict(hb.spent) == {"https://a.example": 10_000, "https://b.example": 10_000}
    # a worker replaying only its own log never counts less than was spent
    assert dict(replay(a, log="audit-a.jsonl").spent) == {"https://a.example": 10_000}
