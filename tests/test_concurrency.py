"""Many writers at once: no lost update, exactly one oversell conflict (both backends)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy.engine import Engine

from tests.ledger_helpers import apply, check_invariants, count, open_conflicts, sku_row, snap

WRITERS = 8
ORDERS_EACH = 5


def run_together(workers: list[Callable[[], None]]) -> None:
    barrier = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def run(work: Callable[[], None]) -> None:
        barrier.wait()
        try:
            work()
        except BaseException as exc:  # surfaced below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors


def test_concurrent_orders_for_the_last_units_lose_nothing(engine: Engine) -> None:
    count(engine, MUG=3)

    def writer(n: int) -> Callable[[], None]:
        def work() -> None:
            for i in range(ORDERS_EACH):
                apply(engine, f"ch{n % 3}", snap(f"{n}-{i}", qty=1, t=i))
        return work

    run_together([writer(n) for n in range(WRITERS)])
    row = sku_row(engine, "MUG")
    assert row["reserved"] == WRITERS * ORDERS_EACH
    assert len(open_conflicts(engine, "oversell")) == 1
    check_invariants(engine)


def test_the_same_snapshot_applied_concurrently_counts_once(engine: Engine) -> None:
    count(engine, MUG=10)
    lines = [snap("1", line=str(i), qty=1, t=1) for i in range(5)]

    def work() -> None:
        apply(engine, "shop", *lines)

    run_together([work] * WRITERS)
    assert sku_row(engine, "MUG")["reserved"] == 5
    check_invariants(engine)
