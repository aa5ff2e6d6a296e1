"""How long a run's result file and its record are kept.

A Completed download run's file lives in our storage for the result retention after the run
finished; from then on the run answers ``expired`` and gets no link, whether or not the
cleanup job has deleted the file yet (expiry is decided when a status is answered, so no
cache and no late cleanup pass can hand out a dead link). An S3 delivery's file lives in the
customer's bucket under the customer's rules: it never expires here. A final run's record is
kept for the run history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from uvm_reporting.domain.runs import Delivery, RunRecord, RunState


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    result_retention: timedelta | None = None
    """How long a download run's file is kept after the run finished; None: forever."""
    run_history: timedelta | None = None
    """How long a final run's record is kept after the run finished; None: forever."""

    def result_expires_at(self, run: RunRecord) -> datetime | None:
        """When the file of ``run`` stops being available: the end of its retention, or earlier
        when the cleanup job removed it earlier (a retention shortened since). None for a run
        without a file in our storage, or one kept forever."""
        if not keeps_a_file_with_us(run):
            return None
        ends = None
        if self.result_retention is not None and run.finished_at is not None:
            ends = run.finished_at + self.result_retention
        if run.expired_at is not None and (ends is None or run.expired_at < ends):
            return run.expired_at
        return ends

    def expired_at(self, run: RunRecord, now: datetime) -> datetime | None:
        """When the file of ``run`` expired, if it has by ``now``; else None."""
        ends = self.result_expires_at(run)
        return ends if ends is not None and ends <= now else None

    def record_outlived(self, run: RunRecord, now: datetime) -> bool:
        """Whether the record of the final ``run`` is past the run history (the cleanup job deletes it)."""
        return (
            self.run_history is not None
            and run.state.is_final
            and run.finished_at is not None
            and run.finished_at < now - self.run_history
        )


def keeps_a_file_with_us(run: RunRecord) -> bool:
    """A Completed download run: its file is in our storage until it expires."""
    return run.delivery is Delivery.DOWNLOAD and run.state is RunState.COMPLETED
