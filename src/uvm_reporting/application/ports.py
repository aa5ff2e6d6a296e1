"""What the use cases need from the processes around them, as protocols they define.

The worker's RunQueueSignal (and, in a scale-out deployment, nothing at all: workers poll)
answers ``RunQueueWakeup``; the use cases never import the worker.
"""

from __future__ import annotations

from typing import Protocol


class RunQueueWakeup(Protocol):
    def notify(self) -> None:
        """A run was queued: wake an idle worker of this process, if there is one."""
