"""The runs table as a queue, on real SQLite: claims, leases, retries and their limits."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from tests.support.runs import enqueue_download
from uvm_reporting.database.accounts import Account
from uvm_reporting.database.reports import Report
from uvm_reporting.database.runs import (
    beat,
    claim_next_run,
    complete_run,
    fail_run,
    get_run,
    release_run,
)
from uvm_reporting.domain.runs import RunRecord, RunResult, RunState
from uvm_reporting.domain.timestamps import utc_now
from uvm_reporting.errors import NotFound, RunErrorCode


def enqueue(engine: Engine, report: Report) -> RunRecord:
    return enqueue_download(engine, report)


def claim(engine: Engine, worker: str, **kwargs: object) -> RunRecord | None:
    options: dict[str, object] = {"lease_seconds": 60, "max_attempts": 3, **kwargs}
    return claim_next_run(engine, worker, **options)  # type: ignore[arg-type]


def test_runs_are_claimed_oldest_first_and_once(engine: Engine, public_report: Report) -> None:
    first, second = enqueue(engine, public_report), enqueue(engine, public_report)
    claimed = claim(engine, "w1")
    assert claimed is not None
    assert claimed.id == first.id
    assert claimed.state is RunState.STARTED
    assert claimed.attempts == 1
    assert claimed.worker_id == "w1"
    again = claim(engine, "w2")
    assert again is not None
    assert again.id == second.id
    assert claim(engine, "w3") is None


def test_concurrent_claimers_never_share_a_run(engine: Engine, public_report: Report) -> None:
    queued = {enqueue(engine, public_report).id for _ in range(40)}
    claimed: list[str] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        while (run := claim(engine, name)) is not None:
            with lock:
                claimed.append(run.id)

    threads = [threading.Thread(target=claimer, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(claimed) == sorted(queued)


def test_an_expired_lease_is_claimed_again_then_fails_after_max_attempts(engine: Engine, public_report: Report) -> None:
    run = enqueue(engine, public_report)
    now = utc_now()
    assert claim(engine, "dead-1", max_attempts=2, now=now) is not None
    # While the lease holds, nobody else may take it.
    assert claim(engine, "w2", max_attempts=2, now=now + timedelta(seconds=59)) is None
    retried = claim(engine, "dead-2", max_attempts=2, now=now + timedelta(seconds=61))
    assert retried is not None
    assert retried.id == run.id
    assert retried.attempts == 2
    assert claim(engine, "w3", max_attempts=2, now=now + timedelta(seconds=200)) is None
    failed = get_run(engine, run.account_id, run.id)
    assert failed.state is RunState.FAILED
    assert failed.error_code == RunErrorCode.WORKER_LOST
    assert failed.error_message is not None
    assert "attempt 2 of 2 stopped responding" in failed.error_message


def test_only_the_lease_holder_may_finish_a_run(engine: Engine, public_report: Report) -> None:
    run = enqueue(engine, public_report)
    now = utc_now()
    claim(engine, "old", now=now - timedelta(seconds=120))
    assert claim(engine, "new", now=now) is not None  # the old lease had expired
    result = RunResult(row_count=1, size_bytes=2, sha256="0" * 64, result_key="k")
    assert not complete_run(engine, run.id, "old", result)
    assert not beat(engine, run.id, "old", lease_seconds=60, rows_written=0, bytes_written=0)[0]
    assert beat(engine, run.id, "new", lease_seconds=60, rows_written=0, bytes_written=0)[0]
    assert complete_run(engine, run.id, "new", result)
    done = get_run(engine, run.account_id, run.id)
    assert (done.state, done.row_count, done.result_key) == (RunState.COMPLETED, 1, "k")
    assert not fail_run(engine, run.id, "new", RunErrorCode.INTERNAL, "too late")


def test_a_result_of_more_than_4_gib_and_2_billion_rows_is_recorded(engine: Engine, public_report: Report) -> None:
    run = enqueue(engine, public_report)
    claim(engine, "w")
    result = RunResult(row_count=3_000_000_000, size_bytes=5 * 2**30 + 7, sha256="0" * 64, result_key="k")
    assert complete_run(engine, run.id, "w", result)
    done = get_run(engine, run.account_id, run.id)
    assert (done.state, done.row_count, done.size_bytes) == (RunState.COMPLETED, 3_000_000_000, 5 * 2**30 + 7)


def test_a_released_run_goes_back_to_the_queue_without_spending_an_attempt(
    engine: Engine, public_report: Report
) -> None:
    run = enqueue(engine, public_report)
    assert claim(engine, "w1") is not None
    assert release_run(engine, run.id, "w1")
    again = claim(engine, "w2")
    assert again is not None
    assert (again.id, again.attempts) == (run.id, 1)


def test_runs_are_invisible_to_other_accounts(engine: Engine, public_report: Report, other_account: Account) -> None:
    run = enqueue(engine, public_report)
    with pytest.raises(NotFound):
        get_run(engine, other_account.id, run.id)
