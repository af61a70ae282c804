"""A fake channel for engine tests: behaves like a marketplace, in memory.

It decrements its own quantity on a sale and restores it on cancel (like
WooCommerce), pages its orders, and can be told to fail. Registered as channel
type ``fake`` by the ``fake_registry`` fixture.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, SecretStr

from channelsync.connector import (
    Capabilities,
    ChannelListing,
    OrderLineSnapshot,
    OrderPage,
    OrderSnapshot,
    PushItem,
    PushResult,
    Shipment,
    ShipmentResult,
)
from channelsync.errors import PermanentChannelError, RetriableChannelError

CHANNELS: dict[str, FakeChannel] = {}


class Killed(BaseException):
    """The process died: nothing after it runs (not an Exception: the engine cannot catch it)."""


@dataclass
class FakeOrder:
    order_id: str
    lines: list[tuple[str, int]]
    status: str = "processing"
    changed_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    placed_at: datetime | None = None
    buyer: str = "A. Buyer"
    email: str = ""
    buyer_id: str = ""
    total: str = ""  # "": 10.00 a unit
    currency: str = "EUR"
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None


@dataclass
class FakeChannel:
    name: str
    quantities: dict[str, int] = field(default_factory=dict)
    unowned: set[str] = field(default_factory=set)
    orders: dict[str, FakeOrder] = field(default_factory=dict)
    page_size: int = 2
    pushes: list[list[PushItem]] = field(default_factory=list)
    pulls: int = 0
    pages: list[str | None] = field(default_factory=list)  # the page of every pull call
    hidden: set[str] = field(default_factory=set)  # orders the channel does not report yet
    lose_answers: int = 0  # the next pushes are applied, then answered with a timeout
    die_after_write: bool = False  # the next push is applied, then channelsync "dies"
    fail_next: list[Exception] = field(default_factory=list)  # raised by the next API calls
    refuse: set[str] = field(default_factory=set)  # SKUs whose pushes are refused
    push_errors: list[Exception] = field(default_factory=list)  # raised by the next pushes
    # Run by the next compare-and-set pushes after they are sent, before they are checked:
    # what a buyer does in the instant between our read and our write.
    before_write: list[Callable[[], Any]] = field(default_factory=list)
    calls: list[list[PushItem]] = field(default_factory=list)  # every push call, failed ones too
    before_read: list[Callable[[], Any]] = field(default_factory=list)  # run by the next reads
    clock: Any = None
    shipments: list[Shipment] = field(default_factory=list)  # confirmed on the channel
    lose_ship_answers: int = 0  # the next confirmations land, then time out
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def now(self) -> datetime:
        return self.clock() if self.clock else datetime.now(UTC)

    def sell(self, *lines: tuple[str, int], **order: Any) -> str:
        """``order``: more FakeOrder fields (email, buyer_id, buyer, total, currency)."""
        for sku, qty in lines:
            if self.quantities.get(sku, 0) < qty:
                raise ValueError(f"{self.name}: only {self.quantities.get(sku, 0)} of {sku}")
        for sku, qty in lines:
            self.quantities[sku] -= qty
        order_id = f"{self.name}-{next(self._ids)}"
        self.orders[order_id] = FakeOrder(order_id, list(lines), changed_at=self.now(),
                                          placed_at=self.now(), **order)
        return order_id

    def set_status(self, order_id: str, status: str) -> None:
        order = self.orders[order_id]
        if status == "cancelled" and order.status != "cancelled":
            for sku, qty in order.lines:
                self.quantities[sku] += qty
        order.status = status
        order.changed_at = self.now()

    def _maybe_fail(self) -> None:
        if self.fail_next:
            raise self.fail_next.pop(0)


class FakeConnector:
    class Settings(BaseModel):
        model_config = ConfigDict(frozen=True, extra="forbid")
        token: SecretStr = SecretStr("fake-token")

    capabilities: ClassVar[Capabilities] = Capabilities(
        push_batch_size=3, requests_per_second=1000, burst=1000, overlap=timedelta(seconds=30))

    def __init__(self, name: str, settings: Any, *, endpoint: str = "") -> None:
        self.channel = CHANNELS.setdefault(name, FakeChannel(name))

    def pull_orders(self, since: datetime, page: str | None) -> OrderPage:
        ch = self.channel
        ch.pages.append(page)
        ch._maybe_fail()
        ch.pulls += 1
        changed = sorted((o for o in ch.orders.values()
                          if o.changed_at >= since and o.order_id not in ch.hidden),
                         key=lambda o: (o.changed_at, o.order_id))
        start = int(page or 0)
        chunk = changed[start:start + ch.page_size]
        lines = [self._snapshot(o, i, sku, qty) for o in chunk
                 for i, (sku, qty) in enumerate(o.lines)]
        more = start + ch.page_size < len(changed)
        resume = max((o.changed_at for o in chunk), default=None)
        return OrderPage(lines, str(start + ch.page_size) if more else None, resume,
                         orders=[self._header(o) for o in chunk])

    @staticmethod
    def _header(order: FakeOrder) -> OrderSnapshot:
        stage = {"pending": "received", "processing": "paid", "completed": "shipped",
                 "cancelled": "cancelled", "refunded": "returned"}.get(order.status, "received")
        if order.delivered_at is not None:
            stage = "delivered"
        total = order.total or f"{sum(q for _, q in order.lines) * 10}.00"
        return OrderSnapshot(order.order_id, order.status, stage, order.changed_at,
                             placed_at=order.placed_at, buyer=order.buyer, total=total,
                             currency=order.currency, buyer_email=order.email,
                             buyer_id=order.buyer_id, shipped_at=order.shipped_at,
                             delivered_at=order.delivered_at)

    @staticmethod
    def _snapshot(order: FakeOrder, i: int, sku: str, qty: int) -> OrderLineSnapshot:
        shipped = qty if order.status == "completed" or order.delivered_at else 0
        cancelled = qty if order.status == "cancelled" else 0
        return OrderLineSnapshot(order.order_id, str(i), sku, qty, order.status,
                                 order.changed_at, shipped=shipped, cancelled=cancelled)

    def push_quantities(self, items: Sequence[PushItem]) -> list[PushResult]:
        ch = self.channel
        ch._maybe_fail()
        if ch.push_errors:
            raise ch.push_errors.pop(0)
        if ch.before_write:
            ch.before_write.pop(0)()
        ch.pushes.append(list(items))
        results = []
        for item in items:
            if item.channel_sku in ch.refuse or item.channel_sku not in ch.quantities:
                error = PermanentChannelError(f"refused {item.channel_sku}")
                results.append(PushResult(item.channel_sku, False, error))
                continue
            ch.quantities[item.channel_sku] = item.quantity
            results.append(PushResult(item.channel_sku, True, ref=f"ref-{item.channel_sku}"))
        if ch.lose_answers:
            ch.lose_answers -= 1
            raise RetriableChannelError("timed out waiting for the answer")
        if ch.die_after_write:
            ch.die_after_write = False
            raise Killed("SIGKILL between the channel's answer and recording it")
        return results

    def confirm_shipment(self, shipment: Shipment) -> ShipmentResult:
        """Like a channel: an unknown or cancelled order is refused; a shipment with the
        same key is found, not created twice."""
        ch = self.channel
        ch._maybe_fail()
        order = ch.orders.get(shipment.order_id)
        if order is None:
            return ShipmentResult(False, PermanentChannelError(
                f"order {shipment.order_id} does not exist"))
        if order.status == "cancelled":
            return ShipmentResult(False, PermanentChannelError(
                f"order {shipment.order_id} is cancelled"))
        if any(s.key == shipment.key for s in ch.shipments):
            return ShipmentResult(True, ref=shipment.key, already=True)
        ch.shipments.append(shipment)
        if ch.lose_ship_answers:
            ch.lose_ship_answers -= 1
            raise RetriableChannelError("timed out waiting for the answer")
        return ShipmentResult(True, ref=shipment.key)

    def read_listings(self) -> Iterator[ChannelListing]:
        self.channel._maybe_fail()
        if self.channel.before_read:
            self.channel.before_read.pop(0)()
        for sku, qty in sorted(self.channel.quantities.items()):
            yield ChannelListing(sku, qty, managed=sku not in self.channel.unowned)

    def close(self) -> None:
        pass


class FakeCasConnector(FakeConnector):
    """A channel with compare-and-set writes (like Shopify's changeFromQuantity)."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        push_batch_size=3, requests_per_second=1000, burst=1000, overlap=timedelta(seconds=30),
        compare_and_set=True)

    def push_quantities(self, items: Sequence[PushItem]) -> list[PushResult]:
        ch = self.channel
        ch.calls.append(list(items))
        ch._maybe_fail()
        if ch.push_errors:
            raise ch.push_errors.pop(0)
        if ch.before_write:
            ch.before_write.pop(0)()
        ch.pushes.append(list(items))
        results = []
        for item in items:
            if item.channel_sku not in ch.quantities or item.channel_sku in ch.refuse:
                error = PermanentChannelError(f"refused {item.channel_sku}")
                results.append(PushResult(item.channel_sku, False, error))
                continue
            shows = ch.quantities[item.channel_sku]
            if item.expected is not None and item.expected != shows:
                error = PermanentChannelError(f"{item.channel_sku}: stale compare")
                results.append(PushResult(item.channel_sku, False, error, stale=True,
                                          observed=shows))
                continue
            ch.quantities[item.channel_sku] = item.quantity
            results.append(PushResult(item.channel_sku, True, ref=f"ref-{item.channel_sku}"))
        return results


class FakeWaitingConnector(FakeConnector):
    """A channel whose client waits a long time in every pull (a rate limit, a feed), with
    the ``sleep`` the engine hands connectors that take one."""

    waiting: ClassVar[threading.Event] = threading.Event()

    def __init__(self, name: str, settings: Any, *, endpoint: str = "",
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(name, settings, endpoint=endpoint)
        self._sleep = sleep

    def pull_orders(self, since: datetime, page: str | None) -> OrderPage:
        self.waiting.set()
        self._sleep(3600)  # a real hour unless the engine cuts it short
        return super().pull_orders(since, page)
