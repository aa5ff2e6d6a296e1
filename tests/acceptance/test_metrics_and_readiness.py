"""Observability against the real server and worker processes: /metrics during and after real
exports, a worker's and a scheduler's --metrics-port, JSON log lines that carry the request and
run ids, and /readyz against a storage folder that is gone and a database that is dropped."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest
from sqlalchemy import Engine, func, select, text

from tests.support.cli import cli_process, running_server
from tests.support.ports import free_port
from tests.support.postgres import admin_engine
from tests.support.prometheus import Samples, label_values, parse_samples, scrape, value
from tests.support.tenants import Caller, create_tenant, wait_until_runs_finished
from tests.support.waiting import wait_for
from uvm_reporting.database.runs import enqueue_run, get_run
from uvm_reporting.database.tables import runs
from uvm_reporting.domain.runs import Delivery, RunRecord

PROCESS_REPORT = "mutation ($id: String!) {processReport(id:$id, isPresignedUrl: true)}"
STATUS = "query ($runId: String) { getReportRunStatus(runId: $runId) }"


def exported_totals(engine: Engine) -> tuple[int, int]:
    """(rows, bytes) of every completed run, as the runs table holds them."""
    with engine.connect() as connection:
        rows, size = connection.execute(
            select(func.sum(runs.c.row_count), func.sum(runs.c.size_bytes)).where(runs.c.state == "completed")
        ).one()
    return int(rows), int(size)


def finished_status(caller: Caller, run_id: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        answer = caller.graphql(STATUS, {"runId": run_id})
        status: dict[str, Any] = answer.json()["data"]["getReportRunStatus"]
        return status if status["status"] != "Running" else None

    result: dict[str, Any] = wait_for(finished, timeout=60, what=f"run {run_id} to finish")
    return result


def json_records(log_path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a log; every line but the server's banner must be one."""
    records = []
    for line in log_path.read_text().splitlines():
        if line.startswith("uvm-reporting: profile"):
            continue  # printed for the operator, not a log record
        record = json.loads(line)
        assert isinstance(record, dict), line
        records.append(record)
    return records


def test_metrics_and_json_logs_of_real_exports(tmp_path: Path, engine: Engine, database_url: str) -> None:
    tenant = create_tenant(engine, "Acme", seed=1)  # two runs queued, which the server's workers run
    data_dir = tmp_path / "var"
    with running_server(data_dir, UVM_REPORTING_DATABASE_URL=database_url, UVM_REPORTING_LOG_FORMAT="json") as (
        base_url,
        _,
    ):
        wait_until_runs_finished(engine, tenant)
        caller = Caller(base_url, tenant)  # one token
        try:
            started = caller.graphql(PROCESS_REPORT, {"id": tenant.public_report.id})
            request_id = started.headers["x-request-id"]
            run_id = started.json()["data"]["processReport"]["runId"]
            status = finished_status(caller, run_id)
            assert status["status"] == "Completed", status
            assert caller.http.get(status["presignedUrl"]).status_code == 200
            assert caller.http.get("/downloads/no-such-run").status_code in (403, 404)
            assert caller.http.get("/no/such/route/12345").status_code == 404
        finally:
            caller.close()
        rows, size = exported_totals(engine)

        def all_counted() -> Samples | None:
            samples = scrape(f"{base_url}/metrics")
            counted = value(samples, "uvm_reporting_run_duration_seconds_count", outcome="completed")
            return samples if counted == 3 else None

        metrics = wait_for(all_counted, timeout=10, what="the three runs in the worker's metrics")
    port = urlsplit(base_url).port

    # Runs by state and error code, and the queue: read from the database.
    assert value(metrics, "uvm_reporting_runs", state="completed", error_code="") == 3
    assert value(metrics, "uvm_reporting_queue_depth") == 0
    assert value(metrics, "uvm_reporting_queue_oldest_age_seconds") == 0
    assert value(metrics, "uvm_reporting_database_up") == 1
    # Counted by the in-process workers and the token endpoint.
    assert value(metrics, "uvm_reporting_runs_finished_total", outcome="completed", error_code="") == 3
    assert value(metrics, "uvm_reporting_exported_rows_total") == rows == 18  # 6 findings, three runs
    assert value(metrics, "uvm_reporting_exported_bytes_total") == size
    assert value(metrics, "uvm_reporting_tokens_issued_total") == 1
    # HTTP requests by route template and status, never by raw path.
    requests = "uvm_reporting_http_requests_total"
    assert value(metrics, requests, method="POST", route="/oauth2/token", status="200") == 1
    graphql_calls = value(metrics, requests, method="POST", route="/api/graphql", status="200")
    assert graphql_calls is not None
    assert graphql_calls >= 2
    assert value(metrics, requests, method="GET", route="/downloads/{run_id}", status="200") == 1
    assert value(metrics, requests, method="GET", route="unmatched", status="404") == 1
    routes = label_values(metrics, requests, "route")
    assert not any(run_id in route or "12345" in route for route in routes), routes
    latency = "uvm_reporting_http_request_duration_seconds_count"
    assert value(metrics, latency, method="POST", route="/api/graphql") == graphql_calls
    bucket = "uvm_reporting_http_request_duration_seconds_bucket"
    assert value(metrics, bucket, method="POST", route="/api/graphql", le="+Inf") == graphql_calls

    records = json_records(data_dir.parent / f"server-{port}.log")
    assert {"time", "level", "logger", "message", "request_id", "run_id"} <= set(records[0])
    of_request = [r for r in records if r["request_id"] == request_id]
    assert any(r["logger"] == "uvm_reporting.access" and "/api/graphql" in r["message"] for r in of_request), records
    of_run = [r for r in records if r["run_id"] == run_id]
    assert any(f"run {run_id} completed" in r["message"] for r in of_run), records
    assert all(r["request_id"] == "-" for r in of_run), "a worker's records name no request"


def worker_and_scheduler(
    tmp_path: Path, database_url: str, *, worker_port: int, scheduler_port: int, gate: Path
) -> tuple[AbstractContextManager[Any], AbstractContextManager[Any]]:
    """A worker of one thread that holds its first run at the ``write`` fault point until ``gate``
    is released, and a scheduler; each with its metrics port."""
    data_dir = tmp_path / "var"
    env = {"UVM_REPORTING_DATABASE_URL": database_url}
    worker = cli_process(
        data_dir,
        tmp_path / "worker.log",
        "worker",
        "--concurrency",
        "1",
        "--metrics-port",
        str(worker_port),
        env={**env, "UVM_REPORTING_FAULT_POINTS": f"write=pause:{gate}"},
    )
    scheduler = cli_process(
        data_dir, tmp_path / "scheduler.log", "scheduler", "--metrics-port", str(scheduler_port), env=env
    )
    return worker, scheduler


def scrape_when_up(url: str) -> Samples:
    def answered() -> Samples | None:
        try:
            return scrape(url)
        except httpx2.TransportError:
            return None

    result: Samples = wait_for(answered, timeout=30, what=f"{url} to answer")
    return result


def test_queue_figures_and_the_metrics_ports_of_workers_and_schedulers(
    tmp_path: Path, engine: Engine, database_url: str
) -> None:
    """An API-only server shows the queue while no worker runs, and a started run during an
    export; a worker then runs the runs and shows its figures on --metrics-port; a scheduler
    shows the deployment's on its own."""
    tenant = create_tenant(engine, "Acme", seed=1)
    # A third run whose definition names no entity of the catalog: it fails with an error code.
    broken = enqueue_run(
        engine,
        account_id=tenant.account_id,
        report_id=tenant.public_report.id,
        delivery=Delivery.DOWNLOAD,
        format="csv",
        definition={**tenant.public_report.definition.to_json(), "entity": "no_such_entity"},
        requested_by=None,
    )
    data_dir = tmp_path / "var"
    with running_server(data_dir, "serve", "--no-workers", UVM_REPORTING_DATABASE_URL=database_url) as (base_url, _):
        queued = scrape(f"{base_url}/metrics")
        assert value(queued, "uvm_reporting_queue_depth") == 3
        assert value(queued, "uvm_reporting_runs", state="queued", error_code="") == 3
        oldest_age = value(queued, "uvm_reporting_queue_oldest_age_seconds")
        assert oldest_age is not None
        assert 0 < oldest_age < 120
        assert value(queued, "uvm_reporting_run_duration_seconds_count", outcome="completed") is None

        worker_port, scheduler_port = free_port(), free_port()
        gate = tmp_path / "gate"
        worker, scheduler = worker_and_scheduler(
            tmp_path, database_url, worker_port=worker_port, scheduler_port=scheduler_port, gate=gate
        )
        with worker, scheduler:
            # During an export: one run started (held before its first row), two queued.
            wait_for(gate.with_name("gate.reached").exists, timeout=60, what="the worker to start its first run")
            during = scrape(f"{base_url}/metrics")
            assert value(during, "uvm_reporting_runs", state="started", error_code="") == 1
            assert value(during, "uvm_reporting_queue_depth") == 2
            of_worker_during = scrape_when_up(f"http://127.0.0.1:{worker_port}/metrics")
            assert value(of_worker_during, "uvm_reporting_run_duration_seconds_count", outcome="completed") is None
            gate.with_name("gate.release").touch()
            wait_until_runs_finished(engine, tenant)
            failed = wait_for(lambda: final(engine, tenant.account_id, broken.id), timeout=60, what="the broken run")
            assert failed.error_code == "INVALID_DEFINITION", failed
            rows, size = exported_totals(engine)

            def both_counted() -> Samples | None:
                samples = scrape_when_up(f"http://127.0.0.1:{worker_port}/metrics")
                completed = value(samples, "uvm_reporting_run_duration_seconds_count", outcome="completed")
                failed = value(samples, "uvm_reporting_run_duration_seconds_count", outcome="failed")
                return samples if (completed, failed) == (2, 1) else None

            of_worker = wait_for(both_counted, timeout=10, what="the worker to count its two runs")
            of_scheduler = scrape_when_up(f"http://127.0.0.1:{scheduler_port}/metrics")
        after = scrape(f"{base_url}/metrics")

    assert value(of_worker, "uvm_reporting_exported_rows_total") == rows == 12
    assert value(of_worker, "uvm_reporting_exported_bytes_total") == size
    assert value(of_worker, "uvm_reporting_runs_finished_total", outcome="completed", error_code="") == 2
    assert value(of_worker, "uvm_reporting_runs_finished_total", outcome="failed", error_code=failed.error_code) == 1
    assert value(of_worker, "uvm_reporting_queue_depth") is None, "a worker shows its own figures only"
    assert value(of_scheduler, "uvm_reporting_queue_depth") == 0
    assert value(of_scheduler, "uvm_reporting_runs", state="completed", error_code="") == 2
    assert value(of_scheduler, "uvm_reporting_runs", state="failed", error_code="INVALID_DEFINITION") == 1
    assert value(after, "uvm_reporting_runs", state="failed", error_code="INVALID_DEFINITION") == 1
    assert value(after, "uvm_reporting_queue_depth") == 0
    assert value(after, "uvm_reporting_queue_oldest_age_seconds") == 0
    assert value(after, "uvm_reporting_runs", state="completed", error_code="") == 2
    assert value(after, "uvm_reporting_exported_rows_total") == 0, "the API-only process ran nothing"


def final(engine: Engine, account_id: str, run_id: str) -> RunRecord | None:
    run = get_run(engine, account_id, run_id)
    return run if run.state.is_final else None


def readiness(base_url: str) -> httpx2.Response:
    return httpx2.get(f"{base_url}/readyz", timeout=10)


@pytest.mark.backends("sqlite")
def test_readyz_fails_while_the_storage_folder_is_gone_and_healthz_does_not(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    with running_server(data_dir) as (base_url, _):
        ready = readiness(base_url)
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ready", "checks": {"database": "ok", "storage": "ok"}}

        # The volume is gone and something else sits at its path (a mode bit would not do: the
        # tests may run as root, whom no mode stops).
        storage = data_dir / "storage"
        storage.rename(tmp_path / "storage-away")
        storage.write_text("not a folder")
        refused = readiness(base_url)
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "5"
        assert refused.json()["status"] == "not ready"
        assert refused.json()["checks"]["database"] == "ok"
        assert refused.json()["checks"]["storage"].startswith("failed: ")
        assert httpx2.get(f"{base_url}/healthz", timeout=10).status_code == 200

        storage.unlink()
        (tmp_path / "storage-away").rename(storage)
        assert readiness(base_url).status_code == 200


@contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (skips the test where mounting is not allowed)."""
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


@pytest.mark.backends("sqlite")
def test_readyz_fails_while_the_storage_disk_is_full(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    with small_tmpfs(tmp_path / "disk", "256k") as disk:
        storage = disk / "storage"
        with running_server(data_dir, UVM_REPORTING_STORAGE_URL=str(storage)) as (base_url, _):
            assert readiness(base_url).status_code == 200
            filler = disk / "filler"
            with filler.open("wb", buffering=0) as out, contextlib.suppress(OSError):
                while True:
                    out.write(b"x" * 4096)  # until ENOSPC
            refused = readiness(base_url)
            assert refused.status_code == 503, refused.text
            assert refused.json()["checks"]["storage"] == "failed: OSError"
            filler.unlink()
            assert readiness(base_url).status_code == 200


@pytest.mark.backends("postgresql")
def test_readyz_fails_once_the_database_is_dropped_and_healthz_does_not(
    tmp_path: Path, engine: Engine, database_url: str
) -> None:
    data_dir = tmp_path / "var"
    with running_server(data_dir, "serve", "--no-workers", UVM_REPORTING_DATABASE_URL=database_url) as (base_url, _):
        assert readiness(base_url).status_code == 200
        engine.dispose()
        name = database_url.rsplit("/", 1)[1]
        admin = admin_engine()
        try:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        finally:
            admin.dispose()
        started = time.monotonic()
        refused = readiness(base_url)
        took = time.monotonic() - started
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "5"
        assert refused.json()["checks"]["database"].startswith("failed: ")
        assert refused.json()["checks"]["storage"] == "ok"
        assert took < 3, f"/readyz took {took:.1f}s"
        assert httpx2.get(f"{base_url}/healthz", timeout=10).status_code == 200
        down = parse_samples(httpx2.get(f"{base_url}/metrics", timeout=10).text)
        assert value(down, "uvm_reporting_database_up") == 0, "a scrape without the database still answers"


@pytest.mark.backends("sqlite")
def test_readyz_leaves_no_probe_file_in_the_storage_folder(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    with running_server(data_dir) as (base_url, _):
        for _ in range(3):
            assert readiness(base_url).status_code == 200
    leftovers = [path.name for path in (data_dir / "storage").iterdir()]
    assert leftovers == [], leftovers
