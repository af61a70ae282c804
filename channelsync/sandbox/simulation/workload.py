"""Who acts in a simulation: buyers on every channel (buy, cancel, ship, partial ship,
refund, edit), and the seller (deliveries, write-offs, edits on a channel's own page).

Each actor draws its decisions from a seed of its own; when each action lands depends on
threads and timing, which a seed cannot fix. Everything done is written to the ``Journal``,
with the time it was done, for the checks.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from channelsync.sandbox.simulation.world import CATALOG, CHANNELS, World

# What each channel's sandbox API can do beyond buy, cancel and ship.
PARTIAL_SHIP = {"amazon", "shopify"}
REFUNDS = {"shopify"}
EDITS = {"shopify"}  # an order's quantity lowered after it was placed


@dataclass(frozen=True)
class Sale:
    channel: str
    order_id: str
    lines: tuple[tuple[str, int], ...]
    at: float  # time.time() when the channel took it


@dataclass
class Journal:
    sales: list[Sale] = field(default_factory=list)
    edits: list[tuple[str, str, float]] = field(default_factory=list)  # channel, sku, at
    adjustments: dict[str, int] = field(default_factory=dict)  # sku -> units added
    write_offs: list[tuple[str, float]] = field(default_factory=list)  # sku, at
    refused: int = 0  # buyers a channel turned away (it showed fewer)
    actions: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def sold(self, sale: Sale) -> None:
        with self.lock:
            self.sales.append(sale)
            self.actions += 1

    def did(self) -> None:
        with self.lock:
            self.actions += 1


class Buyer(threading.Thread):
    """The buyers of one channel, one action every 0.1-0.6 s."""

    def __init__(self, world: World, channel: str, seed: int, journal: Journal,
                 stop: threading.Event) -> None:
        super().__init__(name=f"sim-buyer-{channel}", daemon=True)
        self.world, self.channel, self.journal, self.halt = world, channel, journal, stop
        self.rng = random.Random(seed)
        self.skus = CHANNELS[channel][1]
        self.open: list[Sale] = []
        self.http = httpx.Client(base_url=world.emulators[channel].url, timeout=10)

    def run(self) -> None:
        while not self.halt.wait(self.rng.uniform(0.1, 0.6)):
            try:
                self.step()
            except httpx.HTTPError as exc:
                self.journal.errors.append(f"{self.channel}: {exc}")
        self.http.close()

    def step(self) -> None:
        roll = self.rng.random()
        if self.open and roll < 0.08:
            self._act(self.open.pop(self.rng.randrange(len(self.open))), "cancel")
        elif self.open and roll < 0.22:
            self._act(self.open.pop(0), "ship")
        elif self.open and roll < 0.27 and self.channel in PARTIAL_SHIP:
            self._partial(self.open[0])
        elif self.open and roll < 0.30 and self.channel in REFUNDS:
            self._refund(self.open.pop(self.rng.randrange(len(self.open))))
        elif self.open and roll < 0.33 and self.channel in EDITS:
            self._edit(self.open[-1])
        else:
            self._buy()

    def _buy(self) -> None:
        lines = [(self.rng.choice(self.skus), self.rng.choice((1, 1, 1, 2)))]
        if self.rng.random() < 0.15:
            lines.append((self.rng.choice(self.skus), 1))
        merged: dict[str, int] = {}
        for sku, qty in lines:
            merged[sku] = merged.get(sku, 0) + qty
        answer = self.http.post("/_sandbox/orders", json={"lines": [
            {"sku": s, "quantity": q} for s, q in merged.items()]})
        if answer.status_code == 201:
            sale = Sale(self.channel, str(answer.json()["order_id"]), tuple(merged.items()),
                        time.time())
            self.journal.sold(sale)
            self.open.append(sale)
        else:
            with self.journal.lock:
                self.journal.refused += 1

    def _act(self, sale: Sale, action: str) -> None:
        self.http.post(f"/_sandbox/orders/{sale.order_id}/{action}")
        self.journal.did()

    def _partial(self, sale: Sale) -> None:
        sku, qty = sale.lines[0]
        if qty < 2:
            return
        if self.channel == "amazon":
            self.http.post(f"/_sandbox/orders/{sale.order_id}/status", json={
                "status": "PartiallyShipped", "shipped": {sku: 1}})
        else:
            self.http.post(f"/_sandbox/orders/{sale.order_id}/ship",
                           json={"lines": [{"sku": sku, "quantity": 1}]})
        self.journal.did()

    def _edit(self, sale: Sale) -> None:
        sku, qty = sale.lines[0]
        if qty < 2:
            return
        self.http.post(f"/_sandbox/orders/{sale.order_id}/edit",
                       json={"sku": sku, "quantity": qty - 1})
        self.journal.did()

    def _refund(self, sale: Sale) -> None:
        sku, qty = sale.lines[0]
        self.http.post(f"/_sandbox/orders/{sale.order_id}/refund", json={"lines": [
            {"sku": sku, "quantity": qty, "restock_type": "CANCEL"}]})
        self.journal.did()


class Seller(threading.Thread):
    """Deliveries and write-offs in the ledger, now and then an edit on a channel's own
    page (the one kind of drift the checks expect)."""

    def __init__(self, world: World, adjust: Callable[[str, int, str], Any], seed: int,
                 journal: Journal, stop: threading.Event, *, edits: bool = True) -> None:
        super().__init__(name="sim-seller", daemon=True)
        self.world, self.adjust, self.journal, self.halt = world, adjust, journal, stop
        self.rng = random.Random(seed)
        self.edits = edits

    def run(self) -> None:
        while not self.halt.wait(self.rng.uniform(1.0, 2.5)):
            try:
                self.step()
            except Exception as exc:  # the daemon may hold the ledger a moment: next time
                self.journal.errors.append(f"seller: {type(exc).__name__}: {exc}")

    def step(self) -> None:
        sku = self.rng.choice(sorted(CATALOG))
        roll = self.rng.random()
        if roll < 0.6:
            delta, why = self.rng.randint(3, 8), "delivery"
        elif roll < 0.85:
            delta, why = -1, "damaged"
        elif self.edits:
            channel = self.rng.choice(sorted(CHANNELS))
            if sku in CHANNELS[channel][1]:
                self.world.post(channel, "/_sandbox/listings",
                                {"sku": sku, "quantity": self.rng.randint(0, 40)})
                with self.journal.lock:
                    self.journal.edits.append((channel, sku, time.time()))
            return
        else:
            return
        self.adjust(sku, delta, why)
        with self.journal.lock:
            self.journal.adjustments[sku] = self.journal.adjustments.get(sku, 0) + delta
            self.journal.actions += 1
            if delta < 0:
                self.journal.write_offs.append((sku, time.time()))
