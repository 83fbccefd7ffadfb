"""One settings table (crawler/config/table.py): the README's table, the defaults, the YAML keys
and the validation all come from it, and it names every ``POLITE_*`` setting the code reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from scrapy.settings import Settings

from crawler.config import table
from crawler.config.job import KNOWN_KEYS, ConfigError, check_settings, parse_config

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
UA = "T/1 (+https://x.org)"
GOOD = {"job": "t", "user_agent": UA, "seeds": ["https://example.org/"]}

#: ``POLITE_*`` names the code reads that are environment variables, not settings
ENVIRONMENT = {"POLITE_CLUSTER_SECRET"}


def test_readme_settings_table_is_generated_from_the_table():
    assert table.readme_section(README) == table.markdown(), (
        "README.md's settings table is out of step: paste crawler.config.table.markdown() "
        "between its two marker lines")


def test_every_setting_is_in_the_readme_once():
    for row in table.SETTINGS:
        assert table.readme_section(README).count(f"| `{row.name}` |") == 1


def test_defaults_modules_are_the_table():
    from crawler.cluster import defaults as cluster_defaults
    from crawler.crawl import defaults

    def polite(module):
        return {n: v for n, v in vars(module).items() if n.startswith("POLITE_")}

    assert polite(defaults) == table.defaults("crawl")
    assert polite(cluster_defaults) == table.defaults("cluster")
    with pytest.raises(AttributeError, match="POLITE_NO_SUCH"):
        defaults.POLITE_NO_SUCH  # noqa: B018


def test_yaml_keys_map_one_to_one_to_known_config_keys():
    keys = [row.yaml for row in table.SETTINGS if row.yaml]
    assert len(keys) == len(set(keys))
    for key in keys:
        assert key.split(".")[0] in KNOWN_KEYS, key
    # every config key of ours is a setting's, but the config's own and Scrapy's
    own = {"seeds", "settings", "max_pages", "max_depth", "operator", "output", "cluster",
           "identity", "audit", "payment"}
    assert KNOWN_KEYS - own <= {k.split(".")[0] for k in keys}


def test_a_job_config_sets_only_table_settings():
    full = parse_config({**GOOD, "identity": {"key_file": "k.pem",
                                              "signature_agent": "https://c.example",
                                              "signature_validity": 30},
                         "payment": {"max_price": "USD 0.01", "budget": "USD 5"},
                         "sitemaps": True, "text": "visible"})
    for name in full.scrapy_settings():
        if name.startswith("POLITE_"):
            assert table.is_known(name), name


def test_choices_are_the_codes():
    from crawler.config import job
    from crawler.corpus.documents import KINDS
    from crawler.corpus.maintext import TEXT_MODES
    from crawler.policy.reservation import PURPOSES, SWITCHABLE_SIGNALS

    assert table.PURPOSES == PURPOSES
    assert table.SIGNALS == SWITCHABLE_SIGNALS
    assert table.TEXT_MODES == TEXT_MODES
    assert table.COLLECT_KINDS == KINDS == job.COLLECT_KINDS
    assert table.FOLLOW_MODES == job.FOLLOW_MODES and table.USER_TYPES == job.USER_TYPES


def test_defaults_written_elsewhere_agree():
    from crawler.identity.websig import DEFAULT_VALIDITY

    assert table.default("POLITE_SIGNATURE_VALIDITY") == DEFAULT_VALIDITY
    pytest.importorskip("redis")
    from crawler.cluster.gate import SPACING_MODES
    from crawler.cluster.store import SECRET_ENV

    assert table.SPACINGS == SPACING_MODES
    assert table.default("POLITE_CLUSTER_SECRET_ENV") == SECRET_ENV


def _code_files():
    for path in sorted((ROOT / "crawler").rglob("*.py")):
        if path.name != "table.py":
            yield path, path.read_text(encoding="utf-8")


def test_every_polite_name_the_code_reads_is_in_the_table_and_every_row_is_read():
    read: set[str] = set()
    for _path, text in _code_files():
        read |= set(re.findall(r'"(POLITE_[A-Z0-9_]*[A-Z0-9])"', text))
    assert read - set(table.BY_NAME) - ENVIRONMENT == set()
    # no dead row: each is read (or set) somewhere besides the table
    everything = "\n".join(text for _p, text in _code_files())
    for row in table.SETTINGS:
        assert re.search(rf"\b{row.name}\b", everything), f"{row.name}: read by nothing"


def test_adding_a_row_is_one_line():
    row = table.Setting("POLITE_SITECACHE_CLASS", "str", "crawler.crawl.sitecache.SiteCache",
                        "the per-origin file cache's class (a cluster add-on sets its own)")
    assert table.problem(row.name, 1) is None  # not in the table: not checked
    assert row.spelling == "POLITE_SITECACHE_CLASS"


# --- validation: any way a value is given -------------------------------------------------------

@pytest.mark.parametrize(
    "name, value, words",
    [("POLITE_UNDECIDED_RETRIES", "two", "'two' is not a whole number"),
     ("POLITE_RESUME", "maybe", "'maybe' is not true/false"),
     ("POLITE_FOLLOW", "everywhere", "'everywhere' is not one of same-origin"),
     ("POLITE_OPERATOR_USER_TYPE", "pirate", "is not one of commercial"),
     ("POLITE_SITE_CACHE_TTL", "-1", "'-1' is below 0"),
     ("POLITE_SIGNATURE_VALIDITY", "x", "'x' is not a number"),
     ("POLITE_SCOPE", "[1", "is not a mapping")],
)
def test_a_bad_value_names_both_spellings(name, value, words):
    with pytest.raises(ConfigError) as exc:
        check_settings(Settings({name: value}))
    msg = str(exc.value)
    assert msg.startswith(table.spelling(name) + ": ") and words in msg and "\n" not in msg
    row = table.BY_NAME[name]
    if row.yaml:
        assert f"job config: {row.yaml}" in msg


def test_good_values_pass_as_scrapy_reads_them():
    check_settings(Settings({"POLITE_RESUME": "false", "POLITE_WARC": "1",
                             "POLITE_UNDECIDED_RETRIES": "3", "POLITE_SIGNALS": "robots,tdmrep",
                             "POLITE_SCOPE": '{"max_pages_per_origin": 5}',
                             "POLITE_OUTPUT_DIR": Path("x"), "POLITE_OPERATOR_COUNTRY": None,
                             **table.defaults()}))


def test_registries_through_the_addon_are_validated_not_a_key_error(tmp_path):
    for bad, where in [([{"path": "x"}], "POLITE_REGISTRIES[0].type"),
                       (["list.txt"], "POLITE_REGISTRIES[0]"),
                       ("list.txt", "POLITE_REGISTRIES"),
                       ([{"type": "file", "path": str(tmp_path / "missing.txt")}],
                        "POLITE_REGISTRIES[0].path")]:
        with pytest.raises(ConfigError) as exc:
            check_settings(Settings({"POLITE_REGISTRIES": bad}))
        msg = str(exc.value)
        assert msg.startswith(where) and msg[len(where)] in ": " and "\n" not in msg, msg
        assert "job config: registries" in msg  # both spellings
    (tmp_path / "list.txt").write_text("example.org\n")
    check_settings(Settings({"POLITE_REGISTRIES": [{"type": "file",
                                                    "path": str(tmp_path / "list.txt")}]}))


def test_crawl_start_refuses_a_bad_setting_in_one_line():
    from types import SimpleNamespace

    from crawler.crawl.runtime import policy_from_settings

    settings = Settings({"POLITE_USER_AGENT": UA, "POLITE_REGISTRIES": [{"path": "x"}]})
    with pytest.raises(ValueError) as exc:
        policy_from_settings(SimpleNamespace(settings=settings))
    assert "POLITE_REGISTRIES[0].type" in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "settings, start",
    [({"POLITE_FOLLOW": "sideways"}, "settings.POLITE_FOLLOW: 'sideways' is not one of"),
     ({"POLITE_NO_SUCH": 1}, "settings.POLITE_NO_SUCH: unknown polite-crawler setting"),
     ({"POLITE_REGISTRIES": [{"type": "ftp"}]}, "settings.POLITE_REGISTRIES[0].type:")],
)
def test_yaml_settings_are_checked_against_the_table(settings, start):
    with pytest.raises(ConfigError) as exc:
        parse_config({**GOOD, "settings": settings})
    assert str(exc.value).startswith(start) and "\n" not in str(exc.value)


def test_follow_set_on_the_command_line_reaches_the_corpus_spider(tmp_path):
    from crawler.cli.run import effective_settings

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"job: t\nuser_agent: '{UA}'\nseeds: ['https://example.org/']\n")
    settings = effective_settings(parse_config({**GOOD}, path=cfg), cfg,
                                  {"POLITE_FOLLOW": "none"})
    assert settings.get("POLITE_FOLLOW") == "none"


def test_no_environment_variable_for_fault_injection():
    from crawler.corpus import revalidate

    assert revalidate._crash_hook is None
    for _path, text in _code_files():
        assert "POLITE_CRASH_POINT" not in text


@pytest.mark.parametrize(
    "patch, start, setting",
    [({"follow": "sideways"}, "follow: 'sideways' is not one of", "POLITE_FOLLOW"),
     ({"operator": {"country": "Germany"}}, "operator.country:", "POLITE_OPERATOR_COUNTRY"),
     ({"allow_private_networks": "yes"}, "allow_private_networks: expected true/false",
      "POLITE_ALLOW_PRIVATE_NETWORKS")],
)
def test_a_job_config_key_error_names_its_setting_too(patch, start, setting):
    with pytest.raises(ConfigError) as exc:
        parse_config({**GOOD, **patch})
    msg = str(exc.value)
    assert msg.startswith(start) and f"(setting {setting})" in msg and "\n" not in msg


def test_registries_a_project_writes_are_completed_as_a_configs_are(tmp_path, monkeypatch):
    from crawler.config.job import check_registries

    (tmp_path / "list.txt").write_text("example.org\n")
    monkeypatch.chdir(tmp_path)
    (file_entry, http_entry) = check_registries(
        [{"type": "file", "path": "list.txt"}, {"type": "http", "url": "https://r.example/q"}])
    assert file_entry == {"type": "file", "path": str(tmp_path / "list.txt"), "name": "list.txt"}
    assert http_entry["name"] == "r.example" and http_entry["batch_size"] == 100
    # a config's entries are already complete: checked again, they stay as they are
    assert check_registries([file_entry, http_entry]) == (file_entry, http_entry)
