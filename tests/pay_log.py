"""Pay-per-crawl audit records as a crawl writes them, for report and transparency tests.

The records come from the real session (:class:`crawler.policy.payment.PayPerCrawl`: it decides, and
its answers carry the records) written through the real funnel
(:meth:`crawler.crawl.decisions.DecisionFunnel.result`, ``extra={"payment": payload}``, as the
answers' docstring tells the glue) into a real :class:`crawler.audit.log.AuditWriter`: no
hand-made record dicts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from crawler.audit.log import AuditWriter
from crawler.crawl.decisions import DecisionFunnel
from crawler.policy.ledger import LocalLedger, PaymentPolicy
from crawler.policy.payment import PayAndRetry, PayPerCrawl
from crawler.policy.reservation import Policy

UA = "PayBot/1.0 (+https://example.org/paybot)"


def day_clock(*days: str) -> Iterator[str]:
    """Record times: a minute apart, on each of ``days`` in turn (``YYYY-MM-DD``) for 100
    records each, then on the last day."""
    n = 0
    while True:
        day = days[min(n // 100, len(days) - 1)]
        yield f"{day}T{10 + n % 100 // 60:02d}:{n % 60:02d}:00.000000Z"
        n += 1


class PayingCrawl:
    """One job's payment session over one audit log (a run with one budget currency)."""

    def __init__(self, writer: AuditWriter, currency: str = "USD", *,
                 max_price: str = "0.05", budget: str = "5.00") -> None:
        self.funnel = DecisionFunnel(writer, Policy(token="PayBot", user_agent=UA))
        policy = PaymentPolicy.from_config({"max_price": f"{currency} {max_price}",
                                            "budget": f"{currency} {budget}"})
        assert policy is not None
        self.session = PayPerCrawl(policy, LocalLedger(policy))

    def write(self, url: str, answer: Any) -> list[dict[str, Any]]:
        """Write an answer's records as the glue does, before acting on it."""
        return [self.funnel.result(url, result, request_seq=None, extra={"payment": payment})
                for result, payment in answer.records]

    def paid_page(self, url: str, price: str, charged: str | None = None) -> list[dict]:
        """A 402 quoting ``price``, paid with crawler-exact-price, answered 200 with
        ``crawler-charged: charged`` (default: the price)."""
        origin = _origin(url)
        quote = self.session.decide(origin, 402, {"crawler-price": price})
        assert isinstance(quote, PayAndRetry), quote
        written = self.write(url, quote)
        attempt = quote.attempt.with_ref(written[-1]["seq"])  # the pay-decision's seq
        answer = self.session.decide(origin, 200, {"crawler-charged": charged or price},
                                     attempt)
        return written + self.write(url, answer)

    def quote(self, url: str, status: int, headers: dict[str, str]) -> list[dict]:
        """An unpaid response with pay headers (a refusal, a stop...)."""
        return self.write(url, self.session.decide(_origin(url), status, headers))

    def authorised_then_lost(self, url: str, price: str) -> list[dict]:
        """A 402 paid for, whose response never came (the crawl died): no charge record."""
        origin = _origin(url)
        quote = self.session.decide(origin, 402, {"crawler-price": price})
        assert isinstance(quote, PayAndRetry), quote
        return self.write(url, quote)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def write_paid_log(path: Any, *, clock: Iterator[str] | None = None,
                   hostile: bool = False) -> AuditWriter:
    """The issue's run: 3 charges of USD 0.01 and 1 of EUR 0.02 over two registrable domains
    (www. and news.example.com: 2 x USD 0.01; shop.example.org: USD 0.01, then, in a second
    run budgeted in euros, EUR 0.02), on two days; a quote refused over max_price, one with an
    unreadable price, an origin that blocks us (CrawlerForbidden), an allow and a deny.
    ``hostile``: also a charge record whose amount is malformed (written by the same writer,
    so the chain verifies: a buggy tool, not a broken log).  Returns the closed writer."""
    clock = clock or day_clock("2026-12-01", "2026-12-02")
    writer = AuditWriter(path, job="pay", clock=lambda: next(clock))
    usd = PayingCrawl(writer, "USD")
    writer.write(url="https://www.example.com/free", decision="allow", reasons=[],
                 policy_sha256=usd.funnel.policy.sha256, extra={"checks": []})
    usd.paid_page("https://www.example.com/a", "USD 0.01")
    usd.paid_page("https://news.example.com/b", "USD 0.01")
    usd.quote("https://www.example.com/dear", 402, {"crawler-price": "USD 9.00"})
    usd.quote("https://shop.example.org/odd", 402, {"crawler-price": "USD 1,00"})
    usd.quote("https://blocked.example.net/x", 403, {"crawler-error": "CrawlerForbidden"})
    for _ in range(100 - writer.state.seq):  # the next records fall on the second day
        writer.write(url="https://www.example.com/robots-refused", decision="deny",
                     reasons=[{"signal": "robots", "channel": "robots.txt",
                               "rule": "Disallow: /"}],
                     policy_sha256=usd.funnel.policy.sha256, extra={"checks": []})
    usd.paid_page("https://shop.example.org/c", "USD 0.01")
    if hostile:
        bad = PayingCrawl(writer, "USD")
        quote = bad.session.decide("https://shop.example.org", 402,
                                   {"crawler-price": "USD 0.01"})
        written = bad.write("https://shop.example.org/bad", quote)
        answer = bad.session.decide("https://shop.example.org", 200,
                                    {"crawler-charged": "USD 0.01"},
                                    quote.attempt.with_ref(written[-1]["seq"]))
        for result, payment in answer.records:
            bad.funnel.result("https://shop.example.org/bad", result, request_seq=None,
                              extra={"payment": {**payment, "charged": "USD 1e3"}})
        bad.funnel.result("https://shop.example.org/bad2", "pay-charge", request_seq=None,
                          extra={"payment": {**answer.records[0][1], "ref": None,
                                             "charged": 0.01}})
    eur = PayingCrawl(writer, "EUR")  # a later run of the job, budgeted in euros
    eur.paid_page("https://shop.example.org/d", "EUR 0.02")
    writer.close()
    return writer
