"""Metrics of the whole deployment, read from the database when scraped (not counted in a process).

Every process that shows them shows the same figures, so a dashboard takes ``max`` across
processes, never ``sum``. A scrape while the database is down shows the process's own metrics
and ``uvm_reporting_database_up 0`` instead of failing whole.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from uvm_reporting.database.run_counts import count_runs_by_state, queue_figures
from uvm_reporting.domain.timestamps import utc_now

log = logging.getLogger(__name__)


class RunsCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def describe(self) -> list[Metric]:
        return []  # collected only when scraped: registering must not query the database

    def collect(self) -> Iterator[Metric]:
        try:
            counts = count_runs_by_state(self._engine)
            queue = queue_figures(self._engine)
        except SQLAlchemyError as error:
            log.warning("metrics: reading the runs table failed: %s", error.__class__.__name__)
            yield GaugeMetricFamily("uvm_reporting_database_up", "Whether the runs table could be read.", value=0)
            return
        yield GaugeMetricFamily("uvm_reporting_database_up", "Whether the runs table could be read.", value=1)
        by_state = GaugeMetricFamily(
            "uvm_reporting_runs",
            "Runs in the runs table, by state and error code (empty for runs without an error).",
            labels=["state", "error_code"],
        )
        for count in counts:
            by_state.add_metric([count.state, count.error_code or ""], count.runs)
        yield by_state
        yield GaugeMetricFamily("uvm_reporting_queue_depth", "Runs queued, waiting for a worker.", value=queue.depth)
        age = 0.0
        if queue.oldest_created_at is not None:
            age = max(0.0, (utc_now() - queue.oldest_created_at).total_seconds())
        yield GaugeMetricFamily(
            "uvm_reporting_queue_oldest_age_seconds", "Seconds the oldest queued run has waited (0: none).", value=age
        )
