"""Alembic environment: runs on the connection channelsync hands it."""

from __future__ import annotations

from alembic import context

import channelsync.customers.schema  # noqa: F401  (their tables are in the metadata too)
import channelsync.followups.schema  # noqa: F401
import channelsync.orders.schema  # noqa: F401
from channelsync.ledger.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only through channelsync.db.core.upgrade
    raise RuntimeError("run migrations with 'channelsync db upgrade'")
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
