"""Shipments confirmed on eBay: Trading API ``CompleteSale``, made safe to repeat.

eBay keeps the tracking numbers on the order's lines (each transaction's
``ShippingDetails/ShipmentTrackingDetails``), so a confirmation first reads the order
(``GetOrders`` by OrderID) and sends only what is not there yet: a retry after a lost answer
finds the number an earlier try left and sends nothing (``already``).

- A shipment of every line of an order nothing of which is shipped yet: one CompleteSale by
  ``OrderID`` with ``Shipped``, the carrier and the number (eBay puts the number on every
  line and sets the order's ShippedTime).
- Otherwise one CompleteSale per line, by ``ItemID`` + ``TransactionID``, each with the
  number; once every line of the order is shipped, one more by ``OrderID`` with ``Shipped``
  alone, as eBay sets the order's ShippedTime only through its OrderID.
- eBay ships whole lines (a transaction is shipped or not): a shipment carrying part of a
  line's units is refused here, with the reason, rather than marking units shipped that
  are still on the shelf.
- eBay's error 21916964 (the number is in use) after a read that did not show it is read
  again: the number on our lines means an earlier try landed (``already``); anywhere else it
  is eBay's refusal. Its 2191111 (a number that does not fit the carrier's scheme), an
  unknown or a cancelled order are refusals (``ok=False``); throttling and 5xx are raised.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from channelsync.connector import Shipment, ShipmentResult
from channelsync.errors import PermanentChannelError
from connectors.ebay._adapter import CallRefused, TradingClient, as_list, child

TRACKING_IN_USE = "21916964"
ORDER_NODES = ["OrderArray.Order", "OrderArray.Order.TransactionArray.Transaction",
               "OrderArray.Order.TransactionArray.Transaction.ShippingDetails"
               ".ShipmentTrackingDetails"]


@dataclass(frozen=True)
class EbayLine:
    """A transaction of an order as eBay shows it."""

    line_id: str  # OrderLineItemID
    item_id: str
    transaction_id: str
    quantity: int | None  # QuantityPurchased; None when unreadable
    shipped: bool  # its ShippedTime is set
    tracking: frozenset[str]  # its tracking numbers, upper case

    @classmethod
    def read(cls, tx: Any) -> EbayLine:
        quantity = _text(child(tx, "QuantityPurchased"))
        details = as_list(child(tx, "ShippingDetails", "ShipmentTrackingDetails"))
        return cls(_text(child(tx, "OrderLineItemID")), _text(child(tx, "Item", "ItemID")),
                   _text(child(tx, "TransactionID")),
                   int(quantity) if quantity.isdigit() else None,
                   bool(child(tx, "ShippedTime")),
                   frozenset(_normal(_text(child(d, "ShipmentTrackingNumber"))) for d in details))


class Fulfilment:
    """Confirms shipments of one channel. ``state`` tells an order's state as the connector
    reads it (``cancelled``, ``shipped``, ...)."""

    def __init__(self, api: TradingClient, state: Callable[[Any], str]) -> None:
        self._api = api
        self._state = state

    def confirm(self, shipment: Shipment) -> ShipmentResult:
        order = self._read(shipment.order_id)
        refusal = self._refusal(shipment, order)
        if refusal is not None:
            return self._refused(refusal)
        lines = {line.line_id: line for line in _lines(order)}
        number = _normal(shipment.tracking)
        todo = [lines[x.line_id] for x in shipment.lines if number not in lines[x.line_id].tracking]
        try:
            self._send(shipment, order, list(lines.values()), todo)
        except CallRefused as exc:
            if TRACKING_IN_USE in exc.codes and self._on_our_lines(shipment):
                return ShipmentResult(True, already=True)
            return ShipmentResult(False, exc)
        return ShipmentResult(True, already=not todo)

    def _send(self, shipment: Shipment, order: Any, lines: Sequence[EbayLine],
              todo: Sequence[EbayLine]) -> None:
        """The CompleteSale calls that put the shipment's ``todo`` lines on eBay."""
        order_shipped = bool(child(order, "ShippedTime"))
        if todo and len(todo) == len(lines) and not order_shipped and not any(
                line.shipped or line.tracking for line in lines):
            self._complete({"OrderID": shipment.order_id}, shipment, tracked=True)
            return
        for line in todo:
            self._complete({"ItemID": line.item_id, "TransactionID": line.transaction_id},
                           shipment, tracked=True)
        sent = {line.line_id for line in todo}
        if not order_shipped and all(line.shipped or line.line_id in sent for line in lines):
            self._complete({"OrderID": shipment.order_id}, shipment, tracked=False)

    def _read(self, order_id: str) -> Any:
        """The order as eBay has it now (None: eBay has no such order)."""
        reply = self._api.call("GetOrders", {"OrderIDArray": {"OrderID": [order_id]},
                                             "OrderRole": "Seller"}, ORDER_NODES)
        found = [o for o in as_list(child(reply.body, "OrderArray", "Order"))
                 if _text(child(o, "OrderID")) == order_id]
        return found[0] if found else None

    def _refusal(self, shipment: Shipment, order: Any) -> str | None:
        """Why this shipment cannot be confirmed on the order as eBay has it (None: it can)."""
        if order is None:
            return f"eBay has no order {shipment.order_id}"
        if not shipment.lines:
            return "a shipment without lines"
        if self._state(order) == "cancelled":
            return f"order {shipment.order_id} is cancelled on eBay"
        lines = {line.line_id: line for line in _lines(order)}
        for wanted in shipment.lines:
            line = lines.get(wanted.line_id)
            if line is None:
                return f"order {shipment.order_id} has no line {wanted.line_id} on eBay"
            if line.quantity is not None and wanted.quantity != line.quantity:
                return (f"eBay marks whole order lines shipped: line {wanted.line_id} "
                        f"({wanted.channel_sku}) has {line.quantity} units, this shipment "
                        f"{wanted.quantity}; confirm it on eBay yourself")
        return None

    def _complete(self, target: dict[str, str], shipment: Shipment, *, tracked: bool) -> None:
        request: dict[str, Any] = {**target, "Shipped": "true"}
        if tracked:
            request["Shipment"] = {
                "ShipmentTrackingDetails": {"ShippingCarrierUsed": shipment.carrier,
                                            "ShipmentTrackingNumber": shipment.tracking},
                "ShippedTime": _ebay_time(shipment.shipped_at),
            }
        # eBay's order of elements: ItemID, TransactionID, Shipped, Shipment, OrderID
        order_id = request.pop("OrderID", None)
        if order_id is not None:
            request["OrderID"] = order_id
        self._api.call("CompleteSale", request)

    def _on_our_lines(self, shipment: Shipment) -> bool:
        """After eBay said the number is in use: is it on every line of this shipment?"""
        order = self._read(shipment.order_id)
        if order is None:
            return False
        number = _normal(shipment.tracking)
        lines = {line.line_id: line for line in _lines(order)}
        return all(x.line_id in lines and number in lines[x.line_id].tracking
                   for x in shipment.lines)

    def _refused(self, reason: str) -> ShipmentResult:
        return ShipmentResult(False, PermanentChannelError(reason, channel=self._api.channel))


def _lines(order: Any) -> Sequence[EbayLine]:
    return [EbayLine.read(tx) for tx in as_list(child(order, "TransactionArray", "Transaction"))]


def _normal(number: str) -> str:
    return number.strip().upper()


def _ebay_time(moment: datetime) -> str:
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


__all__ = ["Fulfilment"]
