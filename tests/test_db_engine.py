"""Database URLs, engine set-up, real transactions and password-free errors."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from monitor.db.engine import (
    BUSY_TIMEOUT_S,
    check_connection,
    current,
    make_engine,
    write_transaction,
)
from monitor.db.store import Store
from monitor.db.urls import (
    database_url,
    default_sqlite_path,
    parse_url,
    safe_url,
    storage_error,
)
from monitor.errors import ConfigError, StorageError

SECRET = "pa55-w0rd-xyz"


# -- where the database is ------------------------------------------------------------------


def test_default_sqlite_path_follows_monitor_home_then_xdg_then_home(tmp_path: Path) -> None:
    assert default_sqlite_path({"MONITOR_HOME": str(tmp_path), "XDG_DATA_HOME": "/x"}) == (
        tmp_path / "monitor.db"
    )
    assert default_sqlite_path({"XDG_DATA_HOME": str(tmp_path)}) == (
        tmp_path / "1688-monitor" / "monitor.db"
    )
    assert default_sqlite_path({}) == Path.home() / ".local/share/1688-monitor/monitor.db"
    assert database_url({"MONITOR_HOME": str(tmp_path)}) == (
        f"sqlite+pysqlite:///{tmp_path / 'monitor.db'}"
    )


def test_database_url_from_variable_or_file(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://monitor:{SECRET}@db/monitor"
    assert database_url({"MONITOR_DATABASE_URL": url}) == url
    secret_file = tmp_path / "db-url"
    secret_file.write_text(f"  {url}\n", encoding="utf-8")
    assert database_url({"MONITOR_DATABASE_URL_FILE": str(secret_file)}) == url

    with pytest.raises(ConfigError, match="both set"):
        database_url({"MONITOR_DATABASE_URL": url, "MONITOR_DATABASE_URL_FILE": str(secret_file)})
    with pytest.raises(ConfigError, match="cannot be read") as info:
        database_url({"MONITOR_DATABASE_URL_FILE": str(tmp_path / "missing")})
    assert str(tmp_path / "missing") in str(info.value)
    (tmp_path / "empty").write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="is empty"):
        database_url({"MONITOR_DATABASE_URL_FILE": str(tmp_path / "empty")})


def test_parse_url_pins_the_drivers() -> None:
    assert parse_url("sqlite:///x.db").drivername == "sqlite+pysqlite"
    assert parse_url("postgresql://u@h/d").drivername == "postgresql+psycopg"
    assert parse_url("postgres://u@h/d").drivername == "postgresql+psycopg"
    assert parse_url("postgresql+psycopg://u@h/d").drivername == "postgresql+psycopg"
    for unsupported in ("mysql://u@h/d", "postgresql+psycopg2://u@h/d", "sqlite+aiosqlite:///x"):
        with pytest.raises(ConfigError, match="unsupported"):
            parse_url(unsupported)
    with pytest.raises(ConfigError, match="cannot be parsed") as info:
        parse_url(f"::{SECRET}::")
    assert SECRET not in str(info.value)


def test_safe_url_masks_the_password() -> None:
    shown = safe_url(f"postgresql+psycopg://monitor:{SECRET}@db:5432/monitor")
    assert SECRET not in shown
    assert shown == "postgresql+psycopg://monitor:***@db:5432/monitor"
    assert safe_url("sqlite:////var/lib/monitor.db") == "sqlite:////var/lib/monitor.db"
    assert SECRET not in safe_url(f"::{SECRET}::")


# -- SQLite set-up --------------------------------------------------------------------------


def test_sqlite_file_and_folder_are_private(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "monitor.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        check_connection(engine)
    finally:
        engine.dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_sqlite_pragmas(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        with engine.connect() as conn:
            values = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")
            }
        assert values == {
            "journal_mode": "wal",
            "foreign_keys": 1,
            "busy_timeout": BUSY_TIMEOUT_S * 1000,
            "synchronous": 1,  # NORMAL
        }
    finally:
        engine.dispose()


def test_sqlite_transactions_are_real_and_writes_take_the_lock_up_front(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    engine = make_engine(f"sqlite:///{path}")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        # A read transaction holds a snapshot: a commit elsewhere is not seen inside it.
        with engine.connect() as conn, conn.begin():
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
            other.execute("INSERT INTO t VALUES (1)")
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
        # A write transaction holds the write lock before its first statement.
        with write_transaction(engine) as conn:
            assert conn.connection.dbapi_connection.in_transaction  # type: ignore[union-attr]
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        # Statements of one transaction are rolled back together.
        with pytest.raises(RuntimeError), write_transaction(engine) as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (2)")
            conn.exec_driver_sql("CREATE TABLE u (y INTEGER)")
            raise RuntimeError
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1
            assert "u" not in sa.inspect(conn).get_table_names()
    finally:
        other.close()
        engine.dispose()


def test_in_memory_sqlite_keeps_one_database(tmp_path: Path) -> None:
    store = Store.open("sqlite://")
    try:
        assert store.list_items() == []
    finally:
        store.close()


# -- errors never show the password ---------------------------------------------------------


def test_unreachable_postgresql_is_a_storage_error_without_password() -> None:
    url = f"postgresql+psycopg://monitor:{SECRET}@127.0.0.1:1/monitor?connect_timeout=2"
    with pytest.raises(StorageError) as info:
        current(url)
    message = str(info.value)
    assert SECRET not in message
    assert "monitor:***@127.0.0.1:1" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__
    with pytest.raises(StorageError) as opened:
        Store.open(url, migrate=True)
    assert SECRET not in str(opened.value)


def test_storage_error_scrubs_a_password_echoed_by_the_driver() -> None:
    url = f"postgresql+psycopg://monitor:{SECRET}@db/monitor"
    leaky = sa.exc.OperationalError(
        "SELECT 1", {}, Exception(f'invalid connection option near "password={SECRET}"')
    )
    error = storage_error(leaky, "connecting", url)
    assert SECRET not in str(error)
    assert "password=***" in str(error)
    assert "monitor:***@db/monitor" in str(error)
    assert "SELECT 1" not in str(error)
