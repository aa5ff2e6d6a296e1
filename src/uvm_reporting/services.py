"""The wiring: everything a process needs, built once from the settings and passed down."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy import Engine

from uvm_reporting.application.audit import AuthFailures
from uvm_reporting.application.rate_limits import RateLimits
from uvm_reporting.application.report_runs import ReportRuns
from uvm_reporting.application.reports import Reports
from uvm_reporting.auth.access_tokens import AccessTokens
from uvm_reporting.database.engine import open_database
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
        )
        executor = RunExecutor(self.engine, self.storage, exporter, self.buckets)
        return WorkerPool(
            self.engine,
            executor.execute,
            self.signal,
            threads=self.settings.worker_threads if threads is None else threads,
            lease_seconds=self.settings.run_lease_seconds,
            max_attempts=self.settings.run_max_attempts,
            progress_seconds=self.settings.progress_seconds,
            on_run_changed=lambda run: self.report_runs.run_changed(run.account_id, run.id),
            on_stopped=executor.close,
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


@dataclass
class RunningScheduler:
    stop_event: threading.Event
    thread: threading.Thread

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(10)


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
    s3_clients = S3ClientFactory(
        settings.s3_endpoint_url, settings.aws_region, operator_account_ids=settings.operator_account_ids
    )
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
        ),
        auth_failures=AuthFailures(engine),
        rate_limits=rate_limits,
    )
