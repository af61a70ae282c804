"""Pick lists: what the paid, unpicked orders need from the shelves, grouped by SKU, so
one walk serves many orders. A kit's line is picked as its components."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from channelsync.ledger.schema import kit_t, line_t, sku_t
from channelsync.orders import book
from channelsync.orders.schema import order_t


@dataclass
class PickLine:
    sku: str
    title: str
    barcode: str  # the first of the SKU's barcodes, as the seller gave it
    units: int
    orders: list[tuple[str, str, int]] = field(default_factory=list)  # channel, order, units

    def as_json(self) -> dict[str, Any]:
        return {"sku": self.sku, "title": self.title, "barcode": self.barcode,
                "units": self.units, "orders": [
                    {"channel": c, "order_id": o, "units": n} for c, o, n in self.orders]}


@dataclass
class PickList:
    lines: list[PickLine]
    orders: list[tuple[str, str]]  # every order the list serves
    unknown: list[tuple[str, str, str]] = field(default_factory=list)  # channel, order, SKU


def pick_list(conn: Connection, channel: str | None = None) -> PickList:
    """The open units of every paid order not picked yet, by SKU (by shelf, not by order)."""
    query = (sa.select(order_t.c.channel, order_t.c.order_id, line_t.c.sku, line_t.c.channel_sku,
                       line_t.c.state,
                       (line_t.c.ordered - line_t.c.shipped - line_t.c.cancelled).label("open"))
             .select_from(order_t.join(line_t, sa.and_(line_t.c.channel == order_t.c.channel,
                                                        line_t.c.order_id == order_t.c.order_id)))
             .where(order_t.c.stage == "paid", line_t.c.state != "ignored")
             .order_by(order_t.c.placed_at, order_t.c.id, line_t.c.id))
    if channel:
        query = query.where(order_t.c.channel == channel)
    rows = conn.execute(query).mappings().all()
    kits: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for kit, component, quantity in conn.execute(
            sa.select(kit_t.c.kit_sku, kit_t.c.component_sku, kit_t.c.quantity)):
        kits[kit].append((component, quantity))
    need: dict[str, dict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
    served: dict[tuple[str, str], None] = {}
    unknown = []
    for r in rows:
        served[(r["channel"], r["order_id"])] = None
        if r["open"] <= 0:
            continue
        if r["state"] == "pending":
            unknown.append((r["channel"], r["order_id"], r["channel_sku"]))
            continue
        for sku, each in kits.get(r["sku"], [(r["sku"], 1)]):
            need[sku][(r["channel"], r["order_id"])] += r["open"] * each
    catalog = {s: (t, b) for s, t, b in conn.execute(
        sa.select(sku_t.c.sku, sku_t.c.title, sku_t.c.barcodes).where(sku_t.c.sku.in_(need)))}
    lines = []
    for sku in sorted(need):
        title, barcodes = catalog.get(sku, ("", ""))
        by_order = need[sku]
        lines.append(PickLine(sku, title or "", (barcodes or "").split(",")[0].strip(),
                              sum(by_order.values()),
                              [(c, o, n) for (c, o), n in by_order.items()]))
    return PickList(lines, list(served), unknown)


def mark_picked(conn: Connection, orders: list[tuple[str, str]], now: datetime,
                source: str = "cli") -> int:
    """Move these orders to picked (those still paid: one that shipped or was cancelled
    meanwhile keeps its stage)."""
    moved = 0
    for channel, order_id in orders:
        if book.set_local_stage(conn, channel, order_id, "picked", now=now, source=source,
                                detail="pick list") == "picked":
            moved += 1
    return moved
