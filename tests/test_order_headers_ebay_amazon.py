"""Orders as wholes (``OrderSnapshot``) from the eBay and Amazon connectors, each driven
through its real client library (ebaysdk; python-amazon-sp-api) against its emulator over
loopback: the stage of every status the emulators produce, the buyer's display name (and
nothing else of the buyer), the total as the sum of the lines' prices, the currency, and the
placed and paid times. A malformed header field empties that field and keeps the lines.

Amazon's answers are checked against Amazon's own model (tests/reference/amazon-sp-api/).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]
import pytest
from pydantic import SecretStr

from channelsync.connector import BadRecord, OrderPage, OrderSnapshot
from channelsync.sandbox.emulator import Raw, Request, Response
from connectors.amazon import AmazonConnector, AmazonSettings
from connectors.amazon._orders import parse_order as parse_amazon_order
from connectors.amazon.emulator import AmazonEmulator
from connectors.ebay import EbayConnector, EbaySettings
from connectors.ebay.connector import order_snapshot
from connectors.ebay.connector import parse_order as parse_ebay_order
from connectors.ebay.emulator import EbayEmulator

REFERENCE = Path(__file__).parent / "reference" / "amazon-sp-api"


class Clock:
    """The emulators' and connectors' clock: whole seconds, moved by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def post(control: httpx.Client, path: str, body: Any = None, status: int = 200) -> Any:
    response = control.post(path, json=body)
    assert response.status_code == status, response.text
    return response.json()


def place(control: httpx.Client, status: int = 201, **fields: Any) -> str:
    lines = [{"sku": sku, "quantity": n} for sku, n in fields.pop("lines").items()]
    return str(post(control, "/_sandbox/orders", {"lines": lines, **fields}, status).get(
        "order_id", ""))


def prices(control: httpx.Client) -> dict[str, Decimal]:
    rows = control.get("/_sandbox/listings").json()["listings"]
    return {row["sku"]: Decimal(str(row["price"])) for row in rows if "price" in row}


def headers_by_id(pages: list[OrderPage]) -> dict[str, OrderSnapshot]:
    found = [header for page in pages for header in page.orders]
    assert len({h.order_id for h in found}) == len(found)  # one snapshot per order
    return {h.order_id: h for h in found}


def lines_by_order(pages: list[OrderPage]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for page in pages:
        for line in page.lines:
            out.setdefault(line.order_id, {})[line.channel_sku] = line.ordered
    return out


# -- eBay ------------------------------------------------------------------------------------

EBAY_TOKEN = "v^1.1#i^1#p^3#r^1#I^3#f^0#t^H4sIAAAAAAAAAOVZe2headers0123456789"


def ebay_connector(url: str, clock: Clock) -> EbayConnector:
    settings = EbaySettings(token=SecretStr(EBAY_TOKEN), app_id=SecretStr("Seller-App-PRD-1"),
                            dev_id=SecretStr("dev-1"), cert_id=SecretStr("PRD-cert-1"),
                            timeout=5)
    return EbayConnector("ebay-headers", settings, endpoint=url, clock=clock)


def ebay_pull(connector: EbayConnector, since: datetime) -> list[OrderPage]:
    pages, token = [], None
    for _ in range(20):
        page = connector.pull_orders(since, token)
        pages.append(page)
        token = page.next_page
        if token is None:
            return pages
    raise AssertionError("paging never ends")


@pytest.fixture
def ebay_emulator(clock: Clock) -> Iterator[EbayEmulator]:
    emulator = EbayEmulator(token=EBAY_TOKEN, clock=clock, seed=11)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def ebay_control(ebay_emulator: EbayEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ebay_emulator.url, timeout=10) as http:
        yield http


def ebay_listings(control: httpx.Client) -> None:
    post(control, "/_sandbox/listings", {"sku": "MUG", "quantity": 50, "price": 12.99})
    post(control, "/_sandbox/listings", {"sku": "TEE-M", "quantity": 50, "parent_sku": "TEE",
                                         "price": "19.50"})
    post(control, "/_sandbox/listings", {"sku": "CUP", "quantity": 50})  # priced by its SKU


def test_ebay_snapshots_for_every_status_the_emulator_produces(
    ebay_emulator: EbayEmulator, ebay_control: httpx.Client, clock: Clock
) -> None:
    control = ebay_control
    ebay_listings(control)
    price = prices(control)
    assert price["MUG"] == Decimal("12.99") and price["TEE-M"] == Decimal("19.5")
    assert Decimal("5") <= price["CUP"] < Decimal("100")
    start = clock.now
    ordered = {
        "paid": {"MUG": 2, "TEE-M": 1},
        "unpaid": {"CUP": 3},
        "paid_later": {"MUG": 1, "CUP": 1},
        "shipped": {"TEE-M": 2},
        "cancelled": {"MUG": 1},
        "cancel_pending": {"CUP": 2},
        "cancel_pending_unpaid": {"MUG": 4},
    }
    ids = {name: place(control, lines=lines, paid=not name.endswith("unpaid")
                       and name != "paid_later")
           for name, lines in ordered.items()}
    clock.advance(60)
    paid_at = clock.now
    post(control, f"/_sandbox/orders/{ids['paid_later']}/pay")
    post(control, f"/_sandbox/orders/{ids['shipped']}/ship")
    post(control, f"/_sandbox/orders/{ids['cancelled']}/cancel")
    post(control, f"/_sandbox/orders/{ids['cancel_pending']}/cancel-request")
    post(control, f"/_sandbox/orders/{ids['cancel_pending_unpaid']}/cancel-request")
    clock.advance(180)  # past the two minutes the connector leaves eBay to settle

    pages = ebay_pull(ebay_connector(ebay_emulator.url, clock), start - timedelta(hours=1))
    headers = headers_by_id(pages)
    assert set(headers) == set(ids.values())
    expected = {  # (OrderStatus, stage, paid at)
        "paid": ("Active", "paid", start),
        "unpaid": ("Active", "received", None),
        "paid_later": ("Active", "paid", paid_at),
        "shipped": ("Completed", "shipped", start),
        "cancelled": ("Cancelled", "cancelled", start),
        # a cancellation is not final until eBay says Cancelled: the payment decides
        "cancel_pending": ("CancelPending", "paid", start),
        "cancel_pending_unpaid": ("CancelPending", "received", None),
    }
    held = {row["order_id"]: row for row in control.get("/_sandbox/orders").json()["orders"]}
    for name, order_id in ids.items():
        header = headers[order_id]
        assert (header.status, header.stage, header.paid_at) == expected[name], name
        assert header.placed_at == start
        assert header.changed_at.tzinfo is not None
        total = sum((price[sku] * n for sku, n in ordered[name].items()), Decimal(0))
        assert Decimal(header.total) == total and header.currency == "USD", name
        assert held[order_id]["status"] == header.status
        # the buyer is eBay's user ID, and nothing else of the buyer
        assert header.buyer == ebay_emulator.store.orders[order_id].buyer
        assert re.fullmatch(r"[a-z]+\.[a-z]+[0-9]+", header.buyer), header.buyer
    assert lines_by_order(pages) == {ids[name]: lines for name, lines in ordered.items()}
    assert len({h.buyer for h in headers.values()}) > 1  # not one buyer for every order


def test_ebay_buyers_are_the_same_for_the_same_seed(clock: Clock) -> None:
    buyers = []
    for _ in range(2):
        with EbayEmulator(token=EBAY_TOKEN, clock=clock, seed=5) as emulator, \
                httpx.Client(base_url=emulator.url, timeout=10) as control:
            ebay_listings(control)
            order_id = place(control, lines={"MUG": 1})
            buyers.append(emulator.store.orders[order_id].buyer)
    assert buyers[0] == buyers[1] and buyers[0]


def test_ebay_emulator_refuses_what_ebay_would(ebay_control: httpx.Client) -> None:
    ebay_listings(ebay_control)
    order_id = place(ebay_control, lines={"MUG": 1})
    post(ebay_control, f"/_sandbox/orders/{order_id}/ship")
    post(ebay_control, f"/_sandbox/orders/{order_id}/cancel-request", status=409)
    place(ebay_control, lines={"MUG": 1}, paid="no", status=400)
    post(ebay_control, "/_sandbox/listings", {"sku": "MUG", "quantity": 1, "price": -1},
         status=400)
    post(ebay_control, "/_sandbox/orders/nope/pay", status=404)


class MangledEbay(EbayEmulator):
    """Answers GetOrders with a CreatedTime eBay would never send, a PaidTime that is no
    time, no Total and no BuyerUserID."""

    def handle(self, request: Request) -> Response:
        status, body, headers = super().handle(request)
        if request.headers.get("X-EBAY-API-CALL-NAME") == "GetOrders" and isinstance(body, Raw):
            xml = body.content.decode()
            xml = re.sub(r"<CreatedTime>[^<]*</CreatedTime>", "<CreatedTime>31/12/2026 10:00"
                         "</CreatedTime>", xml)
            xml = re.sub(r"<PaidTime>[^<]*</PaidTime>", "<PaidTime>soon</PaidTime>", xml)
            xml = re.sub(r"<Total [^>]*>[^<]*</Total>", "", xml)
            xml = re.sub(r"<BuyerUserID>[^<]*</BuyerUserID>", "", xml)
            body = Raw(xml.encode(), body.content_type)
        return status, body, headers


def test_ebay_malformed_header_fields_are_left_empty_and_the_lines_kept(clock: Clock) -> None:
    with MangledEbay(token=EBAY_TOKEN, clock=clock, seed=3) as emulator, \
            httpx.Client(base_url=emulator.url, timeout=10) as control:
        ebay_listings(control)
        start = clock.now
        paid = place(control, lines={"MUG": 2, "TEE-M": 1})
        clock.advance(180)
        pages = ebay_pull(ebay_connector(emulator.url, clock), start - timedelta(hours=1))
    assert lines_by_order(pages) == {paid: {"MUG": 2, "TEE-M": 1}}
    assert [b for page in pages for b in page.bad_records] == []
    [header] = headers_by_id(pages).values()
    assert (header.order_id, header.status, header.stage) == (paid, "Active", "paid")
    assert (header.placed_at, header.paid_at, header.buyer, header.total, header.currency) == (
        None, None, "", "", "")


def test_ebay_bad_records_keep_no_address_email_or_phone() -> None:
    address = {"Name": "Ada Bianchi", "Street1": "1 Via Roma", "Phone": "+39 06 000000",
               "PostalCode": "00100"}
    tx = {"OrderLineItemID": "110-1", "QuantityPurchased": "1", "Item": {"ItemID": "110"},
          "Buyer": {"Email": "ada@example.com", "UserFirstName": "Ada"}}
    raw = {"OrderID": "01-00001-00001", "OrderStatus": "Active",
           "LastModifiedTime": "2026-11-20T10:00:00.000Z", "CreatedTime": "2026-11-20T09:00:00Z",
           "BuyerUserID": "ada.bianchi1", "ShippingAddress": address,
           "Total": {"value": "12.99", "_currencyID": "USD"},
           "TransactionArray": {"Transaction": tx}}
    lines, bad = parse_ebay_order(raw)
    assert lines == [] and [b.key for b in bad] == ["01-00001-00001/110-1"]  # no SKU
    header = order_snapshot(raw, bad)
    assert header is not None and (header.buyer, header.total) == ("ada.bianchi1", "12.99")
    no_time = {k: v for k, v in raw.items() if k != "LastModifiedTime"}
    _, refused = parse_ebay_order(no_time)
    assert order_snapshot(no_time, refused) is None  # refused whole: no header either
    for record in [*bad, *refused]:
        assert_impersonal(record)


def assert_impersonal(record: BadRecord) -> None:
    kept = json.dumps(record.raw, default=str)
    for personal in ("ada@example.com", "Via Roma", "+39", "00100", "Ada Bianchi"):
        assert personal not in kept, (personal, kept)


# -- Amazon ----------------------------------------------------------------------------------

SELLER = "A2HEADERSELLER"
REFRESH = "Atzr|IwEBIHeadersRefreshToken0123456789abcdef"
APP_ID = "amzn1.application-oa2-client.headers0123456789"
CLIENT_SECRET = "amzn1.oa2-cs.v1.headers0123456789abcdef012345"
ORDERS = "/orders/2026-01-01/orders"


def nap(seconds: float) -> None:
    time.sleep(min(seconds, 0.01))  # the emulators here do not enforce Amazon's rates


def amazon_connector(url: str, clock: Clock) -> AmazonConnector:
    settings = AmazonSettings.model_validate({
        "marketplace": "US", "seller_id": SELLER, "refresh_token": REFRESH,
        "lwa_app_id": APP_ID, "lwa_client_secret": CLIENT_SECRET, "lwa_endpoint": url,
        "timeout": 10})
    return AmazonConnector("amazon-headers", settings, endpoint=url, sleep=nap, clock=clock)


def amazon_emulator(clock: Clock, cls: type[AmazonEmulator] = AmazonEmulator) -> AmazonEmulator:
    return cls(refresh_token=REFRESH, client_id=APP_ID, client_secret=CLIENT_SECRET,
               seller_id=SELLER, rate_limits=False, feed_delay=0, clock=clock, seed=11)


def amazon_pull(connector: AmazonConnector, since: datetime) -> list[OrderPage]:
    pages, token = [], None
    for _ in range(20):
        page = connector.pull_orders(since, token)
        pages.append(page)
        token = page.next_page
        if token is None:
            return pages
    raise AssertionError("paging never ends")


def raw_client(emulator: AmazonEmulator) -> httpx.Client:
    """Plain httpx with a token from the emulator's LWA: to see answers exactly as sent."""
    form = {"grant_type": "refresh_token", "refresh_token": REFRESH, "client_id": APP_ID,
            "client_secret": CLIENT_SECRET}
    token = httpx.post(f"{emulator.url}/auth/o2/token", data=form).json()["access_token"]
    return httpx.Client(base_url=emulator.url, headers={"x-amz-access-token": token}, timeout=10)


@cache
def _model() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((REFERENCE / "orders_2026-01-01.json").read_text())
    return loaded


def _closed(node: Any) -> Any:
    """Swagger objects accept any key unless closed: close them, so that a misspelt or
    invented field fails the check."""
    if isinstance(node, list):
        return [_closed(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _closed(v) for k, v in node.items()}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def assert_search_orders_model(body: Any) -> None:
    schema = {"$ref": "#/definitions/SearchOrdersResponse",
              "definitions": _closed(_model()["definitions"])}
    validator = jsonschema.Draft4Validator(
        schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
    assert not errors, errors[:5]


def search(raw: httpx.Client, since: datetime, datasets: str) -> dict[str, Any]:
    answer = raw.get(ORDERS, params={"lastUpdatedAfter": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                     "marketplaceIds": "ATVPDKIKX0DER", "includedData": datasets,
                                     "fulfilledBy": "MERCHANT"})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert_search_orders_model(body)
    return body


def test_amazon_snapshots_for_every_status_the_emulator_produces(clock: Clock) -> None:
    ordered = {
        "pending": {"MUG": 2},
        "pre_order": {"CUP": 1},
        "unshipped": {"MUG": 2, "CUP": 1},
        "partly_shipped": {"MUG": 3, "CUP": 2},
        "shipped": {"CUP": 4},
        "invoice_unconfirmed": {"MUG": 1},
        "cancelled": {"MUG": 1, "CUP": 1},
    }
    moves: dict[str, dict[str, Any]] = {
        "pre_order": {"status": "PendingAvailability"},
        "unshipped": {"status": "Unshipped"},
        "partly_shipped": {"status": "PartiallyShipped", "shipped": {"MUG": 1}},
        "shipped": {"status": "Shipped"},
        "invoice_unconfirmed": {"status": "InvoiceUnconfirmed"},
    }
    with amazon_emulator(clock) as emulator, \
            httpx.Client(base_url=emulator.url, timeout=10) as control, \
            raw_client(emulator) as raw:
        post(control, "/_sandbox/listings", {"sku": "MUG", "quantity": 50, "price": 12.5})
        post(control, "/_sandbox/listings", {"sku": "CUP", "quantity": 50})  # priced by SKU
        price = {"MUG": Decimal("12.50"), "CUP": prices_amazon(emulator)["CUP"]}
        start = clock.now
        ids = {name: place(control, lines=lines) for name, lines in ordered.items()}
        clock.advance(30)
        for name, move in moves.items():
            post(control, f"/_sandbox/orders/{ids[name]}/status", move)
        post(control, f"/_sandbox/orders/{ids['cancelled']}/cancel")
        clock.advance(30)

        connector = amazon_connector(emulator.url, clock)
        try:
            pages = amazon_pull(connector, start - timedelta(minutes=10))
        finally:
            connector.close()
        asked = search(raw, start - timedelta(minutes=10), "FULFILLMENT")
        full = search(raw, start - timedelta(minutes=10), "FULFILLMENT,PROCEEDS,BUYER")

    headers = headers_by_id(pages)
    assert set(headers) == set(ids.values())
    expected = {  # (fulfillmentStatus, stage)
        "pending": ("PENDING", "received"),
        "pre_order": ("PENDING_AVAILABILITY", "received"),
        "unshipped": ("UNSHIPPED", "paid"),
        "partly_shipped": ("PARTIALLY_SHIPPED", "paid"),
        "shipped": ("SHIPPED", "shipped"),
        "invoice_unconfirmed": ("SHIPPED", "shipped"),  # 2026-01-01 has no such status
        "cancelled": ("CANCELLED", "cancelled"),
    }
    shown = {o["orderId"]: o for o in asked["orders"]}
    with_proceeds = {o["orderId"]: o for o in full["orders"]}
    for name, order_id in ids.items():
        header = headers[order_id]
        assert (header.status, header.stage) == expected[name], name
        assert header.placed_at == start
        assert header.changed_at == start + timedelta(seconds=0 if name == "pending" else 30)
        assert header.paid_at is None  # the model has no payment time
        assert header.buyer == ""  # buyer.buyerName is restricted personal data: not asked
        total = sum((price[sku] * n for sku, n in ordered[name].items()), Decimal(0))
        if header.stage == "received":  # Amazon shows no prices while an order is pending
            assert (header.total, header.currency) == ("", ""), name
            assert "buyer" not in with_proceeds[order_id]
            continue
        assert Decimal(header.total) == total and header.currency == "USD", name
        # the same as Amazon's own order total, which the PROCEEDS dataset would give
        grand = with_proceeds[order_id]["proceeds"]["grandTotal"]
        assert (grand["amount"], grand["currencyCode"]) == (header.total, "USD")
        assert "proceeds" not in shown[order_id] and "buyer" not in shown[order_id]
        if header.stage != "cancelled":  # the name shows from UNSHIPPED on, when asked
            assert with_proceeds[order_id]["buyer"] == {
                "buyerName": emulator.account.orders[order_id].buyer}
    assert lines_by_order(pages) == {ids[name]: lines for name, lines in ordered.items()}


def prices_amazon(emulator: AmazonEmulator) -> dict[str, Decimal]:
    return {sku: listing.price for sku, listing in emulator.account.listings.items()}


class MangledAmazon(AmazonEmulator):
    """Answers searchOrders with a createdTime that is no ISO 8601 time and unit prices
    without an amount."""

    def handle(self, request: Request) -> Response:
        status, body, headers = super().handle(request)
        if request.path == ORDERS and status == 200 and isinstance(body, dict):
            for order in body["orders"]:
                order["createdTime"] = "31/12/2026 10:00"
                for item in order["orderItems"]:
                    item["product"].get("price", {}).get("unitPrice", {}).pop("amount", None)
        return status, body, headers


def test_amazon_malformed_header_fields_are_left_empty_and_the_lines_kept(clock: Clock) -> None:
    with amazon_emulator(clock, MangledAmazon) as emulator, \
            httpx.Client(base_url=emulator.url, timeout=10) as control:
        post(control, "/_sandbox/listings", {"sku": "MUG", "quantity": 50, "price": 12.5})
        post(control, "/_sandbox/listings", {"sku": "CUP", "quantity": 50})
        start = clock.now
        order_id = place(control, lines={"MUG": 2, "CUP": 1})
        post(control, f"/_sandbox/orders/{order_id}/status", {"status": "Unshipped"})
        clock.advance(30)
        connector = amazon_connector(emulator.url, clock)
        try:
            pages = amazon_pull(connector, start - timedelta(minutes=10))
        finally:
            connector.close()
    assert lines_by_order(pages) == {order_id: {"MUG": 2, "CUP": 1}}
    assert [b for page in pages for b in page.bad_records] == []
    [header] = headers_by_id(pages).values()
    assert (header.order_id, header.status, header.stage) == (order_id, "UNSHIPPED", "paid")
    assert (header.placed_at, header.total, header.currency) == (None, "", "")


def test_amazon_bad_records_keep_no_personal_data() -> None:
    item = {"orderItemId": "1", "quantityOrdered": 1,
            "product": {"asin": "B000000001",
                        "customization": {"customizedUrl": "https://example.com/ada"}},
            "fulfillment": {"packing": {"giftOption": {"giftMessage": "Ada Bianchi"}}}}
    raw = {"orderId": "111-0000001-0000001", "createdTime": "2026-03-01T09:00:00Z",
           "lastUpdatedTime": "2026-03-01T10:00:00Z",
           "buyer": {"buyerName": "Ada Bianchi", "buyerEmail": "ada@example.com"},
           "recipient": {"deliveryAddress": {"addressLine1": "1 Via Roma",
                                             "phone": "+39 06 000000", "postalCode": "00100"}},
           "fulfillment": {"fulfillmentStatus": "UNSHIPPED", "fulfilledBy": "MERCHANT"},
           "orderItems": [item]}
    lines, bad, _ = parse_amazon_order(raw)  # the item has no sellerSku
    _, refused, _ = parse_amazon_order({**raw, "fulfillment": {"fulfillmentStatus": "LOST"}})
    assert lines == [] and len(bad) == 1 and len(refused) == 1
    for record in [*bad, *refused]:
        assert_impersonal(record)
        assert "example.com/ada" not in json.dumps(record.raw)
