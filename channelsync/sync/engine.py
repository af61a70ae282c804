"""The sync cycle: pull, apply, detect, plan, push, and read back.

The engine owns state (cursors, listings, outbox, conflicts); connectors own none.
Each channel's work runs under that channel's lock, so two daemon replicas never
work one channel at once.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from channelsync.config import ChannelConfig, Config
from channelsync.connector import ChannelListing, Connector, ListingProblem, OrderPage
from channelsync.customers import loyalty
from channelsync.customers import queries as customer_queries
from channelsync.db.core import channel_lock
from channelsync.errors import (
    ChannelError,
    ChannelSyncError,
    Deferred,
    Interrupted,
    PermanentChannelError,
    ThrottledError,
)
from channelsync.ledger import apply as ledger
from channelsync.ledger import schema
from channelsync.ledger.apply import ApplyResult
from channelsync.ledger.conflicts import open_conflicts, resolve_conflicts
from channelsync.ledger.schema import state_t, utcnow
from channelsync.orders import book
from channelsync.registry import load_connector
from channelsync.sync import deferrals, fulfilment, planner, pushing, readback, rules
from channelsync.sync.events import EventBus
from channelsync.sync.ratelimit import TokenBucket, deferring, human_wait
from channelsync.sync.retry import RetryPolicy

log = logging.getLogger(__name__)
MAX_PAGES = 10_000  # a connector that never stops paging is a bug, not a big store
# Writes refused by compare-and-set are retried after a pull this many times in one job;
# what is still refused then waits in the outbox for the next cycle.
STALE_ROUNDS = 3
# Calls a long rate-limit wait may leave to a later cycle: a pull goes on from its next page,
# a push batch stays in the outbox. Reading every listing cannot be split: it waits.
DEFERRABLE = frozenset({"pull_orders", "push_quantities", "push_outcomes"})
PUSH_LOG_DAYS = 30  # how long each write stays in the push log (explain shows it)
FORGET_EVERY = 3600.0  # seconds between looks for buyers to forget (forget_after_days)
CLOCK_WARNING = timedelta(seconds=30)  # a channel clock this far off is worth a log line


@dataclass
class ChannelReport:
    channel: str
    pulled: int = 0
    apply: ApplyResult = field(default_factory=ApplyResult)
    bad_records: int = 0
    pushed: int = 0
    push_failed: int = 0
    held: int = 0
    awaiting: int = 0  # writes the channel is still processing (an Amazon feed)
    stale_compares: int = 0
    listings: int = 0
    unmapped: list[str] = field(default_factory=list)
    drift: int = 0
    shipments_confirmed: int = 0
    shipments_waiting: int = 0  # queued: to retry, or not due yet
    shipments_refused: int = 0
    error: str = ""
    busy: bool = False  # another process holds this channel
    # calls a rate limit left for a later cycle: what ("orders", ...) -> seconds until allowed
    deferred: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel, "pulled": self.pulled, "applied": self.apply.applied,
            "unchanged": self.apply.unchanged, "stale": self.apply.stale,
            "pending": self.apply.pending, "bad_records": self.bad_records,
            "pushed": self.pushed, "push_failed": self.push_failed, "held": self.held,
            "awaiting": self.awaiting,
            "stale_compares": self.stale_compares,
            "listings": self.listings, "unmapped": self.unmapped, "drift": self.drift,
            "shipments": {"confirmed": self.shipments_confirmed,
                          "waiting": self.shipments_waiting, "refused": self.shipments_refused},
            "conflicts_opened": self.apply.conflicts, "error": self.error, "busy": self.busy,
            "deferred": {what: round(wait, 1) for what, wait in self.deferred.items()},
        }


class SyncEngine:
    def __init__(
        self,
        config: Config,
        db: Engine,
        *,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] | None = None,
        connectors: dict[str, Connector] | None = None,
        events: EventBus | None = None,
    ) -> None:
        self.config = config
        self.events = events or EventBus()
        self.db = db
        self.clock = clock
        self._sleep = sleep
        self._connectors: dict[str, Connector] = dict(connectors or {})
        self._forget_due = 0.0  # monotonic: when inactive buyers are next looked for
        self._buckets: dict[str, TokenBucket] = {}
        self._offsets: dict[str, timedelta] = {}  # channel clock - ours
        self._lock = threading.Lock()
        self.on_event: Callable[[str], None] = lambda _message: None  # progress for people
        # Set on shutdown: work stops at the next page or batch boundary, where everything
        # done so far is committed and the cursor matches it; waits end at once.
        self.stopping = threading.Event()
        daemon = config.daemon
        self.retry = RetryPolicy(daemon.retry_attempts, max_wait=daemon.retry_max_wait,
                                 sleep=self.sleep)
        with db.begin() as conn:
            sync_kits(conn, config)

    def sleep(self, seconds: float) -> None:
        """Every wait of a cycle (retries, rate limits, connectors that take a ``sleep``):
        over at once when channelsync is stopping, which raises ``Interrupted``."""
        if self._sleep is None:
            if self.stopping.wait(seconds):
                raise Interrupted(f"stopping: a wait of {seconds:.1f} s was cut short")
            return
        if self.stopping.is_set():
            raise Interrupted("stopping")
        self._sleep(seconds)

    # -- connectors -------------------------------------------------------------------------

    def channels(self, names: Sequence[str] | None = None) -> list[ChannelConfig]:
        if names:
            return [self.config.channel(n) for n in names]
        return [c for c in self.config.channels if c.enabled]

    def connector(self, channel: ChannelConfig) -> Connector:
        with self._lock:
            return self._connector(channel)

    def _connector(self, channel: ChannelConfig) -> Connector:
        if channel.name not in self._connectors:
            factory = load_connector(channel.type)
            extra: dict[str, Any] = {}
            if _takes(factory, "sleep"):  # its waits (rate limits, polling) end on shutdown
                extra["sleep"] = self.sleep
            self._connectors[channel.name] = factory(
                channel.name, channel.settings, endpoint=channel.endpoint, **extra
            )
        return self._connectors[channel.name]

    def call(self, channel: ChannelConfig, fn: Callable[[], Any], operation: str) -> Any:
        """One channel API call: rate limited, retried by the one policy, observed."""
        caps = self.connector(channel).capabilities
        with self._lock:
            bucket = self._buckets.get(channel.name)
            if bucket is None:
                bucket = TokenBucket(caps.requests_per_second, caps.burst, sleep=self.sleep)
                self._buckets[channel.name] = bucket

        def attempt() -> Any:
            bucket.acquire()
            started = time.monotonic()
            outcome: str | None = "error"
            try:
                result = fn()
                outcome = "ok"
                return result
            except ThrottledError:
                outcome = "throttled"
                raise
            except Deferred:
                outcome = None  # the connector did not call the channel
                raise
            finally:
                if outcome is not None:
                    self.events.emit("api_call", channel=channel.name, operation=operation,
                                     outcome=outcome, seconds=time.monotonic() - started)

        try:
            with deferring(operation in DEFERRABLE):
                return self.retry.call(attempt)
        except Deferred as exc:
            exc.channel = exc.channel or channel.name
            exc.what = exc.what or deferrals.WHAT.get(operation, operation)
            raise

    def close(self) -> None:
        for connector in self._connectors.values():
            try:
                connector.close()
            except Exception:  # closing must never hide the real outcome
                log.exception("closing a connector failed")
        self._connectors.clear()

    # -- the cycle --------------------------------------------------------------------------

    def sync(
        self, names: Sequence[str] | None = None, *, read_back: bool = True
    ) -> list[ChannelReport]:
        """One full cycle for these channels: pull all, plan, then push and read back each."""
        channels = self.channels(names)
        reports = {c.name: ChannelReport(c.name) for c in channels}
        started = time.monotonic()
        with ExitStack() as stack:
            mine = []
            for channel in sorted(channels, key=lambda c: c.name):
                if stack.enter_context(channel_lock(self.db, channel.name)):
                    mine.append(channel)
                else:
                    reports[channel.name].busy = True
                    log.info("%s: another process is working this channel; skipped", channel.name)
            touched: set[str] = set()
            replan_all = False
            for channel in mine:
                if self.stopping.is_set():
                    break
                touched |= self._guarded(channel, reports[channel.name], self.pull)
                replan_all |= self._rules_changed(channel)
            # Every channel's listings are planned: a sale here changes what the others show.
            everyone = [c.name for c in self.channels()]
            self.plan_outbox(everyone, None if replan_all else touched)
            for channel in mine:
                report = reports[channel.name]
                if report.error or self.stopping.is_set():
                    continue
                self._guarded(channel, report, self.push)
                self._guarded(channel, report, self.ship)
                if read_back or self._never_read(channel):
                    self._guarded(channel, report, self.read_back)
        for report in reports.values():
            if report.apply.conflicts:
                self.events.emit("conflicts", ids=report.apply.conflicts)
            self.events.emit("cycle_done", channel=report.channel, error=report.error,
                             busy=report.busy, seconds=time.monotonic() - started)
        self._forget_inactive()
        return [reports[c.name] for c in channels]

    def _forget_inactive(self) -> None:
        """``[loyalty] forget_after_days``: at most once every FORGET_EVERY seconds."""
        days = self.config.loyalty.forget_after_days
        if days is None or time.monotonic() < self._forget_due:
            return
        self._forget_due = time.monotonic() + FORGET_EVERY
        with self.db.begin() as conn:
            done = customer_queries.forget_inactive(conn, days, self.clock())
        if done.buyers:
            log.info("forgot %d buyers with no order in %d days ([loyalty] forget_after_days)",
                     done.buyers, days)

    def _guarded(
        self, channel: ChannelConfig, report: ChannelReport,
        step: Callable[[ChannelConfig, ChannelReport], set[str] | None],
    ) -> set[str]:
        """Run one step; a channel's failure is recorded and never stops the others."""
        try:
            return step(channel, report) or set()
        except Interrupted:
            log.info("%s: stopping; what was committed stays, the rest comes next time",
                     channel.name)
            return set()
        except Deferred as exc:
            self._defer(channel, report, exc)
            return set()
        except ChannelSyncError as exc:
            report.error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a connector bug must not stop the other channels
            log.exception("%s: unexpected error", channel.name)
            report.error = f"unexpected {type(exc).__name__}: {exc}"
        # Info: sync shows the error itself, and the daemon warns "cycle failed" with it.
        log.info("%s: %s", channel.name, report.error)
        with self.db.begin() as conn:
            ledger.ensure_channel_state(conn, channel.name)
            conn.execute(state_t.update().where(state_t.c.name == channel.name).values(
                last_error=report.error[:1000], last_error_at=self.clock()))
        return set()

    def _defer(self, channel: ChannelConfig, report: ChannelReport, exc: Deferred) -> None:
        """A call a rate limit left for later: recorded (``status`` shows it), not a failure."""
        what = exc.what or "calls"
        with self.db.begin() as conn:
            deferrals.defer(conn, channel.name, what, self.clock(), exc.wait)
        report.deferred[what] = exc.wait
        log.info("%s: %s deferred to a later cycle: %s", channel.name, what, exc)

    def _waiting(self, channel: ChannelConfig, report: ChannelReport, what: str) -> bool:
        """True (and noted in the report) while ``what`` is deferred for this channel."""
        now = self.clock()
        with self.db.connect() as conn:
            until = deferrals.pending(conn, channel.name, now).get(what)
        if until is None:
            return False
        report.deferred[what] = (until - now).total_seconds()
        log.debug("%s: %s deferred for %s more", channel.name, what,
                  human_wait(report.deferred[what]))
        return True

    def pull(self, channel: ChannelConfig, report: ChannelReport) -> set[str]:
        """Pull every page changed since the cursor (minus the overlap) and apply it, or go
        on from the page an earlier pull stopped at."""
        connector = self.connector(channel)
        # A read-back may pull a second time into the same report: events carry this pull's.
        before = (report.pulled, report.apply.applied, report.apply.pending, report.bad_records)
        with self.db.begin() as conn:
            ledger.ensure_channel_state(conn, channel.name)
            cursor = conn.execute(sa.select(state_t.c.cursor).where(
                state_t.c.name == channel.name)).scalar()
            resume = deferrals.resume_point(conn, channel.name)
            # Lines that waited for their SKU go first: the mapping may have changed.
            pending = ledger.pending_lines(conn, channel.name)
            if pending:
                again = ledger.apply_page(conn, channel.name, pending,
                                          master_sku=channel.master_sku, now=self.clock())
                book.record(conn, channel.name, (), {line.order_id for line in pending},
                            now=self.clock())
                report.apply.applied += again.applied
                report.apply.touched |= again.touched
                report.apply.conflicts += again.conflicts
        if self._waiting(channel, report, "orders"):
            return report.apply.touched
        fresh = self._fresh_pull(channel, cursor)
        if resume is None:
            resume = fresh
        else:
            log.info("%s: going on with a pull stopped at a later page", channel.name)
        try:
            done = self._pull_pages(channel, connector, resume, report)
        except PermanentChannelError as exc:
            if resume.page is None or resume is fresh:
                raise
            log.warning("%s: the channel refused the page a pull stopped at (%s); starting "
                        "that pull over", channel.name, exc)
            resume = fresh
            done = self._pull_pages(channel, connector, resume, report)
        if not done:
            return report.apply.touched
        with self.db.begin() as conn:
            conn.execute(state_t.update().where(state_t.c.name == channel.name).values(
                pull_started_at=resume.started, pulled_at=self.clock(), last_error=""))
            deferrals.clear(conn, channel.name, "orders", self.clock())
            if channel.assume_delivered_after:
                book.assume_delivered(conn, channel.name, channel.assume_delivered_after,
                                      now=self.clock())
        log.info("%s: pulled %d lines (%d applied, %d pending, %d bad)", channel.name,
                 report.pulled, report.apply.applied, report.apply.pending, report.bad_records)
        self.events.emit("pull_done", channel=channel.name, lines=report.pulled - before[0],
                         applied=report.apply.applied - before[1],
                         pending=report.apply.pending - before[2],
                         bad_records=report.bad_records - before[3],
                         seconds=(self.clock() - resume.started).total_seconds())
        return report.apply.touched

    def _clock_offset(self, channel: ChannelConfig, page: OrderPage) -> timedelta:
        """How far the channel's clock is ahead of ours, as its latest answer showed (the
        last known offset when a page does not say)."""
        if page.channel_now is not None:
            offset = page.channel_now - self.clock()
            known = self._offsets.get(channel.name)
            if abs(offset) > CLOCK_WARNING and (known is None or abs(known) <= CLOCK_WARNING):
                log.warning("%s: the channel's clock is %+.0f s off ours; its times are "
                            "corrected by that", channel.name, offset.total_seconds())
            self._offsets[channel.name] = offset
        return self._offsets.get(channel.name, timedelta(0))

    def _fresh_pull(self, channel: ChannelConfig, cursor: datetime | None) -> deferrals.Resume:
        started = self.clock()
        lookback = channel.lookback_days if channel.lookback_days is not None \
            else self.config.daemon.lookback_days
        overlap = self.connector(channel).capabilities.overlap
        since = started - timedelta(days=lookback) if cursor is None else cursor - overlap
        return deferrals.Resume(since, None, started)

    def _pull_pages(self, channel: ChannelConfig, connector: Connector,
                    resume: deferrals.Resume, report: ChannelReport) -> bool:
        """Pull and apply pages from ``resume`` on; each page, its cursor move and where to
        go on commit together. False when stopped before the last page."""
        for _ in range(MAX_PAGES):
            result: OrderPage = self.call(channel, functools.partial(
                connector.pull_orders, resume.since, resume.page), "pull_orders")
            resume = resume.then(result.next_page)
            offset = self._clock_offset(channel, result)
            with self.db.begin() as conn:
                applied = ledger.apply_page(
                    conn, channel.name, result.lines, master_sku=channel.master_sku,
                    now=self.clock(), resume_at=result.resume_at, bad_records=result.bad_records,
                    clock_offset=offset,
                )
                book.record(conn, channel.name, result.orders,
                            {line.order_id for line in result.lines}, now=self.clock(),
                            clock_offset=offset)
                tiers = loyalty.recognise(conn, channel.name, result.orders,
                                          self.config.loyalty, self.clock())
                applied.conflicts += open_conflicts(conn, tiers, self.clock())
                deferrals.save_resume_point(conn, channel.name, resume)
            report.pulled += len(result.lines)
            self.on_event(f"{channel.name}: pulled {report.pulled} order lines")
            report.bad_records += len(result.bad_records)
            report.apply.merge(applied)
            if resume.page is None:
                return True
            if self.stopping.is_set():
                log.info("%s: stopping after a committed page; the pull goes on from the "
                         "next one next time", channel.name)
                return False
        raise ChannelError(f"more than {MAX_PAGES} pages of orders", channel=channel.name)

    def _never_read(self, channel: ChannelConfig) -> bool:
        """A channel's listings are discovered on its first sync, whatever the job."""
        with self.db.connect() as conn:
            read = conn.execute(sa.select(state_t.c.discovered_at).where(
                state_t.c.name == channel.name)).scalar()
        return read is None

    def _rules_changed(self, channel: ChannelConfig) -> bool:
        digest = rules.rules_hash(self.config, channel.name)
        with self.db.begin() as conn:
            ledger.ensure_channel_state(conn, channel.name)
            result = conn.execute(state_t.update().where(
                state_t.c.name == channel.name, state_t.c.rules_hash != digest
            ).values(rules_hash=digest))
        return bool(result.rowcount)

    def plan_outbox(self, names: Sequence[str], touched: Iterable[str] | None) -> int:
        with self.db.begin() as conn:
            return planner.plan(conn, self.config, names, touched=touched, now=self.clock())

    def push(self, channel: ChannelConfig, report: ChannelReport) -> None:
        """Push the channel's outbox; writes refused as stale are retried after a pull.

        A refused compare-and-set means the channel changed after we last saw it, most
        likely a sale there: its orders are pulled, the targets computed again from the
        ledger that now holds that sale, and the write tried again, expecting what the
        channel said it showed. Nothing the channel did is overwritten.
        """
        for round_ in range(1, STALE_ROUNDS + 1):
            self.on_event(f"{channel.name}: pushing")
            outcome = pushing.push_channel(self, channel)
            report.pushed += outcome.pushed
            report.push_failed += outcome.failed
            report.held += outcome.held
            report.awaiting = outcome.awaiting  # what is still out after this round
            report.stale_compares += outcome.stale
            self.events.emit("push_done", channel=channel.name, pushed=outcome.pushed,
                             failed=outcome.failed, held=outcome.held, stale=outcome.stale,
                             awaiting=outcome.awaiting)
            if outcome.error:
                raise outcome.error
            if not outcome.stale or round_ == STALE_ROUNDS or self.stopping.is_set():
                break
            touched = self.pull(channel, report)
            with self.db.begin() as conn:
                pushing.believed_as_of(conn, self.clock(), listing_ids=outcome.stale_listings)
            everyone = [c.name for c in self.channels()]
            self.plan_outbox(everyone, touched | outcome.stale_skus)
        if outcome.stale:
            log.warning("%s: %d writes still refused as stale after %d rounds; they wait in "
                        "the outbox for the next cycle", channel.name, outcome.stale, round_)

    def confirm_shipments(self, names: Sequence[str]) -> list[ChannelReport]:
        """Send these channels' queued shipments now, under the channel's lock: a daemon
        working the channel sends them itself (the report says busy)."""
        reports = []
        for channel in self.channels(names):
            report = ChannelReport(channel.name)
            with channel_lock(self.db, channel.name) as mine:
                if mine:
                    self._guarded(channel, report, self.ship)
                else:
                    report.busy = True
            reports.append(report)
        return reports

    def ship(self, channel: ChannelConfig, report: ChannelReport) -> None:
        """Confirm the shipments recorded for this channel's orders (``fulfilment``)."""
        outcome = fulfilment.push_shipments(self, channel)
        report.shipments_confirmed += outcome.confirmed
        report.shipments_refused += outcome.refused
        report.shipments_waiting = outcome.waiting + outcome.failed

    def read_back(self, channel: ChannelConfig, report: ChannelReport) -> None:
        """Read the channel's listings: discover new ones, find drift, push corrections.

        A listing that does not show what was pushed may only have sold or been cancelled
        since the pull, so the channel is pulled and pushed once more and read again. What
        still shows less by the units sold there since our last write (pulled, so in the
        target) is corrected. Less than that may hold a sale the channel does not report yet
        (eBay and Amazon lag): correcting it would put the sold unit back on sale, so it is
        drift only once the channel has shown the same for its lag (its overlap). What shows
        more is corrected at once, and is drift only if, once the lag has passed, no
        cancellation pulled since explains it (``readback``).
        """
        if self._waiting(channel, report, "listings"):
            return
        found = self._read(channel, report)
        if found.mismatched:
            first = {d.channel_sku: d for d in found.mismatched}
            touched = self.pull(channel, report)
            with self.db.begin() as conn:  # what was read already shows what was pulled
                pushing.believed_as_of(conn, self.clock(), channel=channel.name,
                                       channel_skus=list(first))
            # What that pull found concerns every channel, not only this one.
            self.plan_outbox([c.name for c in self.channels()], touched)
            self.push(channel, report)
            found = self._read(channel, report)
            # Steady since before this read-back, not since its own first read.
            found.mismatched = [
                dataclasses.replace(d, steady_since=first[d.channel_sku].steady_since)
                if d.channel_sku in first and first[d.channel_sku].observed == d.observed else d
                for d in found.mismatched]
        now = self.clock()
        caps = self.connector(channel).capabilities
        lag = max(caps.overlap, caps.order_lag)  # long enough for a late-reported sale
        higher = [d for d in found.mismatched if d.observed > d.expected]
        with self.db.begin() as conn:
            sold = readback.explained(conn, channel.name, [
                d for d in found.mismatched if d.observed < d.expected])
            lower = [d for d in found.mismatched if d.observed < d.expected and d not in sold
                     and d.steady_since is not None and now - d.steady_since >= lag]
            readback.accept_observed(conn, channel.name, higher + lower + sold)  # corrected below
            resolve_conflicts(conn, "drift", [f"{channel.name}:{s}" for s in found.in_line], now)
            readback.suspect(conn, channel.name, higher, now)
            drift = lower + readback.judge(conn, channel.name, now, lag)
            open_conflicts(conn, [readback.drift_conflict(channel.name, d) for d in drift], now)
        report.drift = len(drift)
        touched = found.new_skus | {d.sku for d in higher + lower + sold}
        if touched and self.plan_outbox([channel.name], touched):
            self.push(channel, report)

    def _read(self, channel: ChannelConfig, report: ChannelReport) -> readback.Found:
        connector = self.connector(channel)
        read: list[ChannelListing | ListingProblem] = self.call(
            channel, lambda: list(connector.read_listings()), "read_listings")
        listings = [x for x in read if isinstance(x, ChannelListing)]
        problems = [x for x in read if isinstance(x, ListingProblem)]
        with self.db.begin() as conn:
            found = readback.record_listings(conn, channel, listings, self.clock())
            report.apply.conflicts += readback.listing_problems(
                conn, channel.name, problems, self.clock())
            report.unmapped = readback.unmapped(conn, channel.name)
            conn.execute(state_t.update().where(state_t.c.name == channel.name).values(
                reconciled_at=self.clock(), discovered_at=self.clock()))
            deferrals.clear(conn, channel.name, "listings", self.clock())
            conn.execute(schema.push_log_t.delete().where(  # kept for PUSH_LOG_DAYS
                schema.push_log_t.c.channel == channel.name,
                schema.push_log_t.c.sent_at < self.clock() - timedelta(days=PUSH_LOG_DAYS)))
        report.listings = len(listings)
        if report.unmapped:  # sync and status show them; the log is for the daemon's journal
            log.info("%s: %d channel SKUs map to nothing in the ledger: %s", channel.name,
                     len(report.unmapped), ", ".join(report.unmapped[:10]))
        return found


def _takes(factory: Any, name: str) -> bool:
    """Whether a connector class's constructor takes this keyword argument."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters and parameters[name].kind in (
        inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def sync_kits(conn: Any, config: Config) -> None:
    """Make the ledger's kit table what the config says."""
    kit_t = schema.kit_t
    wanted = {(k.sku, c, q) for k in config.kits for c, q in k.components.items()}
    have = set(conn.execute(sa.select(kit_t.c.kit_sku, kit_t.c.component_sku, kit_t.c.quantity)))
    if wanted == have:
        return
    conn.execute(kit_t.delete())
    if wanted:
        conn.execute(kit_t.insert(), [
            {"kit_sku": k, "component_sku": c, "quantity": q} for k, c, q in sorted(wanted)
        ])
