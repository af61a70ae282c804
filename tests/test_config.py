"""Config: the example is valid, every problem is listed with its location, secrets hidden."""

from __future__ import annotations

from pathlib import Path

import pytest

from channelsync.config import find_config, load_config, parse_config
from channelsync.errors import ConfigError
from channelsync.sync.rules import resolve

EXAMPLE = Path(__file__).resolve().parent.parent / "channels.example.toml"
ENV = {"WOO_CONSUMER_KEY": "ck_live_123", "WOO_CONSUMER_SECRET": "cs_topsecret_456"}


def problems_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, env=env or {})
    return info.value.problems


def test_the_example_is_valid_and_documents_every_section() -> None:
    config = load_config(EXAMPLE, env=ENV)
    assert [c.name for c in config.channels] == ["webshop", "outlet", "amazon-us", "ebay",
                                                 "shopify"]
    assert config.channel("shopify").endpoint == "https://example.myshopify.com"
    assert config.channel("shopify").settings.api_version == "2026-10"
    assert config.channel("webshop").settings.consumer_secret.get_secret_value() == \
        "cs_topsecret_456"
    assert {k.sku for k in config.kits} == {"MUG-2PACK", "BREAKFAST-SET"}
    assert config.channel("webshop").master_sku("WS-MUG-BLUE") == "MUG-BLUE"


def test_secrets_never_show_in_repr_or_str() -> None:
    config = load_config(EXAMPLE, env={**ENV, "SHOPIFY_ACCESS_TOKEN": "shpat_topsecret_789"})
    assert config.channel("shopify").settings.access_token.get_secret_value() == \
        "shpat_topsecret_789"
    for text in (repr(config), str(config), repr(config.channel("webshop")),
                 repr(config.channel("shopify"))):
        assert "cs_topsecret_456" not in text and "ck_live_123" not in text
        assert "shpat_topsecret_789" not in text


def test_unset_env_is_an_error_when_running_and_a_warning_when_checking() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(EXAMPLE, env={})
    assert any("WOO_CONSUMER_KEY is not set" in p for p in info.value.problems)
    # The example's Amazon channel is disabled: its credentials may come later.
    assert not any("AMAZON" in p for p in info.value.problems)
    assert not load_config(EXAMPLE, env=ENV).channel("amazon-us").enabled
    config = load_config(EXAMPLE, env={}, require_env=False)
    assert any("WOO_CONSUMER_SECRET" in w for w in config.warnings)


def test_every_problem_is_listed_with_where_it_is() -> None:
    problems = problems_of("""
[bogus]
[rules]
percent = -5
[[channel]]
name = "bad name"
type = "nope"
[[channel]]
name = "shop"
type = "woocommerce"
endpoint = "http://127.0.0.1:9"
consumer_key = "k"
consumer_sekret = "s"
[[channel]]
name = "shop"
type = "woocommerce"
endpoint = "http://127.0.0.1:9"
consumer_key = "k"
consumer_secret = "s"
[[kit]]
sku = "SET"
components = { A = 0 }
[[rule]]
sku = "A"
channel = "elsewhere"
""")
    joined = "\n".join(problems)
    for expected in (
        "bogus: unknown section",
        "rules.percent:",
        "channel[0] (bad name).name:",
        "channel[0] (bad name).type: unknown channel type 'nope'",
        "channel[1] (shop).consumer_sekret: unknown key",
        "channel[1] (shop).consumer_secret: required key is missing",
        "channel: the name 'shop' is used more than once",
        "kit[0].components:",
        "rule[0].channel: no channel named 'elsewhere'",
    ):
        assert expected in joined, (expected, problems)


def test_broken_toml_names_the_line() -> None:
    (problem,) = problems_of("[[channel]]\nname = \n")
    assert "line 2" in problem


def test_default_database_follows_the_state_directory() -> None:
    config = parse_config("", env={"STATE_DIRECTORY": "/var/lib/channelsync"})
    assert config.database_url == "sqlite:////var/lib/channelsync/channelsync.db"
    assert parse_config("", env={}).database_url == "sqlite:///channelsync.db"


def test_config_is_found_in_the_documented_order(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert str(find_config("x.toml", {"CHANNELSYNC_CONFIG": "y.toml"})) == "x.toml"
    assert str(find_config(None, {"CHANNELSYNC_CONFIG": "y.toml"})) == "y.toml"
    assert str(find_config(None, {})) == "/etc/channelsync/channels.toml"
    (tmp_path / "channels.toml").write_text("")
    assert str(find_config(None, {})) == "channels.toml"


def test_rules_layer_field_by_field() -> None:
    config = parse_config("""
[rules]
buffer = 2
[[channel]]
name = "shop"
type = "woocommerce"
endpoint = "http://127.0.0.1:9"
consumer_key = "k"
consumer_secret = "s"
[channel.rules]
percent = 80
[[rule]]
sku = "MUG"
max_quantity = 5
[[rule]]
sku = "MUG"
channel = "shop"
buffer = 0
""", env={})
    rule = resolve(config, "shop", "MUG")
    assert (rule.percent, rule.buffer, rule.max_quantity) == (80, 0, 5)
    assert rule.target(10) == (5, rule.target(10)[1])
    assert resolve(config, "shop", "LID").target(10)[0] == 6  # floor(8) - 2


def test_systemd_credentials_stand_in_for_unset_variables(tmp_path: Path) -> None:
    (tmp_path / "WOO_CONSUMER_SECRET").write_text("cs_from_credential\n")
    env = {"WOO_CONSUMER_KEY": "ck_env", "CREDENTIALS_DIRECTORY": str(tmp_path)}
    config = load_config(EXAMPLE, env=env)
    secret = config.channel("webshop").settings.consumer_secret.get_secret_value()
    assert secret == "cs_from_credential"
    assert config.channel("webshop").settings.consumer_key.get_secret_value() == "ck_env"
