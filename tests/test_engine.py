"""The sync cycle against fake channels, on real SQLite and PostgreSQL ledgers."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from channelsync import registry
from channelsync.config import Config, parse_config
from channelsync.errors import RetriableChannelError, ThrottledError
from channelsync.ledger import apply as ledger
from channelsync.ledger import schema
from channelsync.ledger.schema import outbox_t
from channelsync.ledger.stock import StockRow
from channelsync.service.app import App
from channelsync.sync.engine import SyncEngine
from tests import fakes
from tests.ledger_helpers import check_invariants, open_conflicts

BASE = """
[database]
url = "{url}"
[daemon]
push_attempts = 2
retry_attempts = 3
retry_max_wait = 5
[[channel]]
name = "a"
type = "fake"
[[channel]]
name = "b"
type = "fake"
"""


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float = 1) -> None:
        self.now += timedelta(seconds=seconds)


pytestmark = pytest.mark.usefixtures("fake_registry")  # tests.conftest


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(engine: Engine, clock: Clock, extra: str = "") -> tuple[SyncEngine, Config]:
    url = engine.url.render_as_string(hide_password=False)
    config = parse_config(BASE.format(url=url) + extra, env={})
    sleeps: list[float] = []
    sync = SyncEngine(config, engine, clock=clock, sleep=sleeps.append)
    sync.sleeps = sleeps  # type: ignore[attr-defined]
    for name in ("a", "b"):
        fakes.CHANNELS.setdefault(name, fakes.FakeChannel(name, clock=clock))
    return sync, config


def set_stock(engine: Engine, config: Config, clock: Clock | None = None, **skus: int) -> None:
    app = App(config, clock=clock or Clock())
    app.__dict__["db"] = engine  # share the test's engine
    app.set_stock([StockRow(s, q) for s, q in skus.items()], reason="count")


def test_first_sync_discovers_listings_and_pushes_targets(engine: Engine, clock: Clock) -> None:
    sync, config = make(engine, clock)
    a, b = fakes.CHANNELS["a"], fakes.CHANNELS["b"]
    a.quantities.update(MUG=0, LID=0, GHOST=3)
    b.quantities.update(MUG=9)
    set_stock(engine, config, clock, MUG=5, LID=2)
    reports = sync.sync()
    assert a.quantities == {"MUG": 5, "LID": 2, "GHOST": 3}  # GHOST maps to nothing
    assert b.quantities == {"MUG": 5}
    assert reports[0].unmapped == ["GHOST"]
    assert not any(r.error for r in reports)


def test_a_sale_on_one_channel_lowers_the_others(engine: Engine, clock: Clock) -> None:
    sync, config = make(engine, clock)
    a, b = fakes.CHANNELS["a"], fakes.CHANNELS["b"]
    a.quantities["MUG"] = b.quantities["MUG"] = 0
    set_stock(engine, config, clock, MUG=3)
    sync.sync()
    clock.tick()
    a.sell(("MUG", 2))
    clock.tick()
    sync.sync()
    assert a.quantities["MUG"] == b.quantities["MUG"] == 1
    clock.tick()
    order = a.sell(("MUG", 1))
    clock.tick()
    sync.sync()
    assert a.quantities["MUG"] == b.quantities["MUG"] == 0
    clock.tick()
    a.set_status(order, "cancelled")
    clock.tick()
    sync.sync()
    assert a.quantities["MUG"] == b.quantities["MUG"] == 1
    check_invariants(engine)


def test_the_last_unit_sold_on_both_channels_raises_one_conflict(
    engine: Engine, clock: Clock
) -> None:
    sync, config = make(engine, clock)
    a, b = fakes.CHANNELS["a"], fakes.CHANNELS["b"]
    a.quantities["MUG"] = b.quantities["MUG"] = 0
    set_stock(engine, config, clock, MUG=1)
    sync.sync()
    clock.tick()
    order_a, order_b = a.sell(("MUG", 1)), b.sell(("MUG", 1))
    clock.tick()
    sync.sync()
    sync.sync()
    (conflict,) = open_conflicts(engine, "oversell")
    assert {o["order_id"] for o in conflict["detail"]["orders"]} == {order_a, order_b}
    assert a.quantities["MUG"] == b.quantities["MUG"] == 0


def test_nothing_changed_means_nothing_pushed(engine: Engine, clock: Clock) -> None:
    sync, config = make(engine, clock)
    fakes.CHANNELS["a"].quantities["MUG"] = 0
    set_stock(engine, config, clock, MUG=4)
    sync.sync()
    pushes = len(fakes.CHANNELS["a"].pushes)
    clock.tick()
    sync.sync()
    assert len(fakes.CHANNELS["a"].pushes) == pushes


def test_pushes_go_in_batches_of_the_connector_size(engine: Engine, clock: Clock) -> None:
    sync, config = make(engine, clock)
    skus = {f"S{i}": i + 1 for i in range(7)}
    fakes.CHANNELS["a"].quantities.update({s: 0 for s in skus})
    set_stock(engine, config, clock, **skus)
    sync.sync(["a"])
    # As few calls as batches of 3 allow, of even sizes (a small remainder may cost more
    # calls than its size: Amazon sends fewer than its feed threshold one at a time).
    assert [len(batch) for batch in fakes.CHANNELS["a"].pushes] == [3, 2, 2]


def test_an_increase_waits_for_a_pull_after_the_last_push(engine: Engine, clock: Clock) -> None:
    from channelsync.sync.pushing import echo_safe

    pushed_at = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    row = {"last_pushed": 3, "last_pushed_at": pushed_at, "target": 5}
    assert not echo_safe(row, pushed_at - timedelta(seconds=1))
    assert echo_safe(row, pushed_at + timedelta(seconds=1))
    assert echo_safe({**row, "target": 2}, None)  # decreases go at once


def test_throttling_is_retried_honouring_retry_after(engine: Engine, clock: Clock) -> None:
    sync, config = make(engine, clock)
    a = fakes.CHANNELS["a"]
    a.quantities["MUG"] = 0
    set_stock(engine, config, clock, MUG=2)
    a.fail_next = [ThrottledError("slow down", retry_after=4.0)]
    reports = sync.sync(["a"])
    assert not reports[0].error
    assert 4.0 <= sync.sleeps[0] <= 5.0  # type: ignore[attr-defined]
    assert a.quantities["MUG"] == 2


def test_a_failing_channel_does_not_stop_the_others(engine: Engine, clock: Clock) -> None:
    sync, config = make(engine, clock)
    a, b = fakes.CHANNELS["a"], fakes.CHANNELS["b"]
    a.quantities["MUG"] = b.quantities["MUG"] = 0
    set_stock(engine, config, clock, MUG=2)
    a.fail_next = [RetriableChannelError("down")] * 3
    reports = sync.sync()
    assert "down" in reports[0].error
    assert b.quantities["MUG"] == 2
    from channelsync.service.reports import status

    with engine.connect() as conn:
        channels = {c["name"]: c for c in status(conn, config, clock())["channels"]}
    assert "down" in channels["a"]["last_error"]


def test_a_refused_push_becomes_a_conflict(engine: Engine, clock: Clock) -> None:
    sync, config = make(engine, clock)
    a = fakes.CHANNELS["a"]
    a.quantities.update(MUG=0, LID=0)
    a.refuse.add("LID")
    set_stock(engine, config, clock, MUG=2, LID=3)
    sync.sync(["a"])
    (conflict,) = open_conflicts(engine, "push_failed")
    assert conflict["subject"] == "a:LID"
    assert a.quantities["MUG"] == 2
    with engine.connect() as conn:
        row = conn.execute(sa.select(outbox_t)).mappings().one()
    assert row["target"] == 3 and row["attempts"] >= 1


def test_push_that_keeps_failing_becomes_a_conflict(engine: Engine, clock: Clock) -> None:
    sync, config = make(engine, clock, "")
    a = fakes.CHANNELS["a"]
    a.quantities["MUG"] = 0
    set_stock(engine, config, clock, MUG=2)
    sync.sync(["a"])  # discovers, pushes 2
    set_stock(engine, config, clock, MUG=1)
    for attempt in range(2):
        assert open_conflicts(engine, "push_failed") == [], attempt
        a.push_errors = [RetriableChannelError("boom")] * 3  # every retry of this cycle fails
        clock.tick(3600)
        sync.sync(["a"], read_back=False)
    assert a.quantities["MUG"] == 2
    assert [c["subject"] for c in open_conflicts(engine, "push_failed")] == ["a:MUG"]


def test_drift_on_read_back_is_a_conflict_and_corrected(engine: Engine, clock: Clock) -> None:
    sync, config = make(engine, clock)
    a = fakes.CHANNELS["a"]
    a.quantities["MUG"] = 0
    set_stock(engine, config, clock, MUG=4)
    sync.sync(["a"])
    a.quantities["MUG"] = 40  # someone edited it on the channel
    clock.tick()
    report = sync.sync(["a"])[0]
    assert a.quantities["MUG"] == 4  # more than pushed: corrected at once
    assert report.drift == 0  # but it might be a cancellation the channel reports late
    clock.tick(31)  # the channel's lag (its overlap) has passed, and no cancellation came
    report = sync.sync(["a"])[0]
    assert report.drift == 1
    (conflict,) = open_conflicts(engine, "drift")
    assert conflict["detail"] == {"observed": 40, "expected": 4}
    clock.tick()
    sync.sync(["a"])
    assert open_conflicts(engine, "drift") == []


def test_rules_shape_the_targets(engine: Engine, clock: Clock) -> None:
    extra = """
[rules]
buffer = 1
[[rule]]
sku = "MUG"
channel = "b"
percent = 50
max_quantity = 3
[[rule]]
sku = "LID"
sync = false
[[kit]]
sku = "SET"
components = { MUG = 2, LID = 1 }
"""
    sync, config = make(engine, clock, extra)
    a, b = fakes.CHANNELS["a"], fakes.CHANNELS["b"]
    a.quantities.update(MUG=0, LID=0, SET=0)
    b.quantities.update(MUG=0, LID=7)
    set_stock(engine, config, clock, MUG=11, LID=4)
    sync.sync()
    assert a.quantities == {"MUG": 10, "LID": 0, "SET": 3}  # LID: sync off, untouched
    assert b.quantities == {"MUG": 3, "LID": 7}  # floor(11 * 50%) - 1 = 4, capped at 3


def test_unowned_stock_is_never_written(engine: Engine, clock: Clock) -> None:
    sync, config = make(engine, clock)
    a = fakes.CHANNELS["a"]
    a.quantities.update(MUG=0, FBA=12)
    a.unowned.add("FBA")
    set_stock(engine, config, clock, MUG=2, FBA=1)
    sync.sync(["a"])
    assert a.quantities["FBA"] == 12
    assert all(i.channel_sku != "FBA" for batch in a.pushes for i in batch)


def test_orders_for_unknown_skus_apply_once_the_sku_exists(engine: Engine, clock: Clock) -> None:
    sync, config = make(engine, clock)
    a = fakes.CHANNELS["a"]
    a.quantities.update(NEW=5)
    sync.sync(["a"])
    clock.tick()
    a.sell(("NEW", 2))
    clock.tick()
    assert sync.sync(["a"])[0].apply.pending == 1
    assert len(open_conflicts(engine, "unknown_sku")) == 1
    set_stock(engine, config, clock, NEW=10)
    assert open_conflicts(engine, "unknown_sku") == []
    sync.sync(["a"])
    assert a.quantities["NEW"] == 8
    check_invariants(engine)


def test_a_channel_held_by_another_process_is_skipped(engine: Engine, clock: Clock) -> None:
    from channelsync.db.core import channel_lock, create_engine

    sync, config = make(engine, clock)
    fakes.CHANNELS["a"].quantities["MUG"] = 0
    other = create_engine(engine.url.render_as_string(hide_password=False))
    try:
        with channel_lock(other, "a") as got:
            assert got
            report_a, report_b = sync.sync()
        assert report_a.busy and not report_b.busy
        assert fakes.CHANNELS["a"].pulls == 0 and fakes.CHANNELS["b"].pulls == 1
    finally:
        other.dispose()


def test_orders_wait_for_a_mapping_and_apply_once_mapped(engine: Engine, clock: Clock) -> None:
    sync, config = make(engine, clock)
    a = fakes.CHANNELS["a"]
    a.quantities["A-MUG"] = 5
    set_stock(engine, config, clock, MUG=5)
    sync.sync(["a"])
    clock.tick()
    a.sell(("A-MUG", 2))
    clock.tick()
    sync.sync(["a"])
    assert len(open_conflicts(engine, "unknown_sku")) == 1
    remapped = parse_config(BASE.replace('name = "a"\ntype = "fake"',
                                         'name = "a"\ntype = "fake"\n'
                                         '[channel.sku_map]\n"A-MUG" = "MUG"').format(
        url=engine.url.render_as_string(hide_password=False)), env={})
    SyncEngine(remapped, engine, clock=clock, sleep=lambda _s: None).sync(["a"])
    assert open_conflicts(engine, "unknown_sku") == []
    from tests.ledger_helpers import sku_row

    assert sku_row(engine, "MUG")["reserved"] == 2
    assert a.quantities["A-MUG"] == 3


def test_stopping_mid_pull_loses_nothing(engine: Engine, clock: Clock) -> None:
    sync, config = make(engine, clock)
    a = fakes.CHANNELS["a"]
    a.quantities["MUG"] = 50
    set_stock(engine, config, clock, MUG=50)
    sync.sync(["a"])
    for _ in range(7):  # four pages of two orders
        clock.tick()
        a.sell(("MUG", 1))
    clock.tick()
    original = fakes.FakeConnector.pull_orders

    def pull_then_stop(self: fakes.FakeConnector, since: datetime, page: str | None) -> Any:
        result = original(self, since, page)
        sync.stopping.set()  # SIGTERM arrives while the first page is being applied
        return result

    fakes.FakeConnector.pull_orders = pull_then_stop  # type: ignore[method-assign]
    pushes = len(a.pushes)
    try:
        (report,) = sync.sync(["a"])
    finally:
        fakes.FakeConnector.pull_orders = original  # type: ignore[method-assign]
    assert report.pulled == 2  # one page applied and committed, then it stopped
    assert len(a.pushes) == pushes  # and pushed nothing more
    from tests.ledger_helpers import sku_row

    assert sku_row(engine, "MUG")["reserved"] == 2
    restarted = SyncEngine(config, engine, clock=clock, sleep=lambda _s: None)
    restarted.sync(["a"])
    assert sku_row(engine, "MUG")["reserved"] == 7
    assert a.quantities["MUG"] == 43
    check_invariants(engine)


def test_a_third_party_connector_registers_through_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = tmp_path / "channelsync_mystore-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: channelsync-mystore\n"
                                   "Version: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[channelsync.connectors]\nmystore = tests.fakes:FakeConnector\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.load_connector.cache_clear()
    assert "mystore" in registry.known_types()
    assert registry.load_connector("mystore") is fakes.FakeConnector
    config = parse_config('[[channel]]\nname = "m"\ntype = "mystore"\ntoken = "t"\n', env={})
    assert config.channel("m").settings.token.get_secret_value() == "t"


def test_a_daily_revision_budget_holds_increases_not_decreases(
    engine: Engine, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from channelsync.sync.budget import RESERVE

    capped = replace(fakes.FakeConnector.capabilities, daily_revisions=RESERVE + 2)
    monkeypatch.setattr(fakes.FakeConnector, "capabilities", capped)
    sync, config = make(engine, clock)
    a = fakes.CHANNELS["a"]
    a.quantities["MUG"] = 0
    set_stock(engine, config, clock, MUG=5)
    sync.sync(["a"])  # the first push: 1 of 12 used, 1 spare beyond the reserve
    assert a.quantities["MUG"] == 5
    clock.tick(60)
    set_stock(engine, config, clock, MUG=9)
    report = sync.sync(["a"], read_back=False)[0]
    assert report.held == 1 and a.quantities["MUG"] == 5  # an increase waits its turn
    clock.tick(60)
    set_stock(engine, config, clock, MUG=2)
    sync.sync(["a"], read_back=False)
    assert a.quantities["MUG"] == 2  # a decrease goes at once
    from channelsync.ledger.schema import listing_t

    with engine.connect() as conn:
        row = conn.execute(sa.select(listing_t.c.revisions, listing_t.c.revisions_day)).one()
    assert row == (2, clock().date().isoformat())


def test_a_listing_showing_less_is_drift_only_once_the_lag_has_passed(
    engine: Engine, clock: Clock
) -> None:
    sync, config = make(engine, clock)
    a = fakes.CHANNELS["a"]
    a.quantities["MUG"] = 0
    set_stock(engine, config, clock, MUG=4)
    sync.sync(["a"])
    a.quantities["MUG"] = 3  # maybe a sale the channel does not show in its orders yet
    clock.tick(1)
    assert sync.sync(["a"])[0].drift == 0
    assert a.quantities["MUG"] == 3  # not put back on sale
    clock.tick(10)
    assert sync.sync(["a"])[0].drift == 0  # still within the channel's overlap (30 s)
    clock.tick(60)
    assert sync.sync(["a"])[0].drift == 1  # the same for longer than the lag: drift
    assert a.quantities["MUG"] == 4
    assert len(open_conflicts(engine, "drift")) == 1


def test_a_listing_showing_less_for_the_lag_is_drift_though_read_more_often(
    engine: Engine, clock: Clock
) -> None:
    """What counts is how long the channel has shown it, not the time since the last read."""
    sync, config = make(engine, clock)
    a = fakes.CHANNELS["a"]
    a.quantities["MUG"] = 0
    set_stock(engine, config, clock, MUG=4)
    sync.sync(["a"])
    a.quantities["MUG"] = 3
    drift = []
    for _ in range(5):  # reads 10 s apart; the lag is 30 s
        clock.tick(10)
        drift.append(sync.sync(["a"])[0].drift)
    assert drift == [0, 0, 0, 1, 0]
    assert a.quantities["MUG"] == 4


def test_a_shortfall_counts_its_time_from_our_last_write_not_an_older_read(
    engine: Engine, clock: Clock
) -> None:
    """A read showed 0, then our write of 2 landed, then the channel showed 0 again: it has
    shown 0 since after our write, not since that first read."""
    sync, config = make(engine, clock)
    a = fakes.CHANNELS["a"]
    a.quantities["MUG"] = 0
    set_stock(engine, config, clock, MUG=4)
    sync.sync(["a"])
    a.quantities["MUG"] = 0  # maybe sales the channel does not report yet
    clock.tick(1)
    assert sync.sync(["a"])[0].drift == 0
    clock.tick(20)
    set_stock(engine, config, clock, MUG=2)  # a count: 2 goes out at once, and lands
    sync.sync(["a"], read_back=False)
    assert a.quantities["MUG"] == 2
    a.quantities["MUG"] = 0  # sold again, not reported yet
    clock.tick(15)  # 36 s after the first read of 0, 15 s after our write: within the lag
    assert sync.sync(["a"])[0].drift == 0
    assert a.quantities["MUG"] == 0  # nothing put back on sale
    clock.tick(20)
    assert sync.sync(["a"])[0].drift == 1  # shown for the lag since our write: drift


def test_a_sale_there_and_a_restock_in_one_cycle_leave_no_listing_a_unit_short(
    engine: Engine, clock: Clock
) -> None:
    """The target stays what was pushed, so the plan alone pushes nothing; the read-back
    finds the channel a unit short, explained by the sale it pulled: corrected, no alert."""
    sync, config = make(engine, clock)
    a = fakes.CHANNELS["a"]
    a.quantities["MUG"] = 0
    set_stock(engine, config, clock, MUG=4)
    sync.sync(["a"])
    clock.tick()
    a.sell(("MUG", 1))  # the channel shows 3
    set_stock(engine, config, clock, MUG=5)  # and the seller counts one more on the shelf
    clock.tick()
    report = sync.sync(["a"])[0]
    assert report.drift == 0 and a.quantities["MUG"] == 4
    assert open_conflicts(engine) == []
    check_invariants(engine)


def test_a_shortfall_beyond_the_sales_pulled_since_the_write_is_not_corrected_early(
    engine: Engine, clock: Clock
) -> None:
    """A sale pulled before our last write was already in it: it explains nothing."""
    sync, config = make(engine, clock)
    a = fakes.CHANNELS["a"]
    a.quantities["MUG"] = 0
    set_stock(engine, config, clock, MUG=5)
    sync.sync(["a"])
    a.sell(("MUG", 1))
    clock.tick()
    sync.sync(["a"])  # pulled, 4 pushed
    a.quantities["MUG"] = 3  # maybe a sale the channel does not report yet
    clock.tick()
    assert sync.sync(["a"])[0].drift == 0
    assert a.quantities["MUG"] == 3  # not put back on sale


def test_a_sale_pulled_before_a_write_that_never_went_out_still_explains_the_shortfall(
    engine: Engine, clock: Clock
) -> None:
    """The sale is pulled and its push is deferred by a rate limit: nothing reached the
    channel, so the sale still explains why it shows one less than our last write."""
    from channelsync.errors import Deferred

    sync, config = make(engine, clock)
    a = fakes.CHANNELS["a"]
    a.quantities["MUG"] = 0
    set_stock(engine, config, clock, MUG=5)
    sync.sync(["a"])
    clock.tick()
    a.sell(("MUG", 1))  # the channel shows 4
    clock.tick()
    a.push_errors = [Deferred("rate limit", wait=300)]
    (report,) = sync.sync(["a"])
    assert report.deferred == {"quantities": 300} and a.quantities["MUG"] == 4
    for _ in range(3):  # reads long past the lag (30 s), the write still deferred
        clock.tick(31)
        assert sync.sync(["a"])[0].drift == 0
    assert open_conflicts(engine, "drift") == []
    clock.tick(300)
    sync.sync(["a"])
    assert a.quantities["MUG"] == 4
    check_invariants(engine)


def test_a_write_found_applied_dates_the_sales_that_explain_a_shortfall(
    engine: Engine, clock: Clock
) -> None:
    """A write whose answer was lost, found applied by a read: the sales pulled before it
    went out were in it, and explain nothing that the channel shows less later."""
    from channelsync.errors import Deferred

    sync, config = make(engine, clock)
    a = fakes.CHANNELS["a"]
    a.quantities["MUG"] = 0
    set_stock(engine, config, clock, MUG=5)
    sync.sync(["a"])
    a.sell(("MUG", 1))
    clock.tick()
    a.lose_answers = 3  # 4 is applied, and every try times out
    sync.sync(["a"], read_back=False)
    clock.tick()
    a.push_errors = [Deferred("rate limit", wait=300)]  # the re-write waits
    sync.sync(["a"])  # the read finds 4: applied
    with engine.connect() as conn:
        assert conn.execute(sa.select(schema.listing_t.c.last_pushed)).scalar() == 4
    a.quantities["MUG"] = 3  # maybe a sale the channel does not report yet
    drift = []
    for _ in range(4):  # reads 10 s apart; the lag is 30 s
        clock.tick(10)
        drift.append(sync.sync(["a"])[0].drift)
    # The sale pulled before the write explains nothing: the unit is not put back on
    # sale, and a shortfall steady for the lag is drift, not a sale of ours.
    assert drift == [0, 0, 0, 1]
    assert len(open_conflicts(engine, "drift")) == 1


def test_a_plan_made_while_a_write_is_out_is_pushed_after_it_lands(
    engine: Engine, clock: Clock
) -> None:
    """While 6 is on its way to a, a sale on b brings the target back to 5, what a was last
    confirmed at: the plan must not settle a's row, or a keeps showing the 6 that lands."""
    sync, config = make(engine, clock)
    a, b = fakes.CHANNELS["a"], fakes.CHANNELS["b"]
    a.quantities["MUG"], b.quantities["MUG"] = 0, 0
    set_stock(engine, config, clock, MUG=5)
    sync.sync(read_back=False)
    set_stock(engine, config, clock, MUG=6)

    def sale_on_b_meanwhile() -> None:
        b.sell(("MUG", 1))
        clock.tick()
        sync.sync(["b"], read_back=False)

    a.before_write.append(sale_on_b_meanwhile)
    clock.tick()
    sync.sync(["a"], read_back=False)
    assert a.quantities["MUG"] == 6  # landed after the plan for 5
    clock.tick()
    sync.sync(["a"], read_back=False)
    assert a.quantities["MUG"] == 5
    check_invariants(engine)


def test_a_long_wait_inside_a_connector_ends_when_stopping(
    engine: Engine, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    monkeypatch.setitem(registry.BUILTIN, "slow", "tests.fakes:FakeWaitingConnector")
    url = engine.url.render_as_string(hide_password=False)
    config = parse_config(f'[database]\nurl = "{url}"\n[[channel]]\nname = "a"\ntype = "slow"\n',
                          env={})
    sync = SyncEngine(config, engine, clock=clock)  # the real, interruptible waits
    fakes.CHANNELS["a"] = fakes.FakeChannel("a", clock=clock, quantities={"MUG": 0})
    fakes.FakeWaitingConnector.waiting.clear()

    def stop_while_waiting() -> None:
        fakes.FakeWaitingConnector.waiting.wait(30)
        sync.stopping.set()

    stopper = threading.Thread(target=stop_while_waiting)
    stopper.start()
    (report,) = sync.sync()  # without the interruption: an hour (the suite's timeout fails it)
    stopper.join()
    assert report.error == ""  # stopping is not a failure of the channel
    assert report.pulled == 0
    with engine.connect() as conn:
        state = conn.execute(sa.select(schema.state_t).where(
            schema.state_t.c.name == "a")).mappings().one()
    assert state["cursor"] is None and state["last_error"] == ""
    sync.close()


def test_a_deferred_pull_waits_for_its_time_and_pushes_still_go_out(
    engine: Engine, clock: Clock
) -> None:
    """A rate limit that would make a pull wait minutes defers it: the cycle goes on, a
    sale elsewhere still reaches the channel, and the pull is made once it is allowed."""
    from channelsync.errors import Deferred
    from channelsync.service.reports import status

    sync, config = make(engine, clock)
    a, b = fakes.CHANNELS["a"], fakes.CHANNELS["b"]
    a.quantities["MUG"] = b.quantities["MUG"] = 0
    set_stock(engine, config, clock, MUG=5)
    sync.sync()
    b.sell(("MUG", 2))
    a.fail_next = [Deferred("searchOrders: rate limit", wait=60, operation="searchOrders")]
    reports = {r.channel: r for r in sync.sync()}
    assert reports["a"].deferred == {"orders": 60} and not reports["a"].error
    assert a.quantities["MUG"] == 3  # b's sale reached a: pushes went out
    assert sync.sleeps == []  # type: ignore[attr-defined]  # nothing waited for
    with engine.connect() as conn:
        shown = {c["name"]: c for c in status(conn, config, clock())["channels"]}
    assert shown["a"]["deferred"]["orders"]["in_s"] == 60 and shown["a"]["last_error"] is None
    pulls = a.pulls
    clock.tick(30)
    a.sell(("MUG", 1))
    reports = {r.channel: r for r in sync.sync()}
    assert a.pulls == pulls  # not asked again before its time
    assert reports["a"].deferred == {"orders": 30}
    clock.tick(31)
    reports = {r.channel: r for r in sync.sync()}
    assert a.pulls > pulls and reports["a"].deferred == {}
    assert b.quantities["MUG"] == 2  # a's sale, pulled now, reached b
    with engine.connect() as conn:
        shown = {c["name"]: c for c in status(conn, config, clock())["channels"]}
    assert shown["a"]["deferred"] == {}
    check_invariants(engine)


def test_a_deferred_push_is_not_a_failed_attempt(engine: Engine, clock: Clock) -> None:
    from channelsync.errors import Deferred

    sync, config = make(engine, clock)  # push_attempts = 2
    a = fakes.CHANNELS["a"]
    a.quantities["MUG"] = 0
    set_stock(engine, config, clock, MUG=5)
    for _ in range(3):
        a.push_errors = [Deferred("createFeed: rate limit", wait=120)]
        (report,) = sync.sync(["a"])
        assert report.deferred == {"quantities": 120} and not report.error
        with engine.connect() as conn:
            row = conn.execute(sa.select(outbox_t)).mappings().one()
        assert row["attempts"] == 0 and row["next_attempt_at"] == clock() + timedelta(
            seconds=120)
        clock.tick(121)
    assert open_conflicts(engine) == []  # three deferrals are no failure
    (report,) = sync.sync(["a"])
    assert a.quantities["MUG"] == 5 and report.pushed == 1


def test_a_pull_stopped_by_a_rate_limit_goes_on_from_its_next_page(
    engine: Engine, clock: Clock
) -> None:
    """Amazon's cursor moves only on a pull's last page: a pull that started over after
    every deferral would never get through a backlog longer than the rate limit's burst."""
    from channelsync.errors import Deferred

    sync, config = make(engine, clock)
    a = fakes.CHANNELS["a"]  # two orders a page
    a.quantities["MUG"] = 50
    set_stock(engine, config, clock, MUG=50)
    for _ in range(5):
        a.sell(("MUG", 1))
    sync.sync(["a"])  # pages "0", "2", "4"
    clock.tick(60)
    for _ in range(5):
        clock.tick(1)
        a.sell(("MUG", 1))
    with engine.connect() as conn:
        watermark = conn.execute(sa.select(schema.state_t.c.pull_started_at)).scalar()
    a.pages.clear()
    raised: list[bool] = []
    original = a._maybe_fail

    def second_page_deferred() -> None:
        if a.pages == [None, "2"] and not raised:  # asking for the second page
            raised.append(True)
            raise Deferred("searchOrders: rate limit", wait=10)
        original()

    a._maybe_fail = second_page_deferred  # type: ignore[method-assign]
    started = clock()
    (report,) = sync.sync(["a"])
    assert report.deferred == {"orders": 10} and report.pulled == 2
    assert a.pages == [None, "2"]
    with engine.connect() as conn:
        state = conn.execute(sa.select(schema.state_t)).mappings().one()
    assert state["pull_started_at"] == watermark  # not complete: the watermark stays
    a._maybe_fail = original  # type: ignore[method-assign]
    clock.tick(11)
    (report,) = sync.sync(["a"])
    assert a.pages[2:] == ["2", "4", "6", "8"]  # went on where it stopped, not from None
    assert report.deferred == {} and not report.error
    with engine.connect() as conn:
        state = conn.execute(sa.select(schema.state_t)).mappings().one()
    assert state["pull_started_at"] == started  # the pull began in the earlier cycle
    assert state["pull_resume"] == ""
    with engine.connect() as conn:
        assert conn.execute(sa.select(schema.sku_t.c.reserved)).scalar() == 10
    check_invariants(engine)


def test_a_saved_page_the_channel_refuses_starts_the_pull_over(
    engine: Engine, clock: Clock
) -> None:
    from channelsync.errors import PermanentChannelError
    from channelsync.sync.deferrals import Resume, save_resume_point

    sync, config = make(engine, clock)
    a = fakes.CHANNELS["a"]
    a.quantities["MUG"] = 5
    set_stock(engine, config, clock, MUG=5)
    a.sell(("MUG", 1))
    with engine.begin() as conn:
        ledger.ensure_channel_state(conn, "a")
        save_resume_point(conn, "a", Resume(clock() - timedelta(days=1), "expired", clock()))
    a.fail_next = [PermanentChannelError("page token expired")]
    (report,) = sync.sync(["a"])
    assert a.pages == ["expired", None] and not report.error
    with engine.connect() as conn:
        assert conn.execute(sa.select(schema.sku_t.c.reserved)).scalar() == 1


def test_a_cancellation_the_channel_reports_late_is_not_drift(
    engine: Engine, clock: Clock
) -> None:
    """Amazon and eBay put cancelled units back on sale before they report the
    cancellation: the read shows more than pushed. Corrected at once, but no alert."""
    sync, config = make(engine, clock)
    a = fakes.CHANNELS["a"]
    a.quantities["MUG"] = 0
    set_stock(engine, config, clock, MUG=4)
    sync.sync(["a"])
    order = a.sell(("MUG", 1))
    clock.tick()
    sync.sync(["a"])
    assert a.quantities["MUG"] == 3
    clock.tick()
    a.set_status(order, "cancelled")  # the channel shows 4 again at once...
    a.hidden.add(order)  # ...and reports the cancellation later
    clock.tick()
    report = sync.sync(["a"])[0]
    assert report.drift == 0 and a.quantities["MUG"] == 3  # corrected, the safe direction
    a.hidden.clear()
    clock.tick(31)
    report = sync.sync(["a"])[0]
    assert report.drift == 0 and a.quantities["MUG"] == 4  # the cancellation, pulled
    clock.tick(31)
    assert sync.sync(["a"])[0].drift == 0
    assert open_conflicts(engine, "drift") == []
    check_invariants(engine)


def test_a_write_whose_answer_was_lost_is_found_applied_not_drift(
    engine: Engine, clock: Clock
) -> None:
    sync, config = make(engine, clock)
    a = fakes.CHANNELS["a"]
    a.quantities["MUG"] = 0
    set_stock(engine, config, clock, MUG=4)
    sync.sync(["a"])
    set_stock(engine, config, clock, MUG=2)
    a.lose_answers = 3  # every try of this cycle is applied, and times out
    report = sync.sync(["a"], read_back=False)[0]
    assert report.push_failed == 1 and a.quantities["MUG"] == 2
    for _ in range(3):  # reads 31 s apart: long past the lag
        clock.tick(31)
        report = sync.sync(["a"])[0]
        assert report.drift == 0
    assert open_conflicts(engine) == []
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(outbox_t)).scalar() == 0


def test_an_increase_to_a_lagging_channel_waits_until_its_sales_since_the_push_are_in(
    engine: Engine, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A channel that reports sales late (Amazon, eBay): a pull right after our push does
    not show a sale made just after it, so an increase computed then would write over it
    and put the sold unit back on sale. The increase waits for a pull begun order_lag after
    the push."""
    lagging = replace(fakes.FakeConnector.capabilities, order_lag=timedelta(seconds=60))
    monkeypatch.setattr(fakes.FakeConnector, "capabilities", lagging)
    sync, config = make(engine, clock)
    a = fakes.CHANNELS["a"]
    a.quantities["MUG"] = 0
    set_stock(engine, config, clock, MUG=5)
    sync.sync(["a"])
    assert a.quantities["MUG"] == 5
    clock.tick(5)
    order = a.sell(("MUG", 1))  # a shows 4; the channel will report the sale 60 s late
    a.hidden.add(order)
    clock.tick(5)
    set_stock(engine, config, clock, MUG=8)  # a delivery: the ledger wants a to show 8
    (report,) = sync.sync(["a"])
    assert report.held and a.quantities["MUG"] == 4  # no echo of the unseen sale
    clock.tick(30)  # 40 s after the push: a pull now still might not show every sale
    (report,) = sync.sync(["a"])
    assert report.held and a.quantities["MUG"] == 4
    clock.tick(25)  # 65 s: the channel has reported the sale, as its lag promised
    a.hidden.clear()
    sync.sync(["a"])  # this pull has the sale: the increase goes out without echoing it
    assert a.quantities["MUG"] == 7
    check_invariants(engine)


def test_every_write_is_in_the_push_log_with_what_it_was_computed_from(
    engine: Engine, clock: Clock
) -> None:
    from channelsync.service.reports import explain

    sync, config = make(engine, clock)
    a = fakes.CHANNELS["a"]
    a.quantities.update(MUG=0, LID=0)
    a.refuse.add("LID")
    set_stock(engine, config, clock, MUG=5, LID=2)
    sync.sync(["a"])
    clock.tick(10)
    fakes.CHANNELS["b"].quantities["MUG"] = 5
    set_stock(engine, config, clock, MUG=3)
    sync.sync(["a"])
    with engine.connect() as conn:
        log = [dict(r) for r in conn.execute(
            sa.select(schema.push_log_t).order_by(schema.push_log_t.c.id)).mappings()]
        data = explain(conn, config, "MUG")
    assert data is not None
    mug = [(r["quantity"], r["previous"], r["available"], r["outcome"])
           for r in log if r["channel_sku"] == "MUG"]
    assert mug == [(5, None, 5, "ok"), (3, 5, 3, "ok")]
    lid = [r for r in log if r["channel_sku"] == "LID"]
    assert lid[0]["outcome"] == "failed" and "refused LID" in lid[0]["detail"]
    pulled = [r["watermark"] for r in log if r["channel_sku"] == "MUG"]
    assert pulled[1] is not None and pulled[1] > pulled[0]  # what the target knew of a's orders
    assert [(p["quantity"], p["outcome"]) for p in data["recent_pushes"]] == [(3, "ok"), (5, "ok")]


def test_a_write_whose_answer_died_with_channelsync_is_found_applied_after_a_restart(
    engine: Engine, clock: Clock
) -> None:
    sync, config = make(engine, clock)
    a = fakes.CHANNELS["a"]
    a.quantities["MUG"] = 0
    set_stock(engine, config, clock, MUG=4)
    sync.sync(["a"])
    set_stock(engine, config, clock, MUG=9)
    a.die_after_write = True
    with pytest.raises(fakes.Killed):
        sync.sync(["a"], read_back=False)
    assert a.quantities["MUG"] == 9  # the channel took it; the ledger never heard back
    restarted, _ = make(engine, clock)
    for _ in range(3):  # reads a channel's lag apart: a lower or higher reading would be drift
        clock.tick(31)
        assert restarted.sync(["a"])[0].drift == 0
    assert open_conflicts(engine) == []
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(outbox_t)).scalar() == 0


def test_a_cancellation_a_read_back_pulls_itself_explains_what_the_channel_put_back(
    engine: Engine, clock: Clock
) -> None:
    """Found by the simulation: the channel shows one more after a cancellation; the
    read-back's own pull finds the cancellation, but the stock is oversold, so the target
    stays 0 and the second read still shows 1. Corrected, and no drift alert."""
    sync, config = make(engine, clock)
    a, b = fakes.CHANNELS["a"], fakes.CHANNELS["b"]
    a.quantities["MUG"] = b.quantities["MUG"] = 0
    set_stock(engine, config, clock, MUG=3)
    sync.sync()
    mine = a.sell(("MUG", 1))
    b.sell(("MUG", 2))
    clock.tick()
    sync.sync()
    assert a.quantities["MUG"] == 0
    set_stock(engine, config, clock, MUG=2)  # one broke: oversold by one
    clock.tick()
    a.set_status(mine, "cancelled")  # a puts its unit back on sale at once
    assert a.quantities["MUG"] == 1
    clock.tick()
    sync.sync(["a"])
    assert a.quantities["MUG"] == 0  # corrected: nothing to sell
    clock.tick(31)  # past the lag: judged
    assert sync.sync(["a"])[0].drift == 0
    assert open_conflicts(engine, "drift") == []
