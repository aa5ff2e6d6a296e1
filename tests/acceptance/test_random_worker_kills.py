"""A worker killed at random, seeded points of a run's life, 200 times on SQLite: at claim, mid-query,
at the file's opening, mid-write and mid-completion (uvm_reporting.fault_points; mid-upload is S3's
and has tests of its own). After each kill the database passes ``PRAGMA integrity_check``; at the end:

* no run lost: every run queued is Completed or, after ``run_max_attempts`` lost workers, Failed as
  WORKER_LOST;
* no run completed twice: each ``complete_run`` that succeeded is appended to a ledger file;
* no partial result visible: a Completed run's file is whole (its size and SHA-256 as recorded),
  a Failed run has no file, and no ``.partial`` file is left;
* nothing left Running once leases expire.

Each worker is a fork of this process (no interpreter start-up per iteration); its lease running out
is the lease's expiry moved into the past, as the clock would after ``run_lease_seconds``.
Repeat a failure with the seed it prints (tests/conftest.py)."""

from __future__ import annotations

import collections
import hashlib
import os
import random
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text, update

from tests.support.reports import ALL_FINDINGS_REPORT
from tests.support.runs import enqueue_download
from uvm_reporting import fault_points
from uvm_reporting.database.accounts import create_account
from uvm_reporting.database.engine import create_database_engine, open_database
from uvm_reporting.database.reports import create_report
from uvm_reporting.database.runs import complete_run
from uvm_reporting.database.tables import runs
from uvm_reporting.domain.runs import RunResult, RunState
from uvm_reporting.domain.timestamps import utc_now
from uvm_reporting.exports.sources import driver_rows  # noqa: F401 - loaded once here, not in each forked worker
from uvm_reporting.platform_data.generator import generate_platform_data
from uvm_reporting.services import build_services
from uvm_reporting.settings import Settings
from uvm_reporting.worker import pool

pytestmark = [pytest.mark.slow, pytest.mark.backends("sqlite"), pytest.mark.timeout(900)]

ITERATIONS = int(os.environ.get("UVM_TEST_KILL_ITERATIONS", "200"))
RUNS_PER_ITERATION = 2
FINDINGS = 30
MAX_ATTEMPTS = 2
KILL_POINTS = ("claim", "query", "write", "write_batch", "complete")
ACTIVE = (RunState.QUEUED.value, RunState.STARTED.value)


def active_runs(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(select(func.count()).select_from(runs).where(runs.c.state.in_(ACTIVE))).scalar_one()
        )


def expire_leases(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(runs)
            .where(runs.c.state == RunState.STARTED.value)
            .values(lease_expires_at=utc_now() - timedelta(seconds=1))
        )


def run_worker(settings: Settings, faults: str, ledger: Path) -> None:
    """In a forked child: work until no run is queued or started, unless a fault kills it first."""
    code = 1
    try:
        fault_points.configure(faults)
        recorded = complete_run

        def complete_and_note(engine: Engine, run_id: str, worker_id: str, result: RunResult) -> bool:
            completed = recorded(engine, run_id, worker_id, result)
            if completed:
                with ledger.open("a") as notes:
                    notes.write(f"{run_id}\n")
            return completed

        vars(pool)["complete_run"] = complete_and_note  # the pool's outcomes, noted as they are recorded
        # The schema is current: a worker of its own opens the database without migrating it.
        services = build_services(settings, create_database_engine(settings.database_url))
        workers = services.start_workers(1)
        while active_runs(services.engine):
            time.sleep(0.02)
        workers.stop(5)
        services.engine.dispose()
        code = 0
    finally:
        os._exit(code)


def start_worker(settings: Settings, faults: str, ledger: Path) -> int:
    pid = os.fork()
    if pid == 0:
        run_worker(settings, faults, ledger)
    return pid


def wait_for_exit(pid: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"worker {pid} neither finished nor died within {timeout}s")


def integrity(engine: Engine) -> str:
    with engine.connect() as connection:
        return str(connection.execute(text("PRAGMA integrity_check")).scalar_one())


def test_workers_killed_at_random_points_lose_nothing_and_complete_nothing_twice(
    tmp_path: Path, database_url: str, seeded_random: random.Random
) -> None:
    data_dir = tmp_path / "var"
    settings = Settings(data_dir=data_dir, database_url=database_url, run_max_attempts=MAX_ATTEMPTS)
    ledger = tmp_path / "completions.txt"
    engine = open_database(database_url)
    account = create_account(engine, "Acme Corp")
    generate_platform_data(engine, account.id, findings=FINDINGS, seed=8)
    report = create_report(engine, account.id, ALL_FINDINGS_REPORT)
    folder = data_dir / "storage" / "results" / account.id
    queued: set[str] = set()
    outcomes: collections.Counter[str] = collections.Counter()
    try:
        for iteration in range(ITERATIONS):
            queued.update(enqueue_download(engine, report).id for _ in range(RUNS_PER_ITERATION))
            point, count = seeded_random.choice(KILL_POINTS), seeded_random.randint(1, 3)
            engine.dispose()  # the child opens its own connections
            code = wait_for_exit(start_worker(settings, f"{point}=kill@{count}", ledger))
            outcomes["killed" if code == -signal.SIGKILL else f"exit {code}"] += 1
            assert code in (0, -signal.SIGKILL), f"iteration {iteration}: {point}@{count}: exit {code}"
            expire_leases(engine)
            assert integrity(engine) == "ok", f"iteration {iteration}: {point}@{count}"
        # One worker without faults finishes whatever the last kill left.
        assert wait_for_exit(start_worker(settings, "", ledger)) == 0
        expire_leases(engine)
        with engine.connect() as connection:
            rows = list(connection.execute(select(runs)))
        final_integrity = integrity(engine)
    finally:
        engine.dispose()
    print(f"{ITERATIONS} workers: {dict(outcomes)}")
    assert final_integrity == "ok"
    assert {row.id for row in rows} == queued  # no run lost
    states = collections.Counter((row.state, row.error_code) for row in rows)
    print(f"{len(rows)} runs: {dict(states)}")
    assert set(states) <= {("completed", None), ("failed", "WORKER_LOST")}, states  # nothing left Running
    completions = collections.Counter(ledger.read_text().split())
    assert [run for run, n in completions.items() if n > 1] == []  # none completed twice
    completed = {row.id: row for row in rows if row.state == "completed"}
    assert set(completions) == set(completed)
    files = {path.name for path in folder.iterdir()}
    assert [name for name in files if name.endswith(".partial")] == []
    assert files == {f"{run_id}.csv" for run_id in completed}  # a Failed run has no file
    for run_id, row in completed.items():
        data = (folder / f"{run_id}.csv").read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest(), row.row_count) == (row.size_bytes, row.sha256, FINDINGS)
    assert outcomes["killed"] > ITERATIONS / 2, outcomes  # the faults were reached
