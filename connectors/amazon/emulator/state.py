"""The seller account behind the Amazon emulator: listings, orders and how they change,
without HTTP. Amazon takes units off a listing when the order is placed (Pending already
holds them), puts back what was not shipped when an order is canceled, never sells more
than a listing has, and counts a confirmed package's units as shipped (shipping.py)."""

from __future__ import annotations

import random
import zlib
from dataclasses import replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from channelsync.sandbox.emulator import BadRequest, Conflict, NotFound
from connectors.amazon.emulator.listings import (
    FA,
    ISSUE_VALUE,
    Listing,
    apply_patches,
    check_patches,
    issue,
)
from connectors.amazon.emulator.orders import STATUS_2026, Item, Order, Version, buyer_name
from connectors.amazon.emulator.shipping import Package, read_package
from connectors.amazon.emulator.wire import Marketplace, amazon_error, new_asin, new_order_id

__all__ = ["SellerAccount"]

LISTING_EXTRA = frozenset({"fulfillment", "lead_time_to_ship_max_days", "product_type", "title",
                           "price", "asin"})
DEFAULT_LEAD_TIME = 2  # days; a sibling field of quantity that `merge` keeps, `replace` drops
SHIPPED_STATES = frozenset({"Shipped", "InvoiceUnconfirmed", "PartiallyShipped"})


class SellerAccount:
    def __init__(self, market: Marketplace, seed: int | None) -> None:
        self.market = market
        self.seed = seed  # buyers' names are drawn by it
        self.ids = random.Random(seed)  # ids only: a seed replays the same ids
        self.listings: dict[str, Listing] = {}
        self.orders: dict[str, Order] = {}

    # -- listings ---------------------------------------------------------------------------

    def set_listing(self, sku: str, quantity: int, extra: dict[str, Any], now: datetime) -> None:
        """Create or overwrite a listing, as a seller editing it in Seller Central would."""
        unknown = set(extra) - LISTING_EXTRA
        if unknown:
            raise BadRequest(f"amazon listings take {', '.join(sorted(LISTING_EXTRA))}; "
                             f"not {', '.join(sorted(unknown))}")
        fulfillment = extra.get("fulfillment", "MFN")
        if fulfillment not in ("MFN", "AFN"):
            raise BadRequest('"fulfillment" is "MFN" (merchant) or "AFN" (FBA)')
        lead_time = extra.get("lead_time_to_ship_max_days", DEFAULT_LEAD_TIME)
        if isinstance(lead_time, bool) or not isinstance(lead_time, int) or lead_time < 0:
            raise BadRequest('"lead_time_to_ship_max_days" must be an integer >= 0')
        listing = self.listings.get(sku)
        if listing is None:
            listing = self.listings[sku] = Listing(
                sku, fulfillment == "AFN", "PRODUCT", new_asin(self.ids), default_price(sku),
                now, now)
        listing.afn = fulfillment == "AFN"
        listing.product_type = str(extra.get("product_type", listing.product_type))
        listing.asin = str(extra.get("asin", listing.asin))
        listing.price = _price(extra.get("price", listing.price))
        mid = self.market.marketplace_id
        title = extra.get("title") or _title(listing) or sku
        listing.attributes.update({
            "item_name": [{"value": str(title), "language_tag": "en_US", "marketplace_id": mid}],
            "condition_type": [{"value": "new_new", "marketplace_id": mid}],
            FA: ([{"fulfillment_channel_code": self.market.afn_code}] if listing.afn else
                 [{"fulfillment_channel_code": "DEFAULT", "quantity": quantity,
                   "lead_time_to_ship_max_days": lead_time}])})
        listing.set_quantity(quantity)
        listing.updated = max(now, listing.updated)

    def listing_rows(self) -> list[dict[str, Any]]:
        rows = []
        for listing in sorted(self.listings.values(), key=lambda row: row.sku):
            row: dict[str, Any] = {"sku": listing.sku, "quantity": listing.quantity,
                                   "fulfillment": "AFN" if listing.afn else "MFN",
                                   "asin": listing.asin, "product_type": listing.product_type}
            entry: dict[str, Any] = next(iter(listing.attributes.get(FA) or []), {})
            row["fulfillment_channel_code"] = entry.get("fulfillment_channel_code")
            if "lead_time_to_ship_max_days" in entry:
                row["lead_time_to_ship_max_days"] = entry["lead_time_to_ship_max_days"]
            rows.append(row)
        return rows

    def patch(self, sku: str, patches: list[dict[str, Any]], now: datetime, *,
              apply: bool = True) -> list[dict[str, Any]]:
        """patchListingsItem: the issues that refuse it; none: applied (unless `apply` is off)."""
        listing = self.listings.get(sku)
        found = check_patches(listing, sku, patches, self.market.afn_code)
        if not found and apply and listing is not None:
            apply_patches(listing, patches, now)
        return found

    def apply_message(self, message: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
        """One schema-valid JSON_LISTINGS_FEED message; returns its issues (none: accepted).

        The emulator creates no listings from feeds: UPDATE and PATCH of an unknown SKU fail.
        """
        sku, op = message["sku"], message["operationType"]
        listing = self.listings.get(sku)
        if op == "DELETE":
            if listing is None:
                return check_patches(None, sku, [], self.market.afn_code)
            del self.listings[sku]
            return []
        if op == "PATCH":
            return self.patch(sku, message["patches"], now)
        attributes: dict[str, Any] = message["attributes"]
        bad = [name for name, value in attributes.items() if not isinstance(value, list)
               or not all(isinstance(v, dict) for v in value)]
        if bad:
            return [issue(ISSUE_VALUE, f"attribute '{name}' must be an array of objects.", name)
                    for name in bad]
        patches = [{"op": "replace", "path": f"/attributes/{name}", "value": value}
                   for name, value in attributes.items()]
        found = self.patch(sku, patches, now, apply=False)
        if found or listing is None:
            return found
        if op == "UPDATE":  # the full set: what is not sent is gone (Amazon keeps FBA's own)
            kept = listing.attributes.get(FA) if listing.afn and FA not in attributes else None
            listing.attributes = {FA: kept} if kept else {}
        apply_patches(listing, patches, now)
        return []

    # -- orders -----------------------------------------------------------------------------

    def place_order(self, lines: list[tuple[str, int]], now: datetime,
                    buyer: tuple[str, str] | None = None) -> str:
        """``buyer``: (email, name) of the buyer the sandbox names (else a name is drawn)."""
        wanted: dict[str, int] = {}
        for sku, quantity in lines:
            wanted[sku] = wanted.get(sku, 0) + quantity
        found = []
        for sku, quantity in wanted.items():
            listing = self.listings.get(sku)
            if listing is None:
                raise NotFound(f"no listing with SKU {sku!r}")
            if listing.quantity < quantity:
                raise Conflict(f"not enough stock for {sku!r}: {listing.quantity} listed, "
                               f"{quantity} asked")
            found.append((listing, quantity))
        if len({listing.afn for listing, _ in found}) > 1:
            raise BadRequest("Amazon splits FBA and merchant-fulfilled units into separate "
                             "orders: place one order per fulfillment")
        items = []
        for listing, quantity in found:
            listing.set_quantity(listing.quantity - quantity)
            listing.updated = max(now, listing.updated)
            items.append(Item(f"{self.ids.randrange(10**13, 10**14)}", listing.sku,
                              listing.asin, _title(listing) or listing.sku, quantity,
                              listing.price))
        order_id = new_order_id(self.ids)
        while order_id in self.orders:
            order_id = new_order_id(self.ids)
        start = Version(now, "Pending", (0,) * len(items))
        email, name = buyer or ("", "")
        self.orders[order_id] = Order(order_id, self.market, found[0][0].afn, now, items,
                                      [start], buyer=name or buyer_name(self.seed, order_id),
                                      email=email)
        return order_id

    def order(self, order_id: str) -> Order:
        order = self.orders.get(order_id)
        if order is None:
            raise NotFound(f"no order {order_id!r}")
        return order

    def set_status(self, order_id: str, status: Any, shipped: Any, now: datetime
                   ) -> dict[str, Any]:
        """Move an order to a status (v0 spelling), optionally with units shipped per SKU."""
        order = self.order(order_id)
        if status not in STATUS_2026:
            raise BadRequest(f'"status" must be one of {", ".join(STATUS_2026)}')
        if not isinstance(shipped, dict | None):
            raise BadRequest('"shipped" must be an object like {"MUG": 1}')
        current = order.current
        if current.status == "Canceled" and status != "Canceled":
            raise Conflict(f"order {order_id} is Canceled; it cannot become {status}")
        units = list(current.shipped)
        if status in ("Shipped", "InvoiceUnconfirmed") and not shipped:
            units = [item.quantity for item in order.items]
        for sku, count in (shipped or {}).items():
            self._ship_units(order, units, sku, count)
        if status == "Canceled" and current.status != "Canceled":
            for item, sent in zip(order.items, units, strict=True):
                listing = self.listings.get(item.sku)
                if listing is not None:  # what was not shipped goes back on sale
                    listing.set_quantity(listing.quantity + item.quantity - sent)
                    listing.updated = max(now, listing.updated)
        if status != current.status or tuple(units) != current.shipped:
            order.change(now, status, tuple(units))
        return {"status": order.current.status, "shipped": {
            item.sku: sent for item, sent in zip(order.items, order.current.shipped,
                                                 strict=True)}}

    @staticmethod
    def _ship_units(order: Order, units: list[int], sku: Any, count: Any) -> None:
        index = next((n for n, item in enumerate(order.items) if item.sku == sku), None)
        if index is None:
            raise BadRequest(f"order {order.order_id} has no item with SKU {sku!r}")
        quantity = order.items[index].quantity
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= quantity:
            raise BadRequest(f"shipped units of {sku!r} must be an integer from 0 to {quantity}")
        if count < units[index]:
            raise Conflict(f"{units[index]} units of {sku!r} already shipped")
        units[index] = count

    def confirm_shipment(self, order_id: str, body: dict[str, Any], now: datetime) -> None:
        """confirmShipment: a package on the order (or the edit of one), its units shipped
        (see shipping.py)."""
        package = read_package(body, self.market.marketplace_id, now)
        order = self.orders.get(order_id)
        if order is None:
            raise amazon_error(404, f"Order {order_id} not found.")
        status, units = _add_package(order, package)
        order.change(now, status, units)

    def cancel(self, order_id: str, now: datetime) -> dict[str, Any]:
        current = self.order(order_id).current.status
        if current in SHIPPED_STATES:
            raise Conflict(f"order {order_id} is {current}; shipped units cannot be canceled")
        return self.set_status(order_id, "Canceled", None, now)

    def ship(self, order_id: str, now: datetime) -> dict[str, Any]:
        return self.set_status(order_id, "Shipped", None, now)


def _add_package(order: Order, package: Package) -> tuple[str, tuple[int, ...]]:
    """Put the package on the order (a new one, or the edit of the one with its reference):
    the order's status and units shipped per item afterwards. Nothing changes on a 400."""
    if order.afn:
        raise amazon_error(400, f"Order {order.order_id} is fulfilled by Amazon: Amazon "
                                "confirms its shipments.")
    if order.current.status == "Canceled":
        raise amazon_error(400, f"Order {order.order_id} has been canceled: its shipment "
                                "cannot be confirmed.")
    old = next((p for p in order.packages if p.reference == package.reference), None)
    units = _units_after(order, old, package)
    if old is None:
        order.packages.append(package)
    else:  # an edit: the package keeps its place and its creation time
        order.packages[order.packages.index(old)] = replace(package, created=old.created)
    done = all(sent == item.quantity for sent, item in zip(units, order.items, strict=True))
    return ("Shipped" if done else "PartiallyShipped"), tuple(units)


def _units_after(order: Order, old: Package | None, package: Package) -> list[int]:
    """Units shipped per item once ``package`` replaces ``old`` (None: adds to them)."""
    units = list(order.current.shipped)
    index = {item.item_id: n for n, item in enumerate(order.items)}
    for item_id, quantity in old.items if old else ():
        units[index[item_id]] -= quantity
    for item_id, quantity in package.items:
        n = index.get(item_id)
        if n is None:
            raise amazon_error(400, f"OrderItemId {item_id} is invalid, please obtain the value "
                                    "through the getOrderItems API or Manage Orders page")
        left = order.items[n].quantity - units[n]
        if quantity > left:
            raise amazon_error(400, f"Invalid quantity for OrderItemId {item_id}: {quantity} "
                                    f"units, {left} left to ship.")
        units[n] += quantity
    return units


def default_price(sku: str) -> Decimal:
    """A listing's price when none was given: 5.00 to 99.99, fixed by its SKU."""
    return Decimal(500 + zlib.crc32(sku.encode()) % 9500) / 100


def _title(listing: Listing) -> str:
    names = listing.attributes.get("item_name") or [{}]
    return str(names[0].get("value") or "")


def _price(value: Any) -> Decimal:
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        price = Decimal(-1)
    if isinstance(value, bool) or not price.is_finite() or price < 0:
        raise BadRequest('"price" must be a number >= 0')
    return price
