"""A to-one LEFT OUTER join in the export process: the main query's record batches, each with a
relation's columns added from that relation's lookup table, looked up by key.

Arrow's ``index_in`` builds its hash table of the lookup's keys on every call, which costs
about as much as probing a hundred thousand keys; so the keys of consecutive batches are looked
up together, ``GROUP_ROWS`` rows at a time (the batches wait, which bounds the memory this adds).
Keys compare as bytes, as PostgreSQL compares text in a deterministic collation; a NULL key
finds nothing, as in SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from uvm_reporting.exports.export_job import LOOKUP_KEY

GROUP_ROWS = 50_000
"""Rows whose keys are looked up in one call."""


@dataclass(frozen=True)
class Lookup:
    """One relation's table: ``LOOKUP_KEY`` and the report's columns of it, keyed by
    ``key_column`` of the main batches."""

    key_column: str
    table: Any  # pa.Table

    @property
    def keys(self) -> Any:
        return self.table.column(LOOKUP_KEY).combine_chunks()

    def columns(self) -> list[str]:
        return [name for name in self.table.column_names if name != LOOKUP_KEY]


def joined(batches: Iterable[Any], lookups: Sequence[Lookup], columns: Sequence[str]) -> Iterator[Any]:
    """Each batch with its lookups' columns joined, and only ``columns``, in that order."""
    prepared = [(lookup.key_column, lookup.keys,
                 {name: lookup.table.column(name).combine_chunks() for name in lookup.columns()})
                for lookup in lookups]
    waiting: list[Any] = []
    rows = 0
    for batch in batches:
        waiting.append(batch)
        rows += len(batch)
        if rows >= GROUP_ROWS:
            yield from _join_group(waiting, prepared, columns)
            waiting, rows = [], 0
    if waiting:
        yield from _join_group(waiting, prepared, columns)


def _join_group(batches: list[Any], prepared: list[tuple[str, Any, dict[str, Any]]],
                columns: Sequence[str]) -> Iterator[Any]:
    positions = []
    for key_column, keys, _ in prepared:
        probes = pa.concat_arrays([batch.column(key_column) for batch in batches])
        positions.append(pc.index_in(probes, value_set=keys, skip_nulls=True))
    start = 0
    for batch in batches:
        arrays = {name: batch.column(name) for name in batch.schema.names}
        for found, (_, _, values) in zip(positions, prepared, strict=True):
            rows = found.slice(start, len(batch))
            for name, column in values.items():
                arrays[name] = column.take(rows)
        start += len(batch)
        yield pa.RecordBatch.from_arrays([arrays[name] for name in columns], names=list(columns))
