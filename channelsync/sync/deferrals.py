"""Work a cycle leaves for a later one: calls a rate limit deferred, and pulls to resume.

Kept per channel in ``channel_state`` so that every process sees them. ``deferred`` (JSON,
``{"orders": iso time, ...}``): a later cycle skips the call until then without asking the
channel, and ``status`` shows "orders: next call allowed in 2m51s". ``pull_resume``: the
page a pull goes on from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from channelsync.ledger.apply import ensure_channel_state
from channelsync.ledger.schema import state_t

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


@dataclass(frozen=True)
class Resume:
    """Where a pull goes on: its ``since``, the next page, and when the pull began (the
    watermark it sets once complete). Saved with each committed page, so a pull a rate limit
    or a shutdown stopped continues there instead of starting over (Amazon's cursor only
    moves on a pull's last page: starting over could never finish a long backlog)."""

    since: datetime
    page: str | None
    started: datetime

    def then(self, page: str | None) -> Resume:
        return Resume(self.since, page, self.started)


def resume_point(conn: Connection, channel: str) -> Resume | None:
    text = conn.execute(
        sa.select(state_t.c.pull_resume).where(state_t.c.name == channel)).scalar()
    try:
        raw = json.loads(text) if text else None
        if isinstance(raw, dict) and isinstance(raw.get("page"), str):
            return Resume(datetime.fromisoformat(raw["since"]), raw["page"],
                          datetime.fromisoformat(raw["started"]))
    except (ValueError, TypeError, KeyError):
        pass
    return None


def save_resume_point(conn: Connection, channel: str, resume: Resume | None) -> None:
    """In the transaction that applied the page before ``resume.page``; None: complete."""
    value = "" if resume is None or resume.page is None else json.dumps({
        "since": resume.since.isoformat(), "page": resume.page,
        "started": resume.started.isoformat()})
    conn.execute(state_t.update().where(state_t.c.name == channel).values(pull_resume=value))
