"""The command line: ``channelsync [--config PATH] COMMAND`` (entry point ``main``)."""

from channelsync.cli.common import app, main

__all__ = ["app", "main"]
