"""Two ``channelsync run`` replicas on one PostgreSQL: they share the channels safely."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from connectors.woocommerce.emulator import WooCommerceEmulator


def wait_for(check: Callable[[], Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def shows(emulator: WooCommerceEmulator) -> int:
    return int(httpx.get(f"{emulator.url}/_sandbox/listings").json()["listings"][0]["quantity"])


def test_two_replicas_share_channels_and_one_takes_over_when_the_other_dies(
    pg_url: str, tmp_path: Path
) -> None:
    with WooCommerceEmulator(consumer_key="ck_r", consumer_secret="cs_r") as a, \
            WooCommerceEmulator(consumer_key="ck_r", consumer_secret="cs_r") as b:
        blocks = "".join(
            f'[[channel]]\nname = "{name}"\ntype = "woocommerce"\nendpoint = "{e.url}"\n'
            'consumer_key = "ck_r"\nconsumer_secret = "cs_r"\n'
            for name, e in (("a", a), ("b", b)))
        config = tmp_path / "channels.toml"
        config.write_text(f'[database]\nurl = "{pg_url}"\n[daemon]\npull_interval = 0.3\n'
                          + blocks)
        for emulator in (a, b):
            httpx.post(f"{emulator.url}/_sandbox/listings", json={"sku": "MUG", "quantity": 0})
        cli = [sys.executable, "-m", "channelsync", "--config", str(config)]
        subprocess.run([*cli, "stock", "set", "MUG", "5"], check=True, capture_output=True)
        logs = [tmp_path / "one.log", tmp_path / "two.log"]
        replicas = [subprocess.Popen([*cli, "--log-level", "info", "run"],
                                     stdout=subprocess.DEVNULL, stderr=log.open("w"))
                    for log in logs]
        try:
            wait_for(lambda: shows(a) == 5 and shows(b) == 5)
            # Both replicas try every channel all the time; the lock lets one through.
            wait_for(lambda: any("another process is working this channel" in log.read_text()
                                 for log in logs))
            assert all("running 2 channel(s)" in log.read_text() for log in logs)
            replicas[0].send_signal(signal.SIGKILL)  # no goodbye: its sessions just die
            replicas[0].wait(timeout=10)
            httpx.post(f"{a.url}/_sandbox/orders",
                       json={"lines": [{"sku": "MUG", "quantity": 2}]}).raise_for_status()
            wait_for(lambda: shows(b) == 3)  # the survivor pulled a and pushed b
            subprocess.run([*cli, "stock", "adjust", "MUG", "+4", "--reason", "found"],
                           check=True, capture_output=True)
            wait_for(lambda: shows(a) == 7 and shows(b) == 7)
            replicas[1].send_signal(signal.SIGTERM)
            assert replicas[1].wait(timeout=60) == 0
        finally:
            for replica in replicas:
                if replica.poll() is None:
                    replica.kill()
    check = subprocess.run([*cli, "status", "--json"], capture_output=True, text=True)
    assert check.returncode == 0
