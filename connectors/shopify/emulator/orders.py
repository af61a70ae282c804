"""Orders of the Shopify emulator: placing, cancelling, fulfilling, refunding and editing.

Each order has one fulfillment order (all its units ship from the primary location), made
when it is placed with a line item per order line: OPEN, IN_PROGRESS once some units are
fulfilled, CLOSED once none remain or the order is cancelled; a line item's remaining units
are its line's unfulfilled ones. Every fulfilment (the sandbox's ship, or fulfillmentCreate)
is a `Fulfillment` with its units and, when given, a carrier and tracking number; the order's
row lists them as its shipments.

Stock moves at the primary location, as Shopify's default fulfilment location does:
an order takes `available` into `committed`; a fulfilment ships committed units (so on_hand
drops); a cancellation, a CANCEL refund or an edit removing units puts unfulfilled units back
into `available`; a RETURN refund puts fulfilled units back (on_hand rises); NO_RESTOCK takes
unfulfilled units off the order without putting them on sale (committed and on_hand drop),
then fulfilled ones (money only).

Each change first keeps a copy of the order as it was (`Order.previous`), so that a faulty
page of orders can show it stale; `Order.row()` is the order as `GET /_sandbox/orders`
lists it.

Each order has a customer, a first and last name drawn from a small fixed list by the
emulator's seed and the order's number (never from the fault plan's random draws); one
customer per name, as a returning buyer is. A buyer the sandbox names (``{"email", "name"}``)
is the shop's customer with that email (matched without regard to case, as Shopify does),
made by their first order with the name given (else drawn); the order keeps the email as its
``email``. Customers have no address or phone here.
A fulfilment is FULFILLED (its ``displayStatus``; guessed: a merchant's fulfilment no carrier
reports on yet) until ``deliver`` marks every one of the order's fulfilments not delivered yet
DELIVERED with a ``deliveredAt``; the order counts as changed then (guessed: Shopify moves an
order's ``updatedAt`` when a fulfilment's delivery is recorded).
Each line keeps its variant's price when placed; the order's total (`totalPriceSet`) is the
sum of the lines as ordered, in the shop's currency (no tax, shipping or discounts, and
guessed: edits and refunds leave it, as "before returns" says).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from channelsync.sandbox.emulator import BadRequest, Conflict, NotFound
from connectors.shopify.emulator.state import PRIMARY, Listing, Store, gid, stamp

__all__ = ["FINANCIAL_STATUSES", "Customer", "Fulfillment", "Line", "Order", "OrderBook",
           "Refund", "RefundLine", "buyer_name"]

FINANCIAL_STATUSES = ("PAID", "PENDING", "AUTHORIZED", "PARTIALLY_PAID")  # for sandbox orders
PAID = frozenset({"PAID", "PARTIALLY_PAID", "PARTIALLY_REFUNDED", "REFUNDED"})
RESTOCK_TYPES = ("CANCEL", "RETURN", "NO_RESTOCK")
FIRST_NAMES = ("Ada", "Bruno", "Chiara", "Dmitri", "Elif", "Femi", "Greta", "Hiroshi", "Ines",
               "Jonas", "Kaja", "Luis")
LAST_NAMES = ("Achterberg", "Bianchi", "Costa", "Dubois", "Eriksen", "Fischer", "García",
              "Hansen", "Ivanova", "Jansen", "Kowalski", "Lindqvist")


def buyer_name(seed: int | None, number: int) -> tuple[str, str]:
    """(first name, last name) of the buyer of order `number` (#1001...): the same for the
    same seed and order."""
    draw = random.Random(f"shopify-buyer/{seed}/{number}")
    return draw.choice(FIRST_NAMES), draw.choice(LAST_NAMES)


@dataclass(frozen=True)
class Customer:
    id: int
    first_name: str
    last_name: str
    email: str | None = None

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


@dataclass
class Line:
    id: int
    listing: Listing
    quantity: int  # as ordered
    fulfilled: int = 0
    removed: int = 0  # by order edits (always unfulfilled units)
    refunded_unfulfilled: int = 0  # refunded before fulfilment: Shopify's non-fulfillable units
    refunded_fulfilled: int = 0
    price: Decimal = Decimal("0")  # the variant's price when the order was placed
    fulfillment_line_id: int = 0  # its line item on the order's fulfillment order

    @property
    def current(self) -> int:
        return self.quantity - self.removed - self.refunded_unfulfilled - self.refunded_fulfilled

    @property
    def unfulfilled(self) -> int:
        return self.quantity - self.removed - self.refunded_unfulfilled - self.fulfilled

    @property
    def kept_fulfilled(self) -> int:
        """Fulfilled units not refunded since."""
        return self.fulfilled - self.refunded_fulfilled

    def row(self, returned: int, order_cancelled: bool) -> dict[str, Any]:
        still_open = 0 if order_cancelled else self.unfulfilled
        return {"sku": self.listing.sku, "quantity": self.quantity, "shipped": self.fulfilled,
                "cancelled": self.quantity - self.fulfilled - still_open,
                "restocked": returned}


@dataclass
class RefundLine:
    id: int
    line: Line
    quantity: int
    restock_type: str

    @property
    def restocked(self) -> bool:
        # guessed: an untracked item has no stock to go back to
        return self.restock_type != "NO_RESTOCK" and self.line.listing.tracked


@dataclass
class Refund:
    id: int
    created: datetime
    lines: list[RefundLine]


@dataclass
class Fulfillment:
    id: int
    name: str  # guessed: "#1001.1", the order's name and a count
    created: datetime
    lines: list[tuple[Line, int]]
    company: str | None = None
    number: str | None = None
    notify_customer: bool = False
    status: str = "SUCCESS"
    delivered: datetime | None = None  # deliveredAt

    @property
    def display_status(self) -> str:
        return "DELIVERED" if self.delivered is not None else "FULFILLED"

    def row(self) -> dict[str, Any]:
        return {"carrier": self.company or "", "tracking": self.number or "",
                "lines": [{"sku": line.listing.sku, "quantity": n} for line, n in self.lines]}


@dataclass
class Order:
    id: int
    number: int
    created: datetime
    updated: datetime
    test: bool
    financial: str
    lines: list[Line]
    refunds: list[Refund] = field(default_factory=list)
    cancelled: datetime | None = None
    cancel_reason: str | None = None
    processed_at: datetime | None = None  # set when placed: an order imported from elsewhere
    customer: Customer | None = None
    email: str | None = None  # the order's email: the buyer's, when the sandbox named one
    currency: str = "EUR"
    fulfillment_order_id: int = 0
    fulfillments: list[Fulfillment] = field(default_factory=list)  # oldest first
    # as it was before its latest change, for a page that shows it stale
    previous: Order | None = field(default=None, repr=False, compare=False)

    def keep_previous(self) -> None:
        """Copy the order as it is, before a change: views read lines and refunds lazily,
        so the copy has copies of them (each line still selling its listing)."""
        lines = {id(x): replace(x) for x in self.lines}
        refunds = [replace(r, lines=[replace(x, line=lines[id(x.line)]) for x in r.lines])
                   for r in self.refunds]
        self.previous = replace(self, lines=list(lines.values()), refunds=refunds,
                                fulfillments=[replace(f) for f in self.fulfillments],
                                previous=None)

    @property
    def processed(self) -> datetime:
        return self.processed_at or self.created

    @property
    def total(self) -> Decimal:
        return sum((x.price * x.quantity for x in self.lines), Decimal("0"))

    def line_for(self, sku: Any) -> Line:
        found = next((x for x in self.lines if x.listing.sku == sku), None)
        if found is None:
            raise BadRequest(f"order {self.id} has no line with SKU {sku!r}")
        return found

    @property
    def fulfillment_status(self) -> str:
        shipped = any(x.fulfilled for x in self.lines)
        if shipped and not any(x.unfulfilled for x in self.lines):
            return "FULFILLED"
        # guessed: an order whose units were all refunded before fulfilment stays UNFULFILLED
        return "PARTIALLY_FULFILLED" if shipped else "UNFULFILLED"

    @property
    def fulfillment_order_status(self) -> str:
        if self.cancelled is not None or not any(x.unfulfilled for x in self.lines):
            return "CLOSED"
        return "IN_PROGRESS" if any(x.fulfilled for x in self.lines) else "OPEN"

    def remaining(self, line: Line) -> int:
        """Units of the line its fulfillment order still has to fulfil."""
        return 0 if self.cancelled is not None else line.unfulfilled

    def row(self) -> dict[str, Any]:
        """The order for ``GET /_sandbox/orders``: its status is displayFulfillmentStatus, or
        CANCELLED once cancelled; units per line as a client reading Shopify's fields counts
        them (connectors/shopify/_orders.py): ``quantity`` as ordered, ``shipped`` fulfilled
        (a refund does not unship), ``cancelled`` what left the order unfulfilled (edits,
        refunds, the cancellation), ``restocked`` RETURN units."""
        returned: dict[int, int] = {}
        for refund in self.refunds:
            for x in refund.lines:
                if x.restock_type == "RETURN":
                    returned[x.line.id] = returned.get(x.line.id, 0) + x.quantity
        cancelled = self.cancelled is not None
        return {"order_id": str(self.id),
                "status": "CANCELLED" if cancelled else self.fulfillment_status,
                "financial_status": self.financial, "test": self.test,
                "shipments": [f.row() for f in self.fulfillments], "buyer": self.buyer_row(),
                "lines": [x.row(returned.get(x.id, 0), cancelled) for x in self.lines]}

    def buyer_row(self) -> dict[str, Any] | None:
        """The customer as ``GET /_sandbox/orders`` shows it (None: a guest, or none)."""
        if self.customer is None:
            return None
        return {"name": self.customer.display_name, "email": self.email,
                "id": str(self.customer.id)}

    def summary(self) -> dict[str, Any]:
        return {"id": gid("Order", self.id), "name": f"#{self.number}",
                "updated_at": stamp(self.updated), "cancelled_at": stamp(self.cancelled),
                "financial_status": self.financial, "fulfillment_status": self.fulfillment_status,
                "lines": {x.listing.sku: {"quantity": x.quantity, "current": x.current,
                                          "unfulfilled": x.unfulfilled} for x in self.lines}}


class OrderBook:
    def __init__(self, store: Store, *, seed: int | None = None, currency: str = "EUR") -> None:
        self.store = store
        self.orders: dict[int, Order] = {}
        self.seed, self.currency = seed, currency
        self._customers: dict[tuple[str, str], Customer] = {}
        self._by_email: dict[str, Customer] = {}  # lower-case email -> customer
        self._number = 1000

    def get(self, order_id: Any) -> Order:
        text = str(order_id).rsplit("/", 1)[-1]
        order = self.orders.get(int(text)) if text.isdigit() else None
        if order is None:
            raise NotFound(f"no order {order_id!r}")
        return order

    def place(self, lines: list[tuple[str, int]], now: datetime, *, test: bool = False,
              financial: str = "PAID", processed: datetime | None = None,
              buyer: tuple[str, str] | None = None) -> Order:
        """``buyer``: (email, name) of the buyer the sandbox names (either may be empty)."""
        if financial not in FINANCIAL_STATUSES:
            raise BadRequest(f'"financial_status" must be one of {", ".join(FINANCIAL_STATUSES)}')
        if processed is not None and processed > now:  # guessed: Shopify refuses the future
            raise BadRequest('"processed_at" must not be in the future')
        wanted: dict[str, int] = {}
        for sku, quantity in lines:
            wanted[sku] = wanted.get(sku, 0) + quantity
        for sku, quantity in wanted.items():
            listing = self.store.by_sku.get(sku)
            if listing is None:
                raise BadRequest(f"no product variant with SKU {sku!r}")
            level = listing.levels.get(PRIMARY)
            have = level.available if level is not None else 0
            if listing.tracked and have < quantity:
                raise Conflict(f"not enough stock for {sku!r} at the primary location: "
                               f"{have} available, {quantity} asked")
        moment = self.store.tick(now)
        self._number += 1
        email, name = buyer or ("", "")
        order = Order(self.store.next_id(), self._number, moment, moment, test, financial, [],
                      processed_at=processed, customer=self._customer(self._number, email, name),
                      email=email or None, currency=self.currency)
        for sku, quantity in wanted.items():
            listing = self.store.by_sku[sku]
            order.lines.append(Line(self.store.next_id(), listing, quantity,
                                    price=listing.price))
            listing.move(moment, available=-quantity, committed=quantity)
        order.fulfillment_order_id = self.store.next_id()
        for line in order.lines:
            line.fulfillment_line_id = self.store.next_id()
        self.orders[order.id] = order
        return order

    def with_fulfillment_order(self, number: int) -> Order | None:
        return next((o for o in self.orders.values() if o.fulfillment_order_id == number), None)

    def _customer(self, number: int, email: str = "", full_name: str = "") -> Customer:
        first, _, last = full_name.strip().partition(" ")
        name = (first, last.strip()) if first else buyer_name(self.seed, number)
        if email:
            if email.lower() not in self._by_email:
                self._by_email[email.lower()] = Customer(self.store.next_id(), *name, email)
            return self._by_email[email.lower()]
        if name not in self._customers:
            self._customers[name] = Customer(self.store.next_id(), *name)
        return self._customers[name]

    def cancel(self, order: Order, now: datetime) -> dict[str, Any]:
        if order.cancelled is not None:
            raise Conflict(f"order {order.id} is already cancelled")
        # guessed: a partly fulfilled order may be cancelled (its unfulfilled units are)
        order.keep_previous()
        moment = self.store.tick(now)
        back = [(x, x.unfulfilled) for x in order.lines if x.unfulfilled]
        if back:
            self._refund(order, [(x, n, "CANCEL") for x, n in back], moment)
        order.cancelled, order.cancel_reason, order.updated = moment, "CUSTOMER", moment
        order.financial = "REFUNDED" if order.financial in PAID else "VOIDED"
        return order.summary()

    def ship(self, order: Order, wanted: dict[str, int] | None, now: datetime) -> dict[str, Any]:
        if order.cancelled is not None:
            raise Conflict(f"order {order.id} is cancelled; it cannot ship")
        if wanted is None:
            plan = [(x, x.unfulfilled) for x in order.lines if x.unfulfilled]
        else:
            plan = [(order.line_for(sku), n) for sku, n in wanted.items()]
        for line, n in plan:
            if n > line.unfulfilled:
                raise Conflict(f"{line.listing.sku!r} has {line.unfulfilled} unfulfilled units; "
                               f"{n} asked")
        if not any(n for _, n in plan):
            raise Conflict(f"order {order.id} has nothing left to fulfil")
        self.fulfil(order, plan, now)
        return order.summary()

    def fulfil(self, order: Order, plan: list[tuple[Line, int]], now: datetime, *,
               company: str | None = None, number: str | None = None,
               notify_customer: bool = False) -> Fulfillment:
        """Ship those units (checked by the caller: at most each line's remaining ones)."""
        order.keep_previous()
        moment = self.store.tick(now)
        for line, n in plan:
            line.fulfilled += n
            line.listing.move(moment, committed=-n)
        fulfillment = Fulfillment(
            self.store.next_id(), f"#{order.number}.{len(order.fulfillments) + 1}", moment,
            [(line, n) for line, n in plan if n], company, number, notify_customer)
        order.fulfillments.append(fulfillment)
        order.updated = moment
        return fulfillment

    def deliver(self, order: Order, now: datetime) -> dict[str, Any]:
        """The carrier delivered every fulfilment of the order not delivered yet."""
        waiting = [f for f in order.fulfillments if f.delivered is None]
        if not waiting:
            raise Conflict(f"order {order.id} has no fulfilment waiting for delivery")
        order.keep_previous()
        moment = self.store.tick(now)
        for fulfillment in order.fulfillments:
            if fulfillment.delivered is None:
                fulfillment.delivered = moment
        order.updated = moment
        return order.summary()

    def refund(self, order: Order, wanted: list[tuple[str, int, str]], now: datetime
               ) -> dict[str, Any]:
        plan, seen = [], set()
        for sku, n, restock_type in wanted:
            line = order.line_for(sku)
            if restock_type not in RESTOCK_TYPES or sku in seen:
                raise BadRequest(f'each SKU once, "restock_type" one of {", ".join(RESTOCK_TYPES)}')
            seen.add(sku)
            room = {"CANCEL": line.unfulfilled, "RETURN": line.kept_fulfilled,
                    "NO_RESTOCK": line.unfulfilled + line.kept_fulfilled}[restock_type]
            if n > room:
                raise Conflict(f"{sku!r}: {n} units to refund with {restock_type}, {room} can be")
            plan.append((line, n, restock_type))
        order.keep_previous()
        moment = self.store.tick(now)
        self._refund(order, plan, moment)
        order.updated = moment
        if order.financial in PAID:  # guessed: unpaid orders keep their status on a refund
            left = any(x.current for x in order.lines)
            order.financial = "PARTIALLY_REFUNDED" if left else "REFUNDED"
        return order.summary()

    def _refund(self, order: Order, plan: list[tuple[Line, int, str]], moment: datetime) -> None:
        refund = Refund(self.store.next_id(), moment, [])
        for line, n, restock_type in plan:
            refund.lines.append(RefundLine(self.store.next_id(), line, n, restock_type))
            if restock_type == "CANCEL":
                line.refunded_unfulfilled += n
                line.listing.move(moment, available=n, committed=-n)
            elif restock_type == "RETURN":
                line.refunded_fulfilled += n
                line.listing.move(moment, available=n)
            else:  # NO_RESTOCK: unfulfilled units first, they leave stock with the order
                early = min(n, line.unfulfilled)
                line.refunded_unfulfilled += early
                line.refunded_fulfilled += n - early
                line.listing.move(moment, committed=-early)
        order.refunds.append(refund)

    def edit(self, order: Order, sku: Any, quantity: int, now: datetime) -> dict[str, Any]:
        if order.cancelled is not None:
            raise Conflict(f"order {order.id} is cancelled; it cannot be edited")
        line = order.line_for(sku)
        lowest = line.current - line.unfulfilled  # fulfilled units stay on the order
        if not lowest <= quantity <= line.current:
            raise Conflict(f"{sku!r}: an edit sets the current quantity between {lowest} "
                           f"(fulfilled) and {line.current}; got {quantity}")
        removed = line.current - quantity
        order.keep_previous()
        moment = self.store.tick(now)
        line.removed += removed
        line.listing.move(moment, available=removed, committed=-removed)
        order.updated = moment
        return order.summary()
