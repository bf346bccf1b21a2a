"""Alembic environment of 1688 Monitor.

Run programmatically (``monitor db upgrade``, or automatically for SQLite),
the caller hands over an open connection in ``config.attributes["connection"]``
and the whole migration runs inside its transaction. Run through the
``alembic`` command line, the database comes from ``MONITOR_DATABASE_URL``
(or ``MONITOR_DATABASE_URL_FILE``, or the default SQLite file), exactly as
the monitor finds it; no URL is ever written into ``alembic.ini``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from monitor.db.engine import database_url, make_engine, parse_url
from monitor.db.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=True,
        # SQLite cannot ALTER most things: let future migrations use batch mode.
        render_as_batch=connection.dialect.name == "sqlite",
    )


def run_migrations_offline() -> None:
    """Emit the SQL for ``alembic upgrade --sql`` without connecting."""
    context.configure(
        url=parse_url(database_url()),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(database_url())
    try:
        with engine.connect() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
