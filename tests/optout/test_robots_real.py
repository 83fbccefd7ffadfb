"""Real robots.txt files (tests/data/real_robots): never raise, and agree with Protego where the
two are meant to agree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crawler.optout.robots import ROBOTS_PARSE_LIMIT, RobotsVerdict, parse_robots

REAL = Path(__file__).resolve().parent.parent / "data" / "real_robots"
MANIFEST: dict[str, Any] = json.loads((REAL / "manifest.json").read_text(encoding="utf-8"))
FILES = sorted(
    path
    for path in REAL.rglob("*")
    if path.is_file() and path.name not in {"manifest.json", "sources.md"}
)
TOKENS = ("GPTBot", "CCBot", "Googlebot", "MyBot", "anthropic-ai", "*", "", "Foo Bar")
URLS = (
    "https://example.com/",
    "https://example.com/robots.txt",
    "https://example.com/search?q=a%2fb",
    "https://example.com/wp-admin/admin-ajax.php",
    "https://example.com/images/a.jpg",
    "https://example.com/ツ/page.html#frag",
    "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w/x/y/z.html?" + "x" * 500,
)


def test_data_is_complete() -> None:
    assert len(FILES) == MANIFEST["count_site_files"] + 1 == 753
    names = {entry["file"] for entry in MANIFEST["files"]}
    assert names == {path.relative_to(REAL).as_posix() for path in FILES}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(REAL).as_posix())
def test_parse_and_evaluate_never_raise(path: Path) -> None:
    body = path.read_bytes()
    robots = parse_robots(body)
    assert robots.size == len(body)
    assert robots.truncated is (len(body) > ROBOTS_PARSE_LIMIT)
    for problem in robots.problems:
        problem.encode("utf-8")  # printable in an audit record
    for token in TOKENS:
        robots.crawl_delay(token)
        robots.request_rate(token)
        for url in URLS:
            verdict = robots.verdict(url, token)
            assert isinstance(verdict, RobotsVerdict)
            if verdict.rule is not None:
                verdict.rule.text.encode("utf-8")
    assert robots.verdict("https://example.com/robots.txt", "GPTBot").allowed is True


def test_largest_file_is_truncated() -> None:
    robots = parse_robots((REAL / "docs.oracle.com.txt").read_bytes())
    assert robots.size == 852_930
    assert robots.truncated is True
    assert robots.problems[0].startswith("file truncated at 512000 bytes")


def test_ai_robots_txt_template() -> None:
    robots = parse_robots((REAL / "_templates" / "ai-robots-txt-project.robots.txt").read_bytes())
    verdict = robots.verdict("https://example.com/", "GPTBot")
    assert (verdict.allowed, verdict.agent, verdict.explicit) == (False, "GPTBot", True)
    assert robots.verdict("https://example.com/", "MyBot").allowed is True


def _protego_allows(body: bytes, token: str, url: str) -> bool:
    from protego import Protego  # the comparison only; our modules never import it

    # Scrapy's RobotsTxtMiddleware hands Protego the body decoded leniently.
    return Protego.parse(body.decode("utf-8", "ignore")).can_fetch(url, token)


def test_agreement_with_protego_for_gptbot_root() -> None:
    """Protego matches user-agents by substring and stops a run of user-agent lines at some
    non-rule lines, so a few files differ; at least 95% must agree.
    """
    entries = [entry for entry in MANIFEST["files"] if entry["kind"] == "robots"]
    assert len(entries) >= 600
    disagreements = []
    for entry in entries:
        body = (REAL / entry["file"]).read_bytes()
        ours = parse_robots(body).verdict("https://example.com/", "GPTBot").allowed
        theirs = _protego_allows(body, "GPTBot", "https://example.com/")
        if ours != theirs:
            disagreements.append(f"{entry['file']}: ours={ours} protego={theirs}")
    agreement = 1 - len(disagreements) / len(entries)
    assert agreement >= 0.95, "\n".join(disagreements)
