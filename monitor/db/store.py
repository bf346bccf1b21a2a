"""The Store: records polls atomically and answers questions about the record.

:meth:`Store.apply_polls` records polls in one transaction, each one
all-or-nothing: it locks the items' rows, diffs each polled offer against
the stored one, writes only what changed, appends one poll-log row per
poll, updates the items' counters, runs the alert rules and writes the
outbox rows, and commits. If anything raises, nothing of that poll is
written. :mod:`monitor.db.recording` explains the steps and the statements.

* A success is diffed against the stored offer; the first success of an item
  is its baseline and records no change (not even "available again").
* TMAPI's 417 (:class:`~monitor.errors.TmapiItemUnavailable`) counts towards
  the unavailable streak; ``unavailable_after`` of them in a row record one
  ``item_unavailable`` change.
* Any other failure records a failed poll and touches no state: a failed poll
  never looks like a change.
* A database holds polls of one source (real TMAPI or the simulator):
  :meth:`Store.check_source` and every recording refuse the other.

An unchanged poll is recognized by the digest of the stored state
(``items.state_hash``, see :func:`monitor.db.scd.fingerprint`): it inserts
its poll row and updates the item's counters, and reads no state rows.
The store is synchronous; the daemon calls it through ``asyncio.to_thread``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor.db import history, meta, recording, scd
from monitor.db.engine import ensure_schema, is_sqlite, make_engine
from monitor.db.poll_plan import Lease, PollWrite
from monitor.db.records import (
    ItemRecord,
    PollCounts,
    PollOutcome,
    PollRecord,
    PollResult,
    StoredChange,
)
from monitor.db.urls import database_url, storage_error
from monitor.domain import Offer, PollSource

__all__ = [
    "Lease",
    "PollOutcome",
    "PollResult",
    "PollWrite",
    "Store",
]


class Store:
    """The database of one monitor, behind typed methods."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sources = recording.SourceCheck()

    @classmethod
    def open(cls, url: str | None = None, *, migrate: bool = False) -> Store:
        """Connect to ``url`` (default: :func:`~monitor.db.urls.database_url`) and check
        the schema (:func:`~monitor.db.engine.ensure_schema`)."""
        engine = make_engine(url if url is not None else database_url())
        try:
            ensure_schema(engine, migrate=migrate)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    # -- writing ---------------------------------------------------------------

    def apply_polls(self, writes: Sequence[PollWrite]) -> list[PollResult | Exception]:
        """Record polls in one transaction, each all-or-nothing, alerts included.

        Returns each poll's :class:`PollResult`, or the error that kept it
        from being recorded: ValueError for an impossible request (a naive
        ``polled_at``, one older than the item's last success, an offer for
        another item or with duplicate SKU ids or tier quantities),
        :class:`~monitor.db.leases.LeaseLost` for a poll whose lease was
        taken over, MixedSourcesError for a poll of the other source,
        StorageError for database failures. See :mod:`monitor.db.recording`.
        """
        return recording.record(self._engine, writes, self._sources)

    def check_source(self, source: PollSource, now: datetime) -> None:
        """Refuse (MixedSourcesError) to go on when the database holds polls of
        the other source; a database without polls is claimed for ``source``."""
        meta.check_source(self._engine, source, now)
        self._sources.confirmed = source

    # -- reading ---------------------------------------------------------------

    def load_offer(self, item_id: int, at: datetime | None = None) -> Offer | None:
        """The stored offer now, or as it was at ``at``; None if there was none then."""
        with self._read("loading an offer") as conn:
            return scd.load_offer_at(conn, item_id, at)

    def item_row(self, item_id: int) -> ItemRecord | None:
        """The ``items`` row of ``item_id``."""
        with self._read("reading an item") as conn:
            return history.item_record(conn, item_id)

    def list_items(self) -> list[ItemRecord]:
        """Every item ever polled, by id."""
        with self._read("listing items") as conn:
            return history.list_item_records(conn)

    def changes_for(self, item_id: int, since: datetime | None = None) -> list[StoredChange]:
        """Changes of ``item_id`` detected at or after ``since``, oldest first."""
        with self._read("reading changes") as conn:
            return history.changes_for(conn, item_id, since)

    def poll_counts(self, item_id: int | None = None, since: datetime | None = None) -> PollCounts:
        """Polls per outcome, of one item or all, at or after ``since``."""
        with self._read("counting polls") as conn:
            return history.poll_counts(conn, item_id, since)

    def recent_polls(self, item_id: int, limit: int = 20) -> list[PollRecord]:
        """The last ``limit`` polls of ``item_id``, newest first."""
        with self._read("reading polls") as conn:
            return history.recent_polls(conn, item_id, limit)

    @contextmanager
    def _read(self, action: str) -> Iterator[Connection]:
        """A read transaction that sees one consistent snapshot on both dialects."""
        try:
            with self._engine.connect() as conn:
                if not is_sqlite(conn):
                    conn.execution_options(isolation_level="REPEATABLE READ")
                with conn.begin():
                    yield conn
        except SQLAlchemyError as exc:
            raise storage_error(exc, action) from None
