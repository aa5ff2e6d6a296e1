"""Queueing a run directly, as processReport would, for tests that drive workers themselves."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine

from uvm_reporting.database.reports import Report
from uvm_reporting.database.runs import enqueue_run
from uvm_reporting.domain.runs import Delivery, RunRecord


def enqueue_download(
    engine: Engine,
    report: Report,
    *,
    definition: dict[str, Any] | None = None,
    requested_by: str | None = "test",
    max_active_runs: int | None = None,
    connection: Connection | None = None,
) -> RunRecord:
    """A queued CSV download run of ``report`` (or of ``definition``, a report definition); with
    ``max_active_runs``, under the account's cap of active runs; with ``connection``, in its
    transaction (no worker sees the run before it commits)."""
    return enqueue_run(
        engine,
        account_id=report.account_id,
        report_id=report.id,
        delivery=Delivery.DOWNLOAD,
        format="csv",
        definition=definition or report.definition.to_json(),
        requested_by=requested_by,
        max_active_runs=max_active_runs,
        connection=connection,
    )
