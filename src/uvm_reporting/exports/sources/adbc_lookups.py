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
    """One relation's table, keyed by ``key_column`` of the main batches: its keys and the
    report's columns of it, each one contiguous array."""

    key_column: str
    keys: Any  # pa.Array
    columns: dict[str, Any]  # report path -> pa.Array

    @classmethod
    def from_table(cls, key_column: str, table: Any) -> Lookup:
        """From a table of ``LOOKUP_KEY`` and the report's columns (as the lookup's SELECT reads
        them; an empty result has no chunks at all)."""
        arrays = {name: table.column(name).combine_chunks() for name in table.column_names}
        keys = arrays.pop(LOOKUP_KEY)
        return cls(key_column, keys, arrays)


def joined(batches: Iterable[Any], lookups: Sequence[Lookup], columns: Sequence[str]) -> Iterator[Any]:
    """Each batch with its lookups' columns joined, and only ``columns``, in that order."""
    waiting: list[Any] = []
    rows = 0
    for batch in batches:
        waiting.append(batch)
        rows += len(batch)
        if rows >= GROUP_ROWS:
            yield from _join_group(waiting, lookups, columns)
            waiting, rows = [], 0
    if waiting:
        yield from _join_group(waiting, lookups, columns)


def _join_group(batches: list[Any], lookups: Sequence[Lookup], columns: Sequence[str]) -> Iterator[Any]:
    positions = []
    for lookup in lookups:
        probes = pa.concat_arrays([batch.column(lookup.key_column) for batch in batches])
        positions.append(pc.index_in(probes, value_set=lookup.keys, skip_nulls=True))
    start = 0
    for batch in batches:
        arrays = {name: batch.column(name) for name in batch.schema.names}
        for found, lookup in zip(positions, lookups, strict=True):
            rows = found.slice(start, len(batch))
            for name, values in lookup.columns.items():
                arrays[name] = values.take(rows)
        start += len(batch)
        yield pa.RecordBatch.from_arrays([arrays[name] for name in columns], names=list(columns))
