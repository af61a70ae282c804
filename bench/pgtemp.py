"""A fresh PostgreSQL database for one measurement, dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url


@contextmanager
def temp_database(server_url: str, purpose: str) -> Iterator[str]:
    """Yield the URL of a new database on the server; drop it (FORCE) on the way out."""
    admin = make_url(server_url).set(drivername="postgresql").render_as_string(
        hide_password=False)
    name = f"bench_{purpose}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    # CREATE/DROP DATABASE cannot run inside a transaction.
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
