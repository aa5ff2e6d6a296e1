"""/readyz with our storage in S3 (moto over HTTP): ready while the bucket answers a HEAD, not
ready when the bucket does not exist or the S3 server is gone, and quickly either way."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from tests.support.moto_server import DUMMY_KEYS, create_bucket, running_moto_server, s3_client, unique_name
from uvm_reporting.api.app import create_app
from uvm_reporting.services import build_services
from uvm_reporting.settings import Settings

pytestmark = pytest.mark.backends("sqlite")


def readyz_in_s3(settings: Settings, engine: Engine, endpoint_url: str, bucket: str) -> TestClient:
    services = build_services(
        settings.model_copy(update={"storage_url": f"s3://{bucket}/results", "s3_endpoint_url": endpoint_url}), engine
    )
    return TestClient(create_app(services, run_workers=False))


@pytest.fixture(autouse=True)
def deployment_identity(aws_isolation: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", DUMMY_KEYS.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", DUMMY_KEYS.secret_access_key)


def test_ready_while_the_bucket_answers_then_not_once_the_s3_server_stops(settings: Settings, engine: Engine) -> None:
    with running_moto_server() as endpoint_url:
        bucket = create_bucket(s3_client(endpoint_url, DUMMY_KEYS), unique_name("uvm-ready"))
        http = readyz_in_s3(settings, engine, endpoint_url, bucket)
        ready = http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "storage": "ok"}
    started = time.monotonic()
    gone = http.get("/readyz")
    took = time.monotonic() - started
    assert gone.status_code == 503, gone.text
    assert gone.headers["retry-after"] == "5"
    assert gone.json()["checks"]["storage"].startswith("failed: ")
    assert gone.json()["checks"]["database"] == "ok"
    assert took < 3, f"/readyz took {took:.1f}s"
    assert http.get("/healthz").status_code == 200


def test_not_ready_when_our_bucket_does_not_exist(settings: Settings, engine: Engine, moto_endpoint: str) -> None:
    http = readyz_in_s3(settings, engine, moto_endpoint, unique_name("uvm-no-such-bucket"))
    refused = http.get("/readyz")
    assert refused.status_code == 503, refused.text
    assert refused.json()["checks"]["storage"] == "failed: ClientError"
