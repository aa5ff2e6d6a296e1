"""The wiring: everything a process needs, built once from the settings and passed down."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy import Engine

from uvm_reporting.application.audit import AuthFailures
from uvm_reporting.application.cleanup import CleanupJob, cleanup_steps
from uvm_reporting.application.rate_limits import RateLimits
from uvm_reporting.application.report_runs import ReportRuns
from uvm_reporting.application.reports import Reports
from uvm_reporting.auth.access_tokens import AccessTokens
from uvm_reporting.database.engine import open_database
from uvm_reporting.domain.retention import RetentionPolicy
from uvm_reporting.scheduler.service import Scheduler
from uvm_reporting.settings import Settings
from uvm_reporting.storage.download_links import DownloadLinkSigner
from uvm_reporting.storage.result_storage import ResultStorage
from uvm_reporting.storage.s3 import S3ClientFactory
from uvm_reporting.storage.s3.customer_buckets import S3CustomerBuckets
from uvm_reporting.storage.storage_url import result_storage_from_url
from uvm_reporting.worker.pool import WorkerPool
from uvm_reporting.worker.run_queue_signal import RunQueueSignal
from uvm_reporting.worker.wakeups import PostgresWakeupListener


@dataclass
class Services:
    settings: Settings
    engine: Engine
    tokens: AccessTokens
    storage: ResultStorage
    buckets: S3CustomerBuckets
    signal: RunQueueSignal
    report_runs: ReportRuns
    auth_failures: AuthFailures
    rate_limits: RateLimits

    @property
    def reports(self) -> Reports:
        return self.report_runs.reports

    def worker_pool(self, threads: int | None = None) -> WorkerPool:
        # Loaded only by processes that run exports: an API-only process never imports the export
        # stack (pyarrow, xlsxwriter, ADBC).
        from uvm_reporting.application.execute_run import RunExecutor  # noqa: PLC0415
        from uvm_reporting.exports.exporter import Exporter  # noqa: PLC0415

        exporter = Exporter(
            self.engine,
            parallelism=self.settings.export_parallelism,
            export_process_min_rows=self.settings.export_process_min_rows,
            keep_spare_export_process=True,
            log_level=self.settings.log_level,
            log_format=self.settings.log_format,
        )
        executor = RunExecutor(self.engine, self.storage, exporter, self.buckets)
        return WorkerPool(
            self.engine,
            executor.execute,
            self.signal,
            threads=self.settings.worker_threads if threads is None else threads,
            lease_seconds=self.settings.run_lease_seconds,
            max_attempts=self.settings.run_max_attempts,
            retry_base_seconds=self.settings.run_retry_base_seconds,
            retry_max_seconds=self.settings.run_retry_max_seconds,
            progress_seconds=self.settings.progress_seconds,
            on_run_changed=lambda run: self.report_runs.run_changed(run.account_id, run.id),
            on_stopped=executor.close,
            on_given_up=executor.discard_output,
        )

    def start_workers(self, threads: int | None = None) -> RunningWorkers:
        """Worker threads, plus a LISTEN connection on PostgreSQL so runs queued by other
        processes wake them at once."""
        pool = self.worker_pool(threads)
        # A cancel taken by this process's API reaches its own workers at once.
        self.report_runs.on_cancel_requested = pool.cancel_requested
        listener = None
        if self.engine.dialect.name == "postgresql":
            listener = PostgresWakeupListener(self.settings.database_url, self.signal)
            listener.start()
        pool.start()
        return RunningWorkers(pool, listener)

    def start_scheduler(self) -> RunningScheduler:
        """The scheduler on a thread of this process; its runs wake this process's workers."""
        stop = threading.Event()
        scheduler = Scheduler(
            self.engine,
            on_enqueued=self.signal.notify,
            audit_retention_days=self.settings.audit_retention_days,
            max_active_runs=self.settings.max_active_runs,
        )
        thread = threading.Thread(
            target=scheduler.run_forever,
            args=(stop, self.settings.scheduler_interval_seconds),
            name="scheduler",
            daemon=True,
        )
        thread.start()
        return RunningScheduler(stop, thread)

    def start_cleanup(self) -> RunningCleanup | None:
        """The cleanup job on a thread of this process, every ``cleanup_interval_seconds``
        (None when that is 0)."""
        return start_cleanup(self.settings, self.engine, self.storage)


def retention_policy(settings: Settings) -> RetentionPolicy:
    return RetentionPolicy(result_retention=settings.result_retention, run_history=settings.run_history)


def cleanup_job(settings: Settings, engine: Engine, storage: ResultStorage | None = None) -> CleanupJob:
    """The deployment's cleanup job (application/cleanup.py) over ``storage``, or over the result
    storage the settings name, opened without links (a scheduler process or the CLI)."""
    if storage is None:
        storage = result_storage_from_url(settings.storage_url, s3_clients=_s3_clients(settings), links=None)
    return CleanupJob(cleanup_steps(engine, storage, retention_policy(settings)))


def start_cleanup(settings: Settings, engine: Engine, storage: ResultStorage | None = None) -> RunningCleanup | None:
    """``cleanup_job`` on a daemon thread, a pass every ``cleanup_interval_seconds``; stop it with
    ``stop()``. None when the interval is 0 (the job then runs only from the CLI)."""
    if not settings.cleanup_interval_seconds:
        return None
    job = cleanup_job(settings, engine, storage)
    stop = threading.Event()
    thread = threading.Thread(
        target=job.run_forever, args=(stop, settings.cleanup_interval_seconds), name="cleanup", daemon=True
    )
    thread.start()
    return RunningCleanup(stop, thread)


def _s3_clients(settings: Settings) -> S3ClientFactory:
    return S3ClientFactory(
        settings.s3_endpoint_url, settings.aws_region, operator_account_ids=settings.operator_account_ids
    )


@dataclass
class RunningScheduler:
    stop_event: threading.Event
    thread: threading.Thread

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(10)


class RunningCleanup(RunningScheduler):
    """The cleanup job's thread: ``stop()`` ends it after the pass under way, if any."""


@dataclass
class RunningWorkers:
    pool: WorkerPool
    listener: PostgresWakeupListener | None

    def stop(self, grace_seconds: float = 30.0) -> None:
        self.pool.stop(grace_seconds)
        if self.listener is not None:
            self.listener.stop()


def build_services(settings: Settings, engine: Engine | None = None) -> Services:
    engine = engine or open_database(settings.database_url)
    s3_clients = _s3_clients(settings)
    storage = result_storage_from_url(
        settings.storage_url,
        s3_clients=s3_clients,
        links=DownloadLinkSigner.from_settings(settings),
    )
    signal = RunQueueSignal()
    buckets = S3CustomerBuckets(s3_clients)
    rate_limits = RateLimits.from_settings(settings, engine)
    return Services(
        settings=settings,
        engine=engine,
        tokens=AccessTokens.from_settings(settings),
        storage=storage,
        buckets=buckets,
        signal=signal,
        report_runs=ReportRuns(
            engine=engine,
            signal=signal,
            links=storage,
            reports=Reports(engine, buckets, min_schedule_interval=settings.min_schedule_interval),
            rate_limits=rate_limits,
            max_active_runs=settings.max_active_runs,
            retention=retention_policy(settings),
            idempotency_key_lifetime=settings.idempotency_key_lifetime,
        ),
        auth_failures=AuthFailures(engine),
        rate_limits=rate_limits,
    )
