"""A large SQLite export split into id ranges, run at once in the export process, writes exactly
what one query writes."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from tests.support.reports import ALL_FINDINGS_REPORT
from uvm_reporting.database.accounts import Account, create_account
from uvm_reporting.database.reports import create_report
from uvm_reporting.database.runs import enqueue_run
from uvm_reporting.database.tables import findings
from uvm_reporting.domain.report_definition.parsing import parse_report_definition
from uvm_reporting.domain.runs import Delivery
from uvm_reporting.exports.exporter import Exporter
from uvm_reporting.exports.id_ranges import split_by_id
from uvm_reporting.platform_data.generator import generate_platform_data

pytestmark = pytest.mark.backends("sqlite")  # exports split into id ranges on SQLite only


def export(
    engine: Engine,
    account: Account,
    definition: dict[str, Any],
    export_format: str,
    tmp_path: Path,
    *,
    parallelism: int,
    compression: str | None = None,
) -> tuple[int, bytes]:
    report = create_report(engine, account.id, definition)
    run = enqueue_run(
        engine,
        account_id=account.id,
        report_id=report.id,
        delivery=Delivery.DOWNLOAD,
        format=export_format,
        compression=compression,
        definition=parse_report_definition(definition).to_json(),
        requested_by="test",
    )
    sink = io.BytesIO()
    executor = Exporter(
        engine,
        parallelism=parallelism,
        split_min_rows=1,
        export_process_min_rows=0,
    )
    count = executor.write(run, sink)
    return count, sink.getvalue()


@pytest.mark.parametrize("export_format", ["csv", "ndjson", "json"])
@pytest.mark.parametrize("parallelism", [2, 3])
def test_ranges_write_the_same_bytes_as_one_query(
    engine: Engine, account: Account, findings_data: int, export_format: str, parallelism: int, *, tmp_path: Path
) -> None:
    single = export(engine, account, ALL_FINDINGS_REPORT, export_format, tmp_path, parallelism=1)
    split = export(engine, account, ALL_FINDINGS_REPORT, export_format, tmp_path, parallelism=parallelism)
    assert single[0] == split[0] == findings_data
    assert split[1] == single[1]


def test_ranges_keep_filters_and_compression(
    engine: Engine, account: Account, findings_data: int, tmp_path: Path
) -> None:
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


@pytest.mark.parametrize(
    "change",
    [
        {"sort": [{"field": "severity", "direction": "asc"}]},
        {"sort": [{"field": "id", "direction": "desc"}]},
        {"limit": 10},
    ],
)
def test_reports_whose_order_ranges_cannot_keep_run_as_one_query(
    engine: Engine, account: Account, findings_data: int, change: dict[str, Any]
) -> None:
    definition = parse_report_definition({**ALL_FINDINGS_REPORT, **change})
    assert split_by_id(engine, definition, account.id, parts=2, min_rows=1) is None


def test_small_exports_and_one_part_run_as_one_query(engine: Engine, account: Account, findings_data: int) -> None:
    definition = parse_report_definition(ALL_FINDINGS_REPORT)
    assert split_by_id(engine, definition, account.id, parts=2, min_rows=findings_data + 1) is None
    assert split_by_id(engine, definition, account.id, parts=1, min_rows=1) is None
    assert split_by_id(engine, definition, account.id, parts=2, min_rows=findings_data) is not None


def test_ranges_hold_only_the_accounts_rows(
    engine: Engine, account: Account, findings_data: int, tmp_path: Path
) -> None:
    other = create_account(engine, "Other")
    generate_platform_data(engine, other.id, findings=50, seed=3)
    count, content = export(engine, account, ALL_FINDINGS_REPORT, "csv", tmp_path, parallelism=3)
    with engine.connect() as connection:
        own_ids = set(connection.scalars(select(findings.c.id).where(findings.c.account_id == account.id)))
    exported_ids = [row["id"] for row in csv.DictReader(io.StringIO(content.decode("utf-8")))]
    assert count == findings_data == len(exported_ids)
    assert set(exported_ids) == own_ids
