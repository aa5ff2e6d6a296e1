"""Peak memory of the process that runs an export, per data-set size.

A large export runs in an export process of its own, which the worker starts and waits for
(exports/export_process.py); the worker logs that process's peak resident set as the kernel
reports it when it ends (``wait4``'s ``ru_maxrss``): ``run <id>: export process wrote ... peak
RSS <n> MiB``. That is the figure judged. Small exports run in the worker's own thread.

The worker's own peak is measured too. VmHWM (``/proc/<pid>/status``) is the peak resident set
of a process over its whole life, so it can only be read as "the peak of one export" in a
process that did nothing else. The setup: ``uvm-reporting serve --no-workers`` answers the API,
and every measured export gets a fresh ``uvm-reporting worker --concurrency 1`` process. Once
the worker has logged that it is running, its VmHWM is the baseline (imports, engine, idle
threads); processReport queues the run, the worker claims and runs it, and its VmHWM read after
Completed (while it is still alive) is its peak. The worker is then stopped and the next export
gets a new one.

Target: the peak of the process running the export (the export process, or the worker when
the export ran in its thread) <= 256 MB at every size, judged on the largest of the runs.

    .venv/bin/python bench/export_memory.py --rows 1000000,10000000 [--runs 3] [--backend sqlite]
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from pathlib import Path

from _harness import (
    FORMATS,
    LOG_DIR,
    NOT_SUPPORTED,
    QUICK_ROWS,
    BenchError,
    MiB,
    RunTiming,
    add_common_options,
    api_client,
    export_request,
    median,
    megabytes,
    parse_rows,
    peak_rss_bytes,
    prepare_dataset,
    print_header,
    print_table,
    process_report_arguments,
    release_dataset,
    run_main,
    running_server,
    running_worker,
    seconds,
    try_export,
    verdict,
    warn_failed_polls,
)

TARGET_BYTES = 256 * MiB


@dataclass
class Measurement:
    rows: int
    fmt: str
    idle: list[int] = field(default_factory=list)  # worker VmHWM before the export
    timings: list[RunTiming] = field(default_factory=list)
    peak: list[int] = field(default_factory=list)  # worker VmHWM after it
    export_peak: list[int | None] = field(default_factory=list)  # the export process's, when it had one
    api_seconds: list[float] = field(default_factory=list)
    unsupported: str | None = None


def measure(backend: str, rows: int, formats: list[str], runs: int, poll_interval: float) -> list[Measurement]:
    dataset = prepare_dataset(backend, rows)
    results = [Measurement(rows, fmt) for fmt in formats]
    with (
        running_server(dataset, workers=False, log_name=f"export_memory-api-{backend}-{rows}") as server,
        api_client(server.base_url, dataset) as client,
    ):
        arguments = process_report_arguments(client)
        for number in range(1, runs + 1):
            for result in results:
                request = export_request(result.fmt, dataset.report_id, arguments)
                if request is None:
                    result.unsupported = NOT_SUPPORTED
                    continue
                if result.unsupported is not None:
                    continue
                log_name = f"export_memory-worker-{backend}-{rows}"
                with running_worker(dataset, log_name=log_name) as worker:
                    idle = peak_rss_bytes(worker.pid)
                    outcome = try_export(client, dataset, request, poll_interval=poll_interval)
                    if isinstance(outcome, str):
                        result.unsupported = outcome
                        continue
                    peak = peak_rss_bytes(worker.pid)
                timing = outcome
                export_peak = export_process_peak(LOG_DIR / f"{log_name}.log", timing.run_id)
                result.idle.append(idle)
                result.timings.append(timing)
                result.peak.append(peak)
                result.export_peak.append(export_peak)
                result.api_seconds.append(timing.api_seconds or 0.0)
                in_process = (
                    "in the worker's thread"
                    if export_peak is None
                    else f"export process peak {megabytes(export_peak)} MB"
                )
                print(
                    f"   {rows:,} rows {result.fmt} run {number}/{runs}: {in_process}, worker peak "
                    f"{megabytes(peak)} MB (idle {megabytes(idle)} MB), export {seconds(timing.api_seconds)}s",
                    flush=True,
                )
    release_dataset(dataset)
    return results


def export_process_peak(log: Path, run_id: str) -> int | None:
    """The export process's peak RSS as the worker logged it, in bytes; None when the run was
    written in the worker's own thread."""
    text = log.read_text(errors="replace")
    found = re.search(rf"run {re.escape(run_id)}: export process wrote .* peak RSS ([0-9.]+) MiB", text)
    return None if found is None else round(float(found.group(1)) * MiB)


def running_export_peak(measurement: Measurement, index: int) -> int:
    """The peak of the process that ran the export: the export process, else the worker."""
    export_peak = measurement.export_peak[index]
    return measurement.peak[index] if export_peak is None else export_peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(parser, rows="1000000,10000000")
    parser.add_argument(
        "--format", default="csv", help=f"comma-separated formats, or 'all' ({', '.join(FORMATS)}; default csv)"
    )
    parser.add_argument(
        "--poll-interval", type=float, default=0.01, help="seconds between getReportRunStatus calls (default 0.01)"
    )
    args = parser.parse_args()
    sizes = [QUICK_ROWS] if args.quick else parse_rows(args.rows)
    runs = 1 if args.quick else max(1, args.runs)
    formats = list(FORMATS) if args.format == "all" else [f.strip().lower() for f in args.format.split(",")]
    if any(f not in FORMATS for f in formats):
        raise BenchError(f"--format: use {', '.join(FORMATS)} or all")

    print_header(
        "export_memory",
        f"{args.backend}, rows {', '.join(f'{r:,}' for r in sizes)}, {runs} run(s), formats {', '.join(formats)}",
    )
    measurements = [m for rows in sizes for m in measure(args.backend, rows, formats, runs, args.poll_interval)]

    table = []
    verdicts = []
    for m in measurements:
        if m.unsupported is not None or not m.peak:
            table.append([f"{m.rows:,}", m.fmt, m.unsupported or NOT_SUPPORTED, "", "", "", "", "", ""])
            continue
        running = [running_export_peak(m, index) for index in range(len(m.peak))]
        where = "worker thread" if all(p is None for p in m.export_peak) else "export process"
        idle, worker_peak, peak, worst = median(m.idle), median(m.peak), median(running), max(running)
        met = worst <= TARGET_BYTES
        table.append(
            [
                f"{m.rows:,}",
                m.fmt,
                where,
                megabytes(peak),
                megabytes(worst),
                megabytes(idle),
                megabytes(worker_peak),
                megabytes(worker_peak - idle),
                seconds(median(m.api_seconds)),
            ]
        )
        verdicts.append(
            f"{m.rows:,} rows {m.fmt}: peak {megabytes(worst)} MB in the {where} (target <= 256 MB): {verdict(met)}"
        )
    print_table(
        f"Peak RSS of the process running one export, {args.backend} (medians of {runs} run(s); MB = MiB)",
        [
            "rows",
            "format",
            "ran in",
            "peak MB (median)",
            "peak MB (max)",
            "worker idle MB",
            "worker peak MB",
            "worker peak - idle MB",
            "export s",
        ],
        table,
    )
    print()
    for line in verdicts:
        print(line)
    warn_failed_polls([t for m in measurements for t in m.timings], "bench/.data/logs/export_memory-api-*.log")


if __name__ == "__main__":
    run_main(main)
