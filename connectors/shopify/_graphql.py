"""Shopify's Admin GraphQL endpoint: one POST per query, cost-based throttling, error mapping.

Shopify meters a leaky bucket of query cost (``extensions.cost.throttleStatus``: the bucket
size, what is left and how fast it refills). Each answer's status is kept, and before a query
whose cost would not fit the bucket now (counting the refill since), the client sleeps until it
would (or, where the engine allows, leaves a query that would wait longer than a cycle should
to a later cycle: ``ratelimit.deferral``): the cheapest way through the limit is not to hit
it. When Shopify throttles anyway it says so two ways, both mapped to ``ThrottledError``: an
HTTP 429 (``Retry-After``) and an HTTP 200 with a ``THROTTLED`` error, where the wait is
(requested - available) / restore rate.
HTTP failures are mapped by ``JsonApi``, which also masks the access token in any quoted text.
A query may name fields it can do without (``denied_ok``): an answer whose only errors are
ACCESS_DENIED on those fields (Shopify nulls them and says so) is taken, with a warning once.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Collection, Generator, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeGuard

import httpx
from pydantic import SecretStr

from channelsync.errors import (
    ChannelError,
    PermanentChannelError,
    RetriableChannelError,
    ThrottledError,
)
from channelsync.sync.ratelimit import deferral
from connectors._http import JsonApi, redact
from connectors._time import http_date
from connectors.shopify._orders import ShapeError, next_cursor, nodes
from connectors.shopify._queries import Query

GRAPHQL_PATH = "/graphql.json"
TOKEN_HEADER = "X-Shopify-Access-Token"
MAX_WAIT = 60.0  # seconds: longer than any refill a single query (cost <= 1000) needs
RETRIABLE_CODES = frozenset({"INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE", "TIMEOUT"})
_MESSAGE_CHARS = 300

Sleep = Callable[[float], None]
Clock = Callable[[], float]


class _TokenAuth(httpx.Auth):
    """Puts the access token on each request; the token never sits in a header dict we log."""

    def __init__(self, token: SecretStr) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[TOKEN_HEADER] = self._token.get_secret_value()
        yield request


@dataclass(frozen=True)
class ThrottleStatus:
    """The cost bucket as Shopify last reported it, and when (monotonic seconds)."""

    maximum: float
    available: float
    restore_rate: float
    at: float

    def available_at(self, now: float) -> float:
        refilled = self.available + self.restore_rate * max(0.0, now - self.at)
        return min(self.maximum, refilled)

    def wait_for(self, cost: float, now: float) -> float:
        """Seconds until ``cost`` fits the bucket (never more than the bucket can hold)."""
        if self.restore_rate <= 0:
            return 0.0
        missing = min(cost, self.maximum) - self.available_at(now)
        return max(0.0, missing / self.restore_rate)


def throttle_status(extensions: Any, now: float) -> ThrottleStatus | None:
    """``extensions.cost.throttleStatus`` of an answer, if it has a usable one."""
    cost = extensions.get("cost") if isinstance(extensions, dict) else None
    status = cost.get("throttleStatus") if isinstance(cost, dict) else None
    if not isinstance(status, dict):
        return None
    size, left, rate = (status.get(k) for k in ("maximumAvailable", "currentlyAvailable",
                                                  "restoreRate"))
    if not (_is_number(size) and _is_number(left) and _is_number(rate)):
        return None
    return ThrottleStatus(float(size), float(left), float(rate), now)


class GraphQLClient:
    """Sends GraphQL documents to one shop and returns their ``data``, or raises our errors."""

    def __init__(
        self,
        channel: str,
        api_url: str,
        token: SecretStr,
        *,
        timeout: float,
        transport: httpx.BaseTransport | None = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        self.channel = channel
        self._token = token
        self._sleep, self._clock = sleep, clock
        self.server_time: datetime | None = None  # Shopify's clock at its last answer
        self._api = JsonApi(channel, api_url, auth=_TokenAuth(token), timeout=timeout,
                            transport=transport, secrets=[token.get_secret_value()])
        self._status: ThrottleStatus | None = None
        self._log = logging.getLogger(f"{__name__}.{channel}")
        self._denied_warned: set[str] = set()

    def __repr__(self) -> str:
        return f"GraphQLClient({self._api!r})"

    @property
    def status(self) -> ThrottleStatus | None:
        return self._status

    def run(self, query: Query, variables: Mapping[str, Any], cost: int | None = None, *,
            denied_ok: Collection[str] = ()) -> Any:
        """The ``data`` of ``query``; waits first if the bucket cannot take its cost yet.
        ``denied_ok``: fields the answer may lack for want of an access scope."""
        self._wait(query.cost if cost is None else cost, query.name)
        what = f"POST {GRAPHQL_PATH} ({query.name})"
        body = {"query": query.text, "variables": dict(variables), "operationName": query.name}
        try:
            response = self._api.request("POST", GRAPHQL_PATH, json=body)
            self.server_time = http_date(response.headers)
        except PermanentChannelError as exc:
            if exc.status == 404:  # Shopify's answer to an API version it does not serve
                raise PermanentChannelError(
                    f"{exc} (is the API version in the URL supported by this shop?)",
                    channel=self.channel, status=404) from exc
            raise
        answer = response.body
        if not isinstance(answer, dict):
            raise self._api.malformed(what, str(answer), response.status)
        status = throttle_status(answer.get("extensions"), self._clock())
        if status is not None:
            self._status = status
        if answer.get("errors") and not self._only_denied(answer, denied_ok, query.name):
            raise self._error(what, answer)
        data = answer.get("data")
        if not isinstance(data, dict):
            raise self._api.malformed(what, str(answer), response.status)
        return data

    def paged(
        self, query: Query, variables: Mapping[str, Any], field: str
    ) -> Iterator[dict[str, Any]]:
        """The nodes of the top-level connection ``field``, following every page."""
        after: str | None = None
        while True:
            data = self.run(query, {**variables, "after": after})
            try:
                found = nodes(data.get(field), field)
                after = next_cursor(data[field], field)
            except ShapeError as exc:
                raise self.malformed(f"{field}: {exc}", str(data)) from exc
            yield from found
            if after is None:
                return

    def malformed(self, what: str, text: str) -> RetriableChannelError:
        return self._api.malformed(what, text)

    def close(self) -> None:
        self._api.close()

    def _wait(self, cost: int, name: str) -> None:
        if self._status is None:
            return
        # Rounded up, as for THROTTLED: waiting the exact time can lose to float rounding.
        delay = min(MAX_WAIT, math.ceil(self._status.wait_for(cost, self._clock()) * 100) / 100)
        later = deferral(delay, name, reason="Shopify's query cost budget")
        if later is not None:  # not slept through: the engine makes the call later
            later.channel = self.channel
            raise later
        if delay > 0:
            self._log.debug("waiting %.2f s for the cost bucket before %s (cost %d)",
                            delay, name, cost)
            self._sleep(delay)

    def _only_denied(self, answer: dict[str, Any], fields: Collection[str], name: str) -> bool:
        """Whether every error is an ACCESS_DENIED on one of ``fields`` of an answer with data
        (warned about once per field and query)."""
        errors = answer["errors"]
        if not fields or not isinstance(errors, list) or not isinstance(answer.get("data"), dict):
            return False
        denied: dict[str, Any] = {}  # field -> its first error
        for item in errors:
            path = item.get("path") if isinstance(item, dict) else None
            if _code(item) != "ACCESS_DENIED" or not isinstance(path, list) or not path or \
                    path[-1] not in fields:
                return False
            denied.setdefault(str(path[-1]), item)
        for field in sorted(set(denied) - self._denied_warned):
            self._denied_warned.add(field)
            self._log.warning("%s: Shopify denies access to %s (%s); going on without it",
                              name, field, self._messages([denied[field]]))
        return True

    def _error(self, what: str, answer: dict[str, Any]) -> ChannelError:
        """The error an answer's top-level ``errors`` stand for."""
        errors = answer["errors"]
        items = errors if isinstance(errors, list) else [{"message": str(errors)}]
        codes = {_code(item) for item in items}
        text = self._messages(items)
        kw: dict[str, Any] = {"channel": self.channel, "status": 200}
        if "THROTTLED" in codes:
            return ThrottledError(f"{what}: throttled by query cost ({text})",
                                  retry_after=self._retry_after(answer), **kw)
        if "MAX_COST_EXCEEDED" in codes:
            return PermanentChannelError(
                f"{what}: the query costs more than Shopify allows, a page size is too large: "
                f"{text}", **kw)
        if codes & RETRIABLE_CODES:
            return RetriableChannelError(f"{what}: {text}", **kw)
        return PermanentChannelError(f"{what}: Shopify refused the query: {text}", **kw)

    def _retry_after(self, answer: dict[str, Any]) -> float | None:
        extensions = answer.get("extensions")
        cost = extensions.get("cost") if isinstance(extensions, dict) else None
        requested = cost.get("requestedQueryCost") if isinstance(cost, dict) else None
        if self._status is None or not _is_number(requested):
            return None
        return math.ceil(self._status.wait_for(float(requested), self._status.at) * 100) / 100

    def _messages(self, items: list[Any]) -> str:
        parts = []
        for item in items:
            message = item.get("message") if isinstance(item, dict) else item
            code = _code(item)
            parts.append(f"{code}: {message}" if code else str(message))
        text = "; ".join(parts)[:_MESSAGE_CHARS]
        return redact(text, [self._token.get_secret_value()])


def _code(item: Any) -> str:
    extensions = item.get("extensions") if isinstance(item, dict) else None
    code = extensions.get("code") if isinstance(extensions, dict) else None
    return code if isinstance(code, str) else ""


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
