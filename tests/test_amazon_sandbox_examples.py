"""The Amazon connector against a stand-in that answers with Amazon's own sandbox examples.

The OpenAPI models in tests/reference carry ``x-amzn-api-sandbox`` static examples: what
Amazon's sandbox answers. A connector that only works against our own emulator could
share its misreadings of the models; these answers are Amazon's, not ours.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from channelsync.connector import PushItem
from connectors.amazon import AmazonConnector, AmazonSettings

REFERENCE = Path(__file__).parent / "reference" / "amazon-sp-api"
API = "https://sellingpartnerapi-na.amazon.com"
LWA = "https://api.amazon.com/auth/o2/token"
SELLER = "A2SELLER0000EX"


def example(model: str, path: str, method: str, status: str = "200") -> Any:
    """The first static sandbox answer Amazon documents for an operation."""
    spec = json.loads((REFERENCE / model).read_text())
    response = spec["paths"][path][method]["responses"][status]
    return response["x-amzn-api-sandbox"]["static"][0]["response"]


@pytest.fixture
def amazon() -> Iterator[AmazonConnector]:
    settings = AmazonSettings.model_validate({
        "marketplace": "US", "seller_id": SELLER, "refresh_token": "Atzr|example",
        "lwa_app_id": "amzn1.application-oa2-client.example", "lwa_client_secret": "s"})
    connector = AmazonConnector("amz", settings, sleep=lambda _s: None)
    with respx.mock(assert_all_called=False) as router:
        router.post(LWA).respond(200, json={"access_token": "Atza|x", "token_type": "bearer",
                                            "expires_in": 3600})
        connector.router = router  # type: ignore[attr-defined]
        yield connector
    connector.close()


def test_search_orders_example_becomes_snapshots(amazon: AmazonConnector) -> None:
    answer = example("orders_2026-01-01.json", "/orders/2026-01-01/orders", "get")
    answer.get("pagination", {}).pop("nextToken", None)  # one page: the example has no second
    amazon.router.get(f"{API}/orders/2026-01-01/orders").respond(200, json=answer)  # type: ignore[attr-defined]
    page = amazon.pull_orders(datetime(2024, 12, 24, tzinfo=UTC), None)
    items = [(o, i) for o in answer["orders"] for i in o["orderItems"]]
    assert page.lines and len(page.lines) + len(page.bad_records) == len(items)
    for line in page.lines:
        order = next(o for o in answer["orders"] if o["orderId"] == line.order_id)
        item = next(i for i in order["orderItems"] if i["orderItemId"] == line.line_id)
        assert line.channel_sku == item["product"]["sellerSku"]
        assert line.ordered == item["quantityOrdered"]
        assert line.changed_at == datetime.fromisoformat(order["lastUpdatedTime"])
        fulfilled_by = order.get("fulfillment", {}).get("fulfilledBy")
        assert line.ignore == (fulfilled_by == "AMAZON")  # FBA: Amazon's stock
    assert page.next_page is None
    assert page.resume_at == max(datetime.fromisoformat(o["lastUpdatedTime"])
                                 for o in answer["orders"])


def test_patch_example_is_a_success(amazon: AmazonConnector) -> None:
    answer = example("listingsItems_2021-08-01.json",
                     "/listings/2021-08-01/items/{sellerId}/{sku}", "patch")
    route = amazon.router.patch(  # type: ignore[attr-defined]
        f"{API}/listings/2021-08-01/items/{SELLER}/{answer['sku']}").respond(200, json=answer)
    (result,) = amazon.push_quantities([PushItem(answer["sku"], 7, f"MFN:{answer['sku']}")])
    assert result.ok, result.error
    body = json.loads(route.calls.last.request.content)
    assert body["patches"][0]["value"][0]["quantity"] == 7


def test_search_listings_example_is_read_back(amazon: AmazonConnector) -> None:
    answer = example("listingsItems_2021-08-01.json", "/listings/2021-08-01/items/{sellerId}",
                     "get")

    def reply(request: httpx.Request) -> httpx.Response:
        if "pageToken" in request.url.params:  # the example documents one page only
            return httpx.Response(200, json={"numberOfResults": answer["numberOfResults"],
                                             "items": []})
        return httpx.Response(200, json=answer)

    amazon.router.get(f"{API}/listings/2021-08-01/items/{SELLER}").mock(  # type: ignore[attr-defined]
        side_effect=reply)
    listings = {item.channel_sku: item for item in amazon.read_listings()}
    assert listings and set(listings) == {item["sku"] for item in answer["items"]}
    for item in answer["items"]:
        availability = item.get("fulfillmentAvailability") or []
        default = [a for a in availability if a.get("fulfillmentChannelCode") == "DEFAULT"]
        if default:
            assert listings[item["sku"]].managed
            assert listings[item["sku"]].quantity == default[0].get("quantity")
