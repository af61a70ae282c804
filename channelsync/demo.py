"""``channelsync demo``: two WooCommerce emulators, an Amazon, an eBay and a Shopify one, a
temporary SQLite ledger, simulated buyers on every channel, sync cycles and a live view, for a
bounded time.

Everything runs on loopback; nothing is kept afterwards.
"""

from __future__ import annotations

import random
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from channelsync import planner
from channelsync.app import App
from channelsync.config import parse_config
from channelsync.ledger import state_t
from channelsync.registry import load_emulator
from channelsync.reports import conflicts as open_conflicts
from channelsync.stock import StockRow

CATALOG = {"MUG-BLUE": 8, "MUG-RED": 5, "PLATE": 12, "BOWL": 3, "LAMP": 1}
CHANNELS = {
    "webshop": ["MUG-BLUE", "MUG-RED", "PLATE", "BOWL", "LAMP", "MUG-2PACK"],
    "marketplace": ["MUG-BLUE", "MUG-RED", "PLATE", "BOWL", "LAMP"],
    "amazon": ["MUG-BLUE", "PLATE", "BOWL", "LAMP"],
    "ebay": ["MUG-RED", "PLATE", "LAMP"],
    "shopify": ["MUG-BLUE", "MUG-RED", "BOWL", "LAMP", "MUG-2PACK"],
}
FBA = {"amazon": {"MUG-RED": 40}}  # Amazon's own stock (FBA): shown, never written
CONFIG = """
[database]
url = "sqlite:///{db}"
[daemon]
retry_max_wait = 2
[[channel]]
name = "webshop"
type = "woocommerce"
endpoint = "{webshop}"
consumer_key = "ck_demo"
consumer_secret = "cs_demo"
[[channel]]
name = "marketplace"
type = "woocommerce"
endpoint = "{marketplace}"
consumer_key = "ck_demo"
consumer_secret = "cs_demo"
[[channel]]
name = "amazon"
type = "amazon"
endpoint = "{amazon}"
marketplace = "US"
seller_id = "A2DEMOSELLER"
refresh_token = "Atzr|demo"
lwa_app_id = "amzn1.application-oa2-client.demo"
lwa_client_secret = "demo-secret"
[[channel]]
name = "ebay"
type = "ebay"
endpoint = "{ebay}"
token = "demo-token"
app_id = "demo-app"
dev_id = "demo-dev"
cert_id = "demo-cert"
order_lag = 2  # eBay's is about two minutes: too long for a demo
[[channel]]
name = "shopify"
type = "shopify"
endpoint = "{shopify}"
access_token = "shpat_demo"
[[rule]]
sku = "PLATE"
channel = "marketplace"
buffer = 2
[[kit]]
sku = "MUG-2PACK"
components = {{ "MUG-BLUE" = 2 }}
"""
SYNC_EVERY = 1.0
SETTLE = 2.5  # longer than the Amazon emulator's visibility lag and eBay's order_lag


@dataclass
class Tally:
    orders: int = 0
    refused: int = 0
    cancelled: int = 0
    shipped: int = 0
    cycles: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + 1)


class Buyer(threading.Thread):
    """Buys, and sometimes cancels or ships, on one channel through its sandbox API."""

    def __init__(self, url: str, skus: list[str], seed: int, tally: Tally,
                 stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(base_url=url, timeout=5)
        self.skus, self.random, self.tally, self.halt = skus, random.Random(seed), tally, stop
        self.placed: list[str] = []

    def run(self) -> None:
        while not self.halt.wait(self.random.uniform(0.15, 0.6)):
            roll = self.random.random()
            try:
                if roll < 0.12 and self.placed:
                    self._act("cancel", self.placed.pop(self.random.randrange(len(self.placed))))
                elif roll < 0.3 and self.placed:
                    self._act("ship", self.placed.pop(0))
                else:
                    self.buy(self.random.choice(self.skus), self.random.choice((1, 1, 1, 2)))
            except httpx.HTTPError as exc:
                self.tally.errors.append(str(exc))
        self.http.close()

    def buy(self, sku: str, quantity: int, *, keep_open: bool = False) -> None:
        response = self.http.post("/_sandbox/orders",
                                  json={"lines": [{"sku": sku, "quantity": quantity}]})
        if response.status_code == 201:
            if not keep_open:
                self.placed.append(response.json()["order_id"])
            self.tally.add("orders")
        else:
            self.tally.add("refused")  # the channel had no more: it refuses to oversell

    def _act(self, action: str, order_id: str) -> None:
        if self.http.post(f"/_sandbox/orders/{order_id}/{action}").status_code < 300:
            self.tally.add("cancelled" if action == "cancel" else "shipped")


def _emulators(seed: int) -> dict[str, Any]:
    woo = load_emulator("woocommerce")
    # Amazon's real rate limits (one order search every 3 minutes) would stall a 30 s demo;
    # its order visibility lag stays, shortened from about 2 minutes to 2 seconds.
    amazon = load_emulator("amazon")(rate_limits=False, visibility_lag=2.0, seed=seed)
    return {"webshop": woo(consumer_key="ck_demo", consumer_secret="cs_demo", seed=seed),
            "marketplace": woo(consumer_key="ck_demo", consumer_secret="cs_demo", seed=seed),
            "amazon": amazon,
            "ebay": load_emulator("ebay")(token="demo-token", seed=seed),
            "shopify": load_emulator("shopify")(access_token="shpat_demo", seed=seed)}


def run_demo(duration: float, seed: int, console: Console) -> int:
    emulators = _emulators(seed)
    for emulator in emulators.values():
        emulator.start("127.0.0.1", 0)
    with tempfile.TemporaryDirectory(prefix="channelsync-demo-") as tmp:
        try:
            return _run(emulators, Path(tmp), duration, seed, console)
        finally:
            for emulator in emulators.values():
                emulator.stop()


def _run(emulators: dict[str, Any], tmp: Path, duration: float, seed: int,
         console: Console) -> int:
    text = CONFIG.format(db=tmp / "ledger.db", **{n: e.url for n, e in emulators.items()})
    app = App(parse_config(text, source="demo", env={}))
    for name, skus in CHANNELS.items():
        for sku in skus:
            httpx.post(f"{emulators[name].url}/_sandbox/listings",
                       json={"sku": sku, "quantity": 0}).raise_for_status()
        for sku, quantity in FBA.get(name, {}).items():
            httpx.post(f"{emulators[name].url}/_sandbox/listings", json={
                "sku": sku, "quantity": quantity, "fulfillment": "AFN"}).raise_for_status()
    app.set_stock([StockRow(sku, qty, title=sku.title()) for sku, qty in CATALOG.items()],
                  reason="demo catalog")
    console.print(f"demo: ledger {tmp / 'ledger.db'}; channels "
                  + ", ".join(f"{n} at {e.url}" for n, e in emulators.items()))
    app.engine.sync()
    tally, stop = Tally(), threading.Event()
    buyers = [Buyer(e.url, CHANNELS[n], seed + i, tally, stop)
              for i, (n, e) in enumerate(emulators.items())]
    for buyer in buyers:  # the last lamp, bought on both channels before any sync
        buyer.buy("LAMP", 1, keep_open=True)
    for buyer in buyers:
        buyer.start()
    deadline = time.monotonic() + duration
    try:
        with Live(console=console, auto_refresh=False, transient=False,
                  redirect_stderr=False) as live:
            while time.monotonic() < deadline:
                app.engine.sync(read_back=tally.cycles % 5 == 4)
                tally.cycles += 1
                live.update(_view(app, emulators, tally, deadline), refresh=True)
                time.sleep(SYNC_EVERY)
            stop.set()
            for buyer in buyers:
                buyer.join()
            time.sleep(SETTLE)  # Amazon shows orders only after its visibility lag
            for _ in range(2):  # the buyers are gone: let every channel settle
                app.engine.sync()
            live.update(_view(app, emulators, tally, None), refresh=True)
        return _verdict(app, emulators, console)
    finally:
        stop.set()
        app.close()


def _shown(emulators: dict[str, Any]) -> dict[str, dict[str, int]]:
    shown = {}
    for name, emulator in emulators.items():
        listings = httpx.get(f"{emulator.url}/_sandbox/listings").json()["listings"]
        shown[name] = {item["sku"]: item["quantity"] for item in listings}
    return shown


def _targets(app: App) -> dict[tuple[str, str], int | None]:
    with app.db.connect() as conn:
        listings = planner.select_listings(conn, list(CHANNELS))
        return {(i.channel, i.channel_sku): i.target
                for i in planner.targets(conn, app.config, listings)}


def _view(app: App, emulators: dict[str, Any], tally: Tally, deadline: float | None) -> Group:
    shown, targets = _shown(emulators), _targets(app)
    with app.db.connect() as conn:
        avail = planner.availability(conn, [*CATALOG, "MUG-2PACK"])
        from channelsync.reports import stock_list

        stock = {r["sku"]: r for r in stock_list(conn)}
        everything = open_conflicts(conn, include_resolved=True)
    conflicts = [c for c in everything if c["resolved_at"] is None]
    left = f"{max(0, deadline - time.monotonic()):.0f}s left" if deadline else "settled"
    table = Table(title=f"channelsync demo - cycle {tally.cycles}, {left}", title_justify="left")
    for column in ("sku", "on hand", "reserved", "available", *(f"{n} shows / target"
                                                                for n in CHANNELS)):
        table.add_column(column, justify="right" if column != "sku" else "left")
    for sku in [*CATALOG, "MUG-2PACK"]:
        row = stock.get(sku, {})
        cells = [_cell(n, sku, shown, targets) for n in CHANNELS]
        table.add_row(sku, str(row.get("on_hand", "kit")), str(row.get("reserved", "")),
                      str(avail[sku].available if sku in avail else ""), *cells)
    summary = (f"orders {tally.orders}, refused by a channel {tally.refused}, cancelled "
               f"{tally.cancelled}, shipped {tally.shipped}; conflicts raised {len(everything)}, "
               f"open {len(conflicts)}; writes refused by Shopify's compare-and-set (a sale "
               f"there came first; retried after a pull) {_stale(app)}")
    lines = [f"  [{c['kind']}] {c['message']}" for c in conflicts[:6]]
    return Group(table, summary, *lines)


def _stale(app: App) -> int:
    with app.db.connect() as conn:
        return int(conn.execute(sa.select(state_t.c.stale_compares).where(
            state_t.c.name == "shopify")).scalar() or 0)


def _cell(channel: str, sku: str, shown: dict[str, dict[str, int]],
          targets: dict[tuple[str, str], int | None]) -> str:
    if sku in FBA.get(channel, {}):
        return f"{shown[channel].get(sku, '-')} (FBA)"
    if sku not in CHANNELS[channel]:
        return ""
    return f"{shown[channel].get(sku, '-')} / {targets.get((channel, sku), '-')}"


def _verdict(app: App, emulators: dict[str, Any], console: Console) -> int:
    shown, targets = _shown(emulators), _targets(app)
    console.print()
    off = [f"{channel}:{sku} shows {shown[channel].get(sku)} but should show {target}"
           for (channel, sku), target in targets.items()
           if target is not None and shown[channel].get(sku) != target]
    off += [f"{channel}:{sku} (FBA) was written: it shows {shown[channel].get(sku)}"
            for channel, fba in FBA.items() for sku, quantity in fba.items()
            if shown[channel].get(sku) != quantity]
    if off:
        console.print("[red]not converged:[/red] " + "; ".join(off))
        return 1
    console.print("[green]converged:[/green] every listing on every channel shows its target")
    return 0
