"""The database layer: schema migration, SQLite pragmas, channel locks, the open-conflict index."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from channelsync.db.core import channel_lock, create_engine
from channelsync.errors import LedgerError
from channelsync.ledger.migrate import (
    current_revision,
    head_revision,
    open_ledger_engine,
    upgrade,
)
from channelsync.ledger.schema import Conflict, Reservation, Sku

LEDGER_TABLES = {
    "sku",
    "kit_component",
    "channel_state",
    "listing",
    "order_line",
    "reservation",
    "movement",
    "outbox",
    "conflict",
}


def _tables(engine: Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Polls ``predicate()`` until it is true or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _lock_free(engine: Engine, channel: str) -> bool:
    with channel_lock(engine, channel) as got:
        return got


# --- schema ---------------------------------------------------------------------------


def test_schema_is_created_at_head(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()
    assert _tables(engine) >= LEDGER_TABLES


def test_upgrade_twice_is_harmless(engine: Engine, ledger_url: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(Sku.__table__).values(sku="MUG", on_hand=5))  # type: ignore[attr-defined]
    upgrade(engine)
    upgrade(engine)
    # Opening again (what every CLI command does) finds the schema current.
    again = open_ledger_engine(ledger_url, migrate=False)
    try:
        assert current_revision(again) == head_revision()
    finally:
        again.dispose()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar() == 1
        assert conn.execute(sa.text("SELECT on_hand FROM sku WHERE sku = 'MUG'")).scalar() == 5


def test_empty_database_without_migrate_is_refused(ledger_url: str) -> None:
    with pytest.raises(LedgerError, match="db upgrade"):
        open_ledger_engine(ledger_url, migrate=False)


# --- SQLite ---------------------------------------------------------------------------


def test_sqlite_uses_wal_and_enforces_foreign_keys(sqlite_url: str) -> None:
    engine = open_ledger_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        # Not just the pragma's value: a dangling reference is really refused.
        reservations = Reservation.__table__  # type: ignore[attr-defined]
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(sa.insert(reservations).values(line_id=999, sku="MUG", quantity=1))
    finally:
        engine.dispose()


def test_sqlite_channel_lock_is_held_by_one_job_at_a_time(sqlite_url: str) -> None:
    engine = open_ledger_engine(sqlite_url)
    try:
        with channel_lock(engine, "shop") as first:
            assert first is True
            with channel_lock(engine, "shop") as second, channel_lock(engine, "web") as other:
                assert second is False
                assert other is True
        with channel_lock(engine, "shop") as again:
            assert again is True
    finally:
        engine.dispose()


def test_sqlite_channel_lock_is_freed_when_its_process_dies(sqlite_url: str) -> None:
    import subprocess
    import sys

    engine = open_ledger_engine(sqlite_url)
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time\n"
            "from channelsync.db.core import channel_lock, create_engine\n"
            f"with channel_lock(create_engine({sqlite_url!r}), 'shop') as got:\n"
            "    print(got, flush=True)\n"
            "    time.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "True"
        with channel_lock(engine, "shop") as got:
            assert got is False
        holder.kill()
        holder.wait(timeout=10)
        with channel_lock(engine, "shop") as got:
            assert got is True
    finally:
        if holder.poll() is None:
            holder.kill()
        engine.dispose()


# --- PostgreSQL channel locks -----------------------------------------------------------


@pytest.fixture
def pg_engines(pg_url: str) -> Iterator[tuple[Engine, Engine]]:
    """Two engines on one database, standing for two daemon replicas."""
    a = open_ledger_engine(pg_url)
    b = create_engine(pg_url)
    try:
        yield a, b
    finally:
        a.dispose()
        b.dispose()


def test_pg_channel_lock_excludes_a_second_holder(pg_engines: tuple[Engine, Engine]) -> None:
    a, b = pg_engines
    with channel_lock(a, "shop") as got:
        assert got is True
        with channel_lock(b, "shop") as other:
            assert other is False
        # The same engine's other connections are other sessions too.
        with channel_lock(a, "shop") as same_engine:
            assert same_engine is False
        # Other channels are independent.
        with channel_lock(b, "ebay") as ebay:
            assert ebay is True
    with channel_lock(b, "shop") as after:
        assert after is True


def test_pg_channel_lock_is_freed_when_the_holder_is_terminated(
    pg_engines: tuple[Engine, Engine],
) -> None:
    a, b = pg_engines
    freed = False
    # Releasing on a connection that was killed may raise; that is not what is tested here.
    with contextlib.suppress(sa.exc.DBAPIError), channel_lock(a, "shop") as got:
        assert got is True
        assert not _lock_free(b, "shop")
        with b.connect() as conn:
            pids = (
                conn.execute(
                    sa.text(
                        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                        " AND database = (SELECT oid FROM pg_database"
                        "                 WHERE datname = current_database())"
                    )
                )
                .scalars()
                .all()
            )
            assert len(pids) == 1
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pids[0]}).scalar()
        assert _wait_for(lambda: _lock_free(b, "shop")), "lock still held after terminate"
        freed = True
    assert freed


_HOLDER = """
import sys, time
from channelsync.db.core import channel_lock, create_engine
with channel_lock(create_engine(sys.argv[1]), "shop") as got:
    print(got, flush=True)
    time.sleep(120)
"""


def test_pg_channel_lock_is_freed_when_the_holder_process_dies(
    pg_url: str, pg_engines: tuple[Engine, Engine]
) -> None:
    _, b = pg_engines
    # A real replica in its own process, killed without any chance to clean up.
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, pg_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "True"
        assert not _lock_free(b, "shop")
    finally:
        holder.kill()
        holder.wait(timeout=30)
        if holder.stdout is not None:
            holder.stdout.close()
    assert _wait_for(lambda: _lock_free(b, "shop")), "lock still held after the holder died"


# --- the open-conflict index ----------------------------------------------------------


def _open_conflict(engine: Engine, kind: str, subject: str) -> int:
    now = datetime.now(UTC)
    table = Conflict.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        result = conn.execute(
            sa.insert(table)
            .values(
                kind=kind,
                subject=subject,
                message="",
                detail="{}",
                opened_at=now,
                last_seen_at=now,
            )
            .returning(table.c.id)
        )
        return int(result.scalar_one())


def test_one_open_conflict_per_kind_and_subject(engine: Engine) -> None:
    first = _open_conflict(engine, "oversell", "MUG")
    with pytest.raises(sa.exc.IntegrityError):
        _open_conflict(engine, "oversell", "MUG")
    # Same subject, other kind, and same kind, other subject, are other conflicts.
    _open_conflict(engine, "drift", "MUG")
    _open_conflict(engine, "oversell", "CUP")

    table = Conflict.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(
            sa.update(table).where(table.c.id == first).values(resolved_at=datetime.now(UTC))
        )
    second = _open_conflict(engine, "oversell", "MUG")
    assert second != first
    # Resolving does not lift the rule for the new open one.
    with pytest.raises(sa.exc.IntegrityError):
        _open_conflict(engine, "oversell", "MUG")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(table.c.id, table.c.resolved_at)
            .where(table.c.kind == "oversell", table.c.subject == "MUG")
            .order_by(table.c.id)
        ).all()
    assert [r.id for r in rows] == [first, second]
    assert rows[0].resolved_at is not None and rows[0].resolved_at.tzinfo is not None
    assert rows[1].resolved_at is None


def test_a_ledger_from_an_older_release_is_migrated_in_place(ledger_url: str) -> None:
    import sqlalchemy as sa

    from channelsync.db.core import create_engine
    from channelsync.ledger.migrate import current_revision, head_revision, upgrade

    engine = create_engine(ledger_url)
    try:
        upgrade(engine, "0001")
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO sku (sku, title, barcodes, on_hand, reserved, "
                                 "safety_stock) VALUES ('MUG', '', '', 4, 0, 0)"))
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT on_hand FROM sku")).scalar() == 4
            conn.execute(sa.text("SELECT resolved_notified_at FROM conflict"))
    finally:
        engine.dispose()


def test_the_migrations_build_the_schema_the_models_describe(ledger_url: str) -> None:
    """Alembic's autogenerate finds nothing to add, drop or change after upgrading, on
    SQLite and PostgreSQL (TEXT and an unsized VARCHAR are the same to both)."""
    import sqlalchemy as sa
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import channelsync.orders.schema  # noqa: F401  (its tables are in the metadata)
    from channelsync.ledger.migrate import open_ledger_engine
    from channelsync.ledger.schema import metadata

    engine = open_ledger_engine(ledger_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()

    def same_text(change: object) -> bool:
        if not (isinstance(change, tuple) and change[0] == "modify_type"):
            return False
        old, new = change[-2], change[-1]
        if isinstance(new, sa.types.TypeDecorator):  # sqlmodel's AutoString
            new = new.impl_instance
        return isinstance(old, sa.Text | sa.String) and isinstance(new, sa.String) and \
            new.length is None
    changes = [c for c in diff if not (isinstance(c, list) and all(map(same_text, c)))]
    assert changes == []
