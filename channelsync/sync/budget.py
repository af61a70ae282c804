"""Daily revision budgets: channels that cap how often a listing may change per day.

eBay allows 250 quantity revisions per listing per day (its day, US Pacific). A busy SKU
must not burn that budget by noon: decreases always go out while any budget is left (an
oversell costs more than a revision), increases are spread over what is left of the day,
and the outbox keeps coalescing the held ones, so the newest target is what goes out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from channelsync.ledger.conflicts import ConflictRecord

RESERVE = 10  # revisions kept for decreases once the budget runs low
WARN_AT = 0.8  # a conflict (and so an alert) once this share of the budget is used


@dataclass(frozen=True)
class Budget:
    limit: int
    timezone: str = "UTC"

    def day(self, now: datetime) -> str:
        return now.astimezone(ZoneInfo(self.timezone)).date().isoformat()

    def used(self, row: dict[str, Any], now: datetime) -> int:
        return int(row["revisions"]) if row.get("revisions_day") == self.day(now) else 0

    def seconds_left_today(self, now: datetime) -> float:
        local = now.astimezone(ZoneInfo(self.timezone))
        midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0,
                                                       microsecond=0)
        return max((midnight - local).total_seconds(), 1.0)

    def allows(self, row: dict[str, Any], now: datetime) -> bool:
        """May this outbox row (with ``target``, ``last_pushed``, ``last_pushed_at``) go now?"""
        left = self.limit - self.used(row, now)
        if left <= 0:
            return False
        last = row.get("last_pushed")
        if last is None or row["target"] < last:
            return True  # a first push or a decrease: never hold back what prevents overselling
        spare = left - RESERVE
        if spare <= 0:
            return False
        pushed_at = row.get("last_pushed_at")
        pace = self.seconds_left_today(now) / spare
        return pushed_at is None or (now - pushed_at).total_seconds() >= pace

    def after_push(self, row: dict[str, Any], now: datetime) -> dict[str, Any]:
        """The listing's new revision count."""
        return {"revisions_day": self.day(now), "revisions": self.used(row, now) + 1}

    def warning(self, channel: str, row: dict[str, Any], now: datetime) -> ConflictRecord | None:
        used = self.used(row, now)
        if used < self.limit * WARN_AT:
            return None
        return ConflictRecord(
            kind="revision_budget", subject=f"{channel}:{row['channel_sku']}", channel=channel,
            sku=row.get("sku"),
            message=(f"{channel}: {row['channel_sku']} has used {used} of its {self.limit} "
                     f"quantity revisions for today ({self.timezone}); increases now wait, "
                     "decreases still go out until none are left"),
            detail={"used": used, "limit": self.limit, "day": self.day(now)},
        )
