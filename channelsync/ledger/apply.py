"""Applying order line snapshots to the ledger, a page at a time.

Each snapshot is a desired state. The ledger compares it with the stored
snapshot and writes the movements that turn one into the other: reserve,
release, commit (shipped) and restock. A whole page, its conflicts and the
channel's cursor commit in one transaction, with the reads and writes batched.

Idempotency is the database's: the order line row is created with
``INSERT ... ON CONFLICT DO NOTHING`` and then locked, and every movement has a
unique idempotency key, so a replayed, duplicated or concurrent snapshot changes
nothing.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from channelsync.connector import BadRecord, OrderLineSnapshot
from channelsync.ledger.conflicts import (
    ConflictRecord,
    dialect_insert,
    open_conflicts,
    resolve_conflicts,
)
from channelsync.ledger.schema import (
    UTCDateTime,
    kit_t,
    line_t,
    mov_t,
    res_t,
    sku_t,
    state_t,
)

log = logging.getLogger(__name__)


MAX_COMPETING = 20  # orders named in one oversell conflict
# A shipment is before a stock count only when the channel's time says so by more than
# this: channels report whole seconds and their clock is known to a second. Within it the
# units come off (the safe way: an undersold unit, never an oversold one).
COUNT_TOLERANCE = timedelta(seconds=2)
# IN lists bound at execution: building one bind parameter per value cost more than
# the queries on a page of orders.
_LIST: sa.BindParameter[Any] = sa.bindparam("values", expanding=True)


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


@dataclass
class _Work:
    """What one transaction will write, accumulated in memory first."""

    now: datetime
    movements: list[tuple[Any, ...]] = field(default_factory=list)
    sku_delta: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    line_updates: list[tuple[Any, ...]] = field(default_factory=list)  # _UPDATE_LINE order
    reservations: list[tuple[int, str, int]] = field(default_factory=list)
    reset_lines: list[int] = field(default_factory=list)
    unknown: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    known: set[tuple[str, str]] = field(default_factory=set)

    def move(self, sku: str, kind: str, on_hand: int, reserved: int, key: str, source: str) -> None:
        self.movements.append((sku, kind, on_hand, reserved, "", source, key, self.now))
        delta = self.sku_delta[sku]
        delta[0] += on_hand
        delta[1] += reserved


class Catalog:
    """The SKUs and kits a page refers to, loaded (and on PostgreSQL locked) in one go."""

    def __init__(self, conn: Connection, skus: Iterable[str]) -> None:
        wanted = sorted(set(skus))
        self.kits: dict[str, dict[str, int]] = defaultdict(dict)
        for chunk in chunks(wanted):
            for kit, comp, qty in conn.execute(
                sa.select(kit_t.c.kit_sku, kit_t.c.component_sku, kit_t.c.quantity)
                .where(kit_t.c.kit_sku.in_(_LIST)), {"values": list(chunk)}
            ):
                self.kits[kit][comp] = qty
        every = sorted(set(wanted) | {c for comps in self.kits.values() for c in comps})
        self.counted_at: dict[str, datetime | None] = {}
        for chunk in chunks(every):
            query = (
                sa.select(sku_t.c.sku, sku_t.c.counted_at)
                .where(sku_t.c.sku.in_(_LIST))
                .order_by(sku_t.c.sku)
                .with_for_update()  # serializes writers of the same SKU (no-op on SQLite)
            )
            rows = conn.execute(query, {"values": list(chunk)})
            self.counted_at.update({s: c for s, c in rows})

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
    best: dict[tuple[str, str], OrderLineSnapshot] = {}
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
    result = ApplyResult()
    work = _Work(now)
    conflicts = [_bad_record(channel, bad) for bad in bad_records]
    good: list[OrderLineSnapshot] = []
    for snap in _latest(snapshots):
        problem = _valid(snap)
        if problem:
            bad = BadRecord(problem, _line_key(channel, snap), snap)
            conflicts.append(_bad_record(channel, bad))
        else:
            good.append(snap)
    if good:
        rows = _lock_lines(conn, channel, good, now)
        catalog = Catalog(conn, {master_sku(s.channel_sku) for s in good})
        reserved = _reservations(conn, [r["id"] for r in rows.values()])
        for snap in good:
            row = rows[(snap.order_id, snap.line_id)]
            _apply_line(work, result, catalog, channel, snap, row, master_sku(snap.channel_sku),
                        reserved.get(row["id"], {}),
                        happened_at or snap.changed_at - clock_offset)
        _write(conn, work)
    result.touched = {sku for sku, d in work.sku_delta.items() if d != [0, 0]}
    conflicts += _unknown_sku_conflicts(channel, work)
    result.conflicts += open_conflicts(conn, conflicts, now)
    resolve_conflicts(conn, "unknown_sku", [f"{c}:{s}" for c, s in work.known], now)
    result.conflicts += detect_oversell(conn, result.touched, now)
    if resume_at is not None:
        advance_cursor(conn, channel, resume_at)
    return result


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


def _lock_lines(
    conn: Connection, channel: str, snaps: Sequence[OrderLineSnapshot], now: datetime
) -> dict[tuple[str, str], dict[str, Any]]:
    """Create missing order lines (ON CONFLICT DO NOTHING) and lock all of them."""
    _executemany(conn, _INSERT_LINE, [
        (channel, s.order_id, s.line_id, s.channel_sku, now) for s in snaps
    ], stamps=(4,))
    # By channel and order id, which uses the whole unique index on both databases (a
    # tuple IN does not on SQLite); other lines of the same orders are dropped here.
    wanted = {(s.order_id, s.line_id) for s in snaps}
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for chunk in chunks(sorted({s.order_id for s in snaps})):
        query = (
            sa.select(line_t)
            .where(line_t.c.channel == channel, line_t.c.order_id.in_(_LIST))
            .order_by(line_t.c.id)
            .with_for_update()
        )
        for row in conn.execute(query, {"values": list(chunk)}).mappings():
            key = (row["order_id"], row["line_id"])
            if key in wanted:
                rows[key] = dict(row)
    return rows


def _reservations(conn: Connection, line_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    held: dict[int, dict[str, int]] = defaultdict(dict)
    for chunk in chunks(sorted(line_ids)):
        for line_id, sku, qty in conn.execute(
            sa.select(res_t.c.line_id, res_t.c.sku, res_t.c.quantity)
            .where(res_t.c.line_id.in_(_LIST)), {"values": list(chunk)}
        ):
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
    result: ApplyResult,
    catalog: Catalog,
    channel: str,
    snap: OrderLineSnapshot,
    row: dict[str, Any],
    sku: str,
    held: dict[str, int],
    changed_here: datetime,  # the change's time on our clock
) -> None:
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
    committed, restock_applied = row["committed"], row["restock_applied"]
    if comps is not None:
        open_units = ordered - shipped - cancelled
        desired = {c: open_units * q for c, q in comps.items()}
        _diff_reservations(work, row["id"], key, held, desired)
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
        _diff_reservations(work, row["id"], key, held, {})
        if state == "pending":
            work.unknown[(channel, snap.channel_sku)].append(snap.order_id)
            result.pending += 1
        else:
            result.applied += 1
    # When a cancellation was first seen: a channel that puts cancelled units back on sale
    # by itself shows them again from then on (see pushing.expected_quantities).
    cancel_seen_at = work.now if cancelled > row["cancelled"] else row["cancel_seen_at"]
    work.line_updates.append((
        snap.channel_sku, sku, status, ordered, shipped, cancelled, restocked,
        snap.changed_at, version, state, committed, restock_applied, cancel_seen_at, row["id"],
    ))


def _diff_reservations(
    work: _Work, line_id: int, key: str, held: Mapping[str, int], desired: Mapping[str, int]
) -> None:
    for sku in sorted(set(held) | set(desired)):
        delta = desired.get(sku, 0) - held.get(sku, 0)
        if delta:
            kind = "reserve" if delta > 0 else "release"
            work.move(sku, kind, 0, delta, f"{key}:{kind}:{sku}", key)
    work.reservations.extend((line_id, sku, qty) for sku, qty in desired.items() if qty > 0)


# The hot bulk writes go to the driver's executemany directly: building SQLAlchemy
# parameters row by row cost more than the writes themselves (see bench/).
_INSERT_LINE = (
    "INSERT INTO order_line (channel, order_id, line_id, channel_sku, first_seen_at, sku, "
    "status, ordered, shipped, cancelled, restocked, version, state, committed, restock_applied) "
    "VALUES (?, ?, ?, ?, ?, '', '', 0, 0, 0, 0, 0, 'new', 0, 0) "
    "ON CONFLICT (channel, order_id, line_id) DO NOTHING"
)
_UPDATE_LINE = (
    "UPDATE order_line SET channel_sku = ?, sku = ?, status = ?, ordered = ?, shipped = ?, "
    "cancelled = ?, restocked = ?, changed_at = ?, version = ?, state = ?, committed = ?, "
    "restock_applied = ?, cancel_seen_at = ? WHERE id = ?"
)
_INSERT_MOVEMENT = (
    "INSERT INTO movement (sku, kind, on_hand_delta, reserved_delta, reason, source, "
    "idempotency_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_RESERVATION = "INSERT INTO reservation (line_id, sku, quantity) VALUES (?, ?, ?)"


def _executemany(
    conn: Connection, sql: str, rows: Sequence[tuple[Any, ...]], stamps: tuple[int, ...] = ()
) -> None:
    """executemany on the driver; ``?`` placeholders; the datetimes at the positions in
    ``stamps`` are stored as the ORM stores them."""
    if not rows:
        return
    to_db = UTCDateTime().bind_processor(conn.dialect)
    if to_db is not None:
        for i in stamps:
            rows = [(*r[:i], to_db(r[i]), *r[i + 1:]) for r in rows]
    if conn.dialect.paramstyle != "qmark":
        sql = sql.replace("?", "%s")
    conn.exec_driver_sql(sql, list(rows))


def _write(conn: Connection, work: _Work) -> None:
    if work.line_updates:
        _executemany(conn, _UPDATE_LINE, work.line_updates, stamps=(7, 12))
        ids = [u[-1] for u in work.line_updates]
        for chunk in chunks(ids):
            conn.execute(res_t.delete().where(res_t.c.line_id.in_(_LIST)),
                         {"values": list(chunk)})
        _executemany(conn, _INSERT_RESERVATION, work.reservations)
    _executemany(conn, _INSERT_MOVEMENT, work.movements, stamps=(7,))
    changed = [
        {"b_sku": sku, "d_on_hand": d[0], "d_reserved": d[1]}
        for sku, d in sorted(work.sku_delta.items()) if d != [0, 0]
    ]
    if changed:
        conn.execute(
            sku_t.update().where(sku_t.c.sku == sa.bindparam("b_sku")).values(
                on_hand=sku_t.c.on_hand + sa.bindparam("d_on_hand"),
                reserved=sku_t.c.reserved + sa.bindparam("d_reserved"),
                updated_at=work.now,
            ),
            changed,
        )


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
    over: dict[str, tuple[int, int]] = {}
    for chunk in chunks(skus):
        for sku, on_hand, reserved in conn.execute(
            sa.select(sku_t.c.sku, sku_t.c.on_hand, sku_t.c.reserved).where(sku_t.c.sku.in_(chunk))
        ):
            if reserved > on_hand:
                over[sku] = (on_hand, reserved)
    resolve_conflicts(conn, "oversell", [s for s in skus if s not in over], now)
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
    ensure_channel_state(conn, channel)
    conn.execute(
        state_t.update()
        .where(state_t.c.name == channel,
               sa.or_(state_t.c.cursor.is_(None), state_t.c.cursor < to))
        .values(cursor=to)
    )


def ensure_channel_state(conn: Connection, channel: str) -> None:
    conn.execute(
        dialect_insert(conn, state_t).values(name=channel).on_conflict_do_nothing(
            index_elements=["name"]
        )
    )


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
