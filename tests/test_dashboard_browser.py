"""The dashboard in a real browser: headless chromium against ``channelsync run`` (a
process) syncing a WooCommerce and a Shopify emulator, as a seller would use it.

An admin logs in (a wrong password is refused first), sees a sale on the webshop arrive
on the overview (refreshed by its own script), in the order book and on the stock page,
and the Shopify listing lowered; two buyers take the last lamp on both channels before
a sync, and the admin acknowledges the oversell on the conflicts page, books a delivery
on the lamp's page (a ledger movement with a reason, pushed to both channels, which
clears the oversell) and logs out. A viewer sees the same pages without any form, and
a forged form is refused.

``bash scripts/screenshots.sh`` runs this with ``CHANNELSYNC_SCREENSHOTS=docs/screenshots``
to take the pictures in the README; a normal run writes nothing outside its temp dir.
Select with ``-m browser``; outside CI they skip without chromium, under CI they fail.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.shopify.emulator import ShopifyEmulator
from connectors.woocommerce.emulator import WooCommerceEmulator
from tests.browser_helpers import PHONE, Page, chromium
from tests.dashboard_helpers import (
    ADMIN,
    ADMIN_HASH,
    ADMIN_PASSWORD,
    SESSION_SECRET,
    VIEWER,
    VIEWER_HASH,
    VIEWER_PASSWORD,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

TOKEN = "shpat_browser_0123456789abcdef01234567"
CONFIG = f"""
[database]
url = "sqlite:///{{db}}"
[daemon]
pull_interval = 0.5
retry_max_wait = 0.2
[web]
listen = "127.0.0.1:0"
session_secret = "{SESSION_SECRET}"
[[web.users]]
name = "{ADMIN}"
password_hash = "{ADMIN_HASH}"
role = "admin"
[[web.users]]
name = "{VIEWER}"
password_hash = "{VIEWER_HASH}"
role = "viewer"
[[channel]]
name = "webshop"
type = "woocommerce"
endpoint = "{{woo}}"
consumer_key = "ck_browser"
consumer_secret = "cs_browser"
[[channel]]
name = "shopify"
type = "shopify"
endpoint = "{{shopify}}"
access_token = "{TOKEN}"
"""
# sku, on hand, safety stock, title: the shop both channels list.
STOCK = [
    ("LAMP-DESK", 1, 0, "Desk lamp, brass"),
    ("MUG-BLUE", 10, 0, "Stoneware mug, blue"),
    ("MUG-SAND", 12, 2, "Stoneware mug, sand"),
    ("PLATE-22", 24, 0, "Dinner plate 22 cm"),
    ("BOWL-14", 18, 0, "Cereal bowl 14 cm"),
    ("VASE-TALL", 4, 0, "Tall vase, smoke glass"),
    ("THROW-WOOL", 6, 1, "Wool throw, ochre"),
    ("CANDLE-3", 30, 0, "Candles, set of 3"),
]
LAMP, MUG = "LAMP-DESK", "MUG-BLUE"


@dataclass
class Shop:
    """The running daemon, its dashboard and the two channels it keeps in sync."""

    url: str  # the dashboard
    woo: WooCommerceEmulator
    shopify: ShopifyEmulator
    daemon: subprocess.Popen[str]
    cli: list[str]
    log: Path


def sandbox(emulator: Any, path: str, body: Any = None) -> Any:
    response = httpx.post(f"{emulator.url}/_sandbox/{path}", json=body, timeout=10)
    response.raise_for_status()
    return response.json()


def buy(emulator: Any, sku: str, quantity: int = 1) -> str:
    """A buyer's order on the channel, as its storefront would take it."""
    return str(sandbox(emulator, "orders", {"lines": [{"sku": sku, "quantity": quantity}]})[
        "order_id"])


def shows(emulator: Any, sku: str) -> int | None:
    listings = httpx.get(f"{emulator.url}/_sandbox/listings", timeout=10).json()["listings"]
    return next((int(x["quantity"]) for x in listings if x["sku"] == sku), None)


def eventually(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll until ``check()`` is truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.1)


def explain(shop: Shop, sku: str) -> dict[str, Any]:
    done = subprocess.run([*shop.cli, "explain", sku, "--json"], capture_output=True,
                          text=True, check=True, env=_env())
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def _env() -> dict[str, str]:
    """This environment without a developer's real config, state or credentials."""
    hidden = ("CHANNELSYNC_CONFIG", "STATE_DIRECTORY", "CREDENTIALS_DIRECTORY")
    return {k: v for k, v in os.environ.items() if k not in hidden}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    tmp = tmp_path_factory.mktemp("browser")
    with WooCommerceEmulator(consumer_key="ck_browser", consumer_secret="cs_browser") as woo, \
            ShopifyEmulator(access_token=TOKEN) as shopify:
        for emulator in (woo, shopify):
            for sku, on_hand, *_ in STOCK:
                sandbox(emulator, "listings", {"sku": sku, "quantity": on_hand})
        # Sales from before the daemon started: its first pull finds them.
        for emulator, sku, quantity, shipped in ((woo, "CANDLE-3", 3, False),
                                                 (shopify, "THROW-WOOL", 1, False),
                                                 (shopify, "BOWL-14", 2, True)):
            order = buy(emulator, sku, quantity)
            if shipped:
                sandbox(emulator, f"orders/{order}/ship")
        sold = {"CANDLE-3": 3, "THROW-WOOL": 1, "BOWL-14": 2}
        ready = {sku: on_hand - safety - sold.get(sku, 0) for sku, on_hand, safety, _ in STOCK}
        config = tmp / "channels.toml"
        config.write_text(CONFIG.format(db=tmp / "ledger.db", woo=woo.url, shopify=shopify.url))
        counts = tmp / "counts.csv"
        with counts.open("w", newline="") as stream:
            csv.writer(stream).writerows([("sku", "on_hand", "safety_stock", "title"), *STOCK])
        cli = [sys.executable, "-m", "channelsync", "--config", str(config)]
        subprocess.run([*cli, "stock", "import", str(counts)], check=True, capture_output=True,
                       env=_env())
        log = tmp / "daemon.log"
        with log.open("w") as log_file:
            # A file, not a pipe: a pipe nobody reads fills up and blocks the daemon.
            daemon = subprocess.Popen([*cli, "--log-level", "info", "run"], env=_env(),
                                      stdout=subprocess.DEVNULL, stderr=log_file, text=True)
        try:
            url = eventually(lambda: _dashboard_url(log, daemon), "the daemon's dashboard")
            shop = Shop(url, woo, shopify, daemon, cli, log)
            for emulator in (woo, shopify):  # those sales pulled, and pushed everywhere
                eventually(lambda e=emulator: all(shows(e, sku) == n for sku, n in ready.items()),
                           "the first sync")
            yield shop
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
    text = log.read_text()
    assert daemon.returncode == 0, text
    for secret in (ADMIN_PASSWORD, VIEWER_PASSWORD, SESSION_SECRET, TOKEN, "cs_browser"):
        assert secret not in text


def _dashboard_url(log: Path, daemon: subprocess.Popen[str]) -> str | None:
    if daemon.poll() is not None:
        raise AssertionError(f"the daemon stopped:\n{log.read_text()}")
    found = re.search(r"dashboard on (http://127\.0\.0\.1:\d+)", log.read_text())
    return found.group(1) if found else None


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield from chromium(tmp_path_factory.mktemp("chromium") / "chromedriver.log")


@pytest.fixture
def page(driver: Any, shop: Shop) -> Page:
    """The browser on the dashboard, logged out."""
    site = Page(driver, shop.url)
    site.go("/login")
    driver.delete_all_cookies()
    return site


def log_in(page: Page, name: str, password: str) -> None:
    page.fill("login-name", name)
    page.fill("login-password", password)
    page.click("login-submit")


def refresh_overview(page: Page) -> bool:
    """Ask the overview's script to refresh its live part now, as it does every 10 s and
    whenever the tab becomes visible; True, so it can start a wait's condition."""
    page.driver.execute_script("document.dispatchEvent(new Event('visibilitychange'))")
    return True


def number(page: Page, testid: str) -> int:
    return int(page.text(testid))


def stock_row(page: Page, sku: str) -> Any:
    (row,) = page.css(f'[data-testid="stock-row"][data-sku="{sku}"]')
    return row


def test_an_admin_logs_in_sees_a_sale_acks_an_oversell_adjusts_stock_and_logs_out(
    page: Page, shop: Shop
) -> None:
    # -- log in: a protected page leads to the login, a wrong password is refused ---------
    page.go("/stock")
    assert page.path == "/login?next=%2Fstock"
    assert page.all("nav-stock") == [] and page.all("logout") == []
    page.shoot("login")
    log_in(page, ADMIN, "not-" + ADMIN_PASSWORD)
    assert page.text("login-error") == "Wrong name or password."
    assert page.path == "/login"
    assert page.one("login-name").get_attribute("value") == ADMIN  # kept for the retry
    assert page.all("logout") == []
    log_in(page, ADMIN, ADMIN_PASSWORD)
    assert page.path == "/stock"  # where the visitor was going
    assert page.text("user-name") == ADMIN and page.text("user-role") == "admin"
    assert len(page.all("stock-row")) == len(STOCK)

    # -- a sale on the webshop: the overview refreshes itself to show it held -------------
    page.go("/")
    for channel in ("webshop", "shopify"):
        card = page.one(f"channel-{channel}")
        assert "none" in card.find_element("css selector", '[data-testid="last-error"]').text
    reserved = number(page, "total-reserved")
    page.driver.execute_script("window.notReloaded = true")
    order_id = buy(shop.woo, MUG, 2)
    page.wait(lambda: refresh_overview(page) and number(page, "total-reserved") == reserved + 2,
              "the sale on the overview")
    # Brought by the page's script into the page as it was, not by loading it again.
    assert page.driver.execute_script("return window.notReloaded") is True

    # ... in the order book, with its page ...
    order_row = f'[data-testid="order-row"][data-channel="webshop"][data-order-id="{order_id}"]'
    page.wait_loaded("/orders", lambda: page.css(order_row), "the order in the order book")
    page.shoot("orders")
    link = page.css(order_row)[0].find_element("css selector", '[data-testid="order-link"]')
    link.click()
    page.wait(lambda: page.path == f"/orders/webshop/{order_id}", "the order's page")
    assert order_id in page.text("order-title")
    (line,) = page.all("order-line")
    assert line.get_attribute("data-sku") == MUG
    page.shoot("order")

    # ... and on the stock page: less available, and Shopify lowered to match -----------
    page.go("/stock")
    page.fill("stock-q", "MUG")
    page.click("stock-go")
    assert {r.get_attribute("data-sku") for r in page.all("stock-row")} == {MUG, "MUG-SAND"}
    row = stock_row(page, MUG)
    assert (row.get_attribute("data-on-hand"), row.get_attribute("data-reserved"),
            row.get_attribute("data-available")) == ("10", "2", "8")
    eventually(lambda: shows(shop.shopify, MUG) == 8, "the sale pushed to Shopify")

    def shopify_cell() -> str:
        row = stock_row(page, MUG)
        return " ".join(row.find_element("css selector", 'td[data-channel="shopify"]')
                        .text.split())

    page.wait_loaded("/stock?q=MUG", lambda: shopify_cell() == "8 / 8",
                     "Shopify showing 8 of 8 on the stock page")
    page.go("/stock")
    page.shoot("stock")

    # -- the last lamp sold on both channels before a sync: an oversell -------------------
    page.go("/")
    conflicts = number(page, "open-conflicts-count")
    assert shows(shop.woo, LAMP) == shows(shop.shopify, LAMP) == 1
    shop.daemon.send_signal(signal.SIGSTOP)  # no sync between the two sales
    try:
        lamp_orders = [buy(shop.woo, LAMP), buy(shop.shopify, LAMP)]
    finally:
        shop.daemon.send_signal(signal.SIGCONT)
    page.wait(lambda: refresh_overview(page)
              and number(page, "open-conflicts-count") == conflicts + 1,
              "the oversell counted on the overview")
    page.shoot("overview")
    page.shoot("overview-phone", width=PHONE, phone=True)
    page.go("/conflicts")
    (oversell,) = page.css('li.conflict[data-kind="oversell"]')
    conflict_id = oversell.get_attribute("data-conflict-id")
    assert oversell.get_attribute("data-acked") == "no"
    assert LAMP in oversell.text and lamp_orders[0] in oversell.text
    page.shoot("conflicts")
    page.click(f"ack-{conflict_id}")
    assert page.path == "/conflicts"
    assert page.text("flash") == f"Conflict #{conflict_id} acknowledged."
    assert page.one(f"conflict-{conflict_id}").get_attribute("data-acked") == "yes"
    assert page.all(f"ack-{conflict_id}") == []  # done: no button any more

    # -- a delivery booked on the lamp's page: a movement, pushed, the oversell over ------
    page.one(f"conflict-{conflict_id}").find_element(
        "css selector", f'a[href="/stock/{LAMP}"]').click()
    page.wait(lambda: page.path == f"/stock/{LAMP}", "the lamp's page")
    assert (number(page, "sku-on-hand"), number(page, "sku-reserved"),
            number(page, "sku-available")) == (1, 2, -1)
    page.fill("adjust-delta", "3")
    page.fill("adjust-reason", "delivery from the supplier")
    page.click("adjust-submit")
    assert page.path == f"/stock/{LAMP}"
    assert page.text("flash") == f"{LAMP}: +3, now 4 on hand."
    assert (number(page, "sku-on-hand"), number(page, "sku-available")) == (4, 2)
    levels = page.all("chart-level")  # the chart's numbers, oldest first
    assert [x.get_attribute("data-available") for x in levels][-1] == "2"
    assert page.all("sku-chart") and page.all("chart-available")
    movement = explain(shop, LAMP)["recent_movements"]
    adjust = [m for m in movement if m["kind"] == "adjust"]
    assert [(m["on_hand_delta"], m["reason"], m["source"]) for m in adjust] == [
        (3, "delivery from the supplier", f"web:{ADMIN}")]
    for emulator in (shop.woo, shop.shopify):  # 4 on hand, 2 held: 2 for sale everywhere
        eventually(lambda e=emulator: shows(e, LAMP) == 2, "the delivery pushed")
    page.wait_loaded(f"/stock/{LAMP}?days=1", lambda: all(
        r.get_attribute("data-target") == "2" for r in page.all("sku-channel")),
        "both targets at 2")
    page.shoot("sku")
    page.go("/conflicts")
    assert page.all(f"conflict-{conflict_id}") == []
    assert page.all(f"resolved-{conflict_id}")

    # -- log out: the pages are closed again ---------------------------------------------
    page.click("logout")
    assert page.path == "/login"
    page.go(f"/stock/{LAMP}")
    assert page.path == f"/login?next=%2Fstock%2F{LAMP}"
    assert page.all("who") == [] and page.all("adjust-form") == []


def test_a_viewer_sees_the_pages_without_their_forms(page: Page, shop: Shop) -> None:
    # A conflict an admin could acknowledge: a sale of something the ledger does not know.
    sandbox(shop.woo, "listings", {"sku": "GHOST-1", "quantity": 3})
    buy(shop.woo, "GHOST-1")
    page.go("/")
    log_in(page, VIEWER, VIEWER_PASSWORD)
    assert page.path == "/"
    assert page.text("user-name") == VIEWER and page.text("user-role") == "viewer"
    unknown = 'li.conflict[data-kind="unknown_sku"]'
    page.wait_loaded("/conflicts", lambda: page.css(unknown), "the unknown SKU's conflict")
    conflict_id = page.css(unknown)[0].get_attribute("data-conflict-id")
    assert page.all(f"conflict-{conflict_id}")
    assert page.css('[data-testid^="ack-"]') == []  # no acknowledging, on any conflict

    page.go(f"/stock/{MUG}")
    assert page.text("sku-title") == MUG
    on_hand = number(page, "sku-on-hand")
    assert page.all("set-form") == page.all("adjust-form") == []
    assert page.all("adjust-delta") == page.all("set-quantity") == []

    # The form an admin would see, made by hand with the viewer's own token: refused.
    token = page.css('#logout-form input[name="csrf"]')[0].get_attribute("value")
    page.driver.execute_script("""
        const form = document.createElement("form");
        form.method = "post"; form.action = "/stock/adjust";
        for (const [name, value] of Object.entries(arguments[0])) {
            const field = document.createElement("input");
            field.type = "hidden"; field.name = name; field.value = value;
            form.appendChild(field);
        }
        document.body.appendChild(form); form.submit();
    """, {"csrf": token, "sku": MUG, "delta": "-1", "reason": "forged"})
    page.wait(lambda: page.all("error-title"), "the answer to the forged form")
    assert page.text("error-title") == "403"
    assert "only an admin" in page.text("error-detail")
    assert explain(shop, MUG)["on_hand"] == on_hand
    page.go("/")
    page.click("logout")
    assert page.path == "/login"
