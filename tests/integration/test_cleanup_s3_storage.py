"""The cleanup job over our own storage on S3 (a moto server over HTTP): it deletes expired
result objects and aborts unfinished multipart uploads older than a day under our prefix only,
and never touches a customer's bucket. (The database side runs on both backends in
test_cleanup_job.py; here SQLite suffices.)"""

from __future__ import annotations

from datetime import timedelta

import pytest
from botocore.exceptions import ClientError
from mypy_boto3_s3 import S3Client
from sqlalchemy import Engine

from tests.support.moto_server import DUMMY_KEYS, create_bucket, unique_name
from tests.support.runs import enqueue_download
from uvm_reporting.database.reports import Report
from uvm_reporting.database.runs import claim_next_run, complete_run, get_run
from uvm_reporting.domain.runs import RunResult
from uvm_reporting.services import build_services, cleanup_job
from uvm_reporting.settings import Settings
from uvm_reporting.storage.s3 import S3ResultStorage

pytestmark = pytest.mark.backends("sqlite")

PREFIX = "uvm/results"


@pytest.fixture
def s3_settings(settings: Settings, moto_endpoint: str, moto_bucket: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", DUMMY_KEYS.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", DUMMY_KEYS.secret_access_key)
    return settings.model_copy(update={"storage_url": f"s3://{moto_bucket}/{PREFIX}", "s3_endpoint_url": moto_endpoint})


def uploads(s3: S3Client, bucket: str) -> set[str]:
    return {upload["Key"] for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])}


def objects(s3: S3Client, bucket: str) -> set[str]:
    return {item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


def test_an_expired_result_object_is_deleted_from_our_prefix_only(
    s3_settings: Settings, engine: Engine, public_report: Report, moto_s3: S3Client, moto_bucket: str
) -> None:
    services = build_services(s3_settings, engine)
    assert isinstance(services.storage, S3ResultStorage)
    customer = create_bucket(moto_s3, unique_name("customer"))
    moto_s3.put_object(Bucket=customer, Key=f"uvm/results/{public_report.account_id}/delivered.csv", Body=b"theirs")
    moto_s3.put_object(Bucket=moto_bucket, Key="not-ours/report.csv", Body=b"someone else's")
    run = enqueue_download(engine, public_report)
    assert claim_next_run(engine, "w", lease_seconds=60, max_attempts=3) is not None
    with services.storage.open_for_write(run.storage_key) as (writer, _):
        writer.write(b"id\nf-1\n")
    assert complete_run(engine, run.id, "w", RunResult(1, 7, "0" * 64, run.storage_key))
    finished = get_run(engine, run.account_id, run.id)
    assert finished.finished_at is not None
    ours = f"{PREFIX}/{run.storage_key}"
    assert objects(moto_s3, moto_bucket) == {ours, "not-ours/report.csv"}

    now = finished.finished_at + timedelta(days=7, seconds=1)
    removals = {removal.kind: removal for removal in cleanup_job(s3_settings, engine).run_once(now=now)}

    assert removals["result files past retention"].count == 1
    assert objects(moto_s3, moto_bucket) == {"not-ours/report.csv"}
    assert objects(moto_s3, customer) == {f"uvm/results/{public_report.account_id}/delivered.csv"}
    assert get_run(engine, run.account_id, run.id).expired_at == now


def test_unfinished_uploads_older_than_a_day_are_aborted_under_our_prefix_only(
    s3_settings: Settings, engine: Engine, moto_s3: S3Client, moto_bucket: str
) -> None:
    customer = create_bucket(moto_s3, unique_name("customer"))
    ours = f"{PREFIX}/results/account/run.csv"
    beside = [f"{PREFIX}-other/run.csv", "other/run.csv"]  # same bucket, not under our prefix
    for key in [ours, *beside]:
        moto_s3.create_multipart_upload(Bucket=moto_bucket, Key=key)
    moto_s3.create_multipart_upload(Bucket=customer, Key=ours)
    job = cleanup_job(s3_settings, engine)
    kind = "unfinished multipart uploads older than a day"
    # Timed from when the server says the upload began (moto answers one fixed time for all).
    began = max(upload["Initiated"] for upload in moto_s3.list_multipart_uploads(Bucket=moto_bucket)["Uploads"])

    # Begun less than a day before: an upload in progress, left alone.
    fresh = {removal.kind: removal for removal in job.run_once(now=began + timedelta(hours=23))}
    assert fresh[kind].count == 0
    assert uploads(moto_s3, moto_bucket) == {ours, *beside}

    dry = {removal.kind: removal for removal in job.run_once(dry_run=True, now=began + timedelta(hours=25))}
    assert dry[kind].count == 1
    assert dry[kind].items[0].startswith(f"s3://{moto_bucket}/{ours} (upload ")
    assert uploads(moto_s3, moto_bucket) == {ours, *beside}

    later = {removal.kind: removal for removal in job.run_once(now=began + timedelta(hours=25))}
    assert later[kind].count == 1
    assert uploads(moto_s3, moto_bucket) == set(beside)
    assert uploads(moto_s3, customer) == {ours}


def test_aborting_an_upload_another_job_aborted_is_no_error(s3_settings: Settings, engine: Engine) -> None:
    storage = build_services(s3_settings, engine).storage
    assert isinstance(storage, S3ResultStorage)
    key = f"{PREFIX}/results/account/twice.csv"
    upload_id = storage.client.create_multipart_upload(Bucket=storage.bucket, Key=key)["UploadId"]
    assert storage.abort_upload(key, upload_id)
    try:
        assert not storage.abort_upload(key, upload_id)
    except ClientError as error:  # pragma: no cover - shows what the server answered
        raise AssertionError(error.response) from error
