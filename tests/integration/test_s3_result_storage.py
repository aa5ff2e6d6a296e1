"""Our own storage on S3 (UVM_REPORTING_STORAGE_URL=s3://...): runs are written there and the
download link is our own, which redirects to a short-lived S3 presigned GET while the access it
was issued under lasts."""

from __future__ import annotations

import csv
import io
import urllib.request
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from mypy_boto3_s3 import S3Client
from sqlalchemy import Engine
from starlette.testclient import TestClient

import uvm_reporting.storage.s3.multipart as s3_module
from tests.support.moto_server import DUMMY_KEYS
from tests.support.waiting import wait_for
from uvm_reporting.api.app import create_app
from uvm_reporting.api.download_routes import ACCESS_ENDED, S3_REDIRECT_SECONDS
from uvm_reporting.auth.api_client_credentials import create_client
from uvm_reporting.database.api_clients import revoke_client
from uvm_reporting.database.reports import Report
from uvm_reporting.database.runs import get_run
from uvm_reporting.domain.timestamps import utc_now
from uvm_reporting.errors import RunErrorCode, StorageFailed, run_failure
from uvm_reporting.expiring_cache import ACCESS_TTL_SECONDS
from uvm_reporting.services import Services, build_services
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


def _completed_download(services: Services, report: Report) -> dict[str, Any]:
    """A finished download run of ``report``, as a new API client of its account sees it."""
    client_id = create_client(services.engine, report.account_id).client_id
    started = services.report_runs.process_report(report.account_id, report.id, presigned_url=True, requested_by="test")
    wait_for(
        lambda: get_run(services.engine, report.account_id, started["runId"]).state.is_final,
        what="the run to finish",
    )
    status = services.report_runs.run_status(report.account_id, report.id, started["runId"], client_id=client_id)
    assert status["status"] == "Completed", status
    return status | {"clientId": client_id}


def _path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_a_download_run_lands_in_s3_behind_our_link_that_redirects_to_a_short_presigned_get(
    s3_settings: Settings, engine: Engine, public_report: Report, moto_bucket: str
) -> None:
    services = build_services(s3_settings, engine)
    assert isinstance(services.storage, S3ResultStorage)
    with TestClient(create_app(services), follow_redirects=False) as http:
        assert http.get("/downloads/anything?client=x&expires=1&signature=x").status_code == 403
        status = _completed_download(services, public_report)
        url = status["presignedUrl"]
        assert url.startswith(f"{s3_settings.public_url}/downloads/{status['runId']}?client={status['clientId']}&")
        assert status["presignedUrlExpiresAt"] <= (utc_now() + timedelta(seconds=601)).isoformat()
        redirect = http.get(_path_of(url))
        head = http.head(_path_of(url))
    assert redirect.status_code == 307, redirect.text
    assert head.status_code == 307
    with urllib.request.urlopen(urllib.request.Request(head.headers["location"], method="HEAD"), timeout=10) as answer:
        assert int(answer.headers["Content-Length"]) == status["sizeBytes"]
    assert redirect.headers["cache-control"] == "no-store"
    presigned = redirect.headers["location"]
    assert presigned.startswith(s3_settings.s3_endpoint_url or "")
    assert f"/{moto_bucket}/uvm/results/results/{public_report.account_id}/{status['runId']}.csv" in presigned
    assert int(parse_qs(urlsplit(presigned).query)["X-Amz-Expires"][0]) == S3_REDIRECT_SECONDS
    with urllib.request.urlopen(presigned, timeout=10) as response:
        body = response.read()
        disposition = response.headers["Content-Disposition"]
    assert "attachment" in disposition
    assert "all-findings" in disposition
    rows = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
    assert len(rows) == 121 == status["rowCount"] + 1
    assert len(body) == status["sizeBytes"]


def test_an_s3_link_stops_redirecting_once_its_client_is_revoked(
    s3_settings: Settings, engine: Engine, public_report: Report
) -> None:
    """Before, the link was a presigned GET of S3 that kept working for its whole lifetime."""
    services = build_services(s3_settings, engine)
    with TestClient(create_app(services), follow_redirects=False) as http:
        status = _completed_download(services, public_report)
        link = _path_of(status["presignedUrl"])
        assert http.get(link).status_code == 307
        revoke_client(engine, status["clientId"])
        refused = wait_for(
            lambda: (answer := http.get(link)).status_code == 403 and answer,
            timeout=ACCESS_TTL_SECONDS + 10,
            what="the revoked client's link to be refused",
        )
    assert "location" not in refused.headers
    assert refused.json() == {
        "error": "forbidden",
        "message": ACCESS_ENDED,
        "requestId": refused.headers["x-request-id"],
    }


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
