"""API calls per push round: write calls against their minimum, per channel, on the emulators.

    python bench/bench_calls.py [--sizes 1,7,250,1000,10000] [--catalog N] [--off 12]

One emulator of every channel type on loopback, each listing the same catalog, driven by the
real connectors through the daemon's own path (``SyncEngine.sync``) on a SQLite ledger in a
temp dir. A first sync discovers the listings (``--off`` of them show another quantity than
the ledger's); then each round lowers the stock of N SKUs by one and runs one cycle, and
each channel's emulator counts the requests it answered. The same counts once more change
nothing and must make no write call. After every round every channel must show the
ledger's quantity for every SKU (exit status 1 otherwise). See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the repo root holds channelsync and bench
    sys.path.insert(0, str(ROOT))

from channelsync.config import Config, parse_config  # noqa: E402
from channelsync.connector import Connector  # noqa: E402
from channelsync.ledger.migrate import open_ledger_engine  # noqa: E402
from channelsync.ledger.stock import StockRow  # noqa: E402
from channelsync.registry import load_connector, load_emulator  # noqa: E402
from channelsync.service.app import App  # noqa: E402
from channelsync.sync.engine import SyncEngine  # noqa: E402
from connectors.amazon._feeds import MAX_MESSAGES  # noqa: E402

SIZES = (1, 7, 250, 1_000, 10_000)
START = 1_000  # units of every SKU at the start: 5 rounds of -1 never reach 0
OFF = 12  # listings that show another quantity than the ledger's when first read
OFF_BY = 3
UNPACED = 1e9  # requests per second: the bench counts calls, it does not wait for them
TYPES = ("amazon", "ebay", "shopify", "woocommerce")
# The requests that write quantities, per channel type. An Amazon JSON_LISTINGS_FEED is
# three: createFeedDocument, the upload of its bytes (storagePut), createFeed; the feed's
# minimum is counted the same way, so "one feed" is 3 calls on both sides of the ratio.
FEED_CALLS = ("createFeedDocument", "storagePut", "createFeed")
WRITES = {
    "amazon": frozenset({"patchListingsItem", *FEED_CALLS}),
    "ebay": frozenset({"ReviseInventoryStatus"}),
    "shopify": frozenset({"graphql:inventorySetQuantities"}),
    "woocommerce": frozenset({"batch_products", "batch_variations", "update_product",
                              "update_variation"}),
}
SECRET = {"amazon": "amzn-bench-secret", "ebay": "ebay-bench-token",
          "shopify": "shpat_bench_token", "woocommerce": "cs_bench_secret"}
CHANNEL = """
[[channel]]
name = "{kind}"
type = "{kind}"
endpoint = "{url}"
"""
SETTINGS = {  # order_lag 0: the emulators show orders at once (no order is placed here)
    "amazon": ('marketplace = "US"\nseller_id = "A2BENCH"\nrefresh_token = "Atzr|bench"\n'
               'lwa_app_id = "amzn1.application-oa2-client.bench"\n'
               f'lwa_client_secret = "{SECRET["amazon"]}"\norder_lag = 0\n'),
    "ebay": (f'token = "{SECRET["ebay"]}"\napp_id = "app"\ndev_id = "dev"\ncert_id = "cert"\n'
             "order_lag = 0\n"),
    "shopify": f'access_token = "{SECRET["shopify"]}"\n',
    "woocommerce": f'consumer_key = "ck_bench"\nconsumer_secret = "{SECRET["woocommerce"]}"\n',
}


class VirtualTime:
    """A monotonic clock that a sleep moves on at once: the connectors' own pacing (Amazon's
    usage plans, Shopify's cost bucket, and the Shopify emulator's bucket on the same clock)
    keeps its arithmetic, and the bench never waits."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.monotonic() + self.offset

    def sleep(self, seconds: float) -> None:
        self.offset += max(0.0, seconds)


@dataclass
class Channel:
    kind: str
    emulator: Any
    connector: Connector

    @property
    def batch(self) -> int:
        """The batch limit the connector declares."""
        return max(1, self.connector.capabilities.push_batch_size)

    def minimum(self, changed: int) -> int:
        """The fewest write calls that carry ``changed`` quantities."""
        if changed == 0:
            return 0
        if self.kind == "amazon":
            threshold = self.connector.settings.feed_threshold  # type: ignore[attr-defined]
            if changed <= threshold:
                return changed  # patchListingsItem: one listing a call
            return len(FEED_CALLS) * math.ceil(changed / min(self.batch, MAX_MESSAGES))
        return math.ceil(changed / self.batch)

    def requests(self) -> Counter[str]:
        stats = httpx.get(f"{self.emulator.url}/_sandbox/stats", timeout=30).json()
        return Counter(stats["requests"])

    def shows(self) -> dict[str, int]:
        listings = httpx.get(f"{self.emulator.url}/_sandbox/listings", timeout=60).json()
        return {row["sku"]: row["quantity"] for row in listings["listings"]}


@dataclass
class Round:
    label: str
    changed: int
    writes: dict[str, int]
    minimum: dict[str, int]
    reads: dict[str, int]
    seconds: float
    right: bool  # every channel shows the ledger's quantity for every SKU


def start_emulator(kind: str, clock: VirtualTime) -> Any:
    cls = load_emulator(kind)
    if kind == "amazon":  # no server-side throttling; a feed is processed when asked for
        return cls(seller_id="A2BENCH", rate_limits=False, feed_delay=0.0)
    if kind == "ebay":
        return cls(token=SECRET[kind])
    if kind == "shopify":
        return cls(access_token=SECRET[kind], monotonic=clock.now)
    return cls(consumer_key="ck_bench", consumer_secret=SECRET[kind])


def make_connector(config: Config, kind: str, clock: VirtualTime) -> Connector:
    channel = config.channel(kind)
    extra: dict[str, Any] = {}
    if kind == "amazon":
        extra = {"sleep": clock.sleep, "monotonic": clock.now}
    elif kind == "shopify":
        extra = {"sleep": clock.sleep, "clock": clock.now}
    connector: Connector = load_connector(kind)(kind, channel.settings, endpoint=channel.endpoint,
                                                **extra)
    # The engine's token bucket per channel: lifted (how many calls, not how fast). Batch
    # sizes and everything else the connector declares stay as they are.
    setattr(connector, "capabilities", replace(  # noqa: B010 - a ClassVar on some connectors
        connector.capabilities, requests_per_second=UNPACED, burst=int(UNPACED)))
    return connector


def seed(emulator: Any, catalog: Sequence[str], off: int) -> None:
    """List the catalog straight into the emulator's state (not measured), the first ``off``
    SKUs below what the ledger will say, one listing a second over the last hours: Amazon's
    searchListingsItems pages through 1000 listings at most, and the connector reaches the
    rest by created-date ranges."""
    base, first = emulator.clock, datetime.now(UTC) - timedelta(seconds=len(catalog))
    with emulator.lock:
        try:
            for n, sku in enumerate(catalog):
                emulator.clock = lambda at=first + timedelta(seconds=n): at
                emulator.set_listing(sku, START - OFF_BY if n < off else START, {})
        finally:
            emulator.clock = base


@contextmanager
def world(catalog: Sequence[str], off: int) -> Iterator[tuple[App, dict[str, Channel]]]:
    clock = VirtualTime()
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="bench_calls_") as tmp:
        emulators = {kind: stack.enter_context(start_emulator(kind, clock)) for kind in TYPES}
        for emulator in emulators.values():
            seed(emulator, catalog, off)
        text = f'[database]\nurl = "sqlite:///{tmp}/ledger.db"\n' + "".join(
            CHANNEL.format(kind=kind, url=emulators[kind].url) + SETTINGS[kind]
            for kind in TYPES)
        config = parse_config(text, env={})
        channels = {kind: Channel(kind, emulators[kind], make_connector(config, kind, clock))
                    for kind in TYPES}
        app = App(config)
        app.__dict__["db"] = open_ledger_engine(config.database_url)
        app.__dict__["engine"] = SyncEngine(
            config, app.db, connectors={kind: c.connector for kind, c in channels.items()})
        stack.callback(app.close)
        yield app, channels


def run_round(app: App, channels: dict[str, Channel], label: str, rows: Sequence[StockRow],
              changed: int, expected: Mapping[str, int]) -> Round:
    """One cycle after these stock counts: what each emulator answered during it, and
    whether every channel then shows ``expected`` (SKU -> units) for every SKU."""
    if rows:
        app.set_stock(rows, reason="bench")
    before = {kind: c.requests() for kind, c in channels.items()}
    started = time.perf_counter()
    reports = app.engine.sync(read_back=False)  # a first sync reads its listings regardless
    seconds = time.perf_counter() - started
    failed = [f"{r.channel}: {r.error}" for r in reports if r.error or r.push_failed]
    if failed:
        raise RuntimeError(f"{label}: the cycle failed: {failed}")
    writes, reads, minimum = {}, {}, {}
    for kind, channel in channels.items():
        made = channel.requests() - before[kind]
        writes[kind] = sum(n for op, n in made.items() if op in WRITES[kind])
        reads[kind] = sum(n for op, n in made.items() if op not in WRITES[kind])
        minimum[kind] = channel.minimum(changed)
    right = all(c.shows() == expected for c in channels.values())
    return Round(label, changed, writes, minimum, reads, seconds, right)


def ratio(made: int, minimum: int) -> str:
    if minimum == 0:
        return "-" if made == 0 else "ABOVE"
    return f"{made / minimum:.2f}"


def print_round(result: Round) -> None:
    cells = []
    for kind in TYPES:
        made, least = result.writes[kind], result.minimum[kind]
        cells.append(f"{made:>5}/{least:<5}{ratio(made, least):>5}{result.reads[kind]:>5}")
    right = "" if result.right else "  WRONG QUANTITIES"
    print(f"{result.label:<19}" + "  ".join(cells) + f"{result.seconds:7.1f} s{right}")


def header(channels: Mapping[str, Channel], catalog: int) -> None:
    print(f"catalog: {catalog:,} SKUs listed on each channel; write calls made/minimum, "
          "ratio, reads (other requests) per cycle")
    print(f"{'':<19}" + "  ".join(f"{f'{k} (batch {c.batch})':<21}"
                                  for k, c in channels.items()))
    print(f"{'round':<19}" + "  ".join(f"{'made/min  ratio reads':<21}" for _ in channels)
          + "   cycle")


def rounds(app: App, channels: dict[str, Channel], catalog: Sequence[str],
           sizes: Sequence[int], off: int) -> Iterator[Round]:
    """Discovery, then per size: N SKUs one unit down, and the same counts once more."""
    on_hand = dict.fromkeys(catalog, START)
    app.set_stock([StockRow(sku, START) for sku in catalog], reason="bench")
    yield run_round(app, channels, f"discovery, {off} off", [], off, on_hand)
    for size in sizes:
        for sku in catalog[:size]:
            on_hand[sku] -= 1
        rows = [StockRow(sku, on_hand[sku]) for sku in catalog[:size]]
        yield run_round(app, channels, f"{size:,} changed", rows, size, on_hand)
        yield run_round(app, channels, "  same again", rows, 0, on_hand)


def summary(results: Sequence[Round], started: float) -> bool:
    """The closing line; True when every channel showed what it should after every round."""
    worst = max((r.writes[k] / r.minimum[k] for r in results for k in TYPES if r.minimum[k]),
                default=1.0)
    unchanged = sum(r.writes[k] for r in results for k in TYPES if r.minimum[k] == 0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"worst ratio {worst:.2f} (target 1.00); write calls where nothing changed "
          f"{unchanged} (target 0); peak RSS {rss:.0f} MB; total "
          f"{time.perf_counter() - started:.0f} s")
    return all(r.right for r in results)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES),
                        help="SKUs changed per round, comma-separated (default %(default)s)")
    parser.add_argument("--catalog", type=int, default=0,
                        help="SKUs listed on every channel (default: the largest size)")
    parser.add_argument("--off", type=int, default=OFF,
                        help="listings off their target when first read: the discovery "
                        "round writes them (default %(default)s)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    catalog = [f"SKU-{n:06d}" for n in range(max(args.catalog, args.off, *sizes))]
    started = time.perf_counter()
    results: list[Round] = []
    with world(catalog, args.off) as (app, channels):
        header(channels, len(catalog))
        for result in rounds(app, channels, catalog, sizes, args.off):
            print_round(result)
            results.append(result)
    return 0 if summary(results, started) else 1


if __name__ == "__main__":
    raise SystemExit(main())
