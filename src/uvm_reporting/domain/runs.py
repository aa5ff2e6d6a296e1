"""Run states and how the API shows them.

Internally a run is ``queued`` -> ``started`` -> ``completed`` | ``failed`` | ``cancelled``. The API's
``status`` folds queued and started into ``Running``, because clients poll
``while status == "Running"``; the separate ``state`` field tells them apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from uvm_reporting.domain.formats import Compression, ExportFormat, content_type, file_extension
from uvm_reporting.domain.names import report_name_slug


class RunState(StrEnum):
    QUEUED = "queued"
    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (RunState.COMPLETED, RunState.FAILED, RunState.CANCELLED)

    @property
    def api_status(self) -> str:
        return {
            RunState.QUEUED: "Running",
            RunState.STARTED: "Running",
            RunState.COMPLETED: "Completed",
            RunState.FAILED: "Failed",
            RunState.CANCELLED: "Cancelled",
        }[self]


class Delivery(StrEnum):
    """Where a run's result goes."""

    DOWNLOAD = "download"  # our storage, behind an expiring signed link
    S3 = "s3"  # the customer's bucket, through the role they let us assume


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run as the runs table holds it: what to export, where to, and how it went."""

    id: str
    account_id: str
    report_id: str
    state: RunState
    delivery: Delivery
    format: str
    compression: str | None
    destination: dict[str, Any] | None
    scheduled_for: datetime | None
    definition: dict[str, Any]
    requested_by: str | None
    attempts: int
    worker_id: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    row_count: int | None
    size_bytes: int | None
    sha256: str | None
    result_key: str | None
    error_code: str | None
    error_message: str | None
    # The account's turn in the queue (database/runs.py): claimed lowest first.
    queue_round: int = 0
    # Where a queued run stood in the claim order when it was read (1: next), if that was read too.
    queue_position: int | None = None
    # A queued run waiting for its next attempt after a transient failure is not claimed before this.
    next_attempt_at: datetime | None = None
    # When the cleanup job deleted the result file of this download run (None: not yet).
    expired_at: datetime | None = None
    # When a cancel of the started run was asked for (its worker stops it); None: never.
    cancel_requested_at: datetime | None = None
    # A started run's progress as its worker's heartbeat last wrote it.
    rows_written: int | None = None
    bytes_written: int | None = None

    @property
    def export_format(self) -> ExportFormat:
        return ExportFormat(self.format)

    @property
    def export_compression(self) -> Compression | None:
        return Compression(self.compression) if self.compression else None

    @property
    def file_extension(self) -> str:
        return file_extension(self.export_format, self.export_compression)

    @property
    def media_type(self) -> str:
        return content_type(self.export_format, self.export_compression)

    @property
    def storage_key(self) -> str:
        """Where a download run's file lives in our storage; a retry of the run writes the same key."""
        return f"results/{self.account_id}/{self.id}.{self.file_extension}"

    @property
    def download_file_name(self) -> str:
        """``<report-name>-<YYYYMMDD-HHMMSS>-<run id prefix>.<format>``, safe in any file system."""
        slug = report_name_slug(str(self.definition.get("name", "report")), download=True)
        stamp = (self.finished_at or self.created_at).strftime("%Y%m%d-%H%M%S")
        return f"{slug}-{stamp}-{self.id[:8]}.{self.file_extension}"


@dataclass(frozen=True, slots=True)
class RunResult:
    row_count: int
    size_bytes: int
    sha256: str
    result_key: str
