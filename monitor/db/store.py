"""The Store: records polls atomically and answers questions about the record.

:meth:`Store.apply_poll` is the one write path of a poll. In ONE transaction
it locks the item's row (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's
``BEGIN IMMEDIATE`` takes the database write lock), loads the stored offer
and availability, runs the pure diff (:mod:`monitor.diff`), writes only what
changed (state rows, change rows), updates the item's counters, appends one
poll-log row, lets the caller add its own rows (``extra``: alerts, outbox)
and commits. If anything raises, nothing is written.

* A success is diffed against the stored offer; the first success of an item
  is its baseline and records no change (not even "available again").
* TMAPI's 417 (:class:`~monitor.errors.TmapiItemUnavailable`) counts towards
  the unavailable streak; ``unavailable_after`` of them in a row record one
  ``item_unavailable`` change.
* Any other failure records a failed poll and touches no state: a failed poll
  never looks like a change.

An unchanged poll is recognized by the digest of the stored state
(``items.state_hash``, see :func:`monitor.db.scd.fingerprint`) and costs
three statements: lock the item, insert the poll, update the item. Only a
poll whose digest differs reads the open state rows and diffs them.
The store is synchronous; the daemon calls it through ``asyncio.to_thread``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor.db import history, scd
from monitor.db.engine import ensure_schema, is_sqlite, make_engine, write_transaction
from monitor.db.models import ChangeRow, Item, Poll
from monitor.db.records import (
    ItemRecord,
    PollCounts,
    PollOutcome,
    PollRecord,
    PollResult,
    StoredChange,
)
from monitor.db.urls import database_url, storage_error
from monitor.diff import Availability, diff, on_success, on_unavailable
from monitor.domain import Change, Offer
from monitor.errors import ParseError, TmapiError, TmapiItemUnavailable

__all__ = ["ExtraWrites", "PollOutcome", "PollResult", "Store"]

#: Called inside the poll's transaction, after the store's own writes.
ExtraWrites = Callable[[Connection, PollResult], None]

ITEMS = cast(sa.Table, Item.__table__)
POLLS = cast(sa.Table, Poll.__table__)
CHANGES = cast(sa.Table, ChangeRow.__table__)

_LOCK_ITEM = sa.select(ITEMS).where(ITEMS.c.item_id == sa.bindparam("item_id")).with_for_update()
# Statements built once: SQLAlchemy then reuses their compiled form. The UPDATE
# sets whichever columns the parameters name.
_INSERT_POLL = sa.insert(POLLS)
_INSERT_CHANGES = sa.insert(CHANGES)
_UPDATE_ITEM = sa.update(ITEMS).where(ITEMS.c.item_id == sa.bindparam("key"))
_MESSAGE_MAX = 500


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
        if polled_at.tzinfo is None or polled_at.utcoffset() is None:
            raise ValueError("polled_at must be timezone-aware")
        if isinstance(result, Offer):
            _check_offer(item_id, result)
        try:
            with write_transaction(self._engine) as conn:
                item = _lock_item(conn, item_id, polled_at)
                availability = Availability(item.available, item.unavailable_streak)
                if isinstance(result, Offer):
                    poll = _record_success(conn, item, polled_at, result, availability)
                else:
                    poll = _record_failure(
                        conn,
                        item,
                        polled_at,
                        result,
                        availability,
                        unavailable_after=unavailable_after,
                    )
                if extra is not None:
                    extra(conn, poll)
                return poll
        except SQLAlchemyError as exc:
            raise storage_error(exc, f"recording a poll of item {item_id}") from None

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


def _check_offer(item_id: int, offer: Offer) -> None:
    if offer.item_id != item_id:
        raise ValueError(f"offer is for item {offer.item_id}, not {item_id}")
    if len({sku.sku_id for sku in offer.skus}) != len(offer.skus):
        raise ValueError(f"item {item_id}: offer has duplicate SKU ids")
    if len({tier.min_qty for tier in offer.tiers}) != len(offer.tiers):
        raise ValueError(f"item {item_id}: offer has duplicate tier quantities")


def _lock_item(conn: Connection, item_id: int, polled_at: datetime) -> sa.Row[Any]:
    """The item's row, locked for this transaction; created on the item's first poll."""
    row = conn.execute(_LOCK_ITEM, {"item_id": item_id}).first()
    if row is not None:
        return row
    insert = (sqlite.insert if is_sqlite(conn) else postgresql.insert)(ITEMS)
    conn.execute(
        insert.on_conflict_do_nothing(index_elements=["item_id"]),
        {
            "item_id": item_id,
            "watched": False,
            "first_seen_at": polled_at,
            "polls_total": 0,
            "polls_failed": 0,
            "consecutive_failures": 0,
            "available": True,
            "unavailable_streak": 0,
        },
    )
    return conn.execute(_LOCK_ITEM, {"item_id": item_id}).one()


def _record_success(
    conn: Connection, item: sa.Row[Any], at: datetime, offer: Offer, availability: Availability
) -> PollResult:
    if item.last_success_at is not None and at < item.last_success_at:
        raise ValueError(
            f"item {offer.item_id}: poll time {at.isoformat()} is before the stored state "
            f"({item.last_success_at.isoformat()}); clocks out of order?"
        )
    new_availability, back = on_success(availability)
    digest = scd.fingerprint(offer)
    if item.state_hash is not None and item.state_hash == digest:
        # Same state as stored: nothing to read, compare or write.
        changes, wrote, baseline = list(back), False, False
    else:
        state = scd.load_open_state(conn, offer.item_id)
        previous = state.to_offer(item)
        baseline = previous is None
        changes = [] if previous is None else [*back, *diff(previous, offer)]
        wrote = scd.write_offer(conn, offer.item_id, at, state, offer)
    if baseline:
        outcome = PollOutcome.BASELINE
    else:
        outcome = PollOutcome.CHANGED if (changes or wrote) else PollOutcome.UNCHANGED
    poll_id = _insert_poll(conn, offer.item_id, at, outcome)
    _insert_changes(conn, poll_id, offer.item_id, at, changes)
    values: dict[str, Any] = {
        "title": offer.title,
        "currency": offer.currency,
        "unit": offer.unit,
        "url": offer.url,
        "image": offer.image,
        "shop_name": offer.shop_name,
        "shop_url": offer.shop_url,
        "last_polled_at": at,
        "last_success_at": at,
        "last_changed_at": at if outcome is PollOutcome.CHANGED else item.last_changed_at,
        "polls_total": item.polls_total + 1,
        "consecutive_failures": 0,
        "available": new_availability.available,
        "unavailable_streak": new_availability.unavailable_streak,
        "last_error_reason": None,
        "last_error": None,
        "state_hash": digest,
    }
    _update_item(conn, offer.item_id, values)
    return PollResult(poll_id, offer.item_id, at, outcome, tuple(changes), offer)


def _record_failure(
    conn: Connection,
    item: sa.Row[Any],
    at: datetime,
    error: TmapiError | ParseError,
    availability: Availability,
    *,
    unavailable_after: int,
) -> PollResult:
    item_id: int = item.item_id
    reason = error.reason if isinstance(error, TmapiError) else "parse"
    code = error.code if isinstance(error, TmapiError) else None
    message = str(error)[:_MESSAGE_MAX]
    changes: list[Change] = []
    values: dict[str, Any] = {
        "last_polled_at": at,
        "polls_total": item.polls_total + 1,
        "polls_failed": item.polls_failed + 1,
        "consecutive_failures": item.consecutive_failures + 1,
        "last_error_reason": reason[:32],
        "last_error": message,
    }
    if isinstance(error, TmapiItemUnavailable):
        outcome = PollOutcome.UNAVAILABLE
        new_availability, changes = on_unavailable(availability, unavailable_after)
        values["available"] = new_availability.available
        values["unavailable_streak"] = new_availability.unavailable_streak
        if changes:
            values["last_changed_at"] = at
    else:
        outcome = PollOutcome.FAILED
    poll_id = _insert_poll(conn, item_id, at, outcome, reason=reason[:32], code=code)
    _insert_changes(conn, poll_id, item_id, at, changes)
    _update_item(conn, item_id, values)
    return PollResult(
        poll_id,
        item_id,
        at,
        outcome,
        tuple(changes),
        None,
        error_reason=reason,
        error_code=code,
        error_message=message,
    )


def _insert_poll(
    conn: Connection,
    item_id: int,
    at: datetime,
    outcome: PollOutcome,
    *,
    reason: str | None = None,
    code: int | None = None,
) -> int:
    result = conn.execute(
        _INSERT_POLL,
        {
            "item_id": item_id,
            "polled_at": at,
            "outcome": outcome.value,
            "error_reason": reason,
            "error_code": code,
        },
    )
    (poll_id,) = result.inserted_primary_key or (None,)
    if poll_id is None:
        raise RuntimeError("the database returned no id for the new poll row")
    return int(poll_id)


def _insert_changes(
    conn: Connection, poll_id: int, item_id: int, at: datetime, changes: list[Change]
) -> None:
    if changes:
        rows = [
            {"poll_id": poll_id, "item_id": item_id, "detected_at": at, **history.change_values(c)}
            for c in changes
        ]
        conn.execute(_INSERT_CHANGES, rows)


def _update_item(conn: Connection, item_id: int, values: dict[str, Any]) -> None:
    conn.execute(_UPDATE_ITEM, {"key": item_id, **values})
