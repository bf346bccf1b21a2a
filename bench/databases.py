"""Fresh databases for each benchmark case, removed afterwards.

SQLite: a new file in the benchmark's temporary folder. PostgreSQL: a new
database ``monitor_bench_<pid>_<n>`` created on the server of the given URL
and dropped (with ``FORCE``) when the case ends, whatever happened.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

_counter = itertools.count()


@contextlib.contextmanager
def sqlite_database(workdir: Path) -> Iterator[str]:
    path = workdir / f"bench-{next(_counter)}.db"
    try:
        yield f"sqlite+pysqlite:///{path}"
    finally:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{path}{suffix}").unlink()


@contextlib.contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    base = sa.make_url(server_url).set(drivername="postgresql+psycopg")
    name = f"monitor_bench_{os.getpid()}_{next(_counter)}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def postgres_reachable(server_url: str) -> bool:
    engine = sa.create_engine(sa.make_url(server_url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return True
    except sa.exc.SQLAlchemyError:
        return False
    finally:
        engine.dispose()
