"""eBay (Trading API) connector, on ebaysdk behind ``connectors.ebay._adapter``.

Orders come from ``GetOrders`` by modification time (windows of at most 30 days, never older
than 90 days, pages of 100), each as its line snapshots and one ``OrderSnapshot`` (status,
times, the buyer's eBay user ID and email, total, shipping and delivery times: ``_orders``);
a line is shipped when the order is (its ShippedTime) or when the line itself is (the
transaction's ShippedTime: eBay marks lines shipped one by one). Quantities go out through
``ReviseInventoryStatus``, four items per call; listings are read from ``GetMyeBaySelling``'s
ActiveList. A listing's ``ref`` is ``"<ItemID>"``, or ``"<ItemID>/<SKU>"`` for a variation.
Shipments are confirmed with ``CompleteSale`` (``_fulfil``).

Zero quantities: without the seller's out-of-stock control a listing *ends* at 0. The
``zero_policy`` says what to do then: ``push`` sends the 0 and eBay ends the listing (warned
once), ``skip`` never sends a 0 (the item fails with a PermanentChannelError saying why).
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from channelsync.connector import (
    BadRecord,
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
from channelsync.errors import ChannelError, PermanentChannelError
from connectors._time import parse_utc
from connectors.ebay._adapter import Credentials, Fault, TradingClient, as_list, child
from connectors.ebay._fulfil import Fulfilment
from connectors.ebay._orders import (
    ORDER_NODES,
    aware,
    impersonal,
    order_snapshot,
    order_state,
    parse_order,
    text_of,
)

MAX_ITEMS_PER_REVISE = 4
ORDERS_PER_PAGE = 100
LISTINGS_PER_PAGE = 200
MAX_WINDOW = timedelta(days=30)
MAX_AGE = timedelta(days=90) - timedelta(minutes=5)  # margin: the request arrives later
SETTLE = timedelta(minutes=2)  # eBay's order index lags: never ask for the last minutes
ITEM_NOT_FOUND = "17"
# eBay's per-application call limits are per day; stay well below a burst it would refuse.
REQUESTS_PER_SECOND = 2.0
BURST = 4

LISTING_NODES = ["ActiveList.ItemArray.Item", "ActiveList.ItemArray.Item.Variations.Variation"]

ZeroPolicy = Literal["push", "skip"]


class EbaySettings(BaseModel):
    """The keys a ``type = "ebay"`` channel block takes besides the common ones."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    token: SecretStr | None = None  # Auth'n'Auth
    oauth_token: SecretStr | None = None  # OAuth user token (sent as X-EBAY-API-IAF-TOKEN)
    app_id: SecretStr = Field(min_length=1)
    dev_id: SecretStr = Field(min_length=1)
    cert_id: SecretStr = Field(min_length=1)
    site_id: int = Field(default=0, ge=0)
    compatibility: str = Field(default="1349", pattern=r"^[0-9]+$")
    timeout: float = Field(default=20, gt=0)
    zero_policy: ZeroPolicy = "push"
    # Orders are asked for only up to this many seconds ago: eBay shows changes late.
    order_lag: float = Field(default=SETTLE.total_seconds(), ge=0)

    @model_validator(mode="after")
    def _one_token(self) -> EbaySettings:
        given = [t for t in (self.token, self.oauth_token) if t and t.get_secret_value()]
        if len(given) != 1:
            raise ValueError("exactly one of token (Auth'n'Auth) or oauth_token is required")
        return self


@dataclass(frozen=True)
class Position:
    """Where a pull is: window start, pull end, page number; and what paging has seen.

    eBay pages by offset. An order that changes while we page moves (to the end, or out of
    the window) and the orders behind it slide back onto a page already read. Paging cannot
    prevent that, so it is detected: an order seen twice, or a total that changed. The cursor
    then stays where the pull began (``origin``) and the next pull reads the window again.
    """

    start: datetime
    end: datetime
    number: int
    origin: datetime
    total: str = ""
    seen: frozenset[str] = frozenset()  # short digests of the order ids of this window
    moved: bool = False

    def then(self, orders: Sequence[Any], total: str) -> Position:
        ids = {_digest(text_of(child(o, "OrderID"))) for o in orders}
        moved = self.moved or bool(ids & self.seen) or bool(self.total and total != self.total)
        return replace(self, total=self.total or total, seen=self.seen | ids, moved=moved)

    def next_page(self) -> Position:
        return replace(self, number=self.number + 1)

    def next_window(self, start: datetime) -> Position:
        return replace(self, start=start, number=1, total="", seen=frozenset())

    def encode(self) -> str:
        return json.dumps({
            "start": self.start.isoformat(), "end": self.end.isoformat(), "page": self.number,
            "origin": self.origin.isoformat(), "total": self.total, "moved": self.moved,
            "seen": ",".join(sorted(self.seen)),
        }, separators=(",", ":"))

    @classmethod
    def decode(cls, token: str) -> Position | None:
        try:
            raw = json.loads(token)
            start, end, origin = (parse_utc(raw[k]) for k in ("start", "end", "origin"))
            number, total, moved, seen = raw["page"], raw["total"], raw["moved"], raw["seen"]
        except (ValueError, TypeError, KeyError):
            return None
        if start is None or end is None or origin is None or not isinstance(number, int) \
                or number < 1 or not isinstance(total, str) or not isinstance(moved, bool) \
                or not isinstance(seen, str):
            return None
        return cls(start, end, number, origin, total, frozenset(filter(None, seen.split(","))),
                   moved)


def _digest(order_id: str) -> str:
    return format(zlib.crc32(order_id.encode()), "08x")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class EbayConnector:
    """Speaks eBay's Trading API for one seller account."""

    Settings: ClassVar[type[EbaySettings]] = EbaySettings
    capabilities: Capabilities = Capabilities(  # order_lag: the instance's setting
        push_batch_size=MAX_ITEMS_PER_REVISE,
        requests_per_second=REQUESTS_PER_SECOND,
        burst=BURST,
        compare_and_set=False,
        webhooks=False,
        overlap=timedelta(minutes=2),
        # 250 quantity revisions per listing per eBay day; the engine paces them.
        daily_revisions=250,
        revision_day_timezone="America/Los_Angeles",
    )
    emulator: ClassVar[str] = "connectors.ebay.emulator:EbayEmulator"

    def __init__(self, name: str, settings: EbaySettings, endpoint: str = "", *,
                 clock: Callable[[], datetime] = _utcnow, settle: timedelta | None = None) -> None:
        self.name = name
        self._settings = settings
        self._clock = clock
        self._settle = timedelta(seconds=settings.order_lag) if settle is None else settle
        self.capabilities = replace(type(self).capabilities, order_lag=self._settle)
        # How far eBay's clock is ahead of ours (from its answers' Timestamp): an orders
        # window ending at our "now" would miss eBay's newest orders when it runs ahead.
        self._offset = timedelta(0)
        self._log = logging.getLogger(f"{__name__}.{name}")
        self._refs: dict[str, str] = {}  # channel SKU -> ref, filled by lookups
        self._out_of_stock_control: bool | None = None
        self._warned_zero = False
        self._api = TradingClient(name, endpoint, _credentials(settings),
                                  site_id=settings.site_id,
                                  compatibility=settings.compatibility, timeout=settings.timeout)
        self._fulfilment = Fulfilment(self._api, order_state)

    def __repr__(self) -> str:
        return f"EbayConnector(name={self.name!r}, domain={self._api.domain!r})"

    # -- orders ---------------------------------------------------------------------------

    def pull_orders(self, since: datetime, page: str | None) -> OrderPage:
        at = self._order_position(since, page)
        if at.end <= at.start:
            return OrderPage([])
        window_end = min(at.start + MAX_WINDOW, at.end)
        reply = self._api.call("GetOrders", {
            "ModTimeFrom": _ebay_time(at.start), "ModTimeTo": _ebay_time(window_end),
            "OrderRole": "Seller",
            "Pagination": {"EntriesPerPage": ORDERS_PER_PAGE, "PageNumber": at.number},
        }, ORDER_NODES)
        lines: list[OrderLineSnapshot] = []
        bad: list[BadRecord] = []
        headers: list[OrderSnapshot] = []
        orders = as_list(child(reply.body, "OrderArray", "Order"))
        for raw in orders:
            order_lines, order_bad = parse_order(raw)
            lines += order_lines
            bad += order_bad
            header = order_snapshot(raw, order_bad)
            if header is not None:
                headers.append(header)
        self._log.debug("orders %s..%s page %d: %d orders, %d lines, %d bad",
                        _ebay_time(at.start), _ebay_time(window_end), at.number, len(headers),
                        len(lines), len(bad))
        at = at.then(orders, text_of(child(reply.body, "PaginationResult",
                                           "TotalNumberOfEntries")))
        now = parse_utc(reply.body.get("Timestamp"))  # eBay's clock when it answered
        if now is not None:
            self._offset = now - aware(self._clock())
        if reply.body.get("HasMoreOrders") == "true":
            return OrderPage(lines, at.next_page().encode(), None, bad, channel_now=now,
                             orders=headers)
        if window_end < at.end:
            return OrderPage(lines, at.next_window(window_end).encode(), None, bad,
                             channel_now=now, orders=headers)
        if at.moved:
            self._log.info("orders changed while paging: the cursor stays at %s",
                           at.origin.isoformat())
        return OrderPage(lines, None, at.origin if at.moved else at.end, bad, channel_now=now,
                         orders=headers)

    def _order_position(self, since: datetime, page: str | None) -> Position:
        if page is not None:
            position = Position.decode(page)
            if position is None:
                raise PermanentChannelError(f"invalid page token {page!r}", channel=self.name)
            return position
        now = aware(self._clock()) + self._offset  # eBay's clock: the window is in its time
        start, oldest = aware(since), now - MAX_AGE
        if start < oldest:
            self._log.warning("orders since %s asked; eBay keeps 90 days: reading from %s",
                              start.isoformat(), oldest.isoformat())
            start = oldest
        end = now - self._settle
        end = end.replace(microsecond=end.microsecond // 1000 * 1000)  # eBay has milliseconds
        return Position(start, end, 1, start)

    # -- listings -------------------------------------------------------------------------

    def read_listings(self) -> Iterator[ChannelListing]:
        # A channel's first sync reads its listings: say now, not at the first sold-out
        # listing, what a 0 will do on this account.
        self._zero_allowed()
        number, pages = 1, 1
        while number <= pages:
            reply = self._api.call("GetMyeBaySelling", {"ActiveList": {
                "Include": "true",
                "Pagination": {"EntriesPerPage": LISTINGS_PER_PAGE, "PageNumber": number},
            }}, LISTING_NODES)
            active = child(reply.body, "ActiveList")
            for item in as_list(child(active, "ItemArray", "Item")):
                for listing in _listings(item):
                    self._refs[listing.channel_sku] = listing.ref
                    yield listing
            total = child(active, "PaginationResult", "TotalNumberOfPages")
            pages = int(total) if isinstance(total, str) and total.isdigit() else number
            number += 1

    # -- pushing --------------------------------------------------------------------------

    def push_quantities(self, items: Sequence[PushItem]) -> list[PushResult]:
        results: dict[int, PushResult] = {}
        ready: list[tuple[int, PushItem, str]] = []
        for index, item in enumerate(items):
            outcome = self._prepare(item)
            if isinstance(outcome, PushResult):
                results[index] = outcome
            else:
                ready.append((index, item, outcome))
        for start in range(0, len(ready), MAX_ITEMS_PER_REVISE):
            results.update(self._revise(ready[start:start + MAX_ITEMS_PER_REVISE], retry=True))
        return [results[index] for index in range(len(items))]

    def _prepare(self, item: PushItem) -> str | PushResult:
        """The item's ref, or its result when it must not (or cannot) be sent."""
        sku = item.channel_sku
        if item.quantity < 0:
            return self._failed(item, f"negative quantity {item.quantity} for {sku!r} not sent")
        if item.quantity == 0 and not self._zero_allowed():
            return self._failed(item, f"{sku!r}: 0 not sent: the seller has no out-of-stock "
                                "control, so eBay would end the listing (zero_policy = skip)")
        ref = item.ref or self._lookup(sku)
        if ref is None:
            return self._failed(item, f"no active eBay listing with SKU {sku!r}")
        return ref

    def _revise(self, chunk: Sequence[tuple[int, PushItem, str]],
                retry: bool) -> dict[int, PushResult]:
        statuses = [_status(item, ref) for _, item, ref in chunk]
        reply = self._api.call("ReviseInventoryStatus", {"InventoryStatus": statuses},
                               ["InventoryStatus"], item_faults=True)
        landed = {(text_of(child(s, "ItemID")), text_of(child(s, "SKU")))
                  for s in as_list(reply.body.get("InventoryStatus"))}
        results: dict[int, PushResult] = {}
        again: list[tuple[int, PushItem, str]] = []
        for index, item, ref in chunk:
            item_id, variation = _split_ref(ref)
            if (item_id, variation) in landed or (item_id, item.channel_sku) in landed:
                results[index] = PushResult(item.channel_sku, ok=True, ref=ref)
                continue
            fault = _fault_for(reply.faults, item_id, item.channel_sku)
            if retry and fault is not None and fault.code == ITEM_NOT_FOUND:
                fresh = self._fresh_ref(item.channel_sku)
                if fresh is not None and fresh != ref:
                    again.append((index, item, fresh))
                    continue
            results[index] = self._item_failed(item, ref, fault)
        if again:
            results.update(self._revise(again, retry=False))
        return results

    def _item_failed(self, item: PushItem, ref: str, fault: Fault | None) -> PushResult:
        self._refs.pop(item.channel_sku, None)  # a remembered ref may be stale
        if fault is None:
            error: ChannelError = PermanentChannelError(
                f"{item.channel_sku!r}: eBay's answer does not mention item {ref}",
                channel=self.name)
        else:
            error = self._api.item_error(fault)
        return PushResult(item.channel_sku, ok=False, error=error, ref=ref)

    def _lookup(self, sku: str, refresh: bool = False) -> str | None:
        """The ref of the active listing with this SKU, remembered for later pushes."""
        if refresh or sku not in self._refs:
            self._refs.clear()
            for _ in self.read_listings():  # fills self._refs
                pass
        return self._refs.get(sku)

    def _fresh_ref(self, sku: str) -> str | None:
        """The SKU's ref read again; None when the read fails (the items that landed stand)."""
        try:
            return self._lookup(sku, refresh=True)
        except ChannelError as exc:
            self._log.warning("could not look %r up again after eBay's error 17: %s", sku, exc)
            return None

    def _zero_allowed(self) -> bool:
        if self._out_of_stock_control is None:
            reply = self._api.call("GetUserPreferences",
                                   {"ShowOutOfStockControlPreference": "true"})
            self._out_of_stock_control = reply.body.get("OutOfStockControlPreference") == "true"
        if self._out_of_stock_control:
            return True
        if not self._warned_zero:
            self._warned_zero = True
            if self._settings.zero_policy == "push":
                self._log.warning("the eBay seller has no out-of-stock control: a listing "
                                  "pushed to 0 ENDS and must be relisted (zero_policy = push)")
            else:
                self._log.warning("the eBay seller has no out-of-stock control: quantity 0 "
                                  "is never pushed (zero_policy = skip); sold-out listings "
                                  "keep their last quantity on eBay")
        return self._settings.zero_policy == "push"

    def _failed(self, item: PushItem, message: str) -> PushResult:
        error = PermanentChannelError(message, channel=self.name)
        return PushResult(item.channel_sku, ok=False, error=error, ref=item.ref)

    # -- shipments ------------------------------------------------------------------------

    def confirm_shipment(self, shipment: Shipment) -> ShipmentResult:
        """CompleteSale for the shipment's lines, after reading what eBay has (``_fulfil``)."""
        return self._fulfilment.confirm(shipment)

    def close(self) -> None:
        """Nothing to release: ebaysdk opens and closes a session per call."""


# -- mapping helpers (pure functions) -------------------------------------------------------


def _listings(item: Any) -> Iterator[ChannelListing]:
    item_id = text_of(child(item, "ItemID"))
    if not item_id:
        return
    variations = as_list(child(item, "Variations", "Variation"))
    for variation in variations:
        sku = text_of(child(variation, "SKU"))
        if sku:
            sold = _int(child(variation, "SellingStatus", "QuantitySold")) or 0
            total = _int(child(variation, "Quantity"))
            yield ChannelListing(sku, None if total is None else total - sold,
                                 ref=f"{item_id}/{sku}")
    sku = text_of(child(item, "SKU"))
    if variations or not sku:
        return
    quantity = _int(child(item, "QuantityAvailable"))
    if quantity is None:
        total = _int(child(item, "Quantity"))
        sold = _int(child(item, "SellingStatus", "QuantitySold")) or 0
        quantity = None if total is None else total - sold
    yield ChannelListing(sku, quantity, ref=item_id)


def _status(item: PushItem, ref: str) -> dict[str, Any]:
    item_id, variation = _split_ref(ref)
    status: dict[str, Any] = {"ItemID": item_id}
    if variation:
        status["SKU"] = variation
    status["Quantity"] = str(item.quantity)
    return status


def _fault_for(faults: Sequence[Fault], item_id: str, sku: str) -> Fault | None:
    """The error of one item: eBay names the ItemID (or SKU) in ErrorParameters."""
    errors = [f for f in faults if f.severity != "Warning"]
    for fault in errors:
        if item_id in fault.params or sku in fault.params:
            return fault
    unnamed = [f for f in errors if not f.params]
    return unnamed[0] if len(unnamed) == 1 else None


def _split_ref(ref: str) -> tuple[str, str]:
    item_id, _, sku = ref.partition("/")
    return item_id, sku


def _ebay_time(moment: datetime) -> str:
    return aware(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _int(value: Any) -> int | None:
    text = text_of(value)
    return int(text) if text.isdigit() else None


def _credentials(settings: EbaySettings) -> Credentials:
    def secret(value: SecretStr | None) -> str | None:
        return value.get_secret_value() if value is not None else None

    return Credentials(
        app_id=settings.app_id.get_secret_value(), dev_id=settings.dev_id.get_secret_value(),
        cert_id=settings.cert_id.get_secret_value(), token=secret(settings.token),
        oauth_token=secret(settings.oauth_token))


__all__ = ["EbayConnector", "EbaySettings", "impersonal", "order_snapshot", "order_state",
           "parse_order"]
