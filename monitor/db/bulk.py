"""Executemany for the store's hottest statements, without SQLAlchemy's per-row work.

Every poll adds a row to ``polls`` and updates its ``items`` row. Through
``Connection.execute(statement, rows)`` SQLAlchemy builds each row's
parameters in Python, layer by layer, which costs more than the database
spends on the row. :class:`Bulk` compiles a statement once per dialect and
column set, converts each value with its column type's own bind processor
(so the database receives exactly what SQLAlchemy would send) and gives
the rows to the driver's executemany in one call, still on the caller's
connection and transaction, with SQLAlchemy's events and error handling.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

__all__ = ["Bulk"]

Processor = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _Prepared:
    sql: str
    #: For each parameter of ``sql`` in order (positional styles): its index in a row.
    order: tuple[int, ...] | None
    #: For each column of a row: its bind name and its bind processor.
    names: tuple[str, ...]
    processors: tuple[Processor | None, ...]


class Bulk:
    """One statement (an INSERT or UPDATE of ``table``), run for many rows at once.

    ``build(columns)`` returns the statement; its bind parameters are named
    after ``columns`` (a parameter that is not a column of ``table`` takes
    its type from the column ``aliases`` names for it).
    """

    def __init__(
        self,
        table: sa.Table,
        build: Callable[[tuple[str, ...]], sa.Insert | sa.Update],
        *,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        self._table = table
        self._build = build
        self._aliases = dict(aliases or {})
        self._prepared: dict[tuple[str, tuple[str, ...]], _Prepared] = {}
        self._lock = threading.Lock()

    def execute(
        self, conn: Connection, columns: tuple[str, ...], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Run the statement once per row; each row holds the values of ``columns``."""
        if not rows:
            return
        prepared = self._prepare(conn.dialect, columns)
        processors = prepared.processors
        converted = [
            [value if p is None else p(value) for value, p in zip(row, processors, strict=True)]
            for row in rows
        ]
        order = prepared.order
        params: list[Any]
        if order is None:
            names = prepared.names
            params = [dict(zip(names, row, strict=True)) for row in converted]
        else:
            params = [tuple([row[i] for i in order]) for row in converted]
        conn.exec_driver_sql(prepared.sql, params)

    def _prepare(self, dialect: Dialect, columns: tuple[str, ...]) -> _Prepared:
        key = (dialect.name, columns)
        prepared = self._prepared.get(key)
        if prepared is None:
            with self._lock:
                prepared = self._prepared.get(key) or self._compile(dialect, columns)
                self._prepared[key] = prepared
        return prepared

    def _compile(self, dialect: Dialect, columns: tuple[str, ...]) -> _Prepared:
        compiled = self._build(columns).compile(dialect=dialect, column_keys=list(columns))
        processors: list[Processor | None] = []
        for name in columns:
            column = self._table.c[self._aliases.get(name, name)]
            processors.append(column.type.dialect_impl(dialect).bind_processor(dialect))
        order = None
        if dialect.positional:
            where = {name: index for index, name in enumerate(columns)}
            order = tuple(where[name] for name in compiled.positiontup or ())
        return _Prepared(compiled.string, order, columns, tuple(processors))
