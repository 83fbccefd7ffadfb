"""Superseded by ``examples/study.py`` (the worked study: dated waves, 95 % intervals, the naive
rule against RFC 9309 per agent and per wave, and on the 752 real robots.txt files).

Kept so that older instructions still work: ``python examples/news_uptake.py [--out DIR]`` runs
the study with its report in ``DIR`` (default ``out/news_uptake``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from study import main as study_main  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="out/news_uptake", help="output directory")
    args = parser.parse_args(argv)
    out = Path(args.out)
    return study_main(["--out", str(out / "report"), "--surveys", str(out / "surveys")])


if __name__ == "__main__":
    raise SystemExit(main())
