"""The tree is the architecture: imports go one way, and nothing imports in a circle.

interfaces (cli, sandbox) -> service -> sync -> customers -> followups -> orders -> ledger
-> db. ``channelsync.errors``,
``channelsync.connector`` (the plugin contract), ``channelsync.config`` and the registry are
shared by every layer. Connectors see only those, plus ``channelsync.sync.ratelimit`` (the
client-side rate limits a connector may keep); their emulators see the sandbox's base.
Every import counts, also those inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"channelsync.db": 0, "channelsync.ledger": 1, "channelsync.orders": 1.5,
          "channelsync.followups": 1.6, "channelsync.customers": 1.7,
          "channelsync.sync": 2,
          "channelsync.service": 3, "channelsync.cli": 4, "channelsync.sandbox": 4,
          "channelsync.__main__": 4}
SHARED = {"channelsync", "channelsync.errors", "channelsync.connector", "channelsync.config",
          "channelsync.registry"}
CONNECTOR_TOOLKIT = {"channelsync.sync.ratelimit"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    found = {}
    for top in ("channelsync", "connectors"):
        for path in (ROOT / top).rglob("*.py"):
            if "migrations" not in path.parts:  # Alembic loads those by path
                found[module_name(path)] = path
    return found


MODULES = modules()


def imports(path: Path) -> Iterator[str]:
    """The project modules this file imports (``from pkg import mod`` names the module)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES
                     else node.module for a in node.names]
        else:
            continue
        yield from (n for n in names if n.split(".")[0] in ("channelsync", "connectors"))


def layer(name: str) -> int | None:
    return next((rank for prefix, rank in LAYERS.items()
                 if name == prefix or name.startswith(prefix + ".")), None)


def test_every_module_belongs_to_a_layer_or_is_shared() -> None:
    loose = [m for m in MODULES if m.startswith("channelsync")
             and m not in SHARED and layer(m) is None]
    assert loose == []


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m.startswith("channelsync")))
def test_channelsync_imports_only_downwards(name: str) -> None:
    mine = layer(name)
    for target in imports(MODULES[name]):
        if target.startswith("connectors"):
            raise AssertionError(f"{name} imports {target}: connectors load through the registry")
        if target in SHARED:
            continue
        theirs = layer(target)
        if name in SHARED or mine is None or theirs is None:
            raise AssertionError(f"shared module {name} imports layered {target}")
        assert theirs <= mine, f"{name} (layer {mine}) imports {target} (layer {theirs})"


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m.startswith("connectors.")))
def test_connectors_use_only_the_plugin_contract(name: str) -> None:
    kind = name.split(".")[1]
    emulator = ".emulator" in name
    for target in imports(MODULES[name]):
        if target.startswith("connectors."):
            other = target.split(".")[1]
            assert other in (kind, "_http", "_time"), f"{name} imports another connector"
            assert emulator or ".emulator" not in target, f"{name} imports its emulator"
            continue
        allowed = SHARED | CONNECTOR_TOOLKIT
        if emulator:
            allowed = allowed | {"channelsync.sandbox", "channelsync.sandbox.emulator"}
        assert target in allowed, f"{name} imports {target}"


def test_nothing_imports_in_a_circle() -> None:
    graph = {name: {t for t in imports(path) if t in MODULES and t != name}
             for name, path in MODULES.items()}
    # A package's __init__ that re-exports its modules is not a cycle with them.
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    cycles = [c for c in _strongly_connected(graph) if len(c) > 1]
    assert cycles == []


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                found.append(component)
    return found
