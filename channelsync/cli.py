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
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from channelsync import __version__, logs, reports
from channelsync.app import App
from channelsync.config import Config, find_config, load_config
from channelsync.errors import ChannelSyncError, ConfigError

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


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    result = Table(title=title, title_justify="left")
    for column in columns:
        result.add_column(column)
    for row in rows:
        result.add_row(*["" if v is None else str(v) for v in row])
    return result


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
            out.print(table("sync", ["channel", "pulled", "applied", "pending", "pushed",
                                     "failed", "held", "stale", "drift", "error"],
                            [[d["channel"], d["pulled"], d["applied"], d["pending"], d["pushed"],
                              d["push_failed"], d["held"], d["stale_compares"], d["drift"],
                              d["error"] or ("busy" if d["busy"] else "")] for d in data]))
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
    from channelsync import planner

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
        out.print(table("plan", ["channel", "listing", "sku", "current", "target", "push", "why"],
                        [[d["channel"], d["channel_sku"], d["sku"], d["current"], d["target"],
                          "yes" if d["push"] else "", d["trace"]] for d in data]))


@app.command()
def status(as_json: JsonOpt = False) -> None:
    """Per channel: last pull and push, cursor age, outbox, last error; open conflicts."""
    with opened() as application, application.db.connect() as conn:
        data = reports.status(conn, application.config, application.now())
    if as_json:
        emit(data)
        return
    out.print(table("channels", ["channel", "type", "last pull", "last push", "cursor age (s)",
                                 "outbox", "stale compares", "listings", "unmapped",
                                 "last error"],
                    [[c["name"], c["type"] + ("" if c["enabled"] else " (disabled)"),
                      c["last_pull"], c["last_push"], c["cursor_age_s"], c["pending_outbox"],
                      c["stale_compares"], c["listings"], _some(c["unmapped"]), c["last_error"]]
                     for c in data["channels"]]))
    _print_conflicts(data["conflicts"])
    totals = data["totals"]
    out.print(f"{totals['skus']} SKUs, {totals['on_hand']} on hand, {totals['reserved']} reserved "
              f"by {totals['open_order_lines']} open order lines, "
              f"{totals['open_conflicts']} open conflicts")


def _some(names: list[str], shown: int = 5) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _print_conflicts(rows: list[dict[str, Any]]) -> None:
    if not rows:
        out.print("no open conflicts")
        return
    out.print(table("conflicts", ["id", "kind", "opened", "acked", "message"],
                    [[c["id"], c["kind"], c["opened_at"], "yes" if c["acked_at"] else "",
                      c["message"]] for c in rows]))


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
    out.print(table("reservations", ["channel", "order", "line", "status", "units"],
                    [[r["channel"], r["order_id"], r["line_id"], r["status"], r["quantity"]]
                     for r in data["reservations"]]))
    out.print(table("channels", ["channel", "listing", "last pushed", "target", "why"],
                    [[c["channel"], c["channel_sku"], c["last_pushed"], c["target"], c["trace"]]
                     for c in data["channels"]]))
    out.print(table("recent movements", ["when", "kind", "on hand", "reserved", "source",
                                         "reason"],
                    [[m["created_at"], m["kind"], m["on_hand_delta"], m["reserved_delta"],
                      m["source"], m["reason"]] for m in data["recent_movements"]]))


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
    if as_json:
        emit({"conflicts": rows})
    else:
        _print_conflicts(rows)


@conflicts_app.command("ack")
def conflicts_ack(conflict_id: int) -> None:
    """Acknowledge a conflict: it stays listed until it clears, marked as seen."""
    from channelsync.conflicts import acknowledge

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
    from channelsync.db import create_engine, current_revision, head_revision, upgrade

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
import channelsync.cli_alerts  # noqa: E402,F401
from channelsync import cli_service, cli_stock  # noqa: E402,F401
