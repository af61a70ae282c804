"""Applying order line snapshots to the ledger, a page at a time.

Each snapshot is a desired state. The ledger compares it with the stored
snapshot and writes the movements that turn one into the other: reserve,
release, commit (shipped) and restock. A whole page, its conflicts and the
channel's cursor commit in one transaction, with the reads and writes batched.

Idempotency is the database's: a line's row is locked while its snapshot is applied,
a new line goes in (with its applied values) by ``INSERT ... ON CONFLICT DO NOTHING``,
and every movement has a unique idempotency key, so a replayed, duplicated or concurrent
snapshot changes nothing. When another transaction created one of the page's new lines
first (PostgreSQL), the page is applied again, with that line locked.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, CursorResult

from channelsync.connector import BadRecord, OrderLineSnapshot
from channelsync.errors import LedgerError
from channelsync.ledger.conflicts import (
    ConflictRecord,
    dialect_insert,
    open_conflicts,
    resolve_conflicts,
)
from channelsync.ledger.schema import line_t, mov_t, res_t, sku_t, state_t

log = logging.getLogger(__name__)


MAX_COMPETING = 20  # orders named in one oversell conflict
# A shipment is before a stock count only when the channel's time says so by more than
# this: channels report whole seconds and their clock is known to a second. Within it the
# units come off (the safe way: an undersold unit, never an oversold one).
COUNT_TOLERANCE = timedelta(seconds=2)


class _Db:
    """The hot path's SQL, handed to the driver as written: SQLAlchemy's compiling of IN
    lists and its per-row parameter and result processing cost more than the queries on a
    page of orders (see bench/). Statements use ``?``; ``{in}`` stands for an IN list (the
    last parameter) and ``{lock}`` for the row lock PostgreSQL takes (SQLite serializes
    writers already). Datetimes are stored as SQLAlchemy stores ``UTCDateTime``: naive UTC
    (on SQLite, its text format)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"

    def stamp(self, moment: datetime | None) -> Any:
        if moment is None:
            return None
        return _naive_utc(moment) if self.pg else _sqlite_stamp(moment)

    @staticmethod
    def moment(value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite
            return _parsed(value)
        return value.replace(tzinfo=UTC)

    def rows(
        self, sql: str, params: Sequence[Any] = (), values: Sequence[Any] = ()
    ) -> Sequence[Any]:
        """The rows of a query; ``values``, the IN list, are sent a chunk at a time."""
        found: list[Any] = []
        for result in self._execute(sql, params, values):
            found += result.all()
        return found

    def run(self, sql: str, params: Sequence[Any] = (), values: Sequence[Any] = ()) -> int:
        """A statement that returns no rows; the rows it changed."""
        return sum(result.rowcount for result in self._execute(sql, params, values))

    def _execute(
        self, sql: str, params: Sequence[Any], values: Sequence[Any]
    ) -> Iterator[CursorResult[Any]]:
        if "{in}" not in sql:
            yield self.conn.exec_driver_sql(_spelled(sql, self.pg, 0), tuple(params))
            return
        for chunk in chunks(values):
            listed = (list(chunk),) if self.pg else tuple(chunk)
            yield self.conn.exec_driver_sql(
                _spelled(sql, self.pg, len(chunk)), (*params, *listed))

    def many(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> int:
        """executemany; the rows it changed."""
        if not rows:
            return 0
        return self.conn.exec_driver_sql(_spelled(sql, self.pg, 0), list(rows)).rowcount


def _naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime given to the ledger; use timezone-aware UTC")
    return moment.astimezone(UTC).replace(tzinfo=None)


# Cached: the lines of an order share their time, and SKUs the time of their count.
@lru_cache(maxsize=4096)
def _sqlite_stamp(moment: datetime) -> str:
    return _naive_utc(moment).isoformat(" ", "microseconds")


@lru_cache(maxsize=4096)
def _parsed(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@lru_cache(maxsize=1024)
def _spelled(sql: str, pg: bool, listed: int) -> str:
    """``sql`` for the driver: its placeholders, IN list (of ``listed`` values), lock."""
    if pg:
        sql = sql.replace("?", "%s").replace("{in}", "= ANY(%s)")
    else:
        sql = sql.replace("{in}", "IN (" + ", ".join("?" * listed) + ")")
    return sql.replace("{lock}", " FOR UPDATE" if pg else "")


@dataclass
class ApplyResult:
    applied: int = 0  # lines whose ledger effect changed
    unchanged: int = 0  # duplicates and replays
    stale: int = 0  # older than what was already applied
    pending: int = 0  # unknown SKU, kept for later
    touched: set[str] = field(default_factory=set)  # SKUs whose stock or reservations moved
    conflicts: list[int] = field(default_factory=list)  # ids of conflicts opened

    def merge(self, other: ApplyResult) -> None:
        self.applied += other.applied
        self.unchanged += other.unchanged
        self.stale += other.stale
        self.pending += other.pending
        self.touched |= other.touched
        self.conflicts += other.conflicts


LineKey = tuple[str, str]  # (order id, line id)


@dataclass
class _Work:
    """What one transaction will write, accumulated in memory first. A line not in the
    ledger yet is known by its key until its insert gives it an id."""

    now: datetime
    stamp: Callable[[datetime | None], Any]  # a datetime as the database stores it
    movements: list[tuple[Any, ...]] = field(default_factory=list)
    sku_delta: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    new_lines: list[tuple[Any, ...]] = field(default_factory=list)  # _INSERT_LINE order
    line_updates: list[tuple[Any, ...]] = field(default_factory=list)  # _UPDATE_LINE order
    reservations: list[tuple[int | LineKey, str, int]] = field(default_factory=list)
    reset_lines: list[int] = field(default_factory=list)  # whose reservations are replaced
    unknown: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    known: set[tuple[str, str]] = field(default_factory=set)
    result: ApplyResult = field(default_factory=ApplyResult)

    def __post_init__(self) -> None:
        self.now_stamp = self.stamp(self.now)

    def move(self, sku: str, kind: str, on_hand: int, reserved: int, key: str, source: str) -> None:
        self.movements.append((sku, kind, on_hand, reserved, "", source, key, self.now_stamp))
        delta = self.sku_delta[sku]
        delta[0] += on_hand
        delta[1] += reserved


class Catalog:
    """The SKUs and kits a page refers to, loaded (and on PostgreSQL locked) in one go."""

    def __init__(self, db: _Db, skus: Iterable[str]) -> None:
        wanted = sorted(set(skus))
        self.kits: dict[str, dict[str, int]] = defaultdict(dict)
        for kit, comp, qty in db.rows(_KITS, (), wanted):
            self.kits[kit][comp] = qty
        every = sorted(set(wanted) | {c for comps in self.kits.values() for c in comps})
        moment = db.moment
        self.counted_at: dict[str, datetime | None] = {
            sku: moment(counted) for sku, counted in db.rows(_LOCK_SKUS, (), every)}

    def components(self, sku: str) -> dict[str, int] | None:
        """SKU -> per-unit components; None when neither a known SKU nor a kit of known SKUs."""
        kit = self.kits.get(sku)
        if kit:
            return kit if all(c in self.counted_at for c in kit) else None
        return {sku: 1} if sku in self.counted_at else None


def chunks(items: Sequence[Any], size: int = 500) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _latest(snapshots: Sequence[OrderLineSnapshot]) -> list[OrderLineSnapshot]:
    """One snapshot per line: the newest; on a tie the one that came last."""
    best: dict[LineKey, OrderLineSnapshot] = {}
    for snap in snapshots:
        key = (snap.order_id, snap.line_id)
        if key not in best or snap.changed_at >= best[key].changed_at:
            best[key] = snap
    return [best[k] for k in sorted(best)]


def _valid(snap: OrderLineSnapshot) -> str | None:
    if min(snap.ordered, snap.shipped, snap.cancelled, snap.restocked) < 0:
        return "negative quantity"
    if snap.changed_at.tzinfo is None:
        return "change time without a timezone"
    return None


def apply_page(
    conn: Connection,
    channel: str,
    snapshots: Sequence[OrderLineSnapshot],
    *,
    master_sku: Callable[[str], str],
    now: datetime,
    resume_at: datetime | None = None,
    bad_records: Sequence[BadRecord] = (),
    clock_offset: timedelta = timedelta(0),
    happened_at: datetime | None = None,
) -> ApplyResult:
    """Apply one page inside the caller's transaction, and move the cursor with it.
    ``clock_offset``: how far the channel's clock is ahead of ours (its times, less this,
    are compared with the ledger's own, such as a stock count's). ``happened_at``: when
    the changes happened on our clock, where we know better than the lines' times (a
    shipment the seller records now)."""
    db = _Db(conn)
    conflicts = [_bad_record(channel, bad) for bad in bad_records]
    good: list[OrderLineSnapshot] = []
    for snap in _latest(snapshots):
        problem = _valid(snap)
        if problem:
            bad = BadRecord(problem, _line_key(channel, snap), snap)
            conflicts.append(_bad_record(channel, bad))
        else:
            good.append(snap)
    work = _apply_lines(db, channel, good, master_sku, happened_at, clock_offset, now)
    result = work.result
    result.touched = {sku for sku, d in work.sku_delta.items() if d != [0, 0]}
    conflicts += _unknown_sku_conflicts(channel, work)
    result.conflicts += open_conflicts(conn, conflicts, now)
    known = _open_subjects(db, "unknown_sku", sorted(f"{c}:{s}" for c, s in work.known))
    resolve_conflicts(conn, "unknown_sku", known, now)
    result.conflicts += detect_oversell(conn, result.touched, now)
    if resume_at is not None:
        advance_cursor(conn, channel, resume_at)
    return result


def _apply_lines(
    db: _Db,
    channel: str,
    snaps: Sequence[OrderLineSnapshot],
    master_sku: Callable[[str], str],
    happened_at: datetime | None,
    clock_offset: timedelta,
    now: datetime,
) -> _Work:
    """Work out the page against its locked lines, then write it. Runs again when another
    transaction created one of its new lines first (PostgreSQL; SQLite serializes writers),
    from a savepoint: the next attempt takes its locks in order, holding none of these.
    (SQLite takes no row locks, and a savepoint would cost it a journal of every page.)"""
    if not snaps:
        return _Work(now, db.stamp)
    skus = [master_sku(s.channel_sku) for s in snaps]
    times = [happened_at or s.changed_at - clock_offset for s in snaps]
    while True:
        with db.conn.begin_nested() if db.pg else nullcontext() as attempt:
            work = _work_out(db, channel, snaps, skus, times, now)
            if _insert_lines(db, channel, work):
                _write(db, work)
                return work
            if attempt is not None:
                attempt.rollback()
        log.debug("%s: another transaction created lines of this page first; again", channel)


def _work_out(
    db: _Db,
    channel: str,
    snaps: Sequence[OrderLineSnapshot],
    skus: Sequence[str],
    times: Sequence[datetime],
    now: datetime,
) -> _Work:
    """What the page writes, against its lines as stored (locked) and the catalog."""
    work = _Work(now, db.stamp)
    rows = _lock_lines(db, channel, snaps)
    catalog = Catalog(db, skus)
    held = _reservations(db, [r["id"] for r in rows.values()])
    for snap, sku, changed_here in zip(snaps, skus, times, strict=True):
        key = (snap.order_id, snap.line_id)
        row = rows.get(key) or _NEW_LINE
        _apply_line(work, catalog, channel, snap, key, row, sku, held.get(row["id"], {}),
                    changed_here)
    return work


def ship_lines(
    conn: Connection,
    channel: str,
    order_id: str,
    quantities: Mapping[str, int],
    *,
    master_sku: Callable[[str], str],
    now: datetime,
) -> ApplyResult:
    """Units the seller shipped (line id -> units): off the shelf now, without waiting for
    the channel to say so. The lines keep the channel's own times, so its later snapshot
    saying the same changes nothing (the ledger never un-ships), and an older one is stale."""
    rows = conn.execute(sa.select(line_t).where(
        line_t.c.channel == channel, line_t.c.order_id == order_id,
        line_t.c.line_id.in_(list(quantities)))).mappings().all()
    snaps = [OrderLineSnapshot(
        order_id, r["line_id"], r["channel_sku"], r["ordered"], r["status"], r["changed_at"],
        shipped=r["shipped"] + quantities[r["line_id"]], cancelled=r["cancelled"],
        restocked=r["restocked"]) for r in rows]
    return apply_page(conn, channel, snaps, master_sku=master_sku, now=now, happened_at=now)


def _line_key(channel: str, snap: OrderLineSnapshot) -> str:
    return f"{channel}:{snap.order_id}:{snap.line_id}"


def _bad_record(channel: str, bad: BadRecord) -> ConflictRecord:
    return ConflictRecord(
        kind="bad_record", subject=f"{channel}:{bad.key}", channel=channel,
        message=f"{channel}: a record could not be used ({bad.reason}); it is kept here",
        detail={"reason": bad.reason, "raw": bad.raw},
    )


# The columns of an order line that applying a snapshot reads, and a line not seen before.
_LINE_COLUMNS = ("id", "order_id", "line_id", "sku", "status", "ordered", "shipped",
                 "cancelled", "restocked", "changed_at", "version", "state", "committed",
                 "restock_applied", "cancel_seen_at")
_NEW_LINE: Mapping[str, Any] = {
    "id": None, "sku": "", "status": "", "ordered": 0, "shipped": 0, "cancelled": 0,
    "restocked": 0, "changed_at": None, "version": 0, "state": "new", "committed": 0,
    "restock_applied": 0, "cancel_seen_at": None,
}


def _lock_lines(
    db: _Db, channel: str, snaps: Sequence[OrderLineSnapshot]
) -> dict[LineKey, dict[str, Any]]:
    """The page's lines already in the ledger, locked."""
    # By channel and order id, which uses the whole unique index on both databases (a
    # tuple IN does not on SQLite); other lines of the same orders are dropped here.
    wanted = {(s.order_id, s.line_id) for s in snaps}
    moment = db.moment
    rows: dict[LineKey, dict[str, Any]] = {}
    for values in db.rows(_LOCK_LINES, (channel,), sorted({s.order_id for s in snaps})):
        row = dict(zip(_LINE_COLUMNS, values, strict=True))
        key = (row["order_id"], row["line_id"])
        if key in wanted:
            row["changed_at"] = moment(row["changed_at"])
            row["cancel_seen_at"] = moment(row["cancel_seen_at"])
            rows[key] = row
    return rows


def _reservations(db: _Db, line_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    held: dict[int, dict[str, int]] = defaultdict(dict)
    for line_id, sku, qty in db.rows(_RESERVATIONS, (), sorted(line_ids)):
        held[line_id][sku] = qty
    return held


def _same(snap: OrderLineSnapshot, row: Mapping[str, Any], sku: str) -> bool:
    return (
        row["state"] not in ("new", "pending")
        and row["sku"] == sku
        and row["changed_at"] == snap.changed_at
        and (row["ordered"], row["shipped"], row["cancelled"], row["restocked"], row["status"])
        == (snap.ordered, snap.shipped, snap.cancelled, snap.restocked, snap.status)
    )


def _apply_line(
    work: _Work,
    catalog: Catalog,
    channel: str,
    snap: OrderLineSnapshot,
    line: LineKey,
    row: Mapping[str, Any],
    sku: str,
    held: dict[str, int],
    changed_here: datetime,  # the change's time on our clock
) -> None:
    result = work.result
    if row["changed_at"] is not None and snap.changed_at < row["changed_at"]:
        result.stale += 1
        return
    if _same(snap, row, sku):
        result.unchanged += 1
        return
    # The ledger never un-ships: a later snapshot may only add shipments.
    ordered = snap.ordered
    shipped = min(max(snap.shipped, row["shipped"] if row["state"] != "new" else 0), ordered)
    # Two versions within one second of the channel's clock (WooCommerce, Amazon and eBay
    # date changes to the second) cannot be told apart by time: a stale page may bring the
    # older after the newer. Within the second, a cancellation is never undone.
    tie = row["state"] != "new" and snap.changed_at == row["changed_at"] \
        and snap.cancelled < row["cancelled"]
    cancelled = min(row["cancelled"] if tie else snap.cancelled, ordered - shipped)
    status = row["status"] if tie else snap.status
    restocked = min(max(snap.restocked, row["restock_applied"]), shipped)
    comps = None if snap.ignore else catalog.components(sku)
    state = "ignored" if snap.ignore else ("applied" if comps is not None else "pending")
    version = row["version"] + 1
    key = f"{channel}:{snap.order_id}:{snap.line_id}:v{version}"
    ref = row["id"] if row["id"] is not None else line
    committed, restock_applied = row["committed"], row["restock_applied"]
    if comps is not None:
        open_units = ordered - shipped - cancelled
        desired = {c: open_units * q for c, q in comps.items()}
        _diff_reservations(work, ref, key, held, desired)
        # Units once taken off the shelf stay taken (an order edited below what shipped
        # does not put them back; only a restock does).
        ship_delta, committed = max(0, shipped - committed), max(committed, shipped)
        back_delta = max(0, restocked - restock_applied)
        restock_applied = max(restock_applied, restocked)
        for comp, per in comps.items():
            counted = catalog.counted_at.get(comp)
            # A shipment before the latest stock count was already off the shelf when counted.
            if ship_delta and (counted is None or changed_here >= counted - COUNT_TOLERANCE):
                work.move(comp, "commit", -ship_delta * per, 0, f"{key}:commit:{comp}", key)
            if back_delta:
                work.move(comp, "restock", back_delta * per, 0, f"{key}:restock:{comp}", key)
        work.known.add((channel, snap.channel_sku))
        result.applied += 1
    else:
        _diff_reservations(work, ref, key, held, {})
        if state == "pending":
            work.unknown[(channel, snap.channel_sku)].append(snap.order_id)
            result.pending += 1
        else:
            result.applied += 1
    # When a cancellation was first seen: a channel that puts cancelled units back on sale
    # by itself shows them again from then on (see pushing.expected_quantities).
    cancel_seen_at = work.now if cancelled > row["cancelled"] else row["cancel_seen_at"]
    values = (snap.channel_sku, sku, status, ordered, shipped, cancelled, restocked,
              work.stamp(snap.changed_at), version, state, committed, restock_applied,
              work.stamp(cancel_seen_at))
    if row["id"] is None:
        work.new_lines.append((channel, *line, work.now_stamp, *values))
    else:
        work.line_updates.append((*values, row["id"]))


def _diff_reservations(
    work: _Work, ref: int | LineKey, key: str, held: Mapping[str, int],
    desired: Mapping[str, int],
) -> None:
    changed = False
    for sku in sorted(held.keys() | desired.keys()) if held else sorted(desired):
        delta = desired.get(sku, 0) - held.get(sku, 0)
        if delta:
            kind = "reserve" if delta > 0 else "release"
            work.move(sku, kind, 0, delta, f"{key}:{kind}:{sku}", key)
            changed = True
    if changed:  # the line's reservations are replaced; unchanged ones are left alone
        if held:
            work.reset_lines.append(ref)  # type: ignore[arg-type]  # only a stored line holds
        work.reservations.extend((ref, sku, qty) for sku, qty in desired.items() if qty > 0)


_KITS = "SELECT kit_sku, component_sku, quantity FROM kit_component WHERE kit_sku {in}"
# Locked: serializes writers of the same SKU (PostgreSQL; SQLite has one writer).
_LOCK_SKUS = "SELECT sku, counted_at FROM sku WHERE sku {in} ORDER BY sku{lock}"
_LOCK_LINES = (
    f"SELECT {', '.join(_LINE_COLUMNS)} FROM order_line WHERE channel = ? AND order_id {{in}}"
    " ORDER BY id{lock}"
)
_RESERVATIONS = "SELECT line_id, sku, quantity FROM reservation WHERE line_id {in}"
_INSERT_LINE = (
    "INSERT INTO order_line (channel, order_id, line_id, first_seen_at, channel_sku, sku,"
    " status, ordered, shipped, cancelled, restocked, changed_at, version, state, committed,"
    " restock_applied, cancel_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (channel, order_id, line_id) DO NOTHING"
)
_LINE_IDS = "SELECT id, order_id, line_id FROM order_line WHERE channel = ? AND order_id {in}"
_UPDATE_LINE = (
    "UPDATE order_line SET channel_sku = ?, sku = ?, status = ?, ordered = ?, shipped = ?, "
    "cancelled = ?, restocked = ?, changed_at = ?, version = ?, state = ?, committed = ?, "
    "restock_applied = ?, cancel_seen_at = ? WHERE id = ?"
)
_DROP_RESERVATIONS = "DELETE FROM reservation WHERE line_id {in}"
_INSERT_RESERVATION = "INSERT INTO reservation (line_id, sku, quantity) VALUES (?, ?, ?)"
_INSERT_MOVEMENT = (
    "INSERT INTO movement (sku, kind, on_hand_delta, reserved_delta, reason, source, "
    "idempotency_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_MOVE_SKU = (
    "UPDATE sku SET on_hand = on_hand + ?, reserved = reserved + ?, updated_at = ? WHERE sku = ?"
)
_OVERSOLD = "SELECT sku, on_hand, reserved FROM sku WHERE reserved > on_hand AND sku {in}"
_ADVANCE = "UPDATE channel_state SET cursor = ? WHERE name = ? AND (cursor IS NULL OR cursor < ?)"
_OPEN = "SELECT subject FROM conflict WHERE kind = ? AND resolved_at IS NULL AND subject {in}"


def _insert_lines(db: _Db, channel: str, work: _Work) -> bool:
    """Insert the new lines with their values, and give their reservations the lines' ids.
    False when another transaction had created one of them first (PostgreSQL)."""
    if db.many(_INSERT_LINE, work.new_lines) < len(work.new_lines):
        if not db.pg:  # one writer at a time: the lines were there when the page was read
            raise LedgerError(f"{channel}: order lines appeared while a page was applied")
        return False
    refs = {ref for ref, _, _ in work.reservations if isinstance(ref, tuple)}
    if refs:
        orders = sorted({order_id for order_id, _ in refs})
        ids = {(o, line): i for i, o, line in db.rows(_LINE_IDS, (channel,), orders)}
        work.reservations = [(ids[r] if isinstance(r, tuple) else r, sku, qty)
                             for r, sku, qty in work.reservations]
    return True


def _write(db: _Db, work: _Work) -> None:
    db.many(_UPDATE_LINE, work.line_updates)
    db.run(_DROP_RESERVATIONS, (), sorted(work.reset_lines))
    db.many(_INSERT_RESERVATION, work.reservations)
    db.many(_INSERT_MOVEMENT, work.movements)
    db.many(_MOVE_SKU, [(d[0], d[1], work.now_stamp, sku)
                        for sku, d in sorted(work.sku_delta.items()) if d != [0, 0]])


def _open_subjects(db: _Db, kind: str, subjects: Sequence[str]) -> list[str]:
    """Those of ``subjects`` with an open conflict of ``kind``: most pages resolve none, and
    asking first is cheaper than an UPDATE naming every subject."""
    return [subject for (subject,) in db.rows(_OPEN, (kind,), subjects)]


def _unknown_sku_conflicts(channel: str, work: _Work) -> list[ConflictRecord]:
    return [
        ConflictRecord(
            kind="unknown_sku", subject=f"{chan}:{sku}", channel=chan, sku=sku,
            message=(f"{chan}: orders for SKU {sku!r}, which the ledger does not know; "
                     "they are kept and applied once the SKU exists or is mapped"),
            detail={"orders": sorted(set(orders))[:MAX_COMPETING]},
        )
        for (chan, sku), orders in sorted(work.unknown.items())
    ]


def detect_oversell(conn: Connection, skus: Iterable[str], now: datetime) -> list[int]:
    """Open an oversell conflict for each SKU whose reservations exceed what is on hand.

    Runs in the transaction that changed the SKUs, with their rows locked, so two
    concurrent orders for the last unit see each other and one conflict is raised.
    """
    skus = sorted(set(skus))
    if not skus:
        return []
    db = _Db(conn)
    over = {sku: (on_hand, reserved) for sku, on_hand, reserved in db.rows(_OVERSOLD, (), skus)}
    settled = _open_subjects(db, "oversell", [s for s in skus if s not in over])
    resolve_conflicts(conn, "oversell", settled, now)
    records = [_oversell(conn, sku, *over[sku]) for sku in sorted(over)]
    return open_conflicts(conn, records, now)


def _oversell(conn: Connection, sku: str, on_hand: int, reserved: int) -> ConflictRecord:
    """The conflict, naming the orders that compete for the units: those holding them
    (reserved) and those whose shipments since the latest count took them off the shelf."""
    rows = conn.execute(
        sa.select(line_t.c.channel, line_t.c.order_id, res_t.c.quantity)
        .join(res_t, res_t.c.line_id == line_t.c.id)
        .where(res_t.c.sku == sku)
        .order_by(line_t.c.changed_at, line_t.c.id)
        .limit(MAX_COMPETING)
    ).all()
    orders = [{"channel": c, "order_id": o, "quantity": q, "held": "reserved"}
              for c, o, q in rows]
    orders += _shipped_since_count(conn, sku, MAX_COMPETING - len(orders))
    channels = sorted({o["channel"] for o in orders})
    names = ", ".join(f"{o['channel']} order {o['order_id']} ({o['quantity']} {o['held']})"
                      for o in orders) or "none recorded"
    return ConflictRecord(
        kind="oversell", subject=sku, sku=sku,
        message=(f"{sku} is oversold: {reserved} reserved but {on_hand} on hand "
                 f"(competing orders: {names})"),
        detail={"on_hand": on_hand, "reserved": reserved, "orders": orders, "channels": channels},
    )


def _shipped_since_count(conn: Connection, sku: str, limit: int) -> list[dict[str, Any]]:
    """Orders (newest first) whose shipments took units of ``sku`` off the shelf since its
    latest stock count, from the commit movements (by the movement table's SKU index)."""
    if limit <= 0:
        return []
    counted = sa.select(sku_t.c.counted_at).where(sku_t.c.sku == sku).scalar_subquery()
    query = (
        sa.select(mov_t.c.source, -sa.func.sum(mov_t.c.on_hand_delta))
        .where(mov_t.c.sku == sku, mov_t.c.kind == "commit",
               sa.or_(counted.is_(None), mov_t.c.created_at >= counted))
        .group_by(mov_t.c.source)
        .order_by(sa.func.max(mov_t.c.id).desc())
        .limit(limit)
    )
    shipped: dict[tuple[str, str], int] = {}
    for source, units in conn.execute(query):
        line = _line_of(conn, source)
        if line is not None:
            shipped[line] = shipped.get(line, 0) + int(units)
    return [{"channel": c, "order_id": o, "quantity": q, "held": "shipped"}
            for (c, o), q in shipped.items()]


def _line_of(conn: Connection, source: str) -> tuple[str, str] | None:
    """(channel, order id) of an order movement's source, ``channel:order:line:vN``. Order
    and line ids may hold colons themselves: each split is looked up by the unique key."""
    channel, _, rest = source.partition(":")
    rest = rest.rpartition(":v")[0]
    parts = rest.split(":")
    for cut in range(1, len(parts)):
        order_id, line_id = ":".join(parts[:cut]), ":".join(parts[cut:])
        found = conn.execute(sa.select(line_t.c.id).where(
            line_t.c.channel == channel, line_t.c.order_id == order_id,
            line_t.c.line_id == line_id)).first()
        if found is not None:
            return channel, order_id
    return None


def advance_cursor(conn: Connection, channel: str, to: datetime) -> None:
    """Move the channel's cursor forward, never back, in the caller's transaction."""
    db = _Db(conn)
    params = (db.stamp(to), channel, db.stamp(to))
    # Every page moves it: the UPDATE alone, but for a channel's first (no row yet).
    if not db.run(_ADVANCE, params) and ensure_channel_state(conn, channel):
        db.run(_ADVANCE, params)


def ensure_channel_state(conn: Connection, channel: str) -> bool:
    """The channel's state row; True when this created it."""
    created = conn.execute(
        dialect_insert(conn, state_t).values(name=channel).on_conflict_do_nothing(
            index_elements=["name"]
        )
    )
    return bool(created.rowcount)


def pending_lines(conn: Connection, channel: str) -> list[OrderLineSnapshot]:
    """Stored snapshots of lines waiting for their SKU, to apply again."""
    rows = conn.execute(
        sa.select(line_t).where(line_t.c.channel == channel, line_t.c.state == "pending")
        .order_by(line_t.c.id)
    ).mappings()
    return [
        OrderLineSnapshot(
            order_id=r["order_id"], line_id=r["line_id"], channel_sku=r["channel_sku"],
            ordered=r["ordered"], shipped=r["shipped"], cancelled=r["cancelled"],
            restocked=r["restocked"], status=r["status"], changed_at=r["changed_at"],
        )
        for r in rows
    ]
