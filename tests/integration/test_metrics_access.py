"""Who may read /metrics: this API faces the internet. Open in development; in production only
with UVM_REPORTING_METRICS_TOKEN, as a bearer token; never with a wrong one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from tests.support.prometheus import parse_samples, value
from uvm_reporting.api.app import create_app
from uvm_reporting.services import build_services
from uvm_reporting.settings import Settings

pytestmark = pytest.mark.backends("sqlite")


def client(settings: Settings, engine: Engine, **changes: object) -> Iterator[TestClient]:
    services = build_services(settings.model_copy(update=changes), engine)
    with TestClient(create_app(services, run_workers=False)) as http:
        yield http


@pytest.fixture
def development(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    yield from client(settings, engine)


@pytest.fixture
def production(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    yield from client(settings, engine, profile="production", require_https=False, generate_keys=True)


@pytest.fixture
def production_with_token(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    yield from client(
        settings, engine, profile="production", require_https=False, generate_keys=True, metrics_token="s3cret-token"
    )


def test_development_serves_metrics_to_anyone(development: TestClient) -> None:
    answer = development.get("/metrics")
    assert answer.status_code == 200
    assert value(parse_samples(answer.text), "uvm_reporting_queue_depth") == 0


def test_production_without_a_token_does_not_serve_metrics(production: TestClient) -> None:
    assert production.get("/metrics").status_code == 404
    assert production.get("/metrics", headers={"Authorization": "Bearer anything"}).status_code == 404


def test_production_with_a_token_asks_for_it(production_with_token: TestClient) -> None:
    http = production_with_token
    assert http.get("/metrics").status_code == 401
    assert http.get("/metrics").headers["www-authenticate"] == 'Bearer realm="metrics"'
    assert http.get("/metrics", headers={"Authorization": "Bearer s3cret-tokeN"}).status_code == 401
    assert http.get("/metrics", headers={"Authorization": "Basic s3cret-token"}).status_code == 401
    answer = http.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
    assert answer.status_code == 200
    assert value(parse_samples(answer.text), "uvm_reporting_database_up") == 1


def test_readyz_and_healthz_stay_open_in_production(production: TestClient) -> None:
    assert production.get("/healthz").status_code == 200
    assert production.get("/readyz").json() == {"status": "ready", "checks": {"database": "ok", "storage": "ok"}}
