"""State of the eBay emulator: listings (with variations), orders and revision counts.

Quantities follow eBay: a listing (or variation) has a `Quantity` and a `QuantitySold`;
what a buyer can still buy is `Quantity - QuantitySold`. A sale raises QuantitySold, a
cancellation lowers it again.

An order changes when paid (an order placed unpaid), when its buyer asks to cancel it
(CancelPending), when cancelled or when shipped (all of it, or some lines with CompleteSale);
each change first keeps a copy of the order as it was (`Order.previous`), so that a faulty
page of orders can show it stale. Lines never change once placed, so the copy shares them;
what ships per line (`line_shipped`, `tracking`) is the order's and copied with it.

Prices: each listing (each variation of a multi-variation one) has a price, given as
`"price"` in `POST /_sandbox/listings` or else fixed by its SKU; a line keeps the unit price
of its purchase. No shipping costs, taxes or discounts: an order's total is the sum of its
lines. Each order has a buyer, an eBay user ID drawn from a small fixed list by the
emulator's seed and the order's number (never from the fault plan's random draws, so faults
replay the same). A buyer given to ``POST /_sandbox/orders`` (``{"email", "name"}``) has an
email and a user ID made from the name (else drawn), fixed for that email by the first order
(``buyer_user_id_for``): the same buyer again is the same user. Emulated buyers have no
address or phone, and none is served.

An order shipped as a whole can be delivered (``deliver``): its package gets an
``ActualDeliveryTime``, and the order counts as changed then (guessed: eBay records the
carrier's delivery scan on the order).
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from channelsync.sandbox.emulator import BadRequest, Conflict, NotFound

__all__ = ["GTC_CYCLE", "Line", "Listing", "Order", "Store", "Tracking", "Variation",
           "buyer_user_id", "buyer_user_id_for", "default_price", "earlier", "money"]

GTC_CYCLE = timedelta(days=30)
BUYER_NAMES = ("ada", "bruno", "chiara", "dmitri", "elif", "femi", "greta", "hiroshi", "ines",
               "jonas", "kaja", "luis")
BUYER_WORDS = ("achterberg", "bianchi", "costa", "dubois", "eriksen", "fischer", "garcia",
               "hansen", "ivanova", "jansen", "kowalski", "lindqvist")


def buyer_user_id(seed: int | None, number: int) -> str:
    """An eBay user ID for an order's buyer: the same for the same seed and order number."""
    draw = random.Random(f"ebay-buyer/{seed}/{number}")
    return f"{draw.choice(BUYER_NAMES)}.{draw.choice(BUYER_WORDS)}{draw.randrange(10, 1000)}"


def buyer_user_id_for(seed: str, name: str) -> str:
    """A user ID for a buyer the sandbox names: their name's words (else words drawn by
    ``seed``, their email), and a number drawn by ``seed``."""
    draw = random.Random(f"ebay-buyer/{seed.lower()}")
    words = ["".join(c for c in w.lower() if c.isascii() and c.isalnum()) for w in name.split()]
    words = [w for w in words if w] or [draw.choice(BUYER_NAMES), draw.choice(BUYER_WORDS)]
    return f"{'.'.join(words)}{draw.randrange(10, 1000)}"


def default_price(sku: str) -> Decimal:
    """A listing's price when none was given: 5.00 to 99.99, fixed by its SKU."""
    return Decimal(500 + zlib.crc32(sku.encode()) % 9500) / 100


def money(amount: Decimal) -> str:
    """eBay's amounts (xs:double as eBay writes them): 12.99, 19.5, 25.0."""
    text = f"{amount:.2f}"
    return text[:-1] if text.endswith("0") else text


def parse_price(value: Any) -> Decimal:
    """A `"price"` given to `POST /_sandbox/listings`: a number >= 0 (or its text)."""
    try:
        price = Decimal(str(value)) if isinstance(value, int | float | str) and not isinstance(
            value, bool) else Decimal(-1)
    except InvalidOperation:
        price = Decimal(-1)
    if not price.is_finite() or price < 0:
        raise BadRequest(f'"price" must be a number >= 0; got {value!r}')
    return price.quantize(Decimal("0.01"))


@dataclass
class Variation:
    sku: str
    quantity: int = 0
    sold: int = 0
    price: Decimal = Decimal("0")  # StartPrice

    @property
    def available(self) -> int:
        return self.quantity - self.sold


@dataclass
class Listing:
    item_id: str
    sku: str  # the listing's SKU (the parent SKU of a multi-variation listing)
    started: datetime
    quantity: int = 0  # single-SKU listings only; see `total`
    sold: int = 0
    status: str = "Active"  # Active or Ended
    ended: datetime | None = None
    variations: dict[str, Variation] | None = None  # by SKU, for multi-variation listings
    revisions: dict[str, int] = field(default_factory=dict)  # eBay day -> count
    price: Decimal = Decimal("0")  # StartPrice of a single-SKU listing

    @property
    def available(self) -> int:
        if self.variations is not None:
            return sum(v.available for v in self.variations.values())
        return self.quantity - self.sold

    def end_time(self, now: datetime) -> datetime:
        """When it ended; for an active Good 'Til Cancelled listing, its next 30-day renewal."""
        if self.ended is not None:
            return self.ended
        cycles = max(0, (now - self.started) // GTC_CYCLE) + 1
        return self.started + cycles * GTC_CYCLE

    @property
    def total_quantity(self) -> int:
        if self.variations is not None:
            return sum(v.quantity for v in self.variations.values())
        return self.quantity

    @property
    def total_sold(self) -> int:
        if self.variations is not None:
            return sum(v.sold for v in self.variations.values())
        return self.sold


@dataclass
class Line:
    line_item_id: str  # ItemID-TransactionID, as eBay's OrderLineItemID
    transaction_id: str
    item_id: str
    item_sku: str
    variation_sku: str | None
    quantity: int
    price: Decimal = Decimal("0")  # TransactionPrice: the unit price when bought

    @property
    def total(self) -> Decimal:
        return self.price * self.quantity


@dataclass(frozen=True)
class Tracking:
    """A tracking number on one order line (eBay's ShipmentTrackingDetails of a transaction)."""

    line_item_id: str
    carrier: str  # ShippingCarrierUsed
    number: str  # ShipmentTrackingNumber


@dataclass
class Order:
    order_id: str
    lines: list[Line]
    created: datetime
    modified: datetime
    status: str = "Active"  # Active, Completed, CancelPending, Cancelled
    cancel_status: str = "NotApplicable"  # CancelRequested, CancelComplete
    paid: datetime | None = None
    shipped: datetime | None = None  # the order's ShippedTime: the whole order was shipped
    buyer: str = ""  # BuyerUserID
    buyer_email: str = ""  # Transaction.Buyer.Email, when the sandbox named the buyer
    buyer_name: str = ""  # as the sandbox named the buyer (eBay serves it with the address)
    currency: str = "USD"
    delivered: datetime | None = None  # ShippingPackageInfo.ActualDeliveryTime
    # OrderLineItemID -> when that line was marked shipped (a transaction's ShippedTime)
    line_shipped: dict[str, datetime] = field(default_factory=dict)
    tracking: list[Tracking] = field(default_factory=list)  # in the order they were given
    # as it was before its latest change, for a page that shows it stale
    previous: Order | None = field(default=None, repr=False, compare=False)

    def keep_previous(self) -> None:
        self.previous = replace(self, previous=None, line_shipped=dict(self.line_shipped),
                                tracking=list(self.tracking))

    @property
    def total(self) -> Decimal:
        """Subtotal and Total alike: no shipping costs, taxes or discounts here."""
        return sum((line.total for line in self.lines), Decimal("0"))

    def line_shipped_at(self, line: Line) -> datetime | None:
        """When the line was marked shipped (on its own, or with the whole order)."""
        return self.line_shipped.get(line.line_item_id) or self.shipped

    def row(self) -> dict[str, Any]:
        """The order as ``GET /_sandbox/orders`` lists it. A line is shipped whole or not at
        all (eBay marks transactions shipped); Cancelled cancelled all of it; no returns here.
        ``shipments`` are the tracking numbers given, each with the lines it is on."""
        cancelled = self.status == "Cancelled"
        lines = [{"sku": x.variation_sku or x.item_sku, "quantity": x.quantity,
                  "shipped": x.quantity if self.line_shipped_at(x) else 0,
                  "cancelled": x.quantity if cancelled else 0, "restocked": 0}
                 for x in self.lines]
        return {"order_id": self.order_id, "status": self.status, "lines": lines,
                "shipments": self.shipment_rows(),
                "buyer": {"name": self.buyer_name or None, "email": self.buyer_email or None,
                          "id": self.buyer}}

    def shipment_rows(self) -> list[dict[str, Any]]:
        """One package per tracking number (carrier and number), with the lines it is on."""
        by_id = {line.line_item_id: line for line in self.lines}
        packages: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for given in self.tracking:
            line = by_id[given.line_item_id]
            packages.setdefault((given.carrier, given.number), []).append(
                {"sku": line.variation_sku or line.item_sku, "quantity": line.quantity})
        return [{"carrier": carrier, "tracking": number, "lines": lines}
                for (carrier, number), lines in packages.items()]


def earlier(order: Order) -> Order | None:
    """The order before its latest change (None: never changed since it was placed)."""
    return order.previous


class Store:
    """Listings and orders; every method runs under the emulator's lock."""

    def __init__(self, seed: int | None = None, currency: str = "USD") -> None:
        self.seed, self.currency = seed, currency  # buyers are drawn by the seed
        self.listings: dict[str, Listing] = {}  # by ItemID
        self.orders: dict[str, Order] = {}
        self._next_item = 110000000001
        self._next_order = 1
        self._next_transaction = 2000000000001
        self._users: dict[str, str] = {}  # a named buyer's email (lower case) -> user ID

    def find_sku(self, sku: str) -> tuple[Listing, Variation | None] | None:
        for listing in self.listings.values():
            if listing.variations is not None:
                if sku in listing.variations:
                    return listing, listing.variations[sku]
            elif listing.sku == sku:
                return listing, None
        return None

    def _parent(self, sku: str) -> Listing | None:
        return next((x for x in self.listings.values() if x.sku == sku), None)

    def set_listing(self, sku: str, quantity: int, extra: dict[str, Any], now: datetime) -> None:
        """Available quantity := `quantity`; an ended listing is relisted (same ItemID)."""
        unknown = set(extra) - {"parent_sku", "price"}
        parent_sku = extra.get("parent_sku")
        if unknown or (parent_sku is not None and (not isinstance(parent_sku, str)
                                                   or parent_sku in ("", sku))):
            raise BadRequest(f"ebay listings take parent_sku (another SKU) and price; "
                             f"got {extra}")
        price = parse_price(extra["price"]) if "price" in extra else None
        found = self.find_sku(sku)
        if found is not None:
            listing, variation = found
            if (parent_sku is None) != (variation is None) or (
                    parent_sku is not None and listing.sku != parent_sku):
                raise Conflict(f"SKU {sku!r} exists with another parent_sku")
        elif parent_sku is None:
            if self._parent(sku) is not None:
                raise Conflict(f"{sku!r} is a multi-variation listing: give a variation SKU")
            listing, variation = self._new(sku, now, variations=False), None
            listing.price = default_price(sku)
        else:
            listing = self._parent(parent_sku) or self._new(parent_sku, now, variations=True)
            if listing.variations is None:
                raise Conflict(f"{parent_sku!r} is a single-SKU listing, not a variation one")
            variation = listing.variations[sku] = Variation(sku, price=default_price(sku))
        if variation is not None:
            variation.quantity = variation.sold + quantity
        else:
            listing.quantity = listing.sold + quantity
        if price is not None:
            (variation or listing).price = price
        listing.status, listing.ended = "Active", None

    def _new(self, sku: str, now: datetime, variations: bool) -> Listing:
        item_id, self._next_item = str(self._next_item), self._next_item + 1
        listing = Listing(item_id, sku, now, variations={} if variations else None)
        self.listings[item_id] = listing
        return listing

    def rows(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for listing in self.listings.values():
            base = {"item_id": listing.item_id, "status": listing.status}
            if listing.variations is None:
                out.append({"sku": listing.sku, "quantity": listing.available,
                            "price": money(listing.price), **base})
            for v in (listing.variations or {}).values():
                out.append({"sku": v.sku, "quantity": v.available, "parent_sku": listing.sku,
                            "price": money(v.price), **base})
        return sorted(out, key=lambda row: row["sku"])

    def place_order(self, lines: list[tuple[str, int]], now: datetime,
                    paid: bool = True, buyer: tuple[str, str] | None = None) -> Order:
        """All lines or none; `paid`: the buyer paid at once (eBay's immediate payment),
        else the order waits for payment (Active, checkout Incomplete, no PaidTime).
        `buyer`: (email, name) of the buyer the sandbox names."""
        wanted: dict[str, int] = {}
        for sku, quantity in lines:
            wanted[sku] = wanted.get(sku, 0) + quantity
        targets: list[tuple[Listing, Variation | None, int]] = []
        for sku, quantity in wanted.items():
            found = self.find_sku(sku)
            if found is None:
                raise NotFound(f"no listing with SKU {sku!r}")
            listing, variation = found
            have = (variation or listing).available
            if listing.status != "Active":
                raise Conflict(f"the listing of {sku!r} has ended")
            if have < quantity:
                raise Conflict(f"not enough quantity for {sku!r}: {have} left, {quantity} asked")
            targets.append((listing, variation, quantity))
        order_lines = []
        for listing, variation, quantity in targets:
            (variation or listing).sold += quantity
            transaction_id = str(self._next_transaction)
            self._next_transaction += 1
            order_lines.append(Line(f"{listing.item_id}-{transaction_id}", transaction_id,
                                    listing.item_id, listing.sku,
                                    variation.sku if variation else None, quantity,
                                    (variation or listing).price))
        number = self._next_order
        self._next_order += 1
        order_id = f"{10 + number % 90:02d}-{14000 + number:05d}-{number * 7919 % 100000:05d}"
        email, name = buyer or ("", "")
        user = buyer_user_id(self.seed, number) if buyer is None else self._user(email, name)
        order = Order(order_id, order_lines, now, now, paid=now if paid else None,
                      buyer=user, buyer_email=email, buyer_name=name, currency=self.currency)
        self.orders[order_id] = order
        return order

    def _user(self, email: str, name: str) -> str:
        """The user ID of a buyer the sandbox names: the one their email (else name) had."""
        key = (email or name).lower()
        if key not in self._users:
            taken, seed = set(self._users.values()), email or name
            while (user := buyer_user_id_for(seed, name)) in taken:
                seed += "+"  # another buyer has it: draw again
            self._users[key] = user
        return self._users[key]

    def order(self, order_id: str) -> Order:
        order = self.orders.get(order_id)
        if order is None:
            raise NotFound(f"no order {order_id!r}")
        return order

    def cancel(self, order_id: str, now: datetime) -> dict[str, Any]:
        order = self.order(order_id)
        if order.shipped is not None or order.line_shipped:
            raise Conflict(f"order {order_id} has shipped; it cannot be cancelled")
        if order.status != "Cancelled":
            for line in order.lines:
                listing = self.listings.get(line.item_id)
                if listing is None:
                    continue
                target = (listing.variations or {}).get(line.variation_sku or "") or listing
                target.sold -= line.quantity
            order.keep_previous()
            order.status, order.cancel_status, order.modified = (
                "Cancelled", "CancelComplete", now)
        return {"status": order.status, "cancel_status": order.cancel_status}

    def request_cancel(self, order_id: str, now: datetime) -> dict[str, Any]:
        """The buyer asks to cancel: CancelPending until the seller (`cancel`) completes it.
        The units stay sold meanwhile."""
        order = self.order(order_id)
        if order.shipped is not None or order.status == "Cancelled":
            raise Conflict(f"order {order_id} is {order.status}; no cancellation to request")
        if order.status != "CancelPending":
            order.keep_previous()
            order.status, order.cancel_status, order.modified = (
                "CancelPending", "CancelRequested", now)
        return {"status": order.status, "cancel_status": order.cancel_status}

    def pay(self, order_id: str, now: datetime) -> dict[str, Any]:
        """The buyer pays an order placed unpaid."""
        order = self.order(order_id)
        if order.status == "Cancelled":
            raise Conflict(f"order {order_id} is cancelled; it cannot be paid")
        if order.paid is None:
            order.keep_previous()
            order.paid = order.modified = now
        return {"status": order.status, "paid": True}

    def ship(self, order_id: str, now: datetime) -> dict[str, Any]:
        order = self.order(order_id)
        if order.status == "Cancelled":
            raise Conflict(f"order {order_id} is cancelled; it cannot ship")
        if order.shipped is None:
            order.keep_previous()
            order.shipped, order.status, order.modified = now, "Completed", now
        return {"status": order.status}

    def deliver(self, order_id: str, now: datetime) -> dict[str, Any]:
        """The carrier delivered the order's package (once: later calls change nothing)."""
        order = self.order(order_id)
        if order.shipped is None:
            raise Conflict(f"order {order_id} has not shipped as a whole; nothing to deliver")
        if order.delivered is None:
            order.keep_previous()
            order.delivered = order.modified = max(now, order.shipped)
        return {"status": order.status, "delivered": True}

    def mark_shipped(self, order: Order, lines: list[Line], tracking: list[tuple[str, str]],
                     when: datetime, now: datetime, *, whole: bool) -> None:
        """CompleteSale's Shipped (checked by the caller): these lines shipped at ``when``
        with these (carrier, number) pairs; ``whole``: the order as such (its ShippedTime)."""
        order.keep_previous()
        for line in lines:
            order.line_shipped.setdefault(line.line_item_id, when)
            order.tracking += [Tracking(line.line_item_id, carrier, number)
                               for carrier, number in tracking]
        if whole and order.shipped is None:
            order.shipped, order.status = when, "Completed"
        order.modified = now

    def tracking_used(self, number: str, buyer: str) -> Order | None:
        """An order of another buyer that carries this tracking number already."""
        wanted = number.upper()
        return next((o for o in self.orders.values() if o.buyer != buyer and any(
            t.number.upper() == wanted for t in o.tracking)), None)
