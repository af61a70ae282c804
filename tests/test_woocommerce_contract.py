"""The WooCommerce connector against its emulator, through the shared connector contract."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from connectors.woocommerce import WooCommerceConnector
from connectors.woocommerce.connector import PER_PAGE
from connectors.woocommerce.emulator import WooCommerceEmulator
from tests.connector_contract import ConnectorContract, ManualClock

KEY = "ck_5e1f0c2a9b8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f"
SECRET = "cs_0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b"
WRONG_SECRET = "cs_ffffeeeeddddccccbbbbaaaa9999888877776666"


def woocommerce(endpoint: str, key: str, secret: str) -> WooCommerceConnector:
    settings = WooCommerceConnector.Settings(
        consumer_key=SecretStr(key), consumer_secret=SecretStr(secret)
    )
    return WooCommerceConnector("woo-contract", settings, endpoint=endpoint)


class TestWooCommerceContract(ConnectorContract):
    secrets = (KEY, SECRET, WRONG_SECRET)
    order_page_size = PER_PAGE
    listing_page_size = PER_PAGE
    open_status = "processing"  # a paid order: WooCommerce has reduced the stock
    cancel_restores_stock = True
    # A shipment is an order note: the order shows its lines shipped only once it is
    # completed, with the last shipment (line items have no shipped quantity).
    partial_shipments = False
    checks_tracking = False  # any text goes in a note

    @pytest.fixture
    def emulator(self, clock: ManualClock) -> Iterator[WooCommerceEmulator]:
        emu = WooCommerceEmulator(consumer_key=KEY, consumer_secret=SECRET, clock=clock)
        emu.start()
        try:
            yield emu
        finally:
            emu.stop()

    def make_connector(self, emulator: WooCommerceEmulator) -> WooCommerceConnector:
        return woocommerce(emulator.url, KEY, SECRET)

    def make_unauthorized_connector(self, emulator: WooCommerceEmulator) -> WooCommerceConnector:
        return woocommerce(emulator.url, KEY, WRONG_SECRET)
