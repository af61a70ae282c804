"""Orders in the Amazon emulator: each order keeps every version it went through, so that the
order APIs can show the state as of `now - visibility_lag` (Amazon's ~2 minute delay), and a
page token can pin one snapshot for all its pages. Searches and the Orders 2026-01-01 and v0
shapes live here too.

Each order has a buyer's name, drawn from a small fixed list by the emulator's seed and the
order's id (never from the fault plan's random draws), or the buyer `POST /_sandbox/orders`
names (`{"email", "name"}`). The 2026-01-01 BUYER dataset shows the name as
`buyer.buyerName` once the order is UNSHIPPED or later, and for a merchant-fulfilled order a
buyer with an email as `buyer.buyerEmail`: never the real address, but Amazon's anonymised
relay address for it (`relay_email`: the same buyer, the same address), as Amazon does for an
app with the restricted roles they need (the emulator grants every app those roles).
Emulated buyers have no address or phone: the RECIPIENT dataset is never served."""

from __future__ import annotations

import hashlib
import random
import secrets
import string
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from channelsync.sandbox.emulator import Request
from connectors.amazon.emulator.shipping import Package, package_2026, shipment_row
from connectors.amazon.emulator.wire import (
    Marketplace,
    amazon_error,
    csv_param,
    int_param,
    iso,
    time_param,
)

__all__ = ["INCLUDED_DATA", "STATUS_2026", "Item", "Order", "Page", "Pager",
           "Search", "Version", "bound", "buyer_name", "earlier", "order_2026",
           "order_items_v0", "order_row", "order_v0", "relay_email", "search_2026",
           "search_v0"]

# v0 statuses (the emulator's own) -> the 2026-01-01 FulfillmentStatus enum
STATUS_2026 = {"PendingAvailability": "PENDING_AVAILABILITY", "Pending": "PENDING",
               "Unshipped": "UNSHIPPED", "PartiallyShipped": "PARTIALLY_SHIPPED",
               "Shipped": "SHIPPED", "InvoiceUnconfirmed": "SHIPPED", "Canceled": "CANCELLED",
               "Unfulfillable": "UNFULFILLABLE"}
UNPAID = frozenset({"PendingAvailability", "Pending"})  # no prices shown yet, as on Amazon
ALL_SHIPPED = frozenset({"Shipped", "InvoiceUnconfirmed"})
ITEMS_COUNTED = frozenset({"PartiallyShipped", "Canceled"})  # what left is read per item
INCLUDED_DATA = ("BUYER", "RECIPIENT", "PROCEEDS", "EXPENSE", "PROMOTION", "CANCELLATION",
                 "FULFILLMENT", "PACKAGES", "TAX", "PAYMENT", "FULFILLMENT_ORDERS")
# Statuses in which Amazon shows the buyer's name (BUYER dataset), v0 spelling.
BUYER_SHOWN = frozenset({"Unshipped", "PartiallyShipped", "Shipped", "InvoiceUnconfirmed"})
FIRST_NAMES = ("Ada", "Bruno", "Chiara", "Dmitri", "Elif", "Femi", "Greta", "Hiroshi", "Ines",
               "Jonas", "Kaja", "Luis")
LAST_NAMES = ("Achterberg", "Bianchi", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia",
              "Hansen", "Ivanova", "Jansen", "Kowalski", "Lindqvist")
MIN_BEFORE_AGE = timedelta(minutes=2)  # lastUpdatedBefore / createdBefore must be this old
TOKEN_LIFETIME = timedelta(hours=24)


@dataclass(frozen=True)
class Version:
    at: datetime  # Amazon's lastUpdatedTime (shown and filtered in whole seconds)
    status: str  # v0 spelling
    shipped: tuple[int, ...]  # units shipped, per item


@dataclass(frozen=True)
class Item:
    item_id: str
    sku: str
    asin: str
    title: str
    quantity: int
    unit_price: Decimal


@dataclass
class Order:
    order_id: str
    market: Marketplace
    afn: bool  # fulfilled by Amazon (FBA)
    created: datetime
    items: list[Item]
    versions: list[Version] = field(default_factory=list)
    buyer: str = ""  # the buyer's full name (buyer.buyerName)
    email: str = ""  # the buyer's real email, when the sandbox named one (never served)
    packages: list[Package] = field(default_factory=list)  # confirmShipment's, in order

    @property
    def current(self) -> Version:
        return self.versions[-1]

    def as_of(self, moment: datetime) -> Version | None:
        """The version the order APIs show at `moment` (None: not visible yet)."""
        return next((v for v in reversed(self.versions) if v.at <= moment), None)

    def change(self, at: datetime, status: str, shipped: tuple[int, ...] | None = None) -> None:
        moment = max(at, self.current.at)
        self.versions.append(Version(moment, status, self.current.shipped if shipped is None
                                     else shipped))


def buyer_name(seed: int | None, order_id: str) -> str:
    """An order's buyer's full name: the same for the same seed and order id."""
    draw = random.Random(f"amazon-buyer/{seed}/{order_id}")
    return f"{draw.choice(FIRST_NAMES)} {draw.choice(LAST_NAMES)}"


def relay_email(market: Marketplace, email: str) -> str:
    """Amazon's anonymised address for a buyer's email in a marketplace (buyer.buyerEmail):
    15 letters and digits fixed by the email, at ``marketplace.<the marketplace's domain>``."""
    digest = hashlib.sha256(f"amazon-relay/{email.strip().lower()}".encode()).digest()
    alphabet = string.ascii_lowercase + string.digits
    local = "".join(alphabet[b % len(alphabet)] for b in digest[:15])
    domain = market.name.lower() if market.name.lower().startswith("amazon.") else "amazon.com"
    return f"{local}@marketplace.{domain}"


def earlier(row: tuple[Order, Version]) -> tuple[Order, Version] | None:
    """The same order one version before the one shown (None: it had none), for a page that
    serves it stale."""
    order, version = row
    at = next((n for n, v in enumerate(order.versions) if v is version), 0)
    return (order, order.versions[at - 1]) if at > 0 else None


@dataclass(frozen=True)
class Search:
    """One search's filters; `by_update` says which time the bounds apply to."""

    by_update: bool
    after: datetime
    before: datetime | None
    statuses: frozenset[str] | None = None  # v0 spelling
    afn: bool | None = None  # None: both
    marketplaces: frozenset[str] | None = None

    def run(self, orders: list[Order], visible_at: datetime) -> list[tuple[Order, Version]]:
        rows = []
        for order in orders:
            version = order.as_of(visible_at)
            if version is None or not self._matches(order, version):
                continue
            rows.append((order, version))
        rows.sort(key=lambda r: (r[1].at if self.by_update else r[0].created, r[0].order_id))
        return rows

    def _matches(self, order: Order, version: Version) -> bool:
        moment = (version.at if self.by_update else order.created).replace(microsecond=0)
        return (self.after <= moment and (self.before is None or moment <= self.before)
                and (self.statuses is None or version.status in self.statuses)
                and (self.afn is None or order.afn == self.afn)
                and (self.marketplaces is None or order.market.marketplace_id
                     in self.marketplaces))


@dataclass(frozen=True)
class Page:
    signature: tuple[Any, ...]
    search: Search
    visible_at: datetime
    offset: int
    expires: datetime


class Pager:
    """Page tokens: each pins its query and snapshot; reusable (a retry must work) for 24 h."""

    def __init__(self) -> None:
        self._pages: dict[str, Page] = {}

    def issue(self, page: Page) -> str:
        if len(self._pages) > 1000:  # forget expired tokens now and then
            born = page.expires - TOKEN_LIFETIME
            self._pages = {t: p for t, p in self._pages.items() if p.expires > born}
        token = secrets.token_urlsafe(24)
        self._pages[token] = page
        return token

    def page(self, orders: list[Order], token: str | None, name: str,
             query: tuple[tuple[Any, ...], Search] | None, size: int, now: datetime,
             visible_at: datetime) -> tuple[list[tuple[Order, Version]], str | None, Page]:
        """One page: from `query` (signature, search) or, given `token`, from its snapshot."""
        if token is not None:
            page = self.redeem(token, query[0] if query else None, now, name)
        else:
            assert query is not None
            page = Page(query[0], query[1], visible_at, 0, now + TOKEN_LIFETIME)
        rows = page.search.run(orders, page.visible_at)
        end = page.offset + size
        more = self.issue(replace(page, offset=end)) if end < len(rows) else None
        return rows[page.offset:end], more, page

    def redeem(self, token: str, signature: tuple[Any, ...] | None, now: datetime,
               name: str) -> Page:
        page = self._pages.get(token)
        if page is None or page.expires < now:
            raise amazon_error(400, f"Invalid {name}: the token is unknown or expired.")
        if signature is not None and signature != page.signature:
            raise amazon_error(400, f"Invalid {name}: all parameters other than "
                               "maxResultsPerPage and includedData must be identical to those "
                               "of the request that returned the token.")
        return page


def bound(page: Page, v0: bool) -> dict[str, str]:
    """The response's upper bound: the one asked for, else the snapshot's time."""
    name = "LastUpdatedBefore" if page.search.by_update else "CreatedBefore"
    return {name if v0 else name[0].lower() + name[1:]: iso(page.search.before
                                                            or page.visible_at)}


def _check_window(after: datetime, before: datetime | None, names: tuple[str, str],
                  now: datetime) -> None:
    if before is None:
        return
    if before < after:
        raise amazon_error(400, f"{names[1]} must be equal to or after {names[0]}.")
    if before > now - MIN_BEFORE_AGE:
        raise amazon_error(400, f"{names[1]} must be at least two minutes before the time of "
                           "the request.")


def _enum_list(request: Request, name: str, allowed: tuple[str, ...] | frozenset[str]
               ) -> list[str] | None:
    values = csv_param(request, name)
    bad = [v for v in values or () if v not in allowed]
    if bad:
        raise amazon_error(400, f"Invalid {name}: {', '.join(bad)} (allowed: "
                           f"{', '.join(sorted(allowed))}).")
    return values


def search_2026(request: Request, now: datetime) -> tuple[Search, tuple[Any, ...]]:
    """searchOrders' filters and the signature a page token must match."""
    created_after = time_param(request, "createdAfter")
    created_before = time_param(request, "createdBefore")
    updated_after = time_param(request, "lastUpdatedAfter")
    updated_before = time_param(request, "lastUpdatedBefore")
    if (created_after is None) == (updated_after is None):
        raise amazon_error(400, "Exactly one of createdAfter and lastUpdatedAfter must be "
                                "provided.")
    if created_after is not None and updated_before is not None:
        raise amazon_error(400, "lastUpdatedBefore may not be provided with createdAfter.")
    if updated_after is not None and created_before is not None:
        raise amazon_error(400, "createdBefore may not be provided with lastUpdatedAfter.")
    by_update = updated_after is not None
    after = updated_after if updated_after is not None else created_after
    before = updated_before if by_update else created_before
    assert after is not None
    names = ("lastUpdatedAfter", "lastUpdatedBefore") if by_update else ("createdAfter",
                                                                         "createdBefore")
    _check_window(after, before, names, now)
    statuses = _enum_list(request, "fulfillmentStatuses",
                          tuple(dict.fromkeys(STATUS_2026.values())))
    fulfilled_by = _enum_list(request, "fulfilledBy", ("MERCHANT", "AMAZON"))
    markets = csv_param(request, "marketplaceIds")
    if markets is not None and len(markets) > 50:
        raise amazon_error(400, "Invalid marketplaceIds: at most 50 values.")
    _enum_list(request, "includedData", INCLUDED_DATA)
    int_param(request, "maxResultsPerPage", 100, 1, 100)
    wanted = None if statuses is None else frozenset(
        v0 for v0, new in STATUS_2026.items() if new in statuses)
    search = Search(by_update, after, before, wanted, _afn_filter(fulfilled_by, "AMAZON"),
                    None if markets is None else frozenset(markets))
    signature = tuple((name, tuple(sorted(csv_param(request, name) or ())))
                      for name in ("createdAfter", "createdBefore", "lastUpdatedAfter",
                                   "lastUpdatedBefore", "fulfillmentStatuses", "marketplaceIds",
                                   "fulfilledBy"))
    return search, signature


def search_v0(request: Request, now: datetime) -> Search:
    """getOrders' filters (Orders API v0)."""
    markets = csv_param(request, "MarketplaceIds")
    if not markets:
        raise amazon_error(400, "MarketplaceIds is required.")
    created_after = time_param(request, "CreatedAfter")
    updated_after = time_param(request, "LastUpdatedAfter")
    if (created_after is None) == (updated_after is None):
        raise amazon_error(400, "Exactly one of CreatedAfter and LastUpdatedAfter is required.")
    by_update = updated_after is not None
    before = time_param(request, "LastUpdatedBefore" if by_update else "CreatedBefore")
    other = time_param(request, "CreatedBefore" if by_update else "LastUpdatedBefore")
    if other is not None:
        raise amazon_error(400, "CreatedBefore goes with CreatedAfter, LastUpdatedBefore with "
                                "LastUpdatedAfter.")
    after = updated_after if updated_after is not None else created_after
    assert after is not None
    names = ("LastUpdatedAfter", "LastUpdatedBefore") if by_update else ("CreatedAfter",
                                                                         "CreatedBefore")
    _check_window(after, before, names, now)
    statuses = _enum_list(request, "OrderStatuses", tuple(STATUS_2026))
    channels = _enum_list(request, "FulfillmentChannels", ("MFN", "AFN"))
    return Search(by_update, after, before, None if statuses is None else frozenset(statuses),
                  _afn_filter(channels, "AFN"), frozenset(markets))


def _afn_filter(values: list[str] | None, amazon: str) -> bool | None:
    if not values or len(set(values)) > 1:
        return None
    return values[0] == amazon


def _money(amount: Decimal, market: Marketplace, v0: bool = False) -> dict[str, str]:
    text = f"{amount:.2f}"
    if v0:
        return {"CurrencyCode": market.currency, "Amount": text}
    return {"amount": text, "currencyCode": market.currency}


def order_2026(order: Order, version: Version, included: set[str]) -> dict[str, Any]:
    """An Order of the 2026-01-01 model; datasets appear only when `includedData` asks
    (PACKAGES: the packages confirmShipment added, of merchant-fulfilled orders)."""
    paid = version.status not in UNPAID
    out: dict[str, Any] = {
        "orderId": order.order_id, "createdTime": iso(order.created),
        "lastUpdatedTime": iso(version.at),
        "salesChannel": {"channelName": "AMAZON", "marketplaceId": order.market.marketplace_id,
                         "marketplaceName": order.market.name},
    }
    if "BUYER" in included and version.status in BUYER_SHOWN and (order.buyer or order.email):
        out["buyer"] = {"buyerName": order.buyer} if order.buyer else {}
        if order.email and not order.afn:  # Amazon: for merchant-fulfilled orders only
            out["buyer"]["buyerEmail"] = relay_email(order.market, order.email)
    if "PROCEEDS" in included and paid:
        total = sum((i.unit_price * i.quantity for i in order.items), Decimal(0))
        out["proceeds"] = {"grandTotal": _money(total, order.market)}
    if "FULFILLMENT" in included:
        out["fulfillment"] = {"fulfillmentStatus": STATUS_2026[version.status],
                              "fulfilledBy": "AMAZON" if order.afn else "MERCHANT",
                              "fulfillmentServiceLevel": "STANDARD"}
    out["orderItems"] = [_item_2026(order, version, n, included, paid)
                         for n in range(len(order.items))]
    shown = [p for p in order.packages if p.created <= version.at]  # as of that version
    if "PACKAGES" in included and shown and not order.afn:
        out["packages"] = [package_2026(p) for p in shown]
    return out


def _item_2026(order: Order, version: Version, n: int, included: set[str], paid: bool
               ) -> dict[str, Any]:
    item, shipped = order.items[n], version.shipped[n]
    product: dict[str, Any] = {"asin": item.asin, "title": item.title, "sellerSku": item.sku,
                               "condition": {"conditionType": "NEW", "conditionSubtype": "NEW"}}
    if paid:
        product["price"] = {"unitPrice": _money(item.unit_price, order.market)}
    out: dict[str, Any] = {"orderItemId": item.item_id, "quantityOrdered": item.quantity,
                           "product": product}
    if "PROCEEDS" in included and paid:
        out["proceeds"] = {"proceedsTotal": _money(item.unit_price * item.quantity, order.market)}
    canceled = version.status == "Canceled"
    if "CANCELLATION" in included and canceled:
        out["cancellation"] = {"cancellationExecution": {"cancelledBy": "BUYER",
                                                         "cancelReason": "Buyer canceled"}}
    if "FULFILLMENT" in included:
        out["fulfillment"] = {"quantityFulfilled": shipped,
                              "quantityUnfulfilled": 0 if canceled else item.quantity - shipped}
    return out


def order_v0(order: Order, version: Version) -> dict[str, Any]:
    """An Order of the v0 model."""
    shipped = sum(version.shipped)
    unshipped = 0 if version.status == "Canceled" else sum(
        i.quantity for i in order.items) - shipped
    out: dict[str, Any] = {
        "AmazonOrderId": order.order_id, "PurchaseDate": iso(order.created),
        "LastUpdateDate": iso(version.at), "OrderStatus": version.status,
        "FulfillmentChannel": "AFN" if order.afn else "MFN", "SalesChannel": order.market.name,
        "ShipServiceLevel": "Std US D2D Dom", "NumberOfItemsShipped": shipped,
        "NumberOfItemsUnshipped": unshipped, "PaymentMethod": "Other",
        "PaymentMethodDetails": ["Standard"], "MarketplaceId": order.market.marketplace_id,
        "ShipmentServiceLevelCategory": "Standard", "OrderType": "StandardOrder",
        "EarliestShipDate": iso(order.created + timedelta(days=1)),
        "LatestShipDate": iso(order.created + timedelta(days=2)),
        "IsBusinessOrder": False, "IsPrime": False, "IsPremiumOrder": False,
        "IsGlobalExpressEnabled": False, "IsReplacementOrder": False, "IsSoldByAB": False,
        "IsISPU": False, "IsAccessPointOrder": False,
    }
    if version.status not in UNPAID:
        total = sum((i.unit_price * i.quantity for i in order.items), Decimal(0))
        out["OrderTotal"] = _money(total, order.market, v0=True)
    return out


def order_items_v0(order: Order, version: Version) -> dict[str, Any]:
    """getOrderItems' payload. A canceled order's items show QuantityOrdered 0, as v0 does."""
    canceled = version.status == "Canceled"
    items = []
    for item, shipped in zip(order.items, version.shipped, strict=True):
        row: dict[str, Any] = {
            "ASIN": item.asin, "OrderItemId": item.item_id, "SellerSKU": item.sku,
            "Title": item.title, "QuantityOrdered": 0 if canceled else item.quantity,
            "QuantityShipped": shipped, "ProductInfo": {"NumberOfItems": "1"},
            "IsGift": "false", "ConditionId": "New", "ConditionSubtypeId": "New",
            "IsTransparency": False, "SerialNumberRequired": False}
        if version.status not in UNPAID:
            row["ItemPrice"] = _money(item.unit_price * item.quantity, order.market, v0=True)
        items.append(row)
    return {"AmazonOrderId": order.order_id, "OrderItems": items}


def order_row(order: Order) -> dict[str, Any]:
    """The order as the account holds it now (``GET /_sandbox/orders``), whatever the order
    APIs show yet. Amazon's own (FBA) orders say ``fulfilled_by: AMAZON``: they hold none of
    the seller's stock."""
    version = order.current
    lines = [_line_row(item, sent, version.status)
             for item, sent in zip(order.items, version.shipped, strict=True)]
    return {"order_id": order.order_id, "status": version.status,
            "fulfilled_by": "AMAZON" if order.afn else "MERCHANT", "lines": lines,
            "shipments": [shipment_row(p, {i.item_id: i.sku for i in order.items})
                          for p in order.packages],
            "buyer": {"name": order.buyer or None, "email": order.email or None, "id": None,
                      "relay_email": relay_email(order.market, order.email) if order.email
                      else None}}


def _line_row(item: Item, sent: int, status: str) -> dict[str, Any]:
    # The status decides, as it does for a client reading the order APIs: a shipped order
    # shipped everything; only a partial shipment or a cancellation counts per item.
    shipped = item.quantity if status in ALL_SHIPPED else sent if status in ITEMS_COUNTED else 0
    cancelled = item.quantity - shipped if status == "Canceled" else 0
    return {"sku": item.sku, "quantity": item.quantity, "shipped": shipped,
            "cancelled": cancelled, "restocked": 0}  # the emulator takes no returns
