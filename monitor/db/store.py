"""The Store: records polls atomically and answers questions about the record.

:meth:`Store.apply_poll` records one poll in one transaction; it locks the
item's row, diffs the polled offer against the stored one, writes only what
changed, appends one poll-log row, updates the item's counters, lets the
caller add its own rows (``extra``: alerts, outbox) and commits. If
anything raises, nothing is written. :meth:`Store.apply_polls` records many
polls in one transaction the same way, each still all-or-nothing; the
daemon uses it to record whatever finished while the previous batch was
being written. Both go through :mod:`monitor.db.recording`, which explains
the steps and the statements.

* A success is diffed against the stored offer; the first success of an item
  is its baseline and records no change (not even "available again").
* TMAPI's 417 (:class:`~monitor.errors.TmapiItemUnavailable`) counts towards
  the unavailable streak; ``unavailable_after`` of them in a row record one
  ``item_unavailable`` change.
* Any other failure records a failed poll and touches no state: a failed poll
  never looks like a change.

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

from monitor.db import history, recording, scd
from monitor.db.engine import ensure_schema, is_sqlite, make_engine
from monitor.db.recording import AfterWrites, ExtraWrites, Lease, PollWrite
from monitor.db.records import (
    ItemRecord,
    PollCounts,
    PollOutcome,
    PollRecord,
    PollResult,
    StoredChange,
)
from monitor.db.urls import database_url, storage_error
from monitor.domain import Offer
from monitor.errors import ParseError, TmapiError

__all__ = [
    "AfterWrites",
    "ExtraWrites",
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

    def apply_poll(
        self,
        item_id: int,
        polled_at: datetime,
        result: Offer | TmapiError | ParseError,
        *,
        unavailable_after: int = 3,
        extra: ExtraWrites | None = None,
    ) -> PollResult:
        """Record one poll of ``item_id`` atomically and return what was recorded.

        ``polled_at`` must be timezone-aware and not older than the item's
        last success, and an offer must be for ``item_id`` with unique SKU
        ids and tier quantities (ValueError otherwise). ``extra`` runs inside
        the same transaction; if it raises, the whole poll is rolled back and
        its exception propagates. Database failures raise StorageError.
        """
        write = PollWrite(item_id, polled_at, result, unavailable_after, extra=extra)
        (outcome,) = recording.record(self._engine, [write])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def apply_polls(
        self, writes: Sequence[PollWrite], *, after: AfterWrites | None = None
    ) -> list[PollResult | Exception]:
        """Record many polls in one transaction, each all-or-nothing.

        Returns each poll's :class:`PollResult`, or the error that kept it
        from being recorded (the ones :meth:`apply_poll` would raise, and
        :class:`~monitor.db.leases.LeaseLost` for a poll whose lease was
        taken over). ``after`` runs once in the transaction, after the
        store's writes of every poll and before each poll's ``extra``. See
        :mod:`monitor.db.recording`.
        """
        return recording.record(self._engine, writes, after)

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
