"""Every error answer is JSON that names its request id; nothing internal reaches a client.

:class:`ErrorAnswersMiddleware` sits just inside the access log (which made the request id):

- it adds ``requestId`` to each JSON error answer: to every GraphQL error's ``extensions``, or
  beside ``error`` in the other routes' answers; the routes need not know about it;
- an exception no route handled becomes a 500 with a fixed message and the request id; its
  traceback goes to the log only, on a line with the same id;
- but a database that cannot be reached (stopped, restarting) is a 503 ``UNAVAILABLE`` with
  ``Retry-After``: the request may be sent again shortly.

:func:`refusal` shapes the refusals of the middleware layer (e.g. the body limits) like the
routes' own answers, and :func:`http_error` does so for Starlette's 404 and 405.
"""

from __future__ import annotations

import json
import logging
import re
from http import HTTPStatus
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from uvm_reporting.api.access_log import note, request_id_of
from uvm_reporting.database.engine import database_unavailable
from uvm_reporting.errors import Unavailable
from uvm_reporting.log_lines import escape_controls

log = logging.getLogger("uvm_reporting.api.errors")

GRAPHQL_PATH = "/api/graphql"
INTERNAL_ERROR_MESSAGE = "Internal server error. The operator's log has the details under this requestId."
UNAVAILABLE_MESSAGE = "The service cannot reach its database right now; try again after Retry-After seconds."
UNAVAILABLE_RETRY_AFTER_SECONDS = 1
# An error answer larger than this is passed on as it is (none of ours comes close).
_MAX_REWRITTEN_BYTES = 1024 * 1024
_ERRORS_MEMBER = re.compile(rb'"errors"\s*:\s*\[')


def refusal(scope: Scope, status: int, code: str, message: str) -> JSONResponse:
    """A refusal of the request of ``scope``, shaped as its route answers errors."""
    request_id = request_id_of(scope)
    body: dict[str, Any]
    if scope.get("path") == GRAPHQL_PATH:
        body = {"errors": [{"message": message, "extensions": {"code": code.upper(), "requestId": request_id}}]}
    else:
        body = {"error": code.lower(), "message": message, "requestId": request_id}
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def unavailable(scope: Scope) -> JSONResponse:
    """The 503 of a request the database could not serve (api and GraphQL alike)."""
    response = refusal(scope, 503, Unavailable.code, UNAVAILABLE_MESSAGE)
    response.headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_SECONDS)
    return response


async def http_error(request: Request, error: Exception) -> Response:
    """Starlette's own refusals (unknown path: 404, wrong method: 405) as JSON."""
    assert isinstance(error, HTTPException)
    phrase = HTTPStatus(error.status_code).phrase
    response = refusal(request.scope, error.status_code, phrase.lower().replace(" ", "_"), f"{phrase}.")
    response.headers.update(error.headers or {})
    return response


class ErrorAnswersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        graphql = scope["path"] == GRAPHQL_PATH
        held: Message | None = None  # the start of a JSON answer that may need the id
        chunks: list[bytes] = []
        started = False  # whether the client got a response start

        async def send_with_id(message: Message) -> None:
            nonlocal held, started
            if message["type"] == "http.response.start":
                status = message["status"]
                if (status >= 400 or graphql) and _is_json(message):
                    held = message
                    return
                started = True
                await send(message)
                return
            if held is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False) and sum(map(len, chunks)) <= _MAX_REWRITTEN_BYTES:
                return
            start, held = held, None
            body = b"".join(chunks)
            if not message.get("more_body", False):
                rewritten, codes = _with_request_id(body, request_id, is_error=start["status"] >= 400)
                if rewritten is not body:  # an answer without errors goes on as it came
                    body = rewritten
                    start = {**start, "headers": _with_length(start.get("headers", ()), len(body))}
                if codes:
                    note(scope, f"errors={','.join(codes)}")  # on the access-log line, with the id
            started = True
            await send(start)
            await send({**message, "body": body})

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as error:
            if database_unavailable(error) and not started:
                log.warning("request %s: the database is unavailable: %s", request_id, error.__class__.__name__)
                note(scope, "errors=unavailable")
                await unavailable(scope)(scope, receive, send)
                return
            log.exception(
                "request %s failed: %s %s",
                request_id,
                escape_controls(scope["method"]),
                escape_controls(scope["path"]),
            )
            if started:
                raise  # the server closes the connection: nothing else can be said now
            note(scope, "errors=internal_server_error")
            await refusal(scope, 500, "internal_server_error", INTERNAL_ERROR_MESSAGE)(scope, receive, send)


def _is_json(start: Message) -> bool:
    return any(
        name.lower() == b"content-type" and value.startswith(b"application/json")
        for name, value in start.get("headers", ())
    )


def _with_length(headers: Any, length: int) -> list[tuple[bytes, bytes]]:
    kept = [(name, value) for name, value in headers if name.lower() != b"content-length"]
    return [*kept, (b"content-length", str(length).encode())]


def _with_request_id(body: bytes, request_id: str, *, is_error: bool) -> tuple[bytes, list[str]]:
    """``body`` with ``request_id`` in each GraphQL error, or beside a route's ``error``; and
    the error codes it holds."""
    if not is_error and not _ERRORS_MEMBER.search(body):
        return body, []  # a GraphQL answer without errors: the common case, left untouched
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return body, []
    if not isinstance(payload, dict):
        return body, []
    codes: list[str] = []
    errors = payload.get("errors")
    if isinstance(errors, list):
        for error in errors:
            if isinstance(error, dict):
                extensions = error.setdefault("extensions", {})
                if isinstance(extensions, dict):
                    extensions.setdefault("requestId", request_id)
                    codes.append(str(extensions.get("code", "-")))
    elif is_error:
        payload.setdefault("requestId", request_id)
        codes.append(str(payload.get("error", "-")))
    else:
        return body, []
    return json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode(), codes
