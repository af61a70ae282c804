"""Daily revision budgets (eBay: 250 quantity revisions per listing per Pacific day)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from channelsync.sync.budget import RESERVE, Budget

NOON_PACIFIC = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)  # 12:00 in Los Angeles
EBAY = Budget(250, "America/Los_Angeles")


def row(used: int, target: int, last: int | None = 5, ago: float = 3600,
        day: str = "2026-11-26") -> dict[str, Any]:
    return {"revisions": used, "revisions_day": day, "target": target, "last_pushed": last,
            "last_pushed_at": NOON_PACIFIC - timedelta(seconds=ago), "channel_sku": "MUG",
            "sku": "MUG"}


def test_the_day_is_the_channels_own() -> None:
    late_utc = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)  # still the 26th in Los Angeles
    assert EBAY.day(late_utc) == "2026-11-26"
    assert Budget(250).day(late_utc) == "2026-11-27"
    assert EBAY.used(row(200, 3), late_utc) == 200
    assert EBAY.used(row(200, 3, day="2026-11-25"), late_utc) == 0  # yesterday's count


def test_decreases_go_while_any_revision_is_left() -> None:
    assert EBAY.allows(row(249, 0), NOON_PACIFIC)
    assert not EBAY.allows(row(250, 0), NOON_PACIFIC)


def test_increases_are_spread_over_the_rest_of_the_day() -> None:
    # 12 hours left and 100 spare revisions: one increase every 432 s at most.
    assert EBAY.allows(row(250 - 100 - RESERVE, 9, ago=500), NOON_PACIFIC)
    assert not EBAY.allows(row(250 - 100 - RESERVE, 9, ago=60), NOON_PACIFIC)
    assert not EBAY.allows(row(250 - RESERVE, 9, ago=36000), NOON_PACIFIC)  # the reserve


def test_a_warning_once_most_of_the_budget_is_used() -> None:
    assert EBAY.warning("ebay", row(100, 3), NOON_PACIFIC) is None
    warning = EBAY.warning("ebay", row(200, 3), NOON_PACIFIC)
    assert warning is not None and warning.kind == "revision_budget"
    assert "200 of its 250" in warning.message
