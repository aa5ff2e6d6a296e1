"""A database that cannot be reached is told apart from a statement that failed: the first is a
503 ``UNAVAILABLE`` with ``Retry-After`` (the request may be sent again), the second stays a 500.
The real drivers' errors: PostgreSQL on a port where nobody listens, SQLite's own refusals."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from tests.support.ports import free_port
from uvm_reporting.api.access_log import AccessLogMiddleware
from uvm_reporting.api.error_answers import ErrorAnswersMiddleware
from uvm_reporting.database.engine import database_unavailable


@pytest.fixture
def stopped_postgres() -> Iterator[Engine]:
    engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/absent")
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_memory() -> Iterator[Engine]:
    engine = create_engine("sqlite://")
    yield engine
    engine.dispose()


def failure_of(engine: Engine, statement: str = "SELECT 1") -> OperationalError:
    with pytest.raises(OperationalError) as raised, engine.connect() as connection:
        connection.execute(text(statement))
    return raised.value


def test_a_refused_connection_is_unavailable_and_a_failed_statement_is_not(
    stopped_postgres: Engine, sqlite_memory: Engine
) -> None:
    assert database_unavailable(failure_of(stopped_postgres))
    assert not database_unavailable(failure_of(sqlite_memory, "SELECT * FROM no_such_table"))
    assert not database_unavailable(RuntimeError("a bug"))


def app_on(engine: Engine) -> Starlette:
    def query(_: Request) -> Response:
        with engine.connect() as connection:
            connection.execute(text("SELECT * FROM no_such_table"))
        return Response("unreachable")

    app = Starlette(
        routes=[Route("/api/graphql", query, methods=["POST"]), Route("/oauth2/token", query, methods=["POST"])]
    )
    app.add_middleware(ErrorAnswersMiddleware)
    app.add_middleware(AccessLogMiddleware)
    return app


def test_requests_the_database_cannot_serve_are_answered_503_with_retry_after(stopped_postgres: Engine) -> None:
    client = TestClient(app_on(stopped_postgres), raise_server_exceptions=False)
    graphql = client.post("/api/graphql", json={"query": "{ x }"})
    token = client.post("/oauth2/token")
    assert (graphql.status_code, graphql.headers["Retry-After"]) == (503, "1")
    assert graphql.json()["errors"][0]["extensions"]["code"] == "UNAVAILABLE"
    assert (token.status_code, token.headers["Retry-After"]) == (503, "1")
    assert token.json()["error"] == "unavailable"
    assert token.json()["requestId"]


def test_a_failed_statement_stays_an_internal_error(sqlite_memory: Engine) -> None:
    answer = TestClient(app_on(sqlite_memory), raise_server_exceptions=False).post("/oauth2/token")
    assert answer.status_code == 500
    assert "Retry-After" not in answer.headers
