"""Small reports: processReport -> Completed for reports that the worker writes in its own thread.

A report whose entity holds fewer than ``export_process_min_rows`` rows of the account (20,000
by default) is written in the worker's thread, with no export process to start. What a client
waits for is then mostly fixed costs: the API call, the queue, the query, opening and
publishing the file. This measures that wait, per size and format: ``processReport`` on a
running ``uvm-reporting serve``, then ``getReportRunStatus`` every ``--poll-interval`` until the
run is Completed (its file written, fsynced and published), timed by the client. Medians of
``--runs`` runs, after a warm-up run per format (the first run of a server loads modules).

``--code`` compares checkouts in one run: each ``label=path`` runs a server on that checkout's
``src/`` (with this checkout's installed dependencies), on the same data set, one after the
other; the table shows each label's medians and their ratio to the first label's. To compare
with an older commit:

    git worktree add /tmp/small-before <commit>
    .venv/bin/python bench/small_reports.py --code before=/tmp/small-before,after=. [--rows 100,10000]

Target: no label slower than the first one (judged per size and format, on the medians; a
difference within the noise of a shared machine, 5 %, counts as equal).
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from _harness import (
    BACKENDS,
    FORMATS,
    REPO_ROOT,
    BenchError,
    api_client,
    export_request,
    median,
    parse_rows,
    prepare_dataset,
    print_header,
    print_table,
    process_report_arguments,
    ratio,
    release_dataset,
    run_main,
    running_server,
    try_export,
    verdict,
    warn_failed_polls,
)

SIZES = "100,10000"
QUICK_SMALL_ROWS = 100
NOISE = 1.05
SMALL_REPORT_LIMIT = 20_000
"""The default ``export_process_min_rows``: larger data sets would go to the export process."""


def parse_code(text: str) -> dict[str, Path]:
    """``label=path,label=path`` (or one bare path, labelled ``code``)."""
    codes: dict[str, Path] = {}
    for item in text.split(","):
        label, _, path = item.strip().rpartition("=")
        folder = Path(path or ".").expanduser()
        if not (folder / "src" / "uvm_reporting").is_dir():
            raise BenchError(f"--code: {folder} holds no src/uvm_reporting")
        codes[label or f"code{len(codes) + 1}"] = folder.resolve()
    return codes


def code_commit(folder: Path) -> str:
    completed = subprocess.run(
        ["git", "-C", str(folder), "log", "-1", "--format=%h %s"], capture_output=True, text=True, check=False
    )
    dirty = subprocess.run(
        ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no", "src"],
        capture_output=True,
        text=True,
        check=False,
    )
    return (completed.stdout.strip() or "(not a git checkout)") + (" +uncommitted" if dirty.stdout.strip() else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default=SIZES, help=f"comma-separated data-set sizes (default {SIZES})")
    parser.add_argument("--runs", type=int, default=7, help="measured runs per size, format and code (default 7)")
    parser.add_argument("--quick", action="store_true", help=f"smoke check: {QUICK_SMALL_ROWS} rows, 1 run, csv")
    parser.add_argument("--backend", choices=BACKENDS, default="sqlite", help="database (default sqlite)")
    parser.add_argument("--format", default="all", help=f"comma-separated formats, or 'all' ({', '.join(FORMATS)})")
    parser.add_argument("--code", default=f"this={REPO_ROOT}", help="label=path,... checkouts to compare")
    parser.add_argument(
        "--poll-interval", type=float, default=0.005, help="seconds between getReportRunStatus calls (default 0.005)"
    )
    args = parser.parse_args()
    sizes = [QUICK_SMALL_ROWS] if args.quick else parse_rows(args.rows)
    runs = 1 if args.quick else max(1, args.runs)
    formats = ["csv"] if args.quick else list(FORMATS) if args.format == "all" else args.format.split(",")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise BenchError(f"--format: unknown {', '.join(unknown)}; use {', '.join(FORMATS)} or all")
    if too_large := [size for size in sizes if size >= SMALL_REPORT_LIMIT]:
        raise BenchError(f"--rows: {too_large} would go to the export process (small: < {SMALL_REPORT_LIMIT:,})")
    codes = parse_code(args.code)

    print_header(
        "small_reports",
        f"{args.backend}, sizes {', '.join(f'{s:,}' for s in sizes)}, {runs} run(s), formats {', '.join(formats)}",
    )
    for label, folder in codes.items():
        print(f"   {label}: {folder} ({code_commit(folder)})")
    walls: dict[tuple[int, str, str], list[float]] = {}
    timings = []
    for size in sizes:
        dataset = prepare_dataset(args.backend, size)
        try:
            for label, folder in codes.items():
                log_name = f"small_reports-{args.backend}-{size}-{label}"
                with (
                    running_server(dataset, log_name=log_name, code=folder) as server,
                    api_client(server.base_url, dataset) as client,
                ):
                    arguments = process_report_arguments(client)
                    for fmt in formats:
                        request = export_request(fmt, dataset.report_id, arguments)
                        warm = try_export(client, dataset, request, poll_interval=args.poll_interval)
                        if isinstance(warm, str):
                            print(f"   {label} {fmt}: {warm}")
                            continue
                        measured = walls.setdefault((size, fmt, label), [])
                        for _ in range(runs):
                            outcome = try_export(client, dataset, request, poll_interval=args.poll_interval)
                            if isinstance(outcome, str):
                                raise BenchError(f"{label} {fmt}: {outcome} after a warm-up that worked")
                            measured.append(outcome.wall_seconds)
                            timings.append(outcome)
                        print(f"   {size:,} rows, {label}, {fmt}: median {median(measured) * 1000:.1f} ms", flush=True)
        finally:
            release_dataset(dataset)
    report(sizes, formats, list(codes), walls, runs)
    warn_failed_polls(timings, "bench/.data/logs/small_reports-*.log")


def report(
    sizes: list[int], formats: list[str], labels: list[str], walls: dict[tuple[int, str, str], list[float]], runs: int
) -> None:
    first = labels[0]
    headers = ["rows", "format", *[f"{label} ms" for label in labels]]
    headers += [f"{label}/{first}" for label in labels[1:]]
    table = []
    slower = []
    for size in sizes:
        for fmt in formats:
            medians = [median(walls[(size, fmt, label)]) if walls.get((size, fmt, label)) else None for label in labels]
            base = medians[0]
            row = [f"{size:,}", fmt, *[f"{m * 1000:.1f}" if m is not None else "n/a" for m in medians]]
            for label, value in zip(labels[1:], medians[1:], strict=True):
                row.append(ratio(value, base))
                if value is not None and base is not None and value > base * NOISE:
                    slower.append(f"{label} {fmt} {size:,} rows ({value / base:.2f}x)")
            table.append(row)
    print_table(
        f"processReport -> Completed seen by the client (medians of {runs} run(s), milliseconds)", headers, table
    )
    if len(labels) > 1:
        print()
        print(
            f"no label slower than {first} (within {NOISE - 1:.0%}): {verdict(not slower)}"
            + (f"; slower: {', '.join(slower)}" if slower else "")
        )


if __name__ == "__main__":
    run_main(main)
