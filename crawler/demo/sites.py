"""The demo web's sites: one reservation case each.

Every page that a reservation covers carries a ``SECRET-`` marker in its body, so a test (or a
curious user) can check that no refused text reached the output directory.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from crawler.demo.web import Page, Site

DEMO_TOKEN = "PoliteDemoBot"
#: the demo crawler's Signature-Agent (where its key directory would be published); the demo
#: sites are given the directory itself, so nothing is fetched from it
DEMO_SIGNATURE_AGENT = "https://politedemobot.example"
DEMO_PORTS = {
    "open": 8711,
    "robots-partial": 8712,
    "robots-ai-block": 8713,
    "robots-5xx": 8714,
    "robots-404": 8715,
    "tdm-file": 8716,
    "tdm-header": 8717,
    "tdm-meta": 8718,
    "noai-header": 8719,
    "noai-meta": 8720,
    "ai-txt": 8721,
    "content-usage": 8722,
    "content-signal": 8723,
    "rsl": 8724,
    "pay-per-crawl": 8725,
    "web-bot-auth": 8726,
}
#: the demo job's pay-per-crawl limits (what `polite-crawl demo` configures)
DEMO_PAYMENT = {"max_price": "USD 0.01", "budget": "USD 0.05", "per_origin_budget": "USD 0.02"}
#: A body bigger than any socket buffer: stopping at the headers provably leaves it unsent.
BIG = 4 * 1024 * 1024


def html(title: str, body: str, head: str = "") -> str:
    return (f"<!DOCTYPE html><html><head><title>{title}</title>{head}</head>"
            f"<body><h1>{title}</h1>{body}</body></html>")


def _links(*paths: str) -> str:
    return "<ul>" + "".join(f'<li><a href="{p}">{p}</a></li>' for p in paths) + "</ul>"


def _txt(text: str, status: int = 200) -> Page:
    return Page(text, status=status, content_type="text/plain; charset=utf-8")


def _secret(site: str, path: str) -> str:
    return f"SECRET-{site}-{path.strip('/').replace('/', '-')}"


def demo_sites(verify: Any = None) -> list[Site]:
    """The demo web. ``verify(method, url, headers)`` -> None when the request carries a
    verified Web Bot Auth signature, else why not (e.g.
    :meth:`crawler.demo.webbotauth.WebBotAuthVerifier.verify` for the demo key); without it
    the signature-checking sites verify nothing (every signed page is refused)."""
    s: list[Site] = []

    s.append(Site("open", "no reservation at all: everything is collected", {
        "/robots.txt": _txt("User-agent: *\nAllow: /\n"),
        "/": Page(html("Open site", "Free to mine. " + _links("/a.html", "/b.html", "/notes.txt"))),
        "/a.html": Page(html("Page A", "Public text A.")),
        "/b.html": Page(html("Page B", "Public text B. " + _links("/"))),
        "/notes.txt": _txt("Plain text notes, free to mine.\n"),
    }))

    s.append(Site("robots-partial", f"robots.txt disallows /private/ for {DEMO_TOKEN} and "
                  "asks for a crawl delay", {
        "/robots.txt": _txt(f"User-agent: *\nDisallow: /\n\nUser-agent: {DEMO_TOKEN}\n"
                            "Disallow: /private/\nCrawl-delay: 0.2\n"),
        "/": Page(html("Partly private", _links("/public.html", "/private/diary.html"))),
        "/public.html": Page(html("Public", "Anyone may read this.")),
        "/private/diary.html": Page(html("Diary", _secret("robots-partial", "/private/diary"))),
    }))

    s.append(Site("robots-ai-block", "robots.txt blocks GPTBot (named in honor_agents); "
                  "the * group allows all", {
        "/robots.txt": _txt("User-agent: GPTBot\nDisallow: /\n\nUser-agent: *\nAllow: /\n"),
        "/": Page(html("AI-blocking site", _secret("robots-ai-block", "/index")
                       + _links("/article.html"))),
        "/article.html": Page(html("Article", _secret("robots-ai-block", "/article"))),
    }))

    s.append(Site("robots-5xx", "robots.txt answers 503: reservations unknown, nothing "
                  "is fetched (fail closed)", {
        "/robots.txt": _txt("Service unavailable", status=503),
        "/": Page(html("Down robots", _secret("robots-5xx", "/index"))),
    }))

    s.append(Site("robots-404", "robots.txt is missing (404): no restrictions", {
        "/": Page(html("No robots.txt", "Collected. " + _links("/page.html"))),
        "/page.html": Page(html("Page", "Also collected.")),
    }))

    s.append(Site("tdm-file", "/.well-known/tdmrep.json reserves /reserved/ (and leaves the "
                  "rest unreserved)", {
        "/.well-known/tdmrep.json": Page(
            '[{"location": "/reserved/", "tdm-reservation": 1, '
            '"tdm-policy": "https://example.org/policies/tdm.json"},\n'
            ' {"location": "/", "tdm-reservation": 0}]\n',
            content_type="application/json"),
        "/robots.txt": _txt("User-agent: *\nAllow: /\n"),
        "/": Page(html("TDMRep file", _links("/free.html", "/reserved/novel.html"))),
        "/free.html": Page(html("Free", "Mining allowed here.")),
        "/reserved/novel.html": Page(html("Novel", _secret("tdm-file", "/reserved/novel"))),
    }))

    big_secret = _secret("tdm-header", "/header-reserved") + " " + "x" * BIG
    s.append(Site("tdm-header", "a page sends the tdm-reservation: 1 header: cut off at the "
                  "headers, its body never downloaded", {
        "/robots.txt": _txt("User-agent: *\nAllow: /\n"),
        "/": Page(html("TDMRep header", _links("/ok.html", "/header-reserved.html"))),
        "/ok.html": Page(html("OK", "No reservation here."),
                         headers=(("tdm-reservation", "0"),)),
        "/header-reserved.html": Page(
            html("Reserved by header", big_secret),
            headers=(("tdm-reservation", "1"),
                     ("tdm-policy", "https://example.org/policies/tdm.json")),
            body_delay=0.3),
    }))

    s.append(Site("tdm-meta", "a page carries <meta name=\"tdm-reservation\" content=\"1\">: "
                  "refused before any item is produced", {
        "/robots.txt": _txt("User-agent: *\nAllow: /\n"),
        "/": Page(html("TDMRep meta", _links("/meta-free.html", "/meta-reserved.html"))),
        "/meta-free.html": Page(html("Free", "Nothing reserved.")),
        "/meta-reserved.html": Page(html(
            "Reserved by meta", _secret("tdm-meta", "/meta-reserved"),
            head='<meta name="tdm-reservation" content="1">')),
    }))

    robots_ok = _txt("User-agent: *\nAllow: /\n")
    s.append(Site("noai-header", "X-Robots-Tag: noai (ours) and scoped to another bot", {
        "/robots.txt": robots_ok,
        "/": Page(html("noai header", _links("/noai.html", "/otherbot.html", "/photo",
                                             "/page-noimageai.html"))),
        "/noai.html": Page(html("noai", _secret("noai-header", "/noai")),
                           headers=(("X-Robots-Tag", "noai"),)),
        "/otherbot.html": Page(html("otherbot", "Only otherbot is asked not to use this."),
                               headers=(("X-Robots-Tag", "otherbot: noai"),)),
        "/photo": Page(b"\xff\xd8\xff SECRET-noai-header-photo", content_type="image/jpeg",
                           headers=(("X-Robots-Tag", "noimageai"),)),
        "/page-noimageai.html": Page(html("text page", "noimageai covers images only."),
                                     headers=(("X-Robots-Tag", "noimageai"),)),
    }))

    s.append(Site("noai-meta", "<meta name=\"robots\" content=\"noai\"> and a meta for our "
                  "token", {
        "/robots.txt": robots_ok,
        "/": Page(html("noai meta", _links("/robots-meta.html", "/token-meta.html",
                                           "/noindex.html"))),
        "/robots-meta.html": Page(html("robots meta", _secret("noai-meta", "/robots-meta"),
                                       head='<meta name="robots" content="noai, noimageai">')),
        "/token-meta.html": Page(html("token meta", _secret("noai-meta", "/token-meta"),
                                      head=f'<meta name="{DEMO_TOKEN}" content="NoAI">')),
        "/noindex.html": Page(html("noindex", "noindex is not an AI signal.",
                                   head='<meta name="robots" content="noindex">')),
    }))

    s.append(Site("ai-txt", "Spawning /ai.txt disallows *.txt and /gallery/", {
        "/robots.txt": robots_ok,
        "/ai.txt": _txt("# Spawning AI\n# Prevent datasets from using the following file "
                        "types\n\nUser-Agent: *\nDisallow: *.txt\nDisallow: /gallery/\n"),
        "/": Page(html("ai.txt", _links("/essay.html", "/notes.txt", "/gallery/a.html"))),
        "/essay.html": Page(html("essay", "ai.txt does not cover HTML here.")),
        "/notes.txt": _txt(_secret("ai-txt", "/notes")),
        "/gallery/a.html": Page(html("gallery", _secret("ai-txt", "/gallery/a"))),
    }))

    s.append(Site("content-usage", "IETF AI preferences: robots.txt Content-Usage for "
                  "/novels/, and a Content-Usage header", {
        "/robots.txt": _txt("User-agent: *\nAllow: /\nContent-Usage: /novels/ train-ai=n\n"
                            "Content-Usage: search=y\n"),
        "/": Page(html("content usage", _links("/novels/one.html", "/header.html",
                                               "/blog.html"))),
        "/novels/one.html": Page(html("novel", _secret("content-usage", "/novels/one"))),
        "/header.html": Page(html("header", _secret("content-usage", "/header")),
                             headers=(("Content-Usage", "train-ai=n, search=y"),)),
        "/blog.html": Page(html("blog", "No preference about training here.")),
    }))

    s.append(Site("content-signal", "Cloudflare Content-Signal in robots.txt: search=yes, "
                  "ai-train=no (binds train-ai, not search)", {
        "/robots.txt": _txt("# As a condition of accessing this website...\nUser-Agent: *\n"
                            "Content-Signal: search=yes, ai-train=no\nAllow: /\n"),
        "/": Page(html("content signal", _secret("content-signal", "/index")
                       + _links("/news.html"))),
        "/news.html": Page(html("news", _secret("content-signal", "/news"))),
    }))

    s.append(Site("rsl", "RSL licence named in robots.txt prohibits ai-train under /premium/; "
                  "a Link header names a page licence", {
        "/robots.txt": _txt("License: /license.xml\n\nUser-agent: *\nAllow: /\n"),
        "/license.xml": Page(RSL_SITE, content_type="application/rsl+xml"),
        "/page-license.xml": Page(RSL_PAGE, content_type="application/rsl+xml"),
        "/": Page(html("rsl", _links("/free.html", "/premium/story.html", "/linked.html"))),
        "/free.html": Page(html("free", "Licensed for every use, free.")),
        "/premium/story.html": Page(html("premium", _secret("rsl", "/premium/story"))),
        "/linked.html": Page(html("linked", _secret("rsl", "/linked")), headers=(
            ("Link", '</page-license.xml>; rel="license"; type="application/rsl+xml"'),)),
    }))

    s.append(Site("pay-per-crawl", "pay per crawl: HTTP 402 with crawler-price; a page paid "
                  "within the budget, one over max_price, and a 403 CrawlerForbidden", {
        "/robots.txt": robots_ok,
        "/": Page(html("pay per crawl", _links("/paid.html", "/expensive.html"))),
        # what a paid request gets (a crawler that does not pay gets the 402 instead)
        "/paid.html": Page(html("paid article", "Licensed for this crawl, paid per page. "
                                + _links("/forbidden.html"))),
        "/expensive.html": Page(html("expensive", _secret("pay-per-crawl", "/expensive"))),
        "/forbidden.html": Page(html("403", _secret("pay-per-crawl", "/forbidden")),
                                status=403, headers=(("crawler-error", "CrawlerForbidden"),)),
    }, responder=pay_per_crawl({"/paid.html": "USD 0.01", "/expensive.html": "USD 0.50"},
                               verify)))

    s.append(Site("web-bot-auth", "answers 200 only to requests with a verified Web Bot Auth "
                  "signature (the others get 401)", {
        "/robots.txt": robots_ok,
        "/": Page(html("members only", "Verified bots welcome. " + _links("/members.html"))),
        "/members.html": Page(html("members", "Only for verified crawlers.")),
    }, responder=signed_only(verify)))
    return s


def _price(text: str | None) -> tuple[str, Decimal] | None:
    parts = (text or "").strip().split(" ")
    if len(parts) != 2 or len(parts[0]) != 3:
        return None
    try:
        return parts[0], Decimal(parts[1])
    except InvalidOperation:
        return None


def _error(status: int, name: str, *extra: tuple[str, str]) -> Page:
    return Page(b"", status=status, content_type="text/plain",
                headers=(("crawler-error", name), *extra))


def pay_per_crawl(prices: dict[str, str], verify: Any) -> Callable[..., Page | None]:
    """A site's side of Cloudflare's pay per crawl (protocols.md §8.5) for the paths in
    ``prices``: 402 + ``crawler-price`` to an unpaid request; a paid one (one price header,
    from a verified bot) gets the page with ``crawler-charged``; the documented errors else."""

    def respond(method: str, path: str, headers: dict[str, str], url: str,
                page: Page) -> Page | None:
        price_text = prices.get(path.split("?")[0])
        if price_text is None:
            return None
        h = {k.lower(): v for k, v in headers.items()}
        exact, maxp = h.get("crawler-exact-price"), h.get("crawler-max-price")
        if exact is not None and maxp is not None:
            return _error(400, "ConflictingPriceHeaders")
        if exact is None and maxp is None:
            return Page(html("402", "Payment required."), status=402,
                        headers=(("crawler-price", price_text),))
        problem = verify(method, url, headers) if verify is not None else "no key directory"
        if problem is not None:
            return _error(400, "StrongAuthRequired" if problem == "not signed"
                          else "InvalidSignature")
        offered, price = _price(exact if exact is not None else maxp), _price(price_text)
        if offered is None or price is None:
            return _error(400, "InvalidCrawlerPriceValue")
        if exact is not None and offered != price:
            return _error(402, "InvalidCrawlerExactPrice", ("crawler-price", price_text))
        if maxp is not None and (offered[0] != price[0] or offered[1] < price[1]):
            return _error(402, "InvalidCrawlerMaxPrice", ("crawler-price", price_text))
        return Page(page.body, status=page.status, content_type=page.content_type,
                    headers=(*page.headers, ("crawler-charged", price_text)))

    return respond


def signed_only(verify: Any) -> Callable[..., Page | None]:
    """Every path but robots.txt answered only to a verified Web Bot Auth signature (401
    otherwise, saying why)."""

    def respond(method: str, path: str, headers: dict[str, str], url: str,
                page: Page) -> Page | None:
        if path == "/robots.txt":
            return None
        problem = verify(method, url, headers) if verify is not None else "no key directory"
        if problem is None:
            return None
        return Page(f"signature required: {problem}\n", status=401, content_type="text/plain",
                    headers=(("WWW-Authenticate", 'Signature realm="web-bot-auth"'),))

    return respond


RSL_SITE = """<?xml version="1.0" encoding="UTF-8"?>
<rsl xmlns="https://rslstandard.org/rsl">
  <content url="/premium/">
    <license>
      <permits type="usage">search</permits>
      <prohibits type="usage">ai-train ai-input</prohibits>
    </license>
  </content>
  <content url="/">
    <license>
      <permits type="usage">all</permits>
      <payment type="free"/>
    </license>
  </content>
</rsl>
"""

RSL_PAGE = """<?xml version="1.0" encoding="UTF-8"?>
<rsl xmlns="https://rslstandard.org/rsl">
  <content url="/linked.html">
    <license>
      <prohibits type="usage">ai-all</prohibits>
    </license>
  </content>
</rsl>
"""
