"""``channelsync run`` with its services: systemd notify, metrics, health, webhooks, alerts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.woocommerce.emulator import WooCommerceEmulator

SECRET = "whsec_test_123"
CONFIG = """
[database]
url = "sqlite:///{db}"
[daemon]
pull_interval = 60
metrics_listen = "127.0.0.1:0"
webhook_listen = "127.0.0.1:0"
[alerts]
urls = ["json://127.0.0.1:{receiver}/hook"]
check_interval = 0.3
[[channel]]
name = "shop"
type = "woocommerce"
endpoint = "{url}"
consumer_key = "ck_d"
consumer_secret = "cs_d"
webhook_secret = "{secret}"
"""


class Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.posts.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def wait_for(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[list[str]]:
    """A real NOTIFY_SOCKET, read all the time as systemd does (its queue is short)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(0.1)
    got: list[str] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                got.append(sock.recv(4096).decode())
            except TimeoutError:
                continue

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    yield got
    done.set()
    reader.join()
    sock.close()


def test_run_with_systemd_metrics_webhooks_and_alerts(
    tmp_path: Path, notify_socket: list[str]
) -> None:
    receiver = Receiver()
    log_path = tmp_path / "daemon.log"
    with WooCommerceEmulator(consumer_key="ck_d", consumer_secret="cs_d") as emulator:
        httpx.post(f"{emulator.url}/_sandbox/listings", json={"sku": "MUG", "quantity": 0})
        config = tmp_path / "channels.toml"
        config.write_text(CONFIG.format(db=tmp_path / "l.db", url=emulator.url,
                                        receiver=receiver.server_address[1], secret=SECRET))
        cli = [sys.executable, "-m", "channelsync", "--config", str(config)]
        subprocess.run([*cli, "stock", "set", "MUG", "2"], check=True, capture_output=True)
        env = {"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "400000",
               "PATH": "/usr/bin:/bin"}
        daemon = subprocess.Popen([*cli, "--log-level", "info", "run"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=log_path.open("w"))
        try:
            got = notify_socket
            wait_for(lambda: any(m.startswith("READY=1") for m in got))
            wait_for(lambda: "WATCHDOG=1" in got)

            text = wait_for(lambda: re.search(r"metrics and health on (\S+)",
                                              log_path.read_text()))
            metrics_url = text.group(1)
            hooks_url = wait_for(lambda: re.search(r"webhooks on (\S+)/webhooks",
                                                   log_path.read_text())).group(1)
            wait_for(lambda: httpx.get(f"{metrics_url}/healthz").status_code == 200)
            scrape = httpx.get(f"{metrics_url}/metrics").text
            assert 'channelsync_cycles_total{channel="shop",outcome="ok"}' in scrape

            def pulls() -> int:
                stats = httpx.get(f"{emulator.url}/_sandbox/stats").json()
                return int(stats["requests"].get("list_orders", 0))

            before = wait_for(pulls)
            body = b'{"id": 5, "status": "processing"}'
            forged = httpx.post(f"{hooks_url}/webhooks/shop", content=body, headers={
                "X-WC-Webhook-Signature": "bm90IGl0", "X-WC-Webhook-Delivery-ID": "1"})
            assert forged.status_code == 401
            signature = base64.b64encode(
                hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
            good = httpx.post(f"{hooks_url}/webhooks/shop", content=body, headers={
                "X-WC-Webhook-Signature": signature, "X-WC-Webhook-Delivery-ID": "2"})
            assert good.status_code == 202
            wait_for(lambda: pulls() > before)  # pulled at once, not in a minute

            # An oversell: two units sold on the channel, then a recount finds one.
            wait_for(lambda: httpx.get(f"{emulator.url}/_sandbox/listings")
                     .json()["listings"][0]["quantity"] == 2)
            httpx.post(f"{emulator.url}/_sandbox/orders",
                       json={"lines": [{"sku": "MUG", "quantity": 2}]}).raise_for_status()
            subprocess.run([*cli, "sync"], check=True, capture_output=True)
            subprocess.run([*cli, "stock", "set", "MUG", "1"], check=True, capture_output=True)
            wait_for(lambda: any("oversell" in p.get("title", "") for p in receiver.posts))
            time.sleep(1.0)  # several alert runs: still one alert
            assert sum("oversell" in p.get("title", "") for p in receiver.posts) == 1

            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
            time.sleep(0.3)
        finally:
            if daemon.poll() is None:
                daemon.kill()
            receiver.shutdown()
    stderr = log_path.read_text()
    assert daemon.returncode == 0, stderr
    assert any(m.startswith("STOPPING=1") for m in got)
    assert any("STATUS=" in m for m in got)
    assert body.decode() not in stderr  # a forged webhook is logged without its body
    assert SECRET not in stderr and "cs_d" not in stderr


SHOPIFY_TOKEN = "shpat_daemon_0123456789abcdef"
SHOPIFY_CONFIG = """
[database]
url = "sqlite:///{db}"
[daemon]
pull_interval = 300
webhook_listen = "127.0.0.1:0"
[[channel]]
name = "shop"
type = "woocommerce"
endpoint = "{shop}"
consumer_key = "ck_d"
consumer_secret = "cs_d"
[[channel]]
name = "shopify"
type = "shopify"
endpoint = "{shopify}"
access_token = "{token}"
webhook_secret = "{secret}"
"""


def test_a_shopify_webhook_brings_its_sale_to_the_other_channels_at_once(
    tmp_path: Path,
) -> None:
    from connectors.shopify.emulator import ShopifyEmulator

    log_path = tmp_path / "daemon.log"
    with WooCommerceEmulator(consumer_key="ck_d", consumer_secret="cs_d") as shop, \
            ShopifyEmulator(access_token=SHOPIFY_TOKEN) as shopify:
        for emulator in (shop, shopify):
            httpx.post(f"{emulator.url}/_sandbox/listings", json={"sku": "MUG", "quantity": 0})

        def shows(emulator: Any) -> int:
            listings = httpx.get(f"{emulator.url}/_sandbox/listings").json()["listings"]
            return int(listings[0]["quantity"])

        config = tmp_path / "channels.toml"
        config.write_text(SHOPIFY_CONFIG.format(
            db=tmp_path / "l.db", shop=shop.url, shopify=shopify.url, token=SHOPIFY_TOKEN,
            secret=SECRET))
        cli = [sys.executable, "-m", "channelsync", "--config", str(config)]
        subprocess.run([*cli, "stock", "set", "MUG", "3"], check=True, capture_output=True)
        daemon = subprocess.Popen([*cli, "--log-level", "info", "run"], env={"PATH": "/usr/bin"},
                                  stdout=subprocess.DEVNULL, stderr=log_path.open("w"))
        try:
            hooks_url = wait_for(lambda: re.search(r"webhooks on (\S+)/webhooks",
                                                   log_path.read_text())).group(1)
            wait_for(lambda: shows(shop) == shows(shopify) == 3)
            httpx.post(f"{shopify.url}/_sandbox/orders",
                       json={"lines": [{"sku": "MUG", "quantity": 1}]}).raise_for_status()
            body = b'{"id": 820982911946154508, "line_items": [{"sku": "MUG"}]}'
            signature = base64.b64encode(
                hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
            headers = {"X-Shopify-Hmac-Sha256": signature, "X-Shopify-Topic": "orders/create",
                       "X-Shopify-Event-Id": "98880550-7158-44d4-b7cd-2c97c8a091b5"}
            sent = httpx.post(f"{hooks_url}/webhooks/shopify", content=body, headers=headers)
            assert sent.status_code == 202
            # Pulled at once and pushed to the webshop, not five minutes later.
            wait_for(lambda: shows(shop) == 2)
            again = httpx.post(f"{hooks_url}/webhooks/shopify", content=body, headers=headers)
            assert again.status_code == 200  # Shopify's duplicate delivery: answered, ignored
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
        finally:
            if daemon.poll() is None:
                daemon.kill()
    stderr = log_path.read_text()
    assert daemon.returncode == 0, stderr
    assert SHOPIFY_TOKEN not in stderr and SECRET not in stderr
