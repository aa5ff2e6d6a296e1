"""``--metrics-port`` of the worker and scheduler processes: Prometheus metrics on their own
small HTTP server (a thread), on 127.0.0.1 unless ``--metrics-host`` says otherwise."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from prometheus_client import start_http_server
from prometheus_client.registry import Collector

from uvm_reporting.metrics import exposition_registry

log = logging.getLogger(__name__)

MetricsPortOption = Annotated[
    int | None,
    typer.Option("--metrics-port", min=0, max=65535, help="Serve Prometheus metrics on this port (GET /metrics)."),
]
MetricsHostOption = Annotated[
    str, typer.Option("--metrics-host", help="Interface of the metrics port (keep it off the internet).")
]


@contextmanager
def metrics_server(host: str, port: int | None, *deployment_collectors: Collector) -> Iterator[None]:
    """Serve this process's metrics (and ``deployment_collectors``) on ``host:port`` while the
    block runs; nothing when ``port`` is None."""
    if port is None:
        yield
        return
    server, thread = start_http_server(port, addr=host, registry=exposition_registry(*deployment_collectors))
    log.info("metrics on http://%s:%d/metrics", host, server.server_port)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
