"""The survey analysis (crawler.survey.analysis, crawler.survey.agents): block levels under RFC 9309 group
semantics, every mechanism on synthetic inputs, offline inputs (directory, WARC), robustness."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
from pathlib import Path

import pytest

from crawler.optout.robots import parse_robots
from crawler.policy.reservation import site_file
from crawler.survey.agents import Agent, load_agent_list, load_agents
from crawler.survey.analysis import (
    HomepageFetch,
    analyse_origin,
    analyse_robots_only,
    block_level,
    naive_adjacent_block,
    parse_wave_date,
    record_failed,
    robots_agents,
)
from crawler.survey.archives import survey_from_dir, survey_from_warc

DATA = Path(__file__).parent / "data"
ORIGIN = "https://example.com"
WHEN = "2026-06-15T10:00:00Z"
AGENTS = tuple(a for a in load_agents() if a.token in ("GPTBot", "CCBot", "ClaudeBot",
                                                          "AI2Bot", "ChatGPT Agent"))


def agents_of(text: str, *tokens: str) -> dict:
    return robots_agents(parse_robots(text.encode()), tokens)


# --------------------------------------------------------------------------- block levels

# (robots.txt, token, block, explicit, root)
BLOCK_VECTORS = [
    pytest.param("User-agent: GPTBot\nUser-agent: CCBot\nDisallow: /\n", "GPTBot",
                 "full", True, True, id="stacked-user-agent-first"),
    pytest.param("User-agent: GPTBot\nUser-agent: CCBot\nDisallow: /\n", "CCBot",
                 "full", True, True, id="stacked-user-agent-last"),
    pytest.param("User-agent: GPTBot\nCrawl-delay: 5\nUser-agent: CCBot\nDisallow: /\n",
                 "GPTBot", "full", True, True, id="stacked-with-extension-line-between"),
    pytest.param("User-agent: *\nDisallow: /\n", "GPTBot", "full", False, True,
                 id="star-inherited-full"),
    pytest.param("User-agent: *\nDisallow: /search\n", "GPTBot", "partial", False, False,
                 id="star-inherited-partial"),
    pytest.param("User-agent: *\nDisallow: /\n\nUser-agent: GPTBot\nDisallow: /private\n",
                 "GPTBot", "partial", True, False, id="own-group-replaces-star"),
    pytest.param("User-agent: *\nDisallow: /\n\nUser-agent: GPTBot\nDisallow:\n",
                 "GPTBot", "none", True, False, id="own-empty-group-replaces-star"),
    pytest.param("User-agent: *\nDisallow: /\n\nUser-agent: GPTBot\nDisallow:\n",
                 "CCBot", "full", False, True, id="other-agent-keeps-star"),
    pytest.param("User-agent: GPTBot\nDisallow: /\nAllow: /shopping/\n", "GPTBot",
                 "partial", True, True, id="disallow-root-with-allow-section"),
    pytest.param("User-agent: GPTBot\nDisallow: /\nAllow: /$\n", "GPTBot", "partial", True,
                 False, id="homepage-only-allowed"),
    pytest.param("User-agent: GPTBot\nDisallow: /\nAllow: /\n", "GPTBot", "none", True, False,
                 id="tie-goes-to-allow"),
    pytest.param("User-agent: GPTBot\nDisallow: /\nDisallow: /a*\nAllow: /a\n", "GPTBot",
                 "full", True, True, id="allow-overridden-by-longer-disallow"),
    pytest.param("User-agent: GPTBot\nDisallow: /\nDisallow: /a$\nAllow: /a\n", "GPTBot",
                 "partial", True, True, id="allow-opens-beyond-anchored-disallow"),
    pytest.param("User-agent: GPTBot\nDisallow: /\nAllow: /robots.txt$\n", "GPTBot", "full",
                 True, True, id="robots-txt-implicitly-allowed-does-not-count"),
    pytest.param("User-agent: GPTBot\nDisallow: /*\n", "GPTBot", "full", True, True,
                 id="slash-star"),
    pytest.param("User-agent: GPTBot\nDisallow: *\n", "GPTBot", "full", True, True,
                 id="bare-star"),
    pytest.param("User-agent: GPTBot\nDisallow: /*$\n", "GPTBot", "full", True, True,
                 id="slash-star-dollar"),
    pytest.param("User-agent: GPTBot\nDisallow: /$\n", "GPTBot", "partial", True, True,
                 id="only-the-homepage"),
    pytest.param("User-agent: GPTBot\nDisallow: /*.pdf$\n", "GPTBot", "partial", True, False,
                 id="wildcard-partial"),
    pytest.param("User-agent: GPTBot\nDisallow: private\n", "GPTBot", "none", True, False,
                 id="pattern-without-slash-matches-nothing"),
    pytest.param("User-agent: GPTBot\nDisallow: /a\nAllow: /a\n", "GPTBot", "none", True,
                 False, id="disallow-always-overridden"),
    pytest.param("User-agent: gptbot\nDisallow: /\n", "GPTBot", "full", True, True,
                 id="case-insensitive-name"),
    pytest.param("User-agent: GPTBot/1.1\nDisallow: /\n", "GPTBot", "full", True, True,
                 id="version-cut-from-user-agent"),
    pytest.param("User-agent: GPTBot\nDisallow: /a\n\nUser-agent: GPTBot\nDisallow: /\n",
                 "GPTBot", "full", True, True, id="groups-combined"),
    pytest.param("User-agent: GPTBot\nCrawl-delay: 10\n", "GPTBot", "none", True, False,
                 id="group-without-rules"),
    pytest.param("Sitemap: https://example.com/s.xml\n", "GPTBot", "none", False, False,
                 id="no-groups"),
    pytest.param("User-agent: CCBot\nDisallow: /\n", "GPTBot", "none", False, False,
                 id="other-agent-only-no-star"),
    pytest.param("User-agent: *\nDisallow: /\n", "*", "full", True, True, id="star-itself"),
    pytest.param("User-agent: GPTBot\nDisallow: /\n", "*", "none", False, False,
                 id="no-star-group"),
]


@pytest.mark.parametrize(("text", "token", "block", "explicit", "root"), BLOCK_VECTORS)
def test_block_level_vectors(text, token, block, explicit, root):
    entry = agents_of(text, token)[token]
    assert (entry["block"], entry["explicit"], entry["root"]) == (block, explicit, root)


def test_invalid_product_token_matches_lines_written_as_the_token():
    text = "User-agent: AI2Bot\nDisallow: /\n\nUser-agent: *\nDisallow: /x\n"
    robots = parse_robots(text.encode())
    assert robots.groups[0].agents == ("AI",)  # RFC 9309 cuts it at the digit
    agents = robots_agents(robots, ["AI2Bot", "Ai2Bot-Dolma", "GPTBot"])
    assert agents["AI2Bot"] == {"block": "full", "explicit": True, "root": True,
                                "token_valid": False}
    # not named as written: the '*' group applies
    assert agents["Ai2Bot-Dolma"] == {"block": "partial", "explicit": False, "root": False,
                                      "token_valid": False}
    assert "token_valid" not in agents["GPTBot"]
    spaced = agents_of("User-agent: ChatGPT Agent\nDisallow: /\n", "ChatGPT Agent")
    assert spaced["ChatGPT Agent"]["block"] == "full"


def test_block_level_without_groups_is_none():
    assert block_level(()) == "none"


# --------------------------------------------------------------------------- robots outcomes


def test_record_shape_for_a_parsed_robots_txt():
    body = b"User-agent: GPTBot\nUser-agent: CCBot\nDisallow: /\n\nUser-agent: *\nAllow: /\n"
    record = analyse_robots_only("Example.com", body, surveyed_at=WHEN, agents=AGENTS)
    assert list(record) == ["origin", "surveyed_at", "wave", "checked", "robots", "agents",
                            "content_usage", "content_signal", "rsl", "tdmrep", "ai_txt",
                            "homepage", "agent_list"]
    assert record["origin"] == "https://example.com"
    assert record["surveyed_at"] == WHEN and record["checked"] == ["robots.txt"]
    assert record["wave"] is None  # no wave given
    assert record["robots"] == {"status": None, "outcome": "parsed",
                                "sha256": hashlib.sha256(body).hexdigest(),
                                "bytes": len(body), "html": False, "error": None,
                                "problems": []}
    assert list(record["agents"]) == ["*", *(a.token for a in AGENTS)]
    assert record["agents"]["GPTBot"] == {"block": "full", "explicit": True, "root": True}
    assert record["agents"]["ClaudeBot"] == {"block": "none", "explicit": False, "root": False}
    assert record["agents"]["AI2Bot"]["token_valid"] is False
    assert record["agent_list"] == load_agent_list().date == "2026-08-22"
    assert json.loads(json.dumps(record)) == record


def test_default_agent_list_covers_every_token():
    record = analyse_robots_only("example.com", b"User-agent: *\nDisallow: /\n",
                                 surveyed_at=WHEN)
    assert len(record["agents"]) == len(load_agents()) + 1
    assert all(entry["block"] == "full" for entry in record["agents"].values())


@pytest.mark.parametrize("status", [500, 503, 429, None])
def test_unreachable_robots_gives_unknown_agents(status):
    robots = site_file("robots.txt", ORIGIN + "/robots.txt", status=status,
                       body=b"User-agent: *\nDisallow:\n", error=None if status else "timeout")
    record = analyse_origin(ORIGIN, surveyed_at=WHEN, robots=robots, tdmrep=None, ai_txt=None,
                            licences={}, homepage=None, agents=AGENTS)
    assert record["robots"]["outcome"] == "unreachable"
    assert record["robots"]["status"] == status
    assert record["agents"] is None  # unknown: not the site's stance, not counted as a block


def test_unavailable_robots_restricts_nothing():
    record = analyse_robots_only("example.com", b"not found", surveyed_at=WHEN, agents=AGENTS,
                                 status=404)
    assert record["robots"]["outcome"] == "unavailable"
    assert {e["block"] for e in record["agents"].values()} == {"none"}
    assert not any(e["explicit"] for e in record["agents"].values())


def test_html_served_as_robots_txt_is_parsed_and_flagged():
    body = (b"<!DOCTYPE html>\n<html><head><title>Not found</title></head>\n<body>\n"
            b"<p>User-agent: GPTBot</p>\nDisallow: /\n</body></html>\n")
    record = analyse_robots_only("example.com", body, surveyed_at=WHEN, agents=AGENTS,
                                 status=200)
    assert record["robots"]["outcome"] == "parsed"
    assert record["robots"]["html"] is True
    assert any("HTML" in p for p in record["robots"]["problems"])
    # RFC 9309 parse: the '<p>User-agent: GPTBot</p>' line is not a user-agent line, and the
    # rule before any group is ignored.
    assert {e["block"] for e in record["agents"].values()} == {"none"}


@pytest.mark.parametrize(("body", "why"), [(b"", "empty archived file"),
                                           (None, "no archived file")])
def test_archived_file_without_content_is_unknown(body, why):
    record = analyse_robots_only("example.com", body, surveyed_at=WHEN, agents=AGENTS)
    assert record["robots"]["outcome"] == "unknown"
    assert why in record["robots"]["error"]
    assert record["agents"] is None


def test_many_problems_are_capped():
    body = "".join(f"junk line {i}\n" for i in range(300)).encode()
    record = analyse_robots_only("example.com", body, surveyed_at=WHEN, agents=AGENTS)
    problems = record["robots"]["problems"]
    assert len(problems) == 20 and problems[-1].startswith("... and ")


# --------------------------------------------------------------------------- other mechanisms

RSL_DOC = (b'<?xml version="1.0"?>\n<rsl xmlns="https://rslstandard.org/rsl">\n'
           b'<content url="/"><license><prohibits type="usage">ai-train</prohibits>'
           b"</license></content>\n</rsl>\n")
ROBOTS_ALL = (b"License: https://example.com/license.xml\n"
              b"User-agent: *\nAllow: /\nContent-Usage: train-ai=n\n"
              b"Content-Signal: search=yes, ai-train=no\n\n"
              b"User-agent: GPTBot\nDisallow: /\nContent-Usage: /news train-ai=y, bogus=1\n")
HOME_HTML = (b'<html><head><meta name="robots" content="noimageai, noindex">'
             b'<meta name="tdm-reservation" content="1">'
             b'<meta name="content-signal" content="ai-input=no">'
             b'<link rel="license" type="application/rsl+xml" href="/page-license.xml">'
             b"</head><body><p>hello</p></body></html>")


def full_record(**overrides):
    files = {
        "robots": site_file("robots.txt", ORIGIN + "/robots.txt", status=200, body=ROBOTS_ALL),
        "tdmrep": site_file("tdmrep.json", ORIGIN + "/.well-known/tdmrep.json", status=200,
                            body=b'[{"location": "/", "tdm-reservation": 1, '
                                 b'"tdm-policy": "https://example.com/policy.json"}]'),
        "ai_txt": site_file("ai.txt", ORIGIN + "/ai.txt", status=200,
                            body=b"User-Agent: *\nDisallow: *.jpg\nDisallow: *.png\n"),
        "licences": {"https://example.com/license.xml": site_file(
            "rsl", "https://example.com/license.xml", status=200, body=RSL_DOC)},
        "homepage": HomepageFetch(
            status=200,
            headers={"Content-Type": ["text/html; charset=utf-8"], "TDM-Reservation": ["1"],
                     "X-Robots-Tag": ["noai", "googlebot: nosnippet"],
                     "Content-Usage": ["train-ai=n"], "Content-Signal": ["ai-train=no"],
                     "Link": [('<https://example.com/license.xml>; rel="license"; '
                              'type="application/rsl+xml"')]},
            body=HOME_HTML),
    }
    files.update(overrides)
    return analyse_origin(ORIGIN, surveyed_at=WHEN, agents=AGENTS, **files)


def test_every_mechanism_on_one_origin():
    record = full_record()
    assert "failures" not in record
    assert record["checked"] == ["robots.txt", "tdmrep.json", "ai.txt", "homepage"]
    assert record["agents"]["GPTBot"] == {"block": "full", "explicit": True, "root": True}
    assert record["agents"]["*"] == {"block": "none", "explicit": True, "root": False}

    usage = record["content_usage"]
    assert [(r["line"], r["agents"], r["path"], r["terms"]) for r in usage["rules"]] == [
        (4, ["*"], None, {"train-ai": False}),
        (9, ["GPTBot"], "/news", {"train-ai": True}),
    ]
    assert usage["terms"] == {"train-ai": False}  # most restrictive
    assert any("bogus" in p for p in usage["rules"][1]["problems"])
    assert any(p.startswith("line 9: ") for p in usage["problems"])

    signal = record["content_signal"]
    assert signal["rules"][0]["terms"] == {"search": True, "ai-train": False}
    assert signal["terms"] == {"search": True, "ai-train": False}

    tdm = record["tdmrep"]
    assert tdm["outcome"] == "parsed" and tdm["valid"] is True and tdm["reserved"] is True
    assert tdm["root"] == {"tdm-reservation": 1, "tdm-policy": "https://example.com/policy.json",
                           "rule": 0}
    assert tdm["rules"] == [{"location": "/", "tdm-reservation": 1,
                             "tdm-policy": "https://example.com/policy.json"}]

    ai = record["ai_txt"]
    assert ai["spawning_format"] is True
    assert ai["agents"] == {"*": {"block": "partial", "explicit": True, "root": False}}

    licences = record["rsl"]["licences"]
    assert [(lic["url"], lic["named_in"]) for lic in licences] == [
        ("https://example.com/license.xml", ["robots.txt", "link-header"]),
        ("https://example.com/page-license.xml", ["meta"]),
    ]
    first, second = licences
    assert first["outcome"] == "parsed" and first["valid"] is True and first["status"] == 200
    assert first["terms"] == {"ai-train": False}
    assert "prohibits usage ai-train" in first["rule"]
    assert second["outcome"] is None and second["terms"] is None  # named, not fetched

    home = record["homepage"]
    assert home["status"] == 200
    assert home["tdm-reservation"]["reservation"] == 1
    assert home["tdm-reservation"]["header"] == "tdm-reservation: 1"
    assert home["x-robots-tag"]["ai"] == ["noai"]
    assert home["x-robots-tag"]["values"] == ["noai", "googlebot: nosnippet"]
    assert home["content-usage"] == {"value": "train-ai=n", "terms": {"train-ai": False},
                                     "problems": []}
    assert home["content-signal"]["terms"] == {"ai-train": False, "ai-input": False}
    assert home["content-signal"]["meta"] == ["ai-input=no"]
    assert home["meta-robots"]["ai"] == ["noimageai"]
    assert home["rsl-links"] == ["https://example.com/license.xml",
                                 "https://example.com/page-license.xml"]
    assert json.loads(json.dumps(record)) == record


def test_absent_mechanisms_are_null():
    record = full_record(
        robots=site_file("robots.txt", ORIGIN + "/robots.txt", status=200,
                         body=b"User-agent: *\nDisallow: /private\n"),
        tdmrep=site_file("tdmrep.json", ORIGIN + "/.well-known/tdmrep.json", status=404),
        ai_txt=site_file("ai.txt", ORIGIN + "/ai.txt", status=404),
        licences={},
        homepage=HomepageFetch(status=200, headers={"Content-Type": ["text/html"]},
                               body=b"<html><head><title>x</title></head></html>"),
    )
    for key in ("content_usage", "content_signal", "rsl", "tdmrep", "ai_txt"):
        assert record[key] is None, key
    home = record["homepage"]
    for key in ("tdm-reservation", "x-robots-tag", "content-usage", "content-signal",
                "meta-robots", "rsl-links"):
        assert home[key] is None, key


def test_malformed_files_are_kept_with_problems():
    record = full_record(
        tdmrep=site_file("tdmrep.json", ORIGIN + "/.well-known/tdmrep.json", status=200,
                         body=b'{"tdm-reservation": 1}'),
        ai_txt=site_file("ai.txt", ORIGIN + "/ai.txt", status=200,
                         body=b"# Our AI policy\nWe do not allow training on our content.\n"
                              b"Contact us for licensing.\n"),
        licences={"https://example.com/license.xml": site_file(
            "rsl", "https://example.com/license.xml", status=200, body=b"<html>oops</html>")},
    )
    tdm = record["tdmrep"]
    assert tdm["outcome"] == "unavailable" and tdm["valid"] is False
    assert tdm["rules"] is None and "not an array" in tdm["problems"][0]
    ai = record["ai_txt"]
    assert ai["spawning_format"] is False and ai["agents"] is None and ai["problems"]
    lic = record["rsl"]["licences"][0]
    assert lic["valid"] is False and lic["terms"] is None and lic["problems"]


def test_unreachable_files_are_reported_as_such():
    record = full_record(
        tdmrep=site_file("tdmrep.json", ORIGIN + "/.well-known/tdmrep.json", status=503),
        ai_txt=site_file("ai.txt", ORIGIN + "/ai.txt", status=None, error="timeout"),
        homepage=HomepageFetch(status=None, headers={}),
    )
    assert record["tdmrep"]["outcome"] == "unreachable" and record["tdmrep"]["valid"] is None
    assert record["ai_txt"]["outcome"] == "unreachable"
    assert record["ai_txt"]["error"] == "timeout"
    assert record["homepage"]["status"] is None


def test_homepage_meta_is_not_read_from_a_non_html_body():
    record = full_record(homepage=HomepageFetch(
        status=200, headers={"content-type": ["application/json"]},
        body=b'<meta name="robots" content="noai">'))
    assert record["homepage"]["meta-robots"] is None


def test_records_never_raise_on_random_bytes():
    rng = random.Random(20261127)
    pieces = [b"User-agent: ", b"GPTBot", b"*", b"\nDisallow: ", b"/", b"*", b"$", b"\n",
              b"Allow: ", b"Content-Usage: ", b"Content-Signal: ", b"License: ", b"\xff\xfe",
              b"\r", b"<html>", b"%", b"ai-train=no", b"train-ai=n", b"#", b" ", b"\x00"]
    for _ in range(150):
        body = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 60)))
        noise = rng.randbytes(rng.randrange(0, 40))
        record = full_record(
            robots=site_file("robots.txt", ORIGIN + "/robots.txt", status=200, body=body),
            tdmrep=site_file("tdmrep.json", ORIGIN + "/t", status=200, body=noise + body),
            ai_txt=site_file("ai.txt", ORIGIN + "/ai.txt", status=200, body=body),
            licences={"https://example.com/l.xml": site_file(
                "rsl", "https://example.com/l.xml", status=200, body=noise)},
            homepage=HomepageFetch(status=200, headers={"x-robots-tag": [noise.decode("latin-1")],
                                                        "content-usage": [body.decode("latin-1")]},
                                   body=body + noise),
        )
        assert "failures" not in record
        json.dumps(record)


def test_no_crash_and_sane_results_on_the_real_robots_files():
    records = list(survey_from_dir(DATA / "real_robots", surveyed_at=WHEN, agents=AGENTS))
    assert len(records) == 752
    assert not any("failures" in r for r in records)
    outcomes = {r["robots"]["outcome"] for r in records}
    assert outcomes <= {"parsed", "unknown"}
    assert sum(r["robots"]["html"] for r in records) > 10
    for record in records:
        if record["agents"] is not None:
            for entry in record["agents"].values():
                assert entry["block"] in ("full", "partial", "none")
                # full implies the root is disallowed; none implies it is not
                assert entry["root"] or entry["block"] != "full"
                assert not entry["root"] or entry["block"] != "none"


# --------------------------------------------------------------------------- naive rule


@pytest.mark.parametrize(("text", "token", "expected"), [
    ("User-agent: GPTBot\nDisallow: /\n", "GPTBot", True),
    ("User-agent: GPTBot\r\nDisallow: /\r\n", "GPTBot", True),
    ("User-agent: GPTBot\nUser-agent: CCBot\nDisallow: /\n", "GPTBot", False),  # stacked
    ("User-agent: GPTBot\nUser-agent: CCBot\nDisallow: /\n", "CCBot", True),
    ("User-Agent: GPTBot\nDisallow: /\n", "GPTBot", False),  # other spelling
    ("User-agent: gptbot\nDisallow: /\n", "GPTBot", False),  # other case
    ("User-agent: *\nDisallow: /\n", "GPTBot", False),  # '*' group
    ("User-agent: GPTBot\n\nDisallow: /\n", "GPTBot", False),  # blank line between
    ("User-agent: GPTBot\nDisallow: / # all\n", "GPTBot", False),  # comment
    ("User-agent: GPTBot\nAllow: /a\nDisallow: /\n", "GPTBot", False),  # not the first rule
])
def test_naive_adjacent_rule(text, token, expected):
    assert naive_adjacent_block(text.encode(), token) is expected
    assert naive_adjacent_block(text, token) is expected


def test_june_2026_news_snapshot_against_known_figures():
    """tests/data/README.md: on the June 2026 snapshot Protego finds 47 of 95 sites blocking
    GPTBot at '/', the adjacent-line rule far fewer."""
    data = json.loads((DATA / "news_top100_longitudinal.json").read_text(encoding="utf-8"))
    june = data["snapshots"][-1]
    assert june["date"] == "2026-06-15"
    bodies = [data["texts"][s["robots_sha256"]].encode() for s in june["sites"]
              if s["robots_sha256"]]
    assert len(bodies) == 95
    gpt = [t for t in load_agents() if t.token == "GPTBot"]
    records = [analyse_robots_only("news.example", b, surveyed_at=june["date"], agents=gpt)
               for b in bodies]
    assert sum(r["agents"]["GPTBot"]["root"] for r in records) == 47
    assert sum(r["agents"]["GPTBot"]["block"] == "full" for r in records) == 36
    assert sum(naive_adjacent_block(b, "GPTBot") for b in bodies) == 35


# --------------------------------------------------------------------------- from a directory


def test_survey_from_dir(tmp_path):
    snap = tmp_path / "2026-06-15_June"
    snap.mkdir()
    (snap / "a.example.txt").write_bytes(b"User-agent: GPTBot\nDisallow: /\n")
    (snap / "b.example.txt").write_bytes(b"")
    (snap / "c.example.txt").write_bytes(b"<html><body>Not found</body></html>")
    (snap / "d.example.txt").write_bytes(b"\xef\xbb\xbfUser-agent: *\r\nDisallow: /caf\xe9\r\n")
    (snap / "manifest.json").write_text("{}")
    (snap / "sub").mkdir()
    records = list(survey_from_dir(snap, agents=AGENTS))
    assert [r["origin"] for r in records] == ["https://a.example", "https://b.example",
                                              "https://c.example", "https://d.example"]
    assert {r["surveyed_at"] for r in records} == {"2026-06-15"}  # from the directory name
    assert all(r["wave"] == {"date": "2026-06-15", "source": "directory name"} for r in records)
    a, b, c, d = records
    assert a["agents"]["GPTBot"]["block"] == "full"
    assert b["robots"]["outcome"] == "unknown" and b["agents"] is None
    assert c["robots"]["html"] is True and c["agents"]["GPTBot"]["block"] == "none"
    assert d["agents"]["GPTBot"]["block"] == "partial"
    assert any("UTF-8" in p for p in d["robots"]["problems"])


def test_survey_from_dir_with_hosts_and_explicit_date(tmp_path):
    (tmp_path / "a.example.txt").write_bytes(b"User-agent: *\nDisallow: /\n")
    records = list(survey_from_dir(tmp_path, surveyed_at="2025-01-01", agents=AGENTS,
                                   hosts=["missing.example", "a.example"]))
    assert [r["origin"] for r in records] == ["https://missing.example", "https://a.example"]
    assert records[0]["robots"]["outcome"] == "unknown"
    assert records[0]["robots"]["error"] == "no archived file"
    assert records[1]["agents"]["*"]["block"] == "full"
    assert {r["surveyed_at"] for r in records} == {"2025-01-01"}
    assert records[0]["wave"] == {"date": "2025-01-01", "source": "given"}


def test_survey_from_dir_dates_by_file_time_otherwise(tmp_path):
    path = tmp_path / "a.example.txt"
    path.write_bytes(b"User-agent: *\nDisallow:\n")
    os.utime(path, (1_780_000_000, 1_780_000_000))
    (record,) = survey_from_dir(tmp_path, agents=AGENTS)
    assert record["surveyed_at"] == "2026-05-28T20:26:40Z"
    # a file time says when the files were copied, not when they were fetched: no wave date
    assert record["wave"] == {"date": None, "source": "file times"}


@pytest.mark.parametrize("name", ["2026-06", "June_2026", "2026-13-01_x", "20260615"])
def test_a_directory_name_without_a_full_valid_date_gives_an_undated_wave(tmp_path, name):
    snap = tmp_path / name
    snap.mkdir()
    (snap / "a.example.txt").write_bytes(b"User-agent: *\nDisallow: /\n")
    (record,) = survey_from_dir(snap, agents=AGENTS)
    assert record["wave"] == {"date": None, "source": "file times"}
    # an explicit date wins over everything and is recorded as given
    (record,) = survey_from_dir(snap, agents=AGENTS, date="2026-06-15")
    assert record["wave"] == {"date": "2026-06-15", "source": "given"}
    assert record["surveyed_at"] == "2026-06-15"


@pytest.mark.parametrize("text", ["2026-06", "2026-02-30", "15.06.2026", "2026-06-15T10:00",
                                  " ", "2026-6-15"])
def test_parse_wave_date_rejects_what_is_not_a_calendar_date(text):
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        parse_wave_date(text)
    assert parse_wave_date(" 2024-02-29 ") == "2024-02-29"


def test_record_failed():
    ok = analyse_robots_only("a.example", b"User-agent: *\nDisallow: /\n", surveyed_at=WHEN,
                             agents=AGENTS)
    assert record_failed(ok) is False
    assert record_failed(analyse_robots_only("a.example", b"", surveyed_at=WHEN, agents=AGENTS,
                                             status=404)) is False  # 4xx: a reading
    for status in (503, 429):
        assert record_failed(analyse_robots_only("a.example", b"", surveyed_at=WHEN,
                                                 agents=AGENTS, status=status))
    assert record_failed(analyse_robots_only("a.example", None, surveyed_at=WHEN,
                                             agents=AGENTS))  # unknown
    assert record_failed({**ok, "homepage_error": "ConnectionRefusedError: refused"})
    assert record_failed({**ok, "failures": ["agents: analysis failed (KeyError)"]})
    assert record_failed({**ok, "tdmrep": {"outcome": "unreachable"}})
    assert not record_failed({**ok, "tdmrep": {"outcome": "parsed"}})
    assert record_failed({**ok, "robots": None})


# --------------------------------------------------------------------------- from WARC


def write_warc(path: Path) -> None:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with open(path, "wb") as fh:
        writer = WARCWriter(fh, gzip=True)

        def response(uri, status, body, date, extra=()):
            http = StatusAndHeaders(f"{status} X", [("Content-Type", "text/plain"), *extra],
                                    protocol="HTTP/1.1")
            record = writer.create_warc_record(
                uri, "response", payload=io.BytesIO(body), length=len(body), http_headers=http,
                warc_headers_dict={"WARC-Date": date})
            writer.write_record(record)

        response("https://a.example/robots.txt", 200, b"User-agent: GPTBot\nDisallow: /\n",
                 "2024-05-01T10:00:00Z")
        response("https://b.example/robots.txt", 404, b"Not found", "2024-05-01T10:00:01Z")
        response("http://c.example:8080/robots.txt", 503, b"busy", "2024-05-01T10:00:02Z")
        response("https://a.example/index.html", 200, b"<html></html>", "2024-05-01T10:00:03Z")
        response("https://d.example/robots.txt", 200,
                 gzip.compress(b"User-agent: *\nDisallow: /\n"), "2024-05-01T10:00:04Z",
                 extra=[("Content-Encoding", "gzip")])
        request = writer.create_warc_record(
            "https://e.example/robots.txt", "request", payload=io.BytesIO(b""), length=0,
            http_headers=StatusAndHeaders("GET /robots.txt HTTP/1.1", [("Host", "e.example")],
                                          is_http_request=True),
            warc_headers_dict={"WARC-Date": "2024-05-01T10:00:05Z"})
        writer.write_record(request)


def test_survey_from_warc(tmp_path):
    warc = tmp_path / "robots.warc.gz"
    write_warc(warc)
    records = list(survey_from_warc([warc], agents=AGENTS))
    assert [(r["origin"], r["robots"]["status"], r["robots"]["outcome"], r["surveyed_at"])
            for r in records] == [
        ("https://a.example", 200, "parsed", "2024-05-01T10:00:00Z"),
        ("https://b.example", 404, "unavailable", "2024-05-01T10:00:01Z"),
        ("http://c.example:8080", 503, "unreachable", "2024-05-01T10:00:02Z"),
        ("https://d.example", 200, "parsed", "2024-05-01T10:00:04Z"),
    ]
    a, b, c, d = records
    assert a["agents"]["GPTBot"]["block"] == "full"
    assert b["agents"]["GPTBot"]["block"] == "none"
    assert c["agents"] is None
    assert d["agents"]["GPTBot"]["block"] == "full"  # content encoding removed
    assert a["wave"] == {"date": "2024-05-01", "source": "capture time"}
    dated = list(survey_from_warc([warc], agents=AGENTS, date="2024-06-01"))
    assert {json.dumps(r["wave"]) for r in dated} == {
        json.dumps({"date": "2024-06-01", "source": "given"})}


def test_broken_warc_is_reported(tmp_path):
    good = tmp_path / "good.warc.gz"
    write_warc(good)
    bad = tmp_path / "bad.warc.gz"
    bad.write_bytes(b"<html><body>not a WARC file</body></html>\n")
    errors: list[str] = []
    records = list(survey_from_warc([bad, good], agents=AGENTS, errors=errors))
    assert len(records) == 4
    assert len(errors) == 1 and "bad.warc.gz" in errors[0]
    with pytest.raises(ValueError, match="errors=\\[\\]"):
        list(survey_from_warc([bad], agents=AGENTS))


# --------------------------------------------------------------------------- agent list


def test_agent_list_is_bundled_with_its_provenance():
    agents = load_agents()
    listing = load_agent_list()
    assert len(agents) == 166
    assert listing.source["repository"] == "https://github.com/ai-robots-txt/ai.robots.txt"
    assert listing.date == "2026-08-22"
    by_token = {a.token: a for a in agents}
    gpt = by_token["GPTBot"]
    assert isinstance(gpt, Agent)
    assert (gpt.company, gpt.company_inferred, gpt.token_valid) == ("OpenAI", False, True)
    assert gpt.purpose == gpt.function == "Scrapes data to train OpenAI's products."
    assert by_token["AI2Bot"].token_valid is False
    assert by_token["Claude-Code"].company == "Anthropic"
    assert by_token["Claude-Code"].company_inferred is True
    assert by_token["FacebookBot"].company == "Meta"
    assert by_token["Lightpanda"].company is None
    with pytest.raises(AttributeError):
        gpt.token = "x"  # type: ignore[misc]



