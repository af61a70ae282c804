"""A sale on WooCommerce reaches Amazon, and an Amazon sale reaches WooCommerce."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from channelsync.config import parse_config
from channelsync.ledger.stock import StockRow
from channelsync.service.app import App
from connectors.amazon.emulator import AmazonEmulator
from connectors.woocommerce.emulator import WooCommerceEmulator
from tests.ledger_helpers import check_invariants

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


def test_amazon_order_budget_spent_defers_the_pull_not_the_cycle(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """searchOrders allows a burst of 20, then one call about every three minutes. Past the
    burst, a cycle must not sit in the rate limit: the pull is deferred (logged once, shown
    by status), a WooCommerce sale still reaches Amazon, and an increase to Amazon waits
    until its orders were pulled again (echo-safe)."""
    from channelsync.service.reports import status

    with WooCommerceEmulator(consumer_key="ck_x", consumer_secret="cs_x") as shop, \
            AmazonEmulator(seller_id="A2SELLER", rate_limits=True) as amazon:
        for emulator in (shop, amazon):
            httpx.post(f"{emulator.url}/_sandbox/listings", json={"sku": "MUG", "quantity": 0})
        app = App(parse_config(CONFIG.format(shop=shop.url, amazon=amazon.url), env={}))
        app.__dict__["db"] = engine
        try:
            app.set_stock([StockRow("MUG", 10)], reason="count")
            app.engine.sync(["shop"])
            caplog.set_level("INFO", logger="channelsync.sync.engine")
            cycles = 0
            while cycles < 25:
                cycles += 1
                (report,) = app.engine.sync(["amazon"])
                if report.deferred:
                    break
            searches = amazon.stats()["requests"]["searchOrders"]
            assert searches == 20 and cycles == 21  # the burst, then deferred
            assert amazon.stats()["throttled"] == 0  # held back before Amazon had to say so
            assert 170 < report.deferred["orders"] <= 180 and not report.error
            assert shows(amazon)["MUG"] == 10
            httpx.post(f"{shop.url}/_sandbox/orders",
                       json={"lines": [{"sku": "MUG", "quantity": 2}]}).raise_for_status()
            reports = {r.channel: r for r in app.engine.sync()}
            assert shows(amazon)["MUG"] == 8  # the webshop's sale reached Amazon regardless
            assert "orders" in reports["amazon"].deferred
            assert amazon.stats()["requests"]["searchOrders"] == searches  # not asked again
            app.adjust_stock("MUG", 5, reason="delivery")
            app.engine.sync()
            assert shows(shop)["MUG"] == 13
            assert shows(amazon)["MUG"] == 8  # an increase waits for Amazon's orders
            with engine.connect() as conn:
                channels = {c["name"]: c for c in status(conn, app.config,
                                                         app.now())["channels"]}
            assert 160 < channels["amazon"]["deferred"]["orders"]["in_s"] <= 180
            deferrals = [r for r in caplog.records if "deferred to a later cycle" in r.message]
            assert len(deferrals) == 1 and "next call allowed in 2m5" in deferrals[0].message
        finally:
            app.close()


def test_a_feed_amazon_is_slow_over_is_collected_by_a_later_cycle(engine: Engine) -> None:
    """Amazon takes minutes over a feed: the push waits a moment (feed_wait), then the
    cycle goes on; later cycles collect the outcome, and no second write goes to a listing
    whose feed is still being processed (two writes in flight could apply in any order)."""
    import time

    from channelsync.service.reports import status

    skus = [f"SKU-{n:03d}" for n in range(120)]  # above feed_threshold (100): one feed
    text = CONFIG.replace('lwa_client_secret = "s"\n', 'lwa_client_secret = "s"\n'
                          "feed_wait = 0.3\nfeed_poll_interval = 0.1\n")
    with WooCommerceEmulator(consumer_key="ck_x", consumer_secret="cs_x") as shop, \
            AmazonEmulator(seller_id="A2SELLER", rate_limits=False, feed_delay=2.5) as amazon:
        for sku in skus:
            httpx.post(f"{amazon.url}/_sandbox/listings", json={"sku": sku, "quantity": 0})
        app = App(parse_config(text.format(shop=shop.url, amazon=amazon.url), env={}))
        app.__dict__["db"] = engine
        try:
            app.set_stock([StockRow(sku, 5) for sku in skus], reason="count")
            (report,) = app.engine.sync(["amazon"])
            assert report.awaiting == 120 and report.pushed == 0 and not report.error
            assert set(shows(amazon).values()) == {0}  # Amazon has not applied it yet
            with engine.connect() as conn:
                (row,) = [c for c in status(conn, app.config, app.now())["channels"]
                          if c["name"] == "amazon"]
            assert row["awaiting_channel"] == 120 and row["awaiting_since"]
            app.set_stock([StockRow(skus[0], 3)], reason="count")  # planned while in flight
            (report,) = app.engine.sync(["amazon"])
            assert report.awaiting == 120 and report.pushed == 0
            requests = amazon.stats()["requests"]
            assert requests["createFeed"] == 1 and requests.get("patchListingsItem", 0) == 0
            time.sleep(2.6)  # Amazon finishes the feed
            (report,) = app.engine.sync(["amazon"])
            assert report.awaiting == 0 and not report.error
            shown = shows(amazon)
            assert shown[skus[0]] == 3  # the newer target, written after the feed's outcome
            assert all(shown[sku] == 5 for sku in skus[1:])
            assert amazon.stats()["requests"]["createFeed"] == 1
        finally:
            app.close()


def _ledger(engine: Engine) -> dict[str, tuple[int, int]]:
    from channelsync.service.reports import stock_list

    with engine.connect() as conn:
        return {row["sku"]: (row["on_hand"], row["reserved"]) for row in stock_list(conn)}


def _implied(amazon: AmazonEmulator, counted: dict[str, int]) -> dict[str, tuple[int, int]]:
    """sku -> (on hand, reserved) the merchant-fulfilled orders Amazon holds imply."""
    rows = httpx.get(f"{amazon.url}/_sandbox/orders").json()["orders"]
    on_hand, reserved = dict(counted), dict.fromkeys(counted, 0)
    for row in rows:
        for line in row["lines"] if row["fulfilled_by"] == "MERCHANT" else ():
            reserved[line["sku"]] += line["quantity"] - line["shipped"] - line["cancelled"]
            on_hand[line["sku"]] += line["restocked"] - line["shipped"]
    return {sku: (on_hand[sku], reserved[sku]) for sku in counted}


def test_faulty_order_pages_lose_and_double_nothing(
    engine: Engine, emulators: tuple[WooCommerceEmulator, AmazonEmulator]
) -> None:
    """Pages that show orders twice, shuffled or as they were before their latest change:
    the ledger ends up holding exactly what Amazon's orders imply."""
    shop, amazon = emulators
    counted = {"MUG": 30, "CUP": 30}
    for sku in counted:
        for emulator in (shop, amazon):
            httpx.post(f"{emulator.url}/_sandbox/listings", json={"sku": sku, "quantity": 0})
    app = App(parse_config(CONFIG.format(shop=shop.url, amazon=amazon.url), env={}))
    app.__dict__["db"] = engine

    def sell(**lines: int) -> str:
        answer = httpx.post(f"{amazon.url}/_sandbox/orders", json={"lines": [
            {"sku": sku, "quantity": n} for sku, n in lines.items()]})
        answer.raise_for_status()
        return str(answer.json()["order_id"])

    def act(order_id: str, action: str, body: Any = None) -> None:
        httpx.post(f"{amazon.url}/_sandbox/orders/{order_id}/{action}",
                   json=body).raise_for_status()

    try:
        app.set_stock([StockRow(sku, n) for sku, n in counted.items()], reason="count")
        app.engine.sync()
        # Amazon reports whole seconds: a shipment in the second of the count would look
        # older than the count, and so already off the shelf when counted.
        time.sleep(1)
        ids = [sell(MUG=2), sell(CUP=1), sell(MUG=1, CUP=2), sell(MUG=3)]
        act(ids[1], "cancel")
        act(ids[2], "ship")
        httpx.post(f"{amazon.url}/_sandbox/faults", json={
            "duplicate_rate": 0.5, "reorder_rate": 0.5, "stale_rate": 0.5, "seed": 11})
        app.engine.sync()
        act(ids[3], "status", {"status": "PartiallyShipped", "shipped": {"MUG": 1}})
        act(ids[0], "cancel")
        ids.append(sell(CUP=2))
        app.engine.sync()
        act(ids[4], "ship")
        ids.append(sell(MUG=1, CUP=1))
        app.engine.sync()
        httpx.post(f"{amazon.url}/_sandbox/faults", json={})
        app.engine.sync()
        assert _ledger(engine) == _implied(amazon, counted)
        check_invariants(engine)
    finally:
        app.close()
