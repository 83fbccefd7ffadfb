"""The limits layer: every size cap, decoder and byte-order mark fails closed.

Each site below serves one per-origin file (robots.txt, tdmrep.json, ai.txt, an RSL licence)
or one page in a form that a lenient reader gets wrong: cut at the download cap (plain, and
compressed then cut), over a parser's limit, in a content-coding we cannot decode (unknown, or a
corrupt stream), or in UTF-16 with a byte order mark. In every case the reservation the file
makes must hold: judged from the server's own request log, no reserved URL is requested, and no
byte of a reserved document is in any output file (corpus, WARC, evidence). Two crawls: one with
a small per-origin cap (POLITE_PREFLIGHT_MAXSIZE) for the cut cases, one with a large cap for
the parse-limit cases.

Run against the code before the fix (commit c41a044), 21 of these tests fail: the cut
robots.txt ending in ``Allow: /`` allowed the whole site, cut tdmrep.json and ai.txt files were
"no file" (unset), UTF-16 and unknown-coding files were read as garbage (allow all) or as no
file, rules after 512,000 bytes of ai.txt and a tdmrep.json over 1 MiB were ignored, and
unlabelled, mislabelled, truncated-gzip and over-long-head pages were stored. The others guard
against regressions: RSL was already conservative (an unreadable licence licenses no AI use),
Scrapy's decoder raised on these corrupt gzip streams (unreachable), robots.txt already dropped
the line its parse limit cuts, and UTF-16 HTML was already decoded by its BOM.
"""

from __future__ import annotations

import gzip
import random
import zlib
from pathlib import Path

import pytest

from crawler.audit.log import verify_file
from crawler.demo.sites import html
from crawler.demo.web import LocalWeb, Page, Site

from .conftest import read_jsonl, run_cli, write_config

CAP = 2048                      # POLITE_PREFLIGHT_MAXSIZE of the "cut" crawl
BIG_CAP = 4 * 1024 * 1024       # ... of the "over the parse limit" crawl
PAUSE = 0.3                     # between the part the crawler reads and the rest
FILES = {"robots.txt": "/robots.txt", "tdmrep.json": "/.well-known/tdmrep.json",
         "ai.txt": "/ai.txt", "rsl": "/license.xml"}
PER_ORIGIN_PATHS = set(FILES.values())
TXT = "text/plain; charset=utf-8"
_rng = random.Random(9309)


def _noise_lines(size: int, comment: bytes = b"# ") -> bytes:
    """Incompressible comment lines of about ``size`` bytes (so a gzip stream stays long)."""
    out = bytearray()
    while len(out) < size:
        out += comment + _rng.randbytes(24).hex().encode() + b"\n"
    return bytes(out)


def _cut(prefix: bytes, rest: bytes, *, gz: bool, ctype: str) -> Page:
    """A body the crawler reads only up to the end of ``prefix`` (it stops at the cap; the
    server pauses there), optionally as one gzip stream cut at the same point."""
    if gz:
        c = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        first = c.compress(prefix) + c.flush(zlib.Z_SYNC_FLUSH)
        body = first + c.compress(rest) + c.flush()
        headers: tuple[tuple[str, str], ...] = (("Content-Encoding", "gzip"),)
    else:
        first, body, headers = prefix, prefix + rest, ()
    assert len(first) >= CAP, "the first piece must reach the cap"
    return Page(body, content_type=ctype, headers=headers, chunk=len(first), chunk_pause=PAUSE)


def _corrupt_gzip(text: bytes, ctype: str) -> Page:
    """A gzip stream that decodes for a while and then is corrupt (a lenient reader keeps the
    start: comments only, no rule)."""
    data = bytearray(gzip.compress(text, 6))
    for i in range(len(data) * 2 // 3, len(data) - 8):
        data[i] ^= 0x5A
    return Page(bytes(data), content_type=ctype, headers=(("Content-Encoding", "gzip"),))


def _unknown_coding(ctype: str) -> Page:
    # what the server sends in a coding we do not know: to a lenient reader, garbage bytes
    return Page(_rng.randbytes(3000), content_type=ctype,
                headers=(("Content-Encoding", "x-lzma-custom"),))


def _utf16(text: str, ctype: str) -> Page:
    return Page(text.encode("utf-16"), content_type=ctype)  # with a BOM


ROBOTS_RESERVING = "User-agent: *\nDisallow: /\n"
TDMREP_RESERVING = '[{"location": "/", "tdm-reservation": 1}]'
AITXT_RESERVING = "# Spawning ai.txt\nUser-Agent: *\nDisallow: /\n"
RSL_RESERVING = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                 '<rsl xmlns="https://rslstandard.org/rsl"><content url="/"><license>'
                 '<prohibits type="usage">ai-all</prohibits></license></content></rsl>\n')
RSL_ROBOTS = "License: /license.xml\n\nUser-agent: *\nAllow: /\n"


def _file_cases() -> dict[str, tuple[str, Page]]:
    """case -> (which per-origin file, how it is served); each reserves the whole site."""
    pad = _noise_lines(3 * CAP)  # hex digits compress to about half: still over the cap
    split = RSL_RESERVING.index("<content")
    cases: dict[str, tuple[str, Page]] = {}
    for gz in (False, True):
        tag = "gzip-cut" if gz else "cut"
        # robots.txt cut inside "Allow: /public/page.html": "Allow: /" would tie
        # "Disallow: /" and win
        cases[f"robots-{tag}"] = ("robots.txt", _cut(
            b"User-agent: *\nDisallow: /\n" + pad + b"Allow: /", b"public/page.html\n",
            gz=gz, ctype=TXT))
        # tdmrep.json cut before its reserving rule: a lenient reader sees invalid JSON (unset)
        entries = b"".join(b'{"location": "/nothing-%s/", "tdm-reservation": 0}, '
                           % _rng.randbytes(16).hex().encode() for _ in range(CAP // 20))
        cases[f"tdmrep-{tag}"] = ("tdmrep.json", _cut(
            b"[" + entries, b'{"location": "/", "tdm-reservation": 1}]\n', gz=gz,
            ctype="application/json"))
        # ai.txt cut before its only rule: a lenient reader sees no group with rules (unset)
        cases[f"aitxt-{tag}"] = ("ai.txt", _cut(
            b"# Spawning ai.txt\nUser-Agent: *\n" + pad, b"Disallow: /\n", gz=gz, ctype=TXT))
        cases[f"rsl-{tag}"] = ("rsl", _cut(
            RSL_RESERVING[:split].encode() + b"<!-- " + pad + b" -->",
            RSL_RESERVING[split:].encode(), gz=gz, ctype="application/rsl+xml"))
    comments = _noise_lines(4000)
    for kind, ctype, text in (
        ("robots.txt", TXT, ROBOTS_RESERVING),
        ("tdmrep.json", "application/json", TDMREP_RESERVING),
        ("ai.txt", TXT, AITXT_RESERVING),
        ("rsl", "application/rsl+xml", RSL_RESERVING),
    ):
        name = {"robots.txt": "robots", "tdmrep.json": "tdmrep", "ai.txt": "aitxt",
                "rsl": "rsl"}[kind]
        cases[f"{name}-unknown-coding"] = (kind, _unknown_coding(ctype))
        if kind in ("robots.txt", "ai.txt"):
            corrupt_body = (b"User-agent: *\n" if kind == "robots.txt" else
                            b"User-Agent: *\n") + comments + text.split("\n", 1)[1].encode()
        else:
            corrupt_body = text.encode() + b" " * 4000
        cases[f"{name}-corrupt-gzip"] = (kind, _corrupt_gzip(corrupt_body, ctype))
        cases[f"{name}-utf16-bom"] = (kind, _utf16(text, ctype))
    return cases


def _big_file_cases() -> dict[str, tuple[str, Page]]:
    """Over the readers' own limits (the cap is large enough to read them whole)."""
    # robots.txt over RFC 9309's parsing limit (512,000 bytes): the line the limit cuts is
    # "Allow: /public/page.html"; the rules read so far ("Disallow: /") hold
    head = b"User-agent: *\nDisallow: /\n"
    size = 512_000 - len(b"Allow: /") - len(head)
    filler = _noise_lines(size)[: size - 1]
    filler = filler[: filler.rfind(b"\n") + 1]
    filler += b"#" * (size - len(filler) - 1) + b"\n"
    robots = head + filler + b"Allow: /public/page.html\n"
    assert robots.index(b"Allow: /public") == 512_000 - len(b"Allow: /")
    entries = b"".join(b'{"location": "/nothing-%d/", "tdm-reservation": 0},\n' % i
                       for i in range(24_000))
    tdmrep = b"[" + entries + b'{"location": "/", "tdm-reservation": 1}]\n'
    assert len(tdmrep) > (1 << 20)
    aitxt = b"User-Agent: *\n" + _noise_lines(700_000) + b"Disallow: /\n"
    split = RSL_RESERVING.index("<content")
    rsl = (RSL_RESERVING[:split] + "<!-- " + "x" * (1 << 20) + " -->" + RSL_RESERVING[split:])
    return {
        "robots-over-parse-limit": ("robots.txt", Page(robots, content_type=TXT)),
        "tdmrep-over-limit": ("tdmrep.json", Page(tdmrep, content_type="application/json")),
        "aitxt-rules-after-512k": ("ai.txt", Page(aitxt, content_type=TXT)),
        "rsl-over-limit": ("rsl", Page(rsl, content_type="application/rsl+xml")),
    }


def _page_cases() -> dict[str, Page]:
    """case -> the reserved page (robots.txt allows everything; the page reserves itself)."""
    meta = '<meta name="tdm-reservation" content="1">'
    secret = "SECRET-{case}"

    def doc(case: str, head_extra: str = "") -> str:
        return html(secret.format(case=case), f"<p>{secret.format(case=case)} body</p>",
                    head=head_extra + meta)

    big_head = "".join(f'<meta name="x-{i}" content="{"y" * 80}">' for i in range(12_000))
    truncated = gzip.compress(doc("html-gzip-truncated", _noise_lines(3000).decode()
                                  .replace("#", "<!--").replace("\n", "-->\n")).encode())
    truncated = truncated[: len(truncated) - 600]  # the server sends a cut stream
    return {
        "html-head-over-limit": Page(doc("html-head-over-limit", big_head)),
        "html-gzip-truncated": Page(truncated, headers=(("Content-Encoding", "gzip"),)),
        "html-unknown-coding": Page(doc("html-unknown-coding").encode()[::-1],
                                    headers=(("Content-Encoding", "x-reversed"),)),
        "html-utf16-bom": Page(doc("html-utf16-bom").encode("utf-16"),
                               content_type="text/html"),
        "html-no-content-type": Page(doc("html-no-content-type"), content_type=""),
        "html-as-text-plain": Page(doc("html-as-text-plain"), content_type=TXT),
        "xhtml-as-xml": Page('<?xml version="1.0"?>\n<html xmlns="http://www.w3.org/1999/xhtml">'
                             f'<head><title>SECRET-xhtml-as-xml</title>{meta}</head>'
                             '<body><p>SECRET-xhtml-as-xml body</p></body></html>',
                             content_type="application/xml"),
    }


def _file_site(case: str, kind: str, page: Page) -> Site:
    pages = {"/": Page(html("index", f'SECRET-{case}-index <a href="/public/page.html">p</a>'
                                      ' <a href="/private/secret.html">s</a>')),
             "/public/page.html": Page(html("p", f"SECRET-{case}-public")),
             "/private/secret.html": Page(html("s", f"SECRET-{case}-private"))}
    pages["/robots.txt"] = Page(RSL_ROBOTS if kind == "rsl" else "User-agent: *\nAllow: /\n",
                                content_type=TXT)
    pages[FILES[kind]] = page
    return Site(case, f"{kind}: {case}", pages)


def _page_site(case: str, page: Page) -> Site:
    return Site(case, f"page: {case}", {
        "/robots.txt": Page("User-agent: *\nAllow: /\n", content_type=TXT),
        "/": Page(html("index", '<a href="/doc.html">doc</a> plain index')),
        "/doc.html": page,
    })


def _run(tmp: Path, sites: list[Site], cap: int) -> dict:
    web = LocalWeb(sites).start()
    try:
        cfg = write_config(tmp / "job.yaml", seeds=[web.origin(s.name) + "/" for s in sites],
                           output={"warc": True},
                           settings={"POLITE_PREFLIGHT_MAXSIZE": cap,
                                     "POLITE_SITE_RETRY_BACKOFF": 0.2})
        proc = run_cli("run", str(cfg), timeout=300)
    finally:
        web.stop()
    out = tmp / "out"
    return {"web": web, "proc": proc, "out": out, "sites": {s.name: s for s in sites},
            "audit": read_jsonl(out / "audit.jsonl"), "corpus": read_jsonl(out / "corpus.jsonl")}


FILE_CASES = _file_cases()
BIG_FILE_CASES = _big_file_cases()
PAGE_CASES = _page_cases()


@pytest.fixture(scope="module")
def cut_crawl(tmp_path_factory):
    sites = [_file_site(c, k, p) for c, (k, p) in FILE_CASES.items()]
    sites += [_page_site(c, p) for c, p in PAGE_CASES.items()]
    return _run(tmp_path_factory.mktemp("limits-cut"), sites, CAP)


@pytest.fixture(scope="module")
def big_crawl(tmp_path_factory):
    sites = [_file_site(c, k, p) for c, (k, p) in BIG_FILE_CASES.items()]
    return _run(tmp_path_factory.mktemp("limits-big"), sites, BIG_CAP)


def _output_bytes(out: Path) -> bytes:
    """Every output file, decompressed (the WARC is gzip members)."""
    blob = bytearray()
    for path in sorted(out.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            blob += gzip.decompress(data) if path.suffix == ".gz" else data
    return bytes(blob)


@pytest.mark.parametrize("which", ["cut_crawl", "big_crawl"])
def test_crawl_runs_and_log_verifies(which, request):
    crawl = request.getfixturevalue(which)
    assert crawl["proc"].returncode == 0, crawl["proc"].stderr[-3000:]
    assert verify_file(crawl["out"] / "audit.jsonl").ok


def _check_file_case(crawl: dict, case: str) -> None:
    web, out = crawl["web"], crawl["out"]
    assert crawl["proc"].returncode == 0, crawl["proc"].stderr[-3000:]
    requested = set(web.paths(case))
    assert requested, f"{case}: the site was never contacted"
    assert requested <= PER_ORIGIN_PATHS, (
        f"{case}: reserved pages were requested: {sorted(requested - PER_ORIGIN_PATHS)}")
    assert f"SECRET-{case}".encode() not in _output_bytes(out)
    origin = web.origin(case)
    seed = [r for r in crawl["audit"] if r["url"] == origin + "/"]
    assert seed and all(r["decision"] == "deny" for r in seed), seed  # never even sent
    assert not [d for d in crawl["corpus"] if d["url"].startswith(origin)]


@pytest.mark.parametrize("case", sorted(FILE_CASES))
def test_cut_or_undecodable_file_reserves_everything(cut_crawl, case):
    _check_file_case(cut_crawl, case)


@pytest.mark.parametrize("case", sorted(BIG_FILE_CASES))
def test_file_over_a_reader_limit_reserves_everything(big_crawl, case):
    _check_file_case(big_crawl, case)


@pytest.mark.parametrize("case", sorted(PAGE_CASES))
def test_reserved_page_is_never_kept(cut_crawl, case):
    web, out = cut_crawl["web"], cut_crawl["out"]
    assert "/doc.html" in web.paths(case), "the page was never fetched: nothing was tested"
    url = web.origin(case) + "/doc.html"
    assert f"SECRET-{case}".encode() not in _output_bytes(out)
    assert not [d for d in cut_crawl["corpus"] if d["url"] == url]
    records = [r for r in cut_crawl["audit"] if r["url"] == url
               and r["decision"] in ("allow", "deny")]
    assert records and all(r["decision"] == "deny" for r in records), records


def test_refusals_say_what_happened(cut_crawl, big_crawl):
    """The evidence names the cause (cut, undecodable, over the limit), not just 'deny'."""
    def rules(crawl, case):
        origin = crawl["web"].origin(case)
        return " | ".join(str(reason.get("rule")) + " " + " ".join(reason.get("problems", []))
                          for r in crawl["audit"] if r["url"].startswith(origin)
                          for reason in r["reasons"])

    assert "content-coding" in rules(cut_crawl, "robots-unknown-coding")
    assert "gzip" in rules(cut_crawl, "tdmrep-corrupt-gzip")
    assert "cut at the size limit" in rules(cut_crawl, "tdmrep-cut")
    assert "before the 512000 bytes RFC 9309" in rules(cut_crawl, "robots-gzip-cut")
    assert "UTF-16LE" in rules(cut_crawl, "robots-utf16-bom")
    assert "over the 1048576-byte limit" in rules(big_crawl, "tdmrep-over-limit")
    assert "could not be decoded" in rules(cut_crawl, "html-gzip-truncated")
    assert "head could not be read to its end" in rules(cut_crawl, "html-head-over-limit")
