"""Compare-and-set pushing (design.md, Echo-safe pushing), against a fake channel that has it.

Channel ``cas`` refuses a write whose ``expected`` is not what it shows, and says what it
shows (as Shopify's changeFromQuantity does); channel ``plain`` is an ordinary channel.
Runs on real SQLite and PostgreSQL ledgers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from channelsync import registry
from channelsync.config import Config, parse_config
from channelsync.errors import RetriableChannelError
from channelsync.ledger.schema import outbox_t
from channelsync.service import reports
from channelsync.sync.engine import STALE_ROUNDS, SyncEngine
from tests import fakes
from tests.ledger_helpers import check_invariants
from tests.test_engine import Clock, set_stock

CONFIG = """
[database]
url = "{url}"
[daemon]
retry_attempts = 3
retry_max_wait = 5
[[channel]]
name = "cas"
type = "fakecas"
[[channel]]
name = "plain"
type = "fake"
"""


@pytest.fixture(autouse=True)
def cas_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(registry.BUILTIN, "fake", "tests.fakes:FakeConnector")
    monkeypatch.setitem(registry.BUILTIN, "fakecas", "tests.fakes:FakeCasConnector")
    registry.load_connector.cache_clear()
    fakes.CHANNELS.clear()
    yield
    registry.load_connector.cache_clear()
    fakes.CHANNELS.clear()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def start(engine: Engine, clock: Clock, mugs: int = 5) -> tuple[SyncEngine, Config]:
    """Both channels list MUG; the ledger has ``mugs``; one cycle makes both show them."""
    url = engine.url.render_as_string(hide_password=False)
    config = parse_config(CONFIG.format(url=url), env={})
    sync = SyncEngine(config, engine, clock=clock, sleep=lambda _s: None)
    for name in ("cas", "plain"):
        fakes.CHANNELS[name] = fakes.FakeChannel(name, clock=clock, quantities={"MUG": 0})
    set_stock(engine, config, clock, MUG=mugs)
    sync.sync()
    assert shows() == (mugs, mugs)
    clock.tick()
    return sync, config


def shows() -> tuple[int, int]:
    return fakes.CHANNELS["cas"].quantities["MUG"], fakes.CHANNELS["plain"].quantities["MUG"]


def stale_compares(engine: Engine, config: Config, clock: Clock) -> int:
    with engine.connect() as conn:
        data = reports.status(conn, config, clock())
    (row,) = [c for c in data["channels"] if c["name"] == "cas"]
    return int(row["stale_compares"])


def test_a_sale_between_our_read_and_our_write_is_not_put_back_on_sale(
    engine: Engine, clock: Clock
) -> None:
    sync, config = start(engine, clock)
    cas, plain = fakes.CHANNELS["cas"], fakes.CHANNELS["plain"]
    plain.sell(("MUG", 1))  # the ledger will want cas to show 4
    clock.tick()
    # ...and in the instant between the pull and our write, a buyer takes one on cas itself.
    cas.before_write.append(lambda: cas.sell(("MUG", 1)))
    events: list[dict[str, Any]] = []
    sync.events.subscribe(lambda event, fields: events.append(fields)
                          if event == "push_done" and fields["channel"] == "cas" else None)
    (report_cas, _) = sync.sync()
    # Without compare-and-set cas would now show 4, one unit more than exists: an oversell.
    assert shows() == (3, 3)
    assert report_cas.stale_compares == 1
    first, second = cas.pushes[-2:]
    assert (first[0].quantity, first[0].expected) == (4, 5)  # refused: cas showed 4
    assert (second[0].quantity, second[0].expected) == (3, 4)  # after pulling cas's sale
    assert stale_compares(engine, config, clock) == 1
    assert [(e["pushed"], e["stale"]) for e in events] == [(0, 1), (1, 0)]  # -> /metrics
    check_invariants(engine)


def test_a_sale_on_the_channel_itself_is_expected_and_costs_no_refusal(
    engine: Engine, clock: Clock
) -> None:
    sync, config = start(engine, clock)
    cas = fakes.CHANNELS["cas"]
    order = cas.sell(("MUG", 2))  # cas shows 3 by itself
    clock.tick()
    sync.sync()
    assert shows() == (3, 3)
    (write,) = cas.pushes[-1]
    assert (write.quantity, write.expected) == (3, 3)  # we knew it shows 3: no stale round
    clock.tick()
    cas.set_status(order, "cancelled")  # the channel puts both back itself
    clock.tick()
    sync.sync()
    assert shows() == (5, 5)
    assert stale_compares(engine, config, clock) == 0


def test_a_channel_that_keeps_changing_waits_in_the_outbox(engine: Engine, clock: Clock) -> None:
    sync, config = start(engine, clock)
    cas, plain = fakes.CHANNELS["cas"], fakes.CHANNELS["plain"]
    plain.sell(("MUG", 1))
    clock.tick()
    sync.sync(["plain"], read_back=False)  # the sale is in; cas is due to show 4
    # A manual edit on the channel before every write of this cycle: always refused.
    edits = iter(range(20, 20 + STALE_ROUNDS))
    cas.before_write.extend(
        (lambda: cas.quantities.__setitem__("MUG", next(edits))) for _ in range(STALE_ROUNDS))
    report = sync.sync(["cas"], read_back=False)[0]
    assert report.stale_compares == STALE_ROUNDS
    assert cas.quantities["MUG"] == 20 + STALE_ROUNDS - 1  # nothing overwritten
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(outbox_t).where(
            outbox_t.c.channel == "cas")).scalar() == 1
    clock.tick()
    sync.sync(["cas"], read_back=False)
    assert cas.quantities["MUG"] == 4  # the next cycle, expecting what it was told
    assert stale_compares(engine, config, clock) == STALE_ROUNDS


def test_a_retried_write_carries_the_same_operation_key(engine: Engine, clock: Clock) -> None:
    sync, _config = start(engine, clock)
    cas, plain = fakes.CHANNELS["cas"], fakes.CHANNELS["plain"]
    plain.sell(("MUG", 1))
    clock.tick()
    sync.sync(["plain"], read_back=False)
    cas.push_errors.append(RetriableChannelError("timed out"))
    sync.sync(["cas"], read_back=False)
    lost, retried = cas.calls[-2:]
    assert lost == retried  # same quantity, expectation and key: the channel can dedupe it
    assert retried[0].key
    assert cas.quantities["MUG"] == 4
    clock.tick()
    plain.sell(("MUG", 1))
    clock.tick()
    sync.sync()
    assert cas.calls[-1][0].key != retried[0].key  # a new write is a new operation


def test_what_a_read_back_shows_becomes_the_expectation(engine: Engine, clock: Clock) -> None:
    sync, config = start(engine, clock)
    cas, plain = fakes.CHANNELS["cas"], fakes.CHANNELS["plain"]
    cas.quantities["MUG"] = 9  # edited by hand on the channel
    sync.sync(["cas"])  # the read-back finds it, corrects it expecting what it read
    assert cas.quantities["MUG"] == 5
    assert cas.pushes[-1][0].expected == 9
    clock.tick()
    plain.sell(("MUG", 1))
    clock.tick()
    sync.sync()
    assert shows() == (4, 4)
    assert stale_compares(engine, config, clock) == 0


def test_a_sale_found_by_a_read_back_is_not_taken_off_twice(
    engine: Engine, clock: Clock
) -> None:
    sync, config = start(engine, clock)
    cas = fakes.CHANNELS["cas"]
    # A sale between the cycle's pull and its read-back: the read shows 4, the ledger
    # still says 5; the read-back pulls the sale in and corrects what it must.
    cas.before_read.append(lambda: cas.sell(("MUG", 1)))
    sync.sync(["cas"])
    sync.sync(["plain"], read_back=False)
    assert shows() == (4, 4)
    (write,) = cas.pushes[-1]
    assert (write.quantity, write.expected) == (4, 4)  # not 3: the sale is in what was read
    assert stale_compares(engine, config, clock) == 0


def test_a_write_refused_earlier_is_tried_again_under_a_new_key(
    engine: Engine, clock: Clock
) -> None:
    sync, _config = start(engine, clock)
    cas, plain = fakes.CHANNELS["cas"], fakes.CHANNELS["plain"]
    plain.sell(("MUG", 1))
    clock.tick()
    sync.sync(["plain"], read_back=False)
    cas.refuse.add("MUG")  # e.g. not stocked at the location, until the seller fixes it
    sync.sync(["cas"], read_back=False)
    (refused,) = cas.calls[-1]
    cas.refuse.clear()
    clock.tick(2 * 3600)  # a refused write is tried again an hour later
    sync.sync(["cas"], read_back=False)
    (again,) = cas.calls[-1]
    assert (again.quantity, again.expected) == (refused.quantity, refused.expected) == (4, 5)
    # Under the old key a channel with idempotency keys would answer with the old refusal.
    assert again.key != refused.key
    assert cas.quantities["MUG"] == 4
