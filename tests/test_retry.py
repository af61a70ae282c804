"""The retry policy and the rate limiter, with clocks and sleeps under test control."""

from __future__ import annotations

import pytest

from channelsync.errors import PermanentChannelError, RetriableChannelError, ThrottledError
from channelsync.ratelimit import TokenBucket
from channelsync.retry import RetryPolicy


class Flaky:
    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_retriable_errors_are_retried_with_growing_waits() -> None:
    sleeps: list[float] = []
    policy = RetryPolicy(attempts=4, initial=1.0, max_wait=30, sleep=sleeps.append)
    flaky = Flaky(RetriableChannelError("a"), RetriableChannelError("b"),
                  RetriableChannelError("c"))
    assert policy.call(flaky) == "ok"
    assert flaky.calls == 4 and len(sleeps) == 3
    assert sleeps[0] < sleeps[2]  # exponential, jitter of at most the initial wait


def test_retry_after_is_honoured_and_capped() -> None:
    sleeps: list[float] = []
    policy = RetryPolicy(attempts=3, initial=0.1, max_wait=10, sleep=sleeps.append)
    policy.call(Flaky(ThrottledError("slow", retry_after=7), ThrottledError("x", retry_after=900)))
    assert 7 <= sleeps[0] < 8
    assert sleeps[1] == 10


def test_permanent_errors_and_exhaustion_raise_the_channel_error() -> None:
    policy = RetryPolicy(attempts=2, sleep=lambda _s: None)
    refused = Flaky(PermanentChannelError("no"))
    with pytest.raises(PermanentChannelError):
        policy.call(refused)
    assert refused.calls == 1
    with pytest.raises(RetriableChannelError, match="b"):
        policy.call(Flaky(RetriableChannelError("a"), RetriableChannelError("b")))


def test_token_bucket_allows_a_burst_then_paces() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(rate=2.0, burst=3, clock=lambda: now[0], sleep=sleep)
    waits = [bucket.acquire() for _ in range(5)]
    assert waits[:3] == [0, 0, 0]
    assert waits[3] == pytest.approx(0.5) and waits[4] == pytest.approx(0.5)
    now[0] += 10  # idle: the bucket refills up to its burst, no further
    assert [bucket.acquire() for _ in range(3)] == [0, 0, 0]
    assert bucket.acquire() == pytest.approx(0.5)
