"""The database under the ledger: engines for SQLite and PostgreSQL, the schema migrations
(Alembic), and the per-channel locks that keep replicas apart. The lowest layer."""
