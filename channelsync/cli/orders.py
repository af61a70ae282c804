"""``orders`` (the order book across channels) and ``order CHANNEL ORDER_ID``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from channelsync.cli import format as fmt
from channelsync.cli.common import JsonOpt, app, emit, fail, opened, out
from channelsync.orders import book, queries

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
    as_json: JsonOpt = False,
) -> None:
    """The order book: every channel's orders, newest first."""
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
                                        limit=limit)
    if as_json:
        emit({"orders": [o.as_json() for o in found]})
        return
    if not found:
        out.print("no orders" + (" matching that" if channel or stages or since else ""))
        return
    rows = [(o.channel, o.order_id, fmt.ago(o.placed_at or o.updated_at, now),
             book.stage_label(o.stage), _units(o), o.buyer or "-", _money(o))
            for o in found]
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


def _money(order: queries.Order) -> str:
    return f"{order.total} {order.currency}".strip() or "-"


def _signed(n: int) -> str:
    return f"{n:+d}" if n else ""
