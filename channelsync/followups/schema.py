"""The follow-ups table: one row per (rule, order), written before the message is sent, so
that the unique key, not a check, decides that an order gets a rule's follow-up once. A row
found ``sending`` after a crash is sent then (``channelsync.followups.run`` says exactly
how often each destination can get it)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from channelsync.ledger.schema import UTCDateTime


def _ts() -> datetime | None:
    return Field(default=None, sa_type=UTCDateTime, nullable=True)


class Followup(SQLModel, table=True):
    __tablename__ = "followup"
    __table_args__ = (sa.UniqueConstraint("rule", "channel", "order_id"),
                      sa.Index("ix_followup_state", "state", "next_attempt_at"))
    id: int | None = Field(default=None, primary_key=True)
    rule: str = Field(max_length=100)
    channel: str = Field(max_length=200)
    order_id: str = Field(max_length=200)
    due_at: datetime | None = _ts()
    state: str = "sending"  # sending (or waiting to retry) | sent | failed | skipped
    attempts: int = 0
    next_attempt_at: datetime | None = _ts()  # a retry's time, or the sender's lease
    recorded_at: datetime | None = _ts()
    sent_at: datetime | None = _ts()
    last_error: str = ""
    subject: str = ""  # as rendered
    body: str = ""  # as rendered (emptied when the buyer is forgotten)


followup_t = Followup.__table__  # type: ignore[attr-defined]
