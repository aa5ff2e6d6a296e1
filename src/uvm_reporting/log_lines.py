"""One log record, one line: control characters are escaped, so no input can forge a line.

A request path, a client id or an exception message may hold ``\\n``, ``\\r`` or ANSI escapes
chosen by a caller. :func:`configure_logging` (``serve``, ``worker``, ``scheduler``, the export
process) formats every record, traceback included, on one line, with ``\\n`` and the like written
as escapes. Each record made while a request is handled names its request id
(:data:`REQUEST_ID`, set by the access log), and each made while a worker runs a run, its run id
(:data:`RUN_ID`). With ``log_format="json"`` every record is one JSON object on one line
(:class:`JsonFormatter`), for log collectors.
"""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("uvm_reporting_request_id", default="-")
RUN_ID: contextvars.ContextVar[str] = contextvars.ContextVar("uvm_reporting_run_id", default="-")
FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# C0, DEL and C1 controls, and the Unicode line and paragraph separators.
_ESCAPES = {
    code: _NAMED.get(chr(code), f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    for code in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)
}


def escape_controls(text: str) -> str:
    """``text`` with every control character written as an escape (``\\n``, ``\\x1b``, …)."""
    return text.translate(_ESCAPES)


class OneLineFormatter(logging.Formatter):
    """A formatter whose every record, traceback included, is one line."""

    def format(self, record: logging.LogRecord) -> str:
        return escape_controls(super().format(record))


# What every LogRecord has; anything else on a record came from ``extra=`` and goes in its JSON.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request_id",
    "run_id",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, request_id,
    run_id, the record's extra fields, and the traceback as ``exception``. JSON escapes every
    control character, so a record stays one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", REQUEST_ID.get()),
            "run_id": getattr(record, "run_id", RUN_ID.get()),
        }
        for name, value in vars(record).items():
            if name not in _RECORD_ATTRIBUTES and name not in line:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


class RequestIdFilter(logging.Filter):
    """Gives each record ``request_id`` and ``run_id``: the ids of the request and the run it was
    made for, else ``-``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        if not hasattr(record, "run_id"):
            record.run_id = RUN_ID.get()
        return True


def configure_logging(level: str | int, log_format: Literal["text", "json"] = "text") -> None:
    """Log to stderr at ``level``, one escaped line or one JSON object per record (replaces
    ``logging.basicConfig``)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else OneLineFormatter(FORMAT))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
