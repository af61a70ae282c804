"""Shopify beside WooCommerce through the engine, both emulated on loopback.

What issue 6 is checked by: a buyer buying on Shopify in the instant between our read and
our write, and the unit not put back on sale; throttling survived; a sale elsewhere reaching
Shopify (and one on Shopify reaching the webshop).
"""

from __future__ import annotations

import time
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


def test_faulty_order_pages_lose_and_double_nothing(
    engine: Engine, shop: WooCommerceEmulator
) -> None:
    """Pages that show orders twice, shuffled or as they were before their latest change:
    the ledger ends up holding exactly what Shopify's orders imply."""
    with ShopifyEmulator(access_token=TOKEN) as shopify:
        app = make_app(engine, shop, shopify, stock=20)
        # Shopify reports whole seconds: a shipment in the second of the count would look
        # older than the count, and so already off the shelf when counted.
        time.sleep(1)
        try:
            ids = [buy(shopify, "MUG", 2), buy(shopify, "PLATE", 3), buy(shopify, "BOWL", 2),
                   buy(shopify, "MUG", 3)]
            sandbox(shopify, "orders", {"lines": [{"sku": "BOWL", "quantity": 1}],
                                        "test": True})  # ignored, as configured
            sandbox(shopify, f"orders/{ids[1]}/cancel")
            sandbox(shopify, f"orders/{ids[2]}/ship")
            sandbox(shopify, "faults", {"duplicate_rate": 0.5, "reorder_rate": 0.5,
                                        "stale_rate": 0.5, "seed": 11})
            app.engine.sync()
            sandbox(shopify, f"orders/{ids[3]}/ship", {"lines": [{"sku": "MUG", "quantity": 1}]})
            sandbox(shopify, f"orders/{ids[0]}/refund", {"lines": [
                {"sku": "MUG", "quantity": 1, "restock_type": "CANCEL"}]})
            ids.append(buy(shopify, "PLATE", 2))
            app.engine.sync()
            sandbox(shopify, f"orders/{ids[2]}/refund", {"lines": [
                {"sku": "BOWL", "quantity": 1, "restock_type": "RETURN"}]})
            sandbox(shopify, f"orders/{ids[4]}/edit", {"sku": "PLATE", "quantity": 1})
            sandbox(shopify, f"orders/{ids[3]}/cancel")
            app.engine.sync()
            sandbox(shopify, "faults", {})
            app.engine.sync()
            assert ledger(engine) == implied(shopify, dict.fromkeys(SKUS, 20))
            check_invariants(engine)
        finally:
            app.close()


def ledger(engine: Engine) -> dict[str, tuple[int, int]]:
    with engine.connect() as conn:
        return {row["sku"]: (row["on_hand"], row["reserved"]) for row in reports.stock_list(conn)}


def implied(shopify: ShopifyEmulator, counted: dict[str, int]) -> dict[str, tuple[int, int]]:
    """sku -> (on hand, reserved) the orders Shopify holds imply (test orders aside)."""
    rows = httpx.get(f"{shopify.url}/_sandbox/orders").json()["orders"]
    on_hand, reserved = dict(counted), dict.fromkeys(counted, 0)
    for row in rows:
        for line in () if row["test"] else row["lines"]:
            reserved[line["sku"]] += line["quantity"] - line["shipped"] - line["cancelled"]
            on_hand[line["sku"]] += line["restocked"] - line["shipped"]
    return {sku: (on_hand[sku], reserved[sku]) for sku in counted}
