"""The ledger's schema over time: Alembic migrations in ``migrations/``, run on open
(``open_ledger_engine``) or by ``channelsync db upgrade``.

Alembic is imported only when it has work: opening a ledger whose schema is already at
head (every command but the first) reads ``alembic_version`` with one query and compares it
with the head revision read from the migration files' ``revision = ...`` lines, which costs
well under a millisecond where loading Alembic costs a tenth of a second.
"""

from __future__ import annotations

import logging
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from channelsync.db.core import create_engine, is_postgres
from channelsync.errors import LedgerError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

log = logging.getLogger(__name__)
_MIGRATIONS = Path(__file__).with_name("migrations")
_MIGRATION_LOCK = 0x63736D67  # "csmg": serializes concurrent upgrades on PostgreSQL
_REVISION_LINE = re.compile(
    r"^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(None|'([^'\n]*)'|\"([^\"\n]*)\")\s*$",
    re.MULTILINE)


def _alembic_config() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or migrate the schema (``channelsync db upgrade``)."""
    from alembic import command

    cfg = _alembic_config()
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

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


@cache
def static_head() -> str | None:
    """The head revision from the migration files' text, without Alembic: None unless they
    form one plain chain (every file one ``revision`` and one ``down_revision``, exactly one
    root, exactly one head), so anything unusual is left to Alembic."""
    revisions: dict[str, str | None] = {}
    for path in sorted((_MIGRATIONS / "versions").glob("*.py")):
        if path.name.startswith(("__init__", ".#")):
            continue
        found: dict[str, list[str | None]] = {"revision": [], "down_revision": []}
        for match in _REVISION_LINE.finditer(path.read_text(encoding="utf-8")):
            value = match.group(3) if match.group(3) is not None else match.group(4)
            found[match.group(1)].append(value)
        if len(found["revision"]) != 1 or len(found["down_revision"]) != 1:
            return None
        revision, down = found["revision"][0], found["down_revision"][0]
        if not revision or revision in revisions:
            return None
        revisions[revision] = down
    downs = list(revisions.values())
    heads = [r for r in revisions if r not in downs]
    if downs.count(None) != 1 or len(set(downs)) != len(downs) or len(heads) != 1 \
            or any(d is not None and d not in revisions for d in downs):
        return None
    return heads[0]


def _at_head(engine: Engine) -> bool:
    """The cheap check: ``alembic_version`` holds exactly the head revision. False whenever
    that is not certain (no table yet, an unreadable database): Alembic then decides."""
    head = static_head()
    if head is None:
        return False
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    except sa.exc.DBAPIError:
        return False
    return [tuple(row) for row in rows] == [(head,)]


def open_ledger_engine(url: str, *, migrate: bool = True) -> Engine:
    """An engine whose schema is at head; migrates when allowed, else explains."""
    engine = create_engine(url)
    if _at_head(engine):
        return engine
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
