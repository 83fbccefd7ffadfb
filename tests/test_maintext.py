"""Main-content text (crawler/corpus/maintext.py): boilerplate out, bounded, never a crash, never a
request; the ``text:`` config key."""

from __future__ import annotations

import logging
import socket
import time

import pytest
from parsel import Selector

from crawler.config.job import ConfigError, parse_config
from crawler.corpus import maintext
from crawler.corpus.maintext import main_text

PARAGRAPHS = "".join(
    f"<p>The river keeps its own calendar; in part {i} the ferryman counts the floods by the "
    "marks cut into his door, and the village learns to read them before the rain.</p>"
    for i in range(6))
BOILERPLATE = ("We use cookies to improve your experience", "Subscribe to our newsletter",
               "All rights reserved", "Shop the spring sale")
PAGE = f"""<!DOCTYPE html><html><head><title>The ferryman</title></head><body>
<div id="cookie-banner" class="cookie-consent"><p>{BOILERPLATE[0]}. Accept all.</p></div>
<header><nav><ul><li><a href="/">Home</a></li><li><a href="/sale">{BOILERPLATE[3]}</a></li>
</ul></nav></header>
<main><article><h1>The ferryman's calendar</h1>{PARAGRAPHS}</article></main>
<aside><a href="/subscribe">{BOILERPLATE[1]}</a></aside>
<footer><p>Copyright 2026 Example Media. {BOILERPLATE[2]}.</p></footer>
<img src="http://192.0.2.1/pixel.gif"><iframe src="http://192.0.2.1/ad"></iframe>
<link rel="canonical" href="http://192.0.2.1/canonical">
</body></html>"""


def extract(page: str, **kw):
    return main_text(Selector(text=page, type="html").root, page, url="http://127.0.0.1/", **kw)


def test_the_main_content_without_the_boilerplate():
    found = extract(PAGE)
    assert found.problem is None
    assert "The ferryman's calendar" in found.text
    assert "in part 5 the ferryman counts the floods" in found.text
    for text in BOILERPLATE:
        assert text not in found.text


def test_the_same_page_gives_the_same_text():
    # no deduplication across pages: with trafilatura's process-wide cache, the second call
    # would return nothing (its text was "seen")
    assert extract(PAGE).text == extract(PAGE).text is not None


def test_the_extractor_built_once_gives_what_the_keyword_call_gives():
    # main_text reuses one trafilatura Extractor (copied per page with its URL); on the
    # demo web's pages and this one, trafilatura's own keyword path gives the same text
    from crawler.demo.sites import demo_sites

    extract_fn, config = maintext._trafilatura()
    pages = [PAGE, PAGE.replace("<main>", "<div>").replace("</main>", "</div>")]
    pages += [p.body if isinstance(p.body, str) else p.body.decode("utf-8", "replace")
              for site in demo_sites() for p in site.pages.values()
              if p.content_type.startswith("text/html")]
    assert len(pages) > 20
    for page in pages:
        root = Selector(text=page, type="html").root
        url = "http://127.0.0.1/x"
        with maintext._quietly():
            expected = extract_fn(root, url=url, config=config, **maintext.EXTRACT_OPTIONS)
            assert extract_fn(root, options=maintext._options(url)) == expected


def test_the_parsed_tree_is_not_changed():
    root = Selector(text=PAGE, type="html").root
    before = len(list(root.iter()))
    main_text(root, PAGE)
    assert len(list(root.iter())) == before  # the spider follows links from it afterwards


def test_no_request_is_made(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"trafilatura tried to connect: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    assert extract(PAGE).text


def test_a_page_without_main_content_says_so_quietly(caplog):
    caplog.set_level(logging.DEBUG)
    page = "<html><head><title>t</title></head><body><img src='/a.png'></body></html>"
    assert extract(page).problem == "no-main-content"
    assert not [r for r in caplog.records if r.name.startswith("trafilatura")]


def test_too_many_elements_is_not_given_to_trafilatura():
    page = "<html><body>" + "<p>word word word</p>" * 3000 + "</body></html>"
    start = time.perf_counter()
    found = extract(page, max_elements=1000)
    assert found == maintext.MainText(None, "too-many-elements")
    assert time.perf_counter() - start < 0.5
    assert extract(page, max_elements=5000).problem is None  # within the bound: extracted


@pytest.mark.parametrize(("page", "problem"), [
    ("<html><body>" + "<div>" * 5000 + "deep text " * 50 + "</div>" * 5000 + "</body></html>",
     "too-deep"),
    ("<html><body>" + "<div><span>x" * 5000 + "</body></html>", "too-deep"),
    ("<html><body>" + "<div>" * 400 + "deep text " * 50 + "</div>" * 400 + "</body></html>",
     None),
    ("<html><body><table>" + "<tr><td>a" * 3000 + "</table></body></html>", None),
], ids=["nested", "nested-unclosed", "nested-within-bound", "unclosed-table"])
def test_hostile_pages_end_in_time_and_never_raise(page, problem):
    start = time.perf_counter()
    found = extract(page)
    assert found.problem == problem
    assert (found.text is None) == (problem is not None)
    assert time.perf_counter() - start < 3  # 5 s at depth 2,048 unbounded (lxml's most)


def test_an_exception_inside_trafilatura_is_a_fallback(monkeypatch):
    maintext._trafilatura()

    def broken(*args, **kwargs):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setitem(maintext._state, "extract", broken)
    assert extract(PAGE) == maintext.MainText(None, "error: RecursionError")


CFG = {"user_agent": "PoliteDemoBot/1.0 (+https://example.org/bot)", "seeds": []}


def test_text_config_key():
    assert "POLITE_TEXT" not in parse_config(CFG).scrapy_settings()  # default: the setting's
    assert parse_config({**CFG, "text": "visible"}).scrapy_settings()["POLITE_TEXT"] == "visible"
    assert parse_config({**CFG, "settings": {"POLITE_TEXT": "visible"}}).scrapy_settings()[
        "POLITE_TEXT"] == "visible"
    with pytest.raises(ConfigError, match=r"^text: 'boilerplate' is not one of main, visible"):
        parse_config({**CFG, "text": "boilerplate"})
    with pytest.raises(ConfigError, match=r"^text: expected a string"):
        parse_config({**CFG, "text": True})
    with pytest.raises(ConfigError, match=r"^settings.POLITE_TEXT: 'all' is not one of"):
        parse_config({**CFG, "settings": {"POLITE_TEXT": "all"}})


def test_text_config_key_is_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert "| `text` | `main` \\| `visible` | `main` |" in readme


def test_a_bad_text_mode_on_the_command_line_is_one_line(tmp_path):
    import subprocess
    import sys

    import yaml

    cfg = tmp_path / "job.yaml"
    cfg.write_text(yaml.safe_dump({**CFG, "seeds": ["http://127.0.0.1:9/"]}))
    for args, line in (
            (["-s", "POLITE_TEXT=boilerplate"],
             "polite-crawl: POLITE_TEXT: 'boilerplate' is not one of main, visible\n"),
            ([], None)):
        proc = subprocess.run([sys.executable, "-m", "crawler", "run", str(cfg), "--dry-run",
                               *args], capture_output=True, text=True, timeout=60)
        if line:
            assert (proc.returncode, proc.stderr) == (2, line)
        else:
            assert proc.returncode == 0, proc.stderr


def test_trafilatura_makes_no_log_record_during_our_call_and_logs_again_after(caplog):
    # its debug lines are not even built while we extract (a record made and then dropped
    # costs ~1 % of a crawl); outside our calls its loggers work as before
    caplog.set_level(logging.DEBUG)
    made = []
    factory = logging.getLogRecordFactory()

    def counting(*args, **kwargs):
        record = factory(*args, **kwargs)
        if record.name.split(".")[0] in ("trafilatura", "justext", "htmldate", "courlan"):
            made.append(record.name)
        return record

    logging.setLogRecordFactory(counting)
    try:
        assert extract(PAGE).text
        page = "<html><head><title>t</title></head><body><img src='/a.png'></body></html>"
        assert extract(page).problem == "no-main-content"
        assert made == []
        logging.getLogger("trafilatura.core").debug("after our call")
    finally:
        logging.setLogRecordFactory(factory)
    assert made == ["trafilatura.core"]
    assert [r.getMessage() for r in caplog.records if r.name == "trafilatura.core"] == [
        "after our call"]
