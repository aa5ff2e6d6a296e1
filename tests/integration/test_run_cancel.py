"""Cancel and progress in the runs table and the status caches, on SQLite and PostgreSQL: each
outcome is one conditional UPDATE, so a cancel racing a claim, a completion or a failure leaves
exactly one; a lost run whose cancel was asked for is never claimed again; a cancel through the
status poll's use case is seen by the next poll of this process at once."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.support.clock import ManualClock as Clock
from tests.support.reports import ALL_FINDINGS_REPORT
from tests.support.runs import enqueue_download
from uvm_reporting.application.report_runs import RUNNING_STATUS_TTL_SECONDS, ReportRuns, cancel_run_by
from uvm_reporting.database.accounts import Account
from uvm_reporting.database.reports import Report, create_report
from uvm_reporting.database.runs import (
    beat,
    claim_next_run,
    complete_run,
    fail_run,
    finish_cancelled_run,
    get_run,
    release_run,
)
from uvm_reporting.domain.audit import Actor
from uvm_reporting.domain.runs import RunRecord, RunResult, RunState
from uvm_reporting.domain.timestamps import utc_now
from uvm_reporting.errors import NotFound, RunErrorCode
from uvm_reporting.expiring_cache import ExpiringCache
from uvm_reporting.services import Services

WORKER = "test-worker"
CLIENT = Actor.api_client("client-1")


@pytest.fixture
def report(engine: Engine, account: Account) -> Report:
    return create_report(engine, account.id, ALL_FINDINGS_REPORT)


def started(engine: Engine, report: Report) -> RunRecord:
    run = enqueue_download(engine, report)
    claimed = claim_next_run(engine, WORKER, lease_seconds=60, max_attempts=3)
    assert claimed is not None
    assert claimed.id == run.id
    return claimed


def test_a_queued_run_ends_cancelled_at_once_and_is_never_claimed(engine: Engine, report: Report) -> None:
    run = enqueue_download(engine, report)
    cancelled = cancel_run_by(engine, run.id, CLIENT, account_id=report.account_id)
    assert cancelled.state is RunState.CANCELLED
    assert cancelled.finished_at is not None
    assert cancelled.error_message == "Cancelled by API client client-1."
    assert cancelled.error_code is None
    assert claim_next_run(engine, WORKER, lease_seconds=60, max_attempts=3) is None


def test_a_started_run_gets_a_cancel_request_its_heartbeat_reads(engine: Engine, report: Report) -> None:
    run = started(engine, report)
    assert beat(engine, run.id, WORKER, lease_seconds=None, rows_written=10, bytes_written=100) == (True, False)
    requested = cancel_run_by(engine, run.id, CLIENT, account_id=report.account_id)
    assert requested.state is RunState.STARTED
    assert requested.cancel_requested_at is not None
    assert (requested.rows_written, requested.bytes_written) == (10, 100)
    assert beat(engine, run.id, WORKER, lease_seconds=60, rows_written=20, bytes_written=200) == (True, True)
    assert not release_run(engine, run.id, WORKER)  # a worker that stops does not queue it again
    assert finish_cancelled_run(engine, run.id, WORKER)
    final = get_run(engine, report.account_id, run.id)
    assert final.state is RunState.CANCELLED
    assert final.lease_expires_at is None
    assert beat(engine, run.id, WORKER, lease_seconds=60, rows_written=30, bytes_written=300) == (False, False)


def test_a_final_run_is_left_as_it_is(engine: Engine, report: Report) -> None:
    run = started(engine, report)
    assert complete_run(engine, run.id, WORKER, RunResult(3, 30, "ab" * 32, "results/x.csv"))
    before = get_run(engine, report.account_id, run.id)
    assert cancel_run_by(engine, run.id, CLIENT, account_id=report.account_id) == before
    assert get_run(engine, report.account_id, run.id) == before


def test_another_accounts_run_is_not_found_and_unchanged(
    engine: Engine, report: Report, other_account: Account
) -> None:
    run = enqueue_download(engine, report)
    with pytest.raises(NotFound):
        cancel_run_by(engine, run.id, CLIENT, account_id=other_account.id)
    assert get_run(engine, report.account_id, run.id).state is RunState.QUEUED
    # The operator names no account: any account's run.
    assert cancel_run_by(engine, run.id, Actor.operator(), account_id=None).state is RunState.CANCELLED


def race(engine: Engine, report: Report, outcome: str) -> tuple[list[str], RunRecord]:
    """A started run whose cancel was asked for, ended by its worker (``outcome``) and by the
    cancel at the same moment: which calls succeeded, and the run afterwards."""
    run = started(engine, report)
    cancel_run_by(engine, run.id, CLIENT, account_id=report.account_id)
    go = threading.Barrier(2)
    won: dict[str, bool] = {}

    def end() -> None:
        go.wait()
        if outcome == "completed":
            won[outcome] = complete_run(engine, run.id, WORKER, RunResult(1, 10, "ab" * 32, "results/x.csv"))
        else:
            won[outcome] = fail_run(engine, run.id, WORKER, RunErrorCode.QUERY_FAILED, "failed")

    def cancel() -> None:
        go.wait()
        won["cancelled"] = finish_cancelled_run(engine, run.id, WORKER)

    threads = [threading.Thread(target=end), threading.Thread(target=cancel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return sorted(name for name, succeeded in won.items() if succeeded), get_run(engine, report.account_id, run.id)


@pytest.mark.parametrize("outcome", ["completed", "failed"])
def test_a_cancel_racing_the_runs_end_leaves_exactly_one_outcome(engine: Engine, report: Report, outcome: str) -> None:
    for _ in range(10):
        winners, final = race(engine, report, outcome)
        assert winners in (["cancelled"], [outcome]), winners
        assert final.state is RunState(winners[0])


def test_a_lost_run_whose_cancel_was_asked_for_ends_cancelled_not_claimed_again(engine: Engine, report: Report) -> None:
    run = started(engine, report)
    cancel_run_by(engine, run.id, CLIENT, account_id=report.account_id)
    later = utc_now() + timedelta(seconds=120)  # its worker died: the lease has expired
    assert claim_next_run(engine, "another-worker", lease_seconds=60, max_attempts=3, now=later) is None
    final = get_run(engine, report.account_id, run.id)
    assert final.state is RunState.CANCELLED
    assert final.attempts == 1


def test_a_cancel_through_the_use_case_is_seen_by_the_next_poll_at_once(services: Services, report: Report) -> None:
    clock = Clock()
    report_runs = ReportRuns(
        engine=services.engine,
        signal=services.signal,
        links=services.storage,
        reports=services.reports,
        finished_runs=ExpiringCache(float("inf"), clock=clock),
        running_runs=ExpiringCache(RUNNING_STATUS_TTL_SECONDS, clock=clock),
    )
    run = enqueue_download(services.engine, report)

    def poll() -> dict[str, Any]:
        return report_runs.run_status(report.account_id, None, run.id, client_id="client-1")

    assert poll()["state"] == "queued"  # cached for RUNNING_STATUS_TTL_SECONDS of a clock that stands still
    answer = report_runs.cancel_run(report.account_id, run.id, client_id="client-1", actor=CLIENT)
    assert answer["status"] == "Cancelled"
    assert poll() == answer
    assert report_runs.cancel_run(report.account_id, run.id, client_id="client-1", actor=CLIENT) == answer


def test_a_started_runs_status_carries_its_progress(services: Services, report: Report) -> None:
    run = started(services.engine, report)
    beat(services.engine, run.id, WORKER, lease_seconds=None, rows_written=1234, bytes_written=56789)
    status = services.report_runs.run_status(report.account_id, None, run.id, client_id="client-1")
    assert (status["rowsWritten"], status["bytesWritten"]) == (1234, 56789)
    assert "cancelRequested" not in status
