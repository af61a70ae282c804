"""Confirming a shipment on a WooCommerce order: an order note, and the order completed.

WooCommerce's core REST API has no shipment object and no carrier or tracking fields (those
come from the paid Shipment Tracking extension), so a shipment is confirmed the way a seller
does it by hand: a note on the order (``POST /orders/{id}/notes``) naming the carrier, the
tracking number and the units, sent to the buyer (``customer_note``) unless the channel's
``notify_customer`` is off; and, once nothing of the order is left to ship, the order set to
``completed`` (``PUT /orders/{id}``), which is WooCommerce's "shipped".

Idempotency: the note ends with the shipment's key. Every try first reads the order's notes
(the endpoint answers them all, unpaged); a note holding the key is an earlier try that
landed (its answer lost), so no second note is written, and only the status is completed if
that part had not happened yet. An order that is not in the store, or is cancelled, refunded,
failed (or in the trash, or a checkout draft), is refused before anything is written.
WooCommerce takes any text as a tracking number, and its line items have no shipped quantity:
a partial shipment is a note only, the order staying ``processing`` until the last one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from channelsync.connector import Shipment, ShipmentResult
from channelsync.errors import PermanentChannelError
from connectors._http import JsonApi

# Statuses a shipment cannot be confirmed on: the order ended without shipping (or is not
# an order at all: a cart, or deleted).
REFUSED_STATUSES = frozenset({"cancelled", "refunded", "failed", "trash", "checkout-draft"})
SHIPPED_STATUS = "completed"


def note_text(shipment: Shipment, names: Mapping[str, str]) -> str:
    """What the buyer reads, and the key that finds the note again: "Shipped with DHL,
    tracking number 123.", one "2 x Desk lamp (SKU LAMP-1)" row per line, "Ref. <key>".
    ``names``: line item id -> product name, from the order (a line not there shows its
    SKU). Each field is kept on one line, so the rows stay rows."""
    rows = [f"Shipped with {_one_line(shipment.carrier)}, tracking number "
            f"{_one_line(shipment.tracking)}."]
    for line in shipment.lines:
        sku = _one_line(line.channel_sku)
        rows.append(f"{line.quantity} x {_one_line(names.get(line.line_id, '')) or sku} "
                    f"(SKU {sku})")
    rows.append(f"Ref. {shipment.key}")
    return "\n".join(rows)


class Fulfiller:
    """Confirms shipments on one store's orders through its ``JsonApi``."""

    def __init__(self, channel: str, api: JsonApi, notify_customer: bool) -> None:
        self.channel = channel
        self._api = api
        self._notify = notify_customer
        self._log = logging.getLogger(f"{__name__}.{channel}")

    def confirm(self, shipment: Shipment) -> ShipmentResult:
        order = self._order(shipment.order_id)
        if isinstance(order, ShipmentResult):
            return order
        path = f"/orders/{shipment.order_id}"
        ref = self._note_with(path, shipment.key)
        already = ref is not None
        if ref is None:
            note = self._object("POST", f"{path}/notes", {
                "note": note_text(shipment, _line_names(order)), "customer_note": self._notify})
            ref = str(note.get("id", ""))
        else:
            self._log.info("order %s: the note for shipment %s is there already (an earlier "
                           "answer was lost)", shipment.order_id, shipment.key)
        if shipment.completes_order and order.get("status") != SHIPPED_STATUS:
            self._object("PUT", path, {"status": SHIPPED_STATUS})
        return ShipmentResult(True, ref=ref, already=already)

    # -- helpers -----------------------------------------------------------------------------

    def _order(self, order_id: str) -> dict[str, Any] | ShipmentResult:
        """The order, or the refusal of a shipment on it (unknown, or ended unshipped)."""
        if not (order_id.isascii() and order_id.isdigit() and int(order_id) > 0):
            return self._refused(f"{order_id!r} is not a WooCommerce order id")
        try:
            order = self._object("GET", f"/orders/{order_id}")
        except PermanentChannelError as exc:
            if exc.status != 404:
                raise
            return self._refused(f"order {order_id} is not in the store ({exc})")
        status = order.get("status")
        if status in REFUSED_STATUSES:
            return self._refused(f"order {order_id} is {status} in WooCommerce: a shipment "
                                 "cannot be confirmed on it")
        return order

    def _note_with(self, path: str, key: str) -> str | None:
        """The id of the order's note holding ``key`` (None: no try landed yet)."""
        if not key:
            return None  # nothing to recognise an earlier try by
        for note in self._api.get_list(f"{path}/notes").body:
            text = note.get("note") if isinstance(note, dict) else None
            if isinstance(text, str) and key in text:
                return str(note.get("id", ""))
        return None

    def _object(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        response = self._api.request(method, path, json=body)
        if not isinstance(response.body, dict):
            raise self._api.malformed(f"{method} {path}", str(response.body), response.status)
        return response.body

    def _refused(self, message: str) -> ShipmentResult:
        return ShipmentResult(False, PermanentChannelError(message, channel=self.channel))


def _line_names(order: dict[str, Any]) -> dict[str, str]:
    """Line item id -> product name."""
    items = order.get("line_items")
    names: dict[str, str] = {}
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            names[str(item.get("id"))] = item["name"]
    return names


def _one_line(text: str) -> str:
    return " ".join(text.split())
