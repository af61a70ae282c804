"""Webhooks over real HTTP on loopback: signatures, duplicates, the WooCommerce ping, limits."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from channelsync.config import Config, parse_config
from channelsync.errors import ConfigError
from channelsync.service import httpd, web
from channelsync.service.webhooks import WebhookReceiver, routes, signature

SECRET = "wh-secret-&-more"
BODY = b'{"id": 42, "billing": {"email": "jane.doe@example.com"}}'
CONFIG = f"""
[[channel]]
name = "shop"
type = "woocommerce"
endpoint = "http://127.0.0.1:9"
consumer_key = "ck_dummy"
consumer_secret = "cs_dummy"
webhook_secret = "{SECRET}"

[[channel]]
name = "quiet"
type = "woocommerce"
endpoint = "http://127.0.0.1:9"
consumer_key = "ck_dummy"
consumer_secret = "cs_dummy"

[[channel]]
name = "paused"
type = "woocommerce"
endpoint = "http://127.0.0.1:9"
enabled = false
consumer_key = "ck_dummy"
consumer_secret = "cs_dummy"
webhook_secret = "{SECRET}"

[[channel]]
name = "shopify"
type = "shopify"
shop = "example.myshopify.com"
access_token = "shpat_dummy"
webhook_secret = "{SECRET}"

[[channel]]
name = "other"
type = "ebay"
token = "dummy"
app_id = "app"
dev_id = "dev"
cert_id = "cert"
webhook_secret = "{SECRET}"
"""


def make_config() -> Config:
    return parse_config(CONFIG, env={})


class Triggers:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.lock = threading.Lock()
        self.fail = False

    def __call__(self, channel: str) -> None:
        if self.fail:
            raise RuntimeError("the scheduler is shutting down")
        with self.lock:
            self.calls.append(channel)


@pytest.fixture
def triggers() -> Triggers:
    return Triggers()


@pytest.fixture
def server(triggers: Triggers) -> Iterator[httpd.Server]:
    receiver = WebhookReceiver(make_config(), triggers)
    with httpd.serve("127.0.0.1:0", routes(receiver), setting="daemon.webhook_listen") as srv:
        yield srv


def wc_headers(body: bytes = BODY, delivery: str = "d-1", secret: str = SECRET) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-WC-Webhook-Signature": signature(secret, body),
        "X-WC-Webhook-Delivery-ID": delivery,
        "X-WC-Webhook-Topic": "order.updated",
        "X-WC-Webhook-Resource": "order",
        "X-WC-Webhook-Event": "updated",
    }


def post(
    server: httpd.Server, channel: str, body: bytes, headers: dict[str, str]
) -> httpx.Response:
    return httpx.post(f"{server.url}/webhooks/{channel}", content=body, headers=headers)


def test_a_valid_delivery_triggers_the_pull_once(server: httpd.Server, triggers: Triggers) -> None:
    response = post(server, "shop", BODY, wc_headers())
    assert response.status_code == 202
    assert triggers.calls == ["shop"]

    again = post(server, "shop", BODY, wc_headers())
    assert again.status_code == 200
    assert "duplicate" in again.text
    assert triggers.calls == ["shop"]


def test_same_delivery_id_with_another_body_is_another_delivery(
    server: httpd.Server, triggers: Triggers
) -> None:
    # WooCommerce's delivery id is the webhook id hashed with the current second.
    other = b'{"id": 43}'
    assert post(server, "shop", BODY, wc_headers(BODY, "same")).status_code == 202
    assert post(server, "shop", other, wc_headers(other, "same")).status_code == 202
    assert triggers.calls == ["shop", "shop"]


def test_a_delivery_without_an_id_always_counts(server: httpd.Server, triggers: Triggers) -> None:
    headers = wc_headers()
    del headers["X-WC-Webhook-Delivery-ID"]
    assert post(server, "shop", BODY, headers).status_code == 202
    assert post(server, "shop", BODY, headers).status_code == 202
    assert triggers.calls == ["shop", "shop"]


def test_a_wrong_signature_is_401_and_logged_without_body_or_signature(
    server: httpd.Server, triggers: Triggers, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="channelsync")
    headers = wc_headers(secret="not-the-secret")
    response = post(server, "shop", BODY, headers)
    assert response.status_code == 401
    assert triggers.calls == []
    assert "shop" in caplog.text and "invalid signature" in caplog.text
    assert "127.0.0.1" in caplog.text
    assert "jane.doe" not in caplog.text
    assert headers["X-WC-Webhook-Signature"] not in caplog.text
    assert signature(SECRET, BODY) not in caplog.text
    # The rejected delivery id is not remembered: the genuine one still counts.
    assert post(server, "shop", BODY, wc_headers()).status_code == 202


def test_a_signature_of_another_body_is_rejected(server: httpd.Server, triggers: Triggers) -> None:
    headers = wc_headers(b'{"id": 1}')
    assert post(server, "shop", BODY, headers).status_code == 401
    assert triggers.calls == []


def test_a_missing_signature_is_401(server: httpd.Server, triggers: Triggers) -> None:
    headers = wc_headers()
    del headers["X-WC-Webhook-Signature"]
    assert post(server, "shop", BODY, headers).status_code == 401
    headers["X-WC-Webhook-Signature"] = ""
    assert post(server, "shop", BODY, headers).status_code == 401
    assert triggers.calls == []


def test_woocommerce_ping_is_answered_200_without_a_pull(
    server: httpd.Server, triggers: Triggers
) -> None:
    # What WC_Webhook::deliver_ping() sends: form body, no signature, needs exactly 200.
    ping = {"Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "WooCommerce/9.0 Hookshot (WordPress/6.5)"}
    response = post(server, "shop", b"webhook_id=17", ping)
    assert response.status_code == 200
    assert triggers.calls == []
    for body in (b"webhook_id=17&x=1", b"webhook_id=", b"webhook_id=17\n", b"{}"):
        assert post(server, "shop", body, ping).status_code == 401, body
    assert triggers.calls == []


def test_unknown_channels_and_channels_without_webhooks_are_404(
    server: httpd.Server, triggers: Triggers
) -> None:
    assert post(server, "nope", BODY, wc_headers()).status_code == 404
    assert post(server, "quiet", BODY, wc_headers()).status_code == 404
    other = post(server, "other", BODY, wc_headers())
    assert other.status_code == 404
    assert "'ebay'" in other.text and "woocommerce" in other.text
    assert triggers.calls == []


def test_a_disabled_channel_is_acknowledged_but_not_pulled(
    server: httpd.Server, triggers: Triggers
) -> None:
    assert post(server, "paused", BODY, wc_headers()).status_code == 200
    assert post(server, "paused", BODY, wc_headers(secret="x")).status_code == 401
    assert triggers.calls == []


def test_shopify_scheme_dedupes_on_the_event_id(server: httpd.Server, triggers: Triggers) -> None:
    def headers(body: bytes, event: str) -> dict[str, str]:
        return {"X-Shopify-Hmac-Sha256": signature(SECRET, body), "X-Shopify-Event-Id": event,
                "X-Shopify-Topic": "orders/updated"}

    assert post(server, "shopify", BODY, headers(BODY, "e-1")).status_code == 202
    # A retry of the same event, even re-serialised, is the same event.
    assert post(server, "shopify", b"{}", headers(b"{}", "e-1")).status_code == 200
    assert post(server, "shopify", BODY, headers(BODY, "e-2")).status_code == 202
    # WooCommerce's header means nothing to a Shopify channel.
    assert post(server, "shopify", BODY, wc_headers()).status_code == 401
    assert triggers.calls == ["shopify", "shopify"]


def test_a_body_over_the_limit_is_413(server: httpd.Server, triggers: Triggers) -> None:
    big = b"x" * (web.MAX_BODY + 1)
    response = post(server, "shop", big, wc_headers(big))
    assert response.status_code == 413
    assert triggers.calls == []
    # The server still answers afterwards.
    assert post(server, "shop", BODY, wc_headers()).status_code == 202


def test_a_body_at_the_limit_is_read(server: httpd.Server, triggers: Triggers) -> None:
    body = b"y" * web.MAX_BODY
    assert post(server, "shop", body, wc_headers(body)).status_code == 202


def test_only_post_is_routed(server: httpd.Server) -> None:
    response = httpx.get(f"{server.url}/webhooks/shop")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert httpx.post(f"{server.url}/webhooks", content=BODY).status_code == 404
    assert httpx.post(f"{server.url}/webhooks/shop/x", content=BODY).status_code == 404
    assert httpx.get(f"{server.url}/metrics").status_code == 404


def test_a_failing_trigger_is_503_and_the_delivery_can_come_again(triggers: Triggers) -> None:
    receiver = WebhookReceiver(make_config(), triggers)
    triggers.fail = True
    assert receiver.handle("shop", wc_headers(), BODY)[0] == 503
    triggers.fail = False
    assert receiver.handle("shop", wc_headers(), BODY)[0] == 202
    assert triggers.calls == ["shop"]


def test_remembered_deliveries_are_bounded(triggers: Triggers) -> None:
    receiver = WebhookReceiver(make_config(), triggers, remember=2)
    for delivery in ("a", "b", "c", "a", "c"):
        receiver.handle("shop", wc_headers(delivery=delivery), BODY)
    # "a" was forgotten when "c" came; "c" was still remembered.
    assert triggers.calls == ["shop"] * 4


def test_header_names_are_case_insensitive(triggers: Triggers) -> None:
    receiver = WebhookReceiver(make_config(), triggers)
    headers = {k.lower(): v for k, v in wc_headers().items()}
    assert receiver.handle("shop", headers, BODY) == (202, "pull scheduled")


# -- the server itself ------------------------------------------------------------------------


@pytest.mark.parametrize("listen", ["", "9464", "localhost", ":9464", "::1:9464", "[::1]",
                                    "127.0.0.1:http", "127.0.0.1:70000", "[]:80"])
def test_bad_listen_values_are_config_errors(listen: str) -> None:
    with pytest.raises(ConfigError, match="daemon.metrics_listen"):
        httpd.serve(listen, [], setting="daemon.metrics_listen")


def test_listen_values_parse() -> None:
    assert httpd.parse_listen("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert httpd.parse_listen(" [::1]:0 ") == ("::1", 0)
    assert httpd.parse_listen("localhost:8787") == ("localhost", 8787)


def test_a_port_in_use_is_a_config_error() -> None:
    with httpd.serve("127.0.0.1:0", []) as first, pytest.raises(ConfigError, match="cannot listen"):
        httpd.serve(f"127.0.0.1:{first.port}", [], setting="daemon.webhook_listen")


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        server = httpd.serve("[::1]:0", [Route("/x", PlainTextResponse("ok\n"))])
    except ConfigError:
        pytest.skip("IPv6 loopback is not available here")
    with server:
        assert server.url.startswith("http://[::1]:")
        assert httpx.get(f"{server.url}/x").text == "ok\n"


def test_a_failing_handler_is_500_and_the_server_lives_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def boom(request: Request) -> Response:
        raise ValueError("bug")

    async def echo(request: Request) -> Response:
        body = await web.read_body(request)
        return Response(request.headers.get("X-Thing", "").encode() + body, 200,
                        media_type="text/plain")

    routes = [Route("/boom", boom), Route("/echo", echo, methods=["POST"])]
    with httpd.serve("127.0.0.1:0", routes) as srv:
        assert httpx.get(f"{srv.url}/boom").status_code == 500
        assert "GET /boom failed" in caplog.text
        response = httpx.post(f"{srv.url}/echo?q=1", content=b"body", headers={"X-Thing": "t:"})
        assert (response.status_code, response.content) == (200, b"t:body")
    srv.stop()  # stopping twice is harmless
