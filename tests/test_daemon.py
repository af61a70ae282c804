"""``channelsync run`` as a process: schedules cycles, stops cleanly on SIGTERM and SIGINT."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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


def log_file(tmp_path: Path) -> Any:
    # A file, not a pipe: a pipe nobody reads fills up and blocks the daemon's logging.
    return (tmp_path / "daemon.log").open("w")


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
                                  stdout=subprocess.DEVNULL, stderr=log_file(tmp_path), text=True)
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
            daemon.wait(timeout=60)
        finally:
            if daemon.poll() is None:
                daemon.kill()
    stderr = (tmp_path / "daemon.log").read_text()
    assert daemon.returncode == 0, stderr
    assert "stopped" in stderr
    assert "cs_d" not in stderr


def shows(emulator: WooCommerceEmulator, sku: str = "MUG") -> int | None:
    for listing in httpx.get(f"{emulator.url}/_sandbox/listings").json()["listings"]:
        if listing["sku"] == sku:
            return int(listing["quantity"])
    return None


def channel_block(name: str, url: str) -> str:
    return (f'[[channel]]\nname = "{name}"\ntype = "woocommerce"\nendpoint = "{url}"\n'
            'consumer_key = "ck_d"\nconsumer_secret = "cs_d"\n')


def test_sighup_reloads_a_good_config_and_refuses_a_broken_one(tmp_path: Path) -> None:
    with WooCommerceEmulator(consumer_key="ck_d", consumer_secret="cs_d") as emulator:
        httpx.post(f"{emulator.url}/_sandbox/listings", json={"sku": "MUG", "quantity": 0})
        config = tmp_path / "channels.toml"
        good = CONFIG.format(db=tmp_path / "l.db", url=emulator.url)
        config.write_text(good)
        (tmp_path / "cli.toml").write_text(good)  # the CLI's own, always valid
        cli = [sys.executable, "-m", "channelsync", "--config", str(tmp_path / "cli.toml")]
        subprocess.run([*cli, "stock", "set", "MUG", "6"], check=True, capture_output=True)
        daemon = subprocess.Popen(
            [sys.executable, "-m", "channelsync", "--config", str(config), "--log-level",
             "info", "run"], stdout=subprocess.DEVNULL, stderr=log_file(tmp_path), text=True)
        try:
            wait_for(lambda: shows(emulator) == 6)
            config.write_text(good + "[channel.rules]\nbuffer = 2\n")
            daemon.send_signal(signal.SIGHUP)
            wait_for(lambda: shows(emulator) == 4)  # the new rule is in force
            config.write_text(good + "[channel.rules]\nbuffer = -1\n")
            daemon.send_signal(signal.SIGHUP)
            time.sleep(1.5)
            assert daemon.poll() is None  # still running, on the old config
            subprocess.run([*cli, "stock", "set", "MUG", "9"], check=True, capture_output=True)
            wait_for(lambda: shows(emulator) == 7)  # 9 - buffer 2 of the kept config
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
        finally:
            if daemon.poll() is None:
                daemon.kill()
    stderr = (tmp_path / "daemon.log").read_text()
    assert daemon.returncode == 0, stderr
    assert "config reloaded" in stderr
    assert "config reload refused" in stderr and "buffer" in stderr


def test_a_failing_channel_backs_off_and_the_other_keeps_working(tmp_path: Path) -> None:
    with WooCommerceEmulator(consumer_key="ck_d", consumer_secret="cs_d") as good, \
            WooCommerceEmulator(consumer_key="ck_d", consumer_secret="cs_d") as bad:
        for emulator in (good, bad):
            httpx.post(f"{emulator.url}/_sandbox/listings", json={"sku": "MUG", "quantity": 0})
        httpx.post(f"{bad.url}/_sandbox/faults", json={"error_rate": 1.0})
        config = tmp_path / "channels.toml"
        config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "l.db"}"\n'
                          "[daemon]\npull_interval = 0.5\nretry_max_wait = 0.1\n"
                          + channel_block("shop", good.url) + channel_block("down", bad.url))
        cli = [sys.executable, "-m", "channelsync", "--config", str(config)]
        subprocess.run([*cli, "stock", "set", "MUG", "5"], check=True, capture_output=True)
        daemon = subprocess.Popen([*cli, "--log-level", "info", "run"],
                                  stdout=subprocess.DEVNULL, stderr=log_file(tmp_path), text=True)
        try:
            wait_for(lambda: shows(good) == 5)
            subprocess.run([*cli, "stock", "set", "MUG", "3"], check=True, capture_output=True)
            wait_for(lambda: shows(good) == 3)
            time.sleep(2)
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
        finally:
            if daemon.poll() is None:
                daemon.kill()
    stderr = (tmp_path / "daemon.log").read_text()
    assert daemon.returncode == 0, stderr
    # pull_interval 0.5 s, doubling: 0.5, 1, 2 s ...
    assert "down: cycle failed (1 in a row); next try in 0 s: RetriableChannelError" in stderr
    assert "down: cycle failed (2 in a row); next try in 1 s: RetriableChannelError" in stderr
    assert "shop: cycle failed" not in stderr


def test_a_short_deferral_runs_the_channel_again_when_the_call_is_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pull deferred for 3 s must not wait for the next interval (10 minutes here): the
    channel runs again once the call is allowed. A longer deferral keeps the schedule."""
    import threading
    from datetime import timedelta

    from channelsync import registry
    from channelsync.config import parse_config
    from channelsync.errors import Deferred
    from channelsync.ledger.schema import utcnow
    from channelsync.service.app import App
    from channelsync.service.daemon import DEFER_MARGIN, Channels
    from tests import fakes

    monkeypatch.setitem(registry.BUILTIN, "fake", "tests.fakes:FakeConnector")
    registry.load_connector.cache_clear()
    fakes.CHANNELS.clear()
    app = App(parse_config(f'[database]\nurl = "sqlite:///{tmp_path / "l.db"}"\n[daemon]\n'
                           'pull_interval = 600\n[[channel]]\nname = "a"\ntype = "fake"\n',
                           env={}))
    try:
        channels = Channels(app, lambda _name, _error: None, threading.Event())
        fake = fakes.CHANNELS.setdefault("a", fakes.FakeChannel("a"))
        fake.fail_next = [Deferred("searchOrders: rate limit", wait=3)]
        before = utcnow()
        channels._job("a", False)
        name, when = channels.requests.get_nowait()
        assert name == "a"
        assert before + timedelta(seconds=3 + DEFER_MARGIN) <= when
        assert when <= utcnow() + timedelta(seconds=3 + DEFER_MARGIN)
        fake.fail_next = [Deferred("searchOrders: rate limit", wait=900)]
        app.engine.clock = lambda: utcnow() + timedelta(seconds=10)  # the first one has passed
        channels._job("a", False)
        assert channels.requests.empty()  # the interval comes first: nothing moved
    finally:
        app.close()
        registry.load_connector.cache_clear()
        fakes.CHANNELS.clear()


def test_a_read_back_its_job_found_busy_is_done_by_the_next_cycle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cycles back to back (orders pouring in, other channels' sales running this one
    again) hold the channel whenever the read-back job fires: the read-back must still
    happen, or a listing edited on the channel is never corrected."""
    import threading
    from datetime import timedelta

    import sqlalchemy as sa

    from channelsync import registry
    from channelsync.config import parse_config
    from channelsync.ledger.schema import state_t, utcnow
    from channelsync.service.app import App
    from channelsync.service.daemon import Channels
    from tests import fakes

    monkeypatch.setitem(registry.BUILTIN, "fake", "tests.fakes:FakeConnector")
    registry.load_connector.cache_clear()
    fakes.CHANNELS.clear()
    now = [utcnow()]
    app = App(parse_config(f'[database]\nurl = "sqlite:///{tmp_path / "l.db"}"\n[daemon]\n'
                           'pull_interval = 1\nreconcile_interval = 60\n[[channel]]\nname = "a"'
                           '\ntype = "fake"\n', env={}), clock=lambda: now[0])
    try:
        channels = Channels(app, lambda _name, _error: None, threading.Event())
        fake = fakes.CHANNELS.setdefault("a", fakes.FakeChannel("a", quantities={"MUG": 0}))
        channels._job("a", False)  # the first cycle discovers the listings
        reads = fake.pulls, len(fake.pushes)

        def reconciled() -> object:
            with app.db.connect() as conn:
                return conn.execute(sa.select(state_t.c.reconciled_at)).scalar()

        first = reconciled()
        now[0] += timedelta(seconds=30)
        channels._job("a", False)
        assert reconciled() == first  # not due yet: a plain cycle
        now[0] += timedelta(seconds=31)
        channels._job("a", False)  # the read-back job was skipped meanwhile; this does it
        assert reconciled() == now[0]
        assert fake.pulls > reads[0]
    finally:
        app.close()
        registry.load_connector.cache_clear()
        fakes.CHANNELS.clear()
