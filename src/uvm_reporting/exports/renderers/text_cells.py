"""Vectorised tests and edits of Arrow text columns, shared by the CSV and NDJSON renderers.

An Arrow string array is two buffers: the bytes of every value one after the other, and the
offsets where each value starts. Most questions an export asks of its text (which values
hold a comma? which values start with ``=``?) are answered on those buffers with NumPy at
memory speed, and the per-value work (quoting, escaping) is then done only where it is needed,
by Arrow's compute kernels in C++. Both release the GIL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from uvm_reporting.exports.formula_safety import FORMULA_TRIGGERS

_FORMULA_FIRST_BYTES = np.zeros(256, dtype=bool)
_FORMULA_FIRST_BYTES[[ord(trigger) for trigger in FORMULA_TRIGGERS]] = True


def as_string_array(values: Any) -> Any:
    """``values`` (an Array or ChunkedArray of text) as one ``pa.string()`` array."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.type != pa.string():
        values = values.cast(pa.string())
    return values


def _offsets(values: Any) -> Any:
    """The ``len(values) + 1`` offsets of a string array, as int64 (the array may be a slice)."""
    buffer = values.buffers()[1]
    return np.frombuffer(buffer, dtype=np.int32, count=len(values) + 1, offset=values.offset * 4).astype(np.int64)


def _data(values: Any, offsets: Any) -> Any:
    """The bytes of every value of the array, and nothing outside it (a slice holds more)."""
    buffer = values.buffers()[2]
    if buffer is None or offsets[-1] == offsets[0]:
        return np.zeros(0, dtype=np.uint8)
    return np.frombuffer(buffer, dtype=np.uint8, count=int(offsets[-1] - offsets[0]), offset=int(offsets[0]))


def cells_holding(values: Any, candidates: frozenset[int]) -> tuple[Any, frozenset[int]]:
    """Which values of the string array contain any of the byte values ``candidates`` (a
    boolean NumPy mask), and which of them occur at all. The bytes are compared with each run
    of consecutive candidates at memory speed. Few hits are mapped to their values by a binary
    search of the offsets; many (more than one per eight bytes, whose positions would take more
    memory than the bytes) are folded per value by ``logical_or.reduceat``."""
    offsets = _offsets(values)
    data = _data(values, offsets)
    mask = np.zeros(len(values), dtype=bool)
    if len(data) == 0 or not candidates:
        return mask, frozenset()
    hits = np.zeros(len(data) + 1, dtype=bool)  # one False past the end: every start is an index
    body = hits[:-1]
    for low, high in _runs(candidates):
        if low == high:
            body |= data == low
        elif low == 0:
            body |= data <= high
        else:
            body |= (data >= low) & (data <= high)
    count = int(np.count_nonzero(body))
    if count == 0:
        return mask, frozenset()
    present = frozenset(np.flatnonzero(np.bincount(data[body], minlength=256)).tolist())
    if count <= len(data) // 8:
        # A hit at byte i belongs to the value whose end is the first one past i.
        mask[np.searchsorted(offsets[1:] - offsets[0], np.flatnonzero(body), side="right")] = True
    else:
        filled = offsets[1:] > offsets[:-1]  # an empty value's slot holds its neighbour's first byte
        folded = np.logical_or.reduceat(hits, offsets[:-1] - offsets[0])
        mask[filled] = folded[filled]
    return mask, present


def _runs(byte_values: frozenset[int]) -> list[tuple[int, int]]:
    """``byte_values`` as runs of consecutive values: {0..31, 34, 92} -> [(0, 31), (34, 34), (92, 92)]."""
    runs: list[tuple[int, int]] = []
    for value in sorted(byte_values):
        if runs and runs[-1][1] == value - 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def formula_cells(values: Any) -> Any:
    """A boolean NumPy mask: which values start a spreadsheet formula (exports/formula_safety)."""
    offsets = _offsets(values)
    starts, ends = offsets[:-1], offsets[1:]
    buffer = values.buffers()[2]
    if buffer is None or len(values) == 0 or offsets[-1] == offsets[0]:
        return np.zeros(len(values), dtype=bool)
    data = np.frombuffer(buffer, dtype=np.uint8, count=int(offsets[-1]))
    first = data[np.minimum(starts, len(data) - 1)]
    return _FORMULA_FIRST_BYTES[first] & (ends > starts)


def neutralise_formulas(values: Any) -> Any:
    """``values`` with ``'`` in front of every value that starts a formula."""
    mask = formula_cells(values)
    if not mask.any():
        return values
    return edit_where(values, mask, lambda chosen: pc.binary_join_element_wise("'", chosen, ""))


def edit_where(values: Any, mask: Any, edit: Callable[[Any], Any]) -> Any:
    """``values`` with the masked ones replaced by ``edit(those values)``: only they are edited."""
    selector = pa.array(mask)
    return pc.replace_with_mask(values, selector, as_string_array(edit(values.filter(selector))))
