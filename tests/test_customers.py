"""Buyers recognised across channels by a salted hash, loyalty tiers reached by the order
that crosses the threshold (one alert), delivery times, forgetting a buyer; on real SQLite
and PostgreSQL, through the sync engine and the CLI."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from channelsync.cli import app as cli
from channelsync.config import parse_config
from channelsync.customers.identity import email_key, identity, normalise_email
from channelsync.customers.schema import alias_t, buyer_t
from channelsync.ledger.schema import conflict_t, mov_t, sku_t
from channelsync.orders.schema import event_t, order_t
from channelsync.sync.engine import SyncEngine
from tests import fakes
from tests.test_engine import Clock, set_stock

SALT = "s3cret-salt-for-tests-0123456789"
EMAIL = "Jane.Doe@Example.com"
CONFIG = """
[database]
url = "{url}"
[daemon]
retry_attempts = 2
[loyalty]
salt = "{salt}"
window_days = 90
[[loyalty.tiers]]
name = "silver"
min_spend = {{ EUR = 50 }}
[[loyalty.tiers]]
name = "gold"
min_spend = {{ EUR = 100, USD = 120 }}
min_orders = 6
tag = "VIP"
[[channel]]
name = "a"
type = "fake"
[[channel]]
name = "b"
type = "fake"
assume_delivered_after = 5
[[channel]]
name = "c"
type = "fake"
"""


pytestmark = pytest.mark.usefixtures("fake_registry")  # tests.conftest


def config_text(engine: Engine, salt: str = SALT) -> str:
    """The config; without a salt, without the tiers (which need one)."""
    text = CONFIG.format(url=engine.url.render_as_string(hide_password=False), salt=salt)
    if not salt:
        text = text[:text.index("[[loyalty.tiers]]")] + text[text.index("[[channel]]"):]
    return text


def start(engine: Engine, clock: Clock, salt: str = SALT) -> SyncEngine:
    config = parse_config(config_text(engine, salt), env={})
    for name in ("a", "b", "c"):
        fakes.CHANNELS[name] = fakes.FakeChannel(name, clock=clock, page_size=10)
        fakes.CHANNELS[name].quantities["MUG"] = 0
    set_stock(engine, config, clock, MUG=100)
    sync = SyncEngine(config, engine, clock=clock, sleep=lambda s: None)
    sync.sync(read_back=True)
    return sync


def cycle(sync: SyncEngine, clock: Clock) -> None:
    clock.tick()
    sync.sync(read_back=False)


def rows(engine: Engine, table: sa.Table) -> list[dict[str, object]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(table)).mappings()]


def everything_stored(engine: Engine) -> str:
    """Every value of every table, as text: what a look at the database would find."""
    with engine.connect() as conn:
        found = []
        meta = sa.MetaData()
        meta.reflect(conn)
        for table in meta.sorted_tables:
            found += [repr(tuple(r)) for r in conn.execute(sa.select(table))]
    return "\n".join(found)


def test_emails_are_normalised_and_hashed_with_the_salt() -> None:
    assert normalise_email("  Jane.Doe@Example.COM ") == "jane.doe@example.com"
    assert normalise_email("not an address") == normalise_email("a@b") == ""
    mine = identity(SALT, "a", " jane.doe@EXAMPLE.com", "")
    assert mine.email == email_key(SALT, EMAIL) and mine.key == mine.email
    assert identity("another salt", "a", EMAIL, "").email != mine.email
    by_id = identity(SALT, "a", "", "buyer-7")
    assert by_id.email == "" and by_id.key == by_id.channel_id
    assert identity(SALT, "b", "", "buyer-7").channel_id != by_id.channel_id  # per channel
    assert EMAIL.lower() not in repr(fakes.FakeConnector._header(fakes.FakeOrder(
        "1", [("MUG", 1)], email=EMAIL, buyer_id="buyer-7")))


def test_one_buyer_on_three_channels_is_one_customer(engine: Engine) -> None:
    clock = Clock()
    sync = start(engine, clock)
    a, b, c = (fakes.CHANNELS[n] for n in "abc")
    a.sell(("MUG", 1), email=EMAIL, buyer="Jane D.")
    b.sell(("MUG", 1), email=" jane.doe@example.COM", buyer_id="jdoe-b", buyer="jdoe")
    c.sell(("MUG", 1), email="jane.doe@example.com", buyer="Jane Doe")
    a.sell(("MUG", 1), email="someone.else@example.com", buyer="Sam")
    cycle(sync, clock)
    buyers = rows(engine, buyer_t)
    assert len(buyers) == 2
    jane = {r["buyer_key"] for r in rows(engine, order_t) if r["buyer"] != "Sam"}
    assert jane == {email_key(SALT, EMAIL)}
    assert {r["alias"]: r["buyer_key"] for r in rows(engine, alias_t)} == {
        identity(SALT, "b", "", "jdoe-b").channel_id: email_key(SALT, EMAIL)}
    stored = everything_stored(engine).lower()
    assert "jane.doe@example.com" not in stored and "jdoe-b" not in stored


def test_a_buyer_known_by_id_is_merged_when_their_email_appears(engine: Engine) -> None:
    clock = Clock()
    sync = start(engine, clock)
    b = fakes.CHANNELS["b"]
    first = b.sell(("MUG", 1), buyer_id="jdoe-b")
    cycle(sync, clock)
    assert [r["key"] for r in rows(engine, buyer_t)] == [
        identity(SALT, "b", "", "jdoe-b").channel_id]
    b.sell(("MUG", 1), buyer_id="jdoe-b", email=EMAIL)
    fakes.CHANNELS["a"].sell(("MUG", 1), email=EMAIL)
    cycle(sync, clock)
    assert [r["key"] for r in rows(engine, buyer_t)] == [email_key(SALT, EMAIL)]
    keys = {r["order_id"]: r["buyer_key"] for r in rows(engine, order_t)}
    assert keys[first] == email_key(SALT, EMAIL) and len(set(keys.values())) == 1


def tier_alerts(engine: Engine) -> list[dict[str, object]]:
    return [r for r in rows(engine, conflict_t) if r["kind"] == "loyalty_tier"]


def test_the_order_that_crosses_a_tier_is_flagged_and_alerts_once(engine: Engine) -> None:
    clock = Clock()
    sync = start(engine, clock)
    a, b = fakes.CHANNELS["a"], fakes.CHANNELS["b"]
    a.sell(("MUG", 1), email=EMAIL, total="30.00", buyer="Jane D.")
    b.sell(("MUG", 1), email=EMAIL, total="100.00", currency="USD")  # not toward EUR
    cancelled = a.sell(("MUG", 1), email=EMAIL, total="90.00")
    a.set_status(cancelled, "cancelled")  # does not count
    cycle(sync, clock)
    assert tier_alerts(engine) == []
    crossing = b.sell(("MUG", 1), email=EMAIL, total="25.00", buyer="Jane D.")  # EUR 55
    cycle(sync, clock)
    alerts = tier_alerts(engine)
    assert len(alerts) == 1
    assert alerts[0]["channel"] == "b" and crossing in str(alerts[0]["message"])
    assert "Jane D." in str(alerts[0]["message"]) and "@" not in str(alerts[0]["message"])
    flagged = {r["order_id"]: r["tier"] for r in rows(engine, order_t) if r["tier"]}
    assert flagged == {crossing: "silver"}
    # The same order again, and another below the next tier: no second alert.
    b.set_status(crossing, "completed")
    a.sell(("MUG", 1), email=EMAIL, total="10.00")
    cycle(sync, clock)
    assert len(tier_alerts(engine)) == 1
    gold = fakes.CHANNELS["c"].sell(("MUG", 1), email=EMAIL, total="40.00")
    cycle(sync, clock)  # EUR 30 + 25 + 10 + 40 = 105: gold
    assert len(tier_alerts(engine)) == 2
    assert {r["order_id"]: r["tier"] for r in rows(engine, order_t) if r["tier"]} == {
        crossing: "silver", gold: "gold"}
    assert [r["tier"] for r in rows(engine, buyer_t)] == ["gold"]


def test_orders_out_of_the_window_do_not_count(engine: Engine) -> None:
    clock = Clock()
    sync = start(engine, clock)
    a = fakes.CHANNELS["a"]
    a.sell(("MUG", 1), email=EMAIL, total="40.00")
    cycle(sync, clock)
    clock.tick(91 * 86400)
    a.sell(("MUG", 1), email=EMAIL, total="40.00")
    cycle(sync, clock)
    assert tier_alerts(engine) == []


def test_without_a_salt_nobody_is_recognised(engine: Engine, tmp_path: Path) -> None:
    clock = Clock()
    sync = start(engine, clock, salt="")
    fakes.CHANNELS["a"].sell(("MUG", 1), email=EMAIL)
    cycle(sync, clock)
    assert rows(engine, buyer_t) == [] and {r["buyer_key"] for r in rows(engine, order_t)} \
        == {""}


def test_a_tier_without_a_salt_is_a_config_error() -> None:
    with pytest.raises(Exception, match="loyalty.salt: required for tiers"):
        parse_config(CONFIG.format(url="sqlite://", salt=""), env={})
    with pytest.raises(Exception, match="give min_spend or min_orders"):
        parse_config('[loyalty]\nsalt = "x"\n[[loyalty.tiers]]\nname = "t"\n', env={})
    with pytest.raises(Exception, match="not a currency code"):
        parse_config('[loyalty]\nsalt = "x"\n[[loyalty.tiers]]\nname = "t"\n'
                     'min_spend = { euro = 5 }\n', env={})


# -- delivery ------------------------------------------------------------------------------------


def test_delivered_from_the_channel_or_assumed_days_after_shipping(engine: Engine) -> None:
    clock = Clock()
    sync = start(engine, clock)
    a, b = fakes.CHANNELS["a"], fakes.CHANNELS["b"]
    told = a.sell(("MUG", 1))
    assumed = b.sell(("MUG", 1))
    cycle(sync, clock)
    a.set_status(told, "completed")
    b.set_status(assumed, "completed")
    cycle(sync, clock)
    shipped_at = clock()
    a.orders[told].delivered_at = clock() - timedelta(hours=1)
    a.orders[told].changed_at = clock()
    cycle(sync, clock)
    by_id = {r["order_id"]: r for r in rows(engine, order_t)}
    assert by_id[told]["stage"] == "delivered"
    assert by_id[told]["delivered_source"] == "channel"
    assert by_id[assumed]["stage"] == "shipped" and by_id[assumed]["shipped_at"] == shipped_at
    clock.tick(5 * 86400)
    cycle(sync, clock)
    row = {r["order_id"]: r for r in rows(engine, order_t)}[assumed]
    assert (row["stage"], row["delivered_source"]) == ("delivered", "assumed")
    assert row["delivered_at"] == shipped_at + timedelta(days=5)
    b.orders[assumed].changed_at = clock()  # the channel touches it again: still shipped
    cycle(sync, clock)
    assert {r["order_id"]: r["stage"] for r in rows(engine, order_t)}[assumed] == "delivered"
    with engine.connect() as conn:
        assert conn.execute(sa.select(event_t.c.detail).where(
            event_t.c.order_id == assumed, event_t.c.stage == "delivered")).scalar() == \
            "assumed 5 days after shipping"


# -- forgetting and the CLI ----------------------------------------------------------------------


def stock_state(engine: Engine) -> tuple[object, ...]:
    with engine.connect() as conn:
        levels = sorted(tuple(r) for r in conn.execute(
            sa.select(sku_t.c.sku, sku_t.c.on_hand, sku_t.c.reserved)))
        moves = conn.execute(sa.select(sa.func.count()).select_from(mov_t)).scalar()
        orders = conn.execute(sa.select(sa.func.count()).select_from(order_t)).scalar()
    return tuple(levels), moves, orders


def test_the_cli_lists_customers_and_forgets_one_without_touching_stock(
    engine: Engine, tmp_path: Path
) -> None:
    clock = Clock()
    sync = start(engine, clock)
    a, b, c = (fakes.CHANNELS[n] for n in "abc")
    for channel, total in ((a, "30.00"), (b, "40.00"), (c, "45.00")):
        channel.sell(("MUG", 2), email=EMAIL, buyer="Jane Doe-Longname Example", total=total)
    b.sell(("MUG", 1), email="sam@example.com", buyer="Sam", total="12.50")
    cycle(sync, clock)
    config = tmp_path / "channels.toml"
    config.write_text(config_text(engine))
    runner = CliRunner()

    def run(*args: str, code: int = 0, input: str | None = None) -> str:
        result = runner.invoke(cli, ["--config", str(config), *args], input=input,
                               env={"COLUMNS": "80"})
        assert result.exit_code == code, result.output
        return result.output

    shown = run("customers")
    assert max(len(line) for line in shown.splitlines()) <= 80
    assert "Jane Doe-Longname" in shown and "a, b, c" in shown and "gold (VIP)" in shown
    assert "115.00 EUR" in shown and "@" not in shown
    listed = json.loads(run("customers", "--json"))
    assert [c["name"] for c in listed["customers"]] == ["Jane Doe-Longname Example", "Sam"]
    jane = listed["customers"][0]
    assert (jane["orders"], jane["spend"], jane["tier"], jane["channels"]) == \
        (3, {"EUR": "115.00"}, "gold", ["a", "b", "c"])
    assert json.loads(run("customers", "--tier", "gold", "--json"))["count"] == 1
    assert "no loyalty tier named 'platinum'" in run("customers", "--tier", "platinum", code=1)
    vip = json.loads(run("orders", "--vip", "--json"))["orders"]
    assert len(vip) == 3 and {o["buyer_tier"] for o in vip} == {"gold"}
    assert [o["tier_reached"] for o in vip].count("gold") == 1
    assert "(gold" in run("orders", "--vip")
    before = stock_state(engine)
    assert "Forget buyer" in run("customers", "forget", jane["id"], input="n\n", code=1)
    assert "neither an email nor a buyer id" in run("customers", "forget", "abc", code=1)
    assert "no buyer matches" in run("customers", "forget", "nobody@example.com", code=1)
    done = run("customers", "forget", "JANE.DOE@example.com", "--yes")
    assert f"forgot buyer {jane['id']}: 3 orders" in done
    assert stock_state(engine) == before
    assert [c["name"] for c in json.loads(run("customers", "--json"))["customers"]] == ["Sam"]
    left = [r for r in rows(engine, order_t) if r["buyer"] != "Sam"]
    assert len(left) == 3 and {(r["buyer"], r["buyer_key"], r["tier"]) for r in left} == {
        ("", "", "")}
    assert rows(engine, alias_t) == []


def test_buyers_without_an_order_for_forget_after_days_are_forgotten(engine: Engine) -> None:
    clock = Clock()
    text = config_text(engine).replace("window_days = 90", "window_days = 90\n"
                                       "forget_after_days = 30")
    config = parse_config(text, env={})
    for name in ("a", "b", "c"):
        fakes.CHANNELS[name] = fakes.FakeChannel(name, clock=clock, page_size=10)
        fakes.CHANNELS[name].quantities["MUG"] = 0
    set_stock(engine, config, clock, MUG=100)
    sync = SyncEngine(config, engine, clock=clock, sleep=lambda s: None)
    sync.sync(read_back=True)
    fakes.CHANNELS["a"].sell(("MUG", 1), email=EMAIL, buyer="Jane")
    cycle(sync, clock)
    clock.tick(20 * 86400)
    fakes.CHANNELS["b"].sell(("MUG", 1), email="sam@example.com", buyer="Sam")
    sync._forget_due = 0.0  # an hour passed (the look is hourly, on the monotonic clock)
    cycle(sync, clock)
    assert {r["display_name"] for r in rows(engine, buyer_t)} == {"Jane", "Sam"}
    clock.tick(11 * 86400)
    sync._forget_due = 0.0
    cycle(sync, clock)
    assert [r["display_name"] for r in rows(engine, buyer_t)] == ["Sam"]
    assert len(rows(engine, order_t)) == 2
    assert {r["buyer"] for r in rows(engine, order_t)} == {"", "Sam"}


def test_a_forgotten_buyer_is_not_brought_back_by_a_later_pull(engine: Engine) -> None:
    clock = Clock()
    sync = start(engine, clock)
    a = fakes.CHANNELS["a"]
    first = a.sell(("MUG", 1), email=EMAIL, buyer="Jane")
    cycle(sync, clock)
    with engine.begin() as conn:
        from channelsync.customers import queries

        queries.forget(conn, queries.find(conn, EMAIL, SALT), clock())
    a.set_status(first, "completed")  # the channel reports the order again
    cycle(sync, clock)
    assert rows(engine, buyer_t) == []
    row = {r["order_id"]: r for r in rows(engine, order_t)}[first]
    assert (row["buyer"], row["buyer_key"], row["stage"]) == ("", "", "shipped")
    a.sell(("MUG", 1), email=EMAIL, buyer="Jane")  # a new order: a new start
    cycle(sync, clock)
    assert [r["display_name"] for r in rows(engine, buyer_t)] == ["Jane"]


def test_orders_shipped_and_not_in_one_page_are_recorded_together(engine: Engine) -> None:
    clock = Clock()
    sync = start(engine, clock)
    a = fakes.CHANNELS["a"]
    waiting = a.sell(("MUG", 1))
    gone = a.sell(("MUG", 1), shipped_at=clock(), delivered_at=clock())
    a.set_status(gone, "completed")
    cycle(sync, clock)  # one page: one without times, one with both
    stages = {r["order_id"]: (r["stage"], r["delivered_source"]) for r in rows(engine, order_t)}
    assert stages == {waiting: ("paid", ""), gone: ("delivered", "channel")}


def test_a_tier_alert_names_the_tier_and_the_order(engine: Engine) -> None:
    from channelsync.service.alerts import alert_message

    clock = Clock()
    sync = start(engine, clock)
    crossing = fakes.CHANNELS["a"].sell(("MUG", 1), email=EMAIL, total="60.00", buyer="Jane")
    cycle(sync, clock)
    (row,) = tier_alerts(engine)
    title, body = alert_message(row)
    assert title == f"channelsync: silver tier reached with order a:{crossing}"
    assert body.startswith(f"Jane reached the silver tier with order {crossing} on a: 1 order,")
    assert "@" not in title + body


def test_names_with_brackets_are_shown_as_written(engine: Engine, tmp_path: Path) -> None:
    clock = Clock()
    sync = start(engine, clock)
    fakes.CHANNELS["a"].sell(("MUG", 1), email=EMAIL, buyer="Jane [/] [bold]Doe")
    cycle(sync, clock)
    config = tmp_path / "channels.toml"
    config.write_text(config_text(engine))
    for command in ("customers", "orders"):
        result = CliRunner().invoke(cli, ["--config", str(config), command],
                                    env={"COLUMNS": "100"})
        assert result.exit_code == 0, result.output
        assert "Jane [/] [bold]Doe" in result.output
