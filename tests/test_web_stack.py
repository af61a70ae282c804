"""The daemon's one HTTP stack (Starlette on uvicorn): shared listener, limits, errors, shutdown."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from channelsync.config import parse_config
from channelsync.service import httpd
from channelsync.service.daemon import Daemon, _by_address
from channelsync.service.webhooks import WebhookReceiver, routes, signature

SECRET = "wh-secret"
BODY = b'{"id": 7}'
CHANNEL = f"""
[[channel]]
name = "shop"
type = "woocommerce"
endpoint = "http://127.0.0.1:9"
consumer_key = "ck_dummy"
consumer_secret = "cs_dummy"
webhook_secret = "{SECRET}"
"""


def wc_headers(body: bytes = BODY, delivery: str = "d-1") -> dict[str, str]:
    return {"X-WC-Webhook-Signature": signature(SECRET, body),
            "X-WC-Webhook-Delivery-ID": delivery}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def connect(server: httpd.Server) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=10)


def read_all(sock: socket.socket) -> bytes:
    """What the server sends until it closes the connection."""
    got = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return got
        if not chunk:
            return got
        got += chunk


class Triggers(list[str]):
    def __call__(self, channel: str) -> None:
        self.append(channel)


@pytest.fixture
def triggers() -> Triggers:
    return Triggers()


@pytest.fixture
def small(triggers: Triggers) -> Iterator[httpd.Server]:
    """Webhooks with a 1000-byte limit and a half-second request timeout."""
    receiver = WebhookReceiver(parse_config(CHANNEL, env={}), triggers)
    with httpd.serve("127.0.0.1:0", routes(receiver, max_body=1000), request_timeout=0.5,
                     setting="daemon.webhook_listen") as server:
        yield server


def test_one_listener_serves_metrics_and_webhooks(tmp_path: Path) -> None:
    port = free_port()
    config = parse_config(f"""
[database]
url = "sqlite:///{tmp_path / 'l.db'}"
[daemon]
metrics_listen = "127.0.0.1:{port}"
webhook_listen = "127.0.0.1:{port}"
{CHANNEL}""", env={})
    daemon = Daemon(config, tmp_path / "channels.toml", env={})
    try:
        daemon._serve()
        assert len(daemon.servers) == 1
        url = daemon.servers[0].url
        assert url == f"http://127.0.0.1:{port}"
        scrape = httpx.get(f"{url}/metrics")
        assert scrape.status_code == 200
        assert "channelsync_up 1.0" in scrape.text
        assert httpx.get(f"{url}/healthz").json()["ok"] is True
        hook = httpx.post(f"{url}/webhooks/shop", content=BODY, headers=wc_headers())
        assert hook.status_code == 202
    finally:
        for server in daemon.servers:
            server.stop()
        if daemon.metrics:
            daemon.metrics.close()
        daemon.app.close()


def test_different_addresses_get_a_listener_each_and_port_0_is_never_shared() -> None:
    groups = _by_address([("m", "127.0.0.1:9464", []), ("w", "127.0.0.1:8787", []),
                          ("a", "127.0.0.1:0", []), ("b", "127.0.0.1:0", []),
                          ("c", " 127.0.0.1:8787", [])])
    assert [[setting for setting, _, _ in group] for group in groups] == [
        ["m"], ["w", "c"], ["a"], ["b"]]


def test_an_oversized_body_sent_in_chunks_is_413_before_it_is_all_read(
    small: httpd.Server, triggers: Triggers
) -> None:
    with connect(small) as sock:
        sock.sendall(b"POST /webhooks/shop HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        for _ in range(4):  # 1200 bytes of a body that never ends
            sock.sendall(b"12c\r\n" + b"x" * 300 + b"\r\n")
            time.sleep(0.02)
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"larger than 1000 bytes" in answer
    assert triggers == []
    assert httpx.post(f"{small.url}/webhooks/shop", content=BODY,
                      headers=wc_headers()).status_code == 202


def test_a_declared_oversized_body_is_413_at_once(small: httpd.Server) -> None:
    with connect(small) as sock:
        sock.sendall(b"POST /webhooks/shop HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Length: 100000000\r\n\r\n" + b"x" * 100)
        assert read_all(sock).startswith(b"HTTP/1.1 413 ")


def test_a_client_that_stalls_is_cut_off(small: httpd.Server) -> None:
    with connect(small) as body_stall, connect(small) as head_stall:
        body_stall.sendall(b"POST /webhooks/shop HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           b"Content-Length: 100\r\n\r\n" + b"x" * 10)
        head_stall.sendall(b"POST /webhooks/shop HTTP/1.1\r\nHost: 127.0.0")
        started = time.monotonic()
        assert read_all(body_stall).startswith(b"HTTP/1.1 408 ")
        assert read_all(head_stall) == b""
        assert time.monotonic() - started < 5


def test_a_failing_handler_is_a_plain_500_and_logged(
    triggers: Triggers, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(WebhookReceiver):
        def handle(self, *args: object, **kwargs: object) -> tuple[int, str]:
            raise RuntimeError("password=hunter2 in a bad place")

    receiver = Broken(parse_config(CHANNEL, env={}), triggers)
    caplog.set_level(logging.ERROR)
    with httpd.serve("127.0.0.1:0", routes(receiver)) as server:
        response = httpx.post(f"{server.url}/webhooks/shop", content=BODY, headers=wc_headers())
        assert response.status_code == 500
        assert response.text == "internal error\n"
        assert "Traceback" not in response.text and "hunter2" not in response.text
        assert "POST /webhooks/shop failed" in caplog.text
        assert "RuntimeError" in caplog.text  # the traceback goes to the log
        assert httpx.get(f"{server.url}/webhooks/shop").status_code == 405  # still serving


def test_stop_returns_promptly_even_with_clients_connected(triggers: Triggers) -> None:
    receiver = WebhookReceiver(parse_config(CHANNEL, env={}), triggers)
    small = httpd.serve("127.0.0.1:0", routes(receiver))  # the request timeout: 15 s
    idle = httpx.Client()
    assert idle.post(f"{small.url}/webhooks/shop", content=b"webhook_id=1").status_code == 200
    with connect(small) as stalled:  # in the middle of sending a body
        stalled.sendall(b"POST /webhooks/shop HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        b"Content-Length: 100\r\n\r\n" + b"x")
        time.sleep(0.1)
        started = time.monotonic()
        small.stop()
        assert time.monotonic() - started < httpd.SHUTDOWN_GRACE + 1
    idle.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("httpd:")]
    with pytest.raises(OSError):
        socket.create_connection((small.host, small.port), timeout=2).close()
    small.stop()  # stopping twice is harmless
