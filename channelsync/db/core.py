"""Database engines: SQLite (embedded, WAL, BEGIN IMMEDIATE) and PostgreSQL.

SQLite serializes writers with ``BEGIN IMMEDIATE`` so the CLI can run beside the
daemon; PostgreSQL takes row locks (``FOR UPDATE``) and advisory locks so that
many replicas can share one database.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)
SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and use the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def create_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _setup_sqlite(engine)
        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def _setup_sqlite(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        if engine.url.database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        # Checkpoint every ~40 MB of WAL instead of 4 MB: a commit per page of orders
        # otherwise spends much of its time checkpointing.
        cur.execute("PRAGMA wal_autocheckpoint = 10000")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Take the write lock up front: a deferred transaction that later writes can
        # fail with SQLITE_BUSY instead of waiting, which loses the work.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def is_postgres(conn: Connection | Engine) -> bool:
    return conn.dialect.name == "postgresql"


@contextmanager
def _file_lock(engine: Engine, channel: str) -> Iterator[bool]:
    database = engine.url.database
    if not database or database == ":memory:":
        yield True  # a private database: nobody else can reach it
        return
    folder = Path(f"{database}.locks")
    folder.mkdir(exist_ok=True)
    name = hashlib.blake2b(channel.encode(), digest_size=8).hexdigest()
    with open(folder / f"{name}.lock", "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _lock_key(name: str) -> int:
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def channel_lock(engine: Engine, channel: str) -> Iterator[bool]:
    """Hold the channel's lock for a job; yields False if another job holds it.

    PostgreSQL: an advisory lock on a session of its own, so a replica that dies frees
    it with its connection. SQLite: an flock on a file beside the database, so a manual
    ``sync`` beside the daemon never works the same channel at the same time; the
    kernel frees it when the process dies.
    """
    if engine.dialect.name != "postgresql":
        with _file_lock(engine, channel) as got:
            yield got
        return
    key = _lock_key(f"channelsync:channel:{channel}")
    with engine.connect() as conn:
        got = bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        conn.commit()
        try:
            yield got
        finally:
            if got:
                try:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
                except sa.exc.DBAPIError:
                    # The session is gone, and its locks with it; the job's own outcome
                    # (maybe the very error that killed the session) matters more.
                    log.warning("%s: could not release the channel lock", channel)
