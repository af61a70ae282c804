"""Loyalty across the four real connectors and their emulators: one buyer who orders on
WooCommerce, eBay and Shopify with the same email is one customer, the order that crosses
the tier is flagged and alerts once, an Amazon buyer (a relay address) stays Amazon's own,
and forgetting the buyer leaves stock as it was. On real SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from channelsync.config import parse_config
from channelsync.customers import queries as customers
from channelsync.ledger.schema import conflict_t, mov_t, sku_t
from channelsync.ledger.stock import StockRow
from channelsync.orders.schema import order_t
from channelsync.sandbox.simulation.world import LAG, World
from channelsync.service.app import App

SKUS = ["MUG", "LID"]
CHANNELS = {"shop": ("woocommerce", SKUS), "amazon": ("amazon", SKUS),
            "ebay": ("ebay", SKUS), "shopify": ("shopify", SKUS)}
LOYALTY = """
[loyalty]
salt = "a-salt-only-this-test-knows-0042"
[[loyalty.tiers]]
name = "regular"
min_orders = 3
tag = "thank-you card"
"""


@pytest.fixture
def world() -> Iterator[World]:
    world = World(5, faults=False, channels=CHANNELS, kits={}, opening=0)
    world.start()
    try:
        yield world
    finally:
        world.stop()


@pytest.fixture
def app(world: World, engine: Engine) -> Iterator[App]:
    url = engine.url.render_as_string(hide_password=False)
    text = world.config(url, "json://127.0.0.1:9/alerts") + LOYALTY
    text = text.replace('marketplace = "US"', 'marketplace = "US"\nbuyer_data = true')
    app = App(parse_config(text, env={}))
    app.__dict__["db"] = engine
    try:
        app.set_stock([StockRow(sku, 50) for sku in SKUS], reason="count")
        app.engine.sync()
        yield app
    finally:
        app.close()


def buy(world: World, channel: str, email: str, name: str, sku: str = "MUG") -> str:
    answer = world.post(channel, "/_sandbox/orders", {
        "lines": [{"sku": sku, "quantity": 1}], "buyer": {"email": email, "name": name}})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["order_id"])


def settle(app: App) -> None:
    time.sleep(LAG + 0.2)  # Amazon and eBay show an order after their lag
    app.engine.sync(read_back=False)


def tier_alerts(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(sa.select(conflict_t).where(
            conflict_t.c.kind == "loyalty_tier")).all()


def stock(engine: Engine) -> tuple[Any, ...]:
    with engine.connect() as conn:
        return (sorted(tuple(r) for r in conn.execute(
                    sa.select(sku_t.c.sku, sku_t.c.on_hand, sku_t.c.reserved))),
                conn.execute(sa.select(sa.func.count()).select_from(mov_t)).scalar())


def test_one_buyer_on_three_channels_reaches_a_tier_once(
    world: World, app: App, engine: Engine
) -> None:
    buy(world, "shop", "ada.lovelace@example.com", "Ada Lovelace")
    on_amazon = buy(world, "amazon", "ada.lovelace@example.com", "Ada Lovelace")
    # Amazon shows the buyer (a relay address) once the order is paid for: Unshipped.
    world.post("amazon", f"/_sandbox/orders/{on_amazon}/status", {"status": "Unshipped"})
    buy(world, "shopify", "carl@example.com", "Carl Gauss")
    settle(app)
    buy(world, "ebay", "Ada.Lovelace@Example.com", "Ada Lovelace", sku="LID")
    settle(app)
    assert tier_alerts(engine) == []
    crossing = buy(world, "shopify", " ada.lovelace@EXAMPLE.com", "Ada Lovelace")
    settle(app)
    settle(app)  # a later pull of the same orders raises nothing more
    alerts = tier_alerts(engine)
    assert len(alerts) == 1
    assert alerts[0].channel == "shopify" and f"order {crossing}" in alerts[0].message
    with engine.connect() as conn:
        found = customers.list_customers(conn, app.config.loyalty, app.now())
        flagged = conn.execute(sa.select(order_t.c.channel, order_t.c.order_id).where(
            order_t.c.tier != "")).all()
    ada = [c for c in found if c.channels != ["amazon"] and "Ada" in c.name]
    assert len(ada) == 1 and ada[0].channels == ["ebay", "shop", "shopify"]
    assert (ada[0].orders, ada[0].tier, ada[0].tag) == (3, "regular", "thank-you card")
    amazon = [c for c in found if c.channels == ["amazon"]]
    assert len(amazon) == 1 and amazon[0].orders == 1  # Amazon's relay address: its own
    assert [(c, o) for c, o in flagged] == [("shopify", crossing)]
    before = stock(engine)
    with engine.begin() as conn:
        keys = customers.find(conn, "ada.lovelace@example.com",
                              app.config.loyalty.salt.get_secret_value())
        assert keys == [ada[0].key]
        done = customers.forget(conn, keys, app.now())
    assert (done.buyers, done.orders) == (1, 3)
    assert stock(engine) == before
    world.post("shopify", f"/_sandbox/orders/{crossing}/ship")  # touched again, re-read
    settle(app)
    with engine.connect() as conn:
        after = customers.list_customers(conn, app.config.loyalty, app.now())
        left = conn.execute(sa.select(order_t.c.buyer, order_t.c.buyer_key).where(
            order_t.c.buyer_forgotten.is_(True))).all()
    assert sorted(c.channels for c in after) == [["amazon"], ["shopify"]]  # Carl's
    assert len(left) == 3 and set(left) == {("", "")}  # re-read, still forgotten
