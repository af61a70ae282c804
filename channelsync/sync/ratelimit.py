"""Client-side rate limiting: a token bucket per channel, sized by the connector, and the
rule for waits too long for a cycle.

A cycle never sits for minutes in a rate limit when the call can be made later: inside
``deferring(True)`` (the engine marks order pulls, which resume page by page, and push
batches, which stay in the outbox), a wait longer than ``DEFER_AFTER`` seconds raises
``Deferred`` instead, saying when the call will be allowed, and the engine moves on. Work
that cannot be split (reading every listing) waits as long as it must.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from channelsync.errors import Deferred

DEFER_AFTER = 5.0  # seconds: a longer wait defers a deferrable call to a later cycle
_local = threading.local()


@contextmanager
def deferring(allowed: bool) -> Iterator[None]:
    """On this thread, within the block, long waits defer the call (True) or are waited."""
    previous = getattr(_local, "allowed", False)
    _local.allowed = allowed
    try:
        yield
    finally:
        _local.allowed = previous


def deferral(wait: float, what: str, reason: str = "rate limit") -> Deferred | None:
    """The ``Deferred`` to raise instead of waiting ``wait`` seconds, where the call may be
    deferred and the wait is too long for a cycle; None: wait."""
    if not getattr(_local, "allowed", False) or wait <= DEFER_AFTER:
        return None
    return Deferred(f"{what}: {reason}, next call allowed in {human_wait(wait)}",
                    wait=wait, operation=what)


class TokenBucket:
    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        name: str = "",
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = float(burst)
        self.name = name or "the next call"  # the operation, for messages
        self._tokens = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, sleeping until one is there. Returns the time slept.

        Where the call may be deferred and the wait is longer than ``DEFER_AFTER``, raises
        ``Deferred`` and takes nothing."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            wait = (1.0 - self._tokens) / self.rate if self._tokens < 1.0 else 0.0
            later = deferral(wait, self.name)
            if later is not None:
                raise later
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
