"""``channelsync stock``: list, set, adjust, import, export."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from channelsync.cli import format as fmt
from channelsync.cli.common import JsonOpt, emit, err, fail, opened, out, stock_app
from channelsync.ledger import stock
from channelsync.service import reports


@stock_app.command("list")
def stock_list(as_json: JsonOpt = False) -> None:
    """Every SKU with on hand, reserved, safety stock and available."""
    with opened() as application, application.db.connect() as conn:
        rows = reports.stock_list(conn)
    if as_json:
        emit({"stock": rows})
        return
    out.print(fmt.grid(["sku", "title", "on hand", "held", "safety", "free"],
                       [[r["sku"], r["title"], r["on_hand"], r["reserved"], r["safety_stock"],
                         r["available"]] for r in rows],
                       numeric=("on hand", "held", "safety", "free"), fold=("sku", "title")))


@stock_app.command("set")
def stock_set(
    sku: str,
    quantity: Annotated[int, typer.Argument(min=0, help="Units on hand (a count).")],
    safety_stock: Annotated[int | None, typer.Option(min=0)] = None,
    title: Annotated[str | None, typer.Option()] = None,
    barcode: Annotated[str | None, typer.Option(help="GTIN/EAN/UPC.")] = None,
    reason: Annotated[str, typer.Option(help="Why (kept on the movement).")] = "stock count",
) -> None:
    """Set a SKU's on-hand count (creates the SKU if new)."""
    with opened() as application:
        opened_conflicts = application.set_stock(
            [stock.StockRow(sku, quantity, safety_stock, title, barcode)], reason=reason)
    out.print(f"{sku}: on hand {quantity}")
    _warn_conflicts(opened_conflicts)


# ignore_unknown_options: "-2" is a delta, not an option.
@stock_app.command("adjust", context_settings={"ignore_unknown_options": True})
def stock_adjust(
    sku: str,
    delta: Annotated[int, typer.Argument(help="Units to add (negative to remove).")],
    reason: Annotated[str, typer.Option(help="Why: damaged, found, returned to supplier, ...")],
) -> None:
    """Add or remove units, with a reason."""
    with opened() as application:
        on_hand, opened_conflicts = application.adjust_stock(sku, delta, reason)
    out.print(f"{sku}: on hand {on_hand} ({delta:+d}, {reason})")
    _warn_conflicts(opened_conflicts)


def _warn_conflicts(ids: list[int]) -> None:
    if ids:
        err.print(f"[yellow]warning:[/yellow] opened conflict(s) {ids}: "
                  "see 'channelsync conflicts'", markup=True)


@stock_app.command("import")
def stock_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    skip_bad: Annotated[bool, typer.Option("--skip-bad",
                                           help="Import the good rows even if some are bad.")]
    = False,
    as_json: JsonOpt = False,
) -> None:
    """Import counts from CSV: sku,on_hand,safety_stock,title,barcode."""
    with file.open(encoding="utf-8-sig") as stream:
        total = max(sum(1 for _ in stream) - 1, 0)
    quiet = as_json or not err.is_terminal
    with (
        file.open(encoding="utf-8-sig", newline="") as stream,
        Progress(console=err, transient=True, disable=quiet) as bar,
    ):
        task = bar.add_task("reading", total=total)
        rows, problems = stock.read_csv(stream, progress=lambda n: bar.advance(task, n))
    for problem in problems:
        err.print(f"{file}: {problem}", markup=False)
    if problems and not skip_bad:
        if as_json:
            emit({"imported": 0, "problems": [str(p) for p in problems]})
        fail(f"{len(problems)} bad row(s); nothing imported (fix them, or --skip-bad)")
    with opened() as application:
        application.set_stock(rows, reason=f"import {file.name}", kind="import")
    if as_json:
        emit({"imported": len(rows), "problems": [str(p) for p in problems]})
    else:
        out.print(f"imported {len(rows)} SKU(s)" + (f", skipped {len(problems)} bad row(s)"
                                                   if problems else ""))


@stock_app.command("export")
def stock_export(
    file: Annotated[Path | None, typer.Argument(help="Where to write (default: stdout).")]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """Export the stock as CSV, in the import format (or JSON with --json)."""
    if as_json and file is None:
        stock_list(as_json=True)
        return
    with opened() as application, application.db.connect() as conn:
        stream = file.open("w", encoding="utf-8", newline="") if file else sys.stdout
        try:
            for line in stock.export_csv(conn):
                stream.write(line)
        finally:
            if file:
                stream.close()


@stock_app.command("safety")
def stock_safety(sku: str, quantity: Annotated[int, typer.Argument(min=0)]) -> None:
    """Set a SKU's safety stock (units never offered on any channel)."""
    with opened() as application:
        application.set_safety_stock(sku, quantity)
    out.print(f"{sku}: safety stock {quantity}")


__all__ = ["fail"]
