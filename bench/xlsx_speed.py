"""XLSX export speed: xlsxwriter in constant-memory mode writing the same rows, against ours.

Baseline: this process reads the report's exact SELECT (the product's compiled query) with the
database's plain driver (sqlite3 / psycopg, 5,000 rows per fetch) and writes each row with
xlsxwriter in ``constant_memory`` mode: a bold header, typed cells (text as strings, numbers
as numbers, timestamps and dates as Excel date-times with a number format), a new sheet every
1,048,575 rows; then closes the workbook and fsyncs the file. That is the least an XLSX
export of these rows can do in Python with that library.
Ours: processReport asking for XLSX on a running ``uvm-reporting serve``, polled every 10 ms
until Completed; "n/a" when the server cannot be asked for XLSX.

    .venv/bin/python bench/xlsx_speed.py [--rows 1000000] [--runs 3] [--backend sqlite]
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
import xlsxwriter
from _harness import (
    PG_CONNINFO,
    QUICK_ROWS,
    Dataset,
    RunTiming,
    add_common_options,
    api_client,
    export_request,
    fsync_file,
    median,
    megabytes,
    parse_rows,
    prepare_dataset,
    print_header,
    print_table,
    process_report_arguments,
    ratio,
    report_definition,
    report_select_sql,
    run_main,
    running_server,
    seconds,
    try_export,
    warn_failed_polls,
)
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

MAX_DATA_ROWS_PER_SHEET = 1_048_575
FETCH_ROWS = 5_000
Cell = Callable[[Worksheet, int, int, Any], None]


def column_kinds(definition: dict[str, Any]) -> list[tuple[str, str]]:
    """Each column's name and catalog type (``string``, ``text``, ``number``, ``timestamp``, ``date``)."""
    from uvm_reporting.domain.report_definition.parsing import parse_report_definition  # noqa: PLC0415
    from uvm_reporting.exports.query_compiler import report_column_types  # noqa: PLC0415

    return [(name, str(kind)) for name, kind in report_column_types(parse_report_definition(definition))]


def fetch_batches(dataset: Dataset, sql: str) -> Iterator[Sequence[Sequence[Any]]]:
    """The SELECT's rows in batches, through the database's plain Python driver."""
    return _sqlite_batches(dataset, sql) if dataset.backend == "sqlite" else _postgres_batches(dataset, sql)


def _sqlite_batches(dataset: Dataset, sql: str) -> Iterator[Sequence[Sequence[Any]]]:
    with contextlib.closing(sqlite3.connect(dataset.sqlite_file)) as connection:
        cursor = connection.execute(sql)
        while batch := cursor.fetchmany(FETCH_ROWS):
            yield batch


def _postgres_batches(dataset: Dataset, sql: str) -> Iterator[Sequence[Sequence[Any]]]:
    # A named (server-side) cursor: rows arrive as they are fetched, not all at once.
    with (
        psycopg.connect(f"{PG_CONNINFO} dbname={dataset.pg_database}") as connection,
        connection.cursor(name="bench_xlsx") as cursor,
    ):
        cursor.itersize = FETCH_ROWS
        cursor.execute(sql.encode())
        while batch := cursor.fetchmany(FETCH_ROWS):
            yield batch


def _naive_utc(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo is not None else moment


def _day(value: date | str) -> datetime:
    day = date.fromisoformat(value) if isinstance(value, str) else value
    return datetime(day.year, day.month, day.day)  # noqa: DTZ001 - Excel cells hold naive moments


def cell_writers(kinds: list[str], timestamp: Format, day: Format) -> list[Cell]:
    def text(sheet: Worksheet, row: int, col: int, value: Any) -> None:
        sheet.write_string(row, col, value if isinstance(value, str) else str(value))

    def number(sheet: Worksheet, row: int, col: int, value: Any) -> None:
        sheet.write_number(row, col, value)

    def moment(sheet: Worksheet, row: int, col: int, value: Any) -> None:
        sheet.write_datetime(row, col, _naive_utc(value), timestamp)

    def calendar_day(sheet: Worksheet, row: int, col: int, value: Any) -> None:
        sheet.write_datetime(row, col, _day(value), day)

    by_kind: dict[str, Cell] = {"number": number, "timestamp": moment, "date": calendar_day}
    return [by_kind.get(kind, text) for kind in kinds]


def xlsx_baseline(dataset: Dataset, sql: str, columns: list[tuple[str, str]], out: Path) -> tuple[float, int]:
    """Seconds to read the rows and write them to ``out`` as XLSX (closed and fsynced), and its size."""
    out.unlink(missing_ok=True)
    started = time.monotonic()
    workbook = xlsxwriter.Workbook(
        str(out),
        {
            "constant_memory": True,
            "strings_to_numbers": False,
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "tmpdir": str(out.parent),
        },
    )
    header = workbook.add_format({"bold": True})
    writers = list(
        enumerate(
            cell_writers(
                [kind for _, kind in columns],
                workbook.add_format({"num_format": 'yyyy-mm-dd hh:mm:ss "UTC"'}),
                workbook.add_format({"num_format": "yyyy-mm-dd"}),
            )
        )
    )

    def new_sheet() -> Worksheet:
        sheet = workbook.add_worksheet()
        sheet.freeze_panes(1, 0)
        for index, (name, _) in enumerate(columns):
            sheet.write_string(0, index, name, header)
        return sheet

    sheet = new_sheet()
    sheet_row = 0
    rows = 0
    for batch in fetch_batches(dataset, sql):
        for values in batch:
            if sheet_row == MAX_DATA_ROWS_PER_SHEET:
                sheet, sheet_row = new_sheet(), 0
            sheet_row += 1
            for index, write in writers:
                value = values[index]
                if value is not None:
                    write(sheet, sheet_row, index, value)
        rows += len(batch)
    workbook.close()
    fsync_file(out)
    elapsed = time.monotonic() - started
    if rows != dataset.rows:
        raise RuntimeError(f"the baseline read {rows} rows, expected {dataset.rows}")
    return elapsed, out.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(parser, rows="1000000")
    parser.add_argument(
        "--poll-interval", type=float, default=0.01, help="seconds between getReportRunStatus calls (default 0.01)"
    )
    args = parser.parse_args()
    rows = QUICK_ROWS if args.quick else parse_rows(args.rows)[0]
    runs = 1 if args.quick else max(1, args.runs)

    print_header("xlsx_speed", f"{args.backend}, {rows:,} rows, {runs} run(s)")
    dataset = prepare_dataset(args.backend, rows)
    definition = report_definition()
    sql = report_select_sql(dataset, definition)
    columns = column_kinds(definition)
    out = dataset.root / "baseline.xlsx"
    baseline: list[float] = []
    sizes: list[int] = []
    ours: list[RunTiming] = []
    unsupported: str | None = None
    try:
        with (
            running_server(dataset, log_name=f"xlsx_speed-{dataset.backend}-{rows}") as server,
            api_client(server.base_url, dataset) as client,
        ):
            request = export_request("xlsx", dataset.report_id, process_report_arguments(client))
            for number in range(1, runs + 1):
                elapsed, size = xlsx_baseline(dataset, sql, columns, out)
                baseline.append(elapsed)
                sizes.append(size)
                if unsupported is None:
                    outcome = try_export(client, dataset, request, poll_interval=args.poll_interval)
                    if isinstance(outcome, str):
                        unsupported = outcome
                    else:
                        ours.append(outcome)
                print(
                    f"   run {number}/{runs}: baseline {seconds(elapsed)}s"
                    + (f", ours {seconds(ours[-1].wall_seconds)}s" if ours and len(ours) == number else ""),
                    flush=True,
                )
    finally:
        out.unlink(missing_ok=True)

    base = median(baseline)
    table = [
        [
            f"baseline: {dataset.backend} driver -> xlsxwriter constant_memory",
            seconds(base),
            "1.00x",
            megabytes(median(sizes)),
        ]
    ]
    if ours:
        wall = median([r.wall_seconds for r in ours])
        api = median([r.api_seconds or 0.0 for r in ours])
        table.append(
            [
                "ours xlsx: call -> Completed seen (wall)",
                seconds(wall),
                ratio(wall, base),
                megabytes(median([float(r.status.get("sizeBytes") or 0) for r in ours])),
            ]
        )
        table.append(["ours xlsx: finishedAt - createdAt (API)", seconds(api), ratio(api, base), ""])
    else:
        table.append(["ours xlsx", unsupported or "n/a", "", ""])
    print_table(
        f"XLSX export of {rows:,} findings rows on {dataset.backend} (medians of {runs} run(s), seconds)",
        ["what", "median s", "vs baseline", "MB"],
        table,
    )
    warn_failed_polls(ours, f"bench/.data/logs/xlsx_speed-{dataset.backend}-{rows}.log")


if __name__ == "__main__":
    run_main(main)
