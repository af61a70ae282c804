"""A WooCommerce store on loopback: enough of the REST API v3 for the real httpx client.

Behaviour copied from WooCommerce (see docs/channels.md, WooCommerce section):
- stock is reduced when an order enters processing / on-hold / completed and restored when it
  enters cancelled / pending (never on failed or refunded), at most once each way per order;
- `modified_after` is strict and compares whole seconds, like MySQL's DATETIME columns, so a
  client must poll with an overlap; sorting uses the microsecond internal time, so two changes
  in one second keep their order. The store's timezone is UTC, so `dates_are_gmt` changes
  nothing; `status=any` (the default) leaves out checkout-draft orders;
- batches take at most 100 items (create + update + delete), with per-item errors;
- authentication over plain HTTP is one-legged OAuth 1.0a in the query string. HTTP Basic with
  ck_/cs_ keys is also accepted, as a store behind a TLS-terminating proxy does (there WordPress
  believes it is on HTTPS); so are `consumer_key`/`consumer_secret` query parameters when the
  request carries `X-Forwarded-Proto: https`.
Deliberately stricter than WooCommerce: a negative `stock_quantity` is refused (rest_invalid_param).
Orders carry what a client shows of them: the store's currency, a total that is the sum of the
line totals (each line at its product's price when placed; no tax, shipping or discounts), a
`date_paid_gmt` from the first time the order became processing or completed (WooCommerce's
paid statuses; it stays through a later cancellation or refund) and a billing first and last
name (orders.buyer_name; address and phone fields are there, empty), `customer_id` 0 (a
guest). A listing's `"price"` (a decimal >= 0) sets its product's price; without one a product
has a fixed price derived from its SKU. `POST /_sandbox/orders` also takes `"status"`:
"processing" (the default: paid at once), "on-hold" (awaiting a bank transfer: stock reduced,
not paid) or "pending" (awaiting payment: stock not reduced), and `"buyer": {"email", "name"}`
(billing email, first and last name); `PUT /orders/{id}` moves it on. WooCommerce core has no
delivery status: there is no `/deliver`.
Injected page faults (duplicates, shuffles, stale versions) hit pages of orders only, and leave
X-WP-Total and the Link header true; a lost answer is only ever that of a product, variation
or order write (an order note is one). `GET /_sandbox/orders` lists every order as the store
holds it, with the shipments its notes tell of (orders.shipment_in: WooCommerce itself has no
shipments). Order notes (`/orders/{id}/notes`) are listed newest first, all of them (the
endpoint has no paging), `type` any, customer or internal; adding one never changes the order.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, urlencode

from channelsync.sandbox.emulator import (
    BadRequest,
    Conflict,
    Emulator,
    NotFound,
    Raw,
    Request,
    Response,
    SandboxError,
    Subscription,
    route,
    sandbox_buyer,
    sku_quantity,
)
from connectors.woocommerce.emulator.orders import (
    LineItem,
    Note,
    Order,
    buyer_name,
    earlier,
    money,
)

__all__ = ["WooCommerceEmulator"]

API = "/wp-json/wc/v3"
PRODUCT = rf"{API}/products/(?P<id>\d+)"
VARIATIONS = rf"{API}/products/(?P<pid>\d+)/variations"
ORDER = rf"{API}/orders/(?P<id>\d+)"
NOTE_TYPES = ("any", "customer", "internal")
# What rest_is_boolean() takes besides true and false (and the integers 0 and 1).
BOOLEAN_WORDS = {"true": True, "1": True, "false": False, "0": False, "": False}
STATUSES = ("pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed",
            "checkout-draft")
REDUCES_STOCK = frozenset({"processing", "on-hold", "completed"})
PAID_STATUSES = frozenset({"processing", "completed"})  # wc_get_is_paid_statuses()
PLACED_STATUSES = ("processing", "on-hold", "pending")  # what a sandbox order may be placed as
RESTORES_STOCK = frozenset({"cancelled", "pending"})
BATCH_LIMIT = 100
MAX_PER_PAGE = 100
OAUTH_WINDOW = 15 * 60  # seconds a signed request's timestamp may be away from now
OAUTH_REQUIRED = ("oauth_consumer_key", "oauth_timestamp", "oauth_nonce", "oauth_signature",
                  "oauth_signature_method")
HASHES = {"HMAC-SHA1": hashlib.sha1, "HMAC-SHA256": hashlib.sha256}
NGINX_502 = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
             b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
             b"</body>\r\n</html>\r\n")


def wc_error(status: int, code: str, message: str, **data: Any) -> SandboxError:
    return SandboxError(message, status=status, code=code, data=data)


def invalid_param(name: str, why: str) -> SandboxError:
    return wc_error(400, "rest_invalid_param", f"Invalid parameter(s): {name}", params={name: why})


def invalid_id(kind: str, status: int) -> SandboxError:
    return wc_error(status, f"woocommerce_rest_{kind}_invalid_id", "Invalid ID.")


def fmt(moment: datetime | None) -> str | None:
    """WooCommerce's date format: no fraction, no zone (the *_gmt fields are UTC)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") if moment else None


def default_price(sku: str) -> Decimal:
    """A product's price when none was given: 5.00 to 99.99, fixed by its SKU."""
    return Decimal(500 + zlib.crc32(sku.encode()) % 9500) / 100


def _price(value: Any) -> Decimal:
    try:
        price = Decimal(str(value)) if isinstance(value, int | float | str) and not isinstance(
            value, bool) else None
    except InvalidOperation:
        price = None
    if price is None or not price.is_finite() or price < 0:
        raise BadRequest(f'"price" must be a decimal number >= 0, got {value!r}')
    return price.quantize(Decimal("0.01"))


def oauth_encode(text: str) -> str:
    return quote(text, safe="-._~")  # RFC 3986 unreserved characters only


@dataclass
class Product:
    id: int
    sku: str
    name: str
    type: str  # simple, variable or variation
    created: datetime
    modified: datetime
    manage_stock: bool = True
    stock_quantity: int | None = None
    parent_id: int = 0
    variations: list[int] = field(default_factory=list)
    price: Decimal = Decimal("0")


class WooCommerceEmulator(Emulator):
    """WooCommerce REST API v3 under /wp-json/wc/v3/ plus the shared /_sandbox/ control API."""

    channel_type = "woocommerce"
    write_operations: ClassVar[frozenset[str]] = frozenset({
        "update_product", "batch_products", "update_variation", "batch_variations",
        "update_order", "create_order_note"})
    webhook_signature_header = "X-WC-Webhook-Signature"  # WooCommerce never retries

    def __init__(self, *, consumer_key: str | None = None, consumer_secret: str | None = None,
                 seed: int | None = None, clock: Callable[[], datetime] | None = None,
                 currency: str = "EUR") -> None:
        super().__init__(seed=seed, clock=clock)
        self.consumer_key, self.consumer_secret = consumer_key, consumer_secret
        self.currency = currency  # the store's currency (WooCommerce > Settings > General)
        self.reset()

    @classmethod
    def for_settings(cls, settings: Any) -> WooCommerceEmulator:
        """An emulator that checks the signatures of a configured channel's credentials."""
        return cls(consumer_key=settings.consumer_key.get_secret_value(),
                   consumer_secret=settings.consumer_secret.get_secret_value())

    def reset(self) -> None:
        with self.lock:
            self._products: dict[int, Product] = {}
            self._orders: dict[int, Order] = {}
            self._nonces: dict[str, float] = {}
            self._next_post, self._next_item = 100, 1  # posts (products, orders) share ids
            self._next_note = 1000  # notes are WordPress comments: ids of their own
            self._last = datetime.min.replace(tzinfo=UTC)

    # -- helpers ----------------------------------------------------------------------------

    def _tick(self) -> datetime:
        """Now, strictly later than any earlier tick (so same-second changes stay ordered)."""
        now = self.clock()
        now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
        self._last = max(now, self._last + timedelta(microseconds=1))
        return self._last

    def _post_id(self) -> int:
        self._next_post += 1
        return self._next_post

    def _by_sku(self, sku: str) -> Product | None:
        return next((p for p in self._products.values() if p.sku == sku), None)

    def _product(self, raw_id: Any, kind: str, status: int, parent: int | None = None) -> Product:
        product = self._products.get(int(raw_id)) if str(raw_id).isdigit() else None
        if product is None or (parent is not None and product.parent_id != parent):
            raise invalid_id(kind, status)
        return product

    def _order(self, raw_id: Any, status: int) -> Order:
        order = self._orders.get(int(raw_id)) if str(raw_id).isdigit() else None
        if order is None:
            raise invalid_id("shop_order", status)
        return order

    def _move_stock(self, order: Order, sign: int) -> None:
        for line in order.line_items:
            product = self._products.get(line.variation_id or line.product_id)
            if product is not None and product.manage_stock:
                product.stock_quantity = (product.stock_quantity or 0) + sign * line.quantity
                product.modified = self._tick()

    def _set_status(self, order: Order, status: str) -> None:
        if status == order.status:
            return
        order.keep_previous()
        order.status, order.modified = status, self._tick()
        if status == "completed":
            order.completed = order.modified
        if status in PAID_STATUSES and order.paid is None:  # WC_Order::maybe_set_date_paid
            order.paid = order.modified
        if status in REDUCES_STOCK and not order.stock_reduced:
            self._move_stock(order, -1)
            order.stock_reduced = True
        elif status in RESTORES_STOCK and order.stock_reduced:
            self._move_stock(order, +1)
            order.stock_reduced = False

    # -- sandbox hooks ----------------------------------------------------------------------

    def set_listing(self, sku: str, quantity: int, extra: dict[str, Any]) -> None:
        unknown = set(extra) - {"parent_sku", "name", "price"}
        if unknown or extra.get("parent_sku") in ("", sku):
            raise SandboxError(f"woocommerce listings take parent_sku (another SKU), name and "
                               f"price; got {extra}")
        price = _price(extra["price"]) if "price" in extra else None
        parent_sku, product = extra.get("parent_sku"), self._by_sku(sku)
        if product is None:
            product = self._create(sku, str(extra.get("name") or sku), parent_sku)
        elif parent_sku is not None and self._products[product.parent_id or product.id].sku != (
                parent_sku):
            raise Conflict(f"SKU {sku!r} exists and is not a variation of {parent_sku!r}")
        product.manage_stock, product.stock_quantity = True, quantity
        if price is not None:
            product.price = price
        product.modified = self._tick()

    def _create(self, sku: str, name: str, parent_sku: Any = None, kind: str = "simple") -> Product:
        now, parent = self._tick(), None
        if parent_sku is not None:
            parent = self._by_sku(str(parent_sku)) or self._create(str(parent_sku), str(
                parent_sku), kind="variable")
            if parent.type != "variable":
                raise Conflict(f"{parent_sku!r} is a {parent.type} product, not a variable one")
            name, kind = f"{parent.name} - {sku}", "variation"
        product = Product(self._post_id(), sku, name, kind, now, now,
                          manage_stock=kind != "variable", parent_id=parent.id if parent else 0,
                          price=default_price(sku))
        self._products[product.id] = product
        if parent is not None:
            parent.variations.append(product.id)
            parent.modified = now
        return product

    def listings(self) -> list[dict[str, Any]]:
        rows = []
        for p in sorted(self._products.values(), key=lambda p: p.sku):
            if p.sku and p.manage_stock:
                parent = {"parent_sku": self._products[p.parent_id].sku} if p.parent_id else {}
                rows.append({"sku": p.sku, "quantity": p.stock_quantity or 0, "id": p.id,
                             "type": p.type, "price": money(p.price), **parent})
        return rows

    def control_route(self, request: Request) -> Response | None:
        """``POST /_sandbox/orders`` with a ``"status"`` or a ``"buyer"``; without either
        the shared route."""
        body = request.json() if request.method == "POST" and request.path.rstrip(
            "/") == "/_sandbox/orders" and request.body.strip() else None
        if not isinstance(body, dict) or not {"status", "buyer"} & set(body):
            return None
        lines, status = body.get("lines"), body.get("status", "processing")
        if set(body) - {"lines", "status", "buyer"} or not isinstance(lines, list) or \
                not lines or status not in PLACED_STATUSES:
            raise BadRequest(f'an order takes "lines": [{{"sku": "MUG", "quantity": 1}}], '
                             f'"status": one of {", ".join(PLACED_STATUSES)}, and "buyer"')
        buyer = None
        if "buyer" in body:  # WooCommerce keeps a first and a last name
            email, name = sandbox_buyer(body["buyer"])
            first, _, last = name.partition(" ")
            buyer = (email, first, last)
        order = [sku_quantity(line, minimum=1) for line in lines]
        return 201, {"order_id": self.place_order(order, status=status, buyer=buyer)}, {}

    def place_order(self, lines: list[tuple[str, int]], status: str = "processing",
                    buyer: tuple[str, str, str] | None = None) -> str:
        """``buyer``: (email, first name, last name); without a name, one is drawn."""
        wanted: dict[str, int] = {}
        for sku, quantity in lines:
            wanted[sku] = wanted.get(sku, 0) + quantity
        items = []
        for sku, quantity in wanted.items():
            product = self._by_sku(sku)
            if product is None:
                raise NotFound(f"no product with SKU {sku!r}")
            if product.type == "variable":
                raise Conflict(f"{sku!r} is a variable product: order one of its variations")
            have = product.stock_quantity if product.manage_stock else None
            if have is not None and have < quantity:
                raise Conflict(f"not enough stock for {sku!r}: {have} left, {quantity} asked")
            items.append(LineItem(0, product.parent_id or product.id,
                                  product.id if product.parent_id else 0, sku, quantity,
                                  product.name, price=product.price))
        for item in items:
            item.id, self._next_item = self._next_item, self._next_item + 1
        now = self._tick()
        number = self._post_id()
        email, *names = buyer or ("", "", "")
        order = Order(number, "pending", now, now, items, currency=self.currency, email=email,
                      buyer=(names[0], names[1]) if any(names) else buyer_name(self._seed, number))
        self._orders[order.id] = order
        self._set_status(order, status)  # processing: the payment went through
        order.previous = None  # placing it is one change: no page shows it pending
        self.notify("order.created", str(order.id))
        return str(order.id)

    def cancel_order(self, order_id: str) -> dict[str, Any]:
        order = self._sandbox_order(order_id)
        self._set_status(order, "cancelled")
        self.notify("order.updated", order_id)
        return {"status": order.status}

    def ship_order(self, order_id: str) -> dict[str, Any]:
        order = self._sandbox_order(order_id)
        if order.status in ("cancelled", "refunded", "failed"):
            raise Conflict(f"order {order_id} is {order.status}; it cannot ship")
        self._set_status(order, "completed")
        self.notify("order.updated", order_id)
        return {"status": order.status}

    def order_rows(self) -> list[dict[str, Any]]:
        return [order.row() for order in self._orders.values()]

    def webhook_delivery(self, sub: Subscription, topic: str, order_id: str
                         ) -> tuple[bytes, dict[str, str]]:
        """As ``WC_Webhook::deliver`` sends it: the order as the REST API shows it."""
        resource, event = topic.split(".", 1)
        second = int(time.time())  # wp_hash(webhook id . time()): shared within a second
        return json.dumps(self._order_json(self._orders[int(order_id)])).encode(), {
            "User-Agent": "WooCommerce/9.4.2 Hookshot (WordPress/6.7.1)",
            "X-WC-Webhook-Source": f"{self.url}/", "X-WC-Webhook-Topic": topic,
            "X-WC-Webhook-Resource": resource, "X-WC-Webhook-Event": event,
            "X-WC-Webhook-ID": str(sub.id),
            "X-WC-Webhook-Delivery-ID": hashlib.md5(f"{sub.id}{second}".encode(),
                                                   usedforsecurity=False).hexdigest()}

    def _sandbox_order(self, order_id: str) -> Order:
        try:
            return self._order(order_id, 404)
        except SandboxError:
            raise NotFound(f"no order {order_id!r}") from None

    # -- wire format -------------------------------------------------------------------------

    def channel_error_response(self, err: SandboxError) -> Response:
        return err.status, _error_body(err), {}

    def throttle_response(self) -> Response:
        body = {"code": "rest_too_many_requests",
                "message": "Too many requests. Please wait and try again.",
                "data": {"status": 429}}
        return 429, body, {}

    def server_error_response(self, draw: float) -> Response:
        if draw < 0.5:  # the reverse proxy answers for a PHP worker that died
            return 502, Raw(NGINX_502), {}
        body = {"code": "internal_server_error",
                "message": "<p>There has been a critical error on this website.</p>",
                "data": {"status": 500}, "additional_errors": []}
        return 500, body, {}

    def no_route_response(self, request: Request) -> Response:
        body = {"code": "rest_no_route",
                "message": "No route was found matching the URL and request method.",
                "data": {"status": 404}}
        return 404, body, {}

    def _product_json(self, p: Product) -> dict[str, Any]:
        if p.manage_stock:
            in_stock = (p.stock_quantity or 0) > 0
        else:
            in_stock = p.type != "variable" or any(
                self._product_json(self._products[v])["stock_status"] == "instock"
                for v in p.variations)
        return {"id": p.id, "name": p.name, "slug": p.sku.lower(), "type": p.type,
                "status": "publish", "sku": p.sku, "price": money(p.price),
                "regular_price": money(p.price), "sale_price": "",
                "manage_stock": p.manage_stock, "stock_quantity": p.stock_quantity,
                "stock_status": "instock" if in_stock else "outofstock", "backorders": "no",
                "parent_id": p.parent_id, "variations": list(p.variations),
                "date_created": fmt(p.created), "date_created_gmt": fmt(p.created),
                "date_modified": fmt(p.modified), "date_modified_gmt": fmt(p.modified)}

    def _order_json(self, o: Order) -> dict[str, Any]:
        lines = [{"id": i.id, "name": i.name, "product_id": i.product_id,
                  "variation_id": i.variation_id, "quantity": i.quantity, "tax_class": "",
                  "subtotal": money(i.total), "subtotal_tax": "0.00", "total": money(i.total),
                  "total_tax": "0.00", "taxes": [], "meta_data": [], "sku": i.sku,
                  "price": float(i.price)} for i in o.line_items]
        first, last = o.buyer
        # a guest checkout's buyer: names and email only, the address and phone left empty
        billing = {"first_name": first, "last_name": last, "company": "", "address_1": "",
                   "address_2": "", "city": "", "state": "", "postcode": "", "country": "",
                   "email": o.email, "phone": ""}
        shipping = {k: v for k, v in billing.items() if k != "email"}
        return {"id": o.id, "parent_id": 0, "number": str(o.id), "order_key": f"wc_order_{o.id}",
                "created_via": "checkout", "status": o.status, "currency": o.currency,
                "prices_include_tax": False, "discount_total": "0.00", "discount_tax": "0.00",
                "shipping_total": "0.00", "shipping_tax": "0.00", "cart_tax": "0.00",
                "total": money(o.total), "total_tax": "0.00", "customer_id": 0,
                "billing": billing, "shipping": shipping, "payment_method": "",
                "payment_method_title": "", "transaction_id": "", "customer_note": "",
                "date_created": fmt(o.created), "date_created_gmt": fmt(o.created),
                "date_modified": fmt(o.modified), "date_modified_gmt": fmt(o.modified),
                "date_paid": fmt(o.paid), "date_paid_gmt": fmt(o.paid),
                "date_completed": fmt(o.completed), "date_completed_gmt": fmt(o.completed),
                "line_items": lines, "refunds": []}

    # -- authentication ----------------------------------------------------------------------

    def authenticate(self, request: Request) -> Response | None:
        header = request.headers.get("Authorization", "")
        if header[:6].lower() == "basic ":
            try:
                key, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                key = secret = ""
            self._check_keys(key, secret)
        elif request.arg("oauth_consumer_key") is not None:
            self._check_oauth(request)
        elif request.arg("consumer_key") and request.headers.get("X-Forwarded-Proto") == "https":
            self._check_keys(request.arg("consumer_key") or "", request.arg("consumer_secret")
                             or "")
        elif request.path.endswith("/batch"):
            raise wc_error(401, "woocommerce_rest_cannot_batch",
                           "Sorry, you are not allowed to batch manipulate this resource.")
        elif request.method == "GET":
            raise wc_error(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
        else:
            raise wc_error(401, "woocommerce_rest_cannot_edit",
                           "Sorry, you are not allowed to edit this resource.")
        return None

    def _check_keys(self, key: str, secret: str | None) -> None:
        if not key.startswith("ck_") or (self.consumer_key and key != self.consumer_key):
            raise _auth_error("Consumer key is invalid.")
        if secret is not None and (not secret.startswith("cs_") or (self.consumer_secret and (
                not hmac.compare_digest(secret.encode(), self.consumer_secret.encode())))):
            raise _auth_error("Consumer secret is invalid.")

    def _check_oauth(self, request: Request) -> None:
        params = parse_qsl(request.query_string, keep_blank_values=True)
        if "x-www-form-urlencoded" in request.headers.get("Content-Type", ""):
            params += parse_qsl(request.body.decode(errors="replace"), keep_blank_values=True)
        given = dict(params)
        missing = [name for name in OAUTH_REQUIRED if not given.get(name)]
        if missing:
            raise wc_error(401, "woocommerce_rest_authentication_missing_parameter",
                           f"Missing OAuth parameter {', '.join(missing)}")
        self._check_keys(given["oauth_consumer_key"], None)
        digest = HASHES.get(given["oauth_signature_method"])
        if digest is None:
            raise _auth_error("Invalid signature - signature method is invalid.")
        if self.consumer_secret is not None:
            base = signature_base_string(request.method, self._base_url(request), params)
            key = (oauth_encode(self.consumer_secret) + "&").encode()
            expected = base64.b64encode(hmac.new(key, base.encode(), digest).digest()).decode()
            if not hmac.compare_digest(expected.encode(), given["oauth_signature"].encode()):
                raise _auth_error("Invalid signature - provided signature does not match.")
        now, stamp = time.time(), given["oauth_timestamp"]
        if not stamp.isdigit() or abs(now - int(stamp)) > OAUTH_WINDOW:
            raise _auth_error("Invalid timestamp.")
        if len(self._nonces) > 10_000:  # forget nonces whose timestamps are refused anyway
            self._nonces = {n: t for n, t in self._nonces.items() if t > now - 2 * OAUTH_WINDOW}
        nonce = f"{given['oauth_consumer_key']}:{given['oauth_nonce']}"
        if nonce in self._nonces:
            raise _auth_error("Invalid nonce - nonce has already been used.")
        self._nonces[nonce] = now

    @staticmethod
    def _base_url(request: Request) -> str:
        scheme = "https" if request.headers.get("X-Forwarded-Proto") == "https" else "http"
        host = (request.headers.get("Host") or "").lower()
        host = host.removesuffix(":443" if scheme == "https" else ":80")
        return f"{scheme}://{host}{request.path}"

    # -- products ----------------------------------------------------------------------------

    @route("GET", rf"{API}/products", "list_products")
    def list_products(self, request: Request) -> Response:
        skus, kind = _csv(request.arg("sku")), request.arg("type")
        include = {int(i) for i in _csv(request.arg("include")) if i.isdigit()}
        if kind is not None and kind not in ("simple", "grouped", "external", "variable"):
            raise invalid_param("type", "type is not one of simple, grouped, external, variable.")
        found = [p for p in self._products.values()
                 if (p.sku in skus if skus else p.type != "variation")  # a SKU finds variations
                 and (kind is None or p.type == kind) and (not include or p.id in include)]
        return self._page(request, found, self._product_json,
                          {"date": lambda p: p.created, "id": lambda p: p.id,
                           "modified": lambda p: p.modified, "title": lambda p: p.name})

    @route("GET", PRODUCT, "get_product")
    def get_product(self, request: Request) -> Response:
        return 200, self._product_json(self._product(request.params["id"], "product", 404)), {}

    @route("PUT", PRODUCT, "update_product")
    @route("PATCH", PRODUCT, "update_product")
    @route("POST", PRODUCT, "update_product")
    def update_product(self, request: Request) -> Response:
        product = self._product(request.params["id"], "product", 400)
        return 200, self._update(product, _object(request.json())), {}

    @route("POST", rf"{API}/products/batch", "batch_products")
    @route("PUT", rf"{API}/products/batch", "batch_products")
    def batch_products(self, request: Request) -> Response:
        def create(body: dict[str, Any]) -> Product:
            kind = body.get("type", "simple")
            if kind not in ("simple", "variable"):
                raise invalid_param("type", "the emulator creates simple and variable products.")
            product = self._create(self._new_sku(body), str(body.get("name") or ""), kind=kind)
            self._apply(product, {**body, "sku": product.sku})
            return product

        return 200, self._batch(request, lambda i: self._product(i, "product", 400), create), {}

    @route("GET", VARIATIONS, "list_variations")
    def list_variations(self, request: Request) -> Response:
        parent = self._product(request.params["pid"], "product", 404)
        found = [self._products[v] for v in parent.variations]
        return self._page(request, found, self._product_json,
                          {"date": lambda p: p.created, "id": lambda p: p.id,
                           "modified": lambda p: p.modified, "menu_order": lambda p: p.id})

    @route("GET", rf"{VARIATIONS}/(?P<id>\d+)", "get_variation")
    def get_variation(self, request: Request) -> Response:
        parent = int(request.params["pid"])
        variation = self._product(request.params["id"], "product_variation", 404, parent)
        return 200, self._product_json(variation), {}

    @route("PUT", rf"{VARIATIONS}/(?P<id>\d+)", "update_variation")
    @route("PATCH", rf"{VARIATIONS}/(?P<id>\d+)", "update_variation")
    @route("POST", rf"{VARIATIONS}/(?P<id>\d+)", "update_variation")
    def update_variation(self, request: Request) -> Response:
        parent = int(request.params["pid"])
        variation = self._product(request.params["id"], "product_variation", 400, parent)
        return 200, self._update(variation, _object(request.json())), {}

    @route("POST", rf"{VARIATIONS}/batch", "batch_variations")
    @route("PUT", rf"{VARIATIONS}/batch", "batch_variations")
    def batch_variations(self, request: Request) -> Response:
        parent = self._product(request.params["pid"], "product", 404)
        if parent.type != "variable":
            raise invalid_id("product", 404)

        def create(body: dict[str, Any]) -> Product:
            variation = self._create(self._new_sku(body), "", parent_sku=parent.sku)
            self._apply(variation, {"manage_stock": True, **body, "sku": variation.sku})
            return variation

        def find(raw_id: Any) -> Product:
            return self._product(raw_id, "product_variation", 400, parent.id)

        return 200, self._batch(request, find, create), {}

    def _new_sku(self, body: dict[str, Any]) -> str:
        sku = body.get("sku")
        if not isinstance(sku, str) or not sku or self._by_sku(sku) is not None:
            raise wc_error(400, "product_invalid_sku", "Invalid or duplicated SKU.")
        return sku

    def _update(self, product: Product, body: dict[str, Any]) -> dict[str, Any]:
        shown = self._apply(product, body)
        self.count_items_updated()
        return shown

    def _apply(self, product: Product, body: dict[str, Any]) -> dict[str, Any]:
        """Validate every field first, so that a refused update changes nothing."""
        sku = self._new_sku(body) if body.get("sku", product.sku) != product.sku else product.sku
        manage = body.get("manage_stock", product.manage_stock) in (True, "true", "yes", 1)
        quantity = None  # WooCommerce ignores quantities on products that do not manage stock
        if manage and "stock_quantity" in body:
            quantity = _quantity(body["stock_quantity"], "stock_quantity")
        elif manage and "inventory_delta" in body:
            delta = _quantity(body["inventory_delta"], "inventory_delta", signed=True)
            quantity = _quantity((product.stock_quantity or 0) + delta, "stock_quantity")
        elif manage:
            quantity = product.stock_quantity
        product.sku, product.manage_stock, product.stock_quantity = sku, manage, quantity
        product.name = str(body.get("name", product.name))
        product.modified = self._tick()
        return self._product_json(product)

    def _batch(self, request: Request, find: Callable[[Any], Product],
               create: Callable[[dict[str, Any]], Product]) -> dict[str, list[Any]]:
        body = _object(request.json())
        for key in ("create", "update", "delete"):
            if not isinstance(body.get(key, []), list):
                raise invalid_param(key, f"{key} is not of type array.")
        if sum(len(body.get(key) or []) for key in ("create", "update", "delete")) > BATCH_LIMIT:
            raise wc_error(413, "woocommerce_rest_request_entity_too_large",
                           f"Unable to accept more than {BATCH_LIMIT} items for this request.")
        work: dict[str, Callable[[Any], dict[str, Any]]] = {
            "create": lambda item: self._product_json(create(_object(item))),
            "update": lambda item: self._update(find(_item_id(item)), _object(item)),
            "delete": lambda item: self._delete(find(item)),
        }
        out: dict[str, list[Any]] = {}
        for key, do in work.items():  # WooCommerce answers only the non-empty lists
            for item in body.get(key) or []:
                try:
                    out.setdefault(key, []).append(do(item))
                except SandboxError as err:
                    item_id = 0 if key == "create" else _item_id(item) if key == "update" else item
                    out[key].append({"id": item_id, "error": _error_body(err)})
        return out

    def _delete(self, product: Product) -> dict[str, Any]:
        shown = self._product_json(product)
        for child in [product.id, *product.variations]:
            self._products.pop(child, None)
        if product.parent_id and product.parent_id in self._products:
            self._products[product.parent_id].variations.remove(product.id)
        return shown

    # -- orders ------------------------------------------------------------------------------

    @route("GET", rf"{API}/orders", "list_orders")
    def list_orders(self, request: Request) -> Response:
        wanted = set(_csv(request.arg("status")) or ["any"])
        if not wanted <= {*STATUSES, "any"}:
            raise invalid_param("status", f"status is not one of {', '.join(STATUSES)}, any.")
        if "any" in wanted:
            wanted |= set(STATUSES) - {"checkout-draft"}
        bounds = [(name, _date_arg(request, name)) for name in
                  ("modified_after", "modified_before", "after", "before")]
        exclude = {int(i) for i in _csv(request.arg("exclude")) if i.isdigit()}
        found = [o for o in self._orders.values() if o.status in wanted and o.id not in exclude
                 and all(
            _within(o.modified if name.startswith("modified") else o.created, name, bound)
            for name, bound in bounds if bound is not None)]
        return self._page(request, found, self._order_json,
                          {"date": lambda o: o.created, "id": lambda o: o.id,
                           "modified": lambda o: o.modified, "include": lambda o: o.id,
                           "title": lambda o: o.id, "slug": lambda o: o.id}, previous=earlier)

    @route("GET", ORDER, "get_order")
    def get_order(self, request: Request) -> Response:
        return 200, self._order_json(self._order(request.params["id"], 404)), {}

    @route("PUT", ORDER, "update_order")
    @route("PATCH", ORDER, "update_order")
    @route("POST", ORDER, "update_order")
    def update_order(self, request: Request) -> Response:
        order, body = self._order(request.params["id"], 400), _object(request.json())
        if "status" in body:
            if body["status"] not in STATUSES:
                raise invalid_param("status", f"status is not one of {', '.join(STATUSES)}.")
            self._set_status(order, body["status"])
        self.notify("order.updated", str(order.id))  # WooCommerce fires it on every save
        return 200, self._order_json(order), {}

    @route("GET", rf"{ORDER}/notes", "list_order_notes")
    def list_order_notes(self, request: Request) -> Response:
        order, kind = self._order(request.params["id"], 404), request.arg("type", "any")
        if kind not in NOTE_TYPES:
            raise invalid_param("type", f"type is not one of {', '.join(NOTE_TYPES)}.")
        notes = [n for n in reversed(order.notes)  # newest first, as get_comments() sorts
                 if kind == "any" or n.customer_note == (kind == "customer")]
        return 200, [_note_json(n) for n in notes], {}

    @route("POST", rf"{ORDER}/notes", "create_order_note")
    def create_order_note(self, request: Request) -> Response:
        order = self._orders.get(int(request.params["id"]))
        if order is None:  # this endpoint's own code, not woocommerce_rest_shop_order_...
            raise wc_error(404, "woocommerce_rest_order_invalid_id", "Invalid order ID.")
        body = _object(request.json())
        if "note" not in body:
            raise wc_error(400, "rest_missing_callback_param", "Missing parameter(s): note",
                           params=["note"])
        if not isinstance(body["note"], str):
            raise invalid_param("note", "note is not of type string.")
        flags = [_boolean(body, name) for name in ("customer_note", "added_by_user")]
        self._next_note += 1
        note = Note(self._next_note, self._tick(), body["note"], *flags)
        order.notes.append(note)
        return 201, _note_json(note), {}

    # -- paging ------------------------------------------------------------------------------

    def _page(self, request: Request, items: list[Any], render: Callable[[Any], Any],
              keys: dict[str, Callable[[Any], Any]],
              previous: Callable[[Any], Any] | None = None) -> Response:
        """One page, with WordPress's headers; `previous` marks a page of orders, which the
        fault plan may serve duplicated, shuffled or stale (the headers stay true)."""
        per_page = _int_arg(request, "per_page", 10, MAX_PER_PAGE)
        page = _int_arg(request, "page", 1, None)
        orderby, order = request.arg("orderby", "date") or "date", request.arg("order", "desc")
        if orderby not in keys:
            raise invalid_param("orderby", f"orderby is not one of {', '.join(keys)}.")
        if order not in ("asc", "desc"):
            raise invalid_param("order", "order is not one of asc, desc.")
        items.sort(key=lambda x: (keys[orderby](x), x.id), reverse=order == "desc")
        total, pages = len(items), -(-len(items) // per_page)
        headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)}
        links = [(page - 1, "prev")] if 1 < page <= pages + 1 else []
        links += [(page + 1, "next")] if page < pages else []
        if links:
            query = [(k, v) for k, v in parse_qsl(request.query_string) if not k.startswith(
                "oauth_") and k not in ("page", "consumer_key", "consumer_secret")]
            url = f"{self._base_url(request)}?"
            headers["Link"] = ", ".join(f'<{url}{urlencode([*query, ("page", n)])}>; rel="{rel}"'
                                        for n, rel in links)
        chunk = items[(page - 1) * per_page:page * per_page]
        if previous is not None:
            chunk = self.page_faults(chunk, previous=previous)
        return 200, [render(item) for item in chunk], headers


def signature_base_string(method: str, base_url: str, params: Iterable[tuple[str, str]]) -> str:
    """RFC 5849 section 3.4.1: METHOD & encoded base URL & encoded sorted parameters."""
    pairs = sorted((oauth_encode(k), oauth_encode(v)) for k, v in params if k != "oauth_signature")
    normalized = "&".join(f"{k}={v}" for k, v in pairs)
    return "&".join((method.upper(), oauth_encode(base_url), oauth_encode(normalized)))


def _auth_error(message: str) -> SandboxError:
    return wc_error(401, "woocommerce_rest_authentication_error", message)


def _error_body(err: SandboxError) -> dict[str, Any]:
    code = err.code or {404: "rest_not_found", 409: "woocommerce_rest_conflict"}.get(
        err.status, "rest_invalid_param")
    data = {"status": err.status, **(err.data or {})}
    return {"code": code, "message": err.message, "data": data}


def _note_json(note: Note) -> dict[str, Any]:
    return {"id": note.id, "author": "admin" if note.added_by_user else "system",
            "date_created": fmt(note.created), "date_created_gmt": fmt(note.created),
            "note": note.note, "customer_note": note.customer_note,
            "added_by_user": note.added_by_user}


def _boolean(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in BOOLEAN_WORDS:
        return BOOLEAN_WORDS[value.lower()]
    raise invalid_param(name, f"{name} is not of type boolean.")


def _item_id(item: Any) -> Any:
    return item.get("id") if isinstance(item, dict) else None


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise wc_error(400, "rest_invalid_json", "Invalid JSON body passed: expected an object.")
    return body


def _csv(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _quantity(value: Any, name: str, signed: bool = False) -> int:
    """WooCommerce casts with intval(): 5, "5" and 5.0 are five; the emulator refuses < 0."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or (value < 0 and not signed):
        raise invalid_param(name, f"{name} must be an integer greater than or equal to 0.")
    return value


def _int_arg(request: Request, name: str, default: int, high: int | None) -> int:
    raw = request.arg(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1 or (high is not None and int(raw) > high):
        bound = f"between 1 (inclusive) and {high} (inclusive)" if high else "at least 1"
        raise invalid_param(name, f"{name} must be {bound}.")
    return int(raw)


def _date_arg(request: Request, name: str) -> datetime | None:
    """ISO 8601; without a zone it is the store's time, which for this store is UTC."""
    raw = request.arg(name)
    if raw is None:
        return None
    try:
        raw = raw.strip()
        if "T" in raw:  # an unencoded "+01:00" arrives as " 01:00"
            raw = raw.replace(" ", "+")
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise invalid_param(name, "Invalid date.") from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.replace(microsecond=0)


def _within(moment: datetime, name: str, bound: datetime) -> bool:
    whole = moment.replace(microsecond=0)  # MySQL DATETIME keeps whole seconds
    return whole > bound if name.endswith("after") else whole < bound
