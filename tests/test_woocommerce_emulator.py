"""The WooCommerce emulator, driven over real HTTP with httpx like a connector would."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from connectors.woocommerce.emulator import WooCommerceEmulator, signature_base_string

API = "/wp-json/wc/v3"
KEY, SECRET = "ck_0123456789abcdef", "cs_fedcba9876543210"
WC_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 26, 4, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def emulator(clock: Clock) -> Iterator[WooCommerceEmulator]:
    emu = WooCommerceEmulator(clock=clock)
    emu.start(port=0)
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def control(emulator: WooCommerceEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, timeout=5) as client:
        yield client


@pytest.fixture
def api(emulator: WooCommerceEmulator) -> Iterator[httpx.Client]:
    """Basic auth, as behind a TLS-terminating proxy; OAuth has its own tests below."""
    with httpx.Client(base_url=emulator.url + API, auth=(KEY, SECRET), timeout=5) as client:
        yield client


def listing(control: httpx.Client, sku: str, quantity: int, **extra: Any) -> None:
    response = control.post("/_sandbox/listings", json={"sku": sku, "quantity": quantity, **extra})
    assert response.status_code == 200, response.text


def quantities(control: httpx.Client) -> dict[str, int]:
    return {row["sku"]: row["quantity"] for row in control.get("/_sandbox/listings").json()[
        "listings"]}


def order(control: httpx.Client, **lines: int) -> int:
    body = {"lines": [{"sku": sku, "quantity": n} for sku, n in lines.items()]}
    response = control.post("/_sandbox/orders", json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["order_id"])


def product_id(api: httpx.Client, sku: str) -> int:
    found = api.get("/products", params={"sku": sku}).json()
    assert len(found) == 1
    return int(found[0]["id"])


# -- control API -------------------------------------------------------------------------------


def test_listings_are_created_overwritten_and_listed(control: httpx.Client) -> None:
    listing(control, "MUG", 5)
    listing(control, "TSHIRT-M", 3, parent_sku="TSHIRT")
    listing(control, "MUG", 7)  # a manual edit on the channel
    rows = control.get("/_sandbox/listings").json()["listings"]
    assert [(r["sku"], r["quantity"]) for r in rows] == [("MUG", 7), ("TSHIRT-M", 3)]
    assert rows[1]["parent_sku"] == "TSHIRT"
    refused = control.post("/_sandbox/listings", json={"sku": "MUG", "quantity": -1})
    assert refused.status_code == 400 and "quantity" in refused.json()["error"]
    not_a_variation = {"sku": "MUG", "quantity": 1, "parent_sku": "TSHIRT"}
    assert control.post("/_sandbox/listings", json=not_a_variation).status_code == 409
    typo = {"sku": "CUP", "quantity": 1, "parent": "TSHIRT"}
    assert control.post("/_sandbox/listings", json=typo).status_code == 400
    assert quantities(control) == {"MUG": 7, "TSHIRT-M": 3}


def test_an_order_decrements_stock_and_shows_in_the_api(
    control: httpx.Client, api: httpx.Client
) -> None:
    listing(control, "MUG", 5)
    order_id = order(control, MUG=2)
    assert quantities(control) == {"MUG": 3}
    assert api.get(f"/products/{product_id(api, 'MUG')}").json()["stock_quantity"] == 3
    shown = api.get(f"/orders/{order_id}").json()
    assert shown["status"] == "processing"
    assert [(i["sku"], i["quantity"], i["variation_id"]) for i in shown["line_items"]] == [
        ("MUG", 2, 0)]
    assert WC_DATE.match(shown["date_created_gmt"]) and WC_DATE.match(shown["date_modified_gmt"])
    assert shown["refunds"] == []


def test_overselling_is_refused_and_changes_nothing(
    control: httpx.Client, api: httpx.Client
) -> None:
    listing(control, "MUG", 1)
    listing(control, "CUP", 5)
    body = {"lines": [{"sku": "CUP", "quantity": 2}, {"sku": "MUG", "quantity": 2}]}
    refused = control.post("/_sandbox/orders", json=body)
    assert refused.status_code == 409
    assert "MUG" in refused.json()["error"]
    twice = {"lines": [{"sku": "MUG", "quantity": 1}, {"sku": "MUG", "quantity": 1}]}
    assert control.post("/_sandbox/orders", json=twice).status_code == 409
    unknown = control.post("/_sandbox/orders", json={"lines": [{"sku": "NOPE", "quantity": 1}]})
    assert unknown.status_code == 404 and "NOPE" in unknown.json()["error"]
    assert quantities(control) == {"CUP": 5, "MUG": 1}
    assert api.get("/orders").headers["X-WP-Total"] == "0"


def test_concurrent_buyers_never_get_more_than_the_stock(
    emulator: WooCommerceEmulator, control: httpx.Client
) -> None:
    listing(control, "MUG", 5)

    def buy(_: int) -> int:
        with httpx.Client(base_url=emulator.url, timeout=5) as client:
            body = {"lines": [{"sku": "MUG", "quantity": 1}]}
            return client.post("/_sandbox/orders", json=body).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(buy, range(20)))
    assert statuses == [201] * 5 + [409] * 15
    assert quantities(control) == {"MUG": 0}


def test_cancel_restores_stock_and_ship_completes(
    control: httpx.Client, api: httpx.Client
) -> None:
    listing(control, "MUG", 5)
    first, second = order(control, MUG=2), order(control, MUG=1)
    cancelled = control.post(f"/_sandbox/orders/{first}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert quantities(control) == {"MUG": 4}
    assert control.post(f"/_sandbox/orders/{second}/ship").json()["status"] == "completed"
    assert quantities(control) == {"MUG": 4}
    assert api.get(f"/orders/{second}").json()["status"] == "completed"
    assert api.get(f"/orders/{first}").json()["status"] == "cancelled"
    assert control.post(f"/_sandbox/orders/{first}/ship").status_code == 409
    assert control.post("/_sandbox/orders/424242/cancel").status_code == 404


def test_status_changes_follow_woocommerce_stock_rules(
    control: httpx.Client, api: httpx.Client, clock: Clock
) -> None:
    listing(control, "MUG", 5)
    order_id = order(control, MUG=2)
    steps = [("failed", 3), ("pending", 5), ("on-hold", 3), ("refunded", 3), ("processing", 3),
             ("cancelled", 5)]
    last_modified = api.get(f"/orders/{order_id}").json()["date_modified_gmt"]
    for status, expected in steps:
        clock.advance(1)
        changed = api.put(f"/orders/{order_id}", json={"status": status})
        assert changed.status_code == 200 and changed.json()["status"] == status
        assert quantities(control) == {"MUG": expected}, status
        assert changed.json()["date_modified_gmt"] > last_modified
        last_modified = changed.json()["date_modified_gmt"]
    bad = api.put(f"/orders/{order_id}", json={"status": "lost"})
    assert bad.status_code == 400 and bad.json()["code"] == "rest_invalid_param"


def test_reset_empties_the_store(control: httpx.Client, api: httpx.Client) -> None:
    listing(control, "MUG", 5)
    order(control, MUG=1)
    api.get("/orders")
    control.post("/_sandbox/faults", json={"latency_ms": 1})
    assert control.post("/_sandbox/reset").status_code == 200
    assert control.get("/_sandbox/listings").json() == {"listings": []}
    assert control.get("/_sandbox/stats").json() == {
        "requests": {}, "throttled": 0, "errors": 0, "items_updated": 0, "hung": 0,
        "lost_answers": 0}
    assert api.get("/orders").json() == []
    assert api.get("/products").json() == []


def test_stats_count_channel_requests_per_operation(
    control: httpx.Client, api: httpx.Client
) -> None:
    listing(control, "MUG", 5)
    listing(control, "CUP", 5)
    mug, cup = product_id(api, "MUG"), product_id(api, "CUP")
    api.get("/orders")
    batch = {"update": [{"id": mug, "stock_quantity": 4, "manage_stock": True},
                        {"id": cup, "stock_quantity": 3, "manage_stock": True}]}
    assert api.post("/products/batch", json=batch).status_code == 200
    api.put(f"/products/{mug}", json={"stock_quantity": 1})
    stats = control.get("/_sandbox/stats").json()
    assert stats["requests"] == {"list_products": 2, "list_orders": 1, "batch_products": 1,
                                 "update_product": 1}
    assert stats["items_updated"] == 3
    assert stats["throttled"] == stats["errors"] == 0


def test_seeded_faults_throttle_and_fail_only_the_channel_api(
    control: httpx.Client, api: httpx.Client
) -> None:
    faults = {"throttle_rate": 0.4, "error_rate": 0.3, "seed": 7}

    def run() -> list[httpx.Response]:
        assert control.post("/_sandbox/faults", json=faults).status_code == 200
        return [api.get("/products") for _ in range(40)]

    responses = run()
    statuses = [r.status_code for r in responses]
    throttled = [r for r in responses if r.status_code == 429]
    failed = [r for r in responses if r.status_code >= 500]
    assert throttled and failed and 200 in statuses
    for r in throttled:
        assert r.headers["Retry-After"] == "1"
        assert r.json() == {"code": "rest_too_many_requests", "message": r.json()["message"],
                            "data": {"status": 429}}
    assert all(r.headers["content-type"].startswith(("text/html", "application/json"))
               for r in failed)
    stats = control.get("/_sandbox/stats").json()
    assert (stats["throttled"], stats["errors"]) == (len(throttled), len(failed))
    assert all(control.get("/_sandbox/listings").status_code == 200 for _ in range(30))
    assert [r.status_code for r in run()] == statuses  # the seed replays the same faults
    control.post("/_sandbox/faults", json={})
    assert all(api.get("/products").status_code == 200 for _ in range(10))


def test_bad_json_is_a_400_and_the_server_carries_on(
    control: httpx.Client, api: httpx.Client
) -> None:
    for path in ("/_sandbox/listings", "/_sandbox/orders", "/_sandbox/faults"):
        response = control.post(path, content=b"{not json", headers={
            "Content-Type": "application/json"})
        assert response.status_code == 400 and "JSON" in response.json()["error"], path
    odd = control.post("/_sandbox/orders", json={"lines": [{"sku": "MUG", "quantity": "two"}]})
    assert odd.status_code == 400
    assert control.post("/_sandbox/faults", json={"error_rate": 2}).status_code == 400
    listing(control, "MUG", 5)
    broken = api.put(f"/products/{product_id(api, 'MUG')}", content=b"[1,")
    assert broken.status_code == 400 and broken.json()["code"] == "rest_invalid_json"
    assert quantities(control) == {"MUG": 5}


# -- orders --------------------------------------------------------------------------------------


def test_orders_are_paged_with_wordpress_headers(control: httpx.Client, api: httpx.Client) -> None:
    listing(control, "MUG", 100)
    created = [order(control, MUG=1) for _ in range(25)]
    first = api.get("/orders", params={"per_page": 10, "orderby": "id", "order": "asc"})
    assert first.headers["X-WP-Total"] == "25" and first.headers["X-WP-TotalPages"] == "3"
    assert 'rel="next"' in first.headers["Link"]
    seen = [o["id"] for page in (1, 2, 3) for o in api.get("/orders", params={
        "per_page": 10, "page": page, "orderby": "id", "order": "asc"}).json()]
    assert seen == created
    newest_first = api.get("/orders", params={"per_page": 100}).json()
    assert [o["id"] for o in newest_first] == created[::-1]
    assert api.get("/orders", params={"page": 9}).json() == []
    too_many = api.get("/orders", params={"per_page": 101})
    assert too_many.status_code == 400 and too_many.json()["code"] == "rest_invalid_param"
    missing = api.get("/orders/999999")
    assert missing.status_code == 404
    assert missing.json()["code"] == "woocommerce_rest_shop_order_invalid_id"


def test_modified_after_is_strict_and_sees_later_changes(
    control: httpx.Client, api: httpx.Client, clock: Clock
) -> None:
    listing(control, "MUG", 10)
    start = clock.now
    early = order(control, MUG=1)
    clock.advance(10)
    late = order(control, MUG=1)
    clock.advance(10)
    control.post(f"/_sandbox/orders/{early}/cancel")

    def modified_after(moment: datetime, **params: Any) -> list[int]:
        query = {"modified_after": moment.strftime("%Y-%m-%dT%H:%M:%S"), "dates_are_gmt": "true",
                 "orderby": "modified", "order": "asc", **params}
        response = api.get("/orders", params=query)
        assert response.status_code == 200, response.text
        return [o["id"] for o in response.json()]

    assert modified_after(start - timedelta(seconds=1)) == [late, early]
    assert modified_after(start + timedelta(seconds=5)) == [late, early]
    assert modified_after(start + timedelta(seconds=15)) == [early]
    assert modified_after(start + timedelta(seconds=10)) == [early]  # strictly after
    assert modified_after(start + timedelta(seconds=5), status="processing") == [late]
    with_zone = api.get("/orders", params={"modified_after": "2026-11-26T05:00:15+01:00"})
    assert [o["id"] for o in with_zone.json()] == [early]
    bad = api.get("/orders", params={"modified_after": "yesterday"})
    assert bad.status_code == 400 and bad.json()["code"] == "rest_invalid_param"


def test_changes_within_one_second_keep_their_order(
    control: httpx.Client, api: httpx.Client
) -> None:
    listing(control, "MUG", 10)
    first, second = order(control, MUG=1), order(control, MUG=1)
    control.post(f"/_sandbox/orders/{first}/ship")  # now modified after `second`, same second
    shown = api.get("/orders", params={"orderby": "modified", "order": "asc"}).json()
    assert [o["id"] for o in shown] == [second, first]
    assert shown[0]["date_modified_gmt"] == shown[1]["date_modified_gmt"]


# -- products ------------------------------------------------------------------------------------


def test_sku_lookup_returns_variations(control: httpx.Client, api: httpx.Client) -> None:
    listing(control, "TSHIRT-M", 3, parent_sku="TSHIRT")
    listing(control, "TSHIRT-L", 4, parent_sku="TSHIRT")
    listing(control, "MUG", 5)
    found = api.get("/products", params={"sku": "TSHIRT-M"}).json()
    assert len(found) == 1 and found[0]["type"] == "variation"
    variation, parent_id = found[0], found[0]["parent_id"]
    assert variation["stock_quantity"] == 3 and variation["manage_stock"] is True
    parent = api.get(f"/products/{parent_id}").json()
    assert parent["type"] == "variable" and parent["sku"] == "TSHIRT"
    assert variation["id"] in parent["variations"]
    top_level = api.get("/products").json()
    assert sorted(p["sku"] for p in top_level) == ["MUG", "TSHIRT"]
    variations = api.get(f"/products/{parent_id}/variations").json()
    assert sorted(v["sku"] for v in variations) == ["TSHIRT-L", "TSHIRT-M"]
    line = api.get(f"/orders/{order(control, **{'TSHIRT-M': 1})}").json()["line_items"][0]
    assert (line["product_id"], line["variation_id"]) == (parent_id, variation["id"])
    assert api.get(f"/products/{parent_id}/variations/{variation['id']}").json()[
        "stock_quantity"] == 2


def test_batch_update_reports_errors_per_item(control: httpx.Client, api: httpx.Client) -> None:
    listing(control, "MUG", 5)
    listing(control, "CUP", 5)
    listing(control, "TSHIRT-M", 3, parent_sku="TSHIRT")
    mug, cup = product_id(api, "MUG"), product_id(api, "CUP")
    batch = {"update": [{"id": mug, "stock_quantity": 9, "manage_stock": True},
                        {"id": 999999, "stock_quantity": 1, "manage_stock": True},
                        {"id": cup, "stock_quantity": -1, "manage_stock": True}]}
    result = api.post("/products/batch", json=batch)
    assert result.status_code == 200
    ok, unknown, negative = result.json()["update"]
    assert ok["id"] == mug and ok["stock_quantity"] == 9
    assert unknown == {"id": 999999, "error": {
        "code": "woocommerce_rest_product_invalid_id", "message": "Invalid ID.",
        "data": {"status": 400}}}
    assert negative["id"] == cup and negative["error"]["data"]["status"] == 400
    assert quantities(control) == {"CUP": 5, "MUG": 9, "TSHIRT-M": 3}
    variation = api.get("/products", params={"sku": "TSHIRT-M"}).json()[0]
    parent_path = f"/products/{variation['parent_id']}/variations/batch"
    done = api.post(parent_path, json={"update": [
        {"id": variation["id"], "stock_quantity": 7, "manage_stock": True},
        {"id": mug, "stock_quantity": 1, "manage_stock": True}]}).json()["update"]
    assert done[0]["stock_quantity"] == 7
    assert done[1]["error"]["code"] == "woocommerce_rest_product_variation_invalid_id"
    assert quantities(control) == {"CUP": 5, "MUG": 9, "TSHIRT-M": 7}
    assert control.get("/_sandbox/stats").json()["items_updated"] == 2


def test_batches_take_at_most_100_items(control: httpx.Client, api: httpx.Client) -> None:
    listing(control, "MUG", 5)
    mug = product_id(api, "MUG")
    item = {"id": mug, "stock_quantity": 3, "manage_stock": True}
    too_big = api.post("/products/batch", json={"update": [item] * 60, "delete": [12345] * 41})
    assert too_big.status_code == 413
    assert too_big.json() == {
        "code": "woocommerce_rest_request_entity_too_large",
        "message": "Unable to accept more than 100 items for this request.",
        "data": {"status": 413}}
    assert quantities(control) == {"MUG": 5}
    full = api.post("/products/batch", json={"update": [item] * 100})
    assert full.status_code == 200 and len(full.json()["update"]) == 100
    assert quantities(control) == {"MUG": 3}


def test_unmanaged_stock_ignores_quantities(control: httpx.Client, api: httpx.Client) -> None:
    listing(control, "MUG", 5)
    mug = product_id(api, "MUG")
    shown = api.put(f"/products/{mug}", json={"manage_stock": False, "stock_quantity": 2}).json()
    assert shown["manage_stock"] is False and shown["stock_quantity"] is None
    assert api.put(f"/products/{mug}", json={"stock_quantity": 2, "manage_stock": True}).json()[
        "stock_quantity"] == 2
    assert api.put("/products/999999", json={"stock_quantity": 2}).status_code == 400


# -- authentication ------------------------------------------------------------------------------


def oauth_params(method: str, url: str, params: dict[str, str], secret: str = SECRET,
                 algorithm: str = "HMAC-SHA1", nonce: str | None = None) -> dict[str, str]:
    """A one-legged OAuth 1.0a signer, written from RFC 5849 independently of the emulator."""
    signed = {**params, "oauth_consumer_key": KEY, "oauth_timestamp": str(int(time.time())),
              "oauth_nonce": nonce or secrets.token_hex(8), "oauth_signature_method": algorithm,
              "oauth_version": "1.0"}

    def enc(text: str) -> str:
        return quote(text, safe="~")

    pairs = "&".join(f"{k}={v}" for k, v in sorted((enc(k), enc(v)) for k, v in signed.items()))
    base = f"{method}&{enc(url)}&{enc(pairs)}"
    digest = hashlib.sha1 if algorithm == "HMAC-SHA1" else hashlib.sha256
    mac = hmac.new(f"{enc(secret)}&".encode(), base.encode(), digest).digest()
    return {**signed, "oauth_signature": base64.b64encode(mac).decode()}


@pytest.fixture
def keyed() -> Iterator[WooCommerceEmulator]:
    with WooCommerceEmulator(consumer_key=KEY, consumer_secret=SECRET) as emu:
        yield emu


def test_oauth_signatures_are_checked(keyed: WooCommerceEmulator) -> None:
    url = keyed.url + API + "/orders"
    query = {"modified_after": "2026-11-01T00:00:00", "per_page": "100", "status": "any"}
    with httpx.Client(timeout=5) as client:
        good = client.get(url, params=oauth_params("GET", url, query))
        assert good.status_code == 200, good.text
        sha256 = client.get(url, params=oauth_params("GET", url, query, algorithm="HMAC-SHA256"))
        assert sha256.status_code == 200, sha256.text
        wrong = client.get(url, params=oauth_params("GET", url, query, secret="cs_wrong"))
        assert wrong.status_code == 401
        assert wrong.json() == {"code": "woocommerce_rest_authentication_error",
                                "message": "Invalid signature - provided signature does not match.",
                                "data": {"status": 401}}
        replay = oauth_params("GET", url, query, nonce="same-nonce")
        assert client.get(url, params=replay).status_code == 200
        again = client.get(url, params=replay)
        assert again.status_code == 401 and "nonce" in again.json()["message"]
        anonymous = client.get(url, params=query)
        assert anonymous.status_code == 401
        assert anonymous.json()["code"] == "woocommerce_rest_cannot_view"
        assert client.get(url, auth=(KEY, "cs_wrong")).status_code == 401
        assert client.get(url, auth=(KEY, SECRET)).status_code == 200


def test_oauth_signs_a_write(keyed: WooCommerceEmulator) -> None:
    with httpx.Client(base_url=keyed.url, timeout=5) as client:
        client.post("/_sandbox/listings", json={"sku": "MUG & CUP", "quantity": 5})
        url = keyed.url + API + "/products"
        found = client.get(url, params=oauth_params("GET", url, {"sku": "MUG & CUP"})).json()
        put_url = f"{url}/{found[0]['id']}"
        changed = client.put(put_url, params=oauth_params("PUT", put_url, {}),
                             json={"stock_quantity": 8, "manage_stock": True})
        assert changed.status_code == 200 and changed.json()["stock_quantity"] == 8
        tampered = oauth_params("PUT", put_url, {})
        tampered["oauth_timestamp"] = str(int(tampered["oauth_timestamp"]) - 1)
        assert client.put(put_url, params=tampered, json={"stock_quantity": 1}).status_code == 401


def test_without_configured_keys_any_ck_key_is_accepted(api: httpx.Client) -> None:
    url = str(api.base_url).rstrip("/") + "/products"
    with httpx.Client(timeout=5) as client:
        assert client.get(url, params=oauth_params("GET", url, {}, secret="cs_any")).is_success
        assert client.get(url, auth=("not_a_key", "cs_x")).status_code == 401
        unsigned = {"oauth_consumer_key": KEY}
        assert client.get(url, params=unsigned).status_code == 401


def test_signature_base_string_matches_rfc_5849_example() -> None:
    # RFC 5849 section 3.4.1.1 (the example request's parameters, fully decoded).
    params = [("b5", "=%3D"), ("a3", "a"), ("c@", ""), ("a2", "r b"),
              ("oauth_consumer_key", "9djdj82h48djs9d2"), ("oauth_token", "kkk9d7dh3k39sjv7"),
              ("oauth_signature_method", "HMAC-SHA1"), ("oauth_timestamp", "137131201"),
              ("oauth_nonce", "7d8f3e4a"), ("c2", ""), ("a3", "2 q")]
    assert signature_base_string("POST", "http://example.com/request", params) == (
        "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q%26a3%3Da%26b5%3D"
        "%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_key%3D9djdj82h48djs9d2%26oauth_nonce"
        "%3D7d8f3e4a%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26"
        "oauth_token%3Dkkk9d7dh3k39sjv7")


def test_unknown_routes_answer_like_wordpress(api: httpx.Client) -> None:
    response = api.get("/coupons")
    assert response.status_code == 404 and response.json()["code"] == "rest_no_route"


# -- what a simulation needs: the orders as held, faulty pages, lost answers -------------------


def _units(row: dict[str, Any]) -> dict[str, tuple[int, int, int, int]]:
    return {x["sku"]: (x["quantity"], x["shipped"], x["cancelled"], x["restocked"])
            for x in row["lines"]}


def _orders(api: httpx.Client) -> list[dict[str, Any]]:
    answer = api.get("/orders", params={"orderby": "id", "order": "asc"})
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()
    return found


def test_sandbox_orders_hold_each_lines_units(
    control: httpx.Client, api: httpx.Client
) -> None:
    listing(control, "MUG", 20)
    listing(control, "TSHIRT-M", 5, parent_sku="TSHIRT")
    placed = order(control, MUG=2)
    cancelled = order(control, MUG=1, **{"TSHIRT-M": 2})
    control.post(f"/_sandbox/orders/{cancelled}/cancel")
    shipped = order(control, MUG=3, **{"TSHIRT-M": 1})
    control.post(f"/_sandbox/orders/{shipped}/ship")
    failed, refunded = order(control, MUG=1), order(control, MUG=1)
    api.put(f"/orders/{failed}", json={"status": "failed"})
    api.put(f"/orders/{refunded}", json={"status": "completed"})
    api.put(f"/orders/{refunded}", json={"status": "refunded"})  # after it shipped
    rows = {r["order_id"]: r for r in control.get("/_sandbox/orders").json()["orders"]}
    assert {k: (r["status"], _units(r)) for k, r in rows.items()} == {
        str(placed): ("processing", {"MUG": (2, 0, 0, 0)}),
        str(cancelled): ("cancelled", {"MUG": (1, 0, 1, 0), "TSHIRT-M": (2, 0, 2, 0)}),
        str(shipped): ("completed", {"MUG": (3, 3, 0, 0), "TSHIRT-M": (1, 1, 0, 0)}),
        str(failed): ("failed", {"MUG": (1, 0, 1, 0)}),
        str(refunded): ("refunded", {"MUG": (1, 1, 0, 0)}),
    }
    assert rows[str(placed)]["shipments"] == []
    # a default buyer: a guest with a drawn name and no email
    buyer = rows[str(placed)]["buyer"]
    assert (buyer["email"], buyer["id"]) == (None, None) and buyer["name"].count(" ") == 1
    # The shelf holds what the rows imply, but for the failed order's unit: WooCommerce
    # puts back stock only when an order is cancelled or pending, so it stays off sale.
    assert quantities(control) == {"MUG": 20 - 2 - 3 - 1 - 1, "TSHIRT-M": 5 - 1}
    assert control.get(f"/_sandbox/orders/{shipped}").json() == rows[str(shipped)]
    missing = control.get("/_sandbox/orders/424242")
    assert missing.status_code == 404 and "424242" in missing.json()["error"]


def test_faulty_order_pages_duplicate_shuffle_and_go_stale(
    control: httpx.Client, api: httpx.Client, clock: Clock
) -> None:
    listing(control, "MUG", 20)
    ids = [order(control, MUG=1) for _ in range(6)]
    clock.advance(5)
    control.post(f"/_sandbox/orders/{ids[0]}/cancel")
    control.post(f"/_sandbox/orders/{ids[1]}/ship")
    plain = _orders(api)
    assert [o["id"] for o in plain] == ids
    control.post("/_sandbox/faults", json={"duplicate_rate": 1.0})
    twice = api.get("/orders", params={"orderby": "id", "order": "asc"})
    assert [o["id"] for o in twice.json()] == [i for i in ids for _ in (1, 2)]
    assert twice.headers["X-WP-Total"] == "6"  # the headers stay true
    assert [p["sku"] for p in api.get("/products").json()] == ["MUG"]  # orders only
    control.post("/_sandbox/faults", json={"stale_rate": 1.0})
    stale = {o["id"]: o for o in _orders(api)}
    now = {o["id"]: o for o in plain}
    assert [stale[i]["status"] for i in ids[:2]] == ["processing", "processing"]
    assert all(stale[i]["date_modified_gmt"] < now[i]["date_modified_gmt"] for i in ids[:2])
    assert all(stale[i] == now[i] for i in ids[2:])  # never changed since placed
    control.post("/_sandbox/faults", json={"reorder_rate": 1.0, "seed": 4})
    shuffled = [o["id"] for o in _orders(api)]
    assert shuffled != ids and sorted(shuffled) == ids
    control.post("/_sandbox/faults", json={"reorder_rate": 1.0, "seed": 4})
    assert [o["id"] for o in _orders(api)] == shuffled  # a seed replays its shuffle
    control.post("/_sandbox/faults", json={})
    assert _orders(api) == plain


def test_a_lost_answer_is_a_write_applied_without_its_answer(
    control: httpx.Client, api: httpx.Client, emulator: WooCommerceEmulator
) -> None:
    listing(control, "MUG", 5)
    mug = product_id(api, "MUG")
    control.post("/_sandbox/faults", json={"lost_answer_rate": 1.0, "seed": 2})
    outcomes: list[int | str] = []
    for quantity in range(10, 18):
        batch = {"update": [{"id": mug, "stock_quantity": quantity, "manage_stock": True}]}
        try:
            outcomes.append(api.post("/products/batch", json=batch).status_code)
        except httpx.RemoteProtocolError:
            outcomes.append("dropped")
        assert quantities(control) == {"MUG": quantity}  # applied all the same
    try:
        outcomes.append(api.put(f"/products/{mug}", json={"stock_quantity": 3}).status_code)
    except httpx.RemoteProtocolError:
        outcomes.append("dropped")
    assert quantities(control) == {"MUG": 3}
    assert all(o == "dropped" or (isinstance(o, int) and o >= 500) for o in outcomes)
    assert "dropped" in outcomes and any(o != "dropped" for o in outcomes)
    assert api.get(f"/products/{mug}").json()["stock_quantity"] == 3  # reads are never lost
    assert api.get("/orders").status_code == 200
    assert emulator.stats()["lost_answers"] == 9
