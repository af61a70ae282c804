"""What can go wrong on a channel, as the emulators inject it (``POST /_sandbox/faults``).

- ``throttle_rate``, ``error_rate``: 429s (with ``retry_after``) and 5xx, before the request
  is handled; ``latency_ms`` before every answer.
- ``hang_rate``: a request that is never answered: the connection stays silent for
  ``hang_seconds`` (longer than a client's timeout), then closes. Nothing was done.
- ``lost_answer_rate``: a write (the channel declares which operations write) that the
  channel applied, whose answer is lost: a 5xx or a dropped connection in its place.
- ``duplicate_rate``, ``reorder_rate``, ``stale_rate``: pages of orders that show an order
  twice, come shuffled, or show an order as it was before its latest change.
- ``clock_skew``: seconds the channel's clock runs ahead (+) or behind (-) of ours; every
  time it reports moves with it.

The first three draw from the emulator's original random stream as before; the others from
a stream of their own, so adding them leaves a seed's earlier faults where they were.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

T = TypeVar("T")


class Drop:
    """A response that is never sent: the connection closes (an answer lost in transit)."""


DROP = Drop()


@dataclass(frozen=True)
class Faults:
    throttle_rate: float = 0.0
    error_rate: float = 0.0
    latency_ms: float = 0.0
    retry_after: int = 1
    hang_rate: float = 0.0
    hang_seconds: float = 30.0
    lost_answer_rate: float = 0.0
    duplicate_rate: float = 0.0
    reorder_rate: float = 0.0
    stale_rate: float = 0.0
    clock_skew: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_RATES = ("throttle_rate", "error_rate", "hang_rate", "lost_answer_rate", "duplicate_rate",
          "reorder_rate", "stale_rate")
_BOUNDS = {"latency_ms": (0.0, 60_000.0), "retry_after": (0.0, 3600.0),
           "hang_seconds": (0.0, 3600.0), "clock_skew": (-86_400.0, 86_400.0)}


def parse(body: Any) -> Faults:
    """The whole fault configuration from a request body; omitted fields are 0. Raises
    ValueError with a message for people."""
    if not isinstance(body, dict):
        raise ValueError("faults must be a JSON object")
    values: dict[str, Any] = {}
    for name in (*_RATES, *_BOUNDS):
        low, high = _BOUNDS.get(name, (0.0, 1.0))
        value = body.get(name, Faults.__dataclass_fields__[name].default)
        if isinstance(value, bool) or not isinstance(value, int | float) or \
                not low <= value <= high:
            raise ValueError(f'"{name}" must be a number between {low:g} and {high:g}')
        values[name] = int(value) if name == "retry_after" else float(value)
    if values["throttle_rate"] + values["error_rate"] > 1:
        raise ValueError('"throttle_rate" + "error_rate" must not exceed 1')
    return Faults(**values)


def page_faults(
    rng: random.Random, faults: Faults, items: Sequence[T],
    previous: Callable[[T], T | None] = lambda _item: None,
) -> list[T]:
    """One page of orders as a faulty channel serves it: some stale (``previous`` gives the
    order as it was before its latest change, or None), some twice, the page shuffled."""
    if not (faults.stale_rate or faults.duplicate_rate or faults.reorder_rate):
        return list(items)
    page: list[T] = []
    for item in items:
        older = previous(item) if faults.stale_rate and rng.random() < faults.stale_rate \
            else None
        page.append(item if older is None else older)
        if faults.duplicate_rate and rng.random() < faults.duplicate_rate:
            page.append(item)
    if faults.reorder_rate and rng.random() < faults.reorder_rate:
        rng.shuffle(page)
    return page
