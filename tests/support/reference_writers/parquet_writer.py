"""Parquet from Python rows: each batch turned into Arrow column-wise, value by value as
pyarrow converts Python objects (SQLite's ISO text parsed by Arrow's cast), then written by the
Parquet renderer's file writer (row groups, zstd)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa

from uvm_reporting.domain.catalog import FieldType
from uvm_reporting.exports.formats.common import Batches, BinaryWriter, Columns
from uvm_reporting.exports.renderers.parquet import ROWS_PER_GROUP, arrow_schema, write_parquet_batches


def _column(values: Sequence[Any], field: Any, kind: FieldType) -> Any:
    try:
        return pa.array(values, type=field.type)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        if kind is FieldType.NUMBER:  # e.g. Decimal from a NUMERIC expression
            return pa.array([None if value is None else float(value) for value in values], type=field.type)
        if kind not in (FieldType.TIMESTAMP, FieldType.DATE):
            raise
    text = [value if value is None or isinstance(value, str) else value.isoformat() for value in values]
    return pa.array(text, type=pa.string()).cast(field.type)


def write_parquet(
    batches: Batches, columns: Columns, out: BinaryWriter, *, rows_per_group: int = ROWS_PER_GROUP
) -> int:
    """Write every row as a Parquet file streamed to ``out``; return the number of rows."""
    schema = arrow_schema(columns)
    kinds = [kind for _, kind in columns]

    def record_batches() -> Iterator[Any]:
        for batch in batches:
            if batch:
                arrays = [
                    _column(values, field, kind)
                    for values, field, kind in zip(zip(*batch, strict=True), schema, kinds, strict=True)
                ]
                yield pa.RecordBatch.from_arrays(arrays, schema=schema)

    return write_parquet_batches(record_batches(), columns, out, rows_per_group=rows_per_group)
