"""The notification outbox, database side: enqueue, claim, mark.

A poll that alerts calls :func:`enqueue` inside its own transaction, so its
notifications are committed with its snapshot or not at all. Delivery
(:mod:`monitor.notify.deliver`) later calls :func:`claim`, sends each row
outside any transaction, and records the outcome with :func:`mark_sent`,
:func:`mark_retry`, :func:`mark_dead` or :func:`release`.

Claiming sets a lease (owner and expiry) on the rows it returns. On
PostgreSQL candidates are locked with ``FOR UPDATE SKIP LOCKED``, so
concurrent workers never claim the same row; on SQLite the claim runs in a
``BEGIN IMMEDIATE`` transaction, which serialises writers. A worker that dies
leaves its rows leased until the lease expires, then any worker takes them
over. Every mark is a conditional UPDATE that succeeds only while the lease
is still the caller's (same owner, same expiry, still pending) and returns
whether it did; a late mark after a takeover changes nothing.

Delivery is at-least-once: the send happens before :func:`mark_sent`, so a
crash in between sends that one message again after the lease expires.

Digests: rows for a digest target are inserted ``held`` with ``digest`` set
and ``next_attempt_at`` at the next digest time. When that time comes,
:func:`claim` first merges all due digest rows of a target into one new
pending row (key ``digest:{target}:{release time, UTC}``) whose payload is
the list of all their alert groups, and marks the members ``merged`` with
``digest_id`` pointing at it, in the same transaction: nothing is dropped,
nothing is sent twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor.alerts.model import AlertGroup
from monitor.alerts.schedule import hold_until
from monitor.db.engine import is_sqlite, write_transaction
from monitor.db.models import Notification
from monitor.db.urls import storage_error
from monitor.watchlist.model import Target

__all__ = [
    "DEFAULT_LEASE",
    "Claimed",
    "OutboxState",
    "claim",
    "decode_groups",
    "encode_groups",
    "enqueue",
    "mark_dead",
    "mark_retry",
    "mark_sent",
    "notification_key",
    "release",
]

NOTIFICATIONS = cast(sa.Table, Notification.__table__)
N = NOTIFICATIONS.c

#: How long a claim lasts before another worker may take the row over.
DEFAULT_LEASE = timedelta(minutes=5)
ERROR_MAX = 500
_KINDS_MAX = 200


class OutboxState(StrEnum):
    """Values of ``notifications.state``."""

    PENDING = "pending"
    HELD = "held"
    SENT = "sent"
    DEAD = "dead"
    MERGED = "merged"


@dataclass(frozen=True, slots=True)
class Claimed:
    """A row claimed for delivery; hand it back to a ``mark_*`` function."""

    id: int
    key: str
    target: str
    item_id: int | None
    poll_id: int | None
    kinds: tuple[str, ...]
    payload: str
    attempts: int
    created_at: datetime
    due_at: datetime
    lease_owner: str
    lease_expires_at: datetime

    @property
    def is_digest(self) -> bool:
        return self.key.startswith("digest:")

    def groups(self) -> tuple[AlertGroup, ...]:
        """The alert groups to render; ValueError if the payload is unreadable."""
        return decode_groups(self.payload)


def notification_key(poll_id: int, target: str) -> str:
    """The unique key of one poll's alert group for one target."""
    return f"{poll_id}:{target}"


def encode_groups(groups: Iterable[AlertGroup]) -> str:
    """The ``payload`` text of a row: a JSON list of alert groups."""
    return json.dumps([g.to_json() for g in groups], ensure_ascii=False, separators=(",", ":"))


def decode_groups(payload: str) -> tuple[AlertGroup, ...]:
    """The alert groups of a ``payload``; ValueError if it is not what encode_groups wrote."""
    try:
        data = json.loads(payload)
        groups = tuple(AlertGroup.from_json(entry) for entry in data) if data else ()
    except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
        raise ValueError(f"unreadable notification payload ({type(exc).__name__})") from None
    if not isinstance(data, list) or not groups:
        raise ValueError("unreadable notification payload (not a list of alert groups)")
    return groups


def _kinds_text(kinds: Iterable[str]) -> str:
    return ",".join(dict.fromkeys(kinds))[:_KINDS_MAX]


def _insert(conn: Connection) -> Any:
    """The dialect's INSERT (both support ON CONFLICT DO NOTHING)."""
    return (sqlite.insert if is_sqlite(conn) else postgresql.insert)(NOTIFICATIONS)


def _enqueue_statement(dialect: Any) -> Any:
    insert = dialect.insert(NOTIFICATIONS)
    return insert.on_conflict_do_nothing(index_elements=["key"]).returning(N.id)


#: Built once per dialect: building it for every alert costs more than running it.
_ENQUEUE = {"sqlite": _enqueue_statement(sqlite), "postgresql": _enqueue_statement(postgresql)}


# -- enqueue (inside the poll transaction) ---------------------------------------


def enqueue(
    conn: Connection,
    group: AlertGroup,
    poll_id: int,
    targets: Sequence[Target],
    now: datetime,
) -> int:
    """Queue ``group`` for every target, on ``conn`` (the poll's transaction).

    One row per target, keyed ``"{poll_id}:{target}"``; a key already present
    is skipped. A target in quiet hours gets a ``held`` row released at the
    end of the window; a digest target a ``held`` digest row released at its
    next digest time. Returns how many rows were inserted.
    """
    if not group.alerts:
        return 0
    payload = encode_groups([group])
    kinds = _kinds_text(alert.kind for alert in group.alerts)
    statement = _ENQUEUE[conn.dialect.name]
    inserted = 0
    for target in dict((t.name, t) for t in targets).values():
        release = hold_until(target, now)
        values = {
            "key": notification_key(poll_id, target.name),
            "item_id": group.item_id,
            "poll_id": poll_id,
            "target": target.name,
            "kinds": kinds,
            "payload": payload,
            "state": OutboxState.PENDING if release is None else OutboxState.HELD,
            "digest": target.digest is not None,
            "attempts": 0,
            "created_at": now,
            "due_at": release or now,
            "next_attempt_at": release or now,
        }
        inserted += len(conn.execute(statement, values).all())
    return inserted


# -- claiming --------------------------------------------------------------------


def claim(
    engine: Engine,
    owner: str,
    now: datetime,
    limit: int = 50,
    lease: timedelta = DEFAULT_LEASE,
) -> list[Claimed]:
    """Claim up to ``limit`` due rows for ``owner`` until ``now + lease``, oldest first.

    Due: pending or held rows whose ``next_attempt_at`` has come and whose
    lease (if any) has expired. Digest rows whose time has come are merged
    first (see the module docstring).
    """
    expires = now + lease
    try:
        with write_transaction(engine) as conn:
            _merge_due_digests(conn, now)
            due = (
                sa.select(N.id)
                .where(
                    N.state.in_([OutboxState.PENDING, OutboxState.HELD]),
                    N.digest.is_(False),
                    N.next_attempt_at <= now,
                    sa.or_(N.lease_expires_at.is_(None), N.lease_expires_at <= now),
                )
                .order_by(N.due_at, N.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            rows = conn.execute(
                sa.update(NOTIFICATIONS)
                .where(N.id.in_(due.scalar_subquery()))
                .values(state=OutboxState.PENDING, lease_owner=owner, lease_expires_at=expires)
                .returning(*NOTIFICATIONS.c)
            ).all()
    except SQLAlchemyError as exc:
        raise storage_error(exc, "claiming notifications") from None
    claimed = [_claimed(row) for row in rows]
    claimed.sort(key=lambda c: (c.due_at, c.id))
    return claimed


def _claimed(row: sa.Row[Any]) -> Claimed:
    return Claimed(
        id=row.id,
        key=row.key,
        target=row.target,
        item_id=row.item_id,
        poll_id=row.poll_id,
        kinds=tuple(k for k in row.kinds.split(",") if k),
        payload=row.payload,
        attempts=row.attempts,
        created_at=row.created_at,
        due_at=row.due_at,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
    )


def _merge_due_digests(conn: Connection, now: datetime) -> None:
    """Turn each target's due digest rows into one pending digest row."""
    members = conn.execute(
        sa.select(NOTIFICATIONS)
        .where(
            N.state == OutboxState.HELD,
            N.digest.is_(True),
            N.next_attempt_at <= now,
        )
        .order_by(N.target, N.created_at, N.id)
        .with_for_update(skip_locked=True)
    ).all()
    by_target: dict[str, list[sa.Row[Any]]] = {}
    for row in members:
        by_target.setdefault(row.target, []).append(row)
    for target, rows in by_target.items():
        _merge(conn, target, rows, now)


def _merge(conn: Connection, target: str, rows: list[sa.Row[Any]], now: datetime) -> None:
    groups: list[Any] = []
    readable: list[sa.Row[Any]] = []
    for row in rows:
        try:
            decode_groups(row.payload)
        except ValueError as exc:
            _set(conn, [row.id], state=OutboxState.DEAD, last_error=str(exc)[:ERROR_MAX])
            continue
        groups.extend(json.loads(row.payload))
        readable.append(row)
    if not readable:
        return
    release: datetime = max(row.next_attempt_at for row in readable)
    items = {row.item_id for row in readable}
    values = {
        "key": f"digest:{target}:{release:%Y-%m-%dT%H:%MZ}",
        "item_id": items.pop() if len(items) == 1 else None,
        "poll_id": None,
        "target": target,
        "kinds": _kinds_text(k for row in readable for k in row.kinds.split(",") if k),
        "payload": json.dumps(groups, ensure_ascii=False, separators=(",", ":")),
        "state": OutboxState.PENDING,
        "digest": False,
        "attempts": 0,
        "created_at": now,
        "due_at": release,
        "next_attempt_at": now,
    }
    digest_id = conn.execute(_ENQUEUE[conn.dialect.name], values).scalar()
    if digest_id is None:
        # That digest time already produced a digest (rows enqueued late, by a
        # replica whose clock lags): make this one's key unique with a member id.
        values["key"] = f"{values['key']}+{readable[0].id}"
        digest_id = conn.execute(_insert(conn).returning(N.id), values).scalar_one()
    _set(
        conn,
        [row.id for row in readable],
        state=OutboxState.MERGED,
        digest_id=digest_id,
        lease_owner=None,
        lease_expires_at=None,
    )


def _set(conn: Connection, ids: list[int], **values: Any) -> None:
    conn.execute(sa.update(NOTIFICATIONS).where(N.id.in_(ids)).values(**values))


# -- marking the outcome ---------------------------------------------------------


def _mark(engine: Engine, row: Claimed, action: str, **values: Any) -> bool:
    """Update ``row`` if its lease is still ours; True if it was."""
    statement = (
        sa.update(NOTIFICATIONS)
        .where(
            N.id == row.id,
            N.state == OutboxState.PENDING,
            N.lease_owner == row.lease_owner,
            N.lease_expires_at == row.lease_expires_at,
        )
        .values(lease_owner=None, lease_expires_at=None, **values)
    )
    try:
        with write_transaction(engine) as conn:
            return conn.execute(statement).rowcount == 1
    except SQLAlchemyError as exc:
        raise storage_error(exc, f"marking notification {row.id} {action}") from None


def mark_sent(engine: Engine, row: Claimed, now: datetime) -> bool:
    """Record that ``row`` was delivered."""
    return _mark(
        engine,
        row,
        "sent",
        state=OutboxState.SENT,
        sent_at=now,
        attempts=N.attempts + 1,
        last_error=None,
    )


def mark_retry(engine: Engine, row: Claimed, error: str, next_attempt_at: datetime) -> bool:
    """Record a failed attempt; the row is due again at ``next_attempt_at``.

    ``error`` must be free of secrets (it is stored and shown)."""
    return _mark(
        engine,
        row,
        "for retry",
        attempts=N.attempts + 1,
        next_attempt_at=next_attempt_at,
        last_error=error[:ERROR_MAX],
    )


def mark_dead(engine: Engine, row: Claimed, error: str, *, attempted: bool = True) -> bool:
    """Give up on ``row``: it stays visible as ``dead`` with ``error``.

    ``attempted`` says whether a send was tried in this claim (counted in ``attempts``)."""
    return _mark(
        engine,
        row,
        "dead",
        state=OutboxState.DEAD,
        attempts=N.attempts + 1 if attempted else N.attempts,
        last_error=error[:ERROR_MAX],
    )


def release(engine: Engine, row: Claimed, next_attempt_at: datetime) -> bool:
    """Hand ``row`` back unsent and uncounted (no attempt was made), due at ``next_attempt_at``."""
    return _mark(engine, row, "released", next_attempt_at=next_attempt_at)
