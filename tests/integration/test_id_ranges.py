"""A large export split into id ranges, run at once, writes exactly what one query writes."""

from __future__ import annotations

import csv
import io
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from uvm_reporting.domain.report_definition import parse_report_definition
from uvm_reporting.domain.runs import Delivery
from uvm_reporting.exports.formats.common import BinaryWriter
from uvm_reporting.exports.id_ranges import split_by_id, write_ranges
from uvm_reporting.exports.run_executor import RunExecutor, _JsonArrayFromLines
from uvm_reporting.platform_data.generator import generate_platform_data
from uvm_reporting.storage.local_folder import LocalFolderStorage
from uvm_reporting.store.accounts import Account, create_account
from uvm_reporting.store.reports import create_report
from uvm_reporting.store.runs import enqueue_run
from uvm_reporting.store.tables import findings

from .conftest import ALL_FINDINGS_REPORT


def export(engine: Engine, account: Account, definition: dict[str, Any], export_format: str, tmp_path: Path,
           *, parallelism: int, compression: str | None = None) -> tuple[int, bytes]:
    report = create_report(engine, account.id, definition)
    run = enqueue_run(engine, account_id=account.id, report_id=report.id, delivery=Delivery.DOWNLOAD,
                      format=export_format, compression=compression,
                      definition=parse_report_definition(definition).to_json(), requested_by="test")
    if engine.dialect.name != "sqlite":
        pytest.skip("exports split into id ranges on SQLite only")
    sink = io.BytesIO()
    executor = RunExecutor(engine, LocalFolderStorage(tmp_path / "unused"), parallelism=parallelism, split_min_rows=1)
    count = executor.write(run, sink)
    return count, sink.getvalue()


@pytest.mark.parametrize("export_format", ["csv", "ndjson", "json"])
@pytest.mark.parametrize("parallelism", [2, 3])
def test_ranges_write_the_same_bytes_as_one_query(engine: Engine, account: Account, findings_data: int,
                                                  export_format: str, parallelism: int, *, tmp_path: Path) -> None:
    single = export(engine, account, ALL_FINDINGS_REPORT, export_format, tmp_path, parallelism=1)
    split = export(engine, account, ALL_FINDINGS_REPORT, export_format, tmp_path, parallelism=parallelism)
    assert single[0] == split[0] == findings_data
    assert split[1] == single[1]


def test_ranges_keep_filters_and_compression(engine: Engine, account: Account, findings_data: int,
                                             tmp_path: Path) -> None:
    filtered = {**ALL_FINDINGS_REPORT, "filters": [{"field": "severity", "op": "in", "value": ["Critical", "High"]}]}
    single = export(engine, account, filtered, "csv", tmp_path, parallelism=1, compression="gzip")
    split = export(engine, account, filtered, "csv", tmp_path, parallelism=2, compression="gzip")
    assert 0 < single[0] == split[0] < findings_data
    assert split[1] == single[1]


def test_ranges_cover_every_id_once(engine: Engine, account: Account, findings_data: int) -> None:
    definition = parse_report_definition(ALL_FINDINGS_REPORT)
    ranges = split_by_id(engine, definition, account.id, parts=4, min_rows=1)
    assert ranges is not None
    assert len(ranges) == 4


@pytest.mark.parametrize("change", [
    {"sort": [{"field": "severity", "direction": "asc"}]},
    {"sort": [{"field": "id", "direction": "desc"}]},
    {"limit": 10},
])
def test_reports_whose_order_ranges_cannot_keep_run_as_one_query(engine: Engine, account: Account,
                                                                 findings_data: int, change: dict[str, Any]) -> None:
    definition = parse_report_definition({**ALL_FINDINGS_REPORT, **change})
    assert split_by_id(engine, definition, account.id, parts=2, min_rows=1) is None


def test_small_exports_and_one_part_run_as_one_query(engine: Engine, account: Account, findings_data: int) -> None:
    definition = parse_report_definition(ALL_FINDINGS_REPORT)
    assert split_by_id(engine, definition, account.id, parts=2, min_rows=findings_data + 1) is None
    assert split_by_id(engine, definition, account.id, parts=1, min_rows=1) is None
    assert split_by_id(engine, definition, account.id, parts=2, min_rows=findings_data) is not None


def test_ranges_hold_only_the_accounts_rows(engine: Engine, account: Account, findings_data: int,
                                            tmp_path: Path) -> None:
    other = create_account(engine, "Other")
    generate_platform_data(engine, other.id, findings=50, seed=3)
    count, content = export(engine, account, ALL_FINDINGS_REPORT, "csv", tmp_path, parallelism=3)
    with engine.connect() as connection:
        own_ids = set(connection.scalars(select(findings.c.id).where(findings.c.account_id == account.id)))
    exported_ids = [row["id"] for row in csv.DictReader(io.StringIO(content.decode("utf-8")))]
    assert count == findings_data == len(exported_ids)
    assert set(exported_ids) == own_ids


class Recorder:
    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    def write(self, data: bytes, /) -> int:
        return self.buffer.write(data)


def test_ranges_are_appended_in_order_with_one_header() -> None:
    def part(lines: list[bytes]) -> Any:
        def write(sink: BinaryWriter, first: bool) -> int:
            if first:
                sink.write(b"header\n")
            for line in lines:
                sink.write(line)
            return len(lines)
        return write

    out = Recorder()
    rows = write_ranges([part([b"a\n", b"b\n"]), part([b"c\n"]), part([b"d\n", b"e\n"])], out)
    assert rows == 5
    assert out.buffer.getvalue() == b"header\na\nb\nc\nd\ne\n"


def test_a_failing_range_stops_the_others_and_its_error_is_raised() -> None:
    stopped = threading.Event()
    failing_started = threading.Event()

    def long_range(sink: BinaryWriter, first: bool) -> int:
        failing_started.wait(timeout=10)
        try:
            for _ in range(1_000_000):
                sink.write(b"x\n")
        except Exception:
            stopped.set()
            raise
        return 1_000_000

    def failing_range(sink: BinaryWriter, first: bool) -> int:
        failing_started.set()
        raise OSError("disk full")

    out = Recorder()
    with pytest.raises(OSError, match="disk full"):
        write_ranges([long_range, failing_range], out)
    assert stopped.is_set()
    assert out.buffer.getvalue().count(b"\n") < 1_000_000


@pytest.mark.parametrize("lines", [b'{"a":1}\n{"a":2}\n{"a":3}\n', b'{"a":"x"}\n', b""])
def test_json_array_is_the_same_wherever_appended_blocks_cut_the_lines(lines: bytes) -> None:
    whole = Recorder()
    array = _JsonArrayFromLines(whole)
    array.write(lines)
    array.finish()
    assert json.loads(whole.buffer.getvalue()) == [json.loads(line) for line in lines.splitlines()]
    for cut in range(len(lines) + 1):
        pieces = Recorder()
        array = _JsonArrayFromLines(pieces)
        array.write(lines[:cut])
        array.write(lines[cut:])
        array.finish()
        assert pieces.buffer.getvalue() == whole.buffer.getvalue()
