"""Pushing the outbox to a channel, echo-safe, within its budgets, with what each write
expects where the channel compares and sets."""

from __future__ import annotations

import functools
import itertools
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from channelsync.config import ChannelConfig, Config
from channelsync.connector import (
    Capabilities,
    Connector,
    PendingOutcomes,
    PushItem,
    PushResult,
)
from channelsync.errors import (
    ChannelSyncError,
    Deferred,
    PermanentChannelError,
    RetriableChannelError,
)
from channelsync.ledger.apply import chunks
from channelsync.ledger.conflicts import ConflictRecord, open_conflicts, resolve_conflicts
from channelsync.ledger.schema import (
    conflict_t,
    line_t,
    listing_t,
    outbox_t,
    push_log_t,
    state_t,
)
from channelsync.sync.budget import Budget
from channelsync.sync.planner import PLAN_PAGE, targets
from channelsync.sync.retry import RetryPolicy

log = logging.getLogger(__name__)
PERMANENT_RETRY = timedelta(hours=1)  # a refused item is tried again this much later
RECORD_CHUNK = 2_000  # outcomes recorded at a time

# The statements of a push round, built once: a round of 4 listings a call (eBay) runs
# each of them thousands of times, and building one costs more than running it.
_MARK_SENT = outbox_t.update().where(outbox_t.c.id == sa.bindparam("b_id")).values(
    sent=sa.bindparam("b_sent"), sent_at=sa.bindparam("b_at"))
_MARK_PENDING = outbox_t.update().where(outbox_t.c.id == sa.bindparam("b_id")).values(
    pending=sa.bindparam("b_pending"), pending_at=sa.bindparam("b_at"),
    pending_index=sa.bindparam("b_index"), sent=sa.bindparam("b_sent"), last_error="")
_SETTLE = outbox_t.delete().where(outbox_t.c.id == sa.bindparam("b_id"),
                                  outbox_t.c.version == sa.bindparam("b_version"))
_RELEASE = outbox_t.update().where(
    outbox_t.c.id.in_(sa.bindparam("b_ids", expanding=True))
).values(pending="", pending_at=None, pending_index=None, sent=None, sent_at=None)
_OPEN_CONFLICTS = sa.select(conflict_t.c.kind, conflict_t.c.subject).where(
    conflict_t.c.kind.in_(sa.bindparam("b_kinds", expanding=True)),
    conflict_t.c.subject.in_(sa.bindparam("b_subjects", expanding=True)),
    conflict_t.c.resolved_at.is_(None))


@functools.cache
def _landed_listing(columns: tuple[str, ...]) -> sa.Update:
    """What a landed write sets on its listing: these columns, from ``b_<column>``."""
    return listing_t.update().where(listing_t.c.id == sa.bindparam("b_id")).values(
        {c: sa.bindparam(f"b_{c}") for c in columns})


class PushContext(Protocol):
    """What pushing needs of the engine, which it never imports: the ledger, the config,
    the clock, the connector of a channel and the one way to call it (rate limits, the
    retry policy, observation)."""

    config: Config
    db: Engine
    retry: RetryPolicy
    stopping: threading.Event
    clock: Callable[[], datetime]

    def connector(self, channel: ChannelConfig) -> Connector: ...

    def call(self, channel: ChannelConfig, fn: Callable[[], Any], operation: str) -> Any: ...


@dataclass
class PushOutcome:
    pushed: int = 0
    failed: int = 0
    held: int = 0
    deferred: int = 0  # not sent: a rate limit left them for a later cycle
    awaiting: int = 0  # sent; the channel reports their outcome later (an Amazon feed)
    stale: int = 0  # refused by compare-and-set: the channel changed first; retried
    stale_listings: list[int] = field(default_factory=list)  # ...whose channel said what it shows
    stale_skus: set[str] = field(default_factory=set)  # their master SKUs
    error: ChannelSyncError | None = None


def _due(
    conn: Connection, config: Config, channel: str, now: datetime
) -> tuple[list[dict[str, Any]], Any]:
    """Outbox rows due now, their targets computed again with this process's config.

    The outbox says which listings need a push; what to push is decided right before
    pushing, from the ledger as it is now (a CLI with another config may have planned it).
    Rows that no longer need a push are settled here.
    """
    query = (
        sa.select(outbox_t.c.id, outbox_t.c.listing_id, outbox_t.c.version, outbox_t.c.attempts,
                  listing_t.c.sku, listing_t.c.channel_sku, listing_t.c.ref, listing_t.c.managed,
                  listing_t.c.last_pushed, listing_t.c.last_pushed_at,
                  listing_t.c.believed, listing_t.c.believed_at, outbox_t.c.planned_at,
                  outbox_t.c.sent, outbox_t.c.sent_at,
                  listing_t.c.revisions_day, listing_t.c.revisions)
        .join(listing_t, listing_t.c.id == outbox_t.c.listing_id)
        .where(outbox_t.c.channel == channel, outbox_t.c.next_attempt_at <= now,
               outbox_t.c.pending == "")  # one write at a time per listing
        .order_by(outbox_t.c.id)
    )
    rows = [dict(r) for r in conn.execute(query).mappings()]
    due, settled = [], []
    for page in chunks(rows, PLAN_PAGE):  # what targets() holds stays a page's worth
        items = targets(conn, config, [{**r, "id": r["listing_id"], "channel": channel}
                                       for r in page], trace=False)
        for row, item in zip(page, items, strict=True):
            # A write whose answer was lost may have landed: the listing may show what it
            # carried, not what was last confirmed. Write the target to be sure.
            unsure = row["sent"] is not None and item.target is not None \
                and row["sent"] != item.target
            if item.changes or unsure:
                row.update(target=item.target, available=item.available)
                due.append(row)
            else:
                settled.append(row["id"])
    for chunk in chunks(settled):
        conn.execute(outbox_t.delete().where(outbox_t.c.id.in_(chunk)))
    due = _settle_shown(conn, channel, due, now)
    watermark = conn.execute(
        sa.select(state_t.c.pull_started_at).where(state_t.c.name == channel)).scalar()
    return due, watermark


def _settle_shown(
    conn: Connection, channel: str, due: list[dict[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    """Record as pushed, without a call, never-pushed listings the channel shows at their
    target; return the other rows.

    The plan compares a target with what was last pushed, so a listing nothing was pushed
    to yet is planned even when the read that found it showed the target. Sending that
    same number costs a slot of a batch (eBay: four listings a call) and one of the
    listing's daily revisions. Only a read no order line of the listing has changed since
    is trusted; when one has, the write goes out as before.
    """
    candidates = [r for r in due if r["last_pushed"] is None and r["believed"] == r["target"]]
    if not candidates:
        return due
    expected = expected_quantities(conn, channel, candidates)
    shown = {r["id"] for r in candidates if expected[r["listing_id"]] == r["target"]}
    # Nothing went out: when the last write went out stays what it was.
    _succeeded(conn, channel, [({**row, "sent_at": None}, PushResult(row["channel_sku"], True),
                                now) for row in due if row["id"] in shown])
    if shown:
        log.info("%s: %d new listings already show their target; nothing sent for them",
                 channel, len(shown))
    return [r for r in due if r["id"] not in shown]


def expected_quantities(
    conn: Connection, channel: str, rows: Sequence[dict[str, Any]]
) -> dict[int, int | None]:
    """What each listing should show on the channel now, for compare-and-set writes.

    The last quantity written, read or reported by a refused compare, less the units of
    this channel's order lines first applied since then (the channel took those off
    itself), plus units of older lines cancelled since (it put those back). When this is
    wrong the channel refuses the write as stale and says what it shows, so a wrong
    belief costs a round trip, never a wrong write.
    """
    expected: dict[int, int | None] = {}
    by_sku: dict[str, tuple[int, datetime]] = {}
    for row in rows:
        known = row["believed"] is not None and row["believed_at"] is not None
        expected[row["listing_id"]] = row["believed"] if known else None  # None: no compare
        if known:
            by_sku[row["channel_sku"]] = (row["listing_id"], row["believed_at"])
    if not by_sku:
        return expected
    # Lines seen since the oldest belief, by the time-ordered indexes; each listing then
    # counts those after its own. Beliefs are refreshed by every write and read-back.
    oldest = min(at for _, at in by_sku.values())
    columns = (line_t.c.channel_sku, line_t.c.ordered, line_t.c.cancelled,
               line_t.c.first_seen_at, line_t.c.cancel_seen_at)
    seen = sa.union(
        sa.select(*columns).where(line_t.c.channel == channel, line_t.c.first_seen_at > oldest),
        sa.select(*columns).where(line_t.c.channel == channel,
                                  line_t.c.cancel_seen_at.is_not(None),
                                  line_t.c.cancel_seen_at > oldest),
    )
    delta: dict[int, int] = {}
    for sku, ordered, cancelled, first_seen, cancel_seen in conn.execute(seen):
        if sku not in by_sku:
            continue
        listing_id, since = by_sku[sku]
        if first_seen is not None and first_seen > since:
            change = cancelled - ordered  # sold there since: the channel took it off
        elif cancel_seen is not None and cancel_seen > since:
            change = cancelled  # cancelled since: the channel put it back
        else:
            continue
        delta[listing_id] = delta.get(listing_id, 0) + change
    for listing_id, change in delta.items():
        value = expected[listing_id]
        if value is not None:
            expected[listing_id] = max(0, value + change)
    return expected


def operation_key(row: dict[str, Any]) -> str:
    """Names one attempt at a planned write: the same while its outcome is unknown (a retry
    after a timeout may be answered from the channel's memory), new once an outcome was
    recorded (a write refused an hour ago is tried afresh, not answered with that refusal)."""
    planned = row["planned_at"].isoformat() if row["planned_at"] else ""
    return f"{row['listing_id']}:{row['id']}:{row['version']}:{planned}:{row['attempts']}"


def echo_safe(
    row: dict[str, Any], watermark: datetime | None, lag: timedelta = timedelta(0)
) -> bool:
    """Decreases go at once; an increase only once a pull that began at least the channel's
    order lag after the last push has completed: every sale since that push is in the
    ledger by then, and writing over one would put the sold unit back on sale."""
    if row["last_pushed"] is None or row["target"] <= row["last_pushed"]:
        return True
    if row["last_pushed_at"] is None:
        return True
    return watermark is not None and watermark >= row["last_pushed_at"] + lag


def batches(rows: Sequence[dict[str, Any]], limit: int) -> Iterable[Sequence[dict[str, Any]]]:
    """As few batches as ``limit`` allows, of even sizes: 25,050 listings for Amazon
    (25,000 a feed) are two feeds of 12,525, not a feed and 50 listings that, under the
    feed threshold, would go one call each."""
    count = -(-len(rows) // max(1, limit))
    out, start = [], 0
    for i in range(count):  # sizes differ by one at most
        size = len(rows) // count + (i < len(rows) % count)
        out.append(rows[start:start + size])
        start += size
    return out


def push_channel(engine: PushContext, channel: ChannelConfig) -> PushOutcome:
    outcome = PushOutcome()
    connector = engine.connector(channel)
    budget = _budget(connector.capabilities)
    _collect(engine, channel, connector, budget, outcome)
    now = engine.clock()
    with engine.db.begin() as conn:
        rows, watermark = _due(conn, engine.config, channel.name, now)
    lag = connector.capabilities.order_lag
    due = [r for r in rows if echo_safe(r, watermark, lag)
           and (budget is None or budget.allows(r, now))]
    outcome.held = len(rows) - len(due)
    cas = connector.capabilities.compare_and_set
    if cas and due:
        with engine.db.connect() as conn:
            expected = expected_quantities(conn, channel.name, due)
    for batch in batches(due, connector.capabilities.push_batch_size):
        if engine.stopping.is_set():
            break  # shutting down: the outbox keeps the rest
        items = [PushItem(r["channel_sku"], r["target"], r["ref"],
                          expected[r["listing_id"]] if cas else r["last_pushed"],
                          operation_key(r)) for r in batch]
        sent = _about_to_send(engine, batch)
        try:
            results: list[PushResult] = engine.call(
                channel, functools.partial(connector.push_quantities, items), "push_quantities")
        except (RetriableChannelError, PermanentChannelError) as exc:
            results = [PushResult(i.channel_sku, False, exc) for i in items]
            outcome.error = exc
        by_sku = {r.channel_sku: r for r in results}
        with engine.db.begin() as conn:
            _record_all(engine, conn, channel.name, (
                ({**row, **sent[index], "index": index, "watermark": watermark},
                 by_sku.get(row["channel_sku"]) or PushResult(
                     row["channel_sku"], False, RetriableChannelError("no outcome reported")))
                for index, row in enumerate(batch)), budget, outcome)
        if outcome.error:
            break  # the channel itself is failing: leave the rest for the next cycle
    if outcome.pushed or outcome.failed or outcome.stale or outcome.awaiting:
        log.info("%s: pushed %d, failed %d, held %d, stale %d, awaiting the channel %d",
                 channel.name, outcome.pushed, outcome.failed, outcome.held, outcome.stale,
                 outcome.awaiting)
    with engine.db.begin() as conn:
        conn.execute(state_t.update().where(state_t.c.name == channel.name).values(
            pushed_at=engine.clock()))
    return outcome


@dataclass
class _Writes:
    """The outcomes of a batch that are written a batch at a time (each row's own)."""

    landed: list[tuple[dict[str, Any], PushResult, datetime]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)  # outbox rows, as parameters


def _record_all(
    engine: PushContext, conn: Connection, channel: str,
    outcomes: Iterable[tuple[dict[str, Any], PushResult]], budget: Budget | None,
    outcome: PushOutcome,
) -> None:
    """A batch's outcomes, into the ledger, the tally and the push log. Each row's writes
    touch only its own listing, outbox row and conflicts, so the common outcomes (landed,
    pending) go in a few statements for many rows: RECORD_CHUNK at a time, so that what
    is held stays small whatever the batch (an Amazon feed carries 25,000)."""
    remaining = iter(outcomes)
    while chunk := list(itertools.islice(remaining, RECORD_CHUNK)):
        writes = _Writes()
        entries = [_record(engine, conn, channel, row, result, outcome, writes)
                   for row, result in chunk]
        _succeeded(conn, channel, writes.landed, budget)
        if writes.pending:
            conn.execute(_MARK_PENDING, writes.pending)
        _log(conn, entries)


def _record(
    engine: PushContext, conn: Connection, channel: str, row: dict[str, Any],
    result: PushResult, outcome: PushOutcome, writes: _Writes,
) -> dict[str, Any] | None:
    """One write's outcome, into the ledger (landed and pending ones: into ``writes``) and
    the tally; returns its push log entry (None for a write a rate limit kept from going
    out)."""
    now = engine.clock()
    entry = {"listing_id": row["listing_id"], "channel": channel,
             "channel_sku": row["channel_sku"], "sku": row["sku"], "quantity": row["target"],
             "previous": row.get("last_pushed"), "available": row.get("available"),
             "watermark": row.get("watermark"), "sent_at": now,
             "outcome": _OUTCOME[(result.ok, bool(result.pending), result.stale)],
             "detail": "" if result.error is None else str(result.error)[:300]}
    if result.ok:
        writes.landed.append((row, result, now))
        outcome.pushed += 1
    elif result.pending:
        writes.pending.append(_pending(row, result.pending, now))
        outcome.awaiting += 1
    elif result.stale:
        _stale(conn, channel, row, result, now)
        outcome.stale += 1
        outcome.stale_skus.add(row["sku"])
        if result.observed is not None:
            outcome.stale_listings.append(row["listing_id"])
    elif isinstance(result.error, Deferred):
        _deferred(conn, row, result.error, now)
        outcome.deferred += 1
        outcome.error = outcome.error or result.error
        return None
    else:
        _failed(engine, conn, channel, row, result)
        outcome.failed += 1
    return entry


_OUTCOME = {(True, False, False): "ok", (False, True, False): "pending",
            (False, False, True): "stale", (False, False, False): "failed"}


def _log(conn: Connection, entries: Sequence[dict[str, Any] | None]) -> None:
    """The push log, a batch at a time."""
    rows = [e for e in entries if e is not None]
    if rows:
        conn.execute(push_log_t.insert(), rows)


def _pending(row: dict[str, Any], token: str, now: datetime) -> dict[str, Any]:
    """Sent; the channel reports the outcome later. No other write to the listing until then
    (two writes in flight could apply in either order). The outbox row's new values."""
    return {"b_id": row["id"], "b_pending": token, "b_at": now,
            "b_index": row.get("index", 0), "b_sent": row["target"]}


def _collect(
    engine: PushContext, channel: ChannelConfig, connector: Any, budget: Budget | None,
    outcome: PushOutcome,
) -> None:
    """Ask the channel for the outcomes of writes it was still processing."""
    query = (
        sa.select(outbox_t.c.id, outbox_t.c.listing_id, outbox_t.c.version,
                  outbox_t.c.attempts, outbox_t.c.sent, outbox_t.c.sent_at, outbox_t.c.pending,
                  outbox_t.c.pending_at, listing_t.c.sku, listing_t.c.channel_sku,
                  listing_t.c.ref, listing_t.c.revisions_day, listing_t.c.revisions,
                  listing_t.c.last_pushed)
        .join(listing_t, listing_t.c.id == outbox_t.c.listing_id)
        .where(outbox_t.c.channel == channel.name, outbox_t.c.pending != "")
        .order_by(outbox_t.c.pending, outbox_t.c.pending_index)
    )
    with engine.db.connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
    for token, group in itertools.groupby(rows, key=lambda r: str(r["pending"])):
        # What was sent is what the channel shows if it took it; the row itself is only
        # released (no version matches None): the push that follows settles it, or writes
        # the target planned since.
        batch = [{**r, "target": r["sent"], "version": None} for r in group]
        if not isinstance(connector, PendingOutcomes):
            results: list[PushResult] | None = [PushResult(
                r["channel_sku"], False, RetriableChannelError("the outcome cannot be asked"))
                for r in batch]
        else:
            items = [PushItem(r["channel_sku"], r["target"], r["ref"]) for r in batch]
            results = engine.call(channel, functools.partial(
                connector.push_outcomes, token, items, batch[0]["pending_at"]), "push_outcomes")
        if results is None:
            outcome.awaiting += len(batch)
            continue
        with engine.db.begin() as conn:
            _record_all(engine, conn, channel.name, [
                (row, replace(result, pending=""))
                for row, result in zip(batch, results, strict=True)], budget, outcome)


def _budget(capabilities: Capabilities) -> Budget | None:
    limit = capabilities.daily_revisions
    return Budget(limit, capabilities.revision_day_timezone) if limit else None


def _succeeded(
    conn: Connection, channel: str,
    landed: Sequence[tuple[dict[str, Any], PushResult, datetime]], budget: Budget | None = None,
) -> None:
    """Writes that landed (each with when its outcome was recorded): the listing shows the
    target, the outbox row is settled, the write's conflicts are resolved. A few statements
    for all of them: each touches only its own listing, outbox row and conflicts."""
    if not landed:
        return
    subjects = [f"{channel}:{row['channel_sku']}" for row, _, _ in landed]
    open_now = _open_conflicts(conn, ("push_failed", "revision_budget"), subjects)
    updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for (row, result, now), subject in zip(landed, subjects, strict=True):
        values: dict[str, Any] = {"last_pushed": row["target"], "last_pushed_at": now,
                                  "believed": row["target"], "believed_at": now,
                                  "push_failures": 0}
        if row.get("sent_at") is not None:  # sales pulled since are not in what it carried
            values["write_sent_at"] = row["sent_at"]
        if result.ref:
            values["ref"] = result.ref
        if budget is not None:
            values.update(budget.after_push(row, now))
            warning = budget.warning(channel, {**row, **values}, now)
            if warning:
                open_conflicts(conn, [warning], now)
            elif ("revision_budget", subject) in open_now:  # a new day
                resolve_conflicts(conn, "revision_budget", [subject], now)
        updates.setdefault(tuple(values), []).append(
            {"b_id": row["listing_id"], **{f"b_{k}": v for k, v in values.items()}})
        if ("push_failed", subject) in open_now:
            resolve_conflicts(conn, "push_failed", [subject], now)
    for columns, params in updates.items():
        conn.execute(_landed_listing(columns), params)
    settled = conn.execute(_SETTLE, [{"b_id": row["id"], "b_version": row["version"]}
                                     for row, _, _ in landed])
    if conn.dialect.supports_sane_multi_rowcount and settled.rowcount == len(landed):
        return
    # Planned again meanwhile (a newer target): the row stays, for that one.
    for chunk in chunks([row["id"] for row, _, _ in landed]):
        conn.execute(_RELEASE, {"b_ids": chunk})


def _open_conflicts(
    conn: Connection, kinds: Sequence[str], subjects: Sequence[str]
) -> set[tuple[str, str]]:
    """(kind, subject) of the open conflicts among these."""
    found: set[tuple[str, str]] = set()
    for chunk in chunks(subjects):
        found.update((kind, subject) for kind, subject in conn.execute(
            _OPEN_CONFLICTS, {"b_kinds": kinds, "b_subjects": chunk}))
    return found


def _about_to_send(
    engine: PushContext, batch: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Committed before the call: if channelsync dies before the answer is recorded, a
    read-back finding the listing at exactly this quantity knows the write landed, instead
    of calling it drift. When it went out is kept with it: sales pulled after that moment
    are not in what it carried (readback.explained), once it is known to have landed.
    The listing's own write_sent_at moves only then: a write that was deferred, refused
    or failed carried nothing to the channel, and the sales pulled before it still explain
    what the channel shows.

    Returns what each row's outcome is recorded with: when it went out, and the outbox's
    record of an earlier write (``_not_sent``)."""
    now = engine.clock()
    with engine.db.begin() as conn:
        conn.execute(_MARK_SENT, [{"b_id": r["id"], "b_sent": r["target"], "b_at": now}
                                  for r in batch])
    return [{"before": {"sent": row.get("sent"), "sent_at": row.get("sent_at")},
             "sent_at": now} for row in batch]


def _deferred(conn: Connection, row: dict[str, Any], error: Deferred, now: datetime) -> None:
    """Not sent: a rate limit left it for a later cycle. Not a failed attempt. An earlier
    write of unknown outcome stays what may have landed."""
    conn.execute(outbox_t.update().where(outbox_t.c.id == row["id"]).values(
        next_attempt_at=now + timedelta(seconds=error.wait), last_error=str(error)[:500],
        **_not_sent(row)))


def _not_sent(row: dict[str, Any]) -> dict[str, Any]:
    """The outbox's record of a write of unknown outcome, as it was before this call,
    which sent nothing."""
    return row.get("before") or {"sent": None, "sent_at": None}


def _stale(
    conn: Connection, channel: str, row: dict[str, Any], result: PushResult, now: datetime
) -> None:
    """Compare-and-set refused the write: nothing was written. Keep it due, remember what
    the channel showed, and count it; the engine pulls the channel and tries again."""
    shows = "something else" if result.observed is None else result.observed
    log.info("%s: %s changed on the channel before our write (it shows %s); pulling its "
             "orders and trying again", channel, row["channel_sku"], shows)
    if result.observed is not None:
        conn.execute(listing_t.update().where(listing_t.c.id == row["listing_id"]).values(
            believed=result.observed, believed_at=now))
    conn.execute(outbox_t.update().where(outbox_t.c.id == row["id"]).values(
        next_attempt_at=now, last_error="stale compare: the channel changed first",
        **_not_sent(row)))
    conn.execute(state_t.update().where(state_t.c.name == channel).values(
        stale_compares=state_t.c.stale_compares + 1, stale_at=now))


def believed_as_of(
    conn: Connection, now: datetime, *, listing_ids: Sequence[int] = (),
    channel: str = "", channel_skus: Sequence[str] = (),
) -> None:
    """Date what the channel showed (a refused compare, a read that did not match) to after
    the pull that followed: the orders that pull applied are already in those quantities
    and must not be taken off again."""
    for chunk in chunks(sorted(listing_ids)):
        conn.execute(listing_t.update().where(
            listing_t.c.id.in_(chunk), listing_t.c.believed.is_not(None)
        ).values(believed_at=now))
    for names in chunks(sorted(channel_skus)):
        conn.execute(listing_t.update().where(
            listing_t.c.channel == channel, listing_t.c.channel_sku.in_(names),
            listing_t.c.believed.is_not(None)
        ).values(believed_at=now))


def _failed(
    engine: PushContext, conn: Connection, channel: str, row: dict[str, Any], result: PushResult
) -> None:
    now = engine.clock()
    attempts = row["attempts"] + 1
    error = result.error
    permanent = isinstance(error, PermanentChannelError)
    delay = PERMANENT_RETRY if permanent else timedelta(
        seconds=engine.retry.delay_after(attempts))
    # A refusal wrote nothing; any other failure (a timeout, a 5xx) may have been applied
    # with its answer lost: a read-back showing exactly this quantity settles it.
    sent = None if permanent else row["target"]
    conn.execute(outbox_t.update().where(outbox_t.c.id == row["id"]).values(
        attempts=attempts, next_attempt_at=now + delay, last_error=str(error)[:500], sent=sent,
        sent_at=None if permanent else row.get("sent_at"),
        pending="", pending_at=None, pending_index=None))
    conn.execute(listing_t.update().where(listing_t.c.id == row["listing_id"]).values(
        push_failures=listing_t.c.push_failures + 1))
    if permanent or attempts >= engine.config.daemon.push_attempts:
        reason = "was refused" if permanent else f"failed {attempts} times"
        open_conflicts(conn, [ConflictRecord(
            kind="push_failed", subject=f"{channel}:{row['channel_sku']}", channel=channel,
            message=f"{channel}: pushing {row['target']} to {row['channel_sku']} {reason}: {error}",
            detail={"target": row["target"], "attempts": attempts, "error": str(error)},
        )], now)
