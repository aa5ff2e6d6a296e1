"""processReport under load: many clients start runs at once; are they all taken, run once,
answered fast, and how do the workers scale?

Setup: the cached data set (2,000 findings) and a tiny public report (one column, one row), so
that a run costs the queue's work (enqueue, claim, heartbeat, completion) and next to no export.
One account: ``--clients`` threads of this process, each its own keep-alive connection and its
own access token (all issued to the data set's API client), send ``--calls`` processReport calls
between them, back to back (a closed loop: each client sends its next call when the last one
answered). On a server that can join identical requests, every call asks for a new run
(``forceNew: true``), so every accepted call must make exactly one run.

Each repetition (``--runs``) has two phases, each on a fresh server:

1. latency: ``uvm-reporting serve`` with its embedded worker threads (the default deployment),
   so the API's enqueues contend with the workers' claims, heartbeats and completions.
   Reported: processReport p50, p99 and max (client clock, send to answer); then, once every
   run has ended, how many runs the phase made, how many completed, and duplicates.
2. throughput: ``serve --no-workers`` queues ``--queued`` runs the same way (its latency is
   reported too: the API without workers), then ``uvm-reporting worker --concurrency 1``
   processes, first one then two (the first one and one more), each drain a fresh batch of that
   many runs. The processes start first (each with a warm-up run) and are paused (SIGSTOP)
   while the batch is queued, then continued together: runs per minute = runs / (last
   finishedAt - first startedAt), so neither the start-up of a process nor the API's enqueues
   are counted.

Duplicates, counted from the runs table (the truth, not the answers): runs of the report
created during the phase that no call was answered with, plus run ids answered to more than
one call. Both must be zero. Runs executed more than once (``attempts > 1``, a lease lost) are
reported beside them as "re-run".

Targets: processReport p99 < 400 ms on both databases; 2 workers >= 1.8x 1 worker (PostgreSQL).

    .venv/bin/python bench/process_report_load.py --backend sqlite|postgresql [--calls 1000]
        [--clients 50] [--queued 1000] [--runs 3] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from _harness import (
    PG_CONNINFO,
    QUICK_ROWS,
    TINY_REPORT,
    ApiClient,
    BenchError,
    Dataset,
    GraphQLError,
    add_common_options,
    ensure_report,
    fresh_download_request,
    get_token,
    median,
    parse_rows,
    parse_utc,
    percentile,
    prepare_dataset,
    print_header,
    print_table,
    run_main,
    running_server,
    running_worker,
    verdict,
)

P99_TARGET_MS = 400.0
SCALING_TARGET = 1.8
FINAL_STATES = ("completed", "failed", "cancelled")
DRAIN_TIMEOUT_SECONDS = 900


# --- the load ---------------------------------------------------------------------------------


@dataclass
class Calls:
    """What the clients got: run ids answered, each call's latency, the errors."""

    run_ids: list[str] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    started_at: datetime | None = None
    wall_seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return len(self.latency_ms) / self.wall_seconds if self.wall_seconds > 0 else 0.0


def send_calls(base_url: str, dataset: Dataset, report_id: str, *, calls: int, clients: int) -> Calls:
    """``calls`` processReport calls from ``clients`` threads, each with its own connection and token."""
    tokens = [get_token(base_url, dataset.client_id, dataset.client_secret) for _ in range(clients)]
    with ApiClient(base_url, dataset.account_id, tokens[0]) as probe:
        request = fresh_download_request(probe, report_id)
    result = Calls()
    lock = threading.Lock()
    remaining = [calls]
    start = threading.Barrier(clients + 1)

    def client_loop(token: str) -> None:
        with ApiClient(base_url, dataset.account_id, token) as client:
            # A first cheap call opens the connection, so the measured calls do not pay for it.
            with contextlib.suppress(BenchError):
                client.graphql("{ __typename }", {}, "warmup")
            start.wait()
            while True:
                with lock:
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
                before = time.monotonic()
                try:
                    data = client.graphql(request.query, request.variables, "processReport")
                except GraphQLError as error:
                    with lock:
                        result.errors[",".join(sorted(error.codes))] += 1
                    continue
                except (BenchError, OSError) as error:
                    with lock:
                        result.errors[type(error).__name__] += 1
                    continue
                elapsed = (time.monotonic() - before) * 1000
                with lock:
                    result.latency_ms.append(elapsed)
                    result.run_ids.append(str(data["processReport"]["runId"]))

    threads = [threading.Thread(target=client_loop, args=(token,), daemon=True) for token in tokens]
    for thread in threads:
        thread.start()
    start.wait()
    result.started_at = datetime.now(UTC)
    began = time.monotonic()
    for thread in threads:
        thread.join()
    result.wall_seconds = time.monotonic() - began
    return result


# --- the runs table: what really happened -----------------------------------------------------


@contextlib.contextmanager
def database(dataset: Dataset) -> Iterator[Any]:
    """A read-only connection to the data set's database (DB-API, ``%s`` or ``?`` placeholders)."""
    if dataset.backend == "sqlite":
        with contextlib.closing(sqlite3.connect(dataset.sqlite_file, timeout=30)) as connection:
            yield connection
    else:
        with psycopg.connect(f"{PG_CONNINFO} dbname={dataset.pg_database}", autocommit=True) as connection:
            yield connection


def query(dataset: Dataset, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    with database(dataset) as connection:
        if dataset.backend == "sqlite":
            sql = sql.replace("%s", "?")
        return list(connection.execute(sql, tuple(params)).fetchall())


def as_datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return parse_utc(str(value))


@dataclass
class RunRow:
    id: str
    state: str
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    result_key: str | None
    worker_id: str | None


def phase_runs(dataset: Dataset, report_id: str, since: datetime) -> list[RunRow]:
    """Every run of the report created since ``since`` (the phase's start, a few ms early)."""
    since_value: Any = since
    if dataset.backend == "sqlite":  # stored as fixed-width ISO-8601 UTC text
        utc = since.astimezone(UTC)
        since_value = utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    rows = query(
        dataset,
        "SELECT id, state, attempts, started_at, finished_at, result_key, worker_id FROM runs "
        "WHERE account_id = %s AND report_id = %s AND created_at >= %s",
        (dataset.account_id, report_id, since_value),
    )
    return [RunRow(r[0], r[1], int(r[2]), as_datetime(r[3]), as_datetime(r[4]), r[5], r[6]) for r in rows]


def wait_until_ended(dataset: Dataset, report_id: str, since: datetime, expected: int) -> list[RunRow]:
    """The phase's runs once all ``expected`` of them have ended."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    while True:
        rows = phase_runs(dataset, report_id, since)
        if len(rows) >= expected and all(r.state in FINAL_STATES for r in rows):
            return rows
        if time.monotonic() > deadline:
            open_runs = sum(r.state not in FINAL_STATES for r in rows)
            raise BenchError(f"{open_runs} of {len(rows)} runs had not ended after {DRAIN_TIMEOUT_SECONDS}s")
        time.sleep(0.2)


def remove_result_files(dataset: Dataset, rows: Sequence[RunRow]) -> None:
    """So that repeated benchmarks do not fill the disk."""
    results = dataset.storage_dir
    for row in rows:
        if row.result_key:
            with contextlib.suppress(OSError):
                (results / row.result_key).unlink()


@dataclass
class Outcome:
    """What the runs table says of one phase."""

    calls: int
    runs: int
    completed: int
    duplicates: int
    rerun: int
    states: Counter[str]

    @staticmethod
    def of(calls: Calls, rows: Sequence[RunRow]) -> Outcome:
        answered = Counter(calls.run_ids)
        unanswered = sum(1 for r in rows if r.id not in answered)
        answered_twice = sum(n - 1 for n in answered.values() if n > 1)
        return Outcome(
            calls=len(calls.run_ids),
            runs=len(rows),
            completed=sum(r.state == "completed" for r in rows),
            duplicates=unanswered + answered_twice,
            rerun=sum(r.attempts > 1 for r in rows),
            states=Counter(r.state for r in rows),
        )


# --- the phases -------------------------------------------------------------------------------


@dataclass
class Repetition:
    embedded: Calls | None
    embedded_outcome: Outcome | None
    api_only: Calls | None
    runs_per_minute: dict[int, float]
    throughput_outcomes: dict[int, Outcome]


def latency_phase(dataset: Dataset, report_id: str, *, calls: int, clients: int, number: int) -> tuple[Calls, Outcome]:
    with running_server(dataset, log_name=f"process_report_load-{dataset.backend}-embedded") as server:
        sent = send_calls(server.base_url, dataset, report_id, calls=calls, clients=clients)
        check_calls(sent)
        rows = wait_until_ended(dataset, report_id, phase_start(sent), len(sent.run_ids))
    remove_result_files(dataset, rows)
    outcome = Outcome.of(sent, rows)
    print(
        f"   run {number}, embedded workers: {len(sent.latency_ms)} calls at {sent.per_second:.0f}/s, "
        f"p50 {percentile(sent.latency_ms, 50):.0f} ms, p99 {percentile(sent.latency_ms, 99):.0f} ms, "
        f"max {max(sent.latency_ms):.0f} ms; {outcome.runs} runs, {outcome.completed} completed, "
        f"{outcome.duplicates} duplicates",
        flush=True,
    )
    return sent, outcome


def throughput_phase(
    dataset: Dataset, report_id: str, *, queued: int, clients: int, number: int
) -> tuple[Calls, dict[int, float], dict[int, Outcome]]:
    per_minute: dict[int, float] = {}
    outcomes: dict[int, Outcome] = {}
    first: Calls | None = None
    workers: list[subprocess.Popen[bytes]] = []
    with (
        running_server(dataset, workers=False, log_name=f"process_report_load-{dataset.backend}-api") as server,
        contextlib.ExitStack() as stack,
    ):
        for processes in (1, 2):
            # The second round keeps the first round's process and adds one.
            workers.append(
                stack.enter_context(
                    running_worker(
                        dataset, concurrency=1, log_name=f"process_report_load-{dataset.backend}-worker{processes}"
                    )
                )
            )
            warm_up(dataset, report_id, server.base_url, workers[-1:], calls=2 * processes)
            # Paused while the queue fills, so that the processes start on it together and the
            # API's enqueues do not share the cores with them.
            with paused(dataset, workers):
                sent = send_calls(server.base_url, dataset, report_id, calls=queued, clients=clients)
                check_calls(sent)
                resumed = datetime.now(UTC)
            rows = wait_until_ended(dataset, report_id, phase_start(sent), len(sent.run_ids))
            first = first or sent
            remove_result_files(dataset, rows)
            outcomes[processes] = Outcome.of(sent, rows)
            # From the first claim (an idle process may sleep up to its poll interval after it is
            # continued) to the last completion, both stamped by the server.
            starts = [r.started_at for r in rows if r.started_at is not None and r.started_at >= resumed]
            ends = [r.finished_at for r in rows if r.finished_at is not None]
            span = (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0
            per_minute[processes] = len(rows) / span * 60 if span > 0 else 0.0
            print(
                f"   run {number}, {processes} worker process(es): {len(rows)} runs in {span:.1f}s, "
                f"{per_minute[processes]:.0f} runs/min",
                flush=True,
            )
    assert first is not None
    return first, per_minute, outcomes


def warm_up(
    dataset: Dataset, report_id: str, base_url: str, workers: Sequence[subprocess.Popen[bytes]], *, calls: int
) -> None:
    """``calls`` runs at a time until each of ``workers`` has completed one: a process's first
    export loads the export stack and starts its spare export process, seconds that are not the
    queue's."""
    waiting = {worker.pid for worker in workers}
    for _ in range(20):
        sent = send_calls(base_url, dataset, report_id, calls=calls, clients=1)
        rows = wait_until_ended(dataset, report_id, phase_start(sent), len(sent.run_ids))
        remove_result_files(dataset, rows)
        waiting -= {int(r.worker_id.split(":")[1]) for r in rows if r.worker_id and r.state == "completed"}
        if not waiting:
            return
    raise BenchError(f"worker process(es) {sorted(waiting)} completed no warm-up run")


@contextlib.contextmanager
def paused(dataset: Dataset, workers: Sequence[subprocess.Popen[bytes]]) -> Iterator[None]:
    """The worker processes stopped (SIGSTOP) inside the block, and continued together after it.

    An idle worker holds no lock but for the instant of a claim; on SQLite a process stopped in
    that instant would hold the write lock, so it is let go and stopped again until the
    database takes a write."""
    for _ in range(100):
        for worker in workers:
            os.kill(worker.pid, signal.SIGSTOP)
        if dataset.backend != "sqlite" or _writable(dataset):
            break
        for worker in workers:
            os.kill(worker.pid, signal.SIGCONT)
        time.sleep(0.05)
    else:
        raise BenchError("could not pause the worker processes outside a write")
    try:
        yield
    finally:
        for worker in workers:
            os.kill(worker.pid, signal.SIGCONT)


def _writable(dataset: Dataset) -> bool:
    with contextlib.closing(sqlite3.connect(dataset.sqlite_file, timeout=0.5, isolation_level=None)) as connection:
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return False
        connection.execute("ROLLBACK")
        return True


def check_calls(sent: Calls) -> None:
    if sent.errors:
        print(f"   WARNING: failed processReport calls: {dict(sent.errors)}", flush=True)
    if not sent.latency_ms:
        raise BenchError("no processReport call succeeded")


def phase_start(calls: Calls) -> datetime:
    """Before the first call was sent (the server stamps createdAt later, on the same clock)."""
    assert calls.started_at is not None
    return calls.started_at


# --- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(parser, rows=str(QUICK_ROWS))
    parser.add_argument("--calls", type=int, default=1000, help="processReport calls per phase (default 1000)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    parser.add_argument(
        "--queued", type=int, default=1000, help="runs each worker count drains in the throughput phase (default 1000)"
    )
    parser.add_argument(
        "--phase", choices=("both", "latency", "throughput"), default="both", help="which phases to run (default both)"
    )
    args = parser.parse_args()
    rows = QUICK_ROWS if args.quick else parse_rows(args.rows)[0]
    runs = 1 if args.quick else max(1, args.runs)
    calls = 60 if args.quick else max(1, args.calls)
    clients = 10 if args.quick else max(1, args.clients)
    queued = 30 if args.quick else max(1, args.queued)

    print_header(
        "process_report_load",
        f"{args.backend}, {calls} processReport calls from {clients} clients, {queued} runs per worker count, "
        f"{runs} run(s), tiny report",
    )
    dataset = prepare_dataset(args.backend, rows)
    report_id = ensure_report(dataset, "tiny", TINY_REPORT)
    repetitions: list[Repetition] = []
    for number in range(1, runs + 1):
        embedded, embedded_outcome = (
            latency_phase(dataset, report_id, calls=calls, clients=clients, number=number)
            if args.phase != "throughput"
            else (None, None)
        )
        api_only, per_minute, outcomes = (
            throughput_phase(dataset, report_id, queued=queued, clients=clients, number=number)
            if args.phase != "latency"
            else (None, {}, {})
        )
        repetitions.append(Repetition(embedded, embedded_outcome, api_only, per_minute, outcomes))
    report(args.backend, repetitions, runs=runs, calls=calls, clients=clients, queued=queued)


def report(backend: str, repetitions: list[Repetition], *, runs: int, calls: int, clients: int, queued: int) -> None:
    def latency_row(label: str, pick: str) -> list[str] | None:
        samples: list[Calls] = [getattr(r, pick) for r in repetitions if getattr(r, pick) is not None]
        if not samples:
            return None
        return [
            label,
            f"{median([s.per_second for s in samples]):.0f}",
            f"{median([percentile(s.latency_ms, 50) for s in samples]):.0f}",
            f"{median([percentile(s.latency_ms, 99) for s in samples]):.0f}",
            f"{max(max(s.latency_ms) for s in samples):.0f}",
            str(sum(sum(s.errors.values()) for s in samples)),
        ]

    print_table(
        f"processReport latency on {backend}, {clients} clients (medians over {runs} run(s); max: over all)",
        ["server", "calls/s", "p50 ms", "p99 ms", "max ms", "failed calls"],
        [
            row
            for row in (
                latency_row(f"serve, embedded workers ({calls} calls)", "embedded"),
                latency_row(f"serve --no-workers ({queued} calls)", "api_only"),
            )
            if row is not None
        ],
    )
    outcomes = [r.embedded_outcome for r in repetitions if r.embedded_outcome is not None] + [
        o for r in repetitions for o in r.throughput_outcomes.values()
    ]
    print_table(
        "Runs (from the runs table; all phases of all repetitions)",
        ["accepted calls", "runs", "completed", "duplicates", "re-run", "states"],
        [
            [
                str(sum(o.calls for o in outcomes)),
                str(sum(o.runs for o in outcomes)),
                str(sum(o.completed for o in outcomes)),
                str(sum(o.duplicates for o in outcomes)),
                str(sum(o.rerun for o in outcomes)),
                ", ".join(f"{k} {v}" for k, v in sorted(sum((o.states for o in outcomes), Counter()).items())),
            ]
        ],
    )
    if any(r.runs_per_minute for r in repetitions):
        one = median([r.runs_per_minute[1] for r in repetitions])
        two = median([r.runs_per_minute[2] for r in repetitions])
        ratios = [r.runs_per_minute[2] / r.runs_per_minute[1] for r in repetitions if r.runs_per_minute[1] > 0]
        scaling = median(ratios) if ratios else 0.0
        print_table(
            f"Worker throughput on {backend}, {queued} queued runs per count (medians over {runs} run(s))",
            ["worker processes", "runs/min", "vs 1 process"],
            [["1", f"{one:.0f}", "1.00x"], ["2", f"{two:.0f}", f"{scaling:.2f}x"]],
        )
    embedded = [r.embedded for r in repetitions if r.embedded is not None]
    if embedded:
        p99 = median([percentile(e.latency_ms, 99) for e in embedded])
        print(f"\nprocessReport p99 {p99:.0f} ms (target < {P99_TARGET_MS:.0f} ms): {verdict(p99 < P99_TARGET_MS)}")
    if any(r.runs_per_minute for r in repetitions):
        print(
            f"2 workers / 1 worker {scaling:.2f}x (target >= {SCALING_TARGET}x"
            f"{', stated for PostgreSQL' if backend == 'sqlite' else ''}): {verdict(scaling >= SCALING_TARGET)}"
        )
    duplicates = sum(o.duplicates for o in outcomes)
    incomplete = sum(o.runs - o.completed for o in outcomes)
    if duplicates or incomplete:
        raise BenchError(f"{duplicates} duplicate run(s) and {incomplete} run(s) not completed")


if __name__ == "__main__":
    run_main(main)
