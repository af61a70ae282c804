"""The WooCommerce emulator's orders: the order, its notes, the copy of itself it keeps for
stale pages, and its row for ``GET /_sandbox/orders``.

An order changes only by its status (and the payment date its first paid status sets), so a
copy of the order taken just before a status change is the version a stale page shows. Line
items never change once placed, so the copy shares them.

Each order has a buyer: a first and last name drawn from a small fixed list by the emulator's
seed and the order's id (never from the fault plan's random draws, so faults replay the
same). Emulated buyers have no address, email or phone: those billing fields are empty.

WooCommerce has no shipments: a seller (or channelsync) tells the buyer with an order note.
The row's ``shipments`` are the sandbox's reading of the notes written the way channelsync
writes them (``shipment_in``): a first row "Shipped with CARRIER, tracking number NUMBER."
and a row "N x NAME (SKU S)" per line; any other note is just a note.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

__all__ = ["LineItem", "Note", "Order", "buyer_name", "earlier", "money", "shipment_in"]

FIRST_NAMES = ("Ada", "Bruno", "Chiara", "Dmitri", "Elif", "Femi", "Greta", "Hiroshi", "Ines",
               "Jonas", "Kaja", "Luis")
LAST_NAMES = ("Achterberg", "Bianchi", "Costa", "Dubois", "Eriksen", "Fischer", "García",
              "Hansen", "Ivanova", "Jansen", "Kowalski", "Lindqvist")

# Statuses whose units never leave (or no longer wait for) the shelf. A checkout draft is a
# cart, not a sale: it holds nothing, and a client reading the API ignores it.
ENDED = frozenset({"cancelled", "failed", "refunded", "checkout-draft"})
_SHIPPED = re.compile(r"Shipped with (?P<carrier>.+), tracking number (?P<tracking>.+)\.")
_SHIPPED_LINE = re.compile(r"(?P<quantity>[1-9][0-9]*) x .* \(SKU (?P<sku>.+)\)")


def buyer_name(seed: int | None, order_id: int) -> tuple[str, str]:
    """(first name, last name) of an order's buyer: the same for the same seed and order."""
    draw = random.Random(f"woocommerce-buyer/{seed}/{order_id}")
    return draw.choice(FIRST_NAMES), draw.choice(LAST_NAMES)


def money(amount: Decimal) -> str:
    """WooCommerce's amounts: a decimal string with the store's two decimals."""
    return f"{amount:.2f}"


def shipment_in(text: str) -> dict[str, Any] | None:
    """The shipment a note tells of, as ``GET /_sandbox/orders`` lists it (None: another
    kind of note)."""
    rows = text.splitlines()
    head = _SHIPPED.fullmatch(rows[0].strip()) if rows else None
    if head is None:
        return None
    lines = [{"sku": m["sku"], "quantity": int(m["quantity"])}
             for m in (_SHIPPED_LINE.fullmatch(row.strip()) for row in rows[1:]) if m]
    return {"carrier": head["carrier"], "tracking": head["tracking"], "lines": lines}


@dataclass
class Note:
    """An order note (a WordPress comment on the order): private, or for the customer."""

    id: int
    created: datetime
    note: str
    customer_note: bool = False
    added_by_user: bool = False  # False: written in WooCommerce's name ("system")


@dataclass
class LineItem:
    id: int
    product_id: int
    variation_id: int
    sku: str
    quantity: int
    name: str
    price: Decimal = Decimal("0")  # the unit price when the order was placed

    @property
    def total(self) -> Decimal:
        return self.price * self.quantity


@dataclass
class Order:
    id: int
    status: str
    created: datetime
    modified: datetime
    line_items: list[LineItem]
    stock_reduced: bool = False  # WooCommerce's _order_stock_reduced flag
    completed: datetime | None = None
    paid: datetime | None = None  # date_paid: set when it first became processing or completed
    buyer: tuple[str, str] = ("", "")  # billing first and last name
    email: str = ""  # billing email: the guest's, when the sandbox gave one
    currency: str = "EUR"
    notes: list[Note] = field(default_factory=list)  # a note never changes the order
    # as it was before its latest status change, for a page that shows it stale
    previous: Order | None = field(default=None, repr=False, compare=False)

    def keep_previous(self) -> None:
        self.previous = replace(self, previous=None)

    @property
    def total(self) -> Decimal:
        """No taxes, shipping or discounts in the emulator: the sum of the line totals."""
        return sum((i.total for i in self.line_items), Decimal("0"))

    @property
    def shipped(self) -> bool:
        # A refund after completion is of goods that left: WooCommerce keeps date_completed,
        # and a status change to refunded restocks nothing.
        return self.status == "completed" or (
            self.status == "refunded" and self.completed is not None)

    def row(self) -> dict[str, Any]:
        """The order as ``GET /_sandbox/orders`` lists it. One status covers every line, as
        for a client reading the API: completed shipped everything; cancelled, failed and a
        refund before completion cancelled everything. No returns: ``restocked`` is 0."""
        shipped, cancelled = self.shipped, not self.shipped and self.status in ENDED
        lines = [{"sku": i.sku, "quantity": i.quantity,
                  "shipped": i.quantity if shipped else 0,
                  "cancelled": i.quantity if cancelled else 0, "restocked": 0}
                 for i in self.line_items]
        shipments = [s for s in (shipment_in(n.note) for n in self.notes) if s is not None]
        buyer = {"name": " ".join(n for n in self.buyer if n), "email": self.email or None,
                 "id": None}  # a guest: customer_id 0
        return {"order_id": str(self.id), "status": self.status, "lines": lines,
                "shipments": shipments, "buyer": buyer}


def earlier(order: Order) -> Order | None:
    """The order before its latest change (None: never changed since it was placed)."""
    return order.previous
