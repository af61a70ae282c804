"""Order webhooks that make a channel pull early. Polling stays the source of truth.

A delivery is only a nudge: its body is never parsed, only authenticated. The signature
is a base64 HMAC-SHA256 of the raw body with the channel's ``webhook_secret``, compared in
constant time. A valid, new delivery calls ``trigger(channel)`` (the daemon brings that
channel's cycle forward); a repeated one is answered and ignored.

WooCommerce specifics, from ``WC_Webhook`` in WooCommerce's source:

- When a webhook is created or activated, WooCommerce POSTs a ping whose body is
  ``webhook_id=<id>``, unsigned and with no delivery id, and only accepts the webhook on
  a 200. Such a ping is answered 200 and triggers nothing: it is no order change, and an
  unauthenticated caller gains nothing from it. Any other unsigned call gets 401.
- ``X-WC-Webhook-Delivery-ID`` is a hash of the webhook id and the current *second*, so
  two orders changed in the same second share it. Deliveries are therefore told apart by
  that id together with a digest of the body; a real duplicate repeats both.
- WooCommerce never retries and disables a webhook after five failed deliveries, so every
  authentic delivery gets a 2xx, even for a disabled channel.

Shopify (``X-Shopify-Hmac-Sha256``, same scheme) retries and duplicates deliveries; they
share ``X-Shopify-Event-Id``, the dedupe key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from channelsync.config import Config
from channelsync.service.web import MAX_BODY, in_thread, read_body, text

log = logging.getLogger(__name__)

REMEMBERED_DELIVERIES = 1000  # per channel
WEBHOOK_PATH = "/webhooks/{channel}"
_WC_PING = re.compile(rb"webhook_id=[0-9]+")


@dataclass(frozen=True)
class Scheme:
    signature_header: str  # lower-case
    delivery_header: str  # lower-case; the dedupe key
    body_in_key: bool  # the delivery id alone is not unique
    ping: re.Pattern[bytes] | None = None  # an unsigned body accepted with 200


SCHEMES: dict[str, Scheme] = {
    "woocommerce": Scheme("x-wc-webhook-signature", "x-wc-webhook-delivery-id", True, _WC_PING),
    "shopify": Scheme("x-shopify-hmac-sha256", "x-shopify-event-id", False),
}


def signature(secret: str, body: bytes) -> str:
    """base64(HMAC-SHA256(secret, body)), as WooCommerce and Shopify send it."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


class WebhookReceiver:
    """Authenticates deliveries for ``POST /webhooks/<channel>`` and triggers pulls.

    ``trigger(channel)`` must be cheap and thread-safe; it is called outside any lock,
    once per new delivery.
    """

    def __init__(
        self, config: Config, trigger: Callable[[str], None], *,
        remember: int = REMEMBERED_DELIVERIES,
    ) -> None:
        self._channels = {c.name: c for c in config.channels}
        self._trigger = trigger
        self._remember = remember
        self._seen: dict[str, OrderedDict[str, None]] = {}
        self._lock = threading.Lock()

    def reconfigure(self, config: Config) -> None:
        """After a config reload: new channels and secrets; remembered deliveries stay."""
        with self._lock:
            self._channels = {c.name: c for c in config.channels}

    def handle(
        self, channel: str, headers: Mapping[str, str], body: bytes, *, remote: str = ""
    ) -> tuple[int, str]:
        """(HTTP status, a short message) for one delivery. ``remote`` is only logged."""
        config = self._channels.get(channel)
        if config is None or config.webhook_secret is None:
            return 404, f"no webhook endpoint for channel {channel!r}"
        scheme = SCHEMES.get(config.type)
        if scheme is None:
            known = ", ".join(sorted(SCHEMES))
            return 404, (f"channel {channel!r} is of type {config.type!r}, which has no "
                         f"webhooks channelsync understands (only {known})")
        lower = {k.lower(): v for k, v in headers.items()}
        given = lower.get(scheme.signature_header, "").strip()
        if not given:
            if scheme.ping is not None and scheme.ping.fullmatch(body):
                log.info("%s: webhook ping from %s answered", channel, _who(remote, lower))
                return 200, "pong"
            log.warning("%s: webhook without a signature from %s rejected", channel,
                        _who(remote, lower))
            return 401, "missing signature"
        if not self._authentic(config.webhook_secret, given, body):
            log.warning("%s: webhook with an invalid signature from %s rejected", channel,
                        _who(remote, lower))
            return 401, "invalid signature"
        if not config.enabled:
            return 200, "channel disabled; ignored"
        return self._deliver(channel, _delivery_key(scheme, lower, body))

    @staticmethod
    def _authentic(secret: SecretStr, given: str, body: bytes) -> bool:
        expected = signature(secret.get_secret_value(), body)
        return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))

    def _deliver(self, channel: str, key: str | None) -> tuple[int, str]:
        if key is not None and not self._first_time(channel, key):
            log.debug("%s: duplicate webhook delivery ignored", channel)
            return 200, "duplicate delivery; ignored"
        try:
            self._trigger(channel)
        except Exception:  # the sender may try again; polling catches up meanwhile
            log.exception("%s: could not bring the pull forward", channel)
            if key is not None:
                self._forget(channel, key)
            return 503, "could not schedule a pull"
        log.debug("%s: webhook delivery accepted; pull brought forward", channel)
        return 202, "pull scheduled"

    def _first_time(self, channel: str, key: str) -> bool:
        with self._lock:
            seen = self._seen.setdefault(channel, OrderedDict())
            if key in seen:
                seen.move_to_end(key)
                return False
            seen[key] = None
            while len(seen) > self._remember:
                seen.popitem(last=False)
            return True

    def _forget(self, channel: str, key: str) -> None:
        with self._lock:
            self._seen.get(channel, OrderedDict()).pop(key, None)


def _delivery_key(scheme: Scheme, headers: Mapping[str, str], body: bytes) -> str | None:
    delivery = headers.get(scheme.delivery_header, "").strip()
    if not delivery:
        return None  # nothing to dedupe on: every delivery counts
    if scheme.body_in_key:
        return f"{delivery}:{hashlib.sha256(body).hexdigest()}"
    return delivery


def _who(remote: str, headers: Mapping[str, str]) -> str:
    forwarded = headers.get("x-forwarded-for", "")
    who = remote or "?"
    return f"{who} (forwarded for {forwarded[:200]})" if forwarded else who


def routes(receiver: WebhookReceiver, *, max_body: int = MAX_BODY) -> list[BaseRoute]:
    """``POST /webhooks/<channel>`` for ``httpd.serve``; bodies past ``max_body`` get 413."""

    async def webhook(request: Request) -> Response:
        body = await read_body(request, max_body)
        client = f"{request.client.host}:{request.client.port}" if request.client else ""
        status, message = await in_thread(receiver.handle, request.path_params["channel"],
                                          request.headers, body, remote=client)
        return text(status, message)

    return [Route(WEBHOOK_PATH, webhook, methods=["POST"])]
