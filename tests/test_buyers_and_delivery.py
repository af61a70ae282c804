"""Who bought and when it arrived: each connector's ``OrderSnapshot.buyer_email``,
``buyer_id``, ``shipped_at`` and ``delivered_at``, driven through the real client libraries
(httpx, ebaysdk, python-amazon-sp-api) against the emulators over loopback.

The sandbox places an order with a buyer (``POST /_sandbox/orders`` with ``"buyer"``), ships
it and, where the channel's order data carry a delivery time (Shopify, eBay), delivers it;
each connector passes the channel's own email through as is (the book normalises it), its own
buyer id, and its shipping and delivery times. Amazon gives its anonymised relay address, and
only when the channel's ``buyer_data`` setting asks for it. Emails never show in a snapshot's
repr nor in a bad record.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from channelsync.connector import OrderPage, OrderSnapshot, Shipment, ShipmentLine
from connectors.amazon import AmazonConnector, AmazonSettings
from connectors.amazon.emulator import AmazonEmulator
from connectors.ebay import EbayConnector, EbaySettings
from connectors.ebay.connector import order_snapshot as ebay_snapshot
from connectors.ebay.connector import parse_order as parse_ebay_order
from connectors.ebay.emulator import EbayEmulator
from connectors.shopify import ShopifyConnector, ShopifySettings
from connectors.shopify._orders import order_lines as shopify_order_lines
from connectors.shopify.emulator import ShopifyEmulator
from connectors.woocommerce import WooCommerceConnector
from connectors.woocommerce.emulator import WooCommerceEmulator
from tests.test_order_headers_ebay_amazon import (
    APP_ID,
    CLIENT_SECRET,
    ORDERS,
    REFRESH,
    SELLER,
    amazon_emulator,
    assert_search_orders_model,
    raw_client,
)

EMAIL = "Ada.Lovelace@Example.com"  # mixed case: each channel's value comes back as is
NAME = "Ada Lovelace"
OTHER = "charles.babbage@example.org"
WOO_KEY = "ck_0123456789abcdef0123456789abcdef01234567"
WOO_SECRET = "cs_fedcba9876543210fedcba9876543210fedcba98"
SHOPIFY_TOKEN = "shpat_buyers0123456789abcdef0123456789ab"
EBAY_TOKEN = "v^1.1#i^1#p^3#r^1#I^3#f^0#t^H4sIAAAAAAAAAOVZe2buyers0123456789"
SETTLE = 180  # seconds past the two minutes the eBay connector leaves eBay to settle


class Clock:
    """Every emulator's and connector's clock: whole seconds, moved by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0) - timedelta(days=20)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def post(url: str, path: str, body: Any = None, status: int = 200) -> Any:
    answer = httpx.post(f"{url}/_sandbox{path}", json=body, timeout=10)
    assert answer.status_code == status, answer.text
    return answer.json()


def sell(url: str, buyer: dict[str, str] | None = None, **lines: int) -> str:
    body: dict[str, Any] = {"lines": [{"sku": s, "quantity": n} for s, n in lines.items()]}
    if buyer is not None:
        body["buyer"] = buyer
    return str(post(url, "/orders", body, status=201)["order_id"])


def held(url: str, order_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{url}/_sandbox/orders/{order_id}", timeout=10)
    assert answer.status_code == 200, answer.text
    row: dict[str, Any] = answer.json()
    return row


def pull(pull_orders: Callable[[datetime, str | None], OrderPage],
         since: datetime) -> dict[str, OrderSnapshot]:
    found: dict[str, OrderSnapshot] = {}
    token: str | None = None
    for _ in range(50):
        page = pull_orders(since, token)
        found.update((x.order_id, x) for x in page.orders)  # a later page is newer
        if (token := page.next_page) is None:
            return found
    raise AssertionError("paging never ends")


def assert_no_email(*things: object) -> None:
    text = repr(things).lower()
    for email in (EMAIL, OTHER):
        assert email.lower() not in text
    assert "@marketplace.amazon" not in text


# -- the emulators and their connectors -----------------------------------------------------------


@pytest.fixture
def woo(clock: Clock) -> Iterator[tuple[WooCommerceEmulator, WooCommerceConnector]]:
    with WooCommerceEmulator(consumer_key=WOO_KEY, consumer_secret=WOO_SECRET,
                             clock=clock) as shop:
        settings = WooCommerceConnector.Settings.model_validate(
            {"consumer_key": WOO_KEY, "consumer_secret": WOO_SECRET})
        connector = WooCommerceConnector("woo", settings, endpoint=shop.url)
        post(shop.url, "/listings", {"sku": "MUG", "quantity": 50})
        yield shop, connector
        connector.close()


def shopify_connector(url: str) -> ShopifyConnector:
    settings = ShopifySettings.model_validate({"access_token": SHOPIFY_TOKEN})
    return ShopifyConnector("shopify", settings, endpoint=url)


@pytest.fixture
def shopify(clock: Clock) -> Iterator[tuple[ShopifyEmulator, ShopifyConnector]]:
    with ShopifyEmulator(access_token=SHOPIFY_TOKEN, clock=clock) as shop:
        connector = shopify_connector(shop.url)
        post(shop.url, "/listings", {"sku": "MUG", "quantity": 50})
        yield shop, connector
        connector.close()


@pytest.fixture
def ebay(clock: Clock) -> Iterator[tuple[EbayEmulator, EbayConnector]]:
    with EbayEmulator(token=EBAY_TOKEN, clock=clock, seed=11) as account:
        settings = EbaySettings(token=SecretStr(EBAY_TOKEN), app_id=SecretStr("App-PRD-1"),
                                dev_id=SecretStr("dev-1"), cert_id=SecretStr("PRD-cert-1"),
                                timeout=5)
        connector = EbayConnector("ebay", settings, endpoint=account.url, clock=clock)
        post(account.url, "/listings", {"sku": "MUG", "quantity": 50})
        yield account, connector
        connector.close()


def amazon_connector(url: str, clock: Clock, buyer_data: bool) -> AmazonConnector:
    settings = AmazonSettings.model_validate({
        "marketplace": "US", "seller_id": SELLER, "refresh_token": REFRESH,
        "lwa_app_id": APP_ID, "lwa_client_secret": CLIENT_SECRET, "lwa_endpoint": url,
        "timeout": 10, "buyer_data": buyer_data})
    return AmazonConnector("amazon", settings, endpoint=url, sleep=lambda _: None, clock=clock)


@pytest.fixture
def amazon(clock: Clock) -> Iterator[AmazonEmulator]:
    with amazon_emulator(clock) as account:
        post(account.url, "/listings", {"sku": "MUG", "quantity": 50})
        yield account


# -- the same email on three channels -------------------------------------------------------------


def test_the_same_email_comes_back_from_woocommerce_shopify_and_ebay(
    woo: tuple[WooCommerceEmulator, WooCommerceConnector],
    shopify: tuple[ShopifyEmulator, ShopifyConnector],
    ebay: tuple[EbayEmulator, EbayConnector], clock: Clock,
) -> None:
    buyer = {"email": EMAIL, "name": NAME}
    since = clock.now - timedelta(hours=1)
    ids = {name: sell(emulator.url, buyer, MUG=1)
           for name, emulator in (("woo", woo[0]), ("shopify", shopify[0]), ("ebay", ebay[0]))}
    clock.advance(SETTLE)
    found = {"woo": pull(woo[1].pull_orders, since)[ids["woo"]],
             "shopify": pull(shopify[1].pull_orders, since)[ids["shopify"]],
             "ebay": pull(ebay[1].pull_orders, since)[ids["ebay"]]}
    rows = {"woo": held(woo[0].url, ids["woo"]), "shopify": held(shopify[0].url, ids["shopify"]),
            "ebay": held(ebay[0].url, ids["ebay"])}
    for name, header in found.items():
        assert header.buyer_email == EMAIL, name  # as the channel has it: not lower-cased
        assert rows[name]["buyer"]["email"] == EMAIL, name
        assert_no_email(header)
    # WooCommerce: a guest (customer_id 0), no id; its billing name is the display name
    assert (found["woo"].buyer, found["woo"].buyer_id) == (NAME, "")
    assert rows["woo"]["buyer"] == {"name": NAME, "email": EMAIL, "id": None}
    # Shopify: the customer's id and names
    assert found["shopify"].buyer == NAME
    assert found["shopify"].buyer_id == rows["shopify"]["buyer"]["id"] != ""
    # eBay: the BuyerUserID, made from the name, is both the display name and the id
    assert re.fullmatch(r"ada\.lovelace[0-9]+", found["ebay"].buyer_id)
    assert found["ebay"].buyer == found["ebay"].buyer_id == rows["ebay"]["buyer"]["id"]
    assert rows["ebay"]["buyer"]["name"] == NAME
    for header in found.values():  # nothing shipped yet
        assert (header.shipped_at, header.delivered_at) == (None, None)


@pytest.mark.parametrize("channel", ["shopify", "ebay"])
def test_the_same_buyer_again_has_the_same_buyer_id(
    channel: str, request: pytest.FixtureRequest, clock: Clock
) -> None:
    emulator, connector = request.getfixturevalue(channel)
    since = clock.now - timedelta(hours=1)
    first = sell(emulator.url, {"email": EMAIL, "name": NAME}, MUG=1)
    again = sell(emulator.url, {"email": EMAIL.lower()}, MUG=2)  # the same address, another case
    other = sell(emulator.url, {"email": OTHER, "name": NAME}, MUG=1)  # same name, other buyer
    default = sell(emulator.url, None, MUG=1)
    clock.advance(SETTLE)
    found = pull(connector.pull_orders, since)
    assert found[first].buyer_id == found[again].buyer_id != ""
    assert found[other].buyer_id not in ("", found[first].buyer_id)
    assert (found[first].buyer_email, found[again].buyer_email) == (EMAIL, EMAIL.lower())
    assert found[other].buyer_email == OTHER
    assert found[default].buyer_email == "" and found[default].buyer_id != ""  # a drawn buyer


# -- shipped and delivered ------------------------------------------------------------------------


def test_shopify_fulfillment_created_and_delivered(
    shopify: tuple[ShopifyEmulator, ShopifyConnector], clock: Clock
) -> None:
    emulator, connector = shopify
    since = clock.now - timedelta(hours=1)
    order_id = sell(emulator.url, {"email": EMAIL, "name": NAME}, MUG=2)
    post(emulator.url, f"/orders/{order_id}/deliver", status=409)  # nothing shipped yet
    clock.advance(3600)
    shipped = clock.now
    post(emulator.url, f"/orders/{order_id}/ship")
    header = pull(connector.pull_orders, since)[order_id]
    assert (header.stage, header.shipped_at, header.delivered_at) == ("shipped", shipped, None)
    clock.advance(2 * 86400)
    delivered = clock.now
    post(emulator.url, f"/orders/{order_id}/deliver")
    header = pull(connector.pull_orders, since)[order_id]
    assert (header.stage, header.shipped_at, header.delivered_at) == (
        "shipped", shipped, delivered)
    assert header.changed_at == delivered  # the delivery moved the order's updatedAt
    assert header.buyer_email == EMAIL
    assert_no_email(header)


def test_shopify_an_order_shipped_in_two_fulfillments_has_no_delivery_time(
    shopify: tuple[ShopifyEmulator, ShopifyConnector], clock: Clock
) -> None:
    """The page reads an order's oldest fulfillment only: whether the others arrived is not
    known, so the order has no delivery time (the book assumes one)."""
    emulator, connector = shopify
    since = clock.now - timedelta(hours=1)
    order_id = sell(emulator.url, None, MUG=3)
    clock.advance(60)
    first = clock.now
    post(emulator.url, f"/orders/{order_id}/ship", {"lines": [{"sku": "MUG", "quantity": 1}]})
    clock.advance(60)
    post(emulator.url, f"/orders/{order_id}/ship", {"lines": [{"sku": "MUG", "quantity": 2}]})
    clock.advance(86400)
    post(emulator.url, f"/orders/{order_id}/deliver")
    header = pull(connector.pull_orders, since)[order_id]
    assert (header.stage, header.shipped_at, header.delivered_at) == ("shipped", first, None)


def test_ebay_shipped_time_and_actual_delivery_time(
    ebay: tuple[EbayEmulator, EbayConnector], clock: Clock
) -> None:
    emulator, connector = ebay
    since = clock.now - timedelta(hours=1)
    order_id = sell(emulator.url, {"email": EMAIL, "name": NAME}, MUG=2)
    post(emulator.url, f"/orders/{order_id}/deliver", status=409)  # not shipped yet
    clock.advance(3600)
    shipped = clock.now
    post(emulator.url, f"/orders/{order_id}/ship")
    clock.advance(SETTLE)
    header = pull(connector.pull_orders, since)[order_id]
    assert (header.stage, header.shipped_at, header.delivered_at) == ("shipped", shipped, None)
    clock.advance(3 * 86400)
    delivered = clock.now
    post(emulator.url, f"/orders/{order_id}/deliver")
    clock.advance(SETTLE)
    header = pull(connector.pull_orders, since)[order_id]
    assert (header.shipped_at, header.delivered_at, header.changed_at) == (
        shipped, delivered, delivered)


def test_ebay_gives_the_email_for_a_limited_time_only(
    ebay: tuple[EbayEmulator, EbayConnector], clock: Clock
) -> None:
    """After it (14 days here) eBay sends "Invalid Request" in the email's place: no email,
    while the BuyerUserID stays."""
    emulator, connector = ebay
    since = clock.now - timedelta(hours=1)
    order_id = sell(emulator.url, {"email": EMAIL, "name": NAME}, MUG=1)
    clock.advance(SETTLE)
    fresh = pull(connector.pull_orders, since)[order_id]
    clock.advance(15 * 86400)
    old = pull(connector.pull_orders, since)[order_id]
    assert (fresh.buyer_email, old.buyer_email) == (EMAIL, "")
    assert old.buyer_id == fresh.buyer_id != ""


def test_woocommerce_completed_is_shipped_and_has_no_delivery(
    woo: tuple[WooCommerceEmulator, WooCommerceConnector], clock: Clock
) -> None:
    emulator, connector = woo
    since = clock.now - timedelta(hours=1)
    order_id = sell(emulator.url, {"email": EMAIL, "name": NAME}, MUG=1)
    clock.advance(3600)
    shipped = clock.now
    post(emulator.url, f"/orders/{order_id}/ship")
    post(emulator.url, f"/orders/{order_id}/deliver", status=404)  # WooCommerce has none
    header = pull(connector.pull_orders, since)[order_id]
    assert (header.stage, header.shipped_at, header.delivered_at) == ("shipped", shipped, None)
    assert header.buyer_email == EMAIL


def test_woocommerce_a_registered_customer_has_an_id() -> None:
    settings = WooCommerceConnector.Settings.model_validate(
        {"consumer_key": WOO_KEY, "consumer_secret": WOO_SECRET})
    connector = WooCommerceConnector("woo", settings, endpoint="https://shop.example")

    def order(order_id: int, customer_id: Any, email: Any) -> dict[str, Any]:
        return {"id": order_id, "status": "processing", "customer_id": customer_id,
                "date_modified_gmt": "2026-11-26T07:10:00",
                "billing": {"first_name": "Ada", "last_name": "Lovelace", "email": email},
                "line_items": [{"id": order_id * 10, "sku": "MUG", "quantity": 1}]}

    orders = [order(1, 7, EMAIL), order(2, 0, EMAIL), order(3, "7", "not an address")]
    with respx.mock(base_url="https://shop.example/wp-json/wc/v3") as api:
        api.get("/orders").mock(return_value=httpx.Response(
            200, json=orders, headers={"X-WP-TotalPages": "1"}))
        page = connector.pull_orders(datetime(2026, 11, 25, tzinfo=UTC), None)
    connector.close()
    found = {x.order_id: (x.buyer_id, x.buyer_email) for x in page.orders}
    assert found == {"1": ("7", EMAIL), "2": ("", EMAIL), "3": ("", "")}


# -- Amazon: the relay address, and only when asked ---------------------------------------------


def test_amazon_gives_its_relay_address_only_with_buyer_data(
    amazon: AmazonEmulator, clock: Clock
) -> None:
    since = clock.now - timedelta(minutes=10)
    first = sell(amazon.url, {"email": EMAIL, "name": NAME}, MUG=1)
    again = sell(amazon.url, {"email": EMAIL.lower(), "name": NAME}, MUG=1)
    other = sell(amazon.url, {"email": OTHER, "name": "Charles Babbage"}, MUG=1)
    pending = sell(amazon.url, {"email": EMAIL, "name": NAME}, MUG=1)
    for order_id in (first, again, other):
        post(amazon.url, f"/orders/{order_id}/status", {"status": "Unshipped"})
    clock.advance(30)
    quiet = amazon_connector(amazon.url, clock, buyer_data=False)
    asking = amazon_connector(amazon.url, clock, buyer_data=True)
    try:
        without = pull(quiet.pull_orders, since)
        found = pull(asking.pull_orders, since)
    finally:
        quiet.close()
        asking.close()
    assert {(x.buyer, x.buyer_email, x.buyer_id) for x in without.values()} == {("", "", "")}
    relay = found[first].buyer_email
    assert re.fullmatch(r"[a-z0-9]{15}@marketplace\.amazon\.com", relay), relay
    assert relay != EMAIL.lower() and found[again].buyer_email == relay  # the same buyer
    assert found[other].buyer_email not in ("", relay)
    assert (found[first].buyer, found[first].buyer_id) == (NAME, "")  # Amazon has no id
    assert (found[pending].buyer, found[pending].buyer_email) == ("", "")  # PENDING: none yet
    assert held(amazon.url, first)["buyer"] == {"name": NAME, "email": EMAIL, "id": None,
                                                "relay_email": relay}
    assert_no_email(list(found.values()))
    with raw_client(amazon) as raw:  # the answer as sent is Amazon's model
        answer = raw.get(ORDERS, params={
            "lastUpdatedAfter": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "marketplaceIds": "ATVPDKIKX0DER", "includedData": "FULFILLMENT,BUYER"})
    assert answer.status_code == 200, answer.text
    assert_search_orders_model(answer.json())
    shown = {o["orderId"]: o.get("buyer") for o in answer.json()["orders"]}
    assert shown[first] == {"buyerName": NAME, "buyerEmail": relay}


def test_amazon_shipped_at_is_the_packages_ship_time_and_there_is_no_delivery(
    amazon: AmazonEmulator, clock: Clock
) -> None:
    since = clock.now - timedelta(minutes=10)
    order_id = sell(amazon.url, {"email": EMAIL, "name": NAME}, MUG=2)
    post(amazon.url, f"/orders/{order_id}/status", {"status": "Unshipped"})
    post(amazon.url, f"/orders/{order_id}/deliver", status=404)  # the model has no such time
    clock.advance(30)
    connector = amazon_connector(amazon.url, clock, buyer_data=False)
    try:
        [line] = [x for x in pull_lines(connector, since) if x.order_id == order_id]
        left = clock.now - timedelta(hours=2)  # handed to the carrier before it was confirmed
        done = connector.confirm_shipment(Shipment(
            order_id, [ShipmentLine(line.line_id, "MUG", 2)], "UPS", "1Z999AA10123456784",
            "buyers-1", left))
        assert done.ok, done.error
        clock.advance(30)
        header = pull(connector.pull_orders, since)[order_id]
    finally:
        connector.close()
    assert (header.stage, header.shipped_at, header.delivered_at) == ("shipped", left, None)


def pull_lines(connector: AmazonConnector, since: datetime) -> list[Any]:
    lines: list[Any] = []
    token: str | None = None
    while True:
        page = connector.pull_orders(since, token)
        lines += page.lines
        if (token := page.next_page) is None:
            return lines


# -- without access to customer data; the sandbox's checks; bad records --------------------------


def test_shopify_without_customer_data_orders_sync_without_a_buyer(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    with ShopifyEmulator(access_token=SHOPIFY_TOKEN, clock=clock, read_customers=False) as shop:
        connector = shopify_connector(shop.url)
        try:
            post(shop.url, "/listings", {"sku": "MUG", "quantity": 5})
            order_id = sell(shop.url, {"email": EMAIL, "name": NAME}, MUG=2)
            clock.advance(60)
            post(shop.url, f"/orders/{order_id}/ship")
            post(shop.url, f"/orders/{order_id}/deliver")
            with caplog.at_level(logging.WARNING):
                pages = [connector.pull_orders(clock.now - timedelta(hours=1), None)
                         for _ in range(2)]
        finally:
            connector.close()
    [header] = pages[-1].orders
    assert (header.buyer, header.buyer_email, header.buyer_id) == ("", "", "")
    assert header.delivered_at == clock.now and len(pages[-1].lines) == 1
    denied = sorted(m for r in caplog.records if "denies access" in (m := r.getMessage()))
    assert len(denied) == 2  # once per field, not once per pull
    assert "denies access to customer" in denied[0] and "read_customers" in denied[0]
    assert "denies access to email" in denied[1] and "email field" in denied[1]
    assert EMAIL not in caplog.text


@pytest.mark.parametrize("buyer", [
    "ada@example.com", {"email": "not an address"}, {}, {"email": "", "name": ""},
    {"email": EMAIL, "phone": "+44 20 7946 0018"}, {"email": 7},
])
def test_the_sandboxes_refuse_a_malformed_buyer(
    buyer: Any, woo: tuple[WooCommerceEmulator, WooCommerceConnector],
    shopify: tuple[ShopifyEmulator, ShopifyConnector],
    ebay: tuple[EbayEmulator, EbayConnector], amazon: AmazonEmulator,
) -> None:
    for url in (woo[0].url, shopify[0].url, ebay[0].url, amazon.url):
        body = {"lines": [{"sku": "MUG", "quantity": 1}], "buyer": buyer}
        post(url, "/orders", body, status=400)
        rows = httpx.get(f"{url}/_sandbox/listings", timeout=10).json()["listings"]
        assert [r["quantity"] for r in rows if r["sku"] == "MUG"] == [50], url  # none sold
        assert httpx.get(f"{url}/_sandbox/orders", timeout=10).json()["orders"] == [], url


def test_bad_records_keep_no_email() -> None:
    """Shopify's order in a bad record loses its email and customer; eBay's its
    transactions' Buyer (the other channels' are in test_order_headers_*)."""
    shopify_order = {"id": "gid://shopify/Order/1", "updatedAt": "yesterday", "email": EMAIL,
                     "customer": {"id": "gid://shopify/Customer/5", "firstName": "Ada"},
                     "lineItems": {"nodes": []}, "refunds": []}
    [record] = shopify_order_lines(shopify_order, [], False).bad
    assert "email" not in record.raw and "customer" not in record.raw
    assert_no_email(record)
    ebay_order = {"OrderID": "01-00001-00001", "LastModifiedTime": "2026-11-20T10:00:00Z",
                  "BuyerUserID": "ada.lovelace1", "OrderStatus": "Completed",
                  "TransactionArray": {"Transaction": {
                      "OrderLineItemID": "110-1", "QuantityPurchased": "1",
                      "Item": {"ItemID": "110"}, "Buyer": {"Email": EMAIL}}}}
    _, bad = parse_ebay_order(ebay_order)
    assert [b.key for b in bad] == ["01-00001-00001/110-1"]  # no SKU
    assert_no_email(bad)
    header = ebay_snapshot(ebay_order, bad)
    assert header is not None and header.buyer_email == EMAIL  # the order itself is fine
    assert_no_email(header)
