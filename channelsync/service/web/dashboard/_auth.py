"""Who may see the dashboard: argon2 password checks, roles, and a brake on guessing.

A password is checked against its argon2 hash (argon2-cffi); a name that is not
configured is checked against a dummy hash, so an answer takes as long either way.
Each check costs about 64 MiB and 0.1 s: at most ``CONCURRENT_CHECKS`` run at once, and a
client that fails ``MAX_FAILURES`` times in ``FAILURE_WINDOW`` seconds waits out the window.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from channelsync.config import WebUser

ADMIN = "admin"
VIEWER = "viewer"
CONCURRENT_CHECKS = 2
MAX_FAILURES = 10
FAILURE_WINDOW = 300.0  # seconds


@dataclass(frozen=True)
class Visitor:
    """Who is asking: a configured user, or anyone on loopback when no user is configured."""

    name: str
    role: str
    open_access: bool = False  # no [[web.users]]: loopback only, everyone is admin

    @property
    def admin(self) -> bool:
        return self.role == ADMIN


def hash_password(password: str) -> str:
    """An argon2id hash with argon2-cffi's default (RFC 9106 low-memory) parameters."""
    return PasswordHasher().hash(password)


class Passwords:
    """Checks passwords; never raises for a bad or malformed hash, only answers False."""

    def __init__(self) -> None:
        self._hasher = PasswordHasher()
        self._slots = threading.BoundedSemaphore(CONCURRENT_CHECKS)
        self._dummy: str | None = None

    def check(self, user: WebUser | None, password: str) -> bool:
        with self._slots:
            if user is None:
                self._verify(self._dummy_hash(), password)
                return False
            return self._verify(user.password_hash.get_secret_value(), password)

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = self._hasher.hash(secrets.token_hex(16))
        return self._dummy


class Throttle:
    """Failed logins per client address; too many in the window and it must wait."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def blocked(self, client: str) -> bool:
        with self._lock:
            return len(self._recent(client)) >= MAX_FAILURES

    def failed(self, client: str) -> None:
        with self._lock:
            self._recent(client).append(self._clock())
            if len(self._failures) > 10_000:  # a flood of addresses: forget the oldest
                self._failures.pop(next(iter(self._failures)))

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)

    def _recent(self, client: str) -> deque[float]:
        times = self._failures.setdefault(client, deque())
        while times and self._clock() - times[0] > FAILURE_WINDOW:
            times.popleft()
        return times
