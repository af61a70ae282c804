"""Plan: what each listing should show, and the outbox of differences to push.

Only listings whose SKU (or a kit's component) was touched, whose rules changed,
or that were never pushed are looked at, so a cycle where nothing changed costs
the same for a hundred SKUs as for a hundred thousand.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from channelsync.config import Config
from channelsync.ledger.apply import chunks
from channelsync.ledger.availability import affected, availability
from channelsync.ledger.conflicts import dialect_insert
from channelsync.ledger.schema import listing_t, outbox_t
from channelsync.sync import rules


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
    conn: Connection, config: Config, listings: Sequence[dict[str, Any]]
) -> list[PlanItem]:
    avail = availability(conn, {row["sku"] for row in listings})
    items = []
    for row in listings:
        channel, sku = row["channel"], row["sku"]
        rule = rules.resolve(config, channel, sku)
        target: int | None = None
        if not row["managed"]:
            trace = "not pushed: the channel owns this stock"
        elif sku not in avail:
            trace = f"not pushed: {sku!r} is not in the ledger"
        elif not rule.sync:
            trace = f"not pushed: sync is off (rules: {', '.join(rule.sources)})"
        else:
            target, trace = rule.target(avail[sku].available)
            trace = f"{avail[sku].detail}; {trace}"
        items.append(PlanItem(row["id"], channel, row["channel_sku"], sku, row["last_pushed"],
                              target, trace, avail[sku].available if sku in avail else None))
    return items


def select_listings(
    conn: Connection,
    channels: Sequence[str],
    *,
    skus: Iterable[str] | None = None,
    unpushed: bool = False,
) -> list[dict[str, Any]]:
    """Listings of these channels: all of them, or those of the SKUs (and never pushed ones)."""
    base = sa.select(listing_t).where(listing_t.c.channel.in_(channels))
    if skus is None:
        return [dict(r) for r in conn.execute(base.order_by(listing_t.c.id)).mappings()]
    found: dict[int, dict[str, Any]] = {}
    for chunk in chunks(sorted(set(skus))):
        for r in conn.execute(base.where(listing_t.c.sku.in_(chunk))).mappings():
            found[r["id"]] = dict(r)
    if unpushed:
        query = base.where(listing_t.c.last_pushed.is_(None), listing_t.c.managed.is_(True))
        for r in conn.execute(query).mappings():
            found[r["id"]] = dict(r)
    return [found[k] for k in sorted(found)]


def write_outbox(conn: Connection, items: Iterable[PlanItem], now: datetime) -> int:
    """Coalesce differences into the outbox (one row per listing; the newest target wins)."""
    changed = [i for i in items if i.changes]
    settled = {i.listing_id: i for i in items if not i.changes}
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
    for item in changed:
        stmt = dialect_insert(conn, outbox_t).values(
            listing_id=item.listing_id, channel=item.channel, target=item.target,
            previous=item.current, version=1, planned_at=now, next_attempt_at=now,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["listing_id"],
            set_={"target": stmt.excluded.target, "previous": stmt.excluded.previous,
                  "version": outbox_t.c.version + 1, "planned_at": now},
            where=outbox_t.c.target != stmt.excluded.target,
        )
        conn.execute(stmt)
    return len(changed)


def plan(
    conn: Connection,
    config: Config,
    channels: Sequence[str],
    *,
    touched: Iterable[str] | None,
    now: datetime,
) -> list[PlanItem]:
    """Plan the listings of touched SKUs (None: all listings) and fill the outbox."""
    skus = None if touched is None else affected(conn, touched)
    listings = select_listings(conn, channels, skus=skus, unpushed=True)
    items = targets(conn, config, listings)
    write_outbox(conn, items, now)
    return items
