"""The ledger's schema over time: Alembic migrations in ``migrations/``, run on open
(``open_ledger_engine``) or by ``channelsync db upgrade``."""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy.engine import Engine

from channelsync.db.core import create_engine, is_postgres
from channelsync.errors import LedgerError

log = logging.getLogger(__name__)
_MIGRATIONS = Path(__file__).with_name("migrations")
_MIGRATION_LOCK = 0x63736D67  # "csmg": serializes concurrent upgrades on PostgreSQL


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or migrate the schema (``channelsync db upgrade``)."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.connect() as conn:
        if is_postgres(conn):
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
        try:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            conn.commit()
        finally:
            if is_postgres(conn):
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
                conn.commit()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def open_ledger_engine(url: str, *, migrate: bool = True) -> Engine:
    """An engine whose schema is at head; migrates when allowed, else explains."""
    engine = create_engine(url)
    try:
        current = current_revision(engine)
    except sa.exc.OperationalError as exc:
        engine.dispose()
        raise LedgerError(f"cannot open the database: {exc.orig}") from exc
    if current != head_revision():
        if not migrate:
            raise LedgerError("the database schema is not current: run 'channelsync db upgrade'")
        log.info("migrating the database schema from %s to head", current or "empty")
        upgrade(engine)
    return engine
