"""Housekeeping of the poll log: the only table that grows with every poll."""

from __future__ import annotations

from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor.db.engine import write_transaction
from monitor.db.models import Poll
from monitor.db.urls import storage_error

POLLS = cast(sa.Table, Poll.__table__)


def prune_poll_log(engine: Engine, before: datetime) -> int:
    """Delete ``unchanged`` poll rows older than ``before``; return how many.

    Polls that found changes, failed, or were baselines stay: the changes
    refer to them and failures explain gaps in the history.
    """
    stmt = sa.delete(POLLS).where(POLLS.c.polled_at < before, POLLS.c.outcome == "unchanged")
    try:
        with write_transaction(engine) as conn:
            return conn.execute(stmt).rowcount
    except SQLAlchemyError as exc:
        raise storage_error(exc, "pruning the poll log") from None
