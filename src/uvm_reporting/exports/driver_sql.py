"""A report's SELECT as the SQL text (and parameters) a driver outside SQLAlchemy runs.

* SQLite: the text with ``?`` placeholders and the values in order, after our column types'
  bind processing (a timestamp becomes the stored ISO text): the driver binds them.
* PostgreSQL: the text with every value inlined as a literal by psycopg's own quoting
  (``psycopg.sql.Literal``; backslashes get an ``E''`` string, so the text means the same
  whatever ``standard_conforming_strings`` says). ADBC's PostgreSQL driver streams a result
  only through COPY, and COPY takes no parameters: this is how psycopg's ``copy()`` binds too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql as psycopg_sql
from sqlalchemy import Dialect, Select


@dataclass(frozen=True, slots=True)
class DriverQuery:
    sql: str
    parameters: tuple[Any, ...] = ()


def driver_query(statement: Select[Any], dialect: Dialect) -> DriverQuery:
    compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    values = bound_parameters(compiled, dialect)
    if dialect.name == "sqlite":
        return DriverQuery(compiled.string, tuple(values[name] for name in compiled.positiontup or ()))
    if dialect.name != "postgresql":
        raise ValueError(f"no export driver for {dialect.name}")
    literals = {name: psycopg_sql.Literal(value).as_string(None) for name, value in values.items()}
    # The psycopg dialect writes placeholders as %(name)s and every literal % as %%.
    return DriverQuery(compiled.string % literals)


def bound_parameters(compiled: Any, dialect: Dialect) -> dict[str, Any]:
    """Parameter values as the driver must receive them (after our types' bind processing)."""
    values: dict[str, Any] = compiled.construct_params()
    for name, bind in compiled.binds.items():
        if name in values:
            processor = bind.type.bind_processor(dialect)
            if processor is not None:
                values[name] = processor(values[name])
    return values
