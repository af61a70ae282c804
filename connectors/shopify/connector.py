"""Shopify (Admin GraphQL API) connector.

Orders come from ``orders(sortKey: UPDATED_AT, query: "updated_at:>='...'")`` with their line
items and refunds nested (an order with more is read again on its own) and their header (times,
the buyer's names, email and customer id, the total, the oldest fulfillment's shipping and
delivery times: ``_orders``) for the order book; quantities go out
through ``inventorySetQuantities`` on ``available`` at one location (``_locations`` chooses
it), compare-and-set (``changeFromQuantity``) and idempotent (``@idempotent(key:)``); listings
are the product variants with a SKU. A listing's ``ref`` is its inventory item gid.
Shipments are confirmed with ``fulfillmentCreate`` (``_fulfilment``).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from channelsync.connector import (
    BadRecord,
    Capabilities,
    ChannelListing,
    ListingProblem,
    OrderLineSnapshot,
    OrderPage,
    OrderSnapshot,
    PushItem,
    PushResult,
    Shipment,
    ShipmentResult,
)
from channelsync.errors import ConfigError, PermanentChannelError
from connectors._time import format_utc, parse_utc
from connectors.shopify import _queries as q
from connectors.shopify._fulfilment import Fulfiller
from connectors.shopify._graphql import Clock, GraphQLClient, Sleep
from connectors.shopify._locations import LocationError, choose, describe
from connectors.shopify._orders import (
    OrderLines,
    ShapeError,
    gid_number,
    impersonal,
    next_cursor,
    nodes,
    order_lines,
)
from connectors.shopify._pushing import PUSH_LIMIT, Pusher, available

API_VERSION = "2026-10"
# The first version with changeFromQuantity and @idempotent, which every write sends (optional
# in 2026-01, mandatory from 2026-04): an older one would refuse every quantity we push.
OLDEST_API_VERSION = "2026-01"
# Shopify meters query cost, not requests; this only keeps bursts polite.
REQUESTS_PER_SECOND = 4.0
BURST = 8
LOOPBACK_NAMES = ("localhost",)
# Fields an answer may come back without (null, with an ACCESS_DENIED error) and still count:
# Order.customer needs the read_customers scope, and a public app Shopify's approval for
# protected customer data (names and Order.email are level 2), neither of which stock sync
# needs; without them the orders still sync, only without the buyer's name, id and email
# (so the book cannot tell a returning buyer).
OPTIONAL_ACCESS = frozenset({"customer", "firstName", "lastName", "email"})
ORDERS_WITHOUT_READ_ALL = timedelta(days=60)  # what an app without read_all_orders sees


class ShopifySettings(BaseModel):
    """The keys a ``type = "shopify"`` channel block takes besides the common ones."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    access_token: SecretStr = Field(min_length=1)
    location: str | None = Field(default=None, min_length=1)  # a name, gid or number
    api_version: str = Field(default=API_VERSION, pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    shop: str = Field(default="", pattern=r"^([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.?)*$")
    timeout: float = Field(default=30, gt=0)
    include_test_orders: bool = False
    order_page_size: int = Field(default=q.ORDER_PAGE_SIZE, ge=1, le=q.MAX_FIRST)
    line_page_size: int = Field(default=q.LINE_PAGE_SIZE, ge=1, le=q.MAX_FIRST)
    notify_customer: bool = True  # Shopify emails the buyer each fulfillment we create

    @field_validator("api_version")
    @classmethod
    def _version_has_compare_and_set(cls, version: str) -> str:
        if version < OLDEST_API_VERSION:  # YYYY-MM, so text order is time order
            raise PydanticCustomError("api_version_too_old", (
                "{version} is too old: quantities are written with changeFromQuantity and an "
                "@idempotent key, which Shopify's Admin API has from {oldest} (mandatory "
                "from 2026-04); use {oldest} or later (the default is {default})"),
                {"version": version, "oldest": OLDEST_API_VERSION, "default": API_VERSION})
        return version

    @model_validator(mode="after")
    def _page_fits_the_cost_limit(self) -> Self:
        cost = q.order_page_cost(self.order_page_size, self.line_page_size)
        if cost > q.MAX_QUERY_COST:
            raise ValueError(
                f"order_page_size {self.order_page_size} with line_page_size "
                f"{self.line_page_size} makes a query of cost {cost}; Shopify refuses more than "
                f"{q.MAX_QUERY_COST}")
        return self


class ShopifyConnector:
    """Speaks Shopify's Admin GraphQL API for one shop and one of its locations."""

    Settings: ClassVar[type[ShopifySettings]] = ShopifySettings
    capabilities: ClassVar[Capabilities] = Capabilities(
        push_batch_size=PUSH_LIMIT,
        requests_per_second=REQUESTS_PER_SECOND,
        burst=BURST,
        compare_and_set=True,
        webhooks=True,
        overlap=timedelta(minutes=2),
    )
    emulator: ClassVar[str] = "connectors.shopify.emulator:ShopifyEmulator"

    def __init__(
        self,
        name: str,
        settings: ShopifySettings,
        endpoint: str = "",
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        self.name = name
        self.endpoint = _store_url(name, endpoint, settings.shop)
        self._settings = settings
        self._log = logging.getLogger(f"{__name__}.{name}")
        self._gql = GraphQLClient(
            name, f"{self.endpoint}/admin/api/{settings.api_version}", settings.access_token,
            timeout=settings.timeout, transport=transport, sleep=sleep, clock=clock)
        self._orders_query = q.orders_query(settings.order_page_size, settings.line_page_size)
        self._location: str | None = None  # the location gid, resolved on first use
        self._warned_old = False
        self._pusher = Pusher(name, self._gql, self._location_id)
        self._fulfiller = Fulfiller(name, self._gql, settings.notify_customer)

    def __repr__(self) -> str:
        return f"ShopifyConnector(name={self.name!r}, endpoint={self.endpoint!r})"

    # -- orders ---------------------------------------------------------------------------

    def pull_orders(self, since: datetime, page: str | None) -> OrderPage:
        if page is None and not self._warned_old and \
                datetime.now(UTC) - since > ORDERS_WITHOUT_READ_ALL:
            self._warned_old = True
            self._log.warning(
                "asking for orders since %s, but without the read_all_orders scope Shopify "
                "shows only the last %d days: older open orders hold no stock", since.date(),
                ORDERS_WITHOUT_READ_ALL.days)
        search = f"updated_at:>='{format_utc(since, '%Y-%m-%dT%H:%M:%SZ')}'"
        data = self._gql.run(self._orders_query, {"query": search, "after": page},
                             denied_ok=OPTIONAL_ACCESS)
        try:
            orders = nodes(data.get("orders"), "orders")
            following = next_cursor(data["orders"], "orders")
        except ShapeError as exc:
            raise self._gql.malformed(f"orders: {exc}", str(data)) from exc
        lines: list[OrderLineSnapshot] = []
        bad: list[BadRecord] = []
        headers: list[OrderSnapshot] = []
        stamps: list[datetime] = []
        no_sku = 0
        for raw in orders:
            stamp = parse_utc(raw.get("updatedAt"))
            if stamp is not None:
                stamps.append(stamp)
            mapped = self._order(raw)
            if mapped is not None:
                lines += mapped.lines
                bad += mapped.bad
                no_sku += mapped.no_sku
                if mapped.order is not None:
                    headers.append(mapped.order)
        self._log.debug("orders since %s: %d orders, %d lines, %d bad, %d lines without sku",
                        search, len(orders), len(lines), len(bad), no_sku)
        # Sorted by update time, every order not read yet changed at or after the newest
        # one on this page (one changing meanwhile moves to the end), so the cursor may move
        # there: the engine pulls from the cursor minus the overlap.
        resume_at = max([*stamps, since]) if stamps else None
        return OrderPage(lines, following, resume_at, bad, channel_now=self._gql.server_time,
                         orders=headers)

    def _order(self, raw: dict[str, Any]) -> OrderLines | None:
        """The order's lines (reading its extra pages first); None if it changed meanwhile."""
        key = gid_number(raw.get("id"), "Order") or "?"
        try:
            complete = self._complete(raw)
            if complete is None:
                self._log.debug("order %s changed while its pages were read: later", key)
                return None
            order, refund_lines = complete
            return order_lines(order, refund_lines, self._settings.include_test_orders)
        except ShapeError as exc:
            return OrderLines([], [BadRecord(f"unreadable order: {exc}", key,
                                             impersonal(raw))])

    def _complete(
        self, raw: dict[str, Any]
    ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        order = dict(raw)
        line_items = nodes(raw.get("lineItems"), "lineItems")
        after = next_cursor(raw["lineItems"], "lineItems")
        while after is not None:
            data = self._gql.run(q.ORDER_LINES, {"id": raw["id"], "after": after})
            again = data.get("order")
            if not isinstance(again, dict) or again.get("updatedAt") != raw.get("updatedAt"):
                return None  # it moved behind this page in the sort order: read it there
            line_items += nodes(again.get("lineItems"), "lineItems")
            after = next_cursor(again["lineItems"], "lineItems")
        order["lineItems"] = {"nodes": line_items}
        refund_lines = self._refund_lines(raw)
        return None if refund_lines is None else (order, refund_lines)

    def _refund_lines(self, raw: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Every refund line item of the order; None if the order changed meanwhile."""
        refunds = nodes(raw.get("refunds"), "refunds")
        read: dict[str, tuple[list[dict[str, Any]], str | None]] = {}  # lines, next cursor
        for refund in refunds:
            connection = refund.get("refundLineItems")
            if not isinstance(refund.get("id"), str):
                raise ShapeError("refund without an id")
            read[refund["id"]] = (nodes(connection, "refundLineItems"),
                                  next_cursor(connection, "refundLineItems"))
        if len(refunds) < q.NESTED_REFUNDS and all(c is None for _, c in read.values()):
            return [item for items, _ in read.values() for item in items]
        data = self._gql.run(q.ORDER_REFUNDS, {"id": raw["id"]})
        again = data.get("order")
        if not isinstance(again, dict) or again.get("updatedAt") != raw.get("updatedAt"):
            return None
        found: list[dict[str, Any]] = []
        for refund in nodes(again.get("refunds"), "refunds"):
            if not isinstance(refund.get("id"), str):
                raise ShapeError("refund without an id")
            items, after = read.get(refund["id"], ([], ""))
            found += items if after is None else items + self._one_refund(refund["id"], after)
        return found

    def _one_refund(self, refund_id: str, after: str) -> list[dict[str, Any]]:
        """A refund's line items from ``after`` on ("": from the start). Refunds never change."""
        items: list[dict[str, Any]] = []
        cursor: str | None = after or None
        while True:
            data = self._gql.run(q.REFUND_LINES, {"ids": [refund_id], "after": cursor})
            found = nodes(data.get("nodes"), "nodes")
            if len(found) != 1:
                raise ShapeError(f"refund {refund_id} not found")
            items += nodes(found[0].get("refundLineItems"), "refundLineItems")
            cursor = next_cursor(found[0]["refundLineItems"], "refundLineItems")
            if cursor is None:
                return items

    # -- listings -------------------------------------------------------------------------

    def read_listings(self) -> Iterator[ChannelListing | ListingProblem]:
        """Every variant with a SKU; problems a seller must fix (a SKU on several variants,
        a variant without inventory tracking) come as ``ListingProblem``s."""
        location = self._location_id()
        seen: dict[str, list[str]] = {}  # SKU -> its variants' ids
        for variant in self._gql.paged(q.LISTINGS, {"location": location}, "productVariants"):
            yield from self._listing(variant, seen)
        for sku, others in sorted(seen.items()):
            if len(others) > 1:
                yield ListingProblem(sku, (
                    f"{len(others)} variants have this SKU; only the first ({others[0]}) is "
                    "synced, the others sell without limit: give each its own SKU"),
                    {"variants": others})

    def _listing(
        self, variant: dict[str, Any], seen: dict[str, list[str]]
    ) -> Iterator[ChannelListing | ListingProblem]:
        sku, item = variant.get("sku"), variant.get("inventoryItem")
        if not isinstance(sku, str) or not sku.strip() or not isinstance(item, dict):
            return
        ref = item.get("id")
        if not isinstance(ref, str) or gid_number(ref, "InventoryItem") is None:
            return
        seen.setdefault(sku, []).append(str(variant.get("id")))
        if len(seen[sku]) > 1:
            return  # the first variant with this SKU is the listing; reported at the end
        self._pusher.remember(sku, ref)
        if item.get("tracked") is False:
            yield ListingProblem(sku, "inventory tracking is off: Shopify sells it without "
                                      "limit until tracking is turned on", {"item": ref})
        yield ChannelListing(sku, available(item.get("inventoryLevel")), ref=ref)

    # -- pushing --------------------------------------------------------------------------

    def push_quantities(self, items: Sequence[PushItem]) -> list[PushResult]:
        return self._pusher.push(items)

    # -- shipments ------------------------------------------------------------------------

    def confirm_shipment(self, shipment: Shipment) -> ShipmentResult:
        return self._fulfiller.confirm(shipment)

    # -- plumbing -------------------------------------------------------------------------

    def _location_id(self) -> str:
        if self._location is None:
            self._location = self._resolve_location()
        return self._location

    def _resolve_location(self) -> str:
        try:
            match, why = choose(list(self._locations()), self._settings.location)
        except LocationError as exc:
            raise PermanentChannelError(str(exc), channel=self.name) from exc
        self._log.info("stock is read and written at location %s: %s", describe(match), why)
        return str(match["id"])

    def _locations(self) -> Iterator[dict[str, Any]]:
        return self._gql.paged(q.LOCATIONS, {}, "locations")

    def close(self) -> None:
        self._gql.close()


# -- helpers ---------------------------------------------------------------------------------


def _store_url(name: str, endpoint: str, shop: str) -> str:
    where = f"channel {name!r}: endpoint"
    if not endpoint:
        if not shop:
            raise ConfigError([f"channel {name!r}: set shop (e.g. example.myshopify.com) or "
                               "endpoint (the store's URL)"])
        endpoint, where = f"https://{shop}", f"channel {name!r}: shop"
    try:
        url = httpx.URL(endpoint)
    except httpx.InvalidURL as exc:
        raise ConfigError([f"{where}: not a valid URL"]) from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError([f"{where}: must be an https:// URL with a host"])
    if url.userinfo:
        raise ConfigError([f"{where}: must not carry credentials; use access_token"])
    if url.query or url.fragment:
        raise ConfigError([f"{where}: must not have a query or fragment"])
    if url.scheme == "http" and not _is_loopback(url.host):
        raise ConfigError([f"{where}: plain http:// would send the access token in clear "
                           "text; use https:// (http is accepted on loopback only)"])
    return endpoint.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


__all__ = ["ShopifyConnector", "ShopifySettings"]
