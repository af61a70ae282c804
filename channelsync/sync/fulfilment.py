"""Confirming recorded shipments on their channels: an outbox, like quantity pushes.

Each shipment is sent with the same key on every try; ``sent_at`` is committed before the
call, so after a crash or a lost answer the next try goes out knowing one may have landed,
and the connector finds it (by key or tracking number) instead of confirming it twice.
What a retry may fix waits for the retry policy's next attempt; what it will not (an
unknown order, a refused tracking number) becomes a conflict the seller sees.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from channelsync.config import ChannelConfig
from channelsync.connector import Fulfils, Shipment, ShipmentLine, ShipmentResult
from channelsync.errors import PermanentChannelError, RetriableChannelError
from channelsync.ledger.conflicts import ConflictRecord, open_conflicts, resolve_conflicts
from channelsync.orders.schema import shipment_t
from channelsync.sync.pushing import PushContext

log = logging.getLogger(__name__)

BATCH = 50  # shipments per channel per cycle; the rest go next cycle
MAX_WAIT = timedelta(hours=1)
CHANNEL_REFUSED_WAIT = timedelta(minutes=5)  # credentials or scopes refused: fixed by hand


@dataclass
class ShipOutcome:
    confirmed: int = 0
    failed: int = 0  # will be tried again
    refused: int = 0  # a conflict now
    waiting: int = 0  # queued, not due yet (or the channel cannot confirm them)


def push_shipments(engine: PushContext, channel: ChannelConfig) -> ShipOutcome:
    outcome = ShipOutcome()
    now = engine.clock()
    with engine.db.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.select(shipment_t).where(
            shipment_t.c.channel == channel.name, shipment_t.c.state == "queued",
        ).order_by(shipment_t.c.id)).mappings()]
    due = [r for r in rows if r["next_attempt_at"] is None or r["next_attempt_at"] <= now]
    outcome.waiting = len(rows) - len(due[:BATCH])
    if not due:
        return outcome
    connector = engine.connector(channel)
    if not isinstance(connector, Fulfils):
        outcome.waiting = len(rows)
        return outcome
    for row in due[:BATCH]:
        if engine.stopping.is_set():
            break
        shipment = _shipment(row)
        with engine.db.begin() as conn:
            conn.execute(shipment_t.update().where(shipment_t.c.id == row["id"]).values(
                sent_at=engine.clock(), attempts=shipment_t.c.attempts + 1))
        try:
            result: ShipmentResult = engine.call(
                channel, functools.partial(connector.confirm_shipment, shipment),
                "confirm_shipment")
        except RetriableChannelError as exc:
            result = ShipmentResult(False, exc)
        except PermanentChannelError:
            # Raised, not answered: the channel refuses us, not this shipment (credentials,
            # a missing scope). Every shipment stays queued; the cycle reports the error.
            with engine.db.begin() as conn:
                conn.execute(shipment_t.update().where(shipment_t.c.id == row["id"]).values(
                    next_attempt_at=engine.clock() + CHANNEL_REFUSED_WAIT))
            raise
        _record(engine, channel.name, row, result, outcome)
    if outcome.confirmed or outcome.failed or outcome.refused:
        log.info("%s: shipments confirmed %d, to retry %d, refused %d", channel.name,
                 outcome.confirmed, outcome.failed, outcome.refused)
    return outcome


def _shipment(row: dict[str, object]) -> Shipment:
    lines = [ShipmentLine(x["line_id"], x["channel_sku"], int(x["quantity"]))
             for x in json.loads(str(row["lines"]))]
    shipped_at = row["created_at"]
    assert shipped_at is not None
    return Shipment(str(row["order_id"]), lines, str(row["carrier"]), str(row["tracking"]),
                    str(row["key"]), shipped_at,  # type: ignore[arg-type]
                    completes_order=bool(row["completes"]))


def _record(engine: PushContext, channel: str, row: dict[str, object], result: ShipmentResult,
            outcome: ShipOutcome) -> None:
    now = engine.clock()
    subject = f"{channel}:{row['order_id']}:{row['tracking']}"
    with engine.db.begin() as conn:
        if result.ok:
            conn.execute(shipment_t.update().where(shipment_t.c.id == row["id"]).values(
                state="confirmed", confirmed_at=now, ref=result.ref[:200], last_error=""))
            resolve_conflicts(conn, "shipment_refused", [subject], now)
            outcome.confirmed += 1
            if result.already:
                log.info("%s: order %s's shipment %s was already on the channel (an earlier "
                         "answer was lost)", channel, row["order_id"], row["tracking"])
            return
        error = result.error or PermanentChannelError("refused without a reason")
        message = str(error)[:500]
        if isinstance(error, RetriableChannelError):
            attempts = int(row["attempts"] or 0) + 1  # type: ignore[call-overload]
            wait = min(MAX_WAIT, timedelta(seconds=30 * 2 ** min(attempts, 7)))
            conn.execute(shipment_t.update().where(shipment_t.c.id == row["id"]).values(
                next_attempt_at=now + wait, last_error=message))
            outcome.failed += 1
            return
        conn.execute(shipment_t.update().where(shipment_t.c.id == row["id"]).values(
            state="refused", last_error=message))
        open_conflicts(conn, [ConflictRecord(
            kind="shipment_refused", subject=subject, channel=channel,
            message=f"{channel} refused the shipment of order {row['order_id']} "
                    f"({row['carrier']} {row['tracking']}): {message}. The stock stays "
                    "shipped in the ledger; confirm it on the channel yourself, or fix it and "
                    "ship again",
            detail={"order_id": row["order_id"], "carrier": row["carrier"],
                    "tracking": row["tracking"], "error": message})], now)
        outcome.refused += 1
