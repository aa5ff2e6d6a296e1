"""A report's rows in batches through the engine's own driver (sqlite3, psycopg), for exports
small enough to write in the worker's thread (exports/sources/driver_rows.py makes them Arrow
record batches for the renderers).

No SQLAlchemy row objects: the driver's tuples go on as they are. On PostgreSQL a server-side
cursor streams the rows in binary (doubles arrive exact, whatever ``extra_float_digits`` says).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Dialect, Engine, Select

from uvm_reporting.exports.driver_sql import bound_parameters


@dataclass(frozen=True, slots=True)
class RowQuery:
    """A statement compiled for the engine's own driver: its text and parameters as the driver
    binds them (in order for sqlite3, by name for psycopg)."""

    sql: str
    parameters: Any


def row_query(statement: Select[Any], dialect: Dialect) -> RowQuery:
    compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    values = bound_parameters(compiled, dialect)
    if dialect.name == "sqlite":
        return RowQuery(compiled.string, tuple(values[name] for name in compiled.positiontup or ()))
    return RowQuery(compiled.string, values)


def row_batches(engine: Engine, query: RowQuery, batch_rows: int) -> Iterator[Sequence[Sequence[Any]]]:
    with closing(engine.raw_connection()) as pooled:
        if engine.dialect.name == "sqlite":
            cursor = pooled.cursor()
        else:
            connection = pooled.driver_connection
            assert connection is not None  # a pooled connection always has one
            # An export reads every row: plan the cursor for all of them, not the first tenth.
            connection.execute("SET LOCAL cursor_tuple_fraction = 1.0")
            cursor = connection.cursor(name="uvm_export_rows", binary=True)
        try:
            cursor.execute(query.sql, query.parameters)
            while rows := cursor.fetchmany(batch_rows):
                yield rows
        finally:
            cursor.close()
            pooled.rollback()
