"""Export file columns: their logical types and the manifest beside a delivered file (the
formats themselves are :mod:`uvm_reporting.domain.formats`).

Every format has one renderer, which writes Arrow record batches (exports/renderers).
"""

from __future__ import annotations

from uvm_reporting.exports.formats.common import LOGICAL_TYPES, BinaryWriter, Columns

__all__ = ["BinaryWriter", "column_manifest"]


def column_manifest(columns: Columns) -> list[dict[str, str]]:
    """Each column's name and format-independent type: string, number, timestamp or date."""
    return [{"name": name, "type": LOGICAL_TYPES[kind]} for name, kind in columns]
