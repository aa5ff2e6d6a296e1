"""The export process's to-one LEFT OUTER join: each batch gets its keys' looked-up columns,
exactly as a dictionary lookup per row would give them, whatever the batches' sizes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest

from uvm_reporting.exports.export_job import LOOKUP_KEY
from uvm_reporting.exports.sources import adbc_lookups
from uvm_reporting.exports.sources.adbc_lookups import Lookup, joined

SEEN = pa.timestamp("us", tz="UTC")


def lookup_table(rows: list[tuple[str, str, datetime | None]]) -> Any:
    return pa.table(
        {
            LOOKUP_KEY: pa.array([r[0] for r in rows], pa.string()),
            "asset.hostname": pa.array([r[1] for r in rows], pa.string()),
            "asset.first_seen": pa.array([r[2] for r in rows], SEEN),
        }
    )


def main_batches(keys: list[str | None], size: int) -> list[Any]:
    ids = [f"f{index}" for index in range(len(keys))]
    return [
        pa.RecordBatch.from_pydict(
            {
                "id": pa.array(ids[start : start + size], pa.string()),
                "asset#key": pa.array(keys[start : start + size], pa.string()),
            }
        )
        for start in range(0, len(keys), size)
    ]


ASSETS = [
    ("a1", "web-01", datetime(2026, 1, 1, tzinfo=UTC)),
    ("a2", "db,01", None),
    ("A1", "upper-case", datetime(2026, 2, 1, tzinfo=UTC)),
    ("a1 ", "trailing-space", None),
]
KEYS = ["a1", None, "a9", "a2", "a1", "", "A1", "a1 ", "a2"]


@pytest.mark.parametrize(("group_rows", "batch_rows"), [(50_000, 4), (3, 2), (1, 1), (4, 4), (100, 9)])
def test_each_row_gets_its_keys_columns(monkeypatch: pytest.MonkeyPatch, group_rows: int, batch_rows: int) -> None:
    monkeypatch.setattr(adbc_lookups, "GROUP_ROWS", group_rows)
    by_key: dict[str | None, tuple[str | None, datetime | None]] = {key: (host, seen) for key, host, seen in ASSETS}
    columns = ["asset.first_seen", "id", "asset.hostname"]
    lookup = Lookup.from_table("asset#key", lookup_table(ASSETS))
    batches = list(joined(main_batches(KEYS, batch_rows), [lookup], columns))
    assert [len(batch) for batch in batches] == [len(batch) for batch in main_batches(KEYS, batch_rows)]
    table = pa.Table.from_batches(batches)
    assert table.column_names == columns
    assert table.schema.field("asset.first_seen").type == SEEN
    expected = [
        {
            "asset.first_seen": by_key.get(key, (None, None))[1],
            "id": f"f{index}",
            "asset.hostname": by_key.get(key, (None, None))[0],
        }
        for index, key in enumerate(KEYS)
    ]
    assert table.to_pylist() == expected


def test_an_empty_lookup_leaves_every_column_empty() -> None:
    batches = list(
        joined(
            main_batches(["a1", None], 5),
            [Lookup.from_table("asset#key", lookup_table([]))],
            ["id", "asset.hostname", "asset.first_seen"],
        )
    )
    assert pa.Table.from_batches(batches).to_pylist() == [
        {"id": "f0", "asset.hostname": None, "asset.first_seen": None},
        {"id": "f1", "asset.hostname": None, "asset.first_seen": None},
    ]


def test_an_empty_result_without_chunks_is_an_empty_lookup() -> None:
    """The driver reads an account without assets as a table of no chunks at all."""
    empty = pa.Table.from_batches([], schema=lookup_table([]).schema)
    batches = list(joined(main_batches(["a1"], 5), [Lookup.from_table("asset#key", empty)], ["id", "asset.hostname"]))
    assert pa.Table.from_batches(batches).to_pylist() == [{"id": "f0", "asset.hostname": None}]


def test_a_lookup_read_in_several_chunks_is_one_array_per_column() -> None:
    table = pa.concat_tables([lookup_table(ASSETS[:2]), lookup_table(ASSETS[2:])])
    lookup = Lookup.from_table("asset#key", table)
    assert lookup.keys.to_pylist() == [key for key, _, _ in ASSETS]
    assert list(lookup.columns) == ["asset.hostname", "asset.first_seen"]
    assert lookup.columns["asset.hostname"].to_pylist() == [host for _, host, _ in ASSETS]


def test_no_batches_give_no_batches() -> None:
    assert list(joined(iter(()), [Lookup.from_table("asset#key", lookup_table(ASSETS))], ["id"])) == []
