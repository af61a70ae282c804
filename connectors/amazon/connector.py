"""Amazon (Selling Partner API) connector, over python-amazon-sp-api.

- Orders: Orders API 2026-01-01 ``searchOrders`` by ``lastUpdatedAfter``, merchant-fulfilled
  only, every page asked with the same parameters (they travel in the page string). Each
  order gives its lines and an ``OrderSnapshot`` (what of it, see ``_orders``): the buyer's
  name and Amazon's relay email (restricted data) only with the ``buyer_data`` setting. Pages are
  not sorted by update time, so only the last page lets the cursor move (to the newest update
  seen); the 5-minute overlap covers the ~2 minutes orders take to become visible.
- Quantities: up to ``feed_threshold`` items, one ``patchListingsItem`` each (``merge`` on
  ``fulfillment_availability``, ``DEFAULT`` channel); more, one ``JSON_LISTINGS_FEED``.
- Listings: ``searchListingsItems`` with summaries and fulfillment availability. FBA (AFN)
  listings are read with ``managed=False``, remembered, and refused if asked to push.
- Shipments: Orders v0 ``confirmShipment``, one package each, after a ``getOrder`` that
  finds one an earlier try left (``_shipping``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from channelsync.connector import (
    Capabilities,
    ChannelListing,
    OrderPage,
    PushItem,
    PushResult,
    Shipment,
    ShipmentResult,
)
from channelsync.errors import (
    ConfigError,
    PermanentChannelError,
    RetriableChannelError,
)
from connectors._time import http_date
from connectors.amazon._auth import LWA_TOKEN_URL, TOKEN_PATH, TokenStore, token_client_class
from connectors.amazon._client import (
    PRODUCTION_ENDPOINTS,
    Marketplace,
    RateLimit,
    SpApi,
    find_marketplace,
    make_clients,
)
from connectors.amazon._feeds import MAX_MESSAGES, FeedRun
from connectors.amazon._listings import (
    SEARCH_QUERY,
    ListingSearch,
    is_afn_ref,
    parse_listing,
    patch_result,
    quantity_patch,
)
from connectors.amazon._orders import BUYER_DATASETS, DATASETS, Position, parse_page
from connectors.amazon._shipping import Shipping
from connectors.amazon._transport import CredentialsRefused, Http

DEFAULT_TIMEOUT = 10.0  # the library's own default for sync clients is 5 s
DEFAULT_FEED_THRESHOLD = 100
DEFAULT_PRODUCT_TYPE = "PRODUCT"
DEFAULT_FEED_POLL_INTERVAL = 1.0  # while a push waits for its feed
DEFAULT_FEED_WAIT = 5.0  # then the feed's outcome is collected by later cycles
DEFAULT_FEED_TIMEOUT = 1800.0  # a feed takes minutes; 30 more is a feed that is stuck
DEFAULT_ORDER_LAG = 120.0  # orders show about two minutes after they change
OVERLAP = timedelta(minutes=5)
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
# The engine's batch: one whole feed. More than feed_threshold goes as one feed; a smaller
# engine batch would cut a larger change into a feed plus a remainder that, if it is under
# feed_threshold, goes out one patch a listing (10,050 changed: 53 calls instead of 3).
PUSH_BATCH_SIZE = MAX_MESSAGES
# Amazon's published usage plans (requests per second, burst). searchOrders refills one
# request every 3 minutes after a burst of 20: pages beyond the burst wait in pull_orders.
USAGE_PLANS = {
    "searchOrders": RateLimit(0.0056, 20),
    "getOrder": RateLimit(0.5, 30),
    "confirmShipment": RateLimit(2.0, 10),
    "searchListingsItems": RateLimit(5.0, 5),
    "patchListingsItem": RateLimit(5.0, 5),
    "createFeedDocument": RateLimit(0.5, 15),
    "createFeed": RateLimit(0.0083, 15),
    "getFeed": RateLimit(2.0, 15),
    "getFeedDocument": RateLimit(0.0222, 10),
}


class AmazonSettings(BaseModel):
    """The keys a ``type = "amazon"`` channel block takes besides the common ones."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    marketplace: str = Field(min_length=1)  # a country code (US, DE, UK, ...) or marketplace id
    seller_id: str = Field(min_length=1)
    refresh_token: SecretStr = Field(min_length=1)
    lwa_app_id: SecretStr = Field(min_length=1)
    lwa_client_secret: SecretStr = Field(min_length=1)
    # The token URL. Empty: Amazon's, or with a loopback endpoint (an emulator), the same host.
    lwa_endpoint: str = ""
    timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0)
    feed_threshold: int = Field(default=DEFAULT_FEED_THRESHOLD, ge=0)
    product_type: str = Field(default=DEFAULT_PRODUCT_TYPE, min_length=1)
    feed_poll_interval: float = Field(default=DEFAULT_FEED_POLL_INTERVAL, gt=0)
    feed_wait: float = Field(default=DEFAULT_FEED_WAIT, ge=0)
    feed_timeout: float = Field(default=DEFAULT_FEED_TIMEOUT, gt=0)
    # Seconds Amazon takes to show an order change (about two minutes): increases wait for a
    # pull begun this long after the last push, and the pull overlaps at least twice this.
    order_lag: float = Field(default=DEFAULT_ORDER_LAG, ge=0)
    # Ask for the BUYER dataset: the buyer's name and Amazon's anonymised relay email, which
    # recognise a returning Amazon buyer. Restricted personal data: Amazon serves it only to an
    # app holding the restricted roles (Direct-to-Consumer Delivery for the email, Tax
    # Invoicing or Tax Remittance for the name), so it stays off unless the seller has them.
    buyer_data: bool = False

    @field_validator("marketplace")
    @classmethod
    def _known_marketplace(cls, value: str) -> str:
        if find_marketplace(value) is None:
            raise ValueError(f"unknown marketplace {value!r}: a country code such as US, DE or "
                             "UK, or a marketplace id such as ATVPDKIKX0DER")
        return value.strip()

    @field_validator("lwa_endpoint")
    @classmethod
    def _token_url(cls, value: str) -> str:
        return _url(value, default_path=TOKEN_PATH) if value else ""


class AmazonConnector:
    """Speaks the Selling Partner API for one seller in one marketplace."""

    Settings: ClassVar[type[AmazonSettings]] = AmazonSettings
    capabilities: Capabilities = Capabilities(  # order_lag, overlap: the instance's setting
        push_batch_size=PUSH_BATCH_SIZE,
        requests_per_second=5.0,  # patchListingsItem's plan; each operation is paced inside
        burst=5,
        compare_and_set=False,
        webhooks=False,
        overlap=OVERLAP,
        order_lag=timedelta(seconds=DEFAULT_ORDER_LAG),
        # Amazon's Communication Guidelines: buyers are contacted through Buyer-Seller
        # Messaging only, and never for marketing or a review.
        buyer_contact=False,
    )
    emulator: ClassVar[str] = "connectors.amazon.emulator:AmazonEmulator"

    def __init__(
        self,
        name: str,
        settings: AmazonSettings,
        endpoint: str = "",
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,  # for rate limits and feed polling
    ) -> None:
        self.name = name
        self.settings = settings
        lag = timedelta(seconds=settings.order_lag)
        self.capabilities = replace(type(self).capabilities, order_lag=lag,
                                    overlap=max(OVERLAP, 2 * lag))
        self.marketplace = _marketplace(name, settings.marketplace, endpoint)
        self.token_url = settings.lwa_endpoint or _token_url(endpoint)
        self._clock = clock
        self._fba: set[str] = set()  # SKUs last read as fulfilled by Amazon
        self._log = logging.getLogger(f"{__name__}.{name}")
        self._http = Http(name, timeout=settings.timeout, token_url=self.token_url,
                          secrets=_secret_values(settings), transport=transport)
        store = TokenStore()
        token_class = token_client_class(self.token_url, self._http.client, store)
        self._api = SpApi(self._http, store, USAGE_PLANS, sleep=sleep, clock=monotonic)
        self._clients = make_clients(self.marketplace, _credentials(settings), token_class,
                                     self._http, settings.timeout)
        self._feed = FeedRun(self._api, self._http, self._clients.feeds,
                             self.marketplace.marketplace_id, settings.feed_poll_interval,
                             settings.feed_timeout, settings.feed_wait, sleep=sleep,
                             clock=monotonic)
        self._shipping = Shipping(self._api, self._clients, self.marketplace.marketplace_id)

    def __repr__(self) -> str:
        return (f"AmazonConnector(name={self.name!r}, "
                f"marketplace={self.marketplace.marketplace_id!r}, "
                f"endpoint={self.marketplace.endpoint!r})")

    @property
    def marketplace_id(self) -> str:
        return self.marketplace.marketplace_id

    # -- orders ---------------------------------------------------------------------------

    def pull_orders(self, since: datetime, page: str | None) -> OrderPage:
        position = Position.first(since) if page is None else Position.decode(page)
        if position is None:
            raise PermanentChannelError(f"invalid page token {page!r}", channel=self.name)
        query = position.query(self.marketplace_id, BUYER_DATASETS if self.settings.buyer_data
                               else DATASETS)
        response = self._api.call(
            "searchOrders", lambda: self._clients.orders.search_orders(**query))
        orders = self._api.payload("searchOrders", response).get("orders")
        if not isinstance(orders, list):
            raise self._api.malformed("searchOrders", response.payload)
        parsed = parse_page(orders)
        self._log.debug("orders after %s: %d orders, %d lines, %d bad", position.after,
                        len(orders), len(parsed.lines), len(parsed.bad))
        position = position.then(orders, parsed.newest)
        token = response.next_token
        if isinstance(token, str) and token:
            return OrderPage(parsed.lines, replace(position, token=token).encode(), None,
                             parsed.bad, channel_now=http_date(response.headers),
                             orders=parsed.orders)
        if position.moved:
            self._log.info("an order changed while its pages were read: the cursor stays")
        return OrderPage(parsed.lines, None, position.resume_at(), parsed.bad,
                         channel_now=http_date(response.headers), orders=parsed.orders)

    # -- listings -------------------------------------------------------------------------

    def read_listings(self) -> Iterator[ChannelListing]:
        search = ListingSearch(self._search_page, now=self._clock())
        seen: set[str] = set()
        for raw in search.all():
            listing = parse_listing(raw)
            if listing is None or listing.channel_sku in seen:
                continue
            seen.add(listing.channel_sku)
            self._remember(listing)
            yield listing
        if search.found is not None and len(seen) < search.found:
            self._log.warning("read %d of the %d listings Amazon found: searchListingsItems "
                              "could not page through the rest", len(seen), search.found)

    def _search_page(self, extra: dict[str, Any]) -> tuple[list[Any], int | None, str | None]:
        query = {**SEARCH_QUERY, "marketplaceIds": [self.marketplace_id], **extra}
        response = self._api.call("searchListingsItems", lambda: (
            self._clients.listings.search_listings_items(self.settings.seller_id, **query)))
        payload = self._api.payload("searchListingsItems", response)
        items, total = payload.get("items"), payload.get("numberOfResults")
        if not isinstance(items, list):
            raise self._api.malformed("searchListingsItems", payload)
        token = response.next_token
        found = total if isinstance(total, int) and not isinstance(total, bool) else None
        return items, found, token if isinstance(token, str) and token else None

    def _remember(self, listing: ChannelListing) -> None:
        if listing.managed:
            self._fba.discard(listing.channel_sku)
        elif listing.channel_sku not in self._fba:
            self._fba.add(listing.channel_sku)
            self._log.warning("%s is fulfilled by Amazon (FBA): its stock is Amazon's and is "
                              "never written", listing.channel_sku)

    # -- pushing --------------------------------------------------------------------------

    def push_quantities(self, items: Sequence[PushItem]) -> list[PushResult]:
        results: dict[int, PushResult] = {}
        sendable: list[tuple[int, PushItem]] = []
        for index, item in enumerate(items):
            refusal = self._refusal(item)
            if refusal is None:
                sendable.append((index, item))
            else:
                results[index] = refusal
        send = [item for _, item in sendable]
        outcomes = self._by_feed(send) if len(send) > self.settings.feed_threshold \
            else self._by_patch(send)
        results.update(zip([index for index, _ in sendable], outcomes, strict=True))
        return [results[index] for index in range(len(items))]

    def _refusal(self, item: PushItem) -> PushResult | None:
        sku = item.channel_sku
        if is_afn_ref(item.ref) or sku in self._fba:
            self._log.warning("%s is fulfilled by Amazon (FBA): not written", sku)
            return self._failed(sku, f"{sku!r} is fulfilled by Amazon (FBA): its stock is "
                                     "Amazon's, and writing it would make it merchant-fulfilled")
        if item.quantity < 0:
            return self._failed(sku, f"negative quantity {item.quantity} for {sku!r} not sent")
        if not sku:
            return self._failed(sku, "empty SKU not sent")
        return None

    def _by_patch(self, items: Sequence[PushItem]) -> list[PushResult]:
        """One patch per item. When Amazon throttles or fails, the rest wait for a later
        push (raised if nothing was sent, so the engine retries the whole call)."""
        results: list[PushResult] = []
        for item in items:
            try:
                payload = self._patch(item)
            except RetriableChannelError as exc:
                if not results:
                    raise
                results += [PushResult(i.channel_sku, ok=False, error=exc)
                            for i in items[len(results):]]
                break
            except CredentialsRefused:
                raise
            except PermanentChannelError as exc:  # this item: unknown SKU, bad request
                results.append(PushResult(item.channel_sku, ok=False, error=exc))
                continue
            results.append(patch_result(self.name, item, payload))
        return results

    def _patch(self, item: PushItem) -> Any:
        call = partial(self._clients.listings.patch_listings_item, self.settings.seller_id,
                       item.channel_sku, marketplaceIds=[self.marketplace_id],
                       body=quantity_patch(self.settings.product_type, item.quantity))
        return self._api.call("patchListingsItem", call).payload

    def _by_feed(self, items: Sequence[PushItem]) -> list[PushResult]:
        results: list[PushResult] = []
        for start in range(0, len(items), MAX_MESSAGES):
            chunk = items[start:start + MAX_MESSAGES]
            results += self._feed.push(self.settings.seller_id, self.settings.product_type,
                                       chunk)
        return results

    def push_outcomes(
        self, pending: str, items: Sequence[PushItem], submitted_at: datetime
    ) -> list[PushResult] | None:
        """The outcome of feed ``pending`` (pushes above ``feed_threshold`` that Amazon was
        still processing when the push stopped waiting); None while it still is."""
        age = (self._clock() - submitted_at).total_seconds()
        return self._feed.collect(pending, items, age)

    def _failed(self, sku: str, message: str) -> PushResult:
        return PushResult(sku, ok=False, error=PermanentChannelError(message, channel=self.name))

    # -- shipments ------------------------------------------------------------------------

    def confirm_shipment(self, shipment: Shipment) -> ShipmentResult:
        """confirmShipment for the shipment's package, unless Amazon has it already."""
        return self._shipping.confirm(shipment)

    def close(self) -> None:
        self._http.close()


# -- configuration helpers ------------------------------------------------------------------


def _marketplace(name: str, marketplace: str, endpoint: str) -> Marketplace:
    found = find_marketplace(marketplace)
    if found is None:  # the settings model refuses it first
        raise ConfigError([f"channel {name!r}: marketplace: unknown {marketplace!r}"])
    marketplace_id, region = found
    try:
        base = _url(endpoint) if endpoint else PRODUCTION_ENDPOINTS[region]
    except ValueError as exc:
        raise ConfigError([f"channel {name!r}: endpoint: {exc}"]) from exc
    return Marketplace(base, marketplace_id, region)


def _url(value: str, default_path: str = "") -> str:
    """An http(s) URL with a host and nothing that does not belong in a base URL."""
    try:
        url = httpx.URL(value.strip())
    except httpx.InvalidURL as exc:
        raise ValueError("not a valid URL") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("must be an http:// or https:// URL with a host")
    if url.userinfo or url.query or url.fragment:
        raise ValueError("must not carry credentials, a query or a fragment")
    path = url.path.rstrip("/")
    return str(url.copy_with(path=path or default_path or "")).rstrip("/")


def _token_url(endpoint: str) -> str:
    """Amazon's LWA, unless the API is on loopback: an emulator serves its own token endpoint
    (and a real refresh token must not buy an access token that then goes to a local server)."""
    url = httpx.URL(endpoint) if endpoint else None  # validated by _marketplace already
    if url is not None and url.host in LOOPBACK:
        return str(url.copy_with(path=TOKEN_PATH))
    return LWA_TOKEN_URL


def _credentials(settings: AmazonSettings) -> dict[str, str]:
    return {
        "refresh_token": settings.refresh_token.get_secret_value(),
        "lwa_app_id": settings.lwa_app_id.get_secret_value(),
        "lwa_client_secret": settings.lwa_client_secret.get_secret_value(),
    }


def _secret_values(settings: AmazonSettings) -> list[str]:
    """What must never appear in a message: masked wherever an error quotes text."""
    return list(_credentials(settings).values())


__all__ = ["AmazonConnector", "AmazonSettings"]
