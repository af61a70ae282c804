"""A SKU's stock over time, from its movements, as the numbers of an inline SVG step chart.

The ledger keeps no levels over time, only movements (invariant 2: on hand is the sum of
its movements), so the levels are walked back from today's: before a movement, a level
was its value after it less the movement's delta. Available uses today's safety stock
(its changes are not movements). Drawn server-side: no script, no chart library.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

WIDTH = 720
HEIGHT = 240
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 44, 12, 12, 28
SERIES = ("on_hand", "reserved", "available")


@dataclass(frozen=True)
class Level:
    at: datetime
    on_hand: int
    reserved: int
    available: int
    why: str = ""  # the movement that made it ("" for the window's start)

    def value(self, series: str) -> int:
        return int(getattr(self, series))


@dataclass(frozen=True)
class Chart:
    levels: list[Level]
    lines: dict[str, str]  # series -> the polyline's points attribute
    y_ticks: list[tuple[float, int]]  # (y, value)
    x_ticks: list[tuple[float, str]]  # (x, label)
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def left(self) -> int:
        return PAD_LEFT

    @property
    def bottom(self) -> int:
        return self.height - PAD_BOTTOM


def levels(on_hand: int, reserved: int, safety_stock: int, movements: list[dict[str, Any]],
           start: datetime) -> list[Level]:
    """The level at ``start`` and after each movement (oldest first), ending at today's."""
    after = []
    for movement in reversed(movements):
        after.append(Level(movement["created_at"], on_hand, reserved,
                           on_hand - reserved - safety_stock, _why(movement)))
        on_hand -= movement["on_hand_delta"]
        reserved -= movement["reserved_delta"]
    first = min([start, *(m["created_at"] for m in movements)])
    return [Level(first, on_hand, reserved, on_hand - reserved - safety_stock),
            *reversed(after)]


def _why(movement: dict[str, Any]) -> str:
    return f"{movement['kind']}: {movement.get('reason') or movement.get('source') or ''}"


def chart(points: list[Level], end: datetime) -> Chart:
    """Step lines from the first level to ``end`` (each level holds until the next)."""
    start = points[0].at
    span = max((end - start).total_seconds(), 1.0)
    values = [p.value(s) for p in points for s in SERIES]
    low, high = _range(min(values), max(values))
    inner_w, inner_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM

    def x(at: datetime) -> float:
        return round(PAD_LEFT + inner_w * (at - start).total_seconds() / span, 1)

    def y(value: int) -> float:
        return round(PAD_TOP + inner_h * (high - value) / (high - low), 1)

    lines = {}
    for series in SERIES:
        coords: list[tuple[float, float]] = []
        for i, point in enumerate(points):
            if i:
                coords.append((x(point.at), y(points[i - 1].value(series))))
            coords.append((x(point.at), y(point.value(series))))
        coords.append((x(end), y(points[-1].value(series))))
        lines[series] = " ".join(f"{cx:g},{cy:g}" for cx, cy in coords)
    y_ticks = [(y(v), v) for v in _ticks(low, high)]
    x_ticks = [(x(at), f"{at:%m-%d %H:%M}") for at in (start, end)]
    return Chart(points, lines, y_ticks, x_ticks)


def _range(low: int, high: int) -> tuple[int, int]:
    low, high = min(low, 0), max(high, 1)
    step = _step(high - low)
    return math.floor(low / step) * step, math.ceil(high / step) * step


def _step(span: int) -> int:
    """A round step that cuts ``span`` into about four."""
    raw = max(span / 4, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    return int(next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw))


def _ticks(low: int, high: int) -> list[int]:
    step = _step(high - low)
    return list(range(low, high + 1, step))
