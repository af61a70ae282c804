"""Stock operations: set (a count), adjust (with a reason), CSV import and export; barcodes.

Every change of ``on_hand`` is a movement. A count (set, import) also stamps
``counted_at``: shipments the channel reports as earlier than the count only
release their reservation (the units were already gone when counted).

A SKU's barcodes (``sku.barcodes``, comma separated) are stored as the seller gave them
(labels are printed from them) and compared as GTIN-14 (``barcodes.normalise``): a check
digit must be right, and no two SKUs share a product's code, so a scan means one SKU.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from channelsync.errors import LedgerError
from channelsync.ledger.apply import detect_oversell
from channelsync.ledger.barcodes import BarcodeError, clean, normalise, split
from channelsync.ledger.conflicts import dialect_insert
from channelsync.ledger.schema import mov_t, sku_t

CSV_COLUMNS = ("sku", "on_hand", "safety_stock", "title", "barcode")
_BARCODE_LOCK = 0x63736263  # "csbc": serializes barcode changes on PostgreSQL


@dataclass(frozen=True)
class StockRow:
    sku: str
    on_hand: int
    safety_stock: int | None = None
    title: str | None = None
    # Added to the SKU's barcodes (one code, or several comma separated, as an export writes).
    barcode: str | None = None
    line: int | None = field(default=None, compare=False)  # where a CSV gave it


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
    conn: Connection, rows: Iterable[StockRow], *, now: datetime, reason: str, kind: str = "set",
    source: str = "cli",
) -> list[int]:
    """Counts: set on hand (and optionally safety stock, title, barcodes to add). Returns new
    conflicts. ``source``: who made the change (``cli``, ``web:<user>``), on each movement."""
    rows = list(rows)
    given: dict[str, list[str]] = {}
    for row in rows:
        _check_sku(row.sku)
        if row.on_hand < 0:
            raise LedgerError(f"{row.sku}: on hand cannot be negative ({row.on_hand})")
        if row.safety_stock is not None and row.safety_stock < 0:
            raise LedgerError(f"{row.sku}: safety stock cannot be negative ({row.safety_stock})")
        if row.barcode:
            given.setdefault(row.sku, []).extend(_checked_codes(row.sku, row.barcode))
    skus = [r.sku for r in rows]
    if given:
        _lock_barcodes(conn)
    conn.execute(
        dialect_insert(conn, sku_t).on_conflict_do_nothing(index_elements=["sku"]),
        [{"sku": s, "updated_at": now} for s in sorted(set(skus))],
    )
    current = _lock(conn, skus)
    owners = _barcode_owners(conn) if given else {}
    merged = {sku: ",".join(_add_codes(sku, split(current[sku]["barcodes"]), codes, owners))
              for sku, codes in given.items()}
    movements, updates = [], []
    for row in rows:
        delta = row.on_hand - current[row.sku]["on_hand"]
        current[row.sku]["on_hand"] = row.on_hand
        movements.append(_movement(row.sku, kind, delta, reason, now, source))
        updates.append({"b_sku": row.sku, "b_on_hand": row.on_hand, "b_safety": row.safety_stock,
                        "b_title": row.title, "b_barcodes": merged.get(row.sku)})
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
    conn: Connection, sku: str, delta: int, *, now: datetime, reason: str, source: str = "cli"
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
    conn.execute(mov_t.insert(), [_movement(sku, "adjust", delta, reason, now, source)])
    return on_hand, detect_oversell(conn, [sku], now)


def set_safety_stock(conn: Connection, sku: str, safety_stock: int, *, now: datetime) -> None:
    if safety_stock < 0:
        raise LedgerError(f"{sku}: safety stock cannot be negative ({safety_stock})")
    result = conn.execute(
        sku_t.update().where(sku_t.c.sku == sku).values(safety_stock=safety_stock, updated_at=now)
    )
    if not result.rowcount:
        raise LedgerError(f"unknown SKU {sku!r}")


def sku_barcodes(conn: Connection, sku: str) -> list[str]:
    """A SKU's barcodes as stored, in the order they were added."""
    stored = conn.execute(sa.select(sku_t.c.barcodes).where(sku_t.c.sku == sku)).scalar()
    if stored is None:
        raise LedgerError(f"unknown SKU {sku!r}")
    return split(stored)


def add_barcode(conn: Connection, sku: str, code: str, *, now: datetime) -> tuple[bool, list[str]]:
    """Add a barcode to an existing SKU. Returns whether it was added (False: the SKU already
    had it, maybe as the UPC-A of an EAN-13) and the SKU's barcodes after."""
    code = _checked(sku, code)
    _lock_barcodes(conn)
    current = _lock(conn, [sku]).get(sku)
    if current is None:
        raise LedgerError(f"unknown SKU {sku!r}: create it with 'channelsync stock set'")
    before = split(current["barcodes"])
    after = _add_codes(sku, before, [code], _barcode_owners(conn))
    if len(after) == len(before):
        return False, before
    _store_barcodes(conn, sku, after, now)
    return True, after


def remove_barcode(
    conn: Connection, sku: str, code: str, *, now: datetime
) -> tuple[list[str], list[str]]:
    """Remove a barcode from a SKU: the code as stored, else any stored code of the same
    product (an EAN-13 removes its UPC-A). Returns the codes removed and the SKU's barcodes
    after. Codes stored before check digits were checked can be removed too."""
    current = _lock(conn, [sku]).get(sku)
    if current is None:
        raise LedgerError(f"unknown SKU {sku!r}")
    before, wanted = split(current["barcodes"]), clean(code)
    gone = [c for c in before if c == wanted] or \
        [c for c in before if _barcode_key(c) == _barcode_key(wanted)]
    if not gone:
        has = f"its barcodes: {', '.join(before)}" if before else "it has none"
        raise LedgerError(f"{sku} has no barcode {wanted} ({has})")
    after = [c for c in before if c not in gone]
    _store_barcodes(conn, sku, after, now)
    return gone, after


def barcode_problems(conn: Connection, rows: Sequence[StockRow]) -> list[CsvProblem]:
    """The rows giving a barcode another SKU in the ledger has, as problems at their line:
    what an import reports before it writes (``set_stock`` refuses them too)."""
    if not any(row.barcode for row in rows):
        return []
    owners = _barcode_owners(conn)
    problems = []
    for row in rows:
        for code in split(row.barcode or ""):
            owner = owners.get(_barcode_key(code))
            if owner is not None and owner[0] != row.sku:
                problems.append(CsvProblem(row.line or 0, _taken(clean(code), owner)))
    return problems


def _checked_codes(sku: str, text: str) -> list[str]:
    return [_checked(sku, code) for code in split(text)]


def _checked(sku: str, code: str) -> str:
    try:
        normalise(code)
    except BarcodeError as exc:
        raise LedgerError(f"{sku}: {exc}") from exc
    return clean(code)


def _barcode_key(code: str) -> str:
    """What barcodes are compared by: the GTIN-14, or the code itself for one stored before
    check digits were checked (it can still collide with itself, never with a valid one)."""
    try:
        return normalise(code)
    except BarcodeError:
        return clean(code)


def _lock_barcodes(conn: Connection) -> None:
    # Which SKU has a barcode is checked, then written: two transactions giving one code to
    # two SKUs must not both pass the check. SQLite writers are serialized already.
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _BARCODE_LOCK})


def _barcode_owners(conn: Connection) -> dict[str, tuple[str, str]]:
    """Every barcode in the ledger: its key -> (the SKU that has it, the code as stored)."""
    query = sa.select(sku_t.c.sku, sku_t.c.barcodes).where(sku_t.c.barcodes != "")
    owners: dict[str, tuple[str, str]] = {}
    for sku, stored in conn.execute(query.order_by(sku_t.c.sku)):
        for code in split(stored):
            owners.setdefault(_barcode_key(code), (sku, code))
    return owners


def _add_codes(
    sku: str, have: list[str], codes: Iterable[str], owners: dict[str, tuple[str, str]]
) -> list[str]:
    """``have`` with the codes it lacks added; refuses one another SKU has (``owners``, which
    learns the codes added, so two rows of one batch cannot share one either)."""
    after, keys = list(have), {_barcode_key(c) for c in have}
    for code in codes:
        key = _barcode_key(code)
        owner = owners.get(key)
        if owner is not None and owner[0] != sku:
            raise LedgerError(f"{sku}: {_taken(code, owner)}")
        if key not in keys:
            after.append(code)
            keys.add(key)
            owners[key] = (sku, code)
    return after


def _taken(code: str, owner: tuple[str, str]) -> str:
    sku, stored = owner
    same = "" if stored == code else f" (as {stored}, the same product)"
    return (f"barcode {code} already belongs to SKU {sku!r}{same}; "
            f"'channelsync stock barcode {sku} --remove {stored}' frees it")


def _store_barcodes(conn: Connection, sku: str, codes: list[str], now: datetime) -> None:
    conn.execute(sku_t.update().where(sku_t.c.sku == sku)
                 .values(barcodes=",".join(codes), updated_at=now))


def _movement(
    sku: str, kind: str, delta: int, reason: str, now: datetime, source: str
) -> dict[str, Any]:
    return {
        "sku": sku, "kind": kind, "on_hand_delta": delta, "reserved_delta": 0,
        "reason": reason, "source": source[:200], "idempotency_key": _key(kind), "created_at": now,
    }


def _check_sku(sku: str) -> None:
    if not sku or sku != sku.strip() or len(sku) > 200:
        raise LedgerError(f"invalid SKU {sku!r}: 1-200 characters, no leading or trailing spaces")


def read_csv(
    stream: TextIO, *, progress: Callable[[int], None] | None = None
) -> tuple[list[StockRow], list[CsvProblem]]:
    """Parse a stock CSV; every bad row is reported with its line number (a barcode another
    row already gave is one; ``barcode_problems`` finds those the ledger already has)."""
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
    codes: dict[str, tuple[str, str]] = {}  # barcode key -> (SKU, the code as given)
    for record in reader:
        line = reader.line_num
        row, errors = _parse_row(record, line)
        if row is not None and row.sku in seen:
            errors.append(f"SKU {row.sku!r} already given on line {seen[row.sku]}")
        if row is not None and not errors:
            errors.extend(_repeated_codes(row, codes, seen))
        if errors:
            problems.extend(CsvProblem(line, e) for e in errors)
        elif row is not None:
            seen[row.sku] = line
            rows.append(row)
            codes.update((_barcode_key(c), (row.sku, c)) for c in split(row.barcode or ""))
        if progress:
            progress(1)
    return rows, problems


def _repeated_codes(
    row: StockRow, codes: dict[str, tuple[str, str]], lines: dict[str, int]
) -> list[str]:
    errors = []
    for code in split(row.barcode or ""):
        sku, given = codes.get(_barcode_key(code), (row.sku, code))
        if sku != row.sku:
            same = "" if given == code else f" (as {given}, the same product)"
            errors.append(f"barcode {code} already given for SKU {sku!r} on line "
                          f"{lines[sku]}{same}")
    return errors


def _parse_row(record: dict[str, Any], line: int) -> tuple[StockRow | None, list[str]]:
    errors: list[str] = []
    if None in record:
        errors.append("more fields than columns")
    sku = (record.get("sku") or "").strip()
    if not sku:
        errors.append("empty sku")
    on_hand = _int(record.get("on_hand"), "on_hand", errors, required=True)
    safety = _int(record.get("safety_stock"), "safety_stock", errors, required=False)
    barcode = ",".join(clean(c) for c in split(record.get("barcode") or "")) or None
    for code in split(barcode or ""):
        try:
            normalise(code)
        except BarcodeError as exc:
            errors.append(str(exc))
    title = record.get("title")
    if errors or on_hand is None:
        return None, errors
    return StockRow(sku, on_hand, safety, title.strip() if title else None, barcode,
                    line=line), errors


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
