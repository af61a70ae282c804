"""``channelsync --help`` starts quickly: the CLI imports no heavy library until a command
needs it (the figure: bench/bench_cli.py). Checked by what is imported, not by a time."""

from __future__ import annotations

import subprocess
import sys

HEAVY = {"sqlalchemy", "alembic", "sp_api", "ebaysdk", "starlette", "jinja2", "apprise",
         "uvicorn", "argon2", "sqlmodel", "graphql", "prometheus_client"}


def test_the_cli_imports_no_heavy_library_to_show_its_help() -> None:
    code = ("import sys, channelsync.cli; "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {HEAVY!r}))")
    # The same import typer does for `channelsync --help`, in a fresh interpreter.
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]"


def test_help_still_lists_every_command_group() -> None:
    shown = subprocess.run([sys.executable, "-m", "channelsync", "--help"],
                           capture_output=True, text=True, check=True,
                           env={"COLUMNS": "100", "PATH": ""}).stdout
    for command in ("sync", "status", "orders", "stock", "conflicts", "run", "web", "config"):
        assert command in shown
