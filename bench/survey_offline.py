"""Offline survey speed over the 752 real robots.txt files of ``tests/data/real_robots/``.

Ours: :func:`crawler.survey.analysis.analyse_robots_only` per file -- parse, then the block level (full /
partial / none), ``explicit`` and ``/`` for ``*`` and every token of the bundled agent list,
plus Content-Usage, Content-Signal and RSL discovery -- and the JSON line.  Baseline: Protego
alone, ``Protego.parse`` + ``can_fetch("https://HOST/", token)`` for ``*`` and the same tokens
(one URL per token: less than we compute).  Files are read into memory first; the best of
``--repeat`` runs is reported.

Usage::

    python bench/survey_offline.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from protego import Protego

from crawler.survey.agents import load_agents
from crawler.survey.analysis import analyse_robots_only

DATA = ROOT / "tests" / "data" / "real_robots"


def load() -> list[tuple[str, bytes]]:
    return [(p.name[:-4], p.read_bytes()) for p in sorted(DATA.glob("*.txt"))]


def run_ours(files: list[tuple[str, bytes]], agents: tuple) -> float:
    start = time.perf_counter()
    for host, body in files:
        record = analyse_robots_only(host, body, surveyed_at="bench", agents=agents)
        json.dumps(record, ensure_ascii=False)
    return time.perf_counter() - start


def run_protego(files: list[tuple[str, bytes]], tokens: list[str]) -> float:
    start = time.perf_counter()
    for host, body in files:
        parser = Protego.parse(body.decode("utf-8", "replace"))
        url = f"https://{host}/"
        for token in tokens:
            parser.can_fetch(url, token)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="offline survey speed vs Protego")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    files = load()
    agents = load_agents()
    tokens = ["*", *(agent.token for agent in agents)]
    size = sum(len(body) for _, body in files)
    ours = min(run_ours(files, agents) for _ in range(args.repeat))
    base = min(run_protego(files, tokens) for _ in range(args.repeat))
    n = len(files)
    print(f"{n} files, {size / 1e6:.1f} MB, {len(tokens)} tokens each ('*' + agent list)")
    print(f"survey (parse + block levels + JSON): {n / ours:8.1f} files/s ({ours:.2f} s)")
    print(f"Protego (parse + can_fetch '/')     : {n / base:8.1f} files/s ({base:.2f} s)")
    print(f"ratio survey/Protego time           : {ours / base:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
