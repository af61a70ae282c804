"""The WooCommerce emulator's orders: the order, the copy of itself it keeps for stale pages,
and its row for ``GET /_sandbox/orders``.

An order changes only by its status, so a copy of the order taken just before a status change
is the version a stale page shows. Line items never change once placed, so the copy shares
them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

__all__ = ["LineItem", "Order", "earlier"]

# Statuses whose units never leave (or no longer wait for) the shelf. A checkout draft is a
# cart, not a sale: it holds nothing, and a client reading the API ignores it.
ENDED = frozenset({"cancelled", "failed", "refunded", "checkout-draft"})


@dataclass
class LineItem:
    id: int
    product_id: int
    variation_id: int
    sku: str
    quantity: int
    name: str


@dataclass
class Order:
    id: int
    status: str
    created: datetime
    modified: datetime
    line_items: list[LineItem]
    stock_reduced: bool = False  # WooCommerce's _order_stock_reduced flag
    completed: datetime | None = None
    # as it was before its latest status change, for a page that shows it stale
    previous: Order | None = field(default=None, repr=False, compare=False)

    def keep_previous(self) -> None:
        self.previous = replace(self, previous=None)

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
        return {"order_id": str(self.id), "status": self.status, "lines": lines,
                "shipments": [], "buyer": None}


def earlier(order: Order) -> Order | None:
    """The order before its latest change (None: never changed since it was placed)."""
    return order.previous
