"""The dashboard's pages and actions over a real ledger: what they show, and that an action
is the same ledger movement the CLI makes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from channelsync.connector import OrderLineSnapshot, OrderSnapshot
from channelsync.ledger import apply as ledger_apply
from channelsync.ledger.conflicts import ConflictRecord, open_conflicts, resolve_conflicts
from channelsync.ledger.schema import conflict_t, listing_t, mov_t, outbox_t, state_t
from channelsync.ledger.stock import StockRow
from channelsync.orders import book
from channelsync.service.app import App
from channelsync.service.web.dashboard import _chart, _queries
from tests.dashboard_helpers import (
    Clock,
    Site,
    by_testid,
    make_config,
    serve,
    text_of,
)
from tests.ledger_helpers import check_invariants

KIT = """
[[kit]]
sku = "MUG-2PACK"
components = { MUG = 2 }
"""


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(tmp_path: Path, clock: Clock) -> Iterator[App]:
    application = App(make_config(f"sqlite:///{tmp_path}/ledger.db", extra=KIT), clock=clock)
    application.engine  # noqa: B018 - the kit table, as `channelsync web` makes it at start
    application.set_stock([StockRow("MUG", 10, title="Blue mug"), StockRow("LID", 3)],
                          reason="count")
    yield application
    application.close()


@pytest.fixture
def site(app: App) -> Iterator[Site]:
    with serve(app) as served:
        served.login()
        yield served


def add_listing(engine: Engine, channel: str, sku: str, **fields: int) -> None:
    with engine.begin() as conn:
        conn.execute(listing_t.insert().values(channel=channel, channel_sku=sku, sku=sku,
                                               **fields))


def order(app: App, channel: str, order_id: str, sku: str, qty: int, *,
          stage: str = "paid") -> None:
    now = app.now()
    line = OrderLineSnapshot(order_id, "1", sku, qty, "processing", now)
    with app.db.begin() as conn:
        ledger_apply.apply_page(conn, channel, [line], master_sku=lambda s: s, now=now)
        book.record(conn, channel, [OrderSnapshot(order_id, "processing", stage, now,
                                                  placed_at=now, buyer="Ann B.",
                                                  total="12.50", currency="EUR")],
                    [order_id], now=now)


# -- actions ------------------------------------------------------------------------------


def test_stock_set_and_adjust_are_ledger_movements_like_the_cli(app: App, site: Site) -> None:
    add_listing(app.db, "shop", "MUG", last_pushed=10)
    add_listing(app.db, "outlet", "MUG", last_pushed=9)
    answer = site.post("/stock/set", {"sku": "MUG", "quantity": "8", "reason": "recount"},
                       page="/stock/MUG")
    assert answer.status_code == 303 and answer.headers["location"] == "/stock/MUG"
    page = site.get("/stock/MUG").text
    assert text_of(page, "flash") == "MUG: on hand set to 8."
    assert text_of(page, "sku-on-hand") == "8"
    adjusted = site.post("/stock/adjust", {"sku": "MUG", "delta": "-3", "reason": "damaged"},
                         page="/stock/MUG")
    assert adjusted.status_code == 303
    with app.db.connect() as conn:
        rows = conn.execute(sa.select(mov_t.c.kind, mov_t.c.on_hand_delta, mov_t.c.reason,
                                      mov_t.c.source)
                            .where(mov_t.c.sku == "MUG").order_by(mov_t.c.id)).all()
        outbox = dict(conn.execute(sa.select(outbox_t.c.channel, outbox_t.c.target)).all())
    assert [tuple(r) for r in rows] == [
        ("set", 10, "count", "cli"), ("set", -2, "recount", "web:alice"),
        ("adjust", -3, "damaged", "web:alice")]
    assert outbox == {"shop": 5, "outlet": 4}  # planned, as after `stock adjust` (buffer 1)
    check_invariants(app.db)


@pytest.mark.parametrize(("path", "form", "message"), [
    ("/stock/adjust", {"sku": "MUG", "delta": "-1", "reason": "  "}, "give a reason"),
    ("/stock/adjust", {"sku": "MUG", "delta": "two", "reason": "x"}, "whole number"),
    ("/stock/adjust", {"sku": "MUG", "delta": "0", "reason": "x"}, "nothing to adjust"),
    ("/stock/adjust", {"sku": "MUG", "delta": "-11", "reason": "x"}, "would leave -1"),
    ("/stock/set", {"sku": "MUG", "quantity": "-1", "reason": "x"}, "cannot be negative"),
    ("/stock/set", {"sku": "MUG-2PACK", "quantity": "1", "reason": "x"}, "a kit holds no"),
])
def test_a_refused_change_says_why_and_changes_nothing(
    app: App, site: Site, path: str, form: dict[str, str], message: str
) -> None:
    answer = site.post(path, form, page="/stock/MUG")
    assert answer.status_code == 303
    flash = by_testid(site.get(answer.headers["location"]).text, "flash")
    assert message in flash[0]["text"] and "error" in flash[0]["class"]
    with app.db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(mov_t)).scalar() == 2


def test_ack_marks_a_conflict_seen_and_resolved_ones_are_listed(app: App, site: Site) -> None:
    with app.db.begin() as conn:
        first, second = open_conflicts(conn, [
            ConflictRecord("oversell", "MUG", "2 units sold, 1 on hand", sku="MUG"),
            ConflictRecord("drift", "shop:LID", "shows 9, pushed 3", sku="LID",
                           channel="shop")], app.now())
    page = site.get("/conflicts").text
    assert text_of(page, "open-count") == "(2)"
    assert by_testid(page, f"ack-form-{first}")
    answer = site.post(f"/conflicts/{first}/ack", {"next": "/conflicts"}, page="/conflicts")
    assert answer.status_code == 303 and answer.headers["location"] == "/conflicts"
    page = site.get("/conflicts").text
    assert text_of(page, "flash") == f"Conflict #{first} acknowledged."
    assert by_testid(page, f"conflict-{first}")[0]["data-acked"] == "yes"
    assert not by_testid(page, f"ack-form-{first}")
    with app.db.connect() as conn:
        acked = conn.execute(sa.select(conflict_t.c.acked_at).where(
            conflict_t.c.id == first)).scalar()
    assert acked == app.now()
    missing = site.post("/conflicts/999/ack", {}, page="/conflicts")
    assert "no conflict #999" in text_of(site.get(missing.headers["location"]).text, "flash")
    with app.db.begin() as conn:
        resolve_conflicts(conn, "drift", ["shop:LID"], app.now())
    page = site.get("/conflicts").text
    assert text_of(page, "open-count") == "(1)"
    assert by_testid(page, f"resolved-{second}")


# -- pages --------------------------------------------------------------------------------


def test_the_overview_shows_each_channel_the_totals_and_open_conflicts(
    app: App, site: Site, clock: Clock
) -> None:
    now = clock.now
    with app.db.begin() as conn:
        conn.execute(state_t.insert().values(
            name="shop", cursor=now - timedelta(minutes=5), pulled_at=now - timedelta(minutes=1),
            pushed_at=now - timedelta(seconds=30), last_error="the store said 503",
            last_error_at=now, stale_compares=2, stale_at=now,
            deferred=json.dumps({"orders": (now + timedelta(seconds=171)).isoformat()})))
        open_conflicts(conn, [ConflictRecord("drift", "shop:MUG", "shows 12", sku="MUG")], now)
    order(app, "shop", "1001", "MUG", 2)
    page = site.get("/").text
    assert text_of(page, "total-skus") == "2"
    assert text_of(page, "total-on-hand") == "13"
    assert text_of(page, "total-reserved") == "2"
    assert text_of(page, "open-conflicts-count") == "1"
    shop = " ".join(by_testid(page, "channel-shop")[0]["text"].split())
    for expected in ("1m00s ago", "30s ago", "5m00s", "the store said 503", "orders: next "
                     "call in 2m51s", "Stale compares 2"):
        assert expected in shop, expected
    assert "never" in by_testid(page, "channel-outlet")[0]["text"]
    assert "shows 12" in text_of(page, "overview-conflicts")
    live = site.get("/?fragment=live", headers={"X-Requested-With": "fetch"})
    assert live.status_code == 200 and "<html" not in live.text
    assert by_testid(live.text, "channel-shop")
    assert by_testid(page, "overview-live")[0]["data-src"] == "/?fragment=live"


def test_the_live_fragment_answers_401_when_logged_out(site: Site) -> None:
    site.post("/logout", {})
    answer = site.get("/?fragment=live", headers={"X-Requested-With": "fetch"})
    assert answer.status_code == 401


def test_the_stock_page_shows_each_channels_shown_and_target(app: App, site: Site) -> None:
    add_listing(app.db, "shop", "MUG", last_pushed=10, believed=9)
    add_listing(app.db, "outlet", "MUG", channel_quantity=9)
    page = site.get("/stock").text
    rows = {r["data-sku"]: r for r in by_testid(page, "stock-row")}
    assert set(rows) == {"LID", "MUG"}
    assert (rows["MUG"]["data-on-hand"], rows["MUG"]["data-available"]) == ("10", "10")
    cells = " ".join(rows["MUG"]["text"].split())
    assert "9 / 10" in cells and "9 / 9" in cells  # the outlet holds one back (buffer 1)
    assert "not listed" in " ".join(rows["LID"]["text"].split())
    assert by_testid(page, "kits")


def seed_catalog(engine: Engine, size: int) -> list[dict[str, object]]:
    """SKUs with on hand, reserved and titles that make sorting and searching tell."""
    rows = [{"sku": f"SKU-{i:04d}", "title": f"Item {i % 7} {'Mug' if i % 5 == 0 else 'Lid'}",
             "on_hand": (i * 37) % 50, "reserved": (i * 11) % 7, "safety_stock": i % 3}
            for i in range(size)]
    rows.append({"sku": "odd_100%", "title": "", "on_hand": 1, "reserved": 0,
                 "safety_stock": 0})
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO sku (sku, title, barcodes, on_hand, reserved, "
                             "safety_stock) VALUES (:sku, :title, '', :on_hand, :reserved, "
                             ":safety_stock)"), rows)
    return rows


def test_stock_search_sort_and_paging(ledger_url: str) -> None:
    app = App(make_config(ledger_url))
    try:
        rows = seed_catalog(app.db, 130)
        with app.db.connect() as conn:
            def page(**query: object) -> _queries.StockPage:
                return _queries.stock_page(conn, app.config, _queries.StockQuery(**query))

            first = page(per_page=50)
            assert (first.total, first.pages) == (131, 3)
            seen = [r["sku"] for n in (1, 2, 3) for r in page(per_page=50, page=n).rows]
            assert seen == sorted(str(r["sku"]) for r in rows)
            assert page(per_page=50, page=99).query.page == 3  # past the end: the last
            for sort in ("on_hand", "reserved", "available"):
                for descending in (False, True):
                    got = [r["sku"] for n in range(1, 8) for r in page(
                        sort=sort, descending=descending, per_page=20, page=n).rows]
                    value = {str(r["sku"]): _value(r, sort) for r in rows}
                    # Ties in SKU order both ways; the pages past the middle are read from
                    # the other end, and must come out the same.
                    assert got == sorted(value, key=lambda s, d=descending, v=value: (
                        -v[s] if d else v[s], s)), (sort, descending)
            mugs = page(search="mUg", per_page=200)
            assert mugs.total == 26 and all("Mug" in r["title"] for r in mugs.rows)
            assert [r["sku"] for r in page(search="0012").rows] == ["SKU-0012"]
            assert [r["sku"] for r in page(search="100%").rows] == ["odd_100%"]  # literal %
            assert [r["sku"] for r in page(search="U_0").rows] == []  # literal _
            assert page(search="nothing like it").total == 0
    finally:
        app.close()


def _value(row: dict[str, object], sort: str) -> int:
    on_hand, reserved, safety = (int(str(row[k])) for k in ("on_hand", "reserved",
                                                            "safety_stock"))
    return {"on_hand": on_hand, "reserved": reserved,
            "available": on_hand - reserved - safety}[sort]


def test_the_stock_page_pages_and_links_keep_the_query(app: App, site: Site) -> None:
    seed_catalog(app.db, 120)
    page = site.get("/stock?q=sku-&sort=on_hand&dir=desc&per=50&page=2").text
    count = by_testid(page, "stock-count")[0]
    assert (count["data-total"], count["data-page"], count["data-pages"]) == ("120", "2", "3")
    on_hand = [int(r["data-on-hand"]) for r in by_testid(page, "stock-row")]
    assert on_hand == sorted(on_hand, reverse=True) and len(on_hand) == 50
    nxt = by_testid(page, "page-next")[0]["href"]
    assert "page=3" in nxt and "sort=on_hand" in nxt and "dir=desc" in nxt and "q=sku-" in nxt
    assert len(by_testid(site.get(nxt).text, "stock-row")) == 20
    assert by_testid(site.get("/stock?q=%3Cscript%3E").text, "stock-empty")
    assert "<script>" not in site.get("/stock?q=%3Cscript%3E").text.split("</head>")[1]


def test_the_sku_page_draws_the_levels_from_the_movements(
    app: App, site: Site, clock: Clock
) -> None:
    start = clock.now  # the count of 10 was made now (the app fixture)
    clock.advance(hours=1)
    app.adjust_stock("MUG", -3, "damaged")
    clock.advance(hours=1)
    order(app, "shop", "1001", "MUG", 2)
    clock.advance(hours=1)
    page = site.get("/stock/MUG?days=1").text
    levels = [(lvl["data-on-hand"], lvl["data-reserved"], lvl["data-available"])
              for lvl in by_testid(page, "chart-level")]
    # The SKU is younger than the day asked for: drawn from its first count.
    assert levels == [("10", "0", "10"), ("7", "0", "7"), ("7", "2", "5")]
    lines = {e["data-series"]: e["points"] for e in by_testid(page, "chart-on_hand")
             + by_testid(page, "chart-reserved") + by_testid(page, "chart-available")}
    on_hand = [tuple(map(float, p.split(","))) for p in lines["on_hand"].split()]
    # A step line: 10 from the count, down to 7 an hour later, flat to now (3 h).
    ten, seven = on_hand[0][1], on_hand[2][1]
    assert [y for _, y in on_hand] == [ten, ten, seven, seven, seven, seven]
    assert seven > ten  # SVG's y grows downwards
    left, right = _chart.PAD_LEFT, _chart.WIDTH - _chart.PAD_RIGHT
    assert (on_hand[0][0], on_hand[-1][0]) == (left, right)
    assert on_hand[1][0] == on_hand[2][0] == round(left + (right - left) / 3, 1)
    assert text_of(page, "sku-available") == "5"
    assert by_testid(page, "sku-channel") == []  # not listed anywhere
    assert len(by_testid(page, "movement-row")) == 3
    app.adjust_stock("MUG", 1, "found")  # a level from before the period: drawn from its start
    clock.advance(days=3)
    levels = by_testid(site.get("/stock/MUG?days=1").text, "chart-level")
    assert [lvl["data-on-hand"] for lvl in levels] == ["8"]
    assert start < clock.now


def test_the_chart_geometry() -> None:
    t0 = Clock().now
    levels = _chart.levels(10, 0, 0, [{"created_at": t0 + timedelta(hours=1), "kind": "set",
                                       "on_hand_delta": 10, "reserved_delta": 0,
                                       "reason": "count", "source": "cli"}], t0)
    assert [(lvl.on_hand, lvl.available) for lvl in levels] == [(0, 0), (10, 10)]
    drawn = _chart.chart(levels, t0 + timedelta(hours=2))
    # x: 44 + 664 * share of the span; y: 12 + 200 * (10 - value) / 10.
    assert drawn.lines["on_hand"] == "44,212 376,212 376,12 708,12"
    assert [value for _, value in drawn.y_ticks] == [0, 5, 10]
    negative = _chart.chart(_chart.levels(1, 3, 0, [], t0), t0 + timedelta(hours=1))
    assert negative.levels[0].available == -2
    assert min(value for _, value in negative.y_ticks) < 0


def test_a_kit_page_explains_it_without_stock_forms(site: Site) -> None:
    page = site.get("/stock/MUG-2PACK").text
    assert "MUG" in text_of(page, "kit")
    assert text_of(page, "sku-available") == "5"
    assert not by_testid(page, "set-form") and not by_testid(page, "sku-chart")


def test_unknown_sku_and_order_are_404(site: Site) -> None:
    assert site.get("/stock/NOPE").status_code == 404
    assert site.get("/orders/shop/NOPE").status_code == 404


def test_a_sku_with_a_slash_or_accents_has_its_page(app: App, site: Site) -> None:
    app.set_stock([StockRow("BOX/12 é", 4)], reason="count")
    row = [r for r in by_testid(site.get("/stock").text, "stock-row")
           if r["data-sku"] == "BOX/12 é"]
    link = [e["href"] for e in by_testid(site.get("/stock?q=BOX").text, "sku-link")][0]
    assert row and text_of(site.get(link).text, "sku-title") == "BOX/12 é"
    answer = site.post("/stock/adjust", {"sku": "BOX/12 é", "delta": "1", "reason": "found"},
                       page=link)
    assert text_of(site.get(answer.headers["location"]).text, "sku-on-hand") == "5"


def test_the_order_book_and_an_order(app: App, site: Site) -> None:
    order(app, "shop", "1001", "MUG", 2)
    order(app, "outlet", "A-7", "LID", 1, stage="shipped")
    page = site.get("/orders").text
    assert {(r["data-channel"], r["data-order-id"]) for r in by_testid(page, "order-row")} == \
        {("shop", "1001"), ("outlet", "A-7")}
    only_shop = by_testid(site.get("/orders?channel=shop").text, "order-row")
    assert [r["data-order-id"] for r in only_shop] == ["1001"]
    open_orders = by_testid(site.get("/orders?stage=open").text, "order-row")
    assert [r["data-order-id"] for r in open_orders] == ["1001"]
    assert by_testid(site.get("/orders?stage=cancelled").text, "orders-empty")
    one = site.get("/orders/shop/1001").text
    assert text_of(one, "order-title") == "shop order 1001"
    assert text_of(one, "order-stage") == "paid"
    assert [line["data-sku"] for line in by_testid(one, "order-line")] == ["MUG"]
    assert "reserve" in text_of(one, "order-movements")


def test_revision_budgets_for_a_channel_that_caps_them(tmp_path: Path, clock: Clock) -> None:
    config = make_config(f"sqlite:///{tmp_path}/l.db", extra="""
[[channel]]
name = "ebay"
type = "ebay"
token = "t"
app_id = "a"
dev_id = "d"
cert_id = "c"
""")
    app = App(config, clock=clock)
    try:
        day = _queries._budget("ebay")
        assert day is not None and day.limit == 250
        today = day.day(clock.now)
        for sku, used in (("A", 10), ("B", 230)):
            add_listing(app.db, "ebay", sku)
            with app.db.begin() as conn:
                conn.execute(listing_t.update().where(listing_t.c.channel_sku == sku)
                             .values(revisions_day=today, revisions=used))
        with app.db.connect() as conn:
            budgets = _queries.revision_budgets(conn, app.config, clock.now)
        assert budgets == {"ebay": {"limit": 250, "busiest": 230, "left": 20, "warned": 1}}
    finally:
        app.close()


def test_orders_show_the_buyers_tier_and_an_order_its_delivery(app: App, site: Site) -> None:
    from datetime import timedelta

    from pydantic import SecretStr

    from channelsync.config import LoyaltyConfig, TierConfig
    from channelsync.customers import loyalty

    tiers = LoyaltyConfig(salt=SecretStr("salt"), tiers=[TierConfig(name="gold", min_orders=2)])
    now = app.now()
    for order_id in ("1001", "1002"):
        order(app, "shop", order_id, "MUG", 1)
        with app.db.begin() as conn:
            loyalty.recognise(conn, "shop", [OrderSnapshot(
                order_id, "processing", "paid", now, placed_at=now, buyer="Ann B.",
                buyer_email="ann@example.com")], tiers, now)
    order(app, "shop", "1003", "MUG", 1, stage="shipped")
    with app.db.begin() as conn:
        assert book.assume_delivered(conn, "shop", 3, now=now + timedelta(days=4)) == 1
    rows = {r["data-order-id"]: r for r in by_testid(site.get("/orders").text, "order-row")}
    page = site.get("/orders").text
    shown = {r["data-order-id"]: " ".join(r["text"].split()) for r in by_testid(
        page, "order-row")}
    assert shown["1002"].endswith("Ann B. gold, new 12.50 EUR")
    assert shown["1001"].endswith("Ann B. gold 12.50 EUR")
    assert "gold" not in shown["1003"]
    assert rows["1003"]["data-stage"] == "delivered"
    assert text_of(site.get("/orders/shop/1002").text, "order-tier") == \
        "reached gold with this order"
    assert text_of(site.get("/orders/shop/1003").text, "order-delivered").endswith("(assumed)")
