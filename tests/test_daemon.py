"""``channelsync run`` as a process: schedules cycles, stops cleanly on SIGTERM and SIGINT."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from connectors.woocommerce.emulator import WooCommerceEmulator

CONFIG = """
[database]
url = "sqlite:///{db}"
[daemon]
pull_interval = 0.5
[[channel]]
name = "shop"
type = "woocommerce"
endpoint = "{url}"
consumer_key = "ck_d"
consumer_secret = "cs_d"
"""


def wait_for(check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_run_keeps_channels_in_sync_and_stops_on_signal(tmp_path: Path, sig: int) -> None:
    with WooCommerceEmulator(consumer_key="ck_d", consumer_secret="cs_d") as emulator:
        httpx.post(f"{emulator.url}/_sandbox/listings", json={"sku": "MUG", "quantity": 0})
        config = tmp_path / "channels.toml"
        config.write_text(CONFIG.format(db=tmp_path / "l.db", url=emulator.url))
        cli = [sys.executable, "-m", "channelsync", "--config", str(config)]
        subprocess.run([*cli, "stock", "set", "MUG", "4"], check=True, capture_output=True)
        daemon = subprocess.Popen([*cli, "--log-level", "info", "run"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            def shows() -> int:
                listing = httpx.get(f"{emulator.url}/_sandbox/listings").json()["listings"]
                return int(listing[0]["quantity"])

            # The first cycle has no listings yet; discovery comes with a read-back, and
            # the first read-back runs at start (a channel never read is read at once).
            wait_for(lambda: shows() == 4)
            order = httpx.post(f"{emulator.url}/_sandbox/orders",
                               json={"lines": [{"sku": "MUG", "quantity": 3}]}).json()
            assert order["order_id"]
            subprocess.run([*cli, "stock", "adjust", "MUG", "-1", "--reason", "broken"],
                           check=True, capture_output=True)
            wait_for(lambda: shows() == 0)
            daemon.send_signal(sig)
            _, stderr = daemon.communicate(timeout=30)
        finally:
            if daemon.poll() is None:
                daemon.kill()
    assert daemon.returncode == 0, stderr
    assert "stopped" in stderr
    assert "cs_d" not in stderr
