"""The propagation benchmark's own arithmetic, and one short webhook run of it: a sale on
WooCommerce and one on Shopify reach the other three channels through ``channelsync run``
while its pull interval (300 s) is far away, so only the emulators' webhooks can have
brought the pulls forward."""

from __future__ import annotations

import re

import pytest

from bench import bench_propagation


def test_percentiles_interpolate_between_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert bench_propagation.percentile(values, 50) == 2.5
    assert bench_propagation.percentile(values, 0) == 1.0
    assert bench_propagation.percentile(values, 100) == 4.0
    assert bench_propagation.percentile([7.0], 99) == 7.0


def test_sales_reach_every_channel_through_webhooks(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_propagation.main(["--mode", "webhooks", "--sales", "2"]) == 0
    shown = capsys.readouterr().out
    times = [float(t) for t in re.findall(r"sale +\d+ on \w+ +PROP-\d+: +([0-9.]+) s", shown)]
    assert len(times) == 2
    assert all(t < 60 for t in times)  # the next scheduled pull is 300 s away
    assert "goal p99 <= 5 s" in shown
