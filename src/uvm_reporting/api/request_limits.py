"""Body size limits, enforced before any route runs: before auth and before the body is read.

Each path has a limit (:class:`BodyLimits`). A request whose ``Content-Length`` is over it is
answered 413 at once, its body never read (uvicorn then closes the connection). A body without
a length (``Transfer-Encoding: chunked``) is counted as the route reads it: once past the limit,
the read fails and the answer is 413.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from uvm_reporting.api.error_answers import refusal

REQUEST_TOO_LARGE = "request_too_large"


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """The largest body, in bytes, that a request to each path may send."""

    default: int
    per_path: Mapping[str, int] = field(default_factory=dict)

    def of(self, path: str) -> int:
        return self.per_path.get(path, self.default)


class _BodyTooLarge(Exception):
    pass


class RequestLimitsMiddleware:
    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.of(scope["path"])
        try:
            declared = _content_length(scope["headers"])
        except ValueError:
            await refusal(scope, 400, "bad_request", "The Content-Length header is not a length.")(scope, receive, send)
            return
        if declared is not None:
            # The server delivers no more than the declared length: nothing left to count.
            if declared > limit:
                await _too_large(scope, limit)(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        received = 0
        started = False

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        async def noting_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, capped_receive, noting_send)
        except _BodyTooLarge:
            if started:
                raise
            await _too_large(scope, limit)(scope, receive, send)


def _too_large(scope: Scope, limit: int) -> ASGIApp:
    return refusal(
        scope, 413, REQUEST_TOO_LARGE, f"The request body is larger than {limit} bytes, the limit of this endpoint."
    )


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The declared body length, None when there is none; ValueError when it is not a length."""
    lengths = {value.strip() for name, value in headers if name.lower() == b"content-length"}
    if not lengths:
        return None
    if len(lengths) > 1 or not all(value.isdigit() for value in lengths):
        raise ValueError("not a length")
    return int(next(iter(lengths)))
