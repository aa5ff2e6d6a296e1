"""Each log record is one line (text or JSON), whatever its message or traceback holds, and names its
request and run."""

from __future__ import annotations

import io
import json
import logging
import sys

from uvm_reporting.log_lines import (
    FORMAT,
    REQUEST_ID,
    RUN_ID,
    JsonFormatter,
    OneLineFormatter,
    RequestIdFilter,
    escape_controls,
)


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


def test_a_json_record_is_one_object_on_one_line_with_its_ids_and_extra_fields() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("tests.log_lines.json")
    logger.addHandler(handler)
    logger.propagate = False
    request_token, run_token = REQUEST_ID.set("0123456789abcdef"), RUN_ID.set("run-1")
    try:
        try:
            raise ValueError('bad input\n{"forged": true}')
        except ValueError:
            logger.error("GET /x\nFAKE\u2028LINE", exc_info=sys.exc_info(), extra={"rows": 3})
    finally:
        REQUEST_ID.reset(request_token)
        RUN_ID.reset(run_token)
        logger.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, lines
    record = json.loads(lines[0])
    assert record["message"] == "GET /x\nFAKE\u2028LINE"
    assert (record["level"], record["logger"]) == ("ERROR", "tests.log_lines.json")
    assert (record["request_id"], record["run_id"], record["rows"]) == ("0123456789abcdef", "run-1", 3)
    assert record["exception"].startswith("Traceback")
    assert "forged" in record["exception"]
    assert record["time"].endswith("+00:00")


def test_records_outside_requests_and_runs_say_so() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    RequestIdFilter().filter(record)
    assert json.loads(JsonFormatter().format(record))["request_id"] == "-"
    assert json.loads(JsonFormatter().format(record))["run_id"] == "-"
