"""The ASGI application: token endpoint, JWKS, GraphQL, downloads, health; workers in-process."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from uvm_reporting import __version__
from uvm_reporting.api.access_log import AccessLogMiddleware
from uvm_reporting.api.bearer_auth import ActiveClients
from uvm_reporting.api.download_routes import download_routes
from uvm_reporting.api.graphql_route import GraphQLEndpoint
from uvm_reporting.api.graphql_schema import build_schema
from uvm_reporting.api.token_routes import token_routes
from uvm_reporting.auth.hashing_pool import HashingPool
from uvm_reporting.services import Services


def create_app(services: Services, *, run_workers: bool = True) -> Starlette:
    graphql = GraphQLEndpoint(build_schema(), services.tokens, ActiveClients.of(services.engine), services.report_runs)

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__, "region": services.settings.region})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        workers = services.start_workers() if run_workers and services.settings.worker_threads else None
        # API-only processes (scale-out) leave scheduling to `uvm-reporting scheduler`.
        scheduler = services.start_scheduler() if run_workers and services.settings.scheduler_in_serve else None
        try:
            yield
        finally:
            graphql.close()
            if scheduler is not None:
                scheduler.stop()
            if workers is not None:
                workers.stop()

    # With S3 as our storage, links are S3 presigned URLs and need no route of ours.
    folder = services.storage.served_folder
    downloads = download_routes(services.engine, folder) if folder is not None else []
    return Starlette(
        routes=[
            *token_routes(
                services.engine,
                services.tokens,
                rate_limits=services.rate_limits,
                hashing=HashingPool(services.settings.secret_hashing_threads, services.settings.secret_hashing_queue),
            ),
            *graphql.routes(),
            *downloads,
            Route("/healthz", health),
        ],
        middleware=[Middleware(AccessLogMiddleware)],
        lifespan=lifespan,
    )
