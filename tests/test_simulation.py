"""Short simulations: every channel type on its emulator, seeded buyers, a seller and
faults, channelsync in this process or as killed and restarted daemons; afterwards every
invariant checked against the channels' own records (channelsync.sandbox.simulation).

The long ones: ``bash scripts/simulate.sh --minutes 10 --seed S [--replicas 3 --kills 20]``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from channelsync.ledger.migrate import open_ledger_engine
from channelsync.ledger.schema import line_t, sku_t
from channelsync.sandbox.simulation import Figures, Plan, checks, simulate
from channelsync.sandbox.simulation.workload import Journal, Sale
from channelsync.sandbox.simulation.world import CATALOG

pytestmark = pytest.mark.timeout(300)


def assert_clean(figures: Figures) -> None:
    assert figures.ok, f"{figures.line()}\n" + "\n".join(figures.problems())
    assert figures.orders > 30 and figures.faults > 0
    assert figures.book_orders >= figures.orders  # every channel's orders, in the book


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_faulty_world_loses_nothing_and_converges(seed: int) -> None:
    assert_clean(simulate(Plan(seed=seed, seconds=8)))


def test_a_daemon_killed_at_the_worst_moments_loses_nothing() -> None:
    """SIGKILL right after a channel answered a write, after it served a page of orders,
    when Amazon takes a feed; the daemon restarts each time."""
    figures = simulate(Plan(seed=11, seconds=14, processes=1, kills=3))
    assert_clean(figures)
    assert figures.kills >= 2


def test_replicas_on_postgresql_killed_in_turn_lose_nothing(pg_url: str) -> None:
    figures = simulate(Plan(seed=12, seconds=14, processes=2, kills=3, database_url=pg_url))
    assert_clean(figures)
    assert figures.kills >= 2


# -- the checks fail where they should -----------------------------------------------------------


def test_the_stock_check_counts_units_lost_and_doubled(tmp_path: Path) -> None:
    db = open_ledger_engine(f"sqlite:///{tmp_path / 'l.db'}")
    with db.begin() as conn:
        conn.execute(sku_t.insert(), [{"sku": s, "on_hand": n, "reserved": 0}
                                      for s, n in CATALOG.items()])
        conn.execute(sku_t.update().where(sku_t.c.sku == "SKU-01").values(on_hand=sa.literal(3)))
    orders = {"shop": [{"order_id": "1", "status": "processing", "lines": [
        {"sku": "SKU-00", "quantity": 2, "shipped": 0, "cancelled": 0, "restocked": 0}]}]}
    truth = checks.expected_stock(orders, {"SKU-01": -2})
    figures = Figures()
    checks.check_stock(figures, db, truth)
    assert truth["SKU-00"] == (CATALOG["SKU-00"], 2)
    assert figures.lost == 2  # the two reserved units the ledger does not hold
    assert figures.doubled == CATALOG["SKU-01"] - 2 - 3  # units gone from on hand too many
    assert not figures.ok and "SKU-00" in "\n".join(figures.problems())
    with db.begin() as conn:  # the ledger saw the order as cancelled: where the units went
        conn.execute(line_t.insert().values(channel="shop", order_id="1", line_id="9",
                                            channel_sku="SKU-00", sku="SKU-00", ordered=2,
                                            cancelled=2, state="applied"))
    assert checks.order_differences(db, orders) == [
        "shop order 1 SKU-00: the channel has ordered/shipped/cancelled (2, 0, 0), the "
        "ledger (2, 0, 2)"]
    db.dispose()


def test_the_listing_drift_and_secret_checks_find_what_is_wrong() -> None:
    figures = Figures()
    checks.check_listings(figures, {("shop", "SKU-00"): 4, ("ebay", "SKU-02"): 6,
                                    ("ebay", "SKU-04"): 1}, {"shop": {"SKU-00": 5},
                                                            "ebay": {"SKU-02": 3, "SKU-04": 2}})
    assert figures.paced == 1  # eBay below its target: an increase spread over the day
    assert figures.off_target == ["ebay:SKU-04 shows 2, its target is 1",
                                  "shop:SKU-00 shows 5, its target is 4"]
    checks.check_secrets(figures, ["fine", f"token {checks.SECRETS['ebay']} leaked"])
    assert figures.secrets == ["log line 2 holds a secret"]
    journal = Journal(sales=[Sale("shop", "7", (("SKU-00", 1),), 10.0)])
    assert checks._touches(journal.sales[0], "SKU-00")
    assert not checks._touches(journal.sales[0], "SKU-03")
    assert not figures.ok


def test_the_book_check_finds_an_order_missing_or_at_a_stage_its_units_deny(
    tmp_path: Path
) -> None:
    from channelsync.orders.schema import order_t

    db = open_ledger_engine(f"sqlite:///{tmp_path / 'l.db'}")
    with db.begin() as conn:
        conn.execute(order_t.insert().values(
            channel="shop", order_id="1", status="", channel_stage="paid", local_stage="",
            stage="paid", buyer="", total="", currency="", ordered=1, shipped=0, cancelled=0))
    line = {"sku": "SKU-00", "quantity": 1, "shipped": 1, "cancelled": 0}
    figures = Figures()
    checks.check_book(figures, db, {"shop": [{"order_id": "1", "lines": [line]},
                                             {"order_id": "2", "lines": [line]}]})
    assert figures.book_orders == 2 and not figures.ok
    assert figures.book_off == [
        "shop order 1 is paid; its units (ordered 1, shipped 1, cancelled 0) say shipped or "
        "delivered or returned",
        "shop order 2 is not in the book; its units (ordered 1, shipped 1, cancelled 0) say "
        "shipped or delivered or returned"]
    db.dispose()
