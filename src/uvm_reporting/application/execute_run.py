"""Execute a run: its file written by the exporter, into our storage (a download run) or
into the customer's bucket with a manifest beside it (application/delivery.py)."""

from __future__ import annotations

from sqlalchemy import Engine

from uvm_reporting import fault_points
from uvm_reporting.application.delivery import deliver_to_s3
from uvm_reporting.application.ports import CustomerBuckets
from uvm_reporting.database.accounts import get_account
from uvm_reporting.domain.run_control import RunControl
from uvm_reporting.domain.runs import Delivery, RunRecord, RunResult
from uvm_reporting.errors import StorageFailed
from uvm_reporting.exports.exporter import Exporter
from uvm_reporting.storage.result_storage import ResultStorage


class RunExecutor:
    def __init__(
        self, engine: Engine, storage: ResultStorage, exporter: Exporter, buckets: CustomerBuckets | None = None
    ) -> None:
        self._engine = engine
        self._storage = storage
        self.exporter = exporter
        self._buckets = buckets

    def close(self) -> None:
        """Stop the spare export process (exports still running end too)."""
        self.exporter.close()

    def discard_output(self, run: RunRecord) -> None:
        """Remove what a run that ended without a result left in our storage: the partial file
        (or unfinished upload) of its last attempt, and a file published by an attempt killed
        before it recorded its outcome. A Failed run has no result to show."""
        if run.delivery is Delivery.S3:
            return  # the customer's bucket: the upload of a killed attempt waits for their lifecycle rule
        self._storage.delete_partial(run.storage_key)
        self._storage.delete(run.storage_key)

    def execute(self, run: RunRecord, control: RunControl | None = None) -> RunResult:
        """Write the run's file; with ``control``, count its progress there and stop on a cancel
        (RunCancelled), leaving no partial output: no ``.partial`` file, no unfinished upload."""
        if run.delivery is Delivery.S3:
            if self._buckets is None or not run.destination:
                raise StorageFailed("This run delivers to S3, but S3 is not configured here.")
            external_id = get_account(self._engine, run.account_id).external_id
            return deliver_to_s3(run, self.exporter, self._buckets, external_id, control)
        key = run.storage_key
        with self._storage.open_for_write(key) as (writer, written):
            fault_points.reached("write")
            row_count = self.exporter.write(run, writer, control)
        return RunResult(row_count=row_count, size_bytes=written.size_bytes, sha256=written.sha256, result_key=key)
