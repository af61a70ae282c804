"""Prometheus metrics and the health check: an observer of the engine's events.

Counters and the cycle histogram follow the events. What describes the ledger (cursor
and pull ages, outbox depth, open conflicts) is read from the database at scrape time
with three grouped queries, so it is right after a restart and costs the same for ten
SKUs or a million. Everything lives in a private registry, never the global one: two
``Metrics`` in one process (tests, the CLI) never share a series.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
    make_asgi_app,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message, Receive, Scope, Send

from channelsync.config import Config
from channelsync.ledger.schema import conflict_t, outbox_t, state_t, utcnow
from channelsync.service.web import in_thread
from channelsync.sync.events import EventBus

log = logging.getLogger(__name__)

CYCLE_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
PUSH_OUTCOMES = ("pushed", "failed", "held", "stale")  # stale: refused by compare-and-set
CYCLE_OUTCOMES = ("ok", "error", "busy")
CONFLICT_KINDS = ("oversell", "unknown_sku", "push_failed", "drift", "bad_record")
JSON = "application/json"


@dataclass(frozen=True)
class _Ledger:
    """What the gauges and the health check read, in one snapshot."""

    cursor: dict[str, datetime]
    pulled: dict[str, datetime]
    outbox: dict[str, int]
    conflicts: dict[str, int]


def _read_states(conn: Connection) -> tuple[dict[str, datetime], dict[str, datetime]]:
    cursor: dict[str, datetime] = {}
    pulled: dict[str, datetime] = {}
    for name, cur, pull in conn.execute(
            sa.select(state_t.c.name, state_t.c.cursor, state_t.c.pulled_at)):
        if cur is not None:
            cursor[name] = cur
        if pull is not None:
            pulled[name] = pull
    return cursor, pulled


def _read_ledger(conn: Connection) -> _Ledger:
    cursor, pulled = _read_states(conn)
    outbox: dict[str, int] = dict(conn.execute(
        sa.select(outbox_t.c.channel, sa.func.count()).group_by(outbox_t.c.channel)).all())
    conflicts: dict[str, int] = dict(conn.execute(
        sa.select(conflict_t.c.kind, sa.func.count())
        .where(conflict_t.c.resolved_at.is_(None)).group_by(conflict_t.c.kind)).all())
    return _Ledger(cursor, pulled, outbox, conflicts)


class Metrics:
    """Subscribes to ``bus`` at once; ``close()`` unsubscribes.

    ``started_at`` (default: now) is when the daemon started: a channel never pulled
    only fails the health check once the daemon has been up longer than the threshold.
    """

    def __init__(
        self, bus: EventBus, db: Engine, config: Config,
        clock: Callable[[], datetime] = utcnow, *, started_at: datetime | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.clock = clock
        self.started_at = started_at or clock()
        self.channels = [c.name for c in config.channels if c.enabled]
        self.registry = CollectorRegistry()
        self._counters()
        self.registry.register(_LedgerCollector(self))
        ProcessCollector(registry=self.registry)  # memory, CPU, open files (Linux)
        self._bus = bus
        self._observer = self.observe  # one bound method, so unsubscribe finds it
        bus.subscribe(self._observer)

    def retarget(self, db: Engine, config: Config) -> None:
        """After a config reload: the counters go on, the gauges read the new set-up."""
        self.db, self.config = db, config
        self.channels = [c.name for c in config.channels if c.enabled]

    def _counters(self) -> None:
        r = self.registry
        self.applied = Counter("channelsync_order_lines_applied", "Order lines applied to the "
                               "ledger", ["channel"], registry=r)
        self.pulled = Counter("channelsync_order_lines_pulled", "Order lines pulled",
                              ["channel"], registry=r)
        self.pushes = Counter("channelsync_pushes", "Stock pushes by outcome (pushed, failed, "
                              "held, stale)", ["channel", "outcome"], registry=r)
        self.api_calls = Counter("channelsync_api_calls", "Channel API calls by outcome (ok, "
                                 "throttled, error)", ["channel", "operation", "outcome"],
                                 registry=r)
        self.throttled = Counter("channelsync_throttled", "Channel API calls throttled",
                                 ["channel"], registry=r)
        self.cycles = Counter("channelsync_cycles", "Sync cycles by outcome (ok, error, busy)",
                              ["channel", "outcome"], registry=r)
        self.cycle_seconds = Histogram("channelsync_cycle_seconds", "Sync cycle duration",
                                       ["channel"], buckets=CYCLE_BUCKETS, registry=r)
        for name in self.channels:  # every series exists from the start, at 0
            self.applied.labels(name)
            self.pulled.labels(name)
            self.throttled.labels(name)
            for outcome in PUSH_OUTCOMES:
                self.pushes.labels(name, outcome)
            for outcome in CYCLE_OUTCOMES:
                self.cycles.labels(name, outcome)

    def close(self) -> None:
        self._bus.unsubscribe(self._observer)

    # -- events ---------------------------------------------------------------------------

    def observe(self, event: str, fields: dict[str, Any]) -> None:
        if event == "pull_done":
            self.pulled.labels(fields["channel"]).inc(fields.get("lines", 0))
            self.applied.labels(fields["channel"]).inc(fields.get("applied", 0))
        elif event == "push_done":
            for outcome in PUSH_OUTCOMES:
                self.pushes.labels(fields["channel"], outcome).inc(fields.get(outcome, 0))
        elif event == "api_call":
            outcome = fields.get("outcome", "error")
            self.api_calls.labels(fields["channel"], fields.get("operation", ""), outcome).inc()
            if outcome == "throttled":
                self.throttled.labels(fields["channel"]).inc()
        elif event == "cycle_done":
            self._cycle_done(fields)

    def _cycle_done(self, fields: dict[str, Any]) -> None:
        channel = fields["channel"]
        if fields.get("busy"):
            self.cycles.labels(channel, "busy").inc()
            return  # another process did the work: its duration says nothing of ours
        self.cycles.labels(channel, "error" if fields.get("error") else "ok").inc()
        self.cycle_seconds.labels(channel).observe(fields.get("seconds", 0.0))

    # -- scraping -------------------------------------------------------------------------

    def render(self) -> bytes:
        """The exposition text (``CONTENT_TYPE_LATEST``)."""
        return generate_latest(self.registry)

    def _snapshot(self) -> _Ledger:
        with self.db.connect() as conn:
            return _read_ledger(conn)

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Whether every enabled channel has pulled successfully within the threshold.

        A channel is given the threshold from the daemon's start before it fails, so a
        restart after a long stop is not unhealthy before its first pull could finish.
        ``age_s`` is the real age of the last pull (None: never pulled).
        """
        now = self.clock()
        limit = self.config.daemon.healthz_max_cursor_age
        up = (now - self.started_at).total_seconds()
        body: dict[str, Any] = {"ok": False, "max_age_s": limit, "up_s": round(up, 1)}
        try:
            with self.db.connect() as conn:
                _, pulled = _read_states(conn)
        except SQLAlchemyError as exc:
            log.warning("healthz: the ledger cannot be read: %s", type(exc).__name__)
            body["error"] = f"the ledger cannot be read ({type(exc).__name__})"
            return False, body
        channels = []
        for name in self.channels:
            last = pulled.get(name)
            age = (now - last).total_seconds() if last else None
            ok = (age is not None and age <= limit) or up <= limit
            channels.append({"channel": name, "last_pull": last.isoformat() if last else None,
                             "age_s": None if age is None else round(age, 1), "ok": ok})
        body["ok"] = all(c["ok"] for c in channels)
        body["channels"] = channels
        return body["ok"], body


class _LedgerCollector(Collector):
    """Gauges read from the ledger at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("channelsync_up", "1 while the daemon runs")
        up.add_metric([], 1)
        yield up
        ledger_up = GaugeMetricFamily("channelsync_ledger_up", "1 if the ledger could be read "
                                      "for this scrape")
        try:
            ledger = self.metrics._snapshot()
        except SQLAlchemyError as exc:
            log.warning("metrics: the ledger cannot be read: %s", type(exc).__name__)
            ledger_up.add_metric([], 0)
            yield ledger_up
            return
        ledger_up.add_metric([], 1)
        yield ledger_up
        yield from self._gauges(ledger, self.metrics.clock())

    def _gauges(self, ledger: _Ledger, now: datetime) -> Iterable[Metric]:
        channels = self.metrics.channels
        cursor = GaugeMetricFamily("channelsync_cursor_age_seconds", "Age of the channel's order "
                                   "cursor (absent until it has one)", labels=["channel"])
        pull = GaugeMetricFamily("channelsync_last_pull_age_seconds", "Time since the channel's "
                                 "last successful pull (absent until one)", labels=["channel"])
        outbox = GaugeMetricFamily("channelsync_outbox_depth", "Stock updates waiting to be "
                                   "pushed", labels=["channel"])
        for name in channels:
            if name in ledger.cursor:
                cursor.add_metric([name], (now - ledger.cursor[name]).total_seconds())
            if name in ledger.pulled:
                pull.add_metric([name], (now - ledger.pulled[name]).total_seconds())
            outbox.add_metric([name], ledger.outbox.get(name, 0))
        conflicts = GaugeMetricFamily("channelsync_open_conflicts", "Conflicts not resolved "
                                      "(acknowledged ones included)", labels=["kind"])
        for kind in sorted(set(CONFLICT_KINDS) | set(ledger.conflicts)):
            conflicts.add_metric([kind], ledger.conflicts.get(kind, 0))
        yield from (cursor, pull, outbox, conflicts)


def routes(metrics: Metrics) -> list[BaseRoute]:
    """``GET /metrics`` and ``GET /healthz`` (200 or 503, JSON) for ``httpd.serve``."""

    async def healthz(_request: Request) -> Response:
        ok, body = await in_thread(metrics.health)
        return Response(json.dumps(body), status_code=200 if ok else 503, media_type=JSON)

    return [Route("/metrics", _Scrape(metrics.registry), methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"])]


class _Scrape:
    """prometheus_client's ASGI app, run on a worker thread with a loop of its own: a
    scrape reads the ledger, which must not hold up the server's event loop."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._app = make_asgi_app(registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        first = await receive()
        answer: list[Message] = []

        async def replay() -> Message:
            return first

        async def collect(message: Message) -> None:
            answer.append(message)

        await in_thread(asyncio.run, self._app(scope, replay, collect))
        for message in answer:
            await send(message)
