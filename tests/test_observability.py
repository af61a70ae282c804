"""Metrics and /healthz over real HTTP on loopback, with the ledger on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine

from channelsync.config import Config, parse_config
from channelsync.ledger import apply as ledger
from channelsync.ledger.conflicts import ConflictRecord, open_conflicts, resolve_conflicts
from channelsync.ledger.schema import listing_t, outbox_t, state_t
from channelsync.service import httpd
from channelsync.service.observability import Metrics, routes
from channelsync.sync.events import EventBus

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
CONFIG = """
[daemon]
healthz_max_cursor_age = 600

[[channel]]
name = "a"
type = "woocommerce"
endpoint = "http://127.0.0.1:9"
consumer_key = "ck_dummy"
consumer_secret = "cs_dummy"

[[channel]]
name = "b"
type = "woocommerce"
endpoint = "http://127.0.0.1:9"
consumer_key = "ck_dummy"
consumer_secret = "cs_dummy"

[[channel]]
name = "off"
type = "woocommerce"
endpoint = "http://127.0.0.1:9"
enabled = false
consumer_key = "ck_dummy"
consumer_secret = "cs_dummy"
"""


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def config() -> Config:
    return parse_config(CONFIG, env={})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def metrics(bus: EventBus, engine: Engine, config: Config, clock: Clock) -> Iterator[Metrics]:
    m = Metrics(bus, engine, config, clock, started_at=NOW)
    yield m
    m.close()


def values(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition text, keyed by name and sorted labels."""
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return values(metrics).get((name, tuple(sorted(labels.items()))))


def set_state(engine: Engine, channel: str, **fields: datetime | None) -> None:
    with engine.begin() as conn:
        ledger.ensure_channel_state(conn, channel)
        if fields:
            conn.execute(state_t.update().where(state_t.c.name == channel).values(**fields))


def test_counters_follow_the_events(metrics: Metrics, bus: EventBus) -> None:
    bus.emit("pull_done", channel="a", lines=5, applied=3, pending=1, bad_records=0, seconds=1.0)
    bus.emit("pull_done", channel="a", lines=2, applied=2, pending=0, bad_records=0, seconds=1.0)
    bus.emit("push_done", channel="a", pushed=4, failed=1, held=2, stale=1)
    bus.emit("api_call", channel="a", operation="pull_orders", outcome="ok", seconds=0.1)
    bus.emit("api_call", channel="a", operation="pull_orders", outcome="throttled", seconds=0.1)
    bus.emit("api_call", channel="a", operation="pull_orders", outcome="throttled", seconds=0.1)
    bus.emit("api_call", channel="b", operation="push_stock", outcome="error", seconds=0.1)
    bus.emit("cycle_done", channel="a", seconds=3.0, error="", busy=False)
    bus.emit("cycle_done", channel="a", seconds=40.0, error="RetriableChannelError: 502",
             busy=False)
    bus.emit("cycle_done", channel="b", seconds=0.1, error="", busy=True)
    bus.emit("conflicts", ids=[1, 2])

    got = values(metrics)

    def v(name: str, **labels: str) -> float | None:
        return got.get((name, tuple(sorted(labels.items()))))

    assert v("channelsync_order_lines_pulled_total", channel="a") == 7
    assert v("channelsync_order_lines_applied_total", channel="a") == 5
    assert v("channelsync_order_lines_applied_total", channel="b") == 0
    assert v("channelsync_pushes_total", channel="a", outcome="pushed") == 4
    assert v("channelsync_pushes_total", channel="a", outcome="failed") == 1
    assert v("channelsync_pushes_total", channel="a", outcome="held") == 2
    assert v("channelsync_pushes_total", channel="a", outcome="stale") == 1
    assert v("channelsync_pushes_total", channel="b", outcome="pushed") == 0
    assert v("channelsync_api_calls_total", channel="a", operation="pull_orders",
             outcome="ok") == 1
    assert v("channelsync_api_calls_total", channel="a", operation="pull_orders",
             outcome="throttled") == 2
    assert v("channelsync_api_calls_total", channel="b", operation="push_stock",
             outcome="error") == 1
    assert v("channelsync_throttled_total", channel="a") == 2
    assert v("channelsync_throttled_total", channel="b") == 0
    assert v("channelsync_cycles_total", channel="a", outcome="ok") == 1
    assert v("channelsync_cycles_total", channel="a", outcome="error") == 1
    assert v("channelsync_cycles_total", channel="b", outcome="busy") == 1
    assert v("channelsync_cycles_total", channel="b", outcome="ok") == 0
    assert v("channelsync_cycle_seconds_count", channel="a") == 2
    assert v("channelsync_cycle_seconds_sum", channel="a") == 43.0
    assert v("channelsync_cycle_seconds_bucket", channel="a", le="5.0") == 1
    assert v("channelsync_cycle_seconds_bucket", channel="a", le="60.0") == 2
    assert v("channelsync_cycle_seconds_count", channel="b") is None  # busy: not a duration
    assert v("channelsync_up") == 1
    assert v("channelsync_ledger_up") == 1
    # Disabled channels have no series; the global registry is left alone.
    assert not [k for k in got if ("channel", "off") in k[1]]
    assert REGISTRY.get_sample_value("channelsync_order_lines_pulled_total",
                                     {"channel": "a"}) is None


def test_close_unsubscribes(metrics: Metrics, bus: EventBus) -> None:
    metrics.close()
    bus.emit("push_done", channel="a", pushed=4, failed=0, held=0)
    assert value(metrics, "channelsync_pushes_total", channel="a", outcome="pushed") == 0


def test_ledger_gauges_are_read_at_scrape_time(
    metrics: Metrics, engine: Engine, clock: Clock
) -> None:
    set_state(engine, "a", cursor=NOW - timedelta(seconds=300),
              pulled_at=NOW - timedelta(seconds=60))
    set_state(engine, "b")  # never pulled: no ages
    set_state(engine, "off", cursor=NOW, pulled_at=NOW)
    with engine.begin() as conn:
        for channel, skus in (("a", ["MUG", "CUP", "BOWL"]), ("b", ["MUG"]), ("off", ["MUG"])):
            for sku in skus:
                listing = conn.execute(listing_t.insert().values(
                    channel=channel, channel_sku=sku, sku=sku, ref="", managed=True,
                    push_failures=0).returning(listing_t.c.id)).scalar_one()
                conn.execute(outbox_t.insert().values(
                    listing_id=listing, channel=channel, target=1, version=1, attempts=0,
                    last_error="", planned_at=NOW))
            # A listing with nothing to push does not count.
            conn.execute(listing_t.insert().values(channel=channel, channel_sku="X", sku="X",
                                                   ref="", managed=True, push_failures=0))
        records = [ConflictRecord(kind="oversell", subject=s, message="") for s in ("M", "C")]
        records.append(ConflictRecord(kind="drift", subject="a:MUG", message=""))
        records.append(ConflictRecord(kind="custom", subject="z", message=""))
        open_conflicts(conn, records, NOW)
        resolve_conflicts(conn, "drift", ["a:MUG"], NOW)

    clock.now = NOW + timedelta(seconds=10)
    got = values(metrics)

    def v(name: str, **labels: str) -> float | None:
        return got.get((name, tuple(sorted(labels.items()))))

    assert v("channelsync_cursor_age_seconds", channel="a") == 310
    assert v("channelsync_last_pull_age_seconds", channel="a") == 70
    assert v("channelsync_cursor_age_seconds", channel="b") is None
    assert v("channelsync_last_pull_age_seconds", channel="b") is None
    assert v("channelsync_outbox_depth", channel="a") == 3
    assert v("channelsync_outbox_depth", channel="b") == 1
    assert v("channelsync_outbox_depth", channel="off") is None
    assert v("channelsync_open_conflicts", kind="oversell") == 2
    assert v("channelsync_open_conflicts", kind="drift") == 0
    assert v("channelsync_open_conflicts", kind="push_failed") == 0
    assert v("channelsync_open_conflicts", kind="custom") == 1

    clock.now = NOW + timedelta(seconds=100)
    assert value(metrics, "channelsync_cursor_age_seconds", channel="a") == 400


def test_metrics_and_healthz_over_http(metrics: Metrics, engine: Engine, clock: Clock,
                                       bus: EventBus) -> None:
    clock.now = later = NOW + timedelta(hours=1)  # up longer than the threshold
    set_state(engine, "a", pulled_at=later - timedelta(seconds=30))
    set_state(engine, "b", pulled_at=later - timedelta(seconds=599))
    set_state(engine, "off", pulled_at=later - timedelta(days=30))  # disabled: not checked
    bus.emit("push_done", channel="a", pushed=2, failed=0, held=0)
    with httpd.serve("127.0.0.1:0", routes(metrics), setting="daemon.metrics_listen") as srv:
        scrape = httpx.get(f"{srv.url}/metrics")
        assert scrape.status_code == 200
        assert scrape.headers["content-type"].startswith("text/plain; version=")
        families = {f.name: f for f in text_string_to_metric_families(scrape.text)}
        (pushed,) = [s for s in families["channelsync_pushes"].samples
                     if s.name == "channelsync_pushes_total"
                     and s.labels == {"channel": "a", "outcome": "pushed"}]
        assert pushed.value == 2

        health = httpx.get(f"{srv.url}/healthz")
        assert health.status_code == 200
        body = health.json()
        assert body["ok"] is True
        assert [(c["channel"], c["age_s"], c["ok"]) for c in body["channels"]] == [
            ("a", 30.0, True), ("b", 599.0, True)]

        clock.now = later + timedelta(seconds=2)  # b's last pull is now 601 s old
        stale = httpx.get(f"{srv.url}/healthz")
        assert stale.status_code == 503
        body = stale.json()
        assert body["ok"] is False
        assert body["max_age_s"] == 600
        assert [(c["channel"], c["ok"]) for c in body["channels"]] == [("a", True), ("b", False)]

        set_state(engine, "b", pulled_at=clock.now)
        assert httpx.get(f"{srv.url}/healthz").status_code == 200
        assert httpx.post(f"{srv.url}/healthz").status_code == 405


def test_never_pulled_fails_only_once_up_longer_than_the_threshold(
    metrics: Metrics, engine: Engine, clock: Clock
) -> None:
    set_state(engine, "a", pulled_at=NOW)
    clock.now = NOW + timedelta(seconds=600)
    ok, body = metrics.health()
    assert ok
    assert body["channels"][1] == {"channel": "b", "last_pull": None, "age_s": None, "ok": True}
    clock.now = NOW + timedelta(seconds=601)
    ok, body = metrics.health()
    assert not ok
    assert [c["ok"] for c in body["channels"]] == [False, False]


def test_a_pull_from_before_a_restart_gets_the_same_grace(
    bus: EventBus, engine: Engine, config: Config, clock: Clock
) -> None:
    set_state(engine, "a", pulled_at=NOW - timedelta(days=2))
    set_state(engine, "b", pulled_at=NOW)
    metrics = Metrics(bus, engine, config, clock)  # started now
    ok, body = metrics.health()
    assert ok
    assert body["channels"][0]["age_s"] == 2 * 86400.0
    clock.now = NOW + timedelta(seconds=601)
    set_state(engine, "b", pulled_at=clock.now)
    assert metrics.health()[0] is False
    metrics.close()


def test_an_unreadable_ledger_keeps_the_counters_and_fails_health(
    tmp_path: Path, bus: EventBus, config: Config, clock: Clock
) -> None:
    broken = sa.create_engine(f"sqlite:///{tmp_path}/missing/dir/ledger.db")
    metrics = Metrics(bus, broken, config, clock, started_at=NOW)
    bus.emit("push_done", channel="a", pushed=1, failed=0, held=0)
    assert value(metrics, "channelsync_pushes_total", channel="a", outcome="pushed") == 1
    assert value(metrics, "channelsync_ledger_up") == 0
    assert value(metrics, "channelsync_outbox_depth", channel="a") is None
    ok, body = metrics.health()
    assert not ok
    assert "OperationalError" in body["error"]
    metrics.close()
    broken.dispose()
