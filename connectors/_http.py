"""Shared HTTP plumbing for httpx-based connectors.

``JsonApi`` is one channel's httpx client: timeouts, a User-Agent, no redirects, and every
failure turned into the project's error tree at this boundary (``raise ... from exc``):

- 429 -> ``ThrottledError`` with ``retry_after`` from ``Retry-After`` (seconds or HTTP-date);
- 5xx, 408, timeouts, connection and protocol errors -> ``RetriableChannelError``;
- 401/403 -> ``PermanentChannelError`` naming only the channel's error code, never its text;
- 3xx and other 4xx -> ``PermanentChannelError``;
- a body that is not JSON, or not the shape the caller expects -> ``RetriableChannelError``
  "malformed response" with the first 200 characters of the body.

Messages carry the method and path, never a query string or header: signed requests put
credentials there. Known secrets and credential-looking query parameters are also masked in
any body text quoted, and in the URLs httpx itself logs.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from channelsync.errors import (
    ChannelError,
    PermanentChannelError,
    RetriableChannelError,
    ThrottledError,
)

USER_AGENT = "channelsync/0.1"
SNIPPET_CHARS = 200
_TAG = re.compile(r"<[^>]*>")
MASK = "***"
_SENSITIVE_PARAM = re.compile(
    r"\b((?:oauth_\w+|consumer_key|consumer_secret|access_token|token|signature)=)[^&\s\"'<>]*",
    re.IGNORECASE,
)
_SAFE_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,80}")

Params = Mapping[str, str | int]


@dataclass(frozen=True)
class JsonResponse:
    body: Any
    headers: httpx.Headers
    status: int


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """``text`` with credential-looking query parameters and the given secrets masked."""
    text = _SENSITIVE_PARAM.sub(rf"\1{MASK}", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        return _seconds_until(value, now or datetime.now(UTC))
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _seconds_until(http_date: str, now: datetime) -> float | None:
    try:
        when = parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class _RedactUrls(logging.Filter):
    """httpx logs every request URL at INFO; signed URLs carry the consumer key."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact(str(arg)) if isinstance(arg, httpx.URL) else arg for arg in record.args
            )
        return True


def install_log_redaction() -> None:
    httpx_logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactUrls) for f in httpx_logger.filters):
        httpx_logger.addFilter(_RedactUrls())


class JsonApi:
    """A JSON-over-HTTP client for one channel that raises only channelsync errors."""

    def __init__(
        self,
        channel: str,
        base_url: str,
        *,
        auth: httpx.Auth | None = None,
        timeout: float = 30.0,
        verify: bool = True,
        transport: httpx.BaseTransport | None = None,
        secrets: Sequence[str] = (),
    ) -> None:
        self.channel = channel
        self._secrets = tuple(s for s in secrets if s)
        self._client = httpx.Client(
            base_url=base_url,
            auth=auth,
            timeout=httpx.Timeout(timeout),
            verify=verify,
            transport=transport,
            follow_redirects=False,  # a redirect would drop or invalidate the credentials
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )
        install_log_redaction()

    def __repr__(self) -> str:
        return f"JsonApi(channel={self.channel!r}, base_url={str(self._client.base_url)!r})"

    def get_list(self, path: str, params: Params | None = None) -> JsonResponse:
        return self._expect(self.request("GET", path, params=params), list, f"GET {path}")

    def post_dict(self, path: str, body: Any) -> JsonResponse:
        return self._expect(self.request("POST", path, json=body), dict, f"POST {path}")

    def request(
        self, method: str, path: str, *, params: Params | None = None, json: Any = None
    ) -> JsonResponse:
        what = f"{method} {path}"
        try:
            response = self._client.request(method, path, params=params, json=json)
        except httpx.TimeoutException as exc:
            raise self._retriable(f"{what}: timed out ({type(exc).__name__})") from exc
        except httpx.RequestError as exc:  # connection, protocol, proxy, decoding
            detail = redact(str(exc), self._secrets)
            raise self._retriable(f"{what}: {type(exc).__name__}: {detail}") from exc
        error = self.error_for(response, what)
        if error is not None:
            raise error
        return JsonResponse(self._decode(response, what), response.headers, response.status_code)

    def close(self) -> None:
        self._client.close()

    def error_for(self, response: httpx.Response, what: str) -> ChannelError | None:
        """The error a non-2xx response stands for (None for a success)."""
        status = response.status_code
        if status < 300:
            return None
        kw: dict[str, Any] = {"channel": self.channel, "status": status}
        if status == 429:
            delay = parse_retry_after(response.headers.get("Retry-After"))
            return ThrottledError(f"{what}: throttled (HTTP 429)", retry_after=delay, **kw)
        if status >= 500 or status == 408:
            return RetriableChannelError(f"{what}: HTTP {status}{self._detail(response)}", **kw)
        if status in (401, 403):
            code = self._error_code(response)
            return PermanentChannelError(
                f"{what}: HTTP {status}, the channel refused the credentials{code}", **kw
            )
        if status < 400:
            target = self._redirect_target(response)
            return PermanentChannelError(
                f"{what}: HTTP {status} redirect to {target}; set the endpoint to the final URL",
                **kw,
            )
        return PermanentChannelError(f"{what}: HTTP {status}{self._detail(response)}", **kw)

    def malformed(self, what: str, text: str, status: int | None = None) -> RetriableChannelError:
        snippet = redact(text[:SNIPPET_CHARS], self._secrets)
        return RetriableChannelError(
            f"{what}: malformed response: {snippet!r}", channel=self.channel, status=status
        )

    def _retriable(self, message: str) -> RetriableChannelError:
        return RetriableChannelError(message, channel=self.channel)

    def _decode(self, response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both are
            raise self.malformed(what, response.text, response.status_code) from exc

    def _expect(self, response: JsonResponse, shape: type, what: str) -> JsonResponse:
        if not isinstance(response.body, shape):
            text = json.dumps(response.body, default=str)
            raise self.malformed(what, text, response.status)
        return response

    def _detail(self, response: httpx.Response) -> str:
        """The channel's own error text, shortened and masked."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and ("code" in body or "message" in body):
            text = f"{body.get('code', '')}: {body.get('message', '')}"
        else:
            text = response.text
        # WordPress puts HTML in its messages, and a proxy's 5xx page is all HTML: text only.
        text = _TAG.sub(" ", text)
        text = redact(" ".join(text.split())[:SNIPPET_CHARS], self._secrets)
        return f": {text}" if text else ""

    def _error_code(self, response: httpx.Response) -> str:
        """Only a machine code such as ``woocommerce_rest_authentication_error``: safe to show."""
        try:
            code = response.json().get("code")
        except (ValueError, AttributeError):
            return ""
        return f" ({code})" if isinstance(code, str) and _SAFE_CODE.fullmatch(code) else ""

    def _redirect_target(self, response: httpx.Response) -> str:
        location = response.headers.get("Location", "")
        try:
            url = response.request.url.join(location)
        except httpx.InvalidURL:
            return "an invalid location"
        return str(url.copy_with(query=None, fragment=None, userinfo=None))
