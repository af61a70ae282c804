"""The order book: orders from every channel as wholes, their stages and history, on real
SQLite and PostgreSQL; the CLI's ``orders`` and ``order``; the upgrade that fills it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from channelsync.cli import app as cli
from channelsync.config import parse_config
from channelsync.orders import book
from channelsync.orders.book import Units, stage_of
from channelsync.orders.schema import event_t, order_t
from channelsync.sync.engine import SyncEngine
from tests import fakes
from tests.test_engine import BASE, Clock, set_stock

pytestmark = pytest.mark.usefixtures("fake_registry")  # tests.conftest


def test_stages_follow_units_first_then_the_channel_then_the_sellers_step() -> None:
    assert stage_of("paid", "", Units(2)) == "paid"
    assert stage_of("paid", "packed", Units(2)) == "packed"  # a pull saying paid again
    assert stage_of("paid", "packed", Units(2, shipped=1)) == "partly_shipped"
    assert stage_of("paid", "", Units(2, shipped=2)) == "shipped"  # the channel lags
    assert stage_of("paid", "", Units(3, shipped=1, cancelled=2)) == "shipped"  # the rest off
    assert stage_of("cancelled", "picked", Units(1, cancelled=1)) == "cancelled"
    assert stage_of("paid", "", Units(2, cancelled=2)) == "cancelled"
    assert stage_of("cancelled", "", Units(1, shipped=1, cancelled=1)) == "returned"
    # Cancelled after one of two shipped: the rest is off, what shipped stays shipped.
    assert stage_of("cancelled", "", Units(2, shipped=1, cancelled=1)) == "shipped"
    assert stage_of("cancelled", "", Units(3, shipped=1, cancelled=1)) == "partly_shipped"
    assert stage_of("delivered", "", Units(1, shipped=1)) == "delivered"
    assert stage_of("", "", Units()) == "received"
    assert stage_of("returned", "", Units(1, cancelled=1)) == "cancelled"  # refunded unsent
    assert stage_of("returned", "", Units(1, shipped=1)) == "returned"
    assert book.parse_stage("Partly-Shipped") == "partly_shipped"
    with pytest.raises(ValueError, match="unknown stage"):
        book.parse_stage("lost")


def _sync(engine: Engine, clock: Clock) -> SyncEngine:
    url = engine.url.render_as_string(hide_password=False)
    config = parse_config(BASE.format(url=url), env={})
    for name in ("a", "b"):
        fakes.CHANNELS.setdefault(name, fakes.FakeChannel(name, clock=clock))
    fakes.CHANNELS["a"].quantities["MUG"] = 0
    fakes.CHANNELS["b"].quantities["MUG"] = 0
    set_stock(engine, config, clock, MUG=10)
    sync = SyncEngine(config, engine, clock=clock, sleep=lambda s: None)
    sync.sync(read_back=True)
    return sync


def _stages(engine: Engine) -> dict[tuple[str, str], str]:
    with engine.connect() as conn:
        return {(r.channel, r.order_id): r.stage for r in conn.execute(sa.select(order_t))}


def test_one_book_across_channels_with_every_stage_change_recorded(engine: Engine) -> None:
    clock = Clock()
    sync = _sync(engine, clock)
    a, b = fakes.CHANNELS["a"], fakes.CHANNELS["b"]
    first = a.sell(("MUG", 2))
    second = b.sell(("MUG", 1))
    clock.tick()
    sync.sync(read_back=False)
    assert _stages(engine) == {("a", first): "paid", ("b", second): "paid"}
    with engine.begin() as conn:  # the seller picked the first
        assert book.set_local_stage(conn, "a", first, "picked", now=clock()) == "picked"
    clock.tick()
    a.set_status(first, "processing")  # the channel touches it again, still "paid"
    b.set_status(second, "cancelled")
    clock.tick()
    sync.sync(read_back=False)
    assert _stages(engine) == {("a", first): "picked", ("b", second): "cancelled"}
    clock.tick()
    a.set_status(first, "completed")
    clock.tick()
    sync.sync(read_back=False)
    assert _stages(engine)[("a", first)] == "shipped"
    with engine.connect() as conn:
        history = [(r.stage, r.previous, r.source) for r in conn.execute(
            sa.select(event_t).where(event_t.c.order_id == first).order_by(event_t.c.id))]
        row = conn.execute(sa.select(order_t).where(order_t.c.order_id == first)).one()
    assert history == [("paid", "", "channel"), ("picked", "paid", "cli"),
                       ("shipped", "picked", "channel")]
    assert (row.ordered, row.shipped, row.buyer, row.total, row.currency) == \
        (2, 2, "A. Buyer", "20.00", "EUR")
    assert row.placed_at is not None and row.placed_at.tzinfo is not None


def test_an_order_whose_lines_wait_for_an_unknown_sku_is_in_the_book(engine: Engine) -> None:
    clock = Clock()
    sync = _sync(engine, clock)
    a = fakes.CHANNELS["a"]
    a.quantities["GHOST"] = 5
    order_id = a.sell(("GHOST", 1), ("MUG", 1))
    clock.tick()
    sync.sync(read_back=False)
    with engine.connect() as conn:
        row = conn.execute(sa.select(order_t).where(order_t.c.order_id == order_id)).one()
    assert (row.stage, row.ordered) == ("paid", 2)


# -- the CLI -------------------------------------------------------------------------------------


def test_the_cli_lists_the_book_and_shows_one_order_with_its_history(
    engine: Engine, tmp_path: Path
) -> None:
    clock = Clock()
    sync = _sync(engine, clock)
    a, b = fakes.CHANNELS["a"], fakes.CHANNELS["b"]
    shipped = a.sell(("MUG", 1))
    waiting = b.sell(("MUG", 3))
    clock.tick()
    a.set_status(shipped, "completed")
    sync.sync(read_back=False)
    url = engine.url.render_as_string(hide_password=False)
    config = tmp_path / "channels.toml"
    config.write_text(BASE.format(url=url))
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli, ["--config", str(config), *args], env={"COLUMNS": "80"})
        assert result.exit_code == code, (args, result.stdout, result.stderr)
        return result.stdout

    listed = json.loads(run("orders", "--json"))["orders"]
    assert {(o["channel"], o["order_id"], o["stage"]) for o in listed} == {
        ("a", shipped, "shipped"), ("b", waiting, "paid")}
    only_b = json.loads(run("orders", "--channel", "b", "--stage", "open", "--json"))
    assert [o["order_id"] for o in only_b["orders"]] == [waiting]
    assert json.loads(run("orders", "--stage", "cancelled", "--json"))["orders"] == []
    table = run("orders")
    assert all(len(line) <= 80 for line in table.splitlines())
    assert waiting in table and "A. Buyer" in table and "30.00 EUR" in table
    one = json.loads(run("order", "a", shipped, "--json"))
    assert one["stage"] == "shipped" and one["lines"][0]["sku"] == "MUG"
    assert [e["stage"] for e in one["events"]] == ["shipped"]
    # first seen already shipped: the unit left the shelf, nothing was ever reserved
    assert [(m["kind"], m["on_hand"]) for m in one["movements"]] == [("commit", -1)]
    text = run("order", "a", shipped)
    assert "history" in text and "stock movements" in text
    assert "no order" in run("order", "a", "nope", code=1) + runner.invoke(
        cli, ["--config", str(config), "order", "a", "nope"]).stderr
    assert "unknown stage" in runner.invoke(
        cli, ["--config", str(config), "orders", "--stage", "lost"]).stderr


# -- the upgrade ---------------------------------------------------------------------------------


def test_the_upgrade_fills_the_book_from_the_lines_already_held(ledger_url: str) -> None:
    from channelsync.db.core import create_engine
    from channelsync.ledger.migrate import current_revision, head_revision, upgrade

    engine = create_engine(ledger_url)
    try:
        upgrade(engine, "0006")
        lines = [("shop", "1", "1", 2, 0, 0, "applied"), ("shop", "1", "2", 1, 1, 0, "applied"),
                 ("shop", "2", "1", 1, 0, 1, "applied"), ("amazon", "9", "1", 1, 1, 0, "applied"),
                 ("shop", "3", "1", 1, 0, 0, "ignored")]
        with engine.begin() as conn:
            for channel, order_id, line_id, ordered, shipped, cancelled, state in lines:
                conn.execute(sa.text(
                    "INSERT INTO order_line (channel, order_id, line_id, channel_sku, sku, "
                    "status, ordered, shipped, cancelled, restocked, version, state, committed,"
                    " restock_applied) VALUES (:c, :o, :l, 'MUG', 'MUG', 'x', :n, :s, :x, 0, 1,"
                    " :st, 0, 0)"), {"c": channel, "o": order_id, "l": line_id, "n": ordered,
                                     "s": shipped, "x": cancelled, "st": state})
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            rows = {(r.channel, r.order_id): (r.stage, r.ordered, r.shipped)
                    for r in conn.execute(sa.select(order_t))}
            events = conn.execute(sa.select(sa.func.count()).select_from(event_t)).scalar()
            kept = conn.execute(sa.text("SELECT count(*) FROM order_line")).scalar()
        assert rows == {("shop", "1"): ("partly_shipped", 3, 1), ("shop", "2"): ("cancelled", 1, 0),
                        ("amazon", "9"): ("shipped", 1, 1)}
        assert events == 3 and kept == 5
    finally:
        engine.dispose()


# -- pick lists ----------------------------------------------------------------------------------

KIT = """
[[kit]]
sku = "SET"
components = { MUG = 2, LID = 1 }
"""


def test_a_pick_list_groups_the_paid_orders_by_sku_and_marks_them_picked(
    engine: Engine, tmp_path: Path
) -> None:
    clock = Clock()
    url = engine.url.render_as_string(hide_password=False)
    config_text = BASE.format(url=url) + KIT
    config = parse_config(config_text, env={})
    a = fakes.CHANNELS.setdefault("a", fakes.FakeChannel("a", clock=clock))
    b = fakes.CHANNELS.setdefault("b", fakes.FakeChannel("b", clock=clock))
    a.quantities.update(MUG=0, LID=0, SET=0)
    b.quantities.update(MUG=0, LID=0)
    set_stock(engine, config, clock, MUG=20, LID=10)
    sync = SyncEngine(config, engine, clock=clock, sleep=lambda s: None)
    sync.sync()
    first = a.sell(("MUG", 2), ("LID", 1))
    second = b.sell(("MUG", 1))
    kit = a.sell(("SET", 1))
    gone = b.sell(("LID", 1))
    done = a.sell(("LID", 2))
    clock.tick()
    b.set_status(gone, "cancelled")
    a.set_status(done, "completed")
    sync.sync(read_back=False)
    with engine.begin() as conn:
        book.set_local_stage(conn, "b", second, "picked", now=clock())  # already picked
    path = tmp_path / "channels.toml"
    path.write_text(config_text)
    csv_path = tmp_path / "pick.csv"
    result = CliRunner().invoke(cli, ["--config", str(path), "pick", "--json", "--csv",
                                      str(csv_path), "--mark-picked"])
    assert result.exit_code == 0, result.stdout + result.stderr
    listed = json.loads(result.stdout)
    assert {line["sku"]: line["units"] for line in listed["lines"]} == {"MUG": 4, "LID": 2}
    mug = next(line for line in listed["lines"] if line["sku"] == "MUG")
    assert {(o["order_id"], o["units"]) for o in mug["orders"]} == {(first, 2), (kit, 2)}
    assert listed["marked_picked"] == 2
    assert csv_path.read_text().splitlines()[0] == "sku,title,barcode,units,orders"
    assert _stages(engine)[("a", first)] == "picked" and _stages(engine)[("a", kit)] == "picked"
    assert _stages(engine)[("a", done)] == "shipped"
    again = CliRunner().invoke(cli, ["--config", str(path), "pick"], env={"COLUMNS": "80"})
    assert "nothing to pick" in again.stdout


# -- packing by scanning -------------------------------------------------------------------------


def _packing_setup(engine: Engine, tmp_path: Path) -> tuple[Path, str]:
    from channelsync.ledger.schema import sku_t

    clock = Clock()
    sync = _sync(engine, clock)
    a = fakes.CHANNELS["a"]
    a.quantities["LID"] = 0
    with engine.begin() as conn:
        conn.execute(sku_t.insert().values(sku="LID", title="Lid", barcodes="4006381333931",
                                           on_hand=5, reserved=0))
        conn.execute(sku_t.update().where(sku_t.c.sku == "MUG").values(
            title="Mug", barcodes="036000291452"))
    sync.sync()
    order_id = a.sell(("MUG", 2))
    clock.tick()
    sync.sync(read_back=False)
    path = tmp_path / "channels.toml"
    path.write_text(BASE.format(url=engine.url.render_as_string(hide_password=False)))
    return path, order_id


def test_packing_accepts_only_the_orders_units_and_packs_when_all_are_scanned(
    engine: Engine, tmp_path: Path
) -> None:
    config, order_id = _packing_setup(engine, tmp_path)
    scans = "\n".join([
        "0036000291452",   # MUG by its EAN-13, the catalog has its UPC-A: the same product
        "4006381333931",   # LID: another product
        "4006381333932",   # a misread: wrong check digit
        "96385074",        # a valid GTIN-8 nobody has
        "MUG",             # the SKU typed
        "036000291452",    # a third MUG: never reached, the order is complete
    ]) + "\n"
    result = CliRunner().invoke(cli, ["--config", str(config), "pack", "a", order_id],
                                input=scans, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith(("ok", "no"))]
    assert lines == [
        "ok MUG (Mug) 1/2, 1 to go",
        "no 4006381333931 is LID (Lid), not in this order",
        "no barcode 4006381333932 (EAN-13): wrong check digit 2, expected 1; scan it again",
        "no 96385074: no SKU or barcode in the catalog",
        "ok MUG (Mug) 2/2",
    ]
    assert f"a order {order_id} is packed" in result.stdout
    assert _stages(engine)[("a", order_id)] == "packed"
    with engine.connect() as conn:
        last = conn.execute(sa.select(event_t).where(event_t.c.order_id == order_id)
                            .order_by(event_t.c.id.desc())).first()
    assert last is not None and last.detail == "2 units scanned, 3 refused"


def test_packing_refuses_an_extra_unit_and_records_nothing_until_complete(
    engine: Engine, tmp_path: Path
) -> None:
    config, order_id = _packing_setup(engine, tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["--config", str(config), "pack", "--scan-order"],
                           input=f"a:{order_id}\nMUG\n")
    assert result.exit_code == 1
    assert "not packed: 1 unit still to scan (MUG 1/2); nothing was recorded" in result.stderr
    assert _stages(engine)[("a", order_id)] == "paid"
    from channelsync.orders import packing, queries

    with engine.connect() as conn:
        found = queries.get_order(conn, "a", order_id)
        assert found is not None
        session = packing.start(conn, found)
        assert [session.scan(c, conn).ok for c in ("MUG", "MUG", "MUG")] == [True, True, False]
        assert "an extra unit, all 2 are scanned already" in session.scan("MUG", conn).message
    fakes.CHANNELS["a"].set_status(order_id, "cancelled")
    cancelled = runner.invoke(cli, ["--config", str(config), "pack", "a", "nope"], input="")
    assert cancelled.exit_code == 1 and "no order 'nope' from 'a'" in cancelled.stderr


def test_a_stale_header_does_not_take_an_order_back(engine: Engine) -> None:
    from datetime import timedelta

    from channelsync.connector import OrderSnapshot
    from tests.ledger_helpers import apply, snap

    apply(engine, "a", snap("9"))  # the order's line (an unknown SKU: kept, pending)
    clock = Clock()
    t = clock()
    with engine.begin() as conn:
        book.record(conn, "a", [OrderSnapshot("9", "cancelled", "cancelled", t)], [], now=t)
        book.record(conn, "a", [OrderSnapshot("9", "processing", "paid", t)], [], now=t)
        book.record(conn, "a", [OrderSnapshot("9", "processing", "paid",
                                              t - timedelta(seconds=5))], [], now=t)
        row = conn.execute(sa.select(order_t)).one()
    assert (row.status, row.channel_stage) == ("cancelled", "cancelled")
