"""After a real crawl: the WARC file, the transparency summary, the information page."""

from __future__ import annotations

import gzip
import json
import xml.etree.ElementTree as ET

import pytest
from warcio.archiveiterator import ArchiveIterator

from crawler.demo.sites import demo_sites
from crawler.demo.web import LocalWeb

from .conftest import read_jsonl, run_cli, write_config

SITES = ("open", "robots-partial", "tdm-file", "tdm-header", "noai-meta", "rsl")


@pytest.fixture(scope="module")
def crawl(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("after")
    with LocalWeb([s for s in demo_sites() if s.name in SITES]) as web:
        cfg = write_config(tmp / "job.yaml", seeds=[web.origin(n) + "/" for n in SITES],
                           output={"warc": True})
        proc = run_cli("run", str(cfg))
        assert proc.returncode == 0, proc.stderr[-2000:]
    return {"out": tmp / "out", "cfg": cfg, "tmp": tmp, "web": web}


def warc_records(path):
    with open(path, "rb") as fh:
        for rec in ArchiveIterator(fh):
            yield (rec.rec_type, rec.rec_headers.get_header("WARC-Target-URI"),
                   rec.content_stream().read())


def test_warc_holds_exactly_the_corpus_and_the_evidence(crawl):
    out = crawl["out"]
    corpus = {d["url"]: d for d in read_jsonl(out / "corpus.jsonl")}
    recs = list(warc_records(out / "corpus.warc.gz"))
    responses = {u for t, u, _ in recs if t == "response" and u in corpus}
    assert responses == set(corpus)
    metas = [json.loads(body) for t, u, body in recs if t == "metadata"]
    docs = [m for m in metas if m.get("role") == "document"]
    assert {m["audit_seq"] for m in docs} == {d["audit_seq"] for d in corpus.values()}
    # each origin's robots.txt once: a response, or a revisit when the same bytes were archived
    evidence = [u for t, u, _ in recs if t in ("response", "revisit")
                and u.endswith("/robots.txt")]
    assert len(evidence) == len(set(evidence)) == len(SITES)
    for _, _, body in recs:
        assert b"SECRET-" not in body
    with gzip.open(out / "corpus.warc.gz") as fh:
        raw = fh.read()
    assert b"SECRET-" not in raw


def test_transparency_summary_figures(crawl, tmp_path):
    out = crawl["out"]
    proc = run_cli("report", "--transparency", str(out), "--out", str(tmp_path / "t"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads((tmp_path / "t" / "transparency.json").read_text())
    text = json.dumps(data)
    corpus = read_jsonl(out / "corpus.jsonl")
    audit = read_jsonl(out / "audit.jsonl")
    assert str(len(corpus)) in text
    assert str(sum(d["bytes"] for d in corpus)) in text
    assert "PoliteDemoBot" in text and "127.0.0.1" in text
    denied = sum(1 for r in audit if r["decision"] == "deny")
    assert str(denied) in text
    assert (tmp_path / "t" / "transparency.md").read_text().count("127.0.0.1") >= 1


def test_about_page_and_change_feed(crawl, tmp_path):
    cfg = crawl["cfg"]
    site = tmp_path / "site"
    assert run_cli("about", "--out", str(site), "--config", str(cfg)).returncode == 0
    html = (site / "about.html").read_text()
    assert "PoliteDemoBot" in html and "https://example.org/bot" in html
    feed = ET.parse(site / "changes.atom").getroot()
    ns = "{http://www.w3.org/2005/Atom}"

    def changes(feed):  # page-change entries (the others publish the audit checkpoints)
        return [e for e in feed.findall(f"{ns}entry") if e.find(f"{ns}category") is None]

    assert len(changes(feed)) == 1
    # the crawl's run-end checkpoint is published too, and checks out against the log
    assert len(feed.findall(f"{ns}entry")) == 2
    assert run_cli("audit", "verify", str(crawl["out"] / "audit.jsonl"), "--checkpoints",
                   str(site / "changes.atom")).returncode == 0
    before = (site / "changes.atom").read_bytes()
    assert run_cli("about", "--out", str(site), "--config", str(cfg)).returncode == 0
    assert (site / "changes.atom").read_bytes() == before  # nothing changed, no entry
    text = cfg.read_text().replace("honor_agents:\n- GPTBot", "honor_agents:\n- GPTBot\n- CCBot")
    assert text != cfg.read_text()
    cfg2 = tmp_path / "job2.yaml"
    cfg2.write_text(text)
    assert run_cli("about", "--out", str(site), "--config", str(cfg2)).returncode == 0
    feed = ET.parse(site / "changes.atom").getroot()
    assert len(changes(feed)) == 2
    assert "CCBot" in ET.tostring(feed, encoding="unicode")
