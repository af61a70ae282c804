"""The Shopify emulator, driven over real loopback HTTP with httpx like the connector would."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from connectors.shopify.emulator import ShopifyEmulator

TOKEN = "shpat_0123456789abcdef"
GRAPHQL = "/admin/api/2026-10/graphql.json"
PRIMARY, WAREHOUSE = "gid://shopify/Location/1", "gid://shopify/Location/2"
INVALID_TOKEN = {"errors": "[API] Invalid API key or access token (unrecognized login or "
                           "wrong password)"}
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

SET = """
mutation SetQuantities($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id changes { name delta quantityAfterChange item { id } } }
    userErrors { code field message }
  }
}"""
ORDER = """
query Order($id: ID!) {
  order(id: $id) {
    id name updatedAt cancelledAt cancelReason test closed
    displayFinancialStatus displayFulfillmentStatus
    lineItems(first: 10) { nodes { id sku quantity currentQuantity unfulfilledQuantity
                                   nonFulfillableQuantity variant { id } } }
    refunds(first: 10) { refundLineItems(first: 10) {
      nodes { quantity restockType restocked lineItem { sku } } } }
  }
}"""
LEVEL = """
query Level($id: ID!, $location: ID!) {
  inventoryItem(id: $id) {
    id sku tracked
    inventoryLevel(locationId: $location) {
      quantities(names: ["available", "committed", "on_hand"]) { name quantity }
    }
  }
}"""
ORDERS = """
query Orders($first: Int!, $after: String, $query: String, $reverse: Boolean = false) {
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT, reverse: $reverse) {
    edges { cursor node { id updatedAt } }
    pageInfo { hasNextPage endCursor }
  }
}"""


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 26, 7, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Monotonic:
    """The cost bucket's time, standing still unless a test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def monotonic() -> Monotonic:
    return Monotonic()


def _serve(emu: ShopifyEmulator) -> Iterator[httpx.Client]:
    emu.start(host="127.0.0.1", port=0)
    try:
        with httpx.Client(base_url=emu.url, timeout=5) as client:
            yield client
    finally:
        emu.stop()


@pytest.fixture
def emulator(clock: Clock, monotonic: Monotonic) -> ShopifyEmulator:
    return ShopifyEmulator(access_token=TOKEN, clock=clock, monotonic=monotonic)


@pytest.fixture
def client(emulator: ShopifyEmulator) -> Iterator[httpx.Client]:
    yield from _serve(emulator)


def post(client: httpx.Client, query: str, /, token: str = TOKEN, path: str = GRAPHQL,
         **variables: Any) -> httpx.Response:
    return client.post(path, json={"query": query, "variables": variables},
                       headers={"X-Shopify-Access-Token": token})


def gql(client: httpx.Client, query: str, /, **variables: Any) -> dict[str, Any]:
    response = post(client, query, **variables)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def data(client: httpx.Client, query: str, /, **variables: Any) -> dict[str, Any]:
    body = gql(client, query, **variables)
    assert "errors" not in body, body
    found: dict[str, Any] = body["data"]
    return found


def listing(client: httpx.Client, sku: str, quantity: int, **extra: Any) -> dict[str, Any]:
    response = client.post("/_sandbox/listings", json={"sku": sku, "quantity": quantity, **extra})
    assert response.status_code == 200, response.text
    rows = {row["sku"]: row for row in response.json()["listings"]}
    return rows[sku]


def order(client: httpx.Client, **lines: int) -> str:
    body = {"lines": [{"sku": sku, "quantity": n} for sku, n in lines.items()]}
    response = client.post("/_sandbox/orders", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["order_id"])


def act(client: httpx.Client, order_id: str, action: str, body: Any = None) -> dict[str, Any]:
    response = client.post(f"/_sandbox/orders/{order_id}/{action}", json=body)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def level(client: httpx.Client, ref: str, location: str = PRIMARY) -> dict[str, int] | None:
    item = data(client, LEVEL, id=ref, location=location)["inventoryItem"]
    found = item["inventoryLevel"]
    return None if found is None else {q["name"]: q["quantity"] for q in found["quantities"]}


def available(client: httpx.Client, ref: str) -> int:
    found = level(client, ref)
    assert found is not None
    return found["available"]


def shown(client: httpx.Client, order_id: str) -> dict[str, Any]:
    found: dict[str, Any] = data(client, ORDER, id=f"gid://shopify/Order/{order_id}")["order"]
    return found


def lines(client: httpx.Client, order_id: str) -> dict[str, tuple[int, int, int, int]]:
    return {x["sku"]: (x["quantity"], x["currentQuantity"], x["unfulfilledQuantity"],
                       x["nonFulfillableQuantity"])
            for x in shown(client, order_id)["lineItems"]["nodes"]}


def cost(body: dict[str, Any]) -> tuple[int, int | None]:
    spent = body["extensions"]["cost"]
    return spent["requestedQueryCost"], spent["actualQueryCost"]


def quantity(item: str, value: int, expected: int | None, location: str = PRIMARY
             ) -> dict[str, Any]:
    return {"inventoryItemId": item, "locationId": location, "quantity": value,
            "changeFromQuantity": expected}


def set_input(*quantities: dict[str, Any], name: str = "available",
              reason: str = "correction") -> dict[str, Any]:
    return {"name": name, "reason": reason, "referenceDocumentUri": "channelsync://shop/push",
            "quantities": list(quantities)}


# -- authentication and routing -----------------------------------------------------------------


def test_a_missing_or_wrong_token_is_a_401(client: httpx.Client) -> None:
    for token in ("", "shpat_wrong"):
        response = post(client, "{ shop { id } }", token=token)
        assert (response.status_code, response.json()) == (401, INVALID_TOKEN)
    response = post(client, "{ shop { id name myshopifyDomain } }")
    assert response.status_code == 200
    assert response.headers["X-Shopify-API-Version"] == "2026-10"
    assert response.json()["data"]["shop"]["id"] == "gid://shopify/Shop/1"


def test_without_a_configured_token_any_non_blank_one_is_accepted() -> None:
    for client in _serve(ShopifyEmulator()):
        assert post(client, "{ shop { id } }", token="anything").status_code == 200
        assert post(client, "{ shop { id } }", token="").status_code == 401


def test_for_settings_checks_the_configured_token() -> None:
    settings = SimpleNamespace(access_token=SecretStr("shpat_configured"), api_version="2026-10")
    for client in _serve(ShopifyEmulator.for_settings(settings)):
        assert post(client, "{ shop { id } }", token="shpat_configured").status_code == 200
        assert post(client, "{ shop { id } }", token=TOKEN).status_code == 401


def test_unknown_versions_and_paths_are_404(client: httpx.Client) -> None:
    for path in ("/admin/api/2019-04/graphql.json", "/admin/api/latest/graphql.json",
                 "/admin/api/2026-10/products.json"):
        response = post(client, "{ shop { id } }", path=path)
        assert (response.status_code, response.json()) == (404, {"errors": "Not Found"})
    assert post(client, "{ shop { id } }", path="/admin/api/unstable/graphql.json").is_success


def test_bad_requests_parse_and_validation_errors(client: httpx.Client) -> None:
    headers = {"X-Shopify-Access-Token": TOKEN}
    assert client.post(GRAPHQL, content=b"{not json", headers=headers).status_code == 400
    assert client.post(GRAPHQL, json={"variables": {}}, headers=headers).status_code == 400
    broken = gql(client, "{ shop { id ")
    assert broken["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    assert "data" not in broken
    invalid = gql(client, "{ shop { id nmae } }")
    assert invalid["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "nmae" in invalid["errors"][0]["message"]
    wrong_type = gql(client, "query($n: Int!) { locations(first: $n) { nodes { id } } }",
                     n="ten")
    assert "$n" in wrong_type["errors"][0]["message"] and "data" not in wrong_type


# -- queries ------------------------------------------------------------------------------------


def test_shop_and_locations_are_paged(client: httpx.Client) -> None:
    query = """query($after: String) { shop { name myshopifyDomain }
      locations(first: 1, after: $after, query: "active:true") {
        nodes { id name isActive fulfillsOnlineOrders isFulfillmentService shipsInventory }
        pageInfo { hasNextPage endCursor } } }"""
    first = data(client, query)
    assert first["shop"]["myshopifyDomain"].endswith(".myshopify.com")
    assert first["locations"]["nodes"] == [
        {"id": PRIMARY, "name": "Shop location", "isActive": True, "fulfillsOnlineOrders": True,
         "isFulfillmentService": False, "shipsInventory": True}]
    assert first["locations"]["pageInfo"]["hasNextPage"] is True
    second = data(client, query, after=first["locations"]["pageInfo"]["endCursor"])
    assert [x["name"] for x in second["locations"]["nodes"]] == ["Warehouse"]
    assert second["locations"]["pageInfo"]["hasNextPage"] is False
    primary = data(client, f'{{ location {{ id }} other: location(id: "{WAREHOUSE}") {{ name }} }}')
    assert primary == {"location": {"id": PRIMARY}, "other": {"name": "Warehouse"}}


LOCATIONS = """query($all: Boolean) { locations(first: 10, includeInactive: $all) {
  nodes { name isActive fulfillsOnlineOrders isFulfillmentService shipsInventory } } }"""


def location_names(client: httpx.Client, **variables: Any) -> list[tuple[str, bool]]:
    nodes = data(client, LOCATIONS, **variables)["locations"]["nodes"]
    return [(x["name"], x["isActive"]) for x in nodes]


def test_locations_come_by_name_and_deactivated_ones_only_when_asked(
    client: httpx.Client,
) -> None:
    mug = listing(client, "MUG", 4, location="Warehouse")
    annex = client.post("/_sandbox/locations", json={
        "name": "Annex", "fulfills_online_orders": True, "fulfillment_service": True})
    assert annex.status_code == 200, annex.text
    assert annex.json()["location"] == {
        "id": annex.json()["location"]["id"], "name": "Annex", "active": True,
        "fulfills_online_orders": True, "ships_inventory": True, "fulfillment_service": True}
    gone = client.post("/_sandbox/locations", json={"name": "Warehouse", "active": False})
    assert gone.json()["location"]["active"] is False
    active = [("Annex", True), ("Shop location", True)]
    assert location_names(client) == location_names(client, all=False) == active
    assert location_names(client, all=True) == [*active, ("Warehouse", False)]
    assert [x["name"] for x in client.get("/_sandbox/locations").json()["locations"]] == [
        "Shop location", "Warehouse", "Annex"]
    # a deactivated location stocks nothing any more
    errors = data(client, SET, key="k", input=set_input(quantity(mug["ref"], 1, 4, WAREHOUSE)))
    assert [e["code"] for e in errors["inventorySetQuantities"]["userErrors"]] == [
        "ITEM_NOT_STOCKED_AT_LOCATION"]
    for bad in ({"name": "Shop location", "active": False}, {"name": "X", "colour": "red"},
                {"name": "X", "active": "no"}, {"active": True}, ["Annex"]):
        assert client.post("/_sandbox/locations", json=bad).status_code == 400, bad


def test_product_variants_by_sku_terms(client: httpx.Client) -> None:
    mug, cup = listing(client, "MUG", 5), listing(client, "CUP", 3)
    listing(client, "TEE-M", 1)
    query = """query($q: String, $after: String) {
      productVariants(first: 1, query: $q, after: $after, sortKey: SKU) {
        edges { cursor node { id sku inventoryItem { id tracked } } }
        pageInfo { hasNextPage endCursor } } }"""
    q = "sku:MUG OR sku:'CUP' OR sku:\"NOPE\""
    page1 = data(client, query, q=q)["productVariants"]
    assert [e["node"]["sku"] for e in page1["edges"]] == ["CUP"]
    assert page1["edges"][0]["node"]["inventoryItem"] == {"id": cup["ref"], "tracked": True}
    page2 = data(client, query, q=q, after=page1["pageInfo"]["endCursor"])["productVariants"]
    assert [e["node"]["id"] for e in page2["edges"]] == [mug["variant"]]
    assert page2["pageInfo"]["hasNextPage"] is False
    other_query = gql(client, query, q="sku:TEE-M", after=page1["pageInfo"]["endCursor"])
    assert other_query["errors"][0]["message"] == "Invalid cursor"
    assert gql(client, query, q="title:MUG")["errors"][0]["path"] == ["productVariants"]


def test_inventory_item_levels_and_quantities(client: httpx.Client) -> None:
    mug = listing(client, "MUG", 5)
    listing(client, "MUG", 7, location="Warehouse")
    cup = listing(client, "CUP", 2, tracked=False)
    assert level(client, mug["ref"]) == {"available": 5, "committed": 0, "on_hand": 5}
    assert level(client, mug["ref"], WAREHOUSE) == {"available": 7, "committed": 0,
                                                    "on_hand": 7}
    assert level(client, cup["ref"], WAREHOUSE) is None
    assert data(client, LEVEL, id=cup["ref"], location=PRIMARY)["inventoryItem"][
        "tracked"] is False
    gone = data(client, LEVEL, id="gid://shopify/InventoryItem/999999", location=PRIMARY)
    assert gone == {"inventoryItem": None}
    bad = gql(client, LEVEL, id="42", location=PRIMARY)
    assert bad["errors"][0]["message"] == "Invalid global id '42'"


def test_nodes_resolve_every_kind(client: httpx.Client) -> None:
    mug = listing(client, "MUG", 5)
    order_id = order(client, MUG=1)
    line_id = shown(client, order_id)["lineItems"]["nodes"][0]["id"]
    level_id = f"gid://shopify/InventoryLevel/1?inventory_item_id={mug['ref'].split('/')[-1]}"
    ids = ["gid://shopify/Shop/1", PRIMARY, mug["variant"], mug["ref"], level_id,
           f"gid://shopify/Order/{order_id}", line_id, "gid://shopify/Order/1"]
    found = data(client, """query($ids: [ID!]!) { nodes(ids: $ids) { __typename id
      ... on Order { name } ... on ProductVariant { sku } } }""", ids=ids)["nodes"]
    assert [x and x["__typename"] for x in found] == [
        "Shop", "Location", "ProductVariant", "InventoryItem", "InventoryLevel", "Order",
        "LineItem", None]
    assert found[2]["sku"] == "MUG" and found[5]["name"] == "#1001"


def test_orders_filter_on_whole_seconds_of_updated_at(client: httpx.Client, clock: Clock) -> None:
    listing(client, "MUG", 10)
    first = order(client, MUG=1)  # at 07:00:00.000001
    clock.advance(1.5)
    second = order(client, MUG=1)  # at 07:00:01.5

    def ids(query: str) -> list[str]:
        found = data(client, ORDERS, first=10, query=query)["orders"]["edges"]
        return [e["node"]["id"].split("/")[-1] for e in found]
    assert ids("updated_at:>'2026-11-26T07:00:00Z'") == [second]
    assert ids("updated_at:>='2026-11-26T07:00:00Z'") == [first, second]
    assert ids("updated_at:<'2026-11-26T07:00:01Z' AND test:false") == [first]
    assert ids("updated_at:<=2026-11-26T07:00:01Z") == [first, second]
    assert ids("updated_at:>'2026-11-26T07:00:01Z'") == []
    node = data(client, ORDERS, first=1)["orders"]["edges"][0]["node"]
    assert node["updatedAt"] == "2026-11-26T07:00:00Z" and STAMP.match(node["updatedAt"])
    reverse = data(client, ORDERS, first=10, reverse=True)["orders"]["edges"]
    assert [e["node"]["id"].split("/")[-1] for e in reverse] == [second, first]
    assert gql(client, ORDERS, first=1, query="status:open")["errors"]


def test_orders_come_by_processed_at_unless_sorted_otherwise(client: httpx.Client) -> None:
    listing(client, "MUG", 10)
    recent = order(client, MUG=1)
    body = {"lines": [{"sku": "MUG", "quantity": 1}], "processed_at": "2026-11-01T12:00:00Z"}
    response = client.post("/_sandbox/orders", json=body)
    assert response.status_code == 201, response.text
    imported = str(response.json()["order_id"])

    def ids(sort: str) -> list[str]:
        query = f"{{ orders(first: 10{sort}) {{ nodes {{ id processedAt createdAt }} }} }}"
        nodes = data(client, query)["orders"]["nodes"]
        return [x["id"].split("/")[-1] for x in nodes]
    assert ids("") == ids(", sortKey: PROCESSED_AT") == [imported, recent]  # Shopify's default
    assert ids(", sortKey: ID") == ids(", sortKey: CREATED_AT") == [recent, imported]
    assert shown_processed(client, imported) == "2026-11-01T12:00:00Z"
    assert shown_processed(client, recent) == "2026-11-26T07:00:00Z"
    for bad in ("2026-12-01T00:00:00Z", "yesterday"):
        refused = client.post("/_sandbox/orders", json={**body, "processed_at": bad})
        assert refused.status_code == 400 and "processed_at" in refused.text


def shown_processed(client: httpx.Client, order_id: str) -> str:
    query = "query($id: ID!) { order(id: $id) { processedAt } }"
    found: str = data(client, query, id=f"gid://shopify/Order/{order_id}")["order"]["processedAt"]
    return found


def test_a_changing_order_never_hides_another_between_pages(client: httpx.Client) -> None:
    listing(client, "MUG", 10)
    a, b, c = order(client, MUG=1), order(client, MUG=1), order(client, MUG=1)
    page1 = data(client, ORDERS, first=1)["orders"]
    assert page1["edges"][0]["node"]["id"].endswith(f"/{a}")
    act(client, a, "ship")  # a moves behind c; an offset would now skip b
    seen, after = [], page1["pageInfo"]["endCursor"]
    while after is not None:
        page = data(client, ORDERS, first=1, after=after)["orders"]
        seen += [e["node"]["id"].split("/")[-1] for e in page["edges"]]
        after = page["pageInfo"]["endCursor"] if page["pageInfo"]["hasNextPage"] else None
    assert seen == [b, c, a]
    by_default = data(client, "{ orders(first: 1) { pageInfo { endCursor } } }")["orders"]
    wrong = gql(client, ORDERS, first=1, after=by_default["pageInfo"]["endCursor"])
    assert wrong["errors"][0]["message"] == "Invalid cursor"
    assert gql(client, ORDERS, first=1, after="bm9wZQ==")["errors"][0]["message"] == (
        "Invalid cursor")


def test_order_line_items_are_paged(client: httpx.Client) -> None:
    for sku in ("A", "B", "C"):
        listing(client, sku, 5)
    order_id = order(client, A=1, B=2, C=3)
    query = """query($id: ID!, $after: String) { order(id: $id) {
      lineItems(first: 2, after: $after) { nodes { sku quantity }
                                           pageInfo { hasNextPage endCursor } } } }"""
    gid = f"gid://shopify/Order/{order_id}"
    page1 = data(client, query, id=gid)["order"]["lineItems"]
    assert [(x["sku"], x["quantity"]) for x in page1["nodes"]] == [("A", 1), ("B", 2)]
    page2 = data(client, query, id=gid, after=page1["pageInfo"]["endCursor"])["order"]
    assert [x["sku"] for x in page2["lineItems"]["nodes"]] == ["C"]
    assert page2["lineItems"]["pageInfo"]["hasNextPage"] is False
    assert data(client, query, id="gid://shopify/Order/1")["order"] is None


# -- order life: the quantities fields --------------------------------------------------------


def test_quantities_through_ships_refunds_edits_and_cancel(client: httpx.Client) -> None:
    mug, cup = listing(client, "MUG", 10), listing(client, "CUP", 5)
    order_id = order(client, MUG=4, CUP=2)
    assert level(client, mug["ref"]) == {"available": 6, "committed": 4, "on_hand": 10}
    first = shown(client, order_id)
    assert (first["name"], first["displayFinancialStatus"], first["displayFulfillmentStatus"],
            first["test"], first["cancelledAt"]) == ("#1001", "PAID", "UNFULFILLED", False, None)
    act(client, order_id, "ship", {"lines": [{"sku": "MUG", "quantity": 1}]})
    assert lines(client, order_id)["MUG"] == (4, 4, 3, 0)
    assert shown(client, order_id)["displayFulfillmentStatus"] == "PARTIALLY_FULFILLED"
    assert level(client, mug["ref"]) == {"available": 6, "committed": 3, "on_hand": 9}
    cancel_one = {"lines": [{"sku": "MUG", "quantity": 1, "restock_type": "CANCEL"}]}
    act(client, order_id, "refund", cancel_one)
    assert lines(client, order_id)["MUG"] == (4, 3, 2, 1)
    assert level(client, mug["ref"]) == {"available": 7, "committed": 2, "on_hand": 9}
    assert shown(client, order_id)["displayFinancialStatus"] == "PARTIALLY_REFUNDED"
    act(client, order_id, "refund",
        {"lines": [{"sku": "MUG", "quantity": 1, "restock_type": "RETURN"}]})
    assert lines(client, order_id)["MUG"] == (4, 2, 2, 1)
    assert level(client, mug["ref"]) == {"available": 8, "committed": 2, "on_hand": 10}
    act(client, order_id, "edit", {"sku": "CUP", "quantity": 1})
    assert lines(client, order_id)["CUP"] == (2, 1, 1, 0)
    assert level(client, cup["ref"]) == {"available": 4, "committed": 1, "on_hand": 5}
    act(client, order_id, "refund",
        {"lines": [{"sku": "CUP", "quantity": 1, "restock_type": "NO_RESTOCK"}]})
    assert lines(client, order_id)["CUP"] == (2, 0, 0, 1)
    assert level(client, cup["ref"]) == {"available": 4, "committed": 0, "on_hand": 4}
    act(client, order_id, "cancel")
    done = shown(client, order_id)
    assert lines(client, order_id) == {"MUG": (4, 0, 0, 3), "CUP": (2, 0, 0, 1)}
    assert level(client, mug["ref"]) == {"available": 10, "committed": 0, "on_hand": 10}
    assert (done["cancelReason"], done["displayFinancialStatus"], done["closed"]) == (
        "CUSTOMER", "REFUNDED", True)
    assert STAMP.match(done["cancelledAt"])
    refunds = [(x["lineItem"]["sku"], x["quantity"], x["restockType"], x["restocked"])
               for r in done["refunds"] for x in r["refundLineItems"]["nodes"]]
    assert refunds == [("MUG", 1, "CANCEL", True), ("MUG", 1, "RETURN", True),
                       ("CUP", 1, "NO_RESTOCK", False), ("MUG", 2, "CANCEL", True)]


def test_order_changes_are_refused_when_impossible(client: httpx.Client) -> None:
    listing(client, "MUG", 10)
    order_id = order(client, MUG=2)
    act(client, order_id, "ship", {"lines": [{"sku": "MUG", "quantity": 1}]})
    refusals = [("edit", {"sku": "MUG", "quantity": 3}, 409),  # only downward
                ("edit", {"sku": "MUG", "quantity": 0}, 409),  # not below the fulfilled unit
                ("refund", {"lines": [{"sku": "MUG", "quantity": 2, "restock_type": "RETURN"}]},
                 409),
                ("refund", {"lines": [{"sku": "MUG", "quantity": 1, "restock_type": "X"}]}, 400),
                ("ship", {"lines": [{"sku": "CUP", "quantity": 1}]}, 400),
                ("ship", {"lines": [{"sku": "MUG", "quantity": 2}]}, 409)]
    for action, body, status in refusals:
        response = client.post(f"/_sandbox/orders/{order_id}/{action}", json=body)
        assert response.status_code == status, (action, body, response.text)
    assert lines(client, order_id)["MUG"] == (2, 2, 1, 0)
    act(client, order_id, "ship")
    assert shown(client, order_id)["displayFulfillmentStatus"] == "FULFILLED"
    assert client.post(f"/_sandbox/orders/{order_id}/ship").status_code == 409
    act(client, order_id, "cancel")
    assert client.post(f"/_sandbox/orders/{order_id}/cancel").status_code == 409
    assert client.post("/_sandbox/orders/424242/cancel").status_code == 404


def test_pending_test_orders_and_deleted_variants(
    client: httpx.Client, emulator: ShopifyEmulator
) -> None:
    listing(client, "MUG", 3)
    body = {"lines": [{"sku": "MUG", "quantity": 1}], "test": True,
            "financial_status": "PENDING"}
    order_id = client.post("/_sandbox/orders", json=body).json()["order_id"]
    assert shown(client, order_id)["test"] is True
    act(client, order_id, "cancel")
    assert shown(client, order_id)["displayFinancialStatus"] == "VOIDED"
    emulator.delete_listing("MUG")
    assert shown(client, order_id)["lineItems"]["nodes"][0]["variant"] is None


# -- query cost and throttling ------------------------------------------------------------------


@pytest.mark.parametrize(("query", "requested"), [
    ("{ shop { id name } }", 1),
    ("{ locations(first: 5) { nodes { id name } pageInfo { hasNextPage } } }", 7),
    ("""{ orders(first: 20, sortKey: UPDATED_AT) { edges { cursor node { id updatedAt
         lineItems(first: 20) { nodes { id sku variant { id } } } } } } }""", 2 + 20 * 43),
    ("""{ orders(first: 5) { nodes { id refunds(first: 5) { id
         refundLineItems(first: 10) { nodes { quantity lineItem { id } } } } } } }""",
     2 + 5 * (1 + 5 * (1 + 2 + 10 * 2))),
    ("""{ inventoryItem(id: "gid://shopify/InventoryItem/1") { inventoryLevel(locationId:
         "gid://shopify/Location/1") { quantities(names: ["available", "on_hand", "committed"])
         { name quantity } } } }""", 5),
    ("""{ nodes(ids: ["gid://shopify/Order/1", "gid://shopify/Location/1"]) { id
         ... on Order { lineItems(first: 3) { nodes { id } } } } }""", 12),
    ("""query { ...Shop } fragment Shop on QueryRoot { shop { id } locations(first: 2) {
         edges { node { id } } nodes { id } } }""", 5),
])
def test_requested_cost_of_concrete_queries(
    client: httpx.Client, query: str, requested: int
) -> None:
    assert cost(gql(client, query))[0] == requested


def test_actual_cost_counts_returned_nodes(client: httpx.Client, monotonic: Monotonic) -> None:
    listing(client, "MUG", 5)
    order(client, MUG=1)
    query = "{ orders(first: 40) { nodes { id lineItems(first: 20) { nodes { id } } } } }"
    body = gql(client, query)
    assert cost(body) == (2 + 40 * 23, 2 + 1 * (1 + 2 + 1))
    assert body["extensions"]["cost"]["throttleStatus"] == {
        "maximumAvailable": 2000.0, "currentlyAvailable": 1994, "restoreRate": 100.0}
    monotonic.now += 10
    status = gql(client, "{ shop { id } }")["extensions"]["cost"]["throttleStatus"]
    assert status["currentlyAvailable"] == 1999  # full again, less this query's 1 point


def test_connections_need_first_of_at_most_250(client: httpx.Client) -> None:
    missing = gql(client, "{ orders { nodes { id } } }")
    assert missing["errors"][0]["message"] == "you must provide one of first or last"
    assert "data" not in missing
    assert gql(client, "{ locations(first: 251) { nodes { id } } }")["errors"]


def test_too_expensive_queries_are_refused(client: httpx.Client) -> None:
    body = gql(client, "{ orders(first: 250) { nodes { lineItems(first: 10) { nodes { id } } }"
                       " } }")
    error = body["errors"][0]
    assert error["message"].startswith(
        "Query cost is 3252, which exceeds the single query max cost limit (1000).")
    assert error["extensions"] == {"code": "MAX_COST_EXCEEDED", "cost": 3252, "maxCost": 1000,
                                   "documentation": "https://shopify.dev/api/usage/rate-limits"}
    assert "data" not in body


def test_a_low_bucket_throttles_with_http_200(monotonic: Monotonic) -> None:
    emu = ShopifyEmulator(access_token=TOKEN, bucket_size=25, restore_rate=10,
                          monotonic=monotonic)
    for api in _serve(emu):
        mug = listing(api, "MUG", 5)
        for n in (1, 2):
            body = data(api, SET, input=set_input(quantity(mug["ref"], n, None)), key=f"k{n}")
            assert not body["inventorySetQuantities"]["userErrors"]
        throttled = gql(api, SET, input=set_input(quantity(mug["ref"], 3, None)), key="k3")
        assert throttled["errors"] == [{"message": "Throttled", "extensions": {
            "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}]
        assert throttled["extensions"]["cost"] == {
            "requestedQueryCost": 10, "actualQueryCost": None,
            "throttleStatus": {"maximumAvailable": 25.0, "currentlyAvailable": 5,
                               "restoreRate": 10.0}}
        assert api.get("/_sandbox/listings").json()["listings"][0]["quantity"] == 2
        monotonic.now += 0.5
        again = gql(api, SET, input=set_input(quantity(mug["ref"], 3, None)), key="k3")
        assert cost(again) == (10, 10) and "errors" not in again
        assert again["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 0


def test_injected_faults_answer_like_shopify(client: httpx.Client) -> None:
    client.post("/_sandbox/faults", json={"throttle_rate": 1, "retry_after": 2})
    response = post(client, "{ shop { id } }")
    assert response.status_code == 429 and response.headers["Retry-After"] == "2.0"
    assert response.json() == {"errors": "Exceeded 2 calls per second for api client. Reduce "
                                         "request rates to resume uninterrupted service."}
    client.post("/_sandbox/faults", json={"error_rate": 1, "seed": 3})
    answers = {post(client, "{ shop { id } }").status_code for _ in range(12)}
    assert answers == {502, 503}
    client.post("/_sandbox/faults", json={"error_rate": 1, "seed": 3})
    failed = [post(client, "{ shop { id } }") for _ in range(12)]
    assert {"errors": "Service Unavailable"} in [r.json() for r in failed
                                                 if r.status_code == 503]
    client.post("/_sandbox/faults", json={})
    assert post(client, "{ shop { id } }").status_code == 200
    stats = client.get("/_sandbox/stats").json()
    assert (stats["throttled"], stats["errors"]) == (1, 24)


# -- inventorySetQuantities ---------------------------------------------------------------------


def test_set_quantities_applies_and_reports_changes(
    client: httpx.Client, emulator: ShopifyEmulator
) -> None:
    mug, cup = listing(client, "MUG", 5), listing(client, "CUP", 3)
    order(client, MUG=1)
    body = gql(client, SET, key="first", input=set_input(
        quantity(mug["ref"], 9, 4), quantity(cup["ref"], 3, None)))
    assert cost(body) == (10, 10)
    result = body["data"]["inventorySetQuantities"]
    assert result["userErrors"] == []
    assert result["inventoryAdjustmentGroup"]["id"].startswith(
        "gid://shopify/InventoryAdjustmentGroup/")
    assert result["inventoryAdjustmentGroup"]["changes"] == [
        {"name": "available", "delta": 5, "quantityAfterChange": 9, "item": {"id": mug["ref"]}}]
    assert level(client, mug["ref"]) == {"available": 9, "committed": 1, "on_hand": 10}
    on_hand = data(client, SET, key="second", input=set_input(
        quantity(mug["ref"], 4, 10), name="on_hand"))["inventorySetQuantities"]
    assert on_hand["inventoryAdjustmentGroup"]["changes"][0]["delta"] == -6
    assert level(client, mug["ref"]) == {"available": 3, "committed": 1, "on_hand": 4}
    assert client.get("/_sandbox/stats").json()["items_updated"] == 2


def test_a_stale_compare_applies_nothing(client: httpx.Client) -> None:
    mug, cup = listing(client, "MUG", 5), listing(client, "CUP", 3)
    result = data(client, SET, key="k", input=set_input(
        quantity(mug["ref"], 9, 5), quantity(cup["ref"], 9, 2)))["inventorySetQuantities"]
    assert result == {"inventoryAdjustmentGroup": None, "userErrors": [{
        "code": "CHANGE_FROM_QUANTITY_STALE",
        "field": ["input", "quantities", "1", "changeFromQuantity"],
        "message": "The changeFromQuantity value does not match persisted value."}]}
    assert available(client, mug["ref"]) == 5
    assert client.get("/_sandbox/stats").json()["items_updated"] == 0


def test_every_user_error_code(client: httpx.Client) -> None:
    mug, cup = listing(client, "MUG", 5), listing(client, "CUP", 3)
    unknown = "gid://shopify/InventoryItem/999999"
    quantities = [quantity(unknown, 1, None),
                  quantity(mug["ref"], 1, None, "gid://shopify/Location/99"),
                  quantity(mug["ref"], 1, None, WAREHOUSE),
                  quantity(mug["ref"], -1, None),
                  quantity(cup["ref"], 1_000_000_001, None),
                  quantity(mug["ref"], 2, None),
                  quantity(mug["ref"], 3, None),
                  quantity(cup["ref"], 1, 4)]
    given = {**set_input(*quantities, reason="because"), "referenceDocumentUri": "not a uri"}
    errors = data(client, SET, key="k", input=given)["inventorySetQuantities"]["userErrors"]
    assert [(e["code"], e["field"]) for e in errors] == [
        ("INVALID_REASON", ["input", "reason"]),
        ("INVALID_REFERENCE_DOCUMENT", ["input", "referenceDocumentUri"]),
        ("INVALID_INVENTORY_ITEM", ["input", "quantities", "0", "inventoryItemId"]),
        ("INVALID_LOCATION", ["input", "quantities", "1", "locationId"]),
        ("ITEM_NOT_STOCKED_AT_LOCATION", ["input", "quantities", "2", "locationId"]),
        ("INVALID_QUANTITY_NEGATIVE", ["input", "quantities", "3", "quantity"]),
        ("INVALID_QUANTITY_TOO_HIGH", ["input", "quantities", "4", "quantity"]),
        ("NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR",
         ["input", "quantities", "6", "inventoryItemId"]),
        ("CHANGE_FROM_QUANTITY_STALE", ["input", "quantities", "7", "changeFromQuantity"])]
    assert all(e["message"] for e in errors)
    name = data(client, SET, key="k2", input=set_input(quantity(mug["ref"], 1, None),
                                                         name="incoming"))
    assert name["inventorySetQuantities"]["userErrors"][0]["field"] == ["input", "name"]
    assert name["inventorySetQuantities"]["userErrors"][0]["code"] == "INVALID_NAME"
    mismatch = data(client, SET, key="k", input=set_input(quantity(mug["ref"], 1, None)))
    assert [e["code"] for e in mismatch["inventorySetQuantities"]["userErrors"]] == [
        "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"]
    assert level(client, mug["ref"]) == {"available": 5, "committed": 0, "on_hand": 5}


def test_a_repeated_key_replays_the_first_answer_once(client: httpx.Client, clock: Clock) -> None:
    mug = listing(client, "MUG", 5)
    given = set_input(quantity(mug["ref"], 9, 5))
    first = data(client, SET, key="retry-me", input=given)
    listing(client, "MUG", 2)  # someone edits the quantity on Shopify meanwhile
    again = data(client, SET, key="retry-me", input=given)
    assert again == first
    assert available(client, mug["ref"]) == 2
    assert client.get("/_sandbox/stats").json()["items_updated"] == 1
    clock.advance(25 * 3600)  # keys are remembered for 24 hours
    late = data(client, SET, key="retry-me", input=given)["inventorySetQuantities"]
    assert late["userErrors"][0]["code"] == "CHANGE_FROM_QUANTITY_STALE"


def test_malformed_mutations_are_refused_whole(client: httpx.Client) -> None:
    mug = listing(client, "MUG", 5)
    no_key = SET.replace(" @idempotent(key: $key)", "").replace(", $key: String!", "")
    body = gql(client, no_key, input=set_input(quantity(mug["ref"], 1, None)))
    assert body["data"] == {"inventorySetQuantities": None}
    assert [(e["message"], e["extensions"]["code"]) for e in body["errors"]] == [
        ("The @idempotent directive is required for this mutation.", "BAD_REQUEST")]
    omitted = {"inventoryItemId": mug["ref"], "locationId": PRIMARY, "quantity": 1}
    body = gql(client, SET, key="k1", input=set_input(omitted))
    assert body["errors"][0]["message"] == (
        "changeFromQuantity is required (pass null to skip the check)")
    many = set_input(*[quantity(mug["ref"], 1, None)] * 251)
    body = gql(client, SET, key="k2", input=many)
    assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert "250" in body["errors"][0]["message"]
    assert available(client, mug["ref"]) == 5


def test_a_sale_in_the_hook_makes_the_compare_stale(
    client: httpx.Client, emulator: ShopifyEmulator
) -> None:
    mug = listing(client, "MUG", 5)
    read = available(client, mug["ref"])
    calls: list[str] = []

    def buyer() -> None:
        calls.append(emulator.place_order([("MUG", 1)]))

    emulator.before_set_quantities = buyer
    result = data(client, SET, key="k", input=set_input(quantity(mug["ref"], 7, read)))
    assert result["inventorySetQuantities"]["userErrors"][0]["code"] == (
        "CHANGE_FROM_QUANTITY_STALE")
    assert len(calls) == 1
    assert level(client, mug["ref"]) == {"available": 4, "committed": 1, "on_hand": 5}


# -- the control API ----------------------------------------------------------------------------


def test_listings_are_created_overwritten_and_listed(client: httpx.Client) -> None:
    listing(client, "MUG", 5)
    listing(client, "MUG", 4, location="Warehouse")
    listing(client, "CUP", 2, location="Warehouse", stocked=True)
    listing(client, "TEE", 1, tracked=False)
    listing(client, "MUG", 7)
    rows = client.get("/_sandbox/listings").json()["listings"]
    assert [(r["sku"], r["quantity"], r["locations"]) for r in rows] == [
        ("CUP", None, {"Warehouse": 2}), ("MUG", 7, {"Shop location": 7, "Warehouse": 4}),
        ("TEE", 1, {"Shop location": 1})]
    assert rows[1]["ref"].startswith("gid://shopify/InventoryItem/")
    listing(client, "MUG", 0, location="Warehouse", stocked=False)
    assert listing(client, "MUG", 7)["locations"] == {"Shop location": 7}
    for bad in ({"sku": "MUG", "quantity": -1}, {"sku": "MUG", "quantity": 1, "colour": "red"},
                {"sku": "MUG", "quantity": 1, "location": "Moon"},
                {"sku": "MUG", "quantity": 1, "tracked": "no"}):
        assert client.post("/_sandbox/listings", json=bad).status_code == 400, bad


def test_sandbox_orders_take_stock_or_are_refused(client: httpx.Client) -> None:
    mug = listing(client, "MUG", 2)
    listing(client, "TEE", 0, tracked=False)
    listing(client, "CUP", 5, location="Warehouse")
    for body, status in [({"lines": [{"sku": "MUG", "quantity": 3}]}, 409),
                         ({"lines": [{"sku": "CUP", "quantity": 1}]}, 409),
                         ({"lines": [{"sku": "NOPE", "quantity": 1}]}, 400),
                         ({"lines": []}, 400),
                         ({"lines": [{"sku": "MUG", "quantity": 0}]}, 400),
                         ({"lines": [{"sku": "MUG", "quantity": 1}], "paid": True}, 400)]:
        response = client.post("/_sandbox/orders", json=body)
        assert response.status_code == status, (body, response.text)
    assert order(client, TEE=3)  # untracked sells anyway
    assert order(client, MUG=2)
    assert level(client, mug["ref"]) == {"available": 0, "committed": 2, "on_hand": 2}
    assert client.post("/_sandbox/orders", json={"lines": [{"sku": "MUG", "quantity": 1}]}
                       ).status_code == 409


def test_stats_name_graphql_root_fields_and_reset_empties(client: httpx.Client) -> None:
    mug = listing(client, "MUG", 5)
    gql(client, "{ shop { id } locations(first: 1) { nodes { id } } }")
    gql(client, ORDERS, first=5)
    gql(client, SET, key="k", input=set_input(quantity(mug["ref"], 6, None)))
    post(client, "{ shop { id } }", token="wrong")
    stats = client.get("/_sandbox/stats").json()
    assert stats == {"requests": {"graphql:shop": 2, "graphql:locations": 1,
                                  "graphql:orders": 1, "graphql:inventorySetQuantities": 1},
                     "throttled": 0, "errors": 0, "items_updated": 1, "hung": 0,
                     "lost_answers": 0}
    assert client.post("/_sandbox/reset").json() == {"reset": True}
    assert client.get("/_sandbox/listings").json() == {"listings": []}
    assert client.get("/_sandbox/stats").json()["requests"] == {}
    again = gql(client, "{ shop { id } }")
    assert again["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 1999


# -- what a simulation needs: the orders as held, faulty pages, lost answers -------------------

FULL_ORDERS = """
query Orders($first: Int!, $after: String) {
  orders(first: $first, after: $after, sortKey: UPDATED_AT) {
    edges { cursor node {
      id updatedAt test cancelledAt displayFulfillmentStatus displayFinancialStatus
      lineItems(first: 3) { nodes { id sku quantity currentQuantity unfulfilledQuantity
                                    nonFulfillableQuantity } }
      refunds(first: 3) { refundLineItems(first: 3) {
        nodes { quantity restockType lineItem { id } } } } } }
    pageInfo { hasNextPage endCursor }
  }
}"""


def _units(row: dict[str, Any]) -> dict[str, tuple[int, int, int, int]]:
    return {x["sku"]: (x["quantity"], x["shipped"], x["cancelled"], x["restocked"])
            for x in row["lines"]}


def _orders_page(client: httpx.Client, first: int = 10, after: str | None = None
                 ) -> dict[str, Any]:
    found: dict[str, Any] = data(client, FULL_ORDERS, first=first, after=after)["orders"]
    return found


def _ids(page: dict[str, Any]) -> list[str]:
    return [e["node"]["id"].rsplit("/", 1)[-1] for e in page["edges"]]


def test_sandbox_orders_hold_each_lines_units_as_the_connector_reads_them(
    client: httpx.Client,
) -> None:
    from connectors.shopify._orders import order_lines

    refs = {sku: listing(client, sku, 20)["ref"] for sku in ("MUG", "CUP", "BOWL")}
    placed = order(client, MUG=2)
    cancelled = order(client, CUP=1)
    act(client, cancelled, "cancel")
    shipped = order(client, MUG=1, CUP=1)
    act(client, shipped, "ship")
    partial = order(client, MUG=3)
    act(client, partial, "ship", {"lines": [{"sku": "MUG", "quantity": 1}]})
    half = order(client, MUG=2)  # one shipped, the other cancelled with the order
    act(client, half, "ship", {"lines": [{"sku": "MUG", "quantity": 1}]})
    act(client, half, "cancel")
    returned = order(client, MUG=2)
    act(client, returned, "ship")
    act(client, returned, "refund",
        {"lines": [{"sku": "MUG", "quantity": 1, "restock_type": "RETURN"}]})
    refunded = order(client, CUP=3)
    act(client, refunded, "refund",
        {"lines": [{"sku": "CUP", "quantity": 1, "restock_type": "CANCEL"}]})
    edited = order(client, CUP=3)
    act(client, edited, "edit", {"sku": "CUP", "quantity": 1})
    written_off = order(client, BOWL=2)  # one unit before fulfilment, one after
    act(client, written_off, "ship", {"lines": [{"sku": "BOWL", "quantity": 1}]})
    act(client, written_off, "refund",
        {"lines": [{"sku": "BOWL", "quantity": 2, "restock_type": "NO_RESTOCK"}]})
    test = client.post("/_sandbox/orders", json={"lines": [{"sku": "MUG", "quantity": 1}],
                                                  "test": True}).json()["order_id"]
    rows = {r["order_id"]: r for r in client.get("/_sandbox/orders").json()["orders"]}
    assert {k: (r["status"], _units(r)) for k, r in rows.items()} == {
        placed: ("UNFULFILLED", {"MUG": (2, 0, 0, 0)}),
        cancelled: ("CANCELLED", {"CUP": (1, 0, 1, 0)}),
        shipped: ("FULFILLED", {"MUG": (1, 1, 0, 0), "CUP": (1, 1, 0, 0)}),
        partial: ("PARTIALLY_FULFILLED", {"MUG": (3, 1, 0, 0)}),
        half: ("CANCELLED", {"MUG": (2, 1, 1, 0)}),
        returned: ("FULFILLED", {"MUG": (2, 2, 0, 1)}),
        refunded: ("UNFULFILLED", {"CUP": (3, 0, 1, 0)}),
        edited: ("UNFULFILLED", {"CUP": (3, 0, 2, 0)}),
        written_off: ("FULFILLED", {"BOWL": (2, 1, 1, 0)}),
        test: ("UNFULFILLED", {"MUG": (1, 0, 0, 0)}),
    }
    assert [k for k, r in rows.items() if r["test"]] == [test]
    assert (rows[returned]["financial_status"], rows[half]["financial_status"]) == (
        "PARTIALLY_REFUNDED", "REFUNDED")
    for sku in ("MUG", "CUP"):  # Shopify's own counts agree: committed is what is open
        units = [u for r in rows.values() for s, u in _units(r).items() if s == sku]
        assert level(client, refs[sku]) == {
            "available": 20 - sum(q - c for q, _, c, _ in units) + sum(r for *_, r in units),
            "committed": sum(q - s - c for q, s, c, _ in units),
            "on_hand": 20 - sum(s for _, s, _, _ in units) + sum(r for *_, r in units)}
    # What the connector reads from the API is what the rows say, line by line.
    read = {}
    for edge in _orders_page(client)["edges"]:
        node = edge["node"]
        refund_lines = [x for r in node["refunds"] for x in r["refundLineItems"]["nodes"]]
        found = order_lines(node, refund_lines, include_test_orders=True)
        assert found.bad == []
        read.update({(x.order_id, x.channel_sku): (x.ordered, x.shipped, x.cancelled,
                                                    x.restocked) for x in found.lines})
    assert read == {(k, sku): units for k, r in rows.items() for sku, units in _units(r).items()}
    assert client.get(f"/_sandbox/orders/{edited}").json() == rows[edited]
    assert client.get("/_sandbox/orders/424242").status_code == 404


def test_faulty_order_pages_duplicate_shuffle_and_go_stale(
    client: httpx.Client, clock: Clock
) -> None:
    listing(client, "MUG", 20)
    ids = [order(client, MUG=2) for _ in range(6)]
    clock.advance(5)
    act(client, ids[2], "ship", {"lines": [{"sku": "MUG", "quantity": 1}]})
    plain = _orders_page(client)
    assert sorted(_ids(plain)) == sorted(ids)
    client.post("/_sandbox/faults", json={"duplicate_rate": 1.0})
    twice = _orders_page(client)
    assert _ids(twice) == [x for x in _ids(plain) for _ in (1, 2)]
    assert twice["pageInfo"] == plain["pageInfo"]
    client.post("/_sandbox/faults", json={"stale_rate": 1.0})
    stale = {i: e["node"] for i, e in zip(_ids(plain), _orders_page(client)["edges"],
                                          strict=True)}
    was = stale[ids[2]]  # as before its partial fulfilment
    assert was["displayFulfillmentStatus"] == "UNFULFILLED"
    assert was["lineItems"]["nodes"][0]["unfulfilledQuantity"] == 2
    now = {e["node"]["id"]: e["node"] for e in plain["edges"]}
    assert was["updatedAt"] < now[was["id"]]["updatedAt"]
    assert all(stale[i] == now[stale[i]["id"]] for i in ids if i != ids[2])  # never changed
    client.post("/_sandbox/faults", json={"reorder_rate": 1.0, "seed": 4})
    shuffled = _orders_page(client)
    assert _ids(shuffled) != _ids(plain) and sorted(_ids(shuffled)) == sorted(_ids(plain))
    assert shuffled["pageInfo"] == plain["pageInfo"]  # the page still ends where it ends
    client.post("/_sandbox/faults", json={"reorder_rate": 1.0, "duplicate_rate": 0.5,
                                          "seed": 5})
    seen, after = [], None
    while True:  # pages of two: shuffled and doubled, yet every order once, none skipped
        page = data(client, ORDERS, first=2, after=after)["orders"]
        seen += [e["node"]["id"].rsplit("/", 1)[-1] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert sorted(set(seen)) == sorted(ids) and len(seen) > len(ids)


def test_a_lost_answer_is_a_write_applied_without_its_answer(
    client: httpx.Client, emulator: ShopifyEmulator
) -> None:
    mug = listing(client, "MUG", 5)
    client.post("/_sandbox/faults", json={"lost_answer_rate": 1.0, "seed": 2})
    outcomes: list[int | str] = []
    for n in range(6):
        try:
            outcomes.append(post(client, SET, key=f"k{n}", input=set_input(
                quantity(mug["ref"], 10 + n, None))).status_code)
        except httpx.RemoteProtocolError:
            outcomes.append("dropped")
    assert all(o == "dropped" or (isinstance(o, int) and o >= 500) for o in outcomes)
    assert "dropped" in outcomes and any(o != "dropped" for o in outcomes)
    assert client.get("/_sandbox/listings").json()["listings"][0]["quantity"] == 15
    assert available(client, mug["ref"]) == 15  # reads are never lost
    assert data(client, ORDERS, first=5)["orders"]["edges"] == []
    client.post("/_sandbox/faults", json={})
    again = data(client, SET, key="k0", input=set_input(quantity(mug["ref"], 10, None)))
    assert again["inventorySetQuantities"]["userErrors"] == []  # the first outcome, replayed
    assert available(client, mug["ref"]) == 15  # and not applied twice
    assert emulator.stats()["lost_answers"] == 6
