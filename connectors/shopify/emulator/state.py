"""State of the Shopify emulator: locations, variants with their inventory items and levels.

Two locations to begin with: "Shop location", the one online orders are fulfilled from (the
emulator's orders take stock there), and "Warehouse", which stocks goods but fulfils no online
orders. The control API adds locations and changes their flags, deactivation included.

One listing is a product variant with a SKU and its inventory item; the item has an inventory
level per location where it is stocked. A level keeps `available` and `committed`; `on_hand` is
their sum (the emulator has no incoming, reserved, damaged... units). Orders live in
`orders`. Every object number comes from one counter, so a variant, its inventory item
and an order never share a number (a client that mixes them up finds nothing).
A variant has a price (`"price"` when the listing is set, else a fixed one derived from its
SKU), in the shop's currency.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from channelsync.sandbox.emulator import BadRequest

__all__ = ["LOCATION_FLAGS", "PRIMARY", "QUANTITY_NAMES", "Level", "Listing", "Location",
           "Store", "decimal_text", "gid", "parse_gid", "split_gid", "stamp"]

PRIMARY = 1  # the primary location's number: where online orders take their stock
# the control API's names for a location's flags -> Location attributes
LOCATION_FLAGS = {"active": "active", "fulfills_online_orders": "fulfills_online",
                  "ships_inventory": "ships_inventory",
                  "fulfillment_service": "fulfillment_service"}
QUANTITY_NAMES = ("available", "committed", "damaged", "incoming", "on_hand", "quality_control",
                  "reserved", "safety_stock")
LISTING_FIELDS = frozenset({"location", "tracked", "stocked", "title", "price"})
_GID = re.compile(r"gid://shopify/(?P<kind>[A-Za-z]+)/(?P<number>[0-9]+)(?:\?(?P<query>.*))?")


def gid(kind: str, number: int) -> str:
    return f"gid://shopify/{kind}/{number}"


def split_gid(value: Any) -> tuple[str, int, dict[str, str]] | None:
    """(kind, number, query parameters) of a global id, or None when it is not one."""
    match = _GID.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return None
    return match["kind"], int(match["number"]), dict(parse_qsl(match["query"] or ""))


def parse_gid(value: Any, kind: str) -> int | None:
    """The number of a global id of that kind, or None."""
    found = split_gid(value)
    return found[1] if found is not None and found[0] == kind else None


def decimal_text(amount: Decimal) -> str:
    """Shopify's Decimal: a string, at least one decimal ("25.0", "12.5", "9.99")."""
    text = format(amount.normalize(), "f")
    return text if "." in text else f"{text}.0"


def default_price(sku: str) -> Decimal:
    """A variant's price when none was given: 5.00 to 99.99, fixed by its SKU."""
    return Decimal(500 + zlib.crc32(sku.encode()) % 9500) / 100


def _price(value: Any) -> Decimal:
    price = None
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            price = Decimal(str(value))
        except InvalidOperation:
            price = None
    if price is None or not price.is_finite() or price < 0:
        raise BadRequest(f'"price" must be a decimal number >= 0, got {value!r}')
    return price.quantize(Decimal("0.01"))


def stamp(moment: datetime | None) -> str | None:
    """Shopify's DateTime: UTC, whole seconds, a Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else None


@dataclass
class Location:
    id: int
    name: str
    primary: bool = False
    active: bool = True
    fulfills_online: bool = True
    ships_inventory: bool = True
    fulfillment_service: bool = False

    def row(self) -> dict[str, Any]:
        return {"id": gid("Location", self.id), "name": self.name,
                **{flag: getattr(self, attr) for flag, attr in LOCATION_FLAGS.items()}}


@dataclass
class Level:
    """An inventory item's quantities at one location."""

    location_id: int
    updated: datetime
    available: int = 0
    committed: int = 0

    @property
    def on_hand(self) -> int:
        return self.available + self.committed

    def quantity(self, name: str) -> int:
        if name == "on_hand":
            return self.on_hand
        return int(getattr(self, name, 0))  # the emulator keeps no incoming, reserved... units


@dataclass
class Listing:
    """A product variant and its inventory item (Shopify keeps exactly one item per variant)."""

    variant_id: int
    item_id: int
    sku: str
    title: str
    created: datetime
    updated: datetime
    tracked: bool = True
    levels: dict[int, Level] = field(default_factory=dict)  # by location number
    deleted: bool = False
    price: Decimal = Decimal("0")

    def move(self, moment: datetime, available: int = 0, committed: int = 0) -> None:
        """Move units at the primary location; untracked items and unstocked locations keep
        no count, as on Shopify."""
        level = self.levels.get(PRIMARY)
        if self.tracked and level is not None and (available or committed):
            level.available += available
            level.committed += committed
            level.updated = moment


class Store:
    def __init__(self) -> None:
        self.locations = {PRIMARY: Location(PRIMARY, "Shop location", primary=True),
                          2: Location(2, "Warehouse", fulfills_online=False,
                                      ships_inventory=False)}
        self.by_sku: dict[str, Listing] = {}
        self.by_variant: dict[int, Listing] = {}
        self.by_item: dict[int, Listing] = {}
        self._next = 1000
        self._last = datetime.min.replace(tzinfo=UTC)

    def next_id(self) -> int:
        self._next += 1
        return self._next

    def tick(self, now: datetime) -> datetime:
        """`now`, strictly later than any earlier tick (so same-second changes stay ordered)."""
        now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
        self._last = max(now, self._last + timedelta(microseconds=1))
        return self._last

    def location_named(self, name: Any) -> Location:
        found = next((loc for loc in self.locations.values() if loc.name == name), None)
        if found is None:
            names = ", ".join(repr(loc.name) for loc in self.locations.values())
            raise BadRequest(f'"location" must be one of {names}, got {name!r}')
        return found

    # -- /_sandbox/locations ------------------------------------------------------------------

    def set_location(self, name: Any, flags: dict[str, Any]) -> Location:
        """Add the location named so, or change its flags (the primary one stays active)."""
        unknown = set(flags) - set(LOCATION_FLAGS)
        if not isinstance(name, str) or not name.strip() or unknown:
            raise BadRequest(f'a location takes "name" and any of {sorted(LOCATION_FLAGS)}; '
                             f"got name {name!r}, {sorted(unknown)}")
        if not all(isinstance(value, bool) for value in flags.values()):
            raise BadRequest(f"{sorted(flags)} must be true or false")
        location = next((x for x in self.locations.values() if x.name == name), None)
        if location is None:
            number = self.next_id()
            location = self.locations[number] = Location(number, name)
        if location.primary and flags.get("active") is False:
            # orders take their stock there; Shopify, too, wants another default location
            # chosen before it deactivates one
            raise BadRequest("the primary location cannot be deactivated")
        for flag, value in flags.items():
            setattr(location, LOCATION_FLAGS[flag], value)
        return location

    # -- /_sandbox/listings -------------------------------------------------------------------

    def set_listing(self, sku: str, quantity: int, extra: dict[str, Any], now: datetime) -> None:
        unknown = set(extra) - LISTING_FIELDS
        if unknown:
            raise BadRequest(f"shopify listings take {sorted(LISTING_FIELDS)} besides sku and "
                             f"quantity; got {sorted(unknown)}")
        for flag in ("tracked", "stocked"):
            if not isinstance(extra.get(flag, True), bool):
                raise BadRequest(f'"{flag}" must be true or false')
        location = self.location_named(extra.get("location", "Shop location"))
        price = _price(extra["price"]) if "price" in extra else None
        moment = self.tick(now)
        listing = self.by_sku.get(sku)
        if listing is None:
            listing = Listing(self.next_id(), self.next_id(), sku, str(extra.get("title") or sku),
                              moment, moment, price=default_price(sku))
            self.by_sku[sku] = self.by_variant[listing.variant_id] = listing
            self.by_item[listing.item_id] = listing
        listing.tracked = extra.get("tracked", listing.tracked)
        listing.title = str(extra.get("title") or listing.title)
        if price is not None:
            listing.price = price
        listing.updated = moment
        if extra.get("stocked", True) is False:
            listing.levels.pop(location.id, None)
            return
        level = listing.levels.setdefault(location.id, Level(location.id, moment))
        level.available, level.updated = quantity, moment

    def delete_listing(self, sku: str) -> None:
        """The variant is deleted: orders keep their lines, whose `variant` turns null."""
        listing = self.by_sku.pop(sku, None)
        if listing is not None:
            listing.deleted = True
            del self.by_variant[listing.variant_id], self.by_item[listing.item_id]

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for listing in sorted(self.by_sku.values(), key=lambda x: x.sku):
            primary = listing.levels.get(PRIMARY)
            out.append({
                "sku": listing.sku,
                "quantity": primary.available if primary is not None else None,
                "ref": gid("InventoryItem", listing.item_id),
                "variant": gid("ProductVariant", listing.variant_id),
                "tracked": listing.tracked,
                "locations": {self.locations[n].name: level.available
                              for n, level in sorted(listing.levels.items())},
                "committed": primary.committed if primary is not None else None,
                "on_hand": primary.on_hand if primary is not None else None,
                "price": decimal_text(listing.price),
            })
        return out
