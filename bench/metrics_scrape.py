"""What a Prometheus scrape of the deployment's run figures costs, and what the HTTP metrics add
to each request.

* scrape: ``generate_latest`` of the registry ``/metrics`` serves (this process's metrics and
  the runs table's figures: runs by state and error code, the queue), over a fresh database
  holding ``--runs`` runs (90 % completed, 8 % failed, 1 % queued, …). Baseline, same run: the
  single ``GROUP BY state, error_code`` over the rows that the collector first used.
* request: the per-request work of ``HttpMetricsMiddleware`` (route template, counter,
  histogram), against the app's seven routes.

    .venv/bin/python bench/metrics_scrape.py --backend sqlite|postgresql [--runs 100000] [--repeat 10]

The PostgreSQL database ``uvm_bench_metrics`` is created and dropped by the script. Figures
before autovacuum has run: PostgreSQL reads the table itself until its visibility map is set.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest
from sqlalchemy import Engine, create_engine, insert, text
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from uvm_reporting.api.http_metrics import route_template
from uvm_reporting.application.deployment_metrics import RunsCollector
from uvm_reporting.database.accounts import create_account
from uvm_reporting.database.engine import open_database
from uvm_reporting.database.reports import create_report
from uvm_reporting.database.tables import runs
from uvm_reporting.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS, exposition_registry

POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
BENCH_DATABASE = "uvm_bench_metrics"
REPORT = {
    "name": "All findings",
    "entity": "findings",
    "columns": ["id"],
    "viewers": "public",
}
STATES = ["completed"] * 90 + ["failed"] * 8 + ["queued", "started"]


def fill(engine: Engine, count: int) -> None:
    account = create_account(engine, "Bench")
    report = create_report(engine, account.id, REPORT)
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for number in range(count):
        state = random.choice(STATES)
        rows.append(
            {
                "id": str(uuid.uuid4()),
                "account_id": account.id,
                "report_id": report.id,
                "state": state,
                "delivery": "download",
                "format": "csv",
                "definition": {},
                "created_at": now - timedelta(seconds=number),
                "error_code": "QUERY_FAILED" if state == "failed" else None,
            }
        )
    with engine.begin() as connection:
        for start in range(0, count, 5000):
            connection.execute(insert(runs), rows[start : start + 5000])


def median_ms(work: Callable[[], object], repeat: int) -> float:
    work()  # warm: connections, statement caches
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def one_group_by(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT state, error_code, count(*) FROM runs GROUP BY state, error_code")).all()


def request_overhead_us(requests: int) -> float:
    async def ok(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    paths = ["/oauth2/token", "/.well-known/jwks.json", "/api/graphql", "/downloads/{run_id}", "/healthz"]
    routes = [Route(path, ok) for path in [*paths, "/metrics", "/readyz"]]
    scope = {"type": "http", "method": "POST", "path": "/api/graphql", "root_path": "", "headers": []}
    started = time.perf_counter()
    for _ in range(requests):
        route = route_template(routes, scope)
        HTTP_REQUESTS.labels("POST", route, "200").inc()
        HTTP_REQUEST_DURATION.labels("POST", route).observe(0.001)
    return (time.perf_counter() - started) / requests * 1e6


def measure(engine: Engine, count: int, repeat: int) -> None:
    fill(engine, count)
    registry = exposition_registry(RunsCollector(engine))
    scrape = median_ms(lambda: generate_latest(registry), repeat)
    baseline = median_ms(lambda: one_group_by(engine), repeat)
    print(
        f"{engine.dialect.name}, {count:,} runs: scrape {scrape:.1f} ms; one GROUP BY over the rows {baseline:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--runs", type=int, default=100_000, help="runs in the table (default 100000)")
    parser.add_argument("--repeat", type=int, default=10, help="scrapes measured (default 10)")
    arguments = parser.parse_args()
    if arguments.backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            engine = open_database(f"sqlite:///{Path(folder) / 'bench.sqlite3'}")
            measure(engine, arguments.runs, arguments.repeat)
            engine.dispose()
    else:
        admin = create_engine(f"{POSTGRES_SERVER}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)"))
            connection.execute(text(f"CREATE DATABASE {BENCH_DATABASE}"))
        try:
            engine = open_database(f"{POSTGRES_SERVER}/{BENCH_DATABASE}")
            measure(engine, arguments.runs, arguments.repeat)
            engine.dispose()
        finally:
            with admin.connect() as connection:
                connection.execute(text(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)"))
            admin.dispose()
    print(f"HTTP metrics per request: {request_overhead_us(100_000):.1f} us")


if __name__ == "__main__":
    main()
