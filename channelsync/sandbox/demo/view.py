"""What the demo shows: a live table that fits 80 columns, what just happened, and at the
end a verdict in a seller's words."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from channelsync.sandbox.demo.measure import Oversell, Propagation
from channelsync.sandbox.demo.scenario import CATALOG, FBA, KITS, LISTED, ORDER_LAG, Journal

FEED_LINES = 5
SKUS = [*CATALOG, *KITS]


@dataclass(frozen=True)
class Snapshot:
    """The ledger and the channels at one moment."""

    stock: dict[str, tuple[int, int]]  # sku -> (on hand, reserved)
    available: dict[str, int]
    shown: dict[str, dict[str, int]]  # channel -> sku -> what it shows
    targets: dict[tuple[str, str], int | None]  # (channel, sku) -> target


def live(snapshot: Snapshot, journal: Journal, cycle: int, left: float | None) -> Group:
    clock = "settling" if left is None else f"{max(0.0, left):.0f} s left"
    header = Text.assemble(("channelsync demo", "bold"), f"  cycle {cycle}, {clock}")
    return Group(header, stock_table(snapshot), _tally(journal), _feed(journal))


def stock_table(snapshot: Snapshot) -> Table:
    """One row per SKU: the ledger's count, then what each channel shows. ``5→3``: the
    channel shows 5 and channelsync is bringing it to 3."""
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), show_edge=False, pad_edge=False)
    table.add_column("SKU", no_wrap=True)
    for name in ("stock", "held", "free"):
        table.add_column(name, justify="right", no_wrap=True)
    for channel in LISTED:
        table.add_column(channel, justify="right", no_wrap=True)
    for sku in SKUS:
        on_hand, reserved = snapshot.stock.get(sku, (None, None))
        free = snapshot.available.get(sku)
        cells = [_cell(snapshot, channel, sku) for channel in LISTED]
        table.add_row(sku, _n(on_hand, "kit"), _n(reserved, ""), _n(free, ""), *cells)
    return table


def legend() -> Text:
    return Text("stock: on hand · held: reserved by open orders · free: what channels may "
                "show · 5→3: the channel shows 5, channelsync is bringing it to 3 · FBA: "
                "Amazon's own stock, never written", style="dim")


def _cell(snapshot: Snapshot, channel: str, sku: str) -> Text:
    shown = snapshot.shown.get(channel, {}).get(sku)
    if sku in FBA.get(channel, {}):
        return Text(f"{shown} FBA", style="dim")
    if sku not in LISTED[channel] or shown is None:
        return Text("")
    target = snapshot.targets.get((channel, sku))
    if target is None or target == shown:
        return Text(str(shown), style="red" if shown == 0 else "")
    return Text(f"{shown}→{target}", style="yellow")


def _n(value: int | None, missing: str) -> str:
    return missing if value is None else str(value)


def _tally(journal: Journal) -> Text:
    with journal.lock:
        sold, refused = len(journal.sales), len(journal.refusals)
        prevented = sum(1 for r in journal.refusals if r.prevented)
        cancelled, shipped = journal.cancelled, journal.shipped
    return Text(f"orders {sold} · turned away {refused} ({prevented} would have oversold) · "
                f"cancelled {cancelled} · shipped {shipped}")


def _feed(journal: Journal) -> Text:
    with journal.lock:
        recent = journal.events[-FEED_LINES:]
    text = Text()
    for at, message in recent:
        text.append(f"{_clock(at - journal.started)}  {message}\n")
    return text


def _clock(seconds: float) -> str:
    minutes, secs = divmod(max(0, int(seconds)), 60)
    return f"{minutes}:{secs:02d}"


# -- the verdict -------------------------------------------------------------------------------


def verdict(journal: Journal, propagation: Propagation, oversells: list[Oversell],
            off: list[str], paced: list[str], stale_writes: int) -> Group:
    elapsed = time.monotonic() - journal.started
    rows = Table.grid(padding=(0, 2))
    rows.add_column(style="bold", no_wrap=True)
    rows.add_column()
    rows.add_row("orders", _orders(journal))
    rows.add_row("turned away", _turned_away(journal))
    rows.add_row("oversold", _oversells(oversells))
    rows.add_row("propagation", _propagation(propagation))
    if stale_writes:
        rows.add_row("compare-and-set", (
            f"Shopify refused {stale_writes} write(s) because a sale there came first; "
            "channelsync pulled the sale and wrote again instead of overwriting it."))
    rows.add_row("channels", _channels(off, paced))
    title = Text(f"What happened in {elapsed:.0f} s", style="bold")
    return Group(Text(""), title, rows)


def _channels(off: list[str], paced: list[str]) -> str:
    if off:
        return "NOT converged: " + "; ".join(off)
    text = "every listing on every channel shows its target"
    if not paced:
        return text + "."
    return (f"{text}, but for {len(paced)} increase(s) on eBay ({', '.join(paced)}): eBay "
            "allows 250 quantity changes per listing a day, so channelsync spreads increases "
            "over the day; decreases always go out at once.")


def _orders(journal: Journal) -> str:
    per = Counter(s.channel for s in journal.sales)
    each = ", ".join(f"{channel} {per.get(channel, 0)}" for channel in LISTED)
    return (f"{len(journal.sales)} taken: {each}; {journal.cancelled} cancelled, "
            f"{journal.shipped} shipped.")


def _turned_away(journal: Journal) -> str:
    prevented = sum(1 for r in journal.refusals if r.prevented)
    sold_out = len(journal.refusals) - prevented
    if not journal.refusals:
        return "nobody: every buyer found stock."
    text = (f"{prevented} buyer(s) by a channel showing less because channelsync had "
            "lowered it after sales elsewhere: without channelsync each would have been an "
            "oversell.")
    if sold_out:
        text += f" {sold_out} more found the item sold out on its own channel too."
    return text


def _oversells(oversells: list[Oversell]) -> str:
    if not oversells:
        return "none."
    lines = []
    for o in oversells:
        line = o.message + (" (unavoidable: no channel reports a sale at once)."
                            if o.unavoidable else ".")
        if o.alerted_after is not None:
            line += f" Alert sent {o.alerted_after:.1f} s after the second sale."
        line += (" Still open: cancel one order or find another unit ('channelsync "
                 "conflicts')." if o.open else " Resolved.")
        lines.append(line)
    return "\n".join(lines)


def _propagation(propagation: Propagation) -> str:
    summary = propagation.summary()
    if summary is None:
        return "no sale to measure."
    median, slowest, sale = summary
    return (f"a sale reached every other channel in {median:.1f} s (median), "
            f"{slowest:.1f} s at most (a sale on {sale.sale.channel}). Amazon and eBay "
            f"report orders only after a delay: {ORDER_LAG:g} s here, about two minutes "
            "on the real channels.")
