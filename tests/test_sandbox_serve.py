"""``channelsync sandbox serve``: emulators on loopback until interrupted."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

CLI = [sys.executable, "-m", "channelsync"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_url(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+", line)
    assert match, line
    return match.group(0)


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=20)
    assert proc.returncode == 0


@pytest.mark.parametrize("channel_type", ["woocommerce", "amazon", "ebay", "shopify"])
def test_serve_one_emulator_by_type_on_any_free_port(channel_type: str) -> None:
    proc = subprocess.Popen([*CLI, "sandbox", "serve", "--type", channel_type, "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = read_url(proc)
        httpx.post(f"{url}/_sandbox/listings", json={"sku": "MUG", "quantity": 2})
        listings = httpx.get(f"{url}/_sandbox/listings").json()["listings"]
        assert [(item["sku"], item["quantity"]) for item in listings] == [("MUG", 2)]
    finally:
        stop(proc)


def test_serve_the_sandbox_channels_of_a_config(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "channels.toml"
    config.write_text(f"""
[[channel]]
name = "shop"
type = "woocommerce"
sandbox = true
endpoint = "http://127.0.0.1:{port}"
consumer_key = "ck_cfg"
consumer_secret = "cs_cfg"
[[channel]]
name = "live"
type = "woocommerce"
endpoint = "https://shop.example.com"
consumer_key = "ck_live"
consumer_secret = "cs_live"
""")
    proc = subprocess.Popen([*CLI, "--config", str(config), "sandbox", "serve"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert read_url(proc) == f"http://127.0.0.1:{port}"
        # It checks the configured channel's credentials: unsigned requests are refused.
        api = httpx.get(f"http://127.0.0.1:{port}/wp-json/wc/v3/products",
                        auth=("ck_cfg", "cs_wrong"))
        assert api.status_code == 401
        assert httpx.get(f"http://127.0.0.1:{port}/wp-json/wc/v3/products",
                         auth=("ck_cfg", "cs_cfg")).status_code == 200
    finally:
        stop(proc)


def test_serve_refuses_an_unknown_type() -> None:
    result = subprocess.run([*CLI, "sandbox", "serve", "--type", "nope"],
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 2
    assert "unknown channel type 'nope'" in result.stderr


def test_serve_a_shopify_sandbox_channel_checking_its_token(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "channels.toml"
    config.write_text(f"""
[[channel]]
name = "shopify"
type = "shopify"
sandbox = true
endpoint = "http://127.0.0.1:{port}"
access_token = "shpat_configured"
""")
    proc = subprocess.Popen([*CLI, "--config", str(config), "sandbox", "serve"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert read_url(proc) == f"http://127.0.0.1:{port}"
        api = f"http://127.0.0.1:{port}/admin/api/2026-10/graphql.json"
        query = {"query": "{ shop { name } }"}
        wrong = httpx.post(api, json=query, headers={"X-Shopify-Access-Token": "shpat_other"})
        assert wrong.status_code == 401
        right = httpx.post(api, json=query, headers={"X-Shopify-Access-Token": "shpat_configured"})
        assert right.status_code == 200 and right.json()["data"]["shop"]["name"]
    finally:
        stop(proc)
