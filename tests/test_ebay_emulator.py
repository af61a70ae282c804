"""The eBay emulator, driven over loopback with the real ebaysdk Trading connection."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import requests
from ebaysdk.exception import ConnectionError as EbayConnectionError  # type: ignore[import-untyped]
from ebaysdk.trading import Connection  # type: ignore[import-untyped]

from connectors.ebay.connector import parse_order
from connectors.ebay.emulator import EbayEmulator

TOKEN = "v^1.1#i^1#emulator-token"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 26, 4, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


Api = Callable[..., Any]


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _start(clock: Clock, **kwargs: Any) -> Iterator[EbayEmulator]:
    emu = EbayEmulator(token=TOKEN, clock=clock, **kwargs)
    emu.start(port=0)
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def emulator(clock: Clock) -> Iterator[EbayEmulator]:
    yield from _start(clock)


@pytest.fixture
def control(emulator: EbayEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, timeout=5) as client:
        yield client


def connect(emu: EbayEmulator, token: str | None = TOKEN, **kwargs: Any) -> Any:
    options: dict[str, Any] = {"token": token} if token is not None else {}
    # compatibility must be a string: requests refuses an int header value
    api = Connection(domain=f"127.0.0.1:{emu.port}", config_file=None, appid="app-id",
                     devid="dev-id", certid="cert-id", siteid="0", compatibility="1349",
                     escape_xml=True, warnings=False, timeout=5, **options, **kwargs)
    api.config.set("https", False, force=True)
    return api


@pytest.fixture
def api(emulator: EbayEmulator) -> Any:
    return connect(emulator)


def listing(control: httpx.Client, sku: str, quantity: int, **extra: Any) -> None:
    response = control.post("/_sandbox/listings", json={"sku": sku, "quantity": quantity, **extra})
    assert response.status_code == 200, response.text


def rows(control: httpx.Client) -> dict[str, dict[str, Any]]:
    return {row["sku"]: row for row in control.get("/_sandbox/listings").json()["listings"]}


def order(control: httpx.Client, **lines: int) -> str:
    body = {"lines": [{"sku": sku, "quantity": n} for sku, n in lines.items()]}
    response = control.post("/_sandbox/orders", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["order_id"])


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def get_orders(api: Any, start: datetime, end: datetime, per_page: int = 100,
               page: int = 1) -> Any:
    return api.execute("GetOrders", {
        "ModTimeFrom": iso(start), "ModTimeTo": iso(end), "OrderRole": "Seller",
        "Pagination": {"EntriesPerPage": per_page, "PageNumber": page},
    }, list_nodes=["OrderArray.Order", "OrderArray.Order.TransactionArray.Transaction"])


def revise(api: Any, *items: tuple[str, str | None, int]) -> Any:
    statuses = [{"ItemID": item_id, "Quantity": quantity, **({"SKU": sku} if sku else {})}
                for item_id, sku, quantity in items]
    return api.execute("ReviseInventoryStatus", {"InventoryStatus": statuses},
                       list_nodes=["InventoryStatus"])


def error_codes(response: Any) -> list[str]:
    return [e.findtext("ErrorCode") for e in response.dom().findall("Errors")]


def failure_codes(exc: pytest.ExceptionInfo[Any]) -> list[str]:
    return [e.findtext("ErrorCode") for e in exc.value.response.dom().findall("Errors")]


# -- GetOrders ---------------------------------------------------------------------------------


def test_orders_show_at_once_with_ebay_fields(
    api: Any, control: httpx.Client, clock: Clock
) -> None:
    listing(control, "MUG", 5)
    listing(control, "TEE-M", 3, parent_sku="TEE")
    order_id = order(control, MUG=2, **{"TEE-M": 1})
    clock.advance(minutes=1)
    reply = get_orders(api, clock.now - timedelta(hours=1), clock.now).reply
    assert reply.Ack == "Success" and reply.HasMoreOrders == "false"
    [shown] = reply.OrderArray.Order
    assert shown.OrderID == order_id and shown.OrderStatus == "Active"
    assert shown.CheckoutStatus.Status == "Complete" and shown.CancelStatus == "NotApplicable"
    assert isinstance(shown.PaidTime, datetime) and shown.get("ShippedTime") is None
    lines = {t.Item.SKU: t for t in shown.TransactionArray.Transaction}
    assert lines["MUG"].QuantityPurchased == "2" and lines["MUG"].get("Variation") is None
    assert lines["TEE"].Variation.SKU == "TEE-M"
    assert lines["MUG"].OrderLineItemID.startswith(lines["MUG"].Item.ItemID + "-")
    before = get_orders(api, clock.now - timedelta(hours=3), clock.now - timedelta(hours=2))
    assert before.reply.OrderArray is None  # an empty <OrderArray/>
    assert before.reply.PaginationResult.TotalNumberOfEntries == "0"


def test_orders_page_and_cancel_and_ship_change_state(
    api: Any, control: httpx.Client, clock: Clock
) -> None:
    listing(control, "MUG", 10)
    ids = []
    for _ in range(5):
        ids.append(order(control, MUG=1))
        clock.advance(seconds=10)
    seen, page = [], 1
    while True:
        reply = get_orders(api, clock.now - timedelta(days=1), clock.now, per_page=2,
                           page=page).reply
        assert reply.PaginationResult.TotalNumberOfPages == "3"
        seen += [o.OrderID for o in reply.OrderArray.Order]
        assert all(len(o.TransactionArray.Transaction) == 1 for o in reply.OrderArray.Order)
        if reply.HasMoreOrders != "true":
            break
        page += 1
    assert seen == ids and page == 3
    assert control.post(f"/_sandbox/orders/{ids[0]}/cancel").status_code == 200
    assert control.post(f"/_sandbox/orders/{ids[1]}/ship").status_code == 200
    assert control.post(f"/_sandbox/orders/{ids[0]}/ship").status_code == 409
    clock.advance(seconds=1)
    reply = get_orders(api, clock.now - timedelta(seconds=5), clock.now).reply
    by_id = {o.OrderID: o for o in reply.OrderArray.Order}
    assert set(by_id) == {ids[0], ids[1]}
    assert (by_id[ids[0]].OrderStatus, by_id[ids[0]].CancelStatus) == (
        "Cancelled", "CancelComplete")
    assert by_id[ids[1]].OrderStatus == "Completed"
    assert isinstance(by_id[ids[1]].ShippedTime, datetime)
    assert rows(control)["MUG"]["quantity"] == 6  # 10 - 5 sold + 1 cancelled


def test_order_windows_are_limited(api: Any, clock: Clock) -> None:
    with pytest.raises(EbayConnectionError) as wide:
        get_orders(api, clock.now - timedelta(days=31), clock.now)
    assert failure_codes(wide) == ["37"] and "30 days" in str(wide.value)
    with pytest.raises(EbayConnectionError) as old:
        get_orders(api, clock.now - timedelta(days=91), clock.now - timedelta(days=80))
    assert "90 days" in str(old.value)
    ok = get_orders(api, clock.now - timedelta(days=30), clock.now)
    assert ok.reply.Ack == "Success"
    with pytest.raises(EbayConnectionError) as not_iso:  # ebaysdk writes str(datetime)
        api.execute("GetOrders", {"ModTimeFrom": clock.now - timedelta(hours=1),
                                  "ModTimeTo": clock.now, "OrderRole": "Seller"})
    assert failure_codes(not_iso) == ["37"] and "ModTimeFrom" in str(not_iso.value)


# -- ReviseInventoryStatus ---------------------------------------------------------------------


def item_ids(control: httpx.Client) -> dict[str, str]:
    return {sku: row["item_id"] for sku, row in rows(control).items()}


def test_four_items_land_and_five_are_refused(
    api: Any, control: httpx.Client, emulator: EbayEmulator
) -> None:
    for n in range(5):
        listing(control, f"SKU{n}", 1)
    ids = item_ids(control)
    assert all(i.startswith("1100000000") for i in ids.values())
    reply = revise(api, *[(ids[f"SKU{n}"], None, 7) for n in range(4)]).reply
    assert reply.Ack == "Success"
    assert [(s.ItemID, s.Quantity) for s in reply.InventoryStatus] == [
        (ids[f"SKU{n}"], "7") for n in range(4)]
    with pytest.raises(EbayConnectionError) as five:
        revise(api, *[(ids[f"SKU{n}"], None, 3) for n in range(5)])
    assert failure_codes(five) == ["21919189"]
    assert [rows(control)[f"SKU{n}"]["quantity"] for n in range(5)] == [7, 7, 7, 7, 1]
    assert emulator.stats()["items_updated"] == 4
    assert emulator.stats()["requests"]["ReviseInventoryStatus"] == 2


def test_partial_failure_lands_the_good_items(api: Any, control: httpx.Client) -> None:
    listing(control, "A", 1)
    listing(control, "B", 1)
    listing(control, "TEE-S", 1, parent_sku="TEE")
    ids = item_ids(control)
    response = revise(api, (ids["A"], None, 4), ("110000009999", None, 2),
                      (ids["B"], None, 5), (ids["TEE-S"], "TEE-S", 6))
    assert response.reply.Ack == "PartialFailure"  # ebaysdk does not raise
    assert error_codes(response) == ["17"]
    param = response.dom().find("Errors/ErrorParameters/Value")
    assert param is not None and param.text == "110000009999"
    assert [s.ItemID for s in response.reply.InventoryStatus] == [ids["A"], ids["B"], ids["TEE-S"]]
    assert {k: r["quantity"] for k, r in rows(control).items()} == {"A": 4, "B": 5, "TEE-S": 6}
    with pytest.raises(EbayConnectionError) as wrong_sku:  # every item failed: Failure
        revise(api, (ids["TEE-S"], "TEE-XL", 1))
    assert failure_codes(wrong_sku) == ["21916799"]


def test_quantity_is_available_after_sales(api: Any, control: httpx.Client) -> None:
    listing(control, "MUG", 5)
    order(control, MUG=2)
    item_id = item_ids(control)["MUG"]
    revise(api, (item_id, None, 10))
    item = api.execute("GetItem", {"ItemID": item_id}).reply.Item
    assert (item.Quantity, item.SellingStatus.QuantitySold, item.QuantityAvailable) == (
        "12", "2", "10")
    assert rows(control)["MUG"]["quantity"] == 10


def test_daily_revision_cap_per_listing(clock: Clock) -> None:
    clock.now = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)  # 23:00 on the 25th in California
    for emu in _start(clock, revision_limit=3):
        with httpx.Client(base_url=emu.url) as control:
            listing(control, "A", 1)
            listing(control, "B", 1)
            ids = item_ids(control)
            api = connect(emu)
            for n in range(3):
                assert revise(api, (ids["A"], None, n)).reply.Ack == "Success"
            capped = revise(api, (ids["A"], None, 9), (ids["B"], None, 9))
            assert capped.reply.Ack == "PartialFailure"
            assert error_codes(capped) == ["21919144"]
            assert rows(control)["A"]["quantity"] == 2
            clock.advance(minutes=59)  # still the same eBay day although UTC is past 07:00
            with pytest.raises(EbayConnectionError):
                revise(api, (ids["A"], None, 9))
            clock.advance(minutes=2)  # midnight Pacific time: a new budget
            assert revise(api, (ids["A"], None, 9)).reply.Ack == "Success"


def test_default_cap_is_250() -> None:
    assert EbayEmulator().revision_limit == 250


def test_zero_ends_a_listing_without_out_of_stock_control(clock: Clock) -> None:
    for emu in _start(clock, out_of_stock_control=False):
        with httpx.Client(base_url=emu.url) as control:
            listing(control, "MUG", 3)
            listing(control, "CUP", 3)
            ids = item_ids(control)
            api = connect(emu)
            prefs = api.execute("GetUserPreferences", {"ShowOutOfStockControlPreference": "true"})
            assert prefs.reply.OutOfStockControlPreference == "false"
            assert revise(api, (ids["MUG"], None, 0)).reply.Ack == "Success"
            assert rows(control)["MUG"]["status"] == "Ended"
            item = api.execute("GetItem", {"ItemID": ids["MUG"]}).reply.Item
            assert item.SellingStatus.ListingStatus == "Ended"
            with pytest.raises(EbayConnectionError) as ended:
                revise(api, (ids["MUG"], None, 2))
            assert failure_codes(ended) == ["291"] and "ended" in str(ended.value)
            active = api.execute("GetMyeBaySelling", {"ActiveList": {"Include": "true"}})
            assert [i.SKU for i in active.reply.ActiveList.ItemArray.Item] == ["CUP"]
            assert control.post("/_sandbox/orders", json={
                "lines": [{"sku": "MUG", "quantity": 1}]}).status_code == 409


def test_zero_keeps_a_listing_with_out_of_stock_control(
    api: Any, control: httpx.Client
) -> None:
    prefs = api.execute("GetUserPreferences", {"ShowOutOfStockControlPreference": "true"})
    assert prefs.reply.OutOfStockControlPreference == "true"
    with pytest.raises(EbayConnectionError) as python_bool:  # ebaysdk writes True as "True"
        api.execute("GetUserPreferences", {"ShowOutOfStockControlPreference": True})
    assert failure_codes(python_bool) == ["37"]
    listing(control, "MUG", 3)
    item_id = item_ids(control)["MUG"]
    revise(api, (item_id, None, 0))
    assert rows(control)["MUG"]["status"] == "Active"
    assert revise(api, (item_id, None, 4)).reply.Ack == "Success"
    assert rows(control)["MUG"]["quantity"] == 4


# -- discovery -----------------------------------------------------------------------------


def test_my_ebay_selling_lists_skus_item_ids_and_variations(
    api: Any, control: httpx.Client
) -> None:
    listing(control, "MUG", 5)
    listing(control, "TEE-S", 2, parent_sku="TEE")
    listing(control, "TEE-M", 4, parent_sku="TEE")
    listing(control, "A&B", 1)  # escaped by ebaysdk with escape_xml=True
    order(control, **{"TEE-M": 1})
    found: dict[str, Any] = {}
    for page in (1, 2):
        reply = api.execute("GetMyeBaySelling", {"ActiveList": {
            "Include": "true", "Pagination": {"EntriesPerPage": 2, "PageNumber": page}}},
            list_nodes=["ActiveList.ItemArray.Item",
                        "ActiveList.ItemArray.Item.Variations.Variation"]).reply
        assert reply.ActiveList.PaginationResult.TotalNumberOfPages == "2"
        found |= {item.SKU: item for item in reply.ActiveList.ItemArray.Item}
    assert set(found) == {"MUG", "TEE", "A&B"}
    assert found["MUG"].ItemID == item_ids(control)["MUG"]
    assert found["MUG"].QuantityAvailable == "5"
    variations = {v.SKU: (v.Quantity, v.SellingStatus.QuantitySold)
                  for v in found["TEE"].Variations.Variation}
    assert variations == {"TEE-S": ("2", "0"), "TEE-M": ("4", "1")}
    with pytest.raises(EbayConnectionError) as missing:
        api.execute("GetItem", {"ItemID": "110000009999"})
    assert failure_codes(missing) == ["17"]
    assert revise(api, (found["A&B"].ItemID, "A&B", 3)).reply.Ack == "Success"


# -- tokens, faults --------------------------------------------------------------------------


def test_tokens(emulator: EbayEmulator, control: httpx.Client) -> None:
    for bad in ("wrong", None):
        with pytest.raises(EbayConnectionError) as refused:
            connect(emulator, token=bad).execute("GeteBayOfficialTime", {})
        assert failure_codes(refused) == ["931"]
        assert "Auth token is invalid" in str(refused.value)
    oauth = connect(emulator, token=None, iaf_token=TOKEN)
    assert oauth.execute("GeteBayOfficialTime", {}).reply.Ack == "Success"
    assert connect(emulator).execute("GeteBayOfficialTime", {}).reply.Ack == "Success"
    with pytest.raises(EbayConnectionError) as unknown:
        connect(emulator).execute("AddItem", {})
    assert failure_codes(unknown) == ["2"]


def test_for_settings_accepts_the_configured_token() -> None:
    class Secret:
        def get_secret_value(self) -> str:
            return "oauth-user-token"

    class Settings:
        token = None
        oauth_token = Secret()

    assert EbayEmulator.for_settings(Settings()).token == "oauth-user-token"


def test_throttle_is_error_518(api: Any, control: httpx.Client) -> None:
    assert control.post("/_sandbox/faults", json={"throttle_rate": 1.0}).status_code == 200
    with pytest.raises(EbayConnectionError) as throttled:
        api.execute("GeteBayOfficialTime", {})
    assert failure_codes(throttled) == ["518"]
    assert throttled.value.response.status_code == 200
    assert control.get("/_sandbox/stats").json()["throttled"] == 1


def test_html_503_makes_ebaysdk_raise_attribute_error(
    api: Any, control: httpx.Client
) -> None:
    control.post("/_sandbox/faults", json={"error_rate": 1.0, "seed": 1})
    kinds = set()
    for _ in range(12):
        try:
            api.execute("GeteBayOfficialTime", {})
        except AttributeError:
            kinds.add("html")
        except EbayConnectionError as exc:
            assert exc.response.status_code == 500
            kinds.add("xml")
    assert kinds == {"html", "xml"}
    assert control.get("/_sandbox/stats").json()["errors"] == 12


# -- control API -------------------------------------------------------------------------------


def test_sandbox_contract(control: httpx.Client, api: Any) -> None:
    listing(control, "MUG", 5)
    listing(control, "TEE-S", 2, parent_sku="TEE")
    assert control.post("/_sandbox/listings", json={
        "sku": "MUG", "quantity": 1, "parent_sku": "TEE"}).status_code == 409
    assert control.post("/_sandbox/listings", json={
        "sku": "CUP", "quantity": 1, "parent": "TEE"}).status_code == 400
    order_id = order(control, MUG=2)
    assert rows(control)["MUG"]["quantity"] == 3
    short = control.post("/_sandbox/orders", json={"lines": [{"sku": "TEE-S", "quantity": 3}]})
    assert short.status_code == 409
    assert control.post("/_sandbox/orders", json={
        "lines": [{"sku": "NOPE", "quantity": 1}]}).status_code == 404
    cancelled = control.post(f"/_sandbox/orders/{order_id}/cancel")
    assert cancelled.json()["status"] == "Cancelled"
    assert rows(control)["MUG"]["quantity"] == 5
    control.post(f"/_sandbox/orders/{order_id}/cancel")  # twice restores once
    assert rows(control)["MUG"]["quantity"] == 5
    listing(control, "MUG", 8)  # a manual edit on eBay
    assert rows(control)["MUG"]["quantity"] == 8
    api.execute("GetItem", {"ItemID": rows(control)["MUG"]["item_id"]})
    stats = control.get("/_sandbox/stats").json()
    assert stats["requests"] == {"GetItem": 1}
    assert control.post("/_sandbox/reset").status_code == 200
    assert rows(control) == {}
    assert control.get("/_sandbox/stats").json()["requests"] == {}


def test_seller_list_finds_listings_by_end_time_including_ended_ones(
    clock: Clock,
) -> None:
    for emu in _start(clock, out_of_stock_control=False):
        with httpx.Client(base_url=emu.url) as control:
            listing(control, "MUG", 3)
            listing(control, "TEE-S", 2, parent_sku="TEE")
            listing(control, "CUP", 1)
            ids = item_ids(control)
            api = connect(emu)
            clock.advance(days=40)  # past the first 30-day renewal
            revise(api, (ids["CUP"], None, 0))
            query = {"EndTimeFrom": iso(clock.now - timedelta(days=1)),
                     "EndTimeTo": iso(clock.now + timedelta(days=119)),
                     "GranularityLevel": "Fine", "Pagination": {"EntriesPerPage": 2}}
            reply = api.execute("GetSellerList", query, list_nodes=[
                "ItemArray.Item", "ItemArray.Item.Variations.Variation"]).reply
            assert reply.HasMoreItems == "true"
            assert reply.PaginationResult.TotalNumberOfEntries == "3"
            items = {i.SKU: i for i in reply.ItemArray.Item}
            assert set(items) == {"MUG", "TEE"}
            assert items["MUG"].ListingDetails.EndTime == (
                clock.now.replace(tzinfo=None) + timedelta(days=20))
            assert [v.SKU for v in items["TEE"].Variations.Variation] == ["TEE-S"]
            page2 = api.execute("GetSellerList", {**query, "Pagination": {
                "EntriesPerPage": 2, "PageNumber": 2}}, list_nodes=["ItemArray.Item"]).reply
            [cup] = page2.ItemArray.Item
            assert (cup.SKU, cup.SellingStatus.ListingStatus) == ("CUP", "Ended")
            with pytest.raises(EbayConnectionError) as too_wide:
                api.execute("GetSellerList", {**query, "EndTimeTo": iso(
                    clock.now + timedelta(days=121))})
            assert failure_codes(too_wide) == ["37"]
            stats = control.get("/_sandbox/stats").json()["requests"]
            assert stats == {"ReviseInventoryStatus": 1, "GetSellerList": 3}


# -- what a simulation needs: the orders as held, faulty pages, lost answers -------------------


def _units(row: dict[str, Any]) -> dict[str, tuple[int, int, int, int]]:
    return {x["sku"]: (x["quantity"], x["shipped"], x["cancelled"], x["restocked"])
            for x in row["lines"]}


def _orders(api: Any, clock: Clock) -> list[dict[str, Any]]:
    body = get_orders(api, clock.now - timedelta(days=1), clock.now).dict()
    found: list[dict[str, Any]] = (body.get("OrderArray") or {}).get("Order", [])
    return found


def test_sandbox_orders_hold_each_lines_units_as_the_connector_reads_them(
    api: Any, control: httpx.Client, clock: Clock
) -> None:
    listing(control, "MUG", 20)
    listing(control, "TEE-M", 5, parent_sku="TEE")
    placed = order(control, MUG=2)
    cancelled = order(control, MUG=1, **{"TEE-M": 2})
    control.post(f"/_sandbox/orders/{cancelled}/cancel")
    shipped = order(control, MUG=3, **{"TEE-M": 1})
    control.post(f"/_sandbox/orders/{shipped}/ship")
    held = {r["order_id"]: r for r in control.get("/_sandbox/orders").json()["orders"]}
    assert {k: (r["status"], _units(r)) for k, r in held.items()} == {
        placed: ("Active", {"MUG": (2, 0, 0, 0)}),
        cancelled: ("Cancelled", {"MUG": (1, 0, 1, 0), "TEE-M": (2, 0, 2, 0)}),
        shipped: ("Completed", {"MUG": (3, 3, 0, 0), "TEE-M": (1, 1, 0, 0)}),
    }
    assert held[placed]["shipments"] == []
    # a default buyer: an eBay user ID, no email or name (the sandbox named none)
    assert held[placed]["buyer"]["email"] is None and held[placed]["buyer"]["name"] is None
    assert re.fullmatch(r"[a-z]+\.[a-z]+[0-9]+", held[placed]["buyer"]["id"])
    assert {s: r["quantity"] for s, r in rows(control).items()} == {
        "MUG": 20 - 2 - 3, "TEE-M": 5 - 1}  # what the rows imply
    # What the connector reads from GetOrders is what the rows say, line by line.
    clock.advance(seconds=1)
    read = {}
    for raw in _orders(api, clock):
        lines, bad = parse_order(raw)
        assert bad == []
        read.update({(x.order_id, x.channel_sku): (x.ordered, x.shipped, x.cancelled,
                                                    x.restocked) for x in lines})
    assert read == {(k, sku): units for k, r in held.items() for sku, units in _units(r).items()}
    assert control.get(f"/_sandbox/orders/{cancelled}").json() == held[cancelled]
    missing = control.get("/_sandbox/orders/99-99999-99999")
    assert missing.status_code == 404 and "99-99999-99999" in missing.json()["error"]


def test_faulty_order_pages_duplicate_shuffle_and_go_stale(
    api: Any, control: httpx.Client, clock: Clock
) -> None:
    listing(control, "MUG", 20)
    ids = [order(control, MUG=1) for _ in range(6)]
    clock.advance(seconds=5)
    control.post(f"/_sandbox/orders/{ids[0]}/cancel")
    control.post(f"/_sandbox/orders/{ids[1]}/ship")
    clock.advance(seconds=1)
    plain = _orders(api, clock)
    order_ids = [o["OrderID"] for o in plain]
    assert order_ids == [*ids[2:], *ids[:2]]  # by modification time
    control.post("/_sandbox/faults", json={"duplicate_rate": 1.0})
    twice = get_orders(api, clock.now - timedelta(days=1), clock.now).reply
    assert [o.OrderID for o in twice.OrderArray.Order] == [i for i in order_ids for _ in (1, 2)]
    assert twice.PaginationResult.TotalNumberOfEntries == "6"  # the figures stay true
    control.post("/_sandbox/faults", json={"stale_rate": 1.0})
    stale = {o["OrderID"]: o for o in _orders(api, clock)}
    now = {o["OrderID"]: o for o in plain}
    assert [(stale[i]["OrderStatus"], stale[i]["CancelStatus"]) for i in ids[:2]] == [
        ("Active", "NotApplicable")] * 2
    assert "ShippedTime" not in stale[ids[1]] and "ShippedTime" in now[ids[1]]
    assert all(stale[i]["LastModifiedTime"] < now[i]["LastModifiedTime"] for i in ids[:2])
    assert all(stale[i] == now[i] for i in ids[2:])  # never changed since placed
    control.post("/_sandbox/faults", json={"reorder_rate": 1.0, "seed": 4})
    shuffled = [o["OrderID"] for o in _orders(api, clock)]
    assert shuffled != order_ids and sorted(shuffled) == sorted(order_ids)
    control.post("/_sandbox/faults", json={"reorder_rate": 1.0, "seed": 4})
    assert [o["OrderID"] for o in _orders(api, clock)] == shuffled  # a seed replays it
    control.post("/_sandbox/faults", json={})
    assert _orders(api, clock) == plain


def test_a_lost_answer_is_a_revision_applied_without_its_answer(
    emulator: EbayEmulator, control: httpx.Client
) -> None:
    listing(control, "MUG", 5)
    item_id = item_ids(control)["MUG"]
    control.post("/_sandbox/faults", json={"lost_answer_rate": 1.0, "seed": 2})
    outcomes: list[str] = []
    for quantity in range(10, 18):
        api = connect(emulator)
        try:
            revise(api, (item_id, None, quantity))
            outcomes.append("answered")
        except EbayConnectionError as exc:  # an XML 500 with error 10007
            outcomes.append(f"http {exc.response.status_code}")
        except AttributeError:  # ebaysdk on the front end's HTML 503
            outcomes.append("http 503")
        except requests.ConnectionError:
            outcomes.append("dropped")
        assert rows(control)["MUG"]["quantity"] == quantity  # applied all the same
    assert set(outcomes) <= {"http 500", "http 503", "dropped"}  # never an answer
    assert "dropped" in outcomes and any(o != "dropped" for o in outcomes)
    reply = connect(emulator).execute("GetItem", {"ItemID": item_id}).reply
    assert reply.Item.QuantityAvailable == "17"  # reads are never lost
    assert emulator.stats()["lost_answers"] == 8
