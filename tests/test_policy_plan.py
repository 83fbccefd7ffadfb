"""The compiled stage-1 plan decides exactly as the plain reading of every file does.

:meth:`Policy.before_fetch` decides through a plan compiled once per set of per-origin files
(:class:`crawler.policy.reservation._SitePlan`); :meth:`Policy._before_fetch_reference` reads every file
afresh for each URL. Their verdicts (decision, reasons and every check, field by field) must be
equal for every file and URL: the real robots.txt files of ``tests/data/real_robots`` (also with
Content-Usage / Content-Signal lines put into their groups, and read as ai.txt), the real
tdmrep.json files, files that could not be fetched or are absent, several tokens, honoured
agents, purposes and signal sets, and URLs built from each file's own rules (escaped, unicode,
with queries and fragments) and at random.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from crawler.optout.model import SiteFile
from crawler.optout.robots import parse_robots
from crawler.policy.reservation import Policy, site_file

DATA = Path(__file__).parent / "data"
REAL = sorted(p for p in (DATA / "real_robots").glob("*.txt"))
TDM = sorted((DATA / "tdmrep_examples" / "deployed").glob("*.json"))
ORIGIN = "https://example.com"

POLICIES = [
    Policy(token="PoliteCrawler", user_agent="PoliteCrawler/1.0 (+https://x.example/bot)",
           honor_agents=("GPTBot", "CCBot")),
    Policy(token="GPTBot", user_agent="GPTBot/1.0 (+https://x.example/bot)",
           honor_agents=("Google-Extended", "ClaudeBot", "anthropic-ai"), purpose="search"),
    Policy(token="CCBot", user_agent="CCBot/1.0 (+https://x.example/bot)",
           purpose="ai-input", signals=("content-usage", "content-signal", "ai-txt", "tdmrep")),
]

_CU = ["train-ai=n", "train-ai=y, search=n", "/news/ train-ai=n", "/ search=y",
       "/*.pdf$ train-ai=n", "/a%2Fb train-ai=n", "tdm=n", "garbage ((", "/%7Euser/ train-ai=n"]
_CS = ["search=yes, ai-train=no", "ai-input=no", "use=immediate", "ai-train=maybe"]


def _with_ai_lines(text: str, rng: random.Random) -> str:
    """The file with Content-Usage / Content-Signal lines after some of its user-agent lines
    (and one outside any group)."""
    out = [f"Content-Signal: {rng.choice(_CS)}"] if rng.random() < 0.3 else []
    for line in text.splitlines():
        out.append(line)
        if line.lower().startswith("user-agent") and rng.random() < 0.5:
            out.append(f"Content-Usage: {rng.choice(_CU)}")
            if rng.random() < 0.5:
                out.append(f"Content-Signal: {rng.choice(_CS)}")
    return "\n".join(out) + "\n"


def _paths(robots_text: str, rng: random.Random, n: int = 24) -> list[str]:
    """Paths from the file's own rules (cut, escaped, extended) and some made up."""
    rules = []
    for line in robots_text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("allow", "disallow", "content-usage") and value.strip():
            rules.append(value.split("#")[0].strip().split(" ")[0])
    rng.shuffle(rules)
    out = ["/", "/robots.txt", "/index.html", "/news/2024/a.html?x=1#frag", "/%7Euser/page",
           "/~user/page", "/a%2Fb/c", "/a/b/c.pdf", "/caf\u00e9/menu", "/%E2%9C%93?q=%2a",
           "/search?q=a b", "/p;params?x"]
    for rule in rules[: n]:
        base = rule.replace("*", rng.choice(["", "x", "a/b"])).rstrip("$") or "/"
        if not base.startswith("/"):
            base = "/" + base
        out.append(base)
        out.append(base + rng.choice(["x", "/y.html", "?q=1", ".pdf", "%20z"]))
        if rng.random() < 0.2:
            out.append(base.replace("a", "%61"))
    for _ in range(6):
        out.append("/" + "/".join(rng.choice(["a", "b", "news", "ai", "%41", "\u00fc", "x.pdf"])
                                  for _ in range(rng.randint(1, 4))))
    return out


def _same(policy: Policy, files: dict[str, SiteFile], paths: list[str],
          licences: dict[str, SiteFile] | None = None) -> None:
    for path in paths:
        url = ORIGIN + path
        got = policy.before_fetch(url, files, licences)
        want = policy._before_fetch_reference(url, files, licences)
        assert got == want, (url, got, want)
        assert got.check_dicts() == [e.to_dict() for e in want.checks]
        assert got.reason_dicts() == [e.to_dict() for e in want.reasons]


def _robots(body: bytes, status: int = 200) -> SiteFile:
    return site_file("robots.txt", ORIGIN + "/robots.txt", status=status, body=body)


_ABSENT = {"tdmrep.json": site_file("tdmrep.json", ORIGIN + "/.well-known/tdmrep.json",
                                    status=404, body=b"not found"),
           "ai.txt": site_file("ai.txt", ORIGIN + "/ai.txt", status=404, body=b"nope")}


@pytest.mark.parametrize("chunk", range(4))
def test_plan_equals_reference_on_real_robots_files(chunk):
    rng = random.Random(1000 + chunk)
    for i, path in enumerate(REAL[chunk::4]):
        body = path.read_bytes()
        text = body.decode("utf-8", "replace")
        # every other file with Content-Usage / Content-Signal lines put into its groups
        variant = body if i % 2 else _with_ai_lines(text, rng).encode()
        files = {"robots.txt": _robots(variant), **_ABSENT}
        _same(POLICIES[i % len(POLICIES)], files, _paths(text, rng, 8))


def test_plan_equals_reference_when_files_are_ai_txt_and_tdmrep():
    rng = random.Random(7)
    tdm_files = [site_file("tdmrep.json", ORIGIN + "/.well-known/tdmrep.json", status=200,
                           body=p.read_bytes()) for p in TDM]
    tdm_files.append(site_file("tdmrep.json", ORIGIN + "/.well-known/tdmrep.json", status=200,
                               body=json.dumps([
                                   {"location": "/news/*", "tdm-reservation": 1},
                                   {"location": "/%7Euser/", "tdm-reservation": 0},
                                   {"location": "/*.pdf$", "tdm-reservation": "1"},
                                   {"location": "/", "tdm-reservation": 0}]).encode()))
    for i, path in enumerate(REAL[::5]):
        text = path.read_text("utf-8", "replace")
        robots = _robots(_with_ai_lines(text, rng).encode())
        ai = site_file("ai.txt", ORIGIN + "/ai.txt", status=200, body=path.read_bytes())
        files = {"robots.txt": robots, "tdmrep.json": tdm_files[i % len(tdm_files)],
                 "ai.txt": ai}
        _same(POLICIES[i % len(POLICIES)], files, _paths(text, rng, 8))


@pytest.mark.parametrize("status", [None, 404, 429, 503])
def test_plan_equals_reference_when_files_are_absent_or_unreachable(status):
    files = {kind: site_file(kind, ORIGIN + p, status=status, body=b"x" if status else b"")
             for kind, p in (("robots.txt", "/robots.txt"),
                             ("tdmrep.json", "/.well-known/tdmrep.json"),
                             ("ai.txt", "/ai.txt"))}
    for policy in POLICIES:
        _same(policy, files, ["/", "/a?b", "/robots.txt"])
        _same(policy, {"robots.txt": files["robots.txt"]}, ["/x"])


def test_plan_equals_reference_with_file_problems_and_licences():
    # a cut robots.txt (problems noted on its evidence) and an RSL licence named by it
    body = b"User-agent: *\nDisallow: /private/\nLicense: https://example.com/license.xml\n"
    cut = site_file("robots.txt", ORIGIN + "/robots.txt", status=200,
                    body=body + b"A" * 600_000, complete=False)
    rsl_doc = (b'<rsl xmlns="https://rslstandard.org/rsl"><content url="/news/*">'
               b'<license><prohibits type="usage">ai-train</prohibits></license></content>'
               b'</rsl>')
    lic = site_file("rsl", "https://example.com/license.xml", status=200, body=rsl_doc)
    for policy in POLICIES:
        files = {"robots.txt": cut, **_ABSENT}
        _same(policy, files, ["/", "/private/x", "/news/a"])
        _same(policy, {"robots.txt": _robots(body), **_ABSENT}, ["/news/a", "/b"],
              licences={"https://example.com/license.xml": lic})


def test_a_file_fetched_again_gets_a_new_plan():
    policy = POLICIES[0]
    old = {"robots.txt": _robots(b"User-agent: *\nDisallow: /a\n"), **_ABSENT}
    new = {"robots.txt": _robots(b"User-agent: *\nDisallow: /b\n"), **_ABSENT}
    assert policy.before_fetch(ORIGIN + "/a", old).denied
    assert not policy.before_fetch(ORIGIN + "/a", new).denied
    assert policy.before_fetch(ORIGIN + "/b", new).denied
    assert not policy.before_fetch(ORIGIN + "/b", old).denied


def test_check_dicts_are_fresh_copies():
    policy = POLICIES[0]
    files = {"robots.txt": _robots(b"User-agent: *\nDisallow: /a\n"), **_ABSENT}
    v = policy.before_fetch(ORIGIN + "/a", files)
    first = v.check_dicts()
    first[0]["outcome"] = "tampered"
    first[0].setdefault("problems", []).append("x")
    assert v.check_dicts() == [e.to_dict() for e in v.checks]
    assert policy.before_fetch(ORIGIN + "/a/b", files).check_dicts()[0]["outcome"] == "deny"


def test_reference_parser_is_the_one_in_the_plan():
    # the plan reads the same parse as the reference: no second parser to drift apart
    rf = parse_robots(b"User-agent: *\nDisallow: /x\n")
    assert rf.verdict("http://a/x", "Bot") == rf.verdict_for_path("/x", ("/x", "/x"), "Bot")
