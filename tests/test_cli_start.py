"""``channelsync --help`` starts quickly: the CLI imports no heavy library until a command
needs it (the figure: bench/bench_cli.py). Checked by what is imported, not by a time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from channelsync.ledger import migrate

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


def _loaded_after(code: str) -> set[str]:
    """The top-level packages a fresh interpreter has loaded after running ``code``."""
    code += "\nimport json, sys\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip().splitlines()[-1]
    return set(json.loads(out))


@pytest.mark.parametrize("args", [["--help"], ["status", "--help"], ["stock", "--help"],
                                  ["orders", "--help"]])
def test_help_of_a_command_imports_no_heavy_library(args: list[str]) -> None:
    code = ("import contextlib, io\nfrom channelsync.cli import app\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            f"    app({args!r}, prog_name='channelsync')")
    assert _loaded_after(code) & HEAVY == set()


def test_the_head_read_from_the_migration_files_is_alembics() -> None:
    assert migrate.static_head() == migrate.head_revision()


def test_opening_a_ledger_at_head_does_not_load_alembic(ledger_url: str) -> None:
    migrate.open_ledger_engine(ledger_url).dispose()  # creates the schema, with Alembic
    code = ("from channelsync.ledger.migrate import open_ledger_engine\n"
            f"open_ledger_engine({ledger_url!r}, migrate=False).dispose()")
    assert "alembic" not in _loaded_after(code)


def test_a_migration_tree_other_than_one_chain_is_left_to_alembic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "__init__.py").write_text("")
    (versions / "a.py").write_text("revision = 'a'\ndown_revision = None\n")
    (versions / "b.py").write_text('revision: str = "b"\ndown_revision: str | None = "a"\n')
    monkeypatch.setattr(migrate, "_MIGRATIONS", tmp_path)
    cases = [("", "b"),
             ("revision = 'c'\ndown_revision = 'a'\n", None),  # two heads
             ("revision = 'c'\ndown_revision = ('a', 'b')\n", None),  # a merge
             ("REVISION = 'c'\n", None)]  # a form it does not read
    try:
        for text, head in cases:
            if text:
                (versions / "c.py").write_text(text)
            migrate.static_head.cache_clear()
            assert migrate.static_head() == head, text
    finally:
        migrate.static_head.cache_clear()
