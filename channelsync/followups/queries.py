"""Reading recorded follow-ups (``channelsync followups``) and queueing a failed one again."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from channelsync.config import Config
from channelsync.followups import render as rendering
from channelsync.followups.run import resolve_if_clear
from channelsync.followups.schema import followup_t
from channelsync.orders.schema import order_t

STATES = ("sending", "sent", "failed", "skipped")


def recorded(conn: Connection, *, state: str | None = None, rule: str | None = None,
             limit: int = 50) -> list[dict[str, Any]]:
    """Recorded follow-ups, the latest first."""
    query = sa.select(followup_t).order_by(followup_t.c.id.desc()).limit(limit)
    if state is not None:
        query = query.where(followup_t.c.state == state)
    if rule is not None:
        query = query.where(followup_t.c.rule == rule)
    return [dict(r) for r in conn.execute(query).mappings()]


def counts(conn: Connection) -> dict[str, int]:
    """Recorded follow-ups by state."""
    return {state: int(n) for state, n in conn.execute(
        sa.select(followup_t.c.state, sa.func.count()).group_by(followup_t.c.state))}


def as_json(row: dict[str, Any]) -> dict[str, Any]:
    def iso(at: datetime | None) -> str | None:
        return at.isoformat() if at else None

    return {"id": row["id"], "rule": row["rule"], "channel": row["channel"],
            "order_id": row["order_id"], "state": row["state"], "attempts": row["attempts"],
            "due_at": iso(row["due_at"]), "recorded_at": iso(row["recorded_at"]),
            "sent_at": iso(row["sent_at"]), "next_attempt_at": iso(row["next_attempt_at"]),
            "last_error": row["last_error"] or None, "subject": row["subject"],
            "body": row["body"]}


def requeue(conn: Connection, config: Config, row_id: int, now: datetime) -> str:
    """Queue a failed follow-up again, rendered anew with its rule's template now.
    Returns "" when queued, else why not; a ``LookupError`` for an unknown id."""
    row = conn.execute(sa.select(followup_t).where(followup_t.c.id == row_id)
                       .with_for_update()).mappings().first()
    if row is None:
        raise LookupError(f"no follow-up with id {row_id}")
    if row["state"] != "failed":
        return f"it is {row['state']}, not failed"
    rule = next((r for r in config.followups if r.name == row["rule"]), None)
    if rule is None:
        return f"its rule {row['rule']!r} is no longer in the config"
    order = conn.execute(sa.select(order_t).where(
        order_t.c.channel == row["channel"], order_t.c.order_id == row["order_id"])
    ).mappings().first()
    if order is None:
        return "its order is no longer in the book"
    try:
        subject, body = rendering.render(rule, rendering.context(conn, rule.name, dict(order)))
    except rendering.RenderError as exc:
        return f"the template still fails: {exc}"
    conn.execute(followup_t.update().where(followup_t.c.id == row_id).values(
        state="sending", attempts=0, next_attempt_at=now, last_error="", subject=subject,
        body=body))
    resolve_if_clear(conn, rule.name, now)
    return ""
