"""What a worker and its export share: progress counts read from another thread, and a cancel
that raises between batches and stops what the export registered (an export process)."""

from __future__ import annotations

import threading

import pytest

from uvm_reporting.domain.run_control import RunControl
from uvm_reporting.errors import RunCancelled
from uvm_reporting.exports.exporter import ControlledWriter


class Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes | memoryview, /) -> int:
        self.data += data
        return len(data)


def test_progress_counts_from_one_thread_are_read_whole_from_another() -> None:
    control = RunControl()

    def export() -> None:
        for _ in range(1000):
            control.add_rows(10)
            control.add_bytes(100)

    thread = threading.Thread(target=export)
    thread.start()
    thread.join(30)
    assert control.progress == (10_000, 100_000)
    control.set_rows(5)  # a count reported by an export process never goes back
    assert control.progress == (10_000, 100_000)
    control.set_rows(12_000)
    assert control.progress == (12_000, 100_000)


def test_a_cancel_stops_the_registered_export_once_and_raises_at_the_next_check() -> None:
    control = RunControl()
    stopped: list[str] = []
    control.check()  # nothing asked yet
    with control.stopped_by(lambda: stopped.append("export process")):
        control.cancel()
        control.cancel()
    assert stopped == ["export process"]
    with pytest.raises(RunCancelled):
        control.check()
    with control.stopped_by(lambda: stopped.append("late")):  # registered after the cancel: stopped at once
        pass
    assert stopped == ["export process", "late"]


def test_the_controlled_writer_counts_bytes_and_writes_nothing_once_cancelled() -> None:
    control, sink = RunControl(), Sink()
    writer = ControlledWriter(sink, control)
    writer.write(b"id,title\n")
    writer.write(memoryview(b"1,x\n"))
    assert control.progress == (0, 13)
    control.cancel()
    with pytest.raises(RunCancelled):
        writer.write(b"2,y\n")
    assert bytes(sink.data) == b"id,title\n1,x\n"


def test_progress_kept_elsewhere_is_fetched_when_read_while_its_poller_is_registered() -> None:
    control = RunControl()
    reported = iter([100, 250])
    with control.polled_with(lambda: control.set_rows(next(reported))):
        assert control.progress == (100, 0)
        assert control.progress == (250, 0)
    assert control.progress == (250, 0)  # no poller any more: the last count stays
