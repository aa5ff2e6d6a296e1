"""The wiring: everything a process needs, built once from the settings and passed down."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from uvm_reporting.application.report_runs import ReportRuns
from uvm_reporting.auth.access_tokens import AccessTokens
from uvm_reporting.errors import BadUserInput
from uvm_reporting.exports.run_executor import RunExecutor
from uvm_reporting.settings import Settings
from uvm_reporting.storage.download_links import DownloadLinkSigner
from uvm_reporting.storage.local_folder import LocalFolderStorage
from uvm_reporting.store.database import open_database
from uvm_reporting.worker.pool import WorkerPool
from uvm_reporting.worker.run_queue_signal import RunQueueSignal
from uvm_reporting.worker.wakeups import PostgresWakeupListener


@dataclass
class Services:
    settings: Settings
    engine: Engine
    tokens: AccessTokens
    storage: LocalFolderStorage
    links: DownloadLinkSigner
    signal: RunQueueSignal
    report_runs: ReportRuns

    def worker_pool(self, threads: int | None = None) -> WorkerPool:
        executor = RunExecutor(self.engine, self.storage)
        return WorkerPool(
            self.engine,
            executor.execute,
            self.signal,
            threads=self.settings.worker_threads if threads is None else threads,
            lease_seconds=self.settings.run_lease_seconds,
            max_attempts=self.settings.run_max_attempts,
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
    storage = LocalFolderStorage(_local_storage_root(settings.storage_url))
    links = DownloadLinkSigner.from_key_file(settings.link_key_file, settings.public_url,
                                             settings.download_link_lifetime_seconds)
    signal = RunQueueSignal()
    return Services(
        settings=settings,
        engine=engine,
        tokens=AccessTokens.from_settings(settings),
        storage=storage,
        links=links,
        signal=signal,
        report_runs=ReportRuns(engine=engine, signal=signal, links=links),
    )


def _local_storage_root(storage_url: str) -> Path:
    if storage_url.startswith("file://"):
        return Path(storage_url.removeprefix("file://"))
    if "://" in storage_url:
        raise BadUserInput(f"UVM_REPORTING_STORAGE_URL {storage_url!r}: only a local folder is supported here.")
    return Path(storage_url)
