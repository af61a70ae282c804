"""Template filters: times as people read them (``3m10s ago``), exact times in UTC on hover."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from channelsync.orders.book import stage_label
from channelsync.sync.ratelimit import human_wait


def _when(value: str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def ago(value: str | datetime | None, now: datetime) -> str:
    """``12s ago``, ``in 40s``; ``never`` for nothing."""
    when = _when(value)
    if when is None:
        return "never"
    seconds = (now - when).total_seconds()
    return f"in {human_wait(-seconds)}" if seconds < 0 else f"{human_wait(seconds)} ago"


def stamp(value: str | datetime | None) -> str:
    """``2026-12-04 09:35:38 UTC``, or empty."""
    when = _when(value)
    return f"{when:%Y-%m-%d %H:%M:%S} UTC" if when else ""


def age(seconds: float | None) -> str:
    return "-" if seconds is None else human_wait(seconds)


def signed(number: int | None) -> str:
    return f"{number:+d}" if number else ""


def dash(value: Any) -> Any:
    return "-" if value is None or value == "" else value


FILTERS: dict[str, Callable[..., Any]] = {
    "ago": ago, "stamp": stamp, "age": age, "signed": signed, "dash": dash,
    "stage": stage_label,
}
