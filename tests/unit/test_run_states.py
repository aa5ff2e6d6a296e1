from __future__ import annotations

import threading

from uvm_reporting.domain.runs import RunState
from uvm_reporting.worker.run_queue_signal import RunQueueSignal


def test_queued_and_started_both_show_as_running() -> None:
    assert RunState.QUEUED.api_status == "Running"
    assert RunState.STARTED.api_status == "Running"
    assert RunState.COMPLETED.api_status == "Completed"
    assert RunState.FAILED.api_status == "Failed"
    assert RunState.CANCELLED.api_status == "Cancelled"
    assert [s for s in RunState if s.is_final] == [RunState.COMPLETED, RunState.FAILED, RunState.CANCELLED]


def test_a_notification_wakes_a_waiting_worker() -> None:
    signal = RunQueueSignal()
    woke = threading.Event()

    def wait() -> None:
        signal.wait(timeout=60)
        woke.set()

    waiter = threading.Thread(target=wait)
    waiter.start()
    signal.notify()
    assert woke.wait(timeout=10)
    waiter.join(10)


def test_a_notification_before_the_wait_is_not_lost() -> None:
    signal = RunQueueSignal()
    signal.notify()
    done = threading.Event()

    def wait() -> None:
        signal.wait(timeout=60)
        done.set()

    threading.Thread(target=wait, daemon=True).start()
    assert done.wait(timeout=10)
