"""What the export process needs to write one run's file, and nothing it must not see.

The worker builds an ``ExportJob`` from the run (the report's compiled SQL, its columns, the
format) and hands it to the export process as JSON on its standard input: never on the command
line, where other users of the machine could read the database password in ``ps``. Nothing
here imports SQLAlchemy, so the export process starts quickly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from uvm_reporting.domain.catalog import FieldType
from uvm_reporting.domain.formats import Compression, ExportFormat


@dataclass(frozen=True, slots=True)
class QueryPart:
    """One SELECT of the export; the parts' rows, one part after the other, are the report's."""

    sql: str
    parameters: tuple[Any, ...] = ()


LOOKUP_KEY = "#key"
"""The label of a lookup's key column; a relation's key in the main SELECT is ``<relation>#key``.
No field path holds ``#``, so neither can clash with a column of the report."""


@dataclass(frozen=True, slots=True)
class LookupPart:
    """The SELECT of one relation's targets, joined in the export process on ``key_column`` of
    the main query (exports/query_compiler.py, ``compile_lookup_query``)."""

    key_column: str
    sql: str


@dataclass(frozen=True, slots=True)
class ExportJob:
    dialect: str
    """``sqlite`` or ``postgresql``."""
    database: str
    """The SQLite file's path, or a libpq URI (it may hold a password: never log a job)."""
    parts: tuple[QueryPart, ...]
    columns: tuple[tuple[str, FieldType], ...]
    format: ExportFormat
    compression: Compression | None = None
    batch_rows: int = 10_000
    """Rows per record batch read from SQLite (PostgreSQL's batches are sized in bytes)."""
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    lookups: tuple[LookupPart, ...] = ()
    """PostgreSQL only, with one part: relations whose columns the export process joins."""

    def __post_init__(self) -> None:
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"no export process for {self.dialect}")
        if not self.parts:
            raise ValueError("an export job needs at least one query")
        if self.batch_rows < 1:
            raise ValueError(f"batch_rows must be positive, got {self.batch_rows}")
        if self.lookups and (self.dialect != "postgresql" or len(self.parts) != 1):
            raise ValueError("lookups are joined only on PostgreSQL, for a job of one query")

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "dialect": self.dialect,
                "database": self.database,
                "parts": [{"sql": part.sql, "parameters": list(part.parameters)} for part in self.parts],
                "columns": [[name, kind.value] for name, kind in self.columns],
                "format": self.format.value,
                "compression": self.compression.value if self.compression else None,
                "batch_rows": self.batch_rows,
                "log_level": self.log_level,
                "log_format": self.log_format,
                "lookups": [{"key_column": lookup.key_column, "sql": lookup.sql} for lookup in self.lookups],
            }
        ).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> ExportJob:
        record = json.loads(data)
        return cls(
            dialect=record["dialect"],
            database=record["database"],
            parts=tuple(QueryPart(part["sql"], tuple(part["parameters"])) for part in record["parts"]),
            columns=tuple((name, FieldType(kind)) for name, kind in record["columns"]),
            format=ExportFormat(record["format"]),
            compression=Compression(record["compression"]) if record["compression"] else None,
            batch_rows=int(record["batch_rows"]),
            log_level=record["log_level"],
            log_format="json" if record.get("log_format") == "json" else "text",
            lookups=tuple(LookupPart(lookup["key_column"], lookup["sql"]) for lookup in record["lookups"]),
        )

    def __repr__(self) -> str:  # the database URI may carry a password
        return (
            f"ExportJob(dialect={self.dialect!r}, parts={len(self.parts)}, format={self.format.value!r}, "
            f"compression={self.compression}, columns={len(self.columns)}, lookups={len(self.lookups)})"
        )
