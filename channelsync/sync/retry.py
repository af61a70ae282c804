"""The one retry policy: exponential backoff with jitter and a cap, honouring Retry-After.

Only ``RetriableChannelError`` is retried; connectors tune the numbers through
config, never the logic. A channel that asks us to come back later than a cycle should wait
is not waited for where the call may be deferred (``ratelimit.deferring``): the call is
``Deferred`` to a later cycle.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from channelsync.errors import Deferred, RetriableChannelError
from channelsync.sync.ratelimit import deferral

T = TypeVar("T")


class RetryPolicy:
    def __init__(
        self,
        attempts: int = 4,
        initial: float = 0.5,
        max_wait: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.attempts = attempts
        self.max_wait = max_wait
        self._backoff = wait_exponential_jitter(multiplier=initial, max=max_wait, jitter=initial)
        self._sleep = sleep

    def wait(self, state: RetryCallState) -> float:
        backoff = float(self._backoff(state))
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            # The channel said when: never earlier, and not absurdly later than our cap.
            return max(backoff, min(float(retry_after), max(self.max_wait, 1.0)))
        return backoff

    def call(self, fn: Callable[[], T]) -> T:
        retrying = Retrying(
            retry=retry_if_exception(self._worth_waiting),
            stop=stop_after_attempt(self.attempts),
            wait=self.wait,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(fn)
        except Deferred:
            raise
        except RetriableChannelError as exc:
            later = _later(exc)
            if later is None:
                raise
            later.channel = exc.channel
            raise later from exc

    def _worth_waiting(self, exc: BaseException) -> bool:
        return (isinstance(exc, RetriableChannelError) and not isinstance(exc, Deferred)
                and _later(exc) is None)

    def delay_after(self, failures: int) -> float:
        """How long to park a push that failed ``failures`` times in a row."""
        return float(min(self.max_wait * 10, 2 ** max(failures - 1, 0) * 5))


def _later(exc: RetriableChannelError) -> Deferred | None:
    """A channel asking us to wait longer than a cycle should, for a deferrable call."""
    if exc.retry_after is None:
        return None
    return deferral(exc.retry_after, str(exc), reason="the channel asks us to wait")
