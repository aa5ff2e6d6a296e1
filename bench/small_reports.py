"""Small reports: processReport -> Completed for reports that the worker writes in its own thread.

A report whose entity holds fewer than ``export_process_min_rows`` rows of the account (20,000
by default) is written in the worker's thread, with no export process to start. What a client
waits for is then mostly fixed costs: the API call, the queue, the query, opening and
publishing the file. This measures that wait, per size and format: ``processReport`` on a
running ``uvm-reporting serve``, then ``getReportRunStatus`` every ``--poll-interval`` until the
run is Completed (its file written, fsynced and published). Two figures: the API's
``finishedAt - createdAt`` (milliseconds, taken by the server), and the client's wall time
from sending processReport to the poll that shows Completed. A poll every 5 ms would cut the
wall time into 5 ms steps, which hide differences of a few milliseconds; so the first poll of
each run waits a random part of the interval, and the wall times spread evenly over it.
Medians of ``--runs`` runs, after a warm-up run per format (the first run of a server loads
modules).

``--code`` compares checkouts in one run: each ``label=path`` runs a server on that checkout's
``src/`` (with this checkout's installed dependencies), on the same data set, one after the
other, in ``--rounds`` rounds (a new server each time); the table shows each label's medians
and their ratio to the first label's. To compare with an older commit:

    git worktree add /tmp/small-before <commit>
    .venv/bin/python bench/small_reports.py --code before=/tmp/small-before,after=. [--rows 100,10000]

Target: no label slower than the first one (judged per size and format on the medians of the
API's figure; a difference within the noise of a shared machine, 5 %, counts as equal).
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass, field
from pathlib import Path

from _harness import (
    BACKENDS,
    FORMATS,
    REPO_ROOT,
    BenchError,
    Dataset,
    RunTiming,
    api_client,
    code_commit,
    export_request,
    median,
    parse_code,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default=SIZES, help=f"comma-separated data-set sizes (default {SIZES})")
    parser.add_argument("--runs", type=int, default=9, help="measured runs per size, format and code (default 9)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds the runs are split into, each checkout in turn (default 3)"
    )
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
    results = Results()
    rounds = 1 if args.quick else max(1, min(args.rounds, runs))
    for size in sizes:
        dataset = prepare_dataset(args.backend, size)
        try:
            # Each round runs every checkout once, in turn, so that drift on a shared machine
            # (other people's builds, a busy disk) reaches each of them alike.
            for number in range(rounds):
                share = runs // rounds + (1 if number < runs % rounds else 0)
                for label, folder in codes.items():
                    measure(dataset, label, folder, formats, share, args.poll_interval, results)
            for label in codes:
                for fmt in formats:
                    served, measured = results.api.get((size, fmt, label)), results.wall.get((size, fmt, label))
                    if served and measured:
                        print(
                            f"   {size:,} rows, {label}, {fmt}: median API {median(served) * 1000:.1f} ms, "
                            f"wall {median(measured) * 1000:.1f} ms",
                            flush=True,
                        )
        finally:
            release_dataset(dataset)
    report(sizes, formats, list(codes), apis=results.api, walls=results.wall, runs=runs)
    warn_failed_polls(results.timings, "bench/.data/logs/small_reports-*.log")


@dataclass
class Results:
    api: dict[tuple[int, str, str], list[float]] = field(default_factory=dict)
    """(rows, format, label) -> the API's finishedAt - createdAt of each run, seconds"""
    wall: dict[tuple[int, str, str], list[float]] = field(default_factory=dict)
    """(rows, format, label) -> the client's wall time of each run, seconds"""
    timings: list[RunTiming] = field(default_factory=list)
    phases: random.Random = field(default_factory=lambda: random.Random(0))


def measure(  # noqa: PLR0917 - one call site, which names what it passes
    dataset: Dataset,
    label: str,
    folder: Path,
    formats: list[str],
    runs: int,
    poll_interval: float,
    results: Results,
) -> None:
    """A server on ``folder``'s code; per format a warm-up run (not counted), then ``runs`` runs."""
    log_name = f"small_reports-{dataset.backend}-{dataset.rows}-{label}"
    with (
        running_server(dataset, log_name=log_name, code=folder) as server,
        api_client(server.base_url, dataset) as client,
    ):
        arguments = process_report_arguments(client)
        for fmt in formats:
            request = export_request(fmt, dataset.report_id, arguments)
            warm = try_export(client, dataset, request, poll_interval=poll_interval)
            if isinstance(warm, str):
                print(f"   {label} {fmt}: {warm}")
                continue
            for _ in range(runs):
                outcome = try_export(
                    client,
                    dataset,
                    request,
                    poll_interval=poll_interval,
                    first_poll_after=results.phases.uniform(0, poll_interval),
                )
                if isinstance(outcome, str):
                    raise BenchError(f"{label} {fmt}: {outcome} after a warm-up that worked")
                key = (dataset.rows, fmt, label)
                results.wall.setdefault(key, []).append(outcome.wall_seconds)
                results.api.setdefault(key, []).append(outcome.api_seconds or 0.0)
                results.timings.append(outcome)


def report(
    sizes: list[int],
    formats: list[str],
    labels: list[str],
    *,
    apis: dict[tuple[int, str, str], list[float]],
    walls: dict[tuple[int, str, str], list[float]],
    runs: int,
) -> None:
    first = labels[0]
    headers = ["rows", "format"]
    for figure in ("API", "wall"):
        headers += [f"{label} {figure} ms" for label in labels]
        headers += [f"{label}/{first} {figure}" for label in labels[1:]]
    table = []
    slower = []
    for size in sizes:
        for fmt in formats:
            row = [f"{size:,}", fmt]
            for figure, values in (("API", apis), ("wall", walls)):
                medians = [
                    median(values[(size, fmt, label)]) if values.get((size, fmt, label)) else None for label in labels
                ]
                row += [f"{m * 1000:.1f}" if m is not None else "n/a" for m in medians]
                base = medians[0]
                for label, value in zip(labels[1:], medians[1:], strict=True):
                    row.append(ratio(value, base))
                    if figure == "API" and value is not None and base is not None and value > base * NOISE:
                        slower.append(f"{label} {fmt} {size:,} rows ({value / base:.2f}x)")
            table.append(row)
    print_table(
        "processReport -> Completed: the API's finishedAt - createdAt, and the client's wall time "
        f"(medians of {runs} run(s), milliseconds)",
        headers,
        table,
    )
    if len(labels) > 1:
        print()
        print(
            f"no label slower than {first} (API medians, within {NOISE - 1:.0%}): {verdict(not slower)}"
            + (f"; slower: {', '.join(slower)}" if slower else "")
        )


if __name__ == "__main__":
    run_main(main)
