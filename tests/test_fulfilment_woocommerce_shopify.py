"""Shipments confirmed on WooCommerce and Shopify: what each connector writes, and how each
emulator answers, beyond the shared contract (tests/connector_contract.py section 9).

WooCommerce: an order note for the buyer (or a private one), the order completed with the
last shipment, a note from an earlier try found by its key, refusals before anything is
written. Shopify: fulfillmentCreate's userErrors (emulator and connector), an earlier
fulfillment found by its tracking number, fulfillment orders read page by page, the buyer
notified or not. Then ``ship`` through the engine, on both emulators.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from channelsync.config import parse_config
from channelsync.connector import OrderLineSnapshot, Shipment, ShipmentLine
from channelsync.errors import PermanentChannelError
from channelsync.ledger.stock import StockRow
from channelsync.service import shipping
from channelsync.service.app import App
from connectors.shopify import ShopifyConnector, ShopifySettings
from connectors.shopify import _queries as q
from connectors.shopify._fulfilment import _read, _State
from connectors.shopify.emulator import ShopifyEmulator
from connectors.woocommerce import WooCommerceConnector
from connectors.woocommerce.emulator import WooCommerceEmulator

KEY = "ck_fulfil0123456789abcdef0123456789abcdef"
SECRET = "cs_fulfil0123456789abcdef0123456789abcdef"
TOKEN = "shpat_fulfil0123456789abcdef0123456789"
SINCE = datetime.now(UTC) - timedelta(days=1)
GRAPHQL = "/admin/api/2026-10/graphql.json"


def pulled(connector: WooCommerceConnector | ShopifyConnector, order_id: str
           ) -> list[OrderLineSnapshot]:
    lines: list[OrderLineSnapshot] = []
    page: str | None = None
    while True:
        result = connector.pull_orders(SINCE, page)
        lines += [x for x in result.lines if x.order_id == order_id]
        if (page := result.next_page) is None:
            return sorted(lines, key=lambda x: x.channel_sku)


def shipment(lines: list[OrderLineSnapshot], tracking: str, *, units: int | None = None,
             completes: bool = True, key: str = "") -> Shipment:
    return Shipment(lines[0].order_id, [ShipmentLine(x.line_id, x.channel_sku,
                                                     units or x.ordered) for x in lines],
                    "DHL", tracking, key or f"cs-{tracking}", datetime.now(UTC),
                    completes_order=completes)


def sandbox(url: str, method: str, path: str, body: Any = None) -> Any:
    response = httpx.request(method, f"{url}/_sandbox/{path}", json=body)
    assert response.status_code < 300, response.text
    return response.json()


def order(url: str, **lines: int) -> str:
    body = {"lines": [{"sku": sku, "quantity": n} for sku, n in lines.items()]}
    return str(sandbox(url, "POST", "orders", body)["order_id"])


# -- WooCommerce -----------------------------------------------------------------------------


@pytest.fixture
def woo() -> Iterator[WooCommerceEmulator]:
    with WooCommerceEmulator(consumer_key=KEY, consumer_secret=SECRET) as emulator:
        for sku, name in (("MUG", "Stoneware mug"), ("CUP", "Espresso cup")):
            sandbox(emulator.url, "POST", "listings", {"sku": sku, "quantity": 9, "name": name})
        yield emulator


def woo_connector(url: str, **settings: Any) -> WooCommerceConnector:
    return WooCommerceConnector("woo", WooCommerceConnector.Settings(
        consumer_key=SecretStr(KEY), consumer_secret=SecretStr(SECRET), **settings),
        endpoint=url)


@pytest.fixture
def api(woo: WooCommerceEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{woo.url}/wp-json/wc/v3", auth=(KEY, SECRET)) as client:
        yield client


def test_woo_the_note_tells_the_buyer_and_the_order_is_completed(
    woo: WooCommerceEmulator, api: httpx.Client
) -> None:
    placed = order(woo.url, MUG=2, CUP=1)
    connector = woo_connector(woo.url)
    sent = shipment(pulled(connector, placed), "JD0146 0001", key="cs-0123456789abcdef0123")
    result = connector.confirm_shipment(sent)
    [note] = api.get(f"/orders/{placed}/notes").json()
    assert (result.ok, result.already, result.ref) == (True, False, str(note["id"]))
    assert note["customer_note"] is True and note["note"].splitlines() == [
        "Shipped with DHL, tracking number JD0146 0001.", "1 x Espresso cup (SKU CUP)",
        "2 x Stoneware mug (SKU MUG)", "Ref. cs-0123456789abcdef0123"]
    assert api.get(f"/orders/{placed}").json()["status"] == "completed"
    assert sandbox(woo.url, "GET", f"orders/{placed}")["shipments"] == [{
        "carrier": "DHL", "tracking": "JD0146 0001",
        "lines": [{"sku": "CUP", "quantity": 1}, {"sku": "MUG", "quantity": 2}]}]
    connector.close()


def test_woo_notify_customer_off_writes_a_private_note(
    woo: WooCommerceEmulator, api: httpx.Client
) -> None:
    placed = order(woo.url, MUG=1)
    connector = woo_connector(woo.url, notify_customer=False)
    assert connector.confirm_shipment(shipment(pulled(connector, placed), "T1")).ok
    assert [n["customer_note"] for n in api.get(f"/orders/{placed}/notes").json()] == [False]
    assert api.get(f"/orders/{placed}/notes", params={"type": "customer"}).json() == []
    connector.close()


def test_woo_a_partial_shipment_is_a_note_and_the_last_one_completes(
    woo: WooCommerceEmulator, api: httpx.Client
) -> None:
    placed = order(woo.url, MUG=2, CUP=1)
    connector = woo_connector(woo.url)
    cup, mug = pulled(connector, placed)
    assert connector.confirm_shipment(shipment([mug], "T1", completes=False)).ok
    assert api.get(f"/orders/{placed}").json()["status"] == "processing"
    assert [x.shipped for x in pulled(connector, placed)] == [0, 0]  # no shipped quantity
    assert connector.confirm_shipment(shipment([cup], "T2")).ok
    assert [x.shipped for x in pulled(connector, placed)] == [1, 2]
    assert [s["tracking"] for s in sandbox(woo.url, "GET", f"orders/{placed}")["shipments"]
            ] == ["T1", "T2"]
    connector.close()


def test_woo_an_earlier_note_is_found_and_the_order_still_completed(
    woo: WooCommerceEmulator, api: httpx.Client
) -> None:
    placed = order(woo.url, MUG=1)
    connector = woo_connector(woo.url)
    sent = shipment(pulled(connector, placed), "T1", key="cs-aaaabbbbccccddddeeee")
    earlier = api.post(f"/orders/{placed}/notes", json={"note": "Shipped... Ref. " + sent.key})
    assert earlier.status_code == 201  # the note landed, the status change never came
    again = connector.confirm_shipment(sent)
    assert (again.ok, again.already, again.ref) == (True, True, str(earlier.json()["id"]))
    assert len(api.get(f"/orders/{placed}/notes").json()) == 1
    assert api.get(f"/orders/{placed}").json()["status"] == "completed"
    connector.close()


@pytest.mark.parametrize("status", ["failed", "refunded", "cancelled"])
def test_woo_an_order_that_ended_unshipped_is_refused_before_writing(
    woo: WooCommerceEmulator, api: httpx.Client, status: str
) -> None:
    placed = order(woo.url, MUG=1)
    connector = woo_connector(woo.url)
    sent = shipment(pulled(connector, placed), "T1")
    assert api.put(f"/orders/{placed}", json={"status": status}).status_code == 200
    refused = connector.confirm_shipment(sent)
    assert not refused.ok and isinstance(refused.error, PermanentChannelError)
    assert f"is {status} in WooCommerce" in str(refused.error)
    assert api.get(f"/orders/{placed}/notes").json() == []
    for foreign in ("abc", "0", "gid://shopify/Order/1"):
        other = connector.confirm_shipment(Shipment(foreign, [], "DHL", "T", "cs-x",
                                                    datetime.now(UTC)))
        assert not other.ok and "not a WooCommerce order id" in str(other.error)
    connector.close()


def test_woo_emulator_notes_answer_like_woocommerce(
    woo: WooCommerceEmulator, api: httpx.Client
) -> None:
    placed = order(woo.url, MUG=1)
    for text, customer in (("first", "true"), ("second", 0), ("third", False)):
        assert api.post(f"/orders/{placed}/notes",
                        json={"note": text, "customer_note": customer}).status_code == 201
    notes = api.get(f"/orders/{placed}/notes").json()
    assert [(n["note"], n["customer_note"], n["author"]) for n in notes] == [
        ("third", False, "system"), ("second", False, "system"), ("first", True, "system")]
    assert [n["note"] for n in api.get(f"/orders/{placed}/notes?type=internal").json()] == [
        "third", "second"]
    assert api.get(f"/orders/{placed}/notes?type=other").json()["code"] == "rest_invalid_param"
    assert api.get("/orders/999/notes").json()["code"] == "woocommerce_rest_shop_order_invalid_id"
    unknown = api.post("/orders/999/notes", json={"note": "x"})
    assert (unknown.status_code, unknown.json()["code"]) == (
        404, "woocommerce_rest_order_invalid_id")
    missing = api.post(f"/orders/{placed}/notes", json={"customer_note": True})
    assert (missing.status_code, missing.json()["code"]) == (400, "rest_missing_callback_param")
    bad = api.post(f"/orders/{placed}/notes", json={"note": "x", "customer_note": "maybe"})
    assert (bad.status_code, bad.json()["code"]) == (400, "rest_invalid_param")
    before = api.get(f"/orders/{placed}").json()["date_modified_gmt"]
    sandbox(woo.url, "POST", "faults", {"lost_answer_rate": 1.0, "seed": 1})
    with pytest.raises(httpx.HTTPError):
        api.post(f"/orders/{placed}/notes", json={"note": "lost"}).raise_for_status()
    sandbox(woo.url, "POST", "faults", {})
    assert api.get(f"/orders/{placed}/notes").json()[0]["note"] == "lost"  # it was written
    assert api.get(f"/orders/{placed}").json()["date_modified_gmt"] == before  # never modifies
    assert woo.stats()["lost_answers"] == 1


# -- Shopify ---------------------------------------------------------------------------------

FULFILLMENT_ORDERS = """query($id: ID!) { order(id: $id) {
  displayFulfillmentStatus
  fulfillmentOrders(first: 5) { nodes { id status
    lineItems(first: 10) { nodes { id sku remainingQuantity totalQuantity } } } } } }"""
CREATE = """mutation($f: FulfillmentInput!) { fulfillmentCreate(fulfillment: $f) {
  fulfillment { id name status totalQuantity trackingInfo(first: 3) { company number } }
  userErrors { field message } } }"""


@pytest.fixture
def shop() -> Iterator[ShopifyEmulator]:
    with ShopifyEmulator(access_token=TOKEN, restore_rate=1_000_000.0) as emulator:
        for sku in ("MUG", "CUP"):
            sandbox(emulator.url, "POST", "listings", {"sku": sku, "quantity": 9})
        yield emulator


def gql(url: str, query: str, **variables: Any) -> Any:
    response = httpx.post(url + GRAPHQL, json={"query": query, "variables": variables},
                          headers={"X-Shopify-Access-Token": TOKEN})
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    return body["data"]


def fulfillment_order(url: str, order_id: str) -> dict[str, Any]:
    data = gql(url, FULFILLMENT_ORDERS, id=f"gid://shopify/Order/{order_id}")["order"]
    [found] = data["fulfillmentOrders"]["nodes"]
    return {"display": data["displayFulfillmentStatus"], **found,
            "items": {x["sku"]: x for x in found["lineItems"]["nodes"]}}


def create(url: str, fo: dict[str, Any], items: dict[str, int] | None, number: str = "",
           notify: bool = False) -> dict[str, Any]:
    group: dict[str, Any] = {"fulfillmentOrderId": fo["id"]}
    if items is not None:
        group["fulfillmentOrderLineItems"] = [{"id": fo["items"][sku]["id"], "quantity": n}
                                              for sku, n in items.items()]
    found: dict[str, Any] = gql(url, CREATE, f={
        "lineItemsByFulfillmentOrder": [group], "notifyCustomer": notify,
        "trackingInfo": {"company": "UPS", "number": number} if number else None,
    })["fulfillmentCreate"]
    return found


def shopify_connector(url: str, **settings: Any) -> ShopifyConnector:
    return ShopifyConnector("shop", ShopifySettings(access_token=SecretStr(TOKEN), **settings),
                            endpoint=url)


def test_shopify_emulator_fulfils_its_fulfillment_order_or_answers_user_errors(
    shop: ShopifyEmulator,
) -> None:
    placed = order(shop.url, MUG=2, CUP=1)
    fo = fulfillment_order(shop.url, placed)
    assert (fo["display"], fo["status"]) == ("UNFULFILLED", "OPEN")
    assert {s: x["remainingQuantity"] for s, x in fo["items"].items()} == {"MUG": 2, "CUP": 1}
    refused = [create(shop.url, fo, {"MUG": 3}), create(shop.url, fo, {"MUG": 0}),
               create(shop.url, {**fo, "id": "gid://shopify/FulfillmentOrder/1"}, None)]
    assert [r["fulfillment"] for r in refused] == [None] * 3
    assert [r["userErrors"][0]["message"] for r in refused] == [
        "Invalid fulfillment order line item quantity requested.",
        "Quantity must be greater than 0.",
        "Fulfillment order gid://shopify/FulfillmentOrder/1 does not exist."]
    done = create(shop.url, fo, {"MUG": 1}, number="1Z999", notify=True)
    assert done["userErrors"] == [] and done["fulfillment"]["trackingInfo"] == [
        {"company": "UPS", "number": "1Z999"}]
    fo = fulfillment_order(shop.url, placed)
    assert (fo["display"], fo["status"], fo["items"]["MUG"]["remainingQuantity"]) == (
        "PARTIALLY_FULFILLED", "IN_PROGRESS", 1)
    rest = create(shop.url, fo, None)  # no line items: every remaining unit
    assert rest["fulfillment"]["totalQuantity"] == 2 and rest["fulfillment"]["trackingInfo"] == []
    assert (fulfillment_order(shop.url, placed)["status"], fulfillment_order(
        shop.url, placed)["display"]) == ("CLOSED", "FULFILLED")
    [first, _] = shop.book.get(placed).fulfillments
    assert first.notify_customer is True
    assert sandbox(shop.url, "GET", f"orders/{placed}")["shipments"] == [
        {"carrier": "UPS", "tracking": "1Z999", "lines": [{"sku": "MUG", "quantity": 1}]},
        {"carrier": "", "tracking": "", "lines": [{"sku": "MUG", "quantity": 1},
                                                  {"sku": "CUP", "quantity": 1}]}]
    closed = create(shop.url, fo, None)
    assert closed["userErrors"][0]["message"].endswith("has an unfulfillable status= closed.")


def test_shopify_a_cancelled_orders_fulfillment_order_is_closed(shop: ShopifyEmulator) -> None:
    placed = order(shop.url, MUG=1)
    fo = fulfillment_order(shop.url, placed)
    sandbox(shop.url, "POST", f"orders/{placed}/cancel")
    assert fulfillment_order(shop.url, placed)["items"]["MUG"]["remainingQuantity"] == 0
    assert "unfulfillable status= closed" in create(shop.url, fo, {"MUG": 1}
                                                    )["userErrors"][0]["message"]
    connector = shopify_connector(shop.url)
    refused = connector.confirm_shipment(Shipment(placed, [ShipmentLine(
        fo["items"]["MUG"]["id"], "MUG", 1)], "DHL", "T1", "cs-1", datetime.now(UTC)))
    assert "was cancelled in Shopify" in str(refused.error)
    connector.close()


def test_shopify_a_fulfilment_made_meanwhile_is_refused_with_shopifys_message(
    shop: ShopifyEmulator,
) -> None:
    placed = order(shop.url, MUG=2)
    lines = pulled(shopify_connector(shop.url), placed)

    def seller_ships_one(body: dict[str, Any]) -> None:  # between our read and our write
        if body["operationName"] == "CreateFulfillment":
            shop.ship_order(placed, {"MUG": 1})

    connector = ShopifyConnector("shop", ShopifySettings(access_token=SecretStr(TOKEN)),
                                 endpoint=shop.url, transport=Hooked(seller_ships_one))
    refused = connector.confirm_shipment(shipment(lines, "T1"))
    assert not refused.ok and isinstance(refused.error, PermanentChannelError)
    assert "Invalid fulfillment order line item quantity requested" in str(refused.error)
    assert len(shop.book.get(placed).fulfillments) == 1  # the seller's only
    connector.close()


def test_shopify_a_fulfillment_with_the_same_tracking_number_is_found(
    shop: ShopifyEmulator,
) -> None:
    placed = order(shop.url, MUG=2)
    made = create(shop.url, fulfillment_order(shop.url, placed), {"MUG": 2}, number="jd 0146 01")
    connector = shopify_connector(shop.url)
    found = connector.confirm_shipment(shipment(pulled(connector, placed), "JD014601"))
    assert (found.ok, found.already, found.ref) == (True, True, made["fulfillment"]["id"])
    assert len(shop.book.get(placed).fulfillments) == 1
    connector.close()


def test_shopify_ids_as_gids_notify_off_and_a_line_not_on_the_order(
    shop: ShopifyEmulator,
) -> None:
    placed = order(shop.url, MUG=1, CUP=1)
    connector = shopify_connector(shop.url, notify_customer=False)
    cup, mug = pulled(connector, placed)
    stranger = Shipment(placed, [ShipmentLine("424242", "TEA", 1)], "DHL", "T0", "cs-0",
                        datetime.now(UTC))
    refused = connector.confirm_shipment(stranger)
    assert "TEA (line item 424242): 1 more than Shopify has left to fulfil" in str(
        refused.error)
    as_gids = Shipment(f"gid://shopify/Order/{placed}", [ShipmentLine(
        f"gid://shopify/LineItem/{mug.line_id}", "MUG", 1)], "DHL", "T1", "cs-1",
        datetime.now(UTC), completes_order=False)
    assert connector.confirm_shipment(as_gids).ok
    [made] = shop.book.get(placed).fulfillments
    assert made.notify_customer is False and [x.shipped for x in pulled(connector, placed)] == [
        0, 1]
    connector.close()


def test_shopify_fulfillments_that_shipped_nothing_do_not_count() -> None:
    state = _State()
    order = {"cancelledAt": None, "fulfillmentOrders": {
        "nodes": [], "pageInfo": {"hasNextPage": False, "endCursor": None}}, "fulfillments": [
        {"id": "gid://shopify/Fulfillment/1", "status": "CANCELLED",
         "trackingInfo": [{"company": "DHL", "number": "T1"}]},
        {"id": "gid://shopify/Fulfillment/2", "status": "SUCCESS",
         "trackingInfo": [{"company": None, "number": "T 2"}, {"number": None}]}]}
    assert _read(order, state) is None
    assert state.found == {"t2": "gid://shopify/Fulfillment/2"}


def test_shopify_fulfillment_orders_are_read_page_by_page() -> None:
    def fo(number: int, line: int, status: str, more: bool = False) -> dict[str, Any]:
        return {"id": f"gid://shopify/FulfillmentOrder/{number}", "status": status,
                "lineItems": {"pageInfo": {"hasNextPage": more, "endCursor": "c" if more else
                                           None},
                              "nodes": [{"id": f"gid://shopify/FulfillmentOrderLineItem/{line}",
                                         "remainingQuantity": 2,
                                         "lineItem": {"id": "gid://shopify/LineItem/7"}}]}}

    pages = {None: [fo(1, 11, "CLOSED"), fo(2, 12, "ON_HOLD", more=True)],
             "p2": [fo(3, 13, "IN_PROGRESS")]}
    sent: list[dict[str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        sent.append(body)
        if body["operationName"] == "CreateFulfillment":
            data: dict[str, Any] = {"fulfillmentCreate": {
                "fulfillment": {"id": "gid://shopify/Fulfillment/9", "status": "SUCCESS"},
                "userErrors": []}}
        else:
            after = body["variables"]["after"]
            data = {"order": {"id": "gid://shopify/Order/5", "cancelledAt": None,
                              "fulfillments": [], "fulfillmentOrders": {
                                  "nodes": pages[after], "pageInfo": {
                                      "hasNextPage": after is None, "endCursor": "p2"}}}}
        return httpx.Response(200, json={"data": data})

    connector = ShopifyConnector("shop", ShopifySettings(access_token=SecretStr(TOKEN)),
                                 endpoint="https://x.myshopify.com",
                                 transport=httpx.MockTransport(answer))
    line = [ShipmentLine("7", "MUG", 2)]
    done = connector.confirm_shipment(Shipment("5", line, "DHL", "T1", "cs", datetime.now(UTC)))
    assert done.ok and done.ref == "gid://shopify/Fulfillment/9"
    assert [b["operationName"] for b in sent] == [
        "FulfillmentState", "FulfillmentState", "CreateFulfillment"]
    assert sent[-1]["variables"]["fulfillment"] == {
        "lineItemsByFulfillmentOrder": [{
            "fulfillmentOrderId": "gid://shopify/FulfillmentOrder/3",
            "fulfillmentOrderLineItems": [{"id": "gid://shopify/FulfillmentOrderLineItem/13",
                                           "quantity": 2}]}],
        "trackingInfo": {"company": "DHL", "number": "T1"}, "notifyCustomer": True}
    short = connector.confirm_shipment(Shipment("5", [ShipmentLine("7", "MUG", 3)], "DHL",
                                                "T2", "cs2", datetime.now(UTC)))
    assert f"more than {q.FULFILLMENT_ORDER_LINES} lines" in str(short.error)
    connector.close()


class Hooked(httpx.BaseTransport):
    """Loopback HTTP that calls ``hook`` with each GraphQL body before sending it."""

    def __init__(self, hook: Callable[[dict[str, Any]], None]) -> None:
        self.inner, self.hook = httpx.HTTPTransport(), hook

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.hook(json.loads(request.content))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


# -- through the engine ----------------------------------------------------------------------

CONFIG = {
    "woocommerce": f'consumer_key = "{KEY}"\nconsumer_secret = "{SECRET}"',
    "shopify": f'access_token = "{TOKEN}"',
}


@pytest.mark.parametrize("kind", ["woocommerce", "shopify"])
def test_ship_records_and_confirms_on_the_channel_once(engine: Engine, kind: str) -> None:
    emulator = WooCommerceEmulator(consumer_key=KEY, consumer_secret=SECRET) if \
        kind == "woocommerce" else ShopifyEmulator(access_token=TOKEN, restore_rate=1e6)
    with emulator:
        sandbox(emulator.url, "POST", "listings", {"sku": "MUG", "quantity": 5})
        app = App(parse_config(f'[[channel]]\nname = "shop"\ntype = "{kind}"\n'
                               f'endpoint = "{emulator.url}"\n{CONFIG[kind]}\n', env={}))
        app.__dict__["db"] = engine
        try:
            app.set_stock([StockRow("MUG", 5)], reason="count")
            placed = order(emulator.url, MUG=2)
            app.engine.sync()
            request = shipping.ShipmentRequest("shop", placed, "DHL", "JD0146000099", None)
            [recorded], bad = shipping.ship(app, [request])
            assert bad == [] and recorded.units == 2
            [report] = shipping.confirm(app, ["shop"])
            assert not report.error, report.error
            shipping.ship(app, [request])  # the same shipment again: nothing new
            shipping.confirm(app, ["shop"])
        finally:
            app.close()
        row = sandbox(emulator.url, "GET", f"orders/{placed}")
    assert row["shipments"] == [{"carrier": "DHL", "tracking": "JD0146000099",
                                 "lines": [{"sku": "MUG", "quantity": 2}]}]
    assert row["lines"][0]["shipped"] == 2
