"""What happens in the demo: the catalog, the channels, the buyers and the seller's moves.

A small homeware shop sells on two WooCommerce stores, Amazon, eBay and Shopify. Buyers
come at a human pace; one lamp is left and two buyers on two channels take it within a
second of each other (the one oversell no sync can prevent: it is detected and alerted);
halfway through, a delivery arrives. Every buyer's action goes to the channel's emulator
through its ``/_sandbox/`` API and is written down in the ``Journal``, which the verdict
reads.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from channelsync.ledger.barcodes import check_digit

# sku -> (title, units on the shelf at the start)
CATALOG: dict[str, tuple[str, int]] = {
    "MUG-BLUE": ("Blue mug", 24),
    "MUG-RED": ("Red mug", 12),
    "PLATE": ("Dinner plate", 30),
    "BOWL": ("Cereal bowl", 8),
    "TEAPOT": ("Teapot", 4),
    "VASE": ("Glass vase", 3),
    "LAMP": ("Desk lamp", 1),
}
KITS = {"MUG-2PACK": {"MUG-BLUE": 2}}  # a multipack: two blue mugs
# The EAN-13 on each product's label (made up, with right check digits): packing scans them.
BARCODES = {sku: f"{body}{check_digit(body)}" for sku, body in zip(
    CATALOG, (f"590123412{n:03d}" for n in range(10, 10 + len(CATALOG))), strict=True)}
TYPES = {"webshop": "woocommerce", "outlet": "woocommerce", "amazon": "amazon",
         "ebay": "ebay", "shopify": "shopify"}
LISTED: dict[str, list[str]] = {  # what each channel sells
    "webshop": ["MUG-BLUE", "MUG-RED", "PLATE", "BOWL", "TEAPOT", "VASE", "LAMP", "MUG-2PACK"],
    "outlet": ["MUG-BLUE", "MUG-RED", "PLATE", "BOWL", "TEAPOT"],
    "amazon": ["MUG-BLUE", "PLATE", "BOWL", "VASE", "LAMP"],
    "ebay": ["MUG-RED", "PLATE", "TEAPOT", "VASE", "LAMP"],
    "shopify": ["MUG-BLUE", "MUG-RED", "BOWL", "TEAPOT", "LAMP", "MUG-2PACK"],
}
FBA = {"amazon": {"MUG-RED": 40}}  # Amazon's own stock (FBA): shown, never written
RACE_SKU, RACE_CHANNELS, RACE_GAP = "LAMP", ("webshop", "amazon"), 0.4  # seconds apart
DELIVERY = {"VASE": 4, "TEAPOT": 4, "BOWL": 6, "MUG-RED": 6}  # from the supplier
RACE_AT, DELIVERY_AT = 0.2, 0.55  # fractions of the run
BUYER_PAUSE = (1.5, 4.0)  # seconds between one buyer's actions: people, not a load test
ORDER_LAG = 2.0  # seconds: Amazon's and eBay's order lag, about 2 minutes on the real ones
# A regular who buys on three channels with one email: one customer in the book.
REGULAR = {"email": "maya.rossi@example.com", "name": "Maya Rossi"}
REGULAR_CHANNELS, REGULAR_SHARE = ("webshop", "ebay", "shopify"), 0.35
REGULAR_TIER = "regular"
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
name = "outlet"
type = "woocommerce"
endpoint = "{outlet}"
consumer_key = "ck_demo"
consumer_secret = "cs_demo"
[channel.rules]
buffer = 1  # the outlet keeps one unit back for the shop counter
[[channel]]
name = "amazon"
type = "amazon"
endpoint = "{amazon}"
marketplace = "US"
seller_id = "A2DEMOSELLER"
refresh_token = "Atzr|demo"
lwa_app_id = "amzn1.application-oa2-client.demo"
lwa_client_secret = "demo-secret"
order_lag = {lag}  # Amazon shows orders about two minutes late: shortened for the demo
[[channel]]
name = "ebay"
type = "ebay"
endpoint = "{ebay}"
token = "demo-token"
app_id = "demo-app"
dev_id = "demo-dev"
cert_id = "demo-cert"
order_lag = {lag}  # eBay's is about two minutes: shortened for the demo
[[channel]]
name = "shopify"
type = "shopify"
endpoint = "{shopify}"
access_token = "shpat_demo"
[loyalty]
salt = "demo-only-salt: a real one is a secret in the environment"
[[loyalty.tiers]]
name = "regular"
min_orders = 3
tag = "thank-you card"
[[kit]]
sku = "MUG-2PACK"
components = {{ "MUG-BLUE" = 2 }}
title = "Blue mugs, pair"
"""


@dataclass(frozen=True)
class Sale:
    channel: str
    order_id: str
    sku: str
    quantity: int
    at: float  # time.monotonic()


@dataclass(frozen=True)
class Refusal:
    channel: str
    sku: str
    quantity: int
    at: float
    prevented: bool  # without channelsync the channel would still have sold it: an oversell


@dataclass
class Journal:
    """Everything the buyers and the seller did, thread-safe; the verdict reads it."""

    started: float = field(default_factory=time.monotonic)
    sales: list[Sale] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    cancelled: int = 0
    shipped: int = 0
    errors: list[str] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)  # for the live view
    # What each listing would show had no one but its own buyers touched it since the start:
    # a refusal within that is a sale the channel would have taken without channelsync.
    alone: Counter[tuple[str, str]] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, message: str) -> None:
        with self.lock:
            self.events.append((time.monotonic(), message))

    def sold(self, sale: Sale) -> None:
        with self.lock:
            self.sales.append(sale)
            self.alone[(sale.channel, sale.sku)] -= sale.quantity

    def refused(self, channel: str, sku: str, quantity: int) -> None:
        with self.lock:
            prevented = quantity <= self.alone[(channel, sku)]
            self.refusals.append(Refusal(channel, sku, quantity, time.monotonic(), prevented))

    def cancelled_order(self, sale: Sale) -> None:
        with self.lock:
            self.cancelled += 1
            self.alone[(sale.channel, sale.sku)] += sale.quantity  # the channel restocks it

    def shipped_order(self) -> None:
        with self.lock:
            self.shipped += 1


class Shopper:
    """Places and changes orders on one channel through its emulator's sandbox API."""

    def __init__(self, channel: str, url: str, journal: Journal) -> None:
        self.channel, self.journal = channel, journal
        self.http = httpx.Client(base_url=url, timeout=5)

    def buy(self, sku: str, quantity: int, buyer: dict[str, str] | None = None) -> Sale | None:
        order: dict[str, object] = {"lines": [{"sku": sku, "quantity": quantity}]}
        if buyer:
            order["buyer"] = buyer
        response = self.http.post("/_sandbox/orders", json=order)
        if response.status_code != 201:  # the channel shows fewer: it refuses to oversell
            self.journal.refused(self.channel, sku, quantity)
            return None
        sale = Sale(self.channel, str(response.json()["order_id"]), sku, quantity,
                    time.monotonic())
        self.journal.sold(sale)
        return sale

    def act(self, action: str, sale: Sale) -> None:
        if self.http.post(f"/_sandbox/orders/{sale.order_id}/{action}").status_code >= 300:
            return
        if action == "cancel":
            self.journal.cancelled_order(sale)
        else:
            self.journal.shipped_order()

    def close(self) -> None:
        self.http.close()


class Buyer(threading.Thread):
    """The buyers of one channel: every few seconds one buys, cancels or gets a parcel."""

    def __init__(self, shopper: Shopper, seed: int, stop: threading.Event) -> None:
        super().__init__(name=f"buyer-{shopper.channel}", daemon=True)
        self.shopper, self.halt = shopper, stop
        self.random = random.Random(seed)
        self.skus = [s for s in LISTED[shopper.channel] if s != RACE_SKU]
        self.open: list[Sale] = []

    def run(self) -> None:
        while not self.halt.wait(self.random.uniform(*BUYER_PAUSE)):
            try:
                self.step()
            except httpx.HTTPError as exc:
                self.shopper.journal.errors.append(f"{self.shopper.channel}: {exc}")

    def step(self) -> None:
        roll = self.random.random()
        if roll < 0.08 and self.open:
            self.shopper.act("cancel", self.open.pop(self.random.randrange(len(self.open))))
        elif roll < 0.25 and self.open:
            self.shopper.act("ship", self.open.pop(0))
        else:
            regular = self.shopper.channel in REGULAR_CHANNELS and \
                self.random.random() < REGULAR_SHARE
            sale = self.shopper.buy(self.random.choice(self.skus),
                                    self.random.choice((1, 1, 1, 2)),
                                    REGULAR if regular else None)
            if sale is not None:
                self.open.append(sale)
