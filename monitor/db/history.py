"""Reading the record: items, detected changes and the poll log.

Functions here take a :class:`~sqlalchemy.engine.Connection` and return the
frozen records of :mod:`monitor.db.records`. The rebuild of an offer at a
point in time lives with the state tables in :mod:`monitor.db.scd`.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from monitor.db.models import ChangeRow, Item, Poll
from monitor.db.records import ItemRecord, PollCounts, PollOutcome, PollRecord, StoredChange
from monitor.domain import Change, ChangeKind, ChangeValue

__all__ = [
    "change_values",
    "changes_for",
    "item_record",
    "list_item_records",
    "poll_counts",
    "recent_polls",
]

ITEMS = cast(sa.Table, Item.__table__)
POLLS = cast(sa.Table, Poll.__table__)
CHANGES = cast(sa.Table, ChangeRow.__table__)


_ITEM_COLUMNS = [ITEMS.c[f.name] for f in fields(ItemRecord)]


def _item_record(row: sa.Row[Any]) -> ItemRecord:
    return ItemRecord(**row._asdict())


def item_record(conn: Connection, item_id: int) -> ItemRecord | None:
    """The ``items`` row of ``item_id``, if the item was ever polled."""
    row = conn.execute(sa.select(*_ITEM_COLUMNS).where(ITEMS.c.item_id == item_id)).first()
    return None if row is None else _item_record(row)


def list_item_records(conn: Connection) -> list[ItemRecord]:
    """Every ``items`` row, by item id."""
    stmt = sa.select(*_ITEM_COLUMNS).order_by(ITEMS.c.item_id)
    return [_item_record(row) for row in conn.execute(stmt)]


def change_values(change: Change) -> dict[str, Any]:
    """The ``changes`` columns describing ``change``.

    ``old``/``new`` go to the price columns when they are Decimals and to the
    stock columns when they are ints, so reading them back is lossless.
    """
    values: dict[str, Any] = {
        "kind": str(change.kind),
        "sku_id": change.sku_id,
        "sku_name": change.sku_name,
        "min_qty": change.min_qty,
        "old_price": None,
        "new_price": None,
        "old_stock": None,
        "new_stock": None,
        "pct": change.pct,
    }
    for side, value in (("old", change.old), ("new", change.new)):
        if isinstance(value, Decimal):
            values[f"{side}_price"] = value
        elif isinstance(value, int) and not isinstance(value, bool):
            values[f"{side}_stock"] = value
        elif value is not None:
            raise TypeError(
                f"change value must be Decimal, int or None, not {type(value).__name__}"
            )
    return values


def _value(price: Decimal | None, stock: int | None) -> ChangeValue:
    return price if price is not None else stock


def _stored_change(row: sa.Row[Any]) -> StoredChange:
    change = Change(
        kind=ChangeKind(row.kind),
        sku_id=row.sku_id,
        sku_name=row.sku_name,
        min_qty=row.min_qty,
        old=_value(row.old_price, row.old_stock),
        new=_value(row.new_price, row.new_stock),
        pct=row.pct,
    )
    return StoredChange(row.id, row.poll_id, row.item_id, row.detected_at, change)


def changes_for(
    conn: Connection, item_id: int, since: datetime | None = None
) -> list[StoredChange]:
    """Changes of ``item_id`` detected at or after ``since`` (all if None), oldest first."""
    stmt = sa.select(CHANGES).where(CHANGES.c.item_id == item_id)
    if since is not None:
        stmt = stmt.where(CHANGES.c.detected_at >= since)
    stmt = stmt.order_by(CHANGES.c.detected_at, CHANGES.c.id)
    return [_stored_change(row) for row in conn.execute(stmt)]


def poll_counts(
    conn: Connection, item_id: int | None = None, since: datetime | None = None
) -> PollCounts:
    """How many polls (of one item, or of all) ended each way, at or after ``since``."""
    stmt = sa.select(POLLS.c.outcome, sa.func.count()).group_by(POLLS.c.outcome)
    if item_id is not None:
        stmt = stmt.where(POLLS.c.item_id == item_id)
    if since is not None:
        stmt = stmt.where(POLLS.c.polled_at >= since)
    counts = {PollOutcome(outcome).value: int(n) for outcome, n in conn.execute(stmt)}
    return PollCounts(**counts)


def recent_polls(conn: Connection, item_id: int, limit: int = 20) -> list[PollRecord]:
    """The last ``limit`` polls of ``item_id``, newest first."""
    stmt = (
        sa.select(POLLS)
        .where(POLLS.c.item_id == item_id)
        .order_by(POLLS.c.polled_at.desc(), POLLS.c.id.desc())
        .limit(limit)
    )
    return [
        PollRecord(
            row.id,
            row.item_id,
            row.polled_at,
            PollOutcome(row.outcome),
            row.error_reason,
            row.error_code,
        )
        for row in conn.execute(stmt)
    ]
