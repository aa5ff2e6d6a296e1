"""One log record, one line: control characters are escaped, so no input can forge a line.

A request path, a client id or an exception message may hold ``\\n``, ``\\r`` or ANSI escapes
chosen by a caller. :func:`configure_logging` (``serve``, ``worker``, ``scheduler``, the export
process) formats every record, traceback included, on one line, with ``\\n`` and the like written
as escapes. Each record made while a request is handled names its request id
(:data:`REQUEST_ID`, set by the access log).
"""

from __future__ import annotations

import contextvars
import logging

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("uvm_reporting_request_id", default="-")
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


class RequestIdFilter(logging.Filter):
    """Gives each record ``request_id``: the id of the request it was made for, else ``-``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        return True


def configure_logging(level: str | int) -> None:
    """Log to stderr at ``level``, one escaped line per record (replaces ``logging.basicConfig``)."""
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter(FORMAT))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
