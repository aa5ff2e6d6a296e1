"""NDJSON (and, through json_array.py, JSON) from Arrow record batches.

One object per row, keys in column order, no spaces, text verbatim (no formula prefix), UTF-8
unescaped (``ensure_ascii=False``), numbers as Python writes a float (``10.0``, NaN and
infinities as ``null``: JSON cannot express them), NULL as ``null``. Text is written
verbatim, without the formula neutralisation CSV and XLSX get: these files are read by
programs, not opened by spreadsheets, and a prefixed quote would corrupt data a program
compares or joins on. Escaping follows Python's JSON encoder exactly:
``\\"``, ``\\\\``, ``\\n``, ``\\r``, ``\\t``, ``\\b``, ``\\f`` and ``\\u00XX`` for the other
control characters; it runs only on the values that hold one of those bytes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from uvm_reporting.domain.catalog import FieldType
from uvm_reporting.exports.renderers.text_cells import as_string_array, cells_holding, edit_where
from uvm_reporting.exports.renderers.values_text import date_texts, number_texts, timestamp_texts

Columns = Sequence[tuple[str, FieldType]]

_CONTROL_LIMIT = 0x20
_NEEDS_ESCAPE = frozenset(range(_CONTROL_LIMIT)) | {ord('"'), ord("\\")}
# The backslash first: the escapes that follow add backslashes of their own.
_SHORT_ESCAPES = (
    ("\\", "\\\\"),
    ('"', '\\"'),
    ("\n", "\\n"),
    ("\r", "\\r"),
    ("\t", "\\t"),
    ("\b", "\\b"),
    ("\f", "\\f"),
)
_SHORT_ESCAPED = {ord(char) for char, _ in _SHORT_ESCAPES}


def ndjson_records(batch: Any, columns: Columns) -> Any:
    """One JSON object per row of ``batch``, each ending in LF, as a ``pa.string()`` array
    (csv.record_bytes hands its bytes over)."""
    if len(batch) == 0:
        return pa.array([], pa.string())
    # Literal text between the values is gathered into one scalar per gap, which the kernel
    # repeats on every row. A text column without NULLs has its quotes in those literals
    # too, which saves a pass over its bytes.
    pieces: list[Any] = []
    literal = ""
    for index, (name, kind) in enumerate(columns):
        literal += ("{" if index == 0 else ",") + json.dumps(name, ensure_ascii=False) + ":"
        values = batch.column(index)
        if kind is FieldType.NUMBER:
            texts, quoted = pc.fill_null(number_texts(values, json=True), "null"), False
        else:
            texts = _escaped(_string_texts(values, kind))
            quoted = texts.null_count == 0
            if not quoted:
                texts = pc.fill_null(pc.binary_join_element_wise('"', texts, '"', ""), "null")
        if quoted:
            literal += '"'
        pieces += [literal, texts]
        literal = '"' if quoted else ""
    pieces.append(literal + "}\n")
    return as_string_array(pc.binary_join_element_wise(*pieces, ""))


def _string_texts(values: Any, kind: FieldType) -> Any:
    if kind is FieldType.TIMESTAMP:
        return as_string_array(timestamp_texts(values))
    if kind is FieldType.DATE:
        return as_string_array(date_texts(values))
    return as_string_array(values)


def _escaped(values: Any) -> Any:
    """``values`` with JSON escapes wherever a value holds a quote, a backslash or a control
    character; the others are untouched."""
    holding, present = cells_holding(values, _NEEDS_ESCAPE)
    if not present:
        return values

    def escape(chosen: Any) -> Any:
        for char, replacement in _SHORT_ESCAPES:
            if ord(char) in present:
                chosen = pc.replace_substring(chosen, char, replacement)
        for code in sorted(present - _SHORT_ESCAPED):
            chosen = pc.replace_substring(chosen, chr(code), f"\\u{code:04x}")
        return chosen

    return edit_where(values, holding, escape)
