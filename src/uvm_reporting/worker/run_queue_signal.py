"""Wakes idle workers when a run is queued, so they don't wait for the next poll.

In the embedded mode the API and the workers share a process: a condition variable is the
signal. Workers still poll on a timer, the fallback that covers runs queued elsewhere.
"""

from __future__ import annotations

import threading


class RunQueueSignal:
    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._pending = 0

    def notify(self) -> None:
        with self._condition:
            self._pending += 1
            self._condition.notify()

    def wait(self, timeout: float) -> None:
        """Return when a run was queued since the last wait, or after ``timeout`` seconds."""
        with self._condition:
            if self._pending == 0:
                self._condition.wait(timeout)
            self._pending = max(0, self._pending - 1)

    def wake_all(self) -> None:
        with self._condition:
            self._condition.notify_all()
