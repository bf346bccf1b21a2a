"""Facts about the database as a whole (table ``monitor_meta``).

* **The source of its polls.** A database holds polls of the real TMAPI or
  of the simulator, never both: the first poll recorded sets
  ``poll_source``, and :func:`claim_source` refuses the other source with a
  :class:`~monitor.errors.MixedSourcesError` that names the database. It runs
  inside every recording transaction (see :mod:`monitor.db.recording`) and
  at the start of ``monitor run`` and ``monitor check``, so made-up prices
  can never land in a history of real ones.
* **The last applied watchlist** (``watchlist``): its item settings as JSON
  (see :mod:`monitor.watchlist.snapshot`), saved by the daemon, read by
  ``monitor check`` when no watchlist file is at hand.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor.db.engine import is_sqlite, write_transaction
from monitor.db.models import MetaRow
from monitor.db.urls import safe_url, storage_error
from monitor.domain import PollSource
from monitor.errors import MixedSourcesError

__all__ = [
    "POLL_SOURCE",
    "WATCHLIST",
    "check_source",
    "claim_source",
    "database_source",
    "load_watchlist_document",
    "mixed_sources",
    "save_watchlist_document",
]

META = cast(sa.Table, MetaRow.__table__)
POLL_SOURCE = "poll_source"
WATCHLIST = "watchlist"

_GET = sa.select(META.c.value).where(META.c.key == sa.bindparam("key"))
_DESCRIBED = {
    PollSource.TMAPI: "polls of the real TMAPI",
    PollSource.SIMULATED: "simulated polls (made with --simulate or by the demo)",
}


def _get(conn: Connection, key: str) -> str | None:
    value = conn.execute(_GET, {"key": key}).scalar_one_or_none()
    return None if value is None else str(value)


def _put(conn: Connection, key: str, value: str, now: datetime, *, replace: bool) -> None:
    insert = (sqlite.insert if is_sqlite(conn) else postgresql.insert)(META).values(
        key=key, value=value, updated_at=now
    )
    if replace:
        statement = insert.on_conflict_do_update(
            index_elements=["key"], set_={"value": value, "updated_at": now}
        )
    else:
        statement = insert.on_conflict_do_nothing(index_elements=["key"])
    conn.execute(statement)


def database_source(conn: Connection) -> PollSource | None:
    """The source of the database's polls; None before the first poll was recorded."""
    value = _get(conn, POLL_SOURCE)
    return None if value is None else PollSource(value)


def claim_source(conn: Connection, source: PollSource, now: datetime) -> None:
    """Make sure the database on ``conn`` holds polls of ``source`` (or none yet).

    Sets the source when none is recorded; raises MixedSourcesError when the
    database holds polls of the other source. Runs in the caller's transaction.
    """
    stored = database_source(conn)
    if stored is None:
        _put(conn, POLL_SOURCE, source.value, now, replace=False)
        stored = database_source(conn)  # a concurrent first poll may have won
    if stored is not source:
        raise mixed_sources(conn.engine, stored or source, source)


def mixed_sources(engine: Engine, stored: PollSource, wanted: PollSource) -> MixedSourcesError:
    """The error for recording ``wanted`` polls into a database of ``stored`` ones."""
    where = safe_url(engine.url)
    if wanted is PollSource.SIMULATED:
        hint = "give --simulate a database of its own (MONITOR_DATABASE_URL=sqlite:///sim.db)"
    else:
        hint = (
            "point MONITOR_DATABASE_URL at another database for the real TMAPI, "
            "or delete this one if its simulated history is no longer wanted"
        )
    return MixedSourcesError(
        f"database {where} holds {_DESCRIBED[stored]}; {_DESCRIBED[wanted]} are not "
        f"recorded there: {hint}"
    )


def check_source(engine: Engine, source: PollSource, now: datetime) -> None:
    """:func:`claim_source` in a transaction of its own (at the start of a command)."""
    try:
        with write_transaction(engine) as conn:
            claim_source(conn, source, now)
    except SQLAlchemyError as exc:
        raise storage_error(exc, "checking the database's poll source", engine.url) from None


def save_watchlist_document(engine: Engine, document: str, now: datetime) -> None:
    """Store the item settings of the watchlist just applied (JSON text), if they changed."""
    try:
        with write_transaction(engine) as conn:
            if _get(conn, WATCHLIST) != document:
                _put(conn, WATCHLIST, document, now, replace=True)
    except SQLAlchemyError as exc:
        raise storage_error(exc, "saving the watchlist's item settings", engine.url) from None


def load_watchlist_document(engine: Engine) -> str | None:
    """The item settings stored by the last daemon (JSON text), or None."""
    try:
        with engine.connect() as conn:
            return _get(conn, WATCHLIST)
    except SQLAlchemyError as exc:
        raise storage_error(exc, "reading the watchlist's item settings", engine.url) from None
