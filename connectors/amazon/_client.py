"""SP-API calls for one channel: python-amazon-sp-api clients built from explicit settings
only, per-operation rate limits, and every failure turned into channelsync's error tree.

- ``Client.__init__`` lets ``SP_API_DEFAULT_MARKETPLACE`` override the marketplace passed in,
  and the ``Marketplaces`` endpoints point at the sandbox when ``AWS_ENV=SANDBOX`` was set at
  import: the endpoint, marketplace id and region are set again after construction, the
  endpoint from :data:`PRODUCTION_ENDPOINTS` (or the channel's override), never from the enum.
- Credentials are looked up through providers (the environment and AWS Secrets Manager among
  them): only the one that reads the dict passed in code is allowed.
- The library never retries and knows no rate limits. Each operation gets a token bucket with
  Amazon's published usage plan, adapted to ``x-amzn-RateLimit-Limit`` when Amazon states
  another rate; the engine's retry policy handles what still fails.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, NoReturn

import httpx

from channelsync.errors import (
    ChannelError,
    PermanentChannelError,
    RetriableChannelError,
    ThrottledError,
)
from channelsync.sync.ratelimit import TokenBucket
from connectors._http import parse_retry_after, redact
from connectors.amazon._auth import TokenStore
from connectors.amazon._library import (
    ApiResponse,
    AuthorizationError,
    FeedsV20210630,
    FromCodeCredentialProvider,
    HttpxTransport,
    ListingsItems,
    Marketplaces,
    MissingCredentials,
    Orders,
    fill_query_params,
    sp_endpoint,
    sp_errors,
)
from connectors.amazon._transport import CredentialsRefused, Http

log = logging.getLogger(__name__)

PRODUCTION_ENDPOINTS = {
    "us-east-1": "https://sellingpartnerapi-na.amazon.com",
    "eu-west-1": "https://sellingpartnerapi-eu.amazon.com",
    "us-west-2": "https://sellingpartnerapi-fe.amazon.com",
}
RATE_HEADER = "x-amzn-RateLimit-Limit"
SNIPPET_CHARS = 200
_RETRIABLE_LIBRARY_ERRORS = (
    sp_errors.SellingApiServerException,
    sp_errors.SellingApiTemporarilyUnavailableException,
    sp_errors.SellingApiGatewayTimeoutException,
)


@dataclass(frozen=True)
class Marketplace:
    """What the library needs of a marketplace: it accepts any object with these three."""

    endpoint: str
    marketplace_id: str
    region: str


def marketplace_names() -> list[str]:
    return list(Marketplaces.__members__)


def find_marketplace(value: str) -> tuple[str, str] | None:
    """``(marketplace id, region)`` for a country code (``US``, ``DE``, ``UK``) or an id."""
    member = Marketplaces.__members__.get(value.strip().upper())
    if member is None:
        member = next((m for m in Marketplaces if m.marketplace_id == value.strip()), None)
    return None if member is None else (member.marketplace_id, member.region)


class FeedsClient(FeedsV20210630):
    """The library's Feeds client, plus getFeedDocument without the library's download (it
    fetches the report with an httpx client of its own: no timeout, no status check)."""

    @sp_endpoint("/feeds/2021-06-30/documents/{}", method="GET")
    def feed_document(self, feed_document_id: str, **kwargs: Any) -> Any:
        path = fill_query_params(kwargs.pop("path"), feed_document_id)
        return self._request(path, params=kwargs, add_marketplace=False)


@dataclass(frozen=True)
class Clients:
    """The library clients of one channel (untyped: the library has no annotations)."""

    orders: Any  # Orders API 2026-01-01
    orders_v0: Any  # Orders API v0: confirmShipment, which 2026-01-01 does not have
    listings: Any  # Listings Items API 2021-08-01
    feeds: Any  # FeedsClient, Feeds API 2021-06-30


def make_clients(
    marketplace: Marketplace, credentials: dict[str, str], token_class: type[Any], http: Http,
    timeout: float,
) -> Clients:
    build = partial(_client, marketplace=marketplace, credentials=credentials,
                    token_class=token_class, http=http, timeout=timeout)
    return Clients(orders=build(Orders, version="2026-01-01"),
                   orders_v0=build(Orders, version="v0"),
                   listings=build(ListingsItems, version="2021-08-01"),
                   feeds=build(FeedsClient))


def _client(
    cls: Any, *, marketplace: Marketplace, credentials: dict[str, str], token_class: type[Any],
    http: Http, timeout: float, **kwargs: Any,
) -> Any:
    client = cls(
        marketplace=marketplace,
        refresh_token=credentials["refresh_token"],
        credentials=credentials,
        credential_providers=(FromCodeCredentialProvider,),  # never the environment or AWS
        auth_token_client_class=token_class,
        timeout=timeout,
        **kwargs,
    )
    # With SP_API_DEFAULT_MARKETPLACE set, __init__ ignored the marketplace passed in.
    client.endpoint = marketplace.endpoint
    client.marketplace_id = marketplace.marketplace_id
    client.region = marketplace.region
    client._transport.close()  # the client's own httpx client; the channel's is used instead
    client._transport = HttpxTransport(client=http.client)
    return client


@dataclass(frozen=True)
class RateLimit:
    rate: float  # requests per second
    burst: int


class SpApi:
    """Calls SP-API operations for one channel: per-operation rate limits (adapted from
    ``x-amzn-RateLimit-Limit``) and every failure as a channelsync error."""

    def __init__(
        self,
        http: Http,
        store: TokenStore,
        limits: dict[str, RateLimit],
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = http
        self.store = store
        # A wait of more than a few seconds (searchOrders past its burst: one call every
        # three minutes) is not slept through: the call is Deferred to a later cycle.
        self._buckets = {op: TokenBucket(lim.rate, lim.burst, sleep=sleep, clock=clock, name=op)
                         for op, lim in limits.items()}

    @property
    def channel(self) -> str:
        return self.http.channel

    def call(self, operation: str, fn: Callable[[], Any]) -> Any:
        """Run one library call (``fn``) for ``operation`` and return its ``ApiResponse``."""
        bucket = self._buckets.get(operation)
        if bucket is not None:
            bucket.acquire()
        try:
            response = fn()
        except Exception as exc:
            self._raise(operation, exc)
        if not isinstance(response, ApiResponse):
            raise RetriableChannelError(f"{operation}: no response", channel=self.channel)
        self._adapt(operation, response.headers)
        return response

    def transfer(self, what: str, fn: Callable[[], Any]) -> Any:
        """A feed document upload or download to a presigned URL: no SP-API rate limit."""
        try:
            return fn()
        except CredentialsRefused as exc:  # the URL expired (after 5 minutes): ask a new one
            raise RetriableChannelError(f"{what}: the presigned URL was refused (HTTP "
                                        f"{exc.status})", channel=self.channel,
                                        status=exc.status) from exc
        except Exception as exc:
            self._raise(what, exc)

    def payload(self, operation: str, response: Any) -> dict[str, Any]:
        payload = response.payload
        if not isinstance(payload, dict) or not payload:
            raise self.malformed(operation, payload)
        return payload

    def malformed(self, operation: str, body: Any) -> RetriableChannelError:
        snippet = redact(repr(body)[:SNIPPET_CHARS], self.http.secrets)
        return RetriableChannelError(
            f"{operation}: unexpected response {snippet}", channel=self.channel)

    def _raise(self, operation: str, exc: Exception) -> NoReturn:
        error = self._convert(operation, exc)
        if isinstance(error, CredentialsRefused) or error.status == 403:
            self.store.clear()  # the next call fetches a new token
        if error is exc:
            raise error
        raise error from exc

    def _convert(self, operation: str, exc: Exception) -> ChannelError:
        kw: dict[str, Any] = {"channel": self.channel}
        if isinstance(exc, ChannelError):
            if not exc.channel:
                exc.channel = self.channel
            return exc
        if isinstance(exc, sp_errors.SellingApiException):
            return self._library_error(operation, exc)
        if isinstance(exc, AuthorizationError):
            status = exc.status_code if isinstance(exc.status_code, int) else None
            cls = CredentialsRefused if status in (400, 401, 403) else RetriableChannelError
            return cls(f"{operation}: the token endpoint refused (HTTP {status})", status=status,
                       **kw)
        if isinstance(exc, MissingCredentials):
            return CredentialsRefused(f"{operation}: credentials are missing", **kw)
        if isinstance(exc, httpx.TimeoutException):
            return RetriableChannelError(f"{operation}: timed out ({type(exc).__name__})", **kw)
        if isinstance(exc, httpx.RequestError):
            detail = redact(str(exc), self.http.secrets)
            return RetriableChannelError(f"{operation}: {type(exc).__name__}: {detail}", **kw)
        if isinstance(exc, ValueError):  # a token or SP-API body that is not JSON
            return RetriableChannelError(f"{operation}: the answer is not JSON", **kw)
        raise exc

    def _library_error(self, operation: str, exc: Any) -> ChannelError:
        errors = exc.error if isinstance(exc.error, list) else []
        first = errors[0] if errors else None
        status = exc.code if exc.code != sp_errors.SellingApiException.code else None
        text = f"{operation}: HTTP {status or '?'}{self.http.detail(first)}"
        kw: dict[str, Any] = {"channel": self.channel, "status": status}
        headers = exc.headers or {}
        if isinstance(exc, sp_errors.SellingApiRequestThrottledException):
            delay = parse_retry_after(headers.get("Retry-After"))
            return ThrottledError(f"{text}: throttled", retry_after=delay, **kw)
        if isinstance(exc, _RETRIABLE_LIBRARY_ERRORS) or status is None:
            return RetriableChannelError(text, **kw)
        if isinstance(exc, sp_errors.SellingApiForbiddenException):
            if _expired(first):  # a token revoked or expired early: a new one will do
                return RetriableChannelError(f"{text}: the access token expired", **kw)
            return CredentialsRefused(f"{text}: the credentials were refused", **kw)
        return PermanentChannelError(text, **kw)

    def _adapt(self, operation: str, headers: Any) -> None:
        """Amazon states the rate it applies to this seller and operation: follow it."""
        bucket = self._buckets.get(operation)
        value = (headers or {}).get(RATE_HEADER)
        try:
            rate = float(value) if isinstance(value, str) else None
        except ValueError:
            rate = None
        if bucket is not None and rate is not None and math.isfinite(rate) and rate > 0:
            if rate != bucket.rate:
                log.debug("%s: %s rate limit %s/s", self.channel, operation, rate)
            bucket.rate = rate


def _expired(error: Any) -> bool:
    if not isinstance(error, dict):
        return False
    text = f"{error.get('message', '')} {error.get('details', '')}".lower()
    return "expired" in text
