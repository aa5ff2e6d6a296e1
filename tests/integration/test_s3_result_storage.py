"""Our own storage on S3 (UVM_REPORTING_STORAGE_URL=s3://...): runs are written there and the
download link is an S3 presigned GET that expires."""

from __future__ import annotations

import csv
import io
import urllib.request
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from mypy_boto3_s3 import S3Client
from sqlalchemy import Engine
from starlette.testclient import TestClient

import uvm_reporting.storage.s3.multipart as s3_module
from tests.support.moto_server import DUMMY_KEYS
from tests.support.waiting import wait_for
from uvm_reporting.api.app import create_app
from uvm_reporting.database.reports import Report
from uvm_reporting.database.runs import get_run
from uvm_reporting.domain.timestamps import utc_now
from uvm_reporting.errors import RunErrorCode, StorageFailed, run_failure
from uvm_reporting.services import build_services
from uvm_reporting.settings import Settings
from uvm_reporting.storage.s3 import S3ObjectWriter, S3ResultStorage


@pytest.fixture
def s3_settings(settings: Settings, moto_endpoint: str, moto_bucket: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    # The deployment's own identity comes from the standard credential chain: here, env vars.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", DUMMY_KEYS.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", DUMMY_KEYS.secret_access_key)
    return settings.model_copy(
        update={
            "storage_url": f"s3://{moto_bucket}/uvm/results",
            "s3_endpoint_url": moto_endpoint,
            "download_link_lifetime_seconds": 600,
        }
    )


def test_a_download_run_lands_in_s3_behind_a_presigned_url(
    s3_settings: Settings, engine: Engine, public_report: Report, moto_bucket: str
) -> None:
    services = build_services(s3_settings, engine)
    assert isinstance(services.storage, S3ResultStorage)
    with TestClient(create_app(services)) as http:
        assert http.get("/downloads/anything?expires=1&signature=x").status_code == 404  # no local route
        started = services.report_runs.process_report(
            public_report.account_id, public_report.id, presigned_url=True, requested_by="test"
        )
        wait_for(
            lambda: get_run(engine, public_report.account_id, started["runId"]).state.is_final, what="the run to finish"
        )
    status = services.report_runs.run_status(public_report.account_id, public_report.id, started["runId"])
    assert status["status"] == "Completed", status
    url = status["presignedUrl"]
    assert url.startswith(s3_settings.s3_endpoint_url or "")
    assert f"/{moto_bucket}/uvm/results/results/{public_report.account_id}/{started['runId']}.csv" in url
    expires_in = int(parse_qs(urlsplit(url).query)["X-Amz-Expires"][0])
    assert expires_in == 600
    assert status["presignedUrlExpiresAt"] <= (utc_now() + timedelta(seconds=601)).isoformat()
    with urllib.request.urlopen(url, timeout=10) as response:
        body = response.read()
        disposition = response.headers["Content-Disposition"]
    assert "attachment" in disposition
    assert "all-findings" in disposition
    rows = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
    assert len(rows) == 121 == status["rowCount"] + 1
    assert len(body) == status["sizeBytes"]


def test_a_result_over_the_part_limit_is_a_storage_failure(
    moto_s3: S3Client, moto_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_module, "MAX_PARTS", 1)
    writer = S3ObjectWriter(moto_s3, moto_bucket, part_size=s3_module.MIN_PART_SIZE, delivery=False)
    with pytest.raises(StorageFailed) as raised, writer.open_for_write("too-many-parts.csv") as (stream, _written):
        stream.write(b"x" * (2 * s3_module.MIN_PART_SIZE + 1))
    failure = run_failure(raised.value)
    assert failure.code is RunErrorCode.STORAGE_FAILED
    assert "more than 1 parts" in failure.message
    assert "Contents" not in moto_s3.list_objects_v2(Bucket=moto_bucket)  # nothing half-written is visible
