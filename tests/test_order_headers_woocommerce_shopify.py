"""Order headers (``OrderPage.orders``) from the WooCommerce and Shopify connectors.

Each connector is driven against its emulator over loopback, orders being moved through every
status the emulator can produce, and the snapshots are checked against what the channel's API
serves: the stage per status, the buyer's display name, the total as the sum of the line
prices, the currency and the placed and paid times. respx feeds each connector header fields
it cannot read: the field is left empty and the order's lines still come through; the buyer's
address and phone never reach a snapshot or a bad record, and the email only the snapshot's
``buyer_email``, which its repr leaves out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx

from channelsync.connector import CHANNEL_STAGES, OrderPage, OrderSnapshot
from channelsync.errors import PermanentChannelError
from connectors.shopify import ShopifyConnector, ShopifySettings
from connectors.shopify.emulator import ShopifyEmulator
from connectors.woocommerce import WooCommerceConnector
from connectors.woocommerce.emulator import WooCommerceEmulator

T0 = datetime(2026, 11, 26, 7, 0, 0, tzinfo=UTC)
SINCE = T0 - timedelta(days=1)
PRICES = {"MUG": Decimal("12.50"), "CUP": Decimal("3.99")}
WOO_KEY = "ck_0123456789abcdef0123456789abcdef01234567"
WOO_SECRET = "cs_fedcba9876543210fedcba9876543210fedcba98"
SHOPIFY_TOKEN = "shpat_headers0123456789abcdef0123456789"
GRAPHQL = "/admin/api/2026-10/graphql.json"
# What a real buyer's billing block holds besides the name: none of it may be kept, but the
# email as the snapshot's buyer_email (never in a repr or a bad record).
PERSONAL = {"company": "Lovelace Ltd", "address_1": "12 Analytical Row", "address_2": "Flat 3",
            "city": "Marylebone", "state": "LND", "postcode": "NW1 6XE", "country": "GB",
            "email": "ada@example.invalid", "phone": "+44 20 7946 0018"}


class Clock:
    """The channel's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def pull_all(connector: WooCommerceConnector | ShopifyConnector) -> list[OrderPage]:
    pages: list[OrderPage] = []
    token: str | None = None
    while True:
        page = connector.pull_orders(SINCE, token)
        pages.append(page)
        if (token := page.next_page) is None:
            return pages


def headers(pages: list[OrderPage]) -> dict[str, OrderSnapshot]:
    found: dict[str, OrderSnapshot] = {}
    for page in pages:
        for snapshot in page.orders:
            assert snapshot.stage in CHANNEL_STAGES
            found[snapshot.order_id] = snapshot  # a later page has the newer version
    return found


def line_orders(pages: list[OrderPage]) -> set[str]:
    return {x.order_id for page in pages for x in page.lines}


def expected_total(**lines: int) -> Decimal:
    return sum((PRICES[sku] * n for sku, n in lines.items()), Decimal("0"))


def assert_nothing_personal(*things: object) -> None:
    text = repr(things)
    for value in PERSONAL.values():
        assert value not in text


# -- WooCommerce --------------------------------------------------------------------------------


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def woo_shop(clock: Clock) -> Iterator[WooCommerceEmulator]:
    with WooCommerceEmulator(consumer_key=WOO_KEY, consumer_secret=WOO_SECRET,
                             clock=clock) as shop:
        yield shop


@pytest.fixture
def woo(woo_shop: WooCommerceEmulator) -> Iterator[WooCommerceConnector]:
    settings = WooCommerceConnector.Settings.model_validate(
        {"consumer_key": WOO_KEY, "consumer_secret": WOO_SECRET})
    connector = WooCommerceConnector("woo", settings, endpoint=woo_shop.url)  # OAuth 1.0a
    yield connector
    connector.close()


def woo_sell(shop: WooCommerceEmulator, **lines: int) -> str:
    answer = httpx.post(f"{shop.url}/_sandbox/orders", json={"lines": [
        {"sku": sku, "quantity": n} for sku, n in lines.items()]})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["order_id"])


def woo_api(shop: WooCommerceEmulator) -> httpx.Client:
    """The store's REST API as a shop manager uses it (HTTP Basic, as behind TLS)."""
    return httpx.Client(base_url=f"{shop.url}/wp-json/wc/v3", auth=(WOO_KEY, WOO_SECRET),
                        timeout=10)


def test_woocommerce_headers_for_every_status(
    woo_shop: WooCommerceEmulator, woo: WooCommerceConnector, clock: Clock
) -> None:
    for sku, price in PRICES.items():
        answer = httpx.post(f"{woo_shop.url}/_sandbox/listings",
                            json={"sku": sku, "quantity": 50, "price": str(price)})
        assert answer.status_code == 200, answer.text
    bought = {"paid": {"MUG": 2, "CUP": 1}, "shipped": {"MUG": 1}, "cancelled": {"CUP": 3},
              "refunded": {"MUG": 1, "CUP": 2}, "failed": {"CUP": 1}, "on-hold": {"MUG": 3},
              "pending": {"CUP": 2}}
    ids = {name: woo_sell(woo_shop, **lines) for name, lines in bought.items()}
    clock.advance(90)  # the changes come later than the orders were placed and paid
    changed_at = clock.now
    httpx.post(f"{woo_shop.url}/_sandbox/orders/{ids['shipped']}/ship").raise_for_status()
    httpx.post(f"{woo_shop.url}/_sandbox/orders/{ids['cancelled']}/cancel").raise_for_status()
    with woo_api(woo_shop) as api:
        for name in ("refunded", "failed", "on-hold", "pending"):
            api.put(f"/orders/{ids[name]}", json={"status": name}).raise_for_status()
        served = {name: api.get(f"/orders/{order_id}").json() for name, order_id in ids.items()}

    pages = pull_all(woo)
    found = headers(pages)
    assert set(found) == set(ids.values()) == line_orders(pages)
    stages = {name: (found[order_id].status, found[order_id].stage)
              for name, order_id in ids.items()}
    assert stages == {
        "paid": ("processing", "paid"),
        "shipped": ("completed", "shipped"),
        "cancelled": ("cancelled", "cancelled"),
        "refunded": ("refunded", "returned"),
        "failed": ("failed", "cancelled"),
        "on-hold": ("on-hold", "received"),
        "pending": ("pending", "received"),
    }
    for name, order_id in ids.items():
        header, api_order = found[order_id], served[name]
        billing = api_order["billing"]
        assert header.buyer == f"{billing['first_name']} {billing['last_name']}"
        assert header.buyer.count(" ") >= 1 and header.buyer.strip() == header.buyer
        assert Decimal(header.total) == expected_total(**bought[name])
        assert Decimal(header.total) == sum(Decimal(x["total"]) for x in api_order["line_items"])
        assert header.currency == "EUR"
        assert header.placed_at == T0
        # every emulated order was paid when placed (pending -> processing); WooCommerce keeps
        # date_paid through a later cancellation, refund or status change
        assert header.paid_at == T0
        assert header.changed_at == (T0 if name == "paid" else changed_at)


def test_woocommerce_an_order_on_hold_is_paid_when_it_moves_to_processing(
    woo_shop: WooCommerceEmulator, woo: WooCommerceConnector, clock: Clock
) -> None:
    httpx.post(f"{woo_shop.url}/_sandbox/listings",
               json={"sku": "MUG", "quantity": 5, "price": "12.50"}).raise_for_status()
    answer = httpx.post(f"{woo_shop.url}/_sandbox/orders", json={
        "lines": [{"sku": "MUG", "quantity": 2}], "status": "on-hold"})  # a bank transfer
    assert answer.status_code == 201, answer.text
    order_id = answer.json()["order_id"]
    [waiting] = headers(pull_all(woo)).values()
    assert (waiting.status, waiting.stage, waiting.placed_at, waiting.paid_at) == (
        "on-hold", "received", T0, None)
    assert (waiting.total, waiting.currency) == ("25.00", "EUR")
    clock.advance(3600)  # the money arrives an hour later
    with woo_api(woo_shop) as api:
        api.put(f"/orders/{order_id}", json={"status": "processing"}).raise_for_status()
    [paid] = headers(pull_all(woo)).values()
    assert (paid.stage, paid.placed_at, paid.paid_at, paid.changed_at) == (
        "paid", T0, T0 + timedelta(hours=1), T0 + timedelta(hours=1))
    assert paid.buyer == waiting.buyer != ""


WOO_STORE = "https://shop.example"


def woo_order(order_id: int, status: str, **fields: Any) -> dict[str, Any]:
    return {"id": order_id, "status": status, "currency": "EUR", "total": "28.99",
            "date_created_gmt": "2026-11-26T07:00:00", "date_paid_gmt": "2026-11-26T07:00:05",
            "date_modified_gmt": "2026-11-26T07:10:00",
            "billing": {"first_name": "Ada", "last_name": "Lovelace", **PERSONAL},
            "shipping": {"first_name": "Ada", "last_name": "Lovelace", **PERSONAL},
            "customer_note": "leave it with the neighbour at 14",
            "line_items": [{"id": order_id * 10, "sku": "MUG", "quantity": 2},
                           {"id": order_id * 10 + 1, "sku": "CUP", "quantity": 1}], **fields}


def test_woocommerce_malformed_header_fields_keep_the_lines() -> None:
    settings = WooCommerceConnector.Settings.model_validate(
        {"consumer_key": WOO_KEY, "consumer_secret": WOO_SECRET})
    connector = WooCommerceConnector("woo", settings, endpoint=WOO_STORE)
    orders = [
        woo_order(1, "processing"),
        woo_order(2, "completed", date_created_gmt="26/11/2026", date_paid_gmt="soon",
                  total="28,99", currency="euro", billing={"first_name": 7, "email": "x@y.z"}),
        woo_order(3, "on-hold", total=None, date_paid_gmt=None, billing=None),
        woo_order(4, "checkout-draft"),  # a cart: lines ignored, no header
        woo_order(5, "shipped-by-plugin"),  # unknown status: a bad record, without the billing
        woo_order(6, "processing", line_items="none"),
    ]
    with respx.mock(base_url=f"{WOO_STORE}/wp-json/wc/v3") as api:
        api.get("/orders").mock(return_value=httpx.Response(
            200, json=orders, headers={"X-WP-TotalPages": "1"}))
        page = connector.pull_orders(SINCE, None)
    connector.close()
    found = {x.order_id: x for x in page.orders}
    assert sorted(found) == ["1", "2", "3"]
    assert found["1"] == OrderSnapshot(
        order_id="1", status="processing", stage="paid",
        changed_at=datetime(2026, 11, 26, 7, 10, tzinfo=UTC),
        placed_at=datetime(2026, 11, 26, 7, tzinfo=UTC),
        paid_at=datetime(2026, 11, 26, 7, 0, 5, tzinfo=UTC),
        buyer="Ada Lovelace", total="28.99", currency="EUR", buyer_email=PERSONAL["email"])
    assert found["2"] == OrderSnapshot(
        order_id="2", status="completed", stage="shipped",
        changed_at=datetime(2026, 11, 26, 7, 10, tzinfo=UTC),
        buyer_email="x@y.z")  # every bad field left empty; the email was fine
    assert (found["3"].stage, found["3"].buyer, found["3"].total, found["3"].paid_at) == (
        "received", "", "", None)
    lines = {(x.order_id, x.line_id): x for x in page.lines}
    assert sorted(lines) == [("1", "10"), ("1", "11"), ("2", "20"), ("2", "21"), ("3", "30"),
                             ("3", "31"), ("4", "40"), ("4", "41")]
    assert lines[("2", "20")].shipped == 2 and lines[("4", "40")].ignore
    assert sorted(x.key for x in page.bad_records) == ["5", "6"]
    for record in page.bad_records:
        assert "billing" not in record.raw and "shipping" not in record.raw
        assert "customer_note" not in record.raw
    assert_nothing_personal(page)


# -- Shopify ------------------------------------------------------------------------------------


@pytest.fixture
def shopify_shop(clock: Clock) -> Iterator[ShopifyEmulator]:
    emulator = ShopifyEmulator(access_token=SHOPIFY_TOKEN, clock=clock)
    emulator.start()
    yield emulator
    emulator.stop()


def shopify_connector(emulator: ShopifyEmulator) -> ShopifyConnector:
    settings = ShopifySettings.model_validate({"access_token": SHOPIFY_TOKEN})
    return ShopifyConnector("shopify", settings, endpoint=emulator.url)


@pytest.fixture
def shopify(shopify_shop: ShopifyEmulator) -> Iterator[ShopifyConnector]:
    connector = shopify_connector(shopify_shop)
    yield connector
    connector.close()


def shopify_control(emulator: ShopifyEmulator, path: str, body: Any = None,
                    expect: int = 200) -> Any:
    answer = httpx.post(f"{emulator.url}/_sandbox{path}", json=body)
    assert answer.status_code == expect, answer.text
    return answer.json()


def shopify_sell(emulator: ShopifyEmulator, lines: dict[str, int], **extra: Any) -> str:
    body = {"lines": [{"sku": sku, "quantity": n} for sku, n in lines.items()], **extra}
    return str(shopify_control(emulator, "/orders", body, expect=201)["order_id"])


def shopify_customers(emulator: ShopifyEmulator, order_ids: list[str]) -> dict[str, Any]:
    """Each order's customer as Shopify's API serves it, displayName included."""
    query = """query Customers($ids: [ID!]!) { nodes(ids: $ids) { ... on Order {
        id customer { firstName lastName displayName } } } }"""
    answer = httpx.post(f"{emulator.url}{GRAPHQL}", headers={
        "X-Shopify-Access-Token": SHOPIFY_TOKEN}, json={
        "query": query, "variables": {"ids": [f"gid://shopify/Order/{n}" for n in order_ids]}})
    nodes = answer.json()["data"]["nodes"]
    return {node["id"].rsplit("/", 1)[-1]: node["customer"] for node in nodes}


def test_shopify_headers_for_every_status(
    shopify_shop: ShopifyEmulator, shopify: ShopifyConnector, clock: Clock
) -> None:
    for sku, price in PRICES.items():
        shopify_control(shopify_shop, "/listings",
                        {"sku": sku, "quantity": 50, "price": str(price)})
    imported = T0 - timedelta(hours=5)
    bought = {"paid": {"MUG": 2, "CUP": 1}, "shipped": {"MUG": 1}, "cancelled": {"CUP": 3},
              "returned": {"MUG": 1, "CUP": 2}, "kept": {"MUG": 2},
              "refunded_early": {"CUP": 2}, "pending": {"CUP": 1},
              "authorized": {"MUG": 1}, "imported": {"CUP": 4}}
    extra: dict[str, dict[str, Any]] = {
        "pending": {"financial_status": "PENDING"},
        "authorized": {"financial_status": "AUTHORIZED"},
        "imported": {"processed_at": imported.strftime("%Y-%m-%dT%H:%M:%SZ")}}
    ids = {name: shopify_sell(shopify_shop, lines, **extra.get(name, {}))
           for name, lines in bought.items()}
    clock.advance(90)
    changed_at = clock.now
    for name in ("shipped", "returned", "kept"):
        shopify_control(shopify_shop, f"/orders/{ids[name]}/ship")
    shopify_control(shopify_shop, f"/orders/{ids['cancelled']}/cancel")
    shopify_control(shopify_shop, f"/orders/{ids['returned']}/refund", {"lines": [
        {"sku": "MUG", "quantity": 1, "restock_type": "RETURN"},
        {"sku": "CUP", "quantity": 2, "restock_type": "RETURN"}]})
    shopify_control(shopify_shop, f"/orders/{ids['kept']}/refund", {"lines": [
        {"sku": "MUG", "quantity": 1, "restock_type": "RETURN"}]})
    shopify_control(shopify_shop, f"/orders/{ids['refunded_early']}/refund", {"lines": [
        {"sku": "CUP", "quantity": 1, "restock_type": "CANCEL"}]})

    pages = pull_all(shopify)
    found = headers(pages)
    assert set(found) == set(ids.values()) == line_orders(pages)
    stages = {name: (found[order_id].status, found[order_id].stage)
              for name, order_id in ids.items()}
    assert stages == {
        "paid": ("unfulfilled/paid", "paid"),
        "shipped": ("fulfilled/paid", "shipped"),
        "cancelled": ("cancelled", "cancelled"),
        "returned": ("fulfilled/refunded", "returned"),
        "kept": ("fulfilled/partially_refunded", "shipped"),
        "refunded_early": ("unfulfilled/partially_refunded", "paid"),
        "pending": ("unfulfilled/pending", "received"),
        "authorized": ("unfulfilled/authorized", "received"),
        "imported": ("unfulfilled/paid", "paid"),
    }
    customers = shopify_customers(shopify_shop, list(ids.values()))
    for name, order_id in ids.items():
        header, customer = found[order_id], customers[order_id]
        assert header.buyer == customer["displayName"] == (
            f"{customer['firstName']} {customer['lastName']}")
        assert Decimal(header.total) == expected_total(**bought[name])  # before returns
        assert header.currency == "EUR"
        assert header.placed_at == T0  # createdAt
        unpaid = name in ("pending", "authorized")
        # paid_at is processedAt for an order that was paid (refunds do not unpay it)
        assert header.paid_at == (None if unpaid else imported if name == "imported" else T0)
        untouched = name in ("paid", "pending", "authorized", "imported")
        assert header.changed_at == (T0 if untouched else changed_at)


def test_shopify_without_read_customers_orders_still_sync(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    emulator = ShopifyEmulator(access_token=SHOPIFY_TOKEN, clock=clock, read_customers=False)
    emulator.start()
    connector = shopify_connector(emulator)
    try:
        shopify_control(emulator, "/listings", {"sku": "MUG", "quantity": 5, "price": "12.50"})
        first, second = shopify_sell(emulator, {"MUG": 2}), shopify_sell(emulator, {"MUG": 1})
        with caplog.at_level(logging.WARNING):
            pages = pull_all(connector) + pull_all(connector)
        found = headers(pages)
        assert line_orders(pages) == set(found) == {first, second}
        assert [found[first].buyer, found[first].total, found[first].stage] == [
            "", "25.0", "paid"]
        denied = [r for r in caplog.records if "denies access to customer" in r.getMessage()]
        assert len(denied) == 1 and "read_customers" in denied[0].getMessage()
        assert SHOPIFY_TOKEN not in caplog.text
    finally:
        connector.close()
        emulator.stop()


SHOPIFY_STORE = "https://shop.example"


def shopify_order(n: int, **fields: Any) -> dict[str, Any]:
    lines = [{"id": f"gid://shopify/LineItem/{n}{k}", "sku": sku, "quantity": quantity,
              "currentQuantity": quantity, "unfulfilledQuantity": quantity,
              "nonFulfillableQuantity": 0} for k, (sku, quantity) in enumerate(
                  [("MUG", 2), ("CUP", 1)], start=1)]
    return {"id": f"gid://shopify/Order/{n}", "updatedAt": "2026-11-26T07:10:00Z",
            "cancelledAt": None, "test": False, "displayFinancialStatus": "PAID",
            "displayFulfillmentStatus": "UNFULFILLED", "createdAt": "2026-11-26T07:00:00Z",
            "processedAt": "2026-11-26T07:00:00Z",
            "customer": {"firstName": "Ada", "lastName": "Lovelace"},
            "totalPriceSet": {"shopMoney": {"amount": "28.99", "currencyCode": "EUR"},
                              "presentmentMoney": {"amount": "33.5", "currencyCode": "USD"}},
            "lineItems": {"nodes": lines, "pageInfo": {"hasNextPage": False,
                                                       "endCursor": None}},
            "refunds": [], **fields}


def test_shopify_malformed_header_fields_keep_the_lines() -> None:
    connector = ShopifyConnector("shopify", ShopifySettings.model_validate(
        {"access_token": SHOPIFY_TOKEN}), endpoint=SHOPIFY_STORE)
    orders = [
        shopify_order(1),
        shopify_order(2, createdAt="yesterday", processedAt=17, customer="Ada Lovelace",
                      totalPriceSet={"shopMoney": {"amount": "twelve", "currencyCode": 978}}),
        shopify_order(3, displayFinancialStatus="SOMETHING_NEW", totalPriceSet=None,
                      customer={"firstName": None, "lastName": " Lovelace "}),
        shopify_order(4, test=True),  # ignored: no header
    ]
    answer = {"data": {"orders": {"nodes": orders, "pageInfo": {"hasNextPage": False,
                                                                 "endCursor": None}}}}
    with respx.mock(base_url=SHOPIFY_STORE) as api:
        api.post(GRAPHQL).mock(return_value=httpx.Response(200, json=answer))
        page = connector.pull_orders(SINCE, None)
    connector.close()
    found = {x.order_id: x for x in page.orders}
    assert sorted(found) == ["1", "2", "3"]
    assert found["1"] == OrderSnapshot(
        order_id="1", status="unfulfilled/paid", stage="paid",
        changed_at=datetime(2026, 11, 26, 7, 10, tzinfo=UTC),
        placed_at=datetime(2026, 11, 26, 7, tzinfo=UTC),
        paid_at=datetime(2026, 11, 26, 7, tzinfo=UTC),
        buyer="Ada Lovelace", total="28.99", currency="EUR")  # the shop's money, not the buyer's
    assert found["2"] == OrderSnapshot(
        order_id="2", status="unfulfilled/paid", stage="paid",
        changed_at=datetime(2026, 11, 26, 7, 10, tzinfo=UTC))
    assert (found["3"].status, found["3"].stage, found["3"].buyer, found["3"].total,
            found["3"].paid_at) == ("unfulfilled/something_new", "received", "Lovelace", "",
                                    None)
    assert sorted((x.order_id, x.ordered) for x in page.lines) == [
        ("1", 1), ("1", 2), ("2", 1), ("2", 2), ("3", 1), ("3", 2), ("4", 1), ("4", 2)]
    assert page.bad_records == []


def denied(*path: str | int) -> dict[str, Any]:
    return {"message": "This app is not approved to access the Customer object.",
            "path": list(path), "extensions": {"code": "ACCESS_DENIED"}}


def test_shopify_only_a_denied_buyer_name_is_let_through() -> None:
    connector = ShopifyConnector("shopify", ShopifySettings.model_validate(
        {"access_token": SHOPIFY_TOKEN}), endpoint=SHOPIFY_STORE)
    names_denied = shopify_order(1, customer={"firstName": None, "lastName": None})
    data = {"orders": {"nodes": [names_denied], "pageInfo": {"hasNextPage": False,
                                                             "endCursor": None}}}
    answers = [
        {"data": data, "errors": [denied("orders", "nodes", 0, "customer", "firstName"),
                                  denied("orders", "nodes", 0, "customer", "lastName")]},
        {"data": data, "errors": [denied("orders", "nodes", 0, "customer"),
                                  denied("orders", "nodes", 0, "lineItems")]},
    ]
    with respx.mock(base_url=SHOPIFY_STORE) as api:
        api.post(GRAPHQL).mock(side_effect=[httpx.Response(200, json=a) for a in answers])
        page = connector.pull_orders(SINCE, None)
        assert [x.buyer for x in page.orders] == [""] and len(page.lines) == 2
        with pytest.raises(PermanentChannelError, match="ACCESS_DENIED"):
            connector.pull_orders(SINCE, None)  # stock data denied: never taken as empty
    connector.close()
