"""The notify protocol against a real datagram socket, and the unit file systemd is given."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from channelsync.service.systemd import Notifier, Watchdog
from tests.conftest import running_in_ci

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "config" / "channelsync.service"


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """What systemd listens on: a datagram socket, and the NOTIFY_SOCKET that names it."""
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(5)
        yield sock, path


def receive(sock: socket.socket) -> str:
    return sock.recv(4096).decode("utf-8")


def drain(sock: socket.socket) -> list[str]:
    """Every message waiting now, without waiting for more."""
    messages = []
    sock.setblocking(False)
    try:
        while True:
            messages.append(receive(sock))
    except BlockingIOError:
        return messages
    finally:
        sock.settimeout(5)


def test_messages_are_sent_as_the_protocol_says(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready("2 channels, ledger at schema 7")
    assert receive(sock) == "READY=1\nSTATUS=2 channels, ledger at schema 7"
    notifier.ready()
    assert receive(sock) == "READY=1"
    notifier.status("webshop: 3 orders pulled")
    assert receive(sock) == "STATUS=webshop: 3 orders pulled"
    notifier.watchdog()
    assert receive(sock) == "WATCHDOG=1"
    notifier.stopping("letting 1 cycle finish")
    assert receive(sock) == "STOPPING=1\nSTATUS=letting 1 cycle finish"
    notifier.stopping()
    assert receive(sock) == "STOPPING=1"
    notifier.notify(STATUS="x", ERRNO=5)
    assert receive(sock) == "STATUS=x\nERRNO=5"
    assert notifier.send("EXTEND_TIMEOUT_USEC=5000000")
    assert receive(sock) == "EXTEND_TIMEOUT_USEC=5000000"


def test_newlines_in_status_cannot_forge_another_field(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path})
    notifier.status("pull failed:\nREADY=1\r\nretrying")
    assert receive(sock) == "STATUS=pull failed: READY=1 retrying"
    notifier.ready("one\ntwo")
    assert receive(sock) == "READY=1\nSTATUS=one two"


def test_abstract_socket() -> None:
    name = f"channelsync-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert Notifier.from_env({"NOTIFY_SOCKET": "@" + name}).ready("up")
        assert receive(sock) == "READY=1\nSTATUS=up"


@pytest.mark.parametrize("env", [{}, {"NOTIFY_SOCKET": ""}])
def test_without_a_socket_every_message_is_a_no_op(env: dict[str, str]) -> None:
    notifier = Notifier.from_env(env)
    assert not notifier.enabled
    assert not notifier.ready("up")
    assert not notifier.watchdog()
    assert not notifier.stopping()


def test_a_socket_path_that_is_not_one_disables_notifying(caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": "relative/notify"})
    assert not notifier.enabled
    assert not notifier.ready()
    assert "not a socket path" in caplog.text


def test_an_unreachable_socket_returns_false_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    with caplog.at_level(logging.DEBUG, logger="channelsync.service.systemd"):
        assert notifier.ready() is False
        assert notifier.watchdog() is False
    levels = [r.levelno for r in caplog.records if "cannot notify systemd" in r.message]
    assert levels == [logging.WARNING, logging.DEBUG]


@pytest.mark.parametrize("address", ["/" + "x" * 200, "/tmp/with\0nul"])
def test_an_address_the_kernel_refuses_returns_false(address: str) -> None:
    assert Notifier.from_env({"NOTIFY_SOCKET": address}).ready() is False


def test_text_that_cannot_be_encoded_returns_false(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    assert Notifier.from_env({"NOTIFY_SOCKET": path}).status("lone surrogate \udc80") is False
    assert drain(sock) == []


def test_a_receiver_that_stops_reading_never_blocks_the_sender(
    listener: tuple[socket.socket, str],
) -> None:
    _, path = listener  # bound, but never read: its queue fills up
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path})
    started = time.monotonic()
    results = [notifier.status(f"message {i}") for i in range(5000)]
    assert results[0] is True
    assert False in results  # the full queue refused some, at once
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"WATCHDOG_USEC": "120000000"}, 60.0),
        ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": str(os.getpid())}, 1.5),
        ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": str(os.getppid())}, None),  # not us
        ({}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "me"}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(
    env: dict[str, str], interval: float | None
) -> None:
    assert Notifier.from_env({"NOTIFY_SOCKET": "/run/systemd/notify", **env}).watchdog_interval \
        == interval


class Health:
    """A health check the test switches, counting the unhealthy rounds the watchdog ran."""

    def __init__(self) -> None:
        self.ok = True
        self.unhealthy_rounds = 0
        self._changed = threading.Condition()

    def __call__(self) -> bool:
        with self._changed:
            if not self.ok:
                self.unhealthy_rounds += 1
                self._changed.notify_all()
            return self.ok

    def wait_for_unhealthy_rounds(self, count: int) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: self.unhealthy_rounds >= count, timeout=10)


def test_the_watchdog_pings_only_while_healthy(
    listener: tuple[socket.socket, str], caplog: pytest.LogCaptureFixture
) -> None:
    sock, path = listener
    health = Health()
    watchdog = Watchdog(Notifier.from_env({"NOTIFY_SOCKET": path}), health, 0.05)
    watchdog.start()
    try:
        assert [receive(sock) for _ in range(3)] == ["WATCHDOG=1"] * 3

        health.ok = False
        # Rounds run one after another, so once one has seen it unhealthy, the pings of
        # earlier rounds are all queued: drop them, then let several rounds pass.
        health.wait_for_unhealthy_rounds(1)
        drain(sock)
        health.wait_for_unhealthy_rounds(6)
        assert drain(sock) == []

        health.ok = True
        assert receive(sock) == "WATCHDOG=1"
    finally:
        watchdog.stop()
    assert "systemd-watchdog" not in [thread.name for thread in threading.enumerate()]
    messages = [r.message for r in caplog.records if r.name == "channelsync.service.systemd"]
    assert len([m for m in messages if "unhealthy" in m]) == 1
    assert len([m for m in messages if "healthy again" in m]) == 1


def test_a_failing_health_check_counts_as_unhealthy_and_is_logged_once(
    listener: tuple[socket.socket, str], caplog: pytest.LogCaptureFixture
) -> None:
    sock, path = listener

    def broken() -> bool:
        raise RuntimeError("scheduler gone")

    watchdog = Watchdog(Notifier.from_env({"NOTIFY_SOCKET": path}), broken, 0.05)
    for _ in range(3):
        watchdog.check()
    assert drain(sock) == []
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert "scheduler gone" in caplog.text


def test_without_a_watchdog_interval_start_does_nothing(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    watchdog = Watchdog(Notifier.from_env({"NOTIFY_SOCKET": path}), lambda: True, None)
    watchdog.start()
    watchdog.stop()
    assert "systemd-watchdog" not in [thread.name for thread in threading.enumerate()]
    assert drain(sock) == []


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections to (key, value) pairs in order; keys such as LoadCredential repeat."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
        else:
            key, sep, value = line.partition("=")
            assert sep, f"not a key=value line: {raw!r}"
            current.append((key.strip(), value.strip()))
    return sections


def test_the_unit_has_what_production_needs() -> None:
    unit = parse_unit(UNIT.read_text(encoding="utf-8"))
    service = dict(unit["Service"])  # the last value of a repeated key
    expected = {
        "Type": "notify", "NotifyAccess": "main", "Restart": "on-failure",
        "DynamicUser": "yes", "StateDirectory": "channelsync",
        "ConfigurationDirectory": "channelsync", "ProtectSystem": "strict",
        "ProtectHome": "yes", "NoNewPrivileges": "yes", "PrivateTmp": "yes",
        "PrivateDevices": "yes", "CapabilityBoundingSet": "", "UMask": "0077",
        "ExecReload": "/bin/kill -HUP $MAINPID",
    }
    assert {key: service.get(key) for key in expected} == expected
    assert service["ExecStart"].startswith("/usr/local/bin/channelsync ")
    assert service["ExecStart"].endswith(" run")
    # The daemon pings at half of WatchdogSec; it waits up to 60 s for cycles on stop.
    assert int(service["WatchdogSec"]) >= 60
    assert _seconds(service["TimeoutStopSec"]) > 60
    credentials = [v for k, v in unit["Service"] if k == "LoadCredential"]
    assert "WOO_CONSUMER_KEY:/etc/channelsync/credentials/WOO_CONSUMER_KEY" in credentials
    assert ("WantedBy", "multi-user.target") in unit["Install"]


def _seconds(value: str) -> float:
    """A systemd time span, in the forms this unit uses: 90, 90s, 5min."""
    if value.endswith("min"):
        return 60 * float(value.removesuffix("min"))
    return float(value.removesuffix("s"))


def test_systemd_analyze_verify_accepts_the_unit() -> None:
    if shutil.which("systemd-analyze") is None:
        reason = "systemd-analyze is not installed (Debian: apt-get install systemd)"
        if running_in_ci():
            pytest.fail(f"the unit must be verified in CI: {reason}")
        pytest.skip(reason)
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "verify-unit.sh")],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
