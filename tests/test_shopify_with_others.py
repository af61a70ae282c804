"""Shopify beside WooCommerce through the engine, both emulated on loopback.

What issue 6 is checked by: a buyer buying on Shopify in the instant between our read and
our write, and the unit not put back on sale; throttling survived; a sale elsewhere reaching
Shopify (and one on Shopify reaching the webshop).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from channelsync.config import parse_config
from channelsync.ledger.stock import StockRow
from channelsync.service import reports
from channelsync.service.app import App
from connectors.shopify.emulator import ShopifyEmulator
from connectors.woocommerce.emulator import WooCommerceEmulator
from tests.ledger_helpers import check_invariants, open_conflicts

TOKEN = "shpat_0123456789abcdef0123456789abcdef"
CONFIG = """
[daemon]
retry_attempts = 6
retry_max_wait = 2
[[channel]]
name = "webshop"
type = "woocommerce"
endpoint = "{shop}"
consumer_key = "ck_x"
consumer_secret = "cs_x"
[[channel]]
name = "shopify"
type = "shopify"
endpoint = "{shopify}"
access_token = "{token}"
"""
SKUS = ["MUG", "PLATE", "BOWL"]


@pytest.fixture
def shop() -> Iterator[WooCommerceEmulator]:
    with WooCommerceEmulator(consumer_key="ck_x", consumer_secret="cs_x") as emulator:
        yield emulator


def sandbox(emulator: Any, path: str, body: Any = None) -> Any:
    response = httpx.post(f"{emulator.url}/_sandbox/{path}", json=body)
    response.raise_for_status()
    return response.json()


def shows(emulator: Any) -> dict[str, int]:
    listings = httpx.get(f"{emulator.url}/_sandbox/listings").json()["listings"]
    return {item["sku"]: item["quantity"] for item in listings}


def buy(emulator: Any, sku: str, quantity: int = 1) -> str:
    return str(sandbox(emulator, "orders", {"lines": [{"sku": sku, "quantity": quantity}]})[
        "order_id"])


def make_app(engine: Engine, shop: WooCommerceEmulator, shopify: ShopifyEmulator,
             stock: int = 5) -> App:
    config = parse_config(CONFIG.format(shop=shop.url, shopify=shopify.url, token=TOKEN), env={})
    app = App(config)
    app.__dict__["db"] = engine
    for sku in SKUS:
        for emulator in (shop, shopify):
            sandbox(emulator, "listings", {"sku": sku, "quantity": 0})
    app.set_stock([StockRow(sku, stock) for sku in SKUS], reason="count")
    app.engine.sync()
    assert shows(shop) == shows(shopify) == dict.fromkeys(SKUS, stock)
    return app


def stale_compares(app: App, engine: Engine) -> int:
    with engine.connect() as conn:
        data = reports.status(conn, app.config, app.now())
    return int(next(c for c in data["channels"] if c["name"] == "shopify")["stale_compares"])


def test_sales_cross_between_the_webshop_and_shopify(
    engine: Engine, shop: WooCommerceEmulator
) -> None:
    with ShopifyEmulator(access_token=TOKEN) as shopify:
        app = make_app(engine, shop, shopify)
        try:
            buy(shop, "MUG", 2)
            app.engine.sync()
            assert shows(shopify)["MUG"] == 3 and shows(shop)["MUG"] == 3
            order = buy(shopify, "PLATE", 4)
            app.engine.sync()
            assert shows(shop)["PLATE"] == 1 and shows(shopify)["PLATE"] == 1
            sandbox(shopify, f"orders/{order}/cancel")  # Shopify puts the plates back itself
            app.engine.sync()
            assert shows(shop)["PLATE"] == 5 and shows(shopify)["PLATE"] == 5
            # Shopify's own sales and cancellations were expected: no write was refused.
            assert stale_compares(app, engine) == 0
            check_invariants(engine)
        finally:
            app.close()


def test_a_sale_on_shopify_between_our_read_and_our_write_stays_off_sale(
    engine: Engine, shop: WooCommerceEmulator
) -> None:
    with ShopifyEmulator(access_token=TOKEN) as shopify:
        app = make_app(engine, shop, shopify)
        try:
            buy(shop, "MUG")  # the ledger now wants Shopify to show 4 mugs...
            raced: list[str] = []

            def buyer_in_the_gap() -> None:  # ...and a buyer there takes one just before it
                if not raced:
                    raced.append(shopify.place_order([("MUG", 1)]))

            shopify.before_set_quantities = buyer_in_the_gap
            app.engine.sync()
            assert raced, "the write happened"
            # A blind write of 4 would have put the sold mug back on sale: 4 shown, 3 left.
            assert shows(shopify)["MUG"] == 3
            assert shows(shop)["MUG"] == 3
            assert stale_compares(app, engine) == 1
            with engine.connect() as conn:
                stock = {row["sku"]: row for row in reports.stock_list(conn)}
            assert (stock["MUG"]["on_hand"], stock["MUG"]["reserved"]) == (5, 2)
            check_invariants(engine)
        finally:
            app.close()


def test_throttled_shopify_still_converges(engine: Engine, shop: WooCommerceEmulator) -> None:
    # A bucket so small that every page of orders waits for it to refill, and 429s on top.
    with ShopifyEmulator(access_token=TOKEN, bucket_size=1000.0, restore_rate=2000.0) as shopify:
        app = make_app(engine, shop, shopify)
        try:
            sandbox(shopify, "faults", {"throttle_rate": 0.3, "seed": 3})
            for sku in SKUS:
                buy(shop, sku, 2)
            buy(shopify, "MUG", 1)
            app.engine.sync()
            sandbox(shopify, "faults", {})
            app.engine.sync()
            assert shows(shopify) == shows(shop) == {"MUG": 2, "PLATE": 3, "BOWL": 3}
            stats = httpx.get(f"{shopify.url}/_sandbox/stats").json()
            assert stats["throttled"] > 0
            check_invariants(engine)
        finally:
            app.close()


def test_a_variant_shopify_sells_without_limit_is_a_conflict_until_fixed(
    engine: Engine, shop: WooCommerceEmulator
) -> None:
    with ShopifyEmulator(access_token=TOKEN) as shopify:
        app = make_app(engine, shop, shopify)
        try:
            sandbox(shopify, "listings", {"sku": "BOWL", "quantity": 5, "tracked": False})
            app.engine.sync()
            (conflict,) = open_conflicts(engine, "listing_problem")
            assert conflict["subject"] == "shopify:BOWL"
            assert "tracking is off" in conflict["message"]
            sandbox(shopify, "listings", {"sku": "BOWL", "quantity": 5, "tracked": True})
            app.engine.sync()  # the next read no longer reports it
            assert open_conflicts(engine, "listing_problem") == []
        finally:
            app.close()
