"""The README's add-on section, end to end: a fresh ``scrapy startproject``, the documented
settings lines read from README.md, a plain spider, ``scrapy crawl -O`` against a local web."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

from crawler.audit.log import verify_file
from crawler.crawl.provenance import item_sha256
from crawler.demo.sites import html
from crawler.demo.web import LocalWeb, Page, Site
from tests.documents_fixtures import dmi, jpeg, png

from .conftest import ROOT, read_jsonl

SPIDER = '''
import scrapy


class Page(scrapy.Item):
    url = scrapy.Field()
    title = scrapy.Field()
    polite_audit_seq = scrapy.Field()
    polite_audit_hash = scrapy.Field()
    polite_policy_sha256 = scrapy.Field()


class Note(scrapy.Item):  # no provenance fields: recorded beside it
    url = scrapy.Field()
    links = scrapy.Field()


class PlainSpider(scrapy.Spider):
    name = "plain"

    def __init__(self, seed="", **kwargs):
        super().__init__(**kwargs)
        self.start_urls = [seed]

    def parse(self, response):
        if not isinstance(response, scrapy.http.TextResponse):  # an image
            yield {"kind": "file", "url": response.url, "size": len(response.body)}
            return
        title = response.css("title::text").get()
        yield {"kind": "dict", "url": response.url, "title": title}
        yield Page(url=response.url, title=title)
        links = response.css("a::attr(href)").getall()
        yield Note(url=response.url, links=len(links))
        yield from response.follow_all(links)
'''


def readme_addon_lines() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Use it from another Scrapy project", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the add-on section has no settings block"
    return match.group(1)


def test_the_readme_addon_lines_in_a_fresh_scrapy_project(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "scrapy", "startproject", "myproj"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    project = tmp_path / "myproj"
    lines = readme_addon_lines()
    assert "crawler.addon.Addon" in lines and "%(name)s" in lines
    with open(project / "myproj" / "settings.py", "a", encoding="utf-8") as fh:
        fh.write("\n" + lines)
        # the test's own: a loopback web, no delay, no telnet port
        fh.write("POLITE_ALLOW_PRIVATE_NETWORKS = True\nDOWNLOAD_DELAY = 0\n"
                 "TELNETCONSOLE_ENABLED = False\n")
    (project / "myproj" / "spiders" / "plain.py").write_text(textwrap.dedent(SPIDER))

    site = Site("s", "a plain site with two reserved pages", {
        # GPTBot is in the README's POLITE_HONOR_AGENTS: its group binds the crawl
        "/robots.txt": Page("User-agent: GPTBot\nDisallow: /private/\n",
                            content_type="text/plain"),
        "/": Page(html("home", '<a href="/a.html">a</a> <a href="/noai.html">n</a> '
                               '<a href="/private/p.html">p</a> <a href="/ok.png">i</a> '
                               '<a href="/dm.jpg">j</a>')),
        # POLITE_COLLECT unset: an image reaches the callback after its document stage; one
        # whose IPTC Data Mining value reserves AI training does not
        "/ok.png": Page(png(), content_type="image/png"),
        "/dm.jpg": Page(jpeg(dmi("DMI-PROHIBITED-AIMLTRAINING")), content_type="image/jpeg"),
        "/a.html": Page(html("a", '<a href="/b.html">b</a>')),
        "/b.html": Page(html("b", "leaf")),
        "/noai.html": Page(html("noai", "SECRET"), headers=(("X-Robots-Tag", "noai"),)),
        "/private/p.html": Page(html("private", "SECRET")),
    })
    with LocalWeb([site]) as web:
        origin = web.origin("s")
        proc = subprocess.run(
            [sys.executable, "-m", "scrapy", "crawl", "plain", "-a", f"seed={origin}/",
             "-O", "items.jsonl"],
            cwd=project, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr[-3000:]
        fetched = set(web.paths("s"))
    assert "lacks" not in proc.stderr and "Dropped" not in proc.stderr

    out = project / "polite" / "plain"  # POLITE_OUTPUT_DIR's %(name)s expanded
    assert not any("%" in p.name for p in project.rglob("*"))
    audit = read_jsonl(out / "audit.jsonl")
    assert audit and verify_file(out / "audit.jsonl").ok
    assert (out / "run.json").exists() and not (out / "corpus.jsonl").exists()
    by_seq = {r["seq"]: r for r in audit}
    allowed = {origin + p for p in ("/", "/a.html", "/b.html")}

    items = read_jsonl(project / "items.jsonl")
    files = [i for i in items if i.get("kind") == "file"]
    assert [f["url"] for f in files] == [origin + "/ok.png"]
    items = [i for i in items if i.get("kind") != "file"]
    dicts = [i for i in items if i.get("kind") == "dict"]
    pages = [i for i in items if "title" in i and "kind" not in i]
    notes = [i for i in items if "links" in i]
    assert len(items) == 9 and len(dicts) == len(pages) == len(notes) == 3
    assert {i["url"] for i in dicts} == {i["url"] for i in pages} == allowed
    for item in dicts + pages:  # the provenance matches the allow record of its response
        rec = by_seq[item["polite_audit_seq"]]
        assert rec["decision"] == "allow" and rec["url"] == item["url"]
        assert rec["hash"] == item["polite_audit_hash"]
        assert rec["policy_sha256"] == item["polite_policy_sha256"]
    # items that cannot take the fields pass unchanged; their provenance is beside them
    assert all(set(n) == {"url", "links"} for n in notes)
    beside = read_jsonl(out / "provenance.jsonl")
    assert len(beside) == 3
    assert {b["item_sha256"] for b in beside} == {item_sha256(n) for n in notes}
    for b in beside:
        rec = by_seq[b["audit_seq"]]
        assert rec["decision"] == "allow" and rec["url"] == b["url"]
        assert (rec["hash"], rec["policy_sha256"]) == (b["audit_hash"], b["policy_sha256"])
        assert b["item_class"] == "myproj.spiders.plain.Note"

    # the reserved pages: no item, a deny record each; the noai one was fetched (its header
    # refuses it) and never reached the callback, the robots one never fetched at all
    assert not {i["url"] for i in items} - allowed
    denied = {r["url"]: r["reasons"][0]["signal"] for r in audit if r["decision"] == "deny"}
    assert denied[origin + "/noai.html"] == "noai"
    assert denied[origin + "/private/p.html"] == "robots"
    assert denied[origin + "/dm.jpg"] == "iptc"
    assert "/noai.html" in fetched and "/private/p.html" not in fetched
