"""Recording a shipment: checked against the order, its stock committed at once, and queued
to be confirmed on the order's channel (``channelsync.sync.fulfilment`` sends it).

One transaction does all three, so a shipment is never confirmed without its stock having
left the ledger, nor the stock gone without the shipment queued.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from channelsync.ledger.apply import ApplyResult, ship_lines
from channelsync.ledger.schema import line_t
from channelsync.orders import book
from channelsync.orders.schema import order_t, shipment_t

MAX_FIELD = 200


class ShipError(ValueError):
    """A shipment that cannot be recorded as given; nothing was changed."""


@dataclass(frozen=True)
class Recorded:
    shipment_id: int
    key: str
    units: int
    stage: str
    already: bool = False  # the same shipment was recorded before: nothing changed
    applied: ApplyResult | None = None


def record_shipment(
    conn: Connection,
    channel: str,
    order_id: str,
    *,
    carrier: str,
    tracking: str,
    lines: Mapping[str, int] | None,
    master_sku: Callable[[str], str],
    now: datetime,
    source: str = "cli",
) -> Recorded:
    """Record a shipment of ``lines`` (SKU -> units; None: everything not shipped yet).

    The same order and tracking number again is the same shipment (a command run twice, a
    CSV imported twice): nothing changes and it says so."""
    carrier, tracking = carrier.strip(), tracking.strip()
    if not carrier or not tracking:
        raise ShipError("a shipment needs a carrier and a tracking number")
    if len(carrier) > MAX_FIELD or len(tracking) > MAX_FIELD:
        raise ShipError(f"carrier and tracking number are at most {MAX_FIELD} characters")
    order = conn.execute(sa.select(order_t).where(
        order_t.c.channel == channel, order_t.c.order_id == order_id
    ).with_for_update()).mappings().first()
    if order is None:
        raise ShipError(f"no order {order_id!r} from {channel!r} in the book (orders arrive "
                        "with a sync)")
    key = shipment_key(channel, order_id, tracking)
    existing = conn.execute(sa.select(shipment_t.c.id, shipment_t.c.lines).where(
        shipment_t.c.key == key)).first()
    if existing is not None:
        units = sum(x["quantity"] for x in json.loads(existing.lines))
        return Recorded(existing.id, key, units, order["stage"], already=True)
    if order["stage"] in ("cancelled", "returned"):
        raise ShipError(f"{channel} order {order_id} is {order['stage']}: it cannot be shipped")
    picked = _pick_lines(conn, channel, order_id, lines)
    applied = ship_lines(conn, channel, order_id, {x["line_id"]: x["quantity"] for x in picked},
                         master_sku=master_sku, now=now)
    book.record(conn, channel, (), [order_id], now=now, source=source)
    after = conn.execute(sa.select(order_t.c.stage, order_t.c.ordered, order_t.c.shipped,
                                   order_t.c.cancelled).where(
        order_t.c.channel == channel, order_t.c.order_id == order_id)).one()
    stage = after.stage
    shipment_id = conn.execute(shipment_t.insert().values(
        key=key, channel=channel, order_id=order_id, carrier=carrier, tracking=tracking,
        lines=json.dumps(picked), completes=after.shipped >= after.ordered - after.cancelled,
        state="queued", attempts=0, next_attempt_at=now, created_at=now, ref="",
        last_error="", source=source[:200],
    )).inserted_primary_key
    assert shipment_id is not None
    return Recorded(int(shipment_id[0]), key, sum(x["quantity"] for x in picked), stage,
                    applied=applied)


def shipment_key(channel: str, order_id: str, tracking: str) -> str:
    """The same on every try and every re-run; short enough for any channel's reference
    field (Amazon's packageReferenceId, a note's text)."""
    digest = hashlib.sha256(f"{channel}\x00{order_id}\x00{tracking}".encode()).hexdigest()
    return f"cs-{digest[:20]}"


def _pick_lines(
    conn: Connection, channel: str, order_id: str, wanted: Mapping[str, int] | None
) -> list[dict[str, Any]]:
    rows = [dict(r) for r in conn.execute(sa.select(
        line_t.c.line_id, line_t.c.channel_sku, line_t.c.sku, line_t.c.ordered,
        line_t.c.shipped, line_t.c.cancelled, line_t.c.state,
    ).where(line_t.c.channel == channel, line_t.c.order_id == order_id,
            line_t.c.state != "ignored").order_by(line_t.c.id)).mappings()]
    for r in rows:
        r["open"] = r["ordered"] - r["shipped"] - r["cancelled"]
    if wanted is None:
        picked = [_line(r, r["open"]) for r in rows if r["open"] > 0]
        if not picked:
            raise ShipError(f"{channel} order {order_id} has nothing left to ship")
        return picked
    picked = []
    for sku, units in wanted.items():
        if units <= 0:
            raise ShipError(f"{sku}={units}: a shipped quantity is a whole number above 0")
        matches = [r for r in rows if sku in (r["sku"], r["channel_sku"])]
        if not matches:
            raise ShipError(f"{channel} order {order_id} has no line for {sku!r}")
        left = units
        for r in matches:  # the same SKU on several lines: the first open ones first
            take = min(left, r["open"])
            if take > 0:
                picked.append(_line(r, take))
                r["open"] -= take
                left -= take
        if left:
            open_units = units - left
            raise ShipError(f"{sku}: {units} to ship but only {open_units} not shipped or "
                            "cancelled yet")
    return picked


def _line(row: dict[str, Any], units: int) -> dict[str, Any]:
    return {"line_id": row["line_id"], "channel_sku": row["channel_sku"], "sku": row["sku"],
            "quantity": units}
