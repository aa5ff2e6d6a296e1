"""``uvm-reporting worker``: a process that only runs exports (scale-out)."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Annotated

import typer

from uvm_reporting.cli import context
from uvm_reporting.cli.metrics_server import MetricsHostOption, MetricsPortOption, metrics_server
from uvm_reporting.log_lines import configure_logging

log = logging.getLogger(__name__)


def worker(
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", help="Worker threads (default: UVM_REPORTING_WORKER_THREADS).", min=1)
    ] = None,
    grace: Annotated[
        float,
        typer.Option(
            "--grace", help="Seconds to finish running exports after SIGTERM; unfinished ones go back to the queue."
        ),
    ] = 30.0,
    metrics_port: MetricsPortOption = None,
    metrics_host: MetricsHostOption = "127.0.0.1",
) -> None:
    """Claim and run queued exports until SIGTERM or SIGINT."""
    from uvm_reporting.services import build_services  # noqa: PLC0415 - keeps admin commands fast

    settings = context.settings()
    configure_logging(settings.log_level, settings.log_format)
    services = build_services(settings)
    threads = concurrency or max(1, settings.worker_threads)
    stop = install_stop_handlers()
    # This process's own figures (runs it ran, rows, bytes); the queue's are the API's and the scheduler's.
    with metrics_server(metrics_host, metrics_port):
        workers = services.start_workers(threads)
        log.info("worker %s running %d thread(s); SIGTERM stops it", workers.pool.worker_prefix, threads)
        stop.wait()
        log.info("stopping: no new claims; %d run(s) in progress get %.1fs", len(workers.pool.in_progress), grace)
        workers.stop(grace)
    services.engine.dispose()
    log.info("worker stopped")


def install_stop_handlers() -> threading.Event:
    """An event set by SIGTERM or SIGINT, so a process can wind down instead of dying."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stop
