"""Engines that behave the same on SQLite and PostgreSQL, and the schema's migrations.

SQLite engines use WAL, a 10 s busy timeout and enforced foreign keys, and
SQLAlchemy (not the ``sqlite3`` module) emits ``BEGIN``, so a transaction
covers every statement in it, reads included. :func:`write_transaction`
starts with ``BEGIN IMMEDIATE``: the write lock is taken up front, so two
writers queue on the busy timeout instead of failing when a read lock cannot
be upgraded. A missing SQLite file is created mode 0600, in a folder created
mode 0700. PostgreSQL goes through psycopg 3 with ``pool_pre_ping``.

The schema is created and changed only by Alembic. The migration scripts ship
inside the wheel as ``monitor/_migrations``; in a source checkout they are
``<repo>/migrations``. :func:`migrations_dir` finds them, so no
``alembic.ini`` is needed at run time. :func:`ensure_schema` runs when the
monitor opens its database: a SQLite database is brought to the head
revision automatically; a PostgreSQL database (shared, maybe with replicas
of an older version) is only upgraded when asked (``monitor db upgrade`` or
``--migrate``).

Where the database is (``database_url``) and how to print its URL
(``safe_url``) live in :mod:`monitor.db.urls` and are re-exported here.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

import monitor
from monitor.db.urls import database_url, default_sqlite_path, parse_url, safe_url, storage_error
from monitor.errors import StorageError

__all__ = [
    "BUSY_TIMEOUT_S",
    "alembic_config",
    "check_connection",
    "current",
    "current_revision",
    "database_url",
    "default_sqlite_path",
    "downgrade",
    "ensure_schema",
    "head_revision",
    "is_sqlite",
    "make_engine",
    "migrations_dir",
    "parse_url",
    "safe_url",
    "upgrade",
    "write_transaction",
]

BUSY_TIMEOUT_S = 10
#: Execution option read by the SQLite ``begin`` hook (see write_transaction).
_BEGIN_IMMEDIATE = "monitor_begin_immediate"


def make_engine(url: str | URL) -> Engine:
    """A sync engine for ``url`` configured as described in the module docstring."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return sa.create_engine(
        parsed,
        pool_pre_ping=True,
        connect_args={"connect_timeout": BUSY_TIMEOUT_S, "application_name": "1688-monitor"},
    )


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    kwargs: dict[str, Any] = {"connect_args": {"timeout": BUSY_TIMEOUT_S}}
    if in_memory:
        # One shared connection, or every checkout would see a new empty database.
        kwargs["poolclass"] = StaticPool
        kwargs["connect_args"]["check_same_thread"] = False
    else:
        _prepare_sqlite_file(Path(database))
    engine = sa.create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Stop the sqlite3 module from issuing BEGIN itself; _on_begin does it.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode = WAL")
                # Durable across application crashes; in WAL mode a power loss can
                # only drop the last commits, never corrupt the file.
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_BEGIN_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _prepare_sqlite_file(path: Path) -> None:
    """Create a missing database file 0600 (and its missing folders 0700)."""
    path = path.expanduser()
    if path.exists():
        return
    try:
        folder = path.parent
        if not folder.exists():
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            folder.chmod(0o700)
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
        path.chmod(0o600)
    except OSError as exc:
        raise StorageError(
            f"cannot create the SQLite database {path}: {exc.strerror or type(exc).__name__}"
        ) from None


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction meant to write: committed on success.

    On SQLite it starts with ``BEGIN IMMEDIATE``; on PostgreSQL it is a plain
    transaction (lock rows with ``SELECT … FOR UPDATE``).
    """
    with engine.connect() as conn:
        conn.execution_options(**{_BEGIN_IMMEDIATE: True})
        with conn.begin():
            yield conn


def is_sqlite(engine_or_conn: Engine | Connection) -> bool:
    """Whether an engine or connection talks to SQLite."""
    return engine_or_conn.dialect.name == "sqlite"


def check_connection(engine: Engine) -> None:
    """Open and close one connection; a StorageError says why it failed."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except SQLAlchemyError as exc:
        raise storage_error(exc, "connecting to the database", engine.url) from None


def migrations_dir() -> Path:
    """The folder holding ``env.py`` and ``versions/``: packaged copy first, then the repo's."""
    package = Path(monitor.__file__).resolve().parent
    packaged = package / "_migrations"
    if packaged.is_dir():
        return packaged
    return package.parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at :func:`migrations_dir`.

    With ``connection`` the migration environment runs on it (inside its
    transaction) instead of opening its own; the URL is never put in the
    config, so it cannot leak through Alembic's output.
    """
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    """The migration scripts (read once: they do not change while the program runs)."""
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision the code knows."""
    head = _scripts().get_current_head()
    if head is None:
        raise StorageError(f"no migrations found in {migrations_dir()}")
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision a database is at (``None`` if it has no schema yet)."""
    return MigrationContext.configure(connection).get_current_revision()


def current(url: str | URL) -> str | None:
    """The revision of the database at ``url``."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return current_revision(conn)
    except SQLAlchemyError as exc:
        raise storage_error(exc, "reading the schema revision", url) from None
    finally:
        engine.dispose()


def upgrade(url: str | URL, revision: str = "head") -> None:
    """Migrate the database at ``url`` to ``revision`` (default: the newest)."""
    engine = make_engine(url)
    try:
        _run(engine, "upgrade", revision)
    finally:
        engine.dispose()


def downgrade(url: str | URL, revision: str) -> None:
    """Migrate the database at ``url`` down to ``revision`` (``base`` drops everything)."""
    engine = make_engine(url)
    try:
        _run(engine, "downgrade", revision)
    finally:
        engine.dispose()


#: The advisory lock key that serialises migrations ("1688" in it, nothing else special).
_MIGRATION_LOCK = 1688_0001


def _run(engine: Engine, direction: str, revision: str) -> None:
    """Run one Alembic command in a single transaction on ``engine``.

    On PostgreSQL the transaction first takes an advisory lock, so replicas
    started together with ``--migrate`` migrate one after the other (the
    later ones find the schema at head and do nothing).
    """
    try:
        with engine.begin() as conn:
            if not is_sqlite(conn):
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
                )
            config = alembic_config(conn)
            if direction == "upgrade":
                command.upgrade(config, revision)
            else:
                command.downgrade(config, revision)
    except SQLAlchemyError as exc:
        raise storage_error(
            exc, f"migrating the database ({direction} {revision})", engine.url
        ) from None
    except CommandError as exc:
        raise StorageError(f"migrating the database ({direction} {revision}): {exc}") from None


def ensure_schema(engine: Engine, *, migrate: bool) -> None:
    """Make sure the schema is at the head revision, or say how to get there.

    SQLite databases are upgraded automatically. A PostgreSQL database behind
    the head raises a StorageError unless ``migrate`` is true. A database
    at a revision this code does not know (written by a newer version) is
    never touched.
    """
    head = head_revision()
    try:
        with engine.connect() as conn:
            at = current_revision(conn)
    except SQLAlchemyError as exc:
        raise storage_error(exc, "reading the schema revision", engine.url) from None
    if at == head:
        return
    script = _scripts()
    if at is not None and not _known(script, at):
        raise StorageError(
            f"database schema is at {at}, which this version does not know (expected {head}): "
            "was it written by a newer version of the monitor?"
        )
    if not (migrate or is_sqlite(engine)):
        raise StorageError(
            f"database schema is at {at or 'nothing (empty database)'}, expected {head}: "
            "run `monitor db upgrade` or start with --migrate"
        )
    _run(engine, "upgrade", "head")


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False
