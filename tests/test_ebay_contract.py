"""The eBay connector against its emulator, through the shared connector contract."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from pydantic import SecretStr

from connectors.ebay import EbayConnector
from connectors.ebay.connector import LISTINGS_PER_PAGE, ORDERS_PER_PAGE
from connectors.ebay.emulator import EbayEmulator
from tests.connector_contract import ConnectorContract, ManualClock

TOKEN = "v^1.1#i^1#r^1#p^3#I^3#f^0#t^H4sIAAAAAAAAAOVYa2wUVRTe7bZFhPIwBEgDZhnURHF2"
WRONG_TOKEN = "v^1.1#i^1#r^1#p^3#I^3#f^0#t^WRONGWRONGWRONGWRONGWRONG"
CERT_ID = "PRD-1a2b3c4d5e6f-7a8b-9c0d-1e2f-3a4b"


def ebay(emulator: EbayEmulator, token: str) -> EbayConnector:
    settings = EbayConnector.Settings(
        token=SecretStr(token), app_id=SecretStr("Seller-App-PRD-1a2b3c4d5-6e7f8a9b"),
        dev_id=SecretStr("1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d"), cert_id=SecretStr(CERT_ID),
        timeout=5)
    # The contract's clock stands still, so every change happens "now": the connector reads
    # the emulator's clock and does not hold back the last two minutes (tested on its own in
    # test_ebay_connector.py).
    return EbayConnector("ebay-contract", settings, endpoint=emulator.url,
                         clock=emulator.clock, settle=timedelta(0))


class TestEbayContract(ConnectorContract):
    secrets = (TOKEN, WRONG_TOKEN, CERT_ID)
    order_page_size = ORDERS_PER_PAGE
    listing_page_size = LISTINGS_PER_PAGE
    open_status = "paid"  # a sandbox order is paid at once
    cancel_restores_stock = True
    throttle_sends_retry_after = False  # eBay's error 518 says nothing about when
    # CompleteSale ships one line at a time (ItemID + TransactionID), each with its own
    # tracking number; a line ships whole (the connector refuses part of a line's units).
    partial_shipments = True
    # eBay checks a tracking number against the carrier's numbering scheme (error 2191111).
    checks_tracking = True

    @pytest.fixture
    def emulator(self, clock: ManualClock) -> Iterator[EbayEmulator]:
        emu = EbayEmulator(token=TOKEN, clock=clock)
        emu.start()
        try:
            yield emu
        finally:
            emu.stop()

    def make_connector(self, emulator: EbayEmulator) -> EbayConnector:
        return ebay(emulator, TOKEN)

    def make_unauthorized_connector(self, emulator: EbayEmulator) -> EbayConnector:
        return ebay(emulator, WRONG_TOKEN)
