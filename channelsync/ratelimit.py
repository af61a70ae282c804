"""Client-side rate limiting: a token bucket per channel, sized by the connector.

A cycle never sits for minutes in a bucket: when the next token is further away than
``defer_after`` seconds the call is not made and ``Deferred`` says when it will be allowed,
so the engine moves on (pushes still go out) and makes the call in a later cycle.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from channelsync.errors import Deferred

DEFER_AFTER = 5.0  # seconds: a longer client-side wait defers the call to a later cycle


class TokenBucket:
    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        defer_after: float | None = DEFER_AFTER,
        name: str = "",
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = float(burst)
        self.defer_after = defer_after  # None: always wait, however long
        self.name = name  # the operation, for messages
        self._tokens = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, sleeping until one is there. Returns the time slept.

        Raises ``Deferred`` (taking nothing) when that would mean waiting longer than
        ``defer_after``."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            wait = (1.0 - self._tokens) / self.rate if self._tokens < 1.0 else 0.0
            if self.defer_after is not None and wait > self.defer_after:
                what = self.name or "the next call"
                raise Deferred(f"{what}: rate limit, next call allowed in {human_wait(wait)}",
                               wait=wait, operation=self.name)
            self._tokens -= 1.0
        if wait:
            self._sleep(wait)
        return wait


def human_wait(seconds: float) -> str:
    """``2m51s``, ``40s``, ``1h05m``: how long until something, for people."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
