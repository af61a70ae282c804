"""Shopify orders as the ledger's order line snapshots (pure functions, no I/O).

A line item tells how many units were ordered (``quantity``), are still on the order
(``currentQuantity``: minus refunded and removed units), are still to be fulfilled
(``unfulfilledQuantity``) and were refunded before they were fulfilled
(``nonFulfillableQuantity``). Refund line items tell how the refunded units went: ``RETURN``
(fulfilled units back on stock), ``CANCEL`` (unfulfilled units back on stock) or
``NO_RESTOCK``. From those:

- shipped = currentQuantity - unfulfilledQuantity + units refunded after fulfilment (a refund
  does not unship). Those are the RETURN units, plus the NO_RESTOCK (or LEGACY_RESTOCK) units
  that were not among the units refunded before fulfilment (nonFulfillableQuantity minus the
  CANCEL units);
- cancelled = what is neither shipped nor still to fulfil (all of it unshipped once the order
  is cancelled); restocked = returned units.

The order as a whole (``OrderSnapshot``, for the order book) comes from the same answer: its
stage from the cancellation, financial and fulfilment statuses, its times, the buyer's first
and last name and the total in the shop's currency; to recognise the buyer again, the order's
``email`` and its customer's id (both protected customer data: without access they are null
and left empty). ``shipped_at`` is when the oldest successful fulfillment was created;
``delivered_at`` its ``deliveredAt``, for an order fulfilled in full by that one fulfillment
(its ``totalQuantity`` all the units fulfilled): the page reads one fulfillment per order, so
an order shipped in several has no delivery time here (the book assumes one). A header field
that cannot be read is left empty; it never costs the order its lines. A bad record keeps no
email or customer (``impersonal``).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeGuard

from channelsync.connector import BadRecord, OrderLineSnapshot, OrderSnapshot
from connectors._time import parse_utc

_KINDS = ("RETURN", "CANCEL", "other")  # NO_RESTOCK and LEGACY_RESTOCK: either kind of unit
_GID = re.compile(r"gid://shopify/(?P<kind>[A-Za-z]+)/(?P<id>[1-9][0-9]*)(?:\?.*)?")
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_CURRENCY = re.compile(r"[A-Z]{3}")
# Financial statuses of an order that was paid (a refund does not unpay it).
_PAID = frozenset({"PAID", "PARTIALLY_REFUNDED", "REFUNDED"})
_UNITS = ("quantity", "currentQuantity", "unfulfilledQuantity", "nonFulfillableQuantity")
# An order's fields that hold the buyer's personal data: never kept in a bad record.
PERSONAL_FIELDS = frozenset({"email", "customer"})


class ShapeError(ValueError):
    """An answer that does not have the shape the query asked for."""


@dataclass
class OrderLines:
    """What one order gives: its snapshots, its unusable records, lines without a SKU, and
    the order as a whole (None when the order is unusable, or a test order that is ignored)."""

    lines: list[OrderLineSnapshot]
    bad: list[BadRecord]
    no_sku: int = 0
    order: OrderSnapshot | None = None


def gid_number(value: Any, kind: str) -> str | None:
    """``"42"`` for ``gid://shopify/<kind>/42``; None for anything else."""
    match = _GID.fullmatch(value) if isinstance(value, str) else None
    return match["id"] if match and match["kind"] == kind else None


def is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def nodes(connection: Any, what: str) -> list[dict[str, Any]]:
    """The ``nodes`` of a connection (or the items of a list field)."""
    items = connection.get("nodes") if isinstance(connection, dict) else connection
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ShapeError(f"{what}: expected a list of objects")
    return items


def next_cursor(connection: Any, what: str) -> str | None:
    """The cursor of the following page, None on the last one."""
    info = connection.get("pageInfo") if isinstance(connection, dict) else None
    if not isinstance(info, dict) or not isinstance(info.get("hasNextPage"), bool):
        raise ShapeError(f"{what}: no pageInfo")
    if not info["hasNextPage"]:
        return None
    cursor = info.get("endCursor")
    if not isinstance(cursor, str) or not cursor:
        raise ShapeError(f"{what}: hasNextPage without an endCursor")
    return cursor


def order_lines(
    order: dict[str, Any], refund_lines: list[dict[str, Any]], include_test_orders: bool
) -> OrderLines:
    """The snapshots of one order whose line items and refund line items are all present."""
    order_id = gid_number(order.get("id"), "Order")
    if order_id is None:
        return OrderLines([], [BadRecord("order without a valid id", "?", impersonal(order))])
    changed_at = parse_utc(order.get("updatedAt"))
    if changed_at is None:
        return OrderLines([], [BadRecord("order without a valid updatedAt", order_id,
                                         impersonal(order))])
    refunded = _refunded(refund_lines)
    if not isinstance(refunded, dict):
        return OrderLines([], [BadRecord(refunded, order_id, impersonal(order))])
    ignore = order.get("test") is True and not include_test_orders
    cancelled = order.get("cancelledAt") is not None
    status = _status(order)
    items = nodes(order.get("lineItems"), "lineItems")
    units = [_shipped(line, refunded) for line in items]  # every line, with a SKU or not
    fulfilled = None if None in units else sum(n for n in units if n is not None)
    result = OrderLines([], [], order=None if ignore else order_snapshot(
        order_id, order, status, changed_at, fulfilled))
    for line in items:
        if not isinstance(line.get("sku"), str) or not line["sku"].strip():
            result.no_sku += 1  # a custom item or a variant without SKU: holds no stock
            continue
        snap = _line(order_id, line, refunded, changed_at, status, cancelled, ignore)
        if isinstance(snap, OrderLineSnapshot):
            result.lines.append(snap)
        else:
            result.bad.append(snap)
    return result


def order_snapshot(
    order_id: str, order: dict[str, Any], status: str, changed_at: datetime,
    fulfilled: int | None = None,
) -> OrderSnapshot:
    """The order as a whole. ``status`` is the lines' ("<fulfilment>/<financial>", or
    "cancelled"); ``paid_at`` is ``processedAt`` for an order that was paid: when a checkout
    paid at once was processed, which is its payment time (an order paid later, a manual
    payment or a later capture, shows its processing time: the schema read here has no
    transactions). ``fulfilled``: the units its lines say were fulfilled (None: unknown)."""
    financial = order.get("displayFinancialStatus")
    money = _object(_object(order, "totalPriceSet"), "shopMoney")
    customer = _object(order, "customer")
    first = _first_fulfillment(order)
    return OrderSnapshot(
        order_id=order_id,
        status=status,
        stage=_stage(order),
        changed_at=changed_at,
        placed_at=parse_utc(order.get("createdAt")),
        paid_at=parse_utc(order.get("processedAt")) if financial in _PAID else None,
        buyer=_buyer(order.get("customer")),
        total=_matching(money.get("amount"), _DECIMAL),
        currency=_matching(money.get("currencyCode"), _CURRENCY),
        buyer_email=_email(order.get("email")),
        buyer_id=gid_number(customer.get("id"), "Customer") or "",
        shipped_at=parse_utc(first.get("createdAt")),
        delivered_at=_delivered_at(order, first, fulfilled),
    )


def impersonal(order: Any) -> Any:
    """An order as a bad record keeps it: without the buyer's email and customer."""
    if not isinstance(order, dict):
        return order
    return {k: v for k, v in order.items() if k not in PERSONAL_FIELDS}


def _first_fulfillment(order: dict[str, Any]) -> dict[str, Any]:
    """The oldest fulfillment if it shipped (SUCCESS), else an empty one."""
    found = order.get("fulfillments")
    first = found[0] if isinstance(found, list) and found else None
    return first if isinstance(first, dict) and first.get("status") == "SUCCESS" else {}


def _delivered_at(order: dict[str, Any], first: dict[str, Any],
                  fulfilled: int | None) -> datetime | None:
    """The delivery of an order fulfilled in full by its one (oldest) fulfillment."""
    if order.get("displayFulfillmentStatus") != "FULFILLED" or fulfilled is None \
            or first.get("displayStatus") != "DELIVERED" \
            or first.get("totalQuantity") != fulfilled:
        return None  # not delivered, or more fulfillments than the one read
    return parse_utc(first.get("deliveredAt"))


def _email(value: Any) -> str:
    """The order's email as Shopify has it (the book normalises it); "" without one."""
    return value if isinstance(value, str) and "@" in value else ""


def _stage(order: dict[str, Any]) -> str:
    """What the order's statuses mean for the order book (connector.CHANNEL_STAGES)."""
    financial = order.get("displayFinancialStatus")
    if order.get("cancelledAt") is not None:
        return "cancelled"
    if financial == "REFUNDED":
        return "returned"
    if order.get("displayFulfillmentStatus") == "FULFILLED":
        return "shipped"
    if financial in ("PAID", "PARTIALLY_REFUNDED"):
        return "paid"
    return "received"  # pending, authorized, partially paid, expired, voided


def _buyer(customer: Any) -> str:
    """First and last name only (the query never asks for more: not even displayName, which
    falls back to the email address or the phone number)."""
    if not isinstance(customer, dict):
        return ""  # a guest checkout, or no read_customers scope
    names = (customer.get("firstName"), customer.get("lastName"))
    return " ".join(n.strip() for n in names if isinstance(n, str) and n.strip())


def _object(parent: dict[str, Any], name: str) -> dict[str, Any]:
    """``parent[name]`` if it is an object, else an empty one."""
    found = parent.get(name)
    return found if isinstance(found, dict) else {}


def _matching(value: Any, pattern: re.Pattern[str]) -> str:
    return value if isinstance(value, str) and pattern.fullmatch(value) else ""


def _line(
    order_id: str,
    line: dict[str, Any],
    refunded: dict[str, Counter[str]],
    changed_at: datetime,
    status: str,
    order_cancelled: bool,
    ignore: bool,
) -> OrderLineSnapshot | BadRecord:
    line_id = gid_number(line.get("id"), "LineItem")
    if line_id is None:
        return BadRecord("line item without a valid id", f"{order_id}/?", line)
    key = f"{order_id}/{line_id}"
    for name in _UNITS:
        if not is_count(line.get(name)):
            return BadRecord(f"line item {name} {line.get(name)!r} is not a whole number >= 0",
                             key, line)
    ordered, unfulfilled = line["quantity"], line["unfulfilledQuantity"]
    shipped = _shipped(line, refunded) or 0
    returned = refunded["RETURN"][line_id]
    open_units = 0 if order_cancelled else min(unfulfilled, ordered - shipped)
    return OrderLineSnapshot(
        order_id=order_id,
        line_id=line_id,
        channel_sku=line["sku"],
        ordered=ordered,
        status=status,
        changed_at=changed_at,
        shipped=shipped,
        cancelled=ordered - shipped - open_units,
        restocked=min(returned, shipped),
        ignore=ignore,
    )


def _shipped(line: dict[str, Any], refunded: dict[str, Counter[str]]) -> int | None:
    """Units of a line fulfilled (a refund does not unship); None when it cannot be read."""
    line_id = gid_number(line.get("id"), "LineItem")
    if line_id is None or not all(is_count(line.get(name)) for name in _UNITS):
        return None
    ordered, current, unfulfilled, unshipped_refunds = (line[name] for name in _UNITS)
    returned, cancelled, other = (refunded[kind][line_id] for kind in _KINDS)
    after_fulfilment = returned + other - _clamp(unshipped_refunds - cancelled, 0, other)
    return _clamp(current - unfulfilled + after_fulfilment, 0, ordered)


def _refunded(refund_lines: list[dict[str, Any]]) -> dict[str, Counter[str]] | str:
    """Units refunded per restock kind (RETURN, CANCEL, other) and line item number."""
    refunded: dict[str, Counter[str]] = {kind: Counter() for kind in _KINDS}
    for item in refund_lines:
        line = item.get("lineItem")
        line_id = gid_number(line.get("id") if isinstance(line, dict) else None, "LineItem")
        quantity = item.get("quantity")
        if line_id is None or not is_count(quantity):
            return f"refund line item without a line item id or quantity: {item!r}"[:200]
        kind = item.get("restockType")
        refunded[kind if kind in _KINDS else "other"][line_id] += quantity
    return refunded


def _status(order: dict[str, Any]) -> str:
    if order.get("cancelledAt") is not None:
        return "cancelled"
    fulfilment = order.get("displayFulfillmentStatus")
    financial = order.get("displayFinancialStatus")
    return f"{_lower(fulfilment)}/{_lower(financial)}"


def _lower(value: Any) -> str:
    return value.lower() if isinstance(value, str) and value else "unknown"


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(value, high))
