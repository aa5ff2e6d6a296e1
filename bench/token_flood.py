"""A flood of junk client ids on ``POST /oauth2/token``, and what it does to everyone else.

For each checkout (``--code label=path,...``; the server runs that checkout's ``src/`` with this
environment's packages) and setting, a fresh embedded default (SQLite, a temporary data folder,
2,000 findings) is set up with that checkout's CLI; ``serve`` starts, one download run is
completed, and then, for ``--seconds``:

* ``--flooders`` keep-alive connections (threads of 4 processes) send token requests with a
  new junk client id each, as fast as the server answers, all from 127.0.0.1;
* one victim connection alternately downloads the run's file (a ``FileResponse``: it needs a
  thread of the shared pool) and polls its status, and records each latency.

Reported: the victim's latencies (p50, p99, max) without and with the flood, the flood's
answers by status, and how many of them cost an Argon2 verification (the 401s). Settings:
``defaults``, and ``pool only`` (the limits per address and client id off, so only the bounded
hashing pool stands between the flood and the server). A checkout without rate limits
ignores the settings.

    .venv/bin/python bench/token_flood.py --code before=/tmp/before,after=. [--seconds 10] [--flooders 64]
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import multiprocessing
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

from _harness import (
    ALL_FINDINGS_REPORT,
    CLI,
    GET_REPORT_RUN_STATUS,
    HOST,
    PROCESS_REPORT,
    REPO_ROOT,
    BenchError,
    code_commit,
    free_port,
    parse_code,
    percentile,
    print_header,
    print_table,
    product_env,
    run_cli,
    run_main,
    started_process,
)

SETTINGS = {
    "defaults": {
        "UVM_REPORTING_TOKEN_REQUESTS_PER_MINUTE_PER_CLIENT": "30",
        "UVM_REPORTING_TOKEN_REQUESTS_PER_MINUTE_PER_IP": "120",
    },
    "pool only": {},  # product_env turns the limits off
}
FINDINGS = 2_000
FLOOD_PROCESSES = 4


class Deployment:
    def __init__(self, code: Path, data_dir: Path, extra: dict[str, str]) -> None:
        self.env = product_env(
            data_dir, f"sqlite:///{data_dir / 'uvm-reporting.sqlite3'}", PYTHONPATH=str(code / "src"), **extra
        )
        self.account_id = str(run_cli(self.env, "accounts", "create", "--name", "Flood")["id"])
        run_cli(self.env, "data", "generate", "--account", self.account_id, "--findings", str(FINDINGS))
        created = run_cli(
            self.env, "reports", "create", "--account", self.account_id, "--file", str(ALL_FINDINGS_REPORT)
        )
        self.report_id = str(created["id"])
        client = run_cli(self.env, "clients", "create", "--account", self.account_id, "--name", "bench")
        self.client_id, self.client_secret = str(client["client_id"]), str(client["client_secret"])


def request(
    connection: http.client.HTTPConnection, method: str, path: str, body: bytes | None, headers: dict[str, str]
) -> tuple[int, bytes]:
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    return response.status, response.read()


def token_body(client_id: str, client_secret: str) -> bytes:
    return urllib.parse.urlencode(
        {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
    ).encode()


FORM = {"content-type": "application/x-www-form-urlencoded"}


def completed_download(port: int, deployment: Deployment) -> tuple[dict[str, str], str, str]:
    """Headers of the account's calls, a completed run's id and its download path."""
    connection = http.client.HTTPConnection(HOST, port, timeout=60)
    status, payload = request(
        connection, "POST", "/oauth2/token", token_body(deployment.client_id, deployment.client_secret), FORM
    )
    if status != 200:
        raise BenchError(f"token: {status} {payload[:200]!r}")
    headers = {
        "content-type": "application/json",
        "accountId": deployment.account_id,
        "authorization": f"Bearer {json.loads(payload)['access_token']}",
    }
    body = json.dumps({"query": PROCESS_REPORT, "variables": {"id": deployment.report_id}}).encode()
    _, payload = request(connection, "POST", "/api/graphql", body, headers)
    run_id = json.loads(payload)["data"]["processReport"]["runId"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        answer = json.loads(request(connection, "POST", "/api/graphql", status_body(deployment, run_id), headers)[1])
        run = answer["data"]["getReportRunStatus"]
        if run["status"] != "Running":
            if run["status"] != "Completed":
                raise BenchError(f"the run ended {run}")
            link = urllib.parse.urlsplit(run["presignedUrl"])
            return headers, run_id, f"{link.path}?{link.query}"
        time.sleep(0.05)
    raise BenchError("the run did not complete within 120 s")


def status_body(deployment: Deployment, run_id: str) -> bytes:
    return json.dumps(
        {"query": GET_REPORT_RUN_STATUS, "variables": {"reportId": deployment.report_id, "runId": run_id}}
    ).encode()


def victim(
    port: int, deployment: Deployment, headers: dict[str, str], run_id: str, download: str, *, seconds: float
) -> list[float]:
    connection = http.client.HTTPConnection(HOST, port, timeout=120)
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    poll = status_body(deployment, run_id)
    while time.monotonic() < deadline:
        started = time.perf_counter()
        status, _ = request(connection, "GET", download, None, {})
        latencies.append(time.perf_counter() - started)
        if status != 200:
            raise BenchError(f"download answered {status}")
        started = time.perf_counter()
        status, _ = request(connection, "POST", "/api/graphql", poll, headers)
        latencies.append(time.perf_counter() - started)
        if status != 200:
            raise BenchError(f"status poll answered {status}")
    return latencies


def flooder(port: int, stop: threading.Event, answers: collections.Counter[int], lock: threading.Lock) -> None:
    connection = http.client.HTTPConnection(HOST, port, timeout=120)
    counted: collections.Counter[int] = collections.Counter()
    n = 0
    while not stop.is_set():
        n += 1
        try:
            status, _ = request(
                connection, "POST", "/oauth2/token", token_body(f"uvmc_junk{threading.get_ident()}x{n}", "x"), FORM
            )
        except (http.client.HTTPException, ConnectionError):
            connection.close()
            connection = http.client.HTTPConnection(HOST, port, timeout=120)
            status = -1
        counted[status] += 1
    with lock:
        answers.update(counted)


def flood_process(port: int, connections: int, seconds: float, results: Any) -> None:
    """``connections`` flooding threads for ``seconds``, in a process of their own (so that the
    victim, in the benchmark's process, does not wait for their GIL); puts its answer counts."""
    stop, lock = threading.Event(), threading.Lock()
    answers: collections.Counter[int] = collections.Counter()
    threads = [
        threading.Thread(target=flooder, args=(port, stop, answers, lock), daemon=True) for _ in range(connections)
    ]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(130)
    results.put(dict(answers))


def measure(code: Path, extra: dict[str, str], seconds: float, flooders: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="uvm-token-flood-") as folder:
        deployment = Deployment(code, Path(folder), extra)
        port = free_port()
        args = [CLI, "serve", "--host", HOST, "--port", str(port)]
        with started_process(args, deployment.env, "token-flood-server"):
            deadline = time.monotonic() + 60
            while True:
                try:
                    http.client.HTTPConnection(HOST, port, timeout=2).request("GET", "/healthz")
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise BenchError("the server did not come up") from None
                    time.sleep(0.1)
            headers, run_id, download = completed_download(port, deployment)
            quiet = victim(port, deployment, headers, run_id, download, seconds=min(seconds, 3.0))
            context = multiprocessing.get_context("spawn")
            results = context.Queue()
            processes = [
                context.Process(target=flood_process, args=(port, flooders // FLOOD_PROCESSES, seconds + 1, results))
                for _ in range(FLOOD_PROCESSES)
            ]
            for process in processes:
                process.start()
            time.sleep(1.0)  # the flood is under way
            flooded = victim(port, deployment, headers, run_id, download, seconds=seconds)
            answers: collections.Counter[int] = collections.Counter()
            for _ in processes:
                answers.update(results.get(timeout=300))
            for process in processes:
                process.join(30)
    return {"quiet": quiet, "flooded": flooded, "answers": answers}


def ms(values: list[float], pct: float) -> str:
    return f"{percentile(values, pct) * 1000:,.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", default=f"this={REPO_ROOT}", help="label=path,... checkouts to compare")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of flood per measurement (default 10)")
    parser.add_argument("--flooders", type=int, default=64, help="flooding connections (default 64)")
    parser.add_argument("--quick", action="store_true", help="smoke check: 2 s, 8 flooding connections")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.flooders = 2.0, 8
    codes = parse_code(args.code)
    print_header("token_flood", f"{args.flooders} flooding connections for {args.seconds:g} s, one victim")
    for label, folder in codes.items():
        print(f"   {label}: {code_commit(folder)}", flush=True)
    rows = []
    for label, folder in codes.items():
        for setting, extra in SETTINGS.items():
            result = measure(folder, extra, args.seconds, args.flooders)
            quiet, flooded, answers = result["quiet"], result["flooded"], result["answers"]
            total = sum(answers.values())
            rows.append(
                [
                    label,
                    setting,
                    f"{ms(quiet, 50)} / {ms(quiet, 99)}",
                    f"{ms(flooded, 50)} / {ms(flooded, 99)} / {max(flooded) * 1000:,.0f}",
                    f"{len(flooded):,}",
                    f"{total:,}",
                    ", ".join(f"{status}: {count:,}" for status, count in sorted(answers.items())),
                ]
            )
            print(f"   {label}, {setting}: done", flush=True)
    print_table(
        "Victim (download + status poll, alternating) latency in ms; flood answers by HTTP status (401 = one hash)",
        [
            "checkout",
            "setting",
            "quiet p50 / p99",
            "flooded p50 / p99 / max",
            "victim calls",
            "flood calls",
            "flood answers",
        ],
        rows,
    )


if __name__ == "__main__":
    run_main(main)
