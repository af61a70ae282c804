"""``orders`` (the order book across channels), ``order CHANNEL ORDER_ID``, ``pick``,
``pack`` (verified by scanning) and ``ship`` (confirmed on the order's channel)."""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from channelsync.cli import format as fmt
from channelsync.cli.common import EXIT_USAGE, JsonOpt, app, emit, err, fail, opened, out

if TYPE_CHECKING:  # the ledger and the order book are imported where a command needs them
    from channelsync.orders import picking, queries
    from channelsync.service import shipping

_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime) -> datetime:
    """``2d``, ``12h``, ``1w2d``: that long ago; or a date / time (``2026-12-01``, UTC
    unless it says otherwise)."""
    compact = text.strip().lower()
    parts = _DURATION.findall(compact)
    if parts and _DURATION.sub("", compact).strip() == "":
        return now - sum((timedelta(**{_UNITS[u]: int(n)}) for n, u in parts), timedelta())
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--since {text!r}: give a duration (2d, 12h) or a date "
                         "(2026-12-01)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@app.command("orders")
def orders(
    channel: Annotated[str | None, typer.Option(help="Only this channel's orders.")] = None,
    stage: Annotated[list[str] | None, typer.Option(
        help="Only orders at this stage (repeatable): received, paid, picked, packed, "
             "partly-shipped, shipped, delivered, cancelled, returned; 'open' for the "
             "first five.")] = None,
    since: Annotated[str | None, typer.Option(
        help="Placed since: a duration (2d, 12h) or a date (2026-12-01).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    vip: Annotated[bool, typer.Option(
        "--vip", help="Only orders of buyers who reached a loyalty tier.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """The order book: every channel's orders, newest first."""
    from channelsync.customers import queries as customers
    from channelsync.orders import book, queries

    with opened() as application:
        now = application.now()
        try:
            stages = _stages(stage or [])
            after = parse_since(since, now) if since else None
        except ValueError as exc:
            fail(str(exc))
        if channel and channel not in {c.name for c in application.config.channels}:
            fail(f"no channel named {channel!r} in the config")
        with application.db.connect() as conn:
            found = queries.list_orders(conn, channel=channel, stages=stages, since=after,
                                        limit=limit,
                                        buyer_keys=customers.vip_keys(conn) if vip else None)
            tiers = customers.tiers_of(conn, [o.buyer_key for o in found])
    if as_json:
        emit({"orders": [{**o.as_json(), "buyer_tier": tiers.get(o.buyer_key) or None}
                         for o in found]})
        return
    if not found:
        out.print("no orders" + (" matching that" if channel or stages or since or vip
                                 else ""))
        return
    rows = [(o.channel, o.order_id, fmt.ago(o.placed_at or o.updated_at, now),
             book.stage_label(o.stage), _units(o), _buyer(o, tiers.get(o.buyer_key, "")),
             _money(o)) for o in found]
    out.print(fmt.grid(("channel", "order", "placed", "stage", "units", "buyer", "total"), rows,
                       numeric=("units", "total"), fold=("order", "buyer")))
    if len(found) == limit:
        fmt.notes(out, [f"the newest {limit} shown; --limit for more, --json for all fields"])


@app.command("order")
def order(
    channel: Annotated[str, typer.Argument(help="The channel's name in the config.")],
    order_id: Annotated[str, typer.Argument(help="The order's id on that channel.")],
    as_json: JsonOpt = False,
) -> None:
    """One order: its lines, its stages with their times, the stock movements it caused."""
    from channelsync.orders import book, queries

    with opened() as application, application.db.connect() as conn:
        found = queries.get_order(conn, channel, order_id)
    if found is None:
        fail(f"no order {order_id!r} from {channel!r} in the book (orders arrive with a "
             "sync: 'channelsync sync')")
    if as_json:
        emit(found.as_json())
        return
    out.print(f"[bold]{found.channel} order {found.order_id}[/bold]: "
              f"{book.stage_label(found.stage)}"
              + (f" (the channel says {found.status})" if found.status else ""))
    facts = [f"placed {fmt.stamp(found.placed_at)}" if found.placed_at else "",
             f"paid {fmt.stamp(found.paid_at)}" if found.paid_at else "",
             f"buyer {found.buyer}" if found.buyer else "",
             f"its buyer reached the {found.tier} tier with it" if found.tier else "",
             f"shipped {fmt.stamp(found.shipped_at)}" if found.shipped_at else "",
             (f"delivered {fmt.stamp(found.delivered_at)}"
              + (" (assumed)" if found.delivered_source == "assumed" else ""))
             if found.delivered_at else "",
             f"total {_money(found)}" if found.total else ""]
    if any(facts):
        fmt.notes(out, [", ".join(f for f in facts if f)])
    out.print(fmt.grid(("sku", "title", "qty", "shipped", "cancelled"),
                       [(line.sku or line.channel_sku, line.title, line.ordered, line.shipped,
                         line.cancelled) for line in found.lines],
                       numeric=("qty", "shipped", "cancelled"), fold=("title",)))
    pending = [line.channel_sku for line in found.lines if line.state == "pending"]
    if pending:
        fmt.notes(out, [f"waiting for an unknown SKU in the ledger: {', '.join(pending)}"])
    if found.events:
        out.print("[bold]history[/bold]")
        out.print(fmt.grid(("when", "stage", "by", "detail"), [
            (fmt.stamp(e["at"]), book.stage_label(e["stage"]), e["source"], e["detail"])
            for e in found.events], fold=("detail",)))
    if found.movements:
        out.print("[bold]stock movements[/bold]")
        out.print(fmt.grid(("when", "sku", "kind", "on hand", "reserved"), [
            (fmt.stamp(m["created_at"]), m["sku"], m["kind"], _signed(m["on_hand"]),
             _signed(m["reserved"])) for m in found.movements],
            numeric=("on hand", "reserved")))


def _stages(given: list[str]) -> tuple[str, ...]:
    from channelsync.orders import book

    stages: list[str] = []
    for text in given:
        if text.strip().lower() == "open":
            stages += book.OPEN_STAGES
        else:
            stages.append(book.parse_stage(text))
    return tuple(dict.fromkeys(stages))


def _units(order: queries.Order) -> str:
    """Shipped of ordered (cancelled ones left out): ``1/2``."""
    wanted = order.ordered - order.cancelled
    return f"{order.shipped}/{wanted}" if order.shipped else str(wanted)


def _buyer(order: queries.Order, tier: str) -> str:
    """The display name, with the tier the buyer reached, or the one this order reached
    ("new")."""
    mark = f" ({order.tier}, new)" if order.tier else f" ({tier})" if tier else ""
    return (order.buyer or "-") + mark


def _money(order: queries.Order) -> str:
    return f"{order.total} {order.currency}".strip() or "-"


def _signed(n: int) -> str:
    return f"{n:+d}" if n else ""


@app.command("pick", help=(
    "A pick list: the paid orders' units not picked yet, grouped by SKU.\n\n"
    "One walk through the shelves serves them all; --mark-picked moves the orders on it "
    "to picked."))
def pick(
    channel: Annotated[str | None, typer.Option(help="Only this channel's orders.")] = None,
    csv_file: Annotated[Path | None, typer.Option(
        "--csv", help="Also write the list to this CSV file (sku,title,barcode,units,orders).",
        dir_okay=False)] = None,
    mark_picked: Annotated[bool, typer.Option(
        "--mark-picked", help="Move the orders on this list to picked.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """A pick list (the command's help says more)."""
    from channelsync.orders import picking

    with opened() as application, application.db.begin() as conn:
        found = picking.pick_list(conn, channel)
        moved = picking.mark_picked(conn, found.orders, application.now()) \
            if mark_picked else 0
    if csv_file is not None:
        with csv_file.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(("sku", "title", "barcode", "units", "orders"))
            for line in found.lines:
                writer.writerow((line.sku, line.title, line.barcode, line.units,
                                 " ".join(_served(line))))
    if as_json:
        emit({"lines": [line.as_json() for line in found.lines],
              "orders": [{"channel": c, "order_id": o} for c, o in found.orders],
              "waiting_for_sku": [{"channel": c, "order_id": o, "channel_sku": s}
                                  for c, o, s in found.unknown],
              "marked_picked": moved})
        return
    if not found.lines:
        out.print("nothing to pick: no paid order is waiting")
    else:
        out.print(f"[bold]pick list[/bold]: {fmt.plural(sum(x.units for x in found.lines), 'unit')}"
                  f" of {fmt.plural(len(found.lines), 'SKU')} for "
                  f"{fmt.plural(len(found.orders), 'order')}")
        out.print(fmt.grid(("sku", "units", "barcode", "title", "orders"), [
            (line.sku, line.units, line.barcode or "-", line.title, " ".join(_served(line)))
            for line in found.lines], numeric=("units",), fold=("title", "orders")))
    notes = [f"{c} order {o} waits for {s!r}, not in the ledger: not on this list"
             for c, o, s in found.unknown]
    if csv_file is not None:
        notes.append(f"written to {csv_file}")
    if mark_picked:
        notes.append(f"{fmt.plural(moved, 'order')} moved to picked")
    fmt.notes(out, notes)


def _served(line: picking.PickLine) -> list[str]:
    return [f"{c}:{o}" + (f"x{n}" if n > 1 else "") for c, o, n in line.orders]


@app.command("pack", help=(
    "Pack an order, each unit scanned as it goes into the box.\n\n"
    "A USB scanner types a code and Enter; a pipe works too. A code for another product or "
    "an extra unit is refused; the order is packed once every unit is scanned."))
def pack(
    channel: Annotated[str | None, typer.Argument(help="The order's channel.")] = None,
    order_id: Annotated[str | None, typer.Argument(help="The order's id on that channel.")]
    = None,
    scan_order: Annotated[bool, typer.Option(
        "--scan-order", help="Scan (or type) the order first: its id, or CHANNEL:ID.")] = False,
) -> None:
    """Packing verified by scanning (the command's help says more)."""
    from channelsync.orders import book, packing

    interactive = sys.stdin.isatty()
    codes = _codes(interactive)
    if scan_order:
        first = next(codes, None)
        if first is None:
            fail("no order scanned")
        channel, _, order_id = first.rpartition(":") if ":" in first else ("", "", first)
    if not order_id:
        fail("name the order (pack CHANNEL ORDER_ID) or scan it (pack --scan-order)")
    with opened() as application:
        with application.db.connect() as conn:
            found = _find_order(conn, channel or None, order_id)
            try:
                session = packing.start(conn, found)
            except packing.PackError as exc:
                fail(str(exc))
            out.print(f"[bold]packing {found.channel} order {found.order_id}[/bold]: "
                      f"{fmt.plural(session.left, 'unit')} to scan")
            out.print(fmt.grid(("sku", "units", "title"), [
                (line.sku, line.needed, line.title) for line in session.lines.values()],
                numeric=("units",), fold=("title",)))
            refused = 0
            for code in codes:
                if not code.strip():
                    continue
                result = session.scan(code, conn)
                if result.ok:
                    left = f", {session.left} to go" if session.left else ""
                    out.print(f"[green]ok[/green] {result.message}{left}", highlight=False,
                              soft_wrap=True)
                else:
                    refused += 1
                    out.print(("\a" if interactive else "") + f"[red]no[/red] {result.message}",
                              highlight=False, soft_wrap=True)
                if session.done:
                    break
        if not session.done:
            missing = ", ".join(f"{x.sku} {x.scanned}/{x.needed}"
                                for x in session.lines.values() if x.scanned < x.needed)
            fail(f"not packed: {fmt.plural(session.left, 'unit')} still to scan ({missing}); "
                 "nothing was recorded")
        scanned = sum(x.needed for x in session.lines.values())
        with application.db.begin() as conn:
            stage = book.set_local_stage(
                conn, found.channel, found.order_id, "packed", now=application.now(),
                detail=f"{fmt.plural(scanned, 'unit')} scanned, {refused} refused")
    out.print(f"[bold]{found.channel} order {found.order_id} is {book.stage_label(stage)}[/bold]")


def _codes(interactive: bool) -> Iterator[str]:
    """Codes one per line, as a scanner types them; a prompt only on a terminal."""
    while True:
        if interactive:
            out.print("scan> ", end="")
        line = sys.stdin.readline()
        if not line:
            return
        yield line.strip()


def _find_order(conn: Any, channel: str | None, order_id: str) -> queries.Order:
    from channelsync.orders import queries

    if channel:
        found = queries.get_order(conn, channel, order_id)
        if found is None:
            fail(f"no order {order_id!r} from {channel!r} in the book")
        return found
    matches = queries.find_orders(conn, order_id)
    if not matches:
        fail(f"no order {order_id!r} in the book")
    if len(matches) > 1:
        fail(f"order {order_id!r} is on {', '.join(o.channel for o in matches)}: scan or type "
             "CHANNEL:ID")
    return matches[0]


@app.command("ship", help=(
    "Ship an order: its stock leaves the ledger, the channel gets carrier and tracking.\n\n"
    "A channel that does not take it now gets it from the daemon later: it is queued, never "
    "lost, never confirmed twice."))
def ship(
    channel: Annotated[str | None, typer.Argument(help="The order's channel.")] = None,
    order_id: Annotated[str | None, typer.Argument(help="The order's id on that channel.")]
    = None,
    carrier: Annotated[str | None, typer.Option(help="The carrier (DHL, UPS, USPS, ...).")]
    = None,
    tracking: Annotated[str | None, typer.Option(help="The tracking number.")] = None,
    line: Annotated[list[str] | None, typer.Option(
        "--line", help="SKU=QTY shipped (repeatable); without: all that is not shipped yet."
    )] = None,
    import_csv: Annotated[Path | None, typer.Option(
        "--import", help="Shipments from a CSV: channel,order_id,carrier,tracking,sku,quantity "
                         "(sku and quantity empty: the whole order).", dir_okay=False)] = None,
    skip_bad: Annotated[bool, typer.Option(
        "--skip-bad", help="With --import: record the good rows even if some are bad.")]
    = False,
    as_json: JsonOpt = False,
) -> None:
    """Record and confirm a shipment (the command's help says more)."""
    from channelsync.orders import queries
    from channelsync.orders.shipping import ShipError
    from channelsync.service import shipping

    try:
        if import_csv is not None:
            if channel or order_id or line:
                fail("--import takes no order on the command line", EXIT_USAGE)
            requests, bad = shipping.read_csv(import_csv)
        else:
            if not (channel and order_id and carrier and tracking):
                fail("ship CHANNEL ORDER_ID --carrier X --tracking N, or ship --import FILE",
                     EXIT_USAGE)
            requests, bad = [shipping.ShipmentRequest(
                channel, order_id, carrier, tracking, shipping.parse_lines(line or []))], []
    except ShipError as exc:
        fail(str(exc))
    with opened() as application:
        recorded, refused = shipping.ship(application, requests, skip_bad=skip_bad,
                                          check_only=bool(bad) and not skip_bad)
        bad = sorted(bad + refused, key=lambda b: b.line)
        if bad and not skip_bad:
            _bad_rows(bad, applied=False)
        configured = {c.name for c in application.config.channels}
        reports = shipping.confirm(application, {r.channel for r in requests
                                                 if r.channel in configured}) \
            if recorded else []
        with application.db.connect() as conn:
            states = {s.key: s for s in queries.shipments(conn, [r.key for r in recorded])}
    if as_json:
        emit({"shipments": [{**vars(states[r.key]), "units": r.units, "stage": r.stage,
                             "already_recorded": r.already} for r in recorded],
              "bad_rows": [vars(b) for b in bad]})
        return
    rows = [(s.channel, s.order_id, s.tracking, r.units, _ship_state(s, r.already))
            for r in recorded for s in [states[r.key]]]
    if rows:
        out.print(fmt.grid(("channel", "order", "tracking", "units", "on the channel"), rows,
                           numeric=("units",), fold=("order", "tracking", "on the channel")))
    notes = [f"{s.channel} order {s.order_id}: {s.last_error}" for s in states.values()
             if s.state != "confirmed" and s.last_error]
    notes += [f"{r.channel}: another process is working the channel; it confirms them"
              for r in reports if r.busy]
    notes += [f"{r.channel}: {r.error}" for r in reports if r.error]
    fmt.notes(out, notes)
    if bad:
        _bad_rows(bad, applied=True)


def _ship_state(shipment: queries.ShipmentInfo, already: bool) -> str:
    if shipment.state == "confirmed":
        return "confirmed" + (" (before)" if already else "")
    if shipment.state == "refused":
        return "refused: see conflicts"
    return "queued: the daemon retries"


def _bad_rows(bad: list[shipping.BadRow], *, applied: bool) -> None:
    for row in bad:
        where = f"line {row.line}: " if row.line else ""
        err.print(f"{where}{row.message}", markup=False, highlight=False)
    if not applied:
        fail(f"{fmt.plural(len(bad), 'bad row')}; nothing was recorded (--skip-bad records "
             "the good ones)")
