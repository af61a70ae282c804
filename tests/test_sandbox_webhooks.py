"""The order webhooks the WooCommerce and Shopify emulators send, received over loopback by
channelsync's own receiver (signature, dedupe) and by a recorder that keeps what came."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from channelsync.config import parse_config
from channelsync.service import httpd
from channelsync.service.webhooks import WebhookReceiver, routes
from connectors.ebay.emulator import EbayEmulator
from connectors.shopify.emulator import ShopifyEmulator
from connectors.woocommerce.emulator import WooCommerceEmulator

SECRET = "whsec-sandbox-1"
CONFIG = f"""
[[channel]]
name = "shop"
type = "woocommerce"
endpoint = "http://127.0.0.1:9"
consumer_key = "ck_x"
consumer_secret = "cs_x"
webhook_secret = "{SECRET}"

[[channel]]
name = "shopify"
type = "shopify"
shop = "example.myshopify.com"
access_token = "shpat_x"
webhook_secret = "{SECRET}"
"""


class Seen:
    """What reached the receiver: triggered pulls, and every request as it came."""

    def __init__(self) -> None:
        self.pulls: list[str] = []
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        self.refuse = 0  # answer this many requests 500 first (the recorder only)

    def trigger(self, channel: str) -> None:
        with self.lock:
            self.pulls.append(channel)


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
def receiver(seen: Seen) -> Iterator[httpd.Server]:
    async def record(request: Request) -> Response:
        body = await request.body()
        with seen.lock:
            seen.requests.append((dict(request.headers), body))
            if seen.refuse:
                seen.refuse -= 1
                return PlainTextResponse("busy", 500)
        return PlainTextResponse("ok")

    hooks = WebhookReceiver(parse_config(CONFIG, env={}), seen.trigger)
    with httpd.serve("127.0.0.1:0", [*routes(hooks), Route("/record", record, methods=["POST"])]
                     ) as server:
        yield server


@pytest.fixture
def shop() -> Iterator[WooCommerceEmulator]:
    with WooCommerceEmulator(consumer_key="ck_x", consumer_secret="cs_x") as emulator:
        emulator.set_listing("MUG", 10, {})
        yield emulator


@pytest.fixture
def shopify() -> Iterator[ShopifyEmulator]:
    with ShopifyEmulator(access_token="shpat_x") as emulator:
        emulator.set_listing("MUG", 10, {})
        yield emulator


def subscribe(emulator: Any, url: str, secret: str = SECRET, **more: Any) -> httpx.Response:
    return httpx.post(f"{emulator.url}/_sandbox/webhooks",
                      json={"url": url, "secret": secret, **more})


def order(emulator: Any, quantity: int = 1) -> str:
    answer = httpx.post(f"{emulator.url}/_sandbox/orders",
                        json={"lines": [{"sku": "MUG", "quantity": quantity}]})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["order_id"])


def settled(emulator: Any, done: int, timeout: float = 10.0) -> dict[str, Any]:
    """The emulator's webhook state once ``done`` deliveries ended (delivered or failed)."""
    deadline = time.monotonic() + timeout
    while True:
        state: dict[str, Any] = httpx.get(f"{emulator.url}/_sandbox/webhooks").json()
        if state["delivered"] + state["failed"] >= done and not state["pending"]:
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.02)


def expected_signature(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def test_a_woocommerce_order_reaches_channelsync_as_a_signed_webhook(
    shop: WooCommerceEmulator, receiver: httpd.Server, seen: Seen
) -> None:
    answer = subscribe(shop, f"{receiver.url}/webhooks/shop")
    assert answer.status_code == 201
    assert SECRET not in answer.text
    order(shop)
    state = settled(shop, 1)
    assert (state["delivered"], state["failed"], seen.pulls) == (1, 0, ["shop"])
    assert SECRET not in json.dumps(state)


def test_woocommerce_deliveries_carry_the_order_and_its_headers(
    shop: WooCommerceEmulator, receiver: httpd.Server, seen: Seen
) -> None:
    subscribe(shop, f"{receiver.url}/record")
    order_id = order(shop, 2)
    httpx.post(f"{shop.url}/_sandbox/orders/{order_id}/cancel")
    settled(shop, 2)
    (created, body), (updated, _) = seen.requests
    assert created["x-wc-webhook-signature"] == expected_signature(body)
    assert (created["x-wc-webhook-topic"], created["x-wc-webhook-resource"],
            created["x-wc-webhook-event"]) == ("order.created", "order", "created")
    assert updated["x-wc-webhook-topic"] == "order.updated"
    sent = json.loads(body)
    assert (str(sent["id"]), sent["line_items"][0]["sku"], sent["line_items"][0]["quantity"]) \
        == (order_id, "MUG", 2)


def test_woocommerce_gives_up_on_a_failed_delivery(
    shop: WooCommerceEmulator, receiver: httpd.Server, seen: Seen
) -> None:
    subscribe(shop, f"{receiver.url}/webhooks/shop", secret="not-the-secret")
    order(shop)
    state = settled(shop, 1)
    assert (state["delivered"], state["failed"], state["retried"]) == (0, 1, 0)
    assert seen.pulls == []  # channelsync refused the signature


def test_shopify_sends_each_event_once_and_channelsync_pulls_for_each(
    shopify: ShopifyEmulator, receiver: httpd.Server, seen: Seen
) -> None:
    subscribe(shopify, f"{receiver.url}/webhooks/shopify")
    subscribe(shopify, f"{receiver.url}/record", topics=["orders/create", "orders/cancelled"])
    order_id = order(shopify)
    httpx.post(f"{shopify.url}/_sandbox/orders/{order_id}/cancel")
    settled(shopify, 5)  # create, cancelled, updated to channelsync; two to the recorder
    assert seen.pulls == ["shopify"] * 3
    topics = [headers["x-shopify-topic"] for headers, _ in seen.requests]
    assert topics == ["orders/create", "orders/cancelled"]
    headers, body = seen.requests[1]
    assert headers["x-shopify-hmac-sha256"] == expected_signature(body)
    sent = json.loads(body)
    assert (str(sent["id"]), sent["cancelled_at"] is not None) == (order_id, True)
    assert sent["line_items"][0]["sku"] == "MUG"


def test_shopify_retries_a_failed_delivery_with_the_same_event_id(
    shopify: ShopifyEmulator, receiver: httpd.Server, seen: Seen
) -> None:
    assert shopify.webhooks is not None
    shopify.webhooks.retry_delays = (0.05, 0.05)  # Shopify's own are minutes to hours
    seen.refuse = 1
    subscribe(shopify, f"{receiver.url}/record", topics=["orders/create"])
    order(shopify)
    state = settled(shopify, 1)
    assert (state["delivered"], state["failed"], state["retried"]) == (1, 0, 1)
    first, again = (headers["x-shopify-event-id"] for headers, _ in seen.requests)
    assert first == again


def test_bad_subscriptions_and_channels_without_webhooks_are_refused(
    shop: WooCommerceEmulator,
) -> None:
    assert subscribe(shop, "ftp://127.0.0.1/x").status_code == 400
    assert subscribe(shop, "http://127.0.0.1:9/x", secret="").status_code == 400
    assert subscribe(shop, "http://127.0.0.1:9/x", topics="order.created").status_code == 400
    with EbayEmulator(token="t") as ebay:
        assert subscribe(ebay, "http://127.0.0.1:9/x").status_code == 404


def test_a_reset_forgets_the_subscriptions(shop: WooCommerceEmulator, receiver: httpd.Server,
                                           seen: Seen) -> None:
    subscribe(shop, f"{receiver.url}/record")
    httpx.post(f"{shop.url}/_sandbox/reset")
    shop.set_listing("MUG", 10, {})
    order(shop)
    time.sleep(0.2)
    assert httpx.get(f"{shop.url}/_sandbox/webhooks").json()["subscriptions"] == []
    assert seen.requests == []
