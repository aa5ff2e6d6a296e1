"""Peak memory of the process that runs an export, per data-set size.

VmHWM (``/proc/<pid>/status``) is the peak resident set of a process over its whole life,
so it can only be read as "the peak of one export" in a process that did nothing else. The
setup: ``uvm-reporting serve --no-workers`` answers the API, and every measured export gets a
fresh ``uvm-reporting worker --concurrency 1`` process. Once the worker has logged that it is
running, its VmHWM is the baseline (imports, engine, idle threads); processReport queues the
run, the worker claims and runs it, and its VmHWM read after Completed (while it is still
alive) is that export's peak. The worker is then stopped and the next export gets a new one.

Target: peak <= 256 MB at every size (judged on the largest peak of the runs).

    .venv/bin/python bench/export_memory.py --rows 1000000,10000000 [--runs 3] [--backend sqlite]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from _harness import (
    FORMATS,
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
    api_seconds: list[float] = field(default_factory=list)
    unsupported: str | None = None


def measure(backend: str, rows: int, formats: list[str], runs: int, poll_interval: float) -> list[Measurement]:
    dataset = prepare_dataset(backend, rows)
    results = [Measurement(rows, fmt) for fmt in formats]
    with running_server(dataset, workers=False, log_name=f"export_memory-api-{backend}-{rows}") as server, \
            api_client(server.base_url, dataset) as client:
        arguments = process_report_arguments(client)
        for number in range(1, runs + 1):
            for result in results:
                request = export_request(result.fmt, dataset.report_id, arguments)
                if request is None:
                    result.unsupported = NOT_SUPPORTED
                    continue
                if result.unsupported is not None:
                    continue
                with running_worker(dataset, log_name=f"export_memory-worker-{backend}-{rows}") as worker:
                    idle = peak_rss_bytes(worker.pid)
                    outcome = try_export(client, dataset, request, poll_interval=poll_interval)
                    if isinstance(outcome, str):
                        result.unsupported = outcome
                        continue
                    peak = peak_rss_bytes(worker.pid)
                timing = outcome
                result.idle.append(idle)
                result.timings.append(timing)
                result.peak.append(peak)
                result.api_seconds.append(timing.api_seconds or 0.0)
                print(f"   {rows:,} rows {result.fmt} run {number}/{runs}: worker peak {megabytes(peak)} MB "
                      f"(idle {megabytes(idle)} MB), export {seconds(timing.api_seconds)}s", flush=True)
    release_dataset(dataset)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(parser, rows="1000000,10000000")
    parser.add_argument("--format", default="csv",
                        help=f"comma-separated formats, or 'all' ({', '.join(FORMATS)}; default csv)")
    parser.add_argument("--poll-interval", type=float, default=0.01,
                        help="seconds between getReportRunStatus calls (default 0.01)")
    args = parser.parse_args()
    sizes = [QUICK_ROWS] if args.quick else parse_rows(args.rows)
    runs = 1 if args.quick else max(1, args.runs)
    formats = list(FORMATS) if args.format == "all" else [f.strip().lower() for f in args.format.split(",")]
    if any(f not in FORMATS for f in formats):
        raise BenchError(f"--format: use {', '.join(FORMATS)} or all")

    print_header("export_memory", f"{args.backend}, rows {', '.join(f'{r:,}' for r in sizes)}, {runs} run(s), "
                                  f"formats {', '.join(formats)}")
    measurements = [m for rows in sizes for m in measure(args.backend, rows, formats, runs, args.poll_interval)]

    table = []
    verdicts = []
    for m in measurements:
        if m.unsupported is not None or not m.peak:
            table.append([f"{m.rows:,}", m.fmt, m.unsupported or NOT_SUPPORTED, "", "", "", "", ""])
            continue
        idle, peak, worst = median(m.idle), median(m.peak), max(m.peak)
        met = worst <= TARGET_BYTES
        table.append([f"{m.rows:,}", m.fmt, megabytes(idle), megabytes(peak), megabytes(worst),
                      megabytes(peak - idle), f"{peak / idle:.2f}x", seconds(median(m.api_seconds))])
        verdicts.append(f"{m.rows:,} rows {m.fmt}: peak {megabytes(worst)} MB (target <= 256 MB): {verdict(met)}")
    print_table(f"Peak RSS (VmHWM) of the worker process running one export, {args.backend} "
                f"(medians of {runs} run(s); MB = MiB)",
                ["rows", "format", "idle worker MB (baseline)", "peak MB (median)", "peak MB (max)",
                 "peak - idle MB", "peak/idle", "export s"], table)
    print()
    for line in verdicts:
        print(line)
    warn_failed_polls([t for m in measurements for t in m.timings], "bench/.data/logs/export_memory-api-*.log")


if __name__ == "__main__":
    run_main(main)
