"""How the CLI lays out what it shows, for 80 columns and up (journalctl, ssh, a pipe).

Tables hold short values under short headers; anything long (an error, a conflict's
message, a list of SKUs) is a note below the table, wrapped as a paragraph. Times are
relative ("3m10s ago"); ``--json`` keeps the exact ones.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from channelsync.sync.ratelimit import human_wait


def ago(value: str | datetime | None, now: datetime) -> str:
    """``12s ago``, ``3m10s ago``; ``never`` for nothing."""
    when = _parse(value)
    if when is None:
        return "never"
    seconds = (now - when).total_seconds()
    return f"in {human_wait(-seconds)}" if seconds < 0 else f"{human_wait(seconds)} ago"


def age(seconds: float | None) -> str:
    return "-" if seconds is None else human_wait(seconds)


def stamp(value: str | datetime | None) -> str:
    """``12-04 09:35:38``: short enough for a cell, exact to the second (UTC)."""
    when = _parse(value)
    return when.strftime("%m-%d %H:%M:%S") if when else ""


def _parse(value: str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def grid(columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
         numeric: Iterable[str] = (), fold: Iterable[str] = ()) -> Table:
    """A borderless table: ``numeric`` columns right-aligned, ``fold`` columns may wrap
    (long names, titles, rule traces); the others never wrap and are kept short."""
    right, wrap = set(numeric), set(fold)
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, show_edge=False)
    for name in columns:
        table.add_column(name, justify="right" if name in right else "left",
                         no_wrap=name not in wrap, overflow="fold")
    for row in rows:  # cells are data (a buyer's name, a title): never markup
        table.add_row(*["" if v is None else escape(str(v)) for v in row])
    return table


def notes(console: Console, lines: Iterable[str]) -> None:
    """One paragraph each, wrapped at the terminal's width, continuation lines indented
    under the first (no padding to the right: a pipe gets plain lines)."""
    width = max(console.width, 40)
    for line in lines:
        console.print(textwrap.fill(line, width=width, initial_indent="  ",
                                    subsequent_indent="    ", break_long_words=False,
                                    break_on_hyphens=False),
                      markup=False, highlight=False, soft_wrap=True)


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def conflict_lines(rows: Sequence[dict[str, Any]], now: datetime) -> list[str]:
    out = []
    for c in rows:
        acked = ", acknowledged" if c.get("acked_at") else ""
        resolved = f", resolved {ago(c['resolved_at'], now)}" if c.get("resolved_at") else ""
        out.append(f"#{c['id']} {c['kind']} {c['subject']}, opened {ago(c['opened_at'], now)}"
                   f"{acked}{resolved}: {c['message']}")
    return out


def print_conflicts(console: Console, rows: Sequence[dict[str, Any]], now: datetime) -> None:
    if not rows:
        console.print("no open conflicts")
        return
    console.print(f"[bold]conflicts ({len(rows)})[/bold]")
    notes(console, conflict_lines(rows, now))
