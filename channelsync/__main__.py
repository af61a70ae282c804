"""``python -m channelsync``: the same as the ``channelsync`` command."""

from __future__ import annotations

from channelsync.cli import main

main()
