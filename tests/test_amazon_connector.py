"""Amazon connector tests through the real library and HTTP path (respx intercepts httpx).

Every outgoing patch body and feed document is validated against Amazon's own schemas in
``tests/reference/amazon-sp-api/``.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import jsonschema  # type: ignore[import-untyped]
import pytest
import respx
from pydantic import ValidationError

from channelsync.connector import BadRecord, Connector, OrderLineSnapshot, PushItem, PushResult
from channelsync.errors import (
    ConfigError,
    PermanentChannelError,
    RetriableChannelError,
    ThrottledError,
)
from channelsync.registry import load_connector
from connectors.amazon import AmazonConnector, AmazonSettings
from connectors.amazon._auth import TokenStore
from connectors.amazon._feeds import MAX_MESSAGES, feed_document, report_results
from connectors.amazon._orders import Position, parse_order

REFERENCE = Path(__file__).parent / "reference" / "amazon-sp-api"
API = "https://sellingpartnerapi-na.amazon.com"
LWA = "https://api.amazon.com/auth/o2/token"
SELLER = "A2SELLER0000EX"
US = "ATVPDKIKX0DER"
REFRESH = "Atzr|IwEBIExampleRefreshToken0123456789abcdef"
APP_ID = "amzn1.application-oa2-client.0123456789abcdef"
CLIENT_SECRET = "amzn1.oa2-cs.v1.fedcba9876543210fedcba9876543210"
SECRETS = (REFRESH, APP_ID, CLIENT_SECRET)
SINCE = datetime(2026, 3, 1, 9, 58, 30, 123456, tzinfo=UTC)
ORDERS = f"{API}/orders/2026-01-01/orders"
ITEMS = f"{API}/listings/2021-08-01/items/{SELLER}"
FEEDS = f"{API}/feeds/2021-06-30"
UPLOAD = "https://tortuga-prod-na.s3-external-1.amazonaws.com/doc-1"
REPORT = "https://tortuga-prod-na.s3-external-1.amazonaws.com/rep-1"


def settings(**values: Any) -> AmazonSettings:
    base = {"marketplace": "US", "seller_id": SELLER, "refresh_token": REFRESH,
            "lwa_app_id": APP_ID, "lwa_client_secret": CLIENT_SECRET}
    return AmazonSettings.model_validate({**base, **values})


class Sleeps(list[float]):
    """Records the waits asked for, without waiting; ``now`` is a clock they move."""

    elapsed = 0.0

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        self.elapsed += seconds

    def now(self) -> float:
        return self.elapsed


def make(endpoint: str = "", sleep: Callable[[float], None] | None = None,
         **values: Any) -> AmazonConnector:
    sleep = Sleeps() if sleep is None else sleep
    time_: dict[str, Any] = {"monotonic": sleep.now} if isinstance(sleep, Sleeps) else {}
    return AmazonConnector("amz", settings(**values), endpoint=endpoint, sleep=sleep, **time_)


@pytest.fixture
def amazon() -> Iterator[AmazonConnector]:
    connector = make(feed_poll_interval=1, feed_timeout=60)
    yield connector
    connector.close()


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        router.post(LWA, name="token").respond(
            200, json={"access_token": "Atza|token-1", "token_type": "bearer", "expires_in": 3600})
        yield router


def order(order_id: str = "111-0000001-0000001", status: str = "UNSHIPPED",
          updated: str = "2026-03-01T10:00:00Z", items: list[Any] | None = None,
          by: str = "MERCHANT") -> dict[str, Any]:
    return {
        "orderId": order_id, "createdTime": "2026-03-01T09:00:00Z", "lastUpdatedTime": updated,
        "salesChannel": {"channelName": "AMAZON", "marketplaceId": US},
        "fulfillment": {"fulfillmentStatus": status, "fulfilledBy": by},
        "orderItems": items if items is not None else [item()],
    }


def item(item_id: str = "10001", sku: str = "MUG", qty: int = 2,
         fulfilled: int | None = None) -> dict[str, Any]:
    raw: dict[str, Any] = {"orderItemId": item_id, "quantityOrdered": qty,
                           "product": {"sellerSku": sku, "asin": "B000000001"}}
    if fulfilled is not None:
        raw["fulfillment"] = {"quantityFulfilled": fulfilled,
                              "quantityUnfulfilled": qty - fulfilled}
    return raw


def query(request: httpx.Request) -> dict[str, list[str]]:
    return parse_qs(request.url.query.decode())


# -- schemas ---------------------------------------------------------------------------------


def _schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((REFERENCE / name).read_text(encoding="utf-8"))
    return loaded


PATCH_SCHEMA = {"$ref": "#/definitions/ListingsItemPatchRequest",
                "definitions": _schema("listingsItems_2021-08-01.json")["definitions"]}
FEED_SCHEMA = _schema("listings-feed-schema-v2.json")
MESSAGE_SCHEMA = _schema("listings-feed-message-schema-v2.json")
REPORT_SCHEMA = _schema("listings-feed-processing-report-schema-v2.json")


def assert_valid_patch(body: Any) -> None:
    jsonschema.Draft4Validator(PATCH_SCHEMA).validate(body)
    assert [p["op"] for p in body["patches"]] == ["merge"]  # replace would drop handling time


def assert_valid_feed(document: Any) -> None:
    jsonschema.Draft7Validator(FEED_SCHEMA).validate(document)
    for message in document["messages"]:
        jsonschema.Draft7Validator(MESSAGE_SCHEMA).validate(message)
        for patch in message["patches"]:
            assert_valid_patch({"productType": message["productType"], "patches": [patch]})


# -- construction and configuration ---------------------------------------------------------


def test_satisfies_the_connector_protocol(amazon: AmazonConnector) -> None:
    assert isinstance(amazon, Connector)
    assert load_connector("amazon") is AmazonConnector
    caps = AmazonConnector.capabilities
    assert caps.overlap == timedelta(minutes=5) and not caps.compare_and_set
    # As many changed SKUs as one feed takes reach one push call: one feed, never a feed and
    # a remainder the connector would send one patch a listing.
    assert caps.push_batch_size == MAX_MESSAGES == 25_000
    assert (caps.requests_per_second, caps.burst) == (5.0, 5)
    assert AmazonConnector.emulator == "connectors.amazon.emulator:AmazonEmulator"


@pytest.mark.parametrize(("marketplace", "expected"), [
    ("US", US), ("us", US), ("DE", "A1PA6795UKMFR9"), ("UK", "A1F83G8C2ARO7P"),
    ("A1PA6795UKMFR9", "A1PA6795UKMFR9"),
])
def test_marketplace_by_country_code_or_id(marketplace: str, expected: str) -> None:
    connector = make(marketplace=marketplace)
    assert connector.marketplace_id == expected
    connector.close()


def test_marketplace_endpoints_are_amazon_production_by_region() -> None:
    for code, host in (("US", "na"), ("DE", "eu"), ("JP", "fe")):
        connector = make(marketplace=code)
        assert connector.marketplace.endpoint == f"https://sellingpartnerapi-{host}.amazon.com"
        connector.close()


def test_settings_validate_and_mask_secrets() -> None:
    with pytest.raises(ValidationError, match="unknown marketplace"):
        settings(marketplace="XX")
    with pytest.raises(ValidationError):
        settings(access_key="AKIA...")  # extra keys are refused
    with pytest.raises(ValidationError, match="http"):
        settings(lwa_endpoint="ftp://example")
    value = settings()
    assert value.timeout == 10 and value.feed_threshold == 100 and value.product_type == "PRODUCT"
    for secret in SECRETS:
        assert secret not in repr(value) and secret not in str(value.model_dump())
    assert settings(lwa_endpoint="http://127.0.0.1:8103").lwa_endpoint == \
        "http://127.0.0.1:8103/auth/o2/token"
    assert settings(lwa_endpoint="https://proxy.example/lwa/token/").lwa_endpoint == \
        "https://proxy.example/lwa/token"


@pytest.mark.parametrize("endpoint", ["ftp://x", "http://", "https://u:p@host", "https://h/?a=1"])
def test_bad_endpoint_is_a_config_error(endpoint: str) -> None:
    with pytest.raises(ConfigError):
        make(endpoint=endpoint)


def test_repr_names_the_channel_without_secrets(amazon: AmazonConnector) -> None:
    text = repr(amazon)
    assert "amz" in text and US in text and API in text
    assert not any(secret in text for secret in SECRETS)


def test_environment_never_leaks_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """The library reads SP_API_DEFAULT_MARKETPLACE in Client.__init__ and credentials from
    the environment and AWS Secrets Manager: none of it may win over the channel's config."""
    for name, value in {
        "SP_API_DEFAULT_MARKETPLACE": "DE", "SP_API_REFRESH_TOKEN": "env-refresh",
        "LWA_APP_ID": "env-app", "LWA_CLIENT_SECRET": "env-secret",
        "SP_API_AWS_SECRET_ID": "arn:aws:secretsmanager:eu-west-1:1:secret:x",
        "AWS_ACCESS_KEY_ID": "AKIAENVENVENV", "AWS_SECRET_ACCESS_KEY": "env-aws",
        "AWS_DEFAULT_REGION": "eu-west-1", "AWS_ENV": "SANDBOX",
    }.items():
        monkeypatch.setenv(name, value)
    connector = make()
    with respx.mock(assert_all_called=True) as router:
        token = router.post(LWA).respond(200, json={"access_token": "t", "expires_in": 3600})
        search = router.get(ORDERS).respond(200, json={"orders": []})
        connector.pull_orders(SINCE, None)
    form = parse_qs(token.calls.last.request.content.decode())
    assert form["refresh_token"] == [REFRESH] and form["client_id"] == [APP_ID]
    assert form["client_secret"] == [CLIENT_SECRET]
    assert query(search.calls.last.request)["marketplaceIds"] == [US]
    connector.close()


def test_token_url_defaults() -> None:
    assert make().token_url == LWA
    assert make(endpoint="https://proxy.example/sp").token_url == LWA
    assert make(endpoint="http://127.0.0.1:8103").token_url == "http://127.0.0.1:8103/auth/o2/token"
    assert make(endpoint="http://localhost:8103", lwa_endpoint="https://lwa.example").token_url \
        == "https://lwa.example/auth/o2/token"


def test_endpoint_overrides_and_http_host_header() -> None:
    connector = make(endpoint="http://127.0.0.1:8103", lwa_endpoint="http://127.0.0.1:8104")
    with respx.mock(assert_all_called=True) as router:
        router.post("http://127.0.0.1:8104/auth/o2/token").respond(
            200, json={"access_token": "t", "expires_in": 3600})
        search = router.get("http://127.0.0.1:8103/orders/2026-01-01/orders").respond(
            200, json={"orders": []})
        connector.pull_orders(SINCE, None)
    # The library sends endpoint[8:] as the Host, which cuts "http://1" short.
    assert search.calls.last.request.headers["host"] == "127.0.0.1:8103"
    connector.close()


# -- access tokens ---------------------------------------------------------------------------


def test_one_token_per_channel_reused_across_calls(
    amazon: AmazonConnector, api: respx.MockRouter
) -> None:
    search = api.get(ORDERS).respond(200, json={"orders": []})
    api.get(url__startswith=ITEMS).respond(200, json={"numberOfResults": 0, "items": []})
    amazon.pull_orders(SINCE, None)
    list(amazon.read_listings())
    assert api["token"].call_count == 1
    assert search.calls.last.request.headers["x-amz-access-token"] == "Atza|token-1"


def test_channels_never_share_a_token() -> None:
    """The library's cache is keyed by the refresh token alone: the same refresh token
    against two LWA endpoints, or with another client secret, must not share a token."""
    one = make(lwa_endpoint="https://lwa-one.example")
    two = make(lwa_endpoint="https://lwa-two.example")
    other_secret = make(lwa_endpoint="https://lwa-one.example", lwa_client_secret="other")
    with respx.mock(assert_all_called=True) as router:
        t1 = router.post("https://lwa-one.example/auth/o2/token").mock(side_effect=[
            httpx.Response(200, json={"access_token": "token-one", "expires_in": 3600}),
            httpx.Response(200, json={"access_token": "token-other", "expires_in": 3600}),
        ])
        t2 = router.post("https://lwa-two.example/auth/o2/token").respond(
            200, json={"access_token": "token-two", "expires_in": 3600})
        search = router.get(ORDERS).respond(200, json={"orders": []})
        for connector in (one, two, other_secret, one, two):
            connector.pull_orders(SINCE, None)
    sent = [c.request.headers["x-amz-access-token"] for c in search.calls]
    assert sent == ["token-one", "token-two", "token-other", "token-one", "token-two"]
    assert (t1.call_count, t2.call_count) == (2, 1)
    for connector in (one, two, other_secret):
        connector.close()


def test_token_store_refreshes_before_expiry() -> None:
    now = [0.0]
    store = TokenStore(clock=lambda: now[0])
    tokens: Iterator[dict[str, Any]] = iter([{"access_token": "a", "expires_in": 120},
                                             {"access_token": "b"}])

    def fetch() -> dict[str, Any]:
        return next(tokens)

    assert store.get(fetch)["access_token"] == "a"
    now[0] = 59.0
    assert store.get(fetch)["access_token"] == "a"
    now[0] = 61.0  # within a minute of expiry: a new one
    assert store.get(fetch)["access_token"] == "b"
    store.clear()
    with pytest.raises(StopIteration):
        store.get(fetch)


def test_a_refused_token_is_fetched_again(amazon: AmazonConnector, api: respx.MockRouter) -> None:
    unauthorized = {"errors": [{"code": "Unauthorized", "message": "Access denied.",
                                "details": "The access token you provided has expired."}]}
    api.get(ORDERS).mock(side_effect=[httpx.Response(403, json=unauthorized),
                                      httpx.Response(200, json={"orders": []})])
    with pytest.raises(RetriableChannelError, match="expired") as caught:
        amazon.pull_orders(SINCE, None)
    assert not isinstance(caught.value, PermanentChannelError)
    amazon.pull_orders(SINCE, None)
    assert api["token"].call_count == 2


@pytest.mark.parametrize(("status", "body", "error"), [
    (400, {"error": "invalid_grant", "error_description": "The request has an invalid grant"},
     PermanentChannelError),
    (401, {"error": "invalid_client", "error_description": "Client authentication failed"},
     PermanentChannelError),
    (503, "<html>Service Unavailable</html>", RetriableChannelError),
    (429, "", ThrottledError),
])
def test_token_endpoint_failures(status: int, body: Any, error: type[Exception]) -> None:
    connector = make()
    with respx.mock() as router:
        content = json.dumps(body).encode() if isinstance(body, dict) else body.encode()
        router.post(LWA).respond(status, content=content)
        with pytest.raises(error) as caught:
            connector.pull_orders(SINCE, None)
    text = f"{caught.value} {caught.value!r}"
    assert not any(secret in text for secret in SECRETS)
    if isinstance(body, dict):
        assert body["error"] in str(caught.value)
        assert body["error_description"] not in str(caught.value)
    connector.close()


def test_a_token_answer_without_a_token_is_retriable() -> None:
    connector = make()
    with respx.mock() as router:
        router.post(LWA).respond(200, json={"token_type": "bearer"})
        with pytest.raises(RetriableChannelError, match="without an access_token"):
            connector.pull_orders(SINCE, None)
    connector.close()


# -- orders ----------------------------------------------------------------------------------


def test_search_orders_query_is_identical_across_pages(
    amazon: AmazonConnector, api: respx.MockRouter
) -> None:
    route = api.get(ORDERS).mock(side_effect=[
        httpx.Response(200, json={"orders": [order("A", updated="2026-03-01T10:05:00Z")],
                                  "pagination": {"nextToken": "page-2"}}),
        httpx.Response(200, json={"orders": [order("B", updated="2026-03-01T10:01:00Z")],
                                  "pagination": {"nextToken": "page-3"}}),
        httpx.Response(200, json={"orders": [order("C", updated="2026-03-01T10:03:00Z")],
                                  "lastUpdatedBefore": "2026-03-01T10:10:00Z"}),
    ])
    first = amazon.pull_orders(SINCE, None)
    second = amazon.pull_orders(SINCE + timedelta(hours=1), first.next_page)  # since ignored
    last = amazon.pull_orders(SINCE, second.next_page)
    asked = [query(call.request) for call in route.calls]
    expected = {"lastUpdatedAfter": ["2026-03-01T09:58:30Z"], "marketplaceIds": [US],
                "fulfilledBy": ["MERCHANT"], "maxResultsPerPage": ["100"],
                "includedData": ["FULFILLMENT,PACKAGES"]}  # no BUYER: buyer_data is off
    assert asked[0] == expected
    assert asked[1] == {**expected, "paginationToken": ["page-2"]}
    assert asked[2] == {**expected, "paginationToken": ["page-3"]}
    assert all("lastUpdatedBefore" not in a for a in asked)
    # Pages are not sorted by update time: only the last one moves the cursor, to the newest.
    assert first.resume_at is None and second.resume_at is None
    assert last.next_page is None
    assert last.resume_at == datetime(2026, 3, 1, 10, 5, tzinfo=UTC)


def test_an_empty_window_leaves_the_cursor(amazon: AmazonConnector, api: respx.MockRouter) -> None:
    api.get(ORDERS).respond(200, json={"orders": []})
    page = amazon.pull_orders(SINCE, None)
    assert (page.lines, page.next_page, page.resume_at) == ([], None, None)


@pytest.mark.parametrize("token", ["garbage", "{}", '{"after": "x", "token": "t"}',
                                   '{"after": "2026-03-01T10:00:00Z", "token": ""}'])
def test_invalid_page_token(amazon: AmazonConnector, token: str) -> None:
    with pytest.raises(PermanentChannelError, match="invalid page token"):
        amazon.pull_orders(SINCE, token)


def test_position_round_trip() -> None:
    newest = datetime(2026, 3, 1, 10, 0, 0, 250000, tzinfo=UTC)
    position = replace(Position.first(SINCE).then([order("A"), order("B")], newest), token="t")
    assert Position.decode(position.encode()) == position
    assert len(position.seen) == 2 and not position.moved


def test_an_order_seen_again_on_a_later_page_keeps_the_cursor(
    amazon: AmazonConnector, api: respx.MockRouter
) -> None:
    """Paging was disturbed (an order changed and moved): another may have slid back onto a
    page already read, so the cursor may not move past it."""
    api.get(ORDERS).mock(side_effect=[
        httpx.Response(200, json={"orders": [order("A"), order("B")],
                                  "pagination": {"nextToken": "p2"}}),
        httpx.Response(200, json={"orders": [order("A", status="CANCELLED",
                                                    updated="2026-03-01T11:00:00Z")]}),
    ])
    first = amazon.pull_orders(SINCE, None)
    last = amazon.pull_orders(SINCE, first.next_page)
    assert last.lines[0].cancelled == 2
    assert last.resume_at == SINCE.replace(microsecond=0)  # the start of the window


def snapshot(raw: dict[str, Any]) -> list[OrderLineSnapshot]:
    lines, bad, _ = parse_order(raw)
    assert bad == []
    return lines


@pytest.mark.parametrize(("status", "fulfilled", "shipped", "cancelled"), [
    ("PENDING", None, 0, 0),
    ("PENDING_AVAILABILITY", None, 0, 0),
    ("UNSHIPPED", 0, 0, 0),
    ("PARTIALLY_SHIPPED", 1, 1, 0),
    ("PARTIALLY_SHIPPED", None, 0, 0),  # Amazon did not say how many: keep them reserved
    ("SHIPPED", None, 3, 0),
    ("CANCELLED", None, 0, 3),
    ("CANCELLED", 1, 1, 2),
    ("Pending", None, 0, 0),  # Orders v0 spellings
    ("PartiallyShipped", 2, 2, 0),
    ("InvoiceUnconfirmed", None, 3, 0),
    ("Canceled", None, 0, 3),
])
def test_status_mapping(status: str, fulfilled: int | None, shipped: int, cancelled: int) -> None:
    [line] = snapshot(order(status=status, items=[item(qty=3, fulfilled=fulfilled)]))
    assert (line.ordered, line.shipped, line.cancelled, line.ignore) == (3, shipped, cancelled,
                                                                         False)
    assert line.status == status


def test_a_line_maps_every_field(amazon: AmazonConnector, api: respx.MockRouter) -> None:
    raw = order("114-1234567-7654321", "PARTIALLY_SHIPPED", "2026-03-01T10:00:00.5Z",
                [item("5001", "MUG-BLUE", 4, fulfilled=1), item("5002", "PLATE", 1)])
    raw["orderItems"][1]["cancellation"] = None  # Amazon sends nulls for absent datasets
    api.get(ORDERS).respond(200, json={"orders": [raw]})
    page = amazon.pull_orders(SINCE, None)
    assert page.lines == [
        OrderLineSnapshot("114-1234567-7654321", "5001", "MUG-BLUE", 4, "PARTIALLY_SHIPPED",
                          datetime(2026, 3, 1, 10, 0, 0, 500000, tzinfo=UTC), shipped=1),
        OrderLineSnapshot("114-1234567-7654321", "5002", "PLATE", 1, "PARTIALLY_SHIPPED",
                          datetime(2026, 3, 1, 10, 0, 0, 500000, tzinfo=UTC), shipped=0),
    ]
    assert page.resume_at == datetime(2026, 3, 1, 10, 0, 0, 500000, tzinfo=UTC)


def test_amazon_fulfilled_orders_are_ignored() -> None:
    for raw in (order(by="AMAZON"), order(status="UNFULFILLABLE")):
        [line] = snapshot(raw)
        assert line.ignore


def test_bad_records_are_reported_and_the_rest_kept(
    amazon: AmazonConnector, api: respx.MockRouter
) -> None:
    no_sku = item("3", "X")
    del no_sku["product"]["sellerSku"]
    orders = [
        "not an order",
        {**order("NO-TIME"), "lastUpdatedTime": "yesterday"},
        order("ODD", status="LOST_IN_SPACE"),
        {**order("NO-ITEMS"), "orderItems": None},
        {**order("NO-STATUS"), "fulfillment": None},
        order("GOOD", items=[item("1", "MUG"), item("2", "MUG", qty=-1), no_sku]),
    ]
    api.get(ORDERS).respond(200, json={"orders": orders})
    page = amazon.pull_orders(SINCE, None)
    assert [(s.order_id, s.line_id) for s in page.lines] == [("GOOD", "1")]
    assert all(isinstance(b, BadRecord) for b in page.bad_records)
    assert [b.key for b in page.bad_records] == ["?", "NO-TIME", "ODD", "NO-ITEMS", "NO-STATUS",
                                                 "GOOD/2", "GOOD/3"]


# -- errors ----------------------------------------------------------------------------------

QUOTA = {"errors": [{"code": "QuotaExceeded", "message": "You exceeded your quota."}]}


@pytest.mark.parametrize(("status", "content", "headers", "error", "retry_after"), [
    (429, json.dumps(QUOTA), {}, ThrottledError, None),  # the library's own exception
    (429, json.dumps(QUOTA), {"Retry-After": "7"}, ThrottledError, 7.0),
    (429, "", {"Retry-After": "3"}, ThrottledError, 3.0),  # empty: the library stays silent
    (500, json.dumps({"errors": [{"code": "InternalFailure", "message": "x"}]}), {},
     RetriableChannelError, None),
    (503, "", {}, RetriableChannelError, None),
    (502, "<html>Bad Gateway</html>", {}, RetriableChannelError, None),
    (504, json.dumps({"errors": [{"code": "Timeout", "message": "x"}]}), {},
     RetriableChannelError, None),
])
def test_throttling_and_server_errors_are_retriable_never_an_empty_page(
    amazon: AmazonConnector, api: respx.MockRouter, status: int, content: str,
    headers: dict[str, str], error: type[Exception], retry_after: float | None,
) -> None:
    api.get(ORDERS).respond(status, content=content.encode(), headers=headers)
    with pytest.raises(error) as caught:
        amazon.pull_orders(SINCE, None)
    assert isinstance(caught.value, RetriableChannelError)
    assert (status == 429) == isinstance(caught.value, ThrottledError)
    assert caught.value.retry_after == retry_after
    assert caught.value.status == status and caught.value.channel == "amz"


@pytest.mark.parametrize("body", [b"", b"{}", b"[]", b'{"orders": null}', b"not json"])
def test_a_success_without_orders_is_not_an_empty_page(
    amazon: AmazonConnector, api: respx.MockRouter, body: bytes
) -> None:
    api.get(ORDERS).respond(200, content=body)
    with pytest.raises(RetriableChannelError):
        amazon.pull_orders(SINCE, None)


@pytest.mark.parametrize(("status", "body"), [
    (403, {"errors": [{"code": "Unauthorized", "message": "Access to requested resource is "
                                                          "denied."}]}),
    (401, {"errors": [{"code": "Unauthorized", "message": "denied"}]}),
    (403, None),
])
def test_refused_credentials_are_permanent(
    amazon: AmazonConnector, api: respx.MockRouter, status: int, body: Any
) -> None:
    api.get(ORDERS).respond(status, json=body)
    with pytest.raises(PermanentChannelError, match="credentials were refused"):
        amazon.pull_orders(SINCE, None)
    api.get(ORDERS).respond(200, json={"orders": []})
    amazon.pull_orders(SINCE, None)
    assert api["token"].call_count == 2  # a refused token is not used again


def test_bad_request_is_permanent(amazon: AmazonConnector, api: respx.MockRouter) -> None:
    body = {"errors": [{"code": "InvalidInput", "message": "Invalid lastUpdatedAfter."}]}
    api.get(ORDERS).respond(400, json=body)
    with pytest.raises(PermanentChannelError, match="InvalidInput: Invalid lastUpdatedAfter"):
        amazon.pull_orders(SINCE, None)


@pytest.mark.parametrize("exc", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"),
                                 httpx.RemoteProtocolError("eof")])
def test_transport_failures_are_retriable(
    amazon: AmazonConnector, api: respx.MockRouter, exc: Exception
) -> None:
    api.get(ORDERS).mock(side_effect=exc)
    with pytest.raises(RetriableChannelError) as caught:
        amazon.pull_orders(SINCE, None)
    assert caught.value.__cause__ is exc


def test_a_redirect_is_not_followed(amazon: AmazonConnector, api: respx.MockRouter) -> None:
    api.get(ORDERS).respond(302, headers={"Location": "https://elsewhere.example/"})
    with pytest.raises(PermanentChannelError, match="redirect"):
        amazon.pull_orders(SINCE, None)


def test_error_messages_mask_secrets(api: respx.MockRouter) -> None:
    connector = make()
    body = {"errors": [{"code": "InvalidInput", "message": f"bad token {REFRESH}"}]}
    api.get(ORDERS).respond(400, json=body)
    with pytest.raises(PermanentChannelError) as caught:
        connector.pull_orders(SINCE, None)
    assert REFRESH not in str(caught.value) and "***" in str(caught.value)
    connector.close()


# -- listings --------------------------------------------------------------------------------


def listing(sku: str, quantity: int | None = 5, code: str = "DEFAULT") -> dict[str, Any]:
    availability: dict[str, Any] = {"fulfillmentChannelCode": code}
    if quantity is not None:
        availability["quantity"] = quantity
    return {"sku": sku, "summaries": [{"marketplaceId": US, "asin": "B0", "productType": "MUG",
                                       "status": ["BUYABLE"], "createdDate": "2026-01-01T00:00:00Z",
                                       "lastUpdatedDate": "2026-01-01T00:00:00Z"}],
            "fulfillmentAvailability": [availability]}


def test_read_listings_pages_and_marks_fba(
    amazon: AmazonConnector, api: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    route = api.get(ITEMS).mock(side_effect=[
        httpx.Response(200, json={"numberOfResults": 3, "items": [
            listing("MUG", 5), listing("FBA-MUG", 40, "AMAZON_NA")],
            "pagination": {"nextToken": "next"}}),
        httpx.Response(200, json={"numberOfResults": 3, "items": [
            listing("NO-OFFER", None), {"summaries": []}]}),
    ])
    found = {li.channel_sku: li for li in amazon.read_listings()}
    assert set(found) == {"MUG", "FBA-MUG", "NO-OFFER"}
    assert (found["MUG"].quantity, found["MUG"].managed, found["MUG"].ref) == (5, True, "MFN:MUG")
    fba = found["FBA-MUG"]
    assert (fba.quantity, fba.managed, fba.ref) == (40, False, "AFN:FBA-MUG")
    assert found["NO-OFFER"].quantity is None and found["NO-OFFER"].managed
    first, second = (query(c.request) for c in route.calls)
    assert first == {"marketplaceIds": [US], "includedData": ["summaries,fulfillmentAvailability"],
                     "pageSize": ["20"], "sortBy": ["sku"], "sortOrder": ["ASC"]}
    assert second == {**first, "pageToken": ["next"]}
    assert any("FBA-MUG" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)


def created_search(listings: list[tuple[str, datetime]], cap: int = 1000,
                   filter_works: bool = True) -> Callable[[httpx.Request], httpx.Response]:
    """A searchListingsItems that pages through at most ``cap`` results, like Amazon's."""
    tokens: dict[str, tuple[list[str], int]] = {}

    def respond(request: httpx.Request) -> httpx.Response:
        args = {k: v[0] for k, v in query(request).items()}
        if "pageToken" in args:
            skus, offset = tokens[args["pageToken"]]
        else:
            low = datetime.fromisoformat(args.get("createdAfter", "1900-01-01T00:00:00Z"))
            high = datetime.fromisoformat(args.get("createdBefore", "2999-01-01T00:00:00Z"))
            skus = sorted(s for s, c in listings if not filter_works or low <= c <= high)
            offset = 0
        end = min(offset + 20, len(skus), cap)
        body: dict[str, Any] = {"numberOfResults": len(skus),
                                "items": [listing(s) for s in skus[offset:end]]}
        if end < min(len(skus), cap):
            token = f"t{len(tokens)}"
            tokens[token] = (skus, end)
            body["pagination"] = {"nextToken": token}
        return httpx.Response(200, json=body)

    return respond


def test_more_than_a_search_can_page_is_read_by_creation_date(
    amazon: AmazonConnector, api: respx.MockRouter
) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    listings = [(f"SKU-{i:05d}", start + timedelta(minutes=i)) for i in range(2500)]
    api.get(ITEMS).mock(side_effect=created_search(listings))
    read = [li.channel_sku for li in amazon.read_listings()]
    assert sorted(read) == sorted(s for s, _ in listings)


def test_a_search_that_ignores_the_date_filter_reads_what_it_can(
    amazon: AmazonConnector, api: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    listings = [(f"SKU-{i:05d}", start) for i in range(1200)]
    route = api.get(ITEMS).mock(side_effect=created_search(listings, filter_works=False))
    read = list(amazon.read_listings())
    assert len(read) == 1000 and route.call_count < 60
    assert any("read 1000 of the 1200" in r.getMessage() for r in caplog.records)


def test_read_listings_errors_raise(amazon: AmazonConnector, api: respx.MockRouter) -> None:
    api.get(ITEMS).respond(429, content=b"")
    with pytest.raises(ThrottledError):
        list(amazon.read_listings())
    api.get(ITEMS).respond(200, json={"numberOfResults": 1})
    with pytest.raises(RetriableChannelError):
        list(amazon.read_listings())


# -- pushing: patches ------------------------------------------------------------------------

ACCEPTED = {"sku": "x", "status": "ACCEPTED", "submissionId": "s-1", "issues": []}


def test_small_pushes_patch_each_item_with_a_valid_body(
    amazon: AmazonConnector, api: respx.MockRouter
) -> None:
    route = api.patch(url__startswith=ITEMS).respond(200, json=ACCEPTED)
    results = amazon.push_quantities([PushItem("MUG", 7), PushItem("A/B Ü", 0),
                                      PushItem("BIG", 1_000_000)])
    assert [r.ok for r in results] == [True, True, True]
    assert [r.channel_sku for r in results] == ["MUG", "A/B Ü", "BIG"]
    paths = [c.request.url.raw_path.decode().split("?")[0] for c in route.calls]
    assert paths == [f"/listings/2021-08-01/items/{SELLER}/MUG",
                     f"/listings/2021-08-01/items/{SELLER}/A%2FB%20%C3%9C",
                     f"/listings/2021-08-01/items/{SELLER}/BIG"]
    for call, quantity in zip(route.calls, (7, 0, 1_000_000), strict=True):
        assert query(call.request) == {"marketplaceIds": [US]}
        body = json.loads(call.request.content)
        assert_valid_patch(body)
        assert body == {"productType": "PRODUCT", "patches": [{
            "op": "merge", "path": "/attributes/fulfillment_availability",
            "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": quantity}]}]}


def test_invalid_comes_as_http_200_and_fails_the_item(
    amazon: AmazonConnector, api: respx.MockRouter
) -> None:
    invalid = {"sku": "BAD", "status": "INVALID", "submissionId": "s-2", "issues": [
        {"code": "90220", "message": "'quantity' is invalid.", "severity": "ERROR",
         "categories": ["INVALID_ATTRIBUTE"]},
        {"code": "18027", "message": "image warning", "severity": "WARNING", "categories": []}]}
    api.patch(url__regex=r".*/BAD\?.*").respond(200, json=invalid)
    api.patch(url__regex=r".*/GONE\?.*").respond(404, json={"errors": [
        {"code": "NOT_FOUND", "message": "SKU not found"}]})
    api.patch(url__regex=r".*/ODD\?.*").respond(200, json={})
    api.patch(url__regex=r".*/MUG\?.*").respond(200, json=ACCEPTED)
    results = amazon.push_quantities([PushItem("BAD", 1), PushItem("GONE", 1),
                                      PushItem("ODD", 1), PushItem("MUG", 1)])
    assert [r.ok for r in results] == [False, False, False, True]
    assert isinstance(results[0].error, PermanentChannelError)
    assert "90220: 'quantity' is invalid." in str(results[0].error)
    assert "image warning" not in str(results[0].error)
    assert isinstance(results[1].error, PermanentChannelError)
    assert "SKU not found" in str(results[1].error)
    assert isinstance(results[2].error, RetriableChannelError)


def test_throttled_patches_leave_the_rest_for_later(
    amazon: AmazonConnector, api: respx.MockRouter
) -> None:
    route = api.patch(url__startswith=ITEMS).mock(side_effect=[
        httpx.Response(200, json=ACCEPTED), httpx.Response(429, json=QUOTA)])
    results = amazon.push_quantities([PushItem("A", 1), PushItem("B", 2), PushItem("C", 3)])
    assert [r.ok for r in results] == [True, False, False]
    assert all(isinstance(r.error, ThrottledError) for r in results[1:])
    assert route.call_count == 2  # C was not tried against a throttling channel


def test_whole_push_failures_raise(amazon: AmazonConnector, api: respx.MockRouter) -> None:
    api.patch(url__startswith=ITEMS).respond(503, content=b"")
    with pytest.raises(RetriableChannelError):
        amazon.push_quantities([PushItem("A", 1), PushItem("B", 1)])
    api.patch(url__startswith=ITEMS).respond(403, json={"errors": [
        {"code": "Unauthorized", "message": "Access to requested resource is denied."}]})
    with pytest.raises(PermanentChannelError):
        amazon.push_quantities([PushItem("A", 1), PushItem("B", 1)])


def test_fba_and_negative_items_are_refused_without_a_call(
    amazon: AmazonConnector, api: respx.MockRouter
) -> None:
    api.get(ITEMS).respond(200, json={"numberOfResults": 2, "items": [
        listing("FBA-READ", 3, "AMAZON_EU"), listing("MFN", 3)]})
    list(amazon.read_listings())
    patched = api.patch(url__startswith=ITEMS).respond(200, json=ACCEPTED)
    results = amazon.push_quantities([
        PushItem("FBA-REF", 5, ref="AFN:FBA-REF"), PushItem("FBA-READ", 5, ref="MFN:FBA-READ"),
        PushItem("NEG", -1), PushItem("MFN", 2, ref="MFN:MFN")])
    assert [r.ok for r in results] == [False, False, False, True]
    assert all(isinstance(r.error, PermanentChannelError) for r in results[:3])
    assert "FBA" in str(results[0].error) and "FBA" in str(results[1].error)
    assert [c.request.url.path.rsplit("/", 1)[-1] for c in patched.calls] == ["MFN"]


def test_patches_keep_to_the_operation_rate(api: respx.MockRouter) -> None:
    sleeps = Sleeps()
    connector = make(sleep=sleeps)
    api.patch(url__startswith=ITEMS).respond(200, json=ACCEPTED)
    connector.push_quantities([PushItem(f"S{i}", 1) for i in range(7)])
    assert len(sleeps) == 2 and 0.15 < sleeps[0] < 0.25  # burst 5, then 5 per second
    api.patch(url__startswith=ITEMS).respond(200, json=ACCEPTED,
                                             headers={"x-amzn-RateLimit-Limit": "0.5"})
    sleeps.clear()
    connector.push_quantities([PushItem(f"S{i}", 1) for i in range(3)])
    assert sleeps and max(sleeps) > 1.5  # Amazon said 0.5/s for this seller: 2 s apart
    connector.close()


# -- pushing: one feed -----------------------------------------------------------------------


def report(*issues: dict[str, Any], accepted: int, total: int) -> dict[str, Any]:
    return {"header": {"sellerId": SELLER, "version": "2.0", "feedId": "F1"},
            "issues": list(issues),
            "summary": {"errors": len(issues), "warnings": 0, "messagesProcessed": total,
                        "messagesAccepted": accepted, "messagesInvalid": total - accepted}}


def feed_routes(api: respx.MockRouter, statuses: list[str], body: dict[str, Any],
                gzipped: bool = True) -> dict[str, respx.Route]:
    jsonschema.Draft7Validator(REPORT_SCHEMA).validate(body)
    content = json.dumps(body).encode()
    document: dict[str, Any] = {"feedDocumentId": "rep-1", "url": REPORT}
    if gzipped:
        content, document["compressionAlgorithm"] = gzip.compress(content), "GZIP"
    feeds = [{"feedId": "F1", "feedType": "JSON_LISTINGS_FEED",
              "createdTime": "2026-03-01T10:00:00Z", "processingStatus": s,
              **({"resultFeedDocumentId": "rep-1"} if s in ("DONE", "FATAL") else {})}
             for s in statuses]
    return {
        "document": api.post(f"{FEEDS}/documents").respond(
            201, json={"feedDocumentId": "doc-1", "url": UPLOAD + "?X-Amz-Signature=abc"}),
        "upload": api.put(url__startswith=UPLOAD).respond(200),
        "feed": api.post(f"{FEEDS}/feeds").respond(202, json={"feedId": "F1"}),
        "poll": api.get(f"{FEEDS}/feeds/F1").mock(
            side_effect=[httpx.Response(200, json=f) for f in feeds]),
        "report_doc": api.get(f"{FEEDS}/documents/rep-1").respond(200, json=document),
        "report": api.get(REPORT).respond(200, content=content),
    }


def test_more_than_the_threshold_goes_as_one_feed(api: respx.MockRouter) -> None:
    sleeps = Sleeps()
    connector = make(sleep=sleeps, feed_threshold=2, feed_poll_interval=1)
    body = report({"messageId": 2, "sku": "TASSE-☕", "code": "90220", "severity": "ERROR",
                   "message": "'fulfillment_availability' is invalid."},
                  {"messageId": 3, "sku": "BOWL", "code": "18027", "severity": "WARNING",
                   "message": "image"}, accepted=2, total=3)
    routes = feed_routes(api, ["IN_QUEUE", "IN_PROGRESS", "DONE"], body)
    patches = api.patch(url__startswith=ITEMS).respond(200, json=ACCEPTED)
    items = [PushItem("MUG", 4), PushItem("TASSE-☕", 2), PushItem("BOWL", 0)]
    results = connector.push_quantities(items)
    assert [r.ok for r in results] == [True, False, True]
    assert isinstance(results[1].error, PermanentChannelError)
    assert "90220" in str(results[1].error)
    assert patches.call_count == 0 and routes["feed"].call_count == 1
    assert sleeps.count(1) == 2  # polled until DONE, within the push's short wait
    created = json.loads(routes["feed"].calls.last.request.content)
    assert created["feedType"] == "JSON_LISTINGS_FEED" and created["inputFeedDocumentId"] == "doc-1"
    assert created["marketplaceIds"] == [US]
    upload = routes["upload"].calls.last.request
    assert upload.headers["content-type"] == "application/json; charset=UTF-8"
    assert "x-amz-access-token" not in upload.headers  # the presigned URL needs no token
    document = json.loads(upload.content.decode("utf-8"))  # bytes, UTF-8: not Latin-1
    assert_valid_feed(document)
    assert [(m["messageId"], m["sku"]) for m in document["messages"]] == [
        (1, "MUG"), (2, "TASSE-☕"), (3, "BOWL")]
    assert document["header"]["sellerId"] == SELLER
    connector.close()


def test_a_plain_report_and_feed_level_errors(api: respx.MockRouter) -> None:
    connector = make(feed_threshold=0)
    body = report({"severity": "ERROR", "code": "4000", "message": "feed is malformed"},
                  accepted=0, total=2)
    feed_routes(api, ["DONE"], body, gzipped=False)
    results = connector.push_quantities([PushItem("A", 1), PushItem("B", 1)])
    assert [r.ok for r in results] == [False, False]
    assert all("feed is malformed" in str(r.error) for r in results)
    connector.close()


@pytest.mark.parametrize(("statuses", "error"), [
    (["IN_PROGRESS", "FATAL"], PermanentChannelError),
    (["CANCELLED"], RetriableChannelError),
    (["IN_QUEUE"] * 5, RetriableChannelError),  # still running when feed_timeout runs out
])
def test_a_feed_that_does_not_finish_well_fails_every_item(
    api: respx.MockRouter, statuses: list[str], error: type[Exception]
) -> None:
    """The push waits a few seconds (feed_wait); a feed still processing comes back pending,
    and each later cycle asks once, until it is done or feed_timeout has passed."""
    sleeps, start = Sleeps(), datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    now = [start]
    connector = AmazonConnector(
        "amz", settings(feed_threshold=0, feed_poll_interval=10, feed_timeout=35),
        sleep=sleeps, monotonic=sleeps.now, clock=lambda: now[0])
    fatal = report({"severity": "ERROR", "code": "FATAL", "message": "cannot parse"},
                   accepted=0, total=0)
    feed_routes(api, statuses, fatal)
    items = [PushItem("A", 1), PushItem("B", 1)]
    results: list[PushResult] | None = connector.push_quantities(items)
    cycles = 0
    while results is None or any(r.pending for r in results):
        assert results is None or {r.pending for r in results} == {"F1"}
        now[0] += timedelta(seconds=10)  # the next cycle
        cycles += 1
        results = connector.push_outcomes("F1", items, start)
    assert [r.ok for r in results] == [False, False]
    assert all(type(r.error) is error for r in results)
    assert cycles == {"IN_PROGRESS": 1, "CANCELLED": 0, "IN_QUEUE": 4}[statuses[0]]
    assert sleeps == []  # the 10 s poll does not fit the push's 5 s wait: no sleeping
    connector.close()


def test_report_results_match_messages() -> None:
    items = [PushItem("A", 1), PushItem("B", 1), PushItem("C", 1), PushItem("D", 1)]
    results = report_results("amz", "F1", items, report(
        {"messageId": 1, "severity": "ERROR", "message": "bad A"},
        {"sku": "C", "severity": "ERROR", "message": "bad C"},  # no messageId: by SKU
        {"messageId": 2, "severity": "WARNING", "message": "only a warning"},
        {"severity": "ERROR", "message": "feed-level, yet the rest was accepted"},
        accepted=2, total=4))
    assert [r.ok for r in results] == [False, True, False, True]
    partial = report_results("amz", "F1", items, report(accepted=1, total=2))
    assert [r.ok for r in partial] == [False] * 4  # only 2 of 4 processed: retry
    assert all(isinstance(r.error, RetriableChannelError) for r in partial)


def test_feed_document_validates_for_any_size() -> None:
    items = [PushItem(f"SKU-{i}", i) for i in range(250)]
    document = feed_document(SELLER, "PRODUCT", items)
    assert_valid_feed(document)
    assert len(document["messages"]) == 250


def test_feed_failures_before_the_feed_exists_raise(api: respx.MockRouter) -> None:
    connector = make(feed_threshold=0)
    api.post(f"{FEEDS}/documents").respond(429, json=QUOTA)
    with pytest.raises(ThrottledError):
        connector.push_quantities([PushItem("A", 1)])
    api.post(f"{FEEDS}/documents").respond(201, json={"feedDocumentId": "doc-1", "url": UPLOAD})
    api.put(UPLOAD).respond(403, content=b"<Error>SignatureDoesNotMatch</Error>")
    with pytest.raises(RetriableChannelError, match="presigned URL was refused"):
        connector.push_quantities([PushItem("A", 1)])  # expired: a new document next time
    api.put(UPLOAD).respond(400, content=b"<Error>InvalidArgument</Error>")
    with pytest.raises(PermanentChannelError):
        connector.push_quantities([PushItem("A", 1)])
    connector.close()


# -- Amazon's own example answers ------------------------------------------------------------


def _example(model: str, path: str, method: str, status: str = "200") -> Any:
    response = _schema(model)["paths"][path][method]["responses"][status]
    if "examples" in response:
        return response["examples"]["application/json"]
    return response["x-amzn-api-sandbox"]["static"][0]["response"]


def test_amazons_example_answers_are_understood(
    amazon: AmazonConnector, api: respx.MockRouter
) -> None:
    orders = _example("orders_2026-01-01.json", "/orders/2026-01-01/orders", "get")
    listings = _example("listingsItems_2021-08-01.json", "/listings/2021-08-01/items/{sellerId}",
                        "get")
    patched = _example("listingsItems_2021-08-01.json",
                       "/listings/2021-08-01/items/{sellerId}/{sku}", "patch")
    api.get(ORDERS).respond(200, json=orders)
    api.get(ITEMS).respond(200, json={**listings, "pagination": None})
    api.patch(url__startswith=ITEMS).respond(200, json=patched)
    page = amazon.pull_orders(SINCE, None)
    assert page.bad_records == [] and page.next_page is not None  # the example has a nextToken
    assert [(s.channel_sku, s.ordered, s.shipped) for s in page.lines] == [
        ("ECHO-DOT-4-CHARCOAL", 2, 2), ("FIRE-TV-4K-2021", 1, 1)]  # SHIPPED
    read = list(amazon.read_listings())
    assert read and all(li.channel_sku for li in read)
    assert read[0].channel_sku == "GM-ZDPI-9B4E" and read[0].quantity == 100
    [result] = amazon.push_quantities([PushItem("GM-ZDPI-9B4E", 3)])
    assert result.ok  # status ACCEPTED


def test_an_invalid_environment_at_import_is_a_clear_error() -> None:
    """The library reads SP_API_DEFAULT_MARKETPLACE when imported and fails on a bad value."""
    env = {**os.environ, "SP_API_DEFAULT_MARKETPLACE": "XX"}
    code = "import connectors.amazon"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          cwd=Path(__file__).parent.parent, check=False)
    assert done.returncode != 0
    assert "ChannelSyncError" in done.stderr and "SP_API_DEFAULT_MARKETPLACE" in done.stderr
