"""Reading the order book: lists of orders and one order with its history."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from channelsync.ledger.schema import line_t, mov_t, sku_t
from channelsync.orders.schema import event_t, order_t, shipment_t


@dataclass
class OrderLine:
    line_id: str
    channel_sku: str
    sku: str
    title: str
    ordered: int
    shipped: int
    cancelled: int
    state: str  # applied | pending (unknown SKU) | ...


@dataclass
class Order:
    channel: str
    order_id: str
    stage: str
    status: str
    placed_at: datetime | None
    paid_at: datetime | None
    updated_at: datetime | None
    buyer: str
    total: str
    currency: str
    ordered: int
    shipped: int
    cancelled: int
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None
    delivered_source: str = ""  # channel | assumed
    buyer_key: str = ""  # the buyer's salted hash (channelsync.customers); "" unknown
    tier: str = ""  # the loyalty tier its buyer reached with this order
    lines: list[OrderLine] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    movements: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        def iso(at: datetime | None) -> str | None:
            return at.isoformat() if at else None

        out: dict[str, Any] = {
            "channel": self.channel, "order_id": self.order_id, "stage": self.stage,
            "status": self.status, "placed_at": iso(self.placed_at),
            "paid_at": iso(self.paid_at), "updated_at": iso(self.updated_at),
            "buyer": self.buyer, "total": self.total, "currency": self.currency,
            "units": {"ordered": self.ordered, "shipped": self.shipped,
                      "cancelled": self.cancelled},
            "shipped_at": iso(self.shipped_at), "delivered_at": iso(self.delivered_at),
            "delivered": self.delivered_source or None,
            "buyer_id": self.buyer_key[:16] or None, "tier_reached": self.tier or None,
            "lines": [vars(line) for line in self.lines],
        }
        if self.events or self.movements:
            out["events"] = [{**e, "at": iso(e["at"])} for e in self.events]
            out["movements"] = [{**m, "created_at": iso(m["created_at"])}
                                for m in self.movements]
        return out


def list_orders(
    conn: Connection,
    *,
    channel: str | None = None,
    stages: tuple[str, ...] = (),
    since: datetime | None = None,
    limit: int = 200,
    buyer_keys: Collection[str] | None = None,
) -> list[Order]:
    """Newest first (by when the order was placed, else first seen), with their lines.
    ``buyer_keys``: only those buyers' orders."""
    newest = sa.func.coalesce(order_t.c.placed_at, order_t.c.updated_at)
    query = sa.select(order_t).order_by(newest.desc(), order_t.c.id.desc()).limit(limit)
    if channel:
        query = query.where(order_t.c.channel == channel)
    if stages:
        query = query.where(order_t.c.stage.in_(stages))
    if since is not None:
        query = query.where(newest >= since)
    if buyer_keys is not None:
        query = query.where(order_t.c.buyer_key.in_(list(buyer_keys)))
    orders = [_order(dict(r)) for r in conn.execute(query).mappings()]
    _attach_lines(conn, orders)
    return orders


def get_order(conn: Connection, channel: str, order_id: str) -> Order | None:
    row = conn.execute(sa.select(order_t).where(
        order_t.c.channel == channel, order_t.c.order_id == order_id)).mappings().first()
    if row is None:
        return None
    order = _order(dict(row))
    _attach_lines(conn, [order])
    order.events = [
        {"at": e["at"], "stage": e["stage"], "previous": e["previous"], "source": e["source"],
         "detail": e["detail"]}
        for e in conn.execute(sa.select(event_t).where(
            event_t.c.channel == channel, event_t.c.order_id == order_id
        ).order_by(event_t.c.id)).mappings()]
    order.movements = [
        {"created_at": m["created_at"], "sku": m["sku"], "kind": m["kind"],
         "on_hand": m["on_hand_delta"], "reserved": m["reserved_delta"], "source": m["source"]}
        for m in conn.execute(sa.select(mov_t).where(
            mov_t.c.source.startswith(f"{channel}:{order_id}:", autoescape=True)
        ).order_by(mov_t.c.id)).mappings()]
    return order


def find_orders(conn: Connection, order_id: str) -> list[Order]:
    """An order id on whichever channel has it (a scanned packing slip names no channel)."""
    return [found for (channel,) in conn.execute(
                sa.select(order_t.c.channel).where(order_t.c.order_id == order_id))
            if (found := get_order(conn, channel, order_id)) is not None]


@dataclass(frozen=True)
class Overdue:
    channel: str
    order_id: str
    stage: str
    since: datetime


def overdue(conn: Connection, limits: dict[str, float], now: datetime) -> list[Overdue]:
    """Orders waiting to ship (paid, picked, packed, partly shipped) since longer than their
    channel's limit (seconds): since paid, or first seen where the channel says no time."""
    since = sa.func.coalesce(order_t.c.paid_at, order_t.c.first_seen_at)
    found = []
    for channel, limit in limits.items():
        query = sa.select(order_t.c.order_id, order_t.c.stage, since.label("since")).where(
            order_t.c.channel == channel,
            order_t.c.stage.in_(("paid", "picked", "packed", "partly_shipped")),
            since < now - timedelta(seconds=limit))
        found += [Overdue(channel, r.order_id, r.stage, r.since) for r in conn.execute(query)]
    return found


@dataclass
class ShipmentInfo:
    key: str
    channel: str
    order_id: str
    carrier: str
    tracking: str
    state: str  # queued | confirmed | refused
    attempts: int
    created_at: datetime | None
    confirmed_at: datetime | None
    last_error: str


def shipments(conn: Connection, keys: list[str] | None = None, *, channel: str | None = None,
              order_id: str | None = None) -> list[ShipmentInfo]:
    query = sa.select(shipment_t).order_by(shipment_t.c.id)
    if keys is not None:
        query = query.where(shipment_t.c.key.in_(keys or [""]))
    if channel is not None:
        query = query.where(shipment_t.c.channel == channel)
    if order_id is not None:
        query = query.where(shipment_t.c.order_id == order_id)
    return [ShipmentInfo(r["key"], r["channel"], r["order_id"], r["carrier"], r["tracking"],
                         r["state"], r["attempts"], r["created_at"], r["confirmed_at"],
                         r["last_error"]) for r in conn.execute(query).mappings()]


def _order(row: dict[str, Any]) -> Order:
    return Order(row["channel"], row["order_id"], row["stage"], row["status"],
                 row["placed_at"], row["paid_at"], row["updated_at"], row["buyer"],
                 row["total"], row["currency"], row["ordered"], row["shipped"],
                 row["cancelled"], row["shipped_at"], row["delivered_at"],
                 row["delivered_source"], row["buyer_key"], row["tier"])


def _attach_lines(conn: Connection, orders: list[Order]) -> None:
    by_channel: dict[str, dict[str, Order]] = {}
    for order in orders:
        by_channel.setdefault(order.channel, {})[order.order_id] = order
    for channel, wanted in by_channel.items():
        ids = list(wanted)
        for start in range(0, len(ids), 500):
            query = (sa.select(line_t.c.order_id, line_t.c.line_id, line_t.c.channel_sku,
                               line_t.c.sku, line_t.c.ordered, line_t.c.shipped,
                               line_t.c.cancelled, line_t.c.state,
                               sa.func.coalesce(sku_t.c.title, "").label("title"))
                     .select_from(line_t.outerjoin(sku_t, sku_t.c.sku == line_t.c.sku))
                     .where(line_t.c.channel == channel,
                            line_t.c.order_id.in_(ids[start:start + 500]),
                            line_t.c.state != "ignored")
                     .order_by(line_t.c.id))
            for r in conn.execute(query).mappings():
                wanted[r["order_id"]].lines.append(OrderLine(
                    r["line_id"], r["channel_sku"], r["sku"], r["title"], r["ordered"],
                    r["shipped"], r["cancelled"], r["state"]))
