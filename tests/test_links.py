"""The corpus spider's faster page reading gives what Scrapy's slower calls give.

* :func:`crawler.crawl.links.link_urls` == ``[l.url for l in LinkExtractor().extract_links(r)]`` on
  generated pages with every kind of link (relative, absolute, ``<base href>``, fragments,
  ``javascript:``, ``mailto:``, denied extensions, unicode, percent-escapes, whitespace, dot
  segments, other hosts and ports, XHTML) under several page URLs and encodings, and on the
  real HTML pages of ``tests/data`` and the demo sites;
* the title and visible text (compiled XPath) == ``response.css("title::text")`` /
  ``response.xpath(...).getall()``;
* a corpus line (:func:`crawler.crawl.pipelines.json_line`) == ``json.dumps(item, ensure_ascii=False,
  sort_keys=True)``;
* a URL ``check --from-file`` decides in place is the URL its request would carry.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from scrapy.http import HtmlResponse, XmlResponse
from scrapy.linkextractors import LinkExtractor

from crawler.crawl.links import link_urls
from crawler.crawl.pipelines import json_line
from crawler.spiders.corpus import _title, _visible_text

DATA = Path(__file__).parent / "data"
EXTRACTOR = LinkExtractor()

HREFS = [
    "/p/1.html", "/p/1.html", "/", "/a/b/c", "/A-Z_09~x.html", "/img/photo.JPG", "/doc.pdf",
    "/archive.tar.gz", "/x.jpg?size=2", "/song.mp3#t=3", "/style.css", "/data.json",
    "page.html", "./page.html", "../up.html", "../../../../top", "sub/dir/", "?q=1", "?",
    "#top", "#", "", " ", "  /spaced.html \n", "\t/tab.html", "/a b.html", "/a%20b.html",
    "/a%2Fb", "/%zz/bad", "/%E2%9C%93", "/caf\u00e9/menu", "/\u65e5\u672c/\u8a9e?x=\u00e9",
    "/a/./b", "/a/../b", "/a//b", "//other.example/x", "//other.example:8080/y?z#w",
    "http://other.example/abs", "HTTP://Other.Example/UP", "https://example.com:443/x",
    "https://example.com:444/x", "http://user:pw@example.com/x", "http://[::1]:80/v6",
    "http://xn--caf-dma.example/idn", "http://caf\u00e9.example/idn2", "ftp://files.example/f",
    "file:///etc/passwd", "javascript:void(0)", "JavaScript:alert(1)", "mailto:a@b.example",
    "tel:+123", "data:text/html,hi", "about:blank", "/a;param=1/b", "/a:b", "/.hidden/x",
    "/x/.", "/x/..", "\\back\\slash", "/a\\b", "/~user/", "/%7Euser/", "/q?a=1&b=2",
    "/q?a=\u00e9&b=%C3%A9", "/#frag", "/path/#", "http://example.com", "http://example.com?x",
    "http://EXAMPLE.com./trailing-dot", "/a'b", "/a\"b", "/a<b>", "/a{b}|c^d`e",
    "/ends-with-dot.", "/x.HTML", "/x.Html?y", "/dir.jpg/page", "http://exa mple.com/bad host",
    "http://example.com:99999/bad-port", "http://[bad/ipv6", "//", "///triple",
]

PAGE_URLS = ["http://example.com/dir/page.html", "https://example.com/",
             "http://Example.COM:8080/a/b/?x=1#f", "http://127.0.0.1:8711/p/3.html",
             "http://example.com/caf%C3%A9/", "http://example.com"]
BASES = [None, "http://base.example/root/", "/other/", "../rel/", "https://example.com/b/c",
         "  http://spaced.example/  "]


def _page(hrefs: list[str], base: str | None, rng: random.Random) -> str:
    links = []
    for href in hrefs:
        quote = rng.choice(['"', "'"])
        href = href.replace("&", "&amp;") if rng.random() < 0.5 else href
        tag = rng.choice(["a", "a", "A", "area"])
        extra = rng.choice(["", ' rel="nofollow"', ' title="t"', ' class="x"'])
        if quote in href:
            quote = "'" if quote == '"' else '"'
        links.append(f"<{tag}{extra} href={quote}{href}{quote}>link {rng.randint(0, 9)}</{tag}>")
    rng.shuffle(links)
    head = f'<base href="{base}">' if base is not None else ""
    return ("<!DOCTYPE html><html><head><title> T\u00eftle </title>" + head
            + '<link href="/not-a-link.css" rel="stylesheet"></head><body><p>x</p>'
            + "<a>no href</a><a name=\"anchor\"></a>" + "\n".join(links)
            + "<svg><a href=\"/in-svg\">s</a></svg><script>var a = '<a href=\"/in-script\">'"
            "</script><noscript><a href=\"/in-noscript\">n</a></noscript></body></html>")


def _same(response) -> list[str]:
    want = [link.url for link in EXTRACTOR.extract_links(response)]
    got = link_urls(response)
    assert got == want, (response.url, [x for x in got if x not in want],
                         [x for x in want if x not in got])
    return got


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1", "cp1251"])
def test_generated_pages_with_every_kind_of_link(encoding):
    rng = random.Random(encoding)
    found = 0
    for page_url in PAGE_URLS:
        for base in BASES:
            hrefs = rng.sample(HREFS, k=len(HREFS) // 2) + HREFS[:6]
            body = _page(hrefs, base, rng).encode(encoding, "xmlcharrefreplace")
            response = HtmlResponse(page_url, body=body, encoding=encoding)
            found += len(_same(response))
    assert found > 500


def test_every_href_alone_under_every_base():
    for page_url in PAGE_URLS:
        for base in BASES:
            for href in HREFS:
                body = _page([href], base, random.Random(0)).encode()
                _same(HtmlResponse(page_url, body=body, encoding="utf-8"))


def test_random_hrefs():
    rng = random.Random(5)
    pieces = ["/", "a", "B", "0", "-", "_", ".", "..", "~", "%", "%41", "?", "#", "&", "=",
              ";", ":", "@", " ", "\u00e9", "\\", "//", "x.jpg", ".html", "+", "'", "(", "*"]
    for i in range(300):
        hrefs = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))
                 for _ in range(10)]
        page_url = rng.choice(PAGE_URLS)
        body = _page(hrefs, rng.choice(BASES[:3]), rng).encode()
        _same(HtmlResponse(page_url, body=body, encoding="utf-8"))


def test_xhtml_with_a_namespace():
    body = ('<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><head><title>X'
            '</title></head><body><a href="/x.html">x</a><area href="/y.html"/>'
            '<a href="z.png">z</a></body></html>').encode()
    response = XmlResponse("http://example.com/d/", body=body)
    assert _same(response) == ["http://example.com/x.html", "http://example.com/y.html"]
    assert _title(response) == (response.css("title::text").get() or "").strip()


def _real_pages() -> list[tuple[str, bytes]]:
    manifest = json.loads((DATA / "real_robots" / "manifest.json").read_text())
    pages = [(f["fetched_url"] if f.get("fetched_url") else f"https://{f['host']}/robots.txt",
              (DATA / "real_robots" / f["file"]).read_bytes())
             for f in manifest["files"] if f["kind"] == "html"]
    pages += [("http://example.org/spec.html", p.read_bytes())
              for p in (DATA / "tdmrep_examples" / "spec").glob("*.html")]
    from crawler.demo.sites import demo_sites

    for i, site in enumerate(demo_sites()):
        for path, page in site.pages.items():
            if "html" in page.content_type:
                pages.append((f"http://127.0.0.1:{8711 + i}{path}", page.payload()))
    return pages


def test_real_pages():
    pages = _real_pages()
    assert len(pages) >= 27
    total = 0
    for url, body in pages:
        response = HtmlResponse(url, body=body)
        total += len(_same(response))
        assert _title(response) == (response.css("title::text").get() or "").strip()
        parts = response.xpath(
            "//body//text()[not(ancestor::script) and not(ancestor::style)"
            " and not(ancestor::noscript)]").getall()
        assert _visible_text(response) == " ".join(" ".join(p.split()) for p in parts
                                                   if p.strip())
    assert total > 300


def test_corpus_lines_are_json_dumps_bytes():
    rng = random.Random(11)
    alphabet = 'ab"\\\n\t\x00\x1f\x7f \u00e9\u65e5\U0001f600\u2028:,{}'

    def text():
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))

    for _ in range(5000):
        item = {text(): rng.choice([text(), rng.randint(-2**70, 2**70), True, False, None,
                                    1.5, 1e-7, [1, "a"], {"x": text()}])
                for _ in range(rng.randint(0, 8))}
        want = (json.dumps(item, ensure_ascii=False, sort_keys=True) + "\n").encode()
        assert json_line(item) == want


def test_plain_urls_are_what_requests_carry():
    """``check --from-file`` decides a URL in place only when ``plain_url`` says that
    ``Request(url).url`` is the URL as written: checked on generated URLs of every kind."""
    from scrapy import Request

    from crawler.crawl.meta import origin_of, plain_url

    rng = random.Random(21)
    hosts = ["127.0.0.1", "127.1.2.3:8080", "example.com", "Example.com", "a-b.example:80",
             "xn--caf-dma.example", "caf\u00e9.example", "[::1]:8080", "user@h.example",
             "h.example:", "h.example:0080", "h.example.", "1.2.3", "h_x.example"]
    pieces = ["a", "Z", "0", "-", ".", "_", "~", "/", "//", "%", "%41", "?", "#", "&", "=",
              ";", ":", "@", "!", "$", "'", "(", "*", "+", ",", " ", "\u00e9", "\\", "[", "|"]
    plain = 0
    for _ in range(20000):
        path = "/" + "".join(rng.choice(pieces) for _ in range(rng.randint(0, 10)))
        url = f"{rng.choice(['http', 'https', 'HTTP', 'ftp'])}://{rng.choice(hosts)}{path}"
        got = plain_url(url)
        if got is None:
            continue
        plain += 1
        request = Request(url)
        assert request.url == url, url
        assert got[0] == origin_of(request), url
    assert plain > 500
