"""crawler.corpus.sitemaps: formats, limits, the location rule, the walk; Scrapy's vectors compared."""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
import zlib

import pytest

from crawler.corpus.sitemap_reader import (
    MAX_BYTES,
    MAX_URLS,
    SitemapSource,
    location_problem,
    parse_sitemap,
)
from crawler.corpus.sitemaps import SitemapLimits, SitemapWalk, sitemap_config
from crawler.optout.robots import parse_robots

SM = "http://www.example.com/sitemap.xml"


def locs(f):
    return [e.loc for e in (f.sitemaps if f.kind == "sitemapindex" else f.urls)]


def gz(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as g:
        g.write(data)
    return buf.getvalue()


def urlset(*urls: str, ns: str = "http://www.sitemaps.org/schemas/sitemap/0.9") -> bytes:
    body = "".join(f"<url><loc>{u}</loc></url>" for u in urls)
    return (f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="{ns}">{body}</urlset>'
            ).encode()


# --- Scrapy's vectors ----------------------------------------------------------------------
# Ported from scrapy/scrapy at 11079cb1c85b9e75a39a7269943c69d1a975d485 (BSD-3-Clause,
# Copyright (c) Scrapy developers): tests/test_utils_sitemap.py (test_* named in each row)
# and tests/test_spider_sitemap.py.  Each row: Scrapy's input, Scrapy's answer (the locs
# ``Sitemap`` yields), ours, and why they differ where they do.

SCRAPY_SITEMAP = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.google.com/schemas/sitemap/0.84">
<url>
<loc>http://www.example.com/</loc>
<lastmod>2009-08-16</lastmod>
<changefreq>daily</changefreq>
<priority>1</priority>
</url>
<url>
<loc>http://www.example.com/Special-Offers.html</loc>
<lastmod>2009-08-16</lastmod>
<changefreq>weekly</changefreq>
<priority>0.8</priority>
</url>
</urlset>"""

SCRAPY_INDEX = b"""<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<sitemap>
  <loc>http://www.example.com/sitemap1.xml.gz</loc>
  <lastmod>2004-10-01T18:23:17+00:00</lastmod>
</sitemap>
<sitemap>
  <loc>http://www.example.com/sitemap2.xml.gz</loc>
  <lastmod>2005-01-01</lastmod>
</sitemap>
</sitemapindex>"""

SCRAPY_STRIP = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.google.com/schemas/sitemap/0.84">
<url>
<loc> http://www.example.com/</loc>
<lastmod>2009-08-16</lastmod>
<changefreq>daily</changefreq>
<priority>1</priority>
</url>
<url>
<loc> http://www.example.com/2</loc>
<lastmod />
</url>
</urlset>
"""

SCRAPY_WRONG_NS = SCRAPY_STRIP.replace(b"<url>", b'<url xmlns="">')
SCRAPY_WRONG_NS2 = SCRAPY_WRONG_NS.replace(
    b'<urlset xmlns="http://www.google.com/schemas/sitemap/0.84">', b"<urlset>")

SCRAPY_BLANKLINES = b"""
<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">

<!-- cache: cached = yes name = sitemap_jspCache key = sitemap -->
<sitemap>
<loc>http://www.example.com/sitemap1.xml</loc>
<lastmod>2013-07-15</lastmod>
</sitemap>

<sitemap>
<loc>http://www.example.com/sitemap2.xml</loc>
<lastmod>2013-07-15</lastmod>
</sitemap>

<sitemap>
<loc>http://www.example.com/sitemap3.xml</loc>
<lastmod>2013-07-15</lastmod>
</sitemap>

<!-- end cache -->
</sitemapindex>
"""

SCRAPY_COMMENT = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
    xmlns:xhtml="http://www.w3.org/1999/xhtml">
    <url>
        <loc>http://www.example.com/</loc>
        <!-- this is a comment on which the parser might raise an exception \
if implemented incorrectly -->
    </url>
</urlset>"""

SCRAPY_ALTERNATE = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
    xmlns:xhtml="http://www.w3.org/1999/xhtml">
    <url>
        <loc>http://www.example.com/english/</loc>
        <xhtml:link rel="alternate" hreflang="de"
            href="http://www.example.com/deutsch/"/>
        <xhtml:link rel="alternate" hreflang="de-ch"
            href="http://www.example.com/schweiz-deutsch/"/>
        <xhtml:link rel="alternate" hreflang="en"
            href="http://www.example.com/english/"/>
        <xhtml:link rel="alternate" hreflang="en"/><!-- wrong tag without href -->
    </url>
</urlset>"""

SCRAPY_XXE = b"""<?xml version="1.0" encoding="utf-8"?>
      <!DOCTYPE foo [
      <!ELEMENT foo ANY >
      <!ENTITY xxe SYSTEM "file:///etc/passwd" >
      ]>
      <urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
        <url>
          <loc>http://127.0.0.1:8000/&xxe;</loc>
        </url>
      </urlset>
    """

SCRAPY_NOT_SITEMAP = b"""<?xml version="1.0" encoding="UTF-8"?>
    <some attr="string">
        <tag><tag3>sometext</tag3></tag>
        <tag2><tag4>sometext2</tag4></tag2>
    </some>"""

SCRAPY_EMPTY_LOC = (b'<?xml version="1.0" encoding="UTF-8"?>'
                    b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
                    b"<url><loc></loc></url>"
                    b"<url><loc>http://www.example.com/text</loc></url>"
                    b"</urlset>")

E = "http://www.example.com/"
SCRAPY_VECTORS = [
    # (scrapy test, body, sitemap URL, Scrapy's type and locs, our kind and locs, difference)
    ("test_sitemap", SCRAPY_SITEMAP, SM, "urlset", [E, E + "Special-Offers.html"],
     "urlset", [E, E + "Special-Offers.html"], None),
    ("test_sitemap_index", SCRAPY_INDEX, SM, "sitemapindex",
     [E + "sitemap1.xml.gz", E + "sitemap2.xml.gz"], "sitemapindex",
     [E + "sitemap1.xml.gz", E + "sitemap2.xml.gz"], None),
    ("test_sitemap_strip", SCRAPY_STRIP, SM, "urlset", [E, E + "2"], "urlset", [E, E + "2"],
     None),
    ("test_sitemap_wrong_ns", SCRAPY_WRONG_NS, SM, "urlset", [E, E + "2"], "urlset",
     [E, E + "2"], None),
    ("test_sitemap_wrong_ns2", SCRAPY_WRONG_NS2, SM, "urlset", [E, E + "2"], "urlset",
     [E, E + "2"], None),
    ("test_sitemap_blanklines", SCRAPY_BLANKLINES, SM, "sitemapindex",
     [E + "sitemap1.xml", E + "sitemap2.xml", E + "sitemap3.xml"], "sitemapindex",
     [E + "sitemap1.xml", E + "sitemap2.xml", E + "sitemap3.xml"], None),
    ("test_comment", SCRAPY_COMMENT, SM, "urlset", [E], "urlset", [E], None),
    ("test_alternate", SCRAPY_ALTERNATE, SM, "urlset", [E + "english/"], "urlset",
     [E + "english/"], None),
    ("test_xml_entity_expansion", SCRAPY_XXE, "http://127.0.0.1:8000/sitemap.xml", "urlset",
     ["http://127.0.0.1:8000/"], "", [],
     "a DOCTYPE refuses the file: the entity Scrapy drops changed the URL listed"),
    ("test_sitemap_non_string_tag", b"<url>&k;", SM, "url", [], "", [],
     "same URLs; our kind says it is no sitemap"),
    # tests/test_spider_sitemap.py
    ("test_parse_sitemap_empty_body", b"", SM, None, [], "", [], None),
    ("test_parse_sitemap_not_sitemap", SCRAPY_NOT_SITEMAP, "http://www.example.com/random.xml",
     "some", [], "", [], None),
    ("test_sitemap_empty_loc", SCRAPY_EMPTY_LOC, SM, "urlset", [E + "text"], "urlset",
     [E + "text"], None),
]


@pytest.mark.parametrize("name,body,url,scrapy_type,scrapy_locs,kind,ours,why", SCRAPY_VECTORS,
                         ids=[v[0] for v in SCRAPY_VECTORS])
def test_scrapy_vectors(name, body, url, scrapy_type, scrapy_locs, kind, ours, why):
    f = parse_sitemap(body, url)
    assert f.kind == kind
    assert locs(f) == ours
    assert (ours == scrapy_locs) == (why is None or why.startswith("same URLs")), why


def test_scrapy_vectors_agree_with_scrapy_itself():
    """The table's Scrapy column is what Scrapy (installed here) answers today."""
    from scrapy.utils.sitemap import Sitemap

    for name, body, _url, scrapy_type, scrapy_locs, *_ in SCRAPY_VECTORS:
        if not body:
            continue
        s = Sitemap(body)
        assert s.type == scrapy_type, name
        assert [d["loc"] for d in s if d.get("loc")] == scrapy_locs, name


def test_scrapy_fields_and_alternates():
    f = parse_sitemap(SCRAPY_SITEMAP, SM)
    assert (f.urls[0].lastmod, f.urls[0].changefreq, f.urls[0].priority) == (
        "2009-08-16", "daily", "1")
    index = parse_sitemap(SCRAPY_INDEX, SM)
    assert [e.lastmod for e in index.sitemaps] == ["2004-10-01T18:23:17+00:00", "2005-01-01"]
    alt = parse_sitemap(SCRAPY_ALTERNATE, SM)
    assert alt.urls[0].alternates == (E + "deutsch/", E + "schweiz-deutsch/", E + "english/")
    strip = parse_sitemap(SCRAPY_STRIP, SM)
    assert strip.urls[1].lastmod is None  # Scrapy: "" for <lastmod />
    assert parse_sitemap(SCRAPY_WRONG_NS2, SM).problems  # no namespace: noted
    assert not parse_sitemap(SCRAPY_SITEMAP, SM).problems  # Google's 0.84 namespace is fine
    empty = parse_sitemap(SCRAPY_EMPTY_LOC, SM)
    assert empty.dropped == 1 and any("empty location" in p for p in empty.problems)


SCRAPY_ROBOTS = b"""User-agent: *
Disallow: /aff/
Disallow: /wl/

# Search and shopping refining
Disallow: /s*/*facet
Disallow: /s*/*tags

# Sitemap files
Sitemap: http://example.com/sitemap.xml
Sitemap: http://example.com/sitemap-product-index.xml
Sitemap: HTTP://example.com/sitemap-uppercase.xml
Sitemap: /sitemap-relative-url.xml

# Forums
Disallow: /forum/search/
Disallow: /forum/active/
"""


def test_scrapy_sitemap_urls_from_robots():
    """test_sitemap_urls_from_robots / test_get_sitemap_urls_from_robotstxt: the same URLs."""
    walk = SitemapWalk("http://example.com")
    walk.add_from_robots("http://example.com/robots.txt", parse_robots(SCRAPY_ROBOTS).sitemaps)
    assert [s.url for s in walk.queue] == [
        "http://example.com/sitemap.xml",
        "http://example.com/sitemap-product-index.xml",
        "http://example.com/sitemap-uppercase.xml",
        "http://example.com/sitemap-relative-url.xml",
    ]
    assert all(s.vouched_by == ("http://example.com",) for s in walk.queue)
    assert any("relative" in p for p in walk.problems)


def test_scrapy_robots_invalid_utf8_skipped():
    """test_get_sitemap_urls_from_robotstxt_skips_invalid_utf8_urls."""
    robots = (b"User-agent: *\n"
              b"Sitemap: http://example.com/\xff.xml\n"
              b"Sitemap: http://example.com/ok.xml\n")
    walk = SitemapWalk("http://www.example.com")
    walk.add_from_robots("http://www.example.com/robots.txt", parse_robots(robots).sitemaps)
    assert [s.url for s in walk.queue] == ["http://example.com/ok.xml"]


def test_scrapy_gzip_bodies():
    """test_get_sitemap_body_gzip_headers / _xml_url_compressed: gzip sniffed by magic."""
    f = parse_sitemap(gz(SCRAPY_SITEMAP), "http://www.example.com/sitemap.xml.gz")
    assert f.gzipped and f.complete and locs(f) == [E, E + "Special-Offers.html"]
    # .xml.gz already gunzipped by HttpCompressionMiddleware: plain XML
    f = parse_sitemap(SCRAPY_SITEMAP, "http://www.example.com/sitemap.xml.gz")
    assert not f.gzipped and locs(f) == [E, E + "Special-Offers.html"]


# --- sitemaps.org examples -----------------------------------------------------------------
# From https://www.sitemaps.org/protocol.html ("Sample XML Sitemap", "Sample XML Sitemap
# Index", "Text file", "Sitemap file location", "Sitemaps & Cross Submits").

SITEMAPS_ORG_SAMPLE = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
   <url>
      <loc>http://www.example.com/</loc>
      <lastmod>2005-01-01</lastmod>
      <changefreq>monthly</changefreq>
      <priority>0.8</priority>
   </url>
   <url>
      <loc>http://www.example.com/catalog?item=12&amp;desc=vacation_hawaii</loc>
      <changefreq>weekly</changefreq>
   </url>
   <url>
      <loc>http://www.example.com/catalog?item=73&amp;desc=vacation_new_zealand</loc>
      <lastmod>2004-12-23</lastmod>
      <changefreq>weekly</changefreq>
   </url>
   <url>
      <loc>http://www.example.com/catalog?item=74&amp;desc=vacation_newfoundland</loc>
      <lastmod>2004-12-23T18:00:15+00:00</lastmod>
      <priority>0.3</priority>
   </url>
   <url>
      <loc>http://www.example.com/catalog?item=83&amp;desc=vacation_usa</loc>
      <lastmod>2004-11-23</lastmod>
   </url>
</urlset>"""


def test_sitemaps_org_sample():
    f = parse_sitemap(SITEMAPS_ORG_SAMPLE, SM)
    assert f.kind == "urlset" and f.complete and not f.problems
    assert locs(f)[1] == "http://www.example.com/catalog?item=12&desc=vacation_hawaii"
    assert [e.lastmod for e in f.urls] == ["2005-01-01", None, "2004-12-23",
                                           "2004-12-23T18:00:15+00:00", "2004-11-23"]


def test_sitemaps_org_text_rss_atom():
    text = parse_sitemap(b"http://www.example.com/catalog?item=1\r\n\r\n"
                         b"http://www.example.com/catalog?item=11\n", SM)
    assert text.kind == "text" and locs(text) == ["http://www.example.com/catalog?item=1",
                                                  "http://www.example.com/catalog?item=11"]
    rss = parse_sitemap(b"""<?xml version="1.0"?><rss version="2.0"
        xmlns:atom="http://www.w3.org/2005/Atom"><channel><title>t</title>
        <link>http://www.example.com/</link>
        <item><title>a</title><link>http://www.example.com/a</link>
          <atom:link href="http://www.example.com/feed" rel="self"/>
          <pubDate>Sun, 19 May 2002 15:21:36 GMT</pubDate></item>
        <item><link>http://www.example.com/b</link></item></channel></rss>""",
                        "http://www.example.com/feed.xml")
    assert rss.kind == "rss" and locs(rss) == ["http://www.example.com/a",
                                               "http://www.example.com/b"]
    assert rss.urls[0].lastmod == "Sun, 19 May 2002 15:21:36 GMT"
    atom = parse_sitemap(b"""<?xml version="1.0" encoding="utf-8"?>
        <feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>
        <link href="http://www.example.com/"/>
        <entry><title>x</title><link href="http://www.example.com/2003/12/13/atom03"/>
          <link rel="edit" href="http://www.example.com/edit/1"/>
          <updated>2003-12-13T18:30:02Z</updated></entry>
        <entry><link rel="alternate" href="/rel"/></entry></feed>""",
                         "http://www.example.com/atom.xml")
    assert atom.kind == "atom"
    assert locs(atom) == ["http://www.example.com/2003/12/13/atom03", "http://www.example.com/rel"]
    assert atom.urls[0].lastmod == "2003-12-13T18:30:02Z"


@pytest.mark.parametrize("url,ok", [
    ("http://example.com/catalog/show?item=23", True),
    ("http://example.com/catalog/show?item=233&user=3453", True),
    ("http://example.com/image/show?item=23", False),
    ("http://example.com/image/show?item=233&user=3453", False),
    ("https://example.com/catalog/page1.php", False),       # another scheme
    ("http://sub.example.com/catalog/", False),              # another host
    ("http://example.com:8080/catalog/x", False),            # another port
    ("http://EXAMPLE.com./catalog/x", True),                 # the same host, one normal form
    ("http://example.com/catalog/../admin/", False),         # dot segments resolved first
    ("http://example.com/catalog/%2e%2e/admin/", False),
    ("http://example.com/catalog/./x/../y", True),
    ("/catalog/relative", False),
    ("javascript:alert(1)", False),
    ("ftp://example.com/catalog/x", False),
    ("http://example.com/catalog/" + "a" * 2100, False),     # "less than 2,048 characters"
])
def test_sitemaps_org_location_rule(url, ok):
    assert (location_problem(url, "http://example.com/catalog/sitemap.xml") is None) == ok


def test_port_rule_and_cross_submission():
    # "if your Sitemap is located at http://www.example.com:100/sitemap.xml, then each URL
    # listed in the Sitemap must begin with http://www.example.com:100"
    assert location_problem("http://www.example.com:100/a", "http://www.example.com:100/s.xml") \
        is None
    assert location_problem("http://www.example.com/a", "http://www.example.com:100/s.xml")
    # "Sitemaps & Cross Submits": robots.txt of www.host1.com points at sitemaphost
    body = urlset("http://www.host1.com/a", "http://www.host2.com/b",
                  "http://www.sitemaphost.com/c")
    plain = parse_sitemap(body, "http://www.sitemaphost.com/sitemap-host1.xml")
    assert locs(plain) == ["http://www.sitemaphost.com/c"] and plain.dropped == 2
    vouched = parse_sitemap(body, SitemapSource("http://www.sitemaphost.com/sitemap-host1.xml",
                                                0, ("http://www.host1.com",)))
    assert locs(vouched) == ["http://www.host1.com/a", "http://www.sitemaphost.com/c"]
    assert vouched.dropped == 1
    assert any("1 dropped: outside" in p and "host2" in p for p in vouched.problems)


def test_robots_listed_sitemap_covers_its_whole_origin():
    walk = SitemapWalk("http://a.example")
    walk.add_from_robots("http://a.example/robots.txt", ["http://a.example/deep/dir/sm.xml"])
    src = walk.next()
    f = walk.feed(src, urlset("http://a.example/top", "http://b.example/x"))
    assert locs(f) == ["http://a.example/top"] and f.dropped == 1
    # named by the config instead: only its directory
    walk = SitemapWalk("http://a.example")
    walk.add("http://a.example/deep/dir/sm.xml")
    f = walk.feed(walk.next(), urlset("http://a.example/top", "http://a.example/deep/dir/p"))
    assert locs(f) == ["http://a.example/deep/dir/p"]


# --- gzip, bombs, limits ------------------------------------------------------------------


def test_gzip_bomb_is_cut_at_the_limit_without_using_that_memory():
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\n" * (1 << 20)
    bomb = (z.compress(b"http://www.example.com/a\n")
            + b"".join(z.compress(block) for _ in range(200)) + z.flush())  # 200 MiB
    assert len(bomb) < 300_000
    f = parse_sitemap(bomb, "http://www.example.com/s.txt.gz")
    assert f.gzipped and not f.complete and f.size == MAX_BYTES
    assert locs(f) == ["http://www.example.com/a"]
    assert any("52,428,800-byte limit" in p for p in f.problems)
    blank = parse_sitemap(gzip.compress(b"\n" * (1 << 20)), SM)  # not a sitemap: stops early
    assert blank.kind == "" and blank.size < 1 << 20
    small = parse_sitemap(bomb, "http://www.example.com/s.txt.gz", max_bytes=1000)
    assert small.size == 1000 and not small.complete


def test_gzip_cut_and_corrupt_keep_what_came_before():
    body = gz(urlset(*(f"http://www.example.com/p{i}" for i in range(2000))))
    cut = parse_sitemap(body[: len(body) // 2], SM, received_all=False)
    assert 0 < len(cut.urls) < 2000 and not cut.complete
    assert locs(cut) == [f"http://www.example.com/p{i}" for i in range(len(cut.urls))]
    assert any("gzip stream ends before its end" in p for p in cut.problems)
    corrupt = body[:200] + b"\x00garbage" * 50 + body[600:]
    f = parse_sitemap(corrupt, SM)
    assert not f.complete and any("gzip" in p for p in f.problems)
    trailing = parse_sitemap(body + b"junk", SM)
    assert len(trailing.urls) == 2000 and not trailing.complete
    assert parse_sitemap(gz(gz(b"x")), SM).kind == ""  # gzip inside gzip: not undone


def test_50001_urls_cut_with_a_problem():
    body = urlset(*(f"http://www.example.com/{i}" for i in range(MAX_URLS + 1)))
    f = parse_sitemap(body, SM)
    assert len(f.urls) == MAX_URLS and f.urls[-1].loc == f"http://www.example.com/{MAX_URLS - 1}"
    assert not f.complete and any("more than 50,000 URLs" in p for p in f.problems)
    text = "\n".join(f"http://www.example.com/{i}" for i in range(MAX_URLS + 1)).encode()
    t = parse_sitemap(text, SM)
    assert len(t.urls) == MAX_URLS and not t.complete
    exactly = parse_sitemap(urlset(*(f"http://www.example.com/{i}" for i in range(MAX_URLS))), SM)
    assert len(exactly.urls) == MAX_URLS and exactly.complete


@pytest.mark.parametrize("body", [
    # billion laughs
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    b'<urlset><url><loc>http://www.example.com/&lol3;</loc></url></urlset>',
    # external entity (XXE) and external DTD
    b'<?xml version="1.0"?><!DOCTYPE u SYSTEM "http://attacker.example/x.dtd">'
    b'<urlset><url><loc>http://www.example.com/</loc></url></urlset>',
    # parameter entity
    b'<?xml version="1.0"?><!DOCTYPE u [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>'
    b'<urlset><url><loc>http://www.example.com/</loc></url></urlset>',
])
def test_xml_entity_bombs_refused(body):
    f = parse_sitemap(body, SM)
    assert f.urls == () and f.kind == "" and not f.complete
    assert any("refused (DTDs and entities are never processed)" in p for p in f.problems)


def test_cut_xml_keeps_whole_entries_only():
    body = urlset("http://www.example.com/a", "http://www.example.com/abcdef")
    cut_at = body.index(b"/abcdef") + 3  # inside the second <loc>: "http://www.example.com/abc"
    f = parse_sitemap(body[:cut_at], SM, received_all=False)
    assert locs(f) == ["http://www.example.com/a"] and not f.complete
    assert f.problems[0].startswith("transfer stopped after")


def test_garbage_mid_file_keeps_entries_before_it():
    body = urlset("http://www.example.com/a", "http://www.example.com/b").replace(
        b"<url><loc>http://www.example.com/b", b"<url><<<garbage<loc>http://www.example.com/b")
    f = parse_sitemap(body, SM)
    assert locs(f) == ["http://www.example.com/a"] and not f.complete
    assert any(p.startswith("malformed XML at line 1") and "1 entries read before it kept" in p
               for p in f.problems)


def test_cut_text_drops_the_partial_last_line():
    body = b"http://www.example.com/a\nhttp://www.example.com/abcdef"
    assert locs(parse_sitemap(body, SM)) == ["http://www.example.com/a",
                                              "http://www.example.com/abcdef"]
    cut = parse_sitemap(body[:-3], SM, received_all=False)
    assert locs(cut) == ["http://www.example.com/a"]
    assert any("cut before its end" in p for p in cut.problems)


def test_encodings():
    utf16 = ('<?xml version="1.0" encoding="UTF-16"?><urlset>'
             "<url><loc>http://www.example.com/ü</loc></url></urlset>").encode("utf-16")
    f = parse_sitemap(utf16, SM)
    assert locs(f) == ["http://www.example.com/ü"] and any("UTF-16" in p for p in f.problems)
    bom = b"\xef\xbb\xbfhttp://www.example.com/a\n\xffbad\nhttp://www.example.com/b\n"
    t = parse_sitemap(bom, SM)
    assert locs(t) == ["http://www.example.com/a", "http://www.example.com/b"]
    assert any("not valid UTF-8" in p for p in t.problems)


def test_bad_lastmod_dropped_with_a_problem():
    body = (b"<urlset><url><loc>http://www.example.com/a</loc><lastmod>yesterday</lastmod>"
            b"</url></urlset>")
    f = parse_sitemap(body, SM)
    assert f.urls[0].lastmod is None and any("W3C Datetime" in p for p in f.problems)


def test_html_page_is_not_a_sitemap():
    f = parse_sitemap(b"<!DOCTYPE html><html><body>404</body></html>", SM)
    assert f.kind == "" and f.urls == ()
    g = parse_sitemap(b"<html><body><a href='http://www.example.com/x'>x</a></body></html>", SM)
    assert g.kind == "" and any("not a sitemap" in p for p in g.problems)


def test_problems_are_bounded():
    text = "\n".join(f"junk{i}" for i in range(10_000)).encode()
    f = parse_sitemap(text, SM)
    assert f.dropped == 10_000 and len(f.problems) <= 51


# --- the walk --------------------------------------------------------------------------------


def index(*children: str) -> bytes:
    body = "".join(f"<sitemap><loc>{c}</loc></sitemap>" for c in children)
    return f"<sitemapindex>{body}</sitemapindex>".encode()


def test_index_recursion_limit_and_cycles():
    walk = SitemapWalk("http://a.example", SitemapLimits(max_depth=2))
    walk.add_from_robots("http://a.example/robots.txt", ["http://a.example/i0.xml"])
    fetched = []
    while (src := walk.next()) is not None:
        fetched.append((src.url, src.depth))
        n = src.depth
        f = walk.feed(src, index(f"http://a.example/i{n + 1}.xml", "http://a.example/i0.xml"))
    assert fetched == [("http://a.example/i0.xml", 0), ("http://a.example/i1.xml", 1),
                       ("http://a.example/i2.xml", 2)]
    assert any("not followed (nesting limit 2)" in p for p in f.problems)


def test_index_children_obey_the_location_rule_and_inherit_vouching():
    walk = SitemapWalk("http://a.example")
    walk.add_from_robots("http://a.example/robots.txt", ["http://maps.example/a/index.xml"])
    src = walk.next()
    f = walk.feed(src, index("http://maps.example/a/1.xml", "http://maps.example/b/2.xml",
                             "http://a.example/3.xml", "http://evil.example/4.xml"))
    assert locs(f) == ["http://maps.example/a/1.xml", "http://a.example/3.xml"]
    child = walk.next()
    assert child.vouched_by == ("http://a.example",) and child.depth == 1
    page = walk.feed(child, urlset("http://a.example/page", "http://maps.example/a/p",
                                   "http://evil.example/x"))
    assert locs(page) == ["http://a.example/page", "http://maps.example/a/p"]


def test_origin_budgets():
    walk = SitemapWalk("http://a.example", SitemapLimits(max_files=2, max_urls=3))
    walk.add("http://a.example/s1.xml")
    walk.add("http://a.example/s2.xml")
    walk.add("http://a.example/s3.xml")
    f1 = walk.feed(walk.next(), urlset("http://a.example/1", "http://a.example/2"))
    f2 = walk.feed(walk.next(), urlset("http://a.example/3", "http://a.example/4"))
    assert len(f1.urls) == 2 and locs(f2) == ["http://a.example/3"] and not f2.complete
    assert any("budget" in p for p in f2.problems)
    assert walk.next() is None and any("budget" in p for p in walk.problems) and walk.done
    walk = SitemapWalk("http://a.example", SitemapLimits(max_bytes=100))
    walk.add("http://a.example/s.txt")
    f = walk.feed(walk.next(), b"http://a.example/x\n" * 20)
    assert f.size == 100 and len(f.urls) == 5


def test_failed_fetch_is_a_problem():
    walk = SitemapWalk("http://a.example")
    walk.add("http://a.example/s.xml")
    src = walk.next()
    walk.failed(src, "refused: robots.txt Disallow: /s.xml")
    assert walk.problems == ["sitemap http://a.example/s.xml: refused: robots.txt "
                             "Disallow: /s.xml"]


def test_never_raises_on_remote_bytes():
    import random

    rng = random.Random(13)
    seeds = [SCRAPY_SITEMAP, SCRAPY_INDEX, SITEMAPS_ORG_SAMPLE, gz(SCRAPY_SITEMAP), SCRAPY_XXE]
    for _ in range(400):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        cut = rng.randint(0, len(data))
        parse_sitemap(bytes(data[:cut]), SM, received_all=rng.random() < 0.5)


def test_config():
    assert sitemap_config(None) is None
    assert sitemap_config({"follow": False}) is None
    assert sitemap_config({}) == SitemapLimits() == sitemap_config(True)
    assert sitemap_config(False) is None
    assert sitemap_config({"max_depth": 1}).max_depth == 1
    for bad, key in [({"max_depth": -1}, "sitemaps.max_depth"), ({"x": 1}, "sitemaps.x"),
                     ({"follow": "yes"}, "sitemaps.follow"),
                     ({"max_urls_per_origin": True}, "sitemaps.max_urls_per_origin"),
                     ([], "sitemaps")]:
        with pytest.raises(ValueError, match=f"^{key}"):
            sitemap_config(bad)


def test_module_is_sans_io():
    code = ("import sys, crawler.corpus.sitemap_reader, crawler.corpus.sitemaps, "
            "crawler.policy.scope\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('scrapy', 'twisted'))\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_hostile_xml_shapes_are_bounded():
    deep = b"<urlset><url><loc>http://www.example.com/a</loc></url>" + b"<x>" * 100_000
    f = parse_sitemap(deep, SM)
    assert locs(f) == ["http://www.example.com/a"] and not f.complete
    assert any("nested more than 32 deep" in p for p in f.problems)
    huge = b"<urlset><url><loc>http://www.example.com/" + b"a" * 10_000_000 + b"</loc></url>" \
        + b"<url><loc>http://www.example.com/b</loc></url></urlset>"
    g = parse_sitemap(huge, SM)
    assert locs(g) == ["http://www.example.com/b"] and g.dropped == 1
