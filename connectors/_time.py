"""Channel timestamps: read as timezone-aware UTC, written as UTC text."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any


def parse_utc(value: Any) -> datetime | None:
    """An ISO 8601 time as aware UTC (a time without an offset is UTC); None if unreadable."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def format_utc(moment: datetime, pattern: str) -> str:
    """``moment`` in UTC with a strftime pattern (a naive time is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(pattern)


def http_date(headers: Mapping[str, Any] | None) -> datetime | None:
    """The server's clock from a response's ``Date`` header (to the second), or None."""
    value = None
    for name, text in (headers or {}).items():
        if str(name).lower() == "date":
            value = text
    if not isinstance(value, str):
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
