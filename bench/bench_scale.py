"""Scale: a large catalog on every channel type: discovery, a full plan, a no-op cycle, RSS.

    python bench/bench_scale.py [--skus N] [--channels N] [--runs N] [--pg-url URL]

N SKUs with stock (100,000), each listed on every channel (4: one of each real channel
type's shape), on a SQLite ledger in a temp dir (and on PostgreSQL with ``--pg-url``).
The channels are in-process fakes registered like ``noop.EmptyConnector``: each has the
real connector's capabilities (push batch size, compare-and-set, eBay's daily revision
budget, order lag) and pages its listings by the real page size, but answers at once and
is not rate limited. So the figures measure channelsync's engine (planner, pushing,
read-back, the ledger), not emulators or HTTP. Prints figures beside their targets; never
fails on a time. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the repo root holds channelsync and bench
    sys.path.insert(0, str(ROOT))

from bench import noop, pgtemp  # noqa: E402
from channelsync.config import Config, parse_config  # noqa: E402
from channelsync.connector import Capabilities, ChannelListing, PushItem, PushResult  # noqa: E402
from channelsync.ledger.migrate import open_ledger_engine  # noqa: E402
from channelsync.ledger.schema import sku_t  # noqa: E402
from channelsync.registry import load_connector  # noqa: E402
from channelsync.sync.engine import ChannelReport, SyncEngine  # noqa: E402
from connectors.amazon._listings import SEARCH_PAGE_SIZE  # noqa: E402
from connectors.ebay.connector import LISTINGS_PER_PAGE  # noqa: E402
from connectors.shopify._queries import VARIANT_PAGE  # noqa: E402
from connectors.woocommerce.connector import PER_PAGE  # noqa: E402

PG_ENV = "CHANNELSYNC_BENCH_PG_URL"
TARGET_PLAN_S = 10.0
TARGET_RSS_MB = 300.0
SMALL_SKUS = 1_000  # the no-op cycle's reference catalog
SEEDED_AT = datetime(2026, 11, 1, tzinfo=UTC)
INSERT_CHUNK = 10_000
# The real channel type each fake mimics, and its listings page (what one read returns).
PAGES = {"woocommerce": PER_PAGE, "shopify": VARIANT_PAGE, "amazon": SEARCH_PAGE_SIZE,
         "ebay": LISTINGS_PER_PAGE}
SHAPES = tuple(PAGES)


def on_hand(i: int) -> int:
    return 5 + i % 100  # at least 5: a buffer of 1 changes every target


def sku_name(i: int) -> str:
    return f"SKU-{i:07d}"


class ScaleSettings(noop.EmptyConnector.Settings):
    skus: int = 0  # the catalog the channel lists: SKU-0000000 ...


class ShapedConnector(noop.EmptyConnector):
    """A channel listing the whole catalog, each listing one unit above the ledger's
    quantity (so discovery writes every listing); accepts every push at once."""

    Settings = ScaleSettings
    shape: ClassVar[str] = ""

    def __init__(self, name: str, settings: Any, *, endpoint: str = "") -> None:
        super().__init__(name, settings, endpoint=endpoint)
        self.skus = settings.skus
        self.reads = 0  # pages of listings read
        self.writes = 0  # push calls

    def read_listings(self) -> Iterator[ChannelListing]:
        page = PAGES[self.shape]
        for first in range(0, self.skus, page):
            self.reads += 1
            for i in range(first, min(first + page, self.skus)):
                yield ChannelListing(sku_name(i), on_hand(i) + 1, ref=f"{self.shape}:{i}")

    def push_quantities(self, items: Sequence[PushItem]) -> list[PushResult]:
        self.writes += 1
        return super().push_quantities(items)


def _shaped(real: str) -> Capabilities:
    """The real connector's capabilities, without its pacing: the engine is measured."""
    caps: Capabilities = load_connector(real).capabilities
    return replace(caps, requests_per_second=1e6, burst=1_000_000)


class WooCommerceShaped(ShapedConnector):
    shape = "woocommerce"
    capabilities = _shaped(shape)


class ShopifyShaped(ShapedConnector):
    shape = "shopify"
    capabilities = _shaped(shape)


class AmazonShaped(ShapedConnector):
    shape = "amazon"
    capabilities = _shaped(shape)


class EbayShaped(ShapedConnector):
    shape = "ebay"
    capabilities = _shaped(shape)


TYPES = {f"scale_{c.shape}": f"{__name__}:{c.__name__}"
         for c in (WooCommerceShaped, ShopifyShaped, AmazonShaped, EbayShaped)}


class PlanTimer(SyncEngine):
    """The engine, with each plan of the outbox timed (the daemon's own code path)."""

    def __init__(self, config: Config, db: Engine) -> None:
        super().__init__(config, db)
        self.plans: list[float] = []

    def plan_outbox(self, names: Sequence[str], touched: Any) -> int:
        started = time.perf_counter()
        try:
            return super().plan_outbox(names, touched)
        finally:
            self.plans.append(time.perf_counter() - started)


def channel_names(count: int) -> list[str]:
    """woocommerce, shopify, amazon, ebay, then woocommerce2, ... for more than four."""
    return [SHAPES[i % 4] + (str(i // 4 + 1) if i >= 4 else "") for i in range(count)]


def make_config(url: str, skus: int, channels: int, buffer: int = 0) -> Config:
    blocks = "".join(f'[[channel]]\nname = "{name}"\ntype = "scale_{SHAPES[i % 4]}"\n'
                     f"skus = {skus}\n" for i, name in enumerate(channel_names(channels)))
    rules = f"[rules]\nbuffer = {buffer}\n" if buffer else ""
    return parse_config(f'[database]\nurl = "{url}"\n{rules}{blocks}', env={})


def seed_stock(engine: Engine, skus: int) -> None:
    """The SKUs with stock, in bulk: the listings come from discovery."""
    with engine.begin() as conn:
        for first in range(0, skus, INSERT_CHUNK):
            conn.execute(sku_t.insert(), [
                {"sku": sku_name(i), "title": "", "barcodes": "", "on_hand": on_hand(i),
                 "reserved": 0, "safety_stock": 0, "counted_at": SEEDED_AT,
                 "updated_at": SEEDED_AT}
                for i in range(first, min(first + INSERT_CHUNK, skus))])


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def checked(reports: Sequence[ChannelReport], what: str) -> Sequence[ChannelReport]:
    errors = [f"{r.channel}: {r.error}" for r in reports if r.error]
    if errors:
        raise RuntimeError(f"{what} failed: {errors}")
    return reports


@dataclass
class Discovery:
    channel: str
    seconds: float
    listings: int
    pushed: int
    reads: int
    writes: int


@dataclass
class Scale:
    skus: int
    listings: int = 0
    discovery: list[Discovery] = field(default_factory=list)
    peak_after_discovery: float = 0.0
    cycles: noop.Cycles | None = None
    plan_seconds: float = 0.0
    replan_seconds: float = 0.0  # the whole cycle: pull, plan, push
    replan_pushed: int = 0
    peak_after_plan: float = 0.0


def discover(sync: SyncEngine, result: Scale) -> None:
    """The first sync of each channel in turn, as the daemon's per-channel jobs run it."""
    for channel in sync.channels():
        connector = sync.connector(channel)
        assert isinstance(connector, ShapedConnector)
        started = time.perf_counter()
        (report,) = checked(sync.sync([channel.name]), "discovery")
        result.discovery.append(Discovery(channel.name, time.perf_counter() - started,
                                          report.listings, report.pushed, connector.reads,
                                          connector.writes))
    result.listings = sum(d.listings for d in result.discovery)


def full_plan(engine: Engine, url: str, skus: int, channels: int, result: Scale) -> None:
    """A rules change ([rules] buffer = 1) moves every target: the next cycle of all
    channels replans every listing (the rules-hash replan) and pushes them all."""
    sync = PlanTimer(make_config(url, skus, channels, buffer=1), engine)
    try:
        started = time.perf_counter()
        reports = checked(sync.sync(read_back=False), "the full plan")
        result.replan_seconds = time.perf_counter() - started
        result.plan_seconds = sync.plans[0]
        result.replan_pushed = sum(r.pushed for r in reports)
    finally:
        sync.close()


def vacuum(engine: Engine) -> None:
    """PostgreSQL: what autovacuum does within a minute or so. Until then, the dead
    versions of the 400,000 outbox rows that discovery wrote and settled make each
    cycle's outbox queries slower (about 40 ms a cycle at 100,000 SKUs)."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))


def run_scale(url: str, skus: int, channels: int, runs: int, *, plan: bool = True) -> Scale:
    result = Scale(skus)
    engine = open_ledger_engine(url)
    try:
        seed_stock(engine, skus)
        sync = SyncEngine(make_config(url, skus, channels), engine)
        try:
            discover(sync, result)
            result.peak_after_discovery = peak_mb()
            vacuum(engine)
            result.cycles = noop.run_cycles(sync, skus, runs)
        finally:
            sync.close()
        if plan:
            full_plan(engine, url, skus, channels, result)
            result.peak_after_plan = peak_mb()
    finally:
        engine.dispose()
    return result


@contextmanager
def ledger_url(backend: str, pg_server: str | None, purpose: str) -> Iterator[str]:
    if backend == "postgresql":
        assert pg_server is not None
        with pgtemp.temp_database(pg_server, purpose) as url:
            yield url
    else:
        with tempfile.TemporaryDirectory(prefix=f"bench_{purpose}_") as tmp:
            yield f"sqlite:///{tmp}/ledger.db"


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def report(backend: str, big: Scale, small: Scale) -> None:
    print(f"  {backend}: {big.skus:,} SKUs, {big.listings:,} listings on"
          f" {len(big.discovery)} channels")
    print("  1. first sync of each channel (discovery: read, map, plan, push every listing)")
    for d in big.discovery:
        print(f"     {d.channel:<12} {d.seconds:7.1f} s  {d.listings:,} listings in {d.reads:,}"
              f" pages, {d.pushed:,} pushed in {d.writes:,} calls")
    total = sum(d.seconds for d in big.discovery)
    print(f"     total        {total:7.1f} s"
          f"  (peak RSS so far {big.peak_after_discovery:,.0f} MiB)")
    print(f"  2. full plan after a rules change ([rules] buffer = 1), all channels:"
          f" {big.plan_seconds:.1f} s  [target <= {TARGET_PLAN_S:.0f} s:"
          f" {verdict(big.plan_seconds <= TARGET_PLAN_S)}]")
    print(f"     the whole cycle, pushing {big.replan_pushed:,} writes: {big.replan_seconds:.1f} s"
          f"  (peak RSS so far {big.peak_after_plan:,.0f} MiB)")
    assert big.cycles is not None and small.cycles is not None
    ratio = big.cycles.median_ms / small.cycles.median_ms
    print(f"  3. no-op cycle, all channels, median of {len(big.cycles.runs_ms)}:"
          f" {big.skus:,} SKUs {big.cycles.median_ms:.1f} ms, {small.skus:,} SKUs"
          f" {small.cycles.median_ms:.1f} ms: {ratio:.1f}x  [target: flat, about 1x]"
          f"  (outbox {big.cycles.outbox}, pushed {big.cycles.pushed})")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skus", type=int, default=100_000)
    parser.add_argument("--channels", type=int, default=4, help="one per shape, in turn")
    parser.add_argument("--runs", type=int, default=7, help="no-op cycles timed")
    parser.add_argument("--pg-url", default=os.environ.get(PG_ENV),
                        help=f"PostgreSQL server to measure too (default: ${PG_ENV})")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    backends = ["sqlite"] + (["postgresql"] if args.pg_url else [])
    print(f"scale: {args.skus:,} SKUs x {args.channels} channels (in-process fakes shaped"
          f" like {', '.join(SHAPES)}; the engine is measured, not the channels)")
    with noop.registered(TYPES):
        for backend in backends:
            with ledger_url(backend, args.pg_url, "scale_small") as url:
                small = run_scale(url, SMALL_SKUS, args.channels, args.runs, plan=False)
            with ledger_url(backend, args.pg_url, "scale") as url:
                big = run_scale(url, args.skus, args.channels, args.runs)
            report(backend, big, small)
    peak = peak_mb()
    print(f"  4. peak RSS {peak:,.0f} MiB  [target <= {TARGET_RSS_MB:.0f} MiB:"
          f" {verdict(peak <= TARGET_RSS_MB)}]; total {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
