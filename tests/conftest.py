"""Fixtures shared by the whole suite: ledger databases on SQLite and PostgreSQL.

PostgreSQL tests use the server named by ``CHANNELSYNC_TEST_PG_URL`` (``scripts/test.sh``
starts a throw-away one) and get a fresh, empty database each. Without that variable
they skip, except under CI, where they fail: a backend that silently goes untested in
CI is a bug. Every PostgreSQL test carries the ``postgresql`` marker, so
``-m "not postgresql"`` deselects them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import Engine, make_url

from channelsync.ledger.migrate import open_ledger_engine
from tests.alert_receiver import receiver  # noqa: F401 - a fixture for every test module

PG_URL_ENV = "CHANNELSYNC_TEST_PG_URL"
# Variables through which a developer's real set-up could leak into a test.
_HOST_ENV = ("CHANNELSYNC_CONFIG", "STATE_DIRECTORY", "CREDENTIALS_DIRECTORY")


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgresql: needs the PostgreSQL test server")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests that ask for pg_url directly; the ledger_url param carries the mark itself.
    for item in items:
        if "pg_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgresql)


@pytest.fixture(autouse=True)
def _isolated_logging() -> Iterator[None]:
    """CLI tests configure logging (channelsync.service.logs); later tests must not inherit it."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level
             for name in ("httpx", "apscheduler", "apprise", "urllib3")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in quiet.items():
        logging.getLogger(name).setLevel(old)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's real config, state or credentials."""
    for name in _HOST_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite ledger file in the test's own temp dir (created on first connect)."""
    return f"sqlite:///{tmp_path}/ledger.db"


def _libpq_url(url: str) -> str:
    # psycopg speaks libpq URLs; accept SQLAlchemy spellings such as postgresql+psycopg://.
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test, dropped afterwards."""
    server = os.environ.get(PG_URL_ENV)
    if not server:
        reason = f"{PG_URL_ENV} is not set (bash scripts/test.sh starts a PostgreSQL server)"
        if running_in_ci():
            pytest.fail(f"PostgreSQL tests must run in CI: {reason}")
        pytest.skip(reason)
    admin_url = _libpq_url(server)
    # Unique across tests and across parallel runs sharing one server.
    name = f"cs_test_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    # CREATE/DROP DATABASE cannot run inside a transaction.
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        # FORCE ends sessions the test left open (a leaked engine, a killed lock holder).
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgresql),
    ]
)
def ledger_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty ledger database, once per backend."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def engine(ledger_url: str) -> Iterator[Engine]:
    """An engine on ``ledger_url`` with the schema at head (run through Alembic)."""
    eng = open_ledger_engine(ledger_url)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def fake_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The channel type "fake" (tests.fakes), with no fake channel left from another test."""
    from channelsync import registry
    from tests import fakes

    monkeypatch.setitem(registry.BUILTIN, "fake", "tests.fakes:FakeConnector")
    registry.load_connector.cache_clear()
    fakes.CHANNELS.clear()
    yield
    registry.load_connector.cache_clear()
    fakes.CHANNELS.clear()
