"""Applying the workload to a real ledger through ``ledger.apply_page``, page by page."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.workload import CHANNEL, COUNTED_AT, STOCK_PER_SKU, Workload, identity
from channelsync.ledger.apply import ApplyResult, apply_page
from channelsync.ledger.schema import sku_t
from channelsync.ledger.stock import StockRow, set_stock


@dataclass
class Pass:
    lines: int
    seconds: float
    result: ApplyResult = field(default_factory=ApplyResult)

    @property
    def rate(self) -> float:
        return self.lines / self.seconds


def seed_stock(engine: Engine, workload: Workload) -> float:
    """Create every SKU with plenty of stock (one count); returns the seconds it took."""
    started = time.perf_counter()
    with engine.begin() as conn:
        rows = [StockRow(sku, STOCK_PER_SKU) for sku in workload.skus]
        set_stock(conn, rows, now=COUNTED_AT, reason="bench seed")
    return time.perf_counter() - started


def apply_all(engine: Engine, workload: Workload) -> Pass:
    """One transaction per page, as ``SyncEngine.pull`` does, cursor moved with each page."""
    figures = Pass(workload.lines, 0.0)
    started = time.perf_counter()
    for page in workload.pages:
        resume_at = max(s.changed_at for s in page)
        with engine.begin() as conn:
            figures.result.merge(apply_page(
                conn, CHANNEL, page, master_sku=identity, now=resume_at, resume_at=resume_at,
            ))
    figures.seconds = time.perf_counter() - started
    return figures


def stock_levels(engine: Engine) -> dict[str, tuple[int, int]]:
    """SKU -> (on hand, reserved): the end state, to compare with the floor's."""
    with engine.connect() as conn:
        query = sa.select(sku_t.c.sku, sku_t.c.on_hand, sku_t.c.reserved)
        return {sku: (on_hand, reserved) for sku, on_hand, reserved in conn.execute(query)}
