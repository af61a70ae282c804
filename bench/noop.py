"""A sync cycle in which nothing changed: its cost must not grow with the catalog.

Every SKU has one listing on one channel, already pushed (``last_pushed`` is the
target), so the outbox stays empty; the channel's connector returns no orders. The
channel is an established one: discovered, read back, its rules hash recorded, so a
cycle neither reads its listings nor replans them all.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Engine

from channelsync import registry
from channelsync.config import Config, parse_config
from channelsync.connector import Capabilities, ChannelListing, OrderPage, PushItem, PushResult
from channelsync.ledger.schema import listing_t, outbox_t, sku_t, state_t
from channelsync.sync import rules
from channelsync.sync.engine import SyncEngine

CHANNEL = "shop"
TYPE = "benchfake"
ON_HAND = 10  # no reservations, no safety stock, default rules: the target is 10
SEEDED_AT = datetime(2026, 11, 1, tzinfo=UTC)
INSERT_CHUNK = 10_000
CONFIG = """
[database]
url = "{url}"
[[channel]]
name = "{channel}"
type = "{type}"
"""


class EmptyConnector:
    """A channel with no new orders and nothing to read back; accepts every push."""

    class Settings(BaseModel):
        model_config = ConfigDict(frozen=True, extra="forbid")

    capabilities: ClassVar[Capabilities] = Capabilities(
        requests_per_second=1e6, burst=1_000_000, overlap=timedelta(seconds=0))

    def __init__(self, name: str, settings: Any, *, endpoint: str = "") -> None:
        self.name = name

    def pull_orders(self, since: datetime, page: str | None) -> OrderPage:
        return OrderPage([], None, None)

    def push_quantities(self, items: Sequence[PushItem]) -> list[PushResult]:
        return [PushResult(item.channel_sku, True) for item in items]

    def read_listings(self) -> Iterator[ChannelListing]:
        return iter(())

    def close(self) -> None:
        pass


@contextmanager
def registered(types: Mapping[str, str] | None = None) -> Iterator[None]:
    """Register in-process connectors while the block runs: channel type -> ``module:Class``
    (default: ``EmptyConnector`` as ``benchfake``)."""
    types = dict(types or {TYPE: f"{__name__}:EmptyConnector"})
    registry.BUILTIN.update(types)
    registry.load_connector.cache_clear()
    try:
        yield
    finally:
        for name in types:
            del registry.BUILTIN[name]
        registry.load_connector.cache_clear()


@dataclass
class Cycles:
    skus: int
    seed_seconds: float
    first_ms: float  # the cold one, not in the median
    runs_ms: list[float]
    outbox: int  # rows left in the outbox: must be 0
    pushed: int

    @property
    def median_ms(self) -> float:
        return statistics.median(self.runs_ms)


def seed_catalog(engine: Engine, config: Config, skus: int) -> float:
    """SKUs with stock and one pushed listing each, in bulk inserts; returns seconds."""
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(state_t.insert().values(
            name=CHANNEL, cursor=SEEDED_AT, pull_started_at=SEEDED_AT, pulled_at=SEEDED_AT,
            pushed_at=SEEDED_AT, discovered_at=SEEDED_AT, reconciled_at=SEEDED_AT,
            rules_hash=rules.rules_hash(config, CHANNEL), last_error="",
        ))
        for first in range(0, skus, INSERT_CHUNK):
            names = [f"SKU-{i:07d}" for i in range(first, min(first + INSERT_CHUNK, skus))]
            conn.execute(sku_t.insert(), [
                {"sku": n, "title": "", "barcodes": "", "on_hand": ON_HAND, "reserved": 0,
                 "safety_stock": 0, "counted_at": SEEDED_AT, "updated_at": SEEDED_AT}
                for n in names
            ])
            conn.execute(listing_t.insert(), [
                {"channel": CHANNEL, "channel_sku": n, "sku": n, "ref": "", "managed": True,
                 "channel_quantity": ON_HAND, "read_at": SEEDED_AT, "last_pushed": ON_HAND,
                 "last_pushed_at": SEEDED_AT, "push_failures": 0}
                for n in names
            ])
    return time.perf_counter() - started


def make_config(url: str) -> Config:
    return parse_config(CONFIG.format(url=url, channel=CHANNEL, type=TYPE), env={})


def cycle(sync: SyncEngine) -> tuple[float, int]:
    """One pull cycle of every channel (``sync(read_back=False)``): ms, and writes pushed."""
    started = time.perf_counter()
    reports = sync.sync(read_back=False)
    elapsed = (time.perf_counter() - started) * 1000
    errors = [r.error for r in reports if r.error]
    if errors:
        raise RuntimeError(f"the no-op cycle failed: {errors}")
    return elapsed, sum(r.pushed for r in reports)


def outbox_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(outbox_t)).scalar_one())


def run_cycles(sync: SyncEngine, skus: int, runs: int, seed_seconds: float = 0.0) -> Cycles:
    """One cycle to warm up, then ``runs`` timed no-op cycles on an established catalog."""
    first_ms, pushed = cycle(sync)
    runs_ms = []
    for _ in range(runs):
        elapsed, count = cycle(sync)
        runs_ms.append(elapsed)
        pushed += count
    return Cycles(skus, seed_seconds, first_ms, runs_ms, outbox_rows(sync.db), pushed)


def time_cycles(engine: Engine, skus: int, runs: int) -> Cycles:
    """Seed the catalog, run one cycle to warm up, then time ``runs`` no-op cycles."""
    config = make_config(engine.url.render_as_string(hide_password=False))
    seed_seconds = seed_catalog(engine, config, skus)
    sync = SyncEngine(config, engine)
    try:
        return run_cycles(sync, skus, runs, seed_seconds)
    finally:
        sync.close()
