"""The order book's tables: one row per order (channel, order id), its stage changes, and
the shipments to confirm on its channel."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from channelsync.ledger.schema import UTCDateTime


def _ts(index: bool = False) -> datetime | None:
    return Field(default=None, sa_type=UTCDateTime, nullable=True, index=index)


class SalesOrder(SQLModel, table=True):
    """An order as the book knows it. ``stage`` is what the seller sees, from the channel's
    stage, the seller's own step (``local_stage``: picked, packed) and the lines' units."""

    __tablename__ = "sales_order"
    __table_args__ = (
        sa.UniqueConstraint("channel", "order_id"),
        sa.Index("ix_sales_order_stage", "stage", "updated_at"),
        sa.Index("ix_sales_order_placed", "placed_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=200)
    order_id: str = Field(max_length=200)
    status: str = ""  # the channel's own word
    channel_stage: str = ""  # what the channel's status means (connector.CHANNEL_STAGES)
    local_stage: str = ""  # the seller's step: picked | packed
    stage: str = "received"
    placed_at: datetime | None = _ts()
    paid_at: datetime | None = _ts()
    changed_at: datetime | None = _ts()  # the channel's last change (its clock, corrected)
    first_seen_at: datetime | None = _ts()  # when the book first recorded it
    updated_at: datetime | None = _ts()  # the book's last change to the row
    buyer: str = ""  # a display name only
    total: str = ""  # the channel's decimal string
    currency: str = ""
    ordered: int = 0  # units over the order's lines
    shipped: int = 0
    cancelled: int = 0
    shipped_at: datetime | None = _ts()  # the channel's time, else when the book saw it
    delivered_at: datetime | None = _ts()  # the channel's, else assumed (assume_delivered_after)
    delivered_source: str = ""  # "channel" or "assumed"
    buyer_key: str = Field(default="", max_length=64, index=True)  # customers.identity
    tier: str = ""  # the loyalty tier its buyer reached with this order
    buyer_forgotten: bool = False  # erased (customers forget): a later pull does not restore it


class OrderEvent(SQLModel, table=True):
    """A stage change of an order, with when the book saw it and what caused it."""

    __tablename__ = "order_event"
    __table_args__ = (sa.Index("ix_order_event_order", "channel", "order_id", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=200)
    order_id: str = Field(max_length=200)
    stage: str
    previous: str = ""
    at: datetime | None = _ts()
    source: str = ""  # "channel" (a pull), "cli", "dashboard"
    detail: str = ""


class ShipmentRow(SQLModel, table=True):
    """A shipment to confirm on the order's channel: an outbox row like a quantity push,
    durable before it is sent, kept after (the order's history shows it)."""

    __tablename__ = "shipment"
    __table_args__ = (
        sa.Index("ix_shipment_due", "channel", "state", "next_attempt_at"),
        sa.Index("ix_shipment_order", "channel", "order_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=400, unique=True)  # the same on every try
    channel: str = Field(max_length=200)
    order_id: str = Field(max_length=200)
    carrier: str = ""
    tracking: str = ""
    lines: str = "[]"  # JSON: [{"line_id", "channel_sku", "sku", "quantity"}]
    completes: bool = True  # nothing of the order was left to ship after it
    state: str = "queued"  # queued | confirmed | refused
    attempts: int = 0
    next_attempt_at: datetime | None = _ts()
    sent_at: datetime | None = _ts()  # the last try went out (its answer may be lost)
    created_at: datetime | None = _ts()
    confirmed_at: datetime | None = _ts()
    ref: str = ""  # the channel's id for it
    last_error: str = ""
    source: str = ""  # cli, csv:FILE:LINE, dashboard


order_t = SalesOrder.__table__  # type: ignore[attr-defined]
event_t = OrderEvent.__table__  # type: ignore[attr-defined]
shipment_t = ShipmentRow.__table__  # type: ignore[attr-defined]
