"""The ASGI application: token endpoint, JWKS, GraphQL, downloads, health, readiness and metrics;
workers in-process."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from uvm_reporting import __version__
from uvm_reporting.api.access_log import AccessLogMiddleware
from uvm_reporting.api.bearer_auth import ActiveClients
from uvm_reporting.api.download_routes import download_routes
from uvm_reporting.api.error_answers import GRAPHQL_PATH, ErrorAnswersMiddleware, http_error
from uvm_reporting.api.graphql_route import GraphQLEndpoint
from uvm_reporting.api.graphql_schema import build_schema
from uvm_reporting.api.http_metrics import HttpMetricsMiddleware
from uvm_reporting.api.operations_routes import operations_routes
from uvm_reporting.api.request_limits import BodyLimits, RequestLimitsMiddleware
from uvm_reporting.api.token_routes import token_routes
from uvm_reporting.application.audit import AuditLog
from uvm_reporting.application.deployment_metrics import RunsCollector
from uvm_reporting.auth.hashing_pool import HashingPool
from uvm_reporting.services import Services


def create_app(services: Services, *, run_workers: bool = True) -> Starlette:
    # One cache of active clients: a revoked client's tokens and download links stop together.
    clients = ActiveClients.of(services.engine)
    graphql = GraphQLEndpoint(
        build_schema(),
        services.tokens,
        clients,
        services.report_runs,
        introspection=services.settings.introspection_enabled,
        auth_failures=services.auth_failures,
    )

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__, "region": services.settings.region})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        workers = services.start_workers() if run_workers and services.settings.worker_threads else None
        # API-only processes (scale-out) leave scheduling to `uvm-reporting scheduler`.
        scheduler = services.start_scheduler() if run_workers and services.settings.scheduler_in_serve else None
        # Housekeeping beside the workers; API-only processes leave it to `uvm-reporting scheduler`.
        cleanup = services.start_cleanup() if run_workers else None
        try:
            yield
        finally:
            graphql.close()
            if cleanup is not None:
                cleanup.stop()
            if scheduler is not None:
                scheduler.stop()
            if workers is not None:
                workers.stop()

    downloads = download_routes(services.storage, clients, services.report_runs, AuditLog(services.engine))
    settings = services.settings
    limits = BodyLimits(
        default=settings.max_body_bytes,
        per_path={GRAPHQL_PATH: settings.max_graphql_body_bytes, "/oauth2/token": settings.max_token_body_bytes},
    )
    routes = [
        *token_routes(
            services.engine,
            services.tokens,
            services.auth_failures,
            rate_limits=services.rate_limits,
            hashing=HashingPool(services.settings.secret_hashing_threads, services.settings.secret_hashing_queue),
        ),
        *graphql.routes(),
        *downloads,
        Route("/healthz", health),
        *operations_routes(services, RunsCollector(services.engine)),
    ]
    return Starlette(
        routes=routes,
        # Outermost first: the request id, then the HTTP metrics (which see every answer), then
        # error answers that carry the id, then the body limits, which refuse before any route
        # (and so before auth) runs.
        middleware=[
            Middleware(AccessLogMiddleware),
            Middleware(HttpMetricsMiddleware, routes=routes),
            Middleware(ErrorAnswersMiddleware),
            Middleware(RequestLimitsMiddleware, limits=limits),
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
