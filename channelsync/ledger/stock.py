"""Stock operations: set (a count), adjust (with a reason), CSV import and export.

Every change of ``on_hand`` is a movement. A count (set, import) also stamps
``counted_at``: shipments the channel reports as earlier than the count only
release their reservation (the units were already gone when counted).
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from channelsync.errors import LedgerError
from channelsync.ledger.apply import detect_oversell
from channelsync.ledger.conflicts import dialect_insert
from channelsync.ledger.schema import mov_t, sku_t

CSV_COLUMNS = ("sku", "on_hand", "safety_stock", "title", "barcode")
_BARCODE = re.compile(r"^\d{8}$|^\d{12,14}$")  # EAN-8, UPC-A, EAN-13, GTIN-14


@dataclass(frozen=True)
class StockRow:
    sku: str
    on_hand: int
    safety_stock: int | None = None
    title: str | None = None
    barcode: str | None = None


@dataclass(frozen=True)
class CsvProblem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def _key(kind: str) -> str:
    return f"cli:{kind}:{uuid.uuid4().hex}"


def _lock(conn: Connection, skus: Iterable[str]) -> dict[str, dict[str, Any]]:
    query = sa.select(sku_t).where(sku_t.c.sku.in_(sorted(set(skus)))).order_by(sku_t.c.sku)
    return {r["sku"]: dict(r) for r in conn.execute(query.with_for_update()).mappings()}


def set_stock(
    conn: Connection, rows: Iterable[StockRow], *, now: datetime, reason: str, kind: str = "set"
) -> list[int]:
    """Counts: set on hand (and optionally safety stock, title, barcode). Returns new conflicts."""
    rows = list(rows)
    for row in rows:
        _check_sku(row.sku)
        if row.on_hand < 0:
            raise LedgerError(f"{row.sku}: on hand cannot be negative ({row.on_hand})")
        if row.safety_stock is not None and row.safety_stock < 0:
            raise LedgerError(f"{row.sku}: safety stock cannot be negative ({row.safety_stock})")
    skus = [r.sku for r in rows]
    conn.execute(
        dialect_insert(conn, sku_t).on_conflict_do_nothing(index_elements=["sku"]),
        [{"sku": s, "updated_at": now} for s in sorted(set(skus))],
    )
    current = _lock(conn, skus)
    movements, updates = [], []
    for row in rows:
        delta = row.on_hand - current[row.sku]["on_hand"]
        current[row.sku]["on_hand"] = row.on_hand
        movements.append(_movement(row.sku, kind, delta, reason, now))
        updates.append({"b_sku": row.sku, "b_on_hand": row.on_hand, "b_safety": row.safety_stock,
                        "b_title": row.title, "b_barcodes": row.barcode})
    # One statement for every row; a field left out (None) keeps what the SKU had.
    conn.execute(
        sku_t.update().where(sku_t.c.sku == sa.bindparam("b_sku")).values(
            on_hand=sa.bindparam("b_on_hand"),
            safety_stock=sa.func.coalesce(sa.bindparam("b_safety", type_=sa.Integer),
                                          sku_t.c.safety_stock),
            title=sa.func.coalesce(sa.bindparam("b_title", type_=sa.String), sku_t.c.title),
            barcodes=sa.func.coalesce(sa.bindparam("b_barcodes", type_=sa.String),
                                      sku_t.c.barcodes),
            counted_at=now, updated_at=now,
        ),
        updates,
    )
    conn.execute(mov_t.insert(), movements)
    return detect_oversell(conn, skus, now)


def adjust_stock(
    conn: Connection, sku: str, delta: int, *, now: datetime, reason: str
) -> tuple[int, list[int]]:
    """Add or remove units (damage, found stock, ...). Returns the new on hand and new conflicts."""
    if not reason.strip():
        raise LedgerError("an adjustment needs a reason")
    current = _lock(conn, [sku]).get(sku)
    if current is None:
        raise LedgerError(f"unknown SKU {sku!r}: create it with 'channelsync stock set'")
    on_hand = current["on_hand"] + delta
    if on_hand < 0:
        raise LedgerError(f"{sku}: adjusting by {delta} would leave {on_hand} on hand")
    conn.execute(sku_t.update().where(sku_t.c.sku == sku).values(on_hand=on_hand, updated_at=now))
    conn.execute(mov_t.insert(), [_movement(sku, "adjust", delta, reason, now)])
    return on_hand, detect_oversell(conn, [sku], now)


def set_safety_stock(conn: Connection, sku: str, safety_stock: int, *, now: datetime) -> None:
    if safety_stock < 0:
        raise LedgerError(f"{sku}: safety stock cannot be negative ({safety_stock})")
    result = conn.execute(
        sku_t.update().where(sku_t.c.sku == sku).values(safety_stock=safety_stock, updated_at=now)
    )
    if not result.rowcount:
        raise LedgerError(f"unknown SKU {sku!r}")


def _movement(sku: str, kind: str, delta: int, reason: str, now: datetime) -> dict[str, Any]:
    return {
        "sku": sku, "kind": kind, "on_hand_delta": delta, "reserved_delta": 0,
        "reason": reason, "source": "cli", "idempotency_key": _key(kind), "created_at": now,
    }


def _check_sku(sku: str) -> None:
    if not sku or sku != sku.strip() or len(sku) > 200:
        raise LedgerError(f"invalid SKU {sku!r}: 1-200 characters, no leading or trailing spaces")


def read_csv(
    stream: TextIO, *, progress: Callable[[int], None] | None = None
) -> tuple[list[StockRow], list[CsvProblem]]:
    """Parse a stock CSV; every bad row is reported with its line number."""
    reader = csv.DictReader(stream)
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in ("sku", "on_hand") if c not in header]
    if missing:
        return [], [CsvProblem(1, f"missing column(s): {', '.join(missing)} "
                                  f"(expected {','.join(CSV_COLUMNS)})")]
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if unknown:
        return [], [CsvProblem(1, f"unknown column(s): {', '.join(unknown)}")]
    reader.fieldnames = header
    rows: list[StockRow] = []
    problems: list[CsvProblem] = []
    seen: dict[str, int] = {}
    for record in reader:
        line = reader.line_num
        row, errors = _parse_row(record)
        if row is not None and row.sku in seen:
            errors.append(f"SKU {row.sku!r} already given on line {seen[row.sku]}")
        if errors:
            problems.extend(CsvProblem(line, e) for e in errors)
        elif row is not None:
            seen[row.sku] = line
            rows.append(row)
        if progress:
            progress(1)
    return rows, problems


def _parse_row(record: dict[str, Any]) -> tuple[StockRow | None, list[str]]:
    errors: list[str] = []
    if None in record:
        errors.append("more fields than columns")
    sku = (record.get("sku") or "").strip()
    if not sku:
        errors.append("empty sku")
    on_hand = _int(record.get("on_hand"), "on_hand", errors, required=True)
    safety = _int(record.get("safety_stock"), "safety_stock", errors, required=False)
    barcode = (record.get("barcode") or "").strip() or None
    if barcode and not _BARCODE.match(barcode):
        errors.append(f"barcode {barcode!r} is not a GTIN/EAN/UPC (8, 12, 13 or 14 digits)")
    title = record.get("title")
    if errors or on_hand is None:
        return None, errors
    return StockRow(sku, on_hand, safety, title.strip() if title else None, barcode), errors


def _int(value: Any, name: str, errors: list[str], *, required: bool) -> int | None:
    text = (value or "").strip()
    if not text:
        if required:
            errors.append(f"empty {name}")
        return None
    try:
        number = int(text)
    except ValueError:
        errors.append(f"{name} {text!r} is not a whole number")
        return None
    if number < 0:
        errors.append(f"{name} cannot be negative ({number})")
        return None
    return number


def export_csv(conn: Connection) -> Iterator[str]:
    """The ledger's stock as CSV lines, in the import format."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue()
    query = sa.select(sku_t.c.sku, sku_t.c.on_hand, sku_t.c.safety_stock, sku_t.c.title,
                      sku_t.c.barcodes).order_by(sku_t.c.sku)
    for row in conn.execute(query).yield_per(1000):
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(row)
        yield buffer.getvalue()
