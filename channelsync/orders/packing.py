"""Packing verified by scanning: each unit going into the box is scanned, and only what the
order holds is accepted. A code is a barcode of the catalog (GTIN-8/12/13/14, check digit
checked, UPC-A and EAN-13 of one product alike) or the SKU itself; a kit's line is packed
as its components."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from channelsync.ledger import barcodes
from channelsync.ledger.schema import kit_t, sku_t
from channelsync.orders.queries import Order

PACKABLE = ("paid", "picked", "packed")


class PackError(Exception):
    """The order cannot be packed (unknown, cancelled, shipped, nothing to pack)."""


@dataclass
class Scan:
    ok: bool
    message: str
    sku: str | None = None


@dataclass
class PackLine:
    sku: str
    title: str
    needed: int
    scanned: int = 0


@dataclass
class Packing:
    order: Order
    lines: dict[str, PackLine]
    catalog: dict[str, str]  # SKU -> its barcodes, for the order's SKUs
    titles: dict[str, str] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return all(line.scanned >= line.needed for line in self.lines.values())

    @property
    def left(self) -> int:
        return sum(max(0, line.needed - line.scanned) for line in self.lines.values())

    def scan(self, code: str, conn: Connection | None = None) -> Scan:
        """Check one scanned code; a refusal says what the code is, when it is anything."""
        code = code.strip()
        try:
            sku = barcodes.find_sku(code, self.catalog)
        except barcodes.BarcodeError as exc:
            return Scan(False, f"{exc}; scan it again")
        if sku is None:
            other = _whole_catalog_lookup(conn, code) if conn is not None else None
            if other is None:
                return Scan(False, f"{code}: no SKU or barcode in the catalog")
            if conn is not None and other not in self.titles:
                title = conn.execute(sa.select(sku_t.c.title).where(sku_t.c.sku == other)).scalar()
                self.titles[other] = title or ""
            return Scan(False, f"{code} is {_named(other, self.titles)}, not in this order",
                        other)
        line = self.lines[sku]
        if line.scanned >= line.needed:
            return Scan(False, f"{_named(sku, self.titles)}: an extra unit, all {line.needed} "
                               "are scanned already", sku)
        line.scanned += 1
        return Scan(True, f"{_named(sku, self.titles)} {line.scanned}/{line.needed}", sku)


def start(conn: Connection, order: Order) -> Packing:
    if order.stage not in PACKABLE:
        raise PackError(f"{order.channel} order {order.order_id} is {order.stage}: only a paid "
                        "or picked order is packed")
    pending = [line.channel_sku for line in order.lines if line.state == "pending"]
    if pending:
        raise PackError(f"{order.channel} order {order.order_id} has lines for SKUs not in the "
                        f"ledger ({', '.join(pending)}): add them before packing")
    kits: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for kit, component, quantity in conn.execute(
            sa.select(kit_t.c.kit_sku, kit_t.c.component_sku, kit_t.c.quantity)):
        kits[kit].append((component, quantity))
    need: dict[str, int] = defaultdict(int)
    for line in order.lines:
        units = line.ordered - line.shipped - line.cancelled
        for sku, each in kits.get(line.sku, [(line.sku, 1)]):
            if units > 0:
                need[sku] += units * each
    if not need:
        raise PackError(f"{order.channel} order {order.order_id} has nothing left to pack")
    rows = conn.execute(sa.select(sku_t.c.sku, sku_t.c.title, sku_t.c.barcodes)
                        .where(sku_t.c.sku.in_(need))).all()
    titles = {sku: title or "" for sku, title, _ in rows}
    return Packing(order, {sku: PackLine(sku, titles.get(sku, ""), n)
                           for sku, n in sorted(need.items())},
                   {sku: codes or "" for sku, _, codes in rows} | {s: "" for s in need
                                                                  if s not in titles},
                   titles)


def _whole_catalog_lookup(conn: Connection, code: str) -> str | None:
    """What a code not in the order is, so the packer knows what they hold."""
    if conn.execute(sa.select(sku_t.c.sku).where(sku_t.c.sku == code)).first():
        return code
    if not barcodes.is_gtin(code):
        return None
    rows = conn.execute(sa.select(sku_t.c.sku, sku_t.c.barcodes)
                        .where(sku_t.c.barcodes != "")).all()
    try:
        return barcodes.find_sku(code, {sku: codes for sku, codes in rows})
    except barcodes.BarcodeError:
        return None


def _named(sku: str, titles: dict[str, str]) -> str:
    title = titles.get(sku)
    return f"{sku} ({title})" if title else sku
