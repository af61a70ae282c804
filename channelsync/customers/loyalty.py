"""Recognising buyers on every pulled page, and the loyalty tiers they reach.

Called in the pull's own transaction, after the order book recorded the page. Each order
that carries a buyer's email or channel buyer id gets its buyer's key (``sales_order.
buyer_key``); the buyer's row keeps a display name and the highest tier reached. A tier is
worked out from the buyer's orders placed within ``[loyalty] window_days`` (cancelled and
returned ones do not count), spend per currency (an order in USD never adds to a EUR
threshold) or the number of orders. The order with which a buyer first reaches a tier is
flagged (``sales_order.tier``) and opens one ``loyalty_tier`` conflict, which alerts once:
the seller's moment for a gift or a VIP flag. A tier once reached is kept for the alert's
sake (no second alert when orders leave the window and come back).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from channelsync.config import LoyaltyConfig, TierConfig
from channelsync.connector import OrderSnapshot
from channelsync.customers.identity import Identity, identity
from channelsync.customers.schema import alias_t, buyer_t
from channelsync.ledger.conflicts import ConflictRecord, dialect_insert
from channelsync.orders.schema import order_t

LOYALTY_TIER = "loyalty_tier"
NOT_COUNTED = ("cancelled", "returned")


@dataclass
class Standing:
    """A buyer's orders and spend within the window."""

    orders: int = 0
    spend: dict[str, Decimal] = field(default_factory=dict)  # per currency

    def spend_text(self) -> str:
        return ", ".join(f"{currency} {amount:.2f}" for currency, amount
                         in sorted(self.spend.items())) or "nothing"


def tier_of(standing: Standing, tiers: Sequence[TierConfig]) -> str:
    """The highest tier the standing reaches ("" for none); tiers are listed lowest first."""
    reached = ""
    for tier in tiers:
        by_spend = any(standing.spend.get(currency, Decimal(0)) >= Decimal(str(amount))
                       for currency, amount in tier.min_spend.items())
        by_orders = tier.min_orders is not None and standing.orders >= tier.min_orders
        if by_spend or by_orders:
            reached = tier.name
    return reached


def rank(tier: str, tiers: Sequence[TierConfig]) -> int:
    return next((i for i, t in enumerate(tiers) if t.name == tier), -1)


def recognise(
    conn: Connection, channel: str, headers: Sequence[OrderSnapshot], loyalty: LoyaltyConfig,
    now: datetime,
) -> list[ConflictRecord]:
    """Give a page's orders their buyers; the conflicts of tiers reached (to open)."""
    salt = loyalty.salt.get_secret_value()
    if not salt:
        return []
    latest: dict[str, OrderSnapshot] = {}  # buyer key -> the page's latest order of theirs
    forgotten = _forgotten(conn, channel, [h.order_id for h in headers])
    for header in headers:
        if header.order_id in forgotten:
            continue  # a forgotten buyer's order, read again: they stay forgotten
        ident = identity(salt, channel, header.buyer_email, header.buyer_id)
        if not ident.key:
            continue
        key, merged = _resolve(conn, ident)
        _buyer_seen(conn, key, header, now)
        conn.execute(order_t.update().where(
            order_t.c.channel == channel, order_t.c.order_id == header.order_id,
            order_t.c.buyer_key != key).values(buyer_key=key))
        for candidate in (latest.pop(merged, None) if merged else None, header):
            mine = latest.get(key)
            if candidate is not None and (
                    mine is None or (candidate.placed_at or now) >= (mine.placed_at or now)):
                latest[key] = candidate
    if not loyalty.tiers:
        return []
    return [record for key, header in sorted(latest.items())
            if (record := _promote(conn, key, channel, header, loyalty, now)) is not None]


def standings(conn: Connection, keys: Iterable[str], since: datetime) -> dict[str, Standing]:
    """Each buyer's orders and spend placed since ``since`` (an order without a placed time
    counts from when the book first saw it)."""
    keys = list(keys)
    out = {key: Standing() for key in keys}
    if not keys:
        return out
    placed = sa.func.coalesce(order_t.c.placed_at, order_t.c.first_seen_at)
    rows = conn.execute(sa.select(order_t.c.buyer_key, order_t.c.total, order_t.c.currency)
                        .where(order_t.c.buyer_key.in_(keys), placed >= since,
                               order_t.c.stage.not_in(NOT_COUNTED)))
    for key, total, currency in rows:
        standing = out[key]
        standing.orders += 1
        amount = _amount(total)
        if amount is not None and currency:
            standing.spend[currency] = standing.spend.get(currency, Decimal(0)) + amount
    return out


def _forgotten(conn: Connection, channel: str, order_ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(order_ids), 500):
        found.update(conn.execute(sa.select(order_t.c.order_id).where(
            order_t.c.channel == channel, order_t.c.order_id.in_(order_ids[start:start + 500]),
            order_t.c.buyer_forgotten.is_(True))).scalars())
    return found


def _amount(total: str) -> Decimal | None:
    try:
        value = Decimal(total)
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


def _resolve(conn: Connection, ident: Identity) -> tuple[str, str | None]:
    """The buyer's key for an order's identity, and the key it replaced: the channel id is
    recorded as an alias, and a buyer known by that id alone is merged into the one known
    by the email."""
    if not ident.channel_id:
        return ident.email, None
    known = conn.execute(sa.select(alias_t.c.buyer_key).where(
        alias_t.c.alias == ident.channel_id)).scalar()
    key = ident.email or known or ident.channel_id
    if known is None:
        conn.execute(dialect_insert(conn, alias_t).values(alias=ident.channel_id, buyer_key=key)
                     .on_conflict_do_nothing(index_elements=["alias"]))
    elif known != key:
        _merge(conn, known, key)
        return key, known
    return key, None


def _merge(conn: Connection, old: str, new: str) -> None:
    conn.execute(order_t.update().where(order_t.c.buyer_key == old).values(buyer_key=new))
    conn.execute(alias_t.update().where(alias_t.c.buyer_key == old).values(buyer_key=new))
    row = conn.execute(sa.select(buyer_t).where(buyer_t.c.key == old)).mappings().first()
    if row is None:
        return
    conn.execute(buyer_t.delete().where(buyer_t.c.key == old))
    conn.execute(dialect_insert(conn, buyer_t).values(**{**row, "key": new})
                 .on_conflict_do_nothing(index_elements=["key"]))
    if row["tier"]:  # the merged buyer's tier was reached already: it is not news
        mine = conn.execute(sa.select(buyer_t.c.tier).where(buyer_t.c.key == new)).scalar()
        if not mine:
            conn.execute(buyer_t.update().where(buyer_t.c.key == new).values(
                tier=row["tier"], tier_at=row["tier_at"], tier_order=row["tier_order"]))


def _buyer_seen(conn: Connection, key: str, header: OrderSnapshot, now: datetime) -> None:
    placed = header.placed_at or now
    conn.execute(dialect_insert(conn, buyer_t).values(
        key=key, display_name=header.buyer[:200], first_seen_at=now, last_order_at=placed,
        tier="", tier_order="").on_conflict_do_nothing(index_elements=["key"]))
    values: dict[str, object] = {"last_order_at": sa.case(
        (buyer_t.c.last_order_at.is_(None), placed),
        (buyer_t.c.last_order_at < placed, placed), else_=buyer_t.c.last_order_at)}
    if header.buyer:
        values["display_name"] = header.buyer[:200]
    conn.execute(buyer_t.update().where(buyer_t.c.key == key).values(**values))


def _promote(conn: Connection, key: str, channel: str, header: OrderSnapshot,
             loyalty: LoyaltyConfig, now: datetime) -> ConflictRecord | None:
    row = conn.execute(sa.select(buyer_t).where(buyer_t.c.key == key)
                       .with_for_update()).mappings().one()
    standing = standings(conn, [key], now - timedelta(days=loyalty.window_days))[key]
    tier = tier_of(standing, loyalty.tiers)
    if rank(tier, loyalty.tiers) <= rank(row["tier"], loyalty.tiers):
        return None
    order = f"{channel}:{header.order_id}"
    conn.execute(buyer_t.update().where(buyer_t.c.key == key).values(
        tier=tier, tier_at=now, tier_order=order))
    conn.execute(order_t.update().where(order_t.c.channel == channel,
                                        order_t.c.order_id == header.order_id).values(tier=tier))
    config = loyalty.tiers[rank(tier, loyalty.tiers)]
    name = row["display_name"] or "A buyer"
    return ConflictRecord(
        kind=LOYALTY_TIER, subject=f"{tier}:{key[:16]}", channel=channel,
        message=(f"{name} reached the {tier} tier{f' ({config.tag})' if config.tag else ''} "
                 f"with order {header.order_id} on {channel}: {standing.orders} "
                 f"order{'' if standing.orders == 1 else 's'}, "
                 f"{standing.spend_text()} in {loyalty.window_days} days"),
        detail={"tier": tier, "tag": config.tag, "order": order, "buyer": key[:16],
                "orders": standing.orders,
                "spend": {c: str(a) for c, a in sorted(standing.spend.items())}})
