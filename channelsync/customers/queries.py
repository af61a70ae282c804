"""Reading buyers (``channelsync customers``) and forgetting one.

A buyer is shown by the first 12 characters of their key (``id``), a display name, the
channels they bought on, their orders and spend within the loyalty window and their tier
now; never an email, which is not stored. ``forget`` erases what the book keeps of a buyer:
the buyer's row and aliases, the name, key and tier on their orders, the text of their
follow-ups. Their orders stay, with their lines and the stock movements they caused, so
stock history and counts are untouched; they are marked, so that the channels reporting
them again (every pull re-reads a few minutes) does not bring the buyer back. A new order
of theirs is a new order: recognised again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from channelsync.config import LoyaltyConfig
from channelsync.customers.identity import email_key
from channelsync.customers.loyalty import NOT_COUNTED, rank, standings, tier_of
from channelsync.customers.schema import alias_t, buyer_t
from channelsync.followups.schema import followup_t
from channelsync.orders.schema import order_t

SHOWN_ID = 12  # characters of a key shown as the buyer's id
MIN_ID = 8  # characters of an id that `forget` accepts


@dataclass
class Customer:
    key: str
    name: str
    channels: list[str]
    orders: int  # within the window, not cancelled
    spend: dict[str, Decimal]  # per currency, within the window
    tier: str  # now, from the window
    tag: str
    first_seen_at: datetime | None
    last_order_at: datetime | None
    all_orders: int = 0  # ever, cancelled ones too
    reached: str = ""  # the highest tier ever reached (alerted once)

    @property
    def id(self) -> str:
        return self.key[:SHOWN_ID]

    def as_json(self) -> dict[str, Any]:
        def iso(at: datetime | None) -> str | None:
            return at.isoformat() if at else None

        return {"id": self.id, "name": self.name, "channels": self.channels,
                "orders": self.orders, "orders_ever": self.all_orders,
                "spend": {c: str(a) for c, a in sorted(self.spend.items())},
                "tier": self.tier or None, "tag": self.tag or None,
                "highest_tier_reached": self.reached or None,
                "first_seen_at": iso(self.first_seen_at),
                "last_order_at": iso(self.last_order_at)}


@dataclass
class Forgotten:
    buyers: int = 0
    orders: int = 0
    followups: int = 0
    ids: list[str] = field(default_factory=list)


def list_customers(conn: Connection, loyalty: LoyaltyConfig, now: datetime, *,
                   tier: str | None = None, limit: int | None = None) -> list[Customer]:
    """Highest tier first, then by spend (the largest amount in any currency)."""
    rows = conn.execute(sa.select(buyer_t)).mappings().all()
    keys = [r["key"] for r in rows]
    window = standings(conn, keys, now - timedelta(days=loyalty.window_days))
    channels: dict[str, set[str]] = {}
    counts: dict[str, int] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        for key, channel, n in conn.execute(
                sa.select(order_t.c.buyer_key, order_t.c.channel, sa.func.count())
                .where(order_t.c.buyer_key.in_(chunk))
                .group_by(order_t.c.buyer_key, order_t.c.channel)):
            channels.setdefault(key, set()).add(channel)
            counts[key] = counts.get(key, 0) + int(n)
    tags = {t.name: t.tag for t in loyalty.tiers}
    found = []
    for row in rows:
        standing = window[row["key"]]
        now_tier = tier_of(standing, loyalty.tiers)
        if tier is not None and now_tier != tier:
            continue
        found.append(Customer(row["key"], row["display_name"], sorted(channels.get(row["key"],
                              ())), standing.orders, standing.spend, now_tier,
                              tags.get(now_tier, ""), row["first_seen_at"],
                              row["last_order_at"], counts.get(row["key"], 0), row["tier"]))
    found.sort(key=lambda c: (-rank(c.tier, loyalty.tiers),
                              -max(c.spend.values(), default=Decimal(0)), -c.orders, c.key))
    return found[:limit] if limit else found


def vip_keys(conn: Connection) -> list[str]:
    """Buyers who reached a tier."""
    return list(conn.execute(sa.select(buyer_t.c.key).where(buyer_t.c.tier != "")).scalars())


def tiers_of(conn: Connection, keys: Sequence[str]) -> dict[str, str]:
    """The highest tier each of these buyers reached ("" none)."""
    out: dict[str, str] = {}
    wanted = sorted({k for k in keys if k})
    for start in range(0, len(wanted), 500):
        out.update({key: tier for key, tier in conn.execute(sa.select(
            buyer_t.c.key, buyer_t.c.tier).where(buyer_t.c.key.in_(wanted[start:start + 500])))})
    return out


def tier_order(conn: Connection, key: str) -> str:
    """"channel order ID": the order with which the buyer reached their highest tier."""
    order = conn.execute(sa.select(buyer_t.c.tier_order).where(buyer_t.c.key == key)).scalar()
    channel, _, order_id = (order or "").partition(":")
    return f"{channel} order {order_id}" if order_id else "an order"


def find(conn: Connection, who: str, salt: str) -> list[str]:
    """The keys ``who`` names: an email (hashed with the salt) or an id (a key's start,
    at least MIN_ID characters). Several only when an id is ambiguous."""
    who = who.strip()
    if "@" in who:
        key = email_key(salt, who) if salt else ""
        if not key:
            return []
        alias = conn.execute(sa.select(alias_t.c.buyer_key).where(alias_t.c.alias == key)
                             ).scalar()
        key = alias or key
        return [key] if conn.execute(sa.select(buyer_t.c.key).where(buyer_t.c.key == key)
                                     ).scalar() else []
    if len(who) < MIN_ID or any(c not in "0123456789abcdef" for c in who.lower()):
        raise ValueError(f"{who!r} is neither an email nor a buyer id (at least {MIN_ID} "
                         "characters of the id 'channelsync customers' shows)")
    return list(conn.execute(sa.select(buyer_t.c.key).where(
        buyer_t.c.key.like(f"{who.lower()}%"))).scalars())


def forget(conn: Connection, keys: Sequence[str], now: datetime) -> Forgotten:
    """Erase these buyers (see the module's docstring). Stock is not touched."""
    done = Forgotten(ids=[k[:SHOWN_ID] for k in keys])
    for key in keys:
        orders = conn.execute(sa.select(order_t.c.channel, order_t.c.order_id).where(
            order_t.c.buyer_key == key)).all()
        for channel, order_id in orders:
            done.followups += conn.execute(followup_t.update().where(
                followup_t.c.channel == channel, followup_t.c.order_id == order_id)
                .values(subject="", body="")).rowcount
        done.orders += conn.execute(order_t.update().where(order_t.c.buyer_key == key).values(
            buyer="", buyer_key="", tier="", buyer_forgotten=True, updated_at=now)).rowcount
        conn.execute(alias_t.delete().where(alias_t.c.buyer_key == key))
        done.buyers += conn.execute(buyer_t.delete().where(buyer_t.c.key == key)).rowcount
    return done


def forget_inactive(conn: Connection, days: int, now: datetime) -> Forgotten:
    """Forget every buyer whose last order is older than ``days``."""
    cutoff = now - timedelta(days=days)
    keys = list(conn.execute(sa.select(buyer_t.c.key).where(
        sa.func.coalesce(buyer_t.c.last_order_at, buyer_t.c.first_seen_at) < cutoff)).scalars())
    return forget(conn, keys, now)


__all__ = ["NOT_COUNTED", "Customer", "Forgotten", "find", "forget", "forget_inactive",
           "list_customers", "tier_order",
           "tiers_of", "vip_keys"]
