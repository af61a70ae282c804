"""The floor: the rows the ledger ends up writing, put in with plain ``sqlite3``.

Same schema (the Alembic migration, via ``open_ledger_engine``), same PRAGMAs as the
ledger's engine, one transaction of ``executemany``. Rows are built before the clock
starts: the floor is the cost of the writes alone. It writes each order line once
with its final values (as the ledger does for a line it has not seen), one reservation
per open line, one movement per reserve or commit, and one SKU update per SKU per page
(as the ledger does), so the end state is the ledger's.
"""

from __future__ import annotations

import sqlite3
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.workload import CHANNEL, COUNTED_AT, STOCK_PER_SKU, Workload
from channelsync.ledger.migrate import open_ledger_engine

_LINE_SQL = (
    "INSERT INTO order_line (id, channel, order_id, line_id, channel_sku, sku, status,"
    " ordered, shipped, cancelled, restocked, changed_at, version, state, committed,"
    " restock_applied) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?, 1, 'applied', ?, 0)"
)
_RES_SQL = "INSERT INTO reservation (line_id, sku, quantity) VALUES (?, ?, ?)"
_MOV_SQL = (
    "INSERT INTO movement (sku, kind, on_hand_delta, reserved_delta, reason, source,"
    " idempotency_key, created_at) VALUES (?, ?, ?, ?, '', ?, ?, ?)"
)
_SKU_SQL = (
    "UPDATE sku SET on_hand = on_hand + ?, reserved = reserved + ?, updated_at = ?"
    " WHERE sku = ?"
)


@dataclass
class Rows:
    lines: list[tuple[Any, ...]] = field(default_factory=list)
    reservations: list[tuple[Any, ...]] = field(default_factory=list)
    movements: list[tuple[Any, ...]] = field(default_factory=list)
    sku_updates: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass
class Floor:
    lines: int
    seconds: float
    rows: int
    levels: dict[str, tuple[int, int]]

    @property
    def rate(self) -> float:
        return self.lines / self.seconds


def _stamp(moment: datetime) -> str:
    """A datetime as SQLAlchemy stores it on SQLite (naive UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def build_rows(workload: Workload) -> Rows:
    rows = Rows()
    line_id = 0
    for page in workload.pages:
        now = _stamp(max(s.changed_at for s in page))
        delta: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for s in page:
            line_id += 1
            key = f"{CHANNEL}:{s.order_id}:{s.line_id}:v1"
            changed = _stamp(s.changed_at)
            rows.lines.append((line_id, CHANNEL, s.order_id, s.line_id, s.channel_sku,
                               s.channel_sku, s.status, s.ordered, s.shipped, changed, s.shipped))
            if s.shipped:
                rows.movements.append((s.channel_sku, "commit", -s.shipped, 0, key,
                                       f"{key}:commit:{s.channel_sku}", now))
                delta[s.channel_sku][0] -= s.shipped
            else:
                rows.reservations.append((line_id, s.channel_sku, s.ordered))
                rows.movements.append((s.channel_sku, "reserve", 0, s.ordered, key,
                                       f"{key}:reserve:{s.channel_sku}", now))
                delta[s.channel_sku][1] += s.ordered
        rows.sku_updates += [(d[0], d[1], now, sku) for sku, d in sorted(delta.items())]
    return rows


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON"):
        conn.execute(f"PRAGMA {pragma}")
    return conn


def _seed(conn: sqlite3.Connection, workload: Workload) -> None:
    counted = _stamp(COUNTED_AT)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO sku (sku, title, barcodes, on_hand, reserved, safety_stock, counted_at,"
        " updated_at) VALUES (?, '', '', ?, 0, 0, ?, ?)",
        [(sku, STOCK_PER_SKU, counted, counted) for sku in workload.skus],
    )
    conn.execute("COMMIT")


def run_floor(workload: Workload, path: Path) -> Floor:
    open_ledger_engine(f"sqlite:///{path}").dispose()  # the schema, by the same migration
    rows = build_rows(workload)
    conn = _connect(path)
    try:
        _seed(conn, workload)
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_LINE_SQL, rows.lines)
        conn.executemany(_RES_SQL, rows.reservations)
        conn.executemany(_MOV_SQL, rows.movements)
        conn.executemany(_SKU_SQL, rows.sku_updates)
        conn.execute("COMMIT")
        seconds = time.perf_counter() - started
        levels = {s: (h, r) for s, h, r in conn.execute("SELECT sku, on_hand, reserved FROM sku")}
    finally:
        conn.close()
    written = sum(len(x) for x in (rows.lines, rows.reservations, rows.movements, rows.sku_updates))
    return Floor(workload.lines, seconds, written, levels)
