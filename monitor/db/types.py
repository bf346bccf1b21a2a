"""Column types that keep money exact and timestamps in UTC on every dialect.

``Money``
    ``Decimal`` in, ``Decimal`` out; a ``float`` is refused when bound. The
    column is an unconstrained ``NUMERIC`` on both dialects, so people
    querying the history with SQL get numeric ``MIN()``, ``ORDER BY`` and
    comparisons.

    * PostgreSQL: psycopg binds ``Decimal`` natively and returns ``numeric``
      as ``Decimal``; nothing is converted.
    * SQLite: the value is bound as its decimal string; ``NUMERIC`` affinity
      stores it as an INTEGER or a REAL, keeping 15 significant digits
      (every realistic price). Reading it back would hand Python a float, so
      every selected ``Money`` expression, aggregates included, is wrapped in
      SQL that renders the stored number as text (:class:`money_text`) and
      that text becomes the ``Decimal``. REALs are rendered with 15
      significant digits explicitly (``printf('%!.15g')``) rather than with
      ``CAST(... AS TEXT)``, whose digit count is a build setting (17 by
      default since SQLite 3.53, which would turn 29.89 into
      29.890000000000001).

``UtcDateTime``
    Timezone-aware datetimes in, UTC-aware datetimes out; a naive datetime is
    refused. ``TIMESTAMP WITH TIME ZONE`` on PostgreSQL; on SQLite the UTC
    wall time as SQLAlchemy's fixed-width ISO text, which sorts and compares
    chronologically.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

__all__ = ["Money", "UtcDateTime", "money_text"]


class money_text(FunctionElement[Any]):
    """Render a ``Money`` expression in a form that reads back exactly.

    Compiles to the bare expression on PostgreSQL (``numeric`` arrives as
    ``Decimal``) and to a text rendering on SQLite; see the module docstring.
    """

    name = "money_text"
    inherit_cache = True

    def __init__(self, expr: ColumnElement[Any], type_: sa.types.TypeEngine[Any]) -> None:
        super().__init__(expr)
        self.type = type_


@compiles(money_text)
def _money_text_default(element: money_text, compiler: SQLCompiler, **kw: Any) -> str:
    (inner,) = element.clauses
    return compiler.process(inner, **kw)


@compiles(money_text, "sqlite")
def _money_text_sqlite(element: money_text, compiler: SQLCompiler, **kw: Any) -> str:
    (inner,) = element.clauses
    # Compiled once per use so that bound parameters inside are bound each time.
    first, second, third = (compiler.process(inner, **kw) for _ in range(3))
    return (
        f"CASE WHEN typeof({first}) = 'real' THEN printf('%!.15g', {second}) "
        f"ELSE CAST({third} AS TEXT) END"
    )


class _SqliteNumeric(sa.Numeric):  # type: ignore[type-arg]
    """``NUMERIC`` DDL without SQLAlchemy's float-based value conversion."""

    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> None:
        return None

    def result_processor(self, dialect: Dialect, coltype: object) -> None:
        return None


class Money(sa.TypeDecorator[Decimal]):
    """An exact decimal amount (a price, a percentage) stored as ``NUMERIC``."""

    impl = sa.Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(_SqliteNumeric())
        return dialect.type_descriptor(sa.Numeric(asdecimal=True))

    def column_expression(self, colexpr: ColumnElement[Any]) -> ColumnElement[Any]:
        return money_text(colexpr, type_=self)

    def process_bind_param(self, value: Any, dialect: Dialect) -> Decimal | str | None:
        amount = _to_decimal(value)
        if amount is None:
            return None
        return str(amount) if dialect.name == "sqlite" else amount

    def process_literal_param(self, value: Any, dialect: Dialect) -> str:
        amount = _to_decimal(value)
        return "NULL" if amount is None else str(amount)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None or isinstance(value, Decimal):
            return value
        if isinstance(value, bool | float):
            raise TypeError(
                "a Money column was read as a float; select it through its Money-typed "
                "column so it is rendered exactly"
            )
        if isinstance(value, int):
            return Decimal(value)
        if isinstance(value, str):
            try:
                return Decimal(value)
            except InvalidOperation:
                raise ValueError(f"not a decimal amount: {value[:40]!r}") from None
        raise TypeError(f"unexpected Money value from the driver: {type(value).__name__}")


def _to_decimal(value: Any) -> Decimal | None:
    """Validate a value bound to a ``Money`` column."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"Money takes Decimal (or int), not {type(value).__name__}")
    amount = Decimal(value)
    if not amount.is_finite():
        raise ValueError(f"Money must be a finite amount, not {amount}")
    return amount


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A point in time: aware datetimes in, UTC-aware datetimes out."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"UtcDateTime takes datetime, not {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("UtcDateTime refuses naive datetimes: attach a timezone")
        utc = value.astimezone(UTC)
        # SQLite's DATETIME text has no offset: store the UTC wall time.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """On SQLite, one function from the aware datetime to the stored text.

        It writes exactly what ``process_bind_param`` followed by SQLite's
        ``DATETIME`` processor would (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC), in
        a fraction of the time: every poll binds several of these.
        """
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        check = self.process_bind_param

        def process(value: Any) -> str | None:
            if value is None:
                return None
            if value.__class__ is datetime and value.tzinfo is UTC:
                text = value.isoformat(" ")[:-6]  # the usual case: drop "+00:00"
                return text if value.microsecond else text + ".000000"
            wall = check(value, dialect)  # validated, UTC wall time
            assert wall is not None
            text = wall.isoformat(" ")
            return text if wall.microsecond else text + ".000000"

        return process

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"unexpected UtcDateTime value: {type(value).__name__}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
