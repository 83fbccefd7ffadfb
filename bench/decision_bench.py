"""Warm stage-1 decision per URL: every signal on, two honoured agents, typical per-origin files.

The origin's files are already fetched and cached (a warm decision): robots.txt is the real file
of median size among the 691 real robots.txt files of ``tests/data/real_robots`` (by bytes),
tdmrep.json and ai.txt answered 404. For N distinct URLs of that origin (paths built from the
file's own rules and at random), prints the time per URL of:

* ``reference``: :meth:`Policy._before_fetch_reference`, every file read afresh per URL (what
  ``before_fetch`` did before the compiled plans);
* ``before_fetch``: the compiled plan (what the crawl uses);
* ``before_fetch + record dicts``: and the checks as record dicts, as the middleware needs them.

Also the same with a robots.txt that has Content-Usage and Content-Signal lines in its groups,
and the largest real file. Best of 5 repeats (the machine is shared: the minimum is the cost).

    python bench/decision_bench.py [--urls 20000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crawler.policy.reservation import Policy, site_file  # noqa: E402

DATA = ROOT / "tests" / "data" / "real_robots"
ORIGIN = "https://www.example.com"


def median_file() -> Path:
    files = json.loads((DATA / "manifest.json").read_text())["files"]
    robots = sorted((f for f in files if f["kind"] == "robots"), key=lambda f: f["bytes"])
    return DATA / robots[len(robots) // 2]["file"]


def largest_file() -> Path:
    files = json.loads((DATA / "manifest.json").read_text())["files"]
    return DATA / max((f for f in files if f["kind"] == "robots"),
                      key=lambda f: f["bytes"])["file"]


def urls_for(text: str, n: int, rng: random.Random) -> list[str]:
    rules = [line.partition(":")[2].split("#")[0].strip() for line in text.splitlines()
             if line.partition(":")[0].strip().lower() in ("allow", "disallow")]
    rules = [r.replace("*", "x").rstrip("$") for r in rules if r.startswith("/")] or ["/"]
    words = ["news", "2024", "article", "index.html", "search", "img", "a.pdf", "user", "p"]
    out = []
    for i in range(n):
        if i % 2:
            path = rng.choice(rules) + "/".join(rng.choice(words) for _ in range(2))
        else:
            path = "/" + "/".join(rng.choice(words) for _ in range(rng.randint(1, 4)))
        out.append(f"{ORIGIN}{path}?id={i}" if i % 5 == 0 else f"{ORIGIN}{path}{i}")
    return out


def timed(fn, urls: list[str], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for url in urls:
            fn(url)
        best = min(best, time.perf_counter() - t0)
    return best / len(urls) * 1e6


def run(label: str, body: bytes, n: int) -> None:
    policy = Policy(token="PoliteCrawler", user_agent="PoliteCrawler/1.0 (+https://x/bot)",
                    honor_agents=("GPTBot", "CCBot"))
    files = {"robots.txt": site_file("robots.txt", ORIGIN + "/robots.txt", status=200,
                                     body=body),
             "tdmrep.json": site_file("tdmrep.json", ORIGIN + "/.well-known/tdmrep.json",
                                      status=404, body=b"<html>not found</html>"),
             "ai.txt": site_file("ai.txt", ORIGIN + "/ai.txt", status=404, body=b"nope")}
    urls = urls_for(body.decode("utf-8", "replace"), n, random.Random(5))
    denied = sum(policy.before_fetch(u, files).denied for u in urls)
    ref = timed(lambda u: policy._before_fetch_reference(u, files), urls[: n // 4])
    plan = timed(lambda u: policy.before_fetch(u, files), urls)
    dicts = timed(lambda u: policy.before_fetch(u, files).check_dicts(), urls)
    print(f"{label:44} {len(body):7d} B  {denied * 100 / n:5.1f} % denied   "
          f"reference {ref:7.1f} us   before_fetch {plan:5.2f} us   "
          f"+ record dicts {dicts:5.2f} us   ({ref / plan:.0f}x)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--urls", type=int, default=20000)
    args = ap.parse_args()
    typical = median_file()
    body = typical.read_bytes()
    print("every signal on, token PoliteCrawler, honour_agents GPTBot and CCBot; "
          f"per URL, best of 5, {args.urls} distinct URLs")
    run(f"median real robots.txt ({typical.name})", body, args.urls)
    lines = []
    for line in body.decode().splitlines():
        lines.append(line)
        if line.lower().startswith("user-agent"):
            lines += ["Content-Usage: train-ai=n", "Content-Usage: /news/ train-ai=y",
                      "Content-Signal: search=yes, ai-train=no"]
    run("  + Content-Usage/Content-Signal in each group", "\n".join(lines).encode(), args.urls)
    big = largest_file()
    run(f"largest real robots.txt ({big.name})", big.read_bytes(), args.urls // 4)


if __name__ == "__main__":
    main()
