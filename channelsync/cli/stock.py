"""``channelsync stock``: list, set, adjust, import, export, safety, barcode."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from channelsync.cli import format as fmt
from channelsync.cli.common import (
    EXIT_USAGE,
    JsonOpt,
    emit,
    err,
    fail,
    opened,
    out,
    stock_app,
)


@stock_app.command("list")
def stock_list(as_json: JsonOpt = False) -> None:
    """Every SKU with on hand, reserved, safety stock and available."""
    from channelsync.service import reports

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
    barcode: Annotated[str | None, typer.Option(
        help="GTIN/EAN/UPC to add to the SKU's barcodes.")] = None,
    reason: Annotated[str, typer.Option(help="Why (kept on the movement).")] = "stock count",
) -> None:
    """Set a SKU's on-hand count (creates the SKU if new)."""
    from channelsync.ledger import stock

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
    from rich.progress import Progress

    from channelsync.ledger import stock

    with file.open(encoding="utf-8-sig") as stream:
        total = max(sum(1 for _ in stream) - 1, 0)
    quiet = as_json or not err.is_terminal
    with (
        file.open(encoding="utf-8-sig", newline="") as stream,
        Progress(console=err, transient=True, disable=quiet) as bar,
    ):
        task = bar.add_task("reading", total=total)
        rows, problems = stock.read_csv(stream, progress=lambda n: bar.advance(task, n))
    with opened() as application:
        with application.db.connect() as conn:  # barcodes other SKUs have are bad rows too
            problems += stock.barcode_problems(conn, rows)
        problems.sort(key=lambda p: p.line)
        for problem in problems:
            err.print(f"{file}: {problem}", markup=False)
        if problems and not skip_bad:
            if as_json:
                emit({"imported": 0, "problems": [str(p) for p in problems]})
            fail(f"{len(problems)} bad row(s); nothing imported (fix them, or --skip-bad)")
        bad = {p.line for p in problems}
        rows = [r for r in rows if r.line not in bad]
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
    from channelsync.ledger import stock

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


@stock_app.command("barcode")
def stock_barcode(
    sku: str,
    code: Annotated[str | None, typer.Argument(help="A GTIN/EAN/UPC to add.")] = None,
    remove: Annotated[str | None, typer.Option(
        "--remove", metavar="CODE", help="Remove this barcode instead.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a barcode to a SKU, remove one (--remove), or list them (no CODE)."""
    from channelsync.ledger import stock
    from channelsync.ledger.barcodes import clean

    if code is not None and remove is not None:
        fail("give a CODE to add or --remove CODE, not both", EXIT_USAGE)
    with opened() as application:
        if code is not None:
            added, codes = application.add_barcode(sku, code)
            said = f"barcode {clean(code)} added" if added else \
                f"already has barcode {clean(code)}"
        elif remove is not None:
            gone, codes = application.remove_barcode(sku, remove)
            said = f"barcode {', '.join(gone)} removed"
        else:
            with application.db.connect() as conn:
                codes = stock.sku_barcodes(conn, sku)
            said = ""
    if as_json:
        emit({"sku": sku, "barcodes": [_barcode(c) for c in codes]})
        return
    if said:
        out.print(f"{sku}: {said} (barcodes: {', '.join(codes) or 'none'})", markup=False,
                  soft_wrap=True)
        return
    if not codes:
        err.print(f"{sku} has no barcodes", markup=False)
    for item in map(_barcode, codes):
        problem = f"  (not valid, no scan matches it: {item['problem']})" \
            if item["problem"] else ""
        out.print(f"{item['code']}{problem}", markup=False, soft_wrap=True)


def _barcode(code: str) -> dict[str, str | None]:
    from channelsync.ledger.barcodes import BarcodeError, normalise

    try:
        return {"code": code, "gtin": normalise(code), "problem": None}
    except BarcodeError as exc:  # stored before check digits were checked
        return {"code": code, "gtin": None, "problem": str(exc)}


__all__ = ["fail"]
