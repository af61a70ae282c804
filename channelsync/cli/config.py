"""``config check`` and ``db upgrade``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from channelsync.cli.common import (
    EXIT_USAGE,
    JsonOpt,
    config_app,
    db_app,
    emit,
    err,
    fail,
    load,
    out,
    show_config_error,
    state,
)
from channelsync.errors import ConfigError


@config_app.command("check")
def config_check(
    path: Annotated[Path | None, typer.Argument()] = None, as_json: JsonOpt = False
) -> None:
    """Validate a config file: every problem with its location, no traceback."""
    from channelsync.config import find_config, load_config

    target = path or find_config(state.config_path, os.environ)
    try:
        config = load_config(target, require_env=False)
    except ConfigError as exc:
        if as_json:
            emit({"file": str(target), "ok": False, "problems": exc.problems, "warnings": []})
            raise typer.Exit(EXIT_USAGE) from None
        show_config_error(exc)
    web = config.web
    if as_json:
        emit({"file": str(target), "ok": True, "problems": [], "warnings": list(config.warnings),
              "channels": [{"name": c.name, "type": c.type, "enabled": c.enabled}
                           for c in config.channels],
              "web": {"listen": web.listen or None,
                      "users": [{"name": u.name, "role": u.role} for u in web.users]}})
        return
    for warning in config.warnings:
        unset = "environment variable" in warning and "is not set" in warning
        err.print(f"[yellow]warning:[/yellow] {escape(warning)}"
                  + (" (needed when channelsync runs)" if unset else ""), markup=True)
    names = ", ".join(f"{c.name} ({c.type})" for c in config.channels) or "no channels"
    out.print(f"{target}: OK - {names}", markup=False)
    if web.listen:
        users = ", ".join(f"{u.name} ({u.role})" for u in web.users) or \
            "no users: loopback only, everyone is admin"
        out.print(f"dashboard on {web.listen}: {users}", markup=False)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database schema."""
    from channelsync.db.core import create_engine
    from channelsync.ledger.migrate import current_revision, head_revision, upgrade

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
