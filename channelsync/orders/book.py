"""Recording orders in the book, and what stage each is at.

A pull brings order lines (stock: the ledger) and, where the connector gives them, the
orders as wholes (``OrderSnapshot``: status, times, buyer, total). Both are recorded in
the pull's own transaction, so the book never disagrees with the stock it explains.
A stage is worked out from three things, the channel's word being only one of them:
- the units of the order's lines: shipped ones make it shipped (partly or fully) whatever
  the channel's status says;
- the channel's stage: paid, shipped, delivered, cancelled, returned;
- the seller's own step in between (picked, packed), set by the pick and pack commands,
  which a later pull saying "paid" again does not undo.
Every change of stage is an event with its time and what caused it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from channelsync.connector import OrderSnapshot
from channelsync.ledger.apply import chunks
from channelsync.ledger.schema import line_t
from channelsync.orders.schema import event_t, order_t

# In the order an order goes through them; the last two end it another way.
STAGES = ("received", "paid", "picked", "packed", "partly_shipped", "shipped", "delivered",
          "cancelled", "returned")
LOCAL_STAGES = ("picked", "packed")
OPEN_STAGES = ("received", "paid", "picked", "packed", "partly_shipped")
SHIPPED_STAGES = ("partly_shipped", "shipped", "delivered")


def stage_label(stage: str) -> str:
    return "shipped (partly)" if stage == "partly_shipped" else stage


def parse_stage(text: str) -> str:
    """A stage as a seller types it: 'partly-shipped', 'Shipped', ..."""
    stage = text.strip().lower().replace("-", "_").replace(" ", "_")
    if stage not in STAGES:
        raise ValueError(f"unknown stage {text!r}; stages: {', '.join(STAGES)}")
    return stage


@dataclass(frozen=True)
class Units:
    ordered: int = 0
    shipped: int = 0
    cancelled: int = 0


def stage_of(channel_stage: str, local_stage: str, units: Units, delivered: bool = False) -> str:
    """The stage a seller sees (see the module's docstring). ``delivered``: the order has a
    delivery time (the channel's, or assumed some days after shipping)."""
    stage = _stage(channel_stage, local_stage, units)
    return "delivered" if delivered and stage == "shipped" else stage


def _stage(channel_stage: str, local_stage: str, units: Units) -> str:
    open_units = units.ordered - units.cancelled
    if channel_stage == "returned" and (units.shipped > 0 or units.ordered == 0):
        return "returned"  # refunded before anything shipped is cancelled, below
    if channel_stage == "returned":
        channel_stage = "cancelled"
    if channel_stage == "cancelled" or (units.ordered > 0 and open_units <= 0):
        if units.shipped > 0 and open_units > 0:  # cancelled after part of it shipped
            return "shipped" if units.shipped >= open_units else "partly_shipped"
        # Units that left before the cancellation came back, or were never going to.
        return "returned" if units.shipped > 0 else "cancelled"
    if channel_stage == "delivered":
        return "delivered"
    if open_units > 0 and units.shipped >= open_units:
        return "shipped"
    if units.shipped > 0:
        return "partly_shipped"
    if channel_stage == "shipped":
        return "shipped"
    if local_stage in LOCAL_STAGES:
        return local_stage
    return channel_stage or "received"


def record(
    conn: Connection,
    channel: str,
    headers: Sequence[OrderSnapshot],
    order_ids: Iterable[str],
    *,
    now: datetime,
    clock_offset: timedelta = timedelta(0),
    source: str = "channel",
) -> int:
    """Record a pulled page's orders: their headers, their lines' units, their stage.
    Returns how many changed stage."""
    by_id = {h.order_id: h for h in headers}
    ids = sorted(set(order_ids) | set(by_id))
    changed = 0
    for chunk in chunks(ids):
        existing = _rows(conn, channel, chunk)
        units = _units(conn, channel, chunk)
        inserts, updates, events = [], [], []
        for order_id in chunk:
            header, row = by_id.get(order_id), existing.get(order_id)
            if order_id not in units and row is None:
                continue  # only lines the ledger ignores (a draft, stock the channel ships)
            values = _header_values(header, clock_offset) if header else {}
            if row is not None and values and _older(values, row):
                values = {}  # a stale page: the book has a newer word from the channel
            if row is not None and row["buyer_forgotten"]:
                values.pop("buyer", None)  # erased on the seller's word: not from a re-read
            count = units.get(order_id, Units())
            values.update(ordered=count.ordered, shipped=count.shipped,
                          cancelled=count.cancelled)
            channel_stage = values.get("channel_stage", row["channel_stage"] if row else "")
            local = row["local_stage"] if row else ""
            _delivery(values, row)
            delivered = (values.get("delivered_at") or (row and row["delivered_at"])) is not None
            stage = stage_of(channel_stage, local, count, delivered)
            values["stage"] = stage
            before = row["stage"] if row else ""
            if stage in SHIPPED_STAGES and not values.get("shipped_at") and not (
                    row and row["shipped_at"]):
                values["shipped_at"] = now  # the channel gave no time: when the book saw it
            if row is None:
                inserts.append({"channel": channel, "order_id": order_id, "local_stage": "",
                                "first_seen_at": now, "updated_at": now, **_blank(),
                                **values})
            elif any(row[k] != v for k, v in values.items()):
                updates.append({"b_id": row["id"], "updated_at": now, **values})
            if stage != before:
                changed += 1
                events.append({"channel": channel, "order_id": order_id, "stage": stage,
                               "previous": before, "at": now, "source": source,
                               "detail": header.status if header else ""})
        if inserts:
            conn.execute(order_t.insert(), inserts)
        for update in updates:  # the columns differ from row to row
            row_id = update.pop("b_id")
            conn.execute(order_t.update().where(order_t.c.id == row_id).values(**update))
        if events:
            conn.execute(event_t.insert(), events)
    return changed


def set_local_stage(
    conn: Connection, channel: str, order_id: str, stage: str, *, now: datetime,
    source: str = "cli", detail: str = "",
) -> str:
    """The seller's own step (picked, packed). Returns the order's stage after it."""
    if stage not in LOCAL_STAGES:
        raise ValueError(f"{stage!r} is not a step of the seller's")
    row = _rows(conn, channel, [order_id], lock=True).get(order_id)
    if row is None:
        raise LookupError(f"no order {order_id!r} on {channel!r} in the book")
    new = stage_of(row["channel_stage"], stage, Units(row["ordered"], row["shipped"],
                                                      row["cancelled"]),
                   row["delivered_at"] is not None)
    conn.execute(order_t.update().where(order_t.c.id == row["id"]).values(
        local_stage=stage, stage=new, updated_at=now))
    if new != row["stage"]:
        conn.execute(event_t.insert().values(channel=channel, order_id=order_id, stage=new,
                                             previous=row["stage"], at=now, source=source,
                                             detail=detail))
    return new


def _delivery(values: dict[str, Any], row: dict[str, Any] | None) -> None:
    """The channel's shipped and delivered times: only given ones are written (a page that
    has none does not erase them), and a delivered time is the channel's own from then on."""
    for key in ("shipped_at", "delivered_at"):
        if values.get(key) is None:
            values.pop(key, None)
    if "delivered_at" in values:
        values["delivered_source"] = "channel"
    if row is not None and row["shipped_at"] is not None:
        values.pop("shipped_at", None)  # the first time it shipped stays


def assume_delivered(
    conn: Connection, channel: str, days: float, *, now: datetime, source: str = "assumed",
) -> int:
    """Orders of a channel shipped ``days`` ago with no delivery time from the channel count
    as delivered then (``assume_delivered_after``). Returns how many."""
    cutoff = now - timedelta(days=days)
    rows = conn.execute(sa.select(order_t.c.id, order_t.c.order_id, order_t.c.shipped_at)
                        .where(order_t.c.channel == channel, order_t.c.stage == "shipped",
                               order_t.c.delivered_at.is_(None),
                               order_t.c.shipped_at <= cutoff)).all()
    for row_id, order_id, shipped_at in rows:
        conn.execute(order_t.update().where(order_t.c.id == row_id).values(
            delivered_at=shipped_at + timedelta(days=days), delivered_source="assumed",
            stage="delivered", updated_at=now))
        conn.execute(event_t.insert().values(
            channel=channel, order_id=order_id, stage="delivered", previous="shipped", at=now,
            source=source, detail=f"assumed {days:g} days after shipping"))
    return len(rows)


# How far an order has come by the channel's word: within one second of its clock, the
# word that has come further is the newer one.
_PROGRESS = {"received": 0, "paid": 1, "shipped": 2, "delivered": 3, "cancelled": 4,
             "returned": 5}


def _older(values: dict[str, Any], row: dict[str, Any]) -> bool:
    new, old = values.get("changed_at"), row["changed_at"]
    if new is None or old is None:
        return False
    if new != old:
        return bool(new < old)
    return _PROGRESS.get(values["channel_stage"], 0) < _PROGRESS.get(row["channel_stage"], 0)


def _header_values(header: OrderSnapshot, offset: timedelta) -> dict[str, Any]:
    def ours(at: datetime | None) -> datetime | None:
        return None if at is None else at - offset

    return {"status": header.status[:200], "channel_stage": header.stage,
            "placed_at": ours(header.placed_at), "paid_at": ours(header.paid_at),
            "changed_at": ours(header.changed_at), "buyer": header.buyer[:200],
            "total": header.total[:40], "currency": header.currency[:8],
            "shipped_at": ours(header.shipped_at), "delivered_at": ours(header.delivered_at)}


def _blank() -> dict[str, Any]:
    return {"status": "", "channel_stage": "", "placed_at": None, "paid_at": None,
            "changed_at": None, "buyer": "", "total": "", "currency": "", "shipped_at": None,
            "delivered_at": None, "delivered_source": ""}


def _rows(
    conn: Connection, channel: str, order_ids: Sequence[str], *, lock: bool = False
) -> dict[str, dict[str, Any]]:
    query = sa.select(order_t).where(order_t.c.channel == channel,
                                     order_t.c.order_id.in_(order_ids))
    if lock:
        query = query.with_for_update()
    return {r["order_id"]: dict(r) for r in conn.execute(query).mappings()}


def _units(conn: Connection, channel: str, order_ids: Sequence[str]) -> dict[str, Units]:
    """Units over each order's lines the ledger holds stock for."""
    query = (sa.select(line_t.c.order_id, sa.func.sum(line_t.c.ordered),
                       sa.func.sum(line_t.c.shipped), sa.func.sum(line_t.c.cancelled))
             .where(line_t.c.channel == channel, line_t.c.order_id.in_(order_ids),
                    line_t.c.state != "ignored")
             .group_by(line_t.c.order_id))
    return {order_id: Units(int(o or 0), int(s or 0), int(c or 0))
            for order_id, o, s, c in conn.execute(query)}
