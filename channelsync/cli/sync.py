"""``sync``, ``plan``, ``status`` and ``explain``: the cycle now, and what the ledger says."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer

from channelsync.cli import format as fmt
from channelsync.cli.common import (
    EXIT_FAILED,
    ChannelOpt,
    JsonOpt,
    app,
    emit,
    fail,
    heading,
    opened,
    out,
    progress,
)


@app.command()
def sync(
    channel: ChannelOpt = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Pull and push nothing; show the plan.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """One full cycle now: pull, apply, plan, push, read back."""
    if dry_run:
        plan(channel=channel, as_json=as_json)
        return
    with opened() as application:
        names = [channel] if channel else None
        with progress(as_json, "syncing") as show:
            application.engine.on_event = show
            results = application.sync(names)
        data = [r.as_dict() for r in results]
        if as_json:
            emit({"channels": data, "ok": not any(r.error for r in results)})
        else:
            _print_sync(data)
        if any(r.error for r in results):
            raise typer.Exit(EXIT_FAILED)


@app.command()
def plan(channel: ChannelOpt = None, as_json: JsonOpt = False) -> None:
    """What would be pushed now and why: listing, current, target, rule trace."""
    from channelsync.sync import planner

    with opened() as application:
        application.engine  # noqa: B018 - makes the kit table current
        names = [channel] if channel else [c.name for c in application.config.channels]
        if channel:
            application.config.channel(channel)
        with application.db.connect() as conn:
            items = planner.targets(conn, application.config, planner.select_listings(conn, names))
        data = [{"channel": i.channel, "channel_sku": i.channel_sku, "sku": i.sku,
                 "current": i.current, "target": i.target, "push": i.changes, "trace": i.trace}
                for i in items]
        if as_json:
            emit({"plan": data})
            return
        out.print(fmt.grid(
            ["channel", "listing", "now", "target", "push", "why"],
            [[i.channel, i.channel_sku if i.sku == i.channel_sku
              else f"{i.channel_sku} ({i.sku})", i.current, i.target,
              "yes" if i.changes else "", i.trace] for i in items],
            numeric=("now", "target"), fold=("listing", "why")))


@app.command()
def status(as_json: JsonOpt = False) -> None:
    """Per channel: last pull and push, cursor age, outbox, last error; open conflicts."""
    from channelsync.service import reports

    with opened() as application, application.db.connect() as conn:
        data = reports.status(conn, application.config, application.now())
    if as_json:
        emit(data)
        return
    now = application.now()
    out.print(fmt.grid(
        ["channel", "type", "pulled", "pushed", "cursor", "outbox", "listings"],
        [[c["name"], c["type"] + ("" if c["enabled"] else " (off)"), fmt.ago(c["last_pull"], now),
          fmt.ago(c["last_push"], now), fmt.age(c["cursor_age_s"]), c["pending_outbox"],
          c["listings"]] for c in data["channels"]],
        numeric=("outbox", "listings"), fold=("channel",)))
    fmt.notes(out, [line for c in data["channels"] for line in _channel_notes(c, now)])
    out.print()
    fmt.print_conflicts(out, data["conflicts"], now)
    totals = data["totals"]
    out.print(f"{fmt.plural(totals['skus'], 'SKU')}, {totals['on_hand']} on hand, "
              f"{totals['reserved']} reserved by "
              f"{fmt.plural(totals['open_order_lines'], 'open order line')}; "
              f"{fmt.plural(totals['open_conflicts'], 'open conflict')}")


def _channel_notes(c: dict[str, Any], now: datetime) -> list[str]:
    """What does not fit a cell: deferrals, errors, unmapped SKUs, refused writes."""
    name, lines = c["name"], []
    for what, when in sorted(c.get("deferred", {}).items()):
        lines.append(f"{name}: {what}: next call allowed in {fmt.age(when['in_s'])} "
                     "(a rate limit; the rest goes on)")
    if c["awaiting_channel"]:
        lines.append(f"{name}: {fmt.plural(c['awaiting_channel'], 'write')} sent "
                     f"{fmt.ago(c['awaiting_since'], now)}, still being processed by the "
                     "channel (its report decides them)")
    if c["last_error"]:
        lines.append(f"{name}: last error {fmt.ago(c['last_error_at'], now)}: "
                     f"{c['last_error']}")
    if c["unmapped"]:
        lines.append(f"{name}: {fmt.plural(len(c['unmapped']), 'channel SKU')} map to nothing "
                     f"in the ledger: {_some(c['unmapped'])}")
    if c["stale_compares"]:
        lines.append(f"{name}: {fmt.plural(c['stale_compares'], 'write')} refused because the "
                     f"channel changed first (compare-and-set), the last "
                     f"{fmt.ago(c['last_stale_compare'], now)}; each was pulled and retried")
    return lines


def _print_sync(data: list[dict[str, Any]]) -> None:
    out.print(fmt.grid(
        ["channel", "pulled", "applied", "pushed", "failed", "held", "drift"],
        [[d["channel"], d["pulled"], d["applied"], d["pushed"], d["push_failed"], d["held"],
          d["drift"]] for d in data],
        numeric=("pulled", "applied", "pushed", "failed", "held", "drift"), fold=("channel",)))
    lines = []
    for d in data:
        name = d["channel"]
        if d["busy"]:
            lines.append(f"{name}: skipped: another channelsync process is working it")
        if d["error"]:
            lines.append(f"{name}: {d['error']}")
        lines += [f"{name}: {what} deferred: next call allowed in {fmt.age(wait)} (a rate "
                  "limit; pushes still went out)" for what, wait in sorted(d["deferred"].items())]
        if d["awaiting"]:
            lines.append(f"{name}: {fmt.plural(d['awaiting'], 'write')} sent and still being "
                         "processed by the channel; the next cycles collect the outcome")
        if d["pending"]:
            lines.append(f"{name}: {fmt.plural(d['pending'], 'order line')} for SKUs the "
                         "ledger does not know, kept until they exist or are mapped")
        if d["stale_compares"]:
            lines.append(f"{name}: {fmt.plural(d['stale_compares'], 'write')} refused because "
                         "the channel changed first; pulled and written again")
        if d["unmapped"]:
            lines.append(f"{name}: {fmt.plural(len(d['unmapped']), 'channel SKU')} map to "
                         f"nothing in the ledger: {_some(d['unmapped'])}")
    fmt.notes(out, lines)


def _some(names: list[str], shown: int = 5) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


@app.command()
def explain(sku: str, as_json: JsonOpt = False) -> None:
    """On hand, reservations by order, safety stock, available, and each channel's target."""
    from channelsync.service import reports

    with opened() as application:
        application.engine  # noqa: B018 - makes the kit table current
        with application.db.connect() as conn:
            data = reports.explain(conn, application.config, sku)
        if data is None:
            fail(f"unknown SKU {sku!r}")
    if as_json:
        emit(data)
        return
    out.print(f"[bold]{sku}[/bold]" + (f" (kit: {data['kit']})" if data["kit"] else ""))
    out.print(f"on hand {data['on_hand']}, reserved {data['reserved']}, safety stock "
              f"{data['safety_stock']} -> available {data['available']} "
              f"({data['available_detail']})")
    heading("reservations")
    out.print(fmt.grid(["channel", "order", "line", "status", "units"],
                       [[r["channel"], r["order_id"], r["line_id"], r["status"], r["quantity"]]
                        for r in data["reservations"]], numeric=("units",),
                       fold=("order", "line")))
    heading("channels")
    out.print(fmt.grid(["channel", "listing", "pushed", "target", "why"],
                       [[c["channel"], c["channel_sku"], c["last_pushed"], c["target"],
                         c["trace"]] for c in data["channels"]],
                       numeric=("pushed", "target"), fold=("listing", "why")))
    heading("recent movements (UTC)")
    out.print(fmt.grid(["when", "kind", "on hand", "held", "why"],
                       [[fmt.stamp(m["created_at"]), m["kind"], _signed(m["on_hand_delta"]),
                         _signed(m["reserved_delta"]), m["reason"] or m["source"]]
                        for m in data["recent_movements"]],
                       numeric=("on hand", "held"), fold=("why",)))
    _print_pushes(data["recent_pushes"])


def _print_pushes(pushes: list[dict[str, Any]]) -> None:
    heading("recent pushes (UTC)")
    out.print(fmt.grid(["when", "channel", "listing", "sent", "was", "free", "outcome"],
                       [[fmt.stamp(p["sent_at"]), p["channel"], p["channel_sku"], p["quantity"],
                         p["previous"], p["available"], p["outcome"]] for p in pushes],
                       numeric=("sent", "was", "free"), fold=("channel", "listing")))


def _signed(n: int) -> str:
    return f"{n:+d}" if n else ""
