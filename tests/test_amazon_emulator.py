"""The Amazon emulator, driven by the real python-amazon-sp-api library over loopback.

Raw answers (fetched with httpx and a token from the emulator's LWA) are validated against
Amazon's own OpenAPI models and JSON schemas in tests/reference/amazon-sp-api/.
"""

from __future__ import annotations

import gzip
import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import httpx
import jsonschema  # type: ignore[import-untyped]
import pytest
import sp_api.auth.access_token_client as lwa_cache  # type: ignore[import-untyped]
from pydantic import SecretStr
from sp_api.api import Feeds, ListingsItems, Orders  # type: ignore[import-untyped]
from sp_api.auth import AccessTokenClient
from sp_api.auth.exceptions import AuthorizationError  # type: ignore[import-untyped]
from sp_api.base import ApiResponse  # type: ignore[import-untyped]
from sp_api.base.exceptions import (  # type: ignore[import-untyped]
    SellingApiBadRequestException,
    SellingApiException,
    SellingApiForbiddenException,
    SellingApiNotFoundException,
    SellingApiRequestThrottledException,
    SellingApiServerException,
)

from connectors.amazon.emulator import UNLIMITED_RATE, AmazonEmulator
from connectors.amazon.emulator.feeds import message_errors, parse_feed

REFERENCE = Path(__file__).parent / "reference" / "amazon-sp-api"
US = "ATVPDKIKX0DER"
SELLER = "A2EMULATORSELLER"
NO_LIMIT = f"{UNLIMITED_RATE:g}"  # what the rate header states with rate limits off
CREDENTIALS = {"refresh_token": "Atzr|IwEBtest-refresh-token",
               "lwa_app_id": "amzn1.application-oa2-client.0123456789abcdef",
               "lwa_client_secret": "amzn1.oa2-cs.v1.0123456789abcdef"}
LONG_AGO = "2026-11-25T00:00:00Z"
FA = "/attributes/fulfillment_availability"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 26, 4, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass(frozen=True)
class Marketplace:
    """What the library needs of a marketplace: the emulator's URL as the endpoint."""

    endpoint: str
    marketplace_id: str = US
    region: str = "us-east-1"


def lwa_client_for(url: str) -> type[Any]:
    """The library's token client, moved to the emulator's LWA endpoint."""
    attrs = {"scheme": "http://", "host": urlsplit(url).netloc, "path": "/auth/o2/token"}
    return type("EmulatorLwa", (AccessTokenClient,), attrs)


@pytest.fixture(autouse=True)
def _library_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The library caches tokens per refresh token, module-wide: never across tests."""
    monkeypatch.delenv("SP_API_DEFAULT_MARKETPLACE", raising=False)
    lwa_cache.cache.clear()
    lwa_cache.grantless_cache.clear()
    yield
    lwa_cache.cache.clear()
    lwa_cache.grantless_cache.clear()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def start(clock: Clock) -> Iterator[Callable[..., AmazonEmulator]]:
    """Start emulators (fake clock, no rate limits unless asked); stop them afterwards."""
    started: list[AmazonEmulator] = []

    def make(**options: Any) -> AmazonEmulator:
        settings: dict[str, Any] = {"seller_id": SELLER, "rate_limits": False, "clock": clock,
                                    "seed": 7, **options}
        emulator = AmazonEmulator(**settings)
        emulator.start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


@pytest.fixture
def emulator(start: Callable[..., AmazonEmulator]) -> AmazonEmulator:
    return start()


_OPEN: list[Any] = []  # library clients, closed after each test


def client(cls: Any, emulator: AmazonEmulator, **options: Any) -> Any:
    made = cls(marketplace=Marketplace(emulator.url), credentials=dict(CREDENTIALS),
               auth_token_client_class=lwa_client_for(emulator.url), timeout=5, **options)
    _OPEN.append(made)
    return made


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        made = _OPEN.pop()
        made.close()
        made._auth._transport.close()  # the library never closes its token client's httpx


@pytest.fixture
def control(emulator: AmazonEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, timeout=5) as http:
        yield http


def raw_client(emulator: AmazonEmulator) -> httpx.Client:
    """Plain httpx with a token from the emulator's LWA: to see answers exactly as sent."""
    form = {"grant_type": "refresh_token", "refresh_token": CREDENTIALS["refresh_token"],
            "client_id": CREDENTIALS["lwa_app_id"],
            "client_secret": CREDENTIALS["lwa_client_secret"]}
    token = httpx.post(f"{emulator.url}/auth/o2/token", data=form).json()["access_token"]
    return httpx.Client(base_url=emulator.url, headers={"x-amz-access-token": token}, timeout=5)


@pytest.fixture
def raw(emulator: AmazonEmulator) -> Iterator[httpx.Client]:
    with raw_client(emulator) as http:
        yield http


def listing(control: httpx.Client, sku: str, quantity: int, **extra: Any) -> None:
    response = control.post("/_sandbox/listings", json={"sku": sku, "quantity": quantity,
                                                          **extra})
    assert response.status_code == 200, response.text


def order(control: httpx.Client, **lines: int) -> str:
    body = {"lines": [{"sku": sku, "quantity": n} for sku, n in lines.items()]}
    response = control.post("/_sandbox/orders", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["order_id"])


def quantities(control: httpx.Client) -> dict[str, int]:
    return {r["sku"]: r["quantity"] for r in control.get("/_sandbox/listings").json()["listings"]}


def search(orders: Any, **params: Any) -> ApiResponse:
    query = {"lastUpdatedAfter": LONG_AGO, "marketplaceIds": [US],
             "includedData": ["FULFILLMENT"], **params}
    return orders.search_orders(**query)


def fa_patch(quantity: Any, op: str = "merge", **fields: Any) -> dict[str, Any]:
    value = [{"fulfillment_channel_code": "DEFAULT", "quantity": quantity, **fields}]
    return {"productType": "PRODUCT", "patches": [{"op": op, "path": FA, "value": value}]}


# -- Amazon's models ---------------------------------------------------------------------------


@cache
def _reference(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((REFERENCE / name).read_text())
    return loaded


def _closed(node: Any) -> Any:
    """Swagger objects without `additionalProperties` accept any key: close them, so that a
    misspelt or invented field name fails the check."""
    if isinstance(node, list):
        return [_closed(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _closed(v) for k, v in node.items()}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def assert_model(body: Any, model: str, definition: str) -> None:
    """`body` is a valid `definition` of the Swagger 2.0 model `model` (fields closed)."""
    definitions = _closed(_reference(model)["definitions"])
    schema = {"$ref": f"#/definitions/{definition}", "definitions": definitions}
    validator = jsonschema.Draft4Validator(schema,
                                           format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
    assert not errors, errors[:5]


def assert_json_schema(document: Any, name: str) -> None:
    validator = jsonschema.Draft7Validator(_reference(name))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
    assert not errors, errors[:5]


# -- authentication ----------------------------------------------------------------------------


def test_lwa_issues_tokens_and_every_call_needs_one(emulator: AmazonEmulator,
                                                   clock: Clock) -> None:
    form = {"grant_type": "refresh_token", "refresh_token": CREDENTIALS["refresh_token"],
            "client_id": CREDENTIALS["lwa_app_id"], "client_secret": ""}
    refused = httpx.post(f"{emulator.url}/auth/o2/token", data=form)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_client"
    form["client_secret"] = CREDENTIALS["lwa_client_secret"]
    issued = httpx.post(f"{emulator.url}/auth/o2/token", data=form).json()
    assert issued["access_token"].startswith("Atza|") and issued["token_type"] == "bearer"
    assert issued["expires_in"] == 3600 and issued["refresh_token"] == form["refresh_token"]
    path = f"/listings/2021-08-01/items/{SELLER}"
    anonymous = httpx.get(emulator.url + path, params={"marketplaceIds": US})
    assert anonymous.status_code == 403
    assert anonymous.json()["errors"][0]["code"] == "Unauthorized"
    assert anonymous.json()["errors"][0]["message"] == "Access to requested resource is denied."
    assert_model(anonymous.json(), "listingsItems_2021-08-01.json", "ErrorList")
    headers = {"x-amz-access-token": issued["access_token"]}
    assert httpx.get(emulator.url + path, params={"marketplaceIds": US},
                     headers=headers).status_code == 200
    clock.advance(3601)
    expired = httpx.get(emulator.url + path, params={"marketplaceIds": US}, headers=headers)
    assert expired.status_code == 403 and "expired" in expired.json()["errors"][0]["details"]


def test_for_settings_accepts_exactly_the_configured_credentials(clock: Clock) -> None:
    settings = SimpleNamespace(
        refresh_token=SecretStr(CREDENTIALS["refresh_token"]), seller_id=SELLER,
        lwa_app_id=SecretStr(CREDENTIALS["lwa_app_id"]), marketplace="DE",
        lwa_client_secret=SecretStr(CREDENTIALS["lwa_client_secret"]))
    emulator = AmazonEmulator.for_settings(settings)
    assert emulator.market.marketplace_id == "A1PA6795UKMFR9" and emulator.seller_id == SELLER
    with emulator:
        market = Marketplace(emulator.url, "A1PA6795UKMFR9", "eu-west-1")
        good = ListingsItems(marketplace=market, credentials=dict(CREDENTIALS), timeout=5,
                             auth_token_client_class=lwa_client_for(emulator.url))
        _OPEN.append(good)
        assert good.search_listings_items(SELLER).payload["numberOfResults"] == 0
        lwa_cache.cache.clear()
        wrong = {**CREDENTIALS, "lwa_client_secret": "amzn1.oa2-cs.v1.other"}
        bad = ListingsItems(marketplace=market, credentials=wrong, timeout=5,
                            auth_token_client_class=lwa_client_for(emulator.url))
        _OPEN.append(bad)
        with pytest.raises(AuthorizationError) as refused:
            bad.search_listings_items(SELLER)
        assert refused.value.error_code == "invalid_client"
        with pytest.raises(SellingApiForbiddenException):  # another seller's listings
            good.search_listings_items("A3OTHERSELLER")


# -- orders ------------------------------------------------------------------------------------


def test_search_orders_answers_the_2026_model(
    emulator: AmazonEmulator, control: httpx.Client, raw: httpx.Client, clock: Clock
) -> None:
    listing(control, "MUG", 5)
    listing(control, "CUP", 5)
    first = order(control, MUG=2, CUP=1)
    clock.advance(1)
    second = order(control, MUG=1)
    control.post(f"/_sandbox/orders/{second}/cancel")
    assert quantities(control) == {"CUP": 4, "MUG": 3}  # taken at order time; cancel gives back
    datasets = "FULFILLMENT,CANCELLATION,PROCEEDS,BUYER"
    answer = raw.get("/orders/2026-01-01/orders", params={
        "lastUpdatedAfter": LONG_AGO, "marketplaceIds": US, "includedData": datasets})
    assert answer.status_code == 200 and answer.headers["x-amzn-RateLimit-Limit"] == NO_LIMIT
    assert_model(answer.json(), "orders_2026-01-01.json", "SearchOrdersResponse")
    orders = {o["orderId"]: o for o in answer.json()["orders"]}
    assert orders[first]["fulfillment"] == {"fulfillmentStatus": "PENDING",
                                            "fulfilledBy": "MERCHANT",
                                            "fulfillmentServiceLevel": "STANDARD"}
    items = {i["product"]["sellerSku"]: i for i in orders[first]["orderItems"]}
    assert items["MUG"]["quantityOrdered"] == 2
    assert items["MUG"]["fulfillment"] == {"quantityFulfilled": 0, "quantityUnfulfilled": 2}
    assert orders[second]["fulfillment"]["fulfillmentStatus"] == "CANCELLED"
    assert "cancellation" in orders[second]["orderItems"][0]
    bare = raw.get("/orders/2026-01-01/orders", params={"lastUpdatedAfter": LONG_AGO}).json()
    assert all("fulfillment" not in o for o in bare["orders"])  # datasets only when asked
    one = raw.get(f"/orders/2026-01-01/orders/{first}", params={"includedData": "FULFILLMENT"})
    assert_model(one.json(), "orders_2026-01-01.json", "GetOrderResponse")
    library = search(client(Orders, emulator, version="2026-01-01"))
    assert sorted(o["orderId"] for o in library.orders) == sorted([first, second])
    assert library.headers["x-amzn-RateLimit-Limit"] == NO_LIMIT


def test_search_orders_parameters_are_checked(emulator: AmazonEmulator, clock: Clock) -> None:
    orders = client(Orders, emulator, version="2026-01-01")
    too_recent = (clock.now - timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with pytest.raises(SellingApiBadRequestException) as refused:
        search(orders, lastUpdatedBefore=too_recent)
    assert refused.value.amzn_code == "InvalidInput" and "two minutes" in refused.value.message
    old_enough = (clock.now - timedelta(seconds=121)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert search(orders, lastUpdatedBefore=old_enough).payload["lastUpdatedBefore"] == (
        old_enough)
    for bad in ({"createdAfter": LONG_AGO}, {"lastUpdatedAfter": None},
                {"lastUpdatedAfter": "2026-11-25 00:00:00+00:00"}, {"fulfilledBy": ["FBA"]},
                {"maxResultsPerPage": 101}, {"paginationToken": "forged"}):
        query = {k: v for k, v in {"lastUpdatedAfter": LONG_AGO, **bad}.items() if v}
        with pytest.raises(SellingApiBadRequestException):
            orders.search_orders(**query)


def test_orders_show_up_only_after_the_visibility_lag(
    start: Callable[..., AmazonEmulator], clock: Clock
) -> None:
    emulator = start(visibility_lag=120)
    with httpx.Client(base_url=emulator.url) as control:
        listing(control, "MUG", 5)
        order_id = order(control, MUG=2)
        assert quantities(control) == {"MUG": 3}  # Amazon's stock drops at once
        orders = client(Orders, emulator, version="2026-01-01")
        hidden = search(orders)
        assert hidden.orders == []
        assert hidden.payload["lastUpdatedBefore"] == "2026-11-26T03:58:00Z"
        with pytest.raises(SellingApiNotFoundException):
            orders.get_order(order_id)
        clock.advance(121)
        shown = search(orders).orders
        assert [o["fulfillment"]["fulfillmentStatus"] for o in shown] == ["PENDING"]
        control.post(f"/_sandbox/orders/{order_id}/ship")
        stale = search(orders).orders  # the old version until the change is visible
        assert [o["fulfillment"]["fulfillmentStatus"] for o in stale] == ["PENDING"]
        clock.advance(121)
        fresh = search(orders).orders
        assert [o["fulfillment"]["fulfillmentStatus"] for o in fresh] == ["SHIPPED"]
        assert fresh[0]["lastUpdatedTime"] == "2026-11-26T04:02:01Z"


def test_pagination_tokens_need_identical_parameters(
    emulator: AmazonEmulator, control: httpx.Client, clock: Clock
) -> None:
    listing(control, "MUG", 50)
    placed = []
    for _ in range(5):
        placed.append(order(control, MUG=1))
        clock.advance(1)
    orders = client(Orders, emulator, version="2026-01-01")
    first = search(orders, maxResultsPerPage=2, fulfilledBy=["MERCHANT"])
    assert len(first.orders) == 2 and first.next_token
    clock.advance(1)
    late = order(control, MUG=1)  # after the first page: not in its snapshot
    for changed in ({"fulfilledBy": ["AMAZON"]}, {"lastUpdatedAfter": "2026-11-25T00:00:01Z"},
                    {"marketplaceIds": [US, "A2EUQ1WTGCTBG2"]}):
        with pytest.raises(SellingApiBadRequestException) as refused:
            search(orders, **{"maxResultsPerPage": 2, "fulfilledBy": ["MERCHANT"],
                              "paginationToken": first.next_token, **changed})
        assert "identical" in refused.value.message
    rest = search(orders, maxResultsPerPage=3, fulfilledBy=["MERCHANT"], includedData=[],
                  paginationToken=first.next_token)  # page size and datasets may change
    again = search(orders, maxResultsPerPage=3, fulfilledBy=["MERCHANT"],
                   paginationToken=first.next_token)  # a token can be retried
    assert [o["orderId"] for o in rest.orders] == [o["orderId"] for o in again.orders]
    assert rest.next_token is None
    assert [o["orderId"] for o in first.orders + rest.orders] == placed
    assert late in [o["orderId"] for o in search(orders).orders]


def test_fulfilled_by_separates_merchant_and_fba_orders(
    emulator: AmazonEmulator, control: httpx.Client
) -> None:
    listing(control, "MUG", 5)
    listing(control, "FBA-MUG", 5, fulfillment="AFN")
    mfn, afn = order(control, MUG=1), order(control, **{"FBA-MUG": 2})
    assert quantities(control) == {"FBA-MUG": 3, "MUG": 4}
    mixed = control.post("/_sandbox/orders", json={"lines": [{"sku": "MUG", "quantity": 1},
                                                             {"sku": "FBA-MUG", "quantity": 1}]})
    assert mixed.status_code == 400
    orders = client(Orders, emulator, version="2026-01-01")

    def ids(**params: Any) -> list[str]:
        return [o["orderId"] for o in search(orders, **params).orders]

    assert ids(fulfilledBy=["MERCHANT"]) == [mfn]
    assert ids(fulfilledBy=["AMAZON"]) == [afn]
    assert sorted(ids(fulfilledBy=["MERCHANT", "AMAZON"])) == sorted([mfn, afn])
    assert search(orders, fulfilledBy=["AMAZON"]).orders[0]["fulfillment"]["fulfilledBy"] == (
        "AMAZON")
    v0 = client(Orders, emulator)
    picked = v0.get_orders(LastUpdatedAfter=LONG_AGO, FulfillmentChannels=["AFN"]).Orders
    assert [(o["AmazonOrderId"], o["FulfillmentChannel"]) for o in picked] == [(afn, "AFN")]


def test_partial_shipments_cancel_and_overselling(
    emulator: AmazonEmulator, control: httpx.Client
) -> None:
    listing(control, "MUG", 5)
    listing(control, "CUP", 5)
    refused = control.post("/_sandbox/orders", json={"lines": [{"sku": "MUG", "quantity": 6}]})
    assert refused.status_code == 409 and quantities(control) == {"CUP": 5, "MUG": 5}
    order_id = order(control, MUG=2, CUP=1)
    status = f"/_sandbox/orders/{order_id}/status"
    assert control.post(status, json={"status": "Unshipped"}).json()["status"] == "Unshipped"
    partial = control.post(status, json={"status": "PartiallyShipped", "shipped": {"MUG": 1}})
    assert partial.json()["shipped"] == {"MUG": 1, "CUP": 0}
    assert control.post(status, json={"status": "Shipped", "shipped": {"MUG": 3}}
                        ).status_code == 400
    shown = search(client(Orders, emulator, version="2026-01-01")).orders[0]
    assert shown["fulfillment"]["fulfillmentStatus"] == "PARTIALLY_SHIPPED"
    items = {i["product"]["sellerSku"]: i["fulfillment"] for i in shown["orderItems"]}
    assert items == {"MUG": {"quantityFulfilled": 1, "quantityUnfulfilled": 1},
                     "CUP": {"quantityFulfilled": 0, "quantityUnfulfilled": 1}}
    assert control.post(f"/_sandbox/orders/{order_id}/cancel").status_code == 409
    assert control.post(status, json={"status": "Shipped"}).json()["shipped"] == {
        "MUG": 2, "CUP": 1}
    assert quantities(control) == {"CUP": 4, "MUG": 3}
    pending = order(control, MUG=3)
    assert control.post(f"/_sandbox/orders/{pending}/cancel").json()["status"] == "Canceled"
    assert quantities(control) == {"CUP": 4, "MUG": 3}
    assert control.post(f"/_sandbox/orders/{pending}/ship").status_code == 409
    assert control.post("/_sandbox/orders/111-0000000-0000000/ship").status_code == 404


def test_orders_v0_pages_and_items(
    emulator: AmazonEmulator, control: httpx.Client, raw: httpx.Client, clock: Clock
) -> None:
    listing(control, "MUG", 5)
    first = order(control, MUG=2)
    clock.advance(1)
    second = order(control, MUG=1)
    control.post(f"/_sandbox/orders/{first}/status", json={"status": "Unshipped"})
    control.post(f"/_sandbox/orders/{second}/cancel")
    page = raw.get("/orders/v0/orders", params={"LastUpdatedAfter": LONG_AGO,
                                                "MarketplaceIds": US, "MaxResultsPerPage": 1})
    assert_model(page.json(), "ordersV0.json", "GetOrdersResponse")
    items = raw.get(f"/orders/v0/orders/{first}/orderItems")
    assert_model(items.json(), "ordersV0.json", "GetOrderItemsResponse")
    assert items.headers["x-amzn-RateLimit-Limit"] == NO_LIMIT
    v0 = client(Orders, emulator)
    one = v0.get_orders(LastUpdatedAfter=LONG_AGO, MaxResultsPerPage=1)
    assert [o["OrderStatus"] for o in one.Orders] == ["Unshipped"] and one.next_token
    two = v0.get_orders(NextToken=one.next_token, MaxResultsPerPage=1)
    assert [(o["AmazonOrderId"], o["OrderStatus"]) for o in two.Orders] == [
        (second, "Canceled")]
    assert two.next_token is None and "LastUpdatedBefore" in two.payload
    lines = v0.get_order_items(first).OrderItems
    assert [(i["SellerSKU"], i["QuantityOrdered"], i["QuantityShipped"]) for i in lines] == [
        ("MUG", 2, 0)]
    assert v0.get_order_items(second).OrderItems[0]["QuantityOrdered"] == 0  # as v0 shows it
    with pytest.raises(SellingApiBadRequestException):
        v0.get_orders(MarketplaceIds=[US])  # neither CreatedAfter nor LastUpdatedAfter


# -- listings ----------------------------------------------------------------------------------


def test_get_listings_item_answers_the_model(
    emulator: AmazonEmulator, control: httpx.Client, raw: httpx.Client
) -> None:
    listing(control, "MUG", 5, title="Mug", price=12.5)
    listing(control, "FBA-MUG", 7, fulfillment="AFN")
    data = "summaries,attributes,issues,offers,fulfillmentAvailability,productTypes"
    path = f"/listings/2021-08-01/items/{SELLER}"
    for sku, code in (("MUG", "DEFAULT"), ("FBA-MUG", "AMAZON_NA")):
        answer = raw.get(f"{path}/{sku}", params={"marketplaceIds": US, "includedData": data})
        assert answer.status_code == 200 and answer.headers["x-amzn-RateLimit-Limit"] == NO_LIMIT
        assert_model(answer.json(), "listingsItems_2021-08-01.json", "Item")
        assert answer.json()["fulfillmentAvailability"][0]["fulfillmentChannelCode"] == code
    items = client(ListingsItems, emulator)
    mug = items.get_listings_item(SELLER, "MUG", includedData=[
        "summaries", "attributes", "fulfillmentAvailability", "offers"]).payload
    assert mug["fulfillmentAvailability"] == [{"fulfillmentChannelCode": "DEFAULT", "quantity": 5}]
    assert mug["offers"][0]["price"] == {"currencyCode": "USD", "amount": "12.50"}
    assert mug["summaries"][0]["itemName"] == "Mug"
    assert mug["attributes"]["fulfillment_availability"][0]["lead_time_to_ship_max_days"] == 2
    assert list(items.get_listings_item(SELLER, "MUG").payload) == ["sku", "summaries"]
    with pytest.raises(SellingApiNotFoundException) as missing:
        items.get_listings_item(SELLER, "NOPE")
    assert missing.value.amzn_code == "NOT_FOUND"


def test_merge_keeps_sibling_fields_and_replace_drops_them(
    emulator: AmazonEmulator, control: httpx.Client, raw: httpx.Client
) -> None:
    listing(control, "MUG", 5, lead_time_to_ship_max_days=3)
    items = client(ListingsItems, emulator)
    merged = items.patch_listings_item(SELLER, "MUG", body=fa_patch(9))
    assert merged.payload["status"] == "ACCEPTED" and merged.payload["issues"] == []
    row = control.get("/_sandbox/listings").json()["listings"][0]
    assert (row["quantity"], row["lead_time_to_ship_max_days"]) == (9, 3)
    answer = raw.patch(f"/listings/2021-08-01/items/{SELLER}/MUG",
                       params={"marketplaceIds": US}, json=fa_patch(4, op="replace"))
    assert_model(answer.json(), "listingsItems_2021-08-01.json", "ListingsItemSubmissionResponse")
    row = control.get("/_sandbox/listings").json()["listings"][0]
    assert row["quantity"] == 4 and "lead_time_to_ship_max_days" not in row
    preview = items.patch_listings_item(SELLER, "MUG", body=fa_patch(1),
                                        mode="VALIDATION_PREVIEW")
    assert preview.payload["status"] == "VALID" and quantities(control) == {"MUG": 4}
    deleted = items.patch_listings_item(SELLER, "MUG", body={
        "productType": "PRODUCT", "patches": [{"op": "delete", "path": FA}]})
    assert deleted.payload["status"] == "ACCEPTED" and quantities(control) == {"MUG": 0}
    assert emulator.stats()["items_updated"] == 3


@pytest.mark.parametrize(("sku", "body", "words"), [
    ("MUG", fa_patch(-1), "quantity -1"),
    ("MUG", fa_patch(2.5), "whole number"),
    ("MUG", fa_patch("7"), "whole number"),
    ("MUG", fa_patch(None, op="replace"), "required"),
    ("NOPE", fa_patch(1), "NOPE"),
    ("FBA-MUG", fa_patch(1), "fulfilled by Amazon"),
    ("MUG", {"productType": "PRODUCT", "patches": [{"op": "merge", "path": FA, "value": [
        {"fulfillment_channel_code": "AMAZON_NA", "quantity": 1}]}]}, "AMAZON_NA"),
    ("MUG", {"productType": "PRODUCT", "patches": [{"op": "replace", "path": FA + "/0/quantity",
                                                    "value": [{"q": 1}]}]}, "nested"),
])
def test_an_invalid_patch_is_http_200_with_status_invalid(
    emulator: AmazonEmulator, control: httpx.Client, raw: httpx.Client, sku: str,
    body: dict[str, Any], words: str
) -> None:
    listing(control, "MUG", 5)
    listing(control, "FBA-MUG", 5, fulfillment="AFN")
    answer = raw.patch(f"/listings/2021-08-01/items/{SELLER}/{sku}",
                       params={"marketplaceIds": US}, json=body)
    assert answer.status_code == 200
    assert_model(answer.json(), "listingsItems_2021-08-01.json", "ListingsItemSubmissionResponse")
    library = client(ListingsItems, emulator).patch_listings_item(SELLER, sku, body=body)
    assert library.payload["status"] == "INVALID"  # no exception: the caller must look
    assert words in " ".join(i["message"] for i in library.payload["issues"])
    assert quantities(control) == {"FBA-MUG": 5, "MUG": 5}
    assert emulator.stats()["items_updated"] == 0


def test_a_malformed_patch_body_is_a_400(emulator: AmazonEmulator) -> None:
    items = client(ListingsItems, emulator)
    for body in ({"patches": fa_patch(1)["patches"]}, {"productType": "PRODUCT", "patches": []},
                 {"productType": "PRODUCT", "patches": [{"op": "move", "path": FA}]}):
        with pytest.raises(SellingApiBadRequestException):
            items.patch_listings_item(SELLER, "MUG", body=body)


def test_search_listings_items_pages_by_sku_up_to_1000(
    emulator: AmazonEmulator, raw: httpx.Client
) -> None:
    with emulator.lock:
        for n in range(1005):
            emulator.set_listing(f"SKU-{n:04d}", n % 3, {"fulfillment": "AFN"} if n == 1 else {})
    items = client(ListingsItems, emulator)
    seen, token = [], None
    while True:
        page = items.search_listings_items(SELLER, pageSize=20, sortBy="sku", sortOrder="ASC",
                                           includedData=["fulfillmentAvailability"],
                                           **({"pageToken": token} if token else {}))
        seen += [(i["sku"], i["fulfillmentAvailability"][0]) for i in page.payload["items"]]
        token = page.next_token
        if token is None:
            break
    assert page.payload["numberOfResults"] == 1005
    assert len(seen) == 1000 and seen[0][0] == "SKU-0000"  # Amazon pages through 1,000 at most
    assert seen[1][1] == {"fulfillmentChannelCode": "AMAZON_NA", "quantity": 1}
    answer = raw.get(f"/listings/2021-08-01/items/{SELLER}", params={
        "marketplaceIds": US, "identifiersType": "SKU", "identifiers": "SKU-0002,SKU-1004",
        "includedData": "summaries,fulfillmentAvailability"})
    assert_model(answer.json(), "listingsItems_2021-08-01.json", "ItemSearchResults")
    assert sorted(i["sku"] for i in answer.json()["items"]) == ["SKU-0002", "SKU-1004"]


def test_search_listings_items_filters_times_in_whole_seconds(
    emulator: AmazonEmulator, clock: Clock, raw: httpx.Client
) -> None:
    """A listing's created and updated times count in whole seconds against each bound."""
    created = {"EARLY": 0.7, "ON-TIME": 1.0, "LATE": 2.3}  # seconds after 04:00:00
    start = clock.now
    with emulator.lock:
        for sku, seconds in created.items():
            clock.now = start + timedelta(seconds=seconds)
            emulator.set_listing(sku, 1, {})

    def found(**bounds: str) -> list[str]:
        answer = raw.get(f"/listings/2021-08-01/items/{SELLER}", params={
            "marketplaceIds": US, "sortBy": "sku", "sortOrder": "ASC", **bounds})
        assert answer.status_code == 200, answer.text
        return [item["sku"] for item in answer.json()["items"]]

    assert found(createdAfter="2026-11-26T04:00:00.500Z") == ["LATE", "ON-TIME"]
    assert found(createdAfter="2026-11-26T04:00:01.000Z") == ["LATE", "ON-TIME"]
    assert found(createdAfter="2026-11-26T04:00:01.001Z") == ["LATE"]
    assert found(createdBefore="2026-11-26T04:00:00.200Z") == ["EARLY"]
    assert found(createdBefore="2026-11-26T04:00:01.000Z") == ["EARLY", "ON-TIME"]
    assert found(createdAfter="2026-11-26T04:00:01.000Z",
                 createdBefore="2026-11-26T04:00:01.999Z") == ["ON-TIME"]
    assert found(lastUpdatedAfter="2026-11-26T04:00:02.000Z") == ["LATE"]
    assert found(lastUpdatedBefore="2026-11-26T03:59:59.000Z") == []


# -- feeds -------------------------------------------------------------------------------------


def feed_message(n: int, sku: str, quantity: Any) -> dict[str, Any]:
    return {"messageId": n, "sku": sku, "operationType": "PATCH", "productType": "PRODUCT",
            "patches": fa_patch(quantity)["patches"]}


def submit(feeds: Any, document: dict[str, Any] | bytes) -> str:
    content = document if isinstance(document, bytes) else json.dumps(document).encode()
    created = feeds.create_feed_document(io.BytesIO(content), "application/json; charset=UTF-8")
    return str(feeds.create_feed("JSON_LISTINGS_FEED", created.payload["feedDocumentId"]
                                 ).payload["feedId"])


def wait_for(feeds: Any, feed_id: str, clock: Clock) -> dict[str, Any]:
    clock.advance(1)  # past the queueing delay; the next request processes the feed
    deadline = time.monotonic() + 30
    while True:
        feed: dict[str, Any] = feeds.get_feed(feed_id).payload
        if feed["processingStatus"] in ("DONE", "FATAL") or time.monotonic() > deadline:
            return feed
        time.sleep(0.05)


def test_a_10000_message_feed_sets_quantities(
    emulator: AmazonEmulator, control: httpx.Client, clock: Clock
) -> None:
    with emulator.lock:
        for n in range(10_000):
            emulator.set_listing(f"SKU-{n:05d}", 1, {})
        emulator.set_listing("FBA-MUG", 4, {"fulfillment": "AFN"})
    messages = [feed_message(n + 1, f"SKU-{n:05d}", n % 50) for n in range(10_000)]
    messages[10] = feed_message(11, "NOT-LISTED", 3)
    messages[20] = feed_message(21, "FBA-MUG", 3)
    messages[30] = {**messages[30], "patches": []}  # against the message schema
    document = {"header": {"sellerId": SELLER, "version": "2.0"}, "messages": messages}
    feeds = client(Feeds, emulator)
    began = time.monotonic()
    feed_id = submit(feeds, document)
    assert feeds.get_feed(feed_id).payload["processingStatus"] == "IN_QUEUE"
    feed = wait_for(feeds, feed_id, clock)
    assert feed["processingStatus"] == "DONE", feed
    report = json.loads(feeds.get_feed_document(feed["resultFeedDocumentId"]))
    assert time.monotonic() - began < 20
    assert_json_schema(report, "listings-feed-processing-report-schema-v2.json")
    assert report["summary"] == {"errors": 3, "warnings": 0, "messagesProcessed": 10_000,
                                 "messagesAccepted": 9_997, "messagesInvalid": 3}
    assert sorted((i["messageId"], i.get("sku")) for i in report["issues"]) == [
        (11, "NOT-LISTED"), (21, "FBA-MUG"), (31, "SKU-00030")]
    shown = quantities(control)
    assert shown["SKU-00049"] == 49 and shown["SKU-09999"] == 49 and shown["FBA-MUG"] == 4
    assert shown["SKU-00010"] == 1 and shown["SKU-00030"] == 1  # their messages failed
    assert emulator.stats()["items_updated"] == 9_997
    uploaded = control.get("/_sandbox/feeds").json()["feeds"][0]
    assert uploaded["document"]["messages"][0]["sku"] == "SKU-00000"


def test_feed_answers_match_the_model_and_report_is_gzip(
    emulator: AmazonEmulator, control: httpx.Client, raw: httpx.Client, clock: Clock
) -> None:
    listing(control, "MUG", 5)
    created = raw.post("/feeds/2021-06-30/documents", json={"contentType": "application/json"})
    assert created.status_code == 201 and created.headers["x-amzn-RateLimit-Limit"] == NO_LIMIT
    assert_model(created.json(), "feeds_2021-06-30.json", "CreateFeedDocumentResponse")
    document = {"header": {"sellerId": SELLER, "version": "2.0", "report": {
        "includedData": ["fulfillmentAvailability"], "apiVersion": "2021-08-01"}},
        "messages": [feed_message(1, "MUG", 8)]}
    assert_json_schema(document, "listings-feed-schema-v2.json")
    assert httpx.put(created.json()["url"], content=json.dumps(document)).status_code == 200
    body = {"feedType": "JSON_LISTINGS_FEED", "marketplaceIds": [US],
            "inputFeedDocumentId": created.json()["feedDocumentId"]}
    accepted = raw.post("/feeds/2021-06-30/feeds", json=body)
    assert accepted.status_code == 202
    assert_model(accepted.json(), "feeds_2021-06-30.json", "CreateFeedResponse")
    feed_id = accepted.json()["feedId"]
    clock.advance(1)
    feed = raw.get(f"/feeds/2021-06-30/feeds/{feed_id}").json()
    assert_model(feed, "feeds_2021-06-30.json", "Feed")
    assert feed["processingStatus"] == "DONE" and quantities(control) == {"MUG": 8}
    result = raw.get(f"/feeds/2021-06-30/documents/{feed['resultFeedDocumentId']}").json()
    assert_model(result, "feeds_2021-06-30.json", "FeedDocument")
    assert result["compressionAlgorithm"] == "GZIP"
    report = json.loads(gzip.decompress(httpx.get(result["url"]).content))
    assert_json_schema(report, "listings-feed-processing-report-schema-v2.json")
    assert report["items"] == [{"sku": "MUG", "fulfillmentAvailability": [
        {"fulfillmentChannelCode": "DEFAULT", "quantity": 8}]}]
    forged = result["url"].replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert httpx.get(forged).status_code == 403
    clock.advance(301)
    expired = httpx.get(result["url"])
    assert expired.status_code == 403 and b"Request has expired" in expired.content


def test_a_broken_feed_document_is_fatal_with_a_report(
    emulator: AmazonEmulator, clock: Clock
) -> None:
    feeds = client(Feeds, emulator)
    cases: list[tuple[dict[str, Any] | bytes, str]] = [
        (b"{not json", "not valid JSON"),
        ({"header": {"sellerId": SELLER, "version": "1.0"}, "messages": [
            feed_message(1, "MUG", 1)]}, "header.version"),
        ({"header": {"sellerId": SELLER, "version": "2.0"}, "messages": []}, "messages"),
        ({"header": {"sellerId": "A3OTHER", "version": "2.0"}, "messages": [
            feed_message(1, "MUG", 1)]}, "not this seller"),
    ]
    for document, words in cases:
        feed = wait_for(feeds, submit(feeds, document), clock)
        assert feed["processingStatus"] == "FATAL"
        report = json.loads(feeds.get_feed_document(feed["resultFeedDocumentId"]))
        assert_json_schema(report, "listings-feed-processing-report-schema-v2.json")
        assert words in report["issues"][0]["message"] and report["summary"]["errors"] >= 1
    with pytest.raises(SellingApiBadRequestException):
        feeds.create_feed("POST_INVENTORY_AVAILABILITY_DATA", "amzn1.tortuga.4.na.nope")
    empty = feeds.create_feed_document(None, "application/json")
    with pytest.raises(SellingApiBadRequestException):  # nothing was uploaded
        feeds.create_feed("JSON_LISTINGS_FEED", empty.payload["feedDocumentId"])


def test_feeds_are_processed_in_the_background(start: Callable[..., AmazonEmulator]) -> None:
    emulator = start(clock=None, feed_delay=0.1)  # the real clock: the timer thread works
    with httpx.Client(base_url=emulator.url) as control:
        listing(control, "MUG", 5)
        feeds = client(Feeds, emulator)
        feed_id = submit(feeds, {"header": {"sellerId": SELLER, "version": "2.0"},
                                 "messages": [feed_message(1, "MUG", 2)]})
        deadline = time.monotonic() + 10
        while emulator.feeds.feed(feed_id).status != "DONE" and time.monotonic() < deadline:
            time.sleep(0.02)  # no request in between: nothing but the timer processes it
        assert emulator.feeds.feed(feed_id).status == "DONE"
        assert quantities(control) == {"MUG": 2}


def test_a_queued_feed_can_be_cancelled(emulator: AmazonEmulator, clock: Clock) -> None:
    feeds = client(Feeds, emulator)
    document = {"header": {"sellerId": SELLER, "version": "2.0"},
                "messages": [feed_message(1, "MUG", 1)]}
    feed_id = submit(feeds, document)
    feeds.cancel_feed(feed_id)
    clock.advance(1)
    assert feeds.get_feed(feed_id).payload["processingStatus"] == "CANCELLED"
    with pytest.raises(SellingApiBadRequestException):  # only IN_QUEUE feeds
        feeds.cancel_feed(feed_id)
    done = wait_for(feeds, submit(feeds, document), clock)
    assert done["processingStatus"] == "DONE"
    with pytest.raises(SellingApiBadRequestException):
        feeds.cancel_feed(done["feedId"])


def _feed_cases() -> list[Any]:
    good = json.loads((REFERENCE / "listings-feed-schema-v2.example.json").read_text())
    message = feed_message(1, "MUG", 1)
    cases: list[Any] = [good, {**good, "extra": 1}, [], {"messages": [message]}]
    for header in ({}, {"sellerId": "A"}, {"sellerId": 1, "version": "2.0"},
                   {"sellerId": "A", "version": "2.0", "issueLocale": 5},
                   {"sellerId": "A", "version": "2.0", "report": {"apiVersion": "2021-08-01"}},
                   {"sellerId": "A", "version": "2.0", "report": {
                       "includedData": ["offers"], "apiVersion": "2021-08-01"}}):
        cases.append({"header": header, "messages": [message]})
    header = good["header"]
    cases += [{"header": header, "messages": []}, {"header": header, "messages": {}}]
    changes: list[dict[str, Any]] = [
        {"messageId": 0}, {"messageId": "1"}, {"messageId": 1.0}, {"messageId": True},
        {"messageId": 2_147_483_648}, {"sku": ""}, {"operationType": "CREATE"},
        {"productType": ""}, {"requirements": "LISTING"}, {"attributes": {"a": [{}]}},
        {"patches": []}, {"patches": [{"op": "move", "path": FA}]}, {"patches": [{"op": "add"}]},
        {"patches": [{"op": "add", "path": FA, "value": [1]}]}, {"extra": True},
        {"operationType": "DELETE"}, {"operationType": "UPDATE", "attributes": {"a": [{}]}},
        {"operationType": "UPDATE", "attributes": {"a": [{}]}, "patches": None},
        {"operationType": "PARTIAL_UPDATE", "attributes": {"a": [{}]}, "patches": None},
        {"operationType": "PARTIAL_UPDATE", "attributes": {}, "patches": None},
        {"operationType": "DELETE", "productType": None, "patches": None},
    ]
    for change in changes:
        changed = {k: v for k, v in {**message, **change}.items() if v is not None}
        cases.append({"header": header, "messages": [message | {"messageId": 2}, changed]})
    return cases


@pytest.mark.parametrize("document", _feed_cases())
def test_the_feed_checks_agree_with_amazons_schema(document: Any) -> None:
    expected = jsonschema.Draft7Validator(_reference("listings-feed-schema-v2.json")
                                          ).is_valid(document)
    parsed, fatal = parse_feed(json.dumps(document).encode())
    valid = not fatal and not any(message_errors(m) for m in parsed["messages"])
    assert valid == expected


# -- throttling, faults, control API -----------------------------------------------------------


def test_rate_limits_per_operation(start: Callable[..., AmazonEmulator], clock: Clock) -> None:
    emulator = start(rate_limits=True)
    feeds = client(Feeds, emulator)
    for _ in range(15):  # getFeed: burst 15, 2 per second
        with pytest.raises(SellingApiNotFoundException):
            feeds.get_feed("123")
    with pytest.raises(SellingApiRequestThrottledException) as throttled:
        feeds.get_feed("123")
    assert throttled.value.amzn_code == "QuotaExceeded"
    assert throttled.value.message == "You exceeded your quota for the requested resource."
    assert throttled.value.headers["x-amzn-RateLimit-Limit"] == "2"
    orders = client(Orders, emulator, version="2026-01-01")
    assert search(orders).headers["x-amzn-RateLimit-Limit"] == "0.0056"  # its own bucket
    clock.advance(0.5)
    with pytest.raises(SellingApiNotFoundException):
        feeds.get_feed("123")
    with raw_client(emulator) as raw:
        answer = raw.get("/feeds/2021-06-30/feeds/123")
    assert answer.status_code == 429
    assert answer.json() == {"errors": [{"code": "QuotaExceeded", "details": "",
                                         "message": "You exceeded your quota for the requested "
                                                    "resource."}]}
    assert emulator.stats()["throttled"] == 2
    faster = start(rate_limits=10)
    lwa_cache.cache.clear()  # the library would reuse the first emulator's token otherwise
    assert search(client(Orders, faster, version="2026-01-01")).headers[
        "x-amzn-RateLimit-Limit"] == "0.056"


def test_without_rate_limits_the_header_says_so(start: Callable[..., AmazonEmulator]) -> None:
    """A client that follows the header (the connector does) must not hold back for limits
    the emulator does not apply: that stalled the demo for minutes a cycle."""
    unlimited = start(rate_limits=False)
    orders = client(Orders, unlimited, version="2026-01-01")
    for _ in range(25):  # more than searchOrders' burst of 20: none is throttled
        assert search(orders).headers["x-amzn-RateLimit-Limit"] == NO_LIMIT
    assert unlimited.stats()["throttled"] == 0


def test_injected_faults_include_bodiless_5xx(
    emulator: AmazonEmulator, control: httpx.Client
) -> None:
    orders = client(Orders, emulator, version="2026-01-01")
    control.post("/_sandbox/faults", json={"throttle_rate": 1.0})
    with pytest.raises(SellingApiRequestThrottledException):
        search(orders)
    control.post("/_sandbox/faults", json={"error_rate": 1.0, "seed": 3})
    outcomes = []
    for _ in range(20):
        try:
            answer = search(orders)
        except SellingApiServerException as exc:
            outcomes.append(f"raised {exc.amzn_code}")
        except SellingApiException as exc:
            outcomes.append(f"raised {type(exc).__name__}")
        else:  # a bodiless 5xx: the library hands back an empty result without a word
            assert answer.payload == {} and answer.orders is None
            outcomes.append("empty")
    assert "empty" in outcomes and "raised InternalFailure" in outcomes
    with raw_client(emulator) as raw:
        statuses = {(r.status_code, r.content == b"") for r in (
            raw.get("/orders/2026-01-01/orders", params={"lastUpdatedAfter": LONG_AGO})
            for _ in range(20))}
    assert {(502, True), (503, True), (500, False)} <= statuses
    assert emulator.stats()["errors"] == 40
    control.post("/_sandbox/faults", json={})
    assert search(orders).orders == []


def test_reset_empties_the_account_but_keeps_tokens(
    emulator: AmazonEmulator, control: httpx.Client
) -> None:
    listing(control, "MUG", 5)
    order(control, MUG=1)
    items = client(ListingsItems, emulator)
    items.get_listings_item(SELLER, "MUG")
    stats = control.get("/_sandbox/stats").json()
    assert stats["requests"]["getListingsItem"] == 1 and stats["requests"]["lwaToken"] == 1
    assert control.post("/_sandbox/reset").status_code == 200
    assert control.get("/_sandbox/listings").json() == {"listings": []}
    assert control.get("/_sandbox/stats").json() == {
        "requests": {}, "throttled": 0, "errors": 0, "items_updated": 0, "hung": 0,
        "lost_answers": 0}
    with pytest.raises(SellingApiNotFoundException):  # the cached token still works
        items.get_listings_item(SELLER, "MUG")


# -- what a simulation needs: the orders as held, faulty pages, lost answers -------------------


def _units(row: dict[str, Any]) -> dict[str, tuple[int, int, int, int]]:
    return {x["sku"]: (x["quantity"], x["shipped"], x["cancelled"], x["restocked"])
            for x in row["lines"]}


def _page(raw: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    answer = raw.get("/orders/2026-01-01/orders", params={
        "lastUpdatedAfter": LONG_AGO, "marketplaceIds": US, "includedData": "FULFILLMENT",
        **params})
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["orders"]
    return found


def test_sandbox_orders_hold_each_lines_units_as_the_connector_reads_them(
    emulator: AmazonEmulator, control: httpx.Client, raw: httpx.Client
) -> None:
    from connectors.amazon._orders import parse_orders

    listing(control, "MUG", 20)
    listing(control, "CUP", 20)
    listing(control, "FBA-MUG", 5, fulfillment="AFN")
    placed = order(control, MUG=2)
    cancelled = order(control, CUP=1)
    control.post(f"/_sandbox/orders/{cancelled}/cancel")
    shipped = order(control, MUG=1, CUP=1)
    control.post(f"/_sandbox/orders/{shipped}/ship")
    partial = order(control, MUG=3, CUP=1)
    status = "/_sandbox/orders/{}/status"
    control.post(status.format(partial), json={"status": "PartiallyShipped",
                                                "shipped": {"MUG": 1}})
    half = order(control, MUG=2)  # partly shipped, then the rest canceled
    control.post(status.format(half), json={"status": "PartiallyShipped", "shipped": {"MUG": 1}})
    control.post(status.format(half), json={"status": "Canceled"})
    fba = order(control, **{"FBA-MUG": 1})
    rows = {r["order_id"]: r for r in control.get("/_sandbox/orders").json()["orders"]}
    assert list(rows) == [placed, cancelled, shipped, partial, half, fba]
    assert {k: (r["status"], _units(r)) for k, r in rows.items()} == {
        placed: ("Pending", {"MUG": (2, 0, 0, 0)}),
        cancelled: ("Canceled", {"CUP": (1, 0, 1, 0)}),
        shipped: ("Shipped", {"MUG": (1, 1, 0, 0), "CUP": (1, 1, 0, 0)}),
        partial: ("PartiallyShipped", {"MUG": (3, 1, 0, 0), "CUP": (1, 0, 0, 0)}),
        half: ("Canceled", {"MUG": (2, 1, 1, 0)}),
        fba: ("Pending", {"FBA-MUG": (1, 0, 0, 0)}),
    }
    assert {r["fulfilled_by"] for k, r in rows.items() if k != fba} == {"MERCHANT"}
    assert rows[fba]["fulfilled_by"] == "AMAZON"
    assert rows[placed]["shipments"] == []
    # a default buyer: a drawn name, no email (so no relay address), no id (Amazon has none)
    assert rows[placed]["buyer"] == {"name": rows[placed]["buyer"]["name"], "email": None,
                                     "id": None, "relay_email": None}
    assert rows[placed]["buyer"]["name"].count(" ") == 1
    assert quantities(control) == {"CUP": 18, "FBA-MUG": 4, "MUG": 13}  # what the rows imply
    # What the connector reads from the order API is what the rows say, line by line.
    lines, bad, _ = parse_orders(_page(raw))
    assert bad == []
    read = {(x.order_id, x.channel_sku): (x.ordered, x.shipped, x.cancelled, x.restocked)
            for x in lines}
    assert read == {(k, sku): units for k, r in rows.items() for sku, units in _units(r).items()}
    assert control.get(f"/_sandbox/orders/{half}").json() == rows[half]
    missing = control.get("/_sandbox/orders/111-0000000-0000000")
    assert missing.status_code == 404 and "111-0000000-0000000" in missing.json()["error"]


def test_faulty_order_pages_duplicate_shuffle_and_go_stale(
    emulator: AmazonEmulator, control: httpx.Client, raw: httpx.Client
) -> None:
    listing(control, "MUG", 20)
    ids = [order(control, MUG=1) for _ in range(6)]
    control.post(f"/_sandbox/orders/{ids[0]}/cancel")
    plain = [o["orderId"] for o in _page(raw)]
    assert sorted(plain) == sorted(ids)
    control.post("/_sandbox/faults", json={"duplicate_rate": 1.0})
    assert [o["orderId"] for o in _page(raw)] == [x for x in plain for _ in (1, 2)]
    v0 = raw.get("/orders/v0/orders", params={"LastUpdatedAfter": LONG_AGO, "MarketplaceIds": US})
    assert len(v0.json()["payload"]["Orders"]) == 12  # getOrders' pages as well
    control.post("/_sandbox/faults", json={"stale_rate": 1.0})
    stale = {o["orderId"]: o["fulfillment"]["fulfillmentStatus"] for o in _page(raw)}
    assert stale == dict.fromkeys(ids, "PENDING")  # the canceled one as it was before
    control.post("/_sandbox/faults", json={"reorder_rate": 1.0, "seed": 4})
    shuffled = [o["orderId"] for o in _page(raw)]
    assert shuffled != plain and sorted(shuffled) == sorted(plain)
    control.post("/_sandbox/faults", json={"reorder_rate": 1.0, "seed": 4})
    assert [o["orderId"] for o in _page(raw)] == shuffled  # a seed replays its shuffle
    control.post("/_sandbox/faults", json={})
    assert [o["orderId"] for o in _page(raw)] == plain


def test_a_lost_answer_is_a_write_applied_without_its_answer(
    emulator: AmazonEmulator, control: httpx.Client, raw: httpx.Client, clock: Clock
) -> None:
    listing(control, "MUG", 5)
    control.post("/_sandbox/faults", json={"lost_answer_rate": 1.0, "seed": 2})
    path, params = f"/listings/2021-08-01/items/{SELLER}/MUG", {"marketplaceIds": US}
    outcomes: list[int | str] = []
    for quantity in range(10, 16):
        try:
            outcomes.append(raw.patch(path, params=params, json=fa_patch(quantity)).status_code)
        except httpx.RemoteProtocolError:
            outcomes.append("dropped")
    assert all(o == "dropped" or (isinstance(o, int) and o >= 500) for o in outcomes)
    assert "dropped" in outcomes and any(o != "dropped" for o in outcomes)
    assert quantities(control) == {"MUG": 15}  # every write was applied
    assert raw.get(path, params=params).status_code == 200  # reads are never lost
    assert _page(raw) == []
    document = raw.post("/feeds/2021-06-30/documents", json={"contentType": "application/json"})
    assert document.status_code == 201  # bookkeeping: its answer arrives
    upload = httpx.put(document.json()["url"], content=json.dumps({
        "header": {"sellerId": SELLER, "version": "2.0"},
        "messages": [feed_message(1, "MUG", 3)]}).encode())
    assert upload.status_code == 200
    try:
        created: int | str = raw.post("/feeds/2021-06-30/feeds", json={
            "feedType": "JSON_LISTINGS_FEED", "marketplaceIds": [US],
            "inputFeedDocumentId": document.json()["feedDocumentId"]}).status_code
    except httpx.RemoteProtocolError:
        created = "dropped"
    assert created == "dropped" or (isinstance(created, int) and created >= 500)
    clock.advance(1)  # past the feed's queueing delay: Amazon applies it all the same
    deadline = time.monotonic() + 10
    while quantities(control)["MUG"] != 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert quantities(control) == {"MUG": 3}
    assert emulator.stats()["lost_answers"] == 7
