"""A Shopify store on loopback: the part of the Admin GraphQL API (2026-10) channelsync uses.

Served at `POST /admin/api/{version}/graphql.json`; requests are parsed, validated and
executed by graphql-core against connectors/shopify/schema.graphql. Behaviour copied from
Shopify (see the Shopify section of channels.md in the shared notes):
- `X-Shopify-Access-Token` authenticates (401 otherwise); an unknown API version is a 404;
- every request has a calculated cost, charged up front against a leaky bucket (2000 points,
  100 restored per second of real time) and refunded down to the actual cost after it ran;
  over 1000 is MAX_COST_EXCEEDED, more than the bucket holds is THROTTLED, both HTTP 200;
- an order takes `available` at the primary location into `committed`; fulfilment ships
  committed units; cancelling, CANCEL and RETURN refunds and edits put units back;
- an order has one fulfillment order (OPEN, IN_PROGRESS, CLOSED once nothing remains or the
  order is cancelled); `fulfillmentCreate` fulfils its line items' units with a carrier and
  tracking number, or answers userErrors and fulfils nothing (emulator/fulfilment.py); it has
  no idempotency key; `Order.fulfillments` lists every fulfilment, oldest first;
- `inventorySetQuantities` needs `@idempotent(key:)` and a `changeFromQuantity` per quantity
  (null skips the check), is atomic, and replays its first outcome for a repeated key;
- orders search `updated_at:>'...'` compares whole seconds, as updatedAt shows them; keyset
  cursors, so an order changing between two pages never hides another; without a sortKey
  orders come by processedAt, locations by name;
- `locations` lists active locations only, unless `includeInactive: true`;
- an order's `customer` (first and last name from a fixed list, seeded; or the buyer the
  sandbox named, one customer per email) needs the token's `read_customers` scope: without it
  (`read_customers=False`) it is null with an ACCESS_DENIED error, and so is the order's
  `email` (on Shopify that one needs the app's approval for protected customer data instead:
  the one switch stands for "no access to customer data"); a fulfilment's `displayStatus` is
  FULFILLED, then DELIVERED with its `deliveredAt`; `totalPriceSet` is the sum of the lines
  at their variants' prices, in the shop's `currency`; `processedAt` is when it was placed
  (or the `processed_at` given).
Injected page faults (duplicates, shuffles, stale versions) hit pages of `orders` only; a
page keeps its real `endCursor`. A lost answer is only ever an `inventorySetQuantities` or a
`fulfillmentCreate` one. `GET /_sandbox/orders` lists an order's fulfilments as its shipments
(carrier and tracking empty for the sandbox's own ship, which is a fulfilment too).
Extra control routes: `POST /_sandbox/orders` also takes `"test": true`,
`"financial_status": "PENDING"`, `"processed_at"` (an earlier time: an imported order) and
`"buyer": {"email", "name"}`; `POST /_sandbox/orders/{id}/ship` an optional
`{"lines": [{"sku", "quantity"}]}`; `POST /_sandbox/orders/{id}/deliver` delivers its
fulfilments (the order's `updatedAt` moves; `orders/updated` is sent);
`POST /_sandbox/orders/{id}/refund` `{"lines": [{"sku", "quantity", "restock_type"}]}` and
`/edit` `{"sku", "quantity"}`. `POST /_sandbox/locations` `{"name", "active",
"fulfills_online_orders", "ships_inventory", "fulfillment_service"}` adds a location or changes
the named one's flags; `GET /_sandbox/locations` lists them all.
Listings take `"location"` (a location name), `"tracked"`, `"stocked"`, `"title"` and `"price"`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

from channelsync.sandbox.emulator import (
    BadRequest,
    Emulator,
    Raw,
    Request,
    Response,
    Route,
    SandboxError,
    Subscription,
    route,
    sandbox_buyer,
    sku_quantity,
)
from connectors._time import parse_utc
from connectors.shopify.emulator import webhooks
from connectors.shopify.emulator.cost import Bucket
from connectors.shopify.emulator.execute import answer, root_fields
from connectors.shopify.emulator.inventory import Inventory
from connectors.shopify.emulator.orders import OrderBook
from connectors.shopify.emulator.resolvers import SHOP_DOMAIN, Context
from connectors.shopify.emulator.state import Store

__all__ = ["ShopifyEmulator"]

GRAPHQL = r"/admin/api/(?P<version>[0-9]{4}-[0-9]{2}|unstable)/graphql\.json"
INVALID_TOKEN = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong "
                           "password)"}
NOT_FOUND = {"errors": "Not Found"}
# guessed: the GraphQL endpoint's 429 body is the REST API's
CALL_LIMIT = {"errors": "Exceeded 2 calls per second for api client. Reduce request rates to "
                        "resume uninterrupted service."}
BAD_GATEWAY = (b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head><body>"
               b"<h1>502 Bad Gateway</h1><p>There was an error processing your request.</p>"
               b"</body></html>\n")  # guessed: the page Shopify's edge serves
_ORDER_ACTION = re.compile(
    r"/_sandbox/orders/(?P<id>[^/]+)/(?P<action>ship|refund|edit|deliver)")


class ShopifyEmulator(Emulator):
    """Shopify's Admin GraphQL API on loopback plus the shared /_sandbox/ control API.

    `access_token` None accepts any non-blank token (a real one starts "shpat_", but any
    string does here); `api_version` and "unstable" are served, other versions are a 404.
    `monotonic` (seconds) drives the cost bucket's refill; `clock` everything else.
    `before_set_quantities`, if set, is called under the state lock once an
    inventorySetQuantities request is parsed, before the idempotency lookup and the checks:
    a test may change state there (through this object's methods, never over HTTP).
    """

    channel_type = "shopify"
    write_operations: ClassVar[frozenset[str]] = frozenset({"graphql:inventorySetQuantities",
                                                            "graphql:fulfillmentCreate"})
    webhook_signature_header = "X-Shopify-Hmac-Sha256"
    webhook_retry_delays = (1.0, 2.0, 4.0)  # Shopify: 8 tries over 4 hours

    def __init__(self, *, access_token: str | None = None, api_version: str = "2026-10",
                 seed: int | None = None, clock: Callable[[], datetime] | None = None,
                 bucket_size: float = 2000.0, restore_rate: float = 100.0,
                 monotonic: Callable[[], float] | None = None, currency: str = "EUR",
                 read_customers: bool = True) -> None:
        super().__init__(seed=seed, clock=clock)
        self.access_token, self.api_version = access_token, api_version
        self.currency, self.read_customers = currency, read_customers
        self.bucket_size, self.restore_rate = bucket_size, restore_rate
        self.monotonic = monotonic or time.monotonic
        self.before_set_quantities: Callable[[], None] | None = None
        self.reset()

    @classmethod
    def for_settings(cls, settings: Any) -> ShopifyEmulator:
        """An emulator that accepts exactly a configured channel's access token."""
        token = settings.access_token.get_secret_value()
        return cls(access_token=token or None,
                   api_version=getattr(settings, "api_version", None) or "2026-10")

    def reset(self) -> None:
        with self.lock:
            self.store = Store()
            self.book = OrderBook(self.store, seed=self._seed, currency=self.currency)
            self.inventory = Inventory(self.store)
            self.bucket = Bucket(self.bucket_size, self.restore_rate, self.monotonic)

    def _now(self) -> datetime:
        now = self.clock()
        return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)

    # -- dispatch ------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        status, body, headers = super().handle(request)
        if status == 429 and "Retry-After" in headers:  # Shopify writes seconds as "2.0"
            headers = {**headers, "Retry-After": f"{float(headers['Retry-After']):.1f}"}
        return status, body, headers

    def _match(self, request: Request) -> Route | None:
        found = super()._match(request)
        if found is None or found.operation != "graphql":
            return found
        names = root_fields(request.body)
        operation = f"graphql:{names[0]}" if names else "graphql"
        return Route(found.method, found.pattern, found.handler, operation)

    @route("POST", GRAPHQL, "graphql")
    def graphql(self, request: Request) -> Response:
        for extra in root_fields(request.body)[1:]:  # the base class counted the first
            self._requests[f"graphql:{extra}"] += 1
        context = Context(self.store, self.book, self.inventory, self._now,
                          self.count_items_updated, self.before_set_quantities,
                          self.page_faults, self.read_customers)
        status, body = answer(request.json(), self.bucket, context)
        return status, body, {"X-Shopify-API-Version": request.params["version"]}

    # -- wire format ---------------------------------------------------------------------------

    def authenticate(self, request: Request) -> Response | None:
        # guessed: the version is checked before the token
        if request.params.get("version") not in (self.api_version, "unstable"):
            return 404, NOT_FOUND, {}
        token = (request.headers.get("X-Shopify-Access-Token") or "").strip()
        if not token or (self.access_token is not None and token != self.access_token):
            return 401, INVALID_TOKEN, {}
        return None

    def throttle_response(self) -> Response:
        return 429, CALL_LIMIT, {}

    def server_error_response(self, draw: float) -> Response:
        if draw < 0.5:
            return 502, Raw(BAD_GATEWAY), {}
        return 503, {"errors": "Service Unavailable"}, {}  # guessed: the body

    def channel_error_response(self, err: SandboxError) -> Response:
        return err.status, {"errors": err.message}, {}

    def no_route_response(self, request: Request) -> Response:
        return 404, NOT_FOUND, {}

    # -- sandbox hooks and the extra control routes --------------------------------------------

    def set_listing(self, sku: str, quantity: int, extra: dict[str, Any]) -> None:
        with self.lock:
            self.store.set_listing(sku, quantity, extra, self._now())

    def listings(self) -> list[dict[str, Any]]:
        with self.lock:
            return self.store.rows()

    def delete_listing(self, sku: str) -> None:
        """Delete a variant: the lines that sold it show `variant: null`."""
        with self.lock:
            self.store.delete_listing(sku)

    def place_order(self, lines: list[tuple[str, int]], *, test: bool = False,
                    financial_status: str = "PAID", processed_at: datetime | None = None,
                    buyer: tuple[str, str] | None = None) -> str:
        """``buyer``: (email, name) of the buyer the sandbox names."""
        with self.lock:
            order_id = str(self.book.place(lines, self._now(), test=test,
                                           financial=financial_status,
                                           processed=processed_at, buyer=buyer).id)
            self.notify("orders/create", order_id)
            return order_id

    def set_location(self, name: str, **flags: bool) -> dict[str, Any]:
        """Add a location or change its flags (`active`, `fulfills_online_orders`,
        `ships_inventory`, `fulfillment_service`)."""
        with self.lock:
            return self.store.set_location(name, flags).row()

    def locations(self) -> list[dict[str, Any]]:
        with self.lock:
            return [x.row() for x in self.store.locations.values()]

    def cancel_order(self, order_id: str) -> dict[str, Any]:
        with self.lock:
            done = self.book.cancel(self.book.get(order_id), self._now())
            self._changed("orders/cancelled", order_id)
            return done

    def order_rows(self) -> list[dict[str, Any]]:
        with self.lock:
            return [order.row() for order in self.book.orders.values()]

    def ship_order(self, order_id: str, lines: dict[str, int] | None = None) -> dict[str, Any]:
        """Fulfil those units per SKU, or everything unfulfilled."""
        with self.lock:
            order = self.book.get(order_id)
            done = self.book.ship(order, lines, self._now())
            self._changed("orders/fulfilled" if order.fulfillment_status == "FULFILLED"
                          else "orders/partially_fulfilled", order_id)
            return done

    def deliver_order(self, order_id: str) -> dict[str, Any]:
        """The carrier delivered the order's fulfilments."""
        with self.lock:
            done = self.book.deliver(self.book.get(order_id), self._now())
            self.notify("orders/updated", order_id)
            return done

    def refund_order(self, order_id: str, lines: list[tuple[str, int, str]]) -> dict[str, Any]:
        """Refund (sku, quantity, restock type: CANCEL, RETURN or NO_RESTOCK) lines."""
        with self.lock:
            done = self.book.refund(self.book.get(order_id), lines, self._now())
            self._changed("refunds/create", order_id)
            return done

    def edit_order(self, order_id: str, sku: str, quantity: int) -> dict[str, Any]:
        """Set a line's current quantity (only downward, not below its fulfilled units)."""
        with self.lock:
            done = self.book.edit(self.book.get(order_id), sku, quantity, self._now())
            self._changed("orders/edited", order_id)
            return done

    def _changed(self, topic: str, order_id: str) -> None:
        self.notify(topic, order_id)
        self.notify("orders/updated", order_id)

    def webhook_delivery(self, sub: Subscription, topic: str, order_id: str
                         ) -> tuple[bytes, dict[str, str]]:
        return webhooks.delivery(SHOP_DOMAIN, self.api_version, sub, topic,
                                 self.book.get(order_id))

    def control_route(self, request: Request) -> Response | None:
        path = request.path.rstrip("/")
        if path == "/_sandbox/locations":
            return self._locations_route(request)
        action = _ORDER_ACTION.fullmatch(path)
        if request.method != "POST" or (path != "/_sandbox/orders" and action is None):
            return None
        body = request.json() if request.body.strip() else None
        if action is None:
            return self._new_order(body)
        order_id, kind = action["id"], action["action"]
        if kind == "ship":
            wanted = None if body is None else _merge(sku_quantity(x, 1) for x in _lines(body))
            done = self.ship_order(order_id, wanted)
        elif kind == "refund":
            refund = [(*sku_quantity(x, 1), str(x.get("restock_type"))) for x in _lines(body)]
            done = self.refund_order(order_id, refund)
        elif kind == "deliver":
            done = self.deliver_order(order_id)
        else:
            done = self.edit_order(order_id, *sku_quantity(body, 0))
        return 200, {"order_id": order_id, **done}, {}

    def _new_order(self, body: Any) -> Response:
        lines = [sku_quantity(x, 1) for x in _lines(body)]
        test, status, processed, buyer = _fields(body, test=False, financial_status="PAID",
                                                 processed_at=None, buyer=None)
        if not isinstance(test, bool) or not isinstance(status, str):
            raise BadRequest('"test" must be true or false, "financial_status" a string')
        moment = parse_utc(processed)
        if processed is not None and moment is None:
            raise BadRequest('"processed_at" must be an ISO 8601 time')
        order_id = self.place_order(lines, test=test, financial_status=status,
                                    processed_at=moment,
                                    buyer=None if buyer is None else sandbox_buyer(buyer))
        return 201, {"order_id": order_id}, {}

    def _locations_route(self, request: Request) -> Response | None:
        if request.method == "POST":
            body = request.json()
            if not isinstance(body, dict):
                raise BadRequest('expected {"name": "Cellar", "active": false, ...}')
            flags = dict(body)
            name = flags.pop("name", "")  # checked by the store, as the flags are
            return 200, {"location": self.set_location(name, **flags)}, {}
        if request.method == "GET":
            return 200, {"locations": self.locations()}, {}
        return None


def _lines(body: Any) -> list[dict[str, Any]]:
    lines = body.get("lines") if isinstance(body, dict) else None
    if not isinstance(lines, list) or not lines or not all(isinstance(x, dict) for x in lines):
        raise BadRequest('expected {"lines": [{"sku": "MUG", "quantity": 1}, ...]}')
    return lines


def _fields(body: Any, **defaults: Any) -> list[Any]:
    unknown = set(body) - {"lines", *defaults} if isinstance(body, dict) else set()
    if unknown:
        raise BadRequest(f"unknown fields {sorted(unknown)}; expected lines, "
                         f"{', '.join(defaults)}")
    return [body.get(name, default) for name, default in defaults.items()]


def _merge(pairs: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for sku, quantity in pairs:
        out[sku] = out.get(sku, 0) + quantity
    return out
