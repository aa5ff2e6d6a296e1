"""Export speed: our processReport -> Completed against the database's own CSV dump of the same rows.

Baseline: the database's own tool writes the report's exact SELECT (the product's compiled
query: every findings field plus the asset's hostname, joined, ordered by id) to a CSV file:
``sqlite3 -csv -header DB "<SELECT>" > file`` or ``psql -c "\\copy (<SELECT>) TO 'file' WITH CSV HEADER"``.
Ours: ``processReport`` on a running ``uvm-reporting serve``, then ``getReportRunStatus`` every
10 ms until the run is Completed (the file is written, fsynced and published). Ours is timed
two ways: as the API reports it (finishedAt - createdAt) and as the client sees it (from
sending processReport to the poll that shows Completed). Each measured repetition runs the
baseline and then each format, so drift on a shared machine hits both alike.

Target: ours/baseline <= 1.2x for CSV (judged on the client's wall time).

    .venv/bin/python bench/export_speed.py --backend sqlite --rows 1000000 [--runs 3] [--format csv,parquet]
"""

from __future__ import annotations

import argparse
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from _harness import (
    FORMATS,
    QUICK_ROWS,
    ApiClient,
    BenchError,
    Dataset,
    ExportRequest,
    RunTiming,
    add_common_options,
    api_client,
    export_request,
    export_timeout,
    fsync_file,
    median,
    megabytes,
    parse_rows,
    prepare_dataset,
    print_header,
    print_table,
    process_report_arguments,
    ratio,
    report_select_sql,
    run_main,
    running_server,
    seconds,
    try_export,
    verdict,
    warn_failed_polls,
)

CSV_TARGET = 1.2


@dataclass
class BaselineRun:
    dump_seconds: float
    synced_seconds: float  # the dump plus an fsync of its file, as our exports fsync theirs
    size_bytes: int


@dataclass
class FormatResults:
    fmt: str
    runs: list[RunTiming] = field(default_factory=list)
    unsupported: str | None = None


def database_dump(dataset: Dataset, sql: str, out: Path) -> BaselineRun:
    """The database's own tool writes the SELECT's rows to ``out`` as CSV with a header."""
    out.unlink(missing_ok=True)
    started = time.monotonic()
    if dataset.backend == "sqlite":
        with out.open("wb") as handle:
            completed = subprocess.run(
                ["sqlite3", "-csv", "-header", str(dataset.sqlite_file), sql],
                stdout=handle,
                stderr=subprocess.PIPE,
                timeout=export_timeout(dataset.rows),
                check=False,
            )
    else:
        copy = f"\\copy ({sql}) TO '{out}' WITH CSV HEADER"
        completed = subprocess.run(
            [
                "psql",
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                "5432",
                "-U",
                "postgres",
                "-d",
                dataset.pg_database,
                "-c",
                copy,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=export_timeout(dataset.rows),
            check=False,
        )
    dumped = time.monotonic()
    if completed.returncode != 0:
        raise BenchError(
            f"the {dataset.backend} dump failed ({completed.returncode}): {completed.stderr.decode(errors='replace')}"
        )
    fsync_file(out)
    synced = time.monotonic()
    return BaselineRun(dumped - started, synced - started, out.stat().st_size)


def run_ours(
    client: ApiClient, dataset: Dataset, request: ExportRequest | None, results: FormatResults, poll_interval: float
) -> None:
    """One export as ``request`` asks; records it, or why this server cannot make it."""
    if results.unsupported is not None:
        return
    outcome = try_export(client, dataset, request, poll_interval=poll_interval)
    if isinstance(outcome, str):
        results.unsupported = outcome
    else:
        results.runs.append(outcome)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(parser, rows="1000000")
    parser.add_argument(
        "--format",
        default="csv",
        help=f"comma-separated formats to export, or 'all' ({', '.join(FORMATS)}; default csv)",
    )
    parser.add_argument(
        "--poll-interval", type=float, default=0.01, help="seconds between getReportRunStatus calls (default 0.01)"
    )
    args = parser.parse_args()
    rows = QUICK_ROWS if args.quick else parse_rows(args.rows)[0]
    runs = 1 if args.quick else max(1, args.runs)
    formats = list(FORMATS) if args.format == "all" else [f.strip().lower() for f in args.format.split(",")]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise BenchError(f"--format: unknown {', '.join(unknown)}; use {', '.join(FORMATS)} or all")

    print_header("export_speed", f"{args.backend}, {rows:,} rows, {runs} run(s), formats {', '.join(formats)}")
    dataset = prepare_dataset(args.backend, rows)
    sql = report_select_sql(dataset)
    baseline_file = dataset.root / "baseline.csv"
    baselines: list[BaselineRun] = []
    results = {fmt: FormatResults(fmt) for fmt in formats}
    try:
        with (
            running_server(dataset, log_name=f"export_speed-{dataset.backend}-{rows}") as server,
            api_client(server.base_url, dataset) as client,
        ):
            arguments = process_report_arguments(client)
            requests = {fmt: export_request(fmt, dataset.report_id, arguments) for fmt in formats}
            database_dump(dataset, sql, baseline_file)  # warm-up: both sides then read a warm cache
            for number in range(1, runs + 1):
                baselines.append(database_dump(dataset, sql, baseline_file))
                for fmt in formats:
                    run_ours(client, dataset, requests[fmt], results[fmt], args.poll_interval)
                done = ", ".join(f"{f} {seconds(r.runs[-1].wall_seconds)}s" for f, r in results.items() if r.runs)
                print(
                    f"   run {number}/{runs}: baseline {seconds(baselines[-1].dump_seconds)}s"
                    + (f", {done}" if done else ""),
                    flush=True,
                )
    finally:
        baseline_file.unlink(missing_ok=True)
    report(dataset, baselines, results)
    warn_failed_polls(
        [t for r in results.values() for t in r.runs], f"bench/.data/logs/export_speed-{dataset.backend}-{rows}.log"
    )


def report(dataset: Dataset, baselines: list[BaselineRun], results: dict[str, FormatResults]) -> None:
    tool = "sqlite3 -csv" if dataset.backend == "sqlite" else "psql \\copy CSV"
    base = median([b.dump_seconds for b in baselines])
    synced = median([b.synced_seconds for b in baselines])
    table = [
        [f"baseline: {tool} > file", seconds(base), "1.00x", megabytes(median([b.size_bytes for b in baselines])), ""],
        ["baseline + fsync of the file", seconds(synced), ratio(synced, base), "", ""],
    ]
    verdicts = []
    notes = []
    for fmt, result in results.items():
        if result.unsupported is not None:
            table.append([f"ours {fmt}", result.unsupported, "", "", ""])
            continue
        wall = median([r.wall_seconds for r in result.runs])
        api = median([r.api_seconds or 0.0 for r in result.runs])
        queued = median([r.queue_seconds or 0.0 for r in result.runs])
        size = median([float(r.status.get("sizeBytes") or 0) for r in result.runs])
        target = ""
        if fmt == "csv":
            met = wall / base <= CSV_TARGET
            target = f"<= {CSV_TARGET}x: {verdict(met)}"
            verdicts.append(
                f"CSV export {wall / base:.2f}x the {dataset.backend} dump (target <= {CSV_TARGET}x): {verdict(met)}"
            )
        table.append(
            [f"ours {fmt}: call -> Completed seen (wall)", seconds(wall), ratio(wall, base), megabytes(size), target]
        )
        table.append([f"ours {fmt}: finishedAt - createdAt (API)", seconds(api), ratio(api, base), "", ""])
        table.append(["  of which queued: startedAt - createdAt", seconds(queued), "", "", ""])
        polls = [p for r in result.runs for p in r.poll_seconds]
        notes.append(
            f"ours {fmt}: {median([r.polls for r in result.runs]):.0f} status polls per export, "
            f"median {median(polls) * 1000:.1f} ms per getReportRunStatus call while exporting"
        )
    print_table(
        f"Export of {dataset.rows:,} findings rows on {dataset.backend} (medians of {len(baselines)} run(s), seconds)",
        ["what", "median s", "vs baseline", "MB", "target"],
        table,
    )
    print()
    for line in [*notes, *verdicts]:
        print(line)


if __name__ == "__main__":
    run_main(main)
