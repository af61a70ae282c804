"""What the demo measures: how fast a sale reaches the other channels, and why each
oversell happened.

A sale has reached another channel once that channel's push in a cycle that ran after the
ledger applied the sale left none of its listings of the SKU waiting in the outbox: from
then on it shows a quantity that counts the sale. The times come from the engine's
``pull_done`` and ``push_done`` events, so they are the moments the work finished.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from channelsync.ledger.schema import line_t, listing_t, outbox_t
from channelsync.sandbox.demo.scenario import KITS, LISTED, Journal, Sale


def affected(sku: str) -> set[str]:
    """The SKUs whose listings a sale of ``sku`` changes: itself, its components and every
    kit sharing a component."""
    components = set(KITS.get(sku, {sku: 1}))
    return {sku} | components | {kit for kit, parts in KITS.items() if components & set(parts)}


@dataclass
class Reach:
    sale: Sale
    applied_at: float | None = None  # when the ledger held it
    waiting: set[str] = field(default_factory=set)  # channels it has not reached yet
    reached: dict[str, float] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.applied_at is not None and not self.waiting

    @property
    def seconds(self) -> float:
        return max(self.reached.values(), default=self.applied_at or 0.0) - self.sale.at


class Propagation:
    """Follows every sale until all other channels show it; an observer of engine events."""

    def __init__(self, db: Engine, journal: Journal) -> None:
        self.db, self.journal = db, journal
        self.reach: dict[tuple[str, str], Reach] = {}
        self._pushes: dict[str, list[float]] = defaultdict(list)  # this cycle's push times
        self._lock = threading.Lock()

    def observe(self, event: str, fields: dict[str, Any]) -> None:
        if event == "push_done":
            self._pushes[fields["channel"]].append(time.monotonic())
        elif event == "pull_done":
            self._applied(fields["channel"])

    def _track_new_sales(self) -> None:
        with self.journal.lock:
            sales = list(self.journal.sales)
        for sale in sales:
            key = (sale.channel, sale.order_id)
            if key not in self.reach:
                others = {c for c, skus in LISTED.items()
                          if c != sale.channel and affected(sale.sku) & set(skus)}
                self.reach[key] = Reach(sale, waiting=others)

    def _applied(self, channel: str) -> None:
        self._track_new_sales()
        pending = [r for r in self.reach.values()
                   if r.sale.channel == channel and r.applied_at is None]
        if not pending:
            return
        with self.db.connect() as conn:
            seen = set(conn.execute(sa.select(line_t.c.order_id).where(
                line_t.c.channel == channel,
                line_t.c.order_id.in_([r.sale.order_id for r in pending]))).scalars())
        now = time.monotonic()
        for r in pending:
            if r.sale.order_id in seen:
                r.applied_at = now

    def after_cycle(self) -> None:
        """Settle which sales reached which channels in the cycle that just ran."""
        with self.db.connect() as conn:
            waiting = {(str(c), str(s)) for c, s in conn.execute(
                sa.select(listing_t.c.channel, listing_t.c.sku)
                .join(outbox_t, outbox_t.c.listing_id == listing_t.c.id))}
        for r in self.reach.values():
            if r.applied_at is None:
                continue
            for channel in sorted(r.waiting):
                pushed = [t for t in self._pushes.get(channel, []) if t >= r.applied_at]
                if pushed and not any((channel, s) in waiting for s in affected(r.sale.sku)):
                    r.reached[channel] = pushed[0]
                    r.waiting.discard(channel)
        self._pushes.clear()

    def summary(self) -> tuple[float, float, Reach] | None:
        """(median seconds, slowest seconds, the slowest sale) over the sales that arrived."""
        done = [r for r in self.reach.values() if r.done and r.reached]
        if not done:
            return None
        slowest = max(done, key=lambda r: r.seconds)
        return statistics.median(r.seconds for r in done), slowest.seconds, slowest


@dataclass(frozen=True)
class Oversell:
    sku: str
    message: str  # why, in a seller's words
    unavoidable: bool
    alerted_after: float | None  # seconds from the sale that oversold it to the alert
    open: bool


def explain_oversells(conflicts: list[dict[str, Any]], journal: Journal, reach: Propagation,
                      alerts: list[tuple[float, str]]) -> list[Oversell]:
    """Each oversell: which sales collided, and whether any sync could have stopped it (the
    later sale came before the earlier one could reach its channel)."""
    sales = {(s.channel, s.order_id): s for s in journal.sales}
    found = []
    for conflict in conflicts:
        if conflict["kind"] != "oversell":
            continue
        orders = [sales.get((o.get("channel"), str(o.get("order_id"))))
                  for o in conflict["detail"].get("orders", [])]
        known = sorted((s for s in orders if s is not None), key=lambda s: s.at)
        found.append(_oversell(conflict, known, reach, alerts))
    return found


def _oversell(conflict: dict[str, Any], sales: list[Sale], reach: Propagation,
              alerts: list[tuple[float, str]]) -> Oversell:
    sku, is_open = conflict["subject"], conflict["resolved_at"] is None
    alert = next((t for t, title in alerts if title == f"channelsync: oversell {sku}"), None)
    if len(sales) < 2:
        return Oversell(sku, f"{sku}: oversold by orders the demo did not place",
                        False, None, is_open)
    last = sales[-1]
    alerted = alert - last.at if alert is not None else None
    for earlier in reversed(sales[:-1]):
        if earlier.channel == last.channel:
            continue
        r = reach.reach.get((earlier.channel, earlier.order_id))
        arrived = r.reached.get(last.channel) if r else None
        gap = last.at - earlier.at
        if arrived is None or arrived > last.at:
            why = (f"{sku}: bought on {earlier.channel} and on {last.channel} {gap:.1f} s "
                   f"apart, before the first sale could reach {last.channel}")
            return Oversell(sku, why, True, alerted, is_open)
        late = last.at - arrived
        why = (f"{sku}: sold on {last.channel} {late:.1f} s after channelsync had lowered it "
               f"there: not explained by the channels' lag")
        return Oversell(sku, why, False, alerted, is_open)
    return Oversell(sku, f"{sku}: oversold by orders on one channel", False, alerted, is_open)
