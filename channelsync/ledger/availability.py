"""What can be sold: ``available = on_hand - reserved - safety_stock`` for a SKU; for a kit,
the minimum over its components of ``floor(available / per-kit quantity)``. What a channel
is shown is a rule applied to this (``channelsync.sync.planner``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from channelsync.ledger.apply import chunks
from channelsync.ledger.schema import kit_t, sku_t


@dataclass(frozen=True)
class Availability:
    sku: str
    available: int
    detail: str  # how it was computed



def availability(conn: Connection, skus: Iterable[str]) -> dict[str, Availability]:
    """Available units of SKUs and kits; unknown names are absent from the result."""
    wanted = sorted(set(skus))
    kits: dict[str, dict[str, int]] = defaultdict(dict)
    for chunk in chunks(wanted):
        query = sa.select(kit_t).where(kit_t.c.kit_sku.in_(chunk))
        for kit, comp, qty in conn.execute(query):
            kits[kit][comp] = qty
    plain = sorted(set(wanted) | {c for comps in kits.values() for c in comps})
    result: dict[str, Availability] = {}
    for chunk in chunks(plain):
        query = sa.select(sku_t.c.sku, sku_t.c.on_hand, sku_t.c.reserved, sku_t.c.safety_stock)
        for sku, on_hand, reserved, safety in conn.execute(query.where(sku_t.c.sku.in_(chunk))):
            detail = f"on hand {on_hand} - reserved {reserved} - safety {safety}"
            result[sku] = Availability(sku, on_hand - reserved - safety, detail)
    for kit, comps in kits.items():
        if all(c in result for c in comps):
            parts = {c: result[c].available // q for c, q in comps.items()}
            detail = "min(" + ", ".join(
                f"{c}: {result[c].available}//{q}" for c, q in sorted(comps.items())) + ")"
            result[kit] = Availability(kit, min(parts.values()), detail)
    return result


def affected(conn: Connection, touched: Iterable[str]) -> set[str]:
    """Touched SKUs and every kit made of them."""
    touched = set(touched)
    kits: set[str] = set()
    for chunk in chunks(sorted(touched)):
        query = sa.select(kit_t.c.kit_sku).where(kit_t.c.component_sku.in_(chunk))
        kits.update(conn.execute(query).scalars())
    return touched | kits
