"""Worker threads that claim runs from the runs table and execute them.

Each thread loops: claim the oldest runnable run, execute it, record the outcome. A single
heartbeat thread renews the leases of the runs in progress, writes their progress (rows and
bytes written so far, every ``progress_seconds``) and reads whether someone asked to cancel
them: then it stops the export (domain/run_control.py) and the run ends Cancelled. Every
exception ends as a Failed run with a reason; nothing stays Running when a worker dies, because
its lease expires and another worker claims the run again (up to the configured attempts). A
run that failed for a passing reason (application/run_retries.py) goes back to the queue, to be
claimed again after an exponential backoff with jitter, within the same budget of attempts.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError

from uvm_reporting import fault_points
from uvm_reporting.application.run_retries import classify_run_failure, final_failure
from uvm_reporting.database.runs import (
    beat,
    claim_next_run,
    complete_run,
    fail_run,
    finish_cancelled_run,
    release_run,
    retry_run,
)
from uvm_reporting.domain.retries import retry_delay
from uvm_reporting.domain.run_control import RunControl
from uvm_reporting.domain.runs import RunRecord, RunResult
from uvm_reporting.domain.timestamps import utc_now
from uvm_reporting.errors import RunErrorCode
from uvm_reporting.exports.query_failures import is_connection_lost
from uvm_reporting.log_lines import RUN_ID
from uvm_reporting.metrics import BYTES_EXPORTED, ROWS_EXPORTED, RUN_DURATION, RUNS_FINISHED
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
        retry_base_seconds: float = 2.0,
        retry_max_seconds: float = 60.0,
        progress_seconds: float = 1.0,
        on_run_changed: Callable[[RunRecord], None] | None = None,
        on_stopped: Callable[[], None] | None = None,
        on_given_up: Callable[[RunRecord], None] | None = None,
    ) -> None:
        self._engine = engine
        self._execute = execute
        self._signal = signal
        self._thread_count = threads
        self._lease_seconds = lease_seconds
        self._max_attempts = max_attempts
        self._poll_seconds = poll_seconds
        self._retry_base_seconds = retry_base_seconds
        self._retry_max_seconds = retry_max_seconds
        self._progress_seconds = progress_seconds
        # Told when a run of this pool starts, ends or goes back to the queue (status caches).
        self._on_run_changed = on_run_changed or (lambda _run: None)
        # Releases what the executor holds (its spare export process) once the pool has stopped.
        self._on_stopped = on_stopped or (lambda: None)
        # Removes the partial output of a run given up as WORKER_LOST (its last worker died mid-write).
        self._on_given_up = on_given_up or (lambda _run: None)
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
            given_up: list[RunRecord] = []
            try:
                run = claim_next_run(
                    self._engine,
                    worker_id,
                    lease_seconds=self._lease_seconds,
                    max_attempts=self._max_attempts,
                    given_up=given_up,
                )
            except SQLAlchemyError:
                log.exception("claiming a run failed; retrying after the poll interval")
                run = None
            for lost in given_up:
                self._give_up(lost)
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
        # Every record logged while the run executes names it (log_lines.RequestIdFilter).
        context_token = RUN_ID.set(run.id)
        started = time.monotonic()
        try:
            outcome, error_code = self._run_and_record(run, worker_id)
        finally:
            RUN_ID.reset(context_token)
        RUN_DURATION.labels(outcome).observe(time.monotonic() - started)
        RUNS_FINISHED.labels(outcome, error_code).inc()

    def _run_and_record(self, run: RunRecord, worker_id: str) -> tuple[str, str]:
        """Execute ``run`` and record its outcome: (outcome, error code) for the metrics, where the
        outcome is completed, failed, retried, cancelled, or lost (not recorded: the run goes to another claim)."""
        outcome, error_code = "lost", ""
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
            except Exception as error:  # noqa: BLE001 - every failure ends as a retry or a Failed run
                if control.cancelled:
                    # Whatever the stopped export raised (a killed export process, RunCancelled):
                    # its partial output is gone, and the run ends as asked.
                    outcome, error_code = self._cancelled(run, worker_id), ""
                else:
                    outcome, error_code = self._failed(run, worker_id, error)
            else:
                outcome = self._complete(run, worker_id, result)
                if outcome == "completed":
                    ROWS_EXPORTED.inc(result.row_count)
                    BYTES_EXPORTED.inc(result.size_bytes)
                elif outcome == "failed":
                    error_code = RunErrorCode.INTERNAL
        except SQLAlchemyError:
            # The outcome could not be recorded (the database is gone, say): the run's lease
            # expires and another claim runs it again. This thread goes on with the next run.
            log.exception("recording the outcome of run %s failed; it runs again when its lease expires", run.id)
        finally:
            with self._lock:
                self._in_progress.pop(run.id, None)
                self._controls.pop(run.id, None)
            self._on_run_changed(run)
        return outcome, str(error_code)

    def _failed(self, run: RunRecord, worker_id: str, error: Exception) -> tuple[str, str]:
        """Record a failed attempt: queued again after a backoff when the cause may pass and
        attempts are left, else Failed (naming the last cause). The outcome for the metrics:
        retried, failed, or lost (not recorded: the run goes to another claim), and the code."""
        failure = classify_run_failure(error)
        if failure.transient and run.attempts < self._max_attempts:
            delay = retry_delay(
                run.attempts, base_seconds=self._retry_base_seconds, max_seconds=self._retry_max_seconds
            )
            log.warning(
                "run %s attempt %d failed: %s: %s; tried again in %.1fs",
                *(run.id, run.attempts, failure.code, failure.message, delay),
                exc_info=error,
            )
            next_attempt_at = utc_now() + timedelta(seconds=delay)
            retried = self._recorded(
                lambda: retry_run(
                    self._engine, run.id, worker_id, failure.code, failure.message, next_attempt_at=next_attempt_at
                )
            )
            return ("retried" if retried else "lost"), failure.code
        failure = final_failure(failure, run.attempts)
        log.warning("run %s failed: %s: %s", run.id, failure.code, failure.message, exc_info=failure.needs_operator)
        failed = self._recorded(lambda: fail_run(self._engine, run.id, worker_id, failure.code, failure.message))
        return ("failed" if failed else "lost"), failure.code

    def _recorded(self, record: Callable[[], bool]) -> bool:
        """Record an outcome. A dropped database connection is tried again after a backoff (the
        pool then connects afresh): the run's work is done, only its record is missing. Within
        ``max_attempts``; past them the run's lease expires and another worker runs it again."""
        failed = 0
        while True:
            try:
                return record()
            except DBAPIError as error:
                failed += 1
                if failed >= self._max_attempts or not is_connection_lost(error):
                    raise
                delay = retry_delay(failed, base_seconds=self._retry_base_seconds, max_seconds=self._retry_max_seconds)
                log.warning("recording a run's outcome lost the database connection; again in %.1fs", delay)
                time.sleep(delay)

    def _cancelled(self, run: RunRecord, worker_id: str) -> str:
        if self._recorded(lambda: finish_cancelled_run(self._engine, run.id, worker_id)):
            log.info("run %s cancelled", run.id)
            return "cancelled"
        log.warning("run %s stopped for a cancel, but it is no longer this worker's", run.id)
        return "lost"

    def _complete(self, run: RunRecord, worker_id: str, result: RunResult) -> str:
        """Record the result; a result the database refuses (a value out of its range, say) fails
        the run with a reason instead of leaving it to be run again for nothing. The outcome:
        completed, failed, or lost (the lease went to another claim)."""
        fault_points.reached("complete")
        try:
            completed = self._recorded(lambda: complete_run(self._engine, run.id, worker_id, result))
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
            return "failed"
        if completed:
            log.info("run %s completed: %d rows, %d bytes", run.id, result.row_count, result.size_bytes)
            return "completed"
        log.warning("run %s finished after its lease was lost; the other claim decides", run.id)
        return "lost"

    def _give_up(self, run: RunRecord) -> None:
        how = "as WORKER_LOST" if run.error_code else f"({run.state}, as its cancel asked)"
        log.warning("run %s given up %s after %d attempt(s)", run.id, how, run.attempts)
        try:
            self._on_given_up(run)
        except Exception:
            # The retention cleanup removes what is left (temporary files, unfinished uploads).
            log.exception("removing the partial output of run %s failed", run.id)
        self._on_run_changed(run)

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
