"""Orders API 2026-01-01: the searchOrders query, its page token, and order -> line snapshots.

An order's status is ``fulfillment.fulfillmentStatus`` (sent with ``includedData=FULFILLMENT``);
each order item is one line. The Orders v0 spellings (``Pending``, ``PartiallyShipped``,
``Canceled``, ``InvoiceUnconfirmed``) are understood too.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal, TypeGuard

from channelsync.connector import BadRecord, OrderLineSnapshot
from connectors._time import format_utc
from connectors._time import parse_utc as parse_time

PAGE_SIZE = 100  # maxResultsPerPage: Amazon's maximum
ORDER_QUERY: dict[str, Any] = {
    "fulfilledBy": ["MERCHANT"],  # Amazon's own (FBA) orders hold none of our stock
    "maxResultsPerPage": PAGE_SIZE,
    "includedData": ["FULFILLMENT"],  # the status and each item's shipped quantity
}

Outcome = Literal["open", "partial", "shipped", "cancelled", "ignore"]
STATUS_OUTCOME: dict[str, Outcome] = {
    "PENDING_AVAILABILITY": "open",  # a pre-order: Amazon has already taken the unit
    "PENDING": "open",  # payment not yet authorised; can last days
    "UNSHIPPED": "open",
    "PARTIALLY_SHIPPED": "partial",
    "SHIPPED": "shipped",
    "INVOICE_UNCONFIRMED": "shipped",  # v0: shipped, invoice not yet confirmed
    "CANCELLED": "cancelled",
    "CANCELED": "cancelled",  # v0 spelling
    "UNFULFILLABLE": "ignore",  # only for Amazon-fulfilled orders placed off Amazon
}
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


@dataclass(frozen=True)
class Position:
    """Where a pull stands, encoded as the engine's page string so that every page is asked
    with the same parameters: the query's ``lastUpdatedAfter``, Amazon's page token, the
    newest update seen so far and (as short hashes) the orders seen on earlier pages.

    Amazon does not say how searchOrders sorts or whether a page token pins a snapshot. If
    an order seen on an earlier page comes again, it changed while we paged and may have
    pushed another order back onto a page already read: the pull then lets the cursor move
    only to the start of its window, so that the next pull reads it all again.
    """

    after: str
    token: str | None = None
    newest: datetime | None = None
    seen: frozenset[str] = frozenset()
    moved: bool = False

    @classmethod
    def first(cls, since: datetime) -> Position:
        return cls(amazon_time(since))

    @classmethod
    def decode(cls, page: str) -> Position | None:
        try:
            raw = json.loads(page)
            after, token, newest = raw["after"], raw["token"], raw.get("newest")
            seen, moved = raw.get("seen", ""), raw.get("moved", False)
        except (ValueError, TypeError, KeyError, AttributeError):
            return None
        if not isinstance(after, str) or parse_time(after) is None or not _text(token) \
                or not isinstance(seen, str) or not isinstance(moved, bool):
            return None
        newest_at = parse_time(newest) if isinstance(newest, str) else None
        return cls(after, token, newest_at, frozenset(filter(None, seen.split(","))), moved)

    def encode(self) -> str:
        return json.dumps({
            "after": self.after, "token": self.token, "moved": self.moved,
            "newest": self.newest.isoformat() if self.newest else None,
            "seen": ",".join(sorted(self.seen)),
        }, separators=(",", ":"))

    def query(self, marketplace_id: str) -> dict[str, Any]:
        params = {**ORDER_QUERY, "lastUpdatedAfter": self.after, "marketplaceIds": [marketplace_id]}
        if self.token:
            params["paginationToken"] = self.token
        return params

    def then(self, raw_orders: Sequence[Any], newest: datetime | None) -> Position:
        """The position after a page of these orders."""
        ids = {_short(o["orderId"]) for o in raw_orders
               if isinstance(o, dict) and _text(o.get("orderId"))}
        moved = self.moved or bool(ids & self.seen)
        seen = frozenset() if moved else self.seen | ids  # once moved, no longer needed
        return replace(self, newest=latest(self.newest, newest), seen=seen, moved=moved)

    def resume_at(self) -> datetime | None:
        """Where the cursor may move once the last page is applied."""
        return parse_time(self.after) if self.moved else self.newest


def parse_orders(
    raw_orders: Sequence[Any],
) -> tuple[list[OrderLineSnapshot], list[BadRecord], datetime | None]:
    """Every line of a page, the records that could not be read, and the newest update."""
    lines: list[OrderLineSnapshot] = []
    bad: list[BadRecord] = []
    newest: datetime | None = None
    for raw in raw_orders:
        order_lines, order_bad, changed_at = parse_order(raw)
        lines += order_lines
        bad += order_bad
        newest = latest(newest, changed_at)
    return lines, bad, newest


def parse_order(raw: Any) -> tuple[list[OrderLineSnapshot], list[BadRecord], datetime | None]:
    if not isinstance(raw, dict) or not _text(raw.get("orderId")):
        return [], [BadRecord("order without an orderId", "?", raw)], None
    key = raw["orderId"]
    changed_at = parse_time(raw.get("lastUpdatedTime"))
    if changed_at is None:
        return [], [BadRecord("order without a valid lastUpdatedTime", key, raw)], None
    order = _order(key, changed_at, raw.get("fulfillment"))
    items = raw.get("orderItems")
    if isinstance(order, str):
        return [], [BadRecord(order, key, raw)], changed_at
    if not isinstance(items, list):
        return [], [BadRecord("order without orderItems", key, raw)], changed_at
    parsed = [order.line(item) for item in items]
    lines = [p for p in parsed if isinstance(p, OrderLineSnapshot)]
    return lines, [p for p in parsed if isinstance(p, BadRecord)], changed_at


def _order(order_id: str, changed_at: datetime, fulfillment: Any) -> _Order | str:
    """The order's status and who fulfils it (``fulfillment``), or why it cannot be read."""
    if not isinstance(fulfillment, dict):
        return "order without fulfillment (asked with includedData=FULFILLMENT)"
    status = fulfillment.get("fulfillmentStatus")
    outcome = STATUS_OUTCOME.get(normal_status(status)) if isinstance(status, str) else None
    if outcome is None or not isinstance(status, str):
        return f"order with unknown status {status!r}"
    return _Order(order_id, status, outcome, changed_at, fulfillment.get("fulfilledBy") == "AMAZON")


@dataclass(frozen=True)
class _Order:
    order_id: str
    status: str
    outcome: Outcome
    changed_at: datetime
    by_amazon: bool

    def line(self, raw: Any) -> OrderLineSnapshot | BadRecord:
        if not isinstance(raw, dict) or not _text(raw.get("orderItemId")):
            return BadRecord("order item without an orderItemId", f"{self.order_id}/?", raw)
        key = f"{self.order_id}/{raw['orderItemId']}"
        product = raw.get("product")
        sku = product.get("sellerSku") if isinstance(product, dict) else None
        ordered = raw.get("quantityOrdered")
        if not _text(sku):
            return BadRecord("order item without product.sellerSku", key, raw)
        if not _count(ordered):
            return BadRecord(f"quantityOrdered {ordered!r} is not a whole number >= 0", key, raw)
        shipped = self._shipped(raw, ordered)
        return OrderLineSnapshot(
            order_id=self.order_id,
            line_id=raw["orderItemId"],
            channel_sku=sku,
            ordered=ordered,
            status=self.status,
            changed_at=self.changed_at,
            shipped=shipped,
            cancelled=ordered - shipped if self.outcome == "cancelled" else 0,
            ignore=self.by_amazon or self.outcome == "ignore",
        )

    def _shipped(self, raw: dict[str, Any], ordered: int) -> int:
        if self.outcome == "shipped":
            return ordered
        if self.outcome in ("partial", "cancelled"):  # what left before a cancellation stays
            return fulfilled(raw.get("fulfillment"), ordered)
        return 0


def fulfilled(fulfillment: Any, ordered: int) -> int:
    """The units of an item already shipped: ``quantityFulfilled`` (or ordered minus
    ``quantityUnfulfilled``); 0 when Amazon says neither, which keeps them reserved."""
    if not isinstance(fulfillment, dict):
        return 0
    done, left = fulfillment.get("quantityFulfilled"), fulfillment.get("quantityUnfulfilled")
    if _count(done):
        return min(done, ordered)
    if _count(left):
        return max(0, ordered - left)
    return 0


def normal_status(status: str) -> str:
    """``PartiallyShipped`` (v0) and ``PARTIALLY_SHIPPED`` (2026-01-01) alike."""
    return _CAMEL.sub("_", status.strip()).upper()


def amazon_time(moment: datetime) -> str:
    """ISO 8601 in UTC ending in ``Z``, whole seconds (rounded down: the query stays inclusive)."""
    return format_utc(moment, "%Y-%m-%dT%H:%M:%SZ")


def latest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)


def _short(order_id: str) -> str:
    return hashlib.blake2b(order_id.encode(), digest_size=5).hexdigest()


def _text(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value.strip())


def _count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
