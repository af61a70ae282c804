"""Shipments confirmed on eBay (CompleteSale) and Amazon (confirmShipment), beyond the shared
contract: the calls each connector makes, how a repeat is found, what each channel refuses,
and the emulators' side of it. Amazon's request and answers are checked against its models
in tests/reference/amazon-sp-api/."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from channelsync.connector import Shipment, ShipmentLine
from channelsync.errors import PermanentChannelError, RetriableChannelError, ThrottledError
from channelsync.sandbox.emulator import Request, Response
from connectors.amazon import AmazonConnector
from connectors.amazon._shipping import carrier_fields, package_reference
from connectors.amazon.emulator import AmazonEmulator
from connectors.ebay import EbayConnector
from connectors.ebay._adapter import Credentials, TradingClient
from connectors.ebay._fulfil import Fulfilment
from connectors.ebay.connector import order_state, parse_order
from connectors.ebay.emulator import EbayEmulator
from tests.connector_contract import ManualClock
from tests.test_amazon_contract import APP_ID, CLIENT_SECRET, REFRESH, SELLER, amazon
from tests.test_amazon_emulator import assert_model
from tests.test_ebay_contract import TOKEN, ebay

V0 = "ordersV0.json"
V2026 = "orders_2026-01-01.json"


@pytest.fixture
def clock() -> ManualClock:
    """Hours behind the real clock, as the contract's: a shipment dated now is ahead of it."""
    return ManualClock(datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6))


def shipment(order_id: str, lines: list[tuple[str, str, int]], tracking: str, *,
             key: str = "", carrier: str = "DHL") -> Shipment:
    return Shipment(order_id, [ShipmentLine(*line) for line in lines], carrier, tracking,
                    key or f"cs-test-{tracking}", datetime.now(UTC))


def sandbox(url: str, method: str, path: str, body: Any = None) -> Any:
    response = httpx.request(method, f"{url}/_sandbox/{path}", json=body, timeout=5)
    assert response.status_code < 300, response.text
    return response.json()


# -- eBay ------------------------------------------------------------------------------------


class RecordingEbay(EbayEmulator):
    """The eBay emulator, remembering each Trading call it was sent (name, request XML)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.calls: list[tuple[str, str]] = []

    def handle(self, request: Request) -> Response:
        if request.path == "/ws/api.dll":
            name = request.headers.get("X-EBAY-API-CALL-NAME") or ""
            self.calls.append((name, request.body.decode()))
        return super().handle(request)

    def sent(self, call: str) -> list[str]:
        return [body for name, body in self.calls if name == call]


@pytest.fixture
def bay(clock: ManualClock) -> Iterator[RecordingEbay]:
    emulator = RecordingEbay(token=TOKEN, clock=clock)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def seller(bay: RecordingEbay) -> Iterator[EbayConnector]:
    connector = ebay(bay, TOKEN)
    yield connector
    connector.close()


def ebay_order(bay: RecordingEbay, **lines: int) -> tuple[str, list[tuple[str, str, int]]]:
    """A paid order on the emulator: its id and (line id, SKU, units) per line."""
    for sku in lines:
        sandbox(bay.url, "POST", "listings", {"sku": sku, "quantity": 10})
    body = {"lines": [{"sku": sku, "quantity": n} for sku, n in lines.items()]}
    order_id = sandbox(bay.url, "POST", "orders", body)["order_id"]
    with bay.lock:
        found = bay.store.orders[order_id].lines
        return order_id, [(x.line_item_id, x.item_sku, x.quantity) for x in found]


def test_ebay_a_whole_order_is_one_complete_sale_by_order_id(
    bay: RecordingEbay, seller: EbayConnector
) -> None:
    order_id, lines = ebay_order(bay, MUG=2, CUP=1)
    result = seller.confirm_shipment(shipment(order_id, lines, "1Z999AA10123456784"))
    assert (result.ok, result.already, result.error) == (True, False, None)
    (sent,) = bay.sent("CompleteSale")
    assert f"<OrderID>{order_id}</OrderID>" in sent and "<Shipped>true</Shipped>" in sent
    assert "<ShippingCarrierUsed>DHL</ShippingCarrierUsed>" in sent
    assert "<ShipmentTrackingNumber>1Z999AA10123456784</ShipmentTrackingNumber>" in sent
    assert "<ShippedTime>" in sent and "<ItemID>" not in sent
    row = sandbox(bay.url, "GET", f"orders/{order_id}")
    assert row["shipments"] == [{"carrier": "DHL", "tracking": "1Z999AA10123456784",
                                 "lines": [{"sku": "MUG", "quantity": 2},
                                           {"sku": "CUP", "quantity": 1}]}]
    with bay.lock:
        assert bay.store.orders[order_id].shipped is not None  # the order's ShippedTime


def test_ebay_lines_ship_one_by_one_and_the_last_marks_the_order(
    bay: RecordingEbay, seller: EbayConnector
) -> None:
    order_id, (mug, cup) = ebay_order(bay, MUG=1, CUP=2)
    assert seller.confirm_shipment(shipment(order_id, [mug], "TRK-A1")).ok
    (first,) = bay.sent("CompleteSale")
    item_id, transaction_id = mug[0].split("-")
    assert f"<ItemID>{item_id}</ItemID>" in first
    assert f"<TransactionID>{transaction_id}</TransactionID>" in first
    assert "<OrderID>" not in first
    with bay.lock:
        assert bay.store.orders[order_id].shipped is None  # eBay: lines shipped, not the order
    lines = seller_lines(seller, bay, order_id)
    assert [(x.channel_sku, x.shipped) for x in lines] == [("CUP", 0), ("MUG", 1)]
    assert seller.confirm_shipment(shipment(order_id, [cup], "TRK-B2")).ok
    _, second, last = bay.sent("CompleteSale")
    assert "<ShipmentTrackingNumber>TRK-B2</ShipmentTrackingNumber>" in second
    assert f"<OrderID>{order_id}</OrderID>" in last and "<Shipment>" not in last
    assert [(s["tracking"], len(s["lines"])) for s in sandbox(
        bay.url, "GET", f"orders/{order_id}")["shipments"]] == [("TRK-A1", 1), ("TRK-B2", 1)]
    with bay.lock:
        assert bay.store.orders[order_id].shipped is not None
    assert all(x.shipped == x.ordered for x in seller_lines(seller, bay, order_id))


def seller_lines(seller: EbayConnector, bay: RecordingEbay, order_id: str) -> list[Any]:
    page = seller.pull_orders(bay.clock() - timedelta(days=1), None)
    return sorted((x for x in page.lines if x.order_id == order_id), key=lambda x: x.channel_sku)


def test_ebay_part_of_a_line_is_refused_before_any_call(
    bay: RecordingEbay, seller: EbayConnector
) -> None:
    order_id, [(line_id, sku, _)] = ebay_order(bay, MUG=3)
    result = seller.confirm_shipment(shipment(order_id, [(line_id, sku, 1)], "TRK1"))
    assert not result.ok and isinstance(result.error, PermanentChannelError)
    assert "whole order lines" in str(result.error)
    assert bay.sent("CompleteSale") == []


def test_ebay_refuses_a_malformed_tracking_number_with_2191111(
    bay: RecordingEbay, seller: EbayConnector
) -> None:
    order_id, lines = ebay_order(bay, MUG=1)
    result = seller.confirm_shipment(shipment(order_id, lines, "TRK 1/2"))
    assert not result.ok and isinstance(result.error, PermanentChannelError)
    assert "2191111" in str(result.error)
    assert sandbox(bay.url, "GET", f"orders/{order_id}")["shipments"] == []


def test_ebay_a_number_on_another_buyers_order_is_refused(
    bay: RecordingEbay, seller: EbayConnector
) -> None:
    first, first_lines = ebay_order(bay, MUG=1)
    second, second_lines = ebay_order(bay, CUP=1)
    with bay.lock:
        bay.store.orders[first].buyer, bay.store.orders[second].buyer = "ada.costa12", "luis99"
    assert seller.confirm_shipment(shipment(first, first_lines, "TRK77")).ok
    refused = seller.confirm_shipment(shipment(second, second_lines, "TRK77"))
    assert not refused.ok and isinstance(refused.error, PermanentChannelError)
    assert "21916964" in str(refused.error)


class LaggingFulfilment(Fulfilment):
    """eBay's order index a step behind: the first read shows ``stale``."""

    def __init__(self, api: TradingClient, stale: Any) -> None:
        super().__init__(api, order_state)
        self.stale: list[Any] = [stale]

    def _read(self, order_id: str) -> Any:
        return self.stale.pop() if self.stale else super()._read(order_id)


def test_ebay_in_use_after_a_stale_read_is_the_earlier_try_found(
    bay: RecordingEbay, seller: EbayConnector
) -> None:
    order_id, lines = ebay_order(bay, MUG=1)
    api = TradingClient("ebay-test", bay.url, Credentials("app", "dev", "cert", token=TOKEN))
    before = Fulfilment(api, order_state)._read(order_id)
    ship = shipment(order_id, lines, "TRK55")
    assert seller.confirm_shipment(ship).ok
    again = LaggingFulfilment(api, before).confirm(ship)
    assert (again.ok, again.already) == (True, True)
    assert len(bay.sent("CompleteSale")) == 2  # the second was answered 21916964
    assert len(sandbox(bay.url, "GET", f"orders/{order_id}")["shipments"]) == 1


def test_ebay_a_lost_answer_midway_is_finished_by_the_retry(
    bay: RecordingEbay, seller: EbayConnector
) -> None:
    order_id, (mug, cup) = ebay_order(bay, MUG=1, CUP=1)
    assert seller.confirm_shipment(shipment(order_id, [mug], "TRK-1")).ok
    sandbox(bay.url, "POST", "faults", {"lost_answer_rate": 1.0})
    rest = shipment(order_id, [cup], "TRK-2")
    with pytest.raises(RetriableChannelError):
        seller.confirm_shipment(rest)  # the line's CompleteSale landed; its answer did not
    sandbox(bay.url, "POST", "faults", {})
    retry = seller.confirm_shipment(rest)
    assert (retry.ok, retry.already) == (True, True)
    assert "<Shipment>" not in bay.sent("CompleteSale")[-1]  # only the order's Shipped
    with bay.lock:
        assert bay.store.orders[order_id].shipped is not None
    assert len(sandbox(bay.url, "GET", f"orders/{order_id}")["shipments"]) == 2


def test_ebay_throttling_and_failures_are_raised(bay: RecordingEbay, seller: EbayConnector) -> None:
    order_id, lines = ebay_order(bay, MUG=1)
    sandbox(bay.url, "POST", "faults", {"throttle_rate": 1.0})
    with pytest.raises(ThrottledError):
        seller.confirm_shipment(shipment(order_id, lines, "TRK1"))
    sandbox(bay.url, "POST", "faults", {"error_rate": 1.0})
    with pytest.raises(RetriableChannelError):
        seller.confirm_shipment(shipment(order_id, lines, "TRK1"))


def test_ebay_an_unknown_order_is_refused_without_complete_sale(
    bay: RecordingEbay, seller: EbayConnector
) -> None:
    result = seller.confirm_shipment(shipment("99-99999-99999", [("1-2", "MUG", 1)], "TRK1"))
    assert not result.ok and "no order" in str(result.error)
    assert bay.sent("CompleteSale") == [] and len(bay.sent("GetOrders")) == 1
    assert "<OrderIDArray><OrderID>99-99999-99999</OrderID></OrderIDArray>" in bay.sent(
        "GetOrders")[0]


def test_ebay_emulator_complete_sale_checks(bay: RecordingEbay, seller: EbayConnector) -> None:
    """What the emulator refuses of a CompleteSale, through the same client the connector
    uses: a ShippedTime over 3 days ahead, a carrier without a number, nothing to do."""
    order_id, lines = ebay_order(bay, MUG=1)
    api = TradingClient("ebay-test", bay.url, Credentials("app", "dev", "cert", token=TOKEN))
    ahead = (bay.clock() + timedelta(days=4)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"Shipped": "true", "Shipment": {"ShippedTime": ahead}}, "37"),
        ({"Shipment": {"ShipmentTrackingDetails": {"ShippingCarrierUsed": "DHL"}}}, "2191111"),
        ({}, "37"),
    ]
    for extra, code in cases:
        with pytest.raises(PermanentChannelError, match=code):
            api.call("CompleteSale", {**extra, "OrderID": order_id})
    with bay.lock:
        order = bay.store.orders[order_id]
        assert order.shipped is None and not order.line_shipped and not order.tracking


def test_ebay_a_line_shipped_on_its_own_reads_as_shipped() -> None:
    tx = {"OrderLineItemID": "11-22", "Item": {"ItemID": "11", "SKU": "MUG"},
          "QuantityPurchased": "2", "TransactionID": "22",
          "ShippedTime": "2026-11-26T04:00:00.000Z"}
    other = {**tx, "OrderLineItemID": "11-23", "TransactionID": "23"}
    del other["ShippedTime"]
    raw = {"OrderID": "01-1-1", "OrderStatus": "Completed", "PaidTime": "2026-11-25T00:00:00Z",
           "LastModifiedTime": "2026-11-26T04:00:00.000Z", "CheckoutStatus": {
               "Status": "Complete"}, "TransactionArray": {"Transaction": [tx, other]}}
    lines, bad = parse_order(raw)
    assert bad == [] and [(x.line_id, x.shipped) for x in lines] == [("11-22", 2), ("11-23", 0)]
    assert order_state(raw) == "paid"  # the order as a whole: not shipped yet


# -- Amazon ----------------------------------------------------------------------------------


class RecordingAmazon(AmazonEmulator):
    """The Amazon emulator, remembering each SP-API request (method, path, body)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.requests: list[tuple[str, str, bytes]] = []

    def handle(self, request: Request) -> Response:
        self.requests.append((request.method, request.path, request.body))
        return super().handle(request)

    def confirmations(self) -> list[Any]:
        return [json.loads(body) for method, path, body in self.requests
                if method == "POST" and path.endswith("/shipmentConfirmation")]


def start_amazon(clock: ManualClock, **options: Any) -> RecordingAmazon:
    settings: dict[str, Any] = {"refresh_token": REFRESH, "client_id": APP_ID,
                                "client_secret": CLIENT_SECRET, "seller_id": SELLER,
                                "rate_limits": False, "feed_delay": 0, "clock": clock,
                                **options}
    emulator = RecordingAmazon(**settings)
    emulator.start()
    return emulator


@pytest.fixture
def amz(clock: ManualClock) -> Iterator[RecordingAmazon]:
    emulator = start_amazon(clock)
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def merchant(amz: RecordingAmazon) -> Iterator[AmazonConnector]:
    connector = amazon(amz.url)
    yield connector
    connector.close()


def amazon_order(emulator: AmazonEmulator, fulfillment: str = "MFN",
                 **lines: int) -> tuple[str, list[tuple[str, str, int]]]:
    for sku in lines:
        sandbox(emulator.url, "POST", "listings", {"sku": sku, "quantity": 10,
                                                  "fulfillment": fulfillment})
    body = {"lines": [{"sku": sku, "quantity": n} for sku, n in lines.items()]}
    order_id = sandbox(emulator.url, "POST", "orders", body)["order_id"]
    with emulator.lock:
        items = emulator.account.orders[order_id].items
        return order_id, [(x.item_id, x.sku, x.quantity) for x in items]


def sp_api(emulator: AmazonEmulator) -> httpx.Client:
    """Plain httpx with an access token from the emulator's LWA: answers exactly as sent."""
    form = {"grant_type": "refresh_token", "refresh_token": REFRESH, "client_id": APP_ID,
            "client_secret": CLIENT_SECRET}
    token = httpx.post(f"{emulator.url}/auth/o2/token", data=form).json()["access_token"]
    return httpx.Client(base_url=emulator.url, headers={"x-amz-access-token": token}, timeout=5)


def body(order_items: list[tuple[str, int]], reference: str = "1", tracking: str = "TRK1",
         **detail: Any) -> dict[str, Any]:
    package = {"packageReferenceId": reference, "carrierCode": "UPS", "trackingNumber": tracking,
               "shipDate": "2026-11-26T04:00:00Z",
               "orderItems": [{"orderItemId": i, "quantity": q} for i, q in order_items],
               **detail}
    return {"marketplaceId": "ATVPDKIKX0DER", "packageDetail": package}


def test_amazon_one_package_in_amazons_model_found_again_by_get_order(
    amz: RecordingAmazon, merchant: AmazonConnector
) -> None:
    order_id, lines = amazon_order(amz, MUG=2, CUP=1)
    ship = shipment(order_id, lines, "1Z999AA10123456784", key="cs-0123456789abcdef0123")
    result = merchant.confirm_shipment(ship)
    assert (result.ok, result.already, result.ref) == (True, False, package_reference(ship.key))
    (sent,) = amz.confirmations()
    assert_model(sent, V0, "ConfirmShipmentRequest")
    detail = sent["packageDetail"]
    assert detail["packageReferenceId"] == result.ref and detail["carrierCode"] == "DHL"
    assert "carrierName" not in detail and detail["trackingNumber"] == ship.tracking
    assert sorted((i["orderItemId"], i["quantity"]) for i in detail["orderItems"]) == sorted(
        (line_id, units) for line_id, _, units in lines)
    with sp_api(amz) as http:
        answer = http.get(f"/orders/2026-01-01/orders/{order_id}",
                          params={"includedData": "FULFILLMENT,PACKAGES"})
    assert_model(answer.json(), V2026, "GetOrderResponse")
    order = answer.json()["order"]
    assert order["fulfillment"]["fulfillmentStatus"] == "SHIPPED"
    (package,) = order["packages"]
    assert (package["packageReferenceId"], package["carrier"], package["trackingNumber"]) == (
        result.ref, "DHL", ship.tracking)
    again = merchant.confirm_shipment(ship)
    assert (again.ok, again.already) == (True, True) and len(amz.confirmations()) == 1


def test_amazon_a_carrier_amazon_does_not_list_goes_as_other_with_its_name(
    amz: RecordingAmazon, merchant: AmazonConnector
) -> None:
    assert carrier_fields("royal-mail") == {"carrierCode": "Royal Mail"}
    order_id, lines = amazon_order(amz, MUG=1)
    assert merchant.confirm_shipment(shipment(order_id, lines, "CX1", carrier="Colissimo")).ok
    (sent,) = amz.confirmations()
    assert_model(sent, V0, "ConfirmShipmentRequest")
    assert (sent["packageDetail"]["carrierCode"], sent["packageDetail"]["carrierName"]) == (
        "Other", "Colissimo")
    (row,) = sandbox(amz.url, "GET", f"orders/{order_id}")["shipments"]
    assert (row["carrier"], row["tracking"]) == ("Colissimo", "CX1")


def test_amazon_a_package_with_our_tracking_number_is_found_without_a_call(
    amz: RecordingAmazon, merchant: AmazonConnector
) -> None:
    order_id, lines = amazon_order(amz, MUG=1)
    with sp_api(amz) as http:  # the seller confirmed it by hand, with a reference of their own
        done = http.post(f"/orders/v0/orders/{order_id}/shipmentConfirmation",
                         json=body([(lines[0][0], 1)], reference="7", tracking="TRK9"))
    assert done.status_code == 204, done.text
    result = merchant.confirm_shipment(shipment(order_id, lines, "trk9"))
    assert (result.ok, result.already) == (True, True)
    assert len(amz.confirmations()) == 1


def test_amazon_refusals_need_no_confirmation_call(
    amz: RecordingAmazon, merchant: AmazonConnector
) -> None:
    cancelled, lines = amazon_order(amz, MUG=1)
    sandbox(amz.url, "POST", f"orders/{cancelled}/cancel")
    fba, fba_lines = amazon_order(amz, "AFN", FBA=1)
    other, _ = amazon_order(amz, CUP=1)
    for ship, why in [(shipment(cancelled, lines, "T1"), "cancelled"),
                      (shipment(fba, fba_lines, "T2"), "fulfilled by Amazon"),
                      (shipment("111-0000000-0000000", lines, "T3"), "no order"),
                      (replace(shipment(cancelled, lines, "T4"), order_id=other), "no item")]:
        result = merchant.confirm_shipment(ship)
        assert not result.ok and isinstance(result.error, PermanentChannelError), ship
        assert why in str(result.error)
    assert amz.confirmations() == []


def test_amazon_a_retry_amazon_does_not_show_yet_edits_the_same_package(
    clock: ManualClock,
) -> None:
    """Amazon shows changes two minutes late: a retry right after a lost answer confirms the
    package again, and the same packageReferenceId makes it an edit, not a second package."""
    emulator = start_amazon(clock, visibility_lag=120.0)
    connector = amazon(emulator.url)
    try:
        order_id, lines = amazon_order(emulator, MUG=1)
        clock.advance(180)  # the order shows
        ship = shipment(order_id, lines, "TRK-LAG")
        sandbox(emulator.url, "POST", "faults", {"lost_answer_rate": 1.0})
        with pytest.raises(RetriableChannelError):
            connector.confirm_shipment(ship)
        sandbox(emulator.url, "POST", "faults", {})
        retry = connector.confirm_shipment(ship)
        assert (retry.ok, retry.already) == (True, False)
        first, second = emulator.confirmations()
        assert first == second
        assert len(sandbox(emulator.url, "GET", f"orders/{order_id}")["shipments"]) == 1
        clock.advance(180)
        assert connector.confirm_shipment(ship).already  # now Amazon shows it
    finally:
        connector.close()
        emulator.stop()


def test_amazon_throttling_and_failures_are_raised(
    amz: RecordingAmazon, merchant: AmazonConnector
) -> None:
    order_id, lines = amazon_order(amz, MUG=1)
    sandbox(amz.url, "POST", "faults", {"throttle_rate": 1.0})
    with pytest.raises(ThrottledError):
        merchant.confirm_shipment(shipment(order_id, lines, "T1"))
    sandbox(amz.url, "POST", "faults", {"error_rate": 1.0})
    with pytest.raises(RetriableChannelError):
        merchant.confirm_shipment(shipment(order_id, lines, "T1"))


def test_amazon_emulator_confirm_shipment_rules(amz: RecordingAmazon) -> None:
    order_id, [(mug, _, _), (cup, _, _)] = amazon_order(amz, MUG=2, CUP=1)
    path = f"/orders/v0/orders/{order_id}/shipmentConfirmation"
    with sp_api(amz) as http:
        refused = {
            "a number, not a string": body([(mug, 1)], reference=5),  # type: ignore[arg-type]
            "not positive": body([(mug, 1)], reference="0"),
            "an unknown item": body([("999", 1)]),
            "too many units": body([(mug, 3)]),
            "Other without a name": body([(mug, 1)], carrierCode="Other"),
            "another marketplace": {**body([(mug, 1)]), "marketplaceId": "A1PA6795UKMFR9"},
            "no shipDate": body([(mug, 1)], shipDate="02/21/2022"),
        }
        for why, request in refused.items():
            answer = http.post(path, json=request)
            assert answer.status_code == 400, why
            assert_model(answer.json(), V0, "ConfirmShipmentErrorResponse")
            assert answer.json()["errors"][0]["code"] == "InvalidInput", why
        assert "getOrderItems API" in http.post(path, json=refused["an unknown item"]).json()[
            "errors"][0]["message"]
        assert http.post("/orders/v0/orders/111-0000000-0000000/shipmentConfirmation",
                         json=body([(mug, 1)])).status_code == 404
        assert http.post(path, json=body([(mug, 1)], tracking="A")).status_code == 204
        status = sandbox(amz.url, "GET", f"orders/{order_id}")["status"]
        assert status == "PartiallyShipped"
        edited = http.post(path, json=body([(mug, 2)], tracking="B", carrierCode="USPS"))
        assert edited.status_code == 204 and edited.content == b""
        (row,) = sandbox(amz.url, "GET", f"orders/{order_id}")["shipments"]
        assert (row["carrier"], row["tracking"], row["lines"]) == (
            "USPS", "B", [{"sku": "MUG", "quantity": 2}])
        assert http.post(path, json=body([(cup, 1)], reference="2")).status_code == 204
        after = sandbox(amz.url, "GET", f"orders/{order_id}")
        assert after["status"] == "Shipped" and len(after["shipments"]) == 2
        assert [x["shipped"] for x in after["lines"]] == [2, 1]
        items = http.get(f"/orders/v0/orders/{order_id}/orderItems").json()
        assert [i["QuantityShipped"] for i in items["payload"]["OrderItems"]] == [2, 1]
        cancelled, [(item, _, _)] = amazon_order(amz, TEA=1)
        sandbox(amz.url, "POST", f"orders/{cancelled}/cancel")
        gone = http.post(f"/orders/v0/orders/{cancelled}/shipmentConfirmation",
                         json=body([(item, 1)]))
        assert gone.status_code == 400 and "canceled" in gone.json()["errors"][0]["message"]


def test_amazon_confirm_shipment_has_its_rate_and_says_it(clock: ManualClock) -> None:
    """2 requests a second, burst 10 (the ordersV0 model's usage plan), in the header."""
    emulator = start_amazon(clock, rate_limits=True)
    try:
        with sp_api(emulator) as http:
            answers = [http.post("/orders/v0/orders/111-0000000-0000000/shipmentConfirmation",
                                 json={}) for _ in range(11)]
        assert [a.status_code for a in answers] == [400] * 10 + [429]
        assert {a.headers["x-amzn-RateLimit-Limit"] for a in answers} == {"2"}
        assert emulator.stats()["requests"]["confirmShipment"] == 11
    finally:
        emulator.stop()


def test_package_reference_is_a_stable_positive_number_an_int32_holds() -> None:
    keys = [f"cs-{n:020x}" for n in range(2000)] + ["cs-contract-TRK0001", ""]
    references = [package_reference(key) for key in keys]
    assert all(re.fullmatch(r"[1-9][0-9]{0,9}", r) and int(r) <= 2**31 - 1
               for r in references)
    assert len(set(references)) == len(keys)
    assert references == [package_reference(key) for key in keys]
