"""WooCommerce connector tests, through the real HTTP path (respx intercepts httpx)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import respx
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from channelsync.config import parse_config
from channelsync.connector import BadRecord, Connector, OrderLineSnapshot, PushItem
from channelsync.errors import (
    ConfigError,
    PermanentChannelError,
    RetriableChannelError,
    ThrottledError,
)
from channelsync.ledger.stock import StockRow
from channelsync.service.app import App
from channelsync.service.reports import stock_list
from connectors._http import parse_retry_after
from connectors.woocommerce import WooCommerceConnector
from connectors.woocommerce.emulator import WooCommerceEmulator
from tests.ledger_helpers import check_invariants

KEY = "ck_0123456789abcdef0123456789abcdef01234567"
SECRET = "cs_fedcba9876543210fedcba9876543210fedcba98"
HTTPS_STORE = "https://shop.example"
HTTP_STORE = "http://127.0.0.1:8101"
API = "/wp-json/wc/v3"
SINCE = datetime(2026, 3, 1, 9, 58, 30, 123456, tzinfo=UTC)
MODIFIED = "2026-03-01T10:00:00"


def make(endpoint: str = HTTPS_STORE, **settings: Any) -> WooCommerceConnector:
    values = {"consumer_key": KEY, "consumer_secret": SECRET, **settings}
    return WooCommerceConnector(
        "shop", WooCommerceConnector.Settings.model_validate(values), endpoint=endpoint
    )


@pytest.fixture
def woo() -> Iterator[WooCommerceConnector]:
    connector = make()
    yield connector
    connector.close()


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=HTTPS_STORE + API, assert_all_called=True) as router:
        yield router


def line(line_id: int, sku: str, quantity: Any) -> dict[str, Any]:
    return {"id": line_id, "sku": sku, "quantity": quantity, "product_id": 7, "variation_id": 0}


def order(
    order_id: int, status: str, lines: list[dict[str, Any]], modified: str = MODIFIED
) -> dict[str, Any]:
    return {"id": order_id, "status": status, "date_modified_gmt": modified, "line_items": lines}


def page(body: Any, total_pages: int = 1) -> httpx.Response:
    return httpx.Response(200, json=body, headers={"X-WP-TotalPages": str(total_pages)})


def assert_no_secret(*texts: object) -> None:
    for text in texts:
        assert KEY not in str(text)
        assert SECRET not in str(text)


# -- the contract ---------------------------------------------------------------------------


def test_satisfies_the_connector_protocol(woo: WooCommerceConnector) -> None:
    assert isinstance(woo, Connector)
    assert woo.capabilities.push_batch_size == 100
    assert woo.capabilities.compare_and_set is False
    assert woo.capabilities.webhooks is True
    assert woo.emulator == "connectors.woocommerce.emulator:WooCommerceEmulator"


def test_settings_forbid_unknown_keys_and_mask_secrets() -> None:
    with pytest.raises(ValidationError):
        WooCommerceConnector.Settings.model_validate(
            {"consumer_key": KEY, "consumer_secret": SECRET, "password": "x"}
        )
    settings = WooCommerceConnector.Settings.model_validate(
        {"consumer_key": KEY, "consumer_secret": SECRET}
    )
    assert settings.signature_method == "HMAC-SHA256"
    assert_no_secret(repr(settings), str(settings))


@pytest.mark.parametrize("endpoint", ["", "ftp://shop.example", "https://ck:cs@shop.example"])
def test_bad_endpoint_is_a_config_error(endpoint: str) -> None:
    with pytest.raises(ConfigError) as info:
        make(endpoint)
    assert "endpoint" in str(info.value)
    assert "cs@" not in str(info.value)


def test_repr_shows_name_and_endpoint_only() -> None:
    for endpoint in (HTTPS_STORE, HTTP_STORE + "/"):
        connector = make(endpoint)
        text = repr(connector) + str(connector) + repr(connector._api) + repr(vars(connector))
        assert_no_secret(text)
        assert (
            repr(connector)
            == f"WooCommerceConnector(name='shop', endpoint={endpoint.rstrip('/')!r})"
        )
        connector.close()


def test_custom_transport_is_used() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return page([])

    settings = WooCommerceConnector.Settings(consumer_key=KEY, consumer_secret=SECRET)
    connector = WooCommerceConnector(
        "shop", settings, endpoint=HTTPS_STORE, transport=httpx.MockTransport(handler)
    )
    assert connector.pull_orders(SINCE, None).lines == []
    assert seen[0].url.path == API + "/orders"
    assert seen[0].headers["User-Agent"].startswith("channelsync/")


# -- pulling orders -------------------------------------------------------------------------


def test_pull_sends_the_query(woo: WooCommerceConnector, api: respx.MockRouter) -> None:
    route = api.get("/orders").mock(return_value=page([]))
    since = SINCE.astimezone(timezone(timedelta(hours=2)))  # any zone: sent as UTC
    result = woo.pull_orders(since, None)
    params = route.calls.last.request.url.params
    assert params["modified_after"] == "2026-03-01T09:58:30"
    assert params["dates_are_gmt"] == "true"
    assert params["orderby"] == "modified"
    assert params["order"] == "asc"
    assert params["per_page"] == "100"
    assert params["page"] == "1"
    assert result.lines == [] and result.next_page is None and result.resume_at is None


def test_pull_pages_by_keyset_from_the_newest_second(
    woo: WooCommerceConnector, api: respx.MockRouter
) -> None:
    late = "2026-03-01T10:00:05"
    first_page = [order(i, "processing", [line(i * 10, f"SKU{i}", 1)], late if i > 98 else
                        MODIFIED) for i in range(1, 101)]
    answers = iter([page(first_page, total_pages=2),
                    page([order(101, "processing", [line(1010, "LAST", 2)],
                                "2026-03-01T12:00:00")], total_pages=1)])
    route = api.get("/orders").mock(side_effect=lambda _request: next(answers))
    first = woo.pull_orders(SINCE, None)
    assert len(first.lines) == 100 and first.next_page is not None
    second = woo.pull_orders(SINCE, first.next_page)
    assert second.next_page is None
    assert [(x.order_id, x.line_id, x.channel_sku, x.ordered) for x in second.lines] == [
        ("101", "1010", "LAST", 2)
    ]
    assert second.resume_at == datetime(2026, 3, 1, 12, tzinfo=UTC)
    sent = [call.request.url.params for call in route.calls]
    # Not page 2 of the same query: orders changing meanwhile would shift the offsets.
    assert [p["page"] for p in sent] == ["1", "1"]
    assert sent[1]["modified_after"] == "2026-03-01T10:00:04"
    assert sent[1]["exclude"] == "99,100" and "exclude" not in sent[0]


def test_a_full_page_inside_one_second_goes_on_by_excluding(
    woo: WooCommerceConnector, api: respx.MockRouter
) -> None:
    one_second = [order(i, "processing", [line(i, "A", 1)]) for i in range(1, 101)]
    route = api.get("/orders").mock(return_value=page(one_second, total_pages=2))
    token = woo.pull_orders(SINCE, None).next_page
    token = woo.pull_orders(SINCE, token).next_page  # the same second again
    woo.pull_orders(SINCE, token)
    excluded = [call.request.url.params.get("exclude", "") for call in route.calls]
    assert excluded[0] == "" and len(excluded[2].split(",")) == 200


def test_pull_maps_a_line(woo: WooCommerceConnector, api: respx.MockRouter) -> None:
    api.get("/orders").mock(return_value=page([order(7, "processing", [line(70, "MUG", 3)])]))
    assert woo.pull_orders(SINCE, None).lines == [
        OrderLineSnapshot(
            order_id="7",
            line_id="70",
            channel_sku="MUG",
            ordered=3,
            status="processing",
            changed_at=datetime(2026, 3, 1, 10, tzinfo=UTC),
        )
    ]


@pytest.mark.parametrize(
    ("status", "shipped", "cancelled", "ignore"),
    [
        ("pending", 0, 0, False),
        ("on-hold", 0, 0, False),
        ("processing", 0, 0, False),
        ("completed", 3, 0, False),
        ("cancelled", 0, 3, False),
        ("failed", 0, 3, False),
        ("refunded", 0, 3, False),
        ("checkout-draft", 0, 0, True),
    ],
)
def test_status_mapping(
    woo: WooCommerceConnector,
    api: respx.MockRouter,
    status: str,
    shipped: int,
    cancelled: int,
    ignore: bool,
) -> None:
    api.get("/orders").mock(return_value=page([order(1, status, [line(10, "MUG", 3)])]))
    result = woo.pull_orders(SINCE, None)
    assert result.bad_records == []
    [snapshot] = result.lines
    assert (snapshot.status, snapshot.ordered) == (status, 3)
    assert (snapshot.shipped, snapshot.cancelled, snapshot.ignore) == (shipped, cancelled, ignore)


def test_bad_records_are_reported_and_the_rest_returned(
    woo: WooCommerceConnector, api: respx.MockRouter
) -> None:
    no_date = order(3, "processing", [line(30, "MUG", 1)])
    del no_date["date_modified_gmt"]
    orders = [
        order(
            1,
            "processing",
            [line(10, "MUG", 2), line(11, "", 1), line(12, "TEE", -1), line(13, "CAP", "2")],
        ),
        order(2, "shipped-by-plugin", [line(20, "MUG", 1)], "2026-03-01T11:00:00+00:00"),
        no_date,
        order(4, "completed", [line(40, "TEE", 1)], "2026-03-01T10:30:00Z"),
        "not an order",
    ]
    api.get("/orders").mock(return_value=page(orders))
    result = woo.pull_orders(SINCE, None)
    assert [(x.order_id, x.line_id) for x in result.lines] == [("1", "10"), ("4", "40")]
    bad = {record.key: record for record in result.bad_records}
    assert set(bad) == {"1/11", "1/12", "1/13", "2", "3", "?"}
    assert all(isinstance(record, BadRecord) for record in bad.values())
    assert "sku" in bad["1/11"].reason
    assert "-1" in bad["1/12"].reason
    assert "'2'" in bad["1/13"].reason
    assert "unknown order status" in bad["2"].reason
    assert bad["2"].raw == orders[1]
    assert "date_modified_gmt" in bad["3"].reason
    assert result.resume_at == datetime(2026, 3, 1, 11, tzinfo=UTC)


def test_invalid_page_token(woo: WooCommerceConnector) -> None:
    with pytest.raises(PermanentChannelError):
        woo.pull_orders(SINCE, "two")


# -- error mapping --------------------------------------------------------------------------


def test_429_with_retry_after_seconds(woo: WooCommerceConnector, api: respx.MockRouter) -> None:
    api.get("/orders").mock(return_value=httpx.Response(429, headers={"Retry-After": "7"}))
    with pytest.raises(ThrottledError) as info:
        woo.pull_orders(SINCE, None)
    assert info.value.retry_after == 7.0
    assert info.value.status == 429 and info.value.channel == "shop"


def test_429_with_retry_after_date(woo: WooCommerceConnector, api: respx.MockRouter) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    api.get("/orders").mock(return_value=httpx.Response(429, headers={"Retry-After": when}))
    with pytest.raises(ThrottledError) as info:
        woo.pull_orders(SINCE, None)
    assert info.value.retry_after is not None and 100 < info.value.retry_after <= 120


def test_parse_retry_after() -> None:
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert parse_retry_after("30", now) == 30.0
    assert parse_retry_after("Sun, 01 Mar 2026 12:01:00 GMT", now) == 60.0
    assert parse_retry_after("Sun, 01 Mar 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_retriable(woo: WooCommerceConnector, api: respx.MockRouter, status: int) -> None:
    api.get("/orders").mock(return_value=httpx.Response(status, text="<html>down</html>"))
    with pytest.raises(RetriableChannelError) as info:
        woo.pull_orders(SINCE, None)
    assert not isinstance(info.value, ThrottledError)
    assert info.value.status == status


@pytest.mark.parametrize(
    "failure", [httpx.ReadTimeout, httpx.ConnectError, httpx.RemoteProtocolError]
)
def test_transport_failures_are_retriable(
    woo: WooCommerceConnector, api: respx.MockRouter, failure: type[httpx.HTTPError]
) -> None:
    api.get("/orders").mock(side_effect=failure("boom"))
    with pytest.raises(RetriableChannelError) as info:
        woo.pull_orders(SINCE, None)
    assert isinstance(info.value.__cause__, failure)


def test_html_body_is_a_malformed_response(
    woo: WooCommerceConnector, api: respx.MockRouter
) -> None:
    html = "<!DOCTYPE html><html><body>" + "maintenance " * 50 + "</body></html>"
    api.get("/orders").mock(return_value=httpx.Response(200, text=html))
    with pytest.raises(RetriableChannelError) as info:
        woo.pull_orders(SINCE, None)
    message = str(info.value)
    assert "malformed response" in message and "<!DOCTYPE html>" in message
    assert len(message) < 300
    assert isinstance(info.value.__cause__, ValueError)


def test_json_that_is_not_a_list_is_malformed(
    woo: WooCommerceConnector, api: respx.MockRouter
) -> None:
    api.get("/orders").mock(return_value=page({"orders": []}))
    with pytest.raises(RetriableChannelError, match="malformed"):
        woo.pull_orders(SINCE, None)


@pytest.mark.parametrize("endpoint", [HTTPS_STORE, HTTP_STORE])
@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_are_permanent_and_secret_free(endpoint: str, status: int) -> None:
    connector = make(endpoint)
    body = {
        "code": "woocommerce_rest_authentication_error",
        "message": f"Consumer key {KEY} / {SECRET} is invalid.",  # a server that echoes
        "data": {"status": status},
    }
    with respx.mock(base_url=endpoint + API) as router:
        router.get("/orders").mock(return_value=httpx.Response(status, json=body))
        with pytest.raises(PermanentChannelError) as info:
            connector.pull_orders(SINCE, None)
    error = info.value
    assert "woocommerce_rest_authentication_error" in str(error)
    assert_no_secret(str(error), repr(error), error.args, repr(connector))
    connector.close()


def test_other_4xx_is_permanent(woo: WooCommerceConnector, api: respx.MockRouter) -> None:
    body = {"code": "rest_no_route", "message": "No route was found.", "data": {"status": 404}}
    api.get("/orders").mock(return_value=httpx.Response(404, json=body))
    with pytest.raises(PermanentChannelError, match="rest_no_route") as info:
        woo.pull_orders(SINCE, None)
    assert info.value.status == 404


def test_malformed_snippets_mask_secrets() -> None:
    connector = make(HTTP_STORE)
    echo = f"<html>GET /orders?oauth_consumer_key={KEY}&oauth_signature=abc%3D failed</html>"
    with respx.mock(base_url=HTTP_STORE + API) as router:
        router.get("/orders").mock(return_value=httpx.Response(200, text=echo))
        with pytest.raises(RetriableChannelError) as info:
            connector.pull_orders(SINCE, None)
    assert_no_secret(str(info.value))
    assert "abc%3D" not in str(info.value)
    connector.close()


# -- authentication -------------------------------------------------------------------------


def _enc(value: str) -> str:
    return urllib.parse.quote(value, safe="-._~")


def verify_oauth_signature(request: httpx.Request, consumer_secret: str) -> dict[str, str]:
    """An independent verifier, written the way WooCommerce checks it (RFC 5849 3.4)."""
    parts = urllib.parse.urlsplit(str(request.url))
    params = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True))
    received = params.pop("oauth_signature")
    normalized = "&".join(
        f"{k}={v}" for k, v in sorted((_enc(k), _enc(v)) for k, v in params.items())
    )
    base_uri = f"{parts.scheme}://{parts.netloc.lower()}{parts.path}"
    base = "&".join([request.method, _enc(base_uri), _enc(normalized)])
    algorithm = {"HMAC-SHA1": hashlib.sha1, "HMAC-SHA256": hashlib.sha256}[
        params["oauth_signature_method"]
    ]
    digest = hmac.new(f"{consumer_secret}&".encode(), base.encode(), algorithm).digest()
    assert hmac.compare_digest(received, base64.b64encode(digest).decode())
    return params


@pytest.mark.parametrize("method", ["HMAC-SHA256", "HMAC-SHA1"])
def test_oauth_signature_over_http(method: str) -> None:
    connector = make(HTTP_STORE, signature_method=method)
    with respx.mock(base_url=HTTP_STORE + API, assert_all_called=True) as router:
        route = router.get("/orders").mock(return_value=page([]))
        connector.pull_orders(SINCE, None)
        connector.pull_orders(SINCE, None)
    first, second = (call.request for call in route.calls)
    params = verify_oauth_signature(first, SECRET)
    assert params["oauth_consumer_key"] == KEY
    assert params["oauth_signature_method"] == method
    assert params["oauth_version"] == "1.0"
    assert abs(int(params["oauth_timestamp"]) - time.time()) < 60
    assert params["modified_after"] == "2026-03-01T09:58:30"  # signed along with the oauth_*
    assert verify_oauth_signature(second, SECRET)["oauth_nonce"] != params["oauth_nonce"]
    assert "Authorization" not in first.headers
    connector.close()


def test_oauth_signs_awkward_values_and_post_requests() -> None:
    connector = make(HTTP_STORE)
    sku = "MUG+RED 1/2~é&x=y"
    with respx.mock(base_url=HTTP_STORE + API, assert_all_called=True) as router:
        lookup = router.get("/products").mock(
            return_value=page([{"id": 5, "sku": sku, "parent_id": 0}])
        )
        batch = router.post("/products/batch").mock(
            return_value=httpx.Response(200, json={"update": [{"id": 5}]})
        )
        [result] = connector.push_quantities([PushItem(sku, 4)])
    assert result.ok
    assert verify_oauth_signature(lookup.calls.last.request, SECRET)["sku"] == sku
    verify_oauth_signature(batch.calls.last.request, SECRET)
    connector.close()


def test_oauth_query_never_reaches_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    connector = make(HTTP_STORE)
    with respx.mock(base_url=HTTP_STORE + API) as router:
        router.get("/orders").mock(return_value=page([]))
        connector.pull_orders(SINCE, None)
    assert "HTTP Request" in caplog.text
    assert_no_secret(caplog.text)
    assert "oauth_signature=***" in caplog.text
    connector.close()


def test_basic_auth_over_https(woo: WooCommerceConnector, api: respx.MockRouter) -> None:
    route = api.get("/orders").mock(return_value=page([]))
    woo.pull_orders(SINCE, None)
    request = route.calls.last.request
    token = base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {token}"
    assert not any(name.startswith("oauth_") for name in request.url.params)


# -- listings -------------------------------------------------------------------------------


def test_read_listings_walks_products_and_variations(
    woo: WooCommerceConnector, api: respx.MockRouter
) -> None:
    products = {
        "1": [
            {"id": 1, "sku": "MUG", "type": "simple", "manage_stock": True, "stock_quantity": 5},
            {"id": 2, "sku": "", "type": "simple", "manage_stock": True, "stock_quantity": 1},
            {"id": 3, "sku": "POSTER", "type": "simple", "manage_stock": False},
        ],
        "2": [{"id": 45, "sku": "TEE", "type": "variable", "manage_stock": False}],
    }
    variations = [
        {"id": 123, "sku": "TEE-S", "manage_stock": True, "stock_quantity": 2},
        {"id": 124, "sku": "TEE-M", "manage_stock": "parent", "stock_quantity": 9},
        {"id": 125, "sku": "", "manage_stock": True, "stock_quantity": 1},
    ]
    product_route = api.get("/products").mock(
        side_effect=lambda request: page(products[request.url.params["page"]], total_pages=2)
    )
    api.get("/products/45/variations").mock(return_value=page(variations))
    listings = [(x.channel_sku, x.quantity, x.ref) for x in woo.read_listings()]
    assert listings == [
        ("MUG", 5, "1"),
        ("POSTER", None, "3"),
        ("TEE", None, "45"),
        ("TEE-S", 2, "45/123"),
        ("TEE-M", None, "45/124"),
    ]
    assert [call.request.url.params["per_page"] for call in product_route.calls] == ["100"] * 2


# -- pushing --------------------------------------------------------------------------------


def echo_batch(request: httpx.Request) -> httpx.Response:
    update = json.loads(request.content)["update"]
    return httpx.Response(200, json={"update": [{"id": u["id"], **u} for u in update]})


def test_push_batches_simple_products_by_100(
    woo: WooCommerceConnector, api: respx.MockRouter
) -> None:
    route = api.post("/products/batch").mock(side_effect=echo_batch)
    items = [PushItem(f"SKU{i}", i % 7, ref=str(i)) for i in range(1, 251)]
    results = woo.push_quantities(items)
    bodies = [json.loads(call.request.content) for call in route.calls]
    assert [len(body["update"]) for body in bodies] == [100, 100, 50]
    assert bodies[0]["update"][0] == {"id": 1, "stock_quantity": 1, "manage_stock": True}
    assert all(set(body) == {"update"} for body in bodies)
    assert [(r.channel_sku, r.ok, r.ref) for r in results] == [
        (item.channel_sku, True, item.ref) for item in items
    ]


def test_push_sends_variations_to_their_parent(
    woo: WooCommerceConnector, api: respx.MockRouter
) -> None:
    simple = api.post("/products/batch").mock(side_effect=echo_batch)
    parent45 = api.post("/products/45/variations/batch").mock(side_effect=echo_batch)
    parent46 = api.post("/products/46/variations/batch").mock(side_effect=echo_batch)
    items = [
        PushItem("TEE-S", 1, ref="45/123"),
        PushItem("MUG", 2, ref="7"),
        PushItem("CAP-RED", 3, ref="46/200"),
        PushItem("TEE-M", 0, ref="45/124"),
    ]
    results = woo.push_quantities(items)
    assert all(result.ok for result in results)
    assert [r.channel_sku for r in results] == ["TEE-S", "MUG", "CAP-RED", "TEE-M"]
    sent = json.loads(parent45.calls.last.request.content)["update"]
    assert [(u["id"], u["stock_quantity"]) for u in sent] == [(123, 1), (124, 0)]
    assert json.loads(parent46.calls.last.request.content)["update"][0]["id"] == 200
    assert json.loads(simple.calls.last.request.content)["update"][0]["id"] == 7


def test_per_item_errors(woo: WooCommerceConnector, api: respx.MockRouter) -> None:
    error = {
        "code": "woocommerce_rest_product_invalid_id",
        "message": "Invalid ID.",
        "data": {"status": 400},
    }
    answer = {"update": [{"id": 1, "stock_quantity": 4}, {"id": 2, "error": error}]}
    api.post("/products/batch").mock(return_value=httpx.Response(200, json=answer))
    ok, failed = woo.push_quantities([PushItem("A", 4, ref="1"), PushItem("B", 4, ref="2")])
    assert ok.ok and ok.error is None
    assert not failed.ok and isinstance(failed.error, PermanentChannelError)
    assert "woocommerce_rest_product_invalid_id" in str(failed.error)
    assert failed.channel_sku == "B"


def test_negative_quantity_and_bad_ref_are_never_sent(woo: WooCommerceConnector) -> None:
    with respx.mock(assert_all_mocked=True):  # any request would fail the test
        negative, bad_ref = woo.push_quantities(
            [PushItem("MUG", -1, ref="5"), PushItem("TEE", 3, ref="x/y")]
        )
    assert not negative.ok and isinstance(negative.error, PermanentChannelError)
    assert "negative" in str(negative.error)
    assert not bad_ref.ok and isinstance(bad_ref.error, PermanentChannelError)


def test_sku_lookup_is_cached(woo: WooCommerceConnector, api: respx.MockRouter) -> None:
    found = {
        "MUG": [{"id": 11, "sku": "MUG", "parent_id": 0, "type": "simple"}],
        "TEE-RED": [{"id": 31, "sku": "TEE-RED", "parent_id": 30, "type": "variation"}],
        "GHOST": [],
    }
    lookup = api.get("/products").mock(
        side_effect=lambda request: page(found[request.url.params["sku"]])
    )
    api.post("/products/batch").mock(side_effect=echo_batch)
    variations = api.post("/products/30/variations/batch").mock(side_effect=echo_batch)
    items = [PushItem("MUG", 5), PushItem("TEE-RED", 2), PushItem("GHOST", 1)]
    mug, tee, ghost = woo.push_quantities(items)
    assert (mug.ok, mug.ref) == (True, "11")
    assert (tee.ok, tee.ref) == (True, "30/31")
    assert json.loads(variations.calls.last.request.content)["update"][0]["id"] == 31
    assert not ghost.ok and isinstance(ghost.error, PermanentChannelError)
    assert "no product with sku 'GHOST'" in str(ghost.error)
    assert lookup.call_count == 3
    again = woo.push_quantities(items[:2])
    assert [r.ok for r in again] == [True, True]
    assert lookup.call_count == 3  # the second push found both refs in the cache


def test_a_rejected_item_forgets_its_cached_ref(
    woo: WooCommerceConnector, api: respx.MockRouter
) -> None:
    lookup = api.get("/products").mock(return_value=page([{"id": 11, "sku": "MUG"}]))
    gone = {"update": [{"id": 11, "error": {"code": "woocommerce_rest_product_invalid_id"}}]}
    api.post("/products/batch").mock(
        side_effect=[httpx.Response(200, json=gone), httpx.Response(200, json=gone)]
    )
    assert not woo.push_quantities([PushItem("MUG", 5)])[0].ok
    assert not woo.push_quantities([PushItem("MUG", 5)])[0].ok
    assert lookup.call_count == 2


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(429, headers={"Retry-After": "3"}), ThrottledError),
        (httpx.Response(503, text="busy"), RetriableChannelError),
        (httpx.Response(200, json={"update": []}), RetriableChannelError),
    ],
)
def test_whole_batch_failures_raise(
    woo: WooCommerceConnector,
    api: respx.MockRouter,
    response: httpx.Response,
    error: type[Exception],
) -> None:
    route = api.post("/products/batch").mock(return_value=response)
    with pytest.raises(error):
        woo.push_quantities([PushItem("MUG", 5, ref="1")])
    assert route.call_count == 1  # no retries inside the connector


# -- faulty pages from the emulator, through the engine ----------------------------------------

APP_CONFIG = f"""
[[channel]]
name = "shop"
type = "woocommerce"
endpoint = "{{url}}"
consumer_key = "{KEY}"
consumer_secret = "{SECRET}"
"""


def held_stock(engine: Engine) -> dict[str, tuple[int, int]]:
    with engine.connect() as conn:
        return {row["sku"]: (row["on_hand"], row["reserved"]) for row in stock_list(conn)}


def implied_stock(shop: WooCommerceEmulator, counted: dict[str, int]
                  ) -> dict[str, tuple[int, int]]:
    """sku -> (on hand, reserved) the orders the store holds imply after the count."""
    on_hand, reserved = dict(counted), dict.fromkeys(counted, 0)
    for row in httpx.get(f"{shop.url}/_sandbox/orders").json()["orders"]:
        for x in row["lines"]:
            reserved[x["sku"]] += x["quantity"] - x["shipped"] - x["cancelled"]
            on_hand[x["sku"]] += x["restocked"] - x["shipped"]
    return {sku: (on_hand[sku], reserved[sku]) for sku in counted}


def test_duplicated_and_shuffled_order_pages_lose_and_double_nothing(engine: Engine) -> None:
    counted = {"MUG": 30, "CUP": 30}
    with WooCommerceEmulator(consumer_key=KEY, consumer_secret=SECRET) as shop:
        for sku in counted:
            httpx.post(f"{shop.url}/_sandbox/listings", json={"sku": sku, "quantity": 0})

        def sell(**lines: int) -> str:
            answer = httpx.post(f"{shop.url}/_sandbox/orders", json={"lines": [
                {"sku": sku, "quantity": n} for sku, n in lines.items()]})
            answer.raise_for_status()
            return str(answer.json()["order_id"])

        def act(order_id: str, action: str) -> None:
            httpx.post(f"{shop.url}/_sandbox/orders/{order_id}/{action}").raise_for_status()

        app = App(parse_config(APP_CONFIG.format(url=shop.url), env={}))
        app.__dict__["db"] = engine
        try:
            app.set_stock([StockRow(sku, n) for sku, n in counted.items()], reason="count")
            app.engine.sync()
            # WooCommerce reports whole seconds: a shipment in the second of the count
            # would look older than the count, and so already off the shelf when counted.
            time.sleep(1)
            ids = [sell(MUG=2), sell(CUP=1), sell(MUG=1, CUP=2), sell(MUG=3)]
            act(ids[1], "cancel")
            act(ids[2], "ship")
            httpx.post(f"{shop.url}/_sandbox/faults",
                       json={"duplicate_rate": 0.5, "reorder_rate": 1.0, "seed": 11})
            app.engine.sync()
            act(ids[0], "cancel")
            act(ids[3], "ship")
            sell(CUP=2)
            app.engine.sync()
            assert held_stock(engine) == implied_stock(shop, counted)
            check_invariants(engine)
        finally:
            app.close()
