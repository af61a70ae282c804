"""Shipments confirmed on Amazon: Orders API v0 ``confirmShipment``, one package a shipment,
found again by its ``packageReferenceId``.

Why v0's confirmShipment: the Orders API 2026-01-01 (which pulls the orders) has no shipment
confirmation, and Amazon's guide names confirmShipment as the successor of the order
fulfilment feeds for this. The ``POST_ORDER_FULFILLMENT_DATA`` feed would take batches, but
Amazon processes a feed in minutes and reports per message later (5 feeds per 5 minutes per
region, shared with the listings feeds), while the engine confirms a few shipments a cycle
and wants each outcome now; confirmShipment allows 2 calls a second (burst 10).

- The package's ``packageReferenceId`` comes from the shipment's key, the same on every try.
  Amazon takes positive numbers only (sent as a JSON string) and says no more about their
  range, so the key is hashed into 1 .. 2^31 - 1, which any integer type holds. It needs to
  be unique within its order only: two shipments of one order share a number with a chance
  of about one in a billion.
- Before confirming, ``getOrder`` (2026-01-01, FULFILLMENT and PACKAGES) reads the order: an
  unknown (404), cancelled or Amazon-fulfilled order, or a line it does not have, is refused
  without a call; a package with our reference, or with our tracking number and every one of
  our items, is there already (``already``: an earlier try's answer was lost). Amazon shows
  a change about two minutes late, so a retry soon after a lost answer may not see the
  package: it confirms again with the same packageReferenceId, which Amazon takes as an edit
  of that package (the same details), never as a second one.
- ``carrierCode`` is Amazon's code for a carrier it lists (UPS, USPS, FedEx, DHL, ...),
  else "Other" with the carrier's name in ``carrierName``.
- Amazon confirms a tracking number that does not fit its carrier's format, with a warning
  (since 2021): nothing here refuses one. A 400 or 404 is a refusal (``ok=False``); 429,
  5xx and timeouts are raised for the retry policy.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

from channelsync.connector import Shipment, ShipmentResult
from channelsync.errors import PermanentChannelError
from connectors.amazon._client import Clients, SpApi
from connectors.amazon._orders import amazon_time, normal_status
from connectors.amazon._transport import CredentialsRefused

REFERENCE_RANGE = 2**31 - 1
ORDER_DATA = ["FULFILLMENT", "PACKAGES"]
# Amazon's carrier codes for carriers sellers commonly name (its list is longer; any other
# carrier goes as "Other" with its name), by the name folded to letters and digits.
CARRIER_CODES = {re.sub(r"[^a-z0-9]", "", code.lower()): code for code in (
    "USPS", "UPS", "FedEx", "DHL", "DPD", "GLS", "TNT", "Royal Mail", "Parcelforce",
    "Canada Post", "Chronopost", "Deutsche Post", "La Poste", "Poste Italiane", "Yodel",
    "OnTrac")}


def package_reference(key: str) -> str:
    """The packageReferenceId for a shipment key: a positive number, as text, from 1 to
    2^31 - 1, the same for the same key."""
    digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")
    return str(digest % REFERENCE_RANGE + 1)


def carrier_fields(carrier: str) -> dict[str, str]:
    """``carrierCode`` (and ``carrierName`` for "Other") for the carrier the seller named."""
    code = CARRIER_CODES.get(re.sub(r"[^a-z0-9]", "", carrier.lower()))
    return {"carrierCode": code} if code else {"carrierCode": "Other", "carrierName": carrier}


def confirm_body(shipment: Shipment, marketplace_id: str, reference: str) -> dict[str, Any]:
    """confirmShipment's ConfirmShipmentRequest for the shipment."""
    return {
        "marketplaceId": marketplace_id,
        "packageDetail": {
            "packageReferenceId": reference,
            **carrier_fields(shipment.carrier),
            "trackingNumber": shipment.tracking,
            "shipDate": amazon_time(shipment.shipped_at),
            "orderItems": [{"orderItemId": line.line_id, "quantity": line.quantity}
                           for line in shipment.lines],
        },
    }


class Shipping:
    """Confirms shipments for one channel."""

    def __init__(self, api: SpApi, clients: Clients, marketplace_id: str) -> None:
        self._api = api
        self._clients = clients
        self._marketplace_id = marketplace_id

    def confirm(self, shipment: Shipment) -> ShipmentResult:
        reference = package_reference(shipment.key)
        try:
            order = self._order(shipment.order_id)
        except CredentialsRefused:
            raise
        except PermanentChannelError as exc:
            if exc.status == 404:
                return self._refused(f"Amazon has no order {shipment.order_id}")
            return ShipmentResult(False, exc)
        refusal = refusal_for(shipment, order)
        if refusal is not None:
            return self._refused(refusal)
        if has_package(order, shipment, reference):
            return ShipmentResult(True, ref=reference, already=True)
        body = confirm_body(shipment, self._marketplace_id, reference)
        try:
            self._api.call("confirmShipment", lambda: self._clients.orders_v0.confirm_shipment(
                shipment.order_id, **body))
        except CredentialsRefused:
            raise
        except PermanentChannelError as exc:
            return ShipmentResult(False, exc)
        return ShipmentResult(True, ref=reference)

    def _order(self, order_id: str) -> dict[str, Any]:
        response = self._api.call("getOrder", lambda: self._clients.orders.get_order(
            order_id, includedData=ORDER_DATA))
        order = self._api.payload("getOrder", response).get("order")
        if not isinstance(order, dict):
            raise self._api.malformed("getOrder", response.payload)
        return order

    def _refused(self, reason: str) -> ShipmentResult:
        return ShipmentResult(False, PermanentChannelError(reason, channel=self._api.channel))


def refusal_for(shipment: Shipment, order: dict[str, Any]) -> str | None:
    """Why Amazon's order cannot take this shipment (None: it can)."""
    fulfillment = order.get("fulfillment")
    fulfillment = fulfillment if isinstance(fulfillment, dict) else {}
    status = fulfillment.get("fulfillmentStatus")
    if isinstance(status, str) and normal_status(status) in ("CANCELLED", "CANCELED"):
        return f"order {shipment.order_id} is cancelled on Amazon"
    if fulfillment.get("fulfilledBy") == "AMAZON":
        return f"order {shipment.order_id} is fulfilled by Amazon (FBA): Amazon ships it"
    if not shipment.lines:
        return "a shipment without lines"
    items = {i.get("orderItemId") for i in _dicts(order.get("orderItems"))}
    missing = [line.line_id for line in shipment.lines if line.line_id not in items]
    if missing:
        return f"order {shipment.order_id} has no item {', '.join(missing)} on Amazon"
    return None


def has_package(order: dict[str, Any], shipment: Shipment, reference: str) -> bool:
    """Does the order carry this shipment's package already (by reference, or by tracking
    number with all of its items)?"""
    ours = {line.line_id for line in shipment.lines}
    number = shipment.tracking.strip().upper()
    for package in _dicts(order.get("packages")):
        if package.get("packageReferenceId") == reference:
            return True
        tracking = package.get("trackingNumber")
        items = {i.get("orderItemId") for i in _dicts(package.get("packageItems"))}
        if isinstance(tracking, str) and tracking.strip().upper() == number and ours <= items:
            return True
    return False


def _dicts(value: Any) -> Sequence[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


__all__ = ["Shipping", "carrier_fields", "confirm_body", "has_package", "package_reference",
           "refusal_for"]
