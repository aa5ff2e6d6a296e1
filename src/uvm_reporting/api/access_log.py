"""An access log that never writes query strings: a download link's signature is a secret.

One line per request. A route adds what the line should say about the call (the GraphQL fields,
account and client) with :func:`note`; nothing is formatted when INFO is off.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("uvm_reporting.access")

_NOTES = "uvm_reporting.access_notes"


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
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        notes: list[str] = []
        scope = {**scope, _NOTES: notes}

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            client = scope.get("client")
            log.info(
                '%s "%s %s" %d %.1fms%s',
                client[0] if client else "-",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000,
                "".join(f" {n}" for n in notes),
            )
