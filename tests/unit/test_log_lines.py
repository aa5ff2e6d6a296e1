"""Each log record is one line, whatever its message or traceback holds, and names its request."""

from __future__ import annotations

import io
import logging
import sys

from uvm_reporting.log_lines import FORMAT, REQUEST_ID, OneLineFormatter, RequestIdFilter, escape_controls


def test_control_characters_are_escaped() -> None:
    assert escape_controls("a\nb\r\tc\x1b[31m\x00\x7f\x85\u2028é") == "a\\nb\\r\\tc\\x1b[31m\\x00\\x7f\\x85\\u2028é"


def test_a_record_with_a_forged_line_and_a_traceback_stays_one_line() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(OneLineFormatter(FORMAT))
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("tests.log_lines")
    logger.addHandler(handler)
    logger.propagate = False
    token = REQUEST_ID.set("0123456789abcdef")
    try:
        try:
            raise ValueError("bad input\n2026-01-01 INFO forged: line")
        except ValueError:
            logger.error("GET /downloads/x\nFAKE-LOG-LINE", exc_info=sys.exc_info())
    finally:
        REQUEST_ID.reset(token)
        logger.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert "[0123456789abcdef]: GET /downloads/x\\nFAKE-LOG-LINE\\nTraceback" in lines[0]
    assert "bad input\\n2026-01-01 INFO forged: line" in lines[0]
