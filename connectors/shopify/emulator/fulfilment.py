"""`fulfillmentCreate` in the Shopify emulator: checks, then one fulfilment.

Checks, every failing one reported as a userError (`field`, `message`) and nothing applied:
at least one fulfillment order; each one known (a FulfillmentOrder gid), fulfillable (OPEN or
IN_PROGRESS: a cancelled order's, or a fully fulfilled one's, is CLOSED) and of the same
order as the others; each line item given one of that fulfillment order's, for at least one
unit and at most its remaining ones (the same line item twice counts once, summed). Without
`fulfillmentOrderLineItems` every remaining unit of the fulfillment order is fulfilled.
Shopify's wording of these messages is not documented: every message here is guessed.
The mutation has no idempotency key (`@idempotent` is not among what it supports): the same
request twice is two fulfilments, or a refusal once nothing remains.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from connectors.shopify.emulator.orders import Fulfillment, Line, Order, OrderBook
from connectors.shopify.emulator.state import gid, parse_gid

__all__ = ["create_fulfillment"]

FULFILLABLE = frozenset({"OPEN", "IN_PROGRESS"})
Errors = list[dict[str, Any]]


def _error(where: list[str], message: str) -> dict[str, Any]:
    return {"field": ["fulfillment", *where], "message": message}


def create_fulfillment(book: OrderBook, given: dict[str, Any], now: datetime
                       ) -> tuple[Fulfillment | None, Errors]:
    """The fulfilment ``given`` (a coerced FulfillmentInput) makes, or why none is made."""
    groups = given.get("lineItemsByFulfillmentOrder") or []
    if not groups:
        return None, [_error(["lineItemsByFulfillmentOrder"],
                             "At least one fulfillment order is required.")]
    errors: Errors = []
    orders: dict[int, Order] = {}
    units: Counter[int] = Counter()  # line id -> units asked
    lines: dict[int, tuple[Order, Line]] = {}
    for index, group in enumerate(groups):
        where = ["lineItemsByFulfillmentOrder", str(index)]
        order = _fulfillment_order(book, group, where, errors)
        if order is None:
            continue
        orders[order.id] = order
        for line, n in _asked(order, group, where, errors):
            units[line.id] += n
            lines[line.id] = (order, line)
    if len(orders) > 1:
        errors.append(_error(["lineItemsByFulfillmentOrder"],
                             "The fulfillment orders must belong to the same order."))
    for line_id, n in units.items():
        owner, line = lines[line_id]
        if n > owner.remaining(line):
            errors.append(_error(["lineItemsByFulfillmentOrder"],
                                 "Invalid fulfillment order line item quantity requested."))
    if errors or not orders:
        return None, errors
    tracking = given.get("trackingInfo") or {}
    return book.fulfil(next(iter(orders.values())), [(lines[i][1], n) for i, n in units.items()],
                       now, company=tracking.get("company"), number=tracking.get("number"),
                       notify_customer=bool(given.get("notifyCustomer"))), []


def _fulfillment_order(book: OrderBook, group: dict[str, Any], where: list[str],
                       errors: Errors) -> Order | None:
    """The order whose fulfillment order the group names, if it can be fulfilled."""
    value = group["fulfillmentOrderId"]
    number = parse_gid(value, "FulfillmentOrder")
    order = book.with_fulfillment_order(number) if number is not None else None
    if order is None:
        errors.append(_error([*where, "fulfillmentOrderId"],
                             f"Fulfillment order {value} does not exist."))
        return None
    status = order.fulfillment_order_status
    if status not in FULFILLABLE:
        errors.append(_error([*where, "fulfillmentOrderId"],
                             f"Fulfillment order {value} has an unfulfillable status= "
                             f"{status.lower()}."))
        return None
    return order


def _asked(order: Order, group: dict[str, Any], where: list[str], errors: Errors
           ) -> list[tuple[Line, int]]:
    """The (line, units) a group asks for; every remaining unit when it names none."""
    items = group.get("fulfillmentOrderLineItems")
    if items is None:
        return [(x, order.remaining(x)) for x in order.lines if order.remaining(x)]
    by_id = {gid("FulfillmentOrderLineItem", x.fulfillment_line_id): x for x in order.lines}
    asked = []
    for index, item in enumerate(items):
        line = by_id.get(item["id"])
        place = [*where, "fulfillmentOrderLineItems", str(index)]
        if line is None:
            errors.append(_error([*place, "id"], f"Fulfillment order line item {item['id']} "
                                                 "does not exist on this fulfillment order."))
        elif item["quantity"] < 1:
            errors.append(_error([*place, "quantity"], "Quantity must be greater than 0."))
        else:
            asked.append((line, int(item["quantity"])))
    return asked
