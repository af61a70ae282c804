"""Orders API 2026-01-01: the searchOrders query, its page token, and order -> line snapshots
and one ``OrderSnapshot`` per order.

An order's status is ``fulfillment.fulfillmentStatus`` (sent with ``includedData=FULFILLMENT``);
each order item is one line. The Orders v0 spellings (``Pending``, ``PartiallyShipped``,
``Canceled``, ``InvoiceUnconfirmed``) are understood too.

What the 2026-01-01 model offers for an order as a whole, and what is taken of it:
- placed: ``createdTime``; changed: ``lastUpdatedTime``.
- paid: nothing. The model has no payment time (``payment.paymentExecutions`` carry method
  and amount only) and no time of the move from PENDING to UNSHIPPED, which is when Amazon
  has authorised the payment. ``paid_at`` stays None rather than guessing from
  ``createdTime`` or ``lastUpdatedTime`` (any later change moves the latter).
- buyer: ``buyer.buyerName`` and ``buyer.buyerEmail``, in the BUYER dataset. Amazon counts
  both as the buyer's personal data (PII): no Restricted Data Token is needed in 2026-01-01,
  but they are served only to apps holding a restricted role (the name: Tax Invoicing or Tax
  Remittance; the email: Direct-to-Consumer Delivery, merchant-fulfilled orders only) and only
  once an order is UNSHIPPED or later. The email is Amazon's anonymised relay address
  (``...@marketplace.amazon.com``), the same for the same buyer: it recognises a returning
  Amazon buyer but never matches another channel's. BUYER is asked for only when the channel's
  ``buyer_data`` setting allows it (``DATASETS``); otherwise ``buyer`` and ``buyer_email`` stay
  empty. The model has no buyer id: ``buyer_id`` stays empty.
- total: the order-level amount of the model is ``proceeds.grandTotal``, in the PROCEEDS
  dataset, which the query does not ask for (it asks FULFILLMENT only); it is read when an
  answer has it. Otherwise the total is the sum of the items' ``product.price.unitPrice`` x
  ``quantityOrdered`` (what the buyer pays for the goods, without shipping or tax), in their
  currency; Amazon shows no prices while an order is PENDING, so then it stays empty.
- shipped: the PACKAGES dataset (asked for: it holds no personal data): the earliest
  ``shipTime`` of the order's packages (a package confirmed without one, or an order marked
  shipped without a package, gives none).
- delivered: not given. A package's ``packageStatus.status`` can say DELIVERED, but the model
  has no time of delivery anywhere (the book assumes one some days after shipping).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, TypeGuard

from channelsync.connector import BadRecord, OrderLineSnapshot, OrderSnapshot
from connectors._time import format_utc
from connectors._time import parse_utc as parse_time

PAGE_SIZE = 100  # maxResultsPerPage: Amazon's maximum
ORDER_QUERY: dict[str, Any] = {
    "fulfilledBy": ["MERCHANT"],  # Amazon's own (FBA) orders hold none of our stock
    "maxResultsPerPage": PAGE_SIZE,
}
# includedData: the status and each item's shipped quantity, and the packages (ship times);
# with the buyer_data setting, the buyer too (restricted: see the module's docstring).
DATASETS = ("FULFILLMENT", "PACKAGES")
BUYER_DATASETS = (*DATASETS, "BUYER")

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
# What each status means for the order book (connector.CHANNEL_STAGES). UNFULFILLABLE (an
# Amazon-fulfilled order placed off Amazon) is none of them: such an order has no snapshot.
STATUS_STAGE: dict[str, str] = {
    "PENDING_AVAILABILITY": "received",  # a pre-order, payment not yet authorised
    "PENDING": "received",
    "UNSHIPPED": "paid",  # payment authorised, ready to ship
    "PARTIALLY_SHIPPED": "paid",  # the book tells partly shipped from the lines
    "SHIPPED": "shipped",
    "INVOICE_UNCONFIRMED": "shipped",
    "CANCELLED": "cancelled",
    "CANCELED": "cancelled",
}
# Where the 2026-01-01 model puts the buyer's personal data (none of it is asked for): never
# kept, not even in a bad record's copy of an order or an item.
PERSONAL_ORDER_FIELDS = frozenset({"buyer", "recipient"})
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_AMOUNT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_CURRENCY = re.compile(r"[A-Z]{3}")


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

    def query(self, marketplace_id: str, datasets: Sequence[str] = DATASETS) -> dict[str, Any]:
        params = {**ORDER_QUERY, "lastUpdatedAfter": self.after,
                  "marketplaceIds": [marketplace_id], "includedData": list(datasets)}
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


@dataclass(frozen=True)
class Parsed:
    """A page of orders read: their lines, the orders as wholes, what could not be read,
    and the newest update."""

    lines: list[OrderLineSnapshot]
    orders: list[OrderSnapshot]
    bad: list[BadRecord]
    newest: datetime | None


def parse_orders(
    raw_orders: Sequence[Any],
) -> tuple[list[OrderLineSnapshot], list[BadRecord], datetime | None]:
    """Every line of a page, the records that could not be read, and the newest update."""
    parsed = parse_page(raw_orders)
    return parsed.lines, parsed.bad, parsed.newest


def parse_page(raw_orders: Sequence[Any]) -> Parsed:
    lines: list[OrderLineSnapshot] = []
    headers: list[OrderSnapshot] = []
    bad: list[BadRecord] = []
    newest: datetime | None = None
    for raw in raw_orders:
        order_lines, order_bad, changed_at = parse_order(raw)
        lines += order_lines
        bad += order_bad
        newest = latest(newest, changed_at)
        header = order_snapshot(raw, order_bad)
        if header is not None:
            headers.append(header)
    return Parsed(lines, headers, bad, newest)


def parse_order(raw: Any) -> tuple[list[OrderLineSnapshot], list[BadRecord], datetime | None]:
    if not isinstance(raw, dict) or not _text(raw.get("orderId")):
        return [], [BadRecord("order without an orderId", "?", impersonal(raw))], None
    key = raw["orderId"]
    changed_at = parse_time(raw.get("lastUpdatedTime"))
    if changed_at is None:
        return [], [BadRecord("order without a valid lastUpdatedTime", key,
                              impersonal(raw))], None
    order = _order(key, changed_at, raw.get("fulfillment"))
    items = raw.get("orderItems")
    if isinstance(order, str):
        return [], [BadRecord(order, key, impersonal(raw))], changed_at
    if not isinstance(items, list):
        return [], [BadRecord("order without orderItems", key, impersonal(raw))], changed_at
    parsed = [order.line(item) for item in items]
    lines = [p for p in parsed if isinstance(p, OrderLineSnapshot)]
    return lines, [p for p in parsed if isinstance(p, BadRecord)], changed_at


def order_snapshot(raw: Any, bad: Sequence[BadRecord] = ()) -> OrderSnapshot | None:
    """The order as a whole (see the module's docstring for what is read), for one whose
    lines were read: None for an order refused whole (``bad`` holds a record keyed by its
    id) or one no stage fits. A header field that cannot be read is left empty: the order
    and its lines still count."""
    if not isinstance(raw, dict) or not _text(raw.get("orderId")):
        return None
    order_id = raw["orderId"]
    changed_at = parse_time(raw.get("lastUpdatedTime"))
    fulfillment = raw.get("fulfillment")
    status = fulfillment.get("fulfillmentStatus") if isinstance(fulfillment, dict) else None
    stage = STATUS_STAGE.get(normal_status(status)) if isinstance(status, str) else None
    if changed_at is None or stage is None or not isinstance(status, str) or any(
            record.key == order_id for record in bad):
        return None
    total, currency = order_total(raw)
    buyer = raw.get("buyer")
    name, email = (buyer.get("buyerName"), buyer.get("buyerEmail")) if isinstance(
        buyer, dict) else (None, None)
    return OrderSnapshot(
        order_id=order_id,
        status=status,
        stage=stage,
        changed_at=changed_at,
        placed_at=parse_time(raw.get("createdTime")),
        paid_at=None,  # the model has no payment time (see the module's docstring)
        buyer=" ".join(name.split()) if isinstance(name, str) else "",  # only if asked
        total=total,
        currency=currency,
        buyer_email=email if isinstance(email, str) and "@" in email else "",  # the relay
        shipped_at=shipped_at(raw.get("packages")),
    )


def shipped_at(packages: Any) -> datetime | None:
    """The earliest ``shipTime`` of the order's packages (a cancelled one aside)."""
    times = [parse_time(p.get("shipTime")) for p in packages if isinstance(p, dict)
             and _status_of(p) != "CANCELLED"] if isinstance(packages, list) else []
    return min((t for t in times if t is not None), default=None)


def _status_of(package: dict[str, Any]) -> Any:
    status = package.get("packageStatus")
    return status.get("status") if isinstance(status, dict) else None


def order_total(raw: dict[str, Any]) -> tuple[str, str]:
    """(amount, currency): ``proceeds.grandTotal`` when the answer has it, else the sum of
    the items' unit prices times their quantities; ("", "") when neither can be read."""
    proceeds = raw.get("proceeds")
    grand = money(proceeds.get("grandTotal")) if isinstance(proceeds, dict) else None
    if grand is not None:
        return grand
    items = raw.get("orderItems")
    if not isinstance(items, list) or not items:
        return "", ""
    total, currencies = Decimal(0), set()
    for item in items:
        product = item.get("product") if isinstance(item, dict) else None
        price = product.get("price") if isinstance(product, dict) else None
        unit = money(price.get("unitPrice")) if isinstance(price, dict) else None
        quantity = item.get("quantityOrdered") if isinstance(item, dict) else None
        if unit is None or not _count(quantity):
            return "", ""
        total += Decimal(unit[0]) * quantity
        currencies.add(unit[1])
    if len(currencies) != 1:
        return "", ""
    return format(total, "f"), currencies.pop()


def money(raw: Any) -> tuple[str, str] | None:
    """A Money object's (amount, currencyCode), or None when either is missing or malformed."""
    if not isinstance(raw, dict):
        return None
    amount, currency = raw.get("amount"), raw.get("currencyCode")
    if not isinstance(amount, str) or not _AMOUNT.fullmatch(amount) \
            or not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        return None
    return amount, currency


def impersonal(raw: Any) -> Any:
    """An order as a bad record keeps it: without its buyer and recipient data sets, and
    its items without the buyer's gift message or customisation."""
    if not isinstance(raw, dict):
        return raw
    kept = {k: v for k, v in raw.items() if k not in PERSONAL_ORDER_FIELDS}
    if isinstance(raw.get("orderItems"), list):
        kept["orderItems"] = [impersonal_item(item) for item in raw["orderItems"]]
    return kept


def impersonal_item(raw: Any) -> Any:
    """An order item without ``product.customization`` or ``fulfillment.packing.giftOption``
    (Amazon counts the customised URL and the gift message as the buyer's personal data)."""
    if not isinstance(raw, dict):
        return raw
    kept = dict(raw)
    product, fulfillment = raw.get("product"), raw.get("fulfillment")
    if isinstance(product, dict) and "customization" in product:
        kept["product"] = {k: v for k, v in product.items() if k != "customization"}
    packing = fulfillment.get("packing") if isinstance(fulfillment, dict) else None
    if isinstance(fulfillment, dict) and isinstance(packing, dict) and "giftOption" in packing:
        kept["fulfillment"] = {**fulfillment, "packing": {
            k: v for k, v in packing.items() if k != "giftOption"}}
    return kept


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
            return BadRecord("order item without an orderItemId", f"{self.order_id}/?",
                             impersonal_item(raw))
        key = f"{self.order_id}/{raw['orderItemId']}"
        product = raw.get("product")
        sku = product.get("sellerSku") if isinstance(product, dict) else None
        ordered = raw.get("quantityOrdered")
        if not _text(sku):
            return BadRecord("order item without product.sellerSku", key, impersonal_item(raw))
        if not _count(ordered):
            return BadRecord(f"quantityOrdered {ordered!r} is not a whole number >= 0", key,
                             impersonal_item(raw))
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
