"""Money and UtcDateTime on SQLite and PostgreSQL: exact round trips, SQL-friendly storage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import cast

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import Session

from monitor.db.models import Item, Poll, TierState
from monitor.db.types import Money, UtcDateTime

D = Decimal
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
ITEMS = cast(sa.Table, Item.__table__)
TIERS = cast(sa.Table, TierState.__table__)
POLLS = cast(sa.Table, Poll.__table__)

AMOUNTS = ["29.89", "0.01", "12345678.9012", "30.00", "0.1", "1E+2", "-4.20", "99999999999.99"]


def _item(engine: Engine, *item_ids: int) -> None:
    """Bare ``items`` rows (item 1 when no id is given)."""
    with engine.begin() as conn:
        conn.execute(
            sa.insert(ITEMS),
            [
                {
                    "item_id": item_id,
                    "watched": True,
                    "first_seen_at": T0,
                    "polls_total": 0,
                    "polls_failed": 0,
                    "consecutive_failures": 0,
                    "available": True,
                    "unavailable_streak": 0,
                }
                for item_id in item_ids or (1,)
            ],
        )


def _tiers(engine: Engine, prices: list[str]) -> None:
    _item(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(TIERS),
            [
                {"item_id": 1, "min_qty": qty, "price": D(p), "valid_from": T0}
                for qty, p in enumerate(prices, 1)
            ],
        )


def test_money_round_trips_exactly(engine: Engine) -> None:
    _tiers(engine, AMOUNTS)
    with engine.connect() as conn:
        got = conn.execute(sa.select(TIERS.c.price).order_by(TIERS.c.min_qty)).scalars().all()
    assert all(type(v) is Decimal for v in got)
    assert got == [D(a) for a in AMOUNTS]
    # Exact digits, not a float's nearest neighbour (29.890000000000001).
    assert str(got[0]) == "29.89"
    assert str(got[1]) == "0.01"
    assert str(got[2]) == "12345678.9012"
    assert got[3] == D(30)
    assert str(got[7]) == "99999999999.99"


def test_money_through_the_orm(engine: Engine) -> None:
    _tiers(engine, ["29.89", "12345678.9012"])
    with Session(engine) as session:
        rows = session.scalars(sa.select(TierState).order_by(TierState.min_qty)).all()
        assert [r.price for r in rows] == [D("29.89"), D("12345678.9012")]
        assert str(rows[0].price) == "29.89"
        cheapest = session.scalar(sa.select(sa.func.min(TierState.price)))
        assert cheapest == D("29.89") and str(cheapest) == "29.89"


def test_money_aggregates_order_and_compare_numerically(engine: Engine) -> None:
    # As text, "100" < "29.89" < "9.5"; numerically it is the other way round.
    _tiers(engine, ["29.89", "9.5", "100", "0.01"])
    with engine.connect() as conn:
        low, high, total = conn.execute(
            sa.select(
                sa.func.min(TIERS.c.price), sa.func.max(TIERS.c.price), sa.func.sum(TIERS.c.price)
            )
        ).one()
        ordered = conn.execute(sa.select(TIERS.c.price).order_by(TIERS.c.price)).scalars().all()
        cheap = (
            conn.execute(
                sa.select(TIERS.c.price).where(TIERS.c.price < D("30")).order_by(TIERS.c.price)
            )
            .scalars()
            .all()
        )
        in_subquery = sa.select(TIERS.c.price).where(TIERS.c.price > D("9.5")).subquery()
        outer = conn.execute(sa.select(in_subquery.c.price).order_by(in_subquery.c.price))
        from_subquery = outer.scalars().all()
    assert (low, high, total) == (D("0.01"), D("100"), D("139.40"))
    assert all(type(v) is Decimal for v in (low, high, total))
    assert str(low) == "0.01"
    assert ordered == [D("0.01"), D("9.5"), D("29.89"), D("100")]
    assert cheap == [D("0.01"), D("9.5"), D("29.89")]
    assert from_subquery == [D("29.89"), D("100")]


def test_money_is_stored_as_a_number_for_sql_users(engine: Engine) -> None:
    _tiers(engine, ["29.89", "30.00"])
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            kinds = (
                conn.exec_driver_sql("SELECT typeof(price) FROM tier_states ORDER BY min_qty")
                .scalars()
                .all()
            )
            assert kinds == ["real", "integer"]
        else:
            kinds = (
                conn.exec_driver_sql(
                    "SELECT pg_typeof(price)::text FROM tier_states ORDER BY min_qty"
                )
                .scalars()
                .all()
            )
            assert kinds == ["numeric", "numeric"]
        assert conn.exec_driver_sql("SELECT max(price) > 29.9 FROM tier_states").scalar() in (
            1,
            True,
        )


def test_money_refuses_floats_and_non_finite_amounts(engine: Engine) -> None:
    _item(engine)
    row = {"item_id": 1, "min_qty": 1, "valid_from": T0}
    with engine.connect() as conn:
        with pytest.raises(sa.exc.StatementError) as info:
            conn.execute(sa.insert(TIERS), {**row, "price": 29.89})
        assert isinstance(info.value.orig, TypeError)
        conn.rollback()
        with pytest.raises(sa.exc.StatementError) as info:
            conn.execute(sa.insert(TIERS), {**row, "price": D("NaN")})
        assert isinstance(info.value.orig, ValueError)
        conn.rollback()
        with pytest.raises(sa.exc.StatementError) as info:
            conn.execute(sa.select(TIERS.c.id).where(TIERS.c.price < 1.5))
        assert isinstance(info.value.orig, TypeError)


SQLITE = sa.create_engine("sqlite+pysqlite://").dialect
POSTGRESQL = sa.create_engine("postgresql+psycopg://u@localhost/d").dialect  # never connects


@pytest.mark.parametrize("dialect", [SQLITE, POSTGRESQL], ids=["sqlite", "pg"])
def test_money_processing_rules(dialect: Dialect) -> None:
    money = Money()
    for bad in (0.5, True, "1.5"):
        with pytest.raises(TypeError):
            money.process_bind_param(bad, dialect)
    for bad_decimal in (D("Infinity"), D("NaN")):
        with pytest.raises(ValueError, match="finite"):
            money.process_bind_param(bad_decimal, dialect)
    bound = money.process_bind_param(D("29.89"), dialect)
    assert bound == ("29.89" if dialect.name == "sqlite" else D("29.89"))
    assert money.process_bind_param(7, dialect) in ("7", D(7))
    assert money.process_bind_param(None, dialect) is None
    assert money.process_result_value("29.89", dialect) == D("29.89")
    assert money.process_result_value(30, dialect) == D(30)
    assert money.process_result_value(None, dialect) is None
    with pytest.raises(TypeError, match="float"):
        money.process_result_value(29.89, dialect)


def test_sqlite_renders_reals_with_15_digits_not_the_build_default() -> None:
    stmt = sa.select(sa.func.min(TIERS.c.price))
    sql = str(stmt.compile(dialect=SQLITE))
    assert "printf('%!.15g', min(tier_states.price))" in sql
    assert "typeof(min(tier_states.price)) = 'real'" in sql
    assert str(stmt.compile(dialect=POSTGRESQL)).startswith("SELECT min(tier_states.price) AS")


def test_utc_datetime_round_trips_as_aware_utc(engine: Engine) -> None:
    _item(engine)
    shanghai = timezone(timedelta(hours=8))
    local = datetime(2025, 3, 1, 16, 30, 15, 123456, tzinfo=shanghai)
    with engine.begin() as conn:
        conn.execute(sa.insert(POLLS), {"item_id": 1, "polled_at": local, "outcome": "unchanged"})
    with engine.connect() as conn:
        got = conn.execute(sa.select(POLLS.c.polled_at)).scalar_one()
        latest = conn.execute(sa.select(sa.func.max(POLLS.c.polled_at))).scalar_one()
        stored = conn.exec_driver_sql("SELECT CAST(polled_at AS TEXT) FROM polls").scalar_one()
        found = conn.execute(
            sa.select(sa.func.count()).where(
                POLLS.c.polled_at == datetime(2025, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)
            )
        ).scalar_one()
    assert got == local
    assert got.tzinfo is UTC
    assert (got.hour, got.microsecond) == (8, 123456)
    assert latest == local and latest.tzinfo is UTC
    assert found == 1
    if engine.dialect.name == "sqlite":
        assert stored == "2025-03-01 08:30:15.123456"  # UTC wall time, sortable text
    else:
        assert stored.startswith("2025-03-01 ")


def test_utc_datetime_refuses_naive_datetimes(engine: Engine) -> None:
    _item(engine)
    with engine.connect() as conn, pytest.raises(sa.exc.StatementError) as info:
        conn.execute(
            sa.insert(POLLS),
            {"item_id": 1, "polled_at": datetime(2025, 3, 1, 8, 0), "outcome": "unchanged"},
        )
    assert isinstance(info.value.orig, ValueError)
    with pytest.raises(TypeError):
        UtcDateTime().process_bind_param("2025-03-01", SQLITE)


@pytest.mark.parametrize(
    "value",
    [
        datetime(2025, 3, 1, 16, 30, 15, 123456, tzinfo=timezone(timedelta(hours=8))),
        datetime(2025, 3, 1, 8, 0, tzinfo=UTC),  # no microseconds: still six digits
        datetime(2025, 12, 31, 23, 59, 59, 1, tzinfo=timezone(timedelta(hours=-5))),
        datetime(999, 1, 2, 3, 4, 5, 600000, tzinfo=UTC),
        None,
    ],
)
def test_sqlite_binds_timestamps_as_the_general_processing_would(value: datetime | None) -> None:
    fused = UtcDateTime().bind_processor(SQLITE)
    assert fused is not None
    general = sa.DateTime().dialect_impl(SQLITE).bind_processor(SQLITE)
    assert general is not None
    expected = general(UtcDateTime().process_bind_param(value, SQLITE))
    assert fused(value) == expected
    if value is not None:
        assert len(fused(value)) == len("2025-03-01 08:00:00.000000")


def test_sqlite_bind_processor_still_refuses_naive_and_non_datetimes() -> None:
    fused = UtcDateTime().bind_processor(SQLITE)
    assert fused is not None
    with pytest.raises(ValueError, match="naive"):
        fused(datetime(2025, 3, 1, 8, 0))
    with pytest.raises(TypeError):
        fused("2025-03-01")


def test_timestamps_are_timestamptz_on_postgresql() -> None:
    ddl = str(sa.schema.CreateTable(POLLS).compile(dialect=POSTGRESQL))
    assert "polled_at TIMESTAMP WITH TIME ZONE NOT NULL" in ddl
    assert "NUMERIC" in str(sa.schema.CreateTable(TIERS).compile(dialect=POSTGRESQL))
    assert "price NUMERIC NOT NULL" in str(sa.schema.CreateTable(TIERS).compile(dialect=SQLITE))
