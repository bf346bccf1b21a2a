"""Read queries behind ``monitor history``, ``export``, ``chart`` and ``status``.

Every function takes a :class:`~sqlalchemy.engine.Connection` (open one with
:func:`reading`, which gives a consistent snapshot on both dialects) and
returns frozen records, never ORM objects or rows. Prices are read through
the typed view descriptions of :mod:`monitor.db.views` or the models, so they
come back as exact ``Decimal`` values on SQLite too.

A time window ``since`` selects the SKU states that were valid at any moment
from ``since`` until now: ``valid_to IS NULL OR valid_to > since``. The first
row of each SKU is therefore the price it had when the window opened.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor.db import history
from monitor.db.engine import is_sqlite
from monitor.db.models import Item, ItemState, Notification, Poll, SkuState
from monitor.db.records import ItemRecord, StoredChange
from monitor.db.urls import storage_error
from monitor.db.views import ALERT_LOG, PRICE_HISTORY

__all__ = [
    "AlertMark",
    "ItemStatus",
    "PriceRow",
    "StatusReport",
    "alert_marks",
    "count_price_history",
    "find_items_by_name",
    "item_changes",
    "iter_price_history",
    "price_rows",
    "reading",
    "sku_matches",
    "status_report",
]

ITEMS = cast(sa.Table, Item.__table__)
ITEM_STATES = cast(sa.Table, ItemState.__table__)
SKU_STATES = cast(sa.Table, SkuState.__table__)
POLLS = cast(sa.Table, Poll.__table__)
NOTIFICATIONS = cast(sa.Table, Notification.__table__)
PH = PRICE_HISTORY.c

#: ``notifications.state`` values that still wait for delivery.
WAITING_STATES = ("pending", "held")
_PCT_STEP = Decimal("0.1")


@contextmanager
def reading(engine: Engine, action: str = "reading the history") -> Iterator[Connection]:
    """A read-only transaction seeing one consistent snapshot (REPEATABLE READ on
    PostgreSQL; SQLite transactions always are). Database errors become StorageError."""
    try:
        with engine.connect() as conn:
            if not is_sqlite(conn):
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn
    except SQLAlchemyError as exc:
        raise storage_error(exc, action) from None


# -- price history ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PriceRow:
    """A row of the ``price_history`` view: one SKU's state over ``[valid_from, valid_to)``."""

    item_id: int
    sku_id: str
    sku_name: str
    price: Decimal
    stock: int | None
    sold_out: bool
    valid_from: datetime
    valid_to: datetime | None


def _price_row(row: sa.Row[Any]) -> PriceRow:
    return PriceRow(
        item_id=row.item_id,
        sku_id=row.sku_id,
        sku_name=row.sku_name,
        price=row.price,
        stock=row.stock,
        sold_out=bool(row.sold_out),
        valid_from=row.valid_from,
        valid_to=row.valid_to,
    )


def _in_window(since: datetime | None) -> sa.ColumnElement[bool]:
    if since is None:
        return sa.true()
    return sa.or_(PH.valid_to.is_(None), PH.valid_to > since)


def sku_matches(pattern: str | None, sku_id: str | None, sku_name: str | None) -> bool:
    """Whether a SKU matches a shell-style glob on its id or its name (no pattern: all).

    Case-sensitive, like the watchlist's ``skus`` key: ``"黄色*"``, ``"5*"``.
    """
    if pattern is None:
        return True
    return any(
        value is not None and fnmatch.fnmatchcase(value, pattern) for value in (sku_id, sku_name)
    )


def price_rows(
    conn: Connection,
    item_id: int,
    since: datetime | None = None,
    sku_pattern: str | None = None,
) -> list[PriceRow]:
    """The ``price_history`` rows of ``item_id`` in the window, by SKU then time."""
    stmt = (
        sa.select(PRICE_HISTORY)
        .where(PH.item_id == item_id, _in_window(since))
        .order_by(PH.sku_id, PH.valid_from)
    )
    rows = (_price_row(row) for row in conn.execute(stmt))
    return [row for row in rows if sku_matches(sku_pattern, row.sku_id, row.sku_name)]


def item_changes(
    conn: Connection,
    item_id: int,
    since: datetime | None = None,
    sku_pattern: str | None = None,
) -> list[StoredChange]:
    """Changes of ``item_id`` detected at or after ``since``, oldest first.

    With ``sku_pattern`` only the matching SKUs' changes are kept, plus the
    changes that concern no SKU (quantity breaks, the whole item).
    """
    return [
        stored
        for stored in history.changes_for(conn, item_id, since)
        if stored.change.sku_id is None
        or sku_matches(sku_pattern, stored.change.sku_id, stored.change.sku_name)
    ]


def count_price_history(conn: Connection, since: datetime | None = None) -> int:
    """How many ``price_history`` rows :func:`iter_price_history` will yield."""
    stmt = sa.select(sa.func.count()).select_from(PRICE_HISTORY).where(_in_window(since))
    return int(conn.execute(stmt).scalar_one())


def iter_price_history(
    conn: Connection, since: datetime | None = None, *, batch: int = 1000
) -> Generator[PriceRow, None, None]:
    """Every ``price_history`` row in the window, by item, SKU and time, streamed.

    Rows are fetched ``batch`` at a time (``yield_per``): a server-side cursor
    on PostgreSQL, SQLite's own stepping cursor there. Memory use does not
    grow with the table. Consume or ``close()`` the generator before ``conn`` is closed.
    """
    stmt = (
        sa.select(PRICE_HISTORY)
        .where(_in_window(since))
        .order_by(PH.item_id, PH.sku_id, PH.valid_from)
    )
    result = conn.execution_options(yield_per=batch).execute(stmt)
    try:
        for row in result:
            yield _price_row(row)
    finally:
        result.close()


def find_items_by_name(conn: Connection, name: str) -> list[int]:
    """Ids of the items whose watchlist name or title is ``name`` (case-insensitive)."""
    wanted = name.strip().lower()
    stmt = sa.select(ITEMS.c.item_id).where(
        sa.or_(sa.func.lower(ITEMS.c.name) == wanted, sa.func.lower(ITEMS.c.title) == wanted)
    )
    return sorted(int(item_id) for item_id in conn.execute(stmt).scalars())


# -- alerts ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertMark:
    """One alert sent (or due) to one target, from the ``alert_log`` view."""

    created_at: datetime
    target: str
    kinds: tuple[str, ...]
    delivery_state: str


def alert_marks(conn: Connection, item_id: int, since: datetime | None = None) -> list[AlertMark]:
    """The alerts about ``item_id`` created at or after ``since``, oldest first."""
    log = ALERT_LOG.c
    stmt = sa.select(log.created_at, log.target, log.kinds, log.delivery_state).where(
        log.item_id == item_id
    )
    if since is not None:
        stmt = stmt.where(log.created_at >= since)
    stmt = stmt.order_by(log.created_at, log.notification_id)
    return [
        AlertMark(
            created_at=row.created_at,
            target=row.target,
            kinds=tuple(kind for kind in row.kinds.split(",") if kind),
            delivery_state=row.delivery_state,
        )
        for row in conn.execute(stmt)
    ]


# -- status ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ItemStatus:
    """Where one item stands: its ``items`` row, current and first state, last poll,
    and its notifications still waiting (``pending``/``held``) or ``dead``."""

    item: ItemRecord
    price_min: Decimal | None
    price_max: Decimal | None
    first_price_min: Decimal | None
    stock: int | None
    sold_out: bool
    skus: int
    sold_out_skus: int
    last_outcome: str | None
    pending_notifications: int
    dead_notifications: int

    @property
    def change_pct(self) -> Decimal | None:
        """Change of the lowest price since the first stored state, in percent (0.1 steps)."""
        if self.price_min is None or not self.first_price_min:
            return None
        pct = (self.price_min - self.first_price_min) * 100 / self.first_price_min
        return pct.quantize(_PCT_STEP)


@dataclass(frozen=True, slots=True)
class StatusReport:
    """Every item in the database, TMAPI calls since midnight UTC, and notification totals
    (digest messages, which belong to no single item, included)."""

    items: tuple[ItemStatus, ...]
    calls_today: int
    pending_notifications: int
    dead_notifications: int
    now: datetime

    def item(self, item_id: int) -> ItemStatus | None:
        return next((s for s in self.items if s.item.item_id == item_id), None)


def _count_if(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def _utc_midnight(now: datetime) -> datetime:
    """The start of ``now``'s day in UTC."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def status_report(conn: Connection, now: datetime) -> StatusReport:
    """The status of every item, as of ``now`` (timezone-aware)."""
    items = history.list_item_records(conn)
    current = {
        row.item_id: row
        for row in conn.execute(
            sa.select(
                ITEM_STATES.c.item_id,
                ITEM_STATES.c.price_min,
                ITEM_STATES.c.price_max,
                ITEM_STATES.c.stock,
                ITEM_STATES.c.sold_out,
            ).where(ITEM_STATES.c.valid_to.is_(None))
        )
    }
    first_ids = sa.select(sa.func.min(ITEM_STATES.c.id)).group_by(ITEM_STATES.c.item_id)
    first: dict[int, Decimal] = {
        row.item_id: row.price_min
        for row in conn.execute(
            sa.select(ITEM_STATES.c.item_id, ITEM_STATES.c.price_min).where(
                ITEM_STATES.c.id.in_(first_ids)
            )
        )
    }
    skus = {
        row.item_id: (int(row.total), int(row.sold_out))
        for row in conn.execute(
            sa.select(
                SKU_STATES.c.item_id,
                sa.func.count().label("total"),
                _count_if(SKU_STATES.c.sold_out.is_(True)).label("sold_out"),
            )
            .where(SKU_STATES.c.valid_to.is_(None))
            .group_by(SKU_STATES.c.item_id)
        )
    }
    last_ids = sa.select(sa.func.max(POLLS.c.id)).group_by(POLLS.c.item_id)
    outcomes: dict[int, str] = {
        row.item_id: row.outcome
        for row in conn.execute(
            sa.select(POLLS.c.item_id, POLLS.c.outcome).where(POLLS.c.id.in_(last_ids))
        )
    }
    n = NOTIFICATIONS.c
    waiting, dead = n.state.in_(WAITING_STATES), n.state == "dead"
    notes = {
        row.item_id: (int(row.waiting), int(row.dead))
        for row in conn.execute(
            sa.select(
                n.item_id, _count_if(waiting).label("waiting"), _count_if(dead).label("dead")
            ).group_by(n.item_id)
        )
    }
    today = _utc_midnight(now)
    calls_today = int(
        conn.execute(
            sa.select(sa.func.count()).select_from(POLLS).where(POLLS.c.polled_at >= today)
        ).scalar_one()
    )
    statuses = []
    for item in items:
        state = current.get(item.item_id)
        total, sold_out_skus = skus.get(item.item_id, (0, 0))
        pending, dead_count = notes.get(item.item_id, (0, 0))
        statuses.append(
            ItemStatus(
                item=item,
                price_min=None if state is None else state.price_min,
                price_max=None if state is None else state.price_max,
                first_price_min=first.get(item.item_id),
                stock=None if state is None else state.stock,
                sold_out=False if state is None else bool(state.sold_out),
                skus=total,
                sold_out_skus=sold_out_skus,
                last_outcome=outcomes.get(item.item_id),
                pending_notifications=pending,
                dead_notifications=dead_count,
            )
        )
    return StatusReport(
        items=tuple(statuses),
        calls_today=calls_today,
        pending_notifications=sum(w for w, _ in notes.values()),
        dead_notifications=sum(d for _, d in notes.values()),
        now=now,
    )
