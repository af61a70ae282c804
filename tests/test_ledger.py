"""The ledger on real SQLite and real PostgreSQL: order snapshots as desired states."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from channelsync.connector import BadRecord
from channelsync.ledger import apply as ledger
from channelsync.ledger import schema
from tests.ledger_helpers import (
    apply,
    at,
    check_invariants,
    count,
    open_conflicts,
    sku_row,
    snap,
)


def stock_of(engine: Engine, sku: str = "MUG") -> tuple[int, int]:
    row = sku_row(engine, sku)
    return row["on_hand"], row["reserved"]


def test_order_lifecycle_reserve_partial_ship_ship(engine: Engine) -> None:
    count(engine, MUG=10)
    apply(engine, "shop", snap("1", qty=3, t=1))
    assert stock_of(engine) == (10, 3)
    apply(engine, "shop", snap("1", qty=3, t=2, shipped=1, status="partially-shipped"))
    assert stock_of(engine) == (9, 2)
    apply(engine, "shop", snap("1", qty=3, t=3, shipped=3, status="completed"))
    assert stock_of(engine) == (7, 0)
    check_invariants(engine)


def test_cancel_releases_and_restock_returns_units(engine: Engine) -> None:
    count(engine, MUG=5)
    apply(engine, "shop", snap("1", qty=2, t=1), snap("2", qty=1, t=1))
    apply(engine, "shop", snap("1", qty=2, t=2, cancelled=2, status="cancelled"))
    assert stock_of(engine) == (5, 1)
    apply(engine, "shop", snap("2", qty=1, t=2, shipped=1, status="completed"))
    apply(engine, "shop", snap("2", qty=1, t=3, shipped=1, restocked=1, status="returned"))
    assert stock_of(engine) == (5, 0)
    check_invariants(engine)


def test_quantity_edit_changes_the_reservation(engine: Engine) -> None:
    count(engine, MUG=5)
    apply(engine, "shop", snap("1", qty=2, t=1))
    apply(engine, "shop", snap("1", qty=4, t=2))
    assert stock_of(engine) == (5, 4)
    apply(engine, "shop", snap("1", qty=1, t=3))
    assert stock_of(engine) == (5, 1)
    check_invariants(engine)


def test_replayed_duplicate_and_older_snapshots_change_nothing(engine: Engine) -> None:
    count(engine, MUG=5)
    first = apply(engine, "shop", snap("1", qty=2, t=5))
    assert first.applied == 1
    again = apply(engine, "shop", snap("1", qty=2, t=5), snap("1", qty=2, t=5))
    assert (again.applied, again.unchanged) == (0, 1)
    older = apply(engine, "shop", snap("1", qty=2, t=1, cancelled=2, status="cancelled"))
    assert older.stale == 1
    assert stock_of(engine) == (5, 2)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.mov_t)).scalar() == 2
    check_invariants(engine)


def test_a_stale_page_within_the_same_second_never_undoes_a_cancellation(
    engine: Engine
) -> None:
    """Placed and cancelled within one second of the channel's clock: the pages carry the
    same time, and a stale one may bring the older version after the newer."""
    count(engine, MUG=5)
    apply(engine, "shop", snap("1", qty=2, t=5, cancelled=2, status="cancelled"))
    stale = apply(engine, "shop", snap("1", qty=2, t=5))
    assert stale.unchanged + stale.applied == 1
    assert stock_of(engine) == (5, 0)
    with engine.connect() as conn:
        line = conn.execute(sa.select(schema.line_t)).one()
    assert (line.cancelled, line.status) == (2, "cancelled")
    apply(engine, "shop", snap("1", qty=2, t=6))  # a later second may say anything
    assert stock_of(engine) == (5, 2)
    check_invariants(engine)


def test_the_newest_snapshot_of_a_line_in_one_page_wins(engine: Engine) -> None:
    count(engine, MUG=5)
    apply(engine, "shop", snap("1", qty=2, t=2, cancelled=2), snap("1", qty=2, t=1))
    assert stock_of(engine) == (5, 0)


def test_shipments_never_go_backwards(engine: Engine) -> None:
    count(engine, MUG=5)
    apply(engine, "shop", snap("1", qty=2, t=1, shipped=2, status="completed"))
    # A refund after shipping arrives as "cancelled": the units already left.
    apply(engine, "shop", snap("1", qty=2, t=2, cancelled=2, status="refunded"))
    assert stock_of(engine) == (3, 0)
    check_invariants(engine)


def test_same_line_ids_on_two_channels_are_separate(engine: Engine) -> None:
    count(engine, MUG=5)
    apply(engine, "a", snap("1", qty=1, t=1))
    apply(engine, "b", snap("1", qty=1, t=1))
    assert stock_of(engine) == (5, 2)


def test_kit_reserves_and_commits_its_components(engine: Engine) -> None:
    count(engine, MUG=10, LID=10)
    with engine.begin() as conn:
        conn.execute(schema.kit_t.insert(), [
            {"kit_sku": "SET", "component_sku": "MUG", "quantity": 2},
            {"kit_sku": "SET", "component_sku": "LID", "quantity": 1},
        ])
    apply(engine, "shop", snap("1", sku="SET", qty=3, t=1))
    assert stock_of(engine, "MUG") == (10, 6)
    assert stock_of(engine, "LID") == (10, 3)
    apply(engine, "shop", snap("1", sku="SET", qty=3, t=2, shipped=3))
    assert stock_of(engine, "MUG") == (4, 0)
    assert stock_of(engine, "LID") == (7, 0)
    check_invariants(engine)


def test_channel_sku_is_mapped_to_the_master_sku(engine: Engine) -> None:
    count(engine, MUG=5)
    apply(engine, "amazon", snap("1", sku="AMZ-MUG", qty=2, t=1), mapping={"AMZ-MUG": "MUG"})
    assert stock_of(engine) == (5, 2)


def test_unknown_sku_is_kept_and_applied_once_known(engine: Engine) -> None:
    count(engine, MUG=5)
    result = apply(engine, "shop", snap("1", sku="NEW", qty=2, t=1))
    assert result.pending == 1
    (conflict,) = open_conflicts(engine, "unknown_sku")
    assert conflict["subject"] == "shop:NEW" and conflict["detail"]["orders"] == ["1"]
    count(engine, now=10, NEW=4)
    with engine.begin() as conn:
        pending = ledger.pending_lines(conn, "shop")
        again = ledger.apply_page(conn, "shop", pending, master_sku=lambda s: s, now=at(20))
    assert again.applied == 1
    assert stock_of(engine, "NEW") == (4, 2)
    assert open_conflicts(engine, "unknown_sku") == []
    check_invariants(engine)


def test_shipment_before_the_latest_count_only_releases(engine: Engine) -> None:
    count(engine, now=0, MUG=10)
    apply(engine, "shop", snap("1", qty=2, t=5), snap("2", qty=1, t=5))
    count(engine, now=100, MUG=8)  # the shelf was counted after order 1 left
    apply(engine, "shop", snap("1", qty=2, t=50, shipped=2, status="completed"))
    assert stock_of(engine) == (8, 1)
    apply(engine, "shop", snap("2", qty=1, t=150, shipped=1, status="completed"))
    assert stock_of(engine) == (7, 0)
    check_invariants(engine)


def test_oversell_raises_one_conflict_naming_the_orders(engine: Engine) -> None:
    count(engine, MUG=1)
    opened = apply(engine, "a", snap("A1", qty=1, t=1)).conflicts
    assert opened == []
    opened = apply(engine, "b", snap("B7", qty=1, t=2)).conflicts
    assert len(opened) == 1
    apply(engine, "c", snap("C3", qty=1, t=3))  # still oversold: the same conflict
    (conflict,) = open_conflicts(engine, "oversell")
    assert conflict["sku"] == "MUG"
    names = {(o["channel"], o["order_id"]) for o in conflict["detail"]["orders"]}
    assert names == {("a", "A1"), ("b", "B7"), ("c", "C3")}
    assert "a order A1" in conflict["message"] and "b order B7" in conflict["message"]
    count(engine, now=10, MUG=3)  # found more on the shelf
    assert open_conflicts(engine, "oversell") == []


def test_an_oversell_by_shipped_units_names_the_orders_that_shipped_them(
    engine: Engine,
) -> None:
    """Shipped units hold no reservation: an oversell they cause must still name them
    (it once read "0 reserved but -1 on hand (competing orders: )")."""
    count(engine, MUG=5)
    apply(engine, "a", snap("old", qty=5, t=1, shipped=5, status="completed"))
    count(engine, now=2000, MUG=1)  # a new count: what shipped before it is not named
    with engine.begin() as conn:
        conn.execute(schema.kit_t.insert().values(kit_sku="MUG-2PACK", component_sku="MUG",
                                                  quantity=2))
    shop_order = "gid://shopify/Order/7"  # ids may hold colons
    apply(engine, "shop", snap(shop_order, line="gid://shopify/LineItem/1", qty=1, t=3000,
                               shipped=1, status="fulfilled"), now=3000)
    apply(engine, "b", snap("B9", sku="MUG-2PACK", qty=1, t=3001, shipped=1,
                            status="completed"), now=3001)
    assert stock_of(engine) == (-2, 0)
    (conflict,) = open_conflicts(engine, "oversell")
    assert "0 reserved but -2 on hand" in conflict["message"]
    assert f"shop order {shop_order} (1 shipped)" in conflict["message"]
    assert "b order B9 (2 shipped)" in conflict["message"]
    names = [(o["channel"], o["order_id"], o["quantity"], o["held"])
             for o in conflict["detail"]["orders"]]
    assert names == [("b", "B9", 2, "shipped"), ("shop", shop_order, 1, "shipped")]
    apply(engine, "c", snap("C1", qty=1, t=3002), now=3002)  # and one holding a unit
    (conflict,) = open_conflicts(engine, "oversell")
    assert "c order C1 (1 reserved)" in conflict["message"]
    check_invariants(engine)


def test_a_channel_clock_behind_ours_does_not_hide_shipments_after_a_count(
    engine: Engine,
) -> None:
    """The ledger asks the channel's time whether a shipment came before the latest count.
    A channel whose clock is 45 s behind dates a shipment made 25 s after the count 20 s
    before it: corrected by the measured offset, the units come off the shelf."""
    from datetime import timedelta

    count(engine, now=100, MUG=10)
    behind = timedelta(seconds=-45)
    apply(engine, "shop", snap("1", qty=2, t=80, shipped=2, status="completed"), now=126)
    assert stock_of(engine) == (10, 0)  # taken as "before the count": wrong without the offset
    with engine.begin() as conn:
        ledger.apply_page(conn, "slow", [snap("2", qty=3, t=80, shipped=3,
                                               status="completed")],
                          master_sku=lambda s: s, now=at(126), clock_offset=behind)
    assert stock_of(engine) == (7, 0)
    check_invariants(engine)


def test_a_shipment_in_the_second_of_a_count_comes_off_the_shelf(engine: Engine) -> None:
    """Channels report whole seconds: a shipment stamped a second before the count may be
    after it. The ledger takes the units off (undersold, never oversold)."""
    count(engine, now=100.6, MUG=10)
    apply(engine, "shop", snap("1", qty=1, t=100, shipped=1, status="completed"), now=101)
    apply(engine, "shop", snap("2", qty=1, t=95, shipped=1, status="completed"), now=101)
    assert stock_of(engine) == (9, 0)  # the first came off; the second was counted already
    check_invariants(engine)


def test_ignored_lines_hold_nothing(engine: Engine) -> None:
    count(engine, MUG=5)
    apply(engine, "amazon", snap("1", qty=2, t=1, ignore=True))
    assert stock_of(engine) == (5, 0)


def test_bad_records_are_kept_as_conflicts_and_the_rest_applies(engine: Engine) -> None:
    count(engine, MUG=5)
    with engine.begin() as conn:
        ledger.apply_page(
            conn, "shop", [snap("1", qty=-2, t=1), snap("2", qty=1, t=1)],
            master_sku=lambda s: s, now=at(10),
            bad_records=[BadRecord("no sku", "order 3 line 9", {"id": 3})],
        )
    assert stock_of(engine) == (5, 1)
    bad = {c["subject"]: c for c in open_conflicts(engine, "bad_record")}
    assert set(bad) == {"shop:shop:1:1", "shop:order 3 line 9"}
    assert bad["shop:order 3 line 9"]["detail"]["raw"] == {"id": 3}


def test_cursor_moves_with_the_page_and_never_back(engine: Engine) -> None:
    count(engine, MUG=5)
    apply(engine, "shop", snap("1", t=10), resume_at=at(10))
    apply(engine, "shop", snap("2", t=5), resume_at=at(5))

    def cursor() -> object:
        with engine.connect() as conn:
            return conn.execute(sa.select(schema.state_t.c.cursor)).scalar()

    assert cursor() == at(10)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        ledger.apply_page(conn, "shop", [snap("3", t=20)], master_sku=lambda s: s,
                          now=at(30), resume_at=at(20))
        raise RuntimeError("crash before commit")
    assert cursor() == at(10)
    assert stock_of(engine) == (5, 2)


def test_an_order_edited_below_what_shipped_puts_nothing_back(engine: Engine) -> None:
    count(engine, MUG=10)
    apply(engine, "shop", snap("1", qty=3, t=1, shipped=3, status="completed"))
    apply(engine, "shop", snap("1", qty=1, t=2, shipped=1, status="completed"))
    assert stock_of(engine) == (7, 0)
    check_invariants(engine)


def test_a_count_keeps_the_fields_it_does_not_give(engine: Engine) -> None:
    from datetime import UTC, datetime

    from channelsync.ledger import stock

    with engine.begin() as conn:
        stock.set_stock(conn, [stock.StockRow("MUG", 4, 2, "Blue mug", "4006381333931")],
                        now=datetime.now(UTC), reason="count")
        stock.set_stock(conn, [stock.StockRow("MUG", 6)], now=datetime.now(UTC), reason="count")
    row = sku_row(engine, "MUG")
    assert (row["on_hand"], row["safety_stock"], row["title"], row["barcodes"]) == \
        (6, 2, "Blue mug", "4006381333931")
    check_invariants(engine)
