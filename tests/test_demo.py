"""``channelsync demo``, the README's first command, run as a user runs it (shortened)."""

from __future__ import annotations

import subprocess
import sys

CHANNELS = ("webshop", "marketplace", "amazon", "ebay", "shopify")


def test_the_demo_runs_every_channel_and_converges() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "channelsync", "demo", "--duration", "4", "--seed", "11"],
        capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = " ".join(proc.stdout.split())  # rich wraps at the terminal's width
    assert "converged: every listing on every channel shows its target" in out
    for channel in CHANNELS:
        assert f"{channel} at http://127.0.0.1:" in out
    assert "compare-and-set" in out
