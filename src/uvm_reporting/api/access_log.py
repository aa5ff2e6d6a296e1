"""An access log that never writes query strings: a download link's signature is a secret.

One line per request. A route adds what the line should say about the call (the GraphQL fields,
account and client) with :func:`note`; nothing is formatted when INFO is off.

Every request gets a request id, sent back in ``X-Request-Id`` and written on its log line, so
that an answer a caller quotes can be found in the log (:func:`request_id_of`).
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from uvm_reporting.log_lines import REQUEST_ID, escape_controls

log = logging.getLogger("uvm_reporting.access")

_NOTES = "uvm_reporting.access_notes"
# A request id is this process's random prefix and a counter: unique across a deployment's
# processes, and a tenth of the cost of reading the system's random source for every request.
_ID_PREFIX = secrets.token_hex(4)
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """16 hex digits, unique within this process's life and (by its random prefix) across processes."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFF:08x}"


_REQUEST_ID = "uvm_reporting.request_id"
REQUEST_ID_HEADER = b"x-request-id"


def request_id_of(scope: Scope) -> str:
    """The id of the request of ``scope`` ("-" outside the middleware, e.g. in unit tests)."""
    request_id: str = scope.get(_REQUEST_ID, "-")
    return request_id


def logging_enabled() -> bool:
    return log.isEnabledFor(logging.INFO)


def note(scope: Scope, text: str) -> None:
    """Add ``text`` to the access-log line of the request of ``scope`` (if it is being logged)."""
    notes = scope.get(_NOTES)
    if notes is not None:
        notes.append(text)


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Ours, never the caller's: a caller-chosen id could forge or collide with log lines.
        request_id = new_request_id()
        id_header = (REQUEST_ID_HEADER, request_id.encode())
        # Every record logged while this request is handled names it (log_lines.RequestIdFilter).
        context_token = REQUEST_ID.set(request_id)
        try:
            await self._call(scope, receive, send, request_id, id_header)
        finally:
            REQUEST_ID.reset(context_token)

    async def _call(
        self, scope: Scope, receive: Receive, send: Send, request_id: str, id_header: tuple[bytes, bytes]
    ) -> None:
        if not log.isEnabledFor(logging.INFO):

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", ()), id_header]
                await send(message)

            await self.app({**scope, _REQUEST_ID: request_id}, receive, send_with_id)
            return
        started = time.perf_counter()
        status = 500
        notes: list[str] = []
        scope = {**scope, _NOTES: notes, _REQUEST_ID: request_id}

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            client = scope.get("client")
            # Escaped here too, whatever formatter the process installed: the path is the caller's.
            log.info(
                '%s %s "%s %s" %d %.1fms%s',
                request_id,
                client[0] if client else "-",
                escape_controls(scope["method"]),
                escape_controls(scope["path"]),
                status,
                (time.perf_counter() - started) * 1000,
                escape_controls("".join(f" {n}" for n in notes)),
            )
