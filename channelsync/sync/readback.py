"""Reading a channel's listings back: discovery, what each shows, and drift.

A listing that shows something other than what was pushed is not drift by itself:
- it may show a write of ours whose answer was lost (a timeout after the channel applied
  it): the outbox remembers what was sent, and a listing showing exactly that took it;
- it may show less because it sold there: if the ledger holds sales there since our last
  write that account for the difference, it is no drift and the target is pushed; if not,
  the sale may not be pulled yet and the engine waits until the channel has shown the same
  for at least its lag before calling it drift;
- it may show more because an order was cancelled there and the channel put the units back
  before it reports the cancellation (Amazon and eBay report orders minutes late). More is
  corrected at once, the safe direction, but it is only a *suspect*: once the lag has
  passed, it is drift (an alert) only if no cancellation the ledger has seen since
  explains the excess.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from channelsync.config import ChannelConfig
from channelsync.connector import ChannelListing, ListingProblem
from channelsync.ledger.apply import chunks
from channelsync.ledger.conflicts import ConflictRecord, open_conflicts, resolve_conflicts
from channelsync.ledger.schema import conflict_t, kit_t, line_t, listing_t, outbox_t, sku_t

log = logging.getLogger(__name__)
INSERT_BATCH = 2_000  # listings inserted or updated at a time


@dataclass(frozen=True)
class Drift:
    channel_sku: str
    sku: str
    observed: int
    expected: int
    steady_since: datetime | None = None  # the channel has shown this since (reads)


@dataclass
class Found:
    new_skus: set[str] = field(default_factory=set)
    mismatched: list[Drift] = field(default_factory=list)
    in_line: list[str] = field(default_factory=list)  # channel SKUs showing what was pushed
    landed: int = 0  # writes whose answer was lost, found applied on the channel


def record_listings(
    conn: Connection, channel: ChannelConfig, listings: Sequence[ChannelListing], now: datetime
) -> Found:
    """Upsert the channel's listings; report new ones and those not showing what was pushed."""
    found = Found()
    existing = {
        r["channel_sku"]: dict(r)
        for r in conn.execute(sa.select(*_COMPARED).where(listing_t.c.channel == channel.name))
        .mappings()
    }
    sent = _unconfirmed_writes(conn, channel.name)
    inserts: list[dict[str, Any]] = []
    updates = _Updates(conn)
    for item in listings:
        sku = channel.master_sku(item.channel_sku)
        old = existing.get(item.channel_sku)
        values: dict[str, Any] = {"sku": sku, "managed": item.managed,
                                  "channel_quantity": item.quantity, "read_at": now}
        if item.quantity is not None:
            values.update(believed=item.quantity, believed_at=now)
        if old is None or old["channel_quantity"] != item.quantity:
            values["shown_since"] = now
        if item.ref:
            values["ref"] = item.ref
        if old is None:
            inserts.append({"channel": channel.name, "channel_sku": item.channel_sku,
                            "ref": item.ref, **values})
            found.new_skus.add(sku)
            if len(inserts) == INSERT_BATCH:  # what is held stays a batch's worth
                conn.execute(listing_t.insert(), inserts)
                inserts = []
            continue
        if old["sku"] != sku:
            found.new_skus.add(sku)
        unconfirmed, sent_at = sent.get(old["id"], (None, None))
        if item.quantity is not None and item.quantity == unconfirmed \
                and item.quantity != old["last_pushed"]:
            # A write whose answer never came: the channel applied it.
            values.update(last_pushed=item.quantity, last_pushed_at=now,
                          write_sent_at=sent_at or now)
            old["last_pushed"] = item.quantity
            found.landed += 1
        updates.add(old["id"], values)
        if old["last_pushed"] is None or item.quantity is None or not item.managed:
            continue
        if item.quantity != old["last_pushed"]:
            steady = (old["shown_since"] or old["read_at"]) \
                if old["channel_quantity"] == item.quantity else None
            if steady is not None and old["last_pushed_at"] is not None:
                # A write that landed since that read showed what it carried: the channel
                # has shown this again only since then.
                steady = max(steady, old["last_pushed_at"])
            found.mismatched.append(
                Drift(item.channel_sku, sku, item.quantity, old["last_pushed"], steady))
        else:
            found.in_line.append(item.channel_sku)
    if inserts:
        conn.execute(listing_t.insert(), inserts)
    updates.flush()
    if found.landed:
        log.info("%s: %d writes whose answer was lost were found applied", channel.name,
                 found.landed)
    return found


# What a read is compared with, of each listing the channel had.
_COMPARED = (listing_t.c.id, listing_t.c.channel_sku, listing_t.c.sku,
             listing_t.c.channel_quantity, listing_t.c.shown_since, listing_t.c.read_at,
             listing_t.c.last_pushed, listing_t.c.last_pushed_at)


class _Updates:
    """Listing updates, INSERT_BATCH at a time: one statement for each set of columns."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pending: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        self.ids: set[int] = set()

    def add(self, listing_id: int, values: dict[str, Any]) -> None:
        if listing_id in self.ids:  # read twice: its updates go in the order read
            self.flush()
        self.ids.add(listing_id)
        self.pending.setdefault(tuple(values), []).append(
            {"b_id": listing_id, **{f"b_{k}": v for k, v in values.items()}})
        if len(self.ids) == INSERT_BATCH:
            self.flush()

    def flush(self) -> None:
        for columns, params in self.pending.items():
            self.conn.execute(listing_t.update().where(listing_t.c.id == sa.bindparam("b_id"))
                              .values({c: sa.bindparam(f"b_{c}") for c in columns}), params)
        self.pending.clear()
        self.ids.clear()


def _unconfirmed_writes(
    conn: Connection, channel: str
) -> dict[int, tuple[int, datetime | None]]:
    """listing id -> the quantity last sent to it in a write whose outcome is unknown, and
    when that write went out."""
    rows = conn.execute(sa.select(outbox_t.c.listing_id, outbox_t.c.sent, outbox_t.c.sent_at)
                        .where(outbox_t.c.channel == channel, outbox_t.c.sent.is_not(None)))
    return {listing_id: (sent, sent_at) for listing_id, sent, sent_at in rows}


def suspect(conn: Connection, channel: str, higher: Sequence[Drift], now: datetime) -> None:
    """Listings showing more than pushed: remember the excess, to judge after the lag, and
    since when a cancellation explains it (our last write to the listing: what the channel
    put back since then is what it shows more)."""
    for d in higher:
        conn.execute(listing_t.update().where(
            listing_t.c.channel == channel, listing_t.c.channel_sku == d.channel_sku,
            listing_t.c.drift_seen_at.is_(None),
        ).values(drift_seen_at=now, drift_excess=d.observed - d.expected,
                 drift_observed=d.observed, drift_expected=d.expected,
                 drift_since=sa.func.coalesce(listing_t.c.last_pushed_at, now)))


def explained(conn: Connection, channel: str, lower: Sequence[Drift]) -> list[Drift]:
    """Listings showing less than pushed by no more than the units sold there in orders
    pulled since our last write that landed went out (a deferred, refused or failed write
    carried nothing, so it does not move that moment). The channel took those units off itself; the
    ledger holds those sales, so the target already counts them, and pushing it is no
    riskier than any push. Not drift: without this, a sale there and a restock elsewhere
    in one cycle leave the target where it was, nothing is pushed, and the listing stays
    a unit short for good."""
    out = []
    for d in lower:
        since = conn.execute(sa.select(
            sa.func.coalesce(listing_t.c.write_sent_at, listing_t.c.last_pushed_at)
        ).where(listing_t.c.channel == channel, listing_t.c.channel_sku == d.channel_sku)
        ).scalar()
        if since is None:
            continue
        sold = conn.execute(sa.select(
            sa.func.coalesce(sa.func.sum(line_t.c.ordered - line_t.c.cancelled), 0)
        ).where(line_t.c.channel == channel, line_t.c.channel_sku == d.channel_sku,
                line_t.c.first_seen_at > since)).scalar()
        if d.expected - d.observed <= int(sold or 0):
            out.append(d)
    return out


def judge(conn: Connection, channel: str, now: datetime, lag: timedelta) -> list[Drift]:
    """Suspects older than the channel's lag that no cancellation seen since explains:
    drift (an edit on the channel, a lost push, a missed order). Each is judged once."""
    rows = [dict(r) for r in conn.execute(sa.select(
        listing_t.c.id, listing_t.c.channel_sku, listing_t.c.sku, listing_t.c.drift_seen_at,
        listing_t.c.drift_excess, listing_t.c.drift_observed, listing_t.c.drift_expected,
        listing_t.c.drift_since,
    ).where(listing_t.c.channel == channel, listing_t.c.drift_seen_at.is_not(None),
            listing_t.c.drift_seen_at <= now - lag)).mappings()]
    drift = []
    for row in rows:
        cancelled = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(line_t.c.cancelled), 0))
                                 .where(line_t.c.channel == channel,
                                        line_t.c.channel_sku == row["channel_sku"],
                                        line_t.c.cancel_seen_at >= row["drift_since"])).scalar()
        if int(cancelled or 0) < row["drift_excess"]:
            drift.append(Drift(row["channel_sku"], row["sku"], row["drift_observed"],
                               row["drift_expected"]))
        else:
            log.info("%s: %s showed %d more than pushed: a cancellation there, now pulled",
                     channel, row["channel_sku"], row["drift_excess"])
    for chunk in chunks([r["id"] for r in rows]):
        conn.execute(listing_t.update().where(listing_t.c.id.in_(chunk)).values(
            drift_seen_at=None, drift_excess=None, drift_observed=None, drift_expected=None,
            drift_since=None))
    return drift


def drift_conflict(channel: str, d: Drift) -> ConflictRecord:
    return ConflictRecord(
        kind="drift", subject=f"{channel}:{d.channel_sku}", channel=channel, sku=d.sku,
        message=(f"{channel}: {d.channel_sku} showed {d.observed} but {d.expected} was pushed "
                 "(edited on the channel, a missed order or a lost push); corrected"),
        detail={"observed": d.observed, "expected": d.expected},
    )


def listing_problems(
    conn: Connection, channel: str, problems: Sequence[ListingProblem], now: datetime
) -> list[int]:
    """Open a conflict for each problem a read reported; resolve those it no longer does."""
    records = [ConflictRecord(
        kind="listing_problem", subject=f"{channel}:{p.channel_sku}", channel=channel,
        message=f"{channel}: listing {p.channel_sku}: {p.reason}",
        detail={"reason": p.reason, "detail": p.detail},
    ) for p in problems]
    for record in records:
        log.warning("%s", record.message)
    reported = {r.subject for r in records}
    gone = [s for s in conn.execute(sa.select(conflict_t.c.subject).where(
        conflict_t.c.kind == "listing_problem", conflict_t.c.channel == channel,
        conflict_t.c.resolved_at.is_(None))).scalars() if s not in reported]
    for chunk in chunks(gone):
        resolve_conflicts(conn, "listing_problem", chunk, now)
    return open_conflicts(conn, records, now)


def accept_observed(conn: Connection, channel: str, drift: Sequence[Drift]) -> None:
    """Take what the channel shows as its current quantity, so the plan corrects it."""
    for d in drift:
        conn.execute(listing_t.update().where(
            listing_t.c.channel == channel, listing_t.c.channel_sku == d.channel_sku
        ).values(last_pushed=d.observed))


def unmapped(conn: Connection, channel: str) -> list[str]:
    """Channel SKUs whose master SKU is neither in the ledger nor a kit."""
    # NOT EXISTS, not NOT IN: PostgreSQL turns a NOT IN over a large subquery quadratic.
    is_sku = sa.exists().where(sku_t.c.sku == listing_t.c.sku)
    is_kit = sa.exists().where(kit_t.c.kit_sku == listing_t.c.sku)
    query = (
        sa.select(listing_t.c.channel_sku)
        .where(listing_t.c.channel == channel, ~is_sku, ~is_kit)
        .order_by(listing_t.c.channel_sku)
    )
    return list(conn.execute(query).scalars())
