"""Retries of runs that failed for a passing reason, on real SQLite and PostgreSQL: the claim
waits for a run's next attempt without holding others up; a worker queues a transiently failed
run again, fails a permanent failure at once, and gives up after the attempts naming the cause."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from tests.support.moto_server import DUMMY_KEYS, client_factory_for
from tests.support.runs import enqueue_download
from tests.support.s3_fault_proxy import s3_fault_proxy
from tests.support.waiting import wait_for
from uvm_reporting.application.execute_run import RunExecutor
from uvm_reporting.database.reports import Report
from uvm_reporting.database.runs import claim_next_run, complete_run, get_run, retry_run
from uvm_reporting.domain.runs import RunRecord, RunResult, RunState
from uvm_reporting.domain.timestamps import utc_now
from uvm_reporting.errors import RunErrorCode
from uvm_reporting.exports.exporter import Exporter
from uvm_reporting.services import Services
from uvm_reporting.storage.s3 import S3ResultStorage
from uvm_reporting.storage.s3.delivery_errors import S3Target, classify_delivery_error
from uvm_reporting.worker import pool as pool_module
from uvm_reporting.worker.pool import WorkerPool
from uvm_reporting.worker.run_queue_signal import RunQueueSignal

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

TARGET = S3Target(bucket="customer-bucket", prefix="exports", region="us-east-1", role_arn="arn:aws:iam::1:role/r")


def s3_answer(code: str, status: int) -> ClientError:
    """What botocore raises for an S3 answer (after its own retries inside the request)."""
    response: Any = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "PutObject")


def slow_down() -> Exception:
    return classify_delivery_error(s3_answer("SlowDown", 503), "write", TARGET)


def access_denied() -> Exception:
    return classify_delivery_error(s3_answer("AccessDenied", 403), "write", TARGET)


def done(run: RunRecord) -> RunResult:
    return RunResult(row_count=0, size_bytes=0, sha256="", result_key=run.storage_key)


class Flaky:
    """An executor that fails with ``failures`` (one per attempt, in order), then succeeds."""

    def __init__(self, *failures: Callable[[], Exception]) -> None:
        self._failures = list(failures)
        self.calls = 0

    def __call__(self, run: RunRecord) -> RunResult:
        self.calls += 1
        if self._failures:
            raise self._failures.pop(0)()
        return done(run)


@pytest.fixture
def start_pool(services: Services) -> Iterator[Callable[..., WorkerPool]]:
    pools: list[WorkerPool] = []

    def start(execute: Callable[[RunRecord], RunResult], *, base: float = 0.05, attempts: int = 3) -> WorkerPool:
        pool = WorkerPool(
            services.engine,
            lambda run, _control: execute(run),  # these executions take no cancel
            RunQueueSignal(),
            threads=1,
            lease_seconds=30,
            max_attempts=attempts,
            poll_seconds=0.05,
            retry_base_seconds=base,
            retry_max_seconds=base * 4,
        )
        pool.start()
        pools.append(pool)
        return pool

    yield start
    for pool in pools:
        pool.stop(timeout=5)


def finished(engine: Engine, run: RunRecord) -> RunRecord:
    final: RunRecord = wait_for(
        lambda: (current := get_run(engine, run.account_id, run.id)).state.is_final and current,
        timeout=20,
        what=f"run {run.id} to finish",
    )
    return final


def test_a_waiting_run_is_not_claimed_before_its_time_nor_holds_up_the_queue(
    engine: Engine, public_report: Report
) -> None:
    first, second = enqueue_download(engine, public_report), enqueue_download(engine, public_report)
    now = utc_now()
    claimed = claim_next_run(engine, "w1", lease_seconds=60, max_attempts=3, now=now)
    assert claimed is not None
    assert claimed.id == first.id
    due = now + timedelta(seconds=10)
    assert retry_run(engine, first.id, "w1", RunErrorCode.DELIVERY_FAILED, "S3 answered 503", next_attempt_at=due)
    waiting = get_run(engine, first.account_id, first.id)
    assert (waiting.state, waiting.attempts) == (RunState.QUEUED, 1)
    assert waiting.next_attempt_at is not None
    assert abs(waiting.next_attempt_at - due) < timedelta(milliseconds=1)  # stored to the millisecond
    # The run behind it goes first; the waiting one is not claimed until it is due.
    behind = claim_next_run(engine, "w2", lease_seconds=60, max_attempts=3, now=now + timedelta(seconds=1))
    assert behind is not None
    assert behind.id == second.id
    assert claim_next_run(engine, "w3", lease_seconds=60, max_attempts=3, now=due - timedelta(seconds=1)) is None
    again = claim_next_run(engine, "w3", lease_seconds=60, max_attempts=3, now=due)
    assert again is not None
    assert again.id == first.id
    assert (again.attempts, again.next_attempt_at) == (2, None)


def test_a_transient_failure_is_retried_and_the_run_completes(
    services: Services, public_report: Report, start_pool: Callable[..., WorkerPool]
) -> None:
    run = enqueue_download(services.engine, public_report)
    execute = Flaky(slow_down)
    start_pool(execute, base=1.0)
    # Between the attempts: queued, with when and why, and no place in the queue.
    waiting = wait_for(
        lambda: (current := get_run(services.engine, run.account_id, run.id)).next_attempt_at is not None and current,
        timeout=20,
        what="the run to wait for its next attempt",
    )
    status = services.report_runs.describe(waiting)
    assert status["status"] == "Running"
    assert status["state"] == "queued"
    assert status["attempts"] == 1
    assert status["nextAttemptAt"].endswith("Z")
    assert status["lastErrorCode"] == "DELIVERY_FAILED"
    assert "503 SlowDown" in status["lastErrorMessage"]
    assert "queuePosition" not in status
    assert "errorCode" not in status
    completed = finished(services.engine, run)
    assert completed.state is RunState.COMPLETED
    assert completed.attempts == 2
    assert execute.calls == 2
    final = services.report_runs.describe(completed)
    assert "lastErrorCode" not in final
    assert "nextAttemptAt" not in final
    assert "errorCode" not in final


def test_a_permanent_failure_fails_at_once(
    services: Services, public_report: Report, start_pool: Callable[..., WorkerPool]
) -> None:
    run = enqueue_download(services.engine, public_report)
    execute = Flaky(access_denied)
    start_pool(execute)
    failed = finished(services.engine, run)
    assert failed.state is RunState.FAILED
    assert failed.attempts == 1
    assert failed.error_code == RunErrorCode.DELIVERY_FAILED.value
    assert failed.error_message is not None
    assert failed.error_message.startswith("PUT_DENIED: ")
    assert execute.calls == 1


def test_a_failure_that_does_not_pass_fails_after_the_attempts_naming_the_last_cause(
    services: Services, public_report: Report, start_pool: Callable[..., WorkerPool]
) -> None:
    run = enqueue_download(services.engine, public_report)
    execute = Flaky(slow_down, slow_down, slow_down, slow_down)
    start_pool(execute, attempts=3)
    failed = finished(services.engine, run)
    assert failed.state is RunState.FAILED
    assert failed.attempts == 3
    assert execute.calls == 3
    assert failed.error_code == RunErrorCode.DELIVERY_FAILED.value
    assert failed.error_message is not None
    assert failed.error_message.startswith("Failed after 3 attempts; the last one: UNEXPECTED_ERROR: S3 answered 503")
    assert failed.next_attempt_at is None


@pytest.mark.backends("postgresql")
def test_a_dropped_database_connection_is_retried(
    services: Services, public_report: Report, start_pool: Callable[..., WorkerPool]
) -> None:
    """The first attempt's database connection is terminated by the server mid-run (as a restart
    or a failover does): the run is tried again and completes."""
    run = enqueue_download(services.engine, public_report)
    dropped = threading.Event()

    def execute(claimed: RunRecord) -> RunResult:
        if not dropped.is_set():
            dropped.set()
            with services.engine.connect() as victim:
                pid = victim.execute(text("SELECT pg_backend_pid()")).scalar_one()
                with services.engine.connect() as killer:
                    killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                victim.execute(text("SELECT 1"))  # the server has closed this connection
        return done(claimed)

    start_pool(execute)
    completed = finished(services.engine, run)
    assert dropped.is_set()
    assert completed.state is RunState.COMPLETED
    assert completed.attempts == 2


@pytest.mark.parametrize(("failing_writes", "outcome"), [(2, RunState.COMPLETED), (100, RunState.FAILED)])
def test_s3_throttling_of_our_storage_is_retried(  # noqa: PLR0917 - fixtures
    services: Services,
    public_report: Report,
    start_pool: Callable[..., WorkerPool],
    moto_endpoint: str,
    moto_s3: S3Client,
    moto_bucket: str,
    failing_writes: int,
    outcome: RunState,
) -> None:
    """Our S3 storage behind a proxy that answers 503 SlowDown to the first writes. botocore
    tries each request twice here (FAST_CLIENT_CONFIG): two refused writes cost one attempt; refusals that do not stop
    fail the run after its attempts, naming S3's answer, with nothing left in the bucket."""
    run = enqueue_download(services.engine, public_report)
    with s3_fault_proxy(moto_endpoint, failing_writes) as (proxy_url, proxy):
        storage = S3ResultStorage(client_factory_for(proxy_url, DUMMY_KEYS), moto_bucket, "results")
        executor = RunExecutor(services.engine, storage, Exporter(services.engine))
        start_pool(executor.execute, attempts=3)
        final = finished(services.engine, run)
    assert final.state is outcome
    if outcome is RunState.COMPLETED:
        assert final.attempts == 2
        assert proxy.refused == 2
        assert storage.exists(run.storage_key)
        return
    assert final.attempts == 3
    assert final.error_code == RunErrorCode.STORAGE_FAILED.value
    assert final.error_message == (
        "Failed after 3 attempts; the last one: Writing the result failed: the result storage (S3) refused "
        "the write (503 SlowDown). Start the run again; if it persists, tell the operator."
    )
    assert moto_s3.list_objects_v2(Bucket=moto_bucket).get("KeyCount") == 0
    assert moto_s3.list_multipart_uploads(Bucket=moto_bucket).get("Uploads", []) == []


def test_an_outcome_recorded_over_a_dropped_connection_is_recorded_again_without_exporting_again(
    services: Services,
    public_report: Report,
    start_pool: Callable[..., WorkerPool],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The connection drops as the finished run's result is recorded (SQLAlchemy tells it by the
    driver's error): the worker records it again after the backoff, with the file it has."""
    dropped: list[str] = []

    def complete_over_a_dropped_connection(engine: Engine, run_id: str, worker_id: str, result: RunResult) -> bool:
        if not dropped:
            dropped.append(run_id)
            raise OperationalError(
                "UPDATE runs", {}, Exception("server closed the connection"), connection_invalidated=True
            )
        return complete_run(engine, run_id, worker_id, result)

    monkeypatch.setattr(pool_module, "complete_run", complete_over_a_dropped_connection)
    run = enqueue_download(services.engine, public_report)
    execute = Flaky()
    start_pool(execute)
    completed = finished(services.engine, run)
    assert dropped == [run.id]
    assert completed.state is RunState.COMPLETED
    assert completed.attempts == 1
    assert execute.calls == 1
