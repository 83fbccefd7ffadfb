"""The worked study (examples/study.py): regenerated from the bundled data, it equals the report
in examples/study/, its waves are dated and in date order, and the README's headline paragraph is
the one written from its report.json."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STUDY = ROOT / "examples" / "study"
STALE = "examples/study/ is out of step with the code: run `python examples/study.py`"


def load_study():
    spec = importlib.util.spec_from_file_location("study", ROOT / "examples" / "study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    study = load_study()
    out = tmp_path_factory.mktemp("study")
    assert study.main(["--out", str(out / "report"), "--surveys", str(out / "surveys")]) == 0
    report = json.loads((out / "report" / "report.json").read_text(encoding="utf-8"))
    return study, out, report


def test_the_committed_study_is_the_regenerated_one(regenerated):
    _, out, report = regenerated
    committed = json.loads((STUDY / "report.json").read_text(encoding="utf-8"))
    assert committed == report, STALE
    for name in ("report.md", "report.html"):
        assert (STUDY / name).read_text(encoding="utf-8") == (
            out / "report" / name).read_text(encoding="utf-8"), STALE
    assert sorted(p.name for p in STUDY.glob("*.png")) == sorted(report["charts"])


def test_the_readme_headline_comes_from_the_report(regenerated):
    study, _, report = regenerated
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert " ".join(study.headline_markdown(report).split()) in readme, (
        "README's headline paragraph differs from the study's report.json; paste the paragraph "
        "`python examples/study.py` prints into the README section 'Surveys and reports'")


def test_dated_waves_intervals_and_naive_comparison(regenerated):
    study, out, report = regenerated
    waves = report["figures"]["waves"]
    assert len(waves) == 14
    assert [w["date"] for w in waves] == sorted(w["date"] for w in waves)
    assert {w["date_source"] for w in waves} == {"given"}
    assert all(json.loads(line)["wave"]["source"] == "given"
               for f in (out / "surveys").glob("*.jsonl")
               for line in f.read_text(encoding="utf-8").splitlines()[:1])
    comparison = report["figures"]["extra"]["naive_vs_rfc"]
    assert [c["wave"] for c in comparison] == [w["label"] for w in waves]
    june = comparison[-1]["agents"]["GPTBot"]
    # the June 2026 figures known independently (tests/data/README.md, tests/test_survey.py)
    assert (june["root"]["count"], june["full"]["count"], june["naive"]["count"],
            june["sites"]) == (47, 36, 35, 95)
    assert june["root"]["ci95"] == [39.6, 59.4]
    tables = report["tables"]
    for agent in study.AGENTS:
        rows = tables[f"naive_{agent}"]["rows"]
        assert len(rows) == 14 and all("[" in cell for row in rows for cell in row[1:])
    real = report["figures"]["extra"]["real_robots"]
    assert real["files"] == 752
    assert sum(g["files"] for name, g in real["by_source"].items()
               if name != "all 752 files") == 752
    assert "naive_vs_rfc.png" in report["charts"]
    glossary = {row[0] for row in tables["glossary"]["rows"]}
    assert {"naive rule", "/ but not naive", "gap: / minus naive"} <= glossary
