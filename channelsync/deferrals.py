"""Calls a rate limit deferred to a later cycle, and when each is allowed again.

Kept per channel in ``channel_state.deferred`` (JSON, ``{"orders": iso time, ...}``) so that
every process sees them: a later cycle skips the call until then without asking the
channel, and ``status`` shows "orders: next call allowed in 2m51s".
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from channelsync.ledger import ensure_channel_state, state_t

# What the engine's calls are for, in a seller's words.
WHAT = {"pull_orders": "orders", "push_quantities": "quantities", "read_listings": "listings"}


def parse(text: str | None) -> dict[str, datetime]:
    """The deferrals stored for a channel; anything unreadable counts as none."""
    try:
        raw: Any = json.loads(text or "{}")
    except ValueError:
        return {}
    out: dict[str, datetime] = {}
    if isinstance(raw, dict):
        for what, when in raw.items():
            try:
                out[str(what)] = datetime.fromisoformat(str(when))
            except ValueError:
                continue
    return out


def pending(conn: Connection, channel: str, now: datetime) -> dict[str, datetime]:
    """What of this channel's calls are still deferred at ``now``, and until when."""
    text = conn.execute(sa.select(state_t.c.deferred).where(state_t.c.name == channel)).scalar()
    return {what: until for what, until in parse(text).items() if until > now}


def defer(conn: Connection, channel: str, what: str, now: datetime, wait: float) -> datetime:
    until = now + timedelta(seconds=wait)
    _update(conn, channel, now, set_={what: until})
    return until


def clear(conn: Connection, channel: str, what: str, now: datetime) -> None:
    _update(conn, channel, now, drop=what)


def _update(conn: Connection, channel: str, now: datetime,
            set_: dict[str, datetime] | None = None, drop: str = "") -> None:
    ensure_channel_state(conn, channel)
    text = conn.execute(sa.select(state_t.c.deferred).where(state_t.c.name == channel)).scalar()
    current = {w: u for w, u in parse(text).items() if u > now and w != drop}
    current.update(set_ or {})
    value = json.dumps({w: u.isoformat() for w, u in sorted(current.items())})
    if value != (text or "{}"):
        conn.execute(state_t.update().where(state_t.c.name == channel).values(deferred=value))
