"""Soak: a server polled steadily for minutes; do its memory and open files stay flat?

Setup: ``uvm-reporting serve`` with its embedded workers on the cached data set (2,000
findings) and a tiny public report (one column, one row). ``--pollers`` clients, each its own
keep-alive connection and token, call getReportRunStatus at ``--rate`` calls a second between
them, on the runs started so far (a finished run's answer comes from the status cache, so the
latest few are polled too, which the cache cannot answer while they run). One more client
starts a run with processReport every ``--run-every`` seconds. That goes on for ``--minutes``.

The server process's resident memory (VmRSS) and open file descriptors (/proc/<pid>/fd) are
read after a warm-up (a few runs, then the steady traffic for a tenth of the time, at most 30 s,
so caches, pooled connections and lazy imports are in place) and then every
``--sample-every`` seconds up to the end. Reported: start, end, the highest, and the growth
end - start; leaks show as growth that continues from sample to sample.

    .venv/bin/python bench/soak.py --backend sqlite|postgresql [--minutes 10] [--rate 50] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from _harness import (
    GET_REPORT_RUN_STATUS,
    QUICK_ROWS,
    TINY_REPORT,
    ApiClient,
    BenchError,
    ExportRequest,
    add_common_options,
    ensure_report,
    fresh_download_request,
    get_token,
    megabytes,
    parse_rows,
    prepare_dataset,
    print_header,
    print_table,
    remove_results,
    rss_bytes,
    run_main,
    running_server,
)

WARMUP_RUNS = 5
RECENT_RUNS_POLLED = 5


def open_files(pid: int) -> int:
    try:
        return sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
    except OSError as error:
        raise BenchError(f"cannot list /proc/{pid}/fd: {error}") from None


@dataclass
class Sample:
    at: float  # seconds since the measurement began
    rss: int
    fds: int


@dataclass
class Traffic:
    run_ids: list[str] = field(default_factory=list)
    polls: int = 0
    runs_started: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def targets(self, index: int) -> str | None:
        """A run to poll: mostly the latest few (still running or just finished), else any."""
        with self.lock:
            if not self.run_ids:
                return None
            if index % 2 == 0:
                return self.run_ids[-1 - index % min(RECENT_RUNS_POLLED, len(self.run_ids))]
            return self.run_ids[index % len(self.run_ids)]


def poller(client: ApiClient, report_id: str, traffic: Traffic, interval: float, stop: threading.Event) -> None:
    index = 0
    next_at = time.monotonic()
    while not stop.is_set():
        run_id = traffic.targets(index)
        index += 1
        if run_id is not None:
            try:
                client.graphql(GET_REPORT_RUN_STATUS, {"reportId": report_id, "runId": run_id}, "getReportRunStatus")
                with traffic.lock:
                    traffic.polls += 1
            except (BenchError, OSError) as error:
                with traffic.lock:
                    traffic.errors[f"getReportRunStatus: {type(error).__name__}"] += 1
        next_at += interval
        stop.wait(max(0.0, next_at - time.monotonic()))


def starter(
    client: ApiClient, request: ExportRequest, traffic: Traffic, interval: float, stop: threading.Event
) -> None:
    next_at = time.monotonic()
    while not stop.is_set():
        try:
            data = client.graphql(request.query, request.variables, "processReport")
            with traffic.lock:
                traffic.run_ids.append(str(data["processReport"]["runId"]))
                traffic.runs_started += 1
        except (BenchError, OSError) as error:
            with traffic.lock:
                traffic.errors[f"processReport: {type(error).__name__}"] += 1
        next_at += interval
        stop.wait(max(0.0, next_at - time.monotonic()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(parser, rows=str(QUICK_ROWS))
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to poll (default 10)")
    parser.add_argument("--rate", type=float, default=50.0, help="getReportRunStatus calls a second (default 50)")
    parser.add_argument("--pollers", type=int, default=4, help="polling clients (default 4)")
    parser.add_argument("--run-every", type=float, default=2.0, help="seconds between processReport calls (default 2)")
    parser.add_argument("--sample-every", type=float, default=30.0, help="seconds between readings (default 30)")
    args = parser.parse_args()
    rows = QUICK_ROWS if args.quick else parse_rows(args.rows)[0]
    duration = 15.0 if args.quick else args.minutes * 60
    sample_every = 3.0 if args.quick else args.sample_every
    warm_up_seconds = 3.0 if args.quick else min(30.0, duration / 10)
    print_header(
        "soak",
        f"{args.backend}, {duration:.0f}s, {args.rate:.0f} getReportRunStatus/s from {args.pollers} clients, "
        f"processReport every {args.run_every:.1f}s, tiny report",
    )
    dataset = prepare_dataset(args.backend, rows)
    report_id = ensure_report(dataset, "tiny", TINY_REPORT)
    traffic = Traffic()
    samples: list[Sample] = []
    with running_server(dataset, log_name=f"soak-{args.backend}") as server:
        pid = server.process.pid
        clients = [
            ApiClient(
                server.base_url,
                dataset.account_id,
                get_token(server.base_url, dataset.client_id, dataset.client_secret),
            )
            for _ in range(args.pollers + 1)
        ]
        with contextlib.ExitStack() as stack:
            for client in clients:
                stack.enter_context(client)
            request = fresh_download_request(clients[0], report_id)
            warm_up(clients[0], report_id, request, traffic)
            stop = threading.Event()
            threads = [
                threading.Thread(target=starter, args=(clients[0], request, traffic, args.run_every, stop), daemon=True)
            ] + [
                threading.Thread(
                    target=poller, args=(client, report_id, traffic, args.pollers / args.rate, stop), daemon=True
                )
                for client in clients[1:]
            ]
            for thread in threads:
                thread.start()
            try:
                # The first reading once the steady traffic has opened what it needs (pooled
                # connections, handler threads): growth from there on is what a leak would show.
                stop.wait(warm_up_seconds)
                began = time.monotonic()
                samples.append(Sample(0.0, rss_bytes(pid), open_files(pid)))
                while (elapsed := time.monotonic() - began) < duration:
                    stop.wait(min(sample_every, duration - elapsed))
                    if server.process.poll() is not None:
                        raise BenchError(f"the server exited with {server.process.returncode}")
                    samples.append(Sample(time.monotonic() - began, rss_bytes(pid), open_files(pid)))
            finally:
                stop.set()
                for thread in threads:
                    thread.join(30)
    for run_id in traffic.run_ids:
        remove_results(dataset, run_id)
    report(samples, traffic, duration)


def warm_up(client: ApiClient, report_id: str, request: ExportRequest, traffic: Traffic) -> None:
    for _ in range(WARMUP_RUNS):
        run_id = str(client.graphql(request.query, request.variables, "processReport")["processReport"]["runId"])
        traffic.run_ids.append(run_id)
        deadline = time.monotonic() + 120
        while client.run_status(report_id, run_id)["status"] == "Running":
            if time.monotonic() > deadline:
                raise BenchError(f"warm-up run {run_id} did not finish within 120s")
            time.sleep(0.02)


def report(samples: list[Sample], traffic: Traffic, duration: float) -> None:
    first, last = samples[0], samples[-1]
    print_table(
        "Server process over the soak (VmRSS MiB, open file descriptors)",
        ["seconds", "RSS MiB", "open fds"],
        [[f"{s.at:.0f}", megabytes(s.rss), str(s.fds)] for s in samples],
    )
    print_table(
        "Summary",
        ["what", "start", "end", "highest", "end - start"],
        [
            [
                "RSS MiB",
                megabytes(first.rss),
                megabytes(last.rss),
                megabytes(max(s.rss for s in samples)),
                f"{(last.rss - first.rss) / 1024 / 1024:+.1f}",
            ],
            ["open fds", str(first.fds), str(last.fds), str(max(s.fds for s in samples)), f"{last.fds - first.fds:+d}"],
        ],
    )
    print(
        f"\n{traffic.polls} getReportRunStatus calls ({traffic.polls / duration:.0f}/s) and "
        f"{traffic.runs_started} processReport calls in {duration:.0f}s"
    )
    if traffic.errors:
        print(f"WARNING: failed calls: {dict(traffic.errors)}")


if __name__ == "__main__":
    run_main(main)
