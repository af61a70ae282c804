"""What must hold after a simulated run has settled, checked against the channels' own
records and the ledger, and the one line of figures a run prints.

- Stock: per SKU, what the channels' orders imply (units open on orders are reserved;
  shipped units left the shelf; returned ones came back) plus the seller's adjustments
  equals the ledger's reserved and on hand: 0 lost, 0 doubled.
- Every listing shows its target (an increase eBay's daily revision budget spreads over the
  day may still be on its way; a listing never shows more than its target).
- Every oversell the truth implies has a conflict, each oversell conflict one alert, and
  the alert names the orders.
- No write ever sent more than the ledger had available; no echo (an increase sent while
  a sale on that channel, made since the previous write and before the pull the write was
  computed after, less the channel's order lag, was not in the ledger: a sale after that
  pull is a race no sync without compare-and-set can win, counted apart); no drift conflict
  for a listing nobody edited on its channel; no secret in any log line.
- The order book holds every channel's order at a stage its units allow.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from channelsync.ledger.schema import conflict_t, line_t, listing_t, push_log_t, sku_t
from channelsync.sandbox.simulation.workload import Journal
from channelsync.sandbox.simulation.world import CATALOG, KITS, LAG, SECRETS
from channelsync.service.reports import conflicts as all_conflicts

PACED = {"ebay"}  # increases spread over the day by the daily revision budget


@dataclass
class Figures:
    orders: int = 0
    faults: int = 0
    kills: int = 0
    lost: int = 0  # units the ledger does not hold that the channels' orders imply
    doubled: int = 0  # units the ledger holds twice
    stock_off: list[str] = field(default_factory=list)  # the SKUs where, and how
    off_target: list[str] = field(default_factory=list)
    paced: int = 0
    oversells: int = 0
    alerted: int = 0
    unalerted: list[str] = field(default_factory=list)
    missed_oversells: list[str] = field(default_factory=list)
    over_pushes: list[str] = field(default_factory=list)
    echoes: list[str] = field(default_factory=list)  # avoidable
    echoes_in_lag: int = 0  # a sale after the pull the write knew of: no sync can see it
    false_drift: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    oversell_latency: list[float] = field(default_factory=list)  # sale -> conflict, seconds
    book_orders: int = 0  # channel orders checked against the order book
    book_off: list[str] = field(default_factory=list)

    @property
    def converged(self) -> bool:
        return not self.off_target

    @property
    def ok(self) -> bool:
        return not (self.lost or self.doubled or self.off_target or self.unalerted
                    or self.missed_oversells or self.over_pushes or self.echoes
                    or self.false_drift or self.secrets or self.book_off)

    def line(self) -> str:
        latency = (f", oversell seen after {statistics.median(self.oversell_latency):.1f} s "
                   f"median / {max(self.oversell_latency):.1f} s max"
                   if self.oversell_latency else "")
        return (f"orders {self.orders}, faults {self.faults}, kills {self.kills}, "
                f"lost {self.lost}, doubled {self.doubled}, "
                f"converged {'yes' if self.converged else f'no ({len(self.off_target)})'}"
                f"{f' ({self.paced} paced)' if self.paced else ''}, "
                f"oversells {self.oversells} (alerted {self.alerted}), "
                f"echo pushes {len(self.echoes)} (+{self.echoes_in_lag} within lag), "
                f"false drift alerts {len(self.false_drift)}, "
                f"order book {self.book_orders - len(self.book_off)}/{self.book_orders}"
                f"{latency}")

    def problems(self) -> list[str]:
        found = [*self.off_target, *self.unalerted, *self.missed_oversells,
                 *self.over_pushes, *self.echoes, *self.false_drift, *self.secrets,
                 *self.book_off[:10]]
        if self.lost or self.doubled:
            found[:0] = [f"stock: {self.lost} units lost, {self.doubled} doubled",
                         *self.stock_off]
        return found


def expected_stock(orders: dict[str, list[dict[str, Any]]],
                   adjustments: dict[str, int]) -> dict[str, tuple[int, int]]:
    """sku -> (on hand, reserved) the channels' orders and the seller's moves imply."""
    on_hand = {sku: units + adjustments.get(sku, 0) for sku, units in CATALOG.items()}
    reserved = dict.fromkeys(CATALOG, 0)
    for rows in orders.values():
        for order in rows:
            if order.get("test") or order.get("fulfilled_by") == "AMAZON":
                continue
            for line in order["lines"]:
                parts = KITS.get(line["sku"], {line["sku"]: 1})
                open_units = line["quantity"] - line["shipped"] - line["cancelled"]
                for sku, per in parts.items():
                    reserved[sku] += max(0, open_units) * per
                    on_hand[sku] += (line.get("restocked", 0) - line["shipped"]) * per
    return {sku: (on_hand[sku], reserved[sku]) for sku in CATALOG}


def check_stock(figures: Figures, db: Engine, truth: dict[str, tuple[int, int]]) -> None:
    with db.connect() as conn:
        ledger = {s: (o, r) for s, o, r in conn.execute(
            sa.select(sku_t.c.sku, sku_t.c.on_hand, sku_t.c.reserved))}
    for sku, (on_hand, reserved) in truth.items():
        have_on_hand, have_reserved = ledger.get(sku, (0, 0))
        figures.lost += max(0, reserved - have_reserved) + max(0, have_on_hand - on_hand)
        figures.doubled += max(0, have_reserved - reserved) + max(0, on_hand - have_on_hand)
        if (have_on_hand, have_reserved) != (on_hand, reserved):
            figures.stock_off.append(f"{sku}: the ledger has {have_on_hand} on hand, "
                                     f"{have_reserved} reserved; the channels' orders imply "
                                     f"{on_hand} and {reserved}")


def order_differences(db: Engine, orders: dict[str, list[dict[str, Any]]],
                      limit: int = 10) -> list[str]:
    """Orders whose units open, shipped or cancelled per SKU differ between the channel's
    own record and the ledger's lines: where a stock difference comes from."""
    truth: dict[tuple[str, str, str], tuple[int, int, int]] = {}
    for channel, rows in orders.items():
        for order in rows:
            if order.get("test") or order.get("fulfilled_by") == "AMAZON":
                continue
            for line in order["lines"]:
                key = (channel, str(order["order_id"]), line["sku"])
                o, sh, c = truth.get(key, (0, 0, 0))
                truth[key] = (o + line["quantity"], sh + line["shipped"], c + line["cancelled"])
    with db.connect() as conn:
        held: dict[tuple[str, str, str], tuple[int, int, int]] = {}
        for channel, order_id, sku, o, sh, c in conn.execute(sa.select(
                line_t.c.channel, line_t.c.order_id, line_t.c.channel_sku, line_t.c.ordered,
                line_t.c.shipped, line_t.c.cancelled).where(line_t.c.state != "ignored")):
            key = (channel, order_id, sku)
            a, b, d = held.get(key, (0, 0, 0))
            held[key] = (a + o, b + sh, d + c)
    found = []
    for key in sorted(set(truth) | set(held)):
        channel_view, ledger_view = truth.get(key), held.get(key)
        if channel_view != ledger_view and (channel_view or (0, 0, 0))[0] + (
                ledger_view or (0, 0, 0))[0] > 0:
            found.append(f"{key[0]} order {key[1]} {key[2]}: the channel has ordered/shipped/"
                         f"cancelled {channel_view}, the ledger {ledger_view}")
    return found[:limit]


def check_book(figures: Figures, db: Engine, orders: dict[str, list[dict[str, Any]]]) -> None:
    """Every order a channel holds is in the order book, at a stage its units allow: all
    open units shipped is shipped (or delivered, returned), some shipped is partly shipped,
    all cancelled and none shipped is cancelled."""
    from channelsync.orders.schema import order_t

    with db.connect() as conn:
        book = {(c, o): stage for c, o, stage in conn.execute(
            sa.select(order_t.c.channel, order_t.c.order_id, order_t.c.stage))}
    for channel, rows in orders.items():
        for order in rows:
            if order.get("test") or order.get("fulfilled_by") == "AMAZON":
                continue
            figures.book_orders += 1
            stage = book.get((channel, str(order["order_id"])))
            ordered = sum(x["quantity"] for x in order["lines"])
            shipped = sum(x["shipped"] for x in order["lines"])
            cancelled = sum(x["cancelled"] for x in order["lines"])
            wanted = ("cancelled",) if shipped == 0 and ordered and cancelled >= ordered else \
                ("shipped", "delivered", "returned") if ordered and shipped >= ordered - cancelled \
                else ("partly_shipped",) if shipped else \
                ("received", "paid", "picked", "packed", "cancelled")
            if stage not in wanted:
                figures.book_off.append(
                    f"{channel} order {order['order_id']} is {stage or 'not in the book'}; "
                    f"its units (ordered {ordered}, shipped {shipped}, cancelled "
                    f"{cancelled}) say {' or '.join(wanted)}")


def check_listings(figures: Figures, targets: dict[tuple[str, str], int | None],
                   shown: dict[str, dict[str, int]]) -> None:
    for (channel, sku), target in sorted(targets.items()):
        showing = shown.get(channel, {}).get(sku)
        if target is None or showing == target:
            continue
        if channel in PACED and showing is not None and showing < target:
            figures.paced += 1
            continue
        figures.off_target.append(f"{channel}:{sku} shows {showing}, its target is {target}")


def check_oversells(figures: Figures, db: Engine, truth: dict[str, tuple[int, int]],
                    alerts: list[dict[str, Any]], journal: Journal) -> None:
    with db.connect() as conn:
        conflicts = all_conflicts(conn, include_resolved=True)
        seen = {(c, o): at for c, o, at in conn.execute(
            sa.select(line_t.c.channel, line_t.c.order_id, line_t.c.first_seen_at))}
    oversells = [c for c in conflicts if c["kind"] == "oversell"]
    figures.oversells = len(oversells)
    first_alerts = [a for a in alerts if a["title"].startswith("channelsync: oversell ")
                    and "Reminder" not in a["message"]]
    for conflict in oversells:
        mine = [a for a in first_alerts if a["title"] == f"channelsync: oversell "
                f"{conflict['subject']}" and f"Conflict {conflict['id']}," in a["message"]]
        if len(mine) == 1 and " order " in mine[0]["message"]:
            figures.alerted += 1
        else:
            figures.unalerted.append(f"oversell {conflict['subject']} (conflict "
                                     f"{conflict['id']}): {len(mine)} alerts")
        figures.oversell_latency += _latency(conflict, journal, seen)
    still = {c["subject"] for c in oversells if c["resolved_at"] is None}
    for sku, (on_hand, reserved) in truth.items():
        if reserved > on_hand and sku not in still:
            figures.missed_oversells.append(f"{sku}: {reserved} reserved for {on_hand} on "
                                            "hand, and no open oversell conflict")


def _latency(conflict: dict[str, Any], journal: Journal,
             seen: dict[tuple[str, str], datetime | None]) -> list[float]:
    """From the latest competing sale before the conflict opened (an open conflict names
    later orders too) to the conflict; none when a write-off came after that sale (the
    ledger raised it at the write-off: no sale to measure from)."""
    opened = datetime.fromisoformat(conflict["opened_at"]).timestamp()
    times = [s.at for s in journal.sales for o in conflict["detail"].get("orders", [])
             if (s.channel, s.order_id) == (o.get("channel"), str(o.get("order_id")))
             and s.at <= opened]
    if not times:
        return []
    last = max(times)
    if any(sku == conflict["subject"] and last < at <= opened for sku, at in journal.write_offs):
        return []
    return [opened - last]


def check_pushes(figures: Figures, db: Engine, journal: Journal) -> None:
    """Over-pushes and echoes, from the push log and the journal of sales."""
    with db.connect() as conn:
        pushes = [dict(r) for r in conn.execute(
            sa.select(push_log_t).where(push_log_t.c.outcome.in_(("ok", "pending")))
            .order_by(push_log_t.c.id)).mappings()]
        seen = {(c, o): at for c, o, at in conn.execute(
            sa.select(line_t.c.channel, line_t.c.order_id, line_t.c.first_seen_at))}
    last: dict[int, float] = {}
    for push in pushes:
        sent = push["sent_at"].timestamp()
        if push["available"] is not None and push["quantity"] > max(push["available"], 0):
            figures.over_pushes.append(f"{push['channel']}:{push['channel_sku']}: sent "
                                       f"{push['quantity']}, {push['available']} available")
        previous = last.get(push["listing_id"])
        last[push["listing_id"]] = sent
        rose = push["previous"] is not None and push["quantity"] > push["previous"]
        if rose and previous is not None:
            _echo(figures, push, previous, sent, journal, seen)


def _echo(figures: Figures, push: dict[str, Any], since: float, sent: float, journal: Journal,
          seen: dict[tuple[str, str], datetime | None]) -> None:
    """An increase written over a sale on its channel that the ledger did not have."""
    lag = LAG if push["channel"] in ("amazon", "ebay") else 0.0
    for sale in journal.sales:
        if sale.channel != push["channel"] or not since < sale.at < sent:
            continue
        if not _touches(sale, push["sku"]):
            continue
        first_seen = seen.get((sale.channel, sale.order_id))
        if first_seen is not None and first_seen.timestamp() <= sent:
            continue
        pulled = push["watermark"].timestamp() if push["watermark"] else since
        if sale.at > pulled - lag:  # after the pull the write knew of: no sync could see it
            figures.echoes_in_lag += 1
        else:
            figures.echoes.append(f"{push['channel']}:{push['channel_sku']} raised to "
                                  f"{push['quantity']} {sent - sale.at:.1f} s after order "
                                  f"{sale.order_id} there, not in the ledger yet")


def _touches(sale: Any, sku: str) -> bool:
    """Whether a sale changes what a listing of ``sku`` shows (kits share components)."""
    parts = set(KITS.get(sku, {sku: 1}))
    return any(parts & set(KITS.get(line, {line: 1})) for line, _q in sale.lines)


def check_drift(figures: Figures, db: Engine, journal: Journal) -> None:
    edited = {(channel, sku) for channel, sku, _at in journal.edits}
    with db.connect() as conn:
        drift = [dict(r) for r in conn.execute(
            sa.select(conflict_t).where(conflict_t.c.kind == "drift")).mappings()]
        skus = {str(channel_sku): str(sku) for channel_sku, sku in conn.execute(
            sa.select(listing_t.c.channel_sku, listing_t.c.sku))}
    for row in drift:
        channel, _, channel_sku = row["subject"].partition(":")
        if (channel, skus.get(channel_sku, channel_sku)) not in edited:
            figures.false_drift.append(f"drift {row['subject']}: {row['message']}")


def check_secrets(figures: Figures, lines: Iterable[str]) -> None:
    for number, line in enumerate(lines, start=1):
        for secret in SECRETS.values():
            if secret in line:
                figures.secrets.append(f"log line {number} holds a secret")


__all__ = ["Figures", "check_drift", "check_listings", "check_oversells", "check_pushes",
           "check_secrets", "check_stock", "expected_stock"]
