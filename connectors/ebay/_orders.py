"""eBay GetOrders orders as the ledger's line snapshots and the book's ``OrderSnapshot``
(pure functions, no I/O), as ebaysdk reads them: every leaf a string (times naive UTC
datetimes), one child a value and several a list.

What an order gives the book besides its status, times and total:
- buyer: ``BuyerUserID``, eBay's public user name, shown and kept as the buyer's id
  (``buyer_id``). A user may rename themselves (the old name answers for 30 days), so the same
  buyer can come back under a new id;
- buyer_email: a transaction's ``Buyer/Email``, as eBay gives it to the seller for a limited
  time after the sale (unspecified by the Trading API; 14 days in the Fulfillment API's
  documentation); after that eBay sends "Invalid Request" in its place, which is no email;
- shipped_at: the first shipping time, the order's ``ShippedTime`` or an earlier one of a
  transaction (eBay marks lines shipped one by one);
- delivered_at: ``ShippingServiceSelected/ShippingPackageInfo/ActualDeliveryTime``, once
  every package of the order has one (the latest of them).
The buyer's name, address, email and phone never reach a bad record (``impersonal``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from channelsync.connector import BadRecord, OrderLineSnapshot, OrderSnapshot
from connectors._time import parse_utc
from connectors.ebay._adapter import as_list, child

__all__ = ["ORDER_NODES", "aware", "impersonal", "order_snapshot", "order_state", "parse_order",
           "text_of", "time_of"]

CANCELLED = frozenset({"CancelComplete", "CancelClosedWithRefund"})
# What order_state's answer means for the order book (connector.CHANNEL_STAGES). A buyer's
# cancellation request (OrderStatus CancelPending) is not a cancellation until eBay says
# Cancelled: till then the order is paid or not as its payment says. Returns and refunds
# (a transaction's Status.ReturnStatus, MonetaryDetails.Refunds) are not read: the emulator
# produces none, so "returned" is never given.
STATE_STAGE = {"unpaid": "received", "paid": "paid", "shipped": "shipped",
               "cancelled": "cancelled"}
# Where eBay puts the buyer's name, address, email and phone: never kept, not even in a bad
# record's copy of an order or a transaction.
PERSONAL_ORDER_FIELDS = frozenset({"ShippingAddress", "BuyerCheckoutMessage",
                                   "BuyerTaxIdentifier", "MultiLegShippingDetails"})
PERSONAL_TRANSACTION_FIELDS = frozenset({"Buyer", "BuyerCheckoutMessage"})
_AMOUNT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_CURRENCY = re.compile(r"[A-Z]{3}")
ORDER_NODES = ["OrderArray.Order", "OrderArray.Order.TransactionArray.Transaction"]


def parse_order(raw: Any) -> tuple[list[OrderLineSnapshot], list[BadRecord]]:
    """An order's line snapshots and the records that could not be read."""
    order_id = text_of(child(raw, "OrderID"))
    if not order_id:
        return [], [BadRecord("order without an OrderID", "?", impersonal(raw))]
    changed_at = _changed_at(raw)
    if changed_at is None:
        return [], [BadRecord("order without a valid LastModifiedTime", order_id,
                              impersonal(raw))]
    status = order_state(raw)
    transactions = as_list(child(raw, "TransactionArray", "Transaction"))
    if not transactions:
        return [], [BadRecord("order without transactions", order_id, impersonal(raw))]
    lines: list[OrderLineSnapshot] = []
    bad: list[BadRecord] = []
    for tx in transactions:
        line = _parse_line(order_id, status, changed_at, tx)
        if isinstance(line, OrderLineSnapshot):
            lines.append(line)
        else:
            bad.append(line)
    return lines, bad


def order_snapshot(raw: Any, bad: Sequence[BadRecord] = ()) -> OrderSnapshot | None:
    """The order as a whole (see the module's docstring), for one whose lines were read
    (None for an order refused whole: ``bad`` holds a record keyed by its id). A header
    field that cannot be read is left empty: the order and its lines still count. The buyer
    shown is the BuyerUserID, and nothing else: never the shipping address or phone."""
    order_id = text_of(child(raw, "OrderID"))
    changed_at = _changed_at(raw) if order_id else None
    if changed_at is None or any(record.key == order_id for record in bad):
        return None
    total, currency = _amount(child(raw, "Total"))
    transactions = as_list(child(raw, "TransactionArray", "Transaction"))
    user = text_of(child(raw, "BuyerUserID"))
    return OrderSnapshot(
        order_id=order_id,
        status=text_of(child(raw, "OrderStatus")),
        stage=STATE_STAGE[order_state(raw)],
        changed_at=changed_at,
        placed_at=time_of(child(raw, "CreatedTime")),
        paid_at=time_of(child(raw, "PaidTime")),
        buyer=user,
        total=total,
        currency=currency,
        buyer_email=next(filter(None, (_email(tx) for tx in transactions)), ""),
        buyer_id=user,
        shipped_at=_shipped_at(raw, transactions),
        delivered_at=_delivered_at(raw),
    )


def impersonal(raw: Any) -> Any:
    """An order as a bad record keeps it: without the buyer's address, email and phone."""
    if not isinstance(raw, dict):
        return raw
    kept = {k: v for k, v in raw.items() if k not in PERSONAL_ORDER_FIELDS}
    transactions = child(raw, "TransactionArray", "Transaction")
    if transactions is not None:
        cleaned = [_impersonal_tx(tx) for tx in as_list(transactions)]
        kept["TransactionArray"] = {**raw["TransactionArray"], "Transaction": (
            cleaned if isinstance(transactions, list) else cleaned[0])}
    return kept


def order_state(raw: Any) -> str:
    """cancelled (release), shipped (commit), paid or unpaid (both reserve)."""
    if text_of(child(raw, "OrderStatus")) == "Cancelled" or \
            text_of(child(raw, "CancelStatus")) in CANCELLED:
        return "cancelled"
    if child(raw, "ShippedTime"):
        return "shipped"
    checkout = text_of(child(raw, "CheckoutStatus", "Status"))
    if checkout in ("Incomplete", "Pending") or not child(raw, "PaidTime"):
        return "unpaid"
    return "paid"


def text_of(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def time_of(value: Any) -> datetime | None:
    """ebaysdk's times: text, or a naive datetime in UTC."""
    if isinstance(value, datetime):
        return aware(value)
    return parse_utc(value)


def aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _email(tx: Any) -> str:
    """A transaction's Buyer/Email as eBay gives it ("Invalid Request" is none)."""
    email = text_of(child(tx, "Buyer", "Email"))
    return email if "@" in email else ""


def _shipped_at(raw: Any, transactions: list[Any]) -> datetime | None:
    times = [time_of(child(raw, "ShippedTime")),
             *(time_of(child(tx, "ShippedTime")) for tx in transactions)]
    return min((t for t in times if t is not None), default=None)


def _delivered_at(raw: Any) -> datetime | None:
    packages = as_list(child(raw, "ShippingServiceSelected", "ShippingPackageInfo"))
    times = [time_of(child(p, "ActualDeliveryTime")) for p in packages]
    if not times or None in times:
        return None  # not every package is delivered (or none is known)
    return max(t for t in times if t is not None)


def _impersonal_tx(tx: Any) -> Any:
    if not isinstance(tx, dict):
        return tx
    return {k: v for k, v in tx.items() if k not in PERSONAL_TRANSACTION_FIELDS}


def _changed_at(raw: Any) -> datetime | None:
    return time_of(child(raw, "LastModifiedTime")) or time_of(
        child(raw, "CheckoutStatus", "LastModifiedTime"))


def _amount(node: Any) -> tuple[str, str]:
    """An AmountType as ebaysdk reads it (``{"value": "25.98", "_currencyID": "USD"}``):
    (amount, currency), each empty when missing or malformed."""
    value = node.get("value") if isinstance(node, dict) else node
    currency = node.get("_currencyID") if isinstance(node, dict) else None
    amount = text_of(value)
    code = text_of(currency)
    return (amount if _AMOUNT.fullmatch(amount) else "",
            code if _CURRENCY.fullmatch(code) else "")


def _parse_line(order_id: str, status: str, changed_at: datetime,
                tx: Any) -> OrderLineSnapshot | BadRecord:
    line_id = text_of(child(tx, "OrderLineItemID"))
    if not line_id:
        return BadRecord("transaction without an OrderLineItemID", f"{order_id}/?",
                         _impersonal_tx(tx))
    key = f"{order_id}/{line_id}"
    sku = text_of(child(tx, "Variation", "SKU")) or text_of(child(tx, "Item", "SKU"))
    quantity = text_of(child(tx, "QuantityPurchased"))
    if not sku:
        return BadRecord("transaction without a SKU", key, _impersonal_tx(tx))
    if not quantity.isdigit():
        return BadRecord(f"QuantityPurchased {quantity!r} is not a whole number", key,
                         _impersonal_tx(tx))
    ordered = int(quantity)
    shipped = status == "shipped" or bool(child(tx, "ShippedTime"))  # eBay ships whole lines
    return OrderLineSnapshot(
        order_id=order_id, line_id=line_id, channel_sku=sku, ordered=ordered, status=status,
        changed_at=changed_at,
        shipped=ordered if shipped else 0,
        cancelled=ordered if status == "cancelled" and not shipped else 0,
    )
