"""A worker process and SIGTERM: within the grace period it finishes its export, after it it hands the
run back to the queue; and an idle worker starts a run queued by another process without waiting for
its poll (LISTEN/NOTIFY on PostgreSQL). Runs on SQLite and on PostgreSQL.

The export is held at the ``write`` fault point (uvm_reporting.fault_points) while the test stops the
worker, so it is surely under way when the grace period starts, and, with a short grace period,
when it ends: no guess at how long an export of so many rows takes on a loaded machine."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.support.cli import cli_process, running_server, stop_process, wait_for_log
from tests.support.reports import ALL_FINDINGS_REPORT
from tests.support.runs import enqueue_download
from tests.support.seed_commands import PROCESS_REPORT, bash_json, fill, get_token, poll_until_finished
from tests.support.waiting import wait_for
from uvm_reporting.auth.api_client_credentials import create_client
from uvm_reporting.database.accounts import create_account
from uvm_reporting.database.engine import open_database
from uvm_reporting.database.reports import Report, create_report
from uvm_reporting.database.runs import get_run
from uvm_reporting.domain.runs import RunRecord, RunState
from uvm_reporting.platform_data.generator import generate_platform_data

FINDINGS = 2_000
SHORT_GRACE = "0.2"
READY = r"worker \S+ running \d+ thread\(s\)"


def dialect_of(database_url: str) -> str:
    return "postgresql" if database_url.startswith("postgresql") else "sqlite"


def held_at_write(gate: Path) -> dict[str, str]:
    """Worker settings that hold its export at the ``write`` fault point until ``release(gate)``;
    the export runs in an export process, as a large one does."""
    return {"UVM_REPORTING_FAULT_POINTS": f"write=pause:{gate}", "UVM_REPORTING_EXPORT_PROCESS_MIN_ROWS": "0"}


def held(gate: Path) -> bool:
    return gate.with_name(gate.name + ".reached").exists()


def release(gate: Path) -> None:
    gate.with_name(gate.name + ".release").touch()


def set_up(database_url: str, findings: int) -> tuple[Engine, Report]:
    engine = open_database(database_url)
    account = create_account(engine, "Acme Corp")
    generate_platform_data(engine, account.id, findings=findings, seed=11)
    return engine, create_report(engine, account.id, ALL_FINDINGS_REPORT)


def enqueue(engine: Engine, report: Report) -> RunRecord:
    return enqueue_download(engine, report)


def partial_files(folder: Path) -> list[Path]:
    return list(folder.glob(".*.partial")) if folder.exists() else []


def worker_env(database_url: str) -> dict[str, str]:
    return {"UVM_REPORTING_DATABASE_URL": database_url}


def test_a_worker_finishes_its_export_within_the_grace_period(tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "var"
    engine, report = set_up(database_url, FINDINGS)
    folder = data_dir / "storage" / "results" / report.account_id
    log, gate = tmp_path / "worker.log", tmp_path / "write-gate"
    try:
        run = enqueue(engine, report)
        with cli_process(
            data_dir,
            log,
            "worker",
            "--concurrency",
            "1",
            "--grace",
            "60",
            env={**worker_env(database_url), **held_at_write(gate)},
        ) as worker:
            wait_for(lambda: held(gate) and partial_files(folder), timeout=60, what="the export to be under way")
            worker.terminate()
            wait_for_log(log, r"stopping: no new claims; 1 run\(s\) in progress get 60.0s", process=worker)
            release(gate)  # the export goes on, inside the grace period
            code = worker.wait(timeout=90)
        finished = get_run(engine, report.account_id, run.id)
    finally:
        engine.dispose()
    assert code == 0, log.read_text()
    assert finished.state is RunState.COMPLETED, finished
    assert finished.attempts == 1
    assert finished.row_count == FINDINGS
    assert sorted(p.name for p in folder.iterdir()) == [f"{run.id}.csv"]
    assert (folder / f"{run.id}.csv").stat().st_size == finished.size_bytes
    assert "released unfinished" not in log.read_text()
    assert "worker stopped" in log.read_text()


# A fault test that waits out a grace period and a lease: in the slow step of CI.
@pytest.mark.slow
def test_after_the_grace_period_the_run_goes_back_to_the_queue_for_another_worker(
    tmp_path: Path, database_url: str
) -> None:
    data_dir = tmp_path / "var"
    engine, report = set_up(database_url, FINDINGS)
    folder = data_dir / "storage" / "results" / report.account_id
    first_log, second_log = tmp_path / "first-worker.log", tmp_path / "second-worker.log"
    gate = tmp_path / "write-gate"  # never released: the export is still under way when the grace period ends
    try:
        run = enqueue(engine, report)
        with cli_process(
            data_dir,
            first_log,
            "worker",
            "--concurrency",
            "1",
            "--grace",
            SHORT_GRACE,
            env={**worker_env(database_url), **held_at_write(gate)},
        ) as first:
            wait_for(lambda: held(gate) and partial_files(folder), timeout=60, what="the export to be under way")
            code, took = stop_process(first, timeout=15)
        handed_back = get_run(engine, report.account_id, run.id)
        with cli_process(data_dir, second_log, "worker", "--concurrency", "1", env=worker_env(database_url)):
            finished = wait_for(
                lambda: (r := get_run(engine, report.account_id, run.id)).state.is_final and r,
                timeout=90,
                what="the second worker to finish the run",
            )
    finally:
        engine.dispose()
    assert code == 0, first_log.read_text()
    assert took < 10, f"the worker took {took:.1f}s to stop with --grace {SHORT_GRACE}"
    assert f"run {run.id} released unfinished" in first_log.read_text()
    assert handed_back.state is RunState.QUEUED, handed_back
    assert handed_back.attempts == 0
    assert handed_back.worker_id is None
    assert handed_back.lease_expires_at is None
    assert finished.state is RunState.COMPLETED, finished
    assert finished.attempts == 1
    assert finished.row_count == FINDINGS
    assert f"run {run.id} of report {report.id} started (attempt 1)" in second_log.read_text()
    assert sorted(p.name for p in folder.iterdir()) == [f"{run.id}.csv"]  # no .partial left behind
    assert (folder / f"{run.id}.csv").stat().st_size == finished.size_bytes


def test_an_idle_worker_starts_a_run_queued_through_the_api_at_once(tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "var"
    env = {**worker_env(database_url), "UVM_REPORTING_SCHEDULER_IN_SERVE": "false"}
    engine = open_database(database_url)
    try:
        account = create_account(engine, "Acme Corp")
        generate_platform_data(engine, account.id, findings=20, seed=2)
        report = create_report(engine, account.id, ALL_FINDINGS_REPORT)
        client = create_client(engine, account.id)
    finally:
        engine.dispose()
    ids = {
        "Account ID": account.id,
        "Report ID": report.id,
        "client ID": client.client_id,
        "client secret": client.client_secret,
    }
    log = tmp_path / "worker.log"
    latencies: list[float] = []
    statuses: list[dict[str, Any]] = []
    with (
        cli_process(data_dir, log, "worker", "--concurrency", "1", env=env) as worker,
        running_server(data_dir, "serve", "--no-workers", port=None, **env) as (base_url, _),
    ):
        wait_for_log(log, READY, process=worker)
        token = get_token(base_url, ids)
        command = fill(
            PROCESS_REPORT,
            {
                "URL": f"{base_url}/api/graphql",
                "Account ID": ids["Account ID"],
                "Bearer Token": token,
                "Report ID": ids["Report ID"],
            },
        )
        # Each run is queued as soon as the previous one is seen Completed: a fraction of a second
        # after the worker's poll timer (1 s) restarted, so polling alone would start it no sooner
        # than about 0.7 s later.
        for _ in range(5):
            run_id = bash_json(command)["data"]["processReport"]["runId"]
            status = poll_until_finished(base_url, ids, token, run_id)
            statuses.append(status)
            latencies.append(
                (
                    datetime.fromisoformat(status["startedAt"]) - datetime.fromisoformat(status["createdAt"])
                ).total_seconds()
            )
        code, _ = stop_process(worker, timeout=30)
    print(
        f"{dialect_of(database_url)}: startedAt - createdAt of 5 runs: "
        + ", ".join(f"{latency:.3f}s" for latency in latencies)
    )
    assert code == 0, log.read_text()
    assert [s["status"] for s in statuses] == ["Completed"] * 5, statuses
    assert all(s["rowCount"] == 20 for s in statuses)
    if dialect_of(database_url) == "postgresql":
        # NOTIFY wakes the worker at once (a few milliseconds here), never waiting for its poll.
        assert max(latencies) < 0.25, latencies
    else:
        # SQLite has no cross-process wake-up: the worker's poll (every second) finds the run.
        assert max(latencies) < 10, latencies
