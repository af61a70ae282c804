"""The CLI as a seller runs it: two WooCommerce emulators as two channels, end to end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, SecretStr
from typer.testing import CliRunner

from channelsync.cli import app
from connectors.woocommerce.emulator import WooCommerceEmulator
from tests.alert_receiver import Receiver

CONFIG = """
[database]
url = "{db}"
[[channel]]
name = "shop"
type = "woocommerce"
endpoint = "{shop}"
consumer_key = "ck_test"
consumer_secret = "${{SHOP_SECRET}}"
[[channel]]
name = "outlet"
type = "woocommerce"
endpoint = "{outlet}"
consumer_key = "ck_test"
consumer_secret = "cs_outlet"
[channel.rules]
buffer = 1
"""
SECRET = "cs_shop_very_secret"


class Seller:
    def __init__(self, config: Path, shop: WooCommerceEmulator, outlet: WooCommerceEmulator,
                 env: dict[str, str]) -> None:
        self.config, self.shop, self.outlet, self.env = config, shop, outlet, env
        self.runner = CliRunner()

    def run(self, *args: str, code: int = 0) -> Any:
        result = self.runner.invoke(app, ["--config", str(self.config), *args], env=self.env)
        assert result.exit_code == code, (args, result.stdout, result.stderr, result.exception)
        assert SECRET not in result.stdout + result.stderr
        return result

    def json(self, *args: str, code: int = 0) -> Any:
        return json.loads(self.run(*args, "--json", code=code).stdout)

    @staticmethod
    def shows(emulator: WooCommerceEmulator) -> dict[str, int]:
        listings = httpx.get(f"{emulator.url}/_sandbox/listings").json()["listings"]
        return {item["sku"]: item["quantity"] for item in listings}

    @staticmethod
    def buy(emulator: WooCommerceEmulator, sku: str, quantity: int = 1) -> str:
        response = httpx.post(f"{emulator.url}/_sandbox/orders",
                              json={"lines": [{"sku": sku, "quantity": quantity}]})
        assert response.status_code == 201, response.text
        return str(response.json()["order_id"])


@pytest.fixture
def seller(ledger_url: str, tmp_path: Path) -> Iterator[Seller]:
    shop = WooCommerceEmulator(consumer_key="ck_test", consumer_secret=SECRET)
    outlet = WooCommerceEmulator(consumer_key="ck_test", consumer_secret="cs_outlet")
    shop.start()
    outlet.start()
    config = tmp_path / "channels.toml"
    config.write_text(CONFIG.format(db=ledger_url, shop=shop.url, outlet=outlet.url))
    try:
        yield Seller(config, shop, outlet, {"SHOP_SECRET": SECRET})
    finally:
        shop.stop()
        outlet.stop()


def listings(emulator: WooCommerceEmulator, **skus: int) -> None:
    for sku, quantity in skus.items():
        httpx.post(f"{emulator.url}/_sandbox/listings",
                   json={"sku": sku, "quantity": quantity}).raise_for_status()


def test_two_channels_end_to_end(seller: Seller) -> None:
    listings(seller.shop, MUG=0, LAMP=0)
    listings(seller.outlet, MUG=0, LAMP=0)
    seller.run("stock", "set", "MUG", "5")
    seller.run("stock", "set", "LAMP", "1")
    seller.run("sync")
    assert seller.shows(seller.shop) == {"MUG": 5, "LAMP": 1}
    assert seller.shows(seller.outlet) == {"MUG": 4, "LAMP": 0}  # buffer 1

    order = seller.buy(seller.shop, "MUG", 2)
    seller.run("sync")
    assert seller.shows(seller.shop)["MUG"] == 3
    assert seller.shows(seller.outlet)["MUG"] == 2

    httpx.post(f"{seller.shop.url}/_sandbox/orders/{order}/cancel").raise_for_status()
    seller.run("sync")
    assert seller.shows(seller.shop)["MUG"] == 5
    assert seller.shows(seller.outlet)["MUG"] == 4

    explained = seller.json("explain", "MUG")
    assert explained["available"] == 5
    assert {c["channel"]: c["target"] for c in explained["channels"]} == {"shop": 5, "outlet": 4}
    assert [m["kind"] for m in explained["recent_movements"]][:2] == ["release", "reserve"]

    status = seller.json("status")
    assert {c["name"] for c in status["channels"]} == {"shop", "outlet"}
    assert all(c["last_pull"] and c["pending_outbox"] == 0 for c in status["channels"])
    assert status["totals"]["open_conflicts"] == 0


def test_the_last_unit_sold_on_both_channels_is_one_conflict(seller: Seller) -> None:
    listings(seller.shop, LAMP=0)
    listings(seller.outlet, LAMP=0)
    seller.run("stock", "set", "LAMP", "2")
    seller.run("sync")
    assert seller.shows(seller.outlet) == {"LAMP": 1}
    seller.run("stock", "set", "LAMP", "1")  # one broke in the warehouse: not pushed yet
    a = seller.buy(seller.shop, "LAMP")
    b = seller.buy(seller.outlet, "LAMP")
    seller.run("sync")
    conflicts = seller.json("conflicts", "list")["conflicts"]
    assert [c["kind"] for c in conflicts] == ["oversell"]
    assert {o["order_id"] for o in conflicts[0]["detail"]["orders"]} == {a, b}
    seller.run("sync")
    assert len(seller.json("conflicts", "list")["conflicts"]) == 1
    assert seller.shows(seller.shop) == {"LAMP": 0}
    seller.run("conflicts", "ack", str(conflicts[0]["id"]))
    assert seller.json("conflicts", "list")["conflicts"][0]["acked_at"]
    seller.run("conflicts", "ack", "999", code=1)


def test_sync_and_stock_commands_send_alerts_once_while_open(
    seller: Seller, receiver: Receiver
) -> None:
    """Not only the daemon alerts: a seller who runs sync by hand or from a timer must be
    told of the oversell it finds, once, and told again when it clears."""
    seller.config.write_text(f'[alerts]\nurls = ["{receiver.url()}"]\n'
                             + seller.config.read_text())
    listings(seller.shop, LAMP=0)
    listings(seller.outlet, LAMP=0)
    seller.run("stock", "set", "LAMP", "2")
    seller.run("sync")
    seller.run("stock", "set", "LAMP", "1")  # one broke in the warehouse; not pushed yet
    a = seller.buy(seller.shop, "LAMP")
    b = seller.buy(seller.outlet, "LAMP")
    assert receiver.posts == []
    seller.run("sync")
    oversells = [p for p in receiver.posts if p["title"] == "channelsync: oversell LAMP"]
    assert len(oversells) == 1
    assert f"shop order {a}" in oversells[0]["message"]
    assert f"outlet order {b}" in oversells[0]["message"]
    seller.run("sync")
    assert len([t for t in receiver.titles() if t == "channelsync: oversell LAMP"]) == 1
    seller.run("stock", "adjust", "LAMP", "2", "--reason", "found two more")
    assert receiver.titles()[-1] == "channelsync: resolved oversell LAMP"
    assert SECRET not in json.dumps(seller.json("status"))


def test_plan_and_dry_run_show_without_pushing(seller: Seller) -> None:
    listings(seller.shop, MUG=9)
    seller.run("stock", "set", "MUG", "3")
    seller.run("sync")
    seller.run("stock", "adjust", "MUG", "-1", "--reason", "dropped one")
    plan = seller.json("plan", "--channel", "shop")["plan"]
    assert plan == [{"channel": "shop", "channel_sku": "MUG", "sku": "MUG", "current": 3,
                     "target": 2, "push": True, "trace": plan[0]["trace"]}]
    assert "on hand 2" in plan[0]["trace"]
    assert seller.json("sync", "--dry-run")["plan"][0]["target"] == 2
    assert seller.shows(seller.shop) == {"MUG": 3}


def test_an_unreachable_channel_fails_the_sync_but_not_the_other(seller: Seller) -> None:
    listings(seller.outlet, MUG=0)
    seller.run("stock", "set", "MUG", "4")
    seller.shop.stop()
    result = seller.json("sync", code=1)
    by_name = {c["channel"]: c for c in result["channels"]}
    assert by_name["shop"]["error"]
    assert by_name["outlet"]["pushed"] == 1
    assert seller.shows(seller.outlet) == {"MUG": 3}
    status = seller.json("status")
    assert {c["name"]: bool(c["last_error"]) for c in status["channels"]} == \
        {"shop": True, "outlet": False}


def test_stock_import_reports_every_bad_row_and_imports_none(seller: Seller,
                                                             tmp_path: Path) -> None:
    csv = tmp_path / "stock.csv"
    csv.write_text("sku,on_hand,safety_stock,title,barcode\n"
                   "MUG,5,1,Blue mug,4006381333931\n"
                   "LID,-2,,,\n"
                   ",3,,,\n"
                   "MUG,1,,,\n"
                   "BOWL,x,,,12345\n")
    result = seller.run("stock", "import", str(csv), code=1)
    for line in ("line 3", "line 4", "line 5", "line 6"):
        assert line in result.stderr
    assert seller.json("stock", "list")["stock"] == []
    seller.run("stock", "import", str(csv), "--skip-bad")
    (mug,) = seller.json("stock", "list")["stock"]
    assert (mug["sku"], mug["on_hand"], mug["safety_stock"], mug["available"]) == \
        ("MUG", 5, 1, 4)
    exported = seller.run("stock", "export").stdout.splitlines()
    assert exported == ["sku,on_hand,safety_stock,title,barcode",
                        "MUG,5,1,Blue mug,4006381333931"]


def test_bad_input_gets_clear_messages_and_usage_exit_codes(seller: Seller,
                                                            tmp_path: Path) -> None:
    assert "-1" in seller.run("stock", "set", "MUG", "-1", code=2).stderr
    seller.run("stock", "adjust", "NOPE", "1", "--reason", "x", code=1)
    seller.run("explain", "NOPE", code=1)
    seller.run("sync", "--channel", "elsewhere", code=2)
    broken = tmp_path / "broken.toml"
    broken.write_text("[[channel]]\nname = 'x'\ntype = 'woocommerce'\n")
    result = seller.runner.invoke(app, ["--config", str(broken), "status"])
    assert result.exit_code == 2 and "consumer_key: required key is missing" in result.stderr
    assert "Traceback" not in result.stderr
    missing = seller.runner.invoke(app, ["--config", str(tmp_path / "none.toml"), "status"])
    assert missing.exit_code == 2 and "no config file" in missing.stderr
    unwritable = tmp_path / "ro.toml"  # a database that cannot be opened: a message, no trace
    unwritable.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/no/such/dir/l.db"\n')
    result = seller.runner.invoke(app, ["--config", str(unwritable), "status"])
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert "database" in result.stderr and "unable to open" in result.stderr
    damaged = tmp_path / "damaged.toml"  # a ledger a tool broke: the database's words, no trace
    damaged.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/damaged.db"\n')
    assert seller.runner.invoke(app, ["--config", str(damaged), "db", "upgrade"]).exit_code == 0
    import sqlite3

    with sqlite3.connect(tmp_path / "damaged.db") as db:
        db.execute("DROP TABLE movement")
    result = seller.runner.invoke(app, ["--config", str(damaged), "stock", "set", "MUG", "1"])
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert "the ledger database failed" in result.stderr and "no such table" in result.stderr


def test_config_check_as_json(tmp_path: Path) -> None:
    runner = CliRunner()
    good = tmp_path / "good.toml"
    good.write_text('[[channel]]\nname = "s"\ntype = "woocommerce"\nconsumer_key = "${K}"\n'
                    'consumer_secret = "x"\nendpoint = "https://shop.example"\n')
    result = runner.invoke(app, ["config", "check", str(good), "--json"], env={})
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["ok"] and data["channels"] == [{"name": "s", "type": "woocommerce",
                                                "enabled": True}]
    assert any("K is not set" in w for w in data["warnings"])
    bad = tmp_path / "bad.toml"
    bad.write_text("[rules]\npercent = -1\n")
    result = runner.invoke(app, ["config", "check", str(bad), "--json"])
    assert result.exit_code == 2
    assert json.loads(result.stdout)["problems"][0].startswith("rules.percent")


def test_config_check_finds_what_only_the_connectors_know(tmp_path: Path) -> None:
    """A WooCommerce channel without endpoint passed config check and failed at sync."""
    runner = CliRunner()
    config = tmp_path / "channels.toml"
    config.write_text("""
[[channel]]
name = "shop"
type = "woocommerce"
consumer_key = "ck_x"
consumer_secret = "cs_x"
[[channel]]
name = "amazon"
type = "amazon"
endpoint = "ftp://sp-api.example"
marketplace = "US"
seller_id = "A2X"
refresh_token = "Atzr|never-shown"
lwa_app_id = "app"
lwa_client_secret = "${AMAZON_SECRET}"
[[channel]]
name = "ebay"
type = "ebay"
endpoint = "https://user:pw@api.ebay.example"
token = "t"
app_id = "a"
dev_id = "d"
cert_id = "c"
[[channel]]
name = "later"
type = "woocommerce"
enabled = false
consumer_key = "ck_x"
consumer_secret = "cs_x"
""")
    result = runner.invoke(app, ["config", "check", str(config)], env={})
    assert result.exit_code == 2, result.stdout
    assert "channel[0] (shop).endpoint: required" in result.stderr
    assert "channel[1] (amazon).endpoint: must be an http:// or https:// URL" in result.stderr
    assert "channel[2] (ebay).endpoint" in result.stderr and "no credentials" in result.stderr
    assert "later" not in result.stderr  # disabled: a warning, and only with no problems
    assert "never-shown" not in result.stdout + result.stderr
    data = json.loads(runner.invoke(app, ["config", "check", str(config), "--json"],
                                    env={}).stdout)
    assert not data["ok"] and len(data["problems"]) == 3
    synced = runner.invoke(app, ["--config", str(config), "sync"], env={})
    assert synced.exit_code == 2 and "channel[0] (shop).endpoint: required" in synced.stderr
    # Fixed but for the disabled channel: OK, with the disabled channel's problem a warning.
    text = config.read_text().replace('name = "shop"\n', 'name = "shop"\nendpoint = '
                                      '"https://shop.example"\n', 1)
    text = text.replace("ftp://sp-api.example", "https://sp-api.example")
    config.write_text(text.replace("user:pw@", ""))
    data = json.loads(runner.invoke(app, ["config", "check", str(config), "--json"],
                                    env={}).stdout)
    assert data["ok"], data
    assert any("channel[3] (later).endpoint: required" in w and "disabled" in w
               for w in data["warnings"])
    assert any("AMAZON_SECRET is not set" in w for w in data["warnings"])


def test_config_check_reports_a_plugin_that_refuses_its_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from channelsync import registry

    monkeypatch.setitem(registry.BUILTIN, "picky", "tests.test_cli:PickyConnector")
    registry.load_connector.cache_clear()
    try:
        config = tmp_path / "channels.toml"
        config.write_text('[[channel]]\nname = "p"\ntype = "picky"\napi_key = "k-secret-1"\n')
        result = CliRunner().invoke(app, ["config", "check", str(config)], env={})
        assert result.exit_code == 2
        assert "channel[0] (p): the picky connector refused these settings (ValueError: " \
               "no region for key ***)" in result.stderr
        assert "k-secret-1" not in result.stderr
    finally:
        registry.load_connector.cache_clear()


class PickyConnector:
    """A third-party connector whose constructor fails in its own way."""

    class Settings(BaseModel):
        api_key: SecretStr

    capabilities = None

    def __init__(self, name: str, settings: Any, *, endpoint: str = "") -> None:
        raise ValueError(f"no region for key {settings.api_key.get_secret_value()}")


def test_sync_and_status_read_well_in_80_columns_without_a_terminal(seller: Seller) -> None:
    """Under journalctl, ssh or a pipe: no header cut to "websh…", no error wrapped one
    word a line; long text goes below the table, whole."""
    import os
    import subprocess
    import sys

    listings(seller.shop, MUG=0, LAMP=0, **{f"OLD-{n}": 1 for n in range(6)})
    listings(seller.outlet, MUG=0, LAMP=0)
    seller.run("stock", "set", "MUG", "5")
    seller.run("stock", "set", "LAMP", "2")
    seller.run("sync")
    seller.run("stock", "set", "LAMP", "1")
    a, b = seller.buy(seller.shop, "LAMP"), seller.buy(seller.outlet, "LAMP")
    seller.run("sync")  # the oversell
    httpx.post(f"{seller.outlet.url}/_sandbox/faults", json={"error_rate": 1.0})
    env = {**os.environ, **seller.env, "COLUMNS": "80"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "channelsync", "--config",
                               str(seller.config), *args], capture_output=True, text=True,
                              env=env, timeout=120)

    synced, status = cli("sync"), cli("status")
    assert synced.returncode == 1 and status.returncode == 0, synced.stderr + status.stderr
    for result in (synced, status):
        lines = result.stdout.splitlines()
        assert lines and all(len(line.rstrip()) <= 80 for line in lines), result.stdout
        assert "…" not in result.stdout
        assert SECRET not in result.stdout + result.stderr
    assert synced.stdout.splitlines()[0].split() == [
        "channel", "pulled", "applied", "pushed", "failed", "held", "drift"]
    assert status.stdout.splitlines()[0].split() == [
        "channel", "type", "pulled", "pushed", "cursor", "outbox", "listings"]
    error = next(line for line in synced.stdout.splitlines() if line.startswith("  outlet: "))
    assert "RetriableChannelError" in error and len(error.split()) > 4  # a sentence, not a word
    assert "HTTP 50" in error and "<" not in synced.stdout  # the page's words, not its HTML
    assert "RetriableChannelError" not in synced.stderr  # said once, in the report
    text = " ".join(status.stdout.split())
    assert "outlet: last error" in text and "ago: RetriableChannelError" in text
    assert "shop: 6 channel SKUs map to nothing in the ledger: OLD-0, OLD-1, OLD-2, OLD-3, " \
           "OLD-4 and 1 more" in text
    assert f"shop order {a} (1 reserved), outlet order {b} (1 reserved)" in text \
        or f"outlet order {b} (1 reserved), shop order {a} (1 reserved)" in text
    assert "1 open conflict" in text
