"""Sending the follow-ups that are due: record, then send, then mark.

Each run first takes up follow-ups recorded earlier and not sent yet (retries, and any a
crash left ``sending``), then looks for new ones. A new one is rendered and recorded
(``sending``, committed: the unique (rule, channel, order) key makes one process the
owner), then sent, then marked ``sent``. A recorded follow-up is leased to the process
that sends it: ``next_attempt_at`` is moved ``LEASE`` ahead with a guarded UPDATE before
sending, so daemon replicas sharing a PostgreSQL ledger never send one twice; one left
``sending`` by a process that died is taken up once its lease ran out.

Exactly once, except in one narrow window: a crash after an apprise URL took the message
and before the ledger recorded it sends it again (apprise cannot be asked what it sent).
The outbox file is checked for the follow-up's line first, so it gets one line whatever
the crash (``channelsync.followups.send``).

A send that fails is retried after 1, 5, 25 minutes and 2 hours; the fifth failure makes
the follow-up ``failed`` and opens (or refreshes) one ``followup_failed`` conflict for the
rule, which the alerts send. A template that fails on an order (an unknown field, the
sandbox refusing something) does the same at once. ``followups retry`` renders failed ones
again and queues them; the conflict is resolved once the rule has no failed follow-up.
A follow-up whose order was cancelled or returned meanwhile, whose channel no longer
allows contacting buyers, whose rule left the config or whose buyer was forgotten (its
text emptied) is ``skipped``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from channelsync.config import Config, FollowupConfig
from channelsync.followups import render as rendering
from channelsync.followups.rules import DueOrder, channels_of, due, followup_key
from channelsync.followups.schema import followup_t
from channelsync.followups.send import Destinations, Message
from channelsync.ledger.conflicts import (
    ConflictRecord,
    dialect_insert,
    open_conflicts,
    resolve_conflicts,
)
from channelsync.ledger.schema import utcnow
from channelsync.orders.schema import order_t

log = logging.getLogger(__name__)

KIND = "followup_failed"
ATTEMPTS = 5  # sends that fail before a follow-up is given up as failed
RETRY_FIRST, RETRY_FACTOR, RETRY_CAP = 60.0, 5, 6 * 3600.0  # 1m, 5m, 25m, 2h05
LEASE = 300.0  # seconds a process holds a follow-up it is sending
RUN_BUDGET = 120.0  # seconds of sending in one run; the rest wait for the next
MAX_PER_RUN = 200  # follow-ups sent (or tried) in one run
STOPPED_ORDERS = ("cancelled", "returned")


@dataclass
class FollowupRun:
    sent: int = 0
    retrying: int = 0  # failed this time, tried again later
    failed: int = 0  # given up: a conflict says so
    skipped: int = 0
    opened: list[int] = field(default_factory=list)  # conflicts opened


@dataclass(frozen=True)
class Preview:
    """A due follow-up as it would be sent (``--dry-run``)."""

    due: DueOrder
    subject: str
    body: str
    error: str

    def as_json(self) -> dict[str, Any]:
        return {"rule": self.due.rule, "channel": self.due.channel,
                "order_id": self.due.order_id, "due_at": self.due.due_at.isoformat(),
                "subject": self.subject, "body": self.body, "error": self.error or None}


def retry_delay(attempts: int) -> timedelta:
    """How long a follow-up waits after its ``attempts``-th failed send. No jitter: a
    follow-up is one message to one buyer, nothing stampedes."""
    return timedelta(seconds=min(RETRY_CAP, RETRY_FIRST * RETRY_FACTOR ** (attempts - 1)))


class FollowupSender:
    """Finds, records and sends due follow-ups (``run_once``); ``preview`` renders them."""

    def __init__(self, config: Config, db: Engine, *, clock: Callable[[], datetime] = utcnow,
                 stopping: Callable[[], bool] = lambda: False) -> None:
        self.config = config
        self.db = db
        self.clock = clock
        self.stopping = stopping
        self.rules = {rule.name: rule for rule in config.followups}
        self._destinations: dict[str, Destinations] = {}

    def run_once(self) -> FollowupRun:
        run = FollowupRun()
        if not self.rules:
            return run
        deadline, left = time.monotonic() + RUN_BUDGET, [MAX_PER_RUN]

        def more() -> bool:  # asked before each follow-up is recorded or sent
            return not self.stopping() and time.monotonic() <= deadline and left[0] > 0

        for row_id, owned in self._work(run, more):
            left[0] -= 1
            if owned or self._claim(row_id):
                self._send(row_id, run, fresh=owned)
        return run

    def due_now(self, limit: int = 500) -> list[DueOrder]:
        """Follow-ups due and not recorded yet, every rule's."""
        now = self.clock()
        with self.db.connect() as conn:
            return [d for rule in self.rules.values() for d in due(conn, self.config, rule, now,
                                                                  limit=limit)][:limit]

    def preview(self, limit: int = 50) -> list[Preview]:
        """Render what is due now; records and sends nothing."""
        found, due_now = [], self.due_now(limit)
        with self.db.connect() as conn:  # one at a time: SQLite's reads take its lock too
            for item in due_now:
                try:
                    subject, body = self._render(conn, item)
                    found.append(Preview(item, subject, body, ""))
                except rendering.RenderError as exc:
                    found.append(Preview(item, "", "", str(exc)))
        return found

    # -- finding work --------------------------------------------------------------------------

    def _work(self, run: FollowupRun, more: Callable[[], bool]) -> Iterator[tuple[int, bool]]:
        """(follow-up id, recorded by this run): recorded ones whose time has come, then
        new ones (which a failing template records as failed, never yielded), while
        ``more()``: a follow-up is never recorded to be left for the next run."""
        now = self.clock()
        with self.db.connect() as conn:
            waiting = list(conn.execute(
                sa.select(followup_t.c.id)
                .where(followup_t.c.state == "sending", sa.or_(
                    followup_t.c.next_attempt_at.is_(None), followup_t.c.next_attempt_at <= now))
                .order_by(followup_t.c.next_attempt_at, followup_t.c.id)
                .limit(MAX_PER_RUN)).scalars())
        for row_id in waiting:
            if not more():
                return
            yield row_id, False
        for rule in self.rules.values():
            with self.db.connect() as conn:
                found = due(conn, self.config, rule, self.clock(), limit=MAX_PER_RUN)
            for item in found:
                if not more():
                    return
                row_id = self._record(item, run)
                if row_id is not None:
                    yield row_id, True

    def _record(self, item: DueOrder, run: FollowupRun) -> int | None:
        """Render and record a due follow-up (committed). Its id when this process owns it
        and should send it; None when another got there first or the template failed."""
        now = self.clock()
        rule = self.rules[item.rule]
        with self.db.begin() as conn:
            try:
                subject, body = self._render(conn, item)
                state, error = "sending", ""
            except rendering.RenderError as exc:
                subject, body, state = "", "", "failed"
                error = _without_buyer(f"the template failed: {exc}", item.order["buyer"])
            row_id = conn.execute(
                dialect_insert(conn, followup_t).values(
                    rule=rule.name, channel=item.channel, order_id=item.order_id,
                    due_at=item.due_at, state=state, attempts=0, recorded_at=now,
                    next_attempt_at=now + timedelta(seconds=LEASE) if state == "sending"
                    else None, last_error=error, subject=subject, body=body)
                .on_conflict_do_nothing(index_elements=["rule", "channel", "order_id"])
                .returning(followup_t.c.id)).scalar()
            if row_id is not None and state == "failed":
                log.error("follow-up %s: %s", item.key, error)
                run.failed += 1
                run.opened += self._failed_conflict(conn, rule.name, now)
        return int(row_id) if row_id is not None and state == "sending" else None

    def _render(self, conn: Connection, item: DueOrder) -> tuple[str, str]:
        fields = rendering.context(conn, item.rule, item.order)
        return rendering.render(self.rules[item.rule], fields)

    def _claim(self, row_id: int) -> bool:
        """Lease a recorded follow-up (committed); True when this process got it."""
        now = self.clock()
        with self.db.begin() as conn:
            old = conn.execute(sa.select(followup_t.c.next_attempt_at).where(
                followup_t.c.id == row_id, followup_t.c.state == "sending")).first()
            if old is None or (old[0] is not None and old[0] > now):
                return False
            column = followup_t.c.next_attempt_at
            result = conn.execute(followup_t.update().where(
                followup_t.c.id == row_id, followup_t.c.state == "sending",
                column.is_(None) if old[0] is None else column == old[0])
                .values(next_attempt_at=now + timedelta(seconds=LEASE)))
            return result.rowcount == 1

    # -- sending -------------------------------------------------------------------------------

    def _send(self, row_id: int, run: FollowupRun, *, fresh: bool) -> None:
        """Send one leased follow-up. ``fresh``: recorded by this run, so not in the outbox
        file yet; any other may be (a retry, or a crash after the write)."""
        with self.db.connect() as conn:
            row = dict(conn.execute(sa.select(followup_t).where(followup_t.c.id == row_id)
                                    ).mappings().one())
            stage = conn.execute(sa.select(order_t.c.stage).where(
                order_t.c.channel == row["channel"], order_t.c.order_id == row["order_id"])
            ).scalar()
        reason = self._skip_reason(row, stage)
        if reason:
            log.info("follow-up %s skipped: %s", _key(row), reason)
            self._finish(row_id, state="skipped", last_error=reason)
            run.skipped += 1
            return
        rule = self.rules[row["rule"]]
        message = Message(row_id, _key(row), rule.name, row["channel"], row["order_id"],
                          row["subject"], row["body"], row["due_at"])
        error = self._destination(rule).deliver(message, self.clock(), maybe_written=not fresh)
        if not error:
            self._mark_sent(row_id, rule.name)
            run.sent += 1
            return
        self._failed_send(row, error, run)

    def _skip_reason(self, row: dict[str, Any], stage: str | None) -> str:
        if row["rule"] not in self.rules:
            return "its rule is no longer in the config"
        if not row["subject"] and not row["body"]:
            return "its buyer was forgotten"
        if stage is None or stage in STOPPED_ORDERS:
            return f"the order is {stage or 'no longer in the book'}"
        if row["channel"] not in channels_of(self.config, self.rules[row["rule"]]):
            return "its channel does not allow contacting buyers (or is disabled)"
        return ""

    def _destination(self, rule: FollowupConfig) -> Destinations:
        if rule.name not in self._destinations:
            self._destinations[rule.name] = Destinations(rule)
        return self._destinations[rule.name]

    def _mark_sent(self, row_id: int, rule: str) -> None:
        now = self.clock()
        self._finish(row_id, state="sent", sent_at=now, last_error="")
        with self.db.begin() as conn:
            resolve_if_clear(conn, rule, now)

    def _failed_send(self, row: dict[str, Any], error: str, run: FollowupRun) -> None:
        now, attempts = self.clock(), row["attempts"] + 1
        if attempts < ATTEMPTS:
            run.retrying += 1
            log.warning("follow-up %s: %s (try %d of %d)", _key(row), error, attempts, ATTEMPTS)
            self._finish(row["id"], attempts=attempts, last_error=error,
                         next_attempt_at=now + retry_delay(attempts), state="sending")
            return
        run.failed += 1
        log.error("follow-up %s: %s; given up after %d tries", _key(row), error, attempts)
        with self.db.begin() as conn:
            conn.execute(followup_t.update().where(followup_t.c.id == row["id"]).values(
                state="failed", attempts=attempts, last_error=error, next_attempt_at=None))
            run.opened += self._failed_conflict(conn, row["rule"], now)

    def _finish(self, row_id: int, **values: Any) -> None:
        with self.db.begin() as conn:
            conn.execute(followup_t.update().where(followup_t.c.id == row_id).values(**values))

    def _failed_conflict(self, conn: Connection, rule: str, now: datetime) -> list[int]:
        return open_conflicts(conn, [failed_conflict(conn, rule)], now)


def failed_conflict(conn: Connection, rule: str) -> ConflictRecord:
    """The rule's one ``followup_failed`` conflict, with its failed follow-ups now."""
    rows = conn.execute(sa.select(followup_t.c.id, followup_t.c.channel,
                                  followup_t.c.order_id, followup_t.c.last_error)
                        .where(followup_t.c.rule == rule, followup_t.c.state == "failed")
                        .order_by(followup_t.c.id.desc())).all()
    latest = rows[0] if rows else None
    what = f"{len(rows)} follow-up{'s' if len(rows) != 1 else ''} of rule {rule!r} not sent"
    last = f"; the latest, #{latest.id} ({latest.channel} order {latest.order_id}): " \
        f"{latest.last_error}" if latest else ""
    return ConflictRecord(
        kind=KIND, subject=rule,
        message=f"{what}{last}. Fix the cause, then 'channelsync followups retry --rule "
                f"{rule}' (or retry ID).",
        detail={"failed": [{"id": r.id, "channel": r.channel, "order_id": r.order_id}
                           for r in rows[:20]], "count": len(rows),
                "error": latest.last_error if latest else ""})


def resolve_if_clear(conn: Connection, rule: str, now: datetime) -> None:
    """Resolve the rule's conflict once none of its follow-ups is failed."""
    failed = conn.execute(sa.select(followup_t.c.id).where(
        followup_t.c.rule == rule, followup_t.c.state == "failed").limit(1)).first()
    if failed is None:
        resolve_conflicts(conn, KIND, [rule], now)


def _key(row: dict[str, Any]) -> str:
    return followup_key(row["rule"], row["channel"], row["order_id"])


def _without_buyer(text: str, buyer: str) -> str:
    """An error a template raised may quote a field: conflicts and logs never name buyers."""
    return text.replace(buyer, "<buyer>") if buyer else text
