"""The Amazon connector against its emulator: the shared connector contract, then the whole
engine (10,000 SKUs in one feed, FBA never written, throttling without a lost order)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from channelsync.config import parse_config
from channelsync.connector import Connector
from channelsync.ledger.migrate import open_ledger_engine
from channelsync.ledger.schema import conflict_t, line_t
from channelsync.ledger.stock import StockRow, set_stock
from channelsync.sync.engine import SyncEngine
from connectors.amazon import AmazonConnector, AmazonSettings
from connectors.amazon._listings import SEARCH_PAGE_SIZE
from connectors.amazon._orders import PAGE_SIZE
from connectors.amazon.emulator import AmazonEmulator
from tests.connector_contract import ConnectorContract, ManualClock

SELLER = "A2CONTRACTSELLER"
REFRESH = "Atzr|IwEBIContractRefreshToken0123456789abcdef"
APP_ID = "amzn1.application-oa2-client.contract0123456789"
CLIENT_SECRET = "amzn1.oa2-cs.v1.contract0123456789abcdef012345"
WRONG_SECRET = "amzn1.oa2-cs.v1.wrong99999999999999999999999999"


def nap(seconds: float) -> None:
    """The connector's rate-limit and feed-poll waits, shortened: the emulators here advertise
    Amazon's rates but do not enforce them (``rate_limits=False``)."""
    time.sleep(min(seconds, 0.01))


def amazon(url: str, secret: str = CLIENT_SECRET, cls: type[AmazonConnector] = AmazonConnector,
           **values: Any) -> AmazonConnector:
    settings = AmazonSettings.model_validate({
        "marketplace": "US", "seller_id": SELLER, "refresh_token": REFRESH,
        "lwa_app_id": APP_ID, "lwa_client_secret": secret, "lwa_endpoint": url,
        "feed_poll_interval": 0.05, "feed_timeout": 60, **values})
    return cls("amazon-contract", settings, endpoint=url, sleep=nap)


class TestAmazonContract(ConnectorContract):
    secrets = (REFRESH, APP_ID, CLIENT_SECRET, WRONG_SECRET)
    order_page_size = PAGE_SIZE
    listing_page_size = SEARCH_PAGE_SIZE
    open_status = "PENDING"  # Amazon takes the units at once; payment may take days
    cancel_restores_stock = True
    # confirmShipment's package names its items and quantities (PARTIALLY_SHIPPED between).
    partial_shipments = True
    # Amazon confirms a tracking ID that does not fit its carrier's format, with a warning
    # ("Starting April 2021, we will validate tracking IDs ..."): it refuses none.
    checks_tracking = False

    @pytest.fixture
    def emulator(self, clock: ManualClock) -> Iterator[AmazonEmulator]:
        emulator = AmazonEmulator(refresh_token=REFRESH, client_id=APP_ID,
                                  client_secret=CLIENT_SECRET, seller_id=SELLER,
                                  rate_limits=False, feed_delay=0, clock=clock)
        emulator.start()
        try:
            yield emulator
        finally:
            emulator.stop()

    def make_connector(self, emulator: AmazonEmulator) -> AmazonConnector:
        return amazon(emulator.url)

    def make_unauthorized_connector(self, emulator: AmazonEmulator) -> AmazonConnector:
        return amazon(emulator.url, secret=WRONG_SECRET)

    def chunk_size(self, connector: Connector) -> int:
        """250 per call, not the real 10,000: the chunk test creates chunk + 3 listings one
        by one through /_sandbox/ (whose answer lists every listing: 10,003 take minutes),
        and searchListingsItems pages through at most 1000 listings created in one instant
        (the contract's clock stands still). 250 still goes out as one feed; the real
        10,000 are pushed by ``test_10000_changed_skus_go_out_as_one_feed`` below."""
        return 250



# -- the whole engine against the emulator ---------------------------------------------------

CONFIG = """
[daemon]
retry_attempts = 8
retry_max_wait = 0.05
[[channel]]
name = "amazon"
type = "amazon"
endpoint = "{url}"
marketplace = "US"
seller_id = "{seller}"
refresh_token = "${{AMAZON_REFRESH_TOKEN}}"
lwa_app_id = "${{AMAZON_LWA_APP_ID}}"
lwa_client_secret = "${{AMAZON_LWA_CLIENT_SECRET}}"
feed_poll_interval = 0.05
order_lag = 0  # this emulator shows orders at once: an increase need not wait
"""
ENV = {"AMAZON_REFRESH_TOKEN": REFRESH, "AMAZON_LWA_APP_ID": APP_ID,
       "AMAZON_LWA_CLIENT_SECRET": CLIENT_SECRET}
FEED_SCHEMA = json.loads((Path(__file__).parent / "reference" / "amazon-sp-api" /
                          "listings-feed-schema-v2.json").read_text(encoding="utf-8"))


def sync_engine(db: Engine, url: str, *, sleep: Callable[[float], None] = nap,
                clock: Callable[[], datetime] | None = None) -> SyncEngine:
    """The engine with the channel configured as a user would (``${ENV}`` credentials)."""
    config = parse_config(CONFIG.format(url=url, seller=SELLER), env=ENV)
    channel = config.channel("amazon")
    connector = AmazonConnector(channel.name, channel.settings, endpoint=channel.endpoint,
                                sleep=sleep)
    return SyncEngine(config, db, clock=clock or (lambda: datetime.now(UTC)),
                      connectors={"amazon": connector})


def count(db: Engine, stock: dict[str, int], now: datetime) -> None:
    with db.begin() as conn:
        set_stock(conn, [StockRow(sku, qty) for sku, qty in stock.items()], now=now,
                  reason="count")


def shown(control: httpx.Client) -> dict[str, int]:
    rows = control.get("/_sandbox/listings").json()["listings"]
    return {row["sku"]: row["quantity"] for row in rows}


def settle(engine: SyncEngine, control: httpx.Client, want: dict[str, int],
           shift: list[timedelta], rounds: int = 15) -> None:
    """Sync until the channel shows ``want`` (a push the channel throttled waits its turn)."""
    for _ in range(rounds):
        (report,) = engine.sync()
        if not report.error and {sku: shown(control)[sku] for sku in want} == want:
            return
        shift[0] += timedelta(minutes=1)
        time.sleep(0.1)
    raise AssertionError(f"the channel shows {shown(control)}, not {want}")


def open_conflicts(db: Engine) -> list[dict[str, Any]]:
    with db.connect() as conn:
        rows = conn.execute(sa.select(conflict_t).where(conflict_t.c.resolved_at.is_(None)))
        return [dict(row) for row in rows.mappings()]


@pytest.mark.timeout(600)
def test_10000_changed_skus_go_out_as_one_feed_and_fba_is_never_written(sqlite_url: str) -> None:
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6))
    skus = [f"SKU-{n:05d}" for n in range(10_000)]
    db = open_ledger_engine(sqlite_url)
    with AmazonEmulator(refresh_token=REFRESH, client_id=APP_ID, client_secret=CLIENT_SECRET,
                        seller_id=SELLER, rate_limits=False, feed_delay=0, clock=clock) as emu, \
            httpx.Client(base_url=emu.url, timeout=30) as control:
        with emu.lock:  # in-process: 10,000 creations through /_sandbox/ would take minutes
            for sku in skus:
                clock.advance(0.01)  # created over 100 s, as a real catalog grows
                emu.set_listing(sku, 0, {})
            emu.set_listing("FBA-MUG", 40, {"fulfillment": "AFN"})
        count(db, {**dict.fromkeys(skus, 5), "FBA-MUG": 3}, clock())
        engine = sync_engine(db, emu.url)
        try:
            # First sync: the listings are discovered and their targets pushed.
            (report,) = engine.sync()
            assert not report.error, report.error
            assert report.listings == 10_001 and report.pushed == 10_000
            first = emu.stats()["requests"]
            assert first.get("createFeed") == 1 and not first.get("patchListingsItem")
            # Every SKU changes at once: still one feed, not 10,000 calls.
            count(db, dict.fromkeys(skus, 7), datetime.now(UTC))
            engine.plan_outbox(["amazon"], skus)  # as a stock count through the app does
            (report,) = engine.sync(read_back=False)
            assert not report.error, report.error
            assert report.pushed == 10_000
        finally:
            engine.close()
        requests = emu.stats()["requests"]
        assert requests["createFeed"] == 2 and requests["createFeedDocument"] == 2
        assert not requests.get("patchListingsItem")
        quantities = shown(control)
        assert {quantities[sku] for sku in skus} == {7}
        assert quantities["FBA-MUG"] == 40  # Amazon's stock: never written
        documents = [feed["document"] for feed in control.get("/_sandbox/feeds").json()["feeds"]]
        assert len(documents) == 2
        for document in documents:
            jsonschema.Draft7Validator(FEED_SCHEMA).validate(document)
            assert "FBA-MUG" not in {m["sku"] for m in document["messages"]}
    assert open_conflicts(db) == []
    db.dispose()


def test_throttling_and_server_errors_lose_no_order(sqlite_url: str) -> None:
    """Amazon's rate limits enforced (scaled up 100 times for speed, stated in the
    x-amzn-RateLimit-Limit header the connector follows), a one-second order visibility
    lag, and injected 429s and 5xx, bodiless ones among them."""
    skus = [f"MUG-{n:02d}" for n in range(12)]
    shift = [timedelta(0)]
    db = open_ledger_engine(sqlite_url)
    with AmazonEmulator(refresh_token=REFRESH, client_id=APP_ID, client_secret=CLIENT_SECRET,
                        seller_id=SELLER, rate_limits=100.0, visibility_lag=1.0,
                        feed_delay=0.05, seed=5) as emu, \
            httpx.Client(base_url=emu.url, timeout=10) as control:
        for sku in skus:
            control.post("/_sandbox/listings", json={"sku": sku, "quantity": 0})
        control.post("/_sandbox/listings", json={"sku": "FBA-MUG", "quantity": 9,
                                                 "fulfillment": "AFN"})
        count(db, {**dict.fromkeys(skus, 10), "FBA-MUG": 1}, datetime.now(UTC))
        # The engine's clock runs ahead a minute a round, so that parked pushes come due.
        engine = sync_engine(db, emu.url, sleep=time.sleep,
                             clock=lambda: datetime.now(UTC) + shift[0])
        try:
            settle(engine, control, dict.fromkeys(skus, 10), shift)
            control.post("/_sandbox/faults", json={"throttle_rate": 0.3, "error_rate": 0.2,
                                                   "seed": 11, "retry_after": 0})
            placed: dict[str, tuple[str, int]] = {}
            for n in range(10):
                sku, quantity = skus[n % len(skus)], 1 + n % 3
                response = control.post("/_sandbox/orders",
                                        json={"lines": [{"sku": sku, "quantity": quantity}]})
                assert response.status_code == 201, response.text
                placed[response.json()["order_id"]] = (sku, quantity)
            for _ in range(8):
                engine.sync()
                shift[0] += timedelta(minutes=1)
                time.sleep(0.1)
            faults = emu.stats()
            control.post("/_sandbox/faults", json={})
            time.sleep(1.0)  # the visibility lag
            sold = dict.fromkeys(skus, 0)
            for sku, quantity in placed.values():
                sold[sku] += quantity
            settle(engine, control, {sku: 10 - sold[sku] for sku in skus}, shift)
        finally:
            engine.close()
        assert faults["throttled"] > 0 and faults["errors"] > 0
        with db.connect() as conn:
            lines = conn.execute(sa.select(line_t.c.order_id, line_t.c.channel_sku,
                                           line_t.c.ordered)).all()
        assert {order_id: (sku, ordered) for order_id, sku, ordered in lines} == placed
        quantities = shown(control)
        assert {sku: quantities[sku] for sku in skus} == {sku: 10 - sold[sku] for sku in skus}
        assert quantities["FBA-MUG"] == 9
    db.dispose()
