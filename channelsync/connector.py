"""The connector contract: what crosses between the engine and a channel plugin.

A connector holds no state between calls that the engine relies on: cursors,
listings and outcomes live in the ledger. Everything here is a plain frozen
dataclass so it can be compared in tests and logged safely.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel

from channelsync.errors import ChannelError


@dataclass(frozen=True)
class OrderLineSnapshot:
    """The channel's current view of one order line, in the channel's SKU.

    Quantities are absolute (not deltas): the ledger turns the difference from the
    stored snapshot into movements. ``ignore`` marks lines the ledger must not hold
    stock for (drafts, stock the channel owns such as FBA).
    """

    order_id: str
    line_id: str
    channel_sku: str
    ordered: int
    status: str
    changed_at: datetime
    shipped: int = 0
    cancelled: int = 0
    restocked: int = 0
    ignore: bool = False


# What an order's channel status means, for the order book. A connector says which of
# these the channel's status is; "picked" and "packed" are the seller's own steps, set
# by channelsync, and "partly shipped" follows from the lines.
CHANNEL_STAGES = ("received", "paid", "shipped", "delivered", "cancelled", "returned")


@dataclass(frozen=True)
class OrderSnapshot:
    """The channel's current view of one order as a whole, for the order book.

    Optional: a connector that gives none still syncs stock, and the book knows those
    orders from their lines. ``buyer`` is a display name only, never an address, an
    email or a phone number. ``total`` is the channel's decimal string, in ``currency``.

    ``buyer_email`` and ``buyer_id`` (the channel's own id of the buyer) only recognise the
    same buyer again: the book keeps a salted hash of them, never the values, and they are
    left out of ``repr``. ``shipped_at`` and ``delivered_at`` are the channel's times for
    those, where its order data carry them.
    """

    order_id: str
    status: str  # the channel's own word for it
    stage: str  # one of CHANNEL_STAGES
    changed_at: datetime
    placed_at: datetime | None = None
    paid_at: datetime | None = None
    buyer: str = ""
    total: str = ""
    currency: str = ""
    buyer_email: str = field(default="", repr=False)
    buyer_id: str = field(default="", repr=False)
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.stage not in CHANNEL_STAGES:
            raise ValueError(f"order stage {self.stage!r} is not one of {CHANNEL_STAGES}")


@dataclass(frozen=True)
class BadRecord:
    """A record the connector could not turn into a snapshot; kept so nothing is lost."""

    reason: str
    key: str
    raw: Any


@dataclass(frozen=True)
class OrderPage:
    """One page of changed order lines.

    ``next_page`` is the token for the following page (None on the last one).
    ``resume_at`` is a time the cursor may safely move to once this page is applied
    (None: do not move it for this page).
    """

    lines: Sequence[OrderLineSnapshot]
    next_page: str | None = None
    resume_at: datetime | None = None
    bad_records: Sequence[BadRecord] = ()
    # The channel's own clock when it answered (an HTTP Date header, eBay's Timestamp):
    # the ledger corrects the channel's times by how far it is off ours.
    channel_now: datetime | None = None
    # The orders these lines belong to, as wholes (status, times, buyer, total).
    orders: Sequence[OrderSnapshot] = ()


@dataclass(frozen=True)
class ChannelListing:
    """A listing as the channel has it now. ``ref`` is the channel's own address for it."""

    channel_sku: str
    quantity: int | None
    ref: str = ""
    managed: bool = True  # False: the channel owns this stock (e.g. Amazon FBA); never write it


@dataclass(frozen=True)
class ListingProblem:
    """Something about a listing the seller must fix on the channel (two variants with one
    SKU, a variant the channel sells without limit, ...). ``read_listings`` may yield these
    among its listings; each is an open ``listing_problem`` conflict (so an alert) until a
    read no longer reports it."""

    channel_sku: str
    reason: str
    detail: Any = None


@dataclass(frozen=True)
class PushItem:
    channel_sku: str
    quantity: int
    ref: str = ""
    expected: int | None = None  # for compare-and-set channels: what we believe the channel shows
    # Names this logical write, the same on every retry of it (an idempotency key's input);
    # empty when the caller has none.
    key: str = ""


@dataclass(frozen=True)
class PushResult:
    channel_sku: str
    ok: bool
    error: ChannelError | None = None
    ref: str = ""  # the channel's address, when the connector had to look it up
    # Compare-and-set refused the write: the channel did not show ``expected``. Nothing was
    # written; ``observed`` is what the channel showed instead, when the connector knows.
    stale: bool = False
    observed: int | None = None
    # The channel took the write for processing and reports its outcome later (an Amazon
    # feed): ``pending`` names it, and the connector's ``push_outcomes`` answers for it.
    pending: str = ""


@dataclass(frozen=True)
class Capabilities:
    push_batch_size: int = 50
    requests_per_second: float = 5.0
    burst: int = 5
    compare_and_set: bool = False
    webhooks: bool = False
    overlap: timedelta = field(default=timedelta(minutes=2))
    # How late the channel may report an order change (Amazon about two minutes; eBay
    # order_lag): an increase waits for a pull begun this long after the last push, so a
    # sale the channel had not reported yet is not written over (an echo).
    order_lag: timedelta = field(default=timedelta(0))
    daily_revisions: int | None = None  # quantity changes allowed per listing per day (eBay 250)
    revision_day_timezone: str = "UTC"  # where the channel's day starts
    # May the seller write to the channel's buyers outside the channel (a follow-up by
    # email)? Amazon's policy forbids it: its buyer-seller messaging only.
    buyer_contact: bool = True


@runtime_checkable
class Connector(Protocol):
    """What every channel plugin implements. See the Connectors section of README.md."""

    @property
    def capabilities(self) -> Capabilities:
        """A class attribute usually; an instance's own where its settings change it."""
        ...

    def pull_orders(self, since: datetime, page: str | None) -> OrderPage: ...

    def push_quantities(self, items: Sequence[PushItem]) -> list[PushResult]: ...

    def read_listings(self) -> Iterator[ChannelListing | ListingProblem]: ...

    def close(self) -> None: ...


@runtime_checkable
class PendingOutcomes(Protocol):
    """What a connector whose pushes may come back ``pending`` also implements."""

    def push_outcomes(
        self, pending: str, items: Sequence[PushItem], submitted_at: datetime
    ) -> list[PushResult] | None:
        """The outcome of the pending write ``pending`` for these items (as sent, in the
        order sent), or None while the channel is still processing it."""
        ...


@dataclass(frozen=True)
class ShipmentLine:
    line_id: str
    channel_sku: str
    quantity: int


@dataclass(frozen=True)
class Shipment:
    """A shipment to confirm on the order's channel: the units it carries, the carrier and
    the tracking number. ``key`` is the same on every try of one shipment: a connector uses
    it (or the tracking number) to find a shipment an earlier try created whose answer was
    lost, so a retry never confirms it twice."""

    order_id: str
    lines: Sequence[ShipmentLine]
    carrier: str
    tracking: str
    key: str
    shipped_at: datetime
    completes_order: bool = True  # nothing of the order is left to ship after this one


@dataclass(frozen=True)
class ShipmentResult:
    ok: bool
    error: ChannelError | None = None
    ref: str = ""  # the channel's id for the fulfilment, when it gives one
    already: bool = False  # an earlier try had created it (its answer was lost)


@runtime_checkable
class Fulfils(Protocol):
    """What a connector that confirms shipments on its channel also implements. Raise
    RetriableChannelError for what a retry may fix (429, 5xx, a timeout); answer
    ``ok=False`` with a PermanentChannelError for what it will not (an unknown order, a
    cancelled one, a tracking number the channel refuses)."""

    def confirm_shipment(self, shipment: Shipment) -> ShipmentResult: ...


class ConnectorFactory(Protocol):
    """A connector class: declares its settings model and builds from validated settings."""

    Settings: ClassVar[type[BaseModel]]
    capabilities: ClassVar[Capabilities]

    def __call__(self, name: str, settings: Any) -> Connector: ...
