"""``conflicts [list] [--all]`` and ``conflicts ack ID``."""

from __future__ import annotations

from typing import Annotated

import typer

from channelsync.cli import format as fmt
from channelsync.cli.common import JsonOpt, conflicts_app, emit, fail, opened, out


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
    from channelsync.service import reports

    with opened() as application, application.db.connect() as conn:
        rows = reports.conflicts(conn, include_resolved)
        now = application.now()
    if as_json:
        emit({"conflicts": rows})
    else:
        fmt.print_conflicts(out, rows, now)


@conflicts_app.command("ack")
def conflicts_ack(conflict_id: int) -> None:
    """Acknowledge a conflict: it stays listed until it clears, marked as seen."""
    from channelsync.ledger.conflicts import acknowledge

    with opened() as application, application.db.begin() as conn:
        if not acknowledge(conn, conflict_id, application.now()):
            fail(f"no conflict with id {conflict_id}")
    out.print(f"conflict {conflict_id} acknowledged")
