"""Running the demo: emulators, a temporary SQLite ledger, buyers, sync cycles, the verdict.

Everything runs on loopback; nothing is kept afterwards. The run ends by itself after its
duration plus a short settling time (the channels' order lag and two cycles).
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from rich.console import Console
from rich.live import Live

from channelsync.config import parse_config
from channelsync.ledger.availability import availability
from channelsync.ledger.schema import state_t
from channelsync.ledger.stock import StockRow
from channelsync.registry import load_emulator
from channelsync.sandbox.demo import scenario as s
from channelsync.sandbox.demo.fulfil import after_sales
from channelsync.sandbox.demo.measure import Propagation, explain_oversells
from channelsync.sandbox.demo.view import Snapshot, legend, live, verdict
from channelsync.service.alerts import AlertDispatcher
from channelsync.service.app import App
from channelsync.service.reports import conflicts as all_conflicts
from channelsync.service.reports import stock_list
from channelsync.sync import planner

SYNC_EVERY = 1.0  # seconds between cycles (the daemon's default is two minutes)
NAMES = {"woocommerce": "WooCommerce", "amazon": "Amazon", "ebay": "eBay",
         "shopify": "Shopify"}


class Inbox:
    """Where the demo's alerts go (a real setup names apprise URLs in [alerts] urls)."""

    def __init__(self, journal: s.Journal) -> None:
        self.journal = journal
        self.sent: list[tuple[float, str]] = []

    def send(self, title: str, body: str) -> bool:
        self.sent.append((time.monotonic(), title))
        self.journal.note("ALERT " + title.removeprefix("channelsync: "))
        return True


def run_demo(duration: float, seed: int, console: Console) -> int:
    emulators = _emulators(seed)
    for emulator in emulators.values():
        emulator.start("127.0.0.1", 0)
    try:
        with tempfile.TemporaryDirectory(prefix="channelsync-demo-") as tmp, _quiet_logs():
            return Demo(emulators, Path(tmp), duration, seed, console).run()
    finally:
        for emulator in emulators.values():
            emulator.stop()


def _emulators(seed: int) -> dict[str, Any]:
    woo = load_emulator("woocommerce")
    # Amazon's rate limits off (one order search every three minutes would stall a short
    # demo); its order visibility lag stays, shortened from about 2 minutes.
    amazon = load_emulator("amazon")(rate_limits=False, visibility_lag=s.ORDER_LAG, seed=seed)
    return {"webshop": woo(consumer_key="ck_demo", consumer_secret="cs_demo", seed=seed),
            "outlet": woo(consumer_key="ck_demo", consumer_secret="cs_demo", seed=seed + 1),
            "amazon": amazon,
            "ebay": load_emulator("ebay")(token="demo-token", seed=seed),
            "shopify": load_emulator("shopify")(access_token="shpat_demo", seed=seed)}


@contextmanager
def _quiet_logs() -> Iterator[None]:
    """Warnings would tear the live table; the verdict says what matters. --log-level info
    or debug still shows everything."""
    root = logging.getLogger()
    level = root.level
    if level >= logging.WARNING:
        root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


class Demo:
    def __init__(self, emulators: dict[str, Any], tmp: Path, duration: float, seed: int,
                 console: Console) -> None:
        self.emulators, self.duration, self.seed, self.console = emulators, duration, seed, console
        self.db_path = tmp / "ledger.db"
        text = s.CONFIG.format(db=self.db_path, lag=s.ORDER_LAG,
                               **{n: e.url for n, e in emulators.items()})
        self.app = App(parse_config(text, source="demo", env={}))
        self.journal = s.Journal()
        self.shoppers = {n: s.Shopper(n, e.url, self.journal) for n, e in emulators.items()}
        self.propagation = Propagation(self.app.db, self.journal)
        self.app.events.subscribe(self.propagation.observe)
        self.inbox = Inbox(self.journal)
        self.alerts = AlertDispatcher(self.app.config, self.app.db, sender=self.inbox)
        self.cycles = 0

    def run(self) -> int:
        stop = threading.Event()
        try:
            self._open_shop()
            buyers = [s.Buyer(self.shoppers[n], self.seed + i, stop)
                      for i, n in enumerate(self.shoppers)]
            for buyer in buyers:
                buyer.start()
            with Live(console=self.console, auto_refresh=False, transient=False,
                      redirect_stderr=False) as screen:
                self._trade(screen)
                stop.set()
                for buyer in buyers:
                    buyer.join()
                self._settle(screen)
            code = self._verdict()
            after_sales(self.app, self.emulators, self.console)
            return code
        finally:
            stop.set()
            for shopper in self.shoppers.values():
                shopper.close()
            self.app.close()

    # -- the story ---------------------------------------------------------------------------

    def _open_shop(self) -> None:
        for name, skus in s.LISTED.items():
            for sku in skus:
                self._post(name, "/_sandbox/listings", {"sku": sku, "quantity": 0})
            for sku, quantity in s.FBA.get(name, {}).items():
                self._post(name, "/_sandbox/listings",
                           {"sku": sku, "quantity": quantity, "fulfillment": "AFN"})
        self.app.set_stock([StockRow(sku, qty, title=title, barcode=s.BARCODES[sku])
                            for sku, (title, qty) in s.CATALOG.items()], reason="stock count")
        self.console.print(
            f"[bold]channelsync demo[/bold]: a homeware shop sells on {len(s.LISTED)} channels "
            f"for {self.duration:g} s. Each channel is an emulator on this machine; the ledger "
            f"is {self.db_path} (deleted afterwards).")
        for name, emulator in self.emulators.items():
            self.console.print(f"  {name} at {emulator.url} ({NAMES[s.TYPES[name]]})",
                               markup=False, highlight=False)
        self._cycle()
        for channel, listings in self._shown().items():
            for sku, quantity in listings.items():
                self.journal.alone[(channel, sku)] = quantity
        self.journal.started = time.monotonic()

    def _trade(self, screen: Live) -> None:
        deadline = self.journal.started + self.duration
        raced = delivered = False
        try:
            while (now := time.monotonic()) < deadline:
                started = now
                if not raced and now >= self.journal.started + s.RACE_AT * self.duration:
                    raced = self._race()
                if not delivered and now >= self.journal.started + s.DELIVERY_AT * self.duration:
                    delivered = self._delivery()
                self._cycle(read_back=self.cycles % 5 == 4)
                screen.update(live(self._snapshot(), self.journal, self.cycles,
                                   deadline - time.monotonic()), refresh=True)
                time.sleep(max(0.0, SYNC_EVERY - (time.monotonic() - started)))
        except KeyboardInterrupt:
            self.journal.note("stopped early (Ctrl-C): settling")

    def _race(self) -> bool:
        """The last unit, bought on two channels before any sync can run between them."""
        first, second = (self.shoppers[n] for n in s.RACE_CHANNELS)
        a = first.buy(s.RACE_SKU, 1)
        time.sleep(s.RACE_GAP)
        b = second.buy(s.RACE_SKU, 1)
        if a and b:
            self.journal.note(f"the last {s.RACE_SKU}: bought on {a.channel} and on "
                              f"{b.channel} {b.at - a.at:.1f} s apart")
        return True

    def _delivery(self) -> bool:
        for sku, units in s.DELIVERY.items():
            self.app.adjust_stock(sku, units, reason="delivery from the supplier")
        self.journal.note("delivery: " + ", ".join(f"+{n} {sku}" for sku, n in
                                                    s.DELIVERY.items()))
        return True

    def _settle(self, screen: Live) -> None:
        """The buyers are gone: wait out the channels' order lag, then let every channel
        catch up."""
        time.sleep(s.ORDER_LAG + 0.5)
        for _ in range(2):
            self._cycle()
        screen.update(live(self._snapshot(), self.journal, self.cycles, None), refresh=True)

    def _cycle(self, read_back: bool = True) -> None:
        self.app.engine.sync(read_back=read_back)
        self.cycles += 1
        self.propagation.after_cycle()
        self.alerts.run_once()

    # -- reading the channels and the ledger --------------------------------------------------

    def _post(self, channel: str, path: str, body: dict[str, Any]) -> None:
        httpx.post(self.emulators[channel].url + path, json=body).raise_for_status()

    def _shown(self) -> dict[str, dict[str, int]]:
        shown = {}
        for name, emulator in self.emulators.items():
            listings = httpx.get(f"{emulator.url}/_sandbox/listings").json()["listings"]
            shown[name] = {item["sku"]: item["quantity"] for item in listings}
        return shown

    def _snapshot(self) -> Snapshot:
        with self.app.db.connect() as conn:
            stock = {r["sku"]: (r["on_hand"], r["reserved"]) for r in stock_list(conn)}
            available = {sku: a.available for sku, a in
                         availability(conn, [*s.CATALOG, *s.KITS]).items()}
            listings = planner.select_listings(conn, list(s.LISTED))
            targets = {(i.channel, i.channel_sku): i.target
                       for i in planner.targets(conn, self.app.config, listings)}
        return Snapshot(stock, available, self._shown(), targets)

    def _verdict(self) -> int:
        snapshot = self._snapshot()
        off, paced = [], []
        for (channel, sku), target in snapshot.targets.items():
            shown = snapshot.shown[channel].get(sku)
            if target is None or shown == target:
                continue
            if shown is not None and shown < target and self._paced(channel):
                paced.append(f"{channel}:{sku} {shown}→{target}")
            else:
                off.append(f"{channel}:{sku} shows {shown}, not {target}")
        off += [f"{channel}:{sku} (FBA) was written: it shows {snapshot.shown[channel].get(sku)}"
                for channel, fba in s.FBA.items() for sku, quantity in fba.items()
                if snapshot.shown[channel].get(sku) != quantity]
        with self.app.db.connect() as conn:
            conflicts = all_conflicts(conn, include_resolved=True)
            stale = int(conn.execute(sa.select(sa.func.sum(state_t.c.stale_compares))).scalar()
                        or 0)
        oversells = explain_oversells(conflicts, self.journal, self.propagation, self.inbox.sent)
        self.console.print(legend())
        self.console.print(verdict(self.journal, self.propagation, oversells, off, paced, stale))
        return 1 if off else 0

    def _paced(self, channel: str) -> bool:
        """Increases to this channel are spread over its day (eBay: 250 changes a day)."""
        caps = self.app.engine.connector(self.app.config.channel(channel)).capabilities
        return caps.daily_revisions is not None
