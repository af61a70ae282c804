"""``channelsync run``, ``sandbox serve`` and ``demo``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

import typer

from channelsync.cli.common import (
    EXIT_USAGE,
    app,
    fail,
    load,
    out,
    sandbox_app,
    show_config_error,
    state,
    wait_for_signal,
)
from channelsync.errors import ChannelSyncError, ConfigError

if TYPE_CHECKING:
    from channelsync.config import ChannelConfig

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@app.command()
def run() -> None:
    """The daemon: every channel on its schedule, until SIGTERM or SIGINT."""
    from channelsync.config import find_config
    from channelsync.service.daemon import Daemon

    path = find_config(state.config_path, os.environ)
    config = load()
    try:
        code = Daemon(config, path, os.environ).run()
    except ConfigError as exc:
        show_config_error(exc)
    except ChannelSyncError as exc:
        fail(str(exc))
    raise typer.Exit(code)


def make_emulator(type_name: str, channel: ChannelConfig | None = None) -> Any:
    """An emulator for a channel type; given a channel, it checks that channel's credentials."""
    from channelsync.registry import load_emulator

    try:
        cls = load_emulator(type_name)
    except ChannelSyncError as exc:
        fail(str(exc), EXIT_USAGE)
    if channel is not None and hasattr(cls, "for_settings"):
        return cls.for_settings(channel.settings)
    return cls()


@sandbox_app.command("serve")
def sandbox_serve(
    type_name: Annotated[str | None, typer.Option("--type", help="One emulator of this type.")]
    = None,
    port: Annotated[int, typer.Option(help="Its port (0: any free port).", min=0, max=65535)] = 0,
) -> None:
    """Run channel emulators on loopback until interrupted."""
    from channelsync.registry import known_types

    emulators: list[Any] = []
    if type_name:
        if type_name not in known_types():
            fail(f"unknown channel type {type_name!r} (known: {', '.join(known_types())})",
                 EXIT_USAGE)
        emulator = make_emulator(type_name)
        emulator.start("127.0.0.1", port)
        emulators.append(emulator)
        out.print(f"{type_name} emulator listening on {emulator.url}")
    else:
        config = load()
        chosen = [c for c in config.channels if c.sandbox]
        if not chosen:
            fail("no channel has 'sandbox = true' (or use --type TYPE --port PORT)", EXIT_USAGE)
        for channel in chosen:
            host, chan_port = _loopback_address(channel)
            emulator = make_emulator(channel.type, channel)
            emulator.start(host, chan_port)
            emulators.append(emulator)
            out.print(f"{channel.name}: {channel.type} emulator listening on {emulator.url}")
    wait_for_signal()
    for emulator in emulators:
        emulator.stop()


def _loopback_address(channel: ChannelConfig) -> tuple[str, int]:
    parts = urlsplit(channel.endpoint)
    if parts.hostname not in LOOPBACK or not parts.port:
        fail(f"channel {channel.name!r}: a sandbox endpoint must be a loopback URL with a port, "
             f"like http://127.0.0.1:8101 (got {channel.endpoint!r})", EXIT_USAGE)
    return ("127.0.0.1" if parts.hostname == "localhost" else parts.hostname), parts.port


@app.command()
def demo(
    duration: Annotated[float, typer.Option(help="Seconds to run.", min=1)] = 30.0,
    seed: Annotated[int, typer.Option(help="Seed of the simulated buyers.")] = 7,
) -> None:
    """A self-contained demonstration: emulators, a temporary ledger, buyers, sync cycles."""
    from channelsync.sandbox.demo import run_demo

    raise typer.Exit(run_demo(duration=duration, seed=seed, console=out))
