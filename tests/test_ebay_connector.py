"""The eBay connector against its emulator (ebaysdk speaks requests: no respx), and against a
stand-in that answers with eBay's documented example XML."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy.engine import Engine

from channelsync.config import parse_config
from channelsync.connector import PushItem
from channelsync.errors import PermanentChannelError, RetriableChannelError, ThrottledError
from channelsync.ledger.stock import StockRow
from channelsync.registry import load_connector
from channelsync.service.app import App
from channelsync.service.reports import stock_list
from connectors.ebay import EbayConnector, EbaySettings
from connectors.ebay.connector import parse_order
from connectors.ebay.emulator import EbayEmulator
from tests.ledger_helpers import check_invariants

TOKEN = "v^1.1#i^1#p^3#r^1#I^3#f^0#t^H4sIAAAAAAAAAOVZe2wUxxm3z2cbC5ynSqMoSo4LbQp0"
CERT_ID = "PRD-9f8e7d6c5b4a-3c2d-1e0f-9a8b-7c6d"
WRONG = "v^1.1#i^1#p^3#r^1#I^3#f^0#t^NOTTHETOKENNOTTHETOKEN"
SECRETS = (TOKEN, CERT_ID, WRONG)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def settings(token: str = TOKEN, **extra: Any) -> EbaySettings:
    options: dict[str, Any] = {"timeout": 5, **extra}
    return EbaySettings(token=SecretStr(token), app_id=SecretStr("Seller-App-PRD-0a1b2c3d4"),
                        dev_id=SecretStr("0a1b2c3d-dev"), cert_id=SecretStr(CERT_ID), **options)


def connector_for(url: str, clock: Callable[[], datetime], token: str = TOKEN,
                  **extra: Any) -> EbayConnector:
    return EbayConnector("ebay-test", settings(token, **extra), endpoint=url, clock=clock)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _emulator(clock: Clock, **kwargs: Any) -> Iterator[EbayEmulator]:
    emu = EbayEmulator(token=TOKEN, clock=clock, **kwargs)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def emulator(clock: Clock) -> Iterator[EbayEmulator]:
    yield from _emulator(clock)


@pytest.fixture
def control(emulator: EbayEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, timeout=5) as client:
        yield client


@pytest.fixture
def ebay(emulator: EbayEmulator, clock: Clock) -> EbayConnector:
    return connector_for(emulator.url, clock)


def listing(control: httpx.Client, sku: str, quantity: int, **extra: Any) -> None:
    response = control.post("/_sandbox/listings", json={"sku": sku, "quantity": quantity, **extra})
    assert response.status_code == 200, response.text


def rows(control: httpx.Client) -> dict[str, dict[str, Any]]:
    return {row["sku"]: row for row in control.get("/_sandbox/listings").json()["listings"]}


def order(control: httpx.Client, **lines: int) -> str:
    body = {"lines": [{"sku": sku, "quantity": n} for sku, n in lines.items()]}
    response = control.post("/_sandbox/orders", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["order_id"])


def calls(emulator: EbayEmulator, name: str) -> int:
    return int(emulator.stats()["requests"].get(name, 0))


def pull_all(ebay: EbayConnector, since: datetime) -> list[Any]:
    pages, token = [], None
    for _ in range(20):
        page = ebay.pull_orders(since, token)
        pages.append(page)
        token = page.next_page
        if token is None:
            return pages
    raise AssertionError("paging never ends")


# -- configuration ----------------------------------------------------------------------------


def test_registered_and_settings_need_exactly_one_token() -> None:
    assert load_connector("ebay") is EbayConnector
    with pytest.raises(ValidationError):
        EbaySettings(app_id=SecretStr("a"), dev_id=SecretStr("d"), cert_id=SecretStr("c"))
    with pytest.raises(ValidationError):
        settings(oauth_token=SecretStr("other"))
    with pytest.raises(ValidationError):
        settings(zero_policy="keep_one")
    assert settings().compatibility == "1349" and settings().zero_policy == "push"
    assert EbayConnector.capabilities.push_batch_size == 4


def test_oauth_token_is_accepted(emulator: EbayEmulator, clock: Clock,
                                 control: httpx.Client) -> None:
    listing(control, "MUG", 3)
    oauth = EbaySettings(oauth_token=SecretStr(TOKEN), app_id=SecretStr("a"),
                         dev_id=SecretStr("d"), cert_id=SecretStr("c"))
    ebay = EbayConnector("ebay-oauth", oauth, endpoint=emulator.url, clock=clock)
    assert [li.channel_sku for li in ebay.read_listings()] == ["MUG"]


# -- orders -----------------------------------------------------------------------------------


def test_states_map_to_reserve_commit_release(
    ebay: EbayConnector, control: httpx.Client, clock: Clock
) -> None:
    listing(control, "MUG", 20)
    paid, shipped, cancelled = (order(control, MUG=n) for n in (1, 2, 3))
    clock.advance(seconds=1)
    assert control.post(f"/_sandbox/orders/{shipped}/ship").status_code == 200
    assert control.post(f"/_sandbox/orders/{cancelled}/cancel").status_code == 200
    clock.advance(minutes=3)  # past the two minutes the connector leaves to settle
    [page] = pull_all(ebay, clock.now - timedelta(hours=1))
    by_order = {line.order_id: line for line in page.lines}
    assert (by_order[paid].status, by_order[paid].shipped, by_order[paid].cancelled) == (
        "paid", 0, 0)
    assert (by_order[shipped].status, by_order[shipped].shipped) == ("shipped", 2)
    assert (by_order[cancelled].status, by_order[cancelled].cancelled) == ("cancelled", 3)
    assert all(line.changed_at.tzinfo is not None for line in page.lines)
    assert page.resume_at == clock.now - timedelta(minutes=2)


def test_unpaid_and_malformed_orders() -> None:
    modified = datetime(2026, 11, 20, 10, 0, 0)  # ebaysdk's naive UTC datetime
    tx = {"OrderLineItemID": "110-0", "QuantityPurchased": "2", "Item": {"SKU": "MUG"}}
    unpaid = {"OrderID": "1", "LastModifiedTime": modified, "OrderStatus": "Active",
              "CheckoutStatus": {"Status": "Incomplete"}, "TransactionArray": {"Transaction": tx}}
    [line], bad = parse_order(unpaid)
    assert (line.status, line.ordered, line.shipped, line.cancelled, bad) == (
        "unpaid", 2, 0, 0, [])
    assert line.changed_at == modified.replace(tzinfo=UTC)
    cancel_only = {**unpaid, "CancelStatus": "CancelComplete"}
    assert parse_order(cancel_only)[0][0].cancelled == 2
    no_time = {k: v for k, v in unpaid.items() if k != "LastModifiedTime"}
    assert parse_order(no_time)[1][0].reason.startswith("order without a valid")
    no_sku = {**unpaid, "TransactionArray": {"Transaction": [tx, {**tx, "Item": {}}]}}
    lines, [bad_line] = parse_order(no_sku)
    assert len(lines) == 1 and bad_line.key == "1/110-0"
    assert parse_order("junk")[1][0].key == "?"


def test_windows_of_30_days_paging_and_the_90_day_clamp(
    ebay: EbayConnector, emulator: EbayEmulator, control: httpx.Client, clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    listing(control, "MUG", 500)
    clock.advance(days=-40)
    old = order(control, MUG=1)
    clock.advance(days=40)
    recent = [order(control, MUG=1) for _ in range(101)]
    clock.advance(minutes=3)
    caplog.set_level(logging.WARNING, logger="connectors")
    pages = pull_all(ebay, clock.now - timedelta(days=120))
    assert "90 days" in caplog.text
    assert len(pages) == 4  # window 1 (60 days old: empty), window 2 (old order), 2 pages
    assert [p.resume_at for p in pages[:-1]] == [None, None, None]
    assert pages[-1].resume_at == clock.now - timedelta(minutes=2)
    seen = [line.order_id for p in pages for line in p.lines]
    assert sorted(seen) == sorted([old, *recent])
    assert calls(emulator, "GetOrders") == 4
    empty = ebay.pull_orders(clock.now - timedelta(minutes=1), None)  # from after to
    assert (list(empty.lines), empty.next_page, empty.resume_at) == ([], None, None)
    assert calls(emulator, "GetOrders") == 4
    with pytest.raises(PermanentChannelError):
        ebay.pull_orders(clock.now, "not-a-token")


def test_variation_skus_in_orders_and_listings(
    ebay: EbayConnector, control: httpx.Client, clock: Clock
) -> None:
    listing(control, "TEE-S", 2, parent_sku="TEE")
    listing(control, "TEE-M", 5, parent_sku="TEE")
    listing(control, "MUG", 4)
    order_id = order(control, **{"TEE-M": 1})
    clock.advance(minutes=3)
    [line] = ebay.pull_orders(clock.now - timedelta(hours=1), None).lines
    assert (line.order_id, line.channel_sku, line.ordered) == (order_id, "TEE-M", 1)
    found = {li.channel_sku: li for li in ebay.read_listings()}
    item_id = rows(control)["TEE-M"]["item_id"]
    assert {sku: li.quantity for sku, li in found.items()} == {
        "TEE-S": 2, "TEE-M": 4, "MUG": 4}
    assert found["TEE-M"].ref == f"{item_id}/TEE-M"
    assert found["MUG"].ref == rows(control)["MUG"]["item_id"]
    [result] = ebay.push_quantities([PushItem("TEE-S", 7)])  # looked up by SKU
    assert result.ok and result.ref == f"{item_id}/TEE-S"
    assert rows(control)["TEE-S"]["quantity"] == 7


# -- pushing ----------------------------------------------------------------------------------


def test_five_items_go_out_in_two_calls(
    ebay: EbayConnector, emulator: EbayEmulator, control: httpx.Client
) -> None:
    for n in range(5):
        listing(control, f"SKU{n}", 1)
    refs = {li.channel_sku: li.ref for li in ebay.read_listings()}
    items = [PushItem(f"SKU{n}", 10 + n, refs[f"SKU{n}"]) for n in range(5)]
    results = ebay.push_quantities(items)
    assert [r.ok for r in results] == [True] * 5
    assert calls(emulator, "ReviseInventoryStatus") == 2
    assert {sku: row["quantity"] for sku, row in rows(control).items()} == {
        f"SKU{n}": 10 + n for n in range(5)}


def test_twelve_items_with_variations_of_one_item_go_out_in_three_calls(
    ebay: EbayConnector, emulator: EbayEmulator, control: httpx.Client
) -> None:
    """Variations of one item, items found by SKU and items with a ref share calls: the
    fewest, ceil(12 / 4), each carrying four."""
    skus = ["TEE-S", "MUG-0", "TEE-M", "A&B", *(f"MUG-{n}" for n in range(1, 9))]
    for sku in skus:
        listing(control, sku, 1, **({"parent_sku": "TEE"} if sku.startswith("TEE") else {}))
    refs = {li.channel_sku: li.ref for li in ebay.read_listings()}
    assert refs["TEE-S"].split("/")[0] == refs["TEE-M"].split("/")[0]  # one eBay item
    items = [PushItem(sku, 20 + n, "" if n % 3 else refs[sku]) for n, sku in enumerate(skus)]
    results = ebay.push_quantities(items)
    assert [r.ok for r in results] == [True] * 12
    assert calls(emulator, "ReviseInventoryStatus") == 3  # so four items in each
    assert {sku: row["quantity"] for sku, row in rows(control).items()} == {
        sku: 20 + n for n, sku in enumerate(skus)}


def test_partial_failure_reports_each_item(
    ebay: EbayConnector, emulator: EbayEmulator, control: httpx.Client
) -> None:
    for sku in ("A", "B", "C"):
        listing(control, sku, 1)
    refs = {li.channel_sku: li.ref for li in ebay.read_listings()}
    items = [PushItem("A", 5, refs["A"]), PushItem("GONE", 5, "110000009999"),
             PushItem("B", 6, refs["B"]), PushItem("C", 7, refs["C"])]
    results = ebay.push_quantities(items)
    assert [r.ok for r in results] == [True, False, True, True]
    assert isinstance(results[1].error, PermanentChannelError)
    assert "17" in str(results[1].error)
    assert {sku: row["quantity"] for sku, row in rows(control).items()} == {
        "A": 5, "B": 6, "C": 7}


def test_item_ids_are_cached_and_refreshed_on_error_17(
    ebay: EbayConnector, emulator: EbayEmulator, control: httpx.Client
) -> None:
    listing(control, "MUG", 1)
    assert ebay.push_quantities([PushItem("MUG", 2)])[0].ok
    assert ebay.push_quantities([PushItem("MUG", 3)])[0].ok
    assert calls(emulator, "GetMyeBaySelling") == 1  # looked up once
    ebay._refs["MUG"] = "110000009999"  # as if the listing had been relisted under a new id
    [result] = ebay.push_quantities([PushItem("MUG", 4)])
    assert result.ok and result.ref == rows(control)["MUG"]["item_id"]
    assert calls(emulator, "GetMyeBaySelling") == 2
    assert calls(emulator, "ReviseInventoryStatus") == 4  # the refused one retried once
    [unknown] = ebay.push_quantities([PushItem("NOSUCH", 1)])
    assert not unknown.ok and isinstance(unknown.error, PermanentChannelError)


@pytest.mark.parametrize("policy", ["push", "skip"])
def test_zero_without_out_of_stock_control(
    clock: Clock, policy: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="connectors")
    for emu in _emulator(clock, out_of_stock_control=False):
        with httpx.Client(base_url=emu.url) as control:
            listing(control, "MUG", 3)
            listing(control, "CUP", 3)
            ebay = connector_for(emu.url, clock, zero_policy=policy)
            results = ebay.push_quantities([PushItem("MUG", 0), PushItem("CUP", 0)])
            status = rows(control)["MUG"]["status"]
        if policy == "push":
            assert [r.ok for r in results] == [True, True] and status == "Ended"
            assert "ENDS" in caplog.text
        else:
            assert [r.ok for r in results] == [False, False] and status == "Active"
            assert isinstance(results[0].error, PermanentChannelError)
            assert "out-of-stock control" in str(results[0].error)
        assert caplog.text.count("no out-of-stock control") == 1  # warned once
        assert calls(emu, "GetUserPreferences") == 1  # asked once


def test_zero_with_out_of_stock_control_keeps_the_listing(
    ebay: EbayConnector, control: httpx.Client
) -> None:
    listing(control, "MUG", 3)
    assert ebay.push_quantities([PushItem("MUG", 0)])[0].ok
    assert rows(control)["MUG"]["status"] == "Active" and rows(control)["MUG"]["quantity"] == 0


# -- errors -----------------------------------------------------------------------------------


def test_throttling_is_throttled_error(ebay: EbayConnector, control: httpx.Client,
                                       clock: Clock) -> None:
    control.post("/_sandbox/faults", json={"throttle_rate": 1.0})
    with pytest.raises(ThrottledError, match="518"):
        ebay.pull_orders(clock.now - timedelta(hours=1), None)
    with pytest.raises(ThrottledError):
        ebay.push_quantities([PushItem("MUG", 1, "110000000001")])


def test_server_errors_html_and_xml_are_retriable(
    ebay: EbayConnector, control: httpx.Client, clock: Clock
) -> None:
    control.post("/_sandbox/faults", json={"error_rate": 1.0, "seed": 3})
    messages = set()
    for _ in range(8):  # an HTML 503 from the front end or an XML 500 (SystemError)
        with pytest.raises(RetriableChannelError) as caught:
            list(ebay.read_listings())
        assert not isinstance(caught.value, ThrottledError)
        assert caught.value.__cause__ is not None or caught.value.status == 500
        messages.add(str(caught.value).split(" (")[0])
    # The first call of a read (the out-of-stock preference) fails: HTML and XML both seen.
    assert "GetUserPreferences: malformed response" in messages
    assert any("eBay error 10007" in m for m in messages)


def test_refused_connection_is_retriable(clock: Clock) -> None:
    with HTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as server:
        port = server.server_address[1]
    ebay = connector_for(f"http://127.0.0.1:{port}", clock)
    with pytest.raises(RetriableChannelError) as caught:
        list(ebay.read_listings())
    assert caught.value.__cause__ is not None


def test_timeout_is_retriable(clock: Clock) -> None:
    with socket.socket() as silent:  # listens, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        ebay = connector_for(f"http://127.0.0.1:{port}", clock, timeout=0.3)
        with pytest.raises(RetriableChannelError, match="in time") as caught:
            list(ebay.read_listings())
    assert caught.value.__cause__ is not None


def test_bad_token_is_permanent_and_secrets_stay_hidden(
    emulator: EbayEmulator, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ebay = connector_for(emulator.url, clock, token=WRONG)
    errors: list[BaseException] = []
    for action in (lambda: ebay.pull_orders(clock.now - timedelta(hours=1), None),
                   lambda: list(ebay.read_listings()),
                   lambda: ebay.push_quantities([PushItem("MUG", 1, "110000000001")])):
        with pytest.raises(PermanentChannelError, match="931") as caught:
            action()
        errors.append(caught.value)
    texts = [repr(ebay), str(ebay), repr(settings()), caplog.text]
    for error in errors:
        texts += [str(error), repr(error), str(error.__cause__), repr(error.__cause__)]
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


# -- a stand-in answering with eBay's documented examples -------------------------------------

GET_ORDERS_EXAMPLE = """<?xml version="1.0" encoding="UTF-8"?>
<GetOrdersResponse xmlns="urn:ebay:apis:eBLBaseComponents">
  <Timestamp>2026-11-20T19:01:15.135Z</Timestamp>
  <Ack>Success</Ack>
  <Version>1349</Version>
  <Build>E1349_CORE_APIXO_19220561_R1</Build>
  <PaginationResult>
    <TotalNumberOfPages>1</TotalNumberOfPages>
    <TotalNumberOfEntries>2</TotalNumberOfEntries>
  </PaginationResult>
  <HasMoreOrders>false</HasMoreOrders>
  <OrderArray>
    <Order>
      <OrderID>05-07849-23351</OrderID>
      <OrderStatus>Completed</OrderStatus>
      <AdjustmentAmount currencyID="USD">0.0</AdjustmentAmount>
      <AmountPaid currencyID="USD">25.98</AmountPaid>
      <CheckoutStatus>
        <eBayPaymentStatus>NoPaymentFailure</eBayPaymentStatus>
        <LastModifiedTime>2026-11-19T22:43:13.000Z</LastModifiedTime>
        <PaymentMethod>CreditCard</PaymentMethod>
        <Status>Complete</Status>
        <IntegratedMerchantCreditCardEnabled>false</IntegratedMerchantCreditCardEnabled>
      </CheckoutStatus>
      <CreatedTime>2026-11-19T22:40:02.000Z</CreatedTime>
      <PaymentMethods>CreditCard</PaymentMethods>
      <SellerEmail>seller@example.com</SellerEmail>
      <Subtotal currencyID="USD">25.98</Subtotal>
      <Total currencyID="USD">25.98</Total>
      <TransactionArray>
        <Transaction>
          <Buyer><Email>buyer@example.com</Email></Buyer>
          <CreatedDate>2026-11-19T22:40:02.000Z</CreatedDate>
          <Item>
            <ItemID>110554468123</ItemID>
            <Site>US</Site>
            <Title>Stoneware Mug, 12 oz</Title>
            <SKU>MUG-12</SKU>
          </Item>
          <QuantityPurchased>2</QuantityPurchased>
          <Status><PaymentHoldStatus>None</PaymentHoldStatus></Status>
          <TransactionID>28019472001</TransactionID>
          <TransactionPrice currencyID="USD">12.99</TransactionPrice>
          <OrderLineItemID>110554468123-28019472001</OrderLineItemID>
        </Transaction>
      </TransactionArray>
      <BuyerUserID>buyer_one</BuyerUserID>
      <PaidTime>2026-11-19T22:43:13.000Z</PaidTime>
      <ShippedTime>2026-11-20T15:02:44.000Z</ShippedTime>
      <IntegratedMerchantCreditCardEnabled>false</IntegratedMerchantCreditCardEnabled>
      <EIASToken>nY+sHZ2PrBmdj6wVnY+sEZ2PrA2dj6wFk4GkCJKEpQqdj6x9nY+seQ==</EIASToken>
      <PaymentHoldStatus>None</PaymentHoldStatus>
      <IsMultiLegShipping>false</IsMultiLegShipping>
      <SellerUserID>seller_one</SellerUserID>
      <SellerEIASToken>nY+sHZ2PrBmdj6wVnY+sEZ2PrA2dj6wFk4GkCJKEpQqdj6x9nY+seQ==</SellerEIASToken>
      <CancelStatus>NotApplicable</CancelStatus>
      <ContainseBayPlusTransaction>false</ContainseBayPlusTransaction>
    </Order>
    <Order>
      <OrderID>26-07851-11022</OrderID>
      <OrderStatus>Active</OrderStatus>
      <CheckoutStatus>
        <eBayPaymentStatus>NoPaymentFailure</eBayPaymentStatus>
        <LastModifiedTime>2026-11-20T08:12:00.000Z</LastModifiedTime>
        <Status>Incomplete</Status>
      </CheckoutStatus>
      <CreatedTime>2026-11-20T08:12:00.000Z</CreatedTime>
      <TransactionArray>
        <Transaction>
          <Item>
            <ItemID>110554470001</ItemID>
            <Title>Cotton Tee</Title>
            <SKU>TEE</SKU>
          </Item>
          <QuantityPurchased>1</QuantityPurchased>
          <TransactionID>28019472777</TransactionID>
          <Variation>
            <SKU>TEE-M-BLUE</SKU>
            <VariationSpecifics>
              <NameValueList><Name>Size</Name><Value>M</Value></NameValueList>
            </VariationSpecifics>
            <VariationTitle>Cotton Tee[M]</VariationTitle>
          </Variation>
          <OrderLineItemID>110554470001-28019472777</OrderLineItemID>
        </Transaction>
      </TransactionArray>
      <CancelStatus>NotApplicable</CancelStatus>
    </Order>
  </OrderArray>
  <OrdersPerPage>100</OrdersPerPage>
  <PageNumber>1</PageNumber>
  <ReturnedOrderCountActual>2</ReturnedOrderCountActual>
</GetOrdersResponse>"""

REVISE_EXAMPLE = """<?xml version="1.0" encoding="UTF-8"?>
<ReviseInventoryStatusResponse xmlns="urn:ebay:apis:eBLBaseComponents">
  <Timestamp>2026-11-20T19:05:33.231Z</Timestamp>
  <Ack>PartialFailure</Ack>
  <Errors>
    <ShortMessage>Item not found.</ShortMessage>
    <LongMessage>The item ID 110554479999 is invalid, has been removed,
      or you are not the seller.</LongMessage>
    <ErrorCode>17</ErrorCode>
    <SeverityCode>Error</SeverityCode>
    <ErrorParameters ParamID="0">
      <Value>110554479999</Value>
    </ErrorParameters>
    <ErrorClassification>RequestError</ErrorClassification>
  </Errors>
  <Version>1349</Version>
  <Build>E1349_CORE_APISELLING_19187371_R1</Build>
  <InventoryStatus>
    <SKU>MUG-12</SKU>
    <ItemID>110554468123</ItemID>
    <StartPrice currencyID="USD">12.99</StartPrice>
    <Quantity>5</Quantity>
  </InventoryStatus>
  <InventoryStatus>
    <SKU>TEE-M-BLUE</SKU>
    <ItemID>110554470001</ItemID>
    <StartPrice currencyID="USD">19.5</StartPrice>
    <Quantity>3</Quantity>
  </InventoryStatus>
  <Fees>
    <ItemID>110554468123</ItemID>
    <Fee><Name>ListingFee</Name><Fee currencyID="USD">0.0</Fee></Fee>
  </Fees>
</ReviseInventoryStatusResponse>"""


class StandIn(BaseHTTPRequestHandler):
    answers: dict[str, tuple[int, str, str]] = {}

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        call = self.headers.get("X-EBAY-API-CALL-NAME", "")
        status, content_type, body = self.answers[call]
        payload = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def stand_in() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_documented_get_orders_example_is_read(stand_in: str) -> None:
    StandIn.answers = {"GetOrders": (200, "text/xml", GET_ORDERS_EXAMPLE)}
    now = datetime(2026, 11, 20, 19, 0, tzinfo=UTC)
    ebay = connector_for(stand_in, lambda: now)
    page = ebay.pull_orders(now - timedelta(days=2), None)
    assert page.bad_records == [] and page.next_page is None
    assert page.resume_at == now - timedelta(minutes=2)
    shipped, unpaid = page.lines
    assert (shipped.order_id, shipped.line_id, shipped.channel_sku, shipped.ordered,
            shipped.shipped, shipped.status) == (
        "05-07849-23351", "110554468123-28019472001", "MUG-12", 2, 2, "shipped")
    assert shipped.changed_at == datetime(2026, 11, 19, 22, 43, 13, tzinfo=UTC)
    assert (unpaid.channel_sku, unpaid.status, unpaid.shipped, unpaid.cancelled) == (
        "TEE-M-BLUE", "unpaid", 0, 0)


def test_documented_revise_inventory_status_example_is_read(stand_in: str) -> None:
    StandIn.answers = {
        "ReviseInventoryStatus": (200, "text/xml", REVISE_EXAMPLE),
        "GetUserPreferences": (200, "text/xml", PREFERENCES_EXAMPLE),
    }
    ebay = connector_for(stand_in, lambda: datetime.now(UTC))
    results = ebay.push_quantities([
        PushItem("MUG-12", 5, "110554468123"), PushItem("OLD", 0, "110554479999"),
        PushItem("TEE-M-BLUE", 3, "110554470001/TEE-M-BLUE")])
    assert [r.ok for r in results] == [True, False, True]
    assert isinstance(results[1].error, PermanentChannelError)


def test_html_503_from_a_stand_in_is_retriable(stand_in: str) -> None:
    page = "<html><head><title>503 Service Unavailable</title></head><body></body></html>"
    StandIn.answers = {"GetOrders": (503, "text/html", page)}
    ebay = connector_for(stand_in, lambda: datetime.now(UTC))
    with pytest.raises(RetriableChannelError, match="malformed response"):
        ebay.pull_orders(datetime.now(UTC) - timedelta(hours=1), None)


PREFERENCES_EXAMPLE = """<?xml version="1.0" encoding="UTF-8"?>
<GetUserPreferencesResponse xmlns="urn:ebay:apis:eBLBaseComponents">
  <Timestamp>2026-11-20T19:04:10.100Z</Timestamp>
  <Ack>Success</Ack>
  <Version>1349</Version>
  <Build>E1349_CORE_APISELLING_19187371_R1</Build>
  <OutOfStockControlPreference>true</OutOfStockControlPreference>
</GetUserPreferencesResponse>"""


def test_out_of_stock_control_is_checked_when_listings_are_first_read(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="connectors")
    for emu in _emulator(clock, out_of_stock_control=False):
        with httpx.Client(base_url=emu.url) as control:
            listing(control, "MUG", 3)
            ebay = connector_for(emu.url, clock)
            assert [item.channel_sku for item in ebay.read_listings()] == ["MUG"]
            stats = control.get("/_sandbox/stats").json()["requests"]
        assert stats.get("GetUserPreferences") == 1
        assert "a listing pushed to 0 ENDS" in caplog.text  # before any push


# -- faulty pages from the emulator, through the engine ----------------------------------------

APP_CONFIG = f"""
[[channel]]
name = "ebay"
type = "ebay"
endpoint = "{{url}}"
token = "{TOKEN}"
app_id = "app"
dev_id = "dev"
cert_id = "cert"
order_lag = 0  # the emulator shows orders at once; a test cannot wait eBay's two minutes
"""


def held_stock(engine: Engine) -> dict[str, tuple[int, int]]:
    with engine.connect() as conn:
        return {row["sku"]: (row["on_hand"], row["reserved"]) for row in stock_list(conn)}


def implied_stock(ebay: EbayEmulator, counted: dict[str, int]) -> dict[str, tuple[int, int]]:
    """sku -> (on hand, reserved) the orders eBay holds imply after the count."""
    on_hand, reserved = dict(counted), dict.fromkeys(counted, 0)
    for row in httpx.get(f"{ebay.url}/_sandbox/orders").json()["orders"]:
        for x in row["lines"]:
            reserved[x["sku"]] += x["quantity"] - x["shipped"] - x["cancelled"]
            on_hand[x["sku"]] += x["restocked"] - x["shipped"]
    return {sku: (on_hand[sku], reserved[sku]) for sku in counted}


def test_duplicated_and_shuffled_order_pages_lose_and_double_nothing(engine: Engine) -> None:
    counted = {"MUG": 30, "TEE-M": 30}
    with EbayEmulator(token=TOKEN) as ebay:
        listing_at = f"{ebay.url}/_sandbox/listings"
        httpx.post(listing_at, json={"sku": "MUG", "quantity": 0}).raise_for_status()
        httpx.post(listing_at, json={"sku": "TEE-M", "quantity": 0, "parent_sku": "TEE"}
                   ).raise_for_status()

        def sell(**lines: int) -> str:
            answer = httpx.post(f"{ebay.url}/_sandbox/orders", json={"lines": [
                {"sku": sku, "quantity": n} for sku, n in lines.items()]})
            answer.raise_for_status()
            return str(answer.json()["order_id"])

        def act(order_id: str, action: str) -> None:
            httpx.post(f"{ebay.url}/_sandbox/orders/{order_id}/{action}").raise_for_status()

        app = App(parse_config(APP_CONFIG.format(url=ebay.url), env={}))
        app.__dict__["db"] = engine
        try:
            app.set_stock([StockRow(sku, n) for sku, n in counted.items()], reason="count")
            app.engine.sync()
            ids = [sell(MUG=2), sell(**{"TEE-M": 1}), sell(MUG=1, **{"TEE-M": 2}), sell(MUG=3)]
            act(ids[1], "cancel")
            act(ids[2], "ship")
            httpx.post(f"{ebay.url}/_sandbox/faults",
                       json={"duplicate_rate": 0.5, "reorder_rate": 1.0, "seed": 11})
            app.engine.sync()
            act(ids[0], "cancel")
            act(ids[3], "ship")
            sell(**{"TEE-M": 2})
            app.engine.sync()
            assert held_stock(engine) == implied_stock(ebay, counted)
            check_invariants(engine)
        finally:
            app.close()


def test_an_ebay_clock_ahead_of_ours_does_not_hide_its_newest_orders(
    control: httpx.Client, clock: Clock, emulator: EbayEmulator
) -> None:
    """GetOrders asks up to "now - order_lag": on eBay's clock, as its answers show it. On
    ours, an eBay 45 s ahead would keep every order of the last 45 s out of the window."""
    ebay = connector_for(emulator.url, clock, order_lag=0)
    control.post("/_sandbox/faults", json={"clock_skew": 45})
    listing(control, "MUG", 5)
    since = clock() - timedelta(minutes=5)
    first = ebay.pull_orders(since, None)  # learns eBay's clock from the answer
    assert first.channel_now == clock() + timedelta(seconds=45)
    clock.advance(seconds=1)
    placed = order(control, MUG=1)
    clock.advance(seconds=1)
    page = ebay.pull_orders(since, None)
    assert {line.order_id for line in page.lines} == {placed}
    ebay.close()
