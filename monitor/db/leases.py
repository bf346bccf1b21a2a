"""Coordination through the database: which items are watched, who polls what.

The scheduler of every ``monitor run`` process asks the database, not its
own memory, which items are due. A due item is *claimed* with a lease (owner,
expiry) by one conditional UPDATE; on PostgreSQL the candidate rows are
picked with ``SELECT … FOR UPDATE SKIP LOCKED``, so replicas never wait for
each other and never claim the same item; on SQLite the UPDATE runs under
``BEGIN IMMEDIATE``, which serialises claimers the same way. A poll ends
inside its own transaction by setting the next due time and dropping the
lease: recording (:class:`monitor.db.poll_plan.Lease`) does it within the
item's own UPDATE, after checking the owner on the row it locked. If the
lease was taken over meanwhile (this process stalled past its expiry) the
poll fails with :class:`LeaseLost` and writes nothing. A replica that dies
keeps its claims only until their leases expire.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor.db.engine import is_sqlite, write_transaction
from monitor.db.models import Item
from monitor.db.urls import storage_error
from monitor.errors import StorageError

ITEMS = cast(sa.Table, Item.__table__)
#: New items inserted per statement by :func:`sync_watchlist`.
_INSERT_CHUNK = 1000


class LeaseLost(StorageError):
    """Another process took this item over while we were polling it."""


@dataclass(frozen=True, slots=True)
class SyncReport:
    added: tuple[int, ...]
    removed: tuple[int, ...]
    watched: int


def sync_watchlist(
    engine: Engine,
    entries: Sequence[tuple[int, str | None]],
    now: datetime,
    first_poll_at: Callable[[int], datetime],
) -> SyncReport:
    """Make ``items.watched`` match the watchlist's ``(item_id, name)`` entries.

    New items get a row due at ``first_poll_at(item_id)``; items that are no
    longer listed stop being watched (their history stays); an item that
    comes back is due at once unless it already has a due time.
    """
    wanted = dict(entries)
    try:
        with write_transaction(engine) as conn:
            rows = conn.execute(sa.select(ITEMS.c.item_id, ITEMS.c.watched, ITEMS.c.name)).all()
            known = {row.item_id: row for row in rows}
            new = [i for i in wanted if i not in known]
            added: list[int] = []
            # Replicas starting together insert the same new items: the first
            # one wins, the others skip them instead of failing the start.
            insert = (sqlite.insert if is_sqlite(conn) else postgresql.insert)(ITEMS)
            statement = insert.on_conflict_do_nothing(index_elements=["item_id"]).returning(
                ITEMS.c.item_id
            )
            # In slices, so a watchlist of 100k new items never holds 100k rows of
            # parameters in memory at once.
            for start in range(0, len(new), _INSERT_CHUNK):
                chunk = new[start : start + _INSERT_CHUNK]
                inserted = conn.execute(
                    statement,
                    [
                        {
                            "item_id": item_id,
                            "name": wanted[item_id],
                            "watched": True,
                            "first_seen_at": now,
                            "next_poll_at": first_poll_at(item_id),
                            "polls_total": 0,
                            "polls_failed": 0,
                            "consecutive_failures": 0,
                            "available": True,
                            "unavailable_streak": 0,
                        }
                        for item_id in chunk
                    ],
                )
                fresh = set(inserted.scalars())
                added.extend(i for i in chunk if i in fresh)
            for item_id, row in known.items():
                watch = item_id in wanted
                name = wanted.get(item_id, row.name)
                if row.watched == watch and row.name == name:
                    continue
                values: dict[str, object] = {"watched": watch, "name": name}
                if watch and not row.watched:
                    values["next_poll_at"] = sa.func.coalesce(ITEMS.c.next_poll_at, now)
                conn.execute(sa.update(ITEMS).where(ITEMS.c.item_id == item_id).values(values))
            removed = tuple(i for i, row in known.items() if row.watched and i not in wanted)
            return SyncReport(tuple(added), removed, len(wanted))
    except SQLAlchemyError as exc:
        raise storage_error(exc, "syncing the watchlist") from None


def bring_forward(engine: Engine, due_by: Mapping[int, datetime]) -> None:
    """Make each item due no later than ``due_by[item_id]``.

    Used when a watchlist edit shortens an item's interval: the new interval
    applies at once instead of after the old, longer one has run out. Items
    already due sooner keep their time.
    """
    if not due_by:
        return
    stmt = (
        sa.update(ITEMS)
        .where(ITEMS.c.item_id == sa.bindparam("key"), ITEMS.c.next_poll_at > sa.bindparam("due"))
        .values(next_poll_at=sa.bindparam("due"))
    )
    try:
        with write_transaction(engine) as conn:
            conn.execute(stmt, [{"key": key, "due": due} for key, due in due_by.items()])
    except SQLAlchemyError as exc:
        raise storage_error(exc, "rescheduling items with a shorter interval") from None


def claim(
    engine: Engine,
    owner: str,
    now: datetime,
    *,
    limit: int,
    lease: timedelta,
    due_only: bool = True,
) -> list[int]:
    """Claim up to ``limit`` watched items, most overdue first; return their ids.

    An item is claimable when it is due (``next_poll_at <= now``, unless
    ``due_only`` is false) and nobody holds an unexpired lease on it.
    """
    if limit <= 0:
        return []
    free = sa.or_(ITEMS.c.lease_expires_at.is_(None), ITEMS.c.lease_expires_at <= now)
    pick = sa.select(ITEMS.c.item_id).where(ITEMS.c.watched.is_(True), free)
    if due_only:
        pick = pick.where(ITEMS.c.next_poll_at <= now)
    pick = pick.order_by(ITEMS.c.next_poll_at.asc().nulls_first(), ITEMS.c.item_id).limit(limit)
    try:
        with write_transaction(engine) as conn:
            if not is_sqlite(conn):
                pick = pick.with_for_update(skip_locked=True)
            stmt = (
                sa.update(ITEMS)
                .where(ITEMS.c.item_id.in_(pick.scalar_subquery()), free)
                .values(lease_owner=owner, lease_expires_at=now + lease)
                .returning(ITEMS.c.item_id, ITEMS.c.next_poll_at)
            )
            rows = list(conn.execute(stmt).all())
    except SQLAlchemyError as exc:
        raise storage_error(exc, "claiming due items") from None
    rows.sort(key=lambda r: (r.next_poll_at is not None, r.next_poll_at or now, r.item_id))
    return [row.item_id for row in rows]


def release(engine: Engine, owner: str, item_ids: Sequence[int] | None = None) -> int:
    """Drop our leases (all of them, or on ``item_ids``) so others may poll at once."""
    stmt = sa.update(ITEMS).where(ITEMS.c.lease_owner == owner)
    if item_ids is not None:
        stmt = stmt.where(ITEMS.c.item_id.in_(list(item_ids)))
    try:
        with write_transaction(engine) as conn:
            return conn.execute(stmt.values(lease_owner=None, lease_expires_at=None)).rowcount
    except SQLAlchemyError as exc:
        raise storage_error(exc, "releasing leases") from None


def reschedule(engine: Engine, item_id: int, owner: str, next_poll_at: datetime) -> None:
    """Outside a poll (the poll could not be recorded): set the next try, drop the lease."""
    try:
        with write_transaction(engine) as conn:
            conn.execute(
                sa.update(ITEMS)
                .where(ITEMS.c.item_id == item_id, ITEMS.c.lease_owner == owner)
                .values(next_poll_at=next_poll_at, lease_owner=None, lease_expires_at=None)
            )
    except SQLAlchemyError as exc:
        raise storage_error(exc, f"rescheduling item {item_id}") from None


def next_due(engine: Engine) -> datetime | None:
    """When the next watched item falls due (None when nothing is watched)."""
    try:
        with engine.connect() as conn:
            return cast(
                datetime | None,
                conn.execute(
                    sa.select(sa.func.min(ITEMS.c.next_poll_at)).where(ITEMS.c.watched.is_(True))
                ).scalar(),
            )
    except SQLAlchemyError as exc:
        raise storage_error(exc, "reading the schedule") from None
