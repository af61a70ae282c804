"""Confirming a shipment on a Shopify order: ``fulfillmentCreate`` on its fulfillment orders.

Shopify ships units through fulfillment orders (an order's units to send from one location);
a fulfilment takes units of their line items, with a carrier and a tracking number, and tells
the buyer if ``notifyCustomer`` (the channel's ``notify_customer``, on by default). A
shipment's lines are the order's LineItems (by the numbers the pulled snapshots carry, or
their gids); each is matched to the open (OPEN or IN_PROGRESS) fulfillment order line items
of that line item, first come first served, up to their remaining units.

One query (``FulfillmentState``) reads, before anything is written: whether the order exists
and was cancelled, its fulfillments with their tracking numbers, and its fulfillment orders.
A fulfillment (not cancelled, not failed) already carrying the shipment's tracking number is
an earlier try that landed with its answer lost: ``already``, nothing is created (the
mutation has no idempotency key to give: ``@idempotent`` is not among what its documentation
supports). What Shopify refuses comes back as userErrors (a closed fulfillment order, more
units than remain): refused, with Shopify's messages. Shopify takes any text as a tracking
number (it guesses the carrier's link from it), so none is refused for its form.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from channelsync.connector import Shipment, ShipmentResult
from channelsync.errors import PermanentChannelError
from connectors.shopify import _queries as q
from connectors.shopify._graphql import GraphQLClient
from connectors.shopify._orders import ShapeError, gid_number, is_count, next_cursor, nodes

FULFILLABLE = frozenset({"OPEN", "IN_PROGRESS"})
# A fulfillment in these states shipped nothing: its tracking number is not a shipment made.
NOT_SHIPPED = frozenset({"CANCELLED", "ERROR", "FAILURE"})


@dataclass
class _State:
    """What ``FulfillmentState`` tells of one order, across its pages."""

    cancelled: bool = False
    found: dict[str, str] = field(default_factory=dict)  # tracking number -> fulfillment id
    # (fulfillment order id, its line item id, the LineItem gid, remaining units)
    open_items: list[tuple[str, str, str, int]] = field(default_factory=list)
    truncated: bool = False  # a fulfillment order had more line items than were read


class Fulfiller:
    """Confirms shipments on one shop's orders."""

    def __init__(self, channel: str, gql: GraphQLClient, notify_customer: bool) -> None:
        self.channel = channel
        self._gql = gql
        self._notify = notify_customer
        self._log = logging.getLogger(f"{__name__}.{channel}")

    def confirm(self, shipment: Shipment) -> ShipmentResult:
        order_gid = _gid(shipment.order_id, "Order")
        if order_gid is None:
            return self._refused(f"{shipment.order_id!r} is not a Shopify order id")
        state = self._state(order_gid)
        if state is None:
            return self._refused(f"order {shipment.order_id} is not in the shop")
        earlier = state.found.get(_tracking_key(shipment.tracking))
        if earlier is not None:
            self._log.info("order %s: a fulfillment with tracking number %s is there already "
                           "(an earlier answer was lost)", shipment.order_id, shipment.tracking)
            return ShipmentResult(True, ref=earlier, already=True)
        if state.cancelled:
            return self._refused(f"order {shipment.order_id} was cancelled in Shopify")
        plan = _plan(shipment, state)
        if isinstance(plan, str):
            return self._refused(f"order {shipment.order_id}: {plan}")
        return self._create(shipment, plan)

    # -- reading -----------------------------------------------------------------------------

    def _state(self, order_gid: str) -> _State | None:
        """The order's fulfillments and open fulfillment order line items (None: no order)."""
        state, after = _State(), None
        while True:
            data = self._gql.run(q.FULFILLMENT_STATE, {"id": order_gid, "after": after})
            order = data.get("order")
            if order is None:
                return None
            try:
                if not isinstance(order, dict):
                    raise ShapeError("order is not an object")
                after = _read(order, state)
            except ShapeError as exc:
                raise self._gql.malformed(f"order {order_gid}: {exc}", str(data)) from exc
            if after is None:
                return state

    # -- writing -----------------------------------------------------------------------------

    def _create(self, shipment: Shipment, plan: dict[str, list[dict[str, Any]]]
                ) -> ShipmentResult:
        fulfillment = {
            "lineItemsByFulfillmentOrder": [
                {"fulfillmentOrderId": order, "fulfillmentOrderLineItems": items}
                for order, items in plan.items()],
            "trackingInfo": {"company": shipment.carrier, "number": shipment.tracking},
            "notifyCustomer": self._notify,
        }
        data = self._gql.run(q.CREATE_FULFILLMENT, {"fulfillment": fulfillment})
        payload = data.get("fulfillmentCreate")
        errors = payload.get("userErrors") if isinstance(payload, dict) else None
        if not isinstance(errors, list):
            raise self._gql.malformed("fulfillmentCreate: no userErrors", str(data))
        if errors:
            return self._refused(f"Shopify refused the fulfillment of order "
                                 f"{shipment.order_id}: {_messages(errors)}")
        created = payload.get("fulfillment") if isinstance(payload, dict) else None
        if not isinstance(created, dict) or not isinstance(created.get("id"), str):
            raise self._gql.malformed("fulfillmentCreate: no fulfillment", str(data))
        return ShipmentResult(True, ref=created["id"])

    def _refused(self, message: str) -> ShipmentResult:
        return ShipmentResult(False, PermanentChannelError(message, channel=self.channel))


# -- pure helpers ----------------------------------------------------------------------------


def _read(order: dict[str, Any], state: _State) -> str | None:
    """Adds one page of the order to ``state``; the next page's cursor (None: the last)."""
    state.cancelled = order.get("cancelledAt") is not None
    for fulfillment in nodes(order.get("fulfillments"), "fulfillments"):
        if fulfillment.get("status") in NOT_SHIPPED:
            continue
        for info in nodes(fulfillment.get("trackingInfo"), "trackingInfo"):
            if isinstance(info.get("number"), str):
                state.found.setdefault(_tracking_key(info["number"]), str(fulfillment.get("id")))
    connection = order.get("fulfillmentOrders")
    for fulfillment_order in nodes(connection, "fulfillmentOrders"):
        items = fulfillment_order.get("lineItems")
        found = nodes(items, "lineItems")
        state.truncated |= next_cursor(items, "lineItems") is not None
        if fulfillment_order.get("status") in FULFILLABLE:
            state.open_items += [_open_item(fulfillment_order, item) for item in found]
    return next_cursor(connection, "fulfillmentOrders")


def _open_item(fulfillment_order: dict[str, Any], item: dict[str, Any]
               ) -> tuple[str, str, str, int]:
    line = item.get("lineItem")
    remaining = item.get("remainingQuantity")
    ids = (fulfillment_order.get("id"), item.get("id"),
           line.get("id") if isinstance(line, dict) else None)
    if not all(isinstance(x, str) for x in ids) or not is_count(remaining):
        raise ShapeError(f"fulfillment order line item without ids or remainingQuantity: {item}")
    return str(ids[0]), str(ids[1]), str(ids[2]), remaining


def _plan(shipment: Shipment, state: _State) -> dict[str, list[dict[str, Any]]] | str:
    """Fulfillment order id -> its line items and units to fulfil; or why it cannot be."""
    wanted: Counter[str] = Counter()
    skus: dict[str, str] = {}
    for line in shipment.lines:
        line_gid = _gid(line.line_id, "LineItem")
        if line_gid is None:
            return f"{line.line_id!r} is not a Shopify line item id"
        wanted[line_gid] += line.quantity
        skus[line_gid] = line.channel_sku
    plan: dict[str, list[dict[str, Any]]] = {}
    for order_id, item_id, line_gid, remaining in state.open_items:
        take = min(wanted[line_gid], remaining)
        if take > 0:
            plan.setdefault(order_id, []).append({"id": item_id, "quantity": take})
            wanted[line_gid] -= take
    short = [f"{skus[g]} (line item {gid_number(g, 'LineItem')}): {n} more than Shopify has "
             "left to fulfil" for g, n in wanted.items() if n > 0]
    if short:
        more = (f"; a fulfillment order has more than {q.FULFILLMENT_ORDER_LINES} lines, "
                "confirm this shipment in Shopify's admin") if state.truncated else ""
        return "; ".join(short) + more
    return plan if plan else "the shipment has no units"


def _gid(value: str, kind: str) -> str | None:
    """The gid of a Shopify object given as its number or its gid."""
    if value.isascii() and value.isdigit() and int(value) > 0:
        return f"gid://shopify/{kind}/{value}"
    return value if gid_number(value, kind) is not None else None


def _tracking_key(number: str) -> str:
    """Tracking numbers compared without case or spaces (Shopify may tidy what it keeps)."""
    return "".join(number.split()).casefold()


def _messages(errors: list[Any]) -> str:
    texts = []
    for error in errors:
        message = error.get("message") if isinstance(error, dict) else error
        where = error.get("field") if isinstance(error, dict) else None
        texts.append(f"{message} ({'.'.join(map(str, where))})" if where else str(message))
    return "; ".join(texts)[:500]
