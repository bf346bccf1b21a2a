"""Database fixtures: every storage test runs on SQLite and on PostgreSQL.

``db_url`` is a fresh, empty database per test: a temporary SQLite file, or a
schema of its own on the PostgreSQL server named by ``MONITOR_TEST_PG_URL``
(default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``), selected
through the connection's ``search_path`` and dropped afterwards, so tests can
run in parallel and leave nothing behind. PostgreSQL being unreachable FAILS
the PostgreSQL tests; it never skips them.

Shared services, each started for one test and stopped after it:

* ``sim``: the simulated TMAPI. A module (or test) says how it is built with
  ``pytest.mark.sim(**options)``, the keyword arguments of
  :class:`~monitor.simulator.server.SimulatedTmapi` plus ``kind`` for a
  subclass; without the mark it is ``SimulatedTmapi()``. ``start_sim`` is the
  factory behind it, for a test whose options come from other fixtures.
* ``webhook`` / ``smtp``: the receivers of :mod:`tests.receivers`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from monitor.db.engine import make_engine, upgrade
from monitor.db.store import Store
from monitor.db.urls import safe_url
from monitor.simulator.server import SimulatedTmapi
from tests.receivers import SmtpReceiver, WebhookReceiver

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
#: Variables that could point a test at a real database, a real TMAPI account or a
#: real watchlist: no test sees the values of the machine it runs on.
REAL_WORLD = (
    "TMAPI_TOKEN",
    "TMAPI_TOKEN_FILE",
    "TMAPI_BASE_URL",
    "MONITOR_DATABASE_URL",
    "MONITOR_DATABASE_URL_FILE",
    "MONITOR_WATCHLIST",
    "MONITOR_LOG_LEVEL",
)
#: ``start_sim(kind=SimulatedTmapi, **options)``: a started simulator, stopped after the test.
SimFactory = Callable[..., SimulatedTmapi]
DIALECTS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(autouse=True)
def isolated_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Every test runs without the machine's token, database and watchlist: the default
    database is a fresh folder's, so a test can never write into a real history."""
    for name in REAL_WORLD:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MONITOR_HOME", str(tmp_path_factory.mktemp("monitor-home")))


def pg_base_url() -> str:
    return os.environ.get("MONITOR_TEST_PG_URL", PG_DEFAULT)


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    """An autocommit engine on the test server; fails (never skips) when it is down."""
    url = sa.make_url(pg_base_url()).set(drivername="postgresql+psycopg")
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError as exc:
        engine.dispose()
        pytest.fail(
            f"PostgreSQL at {safe_url(url)} is unreachable ({type(exc.orig).__name__}); "
            "start it or set MONITOR_TEST_PG_URL",
            pytrace=False,
        )
    yield engine
    engine.dispose()


@pytest.fixture
def pg_schema_url(pg_admin: Engine) -> Iterator[str]:
    """A URL whose connections live in a new, empty PostgreSQL schema (dropped afterwards)."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = sa.make_url(pg_base_url()).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with pg_admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=DIALECTS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database, SQLite or PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+pysqlite:///{tmp_path / 'monitor.db'}"
    url: str = request.getfixturevalue("pg_schema_url")
    return url


@pytest.fixture
def migrated_url(db_url: str) -> str:
    """``db_url`` with the schema at the head revision."""
    upgrade(db_url)
    return db_url


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_url)
    yield engine
    engine.dispose()


@pytest.fixture
def store(migrated_url: str) -> Iterator[Store]:
    store = Store.open(migrated_url)
    yield store
    store.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sim(kind=SimulatedTmapi, **options): how the `sim` fixture is built"
    )


@pytest.fixture
def start_sim() -> Iterator[SimFactory]:
    """Start simulators (``kind``, default :class:`SimulatedTmapi`, with ``options``);
    every one started is stopped after the test."""
    started: list[SimulatedTmapi] = []

    def start(kind: type[SimulatedTmapi] = SimulatedTmapi, **options: Any) -> SimulatedTmapi:
        server = kind(**options).start()
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in reversed(started):
            server.stop()


@pytest.fixture
def sim(request: pytest.FixtureRequest, start_sim: SimFactory) -> SimulatedTmapi:
    """The simulated TMAPI, built as the closest ``pytest.mark.sim`` says."""
    marker = request.node.get_closest_marker("sim")
    if marker is None:
        return start_sim()
    return start_sim(*marker.args, **marker.kwargs)


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as receiver:
        yield receiver
