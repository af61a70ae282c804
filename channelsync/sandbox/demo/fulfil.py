"""After the rush, the seller's side of an order: the order book across the channels, the
buyer who came back on several channels (one customer, a loyalty tier reached), a pick
list, one webshop order packed by scanning its units (one wrong product scanned on the way,
and refused), and shipped, with the tracking number on the webshop's own record.

The same code paths as ``channelsync orders``, ``customers``, ``pick``, ``pack`` and
``ship``."""

from __future__ import annotations

from typing import Any

import httpx
import sqlalchemy as sa
from rich.console import Console

from channelsync.cli import format as fmt
from channelsync.customers import queries as customers
from channelsync.ledger.schema import conflict_t
from channelsync.orders import book, packing, picking, queries
from channelsync.sandbox.demo.scenario import BARCODES
from channelsync.service import shipping
from channelsync.service.app import App

CHANNEL, CARRIER, TRACKING = "webshop", "DHL", "JD014600006281234567"


def after_sales(app: App, emulators: dict[str, Any], console: Console) -> None:
    with app.db.connect() as conn:
        newest = queries.list_orders(conn, limit=5)
        count = len(queries.list_orders(conn, limit=10_000))
        waiting = queries.list_orders(conn, channel=CHANNEL, stages=("paid",), limit=100)
    console.print()
    console.print(f"[bold]After the rush[/bold]: the order book holds {count} orders from "
                  f"{len(app.config.channels)} channels (channelsync orders); the newest:")
    console.print(fmt.grid(("channel", "order", "stage", "units", "buyer", "total"), [
        (o.channel, o.order_id, book.stage_label(o.stage), o.ordered - o.cancelled,
         o.buyer or "-", f"{o.total} {o.currency}".strip() or "-") for o in newest],
        numeric=("units",), fold=("order", "buyer")))
    _regulars(app, console)
    if not waiting:
        console.print(f"No paid {CHANNEL} order is left to ship.")
        return
    # The one with the most units to pack (the oldest of those: first in, first out).
    order = max(reversed(waiting), key=lambda o: o.ordered - o.cancelled)
    with app.db.begin() as conn:
        walk = picking.pick_list(conn)
        picking.mark_picked(conn, [(order.channel, order.order_id)], app.now(), source="demo")
    console.print(f"Pick list (channelsync pick): {sum(x.units for x in walk.lines)} units of "
                  f"{len(walk.lines)} SKUs for {len(walk.orders)} paid orders. "
                  f"{CHANNEL} order {order.order_id} is picked and packed by scanning "
                  "(channelsync pack):")
    _pack(app, order, console)
    recorded, _ = shipping.ship(app, [shipping.ShipmentRequest(
        CHANNEL, order.order_id, CARRIER, TRACKING, None, source="demo")])
    shipping.confirm(app, [CHANNEL])
    row = httpx.get(f"{emulators[CHANNEL].url}/_sandbox/orders/{order.order_id}").json()
    shipped = ", ".join(f"{s['carrier']} {s['tracking']}" for s in row.get("shipments", []))
    units = recorded[0].units if recorded else 0
    console.print(f"Shipped (channelsync ship): {fmt.plural(units, 'unit')} left the ledger's "
                  f"stock at once; the {CHANNEL}'s own record of order {order.order_id} now "
                  f"says {row['status']}, shipment {shipped or 'none'}.")


def _regulars(app: App, console: Console) -> None:
    """The buyer seen on most channels: one customer, and the tier they reached."""
    with app.db.connect() as conn:
        found = customers.list_customers(conn, app.config.loyalty, app.now())
    if not found:
        return
    top = max(found, key=lambda c: (len(c.channels), c.all_orders))
    if len(top.channels) < 2:
        return
    channels = ", ".join(top.channels[:-1]) + f" and {top.channels[-1]}"
    reached = ""
    if top.reached:
        with app.db.connect() as conn:
            order = customers.tier_order(conn, top.key)
            alerted = conn.execute(sa.select(sa.func.count()).select_from(conflict_t).where(
                conflict_t.c.kind == "loyalty_tier", conflict_t.c.notified_at.is_not(None))
            ).scalar()
        reached = (f", and the {top.reached} tier with {order}"
                   + (" (an alert, once: a moment for a thank-you card)" if alerted else ""))
    console.print(f"Returning buyers (channelsync customers): {top.name or 'a buyer'} bought "
                  f"on {channels}, recognised as one customer by a salted hash of their "
                  f"email: {fmt.plural(top.all_orders, 'order')}{reached}.")


def _pack(app: App, order: queries.Order, console: Console) -> None:
    with app.db.connect() as conn:
        found = queries.get_order(conn, order.channel, order.order_id)
        assert found is not None
        session = packing.start(conn, found)
        wrong = next(code for sku, code in BARCODES.items() if sku not in session.lines)
        codes = [BARCODES[sku] for sku, line in session.lines.items()
                 for _ in range(line.needed)]
        refused = 0
        for code in [codes[0], wrong, *codes[1:]]:
            result = session.scan(code, conn)
            refused += not result.ok
            mark = "[green]ok[/green]" if result.ok else "[red]no[/red]"
            console.print(f"  scan {code}: {mark} {result.message}", highlight=False)
    with app.db.begin() as conn:
        book.set_local_stage(conn, order.channel, order.order_id, "packed", now=app.now(),
                             source="demo", detail=f"{len(codes)} units scanned, "
                                                   f"{refused} refused")
