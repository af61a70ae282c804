"""The retry policy and the rate limiter, with clocks and sleeps under test control."""

from __future__ import annotations

import pytest

from channelsync.errors import (
    Deferred,
    PermanentChannelError,
    RetriableChannelError,
    ThrottledError,
)
from channelsync.sync.ratelimit import TokenBucket, deferring, human_wait
from channelsync.sync.retry import RetryPolicy


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
    policy = RetryPolicy(attempts=3, initial=0.1, max_wait=3, sleep=sleeps.append)
    with deferring(True):  # both waits are short enough for a cycle: waited
        policy.call(Flaky(ThrottledError("slow", retry_after=2),
                          ThrottledError("x", retry_after=4.5)))
    assert 2 <= sleeps[0] < 2.5
    assert sleeps[1] == 3  # capped at max_wait
    policy.call(Flaky(ThrottledError("minutes", retry_after=900)))  # not deferrable: waited
    assert sleeps[2] == 3


def test_a_channel_asking_for_minutes_defers_the_call_instead_of_waiting() -> None:
    sleeps: list[float] = []
    policy = RetryPolicy(attempts=4, initial=0.1, sleep=sleeps.append)
    flaky = Flaky(ThrottledError("throttled", channel="shop", retry_after=171))
    with deferring(True), pytest.raises(Deferred) as deferred:
        policy.call(flaky)
    assert flaky.calls == 1 and sleeps == []  # not retried, not slept on
    assert deferred.value.wait == 171 and deferred.value.channel == "shop"
    assert "2m51s" in str(deferred.value)


def test_a_deferred_call_is_not_retried() -> None:
    sleeps: list[float] = []
    policy = RetryPolicy(attempts=4, sleep=sleeps.append)
    flaky = Flaky(Deferred("rate limit", wait=60))
    with pytest.raises(Deferred):
        policy.call(flaky)
    assert flaky.calls == 1 and sleeps == []


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


def test_token_bucket_defers_a_long_wait_and_keeps_its_token() -> None:
    now = [0.0]
    slept: list[float] = []
    bucket = TokenBucket(rate=1 / 180, burst=2, clock=lambda: now[0], sleep=slept.append,
                         name="searchOrders")
    assert [bucket.acquire(), bucket.acquire()] == [0, 0]
    now[0] += 9
    with deferring(True), pytest.raises(Deferred) as deferred:
        bucket.acquire()
    assert slept == []
    assert deferred.value.wait == pytest.approx(171) and deferred.value.operation == "searchOrders"
    assert "searchOrders" in str(deferred.value) and "2m51s" in str(deferred.value)
    now[0] += 168  # 3 s before the token is back: a short wait is slept through
    with deferring(True):
        assert bucket.acquire() == pytest.approx(3)
    assert slept == [pytest.approx(3)]


def test_token_bucket_waits_however_long_where_the_call_cannot_be_deferred() -> None:
    slept: list[float] = []
    bucket = TokenBucket(rate=0.01, burst=1, clock=lambda: 0.0, sleep=slept.append)
    bucket.acquire()
    with deferring(False):  # e.g. reading every listing: it cannot be split across cycles
        assert bucket.acquire() == pytest.approx(100)
    assert bucket.acquire() == pytest.approx(200)  # outside any engine call: the same
    assert slept == [pytest.approx(100), pytest.approx(200)]


@pytest.mark.parametrize(("seconds", "text"), [
    (0.2, "0s"), (40, "40s"), (171, "2m51s"), (3600 + 300, "1h05m")])
def test_waits_read_as_people_say_them(seconds: float, text: str) -> None:
    assert human_wait(seconds) == text
