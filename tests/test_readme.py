"""The README's tables are the code's tables."""

from pathlib import Path

from crawler.policy.reservation import failure_policy_markdown

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_failure_policy_table_matches_code():
    assert failure_policy_markdown() in README


def test_quickstart_is_two_make_commands():
    assert "make demo" in README and "make test" in README
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "make test" in ci


def test_purpose_table_matches_code():
    from crawler.policy.reservation import purpose_table_markdown

    assert purpose_table_markdown() in README
