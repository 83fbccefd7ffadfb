"""The install extras: crawler/extras.py, pyproject.toml and the README say the same."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from crawler.extras import ENABLES, EXTRAS, MissingExtra, extras_table_markdown, require

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    """The distribution a requirement names (``scrapy-redis>=0.9.1,<0.10`` -> ``scrapy-redis``),
    normalised as PEP 503 does."""
    name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    assert name is not None, requirement
    return re.sub(r"[-_.]+", "-", name.group(0)).lower()


def test_extras_match_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    optional = project["optional-dependencies"]
    assert set(optional) == set(EXTRAS) | {"all", "test"}
    for extra, dists in EXTRAS.items():
        assert tuple(_name(r) for r in optional[extra]) == dists, extra
    assert optional["all"] == [f"polite-crawler[{','.join(EXTRAS)}]"]
    # no extra's distribution is a base dependency too (else "lean" would not be)
    base = {_name(r) for r in project["dependencies"]}
    assert not base & {d for dists in EXTRAS.values() for d in dists}


def test_readme_install_table_matches_extras():
    assert set(ENABLES) == set(EXTRAS)
    assert extras_table_markdown() in (ROOT / "README.md").read_text(encoding="utf-8")


def test_require_names_the_extra_in_one_line():
    with pytest.raises(MissingExtra) as info:
        require("polite_crawler_no_such_module", "report", "report")
    msg = str(info.value)
    assert "\n" not in msg and "[report]" in msg and "pip install 'polite-crawler[report]'" in msg
    assert require("json", "report", "report").dumps([]) == "[]"
    with pytest.raises(ValueError):
        require("json", "no-such-extra", "x")
