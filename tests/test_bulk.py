"""``Bulk`` writes exactly what ``Connection.execute`` would, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from monitor.db.bulk import Bulk
from monitor.db.models import Item, Poll
from tests.test_db_types import _item

ITEMS = cast(sa.Table, Item.__table__)
POLLS = cast(sa.Table, Poll.__table__)
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
SHANGHAI = timezone(timedelta(hours=8))
COLUMNS = ("id", "item_id", "polled_at", "outcome", "error_reason", "error_code")
ROWS = [
    (1, 1, T0, "unchanged", None, None),
    (2, 2, datetime(2025, 3, 1, 16, 30, 15, 123456, tzinfo=SHANGHAI), "failed", "timeout", 499),
    (3, 1, T0 + timedelta(microseconds=7), "changed", None, None),
]
UPDATE = Bulk(
    ITEMS,
    lambda _: sa.update(ITEMS).where(ITEMS.c.item_id == sa.bindparam("key")),
    aliases={"key": "item_id"},
)


def _stored(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    """Rows as the database holds them (timestamps as text), not as the ORM reads them."""
    with engine.connect() as conn:
        return [tuple(row) for row in conn.exec_driver_sql(sql)]


def test_inserts_are_stored_exactly_as_through_sqlalchemy(engine: Engine) -> None:
    _item(engine, 1, 2)
    text = "SELECT id, item_id, CAST(polled_at AS TEXT), outcome, error_reason, error_code"
    with engine.begin() as conn:
        conn.execute(sa.insert(POLLS), [dict(zip(COLUMNS, row, strict=True)) for row in ROWS])
    expected = _stored(engine, f"{text} FROM polls ORDER BY id")
    with engine.begin() as conn:
        conn.execute(sa.delete(POLLS))
        Bulk(POLLS, lambda _: sa.insert(POLLS)).execute(conn, COLUMNS, ROWS)
    assert _stored(engine, f"{text} FROM polls ORDER BY id") == expected
    with engine.connect() as conn:
        read = conn.execute(sa.select(POLLS.c.polled_at).order_by(POLLS.c.id)).scalars().all()
    assert read == [row[2] for row in ROWS]


@pytest.mark.parametrize(
    "columns",
    [
        ("last_polled_at", "polls_total", "key"),
        ("key", "available", "lease_owner", "lease_expires_at", "title"),
    ],
)
def test_updates_match_sqlalchemy_whatever_the_column_order(
    engine: Engine, columns: tuple[str, ...]
) -> None:
    values = {
        "last_polled_at": datetime(2025, 3, 2, 1, 2, 3, tzinfo=SHANGHAI),
        "polls_total": 7,
        "available": False,
        "lease_owner": None,
        "lease_expires_at": None,
        "title": "跨境 \"robe\" ; '%s' %(x)s",
    }
    text = (
        "SELECT item_id, CAST(last_polled_at AS TEXT), polls_total, available, lease_owner, "
        "title FROM items ORDER BY item_id"
    )
    _item(engine, 1, 2, 3)
    with engine.begin() as conn:
        conn.execute(
            sa.update(ITEMS).where(ITEMS.c.item_id == sa.bindparam("key")),
            [{c: values[c] if c != "key" else key for c in columns} for key in (1, 3)],
        )
    expected = _stored(engine, text)
    with engine.begin() as conn:
        conn.execute(sa.delete(ITEMS))
    _item(engine, 1, 2, 3)
    with engine.begin() as conn:
        UPDATE.execute(
            conn, columns, [[values[c] if c != "key" else key for c in columns] for key in (1, 3)]
        )
    got = _stored(engine, text)
    assert got == expected
    assert [row[0] for row in got if row[1] is not None or row[5] is not None] == [1, 3]


def test_bad_values_are_refused_as_sqlalchemy_refuses_them(engine: Engine) -> None:
    _item(engine, 1)
    naive = (1, 1, datetime(2025, 3, 1, 8, 0), "unchanged", None, None)
    with engine.begin() as conn, pytest.raises(ValueError, match="naive"):
        Bulk(POLLS, lambda _: sa.insert(POLLS)).execute(conn, COLUMNS, [naive])
    assert _stored(engine, "SELECT count(*) FROM polls") == [(0,)]


def test_nothing_to_write_runs_nothing(engine: Engine) -> None:
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with engine.begin() as conn:
        UPDATE.execute(conn, ("polls_total", "key"), [])
    assert not any("UPDATE" in s for s in statements)
