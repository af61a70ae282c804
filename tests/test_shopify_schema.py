"""The Shopify connector and emulator against Shopify's real Admin GraphQL schema (2026-04).

tests/reference/shopify-admin-graphql/ holds the schema Shopify itself publishes (see its
SOURCE.md). Two checks keep channelsync honest against it:
- every GraphQL document the connector sends validates there, deprecated fields refused
  (Shopify accepts them, but a deprecated field is one a later version removes). The
  documents are collected twice: from the connector's modules, and by recording what the
  connector sends to the emulator through a whole pull, read and push; each way must find
  them all, so a document built anywhere else cannot slip past (the session confirms a
  shipment too);
- connectors/shopify/schema.graphql, the subset the emulator executes and the connector's
  tests validate against, names nothing the real schema lacks and gives every field,
  argument, input field and directive the real signature: type, nullability, default value
  and deprecation. The subset may leave things out, except values of an enum Shopify sends
  back: a client must be ready for every one of those.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import pkgutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    build_schema,
    get_named_type,
    is_required_argument,
    is_required_input_field,
    parse,
    specified_rules,
    validate,
)
from graphql.validation import NoDeprecatedCustomRule

import connectors.shopify
from channelsync.connector import OrderLineSnapshot, PushItem, Shipment, ShipmentLine
from connectors.shopify import ShopifyConnector, ShopifySettings
from connectors.shopify import _queries as q
from connectors.shopify.emulator import ShopifyEmulator

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "tests" / "reference" / "shopify-admin-graphql" / "admin_2026-04.graphql"
SUBSET = ROOT / "connectors" / "shopify" / "schema.graphql"
RULES = [*specified_rules, NoDeprecatedCustomRule]
TOKEN = "shpat_schema0123456789abcdef0123456789"
# In the subset but not in 2026-04: Shopify added it in 2026-07 (the connector pins 2026-10).
NEWER_THAN_REFERENCE = {"InventorySetQuantitiesUserErrorCode.IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED"}
# Page sizes orders_query is built with: the defaults, and the extremes settings allow.
ORDER_PAGES = [(q.ORDER_PAGE_SIZE, q.LINE_PAGE_SIZE), (25, 10), (1, 250), (20, 3)]


@functools.cache
def real_schema() -> GraphQLSchema:
    return build_schema(REAL.read_text(encoding="utf-8"))


@functools.cache
def subset_schema() -> GraphQLSchema:
    return build_schema(SUBSET.read_text(encoding="utf-8"))


def problems(text: str) -> list[str]:
    return [error.message for error in validate(real_schema(), parse(text), rules=RULES)]


# -- the documents, from the connector's modules ------------------------------------------------


def connector_modules() -> Iterator[ModuleType]:
    """Every module of the connector proper (the emulator's modules send nothing)."""
    for found in pkgutil.iter_modules(connectors.shopify.__path__):
        if "emulator" not in found.name:
            yield importlib.import_module(f"connectors.shopify.{found.name}")


def declared_documents() -> dict[str, set[str]]:
    """Operation name -> the texts of every ``Query`` the connector's modules hold or build."""
    found: dict[str, set[str]] = {}
    for module in connector_modules():
        for name, value in vars(module).items():
            for query in _queries_in(module, name, value):
                found.setdefault(query.name, set()).add(query.text)
    return found


def _queries_in(module: ModuleType, name: str, value: Any) -> list[q.Query]:
    if isinstance(value, q.Query):
        return [value]
    if isinstance(value, tuple):
        return [x for x in value if isinstance(x, q.Query)]
    if inspect.isfunction(value) and value.__module__ == module.__name__ and \
            inspect.signature(value).return_annotation in ("Query", "q.Query", q.Query):
        # a document builder: each must be listed here with the arguments it is built with
        assert value is q.orders_query, f"{module.__name__}.{name} builds documents: add it"
        return [q.orders_query(orders, lines) for orders, lines in ORDER_PAGES]
    return []


def test_the_connector_declares_its_eleven_documents() -> None:
    assert sorted(declared_documents()) == sorted([
        "Orders", "OrderLines", "OrderRefunds", "RefundLines", "Locations", "Listings",
        "VariantsBySku", "Available", "SetQuantities", "FulfillmentState", "CreateFulfillment"])


@pytest.mark.parametrize("name", sorted(declared_documents()))
def test_every_declared_document_validates_against_the_real_schema(name: str) -> None:
    for text in declared_documents()[name]:
        assert problems(text) == [], text


def test_the_check_refuses_deprecated_fields_and_unknown_arguments() -> None:
    assert problems("query { locations(first: 5) { nodes { id isPrimary } } }") == [
        "The field Location.isPrimary is deprecated. The concept of a primary location is "
        "deprecated, shipsInventory can be used to get a fallback location"]
    assert problems("query { location { id nmae } }")
    # compareQuantity is deprecated since 2026-01, so the reference leaves it out: "unknown"
    assert problems("""mutation($i: ID!, $l: ID!) { inventorySetQuantities(input: {
        name: "available", reason: "correction", quantities: [{inventoryItemId: $i,
        locationId: $l, quantity: 1, compareQuantity: 0}]}) { userErrors { code } } }""")


# -- the documents, as the connector sends them ------------------------------------------------


class Recording(httpx.BaseTransport):
    """Loopback HTTP that keeps the GraphQL body of every request."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.sent: list[dict[str, Any]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(json.loads(request.content))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def post(control: httpx.Client, path: str, body: Any) -> Any:
    response = control.post(path, json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()


def busy_shop(control: httpx.Client) -> None:
    """An order with more lines than a page and refunds beyond the nested ones."""
    skus = [f"L{n}" for n in range(7)]
    for sku in skus:
        post(control, "/listings", {"sku": sku, "quantity": 10})
    order = post(control, "/orders", {"lines": [{"sku": sku, "quantity": 2} for sku in skus]}
                 )["order_id"]
    post(control, f"/orders/{order}/ship", None)
    post(control, f"/orders/{order}/refund", {"lines": [
        {"sku": sku, "quantity": 1, "restock_type": "RETURN"} for sku in skus]})
    for sku in skus[:2]:
        post(control, f"/orders/{order}/refund",
             {"lines": [{"sku": sku, "quantity": 1, "restock_type": "NO_RESTOCK"}]})


def whole_session(emulator: ShopifyEmulator, control: httpx.Client) -> list[dict[str, Any]]:
    """What the connector sends through a pull, a read of listings, a push and a shipment."""
    busy_shop(control)
    waiting = post(control, "/orders", {"lines": [{"sku": "L0", "quantity": 1}]})["order_id"]
    recording = Recording()
    settings = ShopifySettings.model_validate({"access_token": TOKEN, "line_page_size": 3})
    connector = ShopifyConnector("shop", settings, endpoint=emulator.url, transport=recording)
    page: str | None = None
    pulled: list[OrderLineSnapshot] = []
    while True:
        result = connector.pull_orders(datetime(2020, 1, 1, tzinfo=UTC), page)
        pulled += result.lines
        if (page := result.next_page) is None:
            break
    assert len(list(connector.read_listings())) == 7
    post(control, "/listings", {"sku": "NEW", "quantity": 5})  # looked up by SKU, not known
    [stale] = connector.push_quantities([PushItem("NEW", 3, expected=4)])
    assert (stale.stale, stale.observed) == (True, 5)  # the read-back after a stale compare
    [line] = [x for x in pulled if x.order_id == waiting]
    shipped = connector.confirm_shipment(Shipment(
        waiting, [ShipmentLine(line.line_id, line.channel_sku, 1)], "DHL", "JD0146000012",
        "cs-schema", datetime.now(UTC)))
    assert shipped.ok and not shipped.already
    connector.close()
    return recording.sent


@pytest.fixture
def sent() -> Iterator[list[dict[str, Any]]]:
    emulator = ShopifyEmulator(access_token=TOKEN)
    emulator.start(host="127.0.0.1", port=0)
    try:
        with httpx.Client(base_url=emulator.url + "/_sandbox", timeout=10) as control:
            yield whole_session(emulator, control)
    finally:
        emulator.stop()


def test_everything_the_connector_sends_is_declared_and_valid(
    sent: list[dict[str, Any]],
) -> None:
    declared = declared_documents()
    seen: dict[str, set[str]] = {}
    for body in sent:
        seen.setdefault(body["operationName"], set()).add(body["query"])
    assert sorted(seen) == sorted(declared)  # the session used every document, and no other
    for name, texts in seen.items():
        assert texts <= declared[name], f"{name} was sent in a form not declared"
        for text in texts:
            assert problems(text) == [], text


# -- the emulator's subset against the real schema --------------------------------------------


def differences(subset: GraphQLSchema, real: GraphQLSchema) -> list[str]:
    """What the subset says that the real schema does not (leaving things out is fine)."""
    found = [f"root {kind}: {mine} vs {theirs}" for kind, mine, theirs in (
        ("query", subset.query_type, real.query_type),
        ("mutation", subset.mutation_type, real.mutation_type),
    ) if str(mine) != str(theirs)]
    returned = _returned_enums(subset)
    for name, mine in subset.type_map.items():
        if not name.startswith("__"):
            found += _type_differences(mine, real.type_map.get(name), name in returned)
    for directive in subset.directives:
        theirs = real.get_directive(directive.name)
        if theirs is None:
            found.append(f"@{directive.name}: not in the real schema")
            continue
        if (directive.locations, directive.is_repeatable) != (theirs.locations,
                                                              theirs.is_repeatable):
            found.append(f"@{directive.name}: other locations or repeatability")
        found += _arguments(f"@{directive.name}", directive.args, theirs.args)
    return found


def _returned_enums(schema: GraphQLSchema) -> set[str]:
    """Enums that are the type of some output field: Shopify may send any of their values."""
    return {get_named_type(field.type).name for kind in schema.type_map.values()
            if isinstance(kind, GraphQLObjectType | GraphQLInterfaceType)
            for field in kind.fields.values()
            if isinstance(get_named_type(field.type), GraphQLEnumType)}


def _type_differences(mine: GraphQLNamedType, theirs: GraphQLNamedType | None,
                      returned: bool) -> list[str]:
    if theirs is None:
        return [f"{mine.name}: not in the real schema"]
    if type(mine) is not type(theirs):
        return [f"{mine.name}: a {type(mine).__name__}, real: {type(theirs).__name__}"]
    if isinstance(mine, GraphQLObjectType | GraphQLInterfaceType):
        assert isinstance(theirs, GraphQLObjectType | GraphQLInterfaceType)
        found = [f"{mine.name} implements {name}: not in the real schema"
                 for name in {i.name for i in mine.interfaces}
                 - {i.name for i in theirs.interfaces}]
        for field, defined in mine.fields.items():
            found += _field(f"{mine.name}.{field}", defined, theirs.fields.get(field))
        return found
    if isinstance(mine, GraphQLInputObjectType):
        assert isinstance(theirs, GraphQLInputObjectType)
        return _inputs(mine.name, mine.fields, theirs.fields)
    if isinstance(mine, GraphQLEnumType):
        assert isinstance(theirs, GraphQLEnumType)
        return _enum(mine, theirs, returned)
    assert isinstance(mine, GraphQLScalarType)  # unions: the subset has none
    return []


def _field(where: str, mine: GraphQLField, theirs: GraphQLField | None) -> list[str]:
    if theirs is None:
        return [f"{where}: not in the real schema"]
    found = []
    if str(mine.type) != str(theirs.type):
        found.append(f"{where}: {mine.type}, real: {theirs.type}")
    if mine.deprecation_reason != theirs.deprecation_reason:
        found.append(f"{where}: deprecated {mine.deprecation_reason!r}, "
                     f"real: {theirs.deprecation_reason!r}")
    return found + _arguments(where, mine.args, theirs.args)


def _arguments(where: str, mine: dict[str, GraphQLArgument],
               theirs: dict[str, GraphQLArgument]) -> list[str]:
    found = [f"{where}({name}:): required in the real schema, missing here"
             for name, arg in theirs.items() if is_required_argument(arg) and name not in mine]
    for name, arg in mine.items():
        real = theirs.get(name)
        if real is None:
            found.append(f"{where}({name}:): not in the real schema")
        elif (str(arg.type), arg.default_value) != (str(real.type), real.default_value):
            found.append(f"{where}({name}:): {arg.type} = {arg.default_value!r}, real: "
                         f"{real.type} = {real.default_value!r}")
    return found


def _inputs(where: str, mine: dict[str, GraphQLInputField],
            theirs: dict[str, GraphQLInputField]) -> list[str]:
    found = [f"{where}.{name}: required in the real schema, missing here"
             for name, field in theirs.items()
             if is_required_input_field(field) and name not in mine]
    for name, field in mine.items():
        real = theirs.get(name)
        if real is None:
            found.append(f"{where}.{name}: not in the real schema")
        elif (str(field.type), field.default_value) != (str(real.type), real.default_value):
            found.append(f"{where}.{name}: {field.type} = {field.default_value!r}, real: "
                         f"{real.type} = {real.default_value!r}")
    return found


def _enum(mine: GraphQLEnumType, theirs: GraphQLEnumType, returned: bool) -> list[str]:
    found = [f"{mine.name}.{value}: not in the real schema" for value in mine.values
             if value not in theirs.values and f"{mine.name}.{value}" not in NEWER_THAN_REFERENCE]
    found += [f"{mine.name}.{value}: deprecated {defined.deprecation_reason!r}, real: "
              f"{theirs.values[value].deprecation_reason!r}"
              for value, defined in mine.values.items() if value in theirs.values
              and defined.deprecation_reason != theirs.values[value].deprecation_reason]
    if returned:  # Shopify sends these: the emulator must be able to as well
        found += [f"{mine.name}.{value}: Shopify may send it, missing here"
                  for value in theirs.values if value not in mine.values]
    return found


def test_the_subset_has_the_real_signatures() -> None:
    assert differences(subset_schema(), real_schema()) == []


def test_what_the_subset_holds_beyond_the_reference_is_still_missing_there() -> None:
    for entry in NEWER_THAN_REFERENCE:
        kind, value = entry.split(".")
        mine, theirs = subset_schema().get_type(kind), real_schema().get_type(kind)
        assert isinstance(mine, GraphQLEnumType) and isinstance(theirs, GraphQLEnumType)
        assert value in mine.values and value not in theirs.values, entry


def test_the_subset_check_finds_what_was_wrong_before() -> None:
    # the subset as it stood when issue 10 was filed, in the parts the issue names
    old = build_schema("""
      type QueryRoot {
        orders(first: Int, sortKey: OrderSortKeys = ID): OrderConnection!
        locations(first: Int, after: String, query: String, active: Boolean): LocationConnection!
      }
      type OrderConnection { pageInfo: PageInfo! }
      type PageInfo { hasNextPage: Boolean! }
      type LocationConnection { nodes: [Location!]! }
      type Location { id: ID! isPrimary: Boolean! name: String }
      enum OrderSortKeys { ID UPDATED_AT }
      type Mutation { inventorySetQuantities(input: Int): Payload }
      type Payload { userErrors: [UserError!]! }
      type UserError { code: InventorySetQuantitiesUserErrorCode }
      enum InventorySetQuantitiesUserErrorCode { CHANGE_FROM_QUANTITY_STALE INVALID_NAME }
      schema { query: QueryRoot mutation: Mutation }
    """)
    found = "\n".join(differences(old, real_schema()))
    for expected in (
        "QueryRoot.orders(sortKey:): OrderSortKeys = 'ID', real: OrderSortKeys = 'PROCESSED_AT'",
        "QueryRoot.locations(active:): not in the real schema",
        "Location.isPrimary: deprecated None, real: 'The concept of a primary location",
        "Location.name: String, real: String!",
        "InventorySetQuantitiesUserErrorCode.COMPARE_QUANTITY_REQUIRED: Shopify may send it",
        "InventorySetQuantitiesUserErrorCode.COMPARE_QUANTITY_STALE: Shopify may send it",
        "Mutation.inventorySetQuantities(input:): Int = Undefined, real: "
        "InventorySetQuantitiesInput! = Undefined",
    ):
        assert expected in found
    assert "OrderSortKeys.CURRENT_TOTAL_PRICE" not in found  # an argument's enum may be shorter
