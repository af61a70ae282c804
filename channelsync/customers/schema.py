"""The customers' tables: a buyer is a salted hash and a display name, never an address.

``buyer.key`` is the hash a buyer is recognised by across channels (of the normalised
email where a channel gives one, else of the channel's buyer id within that channel);
``buyer_alias`` maps the other hashes seen on the same orders (a channel's buyer id beside
the email) to it, so an order that carries only one of them still finds its buyer.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from channelsync.ledger.schema import UTCDateTime


def _ts() -> datetime | None:
    return Field(default=None, sa_type=UTCDateTime, nullable=True)


class Buyer(SQLModel, table=True):
    __tablename__ = "buyer"
    __table_args__ = (sa.Index("ix_buyer_last_order", "last_order_at"),)
    key: str = Field(primary_key=True, max_length=64)
    display_name: str = ""  # the latest order's, as the channel showed it
    first_seen_at: datetime | None = _ts()
    last_order_at: datetime | None = _ts()
    tier: str = ""  # the highest loyalty tier reached (kept once reached)
    tier_at: datetime | None = _ts()
    tier_order: str = ""  # "channel:order id" of the order that reached it


class BuyerAlias(SQLModel, table=True):
    __tablename__ = "buyer_alias"
    __table_args__ = (sa.Index("ix_buyer_alias_buyer", "buyer_key"),)
    alias: str = Field(primary_key=True, max_length=64)
    buyer_key: str = Field(max_length=64)


buyer_t = Buyer.__table__  # type: ignore[attr-defined]
alias_t = BuyerAlias.__table__  # type: ignore[attr-defined]
