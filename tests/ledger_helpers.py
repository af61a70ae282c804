"""Shared helpers for ledger tests: snapshots, stock counts and the invariant checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from channelsync.connector import OrderLineSnapshot
from channelsync.ledger import apply as ledger
from channelsync.ledger import schema, stock

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def snap(order: str, line: str = "1", sku: str = "MUG", qty: int = 1, *, t: float = 0,
         status: str = "processing", shipped: int = 0, cancelled: int = 0,
         restocked: int = 0, ignore: bool = False) -> OrderLineSnapshot:
    return OrderLineSnapshot(order, line, sku, qty, status, at(t), shipped=shipped,
                             cancelled=cancelled, restocked=restocked, ignore=ignore)


def apply(engine: Engine, channel: str, *snaps: OrderLineSnapshot,
          resume_at: datetime | None = None, mapping: dict[str, str] | None = None,
          now: float = 1000) -> ledger.ApplyResult:
    mapping = mapping or {}
    with engine.begin() as conn:
        return ledger.apply_page(conn, channel, snaps, master_sku=lambda s: mapping.get(s, s),
                                 now=at(now), resume_at=resume_at)


def count(engine: Engine, now: float = 0, **skus: int) -> list[int]:
    with engine.begin() as conn:
        rows = [stock.StockRow(sku, qty) for sku, qty in skus.items()]
        return stock.set_stock(conn, rows, now=at(now), reason="count")


def sku_row(engine: Engine, sku: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(sa.select(schema.sku_t).where(schema.sku_t.c.sku == sku)).mappings()
        return dict(row.one())


def open_conflicts(engine: Engine, kind: str | None = None) -> list[dict[str, Any]]:
    from channelsync.ledger.conflicts import list_conflicts

    with engine.connect() as conn:
        return [c for c in list_conflicts(conn) if kind is None or c["kind"] == kind]


def check_invariants(engine: Engine) -> None:
    """Invariant 2: reserved is the sum of open reservations, on hand the sum of movements."""
    with engine.connect() as conn:
        skus = {r.sku: (r.on_hand, r.reserved) for r in conn.execute(sa.select(schema.sku_t))}
        held = dict(conn.execute(
            sa.select(schema.res_t.c.sku, sa.func.sum(schema.res_t.c.quantity))
            .group_by(schema.res_t.c.sku)).all())
        moved = {s: (int(o), int(r)) for s, o, r in conn.execute(
            sa.select(schema.mov_t.c.sku, sa.func.sum(schema.mov_t.c.on_hand_delta),
                      sa.func.sum(schema.mov_t.c.reserved_delta))
            .group_by(schema.mov_t.c.sku)).all()}
    for sku, (on_hand, reserved) in skus.items():
        assert reserved == held.get(sku, 0), f"{sku}: reserved {reserved} != reservations"
        assert (on_hand, reserved) == moved.get(sku, (0, 0)), f"{sku}: movements disagree"
