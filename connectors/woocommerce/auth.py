"""OAuth 1.0a one-legged signing (RFC 5849), as WooCommerce requires over plain HTTP.

The oauth parameters travel in the query string. The signature covers the method, the base
URL (scheme, host, non-default port, path; no query) and every query parameter; a JSON body is
not covered (RFC 5849 3.4.1.3 only includes form-encoded bodies, and WooCommerce only reads
``$_GET`` and ``$_POST``).
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
from collections.abc import Callable, Generator, Iterable
from typing import Literal
from urllib.parse import quote

import httpx
from pydantic import SecretStr

SignatureMethod = Literal["HMAC-SHA1", "HMAC-SHA256"]
DIGESTS: dict[str, str] = {"HMAC-SHA1": "sha1", "HMAC-SHA256": "sha256"}


def percent_encode(value: str) -> str:
    """RFC 3986 percent-encoding: everything but ALPHA, DIGIT, '-', '.', '_', '~'."""
    return quote(value, safe="~")


def base_string_uri(url: httpx.URL) -> str:
    host = f"[{url.host}]" if ":" in url.host else url.host  # IPv6 literal
    port = f":{url.port}" if url.port is not None else ""  # httpx drops default ports
    path = url.raw_path.split(b"?", 1)[0].decode("ascii") or "/"
    return f"{url.scheme.lower()}://{host.lower()}{port}{path}"


def normalized_parameters(params: Iterable[tuple[str, str]]) -> str:
    pairs = sorted((percent_encode(name), percent_encode(value)) for name, value in params)
    return "&".join(f"{name}={value}" for name, value in pairs)


def signature_base_string(method: str, url: httpx.URL, params: Iterable[tuple[str, str]]) -> str:
    parts = (method.upper(), base_string_uri(url), normalized_parameters(params))
    return "&".join((parts[0], percent_encode(parts[1]), percent_encode(parts[2])))


def sign(base_string: str, consumer_secret: str, method: SignatureMethod) -> str:
    key = percent_encode(consumer_secret) + "&"  # one-legged: the token secret is empty
    digest = hmac.new(key.encode(), base_string.encode(), DIGESTS[method]).digest()
    return base64.b64encode(digest).decode("ascii")


class OAuth1QueryAuth(httpx.Auth):
    """Signs each request with OAuth 1.0a (no token) and puts the oauth_* params in the query."""

    def __init__(
        self,
        consumer_key: SecretStr,
        consumer_secret: SecretStr,
        signature_method: SignatureMethod = "HMAC-SHA256",
        *,
        clock: Callable[[], float] = time.time,
        nonce: Callable[[], str] = lambda: secrets.token_hex(16),
    ) -> None:
        self._key = consumer_key
        self._secret = consumer_secret
        self.signature_method: SignatureMethod = signature_method
        self._clock = clock
        self._nonce = nonce

    def __repr__(self) -> str:
        return f"OAuth1QueryAuth(signature_method={self.signature_method!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        oauth = self.oauth_params()
        params = [*request.url.params.multi_items(), *oauth.items()]
        base = signature_base_string(request.method, request.url, params)
        secret = self._secret.get_secret_value()
        oauth["oauth_signature"] = sign(base, secret, self.signature_method)
        request.url = request.url.copy_merge_params(oauth)
        yield request

    def oauth_params(self) -> dict[str, str]:
        return {
            "oauth_consumer_key": self._key.get_secret_value(),
            "oauth_nonce": self._nonce(),
            "oauth_signature_method": self.signature_method,
            "oauth_timestamp": str(int(self._clock())),
            "oauth_version": "1.0",
        }
