"""The Shopify connector against its emulator, through the shared connector contract."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from connectors.shopify import ShopifyConnector, ShopifySettings
from connectors.shopify._queries import ORDER_PAGE_SIZE, VARIANT_PAGE
from connectors.shopify.emulator import ShopifyEmulator
from tests.connector_contract import ConnectorContract, ManualClock

TOKEN = "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"
WRONG_TOKEN = "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"
FAST_REFILL = 1_000_000.0  # points per second: the cost bucket never makes a test wait


def shopify(endpoint: str, token: str) -> ShopifyConnector:
    settings = ShopifySettings(access_token=SecretStr(token))
    return ShopifyConnector("shopify-contract", settings, endpoint=endpoint)


class TestShopifyContract(ConnectorContract):
    secrets = (TOKEN, WRONG_TOKEN)
    order_page_size = ORDER_PAGE_SIZE
    listing_page_size = VARIANT_PAGE
    open_status = "unfulfilled/paid"  # Shopify took the units from available at checkout
    cancel_restores_stock = True
    throttle_sends_retry_after = True
    partial_shipments = True  # fulfillmentCreate takes units per line; lines show them shipped
    checks_tracking = False  # Shopify takes any text as a tracking number

    @pytest.fixture
    def emulator(self, clock: ManualClock) -> Iterator[ShopifyEmulator]:
        emu = ShopifyEmulator(access_token=TOKEN, clock=clock, restore_rate=FAST_REFILL)
        emu.start()
        try:
            yield emu
        finally:
            emu.stop()

    def make_connector(self, emulator: ShopifyEmulator) -> ShopifyConnector:
        return shopify(emulator.url, TOKEN)

    def make_unauthorized_connector(self, emulator: ShopifyEmulator) -> ShopifyConnector:
        return shopify(emulator.url, WRONG_TOKEN)
