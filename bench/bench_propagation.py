"""Propagation: a sale on one channel -> the time until every other channel shows it.

    python bench/bench_propagation.py [--sales 24] [--pull-interval 10] [--mode both]

One emulator of every channel type on loopback (WooCommerce "shop", Amazon, eBay, Shopify),
each listing the same SKUs, and the real daemon (``channelsync run``, a process of its own)
on a SQLite ledger in a temp dir. A buyer orders one unit on one channel (the channel
lowers its own quantity, as a real one does); the clock runs from the order until every
other channel's emulator shows the new quantity (``GET /_sandbox/listings``, polled every
20 ms). Sales go one at a time, so each has one expected quantity everywhere.

- ``polling``: the daemon finds each sale by pulling every ``--pull-interval`` seconds;
  sales go round the four channels, each after a random pause (so they land anywhere in
  the pull cycle). Goal: p99 <= pull interval + 5 s.
- ``webhooks``: the WooCommerce and Shopify emulators send their signed order webhooks to
  the daemon's ``webhook_listen``; sales on those two only, the pull interval raised to
  ``--webhook-pull-interval`` (so a pull does not find the sale first). Goal: p99 <= 5 s.

Amazon shows an order after 1 s here (``visibility_lag``; about two minutes on the real
one) and the Amazon and eBay connectors wait as long (``order_lag`` 1 s): both lags are
shortened, as the goal is about channelsync. Nothing else is faked. Times are printed, never
asserted (exit status 1 only if a sale never arrived). See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the repo root holds channelsync and bench
    sys.path.insert(0, str(ROOT))

from channelsync.config import parse_config  # noqa: E402
from channelsync.ledger.schema import listing_t, outbox_t, state_t  # noqa: E402
from channelsync.ledger.stock import StockRow  # noqa: E402
from channelsync.sandbox.simulation.receiver import AlertInbox  # noqa: E402
from channelsync.sandbox.simulation.world import LAG, World  # noqa: E402
from channelsync.service.app import App  # noqa: E402

SKUS = [f"PROP-{n:02d}" for n in range(8)]
UNITS = 1_000  # of every SKU: no sale of this run empties one
CHANNELS = {"shop": ("woocommerce", SKUS), "amazon": ("amazon", SKUS),
            "ebay": ("ebay", SKUS), "shopify": ("shopify", SKUS)}
WEBHOOK_SECRET = "bench-webhook-secret"  # noqa: S105 - a loopback emulator's
POLL = 0.02  # seconds between looks at the channels
READY_TIMEOUT = 90.0


@dataclass
class Sale:
    channel: str
    sku: str
    seconds: float | None  # None: never arrived
    per_channel: dict[str, float] = field(default_factory=dict)


@dataclass
class Mode:
    name: str
    pull_interval: float
    webhooks: bool
    sale_channels: Sequence[str]
    goal: float  # p99, seconds


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile, linear between the closest ranks (numpy's default)."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(mode: Mode, seed: int, tmp: Path) -> Iterator[tuple[World, App]]:
    """The emulators, the ledger's opening stock and ``channelsync run``, ready."""
    world = World(seed, faults=False, channels=CHANNELS, kits={}, opening=UNITS)
    inbox = AlertInbox()
    world.start()
    inbox.start()
    listen = f"127.0.0.1:{free_port()}" if mode.webhooks else ""
    text = world.config(f"sqlite:///{tmp / f'{mode.name}.db'}", inbox.url,
                        pull_interval=mode.pull_interval, reconcile_interval=3600,
                        webhook_listen=listen, webhook_secret=WEBHOOK_SECRET)
    config = tmp / f"{mode.name}.toml"
    config.write_text(text)
    app = App(parse_config(text, source=str(config), env={}))
    app.set_stock([StockRow(sku, UNITS, title=sku) for sku in SKUS], reason="opening count")
    log = tmp / f"{mode.name}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "channelsync", "--config", str(config), "--log-level", "info",
         "run"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    try:
        if listen:
            for name, emulator in world.emulators.items():
                if emulator.webhooks is not None:
                    world.post(name, "/_sandbox/webhooks", {
                        "url": f"http://{listen}/webhooks/{name}", "secret": WEBHOOK_SECRET})
        wait_ready(app, proc, log)
        yield world, app
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        app.close()
        inbox.stop()
        world.stop()


def wait_ready(app: App, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until every channel was discovered, every listing known and nothing is to push."""
    deadline = time.monotonic() + READY_TIMEOUT
    expected = sum(len(skus) for _kind, skus in CHANNELS.values())
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"channelsync run stopped ({proc.returncode}):\n{log.read_text()[-3000:]}")
        with app.db.connect() as conn:
            discovered = conn.execute(state_t.select().where(
                state_t.c.discovered_at.is_not(None))).all()
            listings = conn.execute(listing_t.select()).all()
            waiting = conn.execute(outbox_t.select()).all()
        if len(discovered) == len(CHANNELS) and len(listings) == expected and not waiting:
            return
        time.sleep(0.2)
    sys.exit(f"the daemon was not ready after {READY_TIMEOUT:.0f} s:\n{log.read_text()[-3000:]}")


def shown(world: World, sku: str) -> dict[str, int]:
    return {name: next(x["quantity"] for x in world.get(name, "/_sandbox/listings")["listings"]
                       if x["sku"] == sku) for name in world.emulators}


def one_sale(world: World, channel: str, sku: str, timeout: float) -> Sale:
    before = shown(world, sku)
    expected = before[channel] - 1
    start = time.monotonic()
    answer = world.post(channel, "/_sandbox/orders", {"lines": [{"sku": sku, "quantity": 1}]})
    answer.raise_for_status()
    waiting = {name for name in world.emulators if name != channel}
    sale = Sale(channel, sku, None)
    while waiting and time.monotonic() - start < timeout:
        now = shown(world, sku)
        for name in sorted(waiting):
            if now[name] == expected:
                sale.per_channel[name] = time.monotonic() - start
                waiting.discard(name)
        if waiting:
            time.sleep(POLL)
    if not waiting:
        sale.seconds = max(sale.per_channel.values())
    return sale


def run_mode(mode: Mode, sales: int, seed: int, tmp: Path) -> list[Sale]:
    rng = random.Random(seed)
    done: list[Sale] = []
    timeout = 3 * mode.pull_interval + 30 if not mode.webhooks else 60.0
    with running(mode, seed, tmp) as (world, _app):
        for index in range(sales):
            time.sleep(rng.uniform(0.2, mode.pull_interval if not mode.webhooks else 1.0))
            channel = mode.sale_channels[index % len(mode.sale_channels)]
            sale = one_sale(world, channel, rng.choice(SKUS), timeout)
            done.append(sale)
            figure = f"{sale.seconds:6.2f} s" if sale.seconds is not None else "  never"
            print(f"  sale {index + 1:>3} on {channel:<8} {sale.sku}: {figure}", flush=True)
    return done


def report(mode: Mode, sales: list[Sale]) -> bool:
    arrived = [s.seconds for s in sales if s.seconds is not None]
    lost = len(sales) - len(arrived)
    print(f"\n{mode.name}: {len(sales)} sales, pull interval {mode.pull_interval:g} s"
          + (", webhooks from shop and shopify" if mode.webhooks else ""))
    print(f"  {'sold on':<9} {'n':>3} {'p50 s':>7} {'p99 s':>7} {'max s':>7}")
    for channel in mode.sale_channels:
        mine = [s.seconds for s in sales if s.channel == channel and s.seconds is not None]
        if mine:
            print(f"  {channel:<9} {len(mine):>3} {statistics.median(mine):>7.2f} "
                  f"{percentile(mine, 99):>7.2f} {max(mine):>7.2f}")
    if not arrived:
        print("  no sale arrived everywhere")
        return False
    p50, p99, top = statistics.median(arrived), percentile(arrived, 99), max(arrived)
    print(f"  {'all':<9} {len(arrived):>3} {p50:>7.2f} {p99:>7.2f} {top:>7.2f}")
    if not mode.webhooks:
        ratio = mode.pull_interval
        print(f"  / pull interval: p50 {p50 / ratio:.2f}, p99 {p99 / ratio:.2f}, "
              f"max {top / ratio:.2f}")
    verdict = "met" if p99 <= mode.goal else "MISSED"
    print(f"  goal p99 <= {mode.goal:g} s: {verdict}" + (f"; {lost} never arrived" if lost else ""))
    return lost == 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sales", type=int, default=24, help="sales per mode (24)")
    parser.add_argument("--pull-interval", type=float, default=10.0,
                        help="the daemon's pull interval when polling, seconds (10)")
    parser.add_argument("--webhook-pull-interval", type=float, default=300.0,
                        help="the pull interval beside webhooks, seconds (300)")
    parser.add_argument("--mode", choices=("polling", "webhooks", "both"), default="both")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    modes = []
    if args.mode in ("polling", "both"):
        modes.append(Mode("polling", args.pull_interval, False, list(CHANNELS),
                          args.pull_interval + 5))
    if args.mode in ("webhooks", "both"):
        modes.append(Mode("webhooks", args.webhook_pull_interval, True, ["shop", "shopify"], 5))
    print(f"propagation: {len(SKUS)} SKUs on {len(CHANNELS)} channels, the Amazon and eBay "
          f"order lag {LAG:g} s (shortened), channelsync run on SQLite")
    started, ok = time.monotonic(), True
    with tempfile.TemporaryDirectory(prefix="channelsync-bench-") as tmp:
        for mode in modes:
            print(f"\n{mode.name}:", flush=True)
            sales = run_mode(mode, args.sales, args.seed, Path(tmp))
            ok = report(mode, sales) and ok
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of this process {peak:.0f} MB; total {time.monotonic() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
