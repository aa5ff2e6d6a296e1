"""Faults a run must survive without leaving anything behind: a run given up after its workers
were killed mid-write keeps no partial file, and a full storage folder fails the run with a clear
reason while the server keeps serving. Runs on SQLite and on PostgreSQL.

A worker's death is a SIGKILL at a fault point (uvm_reporting.fault_points); its lease running
out is the lease's expiry moved into the past, as the clock would after ``run_lease_seconds``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, update

from tests.support.cli import cli_process, running_server
from tests.support.reports import ALL_FINDINGS_REPORT
from tests.support.runs import enqueue_download
from tests.support.seed_commands import PROCESS_REPORT, bash_json, fill, get_token, poll_until_finished
from tests.support.waiting import wait_for
from uvm_reporting.auth.api_client_credentials import create_client
from uvm_reporting.database.accounts import create_account
from uvm_reporting.database.engine import open_database
from uvm_reporting.database.reports import Report, create_report
from uvm_reporting.database.runs import get_run
from uvm_reporting.database.tables import runs
from uvm_reporting.domain.runs import RunState
from uvm_reporting.domain.timestamps import utc_now
from uvm_reporting.platform_data.generator import generate_platform_data


def set_up(database_url: str, findings: int = 50) -> tuple[Engine, Report]:
    engine = open_database(database_url)
    account = create_account(engine, "Acme Corp")
    generate_platform_data(engine, account.id, findings=findings, seed=5)
    return engine, create_report(engine, account.id, ALL_FINDINGS_REPORT)


def expire_leases(engine: Engine) -> None:
    """What waiting ``run_lease_seconds`` after a worker died does to its runs."""
    with engine.begin() as connection:
        connection.execute(
            update(runs)
            .where(runs.c.state == RunState.STARTED.value)
            .values(lease_expires_at=utc_now() - timedelta(seconds=1))
        )


def storage_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_run_given_up_as_worker_lost_leaves_no_partial_file(tmp_path: Path, database_url: str) -> None:
    data_dir = tmp_path / "var"
    engine, report = set_up(database_url)
    folder = data_dir / "storage" / "results" / report.account_id
    env = {"UVM_REPORTING_DATABASE_URL": database_url, "UVM_REPORTING_RUN_MAX_ATTEMPTS": "1"}
    try:
        run = enqueue_download(engine, report)
        with cli_process(
            data_dir,
            tmp_path / "killed.log",
            "worker",
            "--concurrency",
            "1",
            env={**env, "UVM_REPORTING_FAULT_POINTS": "write_batch=kill"},
        ) as killed:
            assert killed.wait(timeout=60) == -9, (tmp_path / "killed.log").read_text()
        left_by_the_killed_worker = storage_files(folder)
        expire_leases(engine)
        log = tmp_path / "worker.log"
        with cli_process(data_dir, log, "worker", "--concurrency", "1", env=env):
            wait_for(
                lambda: get_run(engine, report.account_id, run.id).state.is_final,
                timeout=60,
                what="the second worker to give the run up",
            )
            wait_for(lambda: not storage_files(folder), timeout=10, what="the partial file to go")
        given_up = get_run(engine, report.account_id, run.id)
    finally:
        engine.dispose()
    assert [name for name in left_by_the_killed_worker if name.endswith(".partial")], left_by_the_killed_worker
    assert given_up.state is RunState.FAILED, given_up
    assert given_up.error_code == "WORKER_LOST"
    assert f"run {run.id} given up as WORKER_LOST after 1 attempt(s)" in log.read_text()


def test_a_full_storage_folder_fails_the_run_with_a_clear_reason_and_the_server_keeps_serving(
    tmp_path: Path, database_url: str
) -> None:
    data_dir = tmp_path / "var"
    engine, report = set_up(database_url)
    folder = data_dir / "storage" / "results" / report.account_id
    try:
        client = create_client(engine, report.account_id)
    finally:
        engine.dispose()
    ids = {
        "Account ID": report.account_id,
        "Report ID": report.id,
        "client ID": client.client_id,
        "client secret": client.client_secret,
    }
    env = {
        "UVM_REPORTING_DATABASE_URL": database_url,
        "UVM_REPORTING_SCHEDULER_IN_SERVE": "false",
        # The disk fills up as the first bytes of the result go out; later writes find room again.
        "UVM_REPORTING_FAULT_POINTS": "write_batch=enospc",
    }
    with running_server(data_dir, port=None, **env) as (base_url, server):
        token = get_token(base_url, ids)
        command = fill(
            PROCESS_REPORT,
            {
                "URL": f"{base_url}/api/graphql",
                "Account ID": ids["Account ID"],
                "Bearer Token": token,
                "Report ID": report.id,
            },
        )
        statuses = [
            poll_until_finished(base_url, ids, token, bash_json(command)["data"]["processReport"]["runId"])
            for _ in range(2)
        ]
        assert server.poll() is None
        left = storage_files(folder)
    failed, completed = statuses
    assert failed["status"] == "Failed", failed
    assert failed["errorCode"] == "STORAGE_FAILED"
    assert failed["errorMessage"] == "Writing the result failed: the storage is full (No space left on device)."
    assert completed["status"] == "Completed", completed  # the same server serves the next run
    assert left == [f"{completed['runId']}.csv"]  # nothing partial of the failed run
