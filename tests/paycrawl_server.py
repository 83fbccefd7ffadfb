"""A local pay-per-crawl server (Cloudflare's documented behaviour) on 127.0.0.1, port 0.

protocols.md §8.5 and Cloudflare's ``crawl-pages`` / ``error-codes`` pages. For a path with a
:class:`PricedPage`:

* no price header → ``402`` + ``crawler-price``;
* ``crawler-exact-price`` equal to the price, or ``crawler-max-price`` at or over it → ``200`` +
  ``crawler-charged`` (the charge is recorded in :attr:`PayCrawlServer.charges`);
* both price headers → ``400 ConflictingPriceHeaders``; a malformed one → ``400
  InvalidCrawlerPriceValue``; an exact price that is not the price → ``402
  InvalidCrawlerExactPrice``; a max under it → ``402 InvalidCrawlerMaxPrice``;
* a paid request without ``Signature`` / ``Signature-Input`` when signatures are required →
  ``400 StrongAuthRequired``; ``verify(headers, method, url)`` false → ``400
  InvalidSignature``;
* per-page faults: ``forbidden`` (``403 CrawlerForbidden``), ``internal_errors=n`` (``500
  InternalError`` n times, then normal), ``payment_fails`` (``403 PaymentFailed`` on a paid
  request), ``invalid_content_price`` (``502 InvalidContentPrice``), ``charge`` (what
  ``crawler-charged`` says, to simulate an over-charge), ``quote`` (a raw ``crawler-price``
  value, e.g. a hostile one), ``signed_only`` (no answer but ``400 StrongAuthRequired`` /
  ``InvalidSignature`` without a verified signature, even for free pages).

Paths without a page are free (``200``). Every request is recorded (:attr:`requests`). The
server's own price parsing is independent of ``crawler.policy.payment`` (a test of the client against
itself would prove nothing).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Verify = Callable[[Mapping[str, str], str, str], bool]
_PRICE = re.compile(r"([A-Z]{3}) ([0-9]+(?:\.[0-9]+)?)", re.ASCII)


def _price(value: str) -> tuple[str, Decimal] | None:
    m = _PRICE.fullmatch(value.strip())
    return (m.group(1), Decimal(m.group(2))) if m else None


@dataclass
class PricedPage:
    price: str = "USD 0.01"
    body: bytes = b"<html><body><p>paid content</p></body></html>"
    forbidden: bool = False
    internal_errors: int = 0
    payment_fails: bool = False
    invalid_content_price: bool = False
    charge: str | None = None      # crawler-charged value (default: the price)
    quote: str | None = None       # crawler-price value sent (default: the price)
    signed_only: bool = False
    #: extra headers on every answer for this page (e.g. a reservation on the 402 itself)
    headers: tuple[tuple[str, str], ...] = ()
    #: (status, crawler-error) answered to every paid request (a row of the error table the
    #: server would not otherwise produce for a well-behaved client)
    paid_error: tuple[int, str] | None = None


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Charge:
    path: str
    amount: str
    header: str     # the price header that paid


@dataclass
class PayCrawlServer:
    pages: dict[str, PricedPage] = field(default_factory=dict)
    #: require Web Bot Auth headers on a paid request (Cloudflare does)
    require_signature: bool = False
    verify: Verify | None = None
    requests: list[Seen] = field(default_factory=list)
    charges: list[Charge] = field(default_factory=list)
    #: fixed answers (status, content type, body) for paths such as /robots.txt
    static: dict[str, tuple[int, str, bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it serves on (kept after :meth:`stop`, for the URLs in the records)."""
        if self._httpd is not None:
            self._port = self._httpd.server_address[1]
        assert getattr(self, "_port", None), "never started"
        return self._port

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.origin + path

    def total_charged(self) -> Decimal:
        with self._lock:
            return sum((_price(c.amount)[1] for c in self.charges), Decimal(0))  # type: ignore[index]

    def start(self) -> PayCrawlServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                status, headers, body = server.answer(
                    "GET", self.path, {k.lower(): v for k, v in self.headers.items()},
                    f"{server.origin}{self.path}")
                page = server.pages.get(self.path.split("?")[0])
                if page is not None and page.headers:
                    headers = {**headers, **dict(page.headers)}
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._port = self._httpd.server_address[1]
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> PayCrawlServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- the documented behaviour (sans socket, callable directly) --------------------------
    def _signed(self, headers: Mapping[str, str], method: str, url: str) -> str | None:
        """None when signed well enough; else the crawler-error."""
        if "signature" not in headers or "signature-input" not in headers:
            return "StrongAuthRequired"
        if self.verify is not None and not self.verify(headers, method, url):
            return "InvalidSignature"
        return None

    def answer(self, method: str, path: str, headers: Mapping[str, str],
               url: str) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.requests.append(Seen(method, path, dict(headers)))
            page = self.pages.get(path.split("?")[0])
            if path in self.static:
                status, ctype, body = self.static[path]
                return status, {"Content-Type": ctype}, body
            if page is None:
                return 200, {"Content-Type": "text/html"}, b"<html><body>free</body></html>"
            return self._priced(page, method, path, headers, url)

    def _priced(self, page: PricedPage, method: str, path: str, headers: Mapping[str, str],
                url: str) -> tuple[int, dict[str, str], bytes]:
        def err(status: int, name: str, **extra: str) -> tuple[int, dict[str, str], bytes]:
            return status, {"crawler-error": name, **extra}, b""

        exact, maxp = headers.get("crawler-exact-price"), headers.get("crawler-max-price")
        if page.signed_only or ((exact or maxp) and (self.require_signature or self.verify)):
            problem = self._signed(headers, method, url)
            if problem is not None:
                return err(400, problem)
        if page.forbidden:
            return err(403, "CrawlerForbidden")
        if page.internal_errors > 0:
            page.internal_errors -= 1
            return err(500, "InternalError")
        if page.invalid_content_price:
            return err(502, "InvalidContentPrice")
        quote = page.quote if page.quote is not None else page.price
        if exact is not None and maxp is not None:
            return err(400, "ConflictingPriceHeaders")
        if exact is None and maxp is None:
            return 402, {"crawler-price": quote}, b""
        if page.paid_error is not None:
            return err(*page.paid_error)
        offered = _price(exact if exact is not None else maxp or "")
        if offered is None:
            return err(400, "InvalidCrawlerPriceValue")
        price = _price(page.price)
        assert price is not None, f"test page price {page.price!r} is malformed"
        if exact is not None and offered != price:
            return err(402, "InvalidCrawlerExactPrice", **{"crawler-price": quote})
        if maxp is not None and (offered[0] != price[0] or offered[1] < price[1]):
            return err(402, "InvalidCrawlerMaxPrice", **{"crawler-price": quote})
        if page.payment_fails:
            return err(403, "PaymentFailed")
        charged = page.charge if page.charge is not None else page.price
        self.charges.append(Charge(path, charged, "crawler-exact-price" if exact is not None
                                   else "crawler-max-price"))
        return 200, {"Content-Type": "text/html", "crawler-charged": charged}, page.body
