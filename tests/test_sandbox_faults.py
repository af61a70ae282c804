"""The emulators' shared fault plan (channelsync.sandbox.faults) on a minimal channel."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
import pytest

from channelsync.sandbox import Emulator, Request, Response, route
from channelsync.sandbox.faults import Faults, page_faults, parse

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Tiny(Emulator):
    """One listing counter and two routes: a read and a write."""

    channel_type = "tiny"
    write_operations: ClassVar[frozenset[str]] = frozenset({"set"})

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.value = 0
        self.writes = 0

    @route("GET", r"/value", "get")
    def get(self, request: Request) -> Response:
        return 200, {"value": self.value, "now": self.clock().isoformat()}, {}

    @route("POST", r"/value", "set")
    def set(self, request: Request) -> Response:
        self.value = request.json()["value"]
        self.writes += 1
        return 200, {"value": self.value}, {}

    def reset(self) -> None:
        self.value = self.writes = 0


@pytest.fixture
def tiny() -> Iterator[Tiny]:
    with Tiny(seed=3, clock=lambda: T0) as emulator:
        yield emulator


def test_a_lost_answer_is_a_write_applied_without_its_answer(tiny: Tiny) -> None:
    httpx.post(f"{tiny.url}/_sandbox/faults", json={"lost_answer_rate": 1.0, "seed": 1})
    outcomes = []
    for n in range(1, 9):
        try:
            outcomes.append(httpx.post(f"{tiny.url}/value", json={"value": n}).status_code)
        except httpx.RemoteProtocolError:
            outcomes.append("dropped")
    assert tiny.writes == 8 and tiny.value == 8  # every write was applied...
    assert all(o == "dropped" or o >= 500 for o in outcomes)  # ...and no answer said so
    assert "dropped" in outcomes and any(o != "dropped" for o in outcomes)
    assert httpx.get(f"{tiny.url}/value").json()["value"] == 8  # reads are not "lost"
    assert tiny.stats()["lost_answers"] == 8


def test_a_hung_request_is_never_answered_and_does_nothing(tiny: Tiny) -> None:
    httpx.post(f"{tiny.url}/_sandbox/faults", json={"hang_rate": 1.0, "hang_seconds": 0.5})
    with pytest.raises(httpx.TimeoutException):
        httpx.post(f"{tiny.url}/value", json={"value": 5}, timeout=0.2)
    httpx.post(f"{tiny.url}/_sandbox/faults", json={})
    assert httpx.get(f"{tiny.url}/value").json()["value"] == 0 and tiny.writes == 0
    assert tiny.stats()["hung"] == 1


def test_clock_skew_moves_every_time_the_channel_reports(tiny: Tiny) -> None:
    httpx.post(f"{tiny.url}/_sandbox/faults", json={"clock_skew": -90})
    assert httpx.get(f"{tiny.url}/value").json()["now"] == (T0 - timedelta(seconds=90)).isoformat()
    httpx.post(f"{tiny.url}/_sandbox/reset")
    assert httpx.get(f"{tiny.url}/value").json()["now"] == T0.isoformat()


def test_sandbox_order_listing_is_refused_where_a_channel_has_none(tiny: Tiny) -> None:
    answer = httpx.get(f"{tiny.url}/_sandbox/orders")
    assert answer.status_code == 404 and "does not list its orders" in answer.json()["error"]


def test_page_faults_duplicate_shuffle_and_serve_previous_versions() -> None:
    items = [f"O{n}" for n in range(200)]
    faults = Faults(duplicate_rate=0.1, reorder_rate=1.0, stale_rate=0.2)
    page = page_faults(random.Random(5), faults, items, previous=lambda o: o + "-old")
    stale = [p for p in page if p.endswith("-old")]
    current = [p for p in page if not p.endswith("-old")]
    assert 20 < len(stale) < 60 and len(page) > len(items)  # some stale, some twice
    assert len(current) > len(set(current))  # duplicates
    assert {p.removesuffix("-old") for p in page} == set(items)  # nothing lost
    assert page != sorted(page, key=lambda p: int(p[1:].removesuffix("-old")))  # shuffled
    assert page_faults(random.Random(5), Faults(), items) == items  # off: untouched


@pytest.mark.parametrize(("body", "message"), [
    ({"throttle_rate": 0.6, "error_rate": 0.6}, "must not exceed 1"),
    ({"stale_rate": 2}, '"stale_rate" must be a number between 0 and 1'),
    ({"clock_skew": "soon"}, '"clock_skew" must be a number'),
    ([], "must be a JSON object"),
])
def test_a_bad_fault_plan_is_refused_with_a_reason(body: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(body)
