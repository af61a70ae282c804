"""Conflicts: recorded once while open (a partial unique index), resolved when they clear.

Kinds: ``oversell`` (reservations exceed stock on hand), ``unknown_sku`` (an order
for a SKU the ledger does not know), ``push_failed`` (a push that keeps failing or
was refused), ``drift`` (a channel shows something we did not push), ``bad_record``
(a channel record that could not be understood; its raw form is kept), ``loyalty_tier``
(not a fault: a buyer reached a loyalty tier with an order, the seller's moment to act),
``followup_failed`` (subject: a ``[[followup]]`` rule's name: follow-ups of that rule that
could not be sent after their retries, or whose template failed; one conflict per rule,
refreshed by each new failure, resolved once none is failed: ``channelsync.followups.run``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from channelsync.ledger.schema import conflict_t

KINDS = ("oversell", "unknown_sku", "push_failed", "drift", "bad_record", "revision_budget",
         "listing_problem", "loyalty_tier",
         "followup_failed")  # and the alerts' channel_down and low_stock


@dataclass(frozen=True)
class ConflictRecord:
    kind: str
    subject: str
    message: str
    sku: str | None = None
    channel: str | None = None
    detail: dict[str, Any] | None = None


def dialect_insert(conn: Connection, table: sa.Table) -> Any:
    """INSERT that supports ON CONFLICT on both backends."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def open_conflicts(conn: Connection, records: Sequence[ConflictRecord], now: datetime) -> list[int]:
    """Record conflicts; one already open for the same kind and subject is refreshed instead.

    Returns the ids of the conflicts this call opened (not the refreshed ones).
    """
    opened: list[int] = []
    for rec in records:
        detail = json.dumps(rec.detail or {}, sort_keys=True, default=str)
        stmt = (
            dialect_insert(conn, conflict_t)
            .values(
                kind=rec.kind, subject=rec.subject, sku=rec.sku, channel=rec.channel,
                message=rec.message, detail=detail, opened_at=now, last_seen_at=now,
            )
            .on_conflict_do_nothing(
                index_elements=["kind", "subject"], index_where=sa.text("resolved_at IS NULL")
            )
            .returning(conflict_t.c.id)
        )
        new_id = conn.execute(stmt).scalar()
        if new_id is not None:
            opened.append(int(new_id))
            continue
        conn.execute(
            conflict_t.update()
            .where(conflict_t.c.kind == rec.kind, conflict_t.c.subject == rec.subject,
                   conflict_t.c.resolved_at.is_(None))
            .values(message=rec.message, detail=detail, last_seen_at=now)
        )
    return opened


def resolve_conflicts(
    conn: Connection, kind: str, subjects: Iterable[str], now: datetime
) -> int:
    subjects = list(subjects)
    if not subjects:
        return 0
    result = conn.execute(
        conflict_t.update()
        .where(conflict_t.c.kind == kind, conflict_t.c.subject.in_(subjects),
               conflict_t.c.resolved_at.is_(None))
        .values(resolved_at=now)
    )
    return int(result.rowcount or 0)


def list_conflicts(conn: Connection, *, include_resolved: bool = False) -> list[dict[str, Any]]:
    query = sa.select(conflict_t).order_by(conflict_t.c.id)
    if not include_resolved:
        query = query.where(conflict_t.c.resolved_at.is_(None))
    rows = []
    for row in conn.execute(query).mappings():
        item = dict(row)
        item["detail"] = json.loads(item["detail"] or "{}")
        rows.append(item)
    return rows


def acknowledge(conn: Connection, conflict_id: int, now: datetime) -> bool:
    result = conn.execute(
        conflict_t.update()
        .where(conflict_t.c.id == conflict_id, conflict_t.c.acked_at.is_(None))
        .values(acked_at=now)
    )
    if result.rowcount:
        return True
    exists = conn.execute(sa.select(conflict_t.c.id).where(conflict_t.c.id == conflict_id))
    return exists.first() is not None
