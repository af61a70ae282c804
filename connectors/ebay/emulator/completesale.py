"""CompleteSale in the eBay emulator: an order, or one of its lines, marked shipped, with the
tracking number of the package it left in.

As eBay documents it (Trading API CompleteSale, ShipmentType, knowledge base 1640 and 5021):
- the target is an ``OrderID`` (every line shipped, and the order's ShippedTime set), or one
  line by ``ItemID`` + ``TransactionID`` or by ``OrderLineItemID`` (that line only: eBay sets
  the order's ShippedTime only through a call naming the OrderID);
- ``Shipment/ShipmentTrackingDetails`` (one per package) carries ``ShippingCarrierUsed`` and
  ``ShipmentTrackingNumber``, each required with the other; a tracking number marks the line
  shipped as ``Shipped=true`` does. With an OrderID the number goes on every line;
- ``Shipment/ShippedTime`` dates the hand-over (now when not given; at most 3 days ahead);
- eBay checks a number against the carrier's numbering scheme: here, letters, digits and
  hyphens only, else error 2191111; a number another buyer's order already carries is error
  21916964, and so (the emulator's pick) is a number already on the same line.
Not emulated: Paid, FeedbackInfo, ``Shipped=false`` (un-shipping), Global Shipping's
ShipmentLineItem.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta

from connectors.ebay.emulator.state import Line, Order, Store
from connectors.ebay.emulator.xmlwire import (
    INVALID_INPUT,
    INVALID_TRACKING,
    TRACKING_IN_USE,
    EbayError,
    Fault,
    child_text,
    flag,
    invalid,
    parse_time,
)

__all__ = ["complete_sale"]

TRACKING = re.compile(r"[A-Za-z0-9-]+")
MAX_AHEAD = timedelta(days=3)  # ShippedTime may be up to 3 days in the future


def complete_sale(store: Store, root: ET.Element, now: datetime) -> None:
    """Apply one CompleteSale request, or raise the EbayError eBay answers with."""
    order, lines, whole = _target(store, root)
    if order.status == "Cancelled":
        raise EbayError(Fault(INVALID_INPUT, "The order has been cancelled.",
                              f"Order {order.order_id} has been cancelled; it cannot be marked "
                              "shipped."))
    tracking = _tracking(root)
    shipped = flag(root, "Shipped")
    if shipped is False:
        raise invalid("Shipped=false (marking a line not shipped again) is not emulated.")
    if not shipped and not tracking:
        raise invalid("Nothing to complete: give Shipped=true or Shipment tracking details.")
    for _, number in tracking:
        _check_number(store, order, lines, number)
    when = parse_time("ShippedTime", child_text(root, "Shipment/ShippedTime")) or now
    if when > now + MAX_AHEAD:
        raise invalid("Shipment.ShippedTime may be at most 3 days in the future.")
    store.mark_shipped(order, lines, tracking, when, now, whole=whole)


def _target(store: Store, root: ET.Element) -> tuple[Order, list[Line], bool]:
    """The order and the lines named: (order, its lines, True) for an OrderID."""
    order_id = child_text(root, "OrderID")
    if order_id:
        order = store.orders.get(order_id)
        if order is None:
            raise invalid(f"Input data for tag <OrderID> is invalid: no order {order_id!r} "
                          "of this seller.")
        return order, list(order.lines), True
    line_id = child_text(root, "OrderLineItemID")
    if not line_id:
        item_id, transaction_id = child_text(root, "ItemID"), child_text(root, "TransactionID")
        if not item_id or not transaction_id:
            raise invalid("OrderID, OrderLineItemID, or ItemID with TransactionID is required.")
        line_id = f"{item_id}-{transaction_id}"
    for order in store.orders.values():
        for line in order.lines:
            if line.line_item_id == line_id:
                return order, [line], False
    raise invalid(f"Input data for tag <OrderLineItemID> is invalid: no order line "
                  f"{line_id!r} of this seller.")


def _tracking(root: ET.Element) -> list[tuple[str, str]]:
    """The (carrier, number) of each ShipmentTrackingDetails, both given or neither."""
    found = []
    for node in root.findall("Shipment/ShipmentTrackingDetails"):
        carrier = child_text(node, "ShippingCarrierUsed") or ""
        number = child_text(node, "ShipmentTrackingNumber") or ""
        if not carrier or not number:
            raise _bad_tracking("ShippingCarrierUsed and ShipmentTrackingNumber go together: "
                                "give both.")
        found.append((carrier, number))
    return found


def _check_number(store: Store, order: Order, lines: list[Line], number: str) -> None:
    if not TRACKING.fullmatch(number):
        raise _bad_tracking(f"The shipment tracking number {number!r} is not valid for the "
                            "carrier: letters, digits and hyphens only.")
    other = store.tracking_used(number, order.buyer)
    if other is not None:
        raise _in_use(number, "it is used for an order of another buyer")
    named = {line.line_item_id for line in lines}
    if any(t.number.upper() == number.upper() and t.line_item_id in named
           for t in order.tracking):
        raise _in_use(number, "it is on this order line already")


def _bad_tracking(long: str) -> EbayError:
    return EbayError(Fault(INVALID_TRACKING, "Invalid shipment tracking number or carrier.",
                           long))


def _in_use(number: str, why: str) -> EbayError:
    return EbayError(Fault(TRACKING_IN_USE, "Duplicate shipment tracking number.",
                           f"The shipment tracking number {number} cannot be used: {why}.",
                           (number,)))
