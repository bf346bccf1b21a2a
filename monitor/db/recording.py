"""Recording polls: the one write path, for one poll or many in one transaction.

:func:`record` takes :class:`PollWrite` requests and records them in one
transaction (per item; see below), each poll all-or-nothing:

1. lock the items' rows (one ``SELECT … WHERE item_id IN (…) FOR UPDATE``
   in item order on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` takes the
   database write lock), creating rows for items never seen;
2. plan each poll from its row: a success whose digest equals
   ``items.state_hash`` is unchanged and reads nothing more; any other
   success reads the open state rows, diffs them (:mod:`monitor.diff`) and
   writes the state rows that changed (:mod:`monitor.db.scd`); a failure
   updates the counters and the unavailable streak (:mod:`monitor.db.poll_plan`).
   A poll that cannot be
   recorded as asked (its clock is older than the stored state, or the
   lease it names is held by someone else) gets its error and writes
   nothing, without disturbing the others;
3. write the poll log (one multi-row INSERT, ids allocated first), the
   changes, and the items' new values, only the columns that differ, with
   one executemany per set of columns (a poll that gives back a lease also
   sets the next due time and clears the lease in that same UPDATE);
4. run the alert step (:mod:`monitor.db.alerting`: the rules of each
   poll's watchlist item, their state and the outbox rows for its targets)
   and commit. There is no other way to record a poll: whoever records it
   (the daemon, ``monitor check``, the demo, the bench) alerts on it.

Before step 1 the database's poll source is checked
(:func:`monitor.db.meta.claim_source`): a poll of the simulator is never
recorded into a database of real polls, nor the other way round.

If anything in steps 2–4 raises, the transaction rolls back and, when
there was more than one poll, each poll is recorded again in a transaction
of its own, so one bad poll (a constraint violation) fails alone. When
the database itself is unreachable or busy there is no point in retrying
poll by poll: every poll of the batch gets the error.
A failed poll is never half-written.

Two polls of the same item are recorded one after the other, in order, in
separate transactions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor.db import history, meta
from monitor.db.alerting import Alerting, record_alerts
from monitor.db.bulk import Bulk
from monitor.db.engine import is_sqlite, write_transaction
from monitor.db.leases import LeaseLost
from monitor.db.models import ChangeRow, Poll
from monitor.db.models import Item as ItemRow
from monitor.db.poll_plan import Pending, Plan, PollWrite, Refused, check, compare, look
from monitor.db.records import PollResult
from monitor.db.urls import storage_error
from monitor.domain import Offer, PollSource
from monitor.errors import MixedSourcesError

__all__ = ["SourceCheck", "record"]

ITEMS = cast(sa.Table, ItemRow.__table__)
POLLS = cast(sa.Table, Poll.__table__)
CHANGES = cast(sa.Table, ChangeRow.__table__)

#: The ``items`` columns planning needs (the rest is never read on this path).
_ROW_COLUMNS = (
    "item_id",
    "title",
    "currency",
    "unit",
    "url",
    "image",
    "shop_name",
    "shop_url",
    "last_success_at",
    "last_changed_at",
    "polls_total",
    "polls_failed",
    "consecutive_failures",
    "available",
    "unavailable_streak",
    "last_error_reason",
    "last_error",
    "lease_owner",
    "state_hash",
)
_LOCK_ITEMS = (
    sa.select(*(ITEMS.c[name] for name in _ROW_COLUMNS))
    .where(ITEMS.c.item_id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(ITEMS.c.item_id)
    .with_for_update()
)
_INSERT_CHANGES = sa.insert(CHANGES)
_POLL_COLUMNS = ("id", "item_id", "polled_at", "outcome", "error_reason", "error_code")
#: Written for every poll: a ``polls`` row, and the item's counters and times.
_INSERT_POLLS = Bulk(POLLS, lambda _: sa.insert(POLLS))
_UPDATE_ITEMS = Bulk(
    ITEMS,
    lambda _: sa.update(ITEMS).where(ITEMS.c.item_id == sa.bindparam("key")),
    aliases={"key": "item_id"},
)
_MAX_POLL_ID = sa.select(sa.func.coalesce(sa.func.max(POLLS.c.id), 0))
_NEXT_POLL_IDS = sa.text(
    "SELECT nextval(pg_get_serial_sequence('polls', 'id')) FROM generate_series(1, :n)"
)
#: SQLSTATEs of a transaction that lost a race and may simply be run again.
_TRANSIENT = frozenset({"40P01", "40001"})
#: Most items locked by one SELECT (SQLite builds before 3.32 allow 999 parameters).
_CHUNK = 500


class SourceCheck:
    """The poll source one database was confirmed to hold (see :mod:`monitor.db.meta`).

    Once a transaction has confirmed it, later ones skip the query; a write
    of another source is checked (and refused) every time.
    """

    def __init__(self) -> None:
        self.confirmed: PollSource | None = None


def record(
    engine: Engine, writes: Sequence[PollWrite], sources: SourceCheck
) -> list[PollResult | Exception]:
    """Record ``writes``; return, in the same order, each one's result or error.

    See the module docstring. Errors are returned, not raised: ValueError
    for an impossible request, :class:`LeaseLost`, MixedSourcesError for a
    poll of the other source, StorageError for database failures.
    """
    results: list[PollResult | Exception | None] = [None] * len(writes)
    todo: list[int] = []
    for index, write in enumerate(writes):
        try:
            check(write)
        except ValueError as exc:
            results[index] = exc
        else:
            todo.append(index)
    for chunk in _chunks(todo, writes):
        batch = [writes[i] for i in chunk]
        try:
            done: list[PollResult | Exception] = _transaction(engine, batch, sources)
        except Exception as exc:
            if len(batch) > 1 and _worth_replaying(exc):
                done = [_alone(engine, write, sources) for write in batch]
            else:
                done = [_error(exc, write) for write in batch]
        for index, result in zip(chunk, done, strict=True):
            results[index] = result
    return cast(list[PollResult | Exception], results)  # every entry was set above


def _chunks(todo: list[int], writes: Sequence[PollWrite]) -> Iterable[list[int]]:
    """Indexes in batches where no item appears twice, a repeated item's polls in order."""
    rounds: list[list[int]] = []
    seen: dict[int, int] = {}
    for index in todo:
        item_id = writes[index].item_id
        n = seen.get(item_id, 0)
        seen[item_id] = n + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(index)
    for batch in rounds:
        for start in range(0, len(batch), _CHUNK):
            yield batch[start : start + _CHUNK]


def _worth_replaying(exc: Exception) -> bool:
    """Whether recording poll by poll could succeed where the batch failed.

    Not when the database itself failed (unreachable, locked past the busy
    timeout): each poll would fail alike, one timeout after another. A
    deadlock or serialization failure (SQLSTATE 40P01, 40001) is worth it.
    """
    if isinstance(exc, sa.exc.OperationalError):
        return getattr(exc.orig, "sqlstate", None) in _TRANSIENT
    return not isinstance(exc, sa.exc.InterfaceError | sa.exc.TimeoutError)


def _error(exc: Exception, write: PollWrite) -> Exception:
    if isinstance(exc, SQLAlchemyError):
        return storage_error(exc, f"recording a poll of item {write.item_id}")
    return exc


def _alone(engine: Engine, write: PollWrite, sources: SourceCheck) -> PollResult | Exception:
    try:
        return _transaction(engine, [write], sources)[0]
    except Exception as exc:
        return _error(exc, write)


def _check_sources(
    conn: Connection, writes: list[PollWrite], sources: SourceCheck
) -> tuple[dict[int, MixedSourcesError], PollSource | None]:
    """The polls (by index) whose source the database refuses, and the source it
    holds once this transaction commits (None: nothing new was confirmed)."""
    refused: dict[int, MixedSourcesError] = {}
    confirmed = None
    for source in dict.fromkeys(w.source for w in writes):
        if source is sources.confirmed:
            continue
        try:
            meta.claim_source(conn, source, writes[0].polled_at)
        except MixedSourcesError as exc:
            refused.update((i, exc) for i, w in enumerate(writes) if w.source is source)
        else:
            confirmed = source
    return refused, confirmed


def _transaction(
    engine: Engine, writes: list[PollWrite], sources: SourceCheck
) -> list[PollResult | Exception]:
    """Steps 1–4 of the module docstring for polls of distinct items."""
    with write_transaction(engine) as conn:
        mixed, confirmed = _check_sources(conn, writes, sources)
        rows = _lock_items(conn, [w for i, w in enumerate(writes) if i not in mixed])
        looks: list[Plan | Pending | Exception] = []
        for index, write in enumerate(writes):
            if index in mixed:
                looks.append(mixed[index])
                continue
            row = rows[write.item_id]
            if write.lease is not None and row.lease_owner != write.lease.owner:
                looks.append(
                    LeaseLost(
                        f"item {write.item_id} was taken over by another process; poll discarded"
                    )
                )
                continue
            try:
                looks.append(look(row, write))
            except Refused as refused:
                looks.append(refused.error)
        outcomes = compare(conn, looks)
        plans = [p for p in outcomes if isinstance(p, Plan)]
        polls = _write(conn, plans)
        if polls:
            polls = _alert(conn, polls, plans)
        recorded = iter(polls)
        results = [next(recorded) if isinstance(o, Plan) else o for o in outcomes]
    if confirmed is not None:  # committed: later transactions need not ask again
        sources.confirmed = confirmed
    return results


def _alert(conn: Connection, polls: list[PollResult], plans: list[Plan]) -> list[PollResult]:
    """Step 4: the alert step; each poll's result names the targets it queued messages for."""
    messages = record_alerts(
        conn,
        [
            Alerting(poll, plan.write.item, plan.write.targets, plan.failures)
            for poll, plan in zip(polls, plans, strict=True)
        ],
    )
    return [
        poll
        if message is None or not plan.write.targets
        else replace(poll, alerted=tuple(dict.fromkeys(t.name for t in plan.write.targets)))
        for poll, plan, message in zip(polls, plans, messages, strict=True)
    ]


def _lock_items(conn: Connection, writes: list[PollWrite]) -> dict[int, sa.Row[Any]]:
    """The items' rows, locked for this transaction; rows are created for new items."""
    ids = [w.item_id for w in writes]
    rows = {row.item_id: row for row in conn.execute(_LOCK_ITEMS, {"ids": ids})}
    missing = [w for w in writes if w.item_id not in rows]
    if missing:
        insert = (sqlite.insert if is_sqlite(conn) else postgresql.insert)(ITEMS)
        conn.execute(
            insert.on_conflict_do_nothing(index_elements=["item_id"]),
            [
                {
                    "item_id": w.item_id,
                    "watched": False,
                    "first_seen_at": w.polled_at,
                    "polls_total": 0,
                    "polls_failed": 0,
                    "consecutive_failures": 0,
                    "available": True,
                    "unavailable_streak": 0,
                }
                for w in missing
            ],
        )
        fresh = conn.execute(_LOCK_ITEMS, {"ids": [w.item_id for w in missing]})
        rows.update((row.item_id, row) for row in fresh)
    return rows


def _allocate_poll_ids(conn: Connection, count: int) -> list[int]:
    """``count`` ids for new ``polls`` rows, reserved for this transaction.

    PostgreSQL hands them out from the column's sequence in one query. On
    SQLite this transaction holds the write lock, so the ids after the
    largest one are free (which is what SQLite itself would assign).
    """
    if is_sqlite(conn):
        start = int(conn.execute(_MAX_POLL_ID).scalar_one()) + 1
        return list(range(start, start + count))
    return [int(i) for i in conn.execute(_NEXT_POLL_IDS, {"n": count}).scalars()]


def _write(conn: Connection, plans: list[Plan]) -> list[PollResult]:
    """Step 3: the poll log, the changes and the items' new values, in few statements."""
    if not plans:
        return []
    ids = _allocate_poll_ids(conn, len(plans))
    _INSERT_POLLS.execute(
        conn,
        _POLL_COLUMNS,
        [
            (
                poll_id,
                plan.write.item_id,
                plan.write.polled_at,
                plan.outcome.value,
                None if plan.reason is None else plan.reason[:32],
                plan.code,
            )
            for poll_id, plan in zip(ids, plans, strict=True)
        ],
    )
    polls: list[PollResult] = []
    change_rows: list[dict[str, Any]] = []
    updates: dict[tuple[str, ...], list[list[Any]]] = {}
    for poll_id, plan in zip(ids, plans, strict=True):
        write = plan.write
        poll = PollResult(
            poll_id,
            write.item_id,
            write.polled_at,
            plan.outcome,
            tuple(plan.changes),
            write.result if isinstance(write.result, Offer) else None,
            error_reason=plan.reason,
            error_code=plan.code,
            error_message=plan.message,
            source=write.source,
        )
        polls.append(poll)
        change_rows.extend(
            {
                "poll_id": poll_id,
                "item_id": write.item_id,
                "detected_at": write.polled_at,
                **history.change_values(change),
            }
            for change in plan.changes
        )
        values = plan.values
        if write.lease is not None:
            values["next_poll_at"] = write.lease.schedule(poll, plan.failures)
            values["lease_owner"] = None
            values["lease_expires_at"] = None
        values["key"] = write.item_id
        updates.setdefault(tuple(values), []).append(list(values.values()))
    if change_rows:
        conn.execute(_INSERT_CHANGES, change_rows)
    for columns, rows in updates.items():
        _UPDATE_ITEMS.execute(conn, columns, rows)
    return polls
