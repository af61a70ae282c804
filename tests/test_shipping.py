"""Shipping: recorded against the order, stock off the shelf at once, confirmed on the
order's channel through an outbox (one fulfilment however often it is tried), from the
CLI and from a CSV; on real SQLite and PostgreSQL, against fake channels.
(Each built-in connector's fulfilment against its emulator: tests/test_*_contract.py.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from channelsync.cli import app as cli
from channelsync.config import parse_config
from channelsync.errors import RetriableChannelError
from channelsync.ledger.schema import mov_t, sku_t
from channelsync.orders.schema import order_t, shipment_t
from channelsync.sync.engine import SyncEngine
from tests import fakes
from tests.ledger_helpers import check_invariants, open_conflicts
from tests.test_engine import BASE, Clock, set_stock

pytestmark = pytest.mark.usefixtures("fake_registry")  # tests.conftest


class Shop:
    def __init__(self, engine: Engine, tmp_path: Path) -> None:
        self.engine, self.clock = engine, Clock()
        url = engine.url.render_as_string(hide_password=False)
        self.config_path = tmp_path / "channels.toml"
        self.config_path.write_text(BASE.format(url=url))
        config = parse_config(BASE.format(url=url), env={})
        self.a = fakes.CHANNELS.setdefault("a", fakes.FakeChannel("a", clock=self.clock))
        self.b = fakes.CHANNELS.setdefault("b", fakes.FakeChannel("b", clock=self.clock))
        self.a.quantities.update(MUG=0, LID=0)
        self.b.quantities.update(MUG=0, LID=0)
        set_stock(engine, config, self.clock, MUG=10, LID=5)
        self.sync = SyncEngine(config, engine, clock=self.clock, sleep=lambda s: None)
        self.sync.sync()

    def cli(self, *args: str, code: int = 0, stdin: str | None = None) -> Any:
        result = CliRunner().invoke(cli, ["--config", str(self.config_path), *args],
                                    input=stdin, env={"COLUMNS": "80"})
        assert result.exit_code == code, (args, result.stdout, result.stderr)
        return result

    def stock(self, sku: str) -> tuple[int, int]:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(sku_t.c.on_hand, sku_t.c.reserved)
                               .where(sku_t.c.sku == sku)).one()
        return row.on_hand, row.reserved

    def stage(self, channel: str, order_id: str) -> str:
        with self.engine.connect() as conn:
            return str(conn.execute(sa.select(order_t.c.stage).where(
                order_t.c.channel == channel, order_t.c.order_id == order_id)).scalar())

    def movements(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(mov_t)).scalar() or 0)


@pytest.fixture
def shop(engine: Engine, tmp_path: Path) -> Shop:
    return Shop(engine, tmp_path)


def test_shipping_an_order_takes_its_stock_at_once_and_the_echo_changes_nothing(
    shop: Shop
) -> None:
    order_id = shop.a.sell(("MUG", 2), ("LID", 1))
    shop.clock.tick()
    shop.sync.sync(read_back=False)
    assert shop.stock("MUG") == (10, 2)
    out = json.loads(shop.cli("ship", "a", order_id, "--carrier", "DHL", "--tracking",
                              "JD0146000012345", "--json").stdout)
    (shipment,) = out["shipments"]
    assert shipment["state"] == "confirmed" and shipment["units"] == 3
    assert shop.stock("MUG") == (8, 0) and shop.stock("LID") == (4, 0)
    (confirmed,) = shop.a.shipments
    assert (confirmed.carrier, confirmed.tracking) == ("DHL", "JD0146000012345")
    assert {(x.channel_sku, x.quantity) for x in confirmed.lines} == {("MUG", 2), ("LID", 1)}
    assert shop.stage("a", order_id) == "shipped"
    before = shop.movements()
    shop.clock.tick()
    shop.a.set_status(order_id, "completed")  # the channel says shipped too, later
    shop.sync.sync(read_back=False)
    assert shop.movements() == before and shop.stock("MUG") == (8, 0)
    again = shop.cli("ship", "a", order_id, "--carrier", "DHL", "--tracking", "JD0146000012345")
    assert "confirmed (before)" in again.stdout and len(shop.a.shipments) == 1
    assert shop.stock("MUG") == (8, 0)
    check_invariants(shop.engine)


def test_a_partial_shipment_then_the_rest(shop: Shop) -> None:
    order_id = shop.a.sell(("MUG", 3))
    shop.clock.tick()
    shop.sync.sync(read_back=False)
    shop.cli("ship", "a", order_id, "--carrier", "UPS", "--tracking", "1Z999", "--line",
             "MUG=1")
    assert shop.stage("a", order_id) == "partly_shipped" and shop.stock("MUG") == (9, 2)
    too_many = shop.cli("ship", "a", order_id, "--carrier", "UPS", "--tracking", "1Z998",
                        "--line", "MUG=3", code=1)
    assert "MUG: 3 to ship but only 2 not shipped or cancelled yet" in too_many.stderr
    shop.cli("ship", "a", order_id, "--carrier", "UPS", "--tracking", "1Z998")
    assert shop.stage("a", order_id) == "shipped" and shop.stock("MUG") == (7, 0)
    assert [(sum(x.quantity for x in s.lines), s.completes_order)
            for s in shop.a.shipments] == [(1, False), (2, True)]


def test_a_lost_answer_then_a_retry_is_one_fulfilment(shop: Shop) -> None:
    order_id = shop.a.sell(("MUG", 1))
    shop.clock.tick()
    shop.sync.sync(read_back=False)
    shop.a.lose_ship_answers = 1  # the channel creates it, the answer never comes
    shop.cli("ship", "a", order_id, "--carrier", "DHL", "--tracking", "T1")
    assert len(shop.a.shipments) == 1
    with shop.engine.connect() as conn:
        row = conn.execute(sa.select(shipment_t)).one()
    assert row.state == "confirmed" and row.attempts == 1


def test_a_channel_down_leaves_the_shipment_queued_for_the_daemon(shop: Shop) -> None:
    order_id = shop.a.sell(("MUG", 1))
    shop.clock.tick()
    shop.sync.sync(read_back=False)
    shop.a.fail_next = [RetriableChannelError("503")] * 3
    out = shop.cli("ship", "a", order_id, "--carrier", "DHL", "--tracking", "T2")
    assert "queued: the daemon retries" in out.stdout and "503" in out.stdout
    assert shop.stock("MUG") == (9, 0)  # the box left: the ledger says so already
    shop.clock.now = datetime.now(UTC) + timedelta(hours=1)  # the CLI ran on the real clock
    shop.sync.sync(["a"], read_back=False)  # the daemon's cycle
    assert len(shop.a.shipments) == 1
    with shop.engine.connect() as conn:
        assert conn.execute(sa.select(shipment_t.c.state)).scalar() == "confirmed"


def test_a_cancelled_order_is_refused_here_and_a_refusal_there_is_a_conflict(
    shop: Shop
) -> None:
    gone = shop.a.sell(("MUG", 1))
    kept = shop.b.sell(("LID", 1))
    shop.clock.tick()
    shop.a.set_status(gone, "cancelled")
    shop.sync.sync(read_back=False)
    refused = shop.cli("ship", "a", gone, "--carrier", "DHL", "--tracking", "T3", code=1)
    assert f"a order {gone} is cancelled: it cannot be shipped" in refused.stderr
    assert shop.a.shipments == []
    shop.b.orders[kept].status = "cancelled"  # cancelled there, not pulled yet
    out = shop.cli("ship", "b", kept, "--carrier", "DHL", "--tracking", "T4")
    assert "refused: see conflicts" in out.stdout
    (conflict,) = open_conflicts(shop.engine, "shipment_refused")
    assert f"b refused the shipment of order {kept}" in conflict["message"]
    assert "is cancelled" in conflict["message"]


def test_shipments_from_a_csv_all_or_nothing_unless_skip_bad(shop: Shop, tmp_path: Path) -> None:
    first = shop.a.sell(("MUG", 2))
    second = shop.b.sell(("MUG", 1), ("LID", 2))
    shop.clock.tick()
    shop.sync.sync(read_back=False)
    path = tmp_path / "shipments.csv"
    path.write_text("channel,order_id,carrier,tracking,sku,quantity\n"
                    f"a,{first},DHL,D1,,\n"
                    f"b,{second},UPS,U1,MUG,1\n"
                    f"b,{second},UPS,U1,LID,two\n"
                    f"b,nope,UPS,U2,,\n"
                    f"c,{first},UPS,U3,,\n")
    bad = shop.cli("ship", "--import", str(path), code=1)
    assert "line 4: quantity 'two' is not a whole number" in bad.stderr
    assert "line 5: no order 'nope' from 'b' in the book" in bad.stderr
    assert "line 6: no channel named 'c' in the config" in bad.stderr
    assert "3 bad rows; nothing was recorded" in bad.stderr
    assert shop.a.shipments == [] and shop.stock("MUG") == (10, 3)
    out = json.loads(shop.cli("ship", "--import", str(path), "--skip-bad", "--json").stdout)
    assert {(s["channel"], s["order_id"], s["units"]) for s in out["shipments"]} == {
        ("a", first, 2), ("b", second, 1)}
    assert [b["line"] for b in out["bad_rows"]] == [4, 5, 6]
    assert shop.stage("b", second) == "partly_shipped" and shop.stock("MUG") == (7, 0)
    assert len(shop.a.shipments) == 1 and len(shop.b.shipments) == 1


def test_an_order_paid_and_not_shipped_within_the_limit_is_alerted_until_it_ships(
    shop: Shop
) -> None:
    from channelsync.service.alerts import AlertDispatcher

    order_id = shop.a.sell(("MUG", 1))
    shop.clock.tick()
    shop.sync.sync(read_back=False)
    url = shop.engine.url.render_as_string(hide_password=False)
    config = parse_config(BASE.format(url=url).replace(
        'name = "b"', 'name = "b"\nship_within = 3600'), env={})
    alerts = AlertDispatcher(config, shop.engine, clock=shop.clock)
    shop.clock.tick(86400)
    assert alerts.check_late_orders(shop.clock()) == []  # a day: within the two days
    late = shop.b.sell(("LID", 1))  # b ships within the hour
    shop.sync.sync(read_back=False)
    shop.clock.tick(2 * 3600)
    assert len(alerts.check_late_orders(shop.clock())) == 1
    (conflict,) = open_conflicts(shop.engine, "order_late")
    assert conflict["subject"] == f"b:{late}" and "still paid (ship within 1 hours)" in \
        conflict["message"]
    shop.clock.tick(86400)
    assert len(alerts.check_late_orders(shop.clock())) == 1  # now a's too; b's stays one
    assert {c["subject"] for c in open_conflicts(shop.engine, "order_late")} == {
        f"a:{order_id}", f"b:{late}"}
    shop.b.set_status(late, "completed")
    shop.a.set_status(order_id, "cancelled")
    shop.sync.sync(read_back=False)
    alerts.check_late_orders(shop.clock())
    assert open_conflicts(shop.engine, "order_late") == []


def test_a_channel_refusing_us_not_the_shipment_keeps_every_shipment_queued(shop: Shop) -> None:
    """Credentials rejected, a scope missing: raised, not answered. No shipment is marked
    refused for it; the cycle reports the channel's error and they wait."""
    from channelsync.errors import PermanentChannelError

    first, second = shop.a.sell(("MUG", 1)), shop.a.sell(("LID", 1))
    shop.clock.tick()
    shop.sync.sync(read_back=False)
    shop.a.fail_next = [PermanentChannelError("401: invalid credentials")]
    out = shop.cli("ship", "a", first, "--carrier", "DHL", "--tracking", "T7")
    shop.cli("ship", "a", second, "--carrier", "DHL", "--tracking", "T8")
    assert "401: invalid credentials" in out.stdout
    assert open_conflicts(shop.engine, "shipment_refused") == []
    with shop.engine.connect() as conn:
        states = [r.state for r in conn.execute(sa.select(shipment_t).order_by(shipment_t.c.id))]
    assert states == ["queued", "confirmed"]  # the second went out once the channel took us
