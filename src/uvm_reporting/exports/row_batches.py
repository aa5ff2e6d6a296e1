"""A report's rows in batches through the engine's own driver (sqlite3, psycopg), for exports
small enough to write in the worker's thread (exports/sources/driver_rows.py makes them Arrow
record batches for the renderers).

No SQLAlchemy row objects: the driver's tuples go on as they are. On PostgreSQL a server-side
cursor streams the rows in binary (doubles arrive exact, whatever ``extra_float_digits`` says).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import closing
from typing import Any

from sqlalchemy import Engine

from uvm_reporting import fault_points
from uvm_reporting.exports.driver_sql import DriverQuery


def row_batches(engine: Engine, query: DriverQuery, batch_rows: int) -> Iterator[Sequence[Sequence[Any]]]:
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
            if query.parameters:
                cursor.execute(query.sql, query.parameters)
            else:  # PostgreSQL: the values are inlined literals (exports/driver_sql.py)
                cursor.execute(query.sql)
            while rows := cursor.fetchmany(batch_rows):
                fault_points.reached("query")
                yield rows
        finally:
            cursor.close()
            pooled.rollback()
