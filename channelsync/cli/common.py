"""What every command shares: the typer apps the command modules register on, the global
options, loading the config, opening the application, printing and failing.

Exit status: 0 success, 1 the work failed (a channel could not be reached, the
ledger refused), 2 usage or configuration errors. Commands that show data take
``--json`` and then print exactly one JSON document on stdout; logs go to stderr.

``channelsync --help`` must start quickly: the CLI modules import the application, the
ledger (SQLAlchemy, Alembic), the config models (pydantic), the channel libraries and
``rich.progress`` inside the commands that use them, never at module level
(``tests/test_cli_start.py`` guards it).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console

from channelsync import __version__
from channelsync.errors import ChannelSyncError, ConfigError

if TYPE_CHECKING:
    from channelsync.config import Config
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
web_app = typer.Typer(help="The dashboard: run it alone, or hash a password for its users.")
customers_app = typer.Typer(help="Buyers recognised across channels, their spend and tier.")
app.add_typer(stock_app, name="stock")
app.add_typer(conflicts_app, name="conflicts")
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(web_app, name="web")
app.add_typer(customers_app, name="customers")

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
    from channelsync.service import logs

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
    from channelsync.config import find_config, load_config

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
    from sqlalchemy.exc import SQLAlchemyError

    from channelsync.service.app import App

    application = App(load(), migrate=migrate)
    try:
        yield application
    except ConfigError as exc:
        show_config_error(exc)
    except ChannelSyncError as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:  # locked, full, unreachable, or a schema not current
        detail = getattr(exc, "orig", None) or exc
        fail(f"the ledger database failed: {type(detail).__name__}: {detail} "
             "(is it reachable and writable? 'channelsync db upgrade' brings its schema "
             "up to date)")
    finally:
        application.close()


def wait_for_signal() -> None:
    """Until SIGINT or SIGTERM (a server runs on its own threads meanwhile)."""
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    out.print("press Ctrl-C to stop")
    done.wait()


def emit(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def heading(text: str) -> None:
    out.print(f"[bold]{text}[/bold]")


@contextmanager
def progress(quiet: bool, what: str) -> Iterator[Callable[[str], None]]:
    if quiet or not err.is_terminal:
        yield lambda _message: None
        return
    from rich.progress import Progress

    with Progress(console=err, transient=True) as progress:
        task = progress.add_task(what, total=None)
        yield lambda message: progress.update(task, description=message)
