"""The text of numbers, timestamps and dates in Arrow columns, as the CSV and NDJSON renderers
write them (the reference writers of the tests, tests/support/reference_writers, write the
same bytes from Python values).

Numbers: whole numbers below 1e16 as integers; others as the shortest text that reads back as
the same double. Arrow writes that as Python does between 1e-4 and 1e10; outside, it chooses
the exponent form elsewhere (``1.5e+10`` against Python's ``15000000000.5``) and writes it
otherwise (``1.5e-7`` against ``1.5e-07``). The few values out there are formatted by Python,
so the rule has one definition.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from uvm_reporting.domain.timestamps import format_utc

_UNITS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_YEAR_1000 = -30_610_224_000  # 1000-01-01T00:00:00Z in seconds since 1970
_YEAR_10000 = 253_402_300_800  # 10000-01-01T00:00:00Z
_WHOLE_BELOW = 1e16
# Outside [1e-4, 1e10) Arrow writes exponents where Python does not, or writes them otherwise.
_ARROW_AGREES_FROM = 1e-4
_ARROW_AGREES_BELOW = 1e10


def number_texts(values: Any, *, json: bool = False) -> Any:
    """Doubles as text: the CSV rule (``10``, ``9.8``), or with ``json`` Python's ``repr`` of a
    float (``10.0``), non-finite values as NULL (JSON has no NaN)."""
    values = _as_float64(values)
    array = values.to_numpy(zero_copy_only=False)
    valid = ~np.asarray(values.is_null().to_numpy(zero_copy_only=False))
    finite = np.isfinite(np.where(valid, array, 0.0))
    magnitude = np.abs(np.where(valid & finite, array, 0.0))
    whole = valid & finite & (np.floor(np.where(finite, array, 0.0)) == array) & (magnitude < _WHOLE_BELOW)
    if json:  # Python writes -0.0 with its sign; the integer path would lose it
        whole &= ~(np.signbit(array) & (array == 0))
    texts = pc.cast(values, pa.string())
    if whole.any():
        integers = pc.cast(pc.cast(pc.if_else(pa.array(whole), values, 0.0), pa.int64()), pa.string())
        if json:
            integers = pc.binary_join_element_wise(integers, ".0", "")
        texts = pc.if_else(pa.array(whole), integers, texts)
    odd = valid & finite & ~whole & ((magnitude < _ARROW_AGREES_FROM) | (magnitude >= _ARROW_AGREES_BELOW))
    if json:
        odd |= valid & np.signbit(array) & (array == 0)
    if odd.any():
        python: Callable[[float], str] = repr if json else _csv_number
        positions = np.flatnonzero(odd)
        replaced = texts.to_pylist()
        for position in positions:
            replaced[position] = python(float(array[position]))
        texts = pa.array(replaced, pa.string())
    if json:
        texts = pc.if_else(pa.array(valid & ~finite), pa.scalar(None, pa.string()), texts)
    return texts


def _csv_number(value: float) -> str:
    """The shortest text that reads back as the same number, without a trailing ``.0``: what
    PostgreSQL's COPY and Arrow write too, so every path prints ``10`` and ``9.8``."""
    if value.is_integer() and abs(value) < _WHOLE_BELOW:
        return str(int(value))
    return repr(value)


def _as_float64(values: Any) -> Any:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values if values.type == pa.float64() else values.cast(pa.float64())


def timestamp_texts(values: Any) -> Any:
    """Timestamps as ``2026-03-01T10:00:00Z`` (whole seconds, UTC). Text (SQLite keeps exactly
    this form, database.types) passes as it is.

    Arrow's own cast to text (``2026-03-01 10:00:00``) with the ``T`` and ``Z`` put in is about
    15 times cheaper than its strftime(). Years outside 1000-9999, whose text has another
    width, are formatted by Python (domain.timestamps.format_utc)."""
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return values
    if not pa.types.is_timestamp(values.type):
        raise TypeError(f"a timestamp column arrived as {values.type}")
    per_second = _UNITS_PER_SECOND[values.type.unit]
    counts = pc.fill_null(pc.cast(values, pa.int64()), 0).to_numpy(zero_copy_only=False)
    seconds = np.floor_divide(counts, per_second)
    valid = ~np.asarray(values.is_null().to_numpy(zero_copy_only=False))
    in_range = seconds[valid]
    if len(in_range) and (in_range.min() < _YEAR_1000 or in_range.max() >= _YEAR_10000):
        return pa.array(
            [
                None if moment is None else format_utc(moment)
                for moment in pc.cast(values, pa.timestamp(values.type.unit, tz="UTC")).to_pylist()
            ],
            pa.string(),
        )
    # The seconds with the column's own validity bitmap: no copy, no per-value conversion.
    unsliced = values if values.offset == 0 else pa.concat_arrays([values])
    validity = unsliced.buffers()[0] if unsliced.null_count else None
    wall_clock = pa.Array.from_buffers(pa.timestamp("s"), len(values), [validity, pa.py_buffer(seconds)])
    spaced = pc.cast(wall_clock, pa.string())  # 2026-03-01 10:00:00
    return pc.binary_replace_slice(pc.binary_replace_slice(spaced, 10, 11, "T"), 19, 19, "Z")


def date_texts(values: Any) -> Any:
    """Dates as ``YYYY-MM-DD``; text passes as it is."""
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return values
    return pc.cast(values, pa.string())
