"""getReportRunStatus throughput through the real ASGI stack, against a bare JSON endpoint of the
same framework in the same process.

The app is built here the way ``uvm-reporting serve`` builds it (``create_app(build_services(
settings))``, logging at the settings' level into bench/.data/logs), plus one extra route on
the same Starlette instance: ``POST /bench/bare`` reads the body and answers a fixed JSON
object as large as a status answer. Both routes therefore pass the same middleware (the access
log) and the same uvicorn, which runs in a thread of this process on a free port. The load
comes from another process: ``wrk`` when it is installed (with a generated Lua script), else
bench/_load.py (asyncio, raw keep-alive sockets). Every endpoint gets the same request bytes
(path and run id aside): the spec's getReportRunStatus call, bearer token included, for

* a Completed run, made beforehand by a separate ``serve`` process (its answer carries a fresh
  download link);
* a Running run: one queued through this app, whose process has no worker threads, so it stays
  queued while it is polled (a Running run's status is read from the database at most every
  0.25 s, application/report_runs.py). It is marked failed when the benchmark ends.

Each measured repetition drives every endpoint with the same number of requests over the same
number of connections (with wrk, which cannot stop after a number of requests: for the same
duration), in an order that turns each time. Target: status/bare >= 0.5x for both runs.

    .venv/bin/python bench/status_throughput.py [--requests 5000] [--clients 8] [--runs 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from _harness import (
    BENCH_DIR,
    GET_REPORT_RUN_STATUS,
    HOST,
    LOG_DIR,
    QUICK_ROWS,
    ApiClient,
    BenchError,
    Dataset,
    add_common_options,
    api_client,
    export_request,
    fail_runs,
    free_port,
    median,
    parse_rows,
    prepare_dataset,
    print_header,
    print_table,
    process_report_arguments,
    ratio,
    remove_results,
    require_completed,
    run_main,
    run_report,
    running_server,
    verdict,
    warn_failed_polls,
)
from starlette.requests import Request
from starlette.responses import JSONResponse

from uvm_reporting.api.app import create_app
from uvm_reporting.services import build_services
from uvm_reporting.settings import Settings

TARGET_RATIO = 0.5
BARE_PATH = "/bench/bare"
STATUS_PATH = "/api/graphql"


@contextlib.contextmanager
def in_process_server(dataset: Dataset, bare_payload: dict[str, Any]) -> Iterator[str]:
    """The product's app plus the bare route, served by uvicorn in a thread; yields the base URL."""
    port = free_port()
    base_url = f"http://{HOST}:{port}"
    # No worker threads: a run queued here stays Running while it is polled.
    settings = Settings(
        data_dir=dataset.data_dir,
        database_url=dataset.database_url,
        public_url=base_url,
        worker_threads=0,
        scheduler_in_serve=False,
    )
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_file = LOG_DIR / "status_throughput-server.log"
    log_file.write_bytes(b"")
    # Append mode: uvicorn's logging set-up closes existing handlers, and only an append-mode
    # file handler reopens its file on the next record.
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        filename=log_file,
        filemode="a",
        force=True,
    )
    app = create_app(build_services(settings))

    async def bare(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse(bare_payload)

    app.add_route(BARE_PATH, bare, methods=["POST"])
    config = uvicorn.Config(
        app, host=HOST, port=port, log_level="warning", access_log=False, proxy_headers=True, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            if not thread.is_alive():
                raise BenchError("uvicorn stopped while starting; see bench/.data/logs/status_throughput-server.log")
            if time.monotonic() > deadline:
                raise BenchError("uvicorn did not start within 60s")
            time.sleep(0.02)
        yield base_url
    finally:
        server.should_exit = True
        thread.join(30)


def raw_request(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {HOST}:{port}",
        *(f"{k}: {v}" for k, v in headers.items()),
        f"Content-Length: {len(body)}",
        "",
        "",
    ]
    return "\r\n".join(lines).encode() + body


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    errors: int
    first_error: str

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def drive_python(
    port: int, request: bytes, *, requests: int, connections: int, procs: int, work_dir: Path
) -> LoadResult:
    """bench/_load.py in ``procs`` processes, sharing ``requests`` and ``connections`` between them."""
    request_file = work_dir / f"request-{port}.http"
    request_file.write_bytes(request)
    start_at = time.monotonic() + 1.0
    processes = []
    try:
        for index in range(procs):
            share = requests // procs + (1 if index < requests % procs else 0)
            conns = max(1, connections // procs + (1 if index < connections % procs else 0))
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        str(BENCH_DIR / "_load.py"),
                        "--port",
                        str(port),
                        "--request-file",
                        str(request_file),
                        "--requests",
                        str(share),
                        "--connections",
                        str(conns),
                        "--start-at",
                        str(start_at),
                        "--timeout",
                        "600",
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            )
        outputs = []
        for process in processes:
            out, err = process.communicate(timeout=700)
            if process.returncode != 0:
                raise BenchError(f"the load process failed ({process.returncode}): {err.decode(errors='replace')}")
            outputs.append(json.loads(out))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
    if any(o["timed_out"] for o in outputs):
        raise BenchError("the load did not finish within 600s")
    done = sum(int(o["requests"]) for o in outputs)
    elapsed = max(float(o["finished"]) for o in outputs) - min(float(o["started"]) for o in outputs)
    errors = sum(int(o["errors"]) for o in outputs)
    first = next((str(o["first_error"]) for o in outputs if o["first_error"]), "")
    return LoadResult(done, elapsed, errors, first)


_WRK_SCRIPT = """\
wrk.method = "POST"
wrk.body = [==[{body}]==]
{headers}
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) failed = 0 end
function response(status, headers, body)
  if status ~= 200 or string.find(body, '"errors"', 1, true) then failed = failed + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("failed") end
  io.write(string.format("FAILED_RESPONSES %d\\n", total))
end
"""


def drive_wrk(
    port: int,
    path: str,
    body: bytes,
    headers: dict[str, str],
    *,
    duration: float,
    connections: int,
    threads: int,
    work_dir: Path,
) -> LoadResult:
    """wrk for ``duration`` seconds (it cannot stop after a number of requests); the script counts
    responses that are not 200 or carry GraphQL errors."""
    threads = max(1, min(threads, connections))
    header_lines = "\n".join(f'wrk.headers["{k}"] = [==[{v}]==]' for k, v in headers.items())
    script = work_dir / f"wrk-{port}.lua"
    script.write_text(_WRK_SCRIPT.format(body=body.decode(), headers=header_lines))
    completed = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{max(1, round(duration))}s",
            "-s",
            str(script),
            f"http://{HOST}:{port}{path}",
        ],
        capture_output=True,
        text=True,
        timeout=duration + 120,
        check=False,
    )
    if completed.returncode != 0:
        raise BenchError(f"wrk failed ({completed.returncode}): {completed.stderr}")
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", completed.stdout)
    failed = re.search(r"FAILED_RESPONSES (\d+)", completed.stdout)
    if done is None or failed is None:
        raise BenchError(f"could not read wrk's output:\n{completed.stdout}")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[done.group(3)]
    socket_errors = re.search(r"Socket errors: (.*)", completed.stdout)
    return LoadResult(
        int(done.group(1)),
        float(done.group(2)) * scale,
        int(failed.group(1)),
        f"socket errors: {socket_errors.group(1)}" if socket_errors else "see the server log",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(parser, rows=str(QUICK_ROWS))
    parser.add_argument("--requests", type=int, default=5000, help="requests per endpoint per run (default 5000)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent keep-alive connections (default 8)")
    parser.add_argument(
        "--procs",
        type=int,
        default=1,
        help="load-generating processes or wrk threads (default 1: the server gets the other core)",
    )
    parser.add_argument(
        "--client",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator: wrk if installed (auto), or bench/_load.py",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=10.0,
        help="with wrk: seconds per endpoint per run, instead of --requests (default 10)",
    )
    args = parser.parse_args()
    rows = QUICK_ROWS if args.quick else parse_rows(args.rows)[0]
    runs = 1 if args.quick else max(1, args.runs)
    requests = 300 if args.quick else args.requests
    duration = 2.0 if args.quick else args.duration
    tool = args.client
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "python"
    elif tool == "wrk" and not shutil.which("wrk"):
        raise BenchError("--client wrk: wrk is not installed")

    size = f"{duration:.0f} s" if tool == "wrk" else f"{requests:,} requests"
    print_header(
        "status_throughput",
        f"{args.backend}, {size} x {args.clients} connections per endpoint, {runs} run(s), load by {tool}",
    )
    dataset = prepare_dataset(args.backend, rows)
    payload: dict[str, Any] = {}
    run_id = completed_run(dataset)
    with in_process_server(dataset, payload) as base_url, api_client(base_url, dataset) as client:
        status = client.run_status(dataset.report_id, run_id)
        if status["status"] != "Completed":
            print(
                f"   WARNING: run {run_id} was Completed in the setup server, but this server reads it as "
                f"{status['status']} ({status['state']}): the database lost a committed update. Measuring "
                "with it anyway.",
                flush=True,
            )
        payload["data"] = {"getReportRunStatus": status}  # the bare route answers a same-sized object
        request = export_request("csv", dataset.report_id, process_report_arguments(client))
        assert request is not None  # completed_run() made one
        running_id = str(client.graphql(request.query, request.variables, "processReport")["processReport"]["runId"])
        try:
            running = client.run_status(dataset.report_id, running_id)
            if running["status"] != "Running":
                raise BenchError(f"the run queued for the Running poll is {running['status']}, not Running")
            measured = measure(
                client,
                base_url,
                dataset,
                {"completed": run_id, "running": running_id},
                args,
                tool=tool,
                requests=requests,
                duration=duration,
                runs=runs,
            )
        finally:
            fail_runs(dataset, "id = %s", [running_id], "queued only to be polled by status_throughput")

    bare_rps = median(measured["bare"])
    table = [[f"bare Starlette JSON route ({BARE_PATH})", f"{bare_rps:,.0f}", "1.00x", ""]]
    ratios = {}
    for name, label in (("completed", "Completed run"), ("running", "Running run")):
        rps = median(measured[name])
        ratios[name] = rps / bare_rps
        table.append(
            [
                f"getReportRunStatus, {label} ({STATUS_PATH})",
                f"{rps:,.0f}",
                ratio(rps, bare_rps),
                f">= {TARGET_RATIO}x: {verdict(ratios[name] >= TARGET_RATIO)}",
            ]
        )
    print_table(
        f"Requests per second, {args.clients} keep-alive connections, {size} per endpoint per run "
        f"(medians of {runs} run(s))",
        ["endpoint", "req/s", "vs bare", "target"],
        table,
    )
    print(
        f"\ngetReportRunStatus at {ratios['completed']:.2f}x (Completed run) and {ratios['running']:.2f}x "
        f"(Running run) the bare endpoint (target >= {TARGET_RATIO}x): "
        f"{verdict(min(ratios.values()) >= TARGET_RATIO)}"
    )


def measure(
    client: ApiClient,
    base_url: str,
    dataset: Dataset,
    run_ids: dict[str, str],
    args: argparse.Namespace,
    *,
    tool: str,
    requests: int,
    duration: float,
    runs: int,
) -> dict[str, list[float]]:
    """Requests per second of the bare route and of a poll of each run, per measured repetition."""
    port = int(base_url.rsplit(":", 1)[1])
    loads = {"bare": (BARE_PATH, *_poll(client, dataset, run_ids["completed"]))}
    loads.update({name: (STATUS_PATH, *_poll(client, dataset, run_id)) for name, run_id in run_ids.items()})

    def load(name: str, count: int) -> LoadResult:
        path, body, headers = loads[name]
        if tool == "wrk":
            seconds = duration if count == requests else max(1.0, duration / 5)
            result = drive_wrk(
                port,
                path,
                body,
                headers,
                duration=seconds,
                connections=args.clients,
                threads=args.procs,
                work_dir=dataset.root,
            )
        else:
            result = drive_python(
                port,
                raw_request(port, path, body, headers),
                requests=count,
                connections=args.clients,
                procs=args.procs,
                work_dir=dataset.root,
            )
        if result.errors:
            raise BenchError(f"{name}: {result.errors} failed responses, e.g. {result.first_error}")
        return result

    names = list(loads)
    for name in names:  # warm-up: connections, caches, the thread pool
        load(name, max(50, requests // 10))
    measured: dict[str, list[float]] = {name: [] for name in names}
    for number in range(1, runs + 1):
        turn = (number - 1) % len(names)
        for name in names[turn:] + names[:turn]:
            measured[name].append(load(name, requests).per_second)
        print(
            f"   run {number}/{runs}: " + ", ".join(f"{name} {measured[name][-1]:,.0f} req/s" for name in names),
            flush=True,
        )
    return measured


def _poll(client: ApiClient, dataset: Dataset, run_id: str) -> tuple[bytes, dict[str, str]]:
    """The body and headers of the spec's getReportRunStatus call for ``run_id``."""
    return client.graphql_request(
        GET_REPORT_RUN_STATUS, {"reportId": dataset.report_id, "runId": run_id}, "getReportRunStatus"
    )


def completed_run(dataset: Dataset) -> str:
    """A Completed run of the report, made beforehand by a separate ``serve`` process, so the polled
    status is a finished run's (with its fresh download link) and this process runs no export."""
    with (
        running_server(dataset, log_name="status_throughput-setup") as server,
        api_client(server.base_url, dataset) as client,
    ):
        request = export_request("csv", dataset.report_id, process_report_arguments(client))
        if request is None:
            raise BenchError("this server offers no CSV export through processReport")
        timing = run_report(client, dataset.report_id, request, timeout=300)
        warn_failed_polls([timing], "bench/.data/logs/status_throughput-setup.log")
        remove_results(dataset, timing.run_id)
        require_completed(timing, rows=dataset.rows)
        return timing.run_id


if __name__ == "__main__":
    run_main(main)
