"""Read-only views of the ledger for ``status``, ``explain`` and ``stock list``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from channelsync.config import Config
from channelsync.ledger import schema
from channelsync.ledger.availability import availability
from channelsync.ledger.conflicts import list_conflicts
from channelsync.ledger.schema import line_t, listing_t, mov_t, outbox_t, res_t, sku_t, state_t
from channelsync.sync import deferrals, planner
from channelsync.sync.readback import unmapped

RECENT_MOVEMENTS = 20
RECENT_PUSHES = 20


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _age(value: datetime | None, now: datetime) -> float | None:
    return round((now - value).total_seconds(), 1) if value else None


def status(conn: Connection, config: Config, now: datetime) -> dict[str, Any]:
    states = {r["name"]: r for r in conn.execute(sa.select(state_t)).mappings()}
    outbox: dict[str, int] = dict(conn.execute(
        sa.select(outbox_t.c.channel, sa.func.count()).group_by(outbox_t.c.channel)).all())
    awaiting = {c: (int(n), at) for c, n, at in conn.execute(
        sa.select(outbox_t.c.channel, sa.func.count(), sa.func.min(outbox_t.c.pending_at))
        .where(outbox_t.c.pending != "").group_by(outbox_t.c.channel))}
    listings: dict[str, int] = dict(conn.execute(
        sa.select(listing_t.c.channel, sa.func.count()).group_by(listing_t.c.channel)).all())
    channels = []
    for channel in config.channels:
        state: Any = states.get(channel.name, {})
        channels.append({
            "name": channel.name, "type": channel.type, "enabled": channel.enabled,
            "last_pull": _iso(state.get("pulled_at")), "last_push": _iso(state.get("pushed_at")),
            "last_read_back": _iso(state.get("reconciled_at")),
            "cursor": _iso(state.get("cursor")), "cursor_age_s": _age(state.get("cursor"), now),
            "pending_outbox": int(outbox.get(channel.name, 0)),
            # sent, the channel still processing them (an Amazon feed), and since when
            "awaiting_channel": awaiting.get(channel.name, (0, None))[0],
            "awaiting_since": _iso(awaiting.get(channel.name, (0, None))[1]),
            # writes refused by compare-and-set because the channel changed first
            "stale_compares": int(state.get("stale_compares") or 0),
            "last_stale_compare": _iso(state.get("stale_at")),
            "listings": int(listings.get(channel.name, 0)),
            "unmapped": unmapped(conn, channel.name),
            "last_error": state.get("last_error") or None,
            "last_error_at": _iso(state.get("last_error_at")),
            # calls a rate limit deferred: what -> when allowed, and in how many seconds
            "deferred": {what: {"until": until.isoformat(),
                                "in_s": round((until - now).total_seconds(), 1)}
                         for what, until in deferrals.parse(state.get("deferred")).items()
                         if until > now},
        })
    totals = conn.execute(sa.select(
        sa.func.count(), sa.func.coalesce(sa.func.sum(sku_t.c.on_hand), 0),
        sa.func.coalesce(sa.func.sum(sku_t.c.reserved), 0))).one()
    open_lines = conn.execute(sa.select(sa.func.count(sa.distinct(res_t.c.line_id)))).scalar()
    conflicts = [_conflict(c) for c in list_conflicts(conn)]
    return {
        "generated_at": now.isoformat(),
        "channels": channels,
        "conflicts": conflicts,
        "totals": {"skus": totals[0], "on_hand": int(totals[1]), "reserved": int(totals[2]),
                   "open_order_lines": int(open_lines or 0),
                   "open_conflicts": len(conflicts)},
    }


def _conflict(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (_iso(v) if isinstance(v, datetime) else v) for k, v in row.items()}


def conflicts(conn: Connection, include_resolved: bool) -> list[dict[str, Any]]:
    return [_conflict(c) for c in list_conflicts(conn, include_resolved=include_resolved)]


def stock_list(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(sku_t).order_by(sku_t.c.sku)).mappings()
    return [
        {"sku": r["sku"], "title": r["title"], "barcodes": r["barcodes"],
         "on_hand": r["on_hand"], "reserved": r["reserved"], "safety_stock": r["safety_stock"],
         "available": r["on_hand"] - r["reserved"] - r["safety_stock"],
         "counted_at": _iso(r["counted_at"])}
        for r in rows
    ]


def explain(conn: Connection, config: Config, sku: str) -> dict[str, Any] | None:
    """Everything that decides what SKU shows on each channel, with the rule traces."""
    row = conn.execute(sa.select(sku_t).where(sku_t.c.sku == sku)).mappings().first()
    kit = {c: q for _, c, q in conn.execute(
        sa.select(schema.kit_t).where(schema.kit_t.c.kit_sku == sku))}
    if row is None and not kit:
        return None
    avail = availability(conn, [sku]).get(sku)
    reservations = [dict(r) for r in conn.execute(
        sa.select(line_t.c.channel, line_t.c.order_id, line_t.c.line_id, line_t.c.status,
                  res_t.c.quantity, line_t.c.changed_at)
        .join(res_t, res_t.c.line_id == line_t.c.id).where(res_t.c.sku == sku)
        .order_by(line_t.c.changed_at, line_t.c.id)).mappings()]
    movements = [dict(r) for r in conn.execute(
        sa.select(mov_t.c.kind, mov_t.c.on_hand_delta, mov_t.c.reserved_delta, mov_t.c.reason,
                  mov_t.c.source, mov_t.c.created_at)
        .where(mov_t.c.sku == sku).order_by(mov_t.c.id.desc()).limit(RECENT_MOVEMENTS))
        .mappings()]
    pushes = [dict(r) for r in conn.execute(
        sa.select(schema.push_log_t.c.channel, schema.push_log_t.c.channel_sku,
                  schema.push_log_t.c.quantity, schema.push_log_t.c.previous,
                  schema.push_log_t.c.available, schema.push_log_t.c.sent_at,
                  schema.push_log_t.c.outcome, schema.push_log_t.c.detail)
        .where(schema.push_log_t.c.sku == sku)
        .order_by(schema.push_log_t.c.id.desc()).limit(RECENT_PUSHES)).mappings()]
    listings = planner.select_listings(conn, [c.name for c in config.channels], skus=[sku])
    targets = planner.targets(conn, config, listings)
    return {
        "sku": sku,
        "kit": kit or None,
        "on_hand": row["on_hand"] if row else None,
        "reserved": row["reserved"] if row else None,
        "safety_stock": row["safety_stock"] if row else None,
        "counted_at": _iso(row["counted_at"]) if row else None,
        "available": avail.available if avail else None,
        "available_detail": avail.detail if avail else "unknown component",
        "reservations": [{**r, "changed_at": _iso(r["changed_at"])} for r in reservations],
        "channels": [
            {"channel": t.channel, "channel_sku": t.channel_sku, "last_pushed": t.current,
             "target": t.target, "trace": t.trace}
            for t in targets
        ],
        "recent_movements": [{**m, "created_at": _iso(m["created_at"])} for m in movements],
        "recent_pushes": [{**p, "sent_at": _iso(p["sent_at"])} for p in pushes],
    }
