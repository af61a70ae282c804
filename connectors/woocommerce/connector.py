"""WooCommerce (REST API v3) connector.

Orders come from ``GET /orders`` sorted by modification time, each as its line snapshots and
one ``OrderSnapshot`` (status, times, the buyer's name, total; ``billing.email`` and a
registered buyer's ``customer_id`` to recognise the buyer again, ``date_completed_gmt`` as the
shipping time: WooCommerce core has no delivery status); quantities go out through the
product and variation batch endpoints; listings are read from ``/products`` and each variable
product's ``/variations``. A listing's ``ref`` is ``"<product id>"`` for a product and
``"<parent id>/<variation id>"`` for a variation. Shipments are confirmed with an order note
and the order completed (``_fulfilment``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal, TypeGuard

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

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
from channelsync.errors import ConfigError, PermanentChannelError
from connectors._http import JsonApi, JsonResponse, redact
from connectors._time import format_utc, http_date
from connectors._time import parse_utc as _parse_time
from connectors.woocommerce._fulfilment import Fulfiller
from connectors.woocommerce.auth import OAuth1QueryAuth, SignatureMethod

API_PATH = "/wp-json/wc/v3"
PER_PAGE = 100
BATCH_LIMIT = 100  # create + update + delete per batch request
TOTAL_PAGES = "X-WP-TotalPages"
# WooCommerce has no rate limit of its own; this is what a modest WordPress host takes.
REQUESTS_PER_SECOND = 2.0
BURST = 5

# modified_after without an offset: with dates_are_gmt=true WordPress compares it with the GMT
# column as written, while a value with "Z" is first converted to the site's own time zone.
ORDER_QUERY: dict[str, str | int] = {
    "dates_are_gmt": "true",
    "orderby": "modified",
    "order": "asc",
    "per_page": PER_PAGE,
}

Outcome = Literal["open", "shipped", "cancelled", "ignore"]
STATUS_OUTCOME: dict[str, Outcome] = {
    "pending": "open",
    "on-hold": "open",
    "processing": "open",
    "completed": "shipped",
    "cancelled": "cancelled",
    "failed": "cancelled",
    "refunded": "cancelled",  # the ledger never un-ships: a refund after shipping changes nothing
    "checkout-draft": "ignore",
}

# What each status means for the order book (connector.CHANNEL_STAGES). A checkout draft is
# a cart, not an order: it has no snapshot.
STATUS_STAGE: dict[str, str] = {
    "pending": "received",
    "on-hold": "received",
    "processing": "paid",
    "completed": "shipped",
    "cancelled": "cancelled",
    "failed": "cancelled",
    "refunded": "returned",
}
# An order's fields that hold the buyer's address, email, phone or browser: never kept, not
# even in a bad record's copy of the order.
PERSONAL_FIELDS = frozenset({"billing", "shipping", "customer_note", "customer_ip_address",
                             "customer_user_agent"})
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_CURRENCY = re.compile(r"[A-Z]{3}")
_ORDER_TOKEN = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)~((?:[1-9][0-9]*,?)*)")
_REF = re.compile(r"(?:([1-9][0-9]*)/)?([1-9][0-9]*)")


class WooCommerceSettings(BaseModel):
    """The keys a ``type = "woocommerce"`` channel block takes besides the common ones."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    consumer_key: SecretStr = Field(min_length=1)
    consumer_secret: SecretStr = Field(min_length=1)
    timeout: float = Field(default=30, gt=0)
    verify_tls: bool = True
    signature_method: SignatureMethod = "HMAC-SHA256"
    # A shipment's note goes to the buyer (WooCommerce emails a customer note); false: a
    # private note only the shop sees.
    notify_customer: bool = True


@dataclass(frozen=True)
class _Target:
    """A push item with its resolved address."""

    item: PushItem
    ref: str
    product_id: int
    parent_id: int | None


class WooCommerceConnector:
    """Speaks WooCommerce's REST API v3 for one store."""

    Settings: ClassVar[type[WooCommerceSettings]] = WooCommerceSettings
    capabilities: ClassVar[Capabilities] = Capabilities(
        push_batch_size=BATCH_LIMIT,
        requests_per_second=REQUESTS_PER_SECOND,
        burst=BURST,
        compare_and_set=False,
        webhooks=True,
        overlap=timedelta(minutes=2),
    )
    emulator: ClassVar[str] = "connectors.woocommerce.emulator:WooCommerceEmulator"

    def __init__(
        self,
        name: str,
        settings: WooCommerceSettings,
        endpoint: str = "",
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = name
        self.endpoint = _store_url(name, endpoint)
        self._refs: dict[str, str] = {}  # channel SKU -> ref, filled by lookups
        self._log = logging.getLogger(f"{__name__}.{name}")
        self._api = JsonApi(
            name,
            self.endpoint + API_PATH,
            auth=_auth(self.endpoint, settings),
            timeout=settings.timeout,
            verify=settings.verify_tls,
            transport=transport,
            secrets=_secret_values(settings),
        )
        self._fulfiller = Fulfiller(name, self._api, settings.notify_customer)

    def __repr__(self) -> str:
        return f"WooCommerceConnector(name={self.name!r}, endpoint={self.endpoint!r})"

    # -- orders ---------------------------------------------------------------------------

    def pull_orders(self, since: datetime, page: str | None) -> OrderPage:
        after, seen = self._order_position(since, page)
        params: dict[str, str | int] = {**ORDER_QUERY, "modified_after": after, "page": 1}
        if seen:
            params["exclude"] = ",".join(seen)
        response = self._api.get_list("/orders", params)
        lines: list[OrderLineSnapshot] = []
        bad: list[BadRecord] = []
        orders: list[OrderSnapshot] = []
        changed: dict[str, datetime] = {}
        for raw in response.body:
            order_lines, order_bad, changed_at = _parse_order(raw)
            lines += order_lines
            bad += order_bad
            if changed_at and _is_id(raw.get("id")):
                changed[str(raw["id"])] = changed_at
                header = _order_snapshot(raw, changed_at, order_bad)
                if header is not None:
                    orders.append(header)
        self._log.debug("orders after %s (%d excluded): %d orders, %d lines, %d bad", after,
                        len(seen), len(orders), len(lines), len(bad))
        following = _next_order_page(response, after, seen, changed)
        return OrderPage(lines, following, max(changed.values(), default=None), bad,
                         channel_now=http_date(response.headers), orders=orders)

    # -- listings -------------------------------------------------------------------------

    def read_listings(self) -> Iterator[ChannelListing]:
        for product in self._all_pages("/products"):
            if (listing := self._listing(product, parent_id=None)) is not None:
                yield listing
            if product.get("type") == "variable" and _is_id(product.get("id")):
                parent = product["id"]
                for variation in self._all_pages(f"/products/{parent}/variations"):
                    if (listing := self._listing(variation, parent_id=parent)) is not None:
                        yield listing

    def _all_pages(self, path: str) -> Iterator[dict[str, Any]]:
        number: int | None = 1
        while number is not None:
            response = self._api.get_list(path, {"per_page": PER_PAGE, "page": number})
            yield from (item for item in response.body if isinstance(item, dict))
            token = _next_page(response, number)
            number = int(token) if token else None

    def _listing(self, raw: dict[str, Any], parent_id: int | None) -> ChannelListing | None:
        sku = raw.get("sku")
        if not isinstance(sku, str) or not sku or not _is_id(raw.get("id")):
            return None
        quantity = raw.get("stock_quantity")
        managed = raw.get("manage_stock") is True  # False, or "parent" for a variation
        if not managed or not _is_int(quantity):
            quantity = None
        return ChannelListing(sku, quantity, ref=_ref(raw["id"], parent_id))

    # -- pushing --------------------------------------------------------------------------

    def push_quantities(self, items: Sequence[PushItem]) -> list[PushResult]:
        results: dict[int, PushResult] = {}
        targets: dict[int, _Target] = {}
        for index, item in enumerate(items):
            outcome = self._resolve(item)
            if isinstance(outcome, PushResult):
                results[index] = outcome
            else:
                targets[index] = outcome
        for path, chunk in _batches(targets):
            results.update(self._send_batch(path, chunk))
        return [results[index] for index in range(len(items))]

    def _resolve(self, item: PushItem) -> _Target | PushResult:
        sku = item.channel_sku
        if item.quantity < 0:
            return self._failed(item, f"negative quantity {item.quantity} for {sku!r} not sent")
        ref = item.ref or self._lookup(sku)
        if ref is None:
            return self._failed(item, f"no product with sku {sku!r}")
        match = _REF.fullmatch(ref)
        if match is None:
            return self._failed(item, f"invalid WooCommerce ref {ref!r} for {sku!r}")
        parent = int(match.group(1)) if match.group(1) else None
        return _Target(item, ref, int(match.group(2)), parent)

    def _lookup(self, sku: str) -> str | None:
        """The ref of the product or variation with this SKU, remembered for later pushes."""
        if sku not in self._refs:
            found = _find_sku(self._api.get_list("/products", {"sku": sku}).body, sku)
            if found is not None:
                self._refs[sku] = found
        return self._refs.get(sku)

    def _send_batch(self, path: str, chunk: list[tuple[int, _Target]]) -> dict[int, PushResult]:
        update = [
            {"id": t.product_id, "stock_quantity": t.item.quantity, "manage_stock": True}
            for _, t in chunk
        ]
        response = self._api.post_dict(path, {"update": update})
        answers = response.body.get("update")
        if not isinstance(answers, list) or len(answers) != len(chunk):
            raise self._api.malformed(f"POST {path}", str(response.body), response.status)
        return {
            index: self._outcome(target, answer)
            for (index, target), answer in zip(chunk, answers, strict=True)
        }

    def _outcome(self, target: _Target, answer: Any) -> PushResult:
        sku = target.item.channel_sku
        if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
            self._refs.pop(sku, None)  # a remembered ref may be stale: look it up next time
            return self._failed(target.item, _rejection(sku, answer["error"]), ref=target.ref)
        if not isinstance(answer, dict) or answer.get("id") != target.product_id:
            message = f"{sku!r}: the batch answer does not match product {target.product_id}"
            return self._failed(target.item, message, ref=target.ref)
        return PushResult(sku, ok=True, ref=target.ref)

    def _failed(self, item: PushItem, message: str, ref: str = "") -> PushResult:
        error = PermanentChannelError(message, channel=self.name)
        return PushResult(item.channel_sku, ok=False, error=error, ref=ref)

    # -- shipments ------------------------------------------------------------------------

    def confirm_shipment(self, shipment: Shipment) -> ShipmentResult:
        return self._fulfiller.confirm(shipment)

    # -- plumbing -------------------------------------------------------------------------

    def _order_position(self, since: datetime, token: str | None) -> tuple[str, list[str]]:
        """The ``modified_after`` to send and the orders of its first second already read."""
        if token is None:
            return _wc_time(since), []
        match = _ORDER_TOKEN.fullmatch(token)
        if match is None:
            raise PermanentChannelError(f"invalid page token {token!r}", channel=self.name)
        return match.group(1), [i for i in match.group(2).split(",") if i]

    def close(self) -> None:
        self._api.close()


# -- mapping helpers (pure functions) -------------------------------------------------------


def _parse_order(raw: Any) -> tuple[list[OrderLineSnapshot], list[BadRecord], datetime | None]:
    """An order's line snapshots, its unusable records and its modification time."""
    if not isinstance(raw, dict) or not _is_id(raw.get("id")):
        return [], [BadRecord("order without an id", "?", _impersonal(raw))], None
    key = str(raw["id"])
    changed_at = _parse_time(raw.get("date_modified_gmt"))
    status, items = raw.get("status"), raw.get("line_items")
    if changed_at is None:
        return [], [BadRecord("order without a valid date_modified_gmt", key,
                              _impersonal(raw))], None
    if not isinstance(items, list):
        return [], [BadRecord("order without line_items", key, _impersonal(raw))], changed_at
    if status not in STATUS_OUTCOME:
        return [], [BadRecord(f"unknown order status {status!r}", key, _impersonal(raw))], \
            changed_at
    parsed = [_parse_line(key, status, changed_at, item) for item in items]
    lines = [p for p in parsed if isinstance(p, OrderLineSnapshot)]
    return lines, [p for p in parsed if isinstance(p, BadRecord)], changed_at


def _order_snapshot(
    raw: dict[str, Any], changed_at: datetime, bad: list[BadRecord]
) -> OrderSnapshot | None:
    """The order as a whole, for one whose lines were read (None for a checkout draft or an
    order refused whole). A header field that cannot be read is left empty: the order and
    its lines still count."""
    order_id, status = str(raw["id"]), raw.get("status")
    if not isinstance(status, str) or status not in STATUS_STAGE or any(
            record.key == order_id for record in bad):
        return None
    return OrderSnapshot(
        order_id=order_id,
        status=status,
        stage=STATUS_STAGE[status],
        changed_at=changed_at,
        placed_at=_parse_time(raw.get("date_created_gmt")),
        paid_at=_parse_time(raw.get("date_paid_gmt")),
        buyer=_buyer(raw.get("billing")),
        total=_checked(raw.get("total"), _DECIMAL.fullmatch),
        currency=_checked(raw.get("currency"), _CURRENCY.fullmatch),
        buyer_email=_email(raw.get("billing")),
        buyer_id=str(raw["customer_id"]) if _is_id(raw.get("customer_id")) else "",  # 0: guest
        shipped_at=_parse_time(raw.get("date_completed_gmt")),
    )


def _buyer(billing: Any) -> str:
    """The billing first and last name, and nothing else of the billing address."""
    if not isinstance(billing, dict):
        return ""
    names = (billing.get("first_name"), billing.get("last_name"))
    return " ".join(n.strip() for n in names if isinstance(n, str) and n.strip())


def _email(billing: Any) -> str:
    """The billing email as WooCommerce has it (the book normalises it); "" without one."""
    email = billing.get("email") if isinstance(billing, dict) else None
    return email if isinstance(email, str) and "@" in email else ""


def _checked(value: Any, valid: Callable[[str], object]) -> str:
    return value if isinstance(value, str) and valid(value) else ""


def _impersonal(raw: Any) -> Any:
    """An order as a bad record keeps it: without the buyer's address, email and phone."""
    if not isinstance(raw, dict):
        return raw
    return {k: v for k, v in raw.items() if k not in PERSONAL_FIELDS}


def _parse_line(
    order_id: str, status: str, changed_at: datetime, raw: Any
) -> OrderLineSnapshot | BadRecord:
    if not isinstance(raw, dict) or not _is_id(raw.get("id")):
        return BadRecord("line item without an id", f"{order_id}/?", raw)
    key = f"{order_id}/{raw['id']}"
    sku, quantity = raw.get("sku"), raw.get("quantity")
    if not isinstance(sku, str) or not sku.strip():
        return BadRecord("line item without a sku", key, raw)
    if not _is_int(quantity) or quantity < 0:
        return BadRecord(f"line item quantity {quantity!r} is not a whole number >= 0", key, raw)
    outcome = STATUS_OUTCOME[status]
    return OrderLineSnapshot(
        order_id=order_id,
        line_id=str(raw["id"]),
        channel_sku=sku,
        ordered=quantity,
        status=status,
        changed_at=changed_at,
        shipped=quantity if outcome == "shipped" else 0,
        cancelled=quantity if outcome == "cancelled" else 0,
        ignore=outcome == "ignore",
    )


def _find_sku(products: list[Any], sku: str) -> str | None:
    """The ref of the exact match (the API splits the sku parameter on commas)."""
    for product in products:
        if isinstance(product, dict) and product.get("sku") == sku and _is_id(product.get("id")):
            parent = product.get("parent_id")  # set on variations, 0 on products
            return _ref(product["id"], parent if _is_id(parent) else None)
    return None


def _rejection(sku: str, error: dict[str, Any]) -> str:
    text = f"{error.get('code', '')}: {error.get('message', '')}"
    return f"{sku!r} rejected by WooCommerce: {redact(text[:200])}"


def _next_page(response: JsonResponse, number: int) -> str | None:
    total = response.headers.get(TOTAL_PAGES, "")
    if total.isascii() and total.isdigit():
        return str(number + 1) if number < int(total) else None
    # No header (a proxy dropped it): a full page may have a successor.
    return str(number + 1) if len(response.body) >= PER_PAGE else None


def _next_order_page(
    response: JsonResponse, after: str, seen: list[str], changed: dict[str, datetime]
) -> str | None:
    """Keyset paging: the next page starts at the newest second seen, never at an offset.

    Paging by offset through a list sorted by modification time loses orders: one that
    changes while we page moves to the end, and the order behind it slides back onto a
    page already read. Instead each request asks again from the newest second seen
    (``modified_after`` has whole seconds) and excludes the orders of that second it
    already has, so nothing is skipped and nothing is read twice.
    """
    if _next_page(response, 1) is None or not changed:
        return None
    newest = max(changed.values())
    boundary = _wc_time(newest - timedelta(seconds=1))
    last_second = [i for i, t in changed.items() if _wc_time(t) == _wc_time(newest)]
    if boundary == after:  # still inside the same second: keep excluding what came before
        last_second = seen + last_second
    return f"{boundary}~{','.join(last_second)}"


def _batches(targets: dict[int, _Target]) -> Iterator[tuple[str, list[tuple[int, _Target]]]]:
    """Batch endpoints and their items: products first, then each parent's variations."""
    groups: dict[int | None, list[tuple[int, _Target]]] = {None: []}
    for index, target in targets.items():
        groups.setdefault(target.parent_id, []).append((index, target))
    for parent, members in groups.items():
        path = "/products/batch" if parent is None else f"/products/{parent}/variations/batch"
        for start in range(0, len(members), BATCH_LIMIT):
            yield path, members[start : start + BATCH_LIMIT]


def _wc_time(moment: datetime) -> str:
    return format_utc(moment, "%Y-%m-%dT%H:%M:%S")


def _ref(product_id: int, parent_id: int | None) -> str:
    return f"{parent_id}/{product_id}" if parent_id else str(product_id)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_id(value: object) -> TypeGuard[int]:
    return _is_int(value) and value > 0


def _store_url(name: str, endpoint: str) -> str:
    where = f"channel {name!r}: endpoint"
    if not endpoint:
        raise ConfigError([f"{where}: required, the store's URL (e.g. https://shop.example)"])
    try:
        url = httpx.URL(endpoint)
    except httpx.InvalidURL as exc:
        raise ConfigError([f"{where}: not a valid URL"]) from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError([f"{where}: must be an http:// or https:// URL with a host"])
    if url.userinfo:
        raise ConfigError([f"{where}: must not carry credentials; use consumer_key/secret"])
    if url.query or url.fragment:
        raise ConfigError([f"{where}: must not have a query or fragment"])
    return endpoint.rstrip("/")


def _secret_values(settings: WooCommerceSettings) -> list[str]:
    """What must never appear in a message: masked wherever the HTTP layer quotes text."""
    return [settings.consumer_key.get_secret_value(), settings.consumer_secret.get_secret_value()]


def _auth(store_url: str, settings: WooCommerceSettings) -> httpx.Auth:
    """HTTP Basic over HTTPS; over plain HTTP WooCommerce only accepts OAuth 1.0a signatures."""
    key, secret = settings.consumer_key, settings.consumer_secret
    if store_url.startswith("https://"):
        return httpx.BasicAuth(key.get_secret_value(), secret.get_secret_value())
    return OAuth1QueryAuth(key, secret, settings.signature_method)


__all__ = ["WooCommerceConnector", "WooCommerceSettings"]
