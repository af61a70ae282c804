"""eBay beside WooCommerce through the engine: sales cross, four listings per call."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from channelsync.app import App
from channelsync.config import parse_config
from channelsync.engine import SyncEngine
from channelsync.stock import StockRow
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
