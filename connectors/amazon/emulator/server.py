"""An Amazon seller account on loopback: enough of the Selling Partner API, Login with Amazon
and the feed document storage for the real python-amazon-sp-api client, unchanged.

Served: `POST /auth/o2/token`; Orders 2026-01-01 searchOrders and getOrder; Orders v0
getOrders, getOrderItems and confirmShipment (see shipping.py); Listings Items 2021-08-01
get, patch and search; Feeds 2021-06-30 createFeedDocument, createFeed, getFeed, cancelFeed,
getFeedDocument, with presigned upload and download URLs under `/_storage/`. Shapes follow
Amazon's models in `tests/reference/amazon-sp-api/` (a test validates them). Beyond the
shared control API:
`POST /_sandbox/orders/{id}/status {"status": "PartiallyShipped", "shipped": {"MUG": 1}}`,
`"buyer": {"email", "name"}` in `POST /_sandbox/orders`, and `GET /_sandbox/feeds` (every
feed with its uploaded document). No `/deliver`: the 2026-01-01 model carries no delivery
time (a package's `packageStatus` says DELIVERED, but not when). Behaviour copied from
Amazon (see the Amazon section of channels.md in the shared notes):
- every SP-API call needs an `x-amz-access-token` from the token endpoint (403 otherwise);
- a sale takes the units off the listing at once, while the order APIs show each change only
  `visibility_lag` seconds later (orders keep their versions, so the old state shows until
  then); `lastUpdatedBefore` must be two minutes old; a page token pins its query and
  snapshot: every other parameter must be identical (maxResultsPerPage, includedData aside);
- searchOrders shows order-level `fulfillment` (the status) and item quantities shipped only
  with `includedData=FULFILLMENT`, as Amazon's datasets do; `proceeds` only with PROCEEDS and
  `buyer.buyerName` and, for a buyer the sandbox gave an email, `buyer.buyerEmail` (Amazon's
  relay address, never the real one) only with BUYER (from UNSHIPPED on; no RECIPIENT: the
  emulated buyers have no address); no prices while an order is PENDING. A listing's price
  is its `"price"`, else one fixed by its SKU; an item keeps the price it was bought at;
- orders have no shipping costs, taxes or promotions: an order's `proceeds.grandTotal` is
  the sum of its items' unit price x quantity;
- a rejected patch is HTTP 200 with `status: INVALID`; an FBA (AFN) offer's quantity is
  Amazon's and a write to it is refused; `merge` keeps sibling fields such as
  `lead_time_to_ship_max_days`, `replace` drops them;
- feeds are processed in the background after `feed_delay` seconds into a gzip report;
- token buckets per operation with Amazon's rates (`x-amzn-RateLimit-Limit` on every answer,
  stating the rate this emulator applies: with rate limits off, `UNLIMITED_RATE`, so that a
  client that follows the header, as the connector does, does not hold back for nothing);
  injected 5xx are sometimes bodiless, which the library turns into an empty result.
Injected page faults (duplicates, shuffles, stale versions) hit the pages of searchOrders
and getOrders; `GET /_sandbox/orders` lists every order as it is now, lag or not, with the
packages confirmShipment added as its `shipments`. patchListingsItem, createFeed and
confirmShipment, the writes, lose their answers.
LWA and `/_storage/` are exempt from injected faults and rate limits. Issued access tokens
survive `/_sandbox/reset` (the client library caches them for an hour).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import unquote

from channelsync.sandbox.emulator import (
    BadRequest,
    Emulator,
    Raw,
    Request,
    Response,
    SandboxError,
    route,
    sandbox_buyer,
    sku_quantity,
)
from connectors.amazon.emulator.auth import Lwa
from connectors.amazon.emulator.feedstore import FeedStore
from connectors.amazon.emulator.listings import (
    LISTING_DATA,
    ListingPager,
    listing_item,
    patch_request_errors,
    search_listings,
)
from connectors.amazon.emulator.orders import (
    Order,
    Page,
    Pager,
    Search,
    Version,
    bound,
    earlier,
    order_2026,
    order_items_v0,
    order_row,
    order_v0,
    search_2026,
    search_v0,
)
from connectors.amazon.emulator.state import SellerAccount
from connectors.amazon.emulator.wire import (
    DEFAULT_MARKETPLACE,
    INTERNAL,
    QUOTA_EXCEEDED,
    RATES,
    UNAUTHORIZED,
    Bucket,
    amazon_error,
    csv_param,
    error_body,
    int_param,
    json_body,
    marketplace,
)

__all__ = ["AmazonEmulator"]

logger = logging.getLogger(__name__)

ORDERS = "/orders/2026-01-01/orders"
ORDERS_V0 = "/orders/v0/orders"
ITEMS = "/listings/2021-08-01/items/(?P<seller>[^/]+)"
FEEDS = "/feeds/2021-06-30"
_STORAGE = re.compile(r"/_storage/(?P<key>[^/]+)")
_STATUS_ROUTE = re.compile(r"/_sandbox/orders/(?P<id>[^/]+)/status")


def _secret(value: Any) -> str | None:
    """A setting's plain value: SecretStr or str; empty counts as not configured."""
    if value is None:
        return None
    text = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    return text or None


# What the header states when rate limits are off: more calls a second than a client makes.
UNLIMITED_RATE = 1000.0


class AmazonEmulator(Emulator):
    """Selling Partner API (+ LWA) on loopback plus the shared /_sandbox/ control API."""

    channel_type = "amazon"
    # A feed is applied later, but applied: its lost answer is a lost write as well. A
    # VALIDATION_PREVIEW patch goes by the same name, so it can lose its answer too (having
    # changed nothing: a plain 5xx); channelsync sends none.
    write_operations: ClassVar[frozenset[str]] = frozenset({"patchListingsItem", "createFeed",
                                                            "confirmShipment"})

    def __init__(self, *, refresh_token: str | None = None, client_id: str | None = None,
                 client_secret: str | None = None, seller_id: str | None = None,
                 marketplace_id: str = DEFAULT_MARKETPLACE, visibility_lag: float = 0.0,
                 rate_limits: bool | float = True, feed_delay: float = 0.2,
                 seed: int | None = None, clock: Callable[[], datetime] | None = None) -> None:
        super().__init__(seed=seed, clock=clock)
        self.lwa = Lwa(refresh_token, client_id, client_secret)
        self.seller_id = seller_id  # None: any seller id in paths and feeds
        self.market = marketplace(marketplace_id)
        self.visibility_lag = timedelta(seconds=visibility_lag)
        # True: Amazon's rates; False or 0: no throttling; a number scales every rate
        self.rate_scale = float(rate_limits) if not isinstance(rate_limits, bool) else (
            1.0 if rate_limits else 0.0)
        self.feed_delay = timedelta(seconds=feed_delay)
        self._id_seed = seed
        self.reset()

    @classmethod
    def for_settings(cls, settings: Any) -> AmazonEmulator:
        """An emulator that accepts exactly a configured channel's credentials."""
        market = getattr(settings, "marketplace", None)
        market_id = getattr(market, "marketplace_id", None) or (str(market) if market else "")
        return cls(refresh_token=_secret(getattr(settings, "refresh_token", None)),
                   client_id=_secret(getattr(settings, "lwa_app_id", None)),
                   client_secret=_secret(getattr(settings, "lwa_client_secret", None)),
                   seller_id=_secret(getattr(settings, "seller_id", None)),
                   marketplace_id=marketplace(market_id).marketplace_id if market_id
                   else DEFAULT_MARKETPLACE)

    def reset(self) -> None:
        with self.lock:
            old: FeedStore | None = getattr(self, "feeds", None)
            if old is not None:
                old.close()
            self.account = SellerAccount(self.market, self._id_seed)
            self.feeds = FeedStore(self.account, self.lock, self._now, self.seller_id,
                                   self.feed_delay, self.count_items_updated)
            self._order_pages, self._listing_pages = Pager(), ListingPager()
            self._buckets: dict[str, Bucket] = {}
            self._extra_requests: Counter[str] = Counter()  # LWA and storage
            self._rate_throttled = 0

    def stop(self) -> None:
        self.feeds.close()
        super().stop()

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        with self.lock:
            out["requests"].update(self._extra_requests)
            out["throttled"] += self._rate_throttled
        return out

    def _now(self) -> datetime:
        now = self.clock()
        return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)

    # -- dispatch: LWA, storage and extra sandbox routes; headers on every SP-API answer ----

    def handle(self, request: Request) -> Response:
        self.feeds.run_due()
        try:
            special = self._special(request)
        except SandboxError as err:
            return err.status, {"error": err.message, "status": err.status}, {}
        except Exception as exc:  # as the base class: a bug must not take the server down
            logger.exception("emulator failed on %s %s", request.method, request.path)
            return 500, {"error": f"emulator error: {exc!r}"}, {}
        if special is not None:
            return special
        status, body, headers = super().handle(request)
        operation = self._operation(request)
        if operation in RATES:
            headers = {"x-amzn-RateLimit-Limit": f"{self._rate(operation):g}",
                       "x-amzn-RequestId": str(uuid.uuid4()), **headers}
        return status, body, headers

    def _special(self, request: Request) -> Response | None:
        storage = _STORAGE.fullmatch(request.path)
        status_route = _STATUS_ROUTE.fullmatch(request.path)
        with self.lock:
            if (request.method, request.path) == ("POST", "/auth/o2/token"):
                self._extra_requests["lwaToken"] += 1
                return self.lwa.token(request, self._now())
            if storage and request.method in ("PUT", "GET"):
                self._extra_requests[f"storage{request.method.title()}"] += 1
                return self.feeds.storage(request, unquote(storage["key"]))
            if status_route and request.method == "POST":
                return 200, self._sandbox_status(status_route["id"], request), {}
            if (request.method, request.path.rstrip("/")) == ("GET", "/_sandbox/feeds"):
                return 200, {"feeds": self.feeds.rows()}, {}
        return None

    def _operation(self, request: Request) -> str | None:
        return next((r.operation for r in self.routes if r.method == request.method
                     and r.pattern.fullmatch(request.path)), None)

    def _rate(self, operation: str) -> float:
        """The rate this emulator applies to an operation, as its header states it."""
        rate = RATES[operation][0]
        return rate * self.rate_scale if self.rate_scale > 0 else UNLIMITED_RATE

    def authenticate(self, request: Request) -> Response | None:
        refusal = self.lwa.refusal(request.headers.get("x-amz-access-token") or "", self._now())
        if refusal is not None:
            return 403, {"errors": [{**UNAUTHORIZED, "details": refusal}]}, {}
        operation = self._operation(request)
        if self.rate_scale <= 0 or operation not in RATES:
            return None
        now = self._now().timestamp()
        bucket = self._buckets.get(operation)
        if bucket is None:
            burst = RATES[operation][1]
            bucket = self._buckets[operation] = Bucket(self._rate(operation), burst, burst, now)
        if bucket.take(now):
            return None
        self._rate_throttled += 1
        return self.throttle_response()

    def throttle_response(self) -> Response:
        return 429, QUOTA_EXCEEDED, {}

    def server_error_response(self, draw: float) -> Response:
        if draw < 0.4:
            return 500, INTERNAL, {}
        # bodiless, as a gateway in front of the service answers (the library then returns
        # an empty result instead of raising)
        return (503 if draw < 0.7 else 502), Raw(b"", "application/json"), {}

    def channel_error_response(self, err: SandboxError) -> Response:
        return err.status, error_body(err), {}

    def no_route_response(self, request: Request) -> Response:
        body = {"errors": [{"code": "NotFound", "message": "Resource not found.",
                            "details": f"{request.method} {request.path} is not served here"}]}
        return 404, body, {}

    # -- sandbox hooks ----------------------------------------------------------------------

    def set_listing(self, sku: str, quantity: int, extra: dict[str, Any]) -> None:
        self.account.set_listing(sku, quantity, extra, self._now())

    def listings(self) -> list[dict[str, Any]]:
        return self.account.listing_rows()

    def place_order(self, lines: list[tuple[str, int]]) -> str:
        return self.account.place_order(lines, self._now())

    def control_route(self, request: Request) -> Response | None:
        """``POST /_sandbox/orders`` with a ``"buyer"``; without one the shared route."""
        body = request.json() if (request.method, request.path.rstrip("/")) == (
            "POST", "/_sandbox/orders") and request.body.strip() else None
        if not isinstance(body, dict) or "buyer" not in body:
            return None
        lines = body.get("lines")
        if set(body) - {"lines", "buyer"} or not isinstance(lines, list) or not lines:
            raise BadRequest('an order takes "lines": [{"sku": "MUG", "quantity": 1}] and '
                             '"buyer": {"email": "...", "name": "..."}')
        order = [sku_quantity(line, minimum=1) for line in lines]
        buyer = sandbox_buyer(body["buyer"])
        return 201, {"order_id": self.account.place_order(order, self._now(), buyer)}, {}

    def cancel_order(self, order_id: str) -> dict[str, Any]:
        return self.account.cancel(order_id, self._now())

    def ship_order(self, order_id: str) -> dict[str, Any]:
        return self.account.ship(order_id, self._now())

    def order_rows(self) -> list[dict[str, Any]]:
        return [order_row(order) for order in self.account.orders.values()]

    def _sandbox_status(self, order_id: str, request: Request) -> dict[str, Any]:
        """`POST /_sandbox/orders/{id}/status {"status": "PartiallyShipped", "shipped": {...}}`"""
        body = request.json()
        if not isinstance(body, dict):
            raise BadRequest('expected {"status": "Unshipped", "shipped": {"SKU": 1}}')
        result = self.account.set_status(order_id, body.get("status"), body.get("shipped"),
                                         self._now())
        return {"order_id": order_id, **result}

    # -- Orders API 2026-01-01 and v0 -------------------------------------------------------

    def _orders_page(self, token: str | None, name: str,
                     query: tuple[tuple[Any, ...], Search] | None, size: int
                     ) -> tuple[list[tuple[Order, Version]], str | None, Page]:
        now = self._now()
        rows, more, page = self._order_pages.page(list(self.account.orders.values()), token,
                                                  name, query, size, now,
                                                  now - self.visibility_lag)
        return self.page_faults(rows, previous=earlier), more, page

    @route("GET", ORDERS, "searchOrders")
    def search_orders(self, request: Request) -> Response:
        search, signature = search_2026(request, self._now())
        included = set(csv_param(request, "includedData") or ())
        size = int_param(request, "maxResultsPerPage", 100, 1, 100)
        rows, more, page = self._orders_page(request.arg("paginationToken"),
                                             "paginationToken", (signature, search), size)
        body: dict[str, Any] = {"orders": [order_2026(o, v, included) for o, v in rows]}
        if more:
            body["pagination"] = {"nextToken": more}
        return 200, {**body, **bound(page, v0=False)}, {}

    @route("GET", rf"{ORDERS}/(?P<id>[^/]+)", "getOrder")
    def get_order(self, request: Request) -> Response:
        included = set(csv_param(request, "includedData") or ())
        order, version = self._visible_order(unquote(request.params["id"]))
        return 200, {"order": order_2026(order, version, included)}, {}

    def _visible_order(self, order_id: str) -> tuple[Order, Version]:
        order = self.account.orders.get(order_id)
        version = order.as_of(self._now() - self.visibility_lag) if order else None
        if order is None or version is None:
            raise amazon_error(404, f"Order {order_id} not found.")
        return order, version

    @route("GET", ORDERS_V0, "getOrders")
    def get_orders(self, request: Request) -> Response:
        token = request.arg("NextToken")  # v0: the token alone carries the query
        query = None if token is not None else ((), search_v0(request, self._now()))
        size = int_param(request, "MaxResultsPerPage", 100, 1, 100)
        rows, more, page = self._orders_page(token, "NextToken", query, size)
        payload: dict[str, Any] = {"Orders": [order_v0(o, v) for o, v in rows]}
        if more:
            payload["NextToken"] = more
        return 200, {"payload": {**payload, **bound(page, v0=True)}}, {}

    @route("GET", rf"{ORDERS_V0}/(?P<id>[^/]+)/orderItems", "getOrderItems")
    def get_order_items(self, request: Request) -> Response:
        order, version = self._visible_order(unquote(request.params["id"]))
        return 200, {"payload": order_items_v0(order, version)}, {}

    @route("POST", rf"{ORDERS_V0}/(?P<id>[^/]+)/shipmentConfirmation", "confirmShipment")
    def confirm_shipment(self, request: Request) -> Response:
        self.account.confirm_shipment(unquote(request.params["id"]), json_body(request),
                                      self._now())
        return 204, Raw(b"", "application/json"), {}

    # -- Listings Items API 2021-08-01 ------------------------------------------------------

    def _listing_request(self, request: Request, default: str,
                         allowed: tuple[str, ...]) -> list[str]:
        """Check seller and marketplace; the asked data sets."""
        seller = unquote(request.params["seller"])
        if self.seller_id is not None and seller != self.seller_id:
            raise amazon_error(403, UNAUTHORIZED["message"],
                               details=f"sellerId {seller} is not this seller")
        markets = csv_param(request, "marketplaceIds")
        if not markets:
            raise amazon_error(400, "Missing required parameter: marketplaceIds.", "BAD_REQUEST")
        if self.market.marketplace_id not in markets:
            raise amazon_error(400, f"Invalid marketplaceIds: this seller sells in "
                               f"{self.market.marketplace_id} only.", "BAD_REQUEST")
        included = csv_param(request, "includedData") or [default]
        bad = [d for d in included if d not in allowed]
        if bad:
            raise amazon_error(400, f"Invalid includedData: {', '.join(bad)}.", "BAD_REQUEST")
        return included

    @route("GET", rf"{ITEMS}/(?P<sku>[^/]+)", "getListingsItem")
    def get_listings_item(self, request: Request) -> Response:
        included = self._listing_request(request, "summaries", LISTING_DATA)
        sku = unquote(request.params["sku"])
        listing = self.account.listings.get(sku)
        if listing is None:
            raise amazon_error(404, f"SKU '{sku}' not found in marketplace "
                               f"{self.market.marketplace_id}", "NOT_FOUND")
        return 200, listing_item(listing, included, self.market), {}

    @route("PATCH", rf"{ITEMS}/(?P<sku>[^/]+)", "patchListingsItem")
    def patch_listings_item(self, request: Request) -> Response:
        included = self._listing_request(request, "issues", ("identifiers", "issues"))
        mode = request.arg("mode")
        if mode not in (None, "VALIDATION_PREVIEW"):
            raise amazon_error(400, "Invalid mode: only VALIDATION_PREVIEW.", "BAD_REQUEST")
        body, sku = json_body(request), unquote(request.params["sku"])
        errors = patch_request_errors(body)
        if errors:
            raise amazon_error(400, " ".join(errors), "BAD_REQUEST")
        found = self.account.patch(sku, body["patches"], self._now(), apply=mode is None)
        status = "INVALID" if found else "VALID" if mode else "ACCEPTED"
        if status == "ACCEPTED":
            self.count_items_updated()
        out: dict[str, Any] = {"sku": sku, "status": status, "submissionId": uuid.uuid4().hex}
        if "issues" in included or found:
            out["issues"] = found
        listing = self.account.listings.get(sku)
        if "identifiers" in included:
            out["identifiers"] = [{"marketplaceId": self.market.marketplace_id,
                                   "asin": listing.asin}] if listing else []
        return 200, out, {}

    @route("GET", ITEMS, "searchListingsItems")
    def search_listings_items(self, request: Request) -> Response:
        included = self._listing_request(request, "summaries", LISTING_DATA)
        rows = search_listings(self.account.listings.values(), request)
        chunk, links = self._listing_pages.page(request, rows, self._now())
        body: dict[str, Any] = {"numberOfResults": len(rows), "items": [
            listing_item(row, included, self.market) for row in chunk]}
        if links:
            body["pagination"] = links
        return 200, body, {}

    # -- Feeds API 2021-06-30 (state and processing: _emulator_feedstore) ------------------

    def _base_url(self) -> str:
        return self.url.replace("://0.0.0.0:", "://127.0.0.1:")

    @route("POST", f"{FEEDS}/documents", "createFeedDocument")
    def create_feed_document(self, request: Request) -> Response:
        content_type = json_body(request).get("contentType")
        if not isinstance(content_type, str) or not content_type:
            raise amazon_error(400, "contentType is required.")
        doc = self.feeds.new_document(content_type)
        url = self.feeds.url(self._base_url(), "PUT", doc)
        return 201, {"feedDocumentId": doc.document_id, "url": url}, {}

    @route("GET", rf"{FEEDS}/documents/(?P<id>[^/]+)", "getFeedDocument")
    def get_feed_document(self, request: Request) -> Response:
        doc = self.feeds.document(unquote(request.params["id"]))
        body = {"feedDocumentId": doc.document_id,
                "url": self.feeds.url(self._base_url(), "GET", doc)}
        return 200, {**body, **({"compressionAlgorithm": "GZIP"} if doc.compressed else {})}, {}

    @route("POST", f"{FEEDS}/feeds", "createFeed")
    def create_feed(self, request: Request) -> Response:
        return 202, {"feedId": self.feeds.create(json_body(request))}, {}

    @route("GET", rf"{FEEDS}/feeds/(?P<id>[^/]+)", "getFeed")
    def get_feed(self, request: Request) -> Response:
        return 200, self.feeds.feed(unquote(request.params["id"])).json(), {}

    @route("DELETE", rf"{FEEDS}/feeds/(?P<id>[^/]+)", "cancelFeed")
    def cancel_feed(self, request: Request) -> Response:
        self.feeds.cancel(unquote(request.params["id"]))
        return 200, Raw(b"", "application/json"), {}
