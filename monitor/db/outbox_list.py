"""Reading the outbox and keeping it small: ``monitor notify list``, the
health endpoint's counts, and the purge of rows that are done with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor.db.engine import write_transaction
from monitor.db.outbox import NOTIFICATIONS, N, OutboxState
from monitor.db.urls import storage_error

__all__ = ["OutboxRow", "count_by_state", "list_notifications", "purge"]


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A row as shown by ``monitor notify list``."""

    id: int
    key: str
    target: str
    item_id: int | None
    kinds: tuple[str, ...]
    state: OutboxState
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    last_error: str | None
    digest_id: int | None


def list_notifications(
    engine: Engine, state: OutboxState | None = None, limit: int = 100
) -> list[OutboxRow]:
    """The newest ``limit`` rows, optionally only those in ``state``."""
    statement = sa.select(NOTIFICATIONS).order_by(N.id.desc()).limit(limit)
    if state is not None:
        statement = statement.where(N.state == state)
    try:
        with engine.connect() as conn:
            rows = conn.execute(statement).all()
    except SQLAlchemyError as exc:
        raise storage_error(exc, "listing notifications") from None
    return [
        OutboxRow(
            id=row.id,
            key=row.key,
            target=row.target,
            item_id=row.item_id,
            kinds=tuple(k for k in row.kinds.split(",") if k),
            state=OutboxState(row.state),
            attempts=row.attempts,
            created_at=row.created_at,
            next_attempt_at=row.next_attempt_at,
            sent_at=row.sent_at,
            last_error=row.last_error,
            digest_id=row.digest_id,
        )
        for row in rows
    ]


def count_by_state(engine: Engine) -> dict[OutboxState, int]:
    """How many rows are in each state (states without rows are absent)."""
    statement = sa.select(N.state, sa.func.count()).group_by(N.state)
    try:
        with engine.connect() as conn:
            return {OutboxState(state): int(n) for state, n in conn.execute(statement)}
    except SQLAlchemyError as exc:
        raise storage_error(exc, "counting notifications") from None


def purge(
    engine: Engine,
    before: datetime,
    states: Sequence[OutboxState] = (OutboxState.SENT, OutboxState.MERGED),
) -> int:
    """Delete rows in ``states`` created before ``before``; returns how many."""
    statement = sa.delete(NOTIFICATIONS).where(N.state.in_(states), N.created_at < before)
    try:
        with write_transaction(engine) as conn:
            return conn.execute(statement).rowcount
    except SQLAlchemyError as exc:
        raise storage_error(exc, "purging notifications") from None
