"""The dashboard's stock page over a large catalog, through the ASGI app, on SQLite.

    python bench/bench_dashboard.py [--skus N] [--channels N] [--runs N]

Seeds a temporary SQLite ledger (the real schema, by its migrations) with N SKUs and one
listing per SKU on each channel, then asks the stock page for: the first page, a search,
a sort by available, and deep pages, each ``--runs`` times, and prints the median and the
95th percentile. Prints figures beside the target; never fails on a time. See README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the repo root holds channelsync and bench
    sys.path.insert(0, str(ROOT))

from channelsync.config import Config, parse_config  # noqa: E402
from channelsync.ledger.schema import listing_t, sku_t, utcnow  # noqa: E402
from channelsync.service.app import App  # noqa: E402
from channelsync.service.web import application  # noqa: E402
from channelsync.service.web.dashboard import routes  # noqa: E402

TARGET_MS = 200.0
SEED = 20261204
BATCH = 20_000


def make_config(db: Path, channels: int) -> Config:
    blocks = "".join(f"""
[[channel]]
name = "ch{i}"
type = "woocommerce"
endpoint = "http://127.0.0.1:9"
consumer_key = "ck_bench"
consumer_secret = "cs_bench"
""" for i in range(channels))
    # No users: loopback access, as the ASGI test client comes from 127.0.0.1.
    return parse_config(f'[database]\nurl = "sqlite:///{db}"\n[web]\nlisten = "127.0.0.1:0"\n'
                        f'session_secret = "{"b" * 40}"\n{blocks}', env={})


def seed(app: App, skus: int, channels: int) -> float:
    """SKUs with random levels and titles, and a listing of each on every channel."""
    started = time.perf_counter()
    rng = random.Random(SEED)
    now = utcnow()
    colours = ("blue", "red", "green", "white", "black", "oak", "steel")
    with app.db.begin() as conn:
        for first in range(0, skus, BATCH):
            rows = []
            for i in range(first, min(first + BATCH, skus)):
                on_hand = rng.randint(0, 200)
                rows.append({"sku": f"SKU-{i:06d}", "title": f"Item {i} {rng.choice(colours)}",
                             "barcodes": "", "on_hand": on_hand,
                             "reserved": rng.randint(0, min(on_hand, 20)),
                             "safety_stock": rng.choice((0, 0, 1, 2)), "updated_at": now})
            conn.execute(sku_t.insert(), rows)
        for channel in range(channels):
            for first in range(0, skus, BATCH):
                conn.execute(listing_t.insert(), [
                    {"channel": f"ch{channel}", "channel_sku": f"SKU-{i:06d}",
                     "sku": f"SKU-{i:06d}", "last_pushed": (i * 7 + channel) % 150,
                     "believed": (i * 7 + channel) % 150, "read_at": now}
                    for i in range(first, min(first + BATCH, skus))])
    return time.perf_counter() - started


async def timed(client: httpx.AsyncClient, path: str, runs: int) -> list[float]:
    await client.get(path)  # warm: the first answer also fills SQLite's page cache
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = await client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise SystemExit(f"{path}: HTTP {answer.status_code}")
    return times


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def measure(app: App, skus: int, runs: int) -> None:
    pages = max(1, -(-skus // 50))
    cases = [
        ("first page", "/stock"),
        ("search 'SKU-0123' (substring)", "/stock?q=SKU-0123"),
        ("search 'oak' (in titles)", "/stock?q=oak"),
        ("sort by available, desc", "/stock?sort=available&dir=desc"),
        ("sort by on hand, asc", "/stock?sort=on_hand"),
        (f"deep page {pages - 10} by SKU", f"/stock?page={pages - 10}"),
        (f"deep page {pages - 10} by available", f"/stock?sort=available&page={pages - 10}"),
        (f"middle page {pages // 2} by available (worst)",
         f"/stock?sort=available&page={pages // 2}"),
        ("search 'oak', by reserved, page 20", "/stock?q=oak&sort=reserved&dir=desc&page=20"),
    ]
    others = [  # no target: printed to see what they cost at this size
        ("overview (what refreshes every 10 s)", "/?fragment=live"),
        ("a SKU's page", "/stock/SKU-054321"),
    ]
    asgi = application(routes(lambda: app, app.config.web))
    transport = httpx.ASGITransport(app=asgi, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        print(f"{'stock page':<40} {'median':>8} {'p95':>8}   (ms, {runs} runs each)")
        for label, path in cases:
            times = await timed(client, path, runs)
            median = statistics.median(times)
            verdict = "ok" if median < TARGET_MS else "ABOVE TARGET"
            print(f"{label:<40} {median:8.1f} {p95(times):8.1f}   [target < {TARGET_MS:.0f}:"
                  f" {verdict}]")
        for label, path in others:
            times = await timed(client, path, runs)
            print(f"{label:<40} {statistics.median(times):8.1f} {p95(times):8.1f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skus", type=int, default=100_000)
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)
    logging.getLogger("channelsync").setLevel(logging.ERROR)  # "no users" warns; known here
    with tempfile.TemporaryDirectory(prefix="bench_dashboard_") as tmp:
        app = App(make_config(Path(tmp) / "ledger.db", args.channels))
        try:
            seconds = seed(app, args.skus, args.channels)
            with app.db.connect() as conn:
                listings = conn.execute(sa.select(sa.func.count()).select_from(listing_t))
                print(f"seeded {args.skus:,} SKUs and {listings.scalar():,} listings on "
                      f"{args.channels} channels in {seconds:.1f} s (SQLite, {tmp})")
            asyncio.run(measure(app, args.skus, args.runs))
        finally:
            app.close()


if __name__ == "__main__":
    main()
