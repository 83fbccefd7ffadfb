"""AI opt-outs of the top-100 news sites over 14 monthly snapshots, evaluated correctly.

Reproducible, offline: reads ``tests/data/news_top100_longitudinal.json`` (robots.txt files of
the top-100 news sites, Feb 2025 - Jun 2026; provenance in ``tests/data/README.md``), writes
each snapshot as a directory of ``HOST.txt`` files (in a temporary directory), surveys each with
:func:`crawler.survey.survey_from_dir` -- the analysis ``polite-crawl survey --from-dir`` runs --
and builds the time-series report with :func:`crawler.report.build_report`.

For GPTBot, CCBot and ClaudeBot it prints, per snapshot, the number of sites whose robots.txt
blocks the agent fully (no path may be fetched) and at its root (``/`` disallowed: the figure a
one-URL parser check gives), next to what the naive adjacent-line rule of the data set's own
analyser finds on the same files.  Denominator: the sites whose robots.txt was archived
(the collector stored every non-200 response as empty; those count as unknown).

Usage::

    python examples/news_uptake.py [--out out/news_uptake]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crawler.report import build_report
from crawler.survey import naive_adjacent_block, survey_from_dir

DATA = ROOT / "tests" / "data" / "news_top100_longitudinal.json"
AGENTS = ("GPTBot", "CCBot", "ClaudeBot")
TRACK = ("GPTBot", "CCBot", "ClaudeBot", "Google-Extended", "PerplexityBot", "Bytespider")


def snapshot_name(snapshot: dict) -> str:
    """``2026-06-15_June_2026``: the date and the data set's folder name (two runs share a
    date)."""
    folder = snapshot["csv_path"].split("/")[1]
    return f"{snapshot['date']}_{folder}"


def write_snapshot(snapshot: dict, texts: dict[str, str], directory: Path) -> list[str]:
    """One ``HOST.txt`` per site (empty when the collector stored no robots.txt); returns the
    hosts in rank order."""
    directory.mkdir(parents=True)
    hosts = []
    for site in snapshot["sites"]:
        host = site["fetched_url"].split("/")[2].lower()
        sha = site["robots_sha256"]
        body = texts[sha].encode("utf-8") if sha else b""
        (directory / f"{host}.txt").write_bytes(body)
        hosts.append(host)
    return hosts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="out/news_uptake", help="output directory")
    args = parser.parse_args(argv)
    out = Path(args.out)
    surveys = out / "surveys"
    surveys.mkdir(parents=True, exist_ok=True)
    data = json.loads(DATA.read_text(encoding="utf-8"))
    texts = data["texts"]

    rows = []
    files = []
    with tempfile.TemporaryDirectory() as tmp:
        for snapshot in data["snapshots"]:
            name = snapshot_name(snapshot)
            directory = Path(tmp) / name
            hosts = write_snapshot(snapshot, texts, directory)
            records = list(survey_from_dir(directory, surveyed_at=snapshot["date"],
                                           hosts=hosts))
            path = surveys / f"{name}.jsonl"
            with open(path, "w", encoding="utf-8") as fh:
                fh.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
            files.append(path)
            parsed = [r for r in records if r["robots"]["outcome"] == "parsed"]
            row = {"snapshot": name, "sites": len(records), "with_robots": len(parsed)}
            for agent in AGENTS:
                row[agent] = {
                    "full": sum(r["agents"][agent]["block"] == "full" for r in parsed),
                    "root": sum(r["agents"][agent]["root"] for r in parsed),
                    "any": sum(r["agents"][agent]["block"] != "none" for r in parsed),
                    "naive": sum(naive_adjacent_block((directory / f"{h}.txt").read_bytes(),
                                                      agent)
                                 for h in hosts
                                 if (directory / f"{h}.txt").stat().st_size),
                }
            rows.append(row)
    report = build_report(files, out / "report", track=TRACK)
    (out / "comparison.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")

    print("Sites whose robots.txt blocks each agent, of the sites with an archived robots.txt:")
    print("  full  = no path may be fetched (RFC 9309 groups, this project's parser)")
    print("  /     = the site root '/' is disallowed (what a one-URL parser check counts)")
    print("  naive = a 'User-agent: X' line directly followed by 'Disallow: /'")
    print(f"{'':<26}" + "".join(f" | {agent:^20}" for agent in AGENTS))
    print(f"{'snapshot':<26}" + f" | {'full':>6} {'/':>6} {'naive':>6}" * len(AGENTS))
    for row in rows:
        n = row["with_robots"]
        line = f"{row['snapshot']:<26}"
        for agent in AGENTS:
            f = row[agent]
            line += " | " + " ".join(f"{f[k]:>3}/{n:<2}" for k in ("full", "root", "naive"))
        print(line)
    print(f"\nreport: {out / 'report' / 'report.md'} ({len(report['charts'])} charts)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
