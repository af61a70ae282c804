"""Which orders a ``[[followup]]`` rule covers, and when each follow-up is due.

An order is covered when its channel is enabled and lets the seller write to its buyers
(``ChannelConfig.followups``, else the connector's ``capabilities.buyer_contact``: Amazon
does not), it matches the rule's ``channel``, it was not cancelled or returned, its total
(in its own currency) reaches ``min_total``, and, with ``only_first_order``, it is its
buyer's first order in the book (cancelled ones do not count; an order whose buyer is not
recognised is never a first order). It is due ``after`` its delivered (or shipped) time.

A follow-up is sent up to ``LATE_LIMIT`` after it became due (the daemon was stopped for a
while); older ones never are, so that a rule added today does not write to every buyer of
the past years.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from channelsync.config import ChannelConfig, Config, FollowupConfig
from channelsync.followups.schema import followup_t
from channelsync.ledger.apply import chunks
from channelsync.orders.schema import order_t

LATE_LIMIT = timedelta(days=7)
NOT_FOLLOWED = ("cancelled", "returned")
PAGE = 500  # orders read at a time while looking for due ones


@dataclass(frozen=True)
class DueOrder:
    rule: str
    channel: str
    order_id: str
    due_at: datetime
    order: dict[str, Any]  # the order book's row

    @property
    def key(self) -> str:
        return followup_key(self.rule, self.channel, self.order_id)


def followup_key(rule: str, channel: str, order_id: str) -> str:
    """What names a follow-up outside the ledger (the outbox file's ``key``)."""
    return f"{rule}:{channel}:{order_id}"


def contact_allowed(channel: ChannelConfig) -> bool:
    """May follow-ups go to this channel's buyers: the seller's word, else the channel's."""
    if channel.followups is not None:
        return channel.followups
    from channelsync.registry import load_connector

    return bool(load_connector(channel.type).capabilities.buyer_contact)


def channels_of(config: Config, rule: FollowupConfig) -> list[str]:
    """The channels whose orders the rule covers."""
    return [c.name for c in config.channels if c.enabled and contact_allowed(c)
            and rule.channel in (None, c.name)]


def withheld(config: Config) -> list[str]:
    """Enabled channels whose buyers get no follow-up because of the channel's policy."""
    return [c.name for c in config.channels
            if c.enabled and c.followups is None and not contact_allowed(c)]


def due(conn: Connection, config: Config, rule: FollowupConfig, now: datetime, *,
        limit: int = PAGE) -> list[DueOrder]:
    """The rule's follow-ups due now and not recorded yet, the longest due first."""
    channels = channels_of(config, rule)
    if not channels or limit <= 0:
        return []
    after = timedelta(seconds=rule.after_seconds)
    found: list[DueOrder] = []
    for page in _candidates(conn, rule, channels, now - after, limit):
        firsts = _first_orders(conn, page) if rule.only_first_order else set()
        for row in page:
            if _covers(rule, row, firsts):
                found.append(DueOrder(rule.name, row["channel"], row["order_id"],
                                      _anchor_time(rule, row) + after, row))
        if len(found) >= limit:
            break
    return found[:limit]


def _anchor(rule: FollowupConfig) -> sa.Column[Any]:
    return order_t.c.delivered_at if rule.since == "delivered" else order_t.c.shipped_at


def _anchor_time(rule: FollowupConfig, row: dict[str, Any]) -> datetime:
    when: datetime = row["delivered_at" if rule.since == "delivered" else "shipped_at"]
    return when


def _candidates(conn: Connection, rule: FollowupConfig, channels: Sequence[str],
                cutoff: datetime, limit: int) -> Iterator[list[dict[str, Any]]]:
    """Pages of orders in the time window with no follow-up of this rule, by (time, id):
    the page after a page starts past its last row, so orders that the rule's totals or
    first-order test leave out never hide the ones behind them."""
    anchor, f = _anchor(rule), followup_t.c
    base = (sa.select(order_t)
            .outerjoin(followup_t, sa.and_(f.rule == rule.name, f.channel == order_t.c.channel,
                                           f.order_id == order_t.c.order_id))
            .where(f.id.is_(None), order_t.c.channel.in_(channels),
                   order_t.c.stage.not_in(NOT_FOLLOWED), anchor.is_not(None),
                   order_t.c.buyer_forgotten.is_(False),  # customers forget: no contact
                   anchor <= cutoff, anchor > cutoff - LATE_LIMIT)
            .order_by(anchor, order_t.c.id).limit(max(limit, PAGE)))
    last: tuple[datetime, int] | None = None
    while True:
        query = base if last is None else base.where(sa.or_(
            anchor > last[0], sa.and_(anchor == last[0], order_t.c.id > last[1])))
        page = [dict(r) for r in conn.execute(query).mappings()]
        if not page:
            return
        yield page
        last = (_anchor_time(rule, page[-1]), page[-1]["id"])


def _covers(rule: FollowupConfig, row: dict[str, Any], firsts: set[int]) -> bool:
    if rule.min_total is not None:
        total = _decimal(row["total"])
        if total is None or total < Decimal(str(rule.min_total)):
            return False
    return not rule.only_first_order or row["id"] in firsts


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        return None
    return value if value.is_finite() else None


def _first_orders(conn: Connection, rows: Sequence[dict[str, Any]]) -> set[int]:
    """The ids of these orders that are their buyer's first (not counting cancelled ones)."""
    keys = sorted({r["buyer_key"] for r in rows if r["buyer_key"]})
    first: dict[str, tuple[datetime | None, int]] = {}
    placed = sa.func.coalesce(order_t.c.placed_at, order_t.c.first_seen_at)
    for chunk in chunks(keys):
        for key, when, row_id in conn.execute(
                sa.select(order_t.c.buyer_key, placed, order_t.c.id)
                .where(order_t.c.buyer_key.in_(chunk), order_t.c.stage != "cancelled")):
            mine = (when, row_id)
            if key not in first or _earlier(mine, first[key]):
                first[key] = mine
    return {row_id for _, row_id in first.values()}


def _earlier(a: tuple[datetime | None, int], b: tuple[datetime | None, int]) -> bool:
    if a[0] is not None and b[0] is not None and a[0] != b[0]:
        return a[0] < b[0]
    if (a[0] is None) != (b[0] is None):
        return a[0] is not None  # an order with a time comes before one without
    return a[1] < b[1]
