"""Access tokens from Login with Amazon, one store per channel.

The library caches tokens in a module-level cache keyed by the refresh token alone, with a
TTL read from the environment: two channels with one refresh token but different LWA endpoints
or client secrets would share a token, and a TTL set longer than the token lives would reuse
an expired one. Each channel gets its own token client class instead (the token URL is the
``scheme + host + path`` class attributes of ``AccessTokenClient``), whose tokens live in the
channel's :class:`TokenStore` until shortly before ``expires_in``. The library's cache is
never used.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar, TypeGuard

import httpx

from channelsync.errors import RetriableChannelError
from connectors.amazon._library import (
    AccessTokenClient,
    AccessTokenResponse,
    Credentials,
    HttpxTransport,
)

LWA_TOKEN_URL = "https://api.amazon.com/auth/o2/token"
TOKEN_PATH = "/auth/o2/token"
TOKEN_MARGIN = 60.0  # seconds before expiry a token is no longer used
DEFAULT_LIFETIME = 3600.0


class TokenStore:
    """One channel's access token, kept until shortly before it expires."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._token: dict[str, Any] | None = None
        self._until = 0.0

    def get(self, fetch: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        with self._lock:  # one fetch at a time: concurrent callers wait for it
            if self._token is None or self._clock() >= self._until:
                token = fetch()
                lifetime = token.get("expires_in")
                seconds = float(lifetime) if _is_number(lifetime) else DEFAULT_LIFETIME
                self._token, self._until = token, self._clock() + seconds - TOKEN_MARGIN
            return self._token

    def clear(self) -> None:
        with self._lock:
            self._token = None


class _ChannelTokenClient(AccessTokenClient):
    """The library's token client, with the channel's HTTP client and token store."""

    http: ClassVar[httpx.Client]
    store: ClassVar[TokenStore]

    def __init__(
        self,
        refresh_token: str | None = None,
        credentials: Any = None,
        proxies: Any = None,
        verify: bool = True,
    ) -> None:
        # Not the library's __init__: it opens an httpx client of its own, without a timeout.
        self.cred = Credentials(refresh_token, credentials)
        self.proxies, self.verify = proxies, verify
        self._transport = HttpxTransport(client=self.http)

    def get_auth(self) -> Any:
        return AccessTokenResponse(**self.store.get(self._fetch))

    def _fetch(self) -> dict[str, Any]:
        token = self._request(self.scheme + self.host + self.path, self.data, self.headers)
        if not isinstance(token, dict) or not isinstance(token.get("access_token"), str):
            # Never quoted: the body of a token response is a credential.
            raise RetriableChannelError("the token endpoint answered without an access_token")
        return token


def token_client_class(url: str, http: httpx.Client, store: TokenStore) -> type[Any]:
    parsed = httpx.URL(url)
    attributes = {
        "scheme": f"{parsed.scheme}://",
        "host": parsed.netloc.decode("ascii"),
        "path": parsed.raw_path.decode("ascii"),
        "http": http,
        "store": store,
    }
    return type("ChannelTokenClient", (_ChannelTokenClient,), attributes)


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0
