"""S3 gone during a run: our S3 result storage (moto over HTTP) cut off before the run writes
anything, and cut off mid-upload (a part already uploaded, held at the ``upload`` fault point).
Either way the run ends Failed as STORAGE_FAILED with a reason that says what happened, within a
bound (botocore's bounded retries, then the failure), and no object, partial or whole, appears.
And a delivery to a customer's bucket with AWS cut off before it starts: DELIVERY_FAILED, its reason,
nothing in the bucket.

The server is cut by closing a TCP forwarder in front of moto (tests/support/tcp_proxy.py): the
test still reaches moto itself to see what it holds. A cut mid-upload also stops the abort of the
upload from reaching S3: its parts stay until a later write of the key (a retry) or the cleanup of
unfinished uploads removes them; the object itself never appears."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from tests.acceptance.test_s3_delivery_flow import set_up as set_up_delivery
from tests.support.cli import running_server
from tests.support.moto_server import DUMMY_KEY, ISOLATED_AWS_ENV, AwsKeys, MotoIam
from tests.support.reports import ALL_FINDINGS_REPORT
from tests.support.runs import enqueue_download
from tests.support.s3_delivery import s3_keys
from tests.support.seed_commands import get_token, poll_until_finished, process_without_link
from tests.support.tcp_proxy import tcp_proxy
from tests.support.waiting import wait_for
from uvm_reporting.database.accounts import create_account
from uvm_reporting.database.engine import open_database
from uvm_reporting.database.reports import Report, create_report
from uvm_reporting.database.runs import get_run
from uvm_reporting.domain.runs import RunRecord, RunState
from uvm_reporting.platform_data.generator import generate_platform_data

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = [pytest.mark.slow, pytest.mark.backends("sqlite"), pytest.mark.timeout(600)]

# Transient failures are retried: twice in all and soon here, so the bound holds.
FEW_QUICK_RETRIES = {"UVM_REPORTING_RUN_MAX_ATTEMPTS": "2", "UVM_REPORTING_RUN_RETRY_BASE_SECONDS": "0.1"}
FAILS_WITHIN_SECONDS = 60  # botocore's standard retries (4 attempts) with their backoff, and margin
AFTER_RETRIES = "Failed after 2 attempts; the last one: "
UNREACHABLE = AFTER_RETRIES + (
    "Writing the result failed: the result storage (S3) could not be reached ({how}). "
    "Start the run again; if it persists, tell the operator."
)
# More than one part of 8 MiB (about 320 bytes a row): the upload is multipart.
FINDINGS_OVER_ONE_PART = 40_000


def server_env(database_url: str, bucket: str, endpoint_url: str, faults: str = "") -> dict[str, str]:
    return {
        "UVM_REPORTING_DATABASE_URL": database_url,
        "UVM_REPORTING_SCHEDULER_IN_SERVE": "false",
        "UVM_REPORTING_STORAGE_URL": f"s3://{bucket}/results",
        "UVM_REPORTING_S3_ENDPOINT_URL": endpoint_url,
        "UVM_REPORTING_FAULT_POINTS": faults,
        **FEW_QUICK_RETRIES,
        "AWS_ACCESS_KEY_ID": DUMMY_KEY,
        "AWS_SECRET_ACCESS_KEY": DUMMY_KEY,
        **ISOLATED_AWS_ENV,
    }


def set_up(database_url: str, findings: int) -> Report:
    engine = open_database(database_url)
    try:
        account = create_account(engine, "Acme Corp")
        generate_platform_data(engine, account.id, findings=findings, seed=6)
        return create_report(engine, account.id, ALL_FINDINGS_REPORT)
    finally:
        engine.dispose()


def finished(database_url: str, report: Report, run: RunRecord, timeout: float) -> RunRecord:
    engine = open_database(database_url)
    try:
        final: RunRecord = wait_for(
            lambda: (r := get_run(engine, report.account_id, run.id)).state.is_final and r,
            timeout=timeout,
            what="the run to end",
        )
        return final
    finally:
        engine.dispose()


def held_objects(s3: S3Client, bucket: str) -> tuple[list[str], list[str]]:
    objects = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    uploads = [item["Key"] for item in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    return objects, uploads


def test_s3_gone_before_the_run_writes_fails_it_as_storage_failed(
    tmp_path: Path, database_url: str, moto_endpoint: str, moto_s3: S3Client, moto_bucket: str
) -> None:
    report = set_up(database_url, 50)
    upstream = urlsplit(moto_endpoint).port
    assert upstream is not None
    with tcp_proxy(upstream) as proxy:
        env = server_env(database_url, moto_bucket, proxy.url)
        with running_server(tmp_path / "var", port=None, **env) as (_, server):
            proxy.stop()
            engine = open_database(database_url)
            try:
                run = enqueue_download(engine, report)
            finally:
                engine.dispose()
            started = time.monotonic()
            failed = finished(database_url, report, run, timeout=FAILS_WITHIN_SECONDS + 30)
            took = time.monotonic() - started
            assert server.poll() is None
    print(f"Failed {took:.1f}s after S3 went: {failed.error_message}")
    assert failed.state is RunState.FAILED, failed
    assert failed.error_code == "STORAGE_FAILED"
    assert failed.error_message == UNREACHABLE.format(how="no connection could be made")
    assert took < FAILS_WITHIN_SECONDS, f"failed after {took:.1f}s"
    assert held_objects(moto_s3, moto_bucket) == ([], [])


def test_s3_gone_mid_upload_fails_the_run_as_storage_failed_and_no_object_appears(
    tmp_path: Path, database_url: str, moto_endpoint: str, moto_s3: S3Client, moto_bucket: str
) -> None:
    report = set_up(database_url, FINDINGS_OVER_ONE_PART)
    gate = tmp_path / "upload-gate"
    upstream = urlsplit(moto_endpoint).port
    assert upstream is not None
    with tcp_proxy(upstream) as proxy:
        env = server_env(database_url, moto_bucket, proxy.url, faults=f"upload=pause:{gate}")
        with running_server(tmp_path / "var", port=None, **env) as (_, server):
            engine = open_database(database_url)
            try:
                run = enqueue_download(engine, report)
            finally:
                engine.dispose()
            wait_for(gate.with_name(gate.name + ".reached").exists, timeout=120, what="the first part to be uploaded")
            uploading = held_objects(moto_s3, moto_bucket)
            proxy.stop()
            gate.with_name(gate.name + ".release").touch()
            started = time.monotonic()
            failed = finished(database_url, report, run, timeout=FAILS_WITHIN_SECONDS + 30)
            took = time.monotonic() - started
            assert server.poll() is None
    print(f"Failed {took:.1f}s after S3 went: {failed.error_message}")
    key = f"results/{run.storage_key}"
    assert uploading == ([], [key])  # mid-upload indeed: a part is in, nothing published
    assert failed.state is RunState.FAILED, failed
    assert failed.error_code == "STORAGE_FAILED"
    assert failed.error_message in {
        UNREACHABLE.format(how=how) for how in ("no connection could be made", "the connection was closed")
    }, failed.error_message
    assert took < FAILS_WITHIN_SECONDS, f"failed after {took:.1f}s"
    objects, uploads = held_objects(moto_s3, moto_bucket)
    assert objects == []  # no object, partial or whole
    assert uploads in ([], [key])  # the abort could not reach S3 either (module docstring)


def test_aws_gone_before_a_delivery_fails_it_as_delivery_failed(
    tmp_path: Path, moto_iam: MotoIam, deployment_keys: AwsKeys
) -> None:
    data_dir, ids, customer = set_up_delivery(tmp_path, moto_iam, deployment_keys)
    upstream = urlsplit(moto_iam.endpoint_url).port
    assert upstream is not None
    with tcp_proxy(upstream) as proxy:
        env = {**customer["env"], "UVM_REPORTING_S3_ENDPOINT_URL": proxy.url, **FEW_QUICK_RETRIES}
        with running_server(data_dir, port=None, **env) as (base_url, server):
            token = get_token(base_url, ids)
            proxy.stop()
            started = time.monotonic()
            run_id = process_without_link(base_url, ids, token)["data"]["processReport"]["runId"]
            status = poll_until_finished(base_url, ids, token, run_id)
            took = time.monotonic() - started
            assert server.poll() is None
    print(f"Failed {took:.1f}s after AWS went: {status.get('errorMessage')}")
    assert status["status"] == "Failed", status
    assert status["errorCode"] == "DELIVERY_FAILED"
    assert status["errorMessage"].startswith(
        AFTER_RETRIES + "ENDPOINT_UNREACHABLE: Could not reach AWS STS while assuming the role "
    )
    assert "(no connection could be made)" in status["errorMessage"]
    assert took < FAILS_WITHIN_SECONDS, f"failed after {took:.1f}s"
    assert s3_keys(moto_iam, customer["bucket"]) == []
