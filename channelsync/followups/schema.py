"""The follow-ups table: one row per (rule, order), written before the message is sent, so
a crash between the two cannot send it twice (a row found ``sending`` after a restart is
not sent again without the seller's say: see ``channelsync.followups``)."""

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
    state: str = "sending"  # sending | sent | failed | skipped
    attempts: int = 0
    next_attempt_at: datetime | None = _ts()
    recorded_at: datetime | None = _ts()
    sent_at: datetime | None = _ts()
    last_error: str = ""
    subject: str = ""  # as rendered
    body: str = ""  # as rendered (emptied when the buyer is forgotten)


followup_t = Followup.__table__  # type: ignore[attr-defined]
