"""Worker threads that claim runs from the runs table and execute them.

Each thread loops: claim the oldest runnable run, execute it, record the outcome. A single
heartbeat thread renews the leases of the runs in progress, writes their progress (rows and
bytes written so far, every ``progress_seconds``) and reads whether someone asked to cancel
them: then it stops the export (domain/run_control.py) and the run ends Cancelled. Every
exception ends as a Failed run with a reason; nothing stays Running when a worker dies, because
its lease expires and another worker claims the run again (up to the configured attempts).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

from sqlalchemy import Engine
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from uvm_reporting import fault_points
from uvm_reporting.database.runs import (
    beat,
    claim_next_run,
    complete_run,
    fail_run,
    finish_cancelled_run,
    release_run,
)
from uvm_reporting.domain.run_control import RunControl
from uvm_reporting.domain.runs import RunRecord, RunResult
from uvm_reporting.errors import RunErrorCode, run_failure
from uvm_reporting.worker.run_queue_signal import RunQueueSignal

log = logging.getLogger(__name__)

Execute = Callable[[RunRecord, RunControl], RunResult]


class WorkerPool:
    def __init__(
        self,
        engine: Engine,
        execute: Execute,
        signal: RunQueueSignal,
        *,
        threads: int,
        lease_seconds: int,
        max_attempts: int,
        poll_seconds: float = 1.0,
        progress_seconds: float = 1.0,
        on_run_changed: Callable[[RunRecord], None] | None = None,
        on_stopped: Callable[[], None] | None = None,
    ) -> None:
        self._engine = engine
        self._execute = execute
        self._signal = signal
        self._thread_count = threads
        self._lease_seconds = lease_seconds
        self._max_attempts = max_attempts
        self._poll_seconds = poll_seconds
        self._progress_seconds = progress_seconds
        # Told when a run of this pool starts, ends or goes back to the queue (status caches).
        self._on_run_changed = on_run_changed or (lambda _run: None)
        # Releases what the executor holds (its spare export process) once the pool has stopped.
        self._on_stopped = on_stopped or (lambda: None)
        self._stopping = threading.Event()
        self._heartbeat_stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._heartbeat_thread: threading.Thread | None = None
        self._in_progress: dict[str, str] = {}  # run id -> worker id
        self._controls: dict[str, RunControl] = {}  # run id -> its progress and cancel flag
        self._lock = threading.Lock()
        self.worker_prefix = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    def start(self) -> None:
        for number in range(self._thread_count):
            thread = threading.Thread(
                target=self._work, args=(f"{self.worker_prefix}:{number}",), name=f"run-worker-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        self._heartbeat_thread = threading.Thread(target=self._heartbeat, name="run-heartbeat", daemon=True)
        self._heartbeat_thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop claiming; let runs in progress finish for up to ``timeout`` seconds; hand the
        rest back to the queue (another worker takes them, without spending an attempt)."""
        self._stopping.set()
        self._signal.wake_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()
        with self._lock:
            unfinished = list(self._in_progress.items())
        for run_id, worker_id in unfinished:
            if release_run(self._engine, run_id, worker_id):
                log.warning("run %s released unfinished after the %.1fs grace period", run_id, timeout)
            elif finish_cancelled_run(self._engine, run_id, worker_id):
                log.info("run %s cancelled as its worker stopped", run_id)
        # (A released run's cached status expires by itself: RUNNING_STATUS_TTL_SECONDS.)
        # Leases stay renewed until the last run in progress has ended.
        self._heartbeat_stopping.set()
        if self._heartbeat_thread is not None:
            self._heartbeat_thread.join(timeout)
        # Exports still running past the grace period end here (their runs went back above).
        self._on_stopped()

    def _work(self, worker_id: str) -> None:
        while not self._stopping.is_set():
            try:
                run = claim_next_run(
                    self._engine, worker_id, lease_seconds=self._lease_seconds, max_attempts=self._max_attempts
                )
            except SQLAlchemyError:
                log.exception("claiming a run failed; retrying after the poll interval")
                run = None
            if run is None:
                self._signal.wait(self._poll_seconds)
                continue
            self._run_one(run, worker_id)

    def cancel_requested(self, run_id: str) -> None:
        """This process took a cancel of ``run_id`` (recorded already): if one of these workers
        runs it, stop its export now instead of at the next heartbeat."""
        with self._lock:
            control = self._controls.get(run_id)
        if control is not None and not control.cancelled:
            log.info("run %s: cancel requested; stopping its export", run_id)
            control.cancel()

    @property
    def in_progress(self) -> list[str]:
        with self._lock:
            return list(self._in_progress)

    def _run_one(self, run: RunRecord, worker_id: str) -> None:
        log.info("run %s of report %s started (attempt %d) by %s", run.id, run.report_id, run.attempts, worker_id)
        fault_points.reached("claim")
        self._on_run_changed(run)
        control = RunControl()
        with self._lock:
            self._in_progress[run.id] = worker_id
            self._controls[run.id] = control
        try:
            try:
                result = self._execute(run, control)
            except Exception as error:
                if control.cancelled:
                    # Whatever the stopped export raised (a killed export process, RunCancelled):
                    # its partial output is gone, and the run ends as asked.
                    self._cancelled(run, worker_id)
                    return
                failure = run_failure(error)
                log.warning(
                    "run %s failed: %s: %s", run.id, failure.code, failure.message, exc_info=failure.needs_operator
                )
                fail_run(self._engine, run.id, worker_id, failure.code, failure.message)
            else:
                self._complete(run, worker_id, result)
        except SQLAlchemyError:
            # The outcome could not be recorded (the database is gone, say): the run's lease
            # expires and another claim runs it again. This thread goes on with the next run.
            log.exception("recording the outcome of run %s failed; it runs again when its lease expires", run.id)
        finally:
            with self._lock:
                self._in_progress.pop(run.id, None)
                self._controls.pop(run.id, None)
            self._on_run_changed(run)

    def _cancelled(self, run: RunRecord, worker_id: str) -> None:
        if finish_cancelled_run(self._engine, run.id, worker_id):
            log.info("run %s cancelled", run.id)
        else:
            log.warning("run %s stopped for a cancel, but it is no longer this worker's", run.id)

    def _complete(self, run: RunRecord, worker_id: str, result: RunResult) -> None:
        """Record the result; a result the database refuses (a value out of its range, say) fails
        the run with a reason instead of leaving it to be run again for nothing."""
        fault_points.reached("complete")
        try:
            completed = complete_run(self._engine, run.id, worker_id, result)
        except (DataError, IntegrityError):
            log.exception(
                "run %s: recording its result (%d rows, %d bytes) failed", run.id, result.row_count, result.size_bytes
            )
            fail_run(
                self._engine,
                run.id,
                worker_id,
                RunErrorCode.INTERNAL,
                "The export finished, but recording its result failed; the operator log has the details.",
            )
            return
        if completed:
            log.info("run %s completed: %d rows, %d bytes", run.id, result.row_count, result.size_bytes)
        else:
            log.warning("run %s finished after its lease was lost; the other claim decides", run.id)

    def _heartbeat(self) -> None:
        """Every ``progress_seconds``: each run's progress, and its cancel request read back in the
        same UPDATE; the lease is renewed in it too every third of the lease."""
        lease_interval = self._lease_seconds / 3
        interval = min(self._progress_seconds, lease_interval)
        lease_renewed = time.monotonic()
        while not self._heartbeat_stopping.wait(interval):
            renew = time.monotonic() - lease_renewed >= lease_interval - interval / 2
            if renew:
                lease_renewed = time.monotonic()
            with self._lock:
                held = [(run_id, worker_id, self._controls[run_id]) for run_id, worker_id in self._in_progress.items()]
            for run_id, worker_id, control in held:
                rows, size = control.progress
                try:
                    _, cancel = beat(
                        self._engine,
                        run_id,
                        worker_id,
                        lease_seconds=self._lease_seconds if renew else None,
                        rows_written=rows,
                        bytes_written=size,
                    )
                except SQLAlchemyError:
                    log.exception("the heartbeat of run %s failed", run_id)
                    continue
                if cancel and not control.cancelled:
                    log.info("run %s: cancel requested; stopping its export", run_id)
                    control.cancel()
