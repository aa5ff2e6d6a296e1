"""The cleanup job (application/cleanup.py) on both databases and the local storage folder:
expired result files, leftovers of dead writes, old run records; dry runs; two jobs at once;
and a status whose result expired while the finished-run cache held it."""

from __future__ import annotations

import os
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

from graphql import graphql_sync
from sqlalchemy import Engine, func, select, update
from starlette.testclient import TestClient

from tests.support.reports import ALL_FINDINGS_REPORT, DAILY_S3_SCHEDULE
from tests.support.runs import enqueue_download
from tests.support.waiting import wait_for
from uvm_reporting.api.app import create_app
from uvm_reporting.api.graphql_schema import GraphQLContext, build_schema
from uvm_reporting.application.cleanup import CleanupJob, Removal, cleanup_steps
from uvm_reporting.auth.api_client_credentials import create_client
from uvm_reporting.database.accounts import Account
from uvm_reporting.database.idempotency_keys import remember_idempotency_key
from uvm_reporting.database.reports import Report, create_report
from uvm_reporting.database.runs import (
    claim_next_run,
    complete_run,
    enqueue_delivery,
    fail_run,
    find_run,
    get_run,
)
from uvm_reporting.database.tables import audit_events, idempotency_keys, runs
from uvm_reporting.domain.retention import RetentionPolicy
from uvm_reporting.domain.runs import RunRecord, RunResult
from uvm_reporting.domain.timestamps import format_utc, utc_now
from uvm_reporting.errors import RunErrorCode
from uvm_reporting.services import Services, build_services, cleanup_job
from uvm_reporting.settings import Settings
from uvm_reporting.storage.local_folder import LocalFolderStorage

WORKER = "test-worker"
RETENTION = timedelta(days=7)
HISTORY = timedelta(days=90)
KINDS = (
    "result files past retention",
    "temporary files older than a day",
    "run records past the run history",
)


def local(services: Services) -> LocalFolderStorage:
    assert isinstance(services.storage, LocalFolderStorage)
    return services.storage


def claim(engine: Engine, run: RunRecord) -> None:
    claimed = claim_next_run(engine, WORKER, lease_seconds=60, max_attempts=3)
    assert claimed is not None
    assert claimed.id == run.id


def completed_download(services: Services, report: Report) -> RunRecord:
    """A Completed download run whose file is in our storage (written as a worker writes it)."""
    run = enqueue_download(services.engine, report)
    claim(services.engine, run)
    with services.storage.open_for_write(run.storage_key) as (writer, _):
        writer.write(b"id,title\nf-1,one\n")
    assert complete_run(services.engine, run.id, WORKER, RunResult(1, 17, "0" * 64, run.storage_key))
    return get_run(services.engine, run.account_id, run.id)


def failed_download(services: Services, report: Report) -> RunRecord:
    run = enqueue_download(services.engine, report)
    claim(services.engine, run)
    assert fail_run(services.engine, run.id, WORKER, RunErrorCode.QUERY_FAILED, "boom")
    return get_run(services.engine, run.account_id, run.id)


def completed_delivery(services: Services, account: Account) -> RunRecord:
    """A Completed delivery to a customer's bucket: its file is theirs, never ours to remove."""
    report = create_report(services.engine, account.id, {**ALL_FINDINGS_REPORT, "schedule": DAILY_S3_SCHEDULE})
    assert report.schedule is not None
    run = enqueue_delivery(services.engine, report, report.schedule, at=utc_now(), requested_by=None)
    claim(services.engine, run)
    key = f"s3://acme-exports/{(run.destination or {})['key']}"
    assert complete_run(services.engine, run.id, WORKER, RunResult(1, 17, "0" * 64, key))
    return get_run(services.engine, run.account_id, run.id)


def temporary_file(storage: LocalFolderStorage, name: str, *, age: timedelta) -> Path:
    path = storage.root / "results" / "some-account" / f".{name}.csv.0123abcd.partial"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"half a file")
    written = (utc_now() - age).timestamp()
    os.utime(path, (written, written))
    return path


def job(services: Services) -> CleanupJob:
    return CleanupJob(
        cleanup_steps(services.engine, services.storage, RetentionPolicy(RETENTION, HISTORY)),
    )


def by_kind(removals: list[Removal]) -> dict[str, Removal]:
    return {removal.kind: removal for removal in removals}


def test_expired_result_files_are_deleted_and_their_runs_marked_but_s3_deliveries_stay(
    services: Services, public_report: Report, account: Account
) -> None:
    kept = completed_download(services, public_report)
    expiring = completed_download(services, public_report)
    delivered = completed_delivery(services, account)
    storage = local(services)
    assert expiring.finished_at is not None
    # Eight days later, for the runs finished before the last one only.
    now = expiring.finished_at + RETENTION + timedelta(seconds=1)
    later_kept = kept.finished_at
    assert later_kept is not None
    removals = by_kind(job(services).run_once(now=now))

    assert removals["result files past retention"].count == 2  # kept finished first: it went too
    for run in (kept, expiring):
        assert not storage.exists(run.storage_key)
        stored = get_run(services.engine, run.account_id, run.id)
        assert stored.expired_at == now
    untouched = get_run(services.engine, delivered.account_id, delivered.id)
    assert untouched.expired_at is None
    assert untouched.result_key == delivered.result_key
    status = services.report_runs.describe(untouched)
    assert (status["expired"], status["expiredAt"], status["resultFilePath"]) == (False, None, delivered.result_key)


def test_only_runs_past_retention_lose_their_file(services: Services, public_report: Report) -> None:
    run = completed_download(services, public_report)
    assert run.finished_at is not None
    removals = by_kind(job(services).run_once(now=run.finished_at + RETENTION - timedelta(seconds=1)))
    assert removals["result files past retention"].count == 0
    assert local(services).exists(run.storage_key)
    assert get_run(services.engine, run.account_id, run.id).expired_at is None


def test_old_temporary_files_go_and_fresh_ones_stay(services: Services) -> None:
    storage = local(services)
    old = temporary_file(storage, "old", age=timedelta(hours=25))
    fresh = temporary_file(storage, "fresh", age=timedelta(hours=23))
    removals = by_kind(job(services).run_once())
    assert removals["temporary files older than a day"].items == (str(old),)
    assert not old.exists()
    assert fresh.exists()


def test_run_records_past_the_history_go_but_audit_events_and_kept_files_stay(
    services: Services, public_report: Report, account: Account
) -> None:
    failed = failed_download(services, public_report)
    delivered = completed_delivery(services, account)
    downloaded = completed_download(services, public_report)
    queued = enqueue_download(services.engine, public_report)
    with services.engine.connect() as connection:
        events = connection.execute(select(func.count()).select_from(audit_events)).scalar_one()
    assert failed.finished_at is not None
    now = failed.finished_at + HISTORY + timedelta(days=1)

    # Without a result retention the file is kept forever, and so is the record naming it.
    forever = CleanupJob(cleanup_steps(services.engine, services.storage, RetentionPolicy(None, HISTORY)))
    removals = by_kind(forever.run_once(now=now))
    assert set(removals["run records past the run history"].items) == {failed.id, delivered.id}
    assert find_run(services.engine, downloaded.id) is not None
    assert find_run(services.engine, queued.id) is not None  # not final: never deleted

    # With one, the file goes first, then its record, in the same pass.
    removals = by_kind(job(services).run_once(now=now))
    assert removals["result files past retention"].count == 1
    assert removals["run records past the run history"].items == (downloaded.id,)
    assert find_run(services.engine, downloaded.id) is None
    assert find_run(services.engine, queued.id) is not None
    with services.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(audit_events)).scalar_one() == events


def test_a_dry_run_lists_everything_and_removes_nothing(
    services: Services, public_report: Report, account: Account
) -> None:
    storage = local(services)
    downloaded = completed_download(services, public_report)
    failed = failed_download(services, public_report)
    leftover = temporary_file(storage, "left", age=timedelta(days=2))
    assert downloaded.finished_at is not None
    now = downloaded.finished_at + HISTORY + timedelta(days=1)

    dry = by_kind(job(services).run_once(dry_run=True, now=now))
    assert dry["result files past retention"].items == (f"run {downloaded.id}: {downloaded.storage_key}",)
    assert dry["temporary files older than a day"].items == (str(leftover),)
    # The file of the download run is still there in a dry run, so its record would stay.
    assert dry["run records past the run history"].items == (failed.id,)
    assert storage.exists(downloaded.storage_key)
    assert leftover.exists()
    assert get_run(services.engine, downloaded.account_id, downloaded.id).expired_at is None
    assert find_run(services.engine, failed.id) is not None


def test_two_jobs_at_once_remove_everything_once_without_errors(
    services: Services, public_report: Report, account: Account, settings: Settings
) -> None:
    storage = local(services)
    downloads = [completed_download(services, public_report) for _ in range(12)]
    failures = [failed_download(services, public_report) for _ in range(12)]
    leftovers = [temporary_file(storage, f"left-{n}", age=timedelta(days=2)) for n in range(12)]
    last = max(run.finished_at for run in [*downloads, *failures] if run.finished_at is not None)
    now = last + HISTORY + timedelta(days=1)
    # Two processes: each with its own engine (connection pool) and storage, as serve and scheduler.
    other = build_services(settings)
    jobs = [job(services), job(other)]
    start = threading.Barrier(2)
    results: list[list[Removal]] = []

    def run(cleanup: CleanupJob) -> None:
        start.wait()
        results.append(cleanup.run_once(now=now))

    threads = [threading.Thread(target=run, args=(cleanup,)) for cleanup in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    other.engine.dispose()

    assert len(results) == 2
    for kind, expected in zip(KINDS, (12, 12, 24), strict=True):
        removals = [by_kind(removal)[kind] for removal in results]
        assert sum(removal.count for removal in removals) == expected, kind
        assert [removal.failed for removal in removals] == [0, 0], kind
        items = [item for removal in removals for item in removal.items]
        assert len(items) == len(set(items)), kind  # nothing counted twice
    assert not any(path.exists() for path in leftovers)
    assert all(find_run(services.engine, run.id) is None for run in [*downloads, *failures])


def test_a_cached_finished_run_answers_expired_once_past_retention(
    settings: Settings, engine: Engine, public_report: Report
) -> None:
    """The status of a finished run is cached forever; its expiry is decided when answered, so a
    poll after the retention shows it expired, without a link, before any cleanup ran, and the
    link issued before answers 410."""
    services = build_services(settings.model_copy(update={"result_retention_seconds": 2}), engine)
    client_id = create_client(engine, public_report.account_id).client_id
    run = completed_download(services, public_report)

    def poll() -> dict[str, Any]:
        return services.report_runs.run_status(run.account_id, None, run.id, client_id=client_id)

    first = poll()
    assert (first["status"], first["expired"], first["expiredAt"]) == ("Completed", False, None)
    link = first["presignedUrl"].removeprefix(settings.public_url)
    assert services.report_runs.finished_runs.get((run.account_id, run.id), None) is not None
    with TestClient(create_app(services, run_workers=False)) as http:
        assert http.get(link).status_code == 200
        expired = wait_for(lambda: (status := poll())["expired"] and status, timeout=30, what="expiry")
        assert expired["status"] == "Completed"
        assert "presignedUrl" not in expired
        assert run.finished_at is not None
        assert expired["expiredAt"] == services.report_runs.describe(run)["expiredAt"]
        gone = http.get(link)
    assert gone.status_code == 410
    assert gone.json()["error"] == "result_expired"
    assert gone.json()["expiredAt"] == expired["expiredAt"]
    assert local(services).exists(run.storage_key)  # no cleanup ran: the answer alone said so


def kinds_of(cleanup: CleanupJob) -> list[str]:
    """The kinds of its steps but the idempotency keys' (there once the deployment has them)."""
    return [step.kind for step in cleanup.steps if step.kind != "idempotency keys past their time"]


def test_the_job_of_the_settings_has_every_step_of_the_local_folder(settings: Settings, engine: Engine) -> None:
    assert kinds_of(cleanup_job(settings, engine)) == list(KINDS)
    unlimited = settings.model_copy(update={"result_retention_seconds": 0, "run_history_days": 0})
    assert kinds_of(cleanup_job(unlimited, engine)) == ["temporary files older than a day"]


def test_nothing_to_do_is_no_error(services: Services) -> None:
    removals = job(services).run_once()
    assert {removal.kind for removal in removals} >= set(KINDS)
    assert all((removal.count, removal.failed) == (0, 0) for removal in removals)


def test_report_runs_in_graphql_show_expired_and_expired_at(
    settings: Settings, engine: Engine, public_report: Report
) -> None:
    services = build_services(settings.model_copy(update={"result_retention_seconds": 3600}), engine)
    fresh = completed_download(services, public_report)
    old = completed_download(services, public_report)
    assert old.finished_at is not None
    with engine.begin() as connection:
        connection.execute(
            update(runs).where(runs.c.id == old.id).values(finished_at=old.finished_at - timedelta(hours=2))
        )
    context = GraphQLContext(public_report.account_id, "some-client", services.report_runs)
    result = graphql_sync(
        build_schema(),
        "query ($r: String!) { reportRuns(reportId: $r) { runId status expired expiredAt } }",
        variable_values={"r": public_report.id},
        context_value=context,
    )
    assert result.errors is None, result.errors
    assert result.data is not None
    by_id = {run["runId"]: run for run in result.data["reportRuns"]}
    assert by_id[fresh.id] == {"runId": fresh.id, "status": "Completed", "expired": False, "expiredAt": None}
    assert by_id[old.id]["expired"] is True
    assert by_id[old.id]["expiredAt"] == format_utc(old.finished_at - timedelta(hours=1), precise=True)


def test_expired_idempotency_keys_are_deleted_before_run_records(services: Services, public_report: Report) -> None:
    run = enqueue_download(services.engine, public_report)
    now = utc_now()
    with services.engine.begin() as connection:
        for key, lifetime in (("old-1", timedelta(0)), ("old-2", timedelta(0)), ("live", timedelta(days=1))):
            remember_idempotency_key(
                connection,
                public_report.account_id,
                key,
                request_hash="0" * 64,
                run_id=run.id,
                joined=False,
                now=now - timedelta(seconds=1),
                lifetime=lifetime,
            )
    cleanup = job(services)
    kinds = [step.kind for step in cleanup.steps]
    assert kinds.index("idempotency keys past their time") < kinds.index("run records past the run history")
    dry = by_kind(cleanup.run_once(dry_run=True, now=now))
    assert dry["idempotency keys past their time"].count == 2
    removals = by_kind(cleanup.run_once(now=now))
    assert removals["idempotency keys past their time"].count == 2
    with services.engine.connect() as connection:
        assert connection.execute(select(idempotency_keys.c.key)).scalars().all() == ["live"]
