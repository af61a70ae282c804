"""The ledger's tables.

Idempotency lives here: unique keys make a replayed order line or movement a
no-op in the database itself, never a check-then-insert in Python.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Stored as naive UTC (the same on SQLite and PostgreSQL), returned timezone-aware."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ledger; use timezone-aware UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


class Sku(SQLModel, table=True):
    __tablename__ = "sku"
    sku: str = Field(primary_key=True, max_length=200)
    title: str = ""
    barcodes: str = ""  # GTIN/EAN/UPC, comma separated
    on_hand: int = 0
    reserved: int = 0
    safety_stock: int = 0
    counted_at: datetime | None = _ts()  # the latest stock count (set / import)
    updated_at: datetime | None = _ts()


class KitComponent(SQLModel, table=True):
    __tablename__ = "kit_component"
    kit_sku: str = Field(primary_key=True, max_length=200)
    component_sku: str = Field(primary_key=True, max_length=200, index=True)
    quantity: int


class ChannelState(SQLModel, table=True):
    __tablename__ = "channel_state"
    name: str = Field(primary_key=True, max_length=200)
    cursor: datetime | None = _ts()  # orders changed before this are applied
    pull_started_at: datetime | None = _ts()  # the watermark: start of the latest complete pull
    pulled_at: datetime | None = _ts()
    pushed_at: datetime | None = _ts()
    discovered_at: datetime | None = _ts()
    reconciled_at: datetime | None = _ts()
    rules_hash: str = ""
    last_error: str = ""
    last_error_at: datetime | None = _ts()
    stale_compares: int = 0  # writes refused by compare-and-set (the channel changed first)
    stale_at: datetime | None = _ts()
    # JSON {"orders": iso time, ...}: calls a rate limit deferred, and when they are allowed
    deferred: str = Field(default="{}", sa_column_kwargs={"server_default": "{}"})
    # JSON {"since", "page", "started"}: a pull stopped after a committed page goes on there
    pull_resume: str = Field(default="", sa_column_kwargs={"server_default": ""})


class Listing(SQLModel, table=True):
    __tablename__ = "listing"
    __table_args__ = (
        sa.UniqueConstraint("channel", "channel_sku"),
        # The planner looks for never-pushed listings every cycle: without this it scans
        # the whole catalog, and a cycle where nothing changed grows with it.
        sa.Index("ix_listing_unpushed", "channel", sqlite_where=sa.text("last_pushed IS NULL"),
                 postgresql_where=sa.text("last_pushed IS NULL")),
    )
    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=200)
    channel_sku: str = Field(max_length=200)
    sku: str = Field(max_length=200, index=True)  # master SKU or kit
    ref: str = ""  # the channel's address for the listing (product id, item id, ...)
    managed: bool = True  # False: the channel owns the stock (FBA); never pushed
    channel_quantity: int | None = None  # as last read from the channel
    read_at: datetime | None = _ts()
    shown_since: datetime | None = _ts()  # the first read showing channel_quantity
    last_pushed: int | None = None
    last_pushed_at: datetime | None = _ts()
    write_sent_at: datetime | None = _ts()  # when the last write that landed went out
    push_failures: int = 0
    # What the channel is believed to show as of believed_at (set on a push, a read, and a
    # refused compare-and-set); what a compare-and-set write expects, less later sales.
    believed: int | None = None
    believed_at: datetime | None = _ts()
    revisions_day: str = ""  # the channel's day the count below is for (daily revision caps)
    revisions: int = 0
    # A read showed more than pushed (corrected at once): judged as drift or not once the
    # channel's order lag has passed (a cancellation there may explain it). See readback.
    drift_seen_at: datetime | None = _ts()
    drift_excess: int | None = None
    drift_observed: int | None = None
    drift_expected: int | None = None
    drift_since: datetime | None = _ts()  # cancellations seen since then explain the excess


class OrderLine(SQLModel, table=True):
    __tablename__ = "order_line"
    __table_args__ = (
        sa.UniqueConstraint("channel", "order_id", "line_id"),
        sa.Index("ix_order_line_pending", "state", "sku"),
        # What compare-and-set writes expect is found from lines seen since a time.
        sa.Index("ix_order_line_seen", "channel", "first_seen_at"),
        sa.Index("ix_order_line_cancel_seen", "channel", "cancel_seen_at",
                 sqlite_where=sa.text("cancel_seen_at IS NOT NULL"),
                 postgresql_where=sa.text("cancel_seen_at IS NOT NULL")),
    )
    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=200)
    order_id: str = Field(max_length=200)
    line_id: str = Field(max_length=200)
    channel_sku: str = ""
    sku: str = ""  # master SKU or kit, as mapped when applied
    status: str = ""
    ordered: int = 0
    shipped: int = 0
    cancelled: int = 0
    restocked: int = 0
    changed_at: datetime | None = _ts()
    first_seen_at: datetime | None = _ts()  # when this ledger first applied the line
    cancel_seen_at: datetime | None = _ts()  # when it last saw more units cancelled
    version: int = 0
    state: str = "new"  # new | applied | pending (unknown SKU) | ignored
    committed: int = 0  # units of this line taken off on_hand (per kit unit)
    restock_applied: int = 0


class Reservation(SQLModel, table=True):
    __tablename__ = "reservation"
    line_id: int = Field(primary_key=True, foreign_key="order_line.id")
    sku: str = Field(primary_key=True, max_length=200, index=True)
    quantity: int


class Movement(SQLModel, table=True):
    __tablename__ = "movement"
    id: int | None = Field(default=None, primary_key=True)
    sku: str = Field(max_length=200, index=True)
    kind: str  # reserve | release | commit | restock | set | adjust | import
    on_hand_delta: int = 0
    reserved_delta: int = 0
    reason: str = ""
    source: str = ""  # channel:order:line, cli, or web:<dashboard user>
    idempotency_key: str = Field(max_length=400, unique=True)
    created_at: datetime | None = _ts()


class Outbox(SQLModel, table=True):
    __tablename__ = "outbox"
    id: int | None = Field(default=None, primary_key=True)
    listing_id: int = Field(foreign_key="listing.id", unique=True)
    channel: str = Field(max_length=200, index=True)
    target: int
    previous: int | None = None  # what was last pushed when this was planned
    version: int = 1
    planned_at: datetime | None = _ts()
    attempts: int = 0
    next_attempt_at: datetime | None = _ts()
    last_error: str = ""
    sent: int | None = None  # sent in a write whose outcome is unknown (a timeout, a 5xx)
    sent_at: datetime | None = _ts()  # when that write went out
    # A write the channel is still processing (an Amazon feed): no other write to the
    # listing goes out until its outcome is known. pending_index: its place in that write.
    pending: str = Field(default="", sa_column_kwargs={"server_default": ""})
    pending_at: datetime | None = _ts()
    pending_index: int | None = None


class PushLog(SQLModel, table=True):
    """Every write sent to a channel, with what it was computed from: invariant 3 (every
    change of a pushed quantity is explained) and the checks of a simulation read it."""

    __tablename__ = "push_log"
    __table_args__ = (
        sa.Index("ix_push_log_listing", "listing_id", "sent_at"),
        sa.Index("ix_push_log_channel", "channel", "sent_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    listing_id: int
    channel: str = Field(max_length=200)
    channel_sku: str = Field(max_length=200)
    sku: str = Field(max_length=200)
    quantity: int  # what was sent
    previous: int | None = None  # what had last been pushed to the listing
    available: int | None = None  # the ledger's available units for the SKU or kit then
    watermark: datetime | None = _ts()  # the channel's orders were all in up to this pull
    sent_at: datetime | None = _ts()
    outcome: str = ""  # ok | failed | stale | pending
    detail: str = ""


class Conflict(SQLModel, table=True):
    __tablename__ = "conflict"
    __table_args__ = (
        sa.Index(
            "uq_conflict_open",
            "kind",
            "subject",
            unique=True,
            sqlite_where=sa.text("resolved_at IS NULL"),
            postgresql_where=sa.text("resolved_at IS NULL"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    kind: str  # oversell | unknown_sku | push_failed | drift | bad_record
    subject: str = Field(max_length=400)
    sku: str | None = None
    channel: str | None = None
    message: str = ""
    detail: str = "{}"  # JSON
    opened_at: datetime | None = _ts()
    last_seen_at: datetime | None = _ts()
    acked_at: datetime | None = _ts()
    resolved_at: datetime | None = _ts()
    notified_at: datetime | None = _ts()  # the last alert sent for it
    resolved_notified_at: datetime | None = _ts()  # the 'resolved' notice sent


metadata = SQLModel.metadata


# The tables as SQLAlchemy Core sees them: what the hot paths query and write.
sku_t = Sku.__table__  # type: ignore[attr-defined]
kit_t = KitComponent.__table__  # type: ignore[attr-defined]
line_t = OrderLine.__table__  # type: ignore[attr-defined]
res_t = Reservation.__table__  # type: ignore[attr-defined]
mov_t = Movement.__table__  # type: ignore[attr-defined]
state_t = ChannelState.__table__  # type: ignore[attr-defined]
listing_t = Listing.__table__  # type: ignore[attr-defined]
outbox_t = Outbox.__table__  # type: ignore[attr-defined]
conflict_t = Conflict.__table__  # type: ignore[attr-defined]
push_log_t = PushLog.__table__  # type: ignore[attr-defined]

