"""The demo web's sites: one reservation case each.

Every page that a reservation covers carries a ``SECRET-`` marker in its body, so a test (or a
curious user) can check that no refused text reached the output directory.
"""

from __future__ import annotations

from crawler.demo.web import Page, Site

DEMO_TOKEN = "PoliteDemoBot"
DEMO_PORTS = {
    "open": 8711,
    "robots-partial": 8712,
    "robots-ai-block": 8713,
    "robots-5xx": 8714,
    "robots-404": 8715,
    "tdm-file": 8716,
    "tdm-header": 8717,
    "tdm-meta": 8718,
}
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


def demo_sites() -> list[Site]:
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
    return s
