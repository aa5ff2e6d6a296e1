"""The wiring: everything a process needs, built once from the settings and passed down."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine

from uvm_reporting.application.report_runs import ReportRuns
from uvm_reporting.auth.access_tokens import AccessTokens
from uvm_reporting.errors import BadUserInput
from uvm_reporting.exports.formats import content_type
from uvm_reporting.exports.run_executor import RunExecutor, download_file_name, run_format
from uvm_reporting.scheduler.service import Scheduler
from uvm_reporting.settings import Settings
from uvm_reporting.storage.download_links import DownloadLinkSigner, SignedLink
from uvm_reporting.storage.local_folder import LocalFolderStorage
from uvm_reporting.storage.s3 import S3ClientFactory, S3ResultStorage
from uvm_reporting.store.database import open_database
from uvm_reporting.store.ids import utc_now
from uvm_reporting.store.runs import RunRecord
from uvm_reporting.worker.pool import WorkerPool
from uvm_reporting.worker.run_queue_signal import RunQueueSignal
from uvm_reporting.worker.wakeups import PostgresWakeupListener


@dataclass
class Services:
    settings: Settings
    engine: Engine
    tokens: AccessTokens
    storage: LocalFolderStorage | S3ResultStorage
    links: DownloadLinkSigner
    connector: S3ClientFactory
    signal: RunQueueSignal
    report_runs: ReportRuns

    def worker_pool(self, threads: int | None = None) -> WorkerPool:
        executor = RunExecutor(
            self.engine,
            self.storage,
            self.connector,
            parallelism=self.settings.export_parallelism,
            export_process_min_rows=self.settings.export_process_min_rows,
            keep_spare_export_process=True,
            log_level=self.settings.log_level,
        )
        return WorkerPool(
            self.engine,
            executor.execute,
            self.signal,
            threads=self.settings.worker_threads if threads is None else threads,
            lease_seconds=self.settings.run_lease_seconds,
            max_attempts=self.settings.run_max_attempts,
            on_run_changed=lambda run: self.report_runs.run_changed(run.account_id, run.id),
            on_stopped=executor.close,
        )

    def start_workers(self, threads: int | None = None) -> RunningWorkers:
        """Worker threads, plus a LISTEN connection on PostgreSQL so runs queued by other
        processes wake them at once."""
        pool = self.worker_pool(threads)
        listener = None
        if self.engine.dialect.name == "postgresql":
            listener = PostgresWakeupListener(self.settings.database_url, self.signal)
            listener.start()
        pool.start()
        return RunningWorkers(pool, listener)

    def start_scheduler(self) -> RunningScheduler:
        """The scheduler on a thread of this process; its runs wake this process's workers."""
        stop = threading.Event()
        scheduler = Scheduler(self.engine, on_enqueued=self.signal.notify)
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
    connector = S3ClientFactory(settings.s3_endpoint_url, settings.aws_region)
    storage = _result_storage(settings.storage_url, connector)
    links = DownloadLinkSigner.from_key_file(
        settings.link_key_file, settings.public_url, settings.download_link_lifetime_seconds
    )
    signal = RunQueueSignal()
    return Services(
        settings=settings,
        engine=engine,
        tokens=AccessTokens.from_settings(settings),
        storage=storage,
        links=links,
        connector=connector,
        signal=signal,
        report_runs=ReportRuns(
            engine=engine,
            signal=signal,
            download_link=_download_links(storage, links, settings),
            connector=connector,
            links_without_io=isinstance(storage, LocalFolderStorage),
        ),
    )


def _result_storage(storage_url: str, connector: S3ClientFactory) -> LocalFolderStorage | S3ResultStorage:
    if storage_url.startswith("s3://"):
        return S3ResultStorage.from_url(storage_url, connector)
    if storage_url.startswith("file://"):
        return LocalFolderStorage(Path(storage_url.removeprefix("file://")))
    if "://" in storage_url:
        raise BadUserInput(f"UVM_REPORTING_STORAGE_URL {storage_url!r}: use a folder path, file:// or s3://.")
    return LocalFolderStorage(Path(storage_url))


def _download_links(
    storage: LocalFolderStorage | S3ResultStorage, links: DownloadLinkSigner, settings: Settings
) -> Callable[[RunRecord], SignedLink]:
    """Our own signed link for a local folder; an S3 presigned GET when our storage is S3."""
    if isinstance(storage, LocalFolderStorage):
        return lambda run: links.sign(run.id)
    lifetime = settings.download_link_lifetime_seconds

    def presigned(run: RunRecord) -> SignedLink:
        assert run.result_key is not None  # only Completed runs get a link
        expires_at = utc_now().replace(microsecond=0) + timedelta(seconds=lifetime)
        url = storage.presigned_url(
            run.result_key, download_file_name(run), lifetime, content_type=content_type(*run_format(run))
        )
        return SignedLink(url=url, expires_at=expires_at)

    return presigned
