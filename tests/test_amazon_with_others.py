"""A sale on WooCommerce reaches Amazon, and an Amazon sale reaches WooCommerce."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from channelsync.app import App
from channelsync.config import parse_config
from channelsync.stock import StockRow
from connectors.amazon.emulator import AmazonEmulator
from connectors.woocommerce.emulator import WooCommerceEmulator

CONFIG = """
[[channel]]
name = "shop"
type = "woocommerce"
endpoint = "{shop}"
consumer_key = "ck_x"
consumer_secret = "cs_x"
[[channel]]
name = "amazon"
type = "amazon"
endpoint = "{amazon}"
marketplace = "US"
seller_id = "A2SELLER"
refresh_token = "Atzr|x"
lwa_app_id = "amzn1.application-oa2-client.x"
lwa_client_secret = "s"
"""


@pytest.fixture
def emulators() -> Iterator[tuple[WooCommerceEmulator, AmazonEmulator]]:
    with WooCommerceEmulator(consumer_key="ck_x", consumer_secret="cs_x") as shop, \
            AmazonEmulator(seller_id="A2SELLER", rate_limits=False) as amazon:
        yield shop, amazon


def shows(emulator: Any) -> dict[str, int]:
    listings = httpx.get(f"{emulator.url}/_sandbox/listings").json()["listings"]
    return {item["sku"]: item["quantity"] for item in listings}


def test_sales_cross_between_woocommerce_and_amazon(
    engine: Engine, emulators: tuple[WooCommerceEmulator, AmazonEmulator]
) -> None:
    shop, amazon = emulators
    httpx.post(f"{shop.url}/_sandbox/listings", json={"sku": "MUG", "quantity": 0})
    httpx.post(f"{amazon.url}/_sandbox/listings", json={"sku": "MUG", "quantity": 0})
    httpx.post(f"{amazon.url}/_sandbox/listings",
               json={"sku": "FBA-MUG", "quantity": 30, "fulfillment": "AFN"})
    app = App(parse_config(CONFIG.format(shop=shop.url, amazon=amazon.url), env={}))
    app.__dict__["db"] = engine
    try:
        app.set_stock([StockRow("MUG", 6), StockRow("FBA-MUG", 2)], reason="count")
        app.engine.sync()
        assert shows(shop)["MUG"] == 6 and shows(amazon)["MUG"] == 6
        httpx.post(f"{shop.url}/_sandbox/orders",
                   json={"lines": [{"sku": "MUG", "quantity": 2}]}).raise_for_status()
        app.engine.sync()
        assert shows(amazon)["MUG"] == 4  # the WooCommerce sale reached Amazon
        httpx.post(f"{amazon.url}/_sandbox/orders",
                   json={"lines": [{"sku": "MUG", "quantity": 3}]}).raise_for_status()
        app.engine.sync()
        assert shows(shop)["MUG"] == 1  # and Amazon's (Pending already holds stock)
        assert shows(amazon)["MUG"] == 1
        assert shows(amazon)["FBA-MUG"] == 30  # FBA: never written
    finally:
        app.close()
