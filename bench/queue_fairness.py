"""Queue fairness: how long a small account's run waits for a worker while a big account floods
the queue, against the same wait on an idle queue.

Setup: ``uvm-reporting serve`` with its worker threads (2 by default) and no run quota
(``UVM_REPORTING_MAX_ACTIVE_RUNS_PER_ACCOUNT=0``), the data set's account ("big") with the
all-findings report, and a second account ("small") with a tiny public report. Each repetition
(``--runs``) uses a fresh server and measures, in this order:

* unloaded: ``--samples`` runs of the small account on an idle queue (a short gap before each);
* loaded: the big account queues ``--flood`` runs of its report through processReport, then the
  small account starts ``--samples`` runs one after another while the flood is topped up to
  ``--flood`` queued runs before each.

The wait is ``startedAt - createdAt`` from getReportRunStatus (both stamped by the server). For
scale, the median export time of one flood run (``finishedAt - startedAt``) and the small run's
first ``queuePosition`` are printed. Workers claim accounts in turns, so a small run waits for
at most one flood run per worker: the target is a loaded median no longer than the unloaded one
plus two flood runs (a worker to come free, and the flood run of the same turn).

    .venv/bin/python bench/queue_fairness.py --backend sqlite|postgresql [--flood 200] [--samples 30] [--runs 3]
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from _harness import (
    QUICK_ROWS,
    ApiClient,
    BenchError,
    Dataset,
    ExportRequest,
    _query_one,
    add_common_options,
    api_client,
    fail_runs,
    fresh_download_request,
    get_token,
    median,
    parse_rows,
    percentile,
    prepare_dataset,
    print_header,
    print_table,
    remove_results,
    run_cli,
    run_main,
    running_server,
    span_seconds,
    verdict,
)

TINY_REPORT = {
    "name": "Bench: small account's report",
    "entity": "findings",
    "columns": ["id"],
    "limit": 1,
    "viewers": "public",
    "editors": "public",
}
POLL_SECONDS = 0.005


@dataclass
class SmallAccount:
    account_id: str
    report_id: str
    client_id: str
    client_secret: str


@dataclass
class Round:
    unloaded_ms: list[float] = field(default_factory=list)
    loaded_ms: list[float] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)  # the small run's first queuePosition, loaded
    depths: list[int] = field(default_factory=list)  # the flood's queued runs when a small run started
    flood_run_ms: list[float] = field(default_factory=list)


def small_account(dataset: Dataset) -> SmallAccount:
    """The second account of the data set, made once and remembered in its dataset.json."""
    saved = dataset.reports.get("fairness-small-account")
    if saved is not None:
        account = SmallAccount(**json.loads(saved))
        if _query_one(dataset, "SELECT count(*) FROM reports WHERE id = %s", account.report_id) == 1:
            return account
    env = dataset.env()
    account_id = str(run_cli(env, "accounts", "create", "--name", "Bench small account")["id"])
    path = dataset.root / "report-fairness-small.json"
    path.write_text(json.dumps(TINY_REPORT, indent=2) + "\n")
    report_id = str(run_cli(env, "reports", "create", "--account", account_id, "--file", str(path))["id"])
    client = run_cli(env, "clients", "create", "--account", account_id)
    account = SmallAccount(account_id, report_id, str(client["client_id"]), str(client["client_secret"]))
    dataset.reports["fairness-small-account"] = json.dumps(account.__dict__)
    dataset.save()
    return account


@functools.cache
def _fresh_request(client: ApiClient, report_id: str) -> ExportRequest:
    # A run of its own each time: a flood of identical requests would otherwise join one run.
    return fresh_download_request(client, report_id)


def start(client: ApiClient, report_id: str) -> str:
    request = _fresh_request(client, report_id)
    return str(client.graphql(request.query, request.variables, "processReport")["processReport"]["runId"])


def wait_started(client: ApiClient, report_id: str, run_id: str, timeout: float = 120) -> tuple[float, int | None]:
    """Poll until the run left the queue: (startedAt - createdAt in ms, its first queuePosition)."""
    deadline = time.monotonic() + timeout
    first_position: int | None = None
    polled = False
    while True:
        status = client.run_status(report_id, run_id)
        if not polled:
            first_position, polled = status.get("queuePosition"), True
        if status["state"] != "queued":
            wait = span_seconds(status.get("createdAt"), status.get("startedAt"))
            if wait is None:
                raise BenchError(f"run {run_id} has no startedAt: {status}")
            return wait * 1000, first_position
        if time.monotonic() > deadline:
            raise BenchError(f"run {run_id} was still queued after {timeout:.0f}s")
        time.sleep(POLL_SECONDS)


def flood_depth(dataset: Dataset) -> int:
    """How many of the big account's runs are queued (read in the database: a server without
    queuePosition is measured the same way)."""
    return int(
        _query_one(dataset, "SELECT count(*) FROM runs WHERE account_id = %s AND state = 'queued'", dataset.account_id)
    )


def measure_round(dataset: Dataset, small: SmallAccount, *, flood: int, samples: int, gap: float, number: int) -> Round:
    result = Round()
    flooded: list[str] = []
    # No quota: the flood is the point. Two worker threads, as the embedded default has.
    with running_server(
        dataset, log_name=f"queue_fairness-{dataset.backend}", env={"UVM_REPORTING_MAX_ACTIVE_RUNS_PER_ACCOUNT": "0"}
    ) as server:
        token = get_token(server.base_url, small.client_id, small.client_secret)
        with api_client(server.base_url, dataset) as big, ApiClient(server.base_url, small.account_id, token) as client:
            for _ in range(3):  # warm-up
                wait_started(client, small.report_id, start(client, small.report_id))
            for _ in range(samples):
                time.sleep(gap)
                wait, _position = wait_started(client, small.report_id, start(client, small.report_id))
                result.unloaded_ms.append(wait)
            for _ in range(samples):
                for _ in range(flood - flood_depth(dataset)):
                    flooded.append(start(big, dataset.report_id))
                result.depths.append(flood_depth(dataset))
                wait, position = wait_started(client, small.report_id, start(client, small.report_id))
                result.loaded_ms.append(wait)
                if position is not None:
                    result.positions.append(position)
            for run_id in flooded[:: max(1, len(flooded) // 50)]:
                status = big.run_status(dataset.report_id, run_id)
                if status["state"] == "completed":
                    export = span_seconds(status.get("startedAt"), status.get("finishedAt"))
                    if export is not None:
                        result.flood_run_ms.append(export * 1000)
    # The flood's runs still queued would be claimed by the next benchmark's workers first.
    fail_runs(dataset, "account_id = %s", [dataset.account_id], "left queued by queue_fairness")
    for run_id in flooded:
        remove_results(dataset, run_id)
    print(
        f"   run {number}: unloaded p50 {percentile(result.unloaded_ms, 50):.1f} ms, loaded p50 "
        f"{percentile(result.loaded_ms, 50):.1f} ms with {median(result.depths):.0f} flood runs queued",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(parser, rows=str(QUICK_ROWS))
    parser.add_argument("--flood", type=int, default=200, help="the big account's queued runs (default 200)")
    parser.add_argument("--samples", type=int, default=30, help="small-account runs per phase (default 30)")
    parser.add_argument("--gap", type=float, default=0.05, help="idle seconds before each unloaded run")
    args = parser.parse_args()
    rows = QUICK_ROWS if args.quick else parse_rows(args.rows)[0]
    runs = 1 if args.quick else max(1, args.runs)
    samples = 10 if args.quick else max(1, args.samples)
    flood = 50 if args.quick else max(1, args.flood)

    print_header(
        "queue_fairness",
        f"{args.backend}, {rows:,} rows, flood of {flood} runs, {samples} samples x {runs} run(s)",
    )
    dataset = prepare_dataset(args.backend, rows)
    small = small_account(dataset)
    rounds = [
        measure_round(dataset, small, flood=flood, samples=samples, gap=args.gap, number=n) for n in range(1, runs + 1)
    ]

    def stat(pick: str, pct: float) -> float:
        return median([percentile(getattr(r, pick), pct) for r in rounds if getattr(r, pick)])

    unloaded, loaded, flood_run = stat("unloaded_ms", 50), stat("loaded_ms", 50), stat("flood_run_ms", 50)
    depth = median([d for r in rounds for d in r.depths])
    positions: list[Any] = [p for r in rounds for p in r.positions]
    table = [
        ["small account, idle queue (baseline)", f"{unloaded:.1f}", f"{stat('unloaded_ms', 90):.1f}", "1.00x"],
        [
            f"small account, {depth:.0f} flood runs queued",
            f"{loaded:.1f}",
            f"{stat('loaded_ms', 90):.1f}",
            f"{loaded / unloaded:.2f}x",
        ],
        ["for scale: one flood run's export", f"{flood_run:.1f}", f"{stat('flood_run_ms', 90):.1f}", ""],
    ]
    print_table(
        f"Queue wait (startedAt - createdAt) of the small account's runs, ms (medians over {runs} run(s) "
        f"of {samples} samples)",
        ["what", "p50 ms", "p90 ms", "vs idle"],
        table,
    )
    if positions:
        print(
            f"\nsmall run's first queuePosition under the flood: median {median(positions):.0f}, max {max(positions)}"
        )
    bound = unloaded + 2 * flood_run
    print(
        f"loaded wait p50 {loaded:.1f} ms (target <= idle + two flood runs = {bound:.1f} ms): "
        f"{verdict(loaded <= bound)}"
    )


if __name__ == "__main__":
    run_main(main)
