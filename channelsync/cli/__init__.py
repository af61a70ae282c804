"""The command line: ``channelsync [--config PATH] COMMAND`` (entry point ``main``).

One module per command group, each registering its commands on the typer apps of
``common``, which imports none of them: ``sync`` (sync, plan, status, explain), ``orders``
(orders, order, pick, pack, ship), ``customers`` (customers, forget), ``followups`` (its own
group: followups, send, retry), ``stock``, ``conflicts``, ``config`` (config check, db
upgrade), ``alerts``, ``service`` (run, sandbox serve, demo), ``web`` (the dashboard,
hash-password); ``format`` lays out tables and notes.
"""

import importlib

from channelsync.cli.common import app

# In the order --help lists them: the everyday commands first.
COMMAND_GROUPS = ("sync", "orders", "customers", "followups", "stock", "conflicts", "service",
                  "web", "config", "alerts")
for _group in COMMAND_GROUPS:
    importlib.import_module(f"channelsync.cli.{_group}")


def main() -> None:
    app()


__all__ = ["app", "main"]
