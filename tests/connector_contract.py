"""The contract every connector passes, against its channel's emulator.

Like vdirsyncer's ``StorageTests``: a connector's test module subclasses ``ConnectorContract``
as ``TestXxxContract`` and provides

- an ``emulator`` fixture: a started emulator (anything with ``.url``), built with the
  contract's ``clock`` fixture (``clock=clock``) and stopped on teardown;
- ``make_connector(emulator)``: the connector under test, pointed at the emulator;
- ``secrets``: the credential values that must never show up in a repr, message or log;
- optionally ``make_unauthorized_connector(emulator)`` (wrong credentials), a ``since``
  fixture, ``order_key`` and the channel quirks declared as class attributes below.

The suite speaks only through the ``Connector`` protocol and the emulator's shared
``/_sandbox/`` control API over HTTP, so it runs unchanged for any channel. The emulator's
clock stands still unless a test moves it: every change then falls into one second, which is
where whole-second APIs lose changes, and a test can age orders without waiting.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from channelsync.connector import (
    Capabilities,
    ChannelListing,
    Connector,
    Fulfils,
    ListingProblem,
    OrderLineSnapshot,
    OrderPage,
    PushItem,
    PushResult,
    Shipment,
    ShipmentLine,
    ShipmentResult,
)
from channelsync.errors import (
    ChannelError,
    PermanentChannelError,
    RetriableChannelError,
    ThrottledError,
)
from channelsync.ledger import apply as ledger
from channelsync.ledger import schema
from channelsync.ledger.migrate import open_ledger_engine
from channelsync.ledger.stock import StockRow, set_stock
from tests.ledger_helpers import check_invariants

LARGE = 1_000_000
MAX_PAGES = 50  # more pages than any test here needs: a token that never ends fails fast
LEDGER_CHANNEL = "contract"
LineKey = tuple[str, str]


class ManualClock:
    """The emulator's clock: stands still until a test moves it."""

    def __init__(self, start: datetime) -> None:
        self.start = self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Sandbox:
    """The emulator's shared ``/_sandbox/`` control API, over HTTP."""

    def __init__(self, url: str, listing_extra: Mapping[str, Any]) -> None:
        self.http = httpx.Client(base_url=url, timeout=10)
        self.listing_extra = dict(listing_extra)

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        response = self.http.request(method, f"/_sandbox/{path}", json=body)
        assert response.status_code == expect, f"{method} {path}: {response.text}"
        return response.json()

    def add_listings(self, quantities: Mapping[str, int]) -> None:
        for sku, quantity in quantities.items():
            self.call("POST", "listings", {"sku": sku, "quantity": quantity, **self.listing_extra})

    def quantities(self) -> dict[str, int]:
        return {row["sku"]: row["quantity"] for row in self.call("GET", "listings")["listings"]}

    def order_response(self, *lines: tuple[str, int]) -> httpx.Response:
        return self.http.post("/_sandbox/orders", json=_order_body(lines))

    def order(self, *lines: tuple[str, int]) -> str:
        return str(self.call("POST", "orders", _order_body(lines), expect=201)["order_id"])

    def cancel(self, order_id: str) -> None:
        self.call("POST", f"orders/{order_id}/cancel")

    def ship(self, order_id: str) -> None:
        self.call("POST", f"orders/{order_id}/ship")

    def faults(self, **body: float) -> None:
        self.call("POST", "faults", body)

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.call("GET", "stats")
        return stats


def _order_body(lines: Sequence[tuple[str, int]]) -> dict[str, Any]:
    return {"lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines]}


class Watched:
    """A connector that remembers every error it raised or reported, to check for secrets."""

    def __init__(self, inner: Connector, seen: list[BaseException]) -> None:
        self.inner, self.seen = inner, seen
        self.capabilities: Capabilities = inner.capabilities

    def __repr__(self) -> str:
        return repr(self.inner)

    def pull_orders(self, since: datetime, page: str | None) -> OrderPage:
        try:
            return self.inner.pull_orders(since, page)
        except Exception as exc:
            self.seen.append(exc)
            raise

    def push_quantities(self, items: Sequence[PushItem]) -> list[PushResult]:
        try:
            results = self.inner.push_quantities(items)
        except Exception as exc:
            self.seen.append(exc)
            raise
        self.seen += [r.error for r in results if r.error is not None]
        return results

    def read_listings(self) -> Iterator[ChannelListing | ListingProblem]:
        try:
            yield from self.inner.read_listings()
        except Exception as exc:
            self.seen.append(exc)
            raise

    def close(self) -> None:
        self.inner.close()


class ConnectorContract:
    """Behaviour every connector shows against its emulator. Subclass as ``TestXxxContract``."""

    # -- hooks: what a channel declares --------------------------------------------------------

    secrets: ClassVar[tuple[str, ...]] = ()  # credential values, never to be shown
    order_page_size: ClassVar[int] = 100  # orders per pull_orders page
    listing_page_size: ClassVar[int] = 100  # listings per page read by read_listings
    open_status: ClassVar[str | None] = None  # status of a new sandbox order (None: unchecked)
    cancel_restores_stock: ClassVar[bool] = True  # the channel puts cancelled units back on sale
    throttle_sends_retry_after: ClassVar[bool] = True  # its 429s carry Retry-After
    listing_extra: ClassVar[Mapping[str, Any]] = {}  # more fields for POST /_sandbox/listings

    def make_connector(self, emulator: Any) -> Connector:
        raise NotImplementedError("a contract subclass builds its connector")

    def make_unauthorized_connector(self, emulator: Any) -> Connector | None:
        """The connector with credentials the emulator refuses (None: not tested)."""
        return None

    def order_key(self, sandbox_order_id: str) -> str:
        """The ``order_id`` a snapshot carries for the order the sandbox created."""
        return sandbox_order_id

    @pytest.fixture
    def emulator(self, clock: ManualClock) -> Any:
        raise NotImplementedError("a contract subclass provides a started emulator")

    @pytest.fixture
    def clock(self) -> ManualClock:
        """Hours in the past, on a whole second, so that tests can age orders without waiting."""
        return ManualClock(datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6))

    @pytest.fixture
    def since(self, clock: ManualClock) -> datetime:
        return clock.start - timedelta(days=1)

    # -- fixtures the tests use ----------------------------------------------------------------

    @pytest.fixture
    def sandbox(self, emulator: Any) -> Iterator[Sandbox]:
        control = Sandbox(emulator.url, self.listing_extra)
        yield control
        control.close()

    @pytest.fixture
    def seen(self) -> list[BaseException]:
        return []

    @pytest.fixture
    def connector(
        self, emulator: Any, seen: list[BaseException], caplog: pytest.LogCaptureFixture
    ) -> Iterator[Watched]:
        caplog.set_level(logging.INFO)  # httpx logs each request's URL at INFO
        caplog.set_level(logging.DEBUG, logger="connectors")
        watched = Watched(self.make_connector(emulator), seen)
        yield watched
        watched.close()
        self.assert_no_secrets([repr(watched), *_texts(seen), *_logged(caplog)])

    def assert_no_secrets(self, texts: Sequence[str]) -> None:
        for text in texts:
            for secret in self.secrets:
                assert secret not in text, f"a credential shows in: {text[:300]!r}"

    # -- helpers -------------------------------------------------------------------------------

    def pull_all(self, connector: Watched, since: datetime) -> list[OrderPage]:
        pages: list[OrderPage] = []
        token: str | None = None
        for _ in range(MAX_PAGES):
            page = connector.pull_orders(since, token)
            assert not page.bad_records, f"an emulator order could not be read: {page.bad_records}"
            pages.append(page)
            token = page.next_page
            if token is None:
                return pages
        raise AssertionError(f"next_page still set after {MAX_PAGES} pages")

    def pulled(self, connector: Watched, since: datetime) -> dict[LineKey, OrderLineSnapshot]:
        return latest(self.pull_all(connector, since))

    def lines_of(
        self, snaps: Mapping[LineKey, OrderLineSnapshot], order_id: str
    ) -> list[OrderLineSnapshot]:
        """The lines of the order the sandbox created as ``order_id``."""
        key = self.order_key(order_id)
        return sorted((s for s in snaps.values() if s.order_id == key), key=lambda s: s.line_id)

    def refs(self, connector: Watched) -> dict[str, ChannelListing]:
        return {listing.channel_sku: listing for listing in connector.read_listings()
                if isinstance(listing, ChannelListing)}

    # -- 0. the protocol -----------------------------------------------------------------------

    def test_implements_the_connector_protocol(self, connector: Watched) -> None:
        assert isinstance(connector.inner, Connector)
        caps = connector.capabilities
        assert isinstance(caps, Capabilities)
        assert caps.push_batch_size >= 1 and caps.requests_per_second > 0 and caps.burst >= 1
        assert caps.overlap >= timedelta(0)

    # -- 1. reading listings -------------------------------------------------------------------

    def test_read_listings_returns_every_listing_with_its_quantity(
        self, connector: Watched, sandbox: Sandbox
    ) -> None:
        created = {"CT-ZERO": 0, "CT-LARGE": LARGE, "CT-FIVE": 5}
        sandbox.add_listings(created)
        listings = list(connector.read_listings())
        assert sorted(li.channel_sku for li in listings) == sorted(created)  # each exactly once
        for listing in listings:
            assert listing.quantity == created[listing.channel_sku]
            assert isinstance(listing.ref, str) and listing.ref, listing
            assert listing.managed

    def test_read_listings_follows_every_page(self, connector: Watched, sandbox: Sandbox) -> None:
        created = {f"CT-L{i:04d}": i % 7 for i in range(self.listing_page_size + 1)}
        sandbox.add_listings(created)
        listings = list(connector.read_listings())
        assert sorted(li.channel_sku for li in listings) == sorted(created)
        assert {li.channel_sku: li.quantity for li in listings} == created
        assert len({li.ref for li in listings}) == len(created)

    # -- 2. pushing quantities -----------------------------------------------------------------

    def test_push_sets_quantities_and_refuses_only_the_unknown_sku(
        self, connector: Watched, sandbox: Sandbox
    ) -> None:
        sandbox.add_listings({"CT-A": 3, "CT-B": 3, "CT-C": 3})
        items = [PushItem("CT-C", 7), PushItem("CT-NOSUCH", 5), PushItem("CT-A", 0),
                 PushItem("CT-B", LARGE)]
        results = connector.push_quantities(items)
        assert [r.channel_sku for r in results] == [i.channel_sku for i in items]
        assert [r.ok for r in results] == [True, False, True, True]
        assert isinstance(results[1].error, PermanentChannelError)
        assert all(r.error is None for r in results if r.ok)
        assert sandbox.quantities() == {"CT-A": 0, "CT-B": LARGE, "CT-C": 7}
        shown = self.refs(connector)
        assert {sku: li.quantity for sku, li in shown.items()} == sandbox.quantities()

    def chunk_size(self, connector: Connector) -> int:
        """How many items the engine-sized chunk test pushes per call (hook)."""
        return connector.capabilities.push_batch_size

    def test_push_in_engine_sized_chunks_sets_every_quantity(
        self, connector: Watched, sandbox: Sandbox
    ) -> None:
        size = self.chunk_size(connector)
        before = {f"CT-P{i:04d}": 1 for i in range(size + 3)}
        sandbox.add_listings(before)
        listings = self.refs(connector)
        assert set(listings) == set(before)
        wanted = {sku: (i * 37) % 11 for i, sku in enumerate(sorted(before))}
        wanted["CT-P0000"], wanted["CT-P0001"] = 0, LARGE
        items = [PushItem(sku, qty, listings[sku].ref, expected=listings[sku].quantity)
                 for sku, qty in wanted.items()]
        results: list[PushResult] = []
        for start in range(0, len(items), size):  # as the engine splits the outbox
            chunk = items[start:start + size]
            answer = connector.push_quantities(chunk)
            assert [r.channel_sku for r in answer] == [i.channel_sku for i in chunk]
            results += answer
        assert [r for r in results if not r.ok] == []
        assert sandbox.quantities() == wanted

    # -- 3. pulling orders ---------------------------------------------------------------------

    def test_orders_arrive_as_line_snapshots(
        self, connector: Watched, sandbox: Sandbox, since: datetime
    ) -> None:
        sandbox.add_listings({"CT-MUG": 10, "CT-CUP": 10})
        order_id = sandbox.order(("CT-MUG", 2), ("CT-CUP", 3))
        assert sandbox.quantities() == {"CT-MUG": 8, "CT-CUP": 7}  # the channel's own decrement
        lines = self.lines_of(self.pulled(connector, since), order_id)
        assert sorted((s.channel_sku, s.ordered) for s in lines) == [("CT-CUP", 3), ("CT-MUG", 2)]
        assert len({s.line_id for s in lines}) == 2
        for snap in lines:
            assert (snap.shipped, snap.cancelled, snap.restocked, snap.ignore) == (0, 0, 0, False)
            assert snap.changed_at.tzinfo is not None and snap.changed_at >= since
            if self.open_status is not None:
                assert snap.status == self.open_status

    def test_cancel_and_ship_show_in_a_later_pull(
        self, connector: Watched, sandbox: Sandbox, since: datetime, clock: ManualClock
    ) -> None:
        sandbox.add_listings({"CT-MUG": 10})
        cancelled, shipped = sandbox.order(("CT-MUG", 2)), sandbox.order(("CT-MUG", 3))
        first = self.pulled(connector, since)
        assert [s.ordered - s.shipped - s.cancelled for s in self.lines_of(first, cancelled)] == [2]
        clock.advance(60)
        sandbox.cancel(cancelled)
        sandbox.ship(shipped)
        later = self.pulled(connector, since)
        [c] = self.lines_of(later, cancelled)
        [s] = self.lines_of(later, shipped)
        assert (c.ordered, c.cancelled, c.shipped) == (2, 2, 0)  # reservation 0
        assert (s.ordered, s.shipped, s.cancelled) == (3, 3, 0)
        assert c.changed_at > first[(c.order_id, c.line_id)].changed_at
        assert sandbox.quantities() == {"CT-MUG": 7 if self.cancel_restores_stock else 5}

    def test_pagination_yields_every_line_and_few_twice(
        self, connector: Watched, sandbox: Sandbox, since: datetime
    ) -> None:
        total = self.order_page_size + 1
        sandbox.add_listings({"CT-A": 3 * total, "CT-B": 3 * total})
        orders = {self.order_key(sandbox.order((("CT-A", "CT-B")[i % 2], 1 + i % 3)))
                  for i in range(total)}
        pages = self.pull_all(connector, since)
        assert len(pages) >= 2
        keys = [(s.order_id, s.line_id) for p in pages for s in p.lines]
        assert len(set(keys)) == total  # every line
        # At least once is the contract (the ledger ignores a repeat), but a connector
        # must not re-read whole pages: at most the lines of one boundary come twice.
        assert len(keys) - total < self.order_page_size
        assert {order_id for order_id, _ in keys} == orders

    def test_an_order_changing_between_pages_hides_no_other_order(
        self, connector: Watched, sandbox: Sandbox, since: datetime, clock: ManualClock
    ) -> None:
        """At least once: what the engine pulls now, plus its next pull, has every change."""
        total = self.order_page_size + 1
        sandbox.add_listings({"CT-A": total})
        created = [sandbox.order(("CT-A", 1)) for _ in range(total)]
        orders = {self.order_key(order_id): order_id for order_id in created}
        clock.advance((connector.capabilities.overlap + timedelta(hours=1)).total_seconds())
        first = connector.pull_orders(since, None)
        assert first.next_page is not None and first.lines
        changed = first.lines[0]
        sandbox.cancel(orders[changed.order_id])  # a buyer cancels while the engine is paging
        pages = [first]
        while pages[-1].next_page is not None and len(pages) < MAX_PAGES:
            pages.append(connector.pull_orders(since, pages[-1].next_page))
        cursor = max(p.resume_at for p in pages if p.resume_at is not None)
        pages += self.pull_all(connector, cursor - connector.capabilities.overlap)
        seen = latest(pages)
        missing = set(orders) - {order_id for order_id, _ in seen}
        assert not missing, f"{len(missing)} order(s) never pulled, e.g. {sorted(missing)[:3]}"
        assert seen[(changed.order_id, changed.line_id)].cancelled == changed.ordered

    # -- 4. cursors ----------------------------------------------------------------------------

    def test_cursor_only_moves_forward_and_overlap_catches_later_changes(
        self, connector: Watched, sandbox: Sandbox, since: datetime, clock: ManualClock
    ) -> None:
        total = self.order_page_size + 1
        sandbox.add_listings({"CT-A": total + 5})
        orders = [sandbox.order(("CT-A", 1)) for _ in range(total)]
        pages = self.pull_all(connector, since)
        cursor = check_forward(pages, since, clock())
        clock.advance(0.4)  # within the same second as the last change, if it was on one
        sandbox.cancel(orders[0])
        clock.advance(30)
        late = sandbox.order(("CT-A", 2))
        window = cursor - connector.capabilities.overlap
        again = self.pull_all(connector, window)
        moved = check_forward(again, window, clock())
        assert moved > cursor
        seen = latest(again)
        [cancelled] = self.lines_of(seen, orders[0])
        assert cancelled.cancelled == cancelled.ordered == 1
        assert [s.ordered for s in self.lines_of(seen, late)] == [2]

    # -- 5. idempotent re-pulls into a real ledger ----------------------------------------------

    def test_repulling_a_window_changes_nothing_in_the_ledger(
        self, connector: Watched, sandbox: Sandbox, since: datetime, clock: ManualClock,
        sqlite_url: str,
    ) -> None:
        sandbox.add_listings({"CT-A": 20, "CT-B": 20})
        sandbox.order(("CT-A", 2), ("CT-B", 1))
        sandbox.order(("CT-A", 1))
        sandbox.cancel(sandbox.order(("CT-A", 3)))
        sandbox.ship(sandbox.order(("CT-B", 4)))
        engine = open_ledger_engine(sqlite_url)
        try:
            with engine.begin() as conn:
                set_stock(conn, [StockRow("CT-A", 50), StockRow("CT-B", 50)], now=since,
                          reason="count before the orders")
            first = apply_window(engine, self.pull_all(connector, since), clock())
            assert first.applied == 5 and first.pending == first.stale == 0
            after_first = stock_of(engine)
            assert after_first == {"CT-A": (50, 3), "CT-B": (46, 1)}  # (on hand, reserved)
            second = apply_window(engine, self.pull_all(connector, since), clock())
            assert (second.applied, second.unchanged, second.touched) == (0, 5, set())
            cursor = cursor_of(engine)
            assert cursor is not None and cursor > since
            third = apply_window(
                engine, self.pull_all(connector, cursor - connector.capabilities.overlap), clock())
            assert third.applied == 0 and third.touched == set()
            assert stock_of(engine) == after_first
            check_invariants(engine)
        finally:
            engine.dispose()

    # -- 6. error mapping ----------------------------------------------------------------------

    def test_throttling_is_retriable_and_says_when(
        self, connector: Watched, sandbox: Sandbox, since: datetime
    ) -> None:
        sandbox.add_listings({"CT-A": 5})
        listing = self.refs(connector)["CT-A"]
        sandbox.faults(throttle_rate=1.0, seed=1, retry_after=7)
        with pytest.raises(ThrottledError) as caught:
            connector.pull_orders(since, None)
        assert isinstance(caught.value, RetriableChannelError)
        if self.throttle_sends_retry_after:
            assert caught.value.retry_after == 7
        with pytest.raises(ThrottledError):
            list(connector.read_listings())
        self.assert_push_retriable(connector, PushItem("CT-A", 1, listing.ref, listing.quantity))
        assert sandbox.stats()["throttled"] >= 3
        self.assert_control_api_works_and_faults_clear(connector, sandbox, since)

    def test_server_errors_are_retriable(
        self, connector: Watched, sandbox: Sandbox, since: datetime
    ) -> None:
        sandbox.add_listings({"CT-A": 5})
        listing = self.refs(connector)["CT-A"]
        sandbox.faults(error_rate=1.0, seed=1)
        for _ in range(4):  # a channel may answer 5xx in several shapes (JSON, a proxy's HTML)
            with pytest.raises(RetriableChannelError) as caught:
                connector.pull_orders(since, None)
            assert not isinstance(caught.value, ThrottledError)
        with pytest.raises(RetriableChannelError):
            list(connector.read_listings())
        self.assert_push_retriable(connector, PushItem("CT-A", 1, listing.ref, listing.quantity))
        assert sandbox.stats()["errors"] >= 6
        self.assert_control_api_works_and_faults_clear(connector, sandbox, since)

    def assert_push_retriable(self, connector: Watched, item: PushItem) -> None:
        """A failing channel either raises a retriable error or reports one for the item."""
        try:
            [result] = connector.push_quantities([item])
        except RetriableChannelError:
            return
        assert not result.ok and isinstance(result.error, RetriableChannelError), result

    def assert_control_api_works_and_faults_clear(
        self, connector: Watched, sandbox: Sandbox, since: datetime
    ) -> None:
        sandbox.add_listings({"CT-B": 4})
        order_id = sandbox.order(("CT-B", 1))
        assert sandbox.quantities() == {"CT-A": 5, "CT-B": 3}
        assert sandbox.stats()["requests"]
        sandbox.faults()  # every rate back to 0
        [line] = self.lines_of(self.pulled(connector, since), order_id)
        assert (line.channel_sku, line.ordered) == ("CT-B", 1)
        assert {li.channel_sku for li in connector.read_listings()} == {"CT-A", "CT-B"}

    # -- 7. secrets ----------------------------------------------------------------------------

    def test_no_credential_in_repr_errors_or_logs(
        self, connector: Watched, sandbox: Sandbox, since: datetime, emulator: Any,
        seen: list[BaseException], caplog: pytest.LogCaptureFixture,
    ) -> None:
        assert self.secrets, "a contract subclass names the credentials it configured"
        sandbox.add_listings({"CT-A": 5})
        connector.push_quantities([PushItem("CT-NOSUCH", 1)])
        for fault in ({"throttle_rate": 1.0}, {"error_rate": 1.0}):
            sandbox.faults(**fault)
            with pytest.raises(RetriableChannelError):
                connector.pull_orders(since, None)
        sandbox.faults()
        refused = self.make_unauthorized_connector(emulator)
        if refused is not None:
            watched = Watched(refused, seen)
            try:
                with pytest.raises(PermanentChannelError):
                    watched.pull_orders(since, None)
                with pytest.raises(PermanentChannelError):
                    list(watched.read_listings())
                assert_push_fails(watched, PushItem("CT-A", 1))
                self.assert_no_secrets([repr(watched)])
            finally:
                watched.close()
        assert len(seen) >= 3 + (3 if refused is not None else 0)
        self.assert_no_secrets([repr(connector), str(connector), *_texts(seen), *_logged(caplog)])

    # -- 8. the emulator refuses to oversell ---------------------------------------------------

    def test_emulator_refuses_to_sell_more_than_listed(
        self, connector: Watched, sandbox: Sandbox, since: datetime
    ) -> None:
        sandbox.add_listings({"CT-A": 2, "CT-B": 5})
        for lines in ([("CT-A", 3)], [("CT-B", 1), ("CT-A", 3)]):  # all lines or none
            response = sandbox.order_response(*lines)
            assert response.status_code == 409, response.text
        assert sandbox.quantities() == {"CT-A": 2, "CT-B": 5}
        assert self.pulled(connector, since) == {}
        sandbox.order(("CT-A", 2))
        assert sandbox.order_response(("CT-A", 1)).status_code == 409
        assert sandbox.quantities() == {"CT-A": 0, "CT-B": 5}
        assert [s.ordered for s in self.pulled(connector, since).values()] == [2]

    # -- 9. confirming shipments ---------------------------------------------------------------
    # Every built-in connector implements ``Fulfils``; its emulator records each shipment and
    # lists it in ``GET /_sandbox/orders/{id}`` as ``"shipments": [{"carrier", "tracking",
    # "lines": [{"sku", "quantity"}]}]``, and counts its fulfilment call as a write (so the
    # ``lost_answer_rate`` fault applies to it).

    partial_shipments: ClassVar[bool] = True  # a shipment may carry some lines of an order
    checks_tracking: ClassVar[bool] = True  # the channel refuses a malformed tracking number

    def shipment(self, connector: Watched, since: datetime, order_id: str, tracking: str,
                 *, lines: int | None = None, key: str = "") -> Shipment:
        """A shipment of the order's lines as pulled (the first ``lines`` of them)."""
        snaps = self.lines_of(self.pulled(connector, since), order_id)
        assert snaps, f"order {order_id} not pulled"
        chosen = snaps if lines is None else snaps[:lines]
        return Shipment(self.order_key(order_id),
                        [ShipmentLine(s.line_id, s.channel_sku, s.ordered) for s in chosen],
                        "DHL", tracking, key or f"cs-contract-{tracking}",
                        datetime.now(UTC), completes_order=len(chosen) == len(snaps))

    def shipped_on_channel(self, sandbox: Sandbox, order_id: str) -> list[dict[str, Any]]:
        row = sandbox.call("GET", f"orders/{order_id}")
        shipments: list[dict[str, Any]] = row["shipments"]
        return shipments

    def confirm(self, connector: Watched, shipment: Shipment) -> ShipmentResult:
        inner = connector.inner
        assert isinstance(inner, Fulfils), "a built-in connector confirms shipments"
        try:
            result = inner.confirm_shipment(shipment)
        except Exception as exc:
            connector.seen.append(exc)
            raise
        if result.error is not None:
            connector.seen.append(result.error)
        return result

    def test_a_shipment_is_confirmed_with_its_carrier_and_tracking_number(
        self, connector: Watched, sandbox: Sandbox, since: datetime
    ) -> None:
        sandbox.add_listings({"CT-A": 5, "CT-B": 5})
        order_id = sandbox.order(("CT-A", 2), ("CT-B", 1))
        result = self.confirm(connector, self.shipment(connector, since, order_id, "TRK0001"))
        assert result.ok and result.error is None and not result.already
        (shipped,) = self.shipped_on_channel(sandbox, order_id)
        assert (shipped["carrier"], shipped["tracking"]) == ("DHL", "TRK0001")
        assert sorted((x["sku"], x["quantity"]) for x in shipped["lines"]) == [
            ("CT-A", 2), ("CT-B", 1)]
        after = self.lines_of(self.pulled(connector, since), order_id)
        assert [s.shipped for s in after] == [s.ordered for s in after]  # the channel says so

    def test_the_same_shipment_again_is_found_not_created_twice(
        self, connector: Watched, sandbox: Sandbox, since: datetime
    ) -> None:
        sandbox.add_listings({"CT-A": 5})
        order_id = sandbox.order(("CT-A", 1))
        shipment = self.shipment(connector, since, order_id, "TRK0002")
        assert self.confirm(connector, shipment).ok
        again = self.confirm(connector, shipment)
        assert again.ok and again.already
        assert len(self.shipped_on_channel(sandbox, order_id)) == 1

    def test_a_lost_answer_then_a_retry_is_one_shipment(
        self, connector: Watched, sandbox: Sandbox, since: datetime
    ) -> None:
        sandbox.add_listings({"CT-A": 5})
        order_id = sandbox.order(("CT-A", 1))
        shipment = self.shipment(connector, since, order_id, "TRK0003")
        sandbox.faults(lost_answer_rate=1.0)
        with pytest.raises(RetriableChannelError):
            self.confirm(connector, shipment)
        sandbox.faults(lost_answer_rate=0.0)
        retry = self.confirm(connector, shipment)
        assert retry.ok and retry.already
        assert len(self.shipped_on_channel(sandbox, order_id)) == 1

    def test_a_partial_shipment_carries_only_its_lines(
        self, connector: Watched, sandbox: Sandbox, since: datetime
    ) -> None:
        if not self.partial_shipments:
            pytest.skip("this channel's orders show no partly shipped lines (see the README)")
        sandbox.add_listings({"CT-A": 5, "CT-B": 5})
        order_id = sandbox.order(("CT-A", 1), ("CT-B", 2))
        assert self.confirm(connector, self.shipment(connector, since, order_id, "TRK0004",
                                                     lines=1)).ok
        (shipped,) = self.shipped_on_channel(sandbox, order_id)
        assert len(shipped["lines"]) == 1
        after = self.lines_of(self.pulled(connector, since), order_id)
        assert [s.shipped for s in after] == [after[0].ordered, 0]
        first = self.shipment(connector, since, order_id, "TRK0005")
        rest = replace(first, lines=first.lines[1:], completes_order=True)
        assert self.confirm(connector, rest).ok
        assert [len(x["lines"]) for x in self.shipped_on_channel(sandbox, order_id)] == [1, 1]
        done = self.lines_of(self.pulled(connector, since), order_id)
        assert [s.shipped for s in done] == [s.ordered for s in done]

    def test_an_unknown_or_cancelled_order_is_refused_for_good(
        self, connector: Watched, sandbox: Sandbox, since: datetime
    ) -> None:
        sandbox.add_listings({"CT-A": 5})
        order_id = sandbox.order(("CT-A", 1))
        shipment = self.shipment(connector, since, order_id, "TRK0006")
        sandbox.cancel(order_id)
        refused = self.confirm(connector, shipment)
        assert not refused.ok and isinstance(refused.error, PermanentChannelError)
        assert self.shipped_on_channel(sandbox, order_id) == []
        ghost = replace(shipment, order_id=self.order_key("999999999"), key="cs-contract-ghost")
        unknown = self.confirm(connector, ghost)
        assert not unknown.ok and isinstance(unknown.error, PermanentChannelError)

    def test_a_malformed_tracking_number_is_refused(
        self, connector: Watched, sandbox: Sandbox, since: datetime
    ) -> None:
        if not self.checks_tracking:
            pytest.skip("this channel takes any text as tracking (see the README's notes)")
        sandbox.add_listings({"CT-A": 5})
        order_id = sandbox.order(("CT-A", 1))
        bad = self.shipment(connector, since, order_id, "not a tracking number!")
        refused = self.confirm(connector, bad)
        assert not refused.ok and isinstance(refused.error, PermanentChannelError)
        assert self.shipped_on_channel(sandbox, order_id) == []


# -- module helpers ------------------------------------------------------------------------------


def latest(pages: Sequence[OrderPage]) -> dict[LineKey, OrderLineSnapshot]:
    """The newest snapshot of each line across pages (on a tie, the later one)."""
    best: dict[LineKey, OrderLineSnapshot] = {}
    for snap in (s for page in pages for s in page.lines):
        key = (snap.order_id, snap.line_id)
        if key not in best or snap.changed_at >= best[key].changed_at:
            best[key] = snap
    return best


def check_forward(pages: Sequence[OrderPage], since: datetime, now: datetime) -> datetime:
    """The last cursor of a pull: resume_at values are aware, never fall, stay in the window."""
    stamps = [p.resume_at for p in pages if p.resume_at is not None]
    assert stamps, "no page of a non-empty pull lets the cursor move"
    assert all(s.tzinfo is not None and s.utcoffset() is not None for s in stamps)
    assert stamps == sorted(stamps), f"resume_at went back: {stamps}"
    assert since <= stamps[0] and stamps[-1] <= now, (since, stamps, now)
    return stamps[-1]


def assert_push_fails(connector: Watched, item: PushItem) -> None:
    try:
        [result] = connector.push_quantities([item])
    except ChannelError:
        return
    assert not result.ok and result.error is not None


def apply_window(engine: Engine, pages: Sequence[OrderPage], now: datetime) -> ledger.ApplyResult:
    """Apply each page in its own transaction, as the engine's pull does."""
    total = ledger.ApplyResult()
    for page in pages:
        with engine.begin() as conn:
            total.merge(ledger.apply_page(
                conn, LEDGER_CHANNEL, page.lines, master_sku=lambda sku: sku, now=now,
                resume_at=page.resume_at, bad_records=page.bad_records))
    return total


def stock_of(engine: Engine) -> dict[str, tuple[int, int]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(schema.sku_t.c.sku, schema.sku_t.c.on_hand,
                                      schema.sku_t.c.reserved))
        return {sku: (on_hand, reserved) for sku, on_hand, reserved in rows}


def cursor_of(engine: Engine) -> datetime | None:
    with engine.connect() as conn:
        cursor: datetime | None = conn.execute(sa.select(schema.state_t.c.cursor).where(
            schema.state_t.c.name == LEDGER_CHANNEL)).scalar()
        return cursor


def _texts(errors: Sequence[BaseException]) -> Iterator[str]:
    """Every message of every error, down its cause and context chain."""
    for error in errors:
        current: BaseException | None = error
        for _ in range(10):  # a chain is short; a cycle must not hang the test
            if current is None:
                break
            yield str(current)
            yield repr(current)
            current = current.__cause__ or current.__context__


def _logged(caplog: pytest.LogCaptureFixture) -> Iterator[str]:
    """What the connector and its HTTP client logged (the emulator's own log is not theirs)."""
    for record in caplog.records:
        if not record.name.startswith("channelsync.sandbox") and ".emulator" not in record.name:
            yield record.getMessage()
