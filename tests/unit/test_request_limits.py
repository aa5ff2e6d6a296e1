"""The body limits and error answers of the ASGI middleware layer, against a bare ASGI app:
what the route would have been given, and what the client gets."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from uvm_reporting.api.access_log import AccessLogMiddleware
from uvm_reporting.api.error_answers import INTERNAL_ERROR_MESSAGE, ErrorAnswersMiddleware
from uvm_reporting.api.request_limits import BodyLimits, RequestLimitsMiddleware

LIMITS = BodyLimits(default=1000, per_path={"/api/graphql": 64 * 1024, "/oauth2/token": 100})


class Client:
    """Feeds a request to an ASGI app and keeps what it answered and what it read."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.receive_calls = 0
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        self.receive_calls += 1
        if not self.chunks:
            return {"type": "http.disconnect"}
        chunk = self.chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(self.chunks)}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        status: int = self.sent[0]["status"]
        return status

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"])

    def json(self) -> Any:
        return json.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))


def stack(
    route: Callable[[Scope, Receive, Send], Awaitable[None]],
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The app's middleware, in the order app.py puts them, around ``route``."""
    return AccessLogMiddleware(ErrorAnswersMiddleware(RequestLimitsMiddleware(route, LIMITS)))


def call(
    route: Callable[[Scope, Receive, Send], Awaitable[None]],
    path: str,
    chunks: list[bytes],
    headers: list[tuple[bytes, bytes]],
) -> Client:
    client = Client(chunks)
    scope = {"type": "http", "method": "POST", "path": path, "headers": headers, "client": ("127.0.0.1", 1)}

    async def run() -> None:
        await stack(route)(scope, client.receive, client.send)

    asyncio.run(run())
    return client


async def read_all_then_answer(scope: Scope, receive: Receive, send: Send) -> None:
    """A route that reads the whole body, as Request.body() does, then answers how much it got."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = json.dumps({"read": size}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def test_an_oversize_content_length_is_refused_before_anything_reads_the_body() -> None:
    eight_mib = 8 * 1024 * 1024
    client = call(read_all_then_answer, "/api/graphql", [b"x" * 10], [(b"content-length", str(eight_mib).encode())])
    assert client.status == 413
    assert client.receive_calls == 0
    body = client.json()
    error = body["errors"][0]
    assert error["extensions"]["code"] == "REQUEST_TOO_LARGE"
    assert "65536 bytes" in error["message"]
    assert error["extensions"]["requestId"] == client.headers[b"x-request-id"].decode()


@pytest.mark.parametrize(("path", "limit"), [("/oauth2/token", 100), ("/anything/else", 1000)])
def test_each_path_has_its_limit(path: str, limit: int) -> None:
    within = call(read_all_then_answer, path, [b"x" * limit], [(b"content-length", str(limit).encode())])
    assert within.status == 200
    over = call(read_all_then_answer, path, [b"x"], [(b"content-length", str(limit + 1).encode())])
    assert over.status == 413
    assert over.json() == {
        "error": "request_too_large",
        "message": f"The request body is larger than {limit} bytes, the limit of this endpoint.",
        "requestId": over.headers[b"x-request-id"].decode(),
    }


def test_a_chunked_body_is_cut_off_once_past_the_limit() -> None:
    chunks = [b"x" * 400] * 100  # 40,000 bytes, no Content-Length
    client = call(read_all_then_answer, "/anything", chunks, [(b"transfer-encoding", b"chunked")])
    assert client.status == 413
    assert client.receive_calls == 3  # 1,200 bytes: the third chunk passed the limit of 1,000
    within = call(read_all_then_answer, "/anything", [b"x" * 400] * 2, [(b"transfer-encoding", b"chunked")])
    assert within.json() == {"read": 800}


@pytest.mark.parametrize("length", [b"12abc", b"-1", b""])
def test_a_content_length_that_is_no_length_is_a_400(length: bytes) -> None:
    client = call(read_all_then_answer, "/anything", [b""], [(b"content-length", length)])
    assert client.status == 400
    assert client.receive_calls == 0


async def failing_route(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError(
        "(sqlite3.OperationalError) no such table: runs [SQL: SELECT * FROM runs] /srv/var/uvm-reporting.sqlite3"
    )


def test_an_unhandled_error_is_a_500_that_tells_only_the_request_id(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        client = call(failing_route, "/oauth2/token", [b""], [(b"content-length", b"0")])
    assert client.status == 500
    request_id = client.headers[b"x-request-id"].decode()
    assert client.json() == {
        "error": "internal_server_error",
        "message": INTERNAL_ERROR_MESSAGE,
        "requestId": request_id,
    }
    # The details are in the log, on a line with the same id, and the access log says 500.
    failure = next(r for r in caplog.records if r.name == "uvm_reporting.api.errors")
    assert request_id in failure.getMessage()
    assert failure.exc_info is not None
    access = [r.getMessage() for r in caplog.records if r.name == "uvm_reporting.access"]
    assert access[0].startswith(request_id)
    assert '"POST /oauth2/token" 500' in access[0]
    assert access[0].endswith(" errors=internal_server_error")


async def graphql_errors_route(scope: Scope, receive: Receive, send: Send) -> None:
    body = json.dumps({"data": None, "errors": [{"message": "no", "extensions": {"code": "NOT_FOUND"}}]}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def test_graphql_errors_carry_the_request_id_in_their_extensions(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        client = call(graphql_errors_route, "/api/graphql", [b"{}"], [(b"content-length", b"2")])
    request_id = client.headers[b"x-request-id"].decode()
    assert client.json()["errors"][0]["extensions"] == {"code": "NOT_FOUND", "requestId": request_id}
    access = [r.getMessage() for r in caplog.records if r.name == "uvm_reporting.access"]
    assert access == [f'{request_id} 127.0.0.1 "POST /api/graphql" 200 {access[0].split()[5]} errors=NOT_FOUND']
    assert int(client.headers[b"content-length"]) == len(client.sent[1]["body"])


def test_an_answer_without_errors_is_passed_on_untouched() -> None:
    client = call(read_all_then_answer, "/api/graphql", [b"{}"], [(b"content-length", b"2")])
    assert client.sent[1]["body"] == b'{"read": 2}'
