"""Parts of one export written at once are appended in order; a failing part stops the others."""

from __future__ import annotations

import io
import threading
from typing import Any

import pytest

from uvm_reporting.exports.formats.common import BinaryWriter
from uvm_reporting.exports.ordered_parts import write_parts


class Recorder:
    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    def write(self, data: bytes | memoryview, /) -> int:
        return self.buffer.write(data)


def test_parts_are_appended_in_order_with_one_header() -> None:
    def part(lines: list[bytes]) -> Any:
        def write(sink: BinaryWriter, first: bool) -> int:
            if first:
                sink.write(b"header\n")
            for line in lines:
                sink.write(line)
            return len(lines)

        return write

    out = Recorder()
    rows = write_parts([part([b"a\n", b"b\n"]), part([b"c\n"]), part([b"d\n", b"e\n"])], out)
    assert rows == 5
    assert out.buffer.getvalue() == b"header\na\nb\nc\nd\ne\n"


def test_a_failing_part_stops_the_others_and_its_error_is_raised() -> None:
    stopped = threading.Event()
    failing_started = threading.Event()

    def long_part(sink: BinaryWriter, first: bool) -> int:
        failing_started.wait(timeout=10)
        try:
            for _ in range(1_000_000):
                sink.write(b"x\n")
        except Exception:
            stopped.set()
            raise
        return 1_000_000

    def failing_part(sink: BinaryWriter, first: bool) -> int:
        failing_started.set()
        raise OSError("disk full")

    out = Recorder()
    with pytest.raises(OSError, match="disk full"):
        write_parts([long_part, failing_part], out)
    assert stopped.is_set()
    assert out.buffer.getvalue().count(b"\n") < 1_000_000
