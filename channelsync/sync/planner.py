"""Plan: what each listing should show, and the outbox of differences to push.

Only listings whose SKU (or a kit's component) was touched, whose rules changed,
or that were never pushed are looked at, so a cycle where nothing changed costs
the same for a hundred SKUs as for a hundred thousand.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from channelsync.config import Config
from channelsync.ledger.apply import chunks
from channelsync.ledger.availability import Availability, affected, availability
from channelsync.ledger.schema import listing_t, outbox_t
from channelsync.sync import rules

PLAN_PAGE = 2_000  # listings planned at a time

# What a plan reads of a listing (``targets``).
_PLANNED = (listing_t.c.id, listing_t.c.channel, listing_t.c.channel_sku, listing_t.c.sku,
            listing_t.c.managed, listing_t.c.last_pushed)


@dataclass(frozen=True)
class PlanItem:
    listing_id: int
    channel: str
    channel_sku: str
    sku: str
    current: int | None  # what was last pushed
    target: int | None  # None: not pushed (sync off, unowned stock, unknown SKU)
    trace: str
    available: int | None = None  # what the ledger had for the SKU (or kit) it came from

    @property
    def changes(self) -> bool:
        return self.target is not None and self.target != self.current


def targets(
    conn: Connection, config: Config, listings: Sequence[Mapping[Any, Any]], *,
    trace: bool = True,
) -> list[PlanItem]:
    """What each listing should show; ``trace=False`` leaves out how a target was reached
    (a plan does not keep it; explain, the dashboard and the CLI show it)."""
    found = availability(conn, {row["sku"] for row in listings})
    available = {sku: a.available for sku, a in found.items()}
    return _items(config, listings, available, found if trace else None)


def _items(
    config: Config, listings: Sequence[Mapping[Any, Any]],
    available: Mapping[str, int | None], traced: Mapping[str, Availability] | None,
) -> list[PlanItem]:
    resolve = rules.Resolver(config)
    items = []
    for row in listings:
        channel, sku = row["channel"], row["sku"]
        rule = resolve(channel, sku)
        units = available.get(sku)
        target: int | None = None
        if not row["managed"]:
            why = "not pushed: the channel owns this stock"
        elif units is None:
            why = f"not pushed: {sku!r} is not in the ledger"
        elif not rule.sync:
            why = f"not pushed: sync is off (rules: {', '.join(rule.sources)})"
        elif traced is None:
            target, why = rule.quantity(units), ""
        else:
            target, why = rule.target(units)
            why = f"{traced[sku].detail}; {why}"
        items.append(PlanItem(row["id"], channel, row["channel_sku"], sku, row["last_pushed"],
                              target, why, units))
    return items


def select_listings(
    conn: Connection,
    channels: Sequence[str],
    *,
    skus: Iterable[str] | None = None,
    unpushed: bool = False,
) -> list[dict[str, Any]]:
    """Listings of these channels: all of them, or those of the SKUs (and never pushed ones)."""
    return [dict(r) for r in _listings(conn, sa.select(listing_t), channels, skus, unpushed)]


def _listings(
    conn: Connection, query: sa.Select[Any], channels: Sequence[str],
    skus: Iterable[str] | None, unpushed: bool,
) -> list[sa.RowMapping]:
    """``select_listings`` with the columns of ``query``, which must hold id and channel."""
    base = query.where(listing_t.c.channel.in_(channels))
    if skus is None:
        return list(conn.execute(base.order_by(listing_t.c.id)).mappings())
    found: dict[int, sa.RowMapping] = {}
    wanted = set(channels)
    for chunk in chunks(sorted(set(skus))):
        # By SKU alone, the channel checked here: with the channel in the query too, SQLite
        # reads every listing of the channel (its unique index) instead of these SKUs'.
        for r in conn.execute(query.where(listing_t.c.sku.in_(chunk))).mappings():
            if r["channel"] in wanted:
                found[r["id"]] = r
    if unpushed:
        query = base.where(listing_t.c.last_pushed.is_(None), listing_t.c.managed.is_(True))
        for r in conn.execute(query).mappings():
            found[r["id"]] = r
    return [found[k] for k in sorted(found)]


def write_outbox(conn: Connection, items: Iterable[PlanItem], now: datetime) -> int:
    """Coalesce differences into the outbox (one row per listing; the newest target wins)."""
    changed: list[PlanItem] = []
    settled: dict[int, PlanItem] = {}
    for item in items:
        if item.changes:
            changed.append(item)
        else:
            settled[item.listing_id] = item
    for chunk in chunks(list(settled)):
        conn.execute(outbox_t.delete().where(outbox_t.c.listing_id.in_(chunk),
                                             outbox_t.c.pending == "", outbox_t.c.sent.is_(None)))
        # What stays is a write out right now, or one the channel is still processing. It
        # may land after this plan, and then the listing shows what it carried: keep the
        # row, for what is planned now (a new version, so its answer does not settle it).
        in_flight = conn.execute(sa.select(outbox_t.c.listing_id).where(
            outbox_t.c.listing_id.in_(chunk))).scalars().all()
        for listing_id in in_flight:
            item = settled[listing_id]
            if item.target is None:
                continue
            conn.execute(outbox_t.update().where(
                outbox_t.c.listing_id == listing_id, outbox_t.c.target != item.target,
            ).values(target=item.target, previous=item.current,
                     version=outbox_t.c.version + 1, planned_at=now))
    if changed:
        conn.execute(_coalesce(conn.dialect, now), [
            {"b_listing": i.listing_id, "b_channel": i.channel, "b_target": i.target,
             "b_previous": i.current} for i in changed], execution_options={"compiled_cache": None})
    return len(changed)


@functools.lru_cache(maxsize=1)  # the pages of one plan share it
def _coalesce(dialect: sa.Dialect, now: datetime) -> Any:
    """Insert outbox rows, or give a listing's row its new target: one statement for many
    rows. Each bound value is converted once per row, so what every row shares (``now``,
    a new row's first version and defaults) is written into the SQL; the statement is
    then one of a kind, and not kept in the compiled cache."""

    def constant(value: Any, type_: Any) -> Any:
        sql = sa.literal(value, type_).compile(dialect=dialect,
                                               compile_kwargs={"literal_binds": True})
        return sa.literal_column(str(sql), type_)

    shared = {c: constant(outbox_t.c[c].default.arg, outbox_t.c[c].type)
              for c in ("version", "attempts", "last_error", "pending")}
    planned = constant(now, outbox_t.c.planned_at.type)
    insert = (postgresql.insert if dialect.name == "postgresql" else sqlite.insert)(
        outbox_t).values(
        listing_id=sa.bindparam("b_listing"), channel=sa.bindparam("b_channel"),
        target=sa.bindparam("b_target"), previous=sa.bindparam("b_previous"),
        planned_at=planned, next_attempt_at=planned, **shared)
    return insert.on_conflict_do_update(
        index_elements=["listing_id"],
        set_={"target": insert.excluded.target, "previous": insert.excluded.previous,
              "version": outbox_t.c.version + constant(1, outbox_t.c.version.type),
              "planned_at": planned},
        where=outbox_t.c.target != insert.excluded.target,
    )


def plan(
    conn: Connection,
    config: Config,
    channels: Sequence[str],
    *,
    touched: Iterable[str] | None,
    now: datetime,
) -> int:
    """Plan the listings of touched SKUs (None: all listings) and fill the outbox; returns
    how many listings need a push. A page of listings at a time, in id order, so memory
    stays flat whatever the catalog."""
    changed = 0
    known: dict[str, int | None] = {}  # available units: a SKU's listings span pages
    for page in _plan_pages(conn, channels, touched):
        wanted = {sku for row in page if (sku := row["sku"]) not in known}
        found = availability(conn, wanted)
        known.update({sku: found[sku].available if sku in found else None for sku in wanted})
        changed += write_outbox(conn, _items(config, page, known, None), now)
    return changed


def _plan_pages(
    conn: Connection, channels: Sequence[str], touched: Iterable[str] | None
) -> Iterator[Sequence[Mapping[Any, Any]]]:
    query = sa.select(*_PLANNED)
    if touched is not None:  # their ids first: a page of rows is held at a time
        found = _listings(conn, sa.select(listing_t.c.id, listing_t.c.channel), channels,
                          affected(conn, touched), unpushed=True)
        ids = [r["id"] for r in found]
        del found
        for first in range(0, len(ids), PLAN_PAGE):
            page: list[dict[str, Any]] = []
            for chunk in chunks(ids[first:first + PLAN_PAGE]):
                page += _dicts(conn.execute(query.where(listing_t.c.id.in_(chunk))
                                            .order_by(listing_t.c.id)))
            yield page
        return
    wanted, after = set(channels), None
    while True:
        # By id alone, the channel checked here: with the channel in the query, SQLite
        # sorts every listing of the channels for each page.
        paged = query if after is None else query.where(listing_t.c.id > after)
        rows = _dicts(conn.execute(paged.order_by(listing_t.c.id).limit(PLAN_PAGE)))
        if not rows:
            return
        after = rows[-1]["id"]
        yield [r for r in rows if r["channel"] in wanted]


def _dicts(result: sa.CursorResult[Any]) -> list[dict[str, Any]]:
    """Rows as plain dicts: quicker to read than row mappings, for many rows."""
    keys = tuple(result.keys())
    return [dict(zip(keys, row, strict=True)) for row in result]
