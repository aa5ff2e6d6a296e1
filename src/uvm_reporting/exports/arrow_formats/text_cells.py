"""Vectorised tests and edits of Arrow text columns, shared by the CSV and NDJSON renderers.

An Arrow string array is two buffers: the bytes of every value one after the other, and the
offsets where each value starts. Most questions an export asks of its text (does any value
hold a comma? which values start with ``=``?) are answered on those buffers with NumPy at
memory speed, and the per-value work (quoting, escaping) is then done only where it is needed,
by Arrow's compute kernels in C++. Both release the GIL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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


def _value_bytes(values: Any) -> bytes:
    """The bytes of every value of a string array, as one ``bytes`` (a copy, at memcpy speed)."""
    offsets = _offsets(values)
    if offsets[-1] == offsets[0]:
        return b""
    data: bytes = values.buffers()[2].to_pybytes()[int(offsets[0]):int(offsets[-1])]
    return data


def bytes_present(values: Any, candidates: frozenset[int]) -> frozenset[int]:
    """Which of the byte values ``candidates`` occur anywhere in the string array: every other
    byte is deleted in one C pass (``bytes.translate``), and what is left says. The bytes behind
    a NULL are empty in every Arrow writer we read from."""
    others = bytes(byte for byte in range(256) if byte not in candidates)
    return frozenset(_value_bytes(values).translate(None, others))


def cells_holding(values: Any, byte_values: Iterable[int]) -> Any:
    """A boolean NumPy mask: which values contain any of ``byte_values``. One table look-up per
    byte marks the hits, one ``logical_or.reduceat`` folds them per value."""
    offsets = _offsets(values)
    data = _data(values, offsets)
    mask = np.zeros(len(values), dtype=bool)
    if len(data) == 0:
        return mask
    wanted = np.zeros(256, dtype=bool)
    wanted[list(byte_values)] = True
    hits = np.empty(len(data) + 1, dtype=bool)
    np.take(wanted, data, out=hits[:-1])
    hits[-1] = False  # one False past the end: every start is an index
    filled = offsets[1:] > offsets[:-1]
    # An empty value's slot holds its neighbour's first byte: ignored below.
    folded = np.logical_or.reduceat(hits, offsets[:-1] - offsets[0])
    mask[filled] = folded[filled]
    return mask


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
