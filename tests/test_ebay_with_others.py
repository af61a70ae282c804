"""eBay through the engine, alone and beside WooCommerce: sales cross, four listings per call."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from channelsync.config import parse_config
from channelsync.ledger.migrate import open_ledger_engine
from channelsync.ledger.stock import StockRow
from channelsync.service.app import App
from channelsync.sync.engine import SyncEngine
from connectors.ebay import EbayConnector
from connectors.ebay.emulator import EbayEmulator
from connectors.woocommerce.emulator import WooCommerceEmulator

CONFIG = """
[[channel]]
name = "shop"
type = "woocommerce"
endpoint = "{shop}"
consumer_key = "ck_x"
consumer_secret = "cs_x"
[[channel]]
name = "ebay"
type = "ebay"
endpoint = "{ebay}"
token = "ebay-token"
app_id = "app"
dev_id = "dev"
cert_id = "cert"
"""
SKUS = [f"SKU{i}" for i in range(7)]


@pytest.fixture
def emulators() -> Iterator[tuple[WooCommerceEmulator, EbayEmulator]]:
    with WooCommerceEmulator(consumer_key="ck_x", consumer_secret="cs_x") as shop, \
            EbayEmulator(token="ebay-token") as ebay:
        yield shop, ebay


def shows(emulator: Any) -> dict[str, int]:
    listings = httpx.get(f"{emulator.url}/_sandbox/listings").json()["listings"]
    return {item["sku"]: item["quantity"] for item in listings}


def revisions(ebay: EbayEmulator) -> int:
    stats = httpx.get(f"{ebay.url}/_sandbox/stats").json()
    return int(stats["requests"].get("ReviseInventoryStatus", 0))


def test_sales_cross_and_ebay_gets_four_listings_a_call(
    engine: Engine, emulators: tuple[WooCommerceEmulator, EbayEmulator]
) -> None:
    shop, ebay = emulators
    for sku in SKUS:
        for emulator in (shop, ebay):
            httpx.post(f"{emulator.url}/_sandbox/listings", json={"sku": sku, "quantity": 0})
    config = parse_config(CONFIG.format(shop=shop.url, ebay=ebay.url), env={})
    app = App(config)
    app.__dict__["db"] = engine
    # eBay shows orders late, so the connector asks only up to two minutes ago; a test
    # cannot wait that long: this one's connector asks up to now.
    connector = EbayConnector("ebay", config.channel("ebay").settings, endpoint=ebay.url,
                              settle=timedelta(0))
    app.__dict__["engine"] = SyncEngine(config, engine, connectors={"ebay": connector})
    try:
        app.set_stock([StockRow(sku, 10) for sku in SKUS], reason="count")
        app.engine.sync()
        assert shows(ebay) == dict.fromkeys(SKUS, 10)
        before = revisions(ebay)
        for sku in SKUS:  # a buyer takes one of everything on the webshop
            httpx.post(f"{shop.url}/_sandbox/orders",
                       json={"lines": [{"sku": sku, "quantity": 1}]}).raise_for_status()
        app.engine.sync()
        assert shows(ebay) == dict.fromkeys(SKUS, 9)
        assert revisions(ebay) - before == math.ceil(len(SKUS) / 4)  # the fewest calls
        httpx.post(f"{ebay.url}/_sandbox/orders",
                   json={"lines": [{"sku": "SKU0", "quantity": 2}]}).raise_for_status()
        app.engine.sync()
        assert shows(shop)["SKU0"] == 7 and shows(ebay)["SKU0"] == 7
    finally:
        app.close()



EBAY_ONLY = CONFIG[CONFIG.index("[[channel]]\nname = \"ebay\""):]
RIGHT = "RIGHT-1"  # already shows its target: nothing to send
VARIATIONS = {"TEE-S": "TEE", "TEE-M": "TEE"}  # two variations of one eBay item
PLAIN = ["A&B-1", *(f"MUG-{i}" for i in range(9))]  # a SKU that must be escaped in XML


def list_on(ebay: EbayEmulator, sku: str, quantity: int, parent: str | None = None) -> None:
    extra = {"parent_sku": parent} if parent else {}
    httpx.post(f"{ebay.url}/_sandbox/listings",
               json={"sku": sku, "quantity": quantity, **extra}).raise_for_status()


def test_first_sync_sends_changed_listings_four_a_call(sqlite_url: str) -> None:
    """12 listings off their target and one on it: ceil(12/4) calls carry them all."""
    target = 10
    with EbayEmulator(token="ebay-token") as ebay:
        list_on(ebay, RIGHT, target)
        for sku, parent in VARIATIONS.items():
            list_on(ebay, sku, 3, parent)
        for sku in PLAIN:
            list_on(ebay, sku, 2)
        changed = [sku for sku, quantity in shows(ebay).items() if quantity != target]
        assert len(changed) == 12
        app = _ebay_app(ebay, sqlite_url)
        try:
            app.set_stock([StockRow(sku, target) for sku in shows(ebay)], reason="count")
            app.engine.sync()
            assert shows(ebay) == dict.fromkeys(shows(ebay), target)
            assert revisions(ebay) == math.ceil(len(changed) / 4)
            app.engine.sync()  # the listing that was right is not planned again either
            assert revisions(ebay) == math.ceil(len(changed) / 4)
        finally:
            app.close()


def test_a_new_listing_showing_its_target_is_still_sent_after_a_sale_there(
    sqlite_url: str,
) -> None:
    """Read at 10, then sold on eBay (9 left): when the ledger's target becomes 10, the read
    no longer tells what eBay shows, so the 10 is sent."""
    with EbayEmulator(token="ebay-token") as ebay:
        list_on(ebay, "MUG", 10)
        app = _ebay_app(ebay, sqlite_url)
        try:
            app.engine.sync()  # MUG is not in the ledger yet: read at 10, nothing sent
            httpx.post(f"{ebay.url}/_sandbox/orders",
                       json={"lines": [{"sku": "MUG", "quantity": 1}]}).raise_for_status()
            app.engine.sync(read_back=False)  # the sale waits for the SKU
            app.set_stock([StockRow("MUG", 11)], reason="count")  # 11 - 1 sold: target 10
            app.engine.sync(read_back=False)
            assert shows(ebay) == {"MUG": 10}
            assert revisions(ebay) == 1
        finally:
            app.close()


def test_a_count_that_changes_twelve_listings_takes_three_calls_and_again_none(
    sqlite_url: str,
) -> None:
    """After discovery, a stock count changes 12 listings (two variations of one item, a kit
    through its component, a SKU escaped in XML): ceil(12/4) calls; the same count again
    changes nothing and sends nothing."""
    skus = [*VARIATIONS, *PLAIN]  # 12 SKUs with stock
    kit = '[[kit]]\nsku = "PAIR"\ncomponents = { "MUG-0" = 2 }\n'
    with EbayEmulator(token="ebay-token") as ebay:
        for sku in skus:
            list_on(ebay, sku, 10, VARIATIONS.get(sku))
        list_on(ebay, "PAIR", 5)  # two of MUG-0's 10
        app = _ebay_app(ebay, sqlite_url, kit)
        try:
            app.set_stock([StockRow(sku, 10) for sku in skus], reason="count")
            app.engine.sync()  # discovery: every listing already shows its target
            assert revisions(ebay) == 0
            lower = [StockRow(sku, 9) for sku in skus if sku != "MUG-8"]  # 11 SKUs + the kit
            app.set_stock(lower, reason="count")
            app.engine.sync(read_back=False)
            assert shows(ebay) == {**dict.fromkeys(skus, 9), "MUG-8": 10, "PAIR": 4}
            assert revisions(ebay) == 3
            app.set_stock(lower, reason="count")  # the same count again
            app.engine.sync(read_back=False)
            assert revisions(ebay) == 3
        finally:
            app.close()


def _ebay_app(ebay: EbayEmulator, ledger_url: str, extra: str = "") -> App:
    """An app whose only channel is this emulator, on its own SQLite ledger."""
    config = parse_config(EBAY_ONLY.format(ebay=ebay.url) + extra, env={})
    app = App(config)
    app.__dict__["db"] = open_ledger_engine(ledger_url)
    # As above: a test cannot wait the two minutes eBay's orders lag.
    connector = EbayConnector("ebay", config.channel("ebay").settings, endpoint=ebay.url,
                              settle=timedelta(0))
    app.__dict__["engine"] = SyncEngine(config, app.db, connectors={"ebay": connector})
    return app
