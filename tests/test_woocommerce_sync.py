"""The engine against the WooCommerce emulator over real HTTP, with faults injected."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy.engine import Engine

from channelsync.config import parse_config
from channelsync.ledger.stock import StockRow
from channelsync.service.app import App
from connectors.woocommerce.emulator import WooCommerceEmulator

CONFIG = """
[daemon]
retry_attempts = 8
retry_max_wait = 0.05
[[channel]]
name = "shop"
type = "woocommerce"
endpoint = "{url}"
consumer_key = "ck_x"
consumer_secret = "cs_x"
"""


@pytest.fixture
def shop() -> Iterator[WooCommerceEmulator]:
    with WooCommerceEmulator(consumer_key="ck_x", consumer_secret="cs_x") as emulator:
        yield emulator


def make_app(engine: Engine, url: str) -> App:
    app = App(parse_config(CONFIG.format(url=url), env={}))
    app.__dict__["db"] = engine
    return app


def test_sync_rides_out_throttling_and_server_errors(engine: Engine,
                                                     shop: WooCommerceEmulator) -> None:
    for i in range(120):  # more than one page of products
        httpx.post(f"{shop.url}/_sandbox/listings", json={"sku": f"S{i:03}", "quantity": 0})
    app = make_app(engine, shop.url)
    app.set_stock([StockRow(f"S{i:03}", i) for i in range(120)], reason="count")
    app.engine.sync()
    app.set_stock([StockRow(f"S{i:03}", i + 1) for i in range(120)], reason="recount")
    for _ in range(3):
        httpx.post(f"{shop.url}/_sandbox/orders",
                   json={"lines": [{"sku": "S100", "quantity": 1}]}).raise_for_status()
    httpx.post(f"{shop.url}/_sandbox/faults",
               json={"throttle_rate": 0.3, "error_rate": 0.2, "seed": 3, "retry_after": 0})
    try:
        (report,) = app.engine.sync()
    finally:
        app.close()
    stats = httpx.get(f"{shop.url}/_sandbox/stats").json()
    assert stats["throttled"] > 0 and stats["errors"] > 0
    assert not report.error, report.error
    shown = {x["sku"]: x["quantity"] for x in
             httpx.get(f"{shop.url}/_sandbox/listings").json()["listings"]}
    assert shown == {f"S{i:03}": (i - 2 if i == 100 else i + 1) for i in range(120)}


def test_a_channel_that_stays_down_is_reported_not_fatal(engine: Engine,
                                                         shop: WooCommerceEmulator) -> None:
    httpx.post(f"{shop.url}/_sandbox/faults", json={"error_rate": 1.0})
    app = make_app(engine, shop.url)
    try:
        (report,) = app.engine.sync()
    finally:
        app.close()
    assert "RetriableChannelError" in report.error
