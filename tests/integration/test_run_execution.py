"""Executing runs on real SQLite: the file matches the database, failures leave nothing behind."""

from __future__ import annotations

import csv
import io
from functools import partial
from typing import Any

import pytest
from sqlalchemy.exc import DataError, OperationalError

from tests.support.expected_exports import expected_findings_rows
from tests.support.runs import enqueue_download
from tests.support.sinks import ByteSink
from tests.support.waiting import wait_for
from uvm_reporting.application.execute_run import RunExecutor
from uvm_reporting.database.accounts import create_account
from uvm_reporting.database.reports import Report
from uvm_reporting.database.runs import complete_run, enqueue_run, get_run
from uvm_reporting.domain.runs import Delivery, RunRecord, RunState
from uvm_reporting.errors import RunErrorCode, StorageFailed, run_failure
from uvm_reporting.exports.exporter import Exporter
from uvm_reporting.services import Services
from uvm_reporting.storage.local_folder import LocalFolderStorage
from uvm_reporting.worker import pool as pool_module


def local(services: Services) -> LocalFolderStorage:
    """The embedded default's storage, which these tests inspect on disk."""
    assert isinstance(services.storage, LocalFolderStorage)
    return services.storage


def enqueue(services: Services, report: Report, definition: dict[str, Any] | None = None) -> RunRecord:
    return enqueue_download(services.engine, report, definition=definition)


def test_the_csv_holds_exactly_the_accounts_rows(services: Services, public_report: Report, findings_data: int) -> None:
    run = enqueue(services, public_report)
    result = RunExecutor(services.engine, services.storage, Exporter(services.engine, batch_size=17)).execute(run)
    path = local(services).path_of(result.result_key)
    content = path.read_bytes()
    assert result.size_bytes == len(content)
    assert result.row_count == findings_data
    table = list(csv.reader(io.StringIO(content.decode("utf-8"), newline="")))
    assert table[0] == list(public_report.definition.columns)
    assert table[1:] == expected_findings_rows(services.engine, public_report.account_id)
    titles = "".join(row[2] for row in table[1:])
    assert any(char in titles for char in ',"\n')
    assert any(ord(char) > 127 for char in titles)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_a_failure_mid_stream_leaves_no_file(
    services: Services, public_report: Report, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = enqueue(services, public_report)

    def write_some_then_fail(_exporter: Exporter, _run: RunRecord, out: Any, _control: Any = None) -> int:
        out.write(b"id,asset_id\nfinding-1,")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Exporter, "write", write_some_then_fail)
    with pytest.raises(OSError, match="No space"):
        RunExecutor(services.engine, services.storage, Exporter(services.engine, batch_size=10)).execute(run)
    folder = local(services).root / "results" / run.account_id
    assert list(folder.iterdir()) == []


def test_worker_threads_complete_queued_runs(services: Services, public_report: Report) -> None:
    pool = services.worker_pool(threads=2)
    pool.start()
    try:
        runs = [enqueue(services, public_report) for _ in range(5)]
        services.signal.notify()
        for run in runs:
            done = wait_for(partial(_final, services, run), what=f"run {run.id} to finish")
            assert done.state is RunState.COMPLETED
            assert done.row_count == 120
            assert done.sha256 is not None
            assert len(done.sha256) == 64
    finally:
        pool.stop()


def test_a_broken_definition_ends_as_a_failed_run_with_a_reason(services: Services, public_report: Report) -> None:
    broken = {**public_report.definition.to_json(), "columns": ["no_such_field"]}
    done = _run_with_one_worker(services, enqueue(services, public_report, definition=broken))
    assert done.state is RunState.FAILED
    assert done.error_code == RunErrorCode.INVALID_DEFINITION
    assert "no_such_field" in (done.error_message or "")


def test_storage_that_cannot_be_written_fails_the_run(services: Services, public_report: Report) -> None:
    run = enqueue(services, public_report)
    blocker = local(services).root / "results"
    blocker.write_text("a file where a folder should be")
    done = _run_with_one_worker(services, run)
    assert done.state is RunState.FAILED
    assert done.error_code == RunErrorCode.STORAGE_FAILED


def _run_with_one_worker(services: Services, run: RunRecord) -> RunRecord:
    """Start a one-thread worker pool, wait until ``run`` is final, stop the pool."""
    pool = services.worker_pool(threads=1)
    pool.start()
    try:
        services.signal.notify()
        done: RunRecord = wait_for(partial(_final, services, run), what=f"run {run.id} to finish")
    finally:
        pool.stop()
    return done


def _final(services: Services, run: RunRecord) -> RunRecord | None:
    current = get_run(services.engine, run.account_id, run.id)
    return current if current.state.is_final else None


def test_a_retry_removes_the_partial_file_of_the_attempt_that_died(services: Services, public_report: Report) -> None:
    run = enqueue(services, public_report)
    folder = local(services).root / "results" / run.account_id
    folder.mkdir(parents=True)
    orphan = folder / f".{run.id}.csv.0123abcd.partial"
    orphan.write_bytes(b"id,asset_id\r\nhalf a ro")
    result = RunExecutor(services.engine, services.storage, Exporter(services.engine)).execute(run)
    assert sorted(p.name for p in folder.iterdir()) == [f"{run.id}.csv"]
    assert result.row_count == 120


@pytest.mark.parametrize(
    "refusal",
    [
        DataError("UPDATE runs", {}, Exception("integer out of range")),
        OperationalError("UPDATE runs", {}, Exception("the server closed the connection")),
    ],
)
def test_a_worker_thread_outlives_an_outcome_the_database_refuses(
    services: Services, public_report: Report, monkeypatch: pytest.MonkeyPatch, refusal: Exception
) -> None:
    """A result the database refuses fails its run with a reason; a database that is gone leaves
    the run to its lease. Either way the same thread goes on to the next run."""
    refused: list[str] = []

    def complete_once_refused(engine: Any, run_id: str, worker_id: str, result: Any) -> bool:
        if not refused:
            refused.append(run_id)
            raise refusal
        return complete_run(engine, run_id, worker_id, result)

    monkeypatch.setattr(pool_module, "complete_run", complete_once_refused)
    first, second = enqueue(services, public_report), enqueue(services, public_report)
    pool = services.worker_pool(threads=1)
    pool.start()
    try:
        services.signal.notify()
        done = wait_for(partial(_final, services, second), what="the second run to finish")
        assert done.state is RunState.COMPLETED
        assert refused == [first.id]
        after = get_run(services.engine, first.account_id, first.id)
        if isinstance(refusal, DataError):
            assert (after.state, after.error_code) == (RunState.FAILED, RunErrorCode.INTERNAL)
            assert "recording its result failed" in (after.error_message or "")
        else:
            assert after.state is RunState.STARTED  # its lease runs out; another claim runs it again
            assert after.lease_expires_at is not None
    finally:
        pool.stop()


def test_a_query_the_database_refuses_is_a_query_failure(services: Services, public_report: Report) -> None:
    with services.engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE findings RENAME TO findings_elsewhere")
    done = _run_with_one_worker(services, enqueue(services, public_report))
    assert done.state is RunState.FAILED
    assert done.error_code == RunErrorCode.QUERY_FAILED
    assert "findings" not in (done.error_message or "")  # the driver's text stays in the operator log


def test_an_s3_delivery_where_s3_is_not_configured_is_a_storage_failure(
    services: Services, public_report: Report
) -> None:
    run = enqueue_run(
        services.engine,
        account_id=public_report.account_id,
        report_id=public_report.id,
        delivery=Delivery.S3,
        format="csv",
        definition=public_report.definition.to_json(),
        requested_by="test",
        destination={
            "bucket": "customer-bucket",
            "key": "reports/r.csv",
            "region": "us-east-1",
            "role_arn": "arn:aws:iam::123456789012:role/uvm-export",
        },
    )
    without_s3 = RunExecutor(services.engine, services.storage, Exporter(services.engine))  # no customer buckets
    with pytest.raises(StorageFailed) as raised:
        without_s3.execute(run)
    failure = run_failure(raised.value)
    assert failure.code is RunErrorCode.STORAGE_FAILED
    assert failure.message == "This run delivers to S3, but S3 is not configured here."


def test_a_prepared_report_answers_only_for_its_own_definition_and_account(
    services: Services, public_report: Report, findings_data: int
) -> None:
    """The exporter keeps a report's compiled query between runs; an edited definition or
    another account's run of the same definition must never get it."""
    exporter = Exporter(services.engine)
    other = create_account(services.engine, "Other Co")
    fewer_columns = {**public_report.definition.to_json(), "columns": ["id", "severity"]}

    def csv_rows(run: RunRecord) -> list[list[str]]:
        sink = ByteSink()
        exporter.write(run, sink)
        return list(csv.reader(io.StringIO(bytes(sink.data).decode("utf-8"), newline="")))

    first = csv_rows(enqueue(services, public_report))
    assert len(first) == findings_data + 1
    assert csv_rows(enqueue(services, public_report)) == first  # the same report again
    narrowed = csv_rows(enqueue(services, public_report, definition=fewer_columns))
    assert narrowed[0] == ["id", "severity"]
    assert [row[0] for row in narrowed[1:]] == [row[0] for row in first[1:]]
    foreign = enqueue_run(
        services.engine,
        account_id=other.id,
        report_id=public_report.id,
        delivery=Delivery.DOWNLOAD,
        format="csv",
        definition=public_report.definition.to_json(),
        requested_by="test",
    )
    assert csv_rows(foreign) == [first[0]]  # the other account has no findings: the header alone
