"""The Prometheus metrics each process counts where the event happens (README, "Metrics").

Counters and histograms here live in this process (prometheus_client's default registry): a
worker counts the runs it ran, an API process the tokens it issued and the requests it
answered. Figures of the whole deployment (runs by state, the queue) are read from the database
when scraped, by collectors passed to :func:`exposition_registry`, so they stay right however
many processes there are.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

# Runs last from a fraction of a second (a few rows) to many minutes (a million rows to XLSX).
_RUN_SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

RUN_DURATION = Histogram(
    "uvm_reporting_run_duration_seconds",
    "Seconds a worker of this process spent on a run, from its claim to its recorded outcome.",
    ["outcome"],
    buckets=_RUN_SECONDS_BUCKETS,
)
RUNS_FINISHED = Counter(
    "uvm_reporting_runs_finished",
    "Attempts this process's workers ended, by outcome (completed, failed, retried, cancelled, lost) and error code.",
    ["outcome", "error_code"],
)
ROWS_EXPORTED = Counter("uvm_reporting_exported_rows", "Rows written by the completed runs of this process.")
BYTES_EXPORTED = Counter("uvm_reporting_exported_bytes", "Bytes of the results of this process's completed runs.")
TOKENS_ISSUED = Counter("uvm_reporting_tokens_issued", "Access tokens this process issued at POST /oauth2/token.")
HTTP_REQUESTS = Counter(
    "uvm_reporting_http_requests",
    "HTTP requests this process answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "uvm_reporting_http_request_duration_seconds",
    "Seconds from a request's arrival to the end of its answer, by method and route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


class _Together(Collector):
    """The metrics of several collectors as one (no ``describe``: names are not checked twice)."""

    def __init__(self, collectors: Iterable[Collector]) -> None:
        self._collectors = tuple(collectors)

    def collect(self) -> Iterator[Metric]:
        for collector in self._collectors:
            yield from collector.collect()

    def describe(self) -> list[Metric]:
        return []


def exposition_registry(*deployment_collectors: Collector) -> CollectorRegistry:
    """A registry that shows this process's metrics and those of ``deployment_collectors``.

    A registry of its own per server, rather than the collectors registered in the default one:
    each server (and each test's app) brings its own database, and the default registry would
    refuse a second collector of the same names."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Together([REGISTRY, *deployment_collectors]))
    return registry
