"""``channelsync demo``, the README's first command, run as a user runs it (shortened)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

CHANNELS = ("webshop", "outlet", "amazon", "ebay", "shopify")
DURATION = 8
# It must end by itself: its duration, the channels' order lag and two settling cycles.
# The deadline is generous for a loaded CI machine; a demo stuck in a rate limit took
# minutes a cycle.
DEADLINE = DURATION + 45


@pytest.fixture(scope="module")
def demo() -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, "COLUMNS": "80"}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "channelsync", "demo", "--duration", str(DURATION),
         "--seed", "11"],
        capture_output=True, text=True, timeout=DEADLINE, env=env,
    )
    return proc, time.monotonic() - started


def test_the_demo_ends_by_itself_and_every_channel_converges(
    demo: tuple[subprocess.CompletedProcess[str], float],
) -> None:
    proc, _seconds = demo
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = " ".join(proc.stdout.split())  # rich wraps at the terminal's width
    for channel in CHANNELS:
        assert f"{channel} at http://127.0.0.1:" in out
    assert "every listing on every channel shows its target" in out
    assert "NOT converged" not in out


def test_the_verdict_tells_the_story_in_a_sellers_words(
    demo: tuple[subprocess.CompletedProcess[str], float],
) -> None:
    out = " ".join(demo[0].stdout.split())
    assert "What happened in" in out
    assert "taken: webshop" in out and "shipped" in out
    # the deliberate race for the last lamp: one oversell, explained, alerted
    assert "LAMP: bought on webshop and on amazon 0.4 s apart, before the first sale " \
           "could reach amazon (unavoidable" in out
    assert "Alert sent" in out and "ALERT oversell LAMP" in out
    assert "a sale reached every other channel in" in out and "(median)" in out
    assert "delivery: +4 VASE" in out


def test_the_demo_fits_80_columns_and_logs_nothing_alarming(
    demo: tuple[subprocess.CompletedProcess[str], float],
) -> None:
    proc = demo[0]
    too_wide = [line for line in proc.stdout.splitlines() if len(line.rstrip()) > 80]
    assert too_wide == []
    for word in ("Traceback", "WARNING", "ERROR", "drift"):
        assert word not in proc.stdout + proc.stderr
    assert "…" not in proc.stdout  # no truncated header or cell


def test_after_the_rush_an_order_is_picked_packed_by_scanning_and_shipped(
    demo: tuple[subprocess.CompletedProcess[str], float],
) -> None:
    out = " ".join(demo[0].stdout.split())
    assert "After the rush: the order book holds" in out
    # the regular who buys on several channels with one email: one customer
    assert "Returning buyers (channelsync customers): Maya Rossi bought on " in out
    assert "recognised as one customer by a salted hash of their email" in out
    assert "is picked and packed by scanning" in out
    assert ", not in this order" in out  # the wrong product scanned on the way, refused
    assert "Shipped (channelsync ship):" in out
    assert "now says completed, shipment DHL JD014600006281234567" in out
