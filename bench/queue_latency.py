"""Queue latency on an idle server: how long a run waits between processReport and a worker
starting it.

Setup: ``uvm-reporting serve`` with its in-process worker threads, a tiny public report (one
column, one row), nothing else running. Each sample: processReport, then getReportRunStatus
every 10 ms until the run is no longer Running, then a short idle gap. Two views per sample:

* server: ``startedAt - createdAt`` from getReportRunStatus (both stamped by the server, ms);
* client: from processReport's answer to the first poll that shows the run past ``queued``
  (bounded below by the poll interval: a coarse upper view of the same wait).

For scale, the same run also reports the median duration of one getReportRunStatus call: a
wait shorter than one API call is invisible to any client. Each repetition (``--runs``) uses a
fresh server and ``--samples`` runs after a short warm-up.

Targets: p50 <= 50 ms and p99 <= 200 ms (server view; medians over the repetitions).

    .venv/bin/python bench/queue_latency.py --backend sqlite|postgresql [--samples 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field

from _harness import (
    NOT_SUPPORTED,
    QUICK_ROWS,
    TINY_REPORT,
    BenchError,
    RunTiming,
    add_common_options,
    api_client,
    ensure_report,
    export_request,
    median,
    parse_rows,
    percentile,
    prepare_dataset,
    print_header,
    print_table,
    process_report_arguments,
    remove_results,
    require_completed,
    run_main,
    run_report,
    running_server,
    verdict,
    warn_failed_polls,
)

P50_TARGET_MS = 50.0
P99_TARGET_MS = 200.0


@dataclass
class Round:
    server_ms: list[float] = field(default_factory=list)
    client_ms: list[float] = field(default_factory=list)
    call_ms: list[float] = field(default_factory=list)  # processReport round trips
    poll_ms: list[float] = field(default_factory=list)  # getReportRunStatus round trips
    timings: list[RunTiming] = field(default_factory=list)


def measure_round(
    backend: str, rows: int, *, samples: int, warmup: int, gap: float, poll_interval: float, number: int
) -> Round:
    dataset = prepare_dataset(backend, rows)
    report_id = ensure_report(dataset, "tiny", TINY_REPORT)
    result = Round()
    with (
        running_server(dataset, log_name=f"queue_latency-{backend}") as server,
        api_client(server.base_url, dataset) as client,
    ):
        request = export_request("csv", report_id, process_report_arguments(client))
        if request is None:
            raise BenchError(f"csv export: {NOT_SUPPORTED}")
        for index in range(warmup + samples):
            time.sleep(gap)  # let the workers go back to waiting: an idle server
            timing = run_report(client, report_id, request, poll_interval=poll_interval, timeout=60)
            remove_results(dataset, timing.run_id)
            require_completed(timing, rows=1)
            result.timings.append(timing)
            if index < warmup:
                continue
            if timing.queue_seconds is None or timing.started_seen_at is None:
                raise BenchError(f"run {timing.run_id} has no startedAt: {timing.status}")
            result.server_ms.append(timing.queue_seconds * 1000)
            result.client_ms.append((timing.started_seen_at - timing.returned_at) * 1000)
            result.call_ms.append((timing.returned_at - timing.called_at) * 1000)
            result.poll_ms.extend(d * 1000 for d in timing.poll_seconds)
    print(
        f"   run {number}: {samples} samples, server p50 {percentile(result.server_ms, 50):.1f} ms, "
        f"p99 {percentile(result.server_ms, 99):.1f} ms",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(parser, rows=str(QUICK_ROWS))
    parser.add_argument("--samples", type=int, default=200, help="measured runs per repetition (default 200)")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured runs first (default 5)")
    parser.add_argument("--gap", type=float, default=0.05, help="idle seconds before each run (default 0.05)")
    parser.add_argument(
        "--poll-interval", type=float, default=0.01, help="seconds between getReportRunStatus calls (default 0.01)"
    )
    args = parser.parse_args()
    rows = QUICK_ROWS if args.quick else parse_rows(args.rows)[0]
    runs = 1 if args.quick else max(1, args.runs)
    samples = 20 if args.quick else max(1, args.samples)

    print_header(
        "queue_latency",
        f"{args.backend}, {samples} samples x {runs} run(s), tiny report, "
        f"poll every {args.poll_interval * 1000:.0f} ms",
    )
    rounds = [
        measure_round(
            args.backend,
            rows,
            samples=samples,
            warmup=args.warmup,
            gap=args.gap,
            poll_interval=args.poll_interval,
            number=n,
        )
        for n in range(1, runs + 1)
    ]

    def stat(pick: str, pct: float) -> float:
        return median([percentile(getattr(r, pick), pct) for r in rounds])

    server_p50, server_p99 = stat("server_ms", 50), stat("server_ms", 99)
    poll_p50 = stat("poll_ms", 50)
    pooled = [v for r in rounds for v in r.server_ms]
    table = [
        [
            "server: startedAt - createdAt",
            f"{server_p50:.1f}",
            f"{server_p99:.1f}",
            f"{max(pooled):.1f}",
            f"{server_p50 / poll_p50:.2f}x",
        ],
        [
            "client: processReport answer -> first poll past queued",
            f"{stat('client_ms', 50):.1f}",
            f"{stat('client_ms', 99):.1f}",
            f"{max(v for r in rounds for v in r.client_ms):.1f}",
            f"{stat('client_ms', 50) / poll_p50:.2f}x",
        ],
        [
            "reference: one processReport call",
            f"{stat('call_ms', 50):.1f}",
            f"{stat('call_ms', 99):.1f}",
            f"{max(v for r in rounds for v in r.call_ms):.1f}",
            f"{stat('call_ms', 50) / poll_p50:.2f}x",
        ],
        [
            "baseline: one getReportRunStatus call",
            f"{poll_p50:.1f}",
            f"{stat('poll_ms', 99):.1f}",
            f"{max(v for r in rounds for v in r.poll_ms):.1f}",
            "1.00x",
        ],
    ]
    print_table(
        f"Queue latency on an idle {args.backend} server, ms (p50/p99: medians over {runs} run(s) of "
        f"{samples} samples; max: over all {len(pooled)})",
        ["what", "p50 ms", "p99 ms", "max ms", "p50 vs one status call"],
        table,
    )
    print(
        f"\nqueue wait p50 {server_p50:.1f} ms (target <= {P50_TARGET_MS:.0f} ms): "
        f"{verdict(server_p50 <= P50_TARGET_MS)}"
    )
    print(
        f"queue wait p99 {server_p99:.1f} ms (target <= {P99_TARGET_MS:.0f} ms): {verdict(server_p99 <= P99_TARGET_MS)}"
    )
    warn_failed_polls([t for r in rounds for t in r.timings], f"bench/.data/logs/queue_latency-{args.backend}.log")


if __name__ == "__main__":
    run_main(main)
