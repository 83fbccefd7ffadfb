"""Config validation: every bad key is an error naming the key; exit 2 from the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from crawler.cli.main import main
from crawler.config.job import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parent.parent
GOOD = {
    "job": "t",
    "user_agent": "TestBot/1.0 (+https://example.org/bot)",
    "seeds": ["https://example.org/"],
}


def test_example_and_demo_configs_are_valid():
    ex = load_config(ROOT / "configs" / "example.yaml")
    assert ex.token == "ExampleCorpusBot" and ex.honor_agents[0] == "GPTBot"
    assert ex.output_dir == (ROOT / "configs" / "out" / "example")
    demo = load_config(ROOT / "configs" / "demo.yaml")
    assert demo.allow_private_networks and len(demo.seeds) == 16


def test_example_config_documents_every_key():
    text = (ROOT / "configs" / "example.yaml").read_text()
    from crawler.config.job import KNOWN_KEYS

    documented = set(yaml.safe_load(text))
    assert documented == KNOWN_KEYS


@pytest.mark.parametrize(
    "patch, key",
    [
        ({"colour": "blue"}, "colour"),
        ({"max_pages": "ten"}, "max_pages"),
        ({"max_pages": True}, "max_pages"),
        ({"max_pages": -1}, "max_pages"),
        ({"seeds": "https://example.org/"}, "seeds"),
        ({"seeds": ["ftp://example.org/"]}, "seeds[0]"),
        ({"seeds": [3]}, "seeds[0]"),
        ({"purpose": "profit"}, "purpose"),
        ({"honor_agents": ["GPT Bot"]}, "honor_agents[0]"),
        ({"allow_private_networks": "yes"}, "allow_private_networks"),
        ({"user_agent": "Mozilla/5.0"}, "user_agent"),
        ({"user_agent": "Bot1/1.0 (+https://example.org)"}, "user_agent"),
        ({"user_agent": "Scrapy/2.13 (+https://scrapy.org)"}, "user_agent"),
        ({"user_agent": ""}, "user_agent"),
        ({"settings": {"lower": 1}}, "settings.lower"),
        ({"settings": {"USER_AGENT": "x"}}, "settings.USER_AGENT"),
        ({"signals": {"robots": "off"}}, "signals.robots"),
        ({"signals": {"telepathy": True}}, "signals.telepathy"),
        ({"follow": "everywhere"}, "follow"),
        ({"scope": ["/news/"]}, "scope"),
        ({"scope": {"include": ["/a/", "(a+)+"]}}, "scope.include[1]"),
        ({"scope": {"exclude": ["[unclosed"]}}, "scope.exclude[0]"),
        ({"scope": {"max_pages_per_origin": -1}}, "scope.max_pages_per_origin"),
        ({"scope": {"colour": 1}}, "scope.colour"),
        ({"sitemaps": "yes"}, "sitemaps"),
        ({"sitemaps": {"max_depth": 11}}, "sitemaps.max_depth"),
        ({"sitemaps": {"max_files_per_origin": 0}}, "sitemaps.max_files_per_origin"),
        ({"sitemaps": {"urls": []}}, "sitemaps.urls"),
        ({"registries": [{"type": "file", "path": "missing.txt"}]}, "registries[0].path"),
        ({"registries": [{"type": "ftp"}]}, "registries[0].type"),
        ({"registries": ["list.txt"]}, "registries[0]"),
        ({"registries": [{"type": "http", "url": "nope"}]}, "registries[0].url"),
        ({"registries": [{"type": "http", "url": "http://x.org/q", "format": "x"}]},
         "registries[0].format"),
        ({"registries": [{"type": "http", "url": "http://x.org/q", "batch_size": 0}]},
         "registries[0].batch_size"),
        ({"registries": [{"type": "http", "url": "http://x.org/q",
                          "api_key_env": "POLITE_TEST_UNSET_KEY"}]}, "registries[0].api_key_env"),
        ({"registries": [{"type": "file", "path": "x", "colour": 1}]}, "registries[0].colour"),
        ({"operator": {"country": "Germany"}}, "operator.country"),
        ({"operator": {"user_type": "pirate"}}, "operator.user_type"),
        ({"operator": {"colour": "x"}}, "operator.colour"),
        ({"identity": {"signature_validity": 0}}, "identity.signature_validity"),
        ({"identity": {"signature_validity": 3601}}, "identity.signature_validity"),
        ({"identity": {"signature_validity": True}}, "identity.signature_validity"),
        ({"payment": "USD 1"}, "payment"),
        ({"payment": {"max_price": 0.01, "budget": "USD 5"}}, "payment.max_price"),
        ({"payment": {"max_price": "USD 0.01", "budget": "5 USD"}}, "payment.budget"),
        ({"payment": {"max_price": "USD 0.01"}}, "payment.budget"),
        ({"payment": {"max_price": "USD 0.01", "budget": "USD 5",
                      "per_origin_budget": "EUR 1"}}, "payment.per_origin_budget"),
        ({"payment": {"max_price": "USD 0.01", "budget": "USD 5", "colour": 1}},
         "payment.colour"),
        # paying needs signed requests
        ({"payment": {"max_price": "USD 0.01", "budget": "USD 5"}}, "payment"),
        ({"payment": {"max_price": "USD 0.01", "budget": "USD 5"},
          "identity": {"signature_agent": "https://c.example"}}, "payment"),
        ({"payment": {"max_price": "USD 0.01", "budget": "USD 5"},
          "identity": {"key_file": "k.pem", "signature_agent": "https://c.example"},
          "signals": {"payment-required": False}}, "payment"),
    ],
)
def test_bad_values_name_the_key(patch, key):
    with pytest.raises(ConfigError) as exc:
        parse_config({**GOOD, **patch})
    assert str(exc.value).startswith(key + ":")
    assert "\n" not in str(exc.value)


def test_user_agent_needs_token_and_contact():
    job = parse_config({**GOOD, "user_agent": "Good-Bot_x/2 (mailto:ops@example.org)"})
    assert job.token == "Good-Bot_x"


def test_signals_can_be_switched_off():
    job = parse_config({**GOOD, "signals": {"tdmrep": False, "noai": False}})
    assert "tdmrep" not in job.signals and "noai" not in job.signals
    assert "robots" in job.signals and "rsl" in job.signals


def test_scrapy_settings_layering():
    job = parse_config({**GOOD, "max_pages": 5, "settings": {"DOWNLOAD_DELAY": 3}})
    s = job.scrapy_settings()
    assert s["DOWNLOAD_DELAY"] == 3
    assert s["CLOSESPIDER_ITEMCOUNT"] == 5
    assert s["CONCURRENT_REQUESTS_PER_DOMAIN"] == 1
    assert s["USER_AGENT"] == GOOD["user_agent"]
    assert s["ROBOTSTXT_OBEY"] is False


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "config file not found"),
        ("key: [unclosed", "invalid YAML"),
        ("- a list", "expected a mapping"),
        ("job: t\nuser_agent: 'T/1 (+https://x.org)'\nseeds: []\nbogus: 1\n", "bogus: unknown"),
    ],
)
def test_cli_exits_2_with_one_line(tmp_path, capsys, content, message):
    cfg = tmp_path / "c.yaml"
    if content is not None:
        cfg.write_text(content)
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_registries_resolve_paths_and_never_hold_the_key(tmp_path, monkeypatch):
    (tmp_path / "list.txt").write_text("example.com\n")
    monkeypatch.setenv("POLITE_TEST_KEY", "s3cret")
    job = parse_config({**GOOD, "registries": [
        {"type": "file", "path": "list.txt"},
        {"type": "http", "url": "http://127.0.0.1:8700/api/v2/query/urls",
         "api_key_env": "POLITE_TEST_KEY"}]}, path=tmp_path / "c.yaml")
    assert job.registries[0]["path"] == str(tmp_path / "list.txt")
    assert job.registries[1]["batch_size"] == 100
    assert "s3cret" not in repr(job.scrapy_settings())


# --- numbers: finite and not negative (a NaN DOWNLOAD_DELAY would switch the floor off) -------

BAD_NUMBERS = [".nan", ".NaN", ".inf", "-.inf", "-1", "-0.5", '"nan"', '"inf"', '"-1"',
               '" NaN "', '"1e999"']


NUMERIC_SETTINGS = ["DOWNLOAD_TIMEOUT", "CONCURRENT_REQUESTS", "CONCURRENT_REQUESTS_PER_DOMAIN",
                    "AUTOTHROTTLE_START_DELAY", "AUTOTHROTTLE_MAX_DELAY",
                    "AUTOTHROTTLE_TARGET_CONCURRENCY", "RETRY_TIMES", "DOWNLOAD_MAXSIZE",
                    "POLITE_MAX_CRAWL_DELAY", "POLITE_SITE_CACHE_TTL", "POLITE_RETRY_AFTER_MAX",
                    "POLITE_CLUSTER_DELAY"]


@pytest.mark.parametrize(
    "key, number",
    [("DOWNLOAD_DELAY", n) for n in BAD_NUMBERS]
    + [(k, BAD_NUMBERS[i % len(BAD_NUMBERS)]) for i, k in enumerate(NUMERIC_SETTINGS)])
def test_settings_numbers_must_be_finite_and_not_negative(key, number):
    data = {**GOOD, "settings": {key: yaml.safe_load(number)}}
    with pytest.raises(ConfigError) as exc:
        parse_config(data)
    assert str(exc.value).startswith(f"settings.{key}: ") and "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "patch, key",
    [
        ({"max_pages": float("nan")}, "max_pages"),
        ({"max_pages": float("inf")}, "max_pages"),
        ({"max_depth": -1}, "max_depth"),
        ({"max_depth": float("nan")}, "max_depth"),
        ({"registries": [{"type": "http", "url": "http://x.org/q", "max_wait": float("nan")}]},
         "registries[0].max_wait"),
        ({"registries": [{"type": "http", "url": "http://x.org/q", "timeout": float("inf")}]},
         "registries[0].timeout"),
        ({"registries": [{"type": "http", "url": "http://x.org/q", "retries": -1}]},
         "registries[0].retries"),
    ],
)
def test_own_numbers_must_be_finite_and_not_negative(patch, key):
    with pytest.raises(ConfigError) as exc:
        parse_config({**GOOD, **patch})
    assert str(exc.value).startswith(key + ":") and "\n" not in str(exc.value)


def test_usable_numbers_and_other_settings_pass():
    job = parse_config({**GOOD, "settings": {
        "DOWNLOAD_DELAY": 0, "DOWNLOAD_TIMEOUT": "1.5", "AUTOTHROTTLE_MAX_DELAY": 60.0,
        "RETRY_PRIORITY_ADJUST": -1, "DEPTH_PRIORITY": -1, "LOG_LEVEL": "INFO",
        "AUTOTHROTTLE_ENABLED": False, "RETRY_HTTP_CODES": [500, 503], "JOBDIR": None}})
    assert job.settings["RETRY_PRIORITY_ADJUST"] == -1


@pytest.mark.parametrize(
    "line, key",
    [("settings: {DOWNLOAD_DELAY: .nan}", "settings.DOWNLOAD_DELAY"),
     ("settings: {DOWNLOAD_DELAY: .inf}", "settings.DOWNLOAD_DELAY"),
     ("settings: {DOWNLOAD_DELAY: -1}", "settings.DOWNLOAD_DELAY"),
     ("settings: {DOWNLOAD_DELAY: 'nan'}", "settings.DOWNLOAD_DELAY"),
     ("settings: {AUTOTHROTTLE_MAX_DELAY: .nan}", "settings.AUTOTHROTTLE_MAX_DELAY"),
     ("settings: {POLITE_MAX_CRAWL_DELAY: -.inf}", "settings.POLITE_MAX_CRAWL_DELAY"),
     ("max_pages: .nan", "max_pages"),
     ("max_depth: -1", "max_depth")],
)
def test_cli_exits_2_naming_the_bad_number(tmp_path, capsys, line, key):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("job: t\nuser_agent: 'T/1 (+https://x.org)'\n"
                   "seeds: ['https://example.org/']\n" + line + "\n")
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{key}: " in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # refused before anything ran


def test_identity_and_payment_map_to_settings():
    job = parse_config({**GOOD, "identity": {
        "key_file": "k.pem", "signature_agent": "https://c.example", "signature_validity": 30},
        "payment": {"max_price": "USD 0.010", "budget": "USD 5.00"}})
    s = job.scrapy_settings()
    assert s["POLITE_IDENTITY_SIGNATURE_AGENT"] == "https://c.example"
    assert s["POLITE_SIGNATURE_VALIDITY"] == 30
    assert (s["POLITE_PAYMENT_MAX_PRICE"], s["POLITE_PAYMENT_BUDGET"],
            s["POLITE_PAYMENT_PER_ORIGIN_BUDGET"]) == ("USD 0.010", "USD 5.00", "USD 5.00")
    plain = parse_config(GOOD).scrapy_settings()
    assert plain["POLITE_IDENTITY_SIGNATURE_AGENT"] is None
    assert "POLITE_PAYMENT_MAX_PRICE" not in plain and "POLITE_SIGNATURE_VALIDITY" not in plain


def test_payment_without_identity_exits_2(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("job: t\nuser_agent: 'T/1 (+https://x.org)'\nseeds: []\npayment:\n"
                   "  max_price: 'USD 0.01'\n  budget: 'USD 1'\n")
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert "payment: paying needs signed requests" in err and "identity.key_file" in err
    assert len(err.splitlines()) == 1


def test_payment_with_an_unusable_key_exits_2(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("job: t\nuser_agent: 'T/1 (+https://x.org)'\nseeds: []\nidentity:\n"
                   "  key_file: missing.pem\n  signature_agent: https://c.example\npayment:\n"
                   "  max_price: 'USD 0.01'\n  budget: 'USD 1'\n")
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert "identity.key_file" in err and len(err.splitlines()) == 1


def test_scope_and_sitemaps_become_settings():
    job = parse_config({**GOOD, "scope": {"include": "/news/", "max_pages_per_origin": 50},
                        "sitemaps": {"max_depth": 1}})
    s = job.scrapy_settings()
    assert s["POLITE_SCOPE"] == {"include": ["/news/"], "exclude": [],
                                 "max_pages_per_origin": 50}
    assert s["POLITE_SITEMAPS"]["max_depth"] == 1 and s["POLITE_SITEMAPS"]["max_files"] == 100
    off = parse_config({**GOOD, "sitemaps": False}).scrapy_settings()
    assert off["POLITE_SITEMAPS"] is None and off["POLITE_SCOPE"]["include"] == []
    # the keys win over settings:, as for every key; absent keys leave settings: alone
    kept = parse_config({**GOOD, "settings": {"POLITE_SITEMAPS": {}}}).scrapy_settings()
    assert kept["POLITE_SITEMAPS"] == {}
