"""The channel's one httpx client, shared by the SP-API clients, the token client and feed
document transfers.

A 429 or 5xx whose body has no ``errors`` key comes back from the library as an empty
``ApiResponse`` without its status. The response hook raises for every error response the
library would swallow or could not classify (401, 502, a token endpoint refusal), so that no
failure ever reads as an empty page; error responses with Amazon's error body are left to the
library's own exceptions. With an ``http://`` endpoint the library's Host header loses a
character: the request hook sets it from the URL.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import httpx

from channelsync.errors import (
    ChannelError,
    PermanentChannelError,
    RetriableChannelError,
    ThrottledError,
)
from connectors._http import install_log_redaction, parse_retry_after, redact

SNIPPET_CHARS = 200
_SAFE_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,80}")
# Statuses the library turns into its own exception when the body carries ``errors``.
LIBRARY_STATUSES = frozenset({400, 403, 404, 409, 413, 415, 429, 500, 503, 504})


class CredentialsRefused(PermanentChannelError):
    """The token endpoint or the API refused the channel's credentials: no call will pass."""


class Http:
    """The channel's httpx client; error responses the library would swallow raise here."""

    def __init__(
        self,
        channel: str,
        *,
        timeout: float,
        token_url: str,
        secrets: Sequence[str],
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.channel = channel
        self.token_url = httpx.URL(token_url)
        self.secrets = tuple(s for s in secrets if s)
        self.client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,  # a redirect would carry the access token elsewhere
            event_hooks={"request": [_fix_host], "response": [self._check]},
        )
        install_log_redaction()  # presigned feed URLs carry signatures in their query

    def close(self) -> None:
        self.client.close()

    def put(self, url: str, content: bytes, content_type: str) -> None:
        self.client.put(url, content=content, headers={"Content-Type": content_type})

    def get(self, url: str) -> bytes:
        return self.client.get(url).content

    def _check(self, response: httpx.Response) -> None:
        if response.is_success:
            return
        response.read()
        body = _json(response)
        is_token = response.request.url.copy_with(query=None) == self.token_url
        has_errors = isinstance(body, dict) and bool(body.get("errors"))
        if not is_token and has_errors and response.status_code in LIBRARY_STATUSES:
            return  # the library raises its own exception, mapped by SpApi.call
        raise self.status_error(response, body, is_token)

    def status_error(self, response: httpx.Response, body: Any, is_token: bool) -> ChannelError:
        status = response.status_code
        what = f"{response.request.method} {response.request.url.path}"
        kw: dict[str, Any] = {"channel": self.channel, "status": status}
        detail = self.detail(body if is_token else _first_error(body), brief=is_token)
        if status == 429:
            delay = parse_retry_after(response.headers.get("Retry-After"))
            return ThrottledError(f"{what}: throttled (HTTP 429){detail}", retry_after=delay, **kw)
        if status >= 500 or status == 408:
            return RetriableChannelError(f"{what}: HTTP {status}{detail}", **kw)
        if status in (401, 403) or (is_token and status == 400):
            return CredentialsRefused(
                f"{what}: HTTP {status}, the credentials were refused{detail}", **kw)
        if status < 400:
            return PermanentChannelError(f"{what}: HTTP {status} redirect; not followed", **kw)
        return PermanentChannelError(f"{what}: HTTP {status}{detail}", **kw)

    def detail(self, error: Any, *, brief: bool = False) -> str:
        """The channel's error code and message, shortened and masked (only the code for LWA)."""
        if not isinstance(error, dict):
            return ""
        code = error.get("code", error.get("error"))
        code = code if isinstance(code, str) and _SAFE_CODE.fullmatch(code) else ""
        message = "" if brief else " ".join(str(error.get("message") or "").split())
        text = redact(": ".join(p for p in (code, message[:SNIPPET_CHARS]) if p), self.secrets)
        return f" ({text})" if text else ""


def _fix_host(request: httpx.Request) -> None:
    request.headers["Host"] = request.url.netloc.decode("ascii")


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _first_error(body: Any) -> Any:
    errors = body.get("errors") if isinstance(body, dict) else None
    return errors[0] if isinstance(errors, list) and errors else None
