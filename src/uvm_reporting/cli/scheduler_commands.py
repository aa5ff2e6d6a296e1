"""``uvm-reporting scheduler``: a process that only enqueues the runs of scheduled exports.

Several may run at once (say one per host, for availability): each fire time still gets
exactly one run. Each also runs the cleanup job (application/cleanup.py) on a thread of its
own, every ``UVM_REPORTING_CLEANUP_INTERVAL_SECONDS``; several of those are safe together too.
"""

from __future__ import annotations

from typing import Annotated

import typer

from uvm_reporting.application.deployment_metrics import RunsCollector
from uvm_reporting.cli import context
from uvm_reporting.cli.metrics_server import MetricsHostOption, MetricsPortOption, metrics_server
from uvm_reporting.cli.worker_commands import install_stop_handlers
from uvm_reporting.log_lines import configure_logging
from uvm_reporting.scheduler.service import DEFAULT_INTERVAL_SECONDS, Scheduler


def scheduler(
    interval: Annotated[
        float, typer.Option("--interval", min=0.5, help="Seconds between two checks for due schedules.")
    ] = DEFAULT_INTERVAL_SECONDS,
    metrics_port: MetricsPortOption = None,
    metrics_host: MetricsHostOption = "127.0.0.1",
) -> None:
    """Run the scheduler alone: enqueue a run for each due fire time of every active schedule."""
    settings = context.settings()
    configure_logging(settings.log_level, settings.log_format)
    engine = context.database()
    from uvm_reporting.services import start_cleanup  # noqa: PLC0415 - admin commands start faster without it

    stop = install_stop_handlers()
    cleanup = start_cleanup(settings, engine)
    # No on_enqueued: workers in other processes find the runs by polling, or at once through
    # PostgreSQL's NOTIFY, which enqueue_run sends.
    with metrics_server(metrics_host, metrics_port, RunsCollector(engine)):
        Scheduler(
            engine, audit_retention_days=settings.audit_retention_days, max_active_runs=settings.max_active_runs
        ).run_forever(stop, interval_seconds=interval)
    if cleanup is not None:
        cleanup.stop()
    engine.dispose()
