"""Run states and how the API shows them.

Internally a run is ``queued`` -> ``started`` -> ``completed`` | ``failed``. The API's
``status`` folds queued and started into ``Running``, because clients poll
``while status == "Running"``; the separate ``state`` field tells them apart.
"""

from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    QUEUED = "queued"
    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in (RunState.COMPLETED, RunState.FAILED)

    @property
    def api_status(self) -> str:
        return {
            RunState.QUEUED: "Running",
            RunState.STARTED: "Running",
            RunState.COMPLETED: "Completed",
            RunState.FAILED: "Failed",
        }[self]


class Delivery(StrEnum):
    """Where a run's result goes."""

    DOWNLOAD = "download"  # our storage, behind an expiring signed link
    S3 = "s3"  # the customer's bucket, through the role they let us assume
