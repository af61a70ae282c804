"""Shopify connector tests: respx for the HTTP edge cases, the emulator for behaviour.

The first part fakes Shopify's GraphQL endpoint with respx (a handler per operation name), so
that error shapes, throttle arithmetic and paging corner cases are exact. The second part runs
the connector against connectors/shopify/emulator/ over loopback.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from graphql import (
    FieldNode,
    GraphQLObjectType,
    InlineFragmentNode,
    IntValueNode,
    OperationType,
    SelectionSetNode,
    build_schema,
    get_named_type,
    get_nullable_type,
    is_leaf_type,
    is_list_type,
    parse,
    specified_rules,
    validate,
)
from graphql.language import OperationDefinitionNode
from graphql.validation import NoDeprecatedCustomRule
from pydantic import SecretStr, ValidationError

from channelsync.config import parse_config
from channelsync.connector import (
    BadRecord,
    ChannelListing,
    Connector,
    ListingProblem,
    OrderLineSnapshot,
    PushItem,
)
from channelsync.errors import (
    ConfigError,
    PermanentChannelError,
    RetriableChannelError,
    ThrottledError,
)
from connectors.shopify import ShopifyConnector, ShopifySettings
from connectors.shopify import _queries as q
from connectors.shopify._graphql import GraphQLClient, ThrottleStatus
from connectors.shopify._orders import order_lines
from connectors.shopify._pushing import sku_term

TOKEN = "shpat_0123456789abcdef0123456789abcdef"
STORE = "https://shop.example"
GRAPHQL = "/admin/api/2026-10/graphql.json"
SINCE = datetime(2026, 3, 1, 9, 58, 30, 123456, tzinfo=UTC)
UPDATED = "2026-03-01T10:00:00Z"
SCHEMA = build_schema((Path(__file__).parents[1] / "connectors/shopify/schema.graphql").read_text())
RULES = [*specified_rules, NoDeprecatedCustomRule]  # Shopify accepts deprecated fields; we don't
ONLINE = {"isActive": True, "fulfillsOnlineOrders": True, "isFulfillmentService": False,
          "shipsInventory": True}
LOCATIONS = [
    {"id": "gid://shopify/Location/1", "name": "Shop location", **ONLINE},
    {"id": "gid://shopify/Location/2", "name": "Warehouse",
     **ONLINE, "fulfillsOnlineOrders": False, "shipsInventory": False},
]


def item_gid(n: int) -> str:
    return f"gid://shopify/InventoryItem/{n}"


def make(endpoint: str = STORE, sleep: Callable[[float], None] | None = None,
         clock: Callable[[], float] | None = None, **settings: Any) -> ShopifyConnector:
    values = {"access_token": TOKEN, **settings}
    extra: dict[str, Any] = {}
    if sleep is not None:
        extra["sleep"] = sleep
    if clock is not None:
        extra["clock"] = clock
    return ShopifyConnector("shop", ShopifySettings.model_validate(values), endpoint=endpoint,
                            **extra)


def assert_no_secret(*texts: object) -> None:
    for text in texts:
        assert TOKEN not in str(text)


# -- a fake GraphQL endpoint ----------------------------------------------------------------------

Answer = dict[str, Any] | httpx.Response | Callable[[dict[str, Any]], Any]


def cost(requested: int = 10, available: float = 1990, maximum: float = 2000.0,
         rate: float = 100.0) -> dict[str, Any]:
    return {"cost": {"requestedQueryCost": requested, "actualQueryCost": requested,
                     "throttleStatus": {"maximumAvailable": maximum,
                                        "currentlyAvailable": available, "restoreRate": rate}}}


class FakeShop:
    """Answers each operation with the next of its queued answers (the last one repeats)."""

    def __init__(self) -> None:
        self.answers: dict[str, list[Answer]] = {}
        self.calls: list[dict[str, Any]] = []
        self.requests: list[httpx.Request] = []

    def on(self, operation: str, *answers: Answer) -> FakeShop:
        self.answers.setdefault(operation, []).extend(answers)
        return self

    def sent(self, operation: str) -> list[dict[str, Any]]:
        return [c["variables"] for c in self.calls if c["operationName"] == operation]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.calls.append(body)
        self.requests.append(request)
        assert validate(SCHEMA, parse(body["query"]), rules=RULES) == []
        queue = self.answers[body["operationName"]]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if callable(answer):
            answer = answer(body["variables"])
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, json={"data": answer, "extensions": cost()})


@pytest.fixture
def shop() -> Iterator[FakeShop]:
    fake = FakeShop()
    with respx.mock(base_url=STORE, assert_all_called=False) as router:
        router.post(GRAPHQL).mock(side_effect=fake)
        yield fake


@pytest.fixture
def conn() -> Iterator[ShopifyConnector]:
    connector = make()
    yield connector
    connector.close()


def connection(nodes: list[Any], cursor: str | None = None) -> dict[str, Any]:
    return {"nodes": nodes, "pageInfo": {"hasNextPage": cursor is not None,
                                          "endCursor": cursor}}


def locations(*rows: dict[str, Any]) -> dict[str, Any]:
    return {"locations": connection(list(rows or LOCATIONS))}


def line(n: int, sku: str | None, quantity: Any, current: Any = None, unfulfilled: Any = None,
         non_fulfillable: int = 0) -> dict[str, Any]:
    current = quantity if current is None else current
    return {"id": f"gid://shopify/LineItem/{n}", "sku": sku, "quantity": quantity,
            "currentQuantity": current,
            "unfulfilledQuantity": current if unfulfilled is None else unfulfilled,
            "nonFulfillableQuantity": non_fulfillable}


def refund(n: int, *items: tuple[int, int, str], cursor: str | None = None) -> dict[str, Any]:
    """A refund of (line number, quantity, restock type) items."""
    rows = [{"quantity": qty, "restockType": kind, "restocked": kind != "NO_RESTOCK",
             "lineItem": {"id": f"gid://shopify/LineItem/{ln}"}} for ln, qty, kind in items]
    return {"id": f"gid://shopify/Refund/{n}", "refundLineItems": connection(rows, cursor)}


def order(n: int, lines: list[dict[str, Any]], *, updated: str = UPDATED,
          refunds: list[dict[str, Any]] | None = None, cancelled: str | None = None,
          test: bool = False, fulfillment: str = "UNFULFILLED", financial: str | None = "PAID",
          line_cursor: str | None = None) -> dict[str, Any]:
    return {"id": f"gid://shopify/Order/{n}", "updatedAt": updated, "cancelledAt": cancelled,
            "test": test, "displayFinancialStatus": financial,
            "displayFulfillmentStatus": fulfillment,
            "lineItems": connection(lines, line_cursor), "refunds": refunds or []}


def orders_page(*orders: dict[str, Any], cursor: str | None = None) -> dict[str, Any]:
    return {"orders": connection(list(orders), cursor)}


# -- the contract, settings and URLs ------------------------------------------------------------


def test_satisfies_the_connector_protocol(conn: ShopifyConnector) -> None:
    assert isinstance(conn, Connector)
    caps = conn.capabilities
    assert (caps.push_batch_size, caps.compare_and_set, caps.webhooks) == (250, True, True)
    assert caps.overlap == timedelta(minutes=2)
    assert caps.requests_per_second > 0 and caps.burst >= 1
    assert conn.emulator == "connectors.shopify.emulator:ShopifyEmulator"


def test_settings_defaults_forbid_unknown_keys_and_mask_the_token() -> None:
    settings = ShopifySettings.model_validate({"access_token": TOKEN})
    assert (settings.api_version, settings.location, settings.shop) == ("2026-10", None, "")
    assert (settings.order_page_size, settings.line_page_size) == (20, 10)
    assert settings.include_test_orders is False and settings.timeout == 30
    assert_no_secret(repr(settings), str(settings))
    for bad in ({"password": "x"}, {"api_version": "2026-13"}, {"api_version": "latest"},
                {"shop": "https://x.myshopify.com"}, {"access_token": ""}, {"location": ""},
                {"order_page_size": 0}, {"line_page_size": 251}):
        with pytest.raises(ValidationError):
            ShopifySettings.model_validate({"access_token": TOKEN, **bad})


@pytest.mark.parametrize("version", ["2025-10", "2024-01", "2025-12"])
def test_api_versions_without_change_from_quantity_are_refused(version: str) -> None:
    with pytest.raises(ValidationError, match="changeFromQuantity") as caught:
        ShopifySettings.model_validate({"access_token": TOKEN, "api_version": version})
    assert "@idempotent" in str(caught.value) and "2026-01" in str(caught.value)
    for fine in ("2026-01", "2026-04", "2026-10", "2027-01"):
        ShopifySettings.model_validate({"access_token": TOKEN, "api_version": fine})


def test_an_old_api_version_is_a_config_error_at_its_key() -> None:
    text = ('[[channel]]\nname = "shop"\ntype = "shopify"\nendpoint = "https://x.example"\n'
            'access_token = "t"\napi_version = "2025-07"\n')
    with pytest.raises(ConfigError) as caught:
        parse_config(text, env={})
    [problem] = caught.value.problems
    assert problem.startswith("channel[0] (shop).api_version: 2025-07 is too old")
    assert "changeFromQuantity" in problem and "Value error" not in problem


def test_settings_refuse_page_sizes_whose_query_would_cost_over_1000() -> None:
    ShopifySettings.model_validate({"access_token": TOKEN, "order_page_size": 25})  # 977
    with pytest.raises(ValidationError, match="cost 1016"):
        ShopifySettings.model_validate({"access_token": TOKEN, "order_page_size": 26})
    with pytest.raises(ValidationError, match="1000"):
        ShopifySettings.model_validate({"access_token": TOKEN, "line_page_size": 100})


@pytest.mark.parametrize(("endpoint", "shop", "url"), [
    ("https://shop.example/", "", "https://shop.example"),
    ("", "example.myshopify.com", "https://example.myshopify.com"),
    ("http://127.0.0.1:8123", "", "http://127.0.0.1:8123"),
    ("http://localhost:8123", "", "http://localhost:8123"),
    ("http://[::1]:8123", "ignored.myshopify.com", "http://[::1]:8123"),
])
def test_base_url(endpoint: str, shop: str, url: str) -> None:
    connector = make(endpoint, shop=shop)
    assert connector.endpoint == url
    assert repr(connector) == f"ShopifyConnector(name='shop', endpoint={url!r})"
    assert_no_secret(repr(connector), repr(vars(connector)))
    connector.close()


@pytest.mark.parametrize(("endpoint", "problem"), [
    ("", "set shop"),
    ("http://shop.example", "clear text"),
    ("http://10.0.0.5:8080", "clear text"),
    ("ftp://shop.example", "https://"),
    ("https://user:pw@shop.example", "credentials"),
    ("https://shop.example/?a=1", "query"),
])
def test_bad_base_url_is_a_config_error(endpoint: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as info:
        make(endpoint)
    assert "pw@" not in str(info.value)


def test_the_token_travels_in_its_header_only(conn: ShopifyConnector, shop: FakeShop) -> None:
    shop.on("Orders", orders_page())
    conn.pull_orders(SINCE, None)
    [request] = shop.requests
    assert request.headers["X-Shopify-Access-Token"] == TOKEN
    assert request.headers["User-Agent"].startswith("channelsync/")
    assert TOKEN not in str(request.url) and TOKEN not in request.content.decode()


# -- every query: valid against schema.graphql, and within the cost limit ----------------------


def requested_cost(text: str) -> int:
    """The spec's formula, computed independently of the connector's own arithmetic."""
    operation = parse(text).definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    if operation.operation == OperationType.MUTATION:
        return 10 * len(operation.selection_set.selections)
    assert SCHEMA.query_type is not None
    return _selections(SCHEMA.query_type, operation.selection_set)


def _selections(parent: Any, selection_set: SelectionSetNode | None) -> int:
    total = 0
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, InlineFragmentNode):
            assert selection.type_condition is not None
            inner = SCHEMA.get_type(selection.type_condition.name.value)
            total += _selections(inner, selection.selection_set)
            continue
        assert isinstance(selection, FieldNode)
        definition = parent.fields[selection.name.value]
        named = get_named_type(definition.type)
        if is_leaf_type(named) or selection.name.value == "pageInfo":
            continue
        args = {a.name.value: a.value for a in selection.arguments}
        first = args.get("first")
        count = int(first.value) if isinstance(first, IntValueNode) else 1
        if named.name.endswith("Connection"):
            assert isinstance(first, IntValueNode), "a connection needs first"
            assert 0 < count <= 250
            assert isinstance(named, GraphQLObjectType)
            [nodes] = [s for s in selection.selection_set.selections  # type: ignore[union-attr]
                       if isinstance(s, FieldNode) and s.name.value == "nodes"]
            total += 2 + count * (1 + _selections(get_named_type(named.fields["nodes"].type),
                                                  nodes.selection_set))
        elif is_list_type(get_nullable_type(definition.type)):
            total += count * (1 + _selections(named, selection.selection_set))
        else:
            total += 1 + _selections(named, selection.selection_set)
    return total


ALL_QUERIES = [q.orders_query(q.ORDER_PAGE_SIZE, q.LINE_PAGE_SIZE), q.orders_query(25, 10),
               q.orders_query(1, 250), *q.FIXED_QUERIES]


@pytest.mark.parametrize("query", ALL_QUERIES, ids=lambda x: f"{x.name}-{x.cost}")
def test_every_query_validates_against_the_schema(query: q.Query) -> None:
    document = parse(query.text)
    assert validate(SCHEMA, document, rules=RULES) == []
    [operation] = document.definitions
    assert isinstance(operation, OperationDefinitionNode)
    assert operation.name is not None and operation.name.value == query.name


@pytest.mark.parametrize("query", ALL_QUERIES, ids=lambda x: x.name)
def test_every_query_costs_what_the_connector_expects_and_at_most_1000(query: q.Query) -> None:
    per_id = {"Available": q.NODES_PER_QUERY}  # nodes(ids:) costs per id; at most 250 ids
    assert requested_cost(query.text) * per_id.get(query.name, 1) == query.cost
    assert query.cost <= q.MAX_QUERY_COST


def test_default_page_costs() -> None:
    assert q.order_page_cost(q.ORDER_PAGE_SIZE, q.LINE_PAGE_SIZE) == 782
    assert q.LISTINGS.cost == 402 and q.VARIANTS_BY_SKU.cost == 202


def test_sku_terms_quote_exactly() -> None:
    assert sku_term("MUG 1") == 'sku:"MUG 1"'
    assert sku_term('12" PLATE') == "sku:'12\" PLATE'"
    assert sku_term("A\\B") == 'sku:"A\\\\B"'


# -- pulling orders -------------------------------------------------------------------------------


def test_pull_sends_one_query_for_every_page(conn: ShopifyConnector, shop: FakeShop) -> None:
    shop.on("Orders", orders_page(order(1, [line(11, "MUG", 1)]), cursor="c1"),
            orders_page(order(2, [line(21, "CUP", 2)], updated="2026-03-01T10:05:07Z")))
    since = SINCE.astimezone(timezone(timedelta(hours=2)))  # any zone: sent as UTC
    first = conn.pull_orders(since, None)
    second = conn.pull_orders(since, first.next_page)
    sent = shop.sent("Orders")
    assert sent == [{"query": "updated_at:>='2026-03-01T09:58:30Z'", "after": None},
                    {"query": "updated_at:>='2026-03-01T09:58:30Z'", "after": "c1"}]
    assert "sortKey: UPDATED_AT" in shop.calls[0]["query"]
    assert first.next_page == "c1" and second.next_page is None
    assert first.resume_at == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert second.resume_at == datetime(2026, 3, 1, 10, 5, 7, tzinfo=UTC)
    assert [x.channel_sku for x in [*first.lines, *second.lines]] == ["MUG", "CUP"]


def test_an_empty_page_does_not_move_the_cursor(conn: ShopifyConnector, shop: FakeShop) -> None:
    shop.on("Orders", orders_page())
    page = conn.pull_orders(SINCE, None)
    assert (page.lines, page.next_page, page.resume_at) == ([], None, None)


def test_resume_at_is_the_newest_change_and_never_before_since(
    conn: ShopifyConnector, shop: FakeShop
) -> None:
    same_second = SINCE.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    shop.on("Orders", orders_page(order(1, [line(11, "MUG", 1)], updated=same_second)))
    assert conn.pull_orders(SINCE, None).resume_at == SINCE


def snap(order_raw: dict[str, Any], refund_lines: list[dict[str, Any]] | None = None,
         include_test: bool = False) -> list[OrderLineSnapshot]:
    result = order_lines(order_raw, refund_lines or [], include_test)
    assert result.bad == []
    return result.lines


def refund_items(*items: tuple[int, int, str]) -> list[dict[str, Any]]:
    return list(refund(0, *items)["refundLineItems"]["nodes"])


def counts(lines: list[OrderLineSnapshot]) -> list[tuple[int, int, int, int]]:
    return [(x.ordered, x.shipped, x.cancelled, x.restocked) for x in lines]


def test_mapping_of_a_new_order() -> None:
    [x] = snap(order(7, [line(70, "MUG", 3)]))
    assert x == OrderLineSnapshot(
        order_id="7", line_id="70", channel_sku="MUG", ordered=3, status="unfulfilled/paid",
        changed_at=datetime(2026, 3, 1, 10, tzinfo=UTC), shipped=0, cancelled=0, restocked=0,
        ignore=False)


@pytest.mark.parametrize(("raw", "refunds", "expected"), [
    # partly shipped: 3 of 5 fulfilled
    (line(1, "A", 5, unfulfilled=2), [], (5, 3, 0, 0)),
    # then one returned and restocked
    (line(1, "A", 5, current=4, unfulfilled=2), [(1, 1, "RETURN")], (5, 3, 0, 1)),
    # two unfulfilled units refunded and put back (CANCEL)
    (line(1, "A", 5, current=3, unfulfilled=3, non_fulfillable=2), [(1, 2, "CANCEL")],
     (5, 0, 2, 0)),
    # two unfulfilled units refunded without restock: they still leave the order
    (line(1, "A", 5, current=3, unfulfilled=3, non_fulfillable=2), [(1, 2, "NO_RESTOCK")],
     (5, 0, 2, 0)),
    # everything shipped, one refunded afterwards without restock (money only): still shipped
    (line(1, "A", 5, current=4, unfulfilled=0), [(1, 1, "NO_RESTOCK")], (5, 5, 0, 0)),
    # an order edit took two unfulfilled units off
    (line(1, "A", 5, current=3, unfulfilled=3), [], (5, 0, 2, 0)),
    # shipped 2, edited the rest down by 1, returned 1
    (line(1, "A", 5, current=3, unfulfilled=2), [(1, 1, "RETURN")], (5, 2, 1, 1)),
])
def test_mapping_of_fulfilments_refunds_and_edits(
    raw: dict[str, Any], refunds: list[tuple[int, int, str]], expected: tuple[int, ...]
) -> None:
    [x] = snap(order(1, [raw], fulfillment="PARTIALLY_FULFILLED"), refund_items(*refunds))
    assert counts([x]) == [expected]
    assert x.status == "partially_fulfilled/paid"


def test_a_cancelled_order_leaves_nothing_open() -> None:
    raw = order(1, [line(1, "A", 4, current=1, unfulfilled=1), line(2, "B", 2, current=0,
                                                                     unfulfilled=0)],
                cancelled="2026-03-01T09:00:00Z", refunds=[], financial="REFUNDED")
    # nonFulfillableQuantity left at 0: CANCEL units were unfulfilled whatever it says
    lines = snap(raw, refund_items((2, 2, "CANCEL"), (1, 3, "CANCEL")))
    # line 1 had one unit still open; the cancel closes it whatever Shopify says
    assert counts(lines) == [(4, 0, 4, 0), (2, 0, 2, 0)]
    assert {x.status for x in lines} == {"cancelled"}


def test_test_orders_are_ignored_unless_configured() -> None:
    raw = order(1, [line(1, "A", 1)], test=True)
    assert [x.ignore for x in snap(raw)] == [True]
    assert [x.ignore for x in snap(raw, include_test=True)] == [False]


def test_lines_without_sku_are_skipped_and_a_missing_status_is_unknown() -> None:
    raw = order(1, [line(1, None, 1), line(2, " ", 1), line(3, "A", 1)], financial=None)
    result = order_lines(raw, [], False)
    assert [x.line_id for x in result.lines] == ["3"] and result.no_sku == 2
    assert result.lines[0].status == "unfulfilled/unknown"


def test_bad_records_are_reported_and_the_rest_of_the_page_applies(
    conn: ShopifyConnector, shop: FakeShop
) -> None:
    shop.on("Orders", orders_page(
        order(1, [line(11, "NEG", -1), line(12, "NONE", None), line(13, "OK", 2)]),
        order(2, [line(21, "A", 1)], updated="yesterday"),
        {"id": "not-a-gid", "updatedAt": UPDATED},
        order(4, [line(41, "A", 1)], refunds=[refund(1, (99, -1, "RETURN"))]),
        order(5, [line(51, "B", 1)], updated="2026-03-01T11:00:00Z"),
        {**order(6, []), "lineItems": "broken"},
    ))
    page = conn.pull_orders(SINCE, None)
    assert [(x.order_id, x.line_id) for x in page.lines] == [("1", "13"), ("5", "51")]
    assert all(isinstance(b, BadRecord) for b in page.bad_records)
    assert [b.key for b in page.bad_records] == ["1/11", "1/12", "2", "?", "4", "6"]
    assert "quantity -1" in page.bad_records[0].reason
    assert page.resume_at == datetime(2026, 3, 1, 11, tzinfo=UTC)


def test_line_items_beyond_the_nested_page_are_read(conn: ShopifyConnector,
                                                    shop: FakeShop) -> None:
    shop.on("Orders", orders_page(order(1, [line(1, "A", 1)], line_cursor="L1")))
    shop.on("OrderLines",
            {"order": {"id": "gid://shopify/Order/1", "updatedAt": UPDATED,
                       "lineItems": connection([line(2, "B", 2)], "L2")}},
            {"order": {"id": "gid://shopify/Order/1", "updatedAt": UPDATED,
                       "lineItems": connection([line(3, "C", 3)])}})
    page = conn.pull_orders(SINCE, None)
    assert [(x.line_id, x.ordered) for x in page.lines] == [("1", 1), ("2", 2), ("3", 3)]
    assert shop.sent("OrderLines") == [{"id": "gid://shopify/Order/1", "after": "L1"},
                                       {"id": "gid://shopify/Order/1", "after": "L2"}]


def test_an_order_changing_while_its_pages_are_read_is_left_for_later(
    conn: ShopifyConnector, shop: FakeShop
) -> None:
    shop.on("Orders", orders_page(order(1, [line(1, "A", 1)], line_cursor="L1"),
                                  order(2, [line(2, "B", 1)])))
    shop.on("OrderLines", {"order": {"id": "gid://shopify/Order/1",
                                     "updatedAt": "2026-03-01T10:00:09Z",
                                     "lineItems": connection([line(5, "C", 3)])}})
    page = conn.pull_orders(SINCE, None)
    # order 1 now sorts after this page: the same pull (or the next) reads it whole
    assert [x.order_id for x in page.lines] == ["2"] and page.bad_records == []


def test_refunds_beyond_the_nested_page_are_read(conn: ShopifyConnector,
                                                 shop: FakeShop) -> None:
    nested = [refund(1, (1, 1, "RETURN")), refund(2, (1, 1, "RETURN"), cursor="R2")]
    shop.on("Orders", orders_page(order(1, [line(1, "A", 6, current=2, unfulfilled=0)],
                                        refunds=nested, fulfillment="FULFILLED")))
    shop.on("OrderRefunds", {"order": {"id": "gid://shopify/Order/1", "updatedAt": UPDATED,
                                       "refunds": [{"id": f"gid://shopify/Refund/{n}"}
                                                   for n in (1, 2, 3)]}})
    shop.on("RefundLines",
            {"nodes": [refund(2, (1, 1, "NO_RESTOCK"))]},  # refund 2 from its nested cursor
            {"nodes": [refund(3, (1, 1, "RETURN"))]})
    [x] = conn.pull_orders(SINCE, None).lines
    # 3 refunded after shipping (RETURN, RETURN + NO_RESTOCK on refund 2, RETURN on refund 3)
    assert counts([x]) == [(6, 6, 0, 3)]
    assert shop.sent("RefundLines") == [
        {"ids": ["gid://shopify/Refund/2"], "after": "R2"},
        {"ids": ["gid://shopify/Refund/3"], "after": None}]


def test_refund_paging_of_an_order_that_changed_meanwhile(conn: ShopifyConnector,
                                                          shop: FakeShop) -> None:
    shop.on("Orders", orders_page(order(1, [line(1, "A", 2)],
                                        refunds=[refund(1), refund(2)])))
    shop.on("OrderRefunds", {"order": None})  # gone
    assert conn.pull_orders(SINCE, None).lines == []


def test_a_malformed_orders_answer_is_retriable(conn: ShopifyConnector, shop: FakeShop) -> None:
    shop.on("Orders", {"orders": {"nodes": [], "pageInfo": {"hasNextPage": True}}})
    with pytest.raises(RetriableChannelError, match="malformed"):
        conn.pull_orders(SINCE, None)


# -- errors and throttling -------------------------------------------------------------------------


def graphql_errors(*errors: dict[str, Any], **extensions: Any) -> httpx.Response:
    return httpx.Response(200, json={"errors": list(errors), **extensions})


def test_throttled_200_is_a_throttled_error_with_the_refill_time(
    conn: ShopifyConnector, shop: FakeShop
) -> None:
    throttled = graphql_errors(
        {"message": "Throttled", "extensions": {"code": "THROTTLED"}},
        extensions=cost(requested=782, available=182, rate=100.0) | {})
    body = json.loads(throttled.content)
    body["extensions"]["cost"]["actualQueryCost"] = None
    shop.on("Orders", httpx.Response(200, json=body))
    with pytest.raises(ThrottledError) as caught:
        conn.pull_orders(SINCE, None)
    assert caught.value.retry_after == 6.0 and caught.value.status == 200


def test_http_429_uses_retry_after(conn: ShopifyConnector, shop: FakeShop) -> None:
    shop.on("Orders", httpx.Response(429, headers={"Retry-After": "2.0"}, json={
        "errors": "Exceeded 2 calls per second for api client."}))
    with pytest.raises(ThrottledError) as caught:
        conn.pull_orders(SINCE, None)
    assert caught.value.retry_after == 2.0


def test_waits_for_the_bucket_before_a_query_it_cannot_afford() -> None:
    waits: list[float] = []
    now = [100.0]
    connector = make(sleep=waits.append, clock=lambda: now[0])
    fake = FakeShop()
    fake.on("Orders", lambda _v: httpx.Response(200, json={
        "data": orders_page(), "extensions": cost(requested=782, available=182)}))
    with respx.mock(base_url=STORE) as router:
        router.post(GRAPHQL).mock(side_effect=fake)
        connector.pull_orders(SINCE, None)  # nothing known yet: no wait
        assert waits == []
        now[0] += 1.0  # 182 left a second ago, +100 refilled: 500 short of 782
        connector.pull_orders(SINCE, None)
        assert waits == [pytest.approx(5.0)]
        now[0] += 10.0  # plenty of time: full again
        connector.pull_orders(SINCE, None)
        assert waits == [pytest.approx(5.0)]
    connector.close()


def test_throttle_status_arithmetic() -> None:
    status = ThrottleStatus(maximum=2000, available=100, restore_rate=50, at=10.0)
    assert status.available_at(12.0) == 200
    assert status.available_at(1000.0) == 2000
    assert status.wait_for(300, 12.0) == 2.0
    assert status.wait_for(150, 12.0) == 0.0
    assert status.wait_for(5000, 10.0) == 38.0  # never waits for more than the bucket holds


@pytest.mark.parametrize(("code", "error"), [
    ("MAX_COST_EXCEEDED", PermanentChannelError),
    ("GRAPHQL_VALIDATION_FAILED", PermanentChannelError),
    ("BAD_REQUEST", PermanentChannelError),
    ("INTERNAL_SERVER_ERROR", RetriableChannelError),
])
def test_top_level_errors(conn: ShopifyConnector, shop: FakeShop, code: str,
                          error: type[Exception]) -> None:
    shop.on("Orders", graphql_errors({"message": f"it failed for {TOKEN}",
                                      "extensions": {"code": code}}))
    with pytest.raises(error) as caught:
        conn.pull_orders(SINCE, None)
    assert not isinstance(caught.value, ThrottledError)
    assert code in str(caught.value)
    assert_no_secret(caught.value)


def test_refused_token_is_permanent_and_secret_free(conn: ShopifyConnector,
                                                    shop: FakeShop) -> None:
    shop.on("Orders", httpx.Response(401, json={"errors": "[API] Invalid API key or access "
                                                          "token (unrecognized login)"}))
    with pytest.raises(PermanentChannelError) as caught:
        conn.pull_orders(SINCE, None)
    assert caught.value.status == 401 and "credentials" in str(caught.value)
    assert_no_secret(caught.value, repr(caught.value))


def test_unknown_api_version_names_the_cause(conn: ShopifyConnector, shop: FakeShop) -> None:
    shop.on("Orders", httpx.Response(404, json={"errors": "Not Found"}))
    with pytest.raises(PermanentChannelError, match="API version"):
        conn.pull_orders(SINCE, None)


@pytest.mark.parametrize("status", [502, 503])
def test_5xx_is_retriable(conn: ShopifyConnector, shop: FakeShop, status: int) -> None:
    shop.on("Orders", httpx.Response(status, text="<html>Bad gateway</html>"))
    with pytest.raises(RetriableChannelError) as caught:
        conn.pull_orders(SINCE, None)
    assert not isinstance(caught.value, ThrottledError)


# -- locations and listings ------------------------------------------------------------------------


def variant(n: int, sku: str | None, available: int | None = 5, tracked: bool = True,
            stocked: bool = True) -> dict[str, Any]:
    level = {"quantities": [{"name": "available", "quantity": available}]} if stocked else None
    return {"id": f"gid://shopify/ProductVariant/{n}", "sku": sku,
            "inventoryItem": {"id": item_gid(n), "tracked": tracked, "inventoryLevel": level}}


def test_read_listings_maps_variants_and_reports_problems(conn: ShopifyConnector,
                                                          shop: FakeShop) -> None:
    shop.on("Locations", locations())
    shop.on("Listings",
            {"productVariants": connection([variant(1, "MUG", 3), variant(2, None),
                                            variant(3, "MUG", 9), variant(4, "FREE", 0,
                                                                           tracked=False)],
                                           "V1")},
            {"productVariants": connection([variant(5, "AWAY", stocked=False),
                                            variant(6, "MUG", 1)])})
    read = list(conn.read_listings())
    listings = [x for x in read if isinstance(x, ChannelListing)]
    problems = {x.channel_sku: x for x in read if isinstance(x, ListingProblem)}
    assert [(x.channel_sku, x.quantity, x.ref, x.managed) for x in listings] == [
        ("MUG", 3, item_gid(1), True), ("FREE", 0, item_gid(4), True),
        ("AWAY", None, item_gid(5), True)]
    assert sorted(problems) == ["FREE", "MUG"]  # each once, to be raised as a conflict
    assert "3 variants have this SKU" in problems["MUG"].reason
    assert problems["MUG"].detail == {"variants": [f"gid://shopify/ProductVariant/{n}"
                                                   for n in (1, 3, 6)]}
    assert "tracking is off" in problems["FREE"].reason
    assert shop.sent("Listings") == [{"location": "gid://shopify/Location/1", "after": None},
                                     {"location": "gid://shopify/Location/1", "after": "V1"}]


@pytest.mark.parametrize(("wanted", "gid"), [
    (None, "gid://shopify/Location/1"), ("Warehouse", "gid://shopify/Location/2"),
    ("warehouse", "gid://shopify/Location/2"), ("2", "gid://shopify/Location/2"),
    ("gid://shopify/Location/2", "gid://shopify/Location/2"),
])
def test_location_by_name_gid_or_number_resolved_once(shop: FakeShop, wanted: str | None,
                                                      gid: str) -> None:
    connector = make(location=wanted) if wanted else make()
    shop.on("Locations", {"locations": connection(LOCATIONS[:1], "P1")},
            {"locations": connection(LOCATIONS[1:])})
    shop.on("Listings", {"productVariants": connection([])})
    list(connector.read_listings())
    list(connector.read_listings())
    assert [v["location"] for v in shop.sent("Listings")] == [gid, gid]
    assert len(shop.sent("Locations")) == 2  # two pages, once
    connector.close()


def test_unknown_location_names_the_ones_that_exist(shop: FakeShop) -> None:
    connector = make(location="Basement")
    shop.on("Locations", locations())
    with pytest.raises(PermanentChannelError) as caught:
        list(connector.read_listings())
    text = str(caught.value)
    assert "'Basement'" in text and "'Shop location'" in text and "'Warehouse'" in text
    connector.close()


def test_an_inactive_location_is_refused(shop: FakeShop) -> None:
    connector = make(location="Warehouse")
    shop.on("Locations", locations(LOCATIONS[0], {**LOCATIONS[1], "isActive": False}))
    with pytest.raises(PermanentChannelError, match="not active"):
        connector.push_quantities([PushItem("A", 1, item_gid(1))])
    assert "includeInactive: true" in shop.calls[0]["query"]  # else Shopify would hide it
    connector.close()


def place(n: int, name: str, **flags: bool) -> dict[str, Any]:
    return {"id": f"gid://shopify/Location/{n}", "name": name, **ONLINE, **flags}


@pytest.mark.parametrize(("rows", "chosen"), [
    ([place(1, "Shop"), place(2, "Store", fulfillsOnlineOrders=False)], "Shop"),
    ([place(1, "Old", isActive=False), place(2, "Shop")], "Shop"),
    ([place(1, "3PL", isFulfillmentService=True), place(2, "Shop", shipsInventory=False)],
     "Shop"),
    ([place(1, "Shop"), place(2, "Outlet", shipsInventory=False)], "Shop"),
    ([place(1, "Shop", shipsInventory=False), place(2, "Outlet"),
      place(3, "Popup", shipsInventory=False)], "Outlet"),
])
def test_the_default_location_is_the_one_that_sells_online(
    shop: FakeShop, rows: list[dict[str, Any]], chosen: str
) -> None:
    connector = make()
    shop.on("Locations", locations(*rows)).on("Listings", {"productVariants": connection([])})
    list(connector.read_listings())
    [wanted] = [row["id"] for row in rows if row["name"] == chosen]
    assert [v["location"] for v in shop.sent("Listings")] == [wanted]
    connector.close()


@pytest.mark.parametrize(("rows", "problem"), [
    ([place(1, "Shop"), place(2, "Outlet")], "2 locations fulfil online orders"),
    ([place(1, "Shop", shipsInventory=False), place(2, "Outlet", shipsInventory=False)],
     "2 locations fulfil online orders"),
    ([place(1, "Old", isActive=False), place(2, "Store", fulfillsOnlineOrders=False)],
     "no active location of the shop fulfils online orders"),
    ([], "no active location"),
])
def test_without_an_obvious_default_the_seller_is_asked_to_set_location(
    shop: FakeShop, rows: list[dict[str, Any]], problem: str
) -> None:
    connector = make()
    shop.on("Locations", {"locations": connection(rows)})
    with pytest.raises(PermanentChannelError, match=problem) as caught:
        list(connector.read_listings())
    assert "set location" in str(caught.value)
    assert all(f"'{row['name']}'" in str(caught.value) for row in rows)
    assert shop.sent("Listings") == []  # nothing read, nothing written at a guessed place
    connector.close()


# -- pushing --------------------------------------------------------------------------------------


def found(n: int, sku: str) -> dict[str, Any]:
    """A variant as the SKU look-up reads it."""
    return {"id": f"gid://shopify/ProductVariant/{n}", "sku": sku,
            "inventoryItem": {"id": item_gid(n)}}


def set_ok(_variables: dict[str, Any]) -> dict[str, Any]:
    return {"inventorySetQuantities": {"inventoryAdjustmentGroup": {"id": "gid://x/1"},
                                       "userErrors": []}}


def user_errors(*errors: tuple[str, int | None]) -> dict[str, Any]:
    rows = [{"code": code, "message": f"{code} happened",
             "field": ["input", "quantities", str(i), "x"] if i is not None else ["input"]}
            for code, i in errors]
    return {"inventorySetQuantities": {"inventoryAdjustmentGroup": None, "userErrors": rows}}


def quantities(variables: dict[str, Any]) -> list[tuple[str, int, int | None]]:
    return [(x["inventoryItemId"], x["quantity"], x["changeFromQuantity"])
            for x in variables["input"]["quantities"]]


def test_push_sends_compare_and_set_with_a_deterministic_key(conn: ShopifyConnector,
                                                             shop: FakeShop) -> None:
    shop.on("Locations", locations()).on("SetQuantities", set_ok)
    items = [PushItem("A", 4, item_gid(1), expected=5, key="k-a"),
             PushItem("B", 0, item_gid(2), expected=None, key="k-b")]
    results = conn.push_quantities(items)
    assert [(r.channel_sku, r.ok, r.ref, r.stale) for r in results] == [
        ("A", True, item_gid(1), False), ("B", True, item_gid(2), False)]
    conn.push_quantities(list(reversed(items)))  # the same write retried: the same key
    conn.push_quantities([items[0], PushItem("B", 1, item_gid(2), key="k-b")])
    first, again, changed = shop.sent("SetQuantities")
    assert quantities(first) == [(item_gid(1), 4, 5), (item_gid(2), 0, None)]
    assert first["input"]["name"] == "available" and first["input"]["reason"] == "correction"
    assert {x["locationId"] for x in first["input"]["quantities"]} == {"gid://shopify/Location/1"}
    assert first["input"]["referenceDocumentUri"] == "channelsync://shop/push"
    assert len(first["key"]) == 64 and again["key"] == first["key"]
    assert changed["key"] != first["key"]
    assert "@idempotent(key: $key)" in shop.calls[-1]["query"]


def test_items_without_a_key_get_a_fresh_key_each_call(conn: ShopifyConnector,
                                                       shop: FakeShop) -> None:
    shop.on("Locations", locations()).on("SetQuantities", set_ok)
    for _ in range(2):
        conn.push_quantities([PushItem("A", 4, item_gid(1), expected=5, key="k"),
                              PushItem("B", 4, item_gid(2))])
    keys = [v["key"] for v in shop.sent("SetQuantities")]
    assert keys[0] != keys[1]


def test_user_errors_split_the_batch_and_the_rest_is_sent_again(
    conn: ShopifyConnector, shop: FakeShop
) -> None:
    shop.on("Locations", locations())
    shop.on("SetQuantities",
            user_errors(("CHANGE_FROM_QUANTITY_STALE", 1), ("INVALID_QUANTITY_TOO_HIGH", 3)),
            set_ok)
    shop.on("Available", {"nodes": [
        {"id": item_gid(2), "inventoryLevel": {"quantities": [{"name": "available",
                                                                "quantity": 6}]}}]})
    items = [PushItem(s, 1, item_gid(n), expected=7, key=s)
             for n, s in enumerate("ABCD", start=1)]
    results = conn.push_quantities(items)
    assert [r.ok for r in results] == [True, False, True, False]
    stale = results[1]
    assert (stale.stale, stale.observed, stale.ref) == (True, 6, item_gid(2))
    assert isinstance(stale.error, PermanentChannelError) and "stale" in str(stale.error)
    assert isinstance(results[3].error, PermanentChannelError)
    assert "INVALID_QUANTITY_TOO_HIGH" in str(results[3].error) and not results[3].stale
    first, second = shop.sent("SetQuantities")
    assert [x[0] for x in quantities(second)] == [item_gid(1), item_gid(3)]
    assert first["key"] != second["key"]
    assert shop.sent("Available") == [{"ids": [item_gid(2)],
                                        "location": "gid://shopify/Location/1"}]


def test_a_stale_ref_is_looked_up_again_once(conn: ShopifyConnector, shop: FakeShop) -> None:
    shop.on("Locations", locations())
    shop.on("SetQuantities", user_errors(("INVALID_INVENTORY_ITEM", 0)),
            user_errors(("INVALID_INVENTORY_ITEM", 1)), set_ok)
    shop.on("VariantsBySku", {"productVariants": connection([
        found(9, "A")])})
    results = conn.push_quantities([PushItem("A", 1, item_gid(1)), PushItem("B", 1, item_gid(2))])
    # A moved to item 9, but that one fails too: no second look-up; B was never gone
    assert [(r.ok, r.ref) for r in results] == [(False, item_gid(9)), (True, item_gid(2))]
    assert "INVALID_INVENTORY_ITEM" in str(results[0].error)
    assert [quantities(v) for v in shop.sent("SetQuantities")] == [
        [(item_gid(1), 1, None), (item_gid(2), 1, None)],
        [(item_gid(2), 1, None), (item_gid(9), 1, None)],
        [(item_gid(2), 1, None)],
    ]
    assert len(shop.sent("VariantsBySku")) == 1


def test_a_ref_that_is_gone_for_good_fails_the_item(conn: ShopifyConnector,
                                                    shop: FakeShop) -> None:
    shop.on("Locations", locations())
    shop.on("SetQuantities", user_errors(("INVALID_INVENTORY_ITEM", 0)))
    shop.on("VariantsBySku", {"productVariants": connection([])})
    [result] = conn.push_quantities([PushItem("A", 1, item_gid(1))])
    assert not result.ok and "gone" in str(result.error)


def test_sku_lookup_is_batched_and_cached(conn: ShopifyConnector, shop: FakeShop) -> None:
    shop.on("Locations", locations()).on("SetQuantities", set_ok)
    shop.on("VariantsBySku", {"productVariants": connection([
        found(1, "A"), found(3, "A"), found(2, "B B")])})
    results = conn.push_quantities([PushItem("A", 1), PushItem("B B", 2), PushItem("NOPE", 3)])
    assert [(r.ok, r.ref) for r in results] == [(True, item_gid(1)), (True, item_gid(2)),
                                                (False, "")]
    assert isinstance(results[2].error, PermanentChannelError)
    assert "no product variant" in str(results[2].error)
    assert shop.sent("VariantsBySku") == [
        {"query": 'sku:"A" OR sku:"B B" OR sku:"NOPE"', "after": None}]
    conn.push_quantities([PushItem("A", 1), PushItem("B B", 2)])
    assert len(shop.sent("VariantsBySku")) == 1


def test_negative_quantities_are_never_sent(conn: ShopifyConnector, shop: FakeShop) -> None:
    [result] = conn.push_quantities([PushItem("A", -1, item_gid(1))])
    assert not result.ok and "negative" in str(result.error)
    assert shop.calls == []


def test_more_than_250_quantities_go_in_several_mutations(conn: ShopifyConnector,
                                                         shop: FakeShop) -> None:
    shop.on("Locations", locations()).on("SetQuantities", set_ok)
    results = conn.push_quantities([PushItem(f"S{n}", 1, item_gid(n)) for n in range(1, 302)])
    assert all(r.ok for r in results)
    assert [len(v["input"]["quantities"]) for v in shop.sent("SetQuantities")] == [250, 51]


def test_previous_attempt_failed_is_sent_again_once_with_a_new_key(
    conn: ShopifyConnector, shop: FakeShop
) -> None:
    shop.on("Locations", locations())
    shop.on("SetQuantities", user_errors(("IDEMPOTENCY_PREVIOUS_ATTEMPT_FAILED", None)), set_ok)
    [result] = conn.push_quantities([PushItem("A", 1, item_gid(1), expected=2, key="w1")])
    assert result.ok
    first, second = shop.sent("SetQuantities")
    assert first["key"] != second["key"] and quantities(first) == quantities(second)


def test_a_concurrent_request_is_retriable(conn: ShopifyConnector, shop: FakeShop) -> None:
    shop.on("Locations", locations())
    shop.on("SetQuantities", user_errors(("IDEMPOTENCY_CONCURRENT_REQUEST", None)))
    [result] = conn.push_quantities([PushItem("A", 1, item_gid(1), key="w1")])
    assert not result.ok and isinstance(result.error, RetriableChannelError)


def test_a_batch_wide_user_error_fails_every_item(conn: ShopifyConnector,
                                                 shop: FakeShop) -> None:
    shop.on("Locations", locations()).on("SetQuantities", user_errors(("INVALID_REASON", None)))
    results = conn.push_quantities([PushItem("A", 1, item_gid(1)), PushItem("B", 1, item_gid(2))])
    assert all(isinstance(r.error, PermanentChannelError) for r in results)


def test_a_failure_after_a_successful_mutation_keeps_its_outcome(
    conn: ShopifyConnector, shop: FakeShop
) -> None:
    shop.on("Locations", locations())
    shop.on("SetQuantities", user_errors(("INVALID_QUANTITY_TOO_HIGH", 0)),
            httpx.Response(503, json={"errors": "Service Unavailable"}))
    results = conn.push_quantities([PushItem("A", 1, item_gid(1)), PushItem("B", 1, item_gid(2))])
    assert isinstance(results[0].error, PermanentChannelError)
    assert isinstance(results[1].error, RetriableChannelError)


def test_a_failing_first_mutation_raises(conn: ShopifyConnector, shop: FakeShop) -> None:
    shop.on("Locations", locations())
    shop.on("SetQuantities", httpx.Response(429, headers={"Retry-After": "3"}, json={}))
    with pytest.raises(ThrottledError):
        conn.push_quantities([PushItem("A", 1, item_gid(1))])


def test_stale_items_keep_their_outcome_when_the_read_back_fails(
    conn: ShopifyConnector, shop: FakeShop
) -> None:
    shop.on("Locations", locations())
    shop.on("SetQuantities", user_errors(("CHANGE_FROM_QUANTITY_STALE", 0)))
    shop.on("Available", httpx.Response(503, json={"errors": "Service Unavailable"}))
    [result] = conn.push_quantities([PushItem("A", 1, item_gid(1), expected=3)])
    assert (result.ok, result.stale, result.observed) == (False, True, None)


# == against the emulator ==========================================================================

EMULATOR_TOKEN = "shpat_emulator0123456789abcdef012345"


class FakeTime:
    """Monotonic seconds shared by the emulator's cost bucket and the connector's waits."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


class Recorder(httpx.BaseTransport):
    """A loopback transport that keeps each GraphQL answer, and can lose one response."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.answers: list[tuple[str, dict[str, Any]]] = []
        self.variables: list[tuple[str, dict[str, Any]]] = []
        self.lose: str | None = None  # the operation whose next response is lost

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        operation = body.get("operationName", "")
        self.variables.append((operation, body.get("variables", {})))
        response = self.inner.handle_request(request)
        response.read()
        if self.lose == operation:
            self.lose = None
            raise httpx.ReadError("connection reset after the request was sent")
        if response.status_code == 200:
            self.answers.append((operation, response.json()))
        return response

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def emulator(fake_time: FakeTime) -> Iterator[Any]:
    from connectors.shopify.emulator import ShopifyEmulator

    emu = ShopifyEmulator(access_token=EMULATOR_TOKEN, monotonic=fake_time)
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture
def control(emulator: Any) -> Iterator[httpx.Client]:
    client = httpx.Client(base_url=emulator.url + "/_sandbox", timeout=10)
    yield client
    client.close()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def recorder_variables(recorder: Recorder, operation: str) -> list[dict[str, Any]]:
    return [variables for name, variables in recorder.variables if name == operation]


def on_emulator(emulator: Any, recorder: Recorder, fake_time: FakeTime,
                **settings: Any) -> ShopifyConnector:
    values = {"access_token": EMULATOR_TOKEN, **settings}
    return ShopifyConnector("live", ShopifySettings.model_validate(values),
                            endpoint=emulator.url, transport=recorder,
                            sleep=fake_time.sleep, clock=fake_time)


@pytest.fixture
def live(emulator: Any, recorder: Recorder, fake_time: FakeTime) -> Iterator[ShopifyConnector]:
    connector = on_emulator(emulator, recorder, fake_time)
    yield connector
    connector.close()


def post(control: httpx.Client, path: str, body: Any, expect: int = 200) -> Any:
    response = control.post(path, json=body)
    assert response.status_code == expect, response.text
    return response.json()


def listing(control: httpx.Client, sku: str, quantity: int, **extra: Any) -> None:
    post(control, "/listings", {"sku": sku, "quantity": quantity, **extra})


def buy(control: httpx.Client, *lines: tuple[str, int], **extra: Any) -> str:
    body = {"lines": [{"sku": s, "quantity": n} for s, n in lines], **extra}
    return str(post(control, "/orders", body, expect=201)["order_id"])


def shown(control: httpx.Client) -> dict[str, int | None]:
    rows = control.get("/listings").json()["listings"]
    return {row["sku"]: row["quantity"] for row in rows}


def pull(connector: ShopifyConnector, since: datetime) -> dict[str, list[OrderLineSnapshot]]:
    """Every order's lines from a whole pull, by order id."""
    found: dict[str, list[OrderLineSnapshot]] = {}
    token: str | None = None
    for _ in range(20):
        page = connector.pull_orders(since, token)
        assert page.bad_records == []
        for snapshot in page.lines:
            found.setdefault(snapshot.order_id, []).append(snapshot)
        token = page.next_page
        if token is None:
            return found
    raise AssertionError("too many pages")


LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


def test_emulator_orders_map_to_snapshots(live: ShopifyConnector, control: httpx.Client) -> None:
    listing(control, "A", 100)
    partial, cancelled, returned, refunded, no_restock, kept, edited = (
        buy(control, ("A", n)) for n in (5, 2, 4, 3, 3, 2, 4))
    post(control, f"/orders/{partial}/ship", {"lines": [{"sku": "A", "quantity": 3}]})
    post(control, f"/orders/{cancelled}/cancel", None)
    post(control, f"/orders/{returned}/ship", None)
    post(control, f"/orders/{returned}/refund",
         {"lines": [{"sku": "A", "quantity": 1, "restock_type": "RETURN"}]})
    post(control, f"/orders/{refunded}/refund",
         {"lines": [{"sku": "A", "quantity": 1, "restock_type": "CANCEL"}]})
    post(control, f"/orders/{no_restock}/ship", {"lines": [{"sku": "A", "quantity": 1}]})
    post(control, f"/orders/{no_restock}/refund",
         {"lines": [{"sku": "A", "quantity": 1, "restock_type": "NO_RESTOCK"}]})
    post(control, f"/orders/{kept}/ship", None)
    post(control, f"/orders/{kept}/refund",  # money back, the buyer keeps the goods
         {"lines": [{"sku": "A", "quantity": 1, "restock_type": "NO_RESTOCK"}]})
    post(control, f"/orders/{edited}/edit", {"sku": "A", "quantity": 1})
    found = pull(live, LONG_AGO)
    assert {k: counts(v) for k, v in found.items()} == {
        partial: [(5, 3, 0, 0)],
        cancelled: [(2, 0, 2, 0)],
        returned: [(4, 4, 0, 1)],
        refunded: [(3, 0, 1, 0)],
        no_restock: [(3, 1, 1, 0)],
        kept: [(2, 2, 0, 0)],
        edited: [(4, 0, 3, 0)],
    }
    assert found[partial][0].status == "partially_fulfilled/paid"
    assert found[cancelled][0].status == "cancelled"
    assert found[edited][0].status == "unfulfilled/paid"


def test_emulator_test_orders_are_ignored_unless_configured(
    emulator: Any, recorder: Recorder, fake_time: FakeTime, control: httpx.Client
) -> None:
    listing(control, "A", 10)
    real, test = buy(control, ("A", 1)), buy(control, ("A", 1), test=True)
    for include in (False, True):
        connector = on_emulator(emulator, recorder, fake_time, include_test_orders=include)
        found = pull(connector, LONG_AGO)
        assert [found[real][0].ignore, found[test][0].ignore] == [False, not include]
        connector.close()


def test_emulator_nested_pages_are_followed(
    emulator: Any, recorder: Recorder, fake_time: FakeTime, control: httpx.Client
) -> None:
    skus = [f"L{n}" for n in range(7)]
    for sku in skus:
        listing(control, sku, 10)
    many_lines = buy(control, *((sku, 2) for sku in skus))
    post(control, f"/orders/{many_lines}/ship", None)
    # one refund with more lines than the nested page, then three more refunds
    post(control, f"/orders/{many_lines}/refund", {"lines": [
        {"sku": sku, "quantity": 1, "restock_type": "RETURN"} for sku in skus]})
    for sku in skus[:3]:
        post(control, f"/orders/{many_lines}/refund",
             {"lines": [{"sku": sku, "quantity": 1, "restock_type": "NO_RESTOCK"}]})
    connector = on_emulator(emulator, recorder, fake_time, line_page_size=3)
    [lines] = pull(connector, LONG_AGO).values()
    assert sorted((x.channel_sku, *counts([x])[0]) for x in lines) == sorted(
        (sku, 2, 2, 0, 1) for sku in skus)
    operations = [name for name, _ in recorder.answers]
    assert operations.count("OrderLines") == 1
    assert operations.count("OrderRefunds") == 1
    # the rest of the big refund's lines, then the two refunds beyond the nested ones
    assert operations.count("RefundLines") == 3
    assert recorder_variables(recorder, "RefundLines")[0]["after"] is not None
    connector.close()


def test_emulator_costs_are_what_the_connector_expects(
    live: ShopifyConnector, recorder: Recorder, control: httpx.Client, emulator: Any
) -> None:
    listing(control, "A", 5)
    order_id = buy(control, ("A", 1))
    post(control, f"/orders/{order_id}/refund",
         {"lines": [{"sku": "A", "quantity": 1, "restock_type": "CANCEL"}]})
    pull(live, LONG_AGO)
    [ref] = [x.ref for x in live.read_listings()]
    emulator.before_set_quantities = lambda: emulator.place_order([("A", 1)])
    [stale, unknown] = live.push_quantities([PushItem("A", 9, ref, expected=5),
                                             PushItem("NEW", 1)])
    assert (stale.stale, stale.observed, unknown.ok) == (True, 4, False)
    expected = {x.name: x.cost for x in q.FIXED_QUERIES}
    expected["Orders"] = q.order_page_cost(q.ORDER_PAGE_SIZE, q.LINE_PAGE_SIZE)
    expected["Available"] = q.AVAILABLE_PER_ID  # one id asked
    seen = {name: body["extensions"]["cost"]["requestedQueryCost"]
            for name, body in recorder.answers}
    assert set(seen) >= {"Orders", "Locations", "Listings", "VariantsBySku", "SetQuantities",
                         "Available"}
    assert seen == {name: expected[name] for name in seen}
    assert max(seen.values()) <= 1000


def test_emulator_stale_compare_reports_what_shopify_shows(
    live: ShopifyConnector, control: httpx.Client
) -> None:
    listing(control, "A", 5)
    listing(control, "B", 5)
    refs = {x.channel_sku: x.ref for x in live.read_listings()}
    results = live.push_quantities([PushItem("A", 8, refs["A"], expected=3, key="a1"),
                                    PushItem("B", 2, refs["B"], expected=5, key="b1")])
    assert [(r.ok, r.stale, r.observed) for r in results] == [(False, True, 5), (True, False,
                                                                                  None)]
    assert shown(control) == {"A": 5, "B": 2}  # the atomic batch was split, B went again


def test_emulator_a_sale_between_read_and_write_is_not_overwritten(
    live: ShopifyConnector, control: httpx.Client, emulator: Any
) -> None:
    listing(control, "MUG", 5)
    [mug] = live.read_listings()
    sold: list[str] = []

    def buyer_checks_out() -> None:  # in the instant between our read and our write
        emulator.before_set_quantities = None
        sold.append(emulator.place_order([("MUG", 1)]))

    emulator.before_set_quantities = buyer_checks_out
    [result] = live.push_quantities([PushItem("MUG", 5, mug.ref, expected=mug.quantity,
                                              key="restock-1")])
    assert sold and (result.ok, result.stale, result.observed) == (False, True, 4)
    assert isinstance(result.error, PermanentChannelError)
    assert shown(control) == {"MUG": 4}  # the sold unit was not put back on sale
    # the engine pulls, sees the sale, recomputes and pushes again against what it saw
    [line_] = pull(live, LONG_AGO)[sold[0]]
    assert line_.ordered == 1
    [again] = live.push_quantities([PushItem("MUG", 4, mug.ref, expected=result.observed,
                                             key="restock-2")])
    assert again.ok and shown(control) == {"MUG": 4}


def test_emulator_a_retried_write_is_not_applied_twice(
    live: ShopifyConnector, control: httpx.Client, recorder: Recorder, emulator: Any
) -> None:
    listing(control, "A", 3)
    [a] = live.read_listings()
    write = [PushItem("A", 10, a.ref, expected=3, key="write-7")]
    recorder.lose = "SetQuantities"
    with pytest.raises(RetriableChannelError):
        live.push_quantities(write)  # applied, but the answer never came
    assert shown(control) == {"A": 10}
    buy(control, ("A", 2))  # a sale after our write
    [result] = live.push_quantities(write)  # the engine retries the same logical write
    assert result.ok and shown(control) == {"A": 8}  # replayed, not applied again
    assert emulator.stats()["items_updated"] == 1


def test_emulator_a_recreated_variant_is_looked_up_again(
    live: ShopifyConnector, control: httpx.Client, emulator: Any
) -> None:
    listing(control, "A", 3)
    [old] = live.read_listings()
    emulator.delete_listing("A")
    listing(control, "A", 3)  # a new variant with a new inventory item
    [result] = live.push_quantities([PushItem("A", 6, old.ref, expected=3, key="k")])
    assert result.ok and result.ref != old.ref
    assert result.ref == shown_refs(control)["A"] and shown(control) == {"A": 6}
    emulator.delete_listing("A")
    [gone] = live.push_quantities([PushItem("A", 1, result.ref)])
    assert not gone.ok and isinstance(gone.error, PermanentChannelError)


def shown_refs(control: httpx.Client) -> dict[str, str]:
    return {row["sku"]: row["ref"] for row in control.get("/listings").json()["listings"]}


def test_emulator_listings_not_stocked_untracked_and_other_locations(
    emulator: Any, recorder: Recorder, fake_time: FakeTime, control: httpx.Client,
) -> None:
    listing(control, "HERE", 4)
    listing(control, "FREE", 2, tracked=False)
    listing(control, "THERE", 7, location="Warehouse")
    listing(control, "THERE", 0, stocked=False)
    primary = on_emulator(emulator, recorder, fake_time)
    warehouse = on_emulator(emulator, recorder, fake_time, location="Warehouse")
    read = list(primary.read_listings())
    assert {x.channel_sku: x.quantity for x in read if isinstance(x, ChannelListing)} == {
        "HERE": 4, "FREE": 2, "THERE": None}
    assert [(x.channel_sku, "tracking is off" in x.reason)
            for x in read if isinstance(x, ListingProblem)] == [("FREE", True)]
    assert {x.channel_sku: x.quantity for x in warehouse.read_listings()
            if isinstance(x, ChannelListing)} == {"HERE": None, "FREE": None, "THERE": 7}
    [result] = warehouse.push_quantities([PushItem("THERE", 3, expected=7)])
    assert result.ok
    rows = {row["sku"]: row for row in control.get("/listings").json()["listings"]}
    assert rows["THERE"]["locations"] == {"Warehouse": 3}
    nowhere = on_emulator(emulator, recorder, fake_time, location="Cellar")
    with pytest.raises(PermanentChannelError, match="'Shop location'.*'Warehouse'"):
        list(nowhere.read_listings())
    for connector in (primary, warehouse, nowhere):
        connector.close()


def test_emulator_a_deactivated_location_is_reported_as_such(
    emulator: Any, recorder: Recorder, fake_time: FakeTime, control: httpx.Client,
) -> None:
    listing(control, "THERE", 7, location="Warehouse")
    post(control, "/locations", {"name": "Warehouse", "active": False})
    warehouse = on_emulator(emulator, recorder, fake_time, location="warehouse")
    with pytest.raises(PermanentChannelError, match="'Warehouse' .* is not active") as caught:
        warehouse.push_quantities([PushItem("THERE", 3, expected=7)])
    assert "no location" not in str(caught.value)
    assert recorder_variables(recorder, "SetQuantities") == []
    default = on_emulator(emulator, recorder, fake_time)  # the default ignores it
    assert [x.channel_sku for x in default.read_listings()] == ["THERE"]
    for connector in (warehouse, default):
        connector.close()


def test_emulator_a_second_online_location_makes_the_seller_choose(
    emulator: Any, recorder: Recorder, fake_time: FakeTime, control: httpx.Client,
) -> None:
    listing(control, "HERE", 4)
    post(control, "/locations", {"name": "Outlet", "fulfills_online_orders": True})
    unsure = on_emulator(emulator, recorder, fake_time)
    with pytest.raises(PermanentChannelError, match="2 locations fulfil online orders"):
        list(unsure.read_listings())
    # Shopify's legacy shipping flag settles it, as its deprecation of isPrimary suggests
    post(control, "/locations", {"name": "Outlet", "ships_inventory": False})
    settled = on_emulator(emulator, recorder, fake_time)
    assert {x.channel_sku: x.quantity for x in settled.read_listings()} == {"HERE": 4}
    for connector in (unsure, settled):
        connector.close()


def test_emulator_a_small_bucket_is_waited_for_not_hit(
    recorder: Recorder, fake_time: FakeTime
) -> None:
    from connectors.shopify.emulator import ShopifyEmulator

    emu = ShopifyEmulator(access_token=EMULATOR_TOKEN, monotonic=fake_time, bucket_size=1000.0,
                          restore_rate=50.0)
    emu.start()
    try:
        with httpx.Client(base_url=emu.url + "/_sandbox") as control:
            for n in range(250):
                listing(control, f"S{n:03d}", n)
        connector = on_emulator(emu, recorder, fake_time)
        assert len(list(connector.read_listings())) == 250  # 52 + 3 x 402 points
        assert fake_time.waits and emu.stats()["throttled"] == 0
        # another app spends the bucket behind our back: Shopify throttles, we survive
        other = on_emulator(emu, Recorder(), FakeTime())
        with pytest.raises(ThrottledError):
            for _ in range(3):
                list(other.read_listings())
        with pytest.raises(ThrottledError) as caught:
            list(connector.read_listings())
        assert caught.value.retry_after is not None and caught.value.retry_after > 0
        fake_time.now += caught.value.retry_after
        assert len(list(connector.read_listings())) == 250
        connector.close()
        other.close()
    finally:
        emu.stop()


def test_emulator_a_long_cost_wait_defers_a_pull_but_a_read_waits(
    recorder: Recorder, fake_time: FakeTime
) -> None:
    """Where the engine may leave a query to a later cycle (a pull goes on from its next
    page), a wait longer than a cycle should take defers it; reading every listing cannot
    be split, so there the client waits as before."""
    from channelsync.errors import Deferred
    from channelsync.sync.ratelimit import deferring
    from connectors.shopify.emulator import ShopifyEmulator

    emu = ShopifyEmulator(access_token=EMULATOR_TOKEN, monotonic=fake_time, bucket_size=1000.0,
                          restore_rate=30.0)
    emu.start()
    try:
        with httpx.Client(base_url=emu.url + "/_sandbox") as control:
            for n in range(250):
                listing(control, f"S{n:03d}", n)
        connector = on_emulator(emu, recorder, fake_time)
        with deferring(True), pytest.raises(Deferred) as deferred:
            list(connector.read_listings())  # the last page of 402 points waits ~7 s
        assert deferred.value.wait > 5 and deferred.value.channel == "live"
        assert "Shopify's query cost budget" in str(deferred.value)
        assert fake_time.waits == [] and emu.stats()["throttled"] == 0
        fake_time.now += 60  # the bucket fills up again
        assert len(list(connector.read_listings())) == 250  # not deferrable: waited
        assert fake_time.waits and max(fake_time.waits) > 5
        connector.close()
    finally:
        emu.stop()


def test_emulator_a_query_over_the_cost_limit_is_a_permanent_error(emulator: Any) -> None:
    client = GraphQLClient("live", emulator.url + "/admin/api/2026-10",
                           SecretStr(EMULATOR_TOKEN), timeout=10)
    too_big = q.orders_query(250, 250)
    assert too_big.cost > 1000
    with pytest.raises(PermanentChannelError, match="MAX_COST_EXCEEDED") as caught:
        client.run(too_big, {"query": "updated_at:>='2026-01-01T00:00:00Z'", "after": None})
    assert not isinstance(caught.value, RetriableChannelError)
    client.close()


def test_a_lookback_beyond_60_days_is_warned_about_once(
    conn: ShopifyConnector, shop: FakeShop, caplog: pytest.LogCaptureFixture
) -> None:
    shop.on("Orders", orders_page(), orders_page(), orders_page())
    now = datetime.now(UTC)
    with caplog.at_level("WARNING"):
        conn.pull_orders(now - timedelta(days=30), None)
        assert "read_all_orders" not in caplog.text
        conn.pull_orders(now - timedelta(days=90), None)
        conn.pull_orders(now - timedelta(days=90), None)
    assert caplog.text.count("read_all_orders") == 1
