"""confirmShipment (Orders API v0) in the Amazon emulator: the packages of an order and how
they show (getOrder 2026-01-01 with PACKAGES, ``GET /_sandbox/orders/{id}``); the seller
account (state.py) puts them on orders, their units shipped and the order's status.

As Amazon documents it (ordersV0.json ``ConfirmShipmentRequest``; the SP-API guide "Confirm
the shipment status"):
- one call per package: ``marketplaceId`` and ``packageDetail`` (``packageReferenceId``,
  ``carrierCode``, ``trackingNumber``, ``shipDate``, ``orderItems`` [{``orderItemId``,
  ``quantity``}], optional ``carrierName`` and ``shippingMethod``); answered 204, no body;
- ``packageReferenceId`` is a positive number sent as a JSON string (a JSON number is refused
  as an invalid type, as Amazon has done since January 2026) and names the package within
  its order: the same id again *edits* that package (its details are replaced; no second
  package), which makes a repeated call harmless;
- ``carrierCode`` "Other" needs ``carrierName``;
- the package's units count as shipped on its items: the order is PartiallyShipped until
  every unit has shipped, then Shipped;
- an unknown order is a 404; a canceled or an Amazon-fulfilled order, an unknown order item
  (Amazon's own message), more units than are left to ship, a malformed body: 400
  InvalidInput;
- the tracking number is not checked against the carrier's format: since 2021 Amazon confirms
  a shipment whose tracking ID does not match its carrier's format, with a warning (none here).
Not emulated: whether Amazon refuses a Pending order's confirmation (here it is confirmed);
``codCollectionMethod``, transparency codes and ``shipFromSupplySourceId`` are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.amazon.emulator.wire import amazon_error, iso, parse_time

__all__ = ["Package", "package_2026", "read_package", "shipment_row"]

INVALID_TYPE = ("The input you have submitted is not valid. Please check the fields with "
                "invalid type [packageDetail.{}].")


@dataclass(frozen=True)
class Package:
    reference: str  # packageReferenceId
    carrier_code: str
    carrier_name: str
    method: str  # shippingMethod
    tracking: str
    ship_date: datetime
    items: tuple[tuple[str, int], ...]  # (orderItemId, quantity)
    created: datetime

    @property
    def carrier(self) -> str:
        """The carrier as a person reads it: the name given with "Other", else the code."""
        return self.carrier_name if self.carrier_code == "Other" else self.carrier_code


def read_package(body: dict[str, Any], marketplace_id: str, now: datetime) -> Package:
    """The package a confirmShipment body describes; a 400 for a body Amazon refuses."""
    if body.get("marketplaceId") != marketplace_id:
        raise amazon_error(400, f"Invalid marketplaceId: this seller sells in {marketplace_id}.")
    detail = body.get("packageDetail")
    if not isinstance(detail, dict):
        raise amazon_error(400, "packageDetail is required.")
    reference = detail.get("packageReferenceId")
    if not isinstance(reference, str):
        raise amazon_error(400, INVALID_TYPE.format("packageReferenceId"))
    if not reference.isdigit() or int(reference) < 1:
        raise amazon_error(400, "PackageReferenceId: is invalid, must be a positive numeric "
                                "value.")
    code, name = _text(detail, "carrierCode"), _text(detail, "carrierName", required=False)
    if code == "Other" and not name:
        raise amazon_error(400, "carrierName is required when carrierCode is Other.")
    ship_date = detail.get("shipDate")
    if not isinstance(ship_date, str):
        raise amazon_error(400, INVALID_TYPE.format("shipDate"))
    return Package(reference, code, name, _text(detail, "shippingMethod", required=False),
                   _text(detail, "trackingNumber"), parse_time("shipDate", ship_date),
                   _items(detail.get("orderItems")), now)


def package_2026(package: Package) -> dict[str, Any]:
    """An OrderPackage of the 2026-01-01 model (the PACKAGES data set)."""
    out: dict[str, Any] = {
        "packageReferenceId": package.reference, "createdTime": iso(package.created),
        "packageStatus": {"status": "SHIPPED"}, "carrier": package.carrier,
        "shipTime": iso(package.ship_date), "trackingNumber": package.tracking,
        "packageItems": [{"orderItemId": item_id, "quantity": quantity}
                         for item_id, quantity in package.items],
    }
    if package.method:
        out["shippingService"] = package.method
    return out


def shipment_row(package: Package, skus: Mapping[str, str]) -> dict[str, Any]:
    """The package as ``GET /_sandbox/orders/{id}`` lists it (``skus``: by orderItemId)."""
    return {"carrier": package.carrier, "tracking": package.tracking,
            "package_reference_id": package.reference,
            "lines": [{"sku": skus[item_id], "quantity": quantity}
                      for item_id, quantity in package.items]}


def _text(detail: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = detail.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise amazon_error(400, f"{name} is required (a non-empty string)." if required
                           else INVALID_TYPE.format(name))
    return value.strip()


def _items(raw: Any) -> tuple[tuple[str, int], ...]:
    if not isinstance(raw, list) or not raw:
        raise amazon_error(400, "orderItems is required: at least one order item.")
    found: dict[str, int] = {}
    for item in raw:
        item_id = item.get("orderItemId") if isinstance(item, dict) else None
        quantity = item.get("quantity") if isinstance(item, dict) else None
        if not isinstance(item_id, str) or not item_id:
            raise amazon_error(400, "orderItems[].orderItemId is required.")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise amazon_error(400, f"Invalid quantity for OrderItemId {item_id}: a whole "
                                    "number of at least 1.")
        if item_id in found:
            raise amazon_error(400, f"OrderItemId {item_id} is given twice in one package.")
        found[item_id] = quantity
    return tuple(found.items())
