"""The command line: ``channelsync [--config PATH] COMMAND``.

Exit status: 0 success, 1 the work failed (a channel could not be reached, the
ledger refused), 2 usage or configuration errors. Commands that show data take
``--json`` and then print exactly one JSON document on stdout; logs go to stderr.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import Progress

from channelsync import __version__
from channelsync.cli import format as fmt
from channelsync.config import Config, find_config, load_config
from channelsync.errors import ChannelSyncError, ConfigError
from channelsync.service import logs, reports
from channelsync.service.app import App

EXIT_FAILED = 1
EXIT_USAGE = 2

app = typer.Typer(help="Keep stock in sync across sales channels so nothing is sold twice.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
stock_app = typer.Typer(help="The ledger's stock: every change is a movement.",
                        no_args_is_help=True)
conflicts_app = typer.Typer(help="Open conflicts, and acknowledging them.")
config_app = typer.Typer(help="Configuration files.", no_args_is_help=True)
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
sandbox_app = typer.Typer(help="Local channel emulators.", no_args_is_help=True)
app.add_typer(stock_app, name="stock")
app.add_typer(conflicts_app, name="conflicts")
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(sandbox_app, name="sandbox")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document to stdout.")]
ChannelOpt = Annotated[str | None, typer.Option("--channel", "-c", help="Only this channel.")]


class State:
    config_path: str | None = None


state = State()


def _version(value: bool) -> None:
    if value:
        out.print(f"channelsync {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    config: Annotated[str | None, typer.Option(
        "--config", help="Config file (else $CHANNELSYNC_CONFIG, ./channels.toml, "
        "/etc/channelsync/channels.toml).")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "warning",
    log_format: Annotated[str, typer.Option(help="text, or json for log shippers.")] = "text",
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version.")] = False,
) -> None:
    state.config_path = config
    if log_level.lower() not in ("debug", "info", "warning", "error"):
        fail(f"--log-level must be debug, info, warning or error (got {log_level!r})", EXIT_USAGE)
    if log_format not in ("text", "json"):
        fail(f"--log-format must be text or json (got {log_format!r})", EXIT_USAGE)
    logs.configure(log_level, log_format)


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", markup=True)
    raise typer.Exit(code)


def show_config_error(exc: ConfigError) -> NoReturn:
    err.print(f"[red]configuration error[/red] in {exc.source or 'config'}:", markup=True)
    for problem in exc.problems:
        err.print(f"  - {problem}", markup=False)
    raise typer.Exit(EXIT_USAGE)


def load() -> Config:
    path = find_config(state.config_path, os.environ)
    if not path.exists():
        fail(f"no config file at {path} (use --config, $CHANNELSYNC_CONFIG or ./channels.toml; "
             "channels.example.toml documents every key)", EXIT_USAGE)
    try:
        return load_config(path)
    except ConfigError as exc:
        show_config_error(exc)


@contextmanager
def opened(migrate: bool = True) -> Iterator[App]:
    application = App(load(), migrate=migrate)
    try:
        yield application
    except ConfigError as exc:
        show_config_error(exc)
    except ChannelSyncError as exc:
        fail(str(exc))
    finally:
        application.close()


def emit(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def heading(text: str) -> None:
    out.print(f"[bold]{text}[/bold]")


# -- sync, plan, status, explain ---------------------------------------------------------------


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
        with _progress(as_json, "syncing") as progress:
            application.engine.on_event = progress
            results = application.sync(names)
        data = [r.as_dict() for r in results]
        if as_json:
            emit({"channels": data, "ok": not any(r.error for r in results)})
        else:
            _print_sync(data)
        if any(r.error for r in results):
            raise typer.Exit(EXIT_FAILED)


@contextmanager
def _progress(quiet: bool, what: str) -> Iterator[Callable[[str], None]]:
    if quiet or not err.is_terminal:
        yield lambda _message: None
        return
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task(what, total=None)
        yield lambda message: progress.update(task, description=message)


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
    _print_conflicts(data["conflicts"], now)
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


def _print_conflicts(rows: list[dict[str, Any]], now: datetime) -> None:
    if not rows:
        out.print("no open conflicts")
        return
    heading(f"conflicts ({len(rows)})")
    fmt.notes(out, fmt.conflict_lines(rows, now))


@app.command()
def explain(sku: str, as_json: JsonOpt = False) -> None:
    """On hand, reservations by order, safety stock, available, and each channel's target."""
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


def _signed(n: int) -> str:
    return f"{n:+d}" if n else ""


# -- conflicts -----------------------------------------------------------------------------------


@conflicts_app.callback(invoke_without_command=True)
def conflicts_default(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        conflicts_list(include_resolved=False, as_json=False)


@conflicts_app.command("list")
def conflicts_list(
    include_resolved: Annotated[bool, typer.Option("--all", help="Include resolved ones.")]
    = False,
    as_json: JsonOpt = False,
) -> None:
    """Open conflicts (oversell, unknown SKU, failed push, drift, bad record)."""
    with opened() as application, application.db.connect() as conn:
        rows = reports.conflicts(conn, include_resolved)
        now = application.now()
    if as_json:
        emit({"conflicts": rows})
    else:
        _print_conflicts(rows, now)


@conflicts_app.command("ack")
def conflicts_ack(conflict_id: int) -> None:
    """Acknowledge a conflict: it stays listed until it clears, marked as seen."""
    from channelsync.ledger.conflicts import acknowledge

    with opened() as application, application.db.begin() as conn:
        if not acknowledge(conn, conflict_id, application.now()):
            fail(f"no conflict with id {conflict_id}")
    out.print(f"conflict {conflict_id} acknowledged")


# -- config and db -------------------------------------------------------------------------------


@config_app.command("check")
def config_check(
    path: Annotated[Path | None, typer.Argument()] = None, as_json: JsonOpt = False
) -> None:
    """Validate a config file: every problem with its location, no traceback."""
    target = path or find_config(state.config_path, os.environ)
    try:
        config = load_config(target, require_env=False)
    except ConfigError as exc:
        if as_json:
            emit({"file": str(target), "ok": False, "problems": exc.problems, "warnings": []})
            raise typer.Exit(EXIT_USAGE) from None
        show_config_error(exc)
    if as_json:
        emit({"file": str(target), "ok": True, "problems": [], "warnings": list(config.warnings),
              "channels": [{"name": c.name, "type": c.type, "enabled": c.enabled}
                           for c in config.channels]})
        return
    for warning in config.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning} (needed when channelsync runs)",
                  markup=True)
    names = ", ".join(f"{c.name} ({c.type})" for c in config.channels) or "no channels"
    out.print(f"{target}: OK - {names}", markup=False)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database schema."""
    from channelsync.db.core import create_engine, current_revision, head_revision, upgrade

    config = load()
    engine = create_engine(config.database_url)
    try:
        before = current_revision(engine)
        upgrade(engine)
    except Exception as exc:  # the database's own message, without the URL
        fail(f"upgrading the database failed: {exc}")
    finally:
        engine.dispose()
    out.print(f"database schema at {head_revision()} (was {before or 'empty'})")


def main() -> None:
    app()


# The other command groups register themselves on the apps above.
from channelsync.cli import alerts, service, stock  # noqa: E402,F401
