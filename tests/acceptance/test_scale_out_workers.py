"""Several worker processes on one queue: every run exactly once, and a killed worker's run
finished by another. Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import collections
import os
import random
import re
import signal
import subprocess
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from tests.support.cli import cli_process
from tests.support.reports import ALL_FINDINGS_REPORT
from tests.support.runs import enqueue_download
from tests.support.snapshots import DatabaseSnapshots
from tests.support.waiting import wait_for
from uvm_reporting.database.accounts import create_account
from uvm_reporting.database.engine import open_database
from uvm_reporting.database.reports import Report, create_report
from uvm_reporting.database.runs import get_run
from uvm_reporting.database.tables import accounts, runs
from uvm_reporting.domain.runs import RunRecord, RunState
from uvm_reporting.platform_data.generator import generate_platform_data


def worker_process(
    data_dir: Path, database_url: str, log_path: Path, *args: str, **env: str
) -> AbstractContextManager[subprocess.Popen[str]]:
    return cli_process(data_dir, log_path, "worker", *args, env={"UVM_REPORTING_DATABASE_URL": database_url, **env})


def set_up(database_url: str, findings: int, snapshots: DatabaseSnapshots) -> tuple[Engine, Report]:
    """An account with ``findings`` generated findings (generated once per session and backend) and a report."""

    def populate(engine: Engine) -> None:
        account = create_account(engine, "Acme Corp")
        generate_platform_data(engine, account.id, findings=findings, seed=3)

    snapshots.fill(database_url, f"acme-with-{findings}-findings", populate)
    engine = open_database(database_url)
    with engine.connect() as connection:
        account_id = connection.execute(select(accounts.c.id)).scalar_one()
    return engine, create_report(engine, account_id, ALL_FINDINGS_REPORT)


def enqueue(engine: Engine, report: Report) -> RunRecord:
    return enqueue_download(engine, report)


def count_final(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                select(func.count())
                .select_from(runs)
                .where(runs.c.state.in_([RunState.COMPLETED.value, RunState.FAILED.value]))
            ).scalar_one()
        )


# A load test (a thousand runs, three processes): in the slow step of CI.
@pytest.mark.slow
def test_three_workers_run_a_thousand_runs_exactly_once(
    tmp_path: Path, database_url: str, database_snapshots: DatabaseSnapshots
) -> None:
    data_dir = tmp_path / "var"
    engine, report = set_up(database_url, 3, database_snapshots)
    try:
        queued = {enqueue(engine, report).id for _ in range(1000)}
        logs = [tmp_path / f"worker-{n}.log" for n in range(3)]
        with ExitStack() as stack:
            for log in logs:
                stack.enter_context(worker_process(data_dir, database_url, log, "--concurrency", "2"))
            wait_for(lambda: count_final(engine) == len(queued), timeout=240, what="1000 runs to finish")
        with engine.connect() as connection:
            rows = connection.execute(select(runs.c.id, runs.c.state, runs.c.attempts, runs.c.row_count)).all()
    finally:
        engine.dispose()
    assert {row.id for row in rows} == queued
    assert {(row.state, row.attempts, row.row_count) for row in rows} == {("completed", 1, 3)}
    started = collections.Counter(
        match for log in logs for match in re.findall(r"run (\S+) of report \S+ started", log.read_text())
    )
    assert set(started) == queued
    assert max(started.values()) == 1, [run for run, n in started.items() if n > 1][:5]
    assert all(any(f"run {run}" in log.read_text() for log in logs) for run in list(queued)[:10])


@pytest.mark.parametrize("round_number", range(3))  # three random kill points (seeded: see tests/conftest.py)
def test_a_run_whose_worker_is_killed_is_finished_by_another(
    tmp_path: Path,
    database_url: str,
    round_number: int,
    seeded_random: random.Random,
    database_snapshots: DatabaseSnapshots,
) -> None:
    data_dir = tmp_path / "var"
    engine, report = set_up(database_url, 60_000, database_snapshots)
    folder = data_dir / "storage" / "results" / report.account_id
    options = {"UVM_REPORTING_RUN_LEASE_SECONDS": "5"}
    try:
        run = enqueue(engine, report)
        with worker_process(data_dir, database_url, tmp_path / "doomed.log", "--concurrency", "1", **options) as doomed:
            # Kill at a random point of the write: once the partial file reached a random size.
            threshold = seeded_random.randint(1, 4_000_000)
            print(f"killing the worker once the partial file holds {threshold} bytes")
            wait_for(
                lambda: (
                    any(p.stat().st_size >= threshold for p in folder.glob(".*.partial")) if folder.exists() else False
                ),
                timeout=120,
                what="the export to be under way",
            )
            os.kill(doomed.pid, signal.SIGKILL)
            doomed.wait(timeout=10)
        assert get_run(engine, report.account_id, run.id).state is RunState.STARTED
        assert not (folder / f"{run.id}.csv").exists()
        with worker_process(data_dir, database_url, tmp_path / "rescuer.log", "--concurrency", "1", **options):
            finished = wait_for(
                lambda: (r := get_run(engine, report.account_id, run.id)).state.is_final and r,
                timeout=180,
                what="another worker to finish the run",
            )
        with engine.connect() as connection:
            stuck = connection.execute(
                select(func.count()).select_from(runs).where(runs.c.state == RunState.STARTED.value)
            ).scalar_one()
    finally:
        engine.dispose()
    assert finished.state is RunState.COMPLETED, finished.error_message
    assert finished.attempts == 2
    assert finished.row_count == 60_000
    assert stuck == 0
    assert sorted(p.name for p in folder.iterdir()) == [f"{run.id}.csv"]
    content = (folder / f"{run.id}.csv").read_bytes()
    assert len(content) == finished.size_bytes
    assert content.count(b"\n") >= 60_001
