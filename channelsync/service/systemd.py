"""The systemd notify protocol (sd_notify(3)), spoken directly over a datagram socket.

``Type=notify`` services tell systemd ``READY=1`` when they serve, ``WATCHDOG=1`` while
they are alive, ``STATUS=`` for ``systemctl status`` and ``STOPPING=1`` on the way out.
Nothing here may stop the daemon: outside systemd every message is a no-op, and a message
that cannot be sent is logged once and reported as ``False``, never raised.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends notify messages to ``$NOTIFY_SOCKET``; every method is safe to call anywhere."""

    def __init__(self, address: str | None = None, watchdog_interval: float | None = None) -> None:
        # "@name" is an abstract socket, whose real address starts with a NUL byte.
        self._address = "\0" + address[1:] if address and address[0] == "@" else address
        self._watchdog_interval = watchdog_interval
        self._warned = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Notifier:
        address = env.get("NOTIFY_SOCKET") or None
        if address is not None and not address.startswith(("/", "@")):
            log.warning("NOTIFY_SOCKET=%r is not a socket path; not notifying systemd", address)
            address = None
        return cls(address, _watchdog_interval(env))

    @property
    def enabled(self) -> bool:
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between ``WATCHDOG=1`` pings, or None when systemd expects none from us."""
        return self._watchdog_interval

    def ready(self, status: str = "") -> bool:
        return self.notify(READY=1, **_status(status))

    def status(self, text: str) -> bool:
        return self.notify(STATUS=text)

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG=1)

    def stopping(self, status: str = "") -> bool:
        return self.notify(STOPPING=1, **_status(status))

    def notify(self, **fields: str | int) -> bool:
        # A newline would end the assignment early and let the rest pose as another field.
        lines = (f"{name}={' '.join(str(value).splitlines())}" for name, value in fields.items())
        return self.send("\n".join(lines))

    def send(self, message: str) -> bool:
        """Send one raw message; True if it was handed to the socket."""
        if self._address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)  # a full or stuck receiver must not stall the daemon
                sock.sendto(message.encode("utf-8"), self._address)
        except (OSError, ValueError) as exc:  # ValueError: a path or text the socket refuses
            level = logging.DEBUG if self._warned else logging.WARNING
            self._warned = True
            log.log(level, "cannot notify systemd at %r: %s", self._address, exc)
            return False
        return True


class Watchdog:
    """A daemon thread sending ``WATCHDOG=1`` every ``interval`` seconds while ``healthy()``.

    When ``healthy()`` returns False (or raises) the pings stop, so systemd restarts the
    service once ``WatchdogSec`` passes; they resume if it recovers before then. With
    ``interval=None`` (no watchdog configured) ``start()`` does nothing.
    """

    def __init__(
        self, notifier: Notifier, healthy: Callable[[], bool], interval: float | None
    ) -> None:
        self.notifier = notifier
        self.healthy = healthy
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="systemd-watchdog", daemon=True)
        self._was_healthy = True

    def start(self) -> None:
        if self.interval is not None and self.notifier.enabled:
            self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        assert self.interval is not None  # start() checked
        while True:
            self.check()
            if self._stop.wait(self.interval):
                return

    def check(self) -> None:
        """One round: ping if healthy; log when health changes, not every round."""
        error: Exception | None = None
        try:
            healthy = bool(self.healthy())
        except Exception as exc:  # a broken check must not end the thread: count it unhealthy
            healthy, error = False, exc
        if healthy != self._was_healthy:
            self._was_healthy = healthy
            if healthy:
                log.warning("watchdog: healthy again; pings to systemd resumed")
            else:
                log.error("watchdog: unhealthy; pings to systemd stopped (it restarts the "
                          "service once WatchdogSec passes without one)", exc_info=error)
        if healthy:
            self.notifier.watchdog()


def _status(text: str) -> dict[str, str]:
    return {"STATUS": text} if text else {}


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Half of ``$WATCHDOG_USEC``, as sd_watchdog_enabled(3) advises; only if meant for us."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
        pid = int(env["WATCHDOG_PID"]) if env.get("WATCHDOG_PID") else os.getpid()
    except ValueError:
        return None
    if usec <= 0 or pid != os.getpid():
        return None
    return usec / 2 / 1_000_000
