"""The cleanup job: removes what has outlived its time, in steps, each logged with its count.

Steps (``cleanup_steps``), in this order:

- the result files of Completed download runs past the result retention, from our storage
  (the local folder or our S3 prefix), each run then marked ``expired_at``. An S3 delivery's
  file is in the customer's bucket: never touched, the run keeps its ``resultFilePath``;
- temporary files (``.partial``) older than a day in the storage folder, or unfinished
  multipart uploads older than a day under our S3 prefix: left by a process that died;
- idempotency keys past their time;
- the records of final runs older than the run history (a record whose file is still kept
  stays until the file goes). Audit events have their own retention (the scheduler's).

Several jobs may run at once (every ``serve`` and ``scheduler`` process has one): a file
already gone is no error, a run is marked expired by a conditional UPDATE, records are deleted
in batches that skip what another job holds. Counts say what this job itself removed, so the
counts of concurrent jobs add up to what was there. A failing step is logged and the next
steps still run; the next pass tries again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Engine

from uvm_reporting.database.idempotency_keys import count_expired_idempotency_keys, delete_expired_idempotency_keys
from uvm_reporting.database.run_cleanup import (
    BATCH,
    delete_runs_finished_before,
    mark_results_expired,
    results_finished_before,
    runs_finished_before,
)
from uvm_reporting.domain.retention import RetentionPolicy
from uvm_reporting.domain.timestamps import utc_now
from uvm_reporting.storage.local_folder import LocalFolderStorage
from uvm_reporting.storage.result_storage import ResultStorage
from uvm_reporting.storage.s3 import S3ResultStorage

log = logging.getLogger(__name__)

LEFTOVER_AGE = timedelta(days=1)
"""Temporary files and unfinished uploads older than this belong to a write whose process died."""


@dataclass(frozen=True, slots=True)
class Removal:
    """What one step removed (or, in a dry run, would remove)."""

    kind: str
    """What it removes, in the plural: "result files past retention"."""
    count: int = 0
    items: tuple[str, ...] = ()
    """Names of what was removed: run ids, file paths, upload keys (none for a bare count)."""
    failed: int = 0
    """Items that could not be removed this time (logged; the next pass tries again)."""
    note: str | None = None
    """Why the step did not say what it would remove (a dry run of a step that can only delete)."""

    def as_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "count": self.count,
            "items": list(self.items),
            "failed": self.failed,
            "note": self.note,
        }


class CleanupStep(Protocol):
    """One kind of thing to remove. ``dry_run``: say what would go, remove nothing."""

    @property
    def kind(self) -> str: ...

    def __call__(self, now: datetime, *, dry_run: bool) -> Removal: ...


@dataclass(frozen=True)
class ExpiredResultFiles:
    engine: Engine
    storage: ResultStorage
    retention: timedelta
    kind: str = "result files past retention"

    def __call__(self, now: datetime, *, dry_run: bool) -> Removal:
        cutoff = now - self.retention
        removed: list[str] = []
        failed = 0
        after = None
        while True:
            batch = results_finished_before(self.engine, cutoff, after=after)
            deleted = []
            for result in batch:
                if dry_run:
                    deleted.append(result)
                    continue
                # The files first, then the marks: a job stopped in between finds the runs again.
                try:
                    self.storage.delete(result.result_key)
                except Exception:
                    log.warning("cleanup: could not delete the result file of run %s", result.run_id, exc_info=True)
                    failed += 1
                    continue
                deleted.append(result)
            marked = (
                {result.run_id for result in deleted}
                if dry_run
                else mark_results_expired(self.engine, [result.run_id for result in deleted], now)
            )
            removed.extend(f"run {result.run_id}: {result.result_key}" for result in deleted if result.run_id in marked)
            if len(batch) < BATCH:
                break
            after = (batch[-1].finished_at, batch[-1].run_id)
        return Removal(self.kind, len(removed), tuple(removed), failed)


@dataclass(frozen=True)
class StaleTemporaryFiles:
    storage: LocalFolderStorage
    kind: str = "temporary files older than a day"

    def __call__(self, now: datetime, *, dry_run: bool) -> Removal:
        found = self.storage.temporary_files(now - LEFTOVER_AGE)
        removed = [str(path) for path in found if dry_run or self.storage.remove_temporary_file(path)]
        return Removal(self.kind, len(removed), tuple(removed))


@dataclass(frozen=True)
class UnfinishedUploads:
    storage: S3ResultStorage
    kind: str = "unfinished multipart uploads older than a day"

    def __call__(self, now: datetime, *, dry_run: bool) -> Removal:
        removed = [
            f"s3://{self.storage.bucket}/{key} (upload {upload_id})"
            for key, upload_id in self.storage.unfinished_uploads(now - LEFTOVER_AGE)
            if dry_run or self.storage.abort_upload(key, upload_id)
        ]
        return Removal(self.kind, len(removed), tuple(removed))


@dataclass(frozen=True)
class ExpiredIdempotencyKeys:
    engine: Engine
    kind: str = "idempotency keys past their time"

    def __call__(self, now: datetime, *, dry_run: bool) -> Removal:
        count = (count_expired_idempotency_keys if dry_run else delete_expired_idempotency_keys)(self.engine, now)
        return Removal(self.kind, count)


@dataclass(frozen=True)
class OldRunRecords:
    engine: Engine
    history: timedelta
    kind: str = "run records past the run history"

    def __call__(self, now: datetime, *, dry_run: bool) -> Removal:
        cutoff = now - self.history
        find_or_delete = runs_finished_before if dry_run else delete_runs_finished_before
        ids = find_or_delete(self.engine, cutoff)
        return Removal(self.kind, len(ids), tuple(ids))


def cleanup_steps(
    engine: Engine, storage: ResultStorage, policy: RetentionPolicy, *, extra: Sequence[CleanupStep] = ()
) -> list[CleanupStep]:
    """The steps of a deployment's cleanup job, in order (module docstring). ``extra`` steps run
    before the run records go: a table that names runs is cleaned before them."""
    steps: list[CleanupStep] = []
    if policy.result_retention is not None:
        steps.append(ExpiredResultFiles(engine, storage, policy.result_retention))
    if isinstance(storage, LocalFolderStorage):
        steps.append(StaleTemporaryFiles(storage))
    if isinstance(storage, S3ResultStorage):
        steps.append(UnfinishedUploads(storage))
    steps.append(ExpiredIdempotencyKeys(engine))
    steps.extend(extra)
    if policy.run_history is not None:
        steps.append(OldRunRecords(engine, policy.run_history))
    return steps


class CleanupJob:
    """Runs its steps once (``run_once``), or every so often on a thread (``run_forever``)."""

    def __init__(self, steps: Sequence[CleanupStep], *, clock: Callable[[], datetime] = utc_now) -> None:
        self.steps = list(steps)
        self._clock = clock

    def run_once(self, *, dry_run: bool = False, now: datetime | None = None) -> list[Removal]:
        """Every step, in order; what each removed (would remove), one log line per kind."""
        now = now or self._clock()
        removals = []
        for step in self.steps:
            try:
                removal = step(now, dry_run=dry_run)
            except Exception:  # one kind's failure must not hold up the others
                log.exception("cleanup of %s failed; the next pass tries again", step.kind)
                removal = Removal(step.kind, failed=1)
            removals.append(removal)
            _log(removal, dry_run=dry_run)
        return removals

    def run_forever(self, stop: threading.Event, interval_seconds: float) -> None:
        """A pass now, then one every ``interval_seconds`` until ``stop`` is set."""
        log.info("cleanup job started; a pass every %gs", interval_seconds)
        while not stop.is_set():
            try:
                self.run_once()
            except Exception:  # never expected (run_once catches each step's); the job must go on
                log.exception("cleanup pass failed; trying again in %gs", interval_seconds)
            stop.wait(interval_seconds)
        log.info("cleanup job stopped")


def _log(removal: Removal, *, dry_run: bool) -> None:
    if dry_run:
        log.info("cleanup (dry run): would remove %d %s", removal.count, removal.kind)
    elif removal.count or removal.failed:
        log.info("cleanup: removed %d %s (%d failed)", removal.count, removal.kind, removal.failed)
    else:
        log.debug("cleanup: removed 0 %s", removal.kind)
