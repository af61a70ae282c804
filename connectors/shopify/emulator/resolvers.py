"""GraphQL resolvers of the Shopify emulator, bound to connectors/shopify/schema.graphql.

Objects are rendered as dicts: plain values for scalar fields and `(info, **args) -> value`
callables for the fields that take arguments or lead to other objects, which graphql-core's
default resolver calls lazily. `__typename` in each dict resolves the Node interface.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from graphql import GraphQLError, GraphQLResolveInfo, GraphQLSchema, build_schema
from graphql.execution.values import get_argument_values

from connectors.shopify.emulator.fulfilment import create_fulfillment
from connectors.shopify.emulator.inventory import Change, Group, Inventory
from connectors.shopify.emulator.orders import (
    Customer,
    Fulfillment,
    Line,
    Order,
    OrderBook,
    Refund,
    RefundLine,
)
from connectors.shopify.emulator.search import Page, order_filter, page, sku_filter
from connectors.shopify.emulator.state import (
    PRIMARY,
    QUANTITY_NAMES,
    Listing,
    Location,
    Store,
    decimal_text,
    gid,
    parse_gid,
    split_gid,
    stamp,
)

__all__ = ["Context", "PageFaults", "shopify_schema"]

SCHEMA = Path(__file__).parents[1] / "schema.graphql"  # shared with the connector's tests
SHOP_NAME, SHOP_DOMAIN = "channelsync sandbox", "channelsync-sandbox.myshopify.com"
ACCESS_SCOPES = "https://shopify.dev/api/usage/access-scopes"
PROTECTED_DATA = "https://shopify.dev/docs/apps/launch/protected-customer-data"
View = dict[str, Any]
Served = tuple[Order, str]  # an order on a page and its cursor
# (a page's rows, the row as it was before its latest change) -> the rows as served
PageFaults = Callable[[Sequence[Served], Callable[[Served], Served | None]], list[Served]]


def _no_faults(rows: Sequence[Served], previous: Callable[[Served], Served | None]
               ) -> list[Served]:
    return list(rows)


@dataclass
class Context:
    """What resolvers see of the emulator (as `info.context`); they run under its lock."""

    store: Store
    book: OrderBook
    inventory: Inventory
    now: Callable[[], datetime]
    items_updated: Callable[[int], None]
    before_set_quantities: Callable[[], None] | None = None
    page_faults: PageFaults = _no_faults  # how a page of orders is served
    read_customers: bool = True  # the token's read_customers scope: Order.customer needs it


def _ctx(info: GraphQLResolveInfo) -> Context:
    context: Context = info.context
    return context


def _micros(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def _checked_gid(value: str, kind: str) -> int | None:
    """The number of a global id of that kind; None for another kind; an error if malformed."""
    if split_gid(value) is None:
        raise GraphQLError(f"Invalid global id '{value}'")  # guessed: wording
    return parse_gid(value, kind)


# -- views ---------------------------------------------------------------------------------------


def shop_view() -> View:
    return {"__typename": "Shop", "id": gid("Shop", 1), "name": SHOP_NAME,
            "myshopifyDomain": SHOP_DOMAIN}


def location_view(location: Location) -> View:
    return {"__typename": "Location", "id": gid("Location", location.id),
            "name": location.name, "isActive": location.active,
            "fulfillsOnlineOrders": location.fulfills_online,
            "isFulfillmentService": location.fulfillment_service,
            "shipsInventory": location.ships_inventory, "isPrimary": location.primary}


def variant_view(listing: Listing) -> View:
    return {"__typename": "ProductVariant", "id": gid("ProductVariant", listing.variant_id),
            "sku": listing.sku, "title": listing.title,
            "displayName": f"{listing.title} - {listing.sku}", "updatedAt": stamp(listing.updated),
            "inventoryItem": lambda info: item_view(listing)}


def item_view(listing: Listing) -> View:
    def level(info: GraphQLResolveInfo, locationId: str) -> View | None:
        number = _checked_gid(locationId, "Location")
        return level_view(_ctx(info).store, listing, number) if number is not None else None

    return {"__typename": "InventoryItem", "id": gid("InventoryItem", listing.item_id),
            "sku": listing.sku, "tracked": listing.tracked, "inventoryLevel": level,
            "variant": lambda info: variant_view(listing)}


def level_view(store: Store, listing: Listing, location_id: int) -> View | None:
    level = listing.levels.get(location_id)
    if level is None or listing.deleted:
        return None
    # guessed: the level's number is its location's
    level_id = f"{gid('InventoryLevel', location_id)}?inventory_item_id={listing.item_id}"

    def quantities(info: GraphQLResolveInfo, names: list[str]) -> list[View]:
        unknown = [n for n in names if n not in QUANTITY_NAMES]
        if unknown:  # guessed: wording
            raise GraphQLError(f"Invalid quantity names: {', '.join(unknown)}. Valid names are "
                               f"{', '.join(QUANTITY_NAMES)}.")
        return [{"__typename": "InventoryQuantity",
                 "id": f"gid://shopify/InventoryQuantity/{location_id}?inventory_item_id="
                       f"{listing.item_id}&name={n}",  # guessed: the id's shape
                 "name": n, "quantity": level.quantity(n), "updatedAt": stamp(level.updated)}
                for n in names]

    return {"__typename": "InventoryLevel", "id": level_id, "updatedAt": stamp(level.updated),
            "item": lambda info: item_view(listing),
            "location": lambda info: location_view(store.locations[location_id]),
            "quantities": quantities}


def order_view(order: Order) -> View:
    def line_items(info: GraphQLResolveInfo, first: int | None = None,
                   after: str | None = None) -> View:
        return page(order.lines, lambda x: [x.id], first, after,
                    ["lineItems", order.id]).render(line_view)

    def refunds(info: GraphQLResolveInfo, first: int | None = None) -> list[View]:
        return [refund_view(r) for r in order.refunds[:first]]

    def customer(info: GraphQLResolveInfo) -> View | None:
        if not _ctx(info).read_customers:  # null, and an error with its path, as Shopify does
            raise GraphQLError(
                "Access denied for customer field. Required access: `read_customers` access "
                "scope.", extensions={"code": "ACCESS_DENIED", "documentation": ACCESS_SCOPES,
                                      "requiredAccess": "`read_customers` access scope."})
        return customer_view(order.customer) if order.customer is not None else None

    def email(info: GraphQLResolveInfo) -> str | None:
        if not _ctx(info).read_customers:  # guessed: the message of a protected field denied
            raise GraphQLError(
                "This app is not approved to access the email field of the Order object. See "
                f"{PROTECTED_DATA} for more details.",
                extensions={"code": "ACCESS_DENIED", "documentation": PROTECTED_DATA})
        return order.email

    def fulfillments(info: GraphQLResolveInfo, first: int | None = None) -> list[View]:
        return [fulfillment_view(f) for f in order.fulfillments[:first]]

    def fulfillment_orders(info: GraphQLResolveInfo, first: int | None = None,
                           after: str | None = None) -> View:
        return page([order], lambda o: [o.fulfillment_order_id], first, after,
                    ["fulfillmentOrders", order.id]).render(fulfillment_order_view)

    money = {"amount": decimal_text(order.total), "currencyCode": order.currency}

    return {"__typename": "Order", "id": gid("Order", order.id), "name": f"#{order.number}",
            "createdAt": stamp(order.created), "processedAt": stamp(order.processed),
            "updatedAt": stamp(order.updated),
            "cancelledAt": stamp(order.cancelled), "cancelReason": order.cancel_reason,
            "closed": order.cancelled is not None,  # guessed: only cancelled orders are closed
            "test": order.test, "displayFinancialStatus": order.financial,
            "displayFulfillmentStatus": order.fulfillment_status, "lineItems": line_items,
            "refunds": refunds, "customer": customer, "email": email,
            "fulfillments": fulfillments,
            "fulfillmentOrders": fulfillment_orders,
            # a one-currency shop: the buyer saw the shop's prices
            "totalPriceSet": {"shopMoney": money, "presentmentMoney": dict(money)}}


def customer_view(customer: Customer) -> View:
    address = {"emailAddress": customer.email} if customer.email else None
    return {"__typename": "Customer", "id": gid("Customer", customer.id),
            "firstName": customer.first_name, "lastName": customer.last_name,
            "displayName": customer.display_name, "defaultEmailAddress": address,
            "email": customer.email}


def line_view(line: Line) -> View:
    listing = line.listing
    return {"__typename": "LineItem", "id": gid("LineItem", line.id), "name": listing.title,
            "sku": listing.sku, "quantity": line.quantity, "currentQuantity": line.current,
            "unfulfilledQuantity": line.unfulfilled,
            "nonFulfillableQuantity": line.refunded_unfulfilled,
            "variant": lambda info: None if listing.deleted else variant_view(listing)}


def refund_view(refund: Refund) -> View:
    def lines(info: GraphQLResolveInfo, first: int | None = None,
              after: str | None = None) -> View:
        return page(refund.lines, lambda x: [x.id], first, after,
                    ["refundLineItems", refund.id]).render(refund_line_view)

    return {"__typename": "Refund", "id": gid("Refund", refund.id),
            "createdAt": stamp(refund.created), "refundLineItems": lines}


def refund_line_view(line: RefundLine) -> View:
    return {"id": gid("RefundLineItem", line.id), "lineItem": lambda info: line_view(line.line),
            "quantity": line.quantity, "restockType": line.restock_type,
            "restocked": line.restocked}


def fulfillment_view(fulfillment: Fulfillment) -> View:
    tracking = [{"company": fulfillment.company, "number": fulfillment.number}] if (
        fulfillment.company or fulfillment.number) else []
    return {"__typename": "Fulfillment", "id": gid("Fulfillment", fulfillment.id),
            "name": fulfillment.name, "createdAt": stamp(fulfillment.created),
            "deliveredAt": stamp(fulfillment.delivered),
            "displayStatus": fulfillment.display_status, "status": fulfillment.status,
            "totalQuantity": sum(n for _, n in fulfillment.lines),
            "trackingInfo": lambda info, first=None: tracking[:first]}


def fulfillment_order_view(order: Order) -> View:
    def line_items(info: GraphQLResolveInfo, first: int | None = None,
                   after: str | None = None) -> View:
        return page(order.lines, lambda x: [x.fulfillment_line_id], first, after,
                    ["fulfillmentOrderLineItems", order.id]).render(
            lambda line: fulfillment_line_view(order, line))

    return {"__typename": "FulfillmentOrder", "id": gid("FulfillmentOrder",
                                                        order.fulfillment_order_id),
            "status": order.fulfillment_order_status, "lineItems": line_items}


def fulfillment_line_view(order: Order, line: Line) -> View:
    return {"__typename": "FulfillmentOrderLineItem",
            "id": gid("FulfillmentOrderLineItem", line.fulfillment_line_id),
            "lineItem": lambda info: line_view(line), "sku": line.listing.sku,
            "remainingQuantity": order.remaining(line),
            "totalQuantity": line.quantity - line.removed - line.refunded_unfulfilled}


def group_view(store: Store, group: Group) -> View:
    def changes(info: GraphQLResolveInfo, inventoryItemIds: list[str] | None = None,
                locationIds: list[str] | None = None,
                quantityNames: list[str] | None = None) -> list[View]:
        return [change_view(store, c) for c in group.changes
                if (inventoryItemIds is None or gid("InventoryItem", c.listing.item_id)
                    in inventoryItemIds)
                and (locationIds is None or gid("Location", c.location_id) in locationIds)
                and (quantityNames is None or c.name in quantityNames)]

    return {"id": gid("InventoryAdjustmentGroup", group.id), "createdAt": stamp(group.created),
            "reason": group.reason, "referenceDocumentUri": group.reference, "changes": changes}


def change_view(store: Store, change: Change) -> View:
    return {"name": change.name, "delta": change.delta, "quantityAfterChange": change.after,
            "item": lambda info: None if change.listing.deleted else item_view(change.listing),
            "location": lambda info: location_view(store.locations[change.location_id])}


# -- root fields ---------------------------------------------------------------------------------


def _location(root: Any, info: GraphQLResolveInfo, id: str | None = None) -> View | None:
    store = _ctx(info).store
    number = PRIMARY if id is None else _checked_gid(id, "Location")
    location = store.locations.get(number) if number is not None else None
    return location_view(location) if location is not None else None


def _locations(root: Any, info: GraphQLResolveInfo, first: int | None = None,
               after: str | None = None, query: str | None = None,
               includeInactive: bool = False) -> View:
    # the query is accepted and ignored; a deactivated location shows only when asked for
    found = [x for x in _ctx(info).store.locations.values() if x.active or includeInactive]
    return page(found, lambda x: [x.name, x.id], first, after,  # Shopify's default: by NAME
                ["locations", includeInactive]).render(location_view)


def _order(root: Any, info: GraphQLResolveInfo, id: str) -> View | None:
    number = _checked_gid(id, "Order")
    order = _ctx(info).book.orders.get(number) if number is not None else None
    return order_view(order) if order is not None else None


_ORDER_KEYS: dict[str, Callable[[Order], list[Any]]] = {
    "ID": lambda o: [o.id],
    "PROCESSED_AT": lambda o: [_micros(o.processed), o.id],
    "UPDATED_AT": lambda o: [_micros(o.updated), o.id],
    "CREATED_AT": lambda o: [_micros(o.created), o.id],
}


def _orders(root: Any, info: GraphQLResolveInfo, first: int | None = None,
            after: str | None = None, query: str | None = None,
            sortKey: str = "PROCESSED_AT", reverse: bool = False) -> View:
    wanted = order_filter(query)
    found = [o for o in _ctx(info).book.orders.values() if wanted(o)]
    cut = page(found, _ORDER_KEYS[sortKey], first, after, ["orders", sortKey, query or ""],
               reverse)
    return _faulty(_ctx(info), cut).render(order_view)


def _faulty(ctx: Context, cut: Page[Order]) -> Page[Order]:
    """The page as the fault plan serves it: a row and its cursor go together, and a stale
    row is the order's copy from before its latest change (under the real row's cursor)."""
    def previous(row: Served) -> Served | None:
        older = row[0].previous
        return None if older is None else (older, row[1])

    return cut.served(ctx.page_faults(list(zip(cut.rows, cut.cursors, strict=True)), previous))


_VARIANT_KEYS: dict[str, Callable[[Listing], list[Any]]] = {
    "ID": lambda x: [x.variant_id],
    "SKU": lambda x: [x.sku, x.variant_id],
}


def _variants(root: Any, info: GraphQLResolveInfo, first: int | None = None,
              after: str | None = None, query: str | None = None, sortKey: str = "ID",
              reverse: bool = False) -> View:
    wanted = sku_filter(query)
    found = [x for x in _ctx(info).store.by_sku.values() if wanted(x.sku)]
    return page(found, _VARIANT_KEYS[sortKey], first, after,
                ["productVariants", sortKey, query or ""], reverse).render(variant_view)


def _inventory_item(root: Any, info: GraphQLResolveInfo, id: str) -> View | None:
    number = _checked_gid(id, "InventoryItem")
    listing = _ctx(info).store.by_item.get(number) if number is not None else None
    return item_view(listing) if listing is not None else None


def _nodes(root: Any, info: GraphQLResolveInfo, ids: list[str]) -> list[View | None]:
    return [_node(_ctx(info), value) for value in ids]


def _node(ctx: Context, value: str) -> View | None:
    found = split_gid(value)
    if found is None:
        raise GraphQLError(f"Invalid global id '{value}'")  # guessed: wording
    kind, number, params = found
    store, orders = ctx.store, ctx.book.orders
    if kind == "Shop":
        return shop_view() if number == 1 else None
    if kind == "Location":
        return location_view(store.locations[number]) if number in store.locations else None
    if kind in ("ProductVariant", "InventoryItem"):
        index = store.by_variant if kind == "ProductVariant" else store.by_item
        listing = index.get(number)
        view = variant_view if kind == "ProductVariant" else item_view
        return view(listing) if listing is not None else None
    if kind == "InventoryLevel":
        item = params.get("inventory_item_id", "")
        listing = store.by_item.get(int(item)) if item.isdigit() else None
        return level_view(store, listing, number) if listing is not None else None
    if kind == "Order":
        return order_view(orders[number]) if number in orders else None
    if kind == "LineItem":
        lines = (x for o in orders.values() for x in o.lines if x.id == number)
        return next((line_view(x) for x in lines), None)
    if kind == "Refund":
        refunds = (r for o in orders.values() for r in o.refunds if r.id == number)
        return next((refund_view(r) for r in refunds), None)
    if kind == "Fulfillment":
        done = (f for o in orders.values() for f in o.fulfillments if f.id == number)
        return next((fulfillment_view(f) for f in done), None)
    if kind == "FulfillmentOrder":
        owner = ctx.book.with_fulfillment_order(number)
        return fulfillment_order_view(owner) if owner is not None else None
    return None


def _set_quantities(root: Any, info: GraphQLResolveInfo, input: dict[str, Any]) -> View:
    ctx, key = _ctx(info), None
    directive = info.schema.get_directive("idempotent")
    for node in info.field_nodes[0].directives or ():
        if directive is not None and node.name.value == "idempotent":
            key = get_argument_values(directive, node, info.variable_values).get("key")
    outcome, changed = ctx.inventory.set_quantities(input, key, ctx.now(),
                                                    ctx.before_set_quantities)
    ctx.items_updated(changed)
    group = outcome.group
    return {"inventoryAdjustmentGroup": group_view(ctx.store, group) if group else None,
            "userErrors": outcome.errors}


def _create_fulfillment(root: Any, info: GraphQLResolveInfo, fulfillment: dict[str, Any],
                        message: str | None = None) -> View:
    ctx = _ctx(info)
    created, errors = create_fulfillment(ctx.book, fulfillment, ctx.now())
    return {"fulfillment": fulfillment_view(created) if created is not None else None,
            "userErrors": errors}


_QUERY_ROOT: dict[str, Callable[..., Any]] = {
    "shop": lambda root, info: shop_view(),
    "location": _location,
    "locations": _locations,
    "order": _order,
    "orders": _orders,
    "productVariants": _variants,
    "inventoryItem": _inventory_item,
    "nodes": _nodes,
}


@functools.cache
def shopify_schema() -> GraphQLSchema:
    """The schema with the emulator's resolvers bound (built once per process)."""
    schema = build_schema(SCHEMA.read_text(encoding="utf-8"))
    assert schema.query_type is not None and schema.mutation_type is not None
    for name, resolver in _QUERY_ROOT.items():
        schema.query_type.fields[name].resolve = resolver
    schema.mutation_type.fields["inventorySetQuantities"].resolve = _set_quantities
    schema.mutation_type.fields["fulfillmentCreate"].resolve = _create_fulfillment
    return schema
